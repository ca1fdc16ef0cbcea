"""The training run, top to bottom: caches → model → adapter → optimizer → resume → loop → save.

``train_step`` is one optimizer step (all its micro-batches, clipping, optimizer and schedule); it is the
function a benchmark calls. Everything model-specific is in the family module (``families/``).
"""

from __future__ import annotations

import importlib.metadata
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from rich.console import Console

from . import caching
from .adapter import WEIGHTS_NAME, Adapter, build_adapter, save_adapter, timestep_mask
from .checkpoint import load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig
from .data import BatchStream, DataPlan
from .optim import build_optimizer, build_scheduler
from .plan import StepPlan, prune_checkpoints
from .report import CURVE_NAME, TrainingLog, draw_loss_curve


@dataclass
class Parts:
    """Everything one optimizer step touches."""

    config: TrainConfig
    family: ModuleType
    plan: DataPlan
    denoiser: torch.nn.Module
    adapter: Adapter
    optimizer: torch.optim.Optimizer
    scheduler: Any
    accelerator: Any
    weight_dtype: torch.dtype
    params: list = field(default_factory=list)


@dataclass
class StepResult:
    loss: float
    grad_norm: float
    lr: float
    timesteps: list[float]


class NonFiniteLoss(Exception):
    def __init__(self, what: str, evidence: list[str]):
        super().__init__(what)
        self.what, self.evidence = what, evidence


def train(config: TrainConfig, plan: DataPlan, family: ModuleType, steps: StepPlan, resume: Optional[Path], seed: int, console: Console) -> int:
    say = lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    output_dir = config.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    parts, generator = prepare(config, plan, family, seed, steps.total_steps, say)

    # resume: adapter, optimizer, schedule, random state and data position
    state = {"global_step": 0, "epoch": 0, "batch_in_epoch": 0}
    if resume is not None:
        try:
            state = load_checkpoint(resume, adapter=parts.adapter, optimizer=parts.optimizer, scheduler=parts.scheduler, generator=generator)
        except (ValueError, KeyError, RuntimeError, OSError) as error:
            raise ConfigError(
                f"cannot resume from {resume}: {error}; it was written by a different config (optimizer, LyCORIS config "
                "or model): resume with that config, or set resume_from_checkpoint to \"none\" / use a new output_dir"
            ) from None
        say(f"resumed from {resume} at step {state['global_step']}")
    stream = BatchStream(plan, seed, config.train_batch_size, state["epoch"], state["batch_in_epoch"])
    last_good = resume

    # the loop
    step = state["global_step"]
    with TrainingLog(output_dir, steps.total_steps, step, console) as log:
        while step < steps.total_steps:
            micro_batches = [stream.next() for _ in range(config.gradient_accumulation_steps)]
            try:
                result = train_step(parts, micro_batches, generator)
            except NonFiniteLoss as failure:
                log.record_failure(step + 1, failure.what)
                say(non_finite_message(config, step + 1, failure, last_good))
                return 1
            step += 1
            log.record(step, loss=result.loss, lr=result.lr, grad_norm=result.grad_norm, epoch=stream.epoch,
                       timestep=sum(result.timesteps) / len(result.timesteps))
            interval = config.checkpoint_step_interval
            if interval and interval > 0 and step % interval == 0:
                training_state = {"global_step": step, **stream.position(), "seed": seed, "lyco_version": lyco_version()}
                last_good = save_checkpoint(
                    output_dir, step, adapter=parts.adapter, optimizer=parts.optimizer, scheduler=parts.scheduler,
                    generator=generator, training_state=training_state, lycoris_path=config.lycoris_path,
                    metadata=weights_metadata(config, family, step),
                )
                prune_checkpoints(output_dir, config.checkpoints_total_limit)
                draw_loss_curve(log.rows, output_dir / CURVE_NAME)

    # the result
    save_adapter(parts.adapter, output_dir / WEIGHTS_NAME, weights_metadata(config, family, step))
    (output_dir / "lycoris_config.json").write_bytes(config.lycoris_path.read_bytes())
    draw_loss_curve(log.rows, output_dir / CURVE_NAME)
    final = log.rows[-1]["smoothed_loss"] if log.rows else float("nan")
    say(f"done: {step} steps, smoothed loss {final:.4f}; adapter written to {output_dir / WEIGHTS_NAME}")
    return 0


