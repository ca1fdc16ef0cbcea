"""How long a run is, and the plan printed before training (and by ``--dry-run``). No torch."""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .config import ConfigError, TrainConfig
from .data import DataPlan


@dataclass(frozen=True)
class StepPlan:
    batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    epochs: int


def plan_steps(config: TrainConfig, plan: DataPlan) -> StepPlan:
    """SimpleTuner's arithmetic: max_train_steps wins; otherwise num_train_epochs × steps per epoch."""
    batches = plan.batches_per_epoch(config.train_batch_size)
    steps_per_epoch = max(1, math.ceil(batches / config.gradient_accumulation_steps))
    total = config.max_train_steps or config.num_train_epochs * steps_per_epoch
    return StepPlan(batches, steps_per_epoch, total, math.ceil(total / steps_per_epoch))


def describe(config: TrainConfig, plan: DataPlan, steps: StepPlan, family_name: str, flavour: str, model: str, resume: Optional[Path], seed: Optional[int]) -> list[str]:
    lines = [f"lyco train: {family_name} {flavour} from {model}"]
    per_dataset: dict[str, int] = {}
    for sample in plan.samples:
        per_dataset[sample.dataset] = per_dataset.get(sample.dataset, 0) + 1
    lines.append(f"data: {len(plan.samples)} image(s) in {len(config.datasets)} dataset(s), {len(plan.skipped)} skipped")
    for spec in config.datasets:
        shape = "centre-cropped squares" if spec.crop else "aspect buckets"
        lines.append(
            f"  {spec.id}: {per_dataset.get(spec.id, 0)} image(s) from {spec.instance_data_dir}, captions {spec.caption_strategy}, "
            f"{spec.resolution:g} {spec.resolution_type}, {shape}, repeats {spec.repeats}, latents in {spec.cache_dir_vae}"
        )
    buckets = ", ".join(f"{w}x{h} ×{len(members)}" for (w, h), members in plan.buckets.items())
    lines.append(f"  sizes: {buckets}")
    dropout = config.caption_dropout_probability
    lines.append(f"  prompts: {len(plan.prompt_files)} unique{' (incl. the empty prompt for caption dropout %g)' % dropout if dropout > 0 else ''}, embeddings in {config.text_embeds.cache_dir}")
    lines.append(
        f"batch: {config.train_batch_size} × {config.gradient_accumulation_steps} accumulation = "
        f"{config.train_batch_size * config.gradient_accumulation_steps} per step; {steps.batches_per_epoch} batch(es) per epoch"
    )
    source = "max_train_steps" if config.max_train_steps else f"{config.num_train_epochs} epoch(s)"
    interval = config.checkpoint_step_interval
    lines.append(
        f"steps: {steps.total_steps} ({source}, about {steps.epochs} epoch(s)); "
        + (f"checkpoint every {interval} steps, keep {config.checkpoints_total_limit}" if interval and interval > 0 else "no intermediate checkpoints")
    )
    lines.append(
        f"optimizer: {config.optimizer}, lr {config.learning_rate:g} {config.lr_scheduler} (warmup {config.lr_warmup_steps}), "
        f"mixed_precision {config.mixed_precision}, gradient_checkpointing {str(config.gradient_checkpointing).lower()}, seed {seed if seed is not None else 'random'}"
    )
    lines.append(f"adapter: {config.lycoris.get('algo', 'lora')} from {config.lycoris_path}")
    lines.append(f"output: {config.output_dir}" + (f" (resuming from {resume.name})" if resume else ""))
    return lines


def print_lines(lines: list[str], say: Callable[[str], None]) -> None:
    for line in lines:
        say(line)


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
