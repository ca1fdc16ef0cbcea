"""A ``lyco train`` run, top to bottom: the launch (one process of several?) → lint gate → config → family →
base precision → data plan → steps → resume → seed → trackers and validation → the output folder → the plan
printed → the loop.

:func:`prepare_run` makes the :class:`~.plan.RunPlan` (everything decided before anything is loaded); the
command and the benchmark (``bench.py``) both start from it. :func:`run` is what ``lyco train`` calls,
:func:`main` is ``python -m lyco_train``.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

from lyco_lint.meta_model.patches import quiet_import_noise

from . import distributed, quantize
from .checkpoint import read_training_state
from .config import ConfigError, load_config
from .data import plan_data
from .distributed import Launch, ProcessError
from .families import get_family
from .lint_gate import lint_gate, model_analysis
from .plan import RunPlan, check_fresh_output, check_output_dir, check_resume_batch, describe, plan_steps, resume_point
from .trackers import check_trackers
from .validation import plan_for_run


def run(config_path: str | os.PathLike, *, dry_run: bool = False, console=None, adapter_path: str = "auto") -> int:
    """Lint, plan and (unless ``dry_run``) train. Returns the exit status: 0 done (or planned), 1 lint errors,
    a config problem or a stopped run (non-finite state), 2 the config file or the trainer's dependencies are
    missing. Under ``accelerate launch`` every process runs this; only the main one prints. ``adapter_path``:
    each adapted layer's forward path (``layer_paths``): auto (measured), bypass or rebuild."""
    from rich.console import Console

    quiet_import_noise()  # before anything imports diffusers or lycoris
    try:
        distributed.check_launch_environment()  # a launch lyco cannot serve (DeepSpeed, ...) stops here
        launch = distributed.launch_from_env()
    except ConfigError as error:
        (console or Console()).print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        return 1
    console = console or (Console() if launch.is_main else Console(file=io.StringIO()))
    say = lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    from .layer_paths import PATH_CHOICES

    if adapter_path not in PATH_CHOICES:
        say(f"error: --adapter-path {adapter_path!r}: choose one of {', '.join(PATH_CHOICES)}")
        return 2
    path = Path(config_path)
    if not path.is_file():
        say(f"error: config file {path} not found")
        return 2
    lint_result = lint_gate(path, console.file)  # lint errors stop the run before anything is loaded or written
    if lint_result is None:
        return 1
    try:
        plan = replace(prepare_run(path, say, launch), adapter_path=adapter_path)
        # before any work: a folder the run can write, and not an earlier run's (the main process probes it)
        check_output_dir(plan.config.output_dir, create=not dry_run and launch.is_main)
        check_fresh_output(plan.config.output_dir, plan.resume)
        for note in plan.config.notes:
            say(f"note: {note}")
        for line in describe(plan):
            say(line)
        analysis = model_analysis(lint_result)
        if analysis is not None:
            from lyco_lint.plan import render_plan

            render_plan(analysis, console)  # what LyCORIS will train, from the model built on the meta device
            for line in base_memory(analysis, plan.config.options):
                say(line)
        if dry_run:
            say("dry run: nothing loaded, nothing written.")
            return 0
        from .families.components import check_reachable
        from .loop import train

        check_reachable(plan.family.model_root(plan.config.options))  # a Hub id with no connection: now, not after retries
        return train(plan, console)
    except ProcessError as error:  # only this process sees it: it speaks for itself
        if not launch.is_main:
            sys.stderr.write(f"error: {error}\n")
        say(f"error: {error}")
        return 1
    except ConfigError as error:
        say(f"error: {error}")
        return 1
    except ModuleNotFoundError as error:  # a lint-only install: the trainer's dependencies are an extra
        say(f"error: lyco train needs its dependencies ({error.name} is missing): pip install 'lyco[train]'")
        return 2


def prepare_run(config_path: str | os.PathLike, say: Callable[[str], None] = print, launch: Optional[Launch] = None) -> RunPlan:
    """Read the config, choose the family, check the base precision, find the data, count the steps, find the
    checkpoint to resume and fix the seed. Torch-free; raises ConfigError with the fix."""
    launch = launch or distributed.launch_from_env()
    config = load_config(config_path)
    options = config.options
    family = get_family(options.model_family)
    family.check(options)
    quantize.check_precision(options, config.lycoris, sharded=distributed.fsdp_requested() and launch.distributed)
    if options.dynamo_backend not in (None, "", "no"):
        from .compile import check_backend

        check_backend(options.dynamo_backend)  # before the caches are built: --dry-run says it too
    alignment = math.lcm(int(options.aspect_bucket_alignment), family.pixel_multiple(options))
    data = plan_data(config, alignment, family.latent_identity(options), family.text_identity(options), lambda text: say(f"warning: {text}"))
    steps = plan_steps(config, data, launch.world_size)
    resume = resume_point(config.output_dir, options.resume_from_checkpoint, lambda text: say(f"warning: {text}"))
    check_resume_batch(resume, options.train_batch_size, launch.world_size)
    seed = resolve_seed(options.seed, resume, say)
    check_trackers(options)
    validation, validation_summary = plan_for_run(config, family, data, steps.total_steps, resume, seed)
    return RunPlan(config, family, data, steps, resume, seed, launch, validation=validation, validation_summary=validation_summary)


def base_memory(analysis, options) -> list[str]:
    """The frozen base's weight memory, in its dtype and quantized (``base_model_precision``), and the training
    memory estimate, from the model the lint gate built on the meta device; nothing when torch is not installed."""
    if analysis.source is None:
        return []
    from lyco_lint.meta_model.build import build_meta_model

    from .adapter import training_memory_line

    model = build_meta_model(analysis.source)
    lines = quantize.memory_lines(model, options.base_model_precision, options.weight_dtype_name)
    element_bytes = 2 if options.weight_dtype_name == "bf16" else 4
    base = quantize.estimated_bytes(model, options.base_model_precision, element_bytes)
    return lines + [training_memory_line(analysis, base, element_bytes, options)]


def resolve_seed(seed: Optional[int], resume: Optional[Path], say: Callable[[str], None]) -> int:
    """The config's seed; a resumed run keeps its checkpoint's seed (the data order depends on it); a random
    one when neither sets it."""
    saved = None
    if resume is not None:
        saved = read_training_state(resume).get("seed")
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
    parser.add_argument(
        "--adapter-path", choices=("auto", "bypass", "rebuild"), default="auto",
        help="each adapted layer's forward: auto (the faster of the two, measured once per layer shape), bypass or rebuild",
    )
    arguments = parser.parse_args(argv)
    return run(arguments.config, dry_run=arguments.dry_run, adapter_path=arguments.adapter_path)