def prepare(config: TrainConfig, plan: DataPlan, family: ModuleType, seed: int, total_steps: int, say: Callable[[str], None]) -> tuple[Parts, torch.Generator]:
    """Caches, frozen denoiser, adapter, optimizer and schedule: everything ``train_step`` needs, fresh."""
    accelerator = make_accelerator(config.mixed_precision)
    device = accelerator.device
    weight_dtype = torch.bfloat16 if config.mixed_precision == "bf16" else torch.float32

    # caches first: encode what is missing, then the encoders are gone
    cache = caching.build_caches(config, plan, family, device, say)
    say(f"caches: {cache.images_encoded} image(s) encoded, {cache.images_cached} reused; "
        f"{cache.prompts_encoded} prompt(s) encoded, {cache.prompts_cached} reused")

    denoiser = family.load_denoiser(config, weight_dtype).to(device)
    denoiser.requires_grad_(False)
    denoiser.train()
    if config.gradient_checkpointing:
        denoiser.enable_gradient_checkpointing()
    adapter = build_adapter(
        denoiser, config.lycoris, seed=seed, device=device, family_targets=family.TARGET_CLASSES, max_timestep=family.NUM_TRAIN_TIMESTEPS
    )
    params = adapter.parameters()
    say(f"adapter: {adapter.config.get('algo', 'lora')}, {len(adapter.network.loras)} modules, "
        f"{sum(p.numel() for p in params):,} trainable parameters (float32)")
    optimizer = build_optimizer(params, config)
    scheduler = build_scheduler(optimizer, config, total_steps)
    generator = torch.Generator().manual_seed(seed)  # noise, timesteps, captions: CPU-drawn, device-independent
    return Parts(config, family, plan, denoiser, adapter, optimizer, scheduler, accelerator, weight_dtype, params), generator


