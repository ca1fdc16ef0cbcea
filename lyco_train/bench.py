"""Time ``train_step``: ``python -m lyco_train.bench config.json [--steps 30] [--warmup 5] [--threads N]``.

Builds the run as ``lyco train`` does (caches are written if missing; no checkpoints, no weights), then
times optimizer steps and prints the median and mean milliseconds per step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Optional


def bench(config_path: str, steps: int = 30, warmup: int = 5) -> list[float]:
    from . import _lcm, resolve_seed
    from .config import load_config
    from .data import BatchStream, plan_data
    from .families import get_family
    from .loop import prepare, train_step

    config = load_config(config_path)
    family = get_family(config.model_family)
    family.check(config)
    alignment = _lcm(int(config.aspect_bucket_alignment), family.pixel_multiple(config))
    plan = plan_data(config, alignment, family.latent_identity(config), family.text_identity(config), print)
    seed = resolve_seed(config.seed, None, print)
    parts, generator = prepare(config, plan, family, seed, warmup + steps, print)
    stream = BatchStream(plan, seed, config.train_batch_size)
    timings = []
    for index in range(warmup + steps):
        micro_batches = [stream.next() for _ in range(config.gradient_accumulation_steps)]
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
