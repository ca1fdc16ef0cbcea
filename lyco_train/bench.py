"""Time ``train_step``: ``python -m lyco_train.bench config.json [--steps 30] [--warmup 5] [--threads N]
[--adapter-path auto|bypass|rebuild]``.

Builds the run as ``lyco train`` does (``run.prepare_run``, then ``loop.prepare``: caches are written if
missing, the layer paths chosen, the blocks compiled when the config says so), but never lints, resumes,
checkpoints or saves weights; it times optimizer steps from a fresh adapter (the cache files read ahead, as in
training) and prints the median and mean milliseconds per step, and the peak memory on CUDA. A config that
cannot run is one error line (exit 1; 2 for a missing file or a missing dependency), as for ``lyco train``.
``benchmarks/bench_train.py`` compares the step with a plain diffusers + LyCORIS loop.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional


def bench(config_path: str, steps: int = 30, warmup: int = 5, adapter_path: str = "auto", say=print) -> tuple[list[float], Optional[float]]:
    """Milliseconds of each timed ``train_step`` (after ``warmup`` untimed ones), and the peak GiB (CUDA)."""
    from .data import BatchStream
    from .loop import prepare, train_step
    from .run import prepare_run

    run = replace(prepare_run(config_path, say), adapter_path=adapter_path)
    parts, generator = prepare(run, say)
    options = run.config.options
    stream = BatchStream(run.data, run.seed, run.micro_batch_size)
    parts.reader.follow(stream, options.gradient_accumulation_steps)
    cuda = parts.accelerator.device.type == "cuda"
    timings, peak = [], None
    for index in range(warmup + steps):
        micro_batches = [stream.next() for _ in range(options.gradient_accumulation_steps)]
        started = time.perf_counter()
        result = train_step(parts, micro_batches, generator)
        if cuda:
            import torch

            torch.cuda.synchronize()
        if index >= warmup:
            timings.append((time.perf_counter() - started) * 1000)
            peak = max(peak or 0.0, result.peak_gib) if result.peak_gib is not None else None
    return timings, peak


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lyco_train.bench", description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--adapter-path", choices=("auto", "bypass", "rebuild"), default="auto")
    arguments = parser.parse_args(argv)
    if not Path(arguments.config).is_file():
        print(f"error: config file {arguments.config} not found")
        return 2
    from .config import ConfigError

    try:
        if arguments.threads:
            import torch

            torch.set_num_threads(arguments.threads)
        timings, peak = bench(arguments.config, arguments.steps, arguments.warmup, arguments.adapter_path)
    except ConfigError as error:  # ProcessError too: the config, its data or its model cannot run
        print(f"error: {error}")
        return 1
    except ModuleNotFoundError as error:
        print(f"error: the benchmark needs lyco train's dependencies ({error.name} is missing): pip install 'lyco[train]'")
        return 2
    memory = f", peak {peak:.2f} GiB" if peak is not None else ""
    print(f"train_step: median {statistics.median(timings):.2f} ms, mean {statistics.mean(timings):.2f} ms over {len(timings)} steps{memory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