def make_accelerator(mixed_precision: str):
    """One-process accelerate; its state is a per-process singleton, reset so runs in one process can differ."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    return Accelerator(mixed_precision=mixed_precision)


# -- one optimizer step --------------------------------------------------------------------------


def train_step(parts: Parts, micro_batches: list[list[int]], generator: torch.Generator) -> StepResult:
    """Forward and backward over the micro-batches, clip, step the optimizer and the schedule."""
    config, optimizer = parts.config, parts.optimizer
    optimizer.zero_grad(set_to_none=True)
    losses, timesteps = [], []
    for indices in micro_batches:
        loss, batch_timesteps = accumulate_gradients(parts, indices, generator, scale=1.0 / len(micro_batches))
        losses.append(loss)
        timesteps.extend(batch_timesteps)
    grad_norm = gradient_norm(parts.params)
    if not math.isfinite(grad_norm):
        raise NonFiniteLoss(f"gradient norm is {grad_norm}", ["the loss was finite but its gradient overflowed"])
    if config.max_grad_norm and config.max_grad_norm > 0:
        if config.grad_clip_method == "norm":
            parts.accelerator.clip_grad_norm_(parts.params, config.max_grad_norm)
        else:  # SimpleTuner's default: clip each gradient value to ±max_grad_norm
            parts.accelerator.clip_grad_value_(parts.params, config.max_grad_norm)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    parts.scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(sum(losses) / len(losses), grad_norm, lr, timesteps)


def accumulate_gradients(parts: Parts, indices: list[int], generator: torch.Generator, scale: float) -> tuple[float, list[float]]:
    """One micro-batch: draw noise and timesteps, predict, backward. Returns its loss and timesteps."""
    config, family, device = parts.config, parts.family, parts.accelerator.device
    latents, prompt_embeds, sources = load_batch(parts.plan, indices, generator, config.caption_dropout_probability)
    count = latents.shape[0]
    sigmas = family.sample_sigmas(config, count, generator)
    noise = torch.randn(latents.shape, generator=generator)
    latents, noise, prompt_embeds = latents.to(device), noise.to(device), prompt_embeds.to(device, parts.weight_dtype)
    noisy = family.noisy_input(latents, noise, sigmas.to(device))
    target = family.target(latents, noise)
    timesteps = family.timesteps(sigmas)
    # T-LoRA takes one rank mask per forward: samples with different timesteps go through one at a time.
    groups = [[i] for i in range(count)] if parts.adapter.tlora is not None and count > 1 else [list(range(count))]
    total = 0.0
    for group in groups:
        with timestep_mask(parts.adapter, float(timesteps[group[0]])):
            with parts.accelerator.autocast():
                prediction = family.predict(
                    parts.denoiser, noisy[group].to(parts.weight_dtype), prompt_embeds[group], sigmas[group], config, generator
                )
            loss = F.mse_loss(prediction.float(), target[group].float())
            value = loss.item()
            if not math.isfinite(value):
                raise NonFiniteLoss(f"loss is {value}", diagnose(latents, prompt_embeds, prediction, sources))
            parts.accelerator.backward(loss * (len(group) / count) * scale)
        total += value * len(group) / count
    return total, [float(t) for t in timesteps]


def load_batch(plan: DataPlan, indices: list[int], generator: torch.Generator, dropout: float):
    """Cached latents and prompt embeddings of a batch; a caption is drawn per sample, and dropped (the
    empty prompt) with probability ``caption_dropout_probability``."""
    latents, embeds, sources = [], [], []
    for index in indices:
        sample = plan.samples[index]
        caption = sample.captions[int(torch.randint(len(sample.captions), (1,), generator=generator))]
        if dropout > 0 and float(torch.rand(1, generator=generator)) < dropout:
            caption = ""
        latents.append(caching.read_tensor(sample.latent_file, "latents"))
        embeds.append(caching.read_tensor(plan.prompt_files[caption], "prompt_embeds"))
        sources.append((sample.latent_file, plan.prompt_files[caption], sample.path))
    return torch.stack(latents), torch.stack(embeds), sources


def gradient_norm(params: list) -> float:
    norms = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


# -- failure and output metadata -----------------------------------------------------------------


def diagnose(latents, prompt_embeds, prediction, sources) -> list[str]:
    found = []
    for row, (latent_file, embed_file, image) in enumerate(sources):
        if not torch.isfinite(latents[row]).all():
            found.append(f"the cached latents of {image} contain NaN/inf: delete {latent_file} and run again")
        if not torch.isfinite(prompt_embeds[row]).all():
            found.append(f"the cached prompt embedding {embed_file} contains NaN/inf: delete it and run again")
    if not found and not torch.isfinite(prediction).all():
        found.append("the inputs were finite but the model's prediction was not (base weights, precision or adapter)")
    return found


def non_finite_message(config: TrainConfig, step: int, failure: NonFiniteLoss, last_good: Optional[Path]) -> str:
    kept = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written before it"
    lines = [f"error: training stopped at step {step}: the {failure.what}. Nothing from this step was saved; {kept}."]
    lines += [f"  found: {item}" for item in failure.evidence]
    lines += [
        "  likely causes:",
        f"  - learning rate too high for this adapter (learning_rate {config.learning_rate}); lower it",
        f"  - low-precision overflow in the base model (mixed_precision {config.mixed_precision}); try \"mixed_precision\": \"no\" to confirm",
        "  - LyCORIS targets that are known NaN hazards (LYC304: SDXL FeedForward; LYC305/LYC306: SageAttention in training); run `lyco lint`",
        f"  - gradient clipping off or loose (max_grad_norm {config.max_grad_norm}, {config.grad_clip_method})",
        "  - non-finite values in the cached latents/embeddings or the base weights (delete the caches to re-encode)",
    ]
    return "\n".join(lines)


def lyco_version() -> str:
    try:
        return importlib.metadata.version("lyco")
    except importlib.metadata.PackageNotFoundError:
        from lyco_lint import __version__

        return __version__


def weights_metadata(config: TrainConfig, family: ModuleType, step: int) -> dict[str, str]:
    return {
        "lyco_version": lyco_version(),
        "lycoris_version": importlib.metadata.version("lycoris-lora"),
        "model_family": family.NAME,
        "model_flavour": family.flavour(config),
        "base_model": str(family.model_root(config)),
        "global_step": str(step),
        "validation_lycoris_strength": str(config.validation_lycoris_strength),
    }
