"""The training loop, top to bottom: caches → model → adapter → optimizer → resume → loop → save.

:func:`train` runs a :class:`~.plan.RunPlan` (made by ``run.prepare_run``). ``train_step`` is one optimizer
step (all its micro-batches, clipping, optimizer and schedule); it is the function a benchmark calls.
Everything model-specific goes through the run's :class:`~.families.base.Family`.
"""

from __future__ import annotations

import importlib.metadata
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from rich.console import Console

from lyco_lint.atomic import write_bytes

from . import caching
from .adapter import WEIGHTS_NAME, Adapter, build_adapter, save_adapter, timestep_mask
from .checkpoint import load_checkpoint, save_checkpoint
from .config import ConfigError
from .data import BatchStream, DataPlan
from .families.base import Family
from .optim import build_optimizer, build_scheduler
from .options import TrainingOptions
from .plan import RunPlan, prune_checkpoints
from .report import CURVE_NAME, TrainingLog, draw_loss_curve


@dataclass
class Parts:
    """Everything one optimizer step touches."""

    options: TrainingOptions
    family: Family
    data: DataPlan
    denoiser: torch.nn.Module
    adapter: Adapter
    optimizer: torch.optim.Optimizer
    scheduler: Any
    accelerator: Any
    weight_dtype: torch.dtype
    params: list


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


def train(run: RunPlan, console: Console) -> int:
    """Train the run to its last step and write the adapter; 1 when a non-finite loss stops it."""
    say = lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    config, options, resume, total_steps = run.config, run.config.options, run.resume, run.steps.total_steps
    output_dir = config.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    parts, generator = prepare(run, say)

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
    stream = BatchStream(run.data, run.seed, options.train_batch_size, state["epoch"], state["batch_in_epoch"])
    last_good = resume

    # the loop
    step = state["global_step"]
    with TrainingLog(output_dir, total_steps, step, console) as log:
        while step < total_steps:
            micro_batches = [stream.next() for _ in range(options.gradient_accumulation_steps)]
            try:
                result = train_step(parts, micro_batches, generator)
            except NonFiniteLoss as failure:
                log.record_failure(step + 1, failure.what)
                say(non_finite_message(options, step + 1, failure, last_good))
                return 1
            step += 1
            log.record(step, loss=result.loss, lr=result.lr, grad_norm=result.grad_norm, epoch=stream.epoch,
                       timestep=sum(result.timesteps) / len(result.timesteps))
            interval = options.checkpoint_step_interval
            if interval and interval > 0 and step % interval == 0:
                training_state = {"global_step": step, **stream.position(), "seed": run.seed, "lyco_version": lyco_version()}
                last_good = save_checkpoint(
                    output_dir, step, adapter=parts.adapter, optimizer=parts.optimizer, scheduler=parts.scheduler,
                    generator=generator, training_state=training_state, lycoris_path=config.lycoris_path,
                    metadata=weights_metadata(run, step),
                )
                prune_checkpoints(output_dir, options.checkpoints_total_limit)
                draw_loss_curve(log.rows, output_dir / CURVE_NAME)

    # the result
    save_adapter(parts.adapter, output_dir / WEIGHTS_NAME, weights_metadata(run, step))
    write_bytes(output_dir / "lycoris_config.json", config.lycoris_path.read_bytes())
    draw_loss_curve(log.rows, output_dir / CURVE_NAME)
    final = log.rows[-1]["smoothed_loss"] if log.rows else float("nan")
    say(f"done: {step} steps, smoothed loss {final:.4f}; adapter written to {output_dir / WEIGHTS_NAME}")
    return 0


