"""A run's plan: how long it is, where it resumes, and the summary printed before training (and by
``--dry-run``); finding, choosing and pruning checkpoint folders. No torch."""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .adapter import WEIGHTS_NAME
from .checkpoint import STATE_NAME, checkpoint_problem, read_training_state
from .config import ConfigError, TrainConfig
from .data import DataPlan
from .distributed import Launch
from .families.base import Family
from .validation import ValidationPlan


@dataclass(frozen=True)
class StepPlan:
    batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    epochs: int


@dataclass(frozen=True)
class RunPlan:
    """Everything a run is decided by before anything is loaded (``run.prepare_run`` makes it)."""

    config: TrainConfig
    family: Family
    data: DataPlan
    steps: StepPlan
    resume: Optional[Path]  # the checkpoint folder to continue from, None for a fresh start
    seed: int
    launch: Launch = Launch()  # the processes this run is one of (accelerate launch / torchrun)
    adapter_path: str = "auto"  # lyco train --adapter-path: auto (measured per layer), bypass or rebuild
    validation: Optional[ValidationPlan] = None  # what validation renders, None when nothing (validation.py)
    validation_summary: str = "off"

    @property
    def micro_batch_size(self) -> int:
        """Samples in one global micro-batch: ``train_batch_size`` per process × processes."""
        return self.config.options.train_batch_size * self.launch.world_size


def plan_steps(config: TrainConfig, data: DataPlan, processes: int = 1) -> StepPlan:
    """SimpleTuner's arithmetic: max_train_steps wins; otherwise num_train_epochs × steps per epoch, where an
    epoch is cut into global batches of ``train_batch_size × processes``."""
    options = config.options
    batches = data.batches_per_epoch(options.train_batch_size * processes)
    steps_per_epoch = max(1, math.ceil(batches / options.gradient_accumulation_steps))
    total = options.max_train_steps or options.num_train_epochs * steps_per_epoch
    return StepPlan(batches, steps_per_epoch, total, math.ceil(total / steps_per_epoch))


def describe(run: RunPlan) -> list[str]:
    """The plan as lines of text: model, data, batch, steps, optimizer, adapter, output."""
    config, options, data, steps = run.config, run.config.options, run.data, run.steps
    family = run.family
    lines = [f"lyco train: {family.name} {family.flavour(options)} from {family.model_root(options)}"]
    per_dataset: dict[str, int] = {}
    for sample in data.samples:
        per_dataset[sample.dataset] = per_dataset.get(sample.dataset, 0) + 1
    lines.append(f"data: {len(data.samples)} image(s) in {len(config.datasets)} dataset(s), {len(data.skipped)} skipped")
    for spec in config.datasets:
        lines.append(
            f"  {spec.id}: {per_dataset.get(spec.id, 0)} image(s) from {spec.instance_data_dir}, captions {spec.caption_strategy}, "
            f"{spec.resolution:g} {spec.resolution_type}, {spec.shape_description}, repeats {spec.repeats}, latents in {spec.cache_dir_vae}"
        )
    buckets = ", ".join(f"{w}x{h} ×{len(members)}" for (w, h), members in data.buckets.items())
    lines.append(f"  sizes: {buckets}")
    dropout = options.caption_dropout_probability
    lines.append(f"  prompts: {len(data.prompt_files)} unique{' (incl. the empty prompt for caption dropout %g)' % dropout if dropout > 0 else ''}, embeddings in {config.text_embeds.cache_dir}")
    processes = run.launch.world_size
    per_process = f" per process × {processes} processes" if processes > 1 else ""
    lines.append(
        f"batch: {options.train_batch_size}{per_process} × {options.gradient_accumulation_steps} accumulation = "
        f"{run.micro_batch_size * options.gradient_accumulation_steps} per step; {steps.batches_per_epoch} batch(es) per epoch"
    )
    source = "max_train_steps" if options.max_train_steps else f"{options.num_train_epochs} epoch(s)"
    interval = options.checkpoint_step_interval
    lines.append(
        f"steps: {steps.total_steps} ({source}, about {steps.epochs} epoch(s)); "
        + (f"checkpoint every {interval} steps, keep {options.checkpoints_total_limit}" if interval and interval > 0 else "no intermediate checkpoints")
    )
    lines.append(
        f"optimizer: {options.optimizer}, lr {options.learning_rate:g} {options.lr_scheduler} (warmup {options.lr_warmup_steps}), "
        f"mixed_precision {options.mixed_precision}, gradient_checkpointing {str(options.gradient_checkpointing).lower()}, seed {run.seed}"
    )
    lines.append(f"adapter: {config.lycoris.get('algo', 'lora')} from {config.lycoris_path}")
    lines.append(f"validation: {run.validation_summary}")
    lines.append(f"output: {config.output_dir}" + (f" (resuming from {run.resume.name})" if run.resume else ""))
    return lines


