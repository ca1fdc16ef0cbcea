"""A run's plan: how long it is, where it resumes, and the summary printed before training (and by
``--dry-run``); finding, choosing and pruning checkpoint folders. No torch."""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .config import ConfigError, TrainConfig
from .data import DataPlan
from .families.base import Family


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


def plan_steps(config: TrainConfig, data: DataPlan) -> StepPlan:
    """SimpleTuner's arithmetic: max_train_steps wins; otherwise num_train_epochs × steps per epoch."""
    options = config.options
    batches = data.batches_per_epoch(options.train_batch_size)
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
        shape = "centre-cropped squares" if spec.crop else "aspect buckets"
        lines.append(
            f"  {spec.id}: {per_dataset.get(spec.id, 0)} image(s) from {spec.instance_data_dir}, captions {spec.caption_strategy}, "
            f"{spec.resolution:g} {spec.resolution_type}, {shape}, repeats {spec.repeats}, latents in {spec.cache_dir_vae}"
        )
    buckets = ", ".join(f"{w}x{h} ×{len(members)}" for (w, h), members in data.buckets.items())
    lines.append(f"  sizes: {buckets}")
    dropout = options.caption_dropout_probability
    lines.append(f"  prompts: {len(data.prompt_files)} unique{' (incl. the empty prompt for caption dropout %g)' % dropout if dropout > 0 else ''}, embeddings in {config.text_embeds.cache_dir}")
    lines.append(
        f"batch: {options.train_batch_size} × {options.gradient_accumulation_steps} accumulation = "
        f"{options.train_batch_size * options.gradient_accumulation_steps} per step; {steps.batches_per_epoch} batch(es) per epoch"
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
    lines.append(f"output: {config.output_dir}" + (f" (resuming from {run.resume.name})" if run.resume else ""))
    return lines


# -- checkpoint folders --------------------------------------------------------------------------

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    if not output_dir.is_dir():
        return []
    found = []
    for path in output_dir.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and path.is_dir() and (path / "training_state.json").is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def resume_point(output_dir: Path, setting: Optional[str]) -> Optional[Path]:
    """The checkpoint to resume from: ``latest`` (none yet: start fresh), a checkpoint name or a path."""
    if not setting or setting.lower() in ("none", "false"):
        return None
    if setting == "latest":
        found = checkpoints(output_dir)
        return found[-1][1] if found else None
    path = Path(setting).expanduser()
    for candidate in ([path] if path.is_absolute() else [output_dir / path, path]):
        if (candidate / "training_state.json").is_file():
            return candidate
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