def prepare(run: RunPlan, say: Callable[[str], None]) -> tuple[Parts, torch.Generator]:
    """Caches, frozen denoiser, adapter, optimizer and schedule: everything ``train_step`` needs, fresh."""
    config, options, family, seed = run.config, run.config.options, run.family, run.seed
    accelerator = make_accelerator(options.mixed_precision)
    device = accelerator.device
    weight_dtype = torch.bfloat16 if options.mixed_precision == "bf16" else torch.float32

    # caches first: encode what is missing, then the encoders are gone
    cache = caching.build_caches(config, run.data, family, device, say)
    say(f"caches: {cache.images_encoded} image(s) encoded, {cache.images_cached} reused; "
        f"{cache.prompts_encoded} prompt(s) encoded, {cache.prompts_cached} reused")

    denoiser = family.load_denoiser(options, weight_dtype, device)
    denoiser.requires_grad_(False)
    denoiser.train()
    if options.gradient_checkpointing:
        denoiser.enable_gradient_checkpointing()
    adapter = build_adapter(denoiser, config.lycoris, seed=seed, device=device, max_timestep=family.num_train_timesteps)
    params = adapter.parameters()
    say(f"adapter: {adapter.config.get('algo', 'lora')}, {len(adapter.network.loras)} modules, "
        f"{sum(p.numel() for p in params):,} trainable parameters (float32)")
    optimizer = build_optimizer(params, options)
    scheduler = build_scheduler(optimizer, options, run.steps.total_steps)
    generator = torch.Generator().manual_seed(seed)  # noise, timesteps, captions: CPU-drawn, device-independent
    return Parts(options, family, run.data, denoiser, adapter, optimizer, scheduler, accelerator, weight_dtype, params), generator


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
    options, optimizer = parts.options, parts.optimizer
    optimizer.zero_grad(set_to_none=True)
    losses, timesteps = [], []
    for indices in micro_batches:
        loss, batch_timesteps = accumulate_gradients(parts, indices, generator, scale=1.0 / len(micro_batches))
        losses.append(loss)
        timesteps.extend(batch_timesteps)
    grad_norm = gradient_norm(parts.params)
    if not math.isfinite(grad_norm):
        raise NonFiniteLoss(f"gradient norm is {grad_norm}", ["the loss was finite but its gradient overflowed"])
    if options.max_grad_norm and options.max_grad_norm > 0:
        if options.grad_clip_method == "norm":
            parts.accelerator.clip_grad_norm_(parts.params, options.max_grad_norm)
        else:  # SimpleTuner's default: clip each gradient value to ±max_grad_norm
            parts.accelerator.clip_grad_value_(parts.params, options.max_grad_norm)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    parts.scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(sum(losses) / len(losses), grad_norm, lr, timesteps)


def accumulate_gradients(parts: Parts, indices: list[int], generator: torch.Generator, scale: float) -> tuple[float, list[float]]:
    """One micro-batch: draw noise levels and noise, predict, backward. Returns its loss and timesteps.

    The loss is the mean over samples of each sample's mean squared error, weighted per sample where the
    family weights it (min-SNR)."""
    options, family, device = parts.options, parts.family, parts.accelerator.device
    latents, prompt_embeds, conditioning, sources = load_batch(parts.data, indices, generator, options.caption_dropout_probability, family, options)
    count = latents.shape[0]
    levels = family.sample_noise_levels(options, latents, generator)
    noise = family.sample_noise(options, latents, generator)
    latents, noise, levels = latents.to(device), noise.to(device), levels.to(device)
    prompt_embeds = {name: tensor.to(device, parts.weight_dtype) for name, tensor in prompt_embeds.items()}
    conditioning = {name: tensor.to(device) for name, tensor in conditioning.items()}
    noisy = family.noisy_input(options, latents, noise, levels)
    target = family.target(options, latents, noise, levels)
    weights = family.loss_weights(options, levels)
    timesteps = family.timesteps(levels)
    # T-LoRA takes one rank mask per forward: samples with different timesteps go through one at a time.
    groups = [[i] for i in range(count)] if parts.adapter.tlora is not None and count > 1 else [list(range(count))]
    total = 0.0
    for group in groups:
        with timestep_mask(parts.adapter, float(timesteps[group[0]])):
            with parts.accelerator.autocast():
                prediction = family.predict(
                    parts.denoiser, noisy[group].to(parts.weight_dtype), {name: t[group] for name, t in prompt_embeds.items()},
                    {name: t[group] for name, t in conditioning.items()}, levels[group], options, generator,
                )
            error = F.mse_loss(prediction.float(), target[group].float(), reduction="none")
            per_sample = error.mean(dim=tuple(range(1, error.ndim)))
            loss = (per_sample * weights[group].float() if weights is not None else per_sample).mean()
            value = loss.item()
            if not math.isfinite(value):
                rows = [torch.cat([t[row].flatten().float() for t in prompt_embeds.values()]) for row in range(count)]
                names = {id(module): name for name, module in parts.denoiser.named_modules()}
                adapted = [names.get(id(lora.org_module[0]), lora.lora_name) for lora in parts.adapter.network.loras]
                hazards = family.nan_hazards(parts.adapter.config, adapted)  # named first: the family's known causes
                raise NonFiniteLoss(f"loss is {value}", hazards + diagnose(latents, rows, prediction, sources))
            parts.accelerator.backward(loss * (len(group) / count) * scale)
        total += value * len(group) / count
    return total, [float(t) for t in timesteps]


