"""Time ``train_step``: ``python -m lyco_train.bench config.json [--steps 30] [--warmup 5] [--threads N]``.

Builds the run as ``lyco train`` does (``run.prepare_run``, then ``loop.prepare``: caches are written if
missing), but never resumes, checkpoints or saves weights; it times optimizer steps from a fresh adapter and
prints the median and mean milliseconds per step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Optional


def bench(config_path: str, steps: int = 30, warmup: int = 5) -> list[float]:
    """Milliseconds of each timed ``train_step`` (after ``warmup`` untimed ones)."""
    from .data import BatchStream
    from .loop import prepare, train_step
    from .run import prepare_run

    run = prepare_run(config_path, print)
    parts, generator = prepare(run, print)
    options = run.config.options
    stream = BatchStream(run.data, run.seed, options.train_batch_size)
    timings = []
    for index in range(warmup + steps):
        micro_batches = [stream.next() for _ in range(options.gradient_accumulation_steps)]
        started = time.perf_counter()
        train_step(parts, micro_batches, generator)
        if parts.accelerator.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        if index >= warmup:
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lyco_train.bench", description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    arguments = parser.parse_args(argv)
    if arguments.threads:
        import torch

        torch.set_num_threads(arguments.threads)
    timings = bench(arguments.config, arguments.steps, arguments.warmup)
    print(f"train_step: median {statistics.median(timings):.2f} ms, mean {statistics.mean(timings):.2f} ms over {len(timings)} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
