"""lyco's trainer: ``lyco train config.json`` trains a LyCORIS adapter from a SimpleTuner-style config.

Layout (read in this order): ``config.py`` (config.json, LyCORIS config, multidatabackend.json) →
``data.py`` (images, captions, sizes, batch order) → ``families/`` (one module per model family) →
``caching.py`` (latent and prompt caches) → ``adapter.py`` (LyCORIS network, T-LoRA masks, save/load) →
``loop.py`` (the run and ``train_step``) with ``optim.py``, ``checkpoint.py`` and ``report.py``.

Entry points: :func:`run` (what the ``lyco train`` command calls) and :func:`main` (``python -m lyco_train``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Optional

__all__ = ["run", "main"]


def run(config_path: str | os.PathLike, *, dry_run: bool = False, console=None) -> int:
    """Lint, plan and (unless ``dry_run``) train. Returns the exit status: 0 done (or planned), 1 lint errors,
    a config problem or a stopped run (non-finite loss), 2 the config file or the trainer's dependencies are
    missing."""
    from rich.console import Console

    from .lint_gate import lint_gate, model_analysis

    console = console or Console()
    say = lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    path = Path(config_path)
    if not path.is_file():
        say(f"error: config file {path} not found")
        return 2
    lint_result = lint_gate(path, console.file)
    if lint_result is None:
        return 1
    try:
        return _plan_and_train(path, dry_run, console, say, model_analysis(lint_result))
    except ModuleNotFoundError as error:  # a lint-only install: the trainer's dependencies are an extra
        say(f"error: lyco train needs its dependencies ({error.name} is missing): pip install 'lyco[train]'")
        return 2


def _plan_and_train(path: Path, dry_run: bool, console, say, analysis) -> int:
    from .config import ConfigError, load_config
    from .data import plan_data
    from .families import get_family
    from .plan import describe, plan_steps, print_lines, resume_point

    try:
        config = load_config(path)
        family = get_family(config.model_family)
        family.check(config)
        alignment = _lcm(int(config.aspect_bucket_alignment), family.pixel_multiple(config))
        plan = plan_data(config, alignment, family.latent_identity(config), family.text_identity(config), lambda text: say(f"warning: {text}"))
        steps = plan_steps(config, plan)
        resume = resume_point(config.output_dir, config.resume_from_checkpoint)
        seed = resolve_seed(config.seed, resume, say)
    except ConfigError as error:
        say(f"error: {error}")
        return 1
    for note in config.notes:
        say(f"note: {note}")
    print_lines(describe(config, plan, steps, family.NAME, family.flavour(config), family.model_root(config), resume, seed), say)
    if analysis is not None:
        from lyco_lint.plan import render_plan

        render_plan(analysis, console)  # what LyCORIS will train, from the model built on the meta device
    if dry_run:
        say("dry run: nothing loaded, nothing written.")
        return 0
    from .loop import train

    try:
        return train(config, plan, family, steps, resume, seed, console)
    except ConfigError as error:
        say(f"error: {error}")
        return 1


def resolve_seed(seed: Optional[int], resume: Optional[Path], say) -> int:
    """The config's seed; a resumed run keeps its checkpoint's seed (the data order depends on it)."""
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


def _lcm(a: int, b: int) -> int:
    from math import gcd

    return a * b // gcd(a, b)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="lyco train", description="Train a LyCORIS adapter from a SimpleTuner config.json.")
    parser.add_argument("config", help="the training config (config.json)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (data, steps, batch) and exit")
    arguments = parser.parse_args(argv)
    return run(arguments.config, dry_run=arguments.dry_run)