def load_batch(plan: DataPlan, indices: list[int], generator: torch.Generator, dropout: float, family: Family, options: TrainingOptions):
    """Cached latents and prompt embeddings of a batch, and the family's per-sample conditioning (SDXL: sizes
    and crop); a caption is drawn per sample, and dropped (the empty prompt) with probability
    ``caption_dropout_probability``. Embeddings are stacked by name."""
    latents, embeds, sources, samples = [], [], [], []
    for index in indices:
        sample = plan.samples[index]
        caption = sample.captions[int(torch.randint(len(sample.captions), (1,), generator=generator))]
        if dropout > 0 and float(torch.rand(1, generator=generator)) < dropout:
            caption = ""
        latents.append(caching.read_tensor(sample.latent_file, "latents"))
        embeds.append(caching.read_tensors(plan.prompt_files[caption]))
        sources.append((sample.latent_file, plan.prompt_files[caption], sample.path))
        samples.append(sample)
    stacked = {name: torch.stack([embed[name] for embed in embeds]) for name in embeds[0]}
    return torch.stack(latents), stacked, family.sample_conditioning(samples, options), sources


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


def non_finite_message(options: TrainingOptions, step: int, failure: NonFiniteLoss, last_good: Optional[Path]) -> str:
    kept = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written before it"
    lines = [f"error: training stopped at step {step}: the {failure.what}. Nothing from this step was saved; {kept}."]
    lines += [f"  found: {item}" for item in failure.evidence]
    lines += [
        "  likely causes:",
        f"  - learning rate too high for this adapter (learning_rate {options.learning_rate}); lower it",
        f"  - low-precision overflow in the base model (mixed_precision {options.mixed_precision}); try \"mixed_precision\": \"no\" to confirm",
        "  - LyCORIS targets that are known NaN hazards (LYC304: SDXL FeedForward; LYC305/LYC306: SageAttention in training); run `lyco lint`",
        f"  - gradient clipping off or loose (max_grad_norm {options.max_grad_norm}, {options.grad_clip_method})",
        "  - non-finite values in the cached latents/embeddings or the base weights (delete the caches to re-encode)",
    ]
    return "\n".join(lines)


def lyco_version() -> str:
    try:
        return importlib.metadata.version("lyco")
    except importlib.metadata.PackageNotFoundError:
        from lyco_lint import __version__

        return __version__


def weights_metadata(run: RunPlan, step: int) -> dict[str, str]:
    """The safetensors metadata of saved weights: versions, base model, step."""
    options, family = run.config.options, run.family
    return {
        "lyco_version": lyco_version(),
        "lycoris_version": importlib.metadata.version("lycoris-lora"),
        "model_family": family.name,
        "model_flavour": family.flavour(options),
        "base_model": str(family.model_root(options)),
        "global_step": str(step),
        "validation_lycoris_strength": str(options.validation_lycoris_strength),
    }
