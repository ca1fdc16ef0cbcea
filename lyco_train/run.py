"""A ``lyco train`` run, top to bottom: lint gate → config → family → data plan → steps → resume → seed →
the plan printed → the loop.

:func:`prepare_run` makes the :class:`~.plan.RunPlan` (everything decided before anything is loaded); the
command and the benchmark (``bench.py``) both start from it. :func:`run` is what ``lyco train`` calls,
:func:`main` is ``python -m lyco_train``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Callable, Optional

from .config import ConfigError, load_config
from .data import plan_data
from .families import get_family
from .lint_gate import lint_gate, model_analysis
from .plan import RunPlan, describe, plan_steps, resume_point


def run(config_path: str | os.PathLike, *, dry_run: bool = False, console=None) -> int:
    """Lint, plan and (unless ``dry_run``) train. Returns the exit status: 0 done (or planned), 1 lint errors,
    a config problem or a stopped run (non-finite loss), 2 the config file or the trainer's dependencies are
    missing."""
    from rich.console import Console

    console = console or Console()
    say = lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    path = Path(config_path)
    if not path.is_file():
        say(f"error: config file {path} not found")
        return 2
    lint_result = lint_gate(path, console.file)  # lint errors stop the run before anything is loaded or written
    if lint_result is None:
        return 1
    try:
        plan = prepare_run(path, say)
        for note in plan.config.notes:
            say(f"note: {note}")
        for line in describe(plan):
            say(line)
        analysis = model_analysis(lint_result)
        if analysis is not None:
            from lyco_lint.plan import render_plan

            render_plan(analysis, console)  # what LyCORIS will train, from the model built on the meta device
        if dry_run:
            say("dry run: nothing loaded, nothing written.")
            return 0
        from .loop import train

        return train(plan, console)
    except ConfigError as error:
        say(f"error: {error}")
        return 1
    except ModuleNotFoundError as error:  # a lint-only install: the trainer's dependencies are an extra
        say(f"error: lyco train needs its dependencies ({error.name} is missing): pip install 'lyco[train]'")
        return 2


def prepare_run(config_path: str | os.PathLike, say: Callable[[str], None] = print) -> RunPlan:
    """Read the config, choose the family, find the data, count the steps, find the checkpoint to resume
    and fix the seed. Torch-free; raises ConfigError with the fix."""
    config = load_config(config_path)
    options = config.options
    family = get_family(options.model_family)
    family.check(options)
    alignment = math.lcm(int(options.aspect_bucket_alignment), family.pixel_multiple(options))
    data = plan_data(config, alignment, family.latent_identity(options), family.text_identity(options), lambda text: say(f"warning: {text}"))
    steps = plan_steps(config, data)
    resume = resume_point(config.output_dir, options.resume_from_checkpoint)
    seed = resolve_seed(options.seed, resume, say)
    return RunPlan(config, family, data, steps, resume, seed)


def resolve_seed(seed: Optional[int], resume: Optional[Path], say: Callable[[str], None]) -> int:
    """The config's seed; a resumed run keeps its checkpoint's seed (the data order depends on it); a random
    one when neither sets it."""
    saved = None
    if resume is not None:
        saved = json.loads((resume / "training_state.json").read_text(encoding="utf-8")).get("seed")
    if saved is not None:
        if seed is not None and seed != saved:
            say(f"note: resuming with the checkpoint's seed {saved}, not {seed}, so the data order continues exactly")
        return int(saved)
    if seed is not None:
        return seed
    return int.from_bytes(os.urandom(4), "little")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="lyco train", description="Train a LyCORIS adapter from a SimpleTuner config.json.")
    parser.add_argument("config", help="the training config (config.json)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (data, steps, batch) and exit")
    arguments = parser.parse_args(argv)
    return run(arguments.config, dry_run=arguments.dry_run)