# -- checkpoint folders --------------------------------------------------------------------------

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Every ``checkpoint-STEP`` folder, oldest first (intact or not: :func:`resume_point` checks them)."""
    if not output_dir.is_dir():
        return []
    found = []
    for path in output_dir.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def check_resume_batch(resume: Optional[Path], train_batch_size: int, processes: int) -> None:
    """A checkpoint continues only with the global micro-batch it was trained with (train_batch_size × processes):
    the data order is cut in those. Checked while planning, so ``--dry-run`` says it before anything loads."""
    if resume is None:
        return
    trained_with = read_training_state(resume).get("micro_batch_size", train_batch_size)
    if trained_with != train_batch_size * processes:
        raise ConfigError(
            f"{resume} was trained with global micro-batches of {trained_with} samples (train_batch_size × processes); this launch "
            f"makes {train_batch_size * processes} ({train_batch_size} × {processes}), so the data order would not continue: "
            "launch with the same train_batch_size × processes, or start a new run in a new output_dir"
        )


def resume_point(output_dir: Path, setting: Optional[str], warn: Callable[[str], None] = lambda _text: None) -> Optional[Path]:
    """The checkpoint to resume from: ``latest`` (the newest intact one; a damaged one is named in a warning
    and skipped; none yet: start fresh), a checkpoint name or a path (damaged: an error naming the file)."""
    if not setting or setting.lower() in ("none", "false"):
        return None
    if setting == "latest":
        found = checkpoints(output_dir)
        damaged = []
        for _step, path in reversed(found):
            problem = checkpoint_problem(path)
            if problem is None:
                for earlier in damaged:
                    warn(f"{earlier}; resuming from {path.name}, the newest intact checkpoint")
                return path
            damaged.append(problem)
        if damaged:
            raise ConfigError(
                f"resume_from_checkpoint latest: no checkpoint in {output_dir} is intact ({'; '.join(damaged)}); "
                "delete the damaged checkpoint folders to start over, or use a new output_dir"
            )
        return None
    path = Path(setting).expanduser()
    for candidate in ([path] if path.is_absolute() else [output_dir / path, path]):
        if (candidate.is_dir() and CHECKPOINT_PATTERN.match(candidate.name)) or (candidate / STATE_NAME).is_file():
            problem = checkpoint_problem(candidate)
            if problem is None:
                return candidate
            intact = next((p.name for _s, p in reversed(checkpoints(candidate.parent)) if p != candidate and checkpoint_problem(p) is None), None)
            other = f"the newest intact checkpoint is {intact}: resume from it" if intact else "no other checkpoint there is intact"
            raise ConfigError(f"resume_from_checkpoint {setting}: {problem}; {other}, or use a new output_dir")
    raise ConfigError(f"resume_from_checkpoint: no checkpoint at '{setting}' (looked in {output_dir} too); use \"latest\" or a checkpoint-STEP folder")


def prune_checkpoints(output_dir: Path, limit: Optional[int]) -> list[Path]:
    """Delete the oldest checkpoints beyond ``checkpoints_total_limit``."""
    found = checkpoints(output_dir)
    if not limit or len(found) <= limit:
        return []
    removed = [path for _step, path in found[: len(found) - limit]]
    for path in removed:
        shutil.rmtree(path)
    return removed


# -- the output folder ---------------------------------------------------------------------------


def check_output_dir(output_dir: Path, *, create: bool, name: str = "output_dir") -> None:
    """A clear error, before any work, when ``output_dir`` cannot hold the run: a file, or a folder that cannot
    be created or written. ``create`` (a real run) makes the folder and writes a probe file there; without
    it (``--dry-run``, which writes nothing; ``lyco sample`` and ``merge``, which create it when they write)
    permissions are read only. ``name``: the setting the message names."""
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(f"{name} {output_dir} is a file; point {name} at a folder (it is created if missing)")
    existing = next((folder for folder in (output_dir, *output_dir.parents) if folder.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"{name} {output_dir}: {existing} is a file, so the folder cannot be created there")
    if not create:
        if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"{name} {output_dir} is not writable ({existing} does not allow writing); choose another folder")
        return
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=output_dir):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        verb = "is not writable" if output_dir.is_dir() else "cannot be created"
        raise ConfigError(f"{name} {output_dir} {verb} ({reason}); choose a folder you can write to") from None


def check_fresh_output(output_dir: Path, resume: Optional[Path]) -> None:
    """A fresh run does not start in a folder that holds an earlier run: its checkpoints would be pruned as
    older than the new ones, a later ``latest`` would pick them, and the adapter would be overwritten."""
    if resume is not None:
        return
    earlier = [path.name for _step, path in checkpoints(output_dir)]
    if (output_dir / WEIGHTS_NAME).is_file():
        earlier.append(WEIGHTS_NAME)
    if earlier:
        shown = ", ".join(earlier[:4]) + (f" and {len(earlier) - 4} more" if len(earlier) > 4 else "")
        raise ConfigError(
            f"output_dir {output_dir} holds an earlier run ({shown}) and this run starts fresh "
            "(resume_from_checkpoint none, or no checkpoint to continue from): choose a new output_dir, "
            "move the earlier run away, or set resume_from_checkpoint to \"latest\" to continue it"
        )
