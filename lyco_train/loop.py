"""The training loop, top to bottom: processes → caches → model → adapter → optimizer → resume → loop → save.

:func:`train` runs a :class:`~.plan.RunPlan` (made by ``run.prepare_run``). ``train_step`` is one optimizer
step (all its micro-batches, the gradient reduction over processes, clipping, optimizer and schedule); it is
the function a benchmark calls. Everything model-specific goes through the run's
:class:`~.families.base.Family`; everything about several processes is in ``distributed.py``.

No bad state is kept: a non-finite loss, gradient or adapter stops the run at that step, a checkpoint is
written only when the adapter and the optimizer state are finite, and the final adapter only when it is.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from rich.console import Console

from lyco_lint.atomic import write_bytes

from . import caching, distributed, layer_paths, quantize
from .adapter import WEIGHTS_NAME, Adapter, active_ranks, build_adapter, can_batch_masks, sample_masks, save_adapter, timestep_mask
from .checkpoint import NonFiniteState, check_finite, load_checkpoint, non_finite_parameters, save_checkpoint
from .compile import compile_denoiser, compile_errors
from .config import ConfigError
from .data import BatchStream, DataPlan
from .distributed import Share
from .families.base import Family
from .layer_paths import MaskBatchMismatch
from .optim import build_optimizer, build_scheduler, follow_config, hyperparameters, schedule_changes, schedule_settings
from .options import TrainingOptions, torch_dtype
from .plan import RunPlan, prune_checkpoints
from .prefetch import Reader
from .report import CURVE_NAME, TrainingLog, draw_loss_curve
from .trackers import open_trackers
from .validation import Validator


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
    say: Callable[[str], None] = print
    compiled: Any = None  # compile.Compiled: the compiled blocks, when dynamo_backend is set
    reader: Optional[Reader] = None  # prefetch.Reader: cache files kept and read ahead


@dataclass
class StepResult:
    loss: float  # the mean over the step's samples (all processes)
    grad_norm: float
    lr: float
    timesteps: list[float]
    samples: int
    peak_gib: Optional[float] = None  # the accelerator's peak allocated memory in this step (CUDA), GiB


class NonFiniteLoss(Exception):
    def __init__(self, what: str, evidence: list[str]):
        super().__init__(what)
        self.what, self.evidence = what, evidence


def train(run: RunPlan, console: Console) -> int:
    """Train the run to its last step and write the adapter; 1 when a non-finite state stops it. In a run of
    several processes every process calls this; only the main one prints and writes."""
    config, options, total_steps = run.config, run.config.options, run.steps.total_steps
    accelerator = distributed.make_accelerator(options.mixed_precision, run.launch)
    run = replace(run, seed=distributed.shared_seed(accelerator, run.seed))
    distributed.quiet_unless_main(accelerator)
    main = accelerator.is_main_process
    say = (lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)) if main else (lambda _text: None)
    output_dir = config.output_dir
    parts, generator = prepare(run, say, accelerator)
    distributed.check_same_run(accelerator, {"resume": str(run.resume), "steps": total_steps, "samples": len(run.data.samples), "seed": run.seed})

    # resume: adapter, optimizer moments, random state and data position; the schedule follows the config
    state = {"global_step": 0, "epoch": 0, "batch_in_epoch": 0}
    if run.resume is not None:
        state, changes = resume(run, parts, generator)
        say(f"resumed from {run.resume} at step {state['global_step']}" + (f"; from the config: {', '.join(changes)}" if changes else ""))
    stream = BatchStream(run.data, run.seed, run.micro_batch_size, state["epoch"], state["batch_in_epoch"])
    parts.reader.follow(stream, options.gradient_accumulation_steps)  # cache files read ahead of each step
    last_good = run.resume

    def stop(step: int, failure: NonFiniteLoss) -> int:
        log.record_failure(step, failure.what)
        say(non_finite_message(options, step, failure, last_good))
        distributed.finish(accelerator)
        return 1

    # the loop
    step = state["global_step"]
    interval = options.checkpoint_step_interval if options.checkpoint_step_interval and options.checkpoint_step_interval > 0 else 0
    with TrainingLog(output_dir, total_steps, step, console, enabled=main) as log, open_trackers(run, enabled=main) as trackers:
        validator = Validator(run, parts, trackers, console, log.progress)  # validation images: validation.py
        validator.startup(step)
        while step < total_steps:
            micro_batches = [stream.next() for _ in range(options.gradient_accumulation_steps)]
            try:
                result = train_step(parts, micro_batches, generator)
                if interval and (step + 1) % interval == 0:
                    check_finite(parts.adapter, parts.optimizer)  # every process: the same state, the same decision
            except (NonFiniteLoss, NonFiniteState) as failure:
                return stop(step + 1, failure if isinstance(failure, NonFiniteLoss) else NonFiniteLoss(str(failure), []))
            step += 1
            log.record(step, loss=result.loss, lr=result.lr, grad_norm=result.grad_norm, epoch=stream.epoch,
                       timestep=sum(result.timesteps) / len(result.timesteps), samples=result.samples,
                       **({"peak_memory_gib": round(result.peak_gib, 3)} if result.peak_gib is not None else {}))
            trackers.log(step, loss=result.loss, lr=result.lr, grad_norm=result.grad_norm)
            if interval and step % interval == 0:
                last_good = output_dir / f"checkpoint-{step}"
                if main:
                    training_state = {
                        "global_step": step, **stream.position(), "seed": run.seed, "micro_batch_size": run.micro_batch_size,
                        "processes": accelerator.num_processes, "schedule": schedule_settings(options, total_steps, accelerator.num_processes),
                        "lyco_version": lyco_version(),
                    }
                    save_checkpoint(
                        output_dir, step, adapter=parts.adapter, optimizer=parts.optimizer,
                        generator=generator, training_state=training_state, lycoris_path=config.lycoris_path,
                        metadata=weights_metadata(run, step),
                    )
                    prune_checkpoints(output_dir, options.checkpoints_total_limit)
                    draw_loss_curve(log.rows, output_dir / CURVE_NAME)
            validator.after_step(step)

    # the result: written only when finite
    problem = non_finite_parameters(parts.adapter)
    if problem:
        return stop(step, NonFiniteLoss(problem, []))
    if main:
        save_adapter(parts.adapter, output_dir / WEIGHTS_NAME, weights_metadata(run, step))
        write_bytes(output_dir / "lycoris_config.json", config.lycoris_path.read_bytes())
        draw_loss_curve(log.rows, output_dir / CURVE_NAME)
        final = log.rows[-1]["smoothed_loss"] if log.rows else float("nan")
        say(f"done: {step} steps, smoothed loss {final:.4f}; adapter written to {output_dir / WEIGHTS_NAME}")
    distributed.finish(accelerator)
    return 0


def resume(run: RunPlan, parts: Parts, generator: torch.Generator) -> tuple[dict, list[str]]:
    """Load the checkpoint into every process: the adapter, the optimizer's moments, the random state and the
    data position. The learning rate, schedule and optimizer settings stay the config's (SimpleTuner keeps
    the configured learning rate too); returns the training state and what the config changed."""
    path, options, processes = run.resume, run.config.options, parts.accelerator.num_processes
    configured = hyperparameters(parts.optimizer)
    try:
        state = load_checkpoint(path, adapter=parts.adapter, optimizer=parts.optimizer, generator=generator)
    except ConfigError:
        raise
    except Exception as error:  # torch, safetensors and LyCORIS raise many types for a checkpoint that does not fit
        raise ConfigError(
            f"cannot resume from {path}: {type(error).__name__}: {error}; it was written by a different config (optimizer, "
            "LyCORIS config or model): resume with that config, or set resume_from_checkpoint to \"none\" / use a new output_dir"
        ) from None
    changes = follow_config(parts.optimizer, configured)
    current = schedule_settings(options, run.steps.total_steps, processes)
    saved = state.get("schedule") or saved_schedule(path)
    changes = schedule_changes(saved, current) + changes
    parts.scheduler = build_scheduler(parts.optimizer, options, run.steps.total_steps, step=state["global_step"], processes=processes)
    return state, changes


def saved_schedule(path: Path) -> dict:
    """The learning rate of a checkpoint written before checkpoints recorded their schedule settings."""
    old = path / "scheduler.json"
    if not old.is_file():
        return {}
    base_lrs = json.loads(old.read_text(encoding="utf-8")).get("base_lrs") or [None]
    return {"effective_learning_rate": base_lrs[0]}


def prepare(run: RunPlan, say: Callable[[str], None], accelerator=None) -> tuple[Parts, torch.Generator]:
    """Caches, frozen (quantized, sharded) denoiser, adapter, optimizer and schedule: everything ``train_step``
    needs, fresh."""
    config, options, family, seed = run.config, run.config.options, run.family, run.seed
    accelerator = accelerator or distributed.make_accelerator(options.mixed_precision, run.launch)
    device = accelerator.device
    weight_dtype = torch_dtype(options.weight_dtype_name)

    # caches first: encode what is missing (split over the processes), then the encoders are gone
    cache = distributed.build_caches_once(config, run.data, family, accelerator, say)
    say(f"caches: {cache.images_encoded} image(s) encoded, {cache.images_cached} reused; "
        f"{cache.prompts_encoded} prompt(s) encoded, {cache.prompts_cached} reused")

    # the frozen base: loaded on the CPU when it is sharded (FSDP moves each shard) or quantized there
    sharded = distributed.fsdp_requested() and accelerator.num_processes > 1
    on_cpu = sharded or (options.base_model_precision != "no_change" and options.quantize_via == "cpu")
    denoiser = family.load_denoiser(options, weight_dtype, torch.device("cpu") if on_cpu else device)
    denoiser.requires_grad_(False)
    denoiser.train()
    if options.gradient_checkpointing:
        denoiser.enable_gradient_checkpointing()
    if options.base_model_precision != "no_change":
        say(quantize.quantize_base(denoiser, options.base_model_precision).describe())
        if on_cpu and not sharded:
            denoiser.to(device)
    adapter = build_adapter(
        denoiser, config.lycoris, seed=seed, device=device, max_timestep=family.num_train_timesteps,
        quantized=options.base_model_precision if options.base_model_precision != "no_change" else None,
    )
    if sharded:
        distributed.shard_denoiser(denoiser, accelerator, say)  # after LyCORIS has read the whole weights
    params = adapter.parameters()
    say(f"adapter: {adapter.config.get('algo', 'lora')}, {len(adapter.network.loras)} modules, "
        f"{sum(p.numel() for p in params):,} trainable parameters (float32)")
    parts = Parts(options, family, run.data, denoiser, adapter, None, None, accelerator, weight_dtype, params, say,
                  reader=Reader(run.data, options.caption_dropout_probability))
    adapter.path_choice = choose_paths(parts, run.adapter_path, sharded)
    say(adapter.path_choice.describe())
    parts.compiled = compile_denoiser(denoiser, adapter.network, options, accelerator.autocast, say)
    if parts.compiled is not None:
        say(parts.compiled.description)
    parts.optimizer = build_optimizer(params, options, accelerator.num_processes)
    parts.scheduler = build_scheduler(parts.optimizer, options, run.steps.total_steps, processes=accelerator.num_processes)
    generator = torch.Generator().manual_seed(seed)  # noise, timesteps, captions: CPU-drawn, device-independent
    return parts, generator


def choose_paths(parts: Parts, setting: str, sharded: bool):
    """The forward path of each adapted layer (``layer_paths``): measured on a probe forward of a batch like
    the run's, then the main process's choice on every process (the same numbers everywhere)."""
    options = parts.options
    quantized = options.base_model_precision if options.base_model_precision != "no_change" else None
    network = parts.adapter.network
    choice = layer_paths.choose(
        network, setting, quantized=quantized, sharded=sharded, device=parts.accelerator.device, autocast=parts.accelerator.autocast,
        shapes=lambda: layer_paths.input_shapes(parts.denoiser, network.loras, lambda: probe_forward(parts)),
    )
    paths = distributed.from_main(parts.accelerator, choice.paths)
    if paths != choice.paths:
        choice.paths = paths
        for index, (lora, path) in enumerate(zip(network.loras, paths)):
            layer_paths.install(lora, None if index in choice.fixed else path)
    return choice


def probe_forward(parts: Parts) -> None:
    """One forward (the caller turns gradients off) on ``train_batch_size`` samples of the largest bucket, with
    noise from a generator of its own: the input shapes each adapted layer sees in training."""
    options, family, device, plan = parts.options, parts.family, parts.accelerator.device, parts.data
    bucket = max(plan.buckets.values(), key=len)
    indices = (bucket * options.train_batch_size)[: options.train_batch_size]
    generator = torch.Generator().manual_seed(0)  # not the run's: its numbers stay as they are
    latents, prompt_embeds, conditioning, _sources = load_batch(plan, indices, generator, 0.0, family, options)
    levels = family.sample_noise_levels(options, latents, generator)
    noisy = family.noisy_input(options, latents, family.sample_noise(options, latents, generator), levels)
    with parts.accelerator.autocast():
        family.predict(
            parts.denoiser, noisy.to(device, parts.weight_dtype), {name: t.to(device, parts.weight_dtype) for name, t in prompt_embeds.items()},
            {name: t.to(device) for name, t in conditioning.items()}, levels.to(device), options, generator,
        )


# -- one optimizer step --------------------------------------------------------------------------


def train_step(parts: Parts, micro_batches: list[list[int]], generator: torch.Generator) -> StepResult:
    """Forward and backward over this process's share of each global micro-batch, sum the gradients over the
    processes, clip, step the optimizer and the schedule, check the adapter. Each sample counts 1 / (samples
    in the step), so micro-batches of different sizes (the end of a bucket) are weighted by their samples."""
    options, optimizer, accelerator = parts.options, parts.optimizer, parts.accelerator
    cuda = accelerator.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(accelerator.device)
    optimizer.zero_grad(set_to_none=True)
    if parts.reader is not None:
        parts.reader.read_ahead()  # the next step's files, while this one computes
    shares = distributed.split_step([len(indices) for indices in micro_batches], accelerator.process_index, accelerator.num_processes)
    loss, timesteps, failures = step_gradients(parts, micro_batches, shares, generator)
    loss = distributed.reduce_gradients(accelerator, parts.params, loss)
    if not math.isfinite(loss):  # the same decision on every process: the loss is summed over all of them
        evidence = distributed.gather_lines(accelerator, failures[0].evidence if failures else [])
        raise NonFiniteLoss(failures[0].what if failures else f"loss is {loss}", evidence)
    grad_norm = gradient_norm(parts.params)
    if not math.isfinite(grad_norm):
        raise NonFiniteLoss(f"gradient norm is {grad_norm}", known_hazards(parts) + ["the loss was finite but its gradient overflowed"])
    # the adapter is replicated (not a prepared model): torch's own clipping on its gradients
    if options.max_grad_norm and options.max_grad_norm > 0:
        if options.grad_clip_method == "norm":
            torch.nn.utils.clip_grad_norm_(parts.params, options.max_grad_norm)
        else:  # SimpleTuner's default: clip each gradient value to ±max_grad_norm
            torch.nn.utils.clip_grad_value_(parts.params, options.max_grad_norm)
    lr = optimizer.param_groups[0]["lr"]
    try:
        optimizer.step()
    except RuntimeError as error:
        if "overflow" not in str(error):
            raise
        raise NonFiniteLoss("optimizer step overflowed float32", [f"{error}: learning_rate {options.learning_rate:g} is too large"]) from None
    parts.scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    problem = non_finite_parameters(parts.adapter, parts.params)
    if problem:
        raise NonFiniteLoss(problem, [f"the loss and gradients were finite: the optimizer step (lr {lr:g}) made the adapter overflow"])
    peak = torch.cuda.max_memory_allocated(accelerator.device) / 2**30 if cuda else None
    return StepResult(loss, grad_norm, lr, timesteps, sum(len(indices) for indices in micro_batches), peak)


def step_gradients(parts: Parts, micro_batches: list[list[int]], shares: list[Share], generator: torch.Generator):
    """Every micro-batch's forward and backward: the step's loss on this process, its timesteps and failures.
    A compilation that fails here (it happens at the first call of a compiled block, before anything is
    applied) turns compilation off for the run and the step is redone eagerly from the same random state."""
    start = generator.get_state()
    try:
        return accumulate_all(parts, micro_batches, shares, generator)
    except Exception as error:
        if parts.compiled is None or not parts.compiled.active or not isinstance(error, compile_errors()):
            raise
        parts.compiled.undo()
        first = (str(error).strip().splitlines() or [""])[0][:200]
        parts.say(f"note: torch.compile failed ({type(error).__name__}: {first}); training eagerly from here on")
        parts.optimizer.zero_grad(set_to_none=True)
        generator.set_state(start)
        return accumulate_all(parts, micro_batches, shares, generator)


def accumulate_all(parts: Parts, micro_batches: list[list[int]], shares: list[Share], generator: torch.Generator):
    loss, timesteps, failures = 0.0, [], []
    for indices, share in zip(micro_batches, shares):
        part, drawn, failure = accumulate_gradients(parts, indices, generator, share)
        loss += part
        timesteps.extend(drawn)
        failures += [failure] if failure is not None else []
    return loss, timesteps, failures


def accumulate_gradients(parts: Parts, indices: list[int], generator: torch.Generator, share: Share) -> tuple[float, list[float], Optional[NonFiniteLoss]]:
    """One global micro-batch: draw captions, noise levels and noise for all of it (every process draws the same
    numbers, so they do not depend on the process count), then predict and backward this process's rows
    (``share``). Returns this process's part of the step's loss, the micro-batch's timesteps and, when the loss
    was not finite, the failure (its backward still ran: every process runs the same forwards and backwards).

    Each sample's mean squared error is weighted by the family (min-SNR) and by ``share`` (1 / samples in the
    step; 0 for a padding row)."""
    options, family, device = parts.options, parts.family, parts.accelerator.device
    start = generator.get_state()
    latents, prompt_embeds, conditioning, sources = load_batch(
        parts.data, indices, generator, options.caption_dropout_probability, family, options, parts.reader
    )
    levels = family.sample_noise_levels(options, latents, generator)
    noise = family.sample_noise(options, latents, generator)
    drawn = [float(t) for t in family.timesteps(levels)]
    rows = list(share.rows)  # this process's rows of the global micro-batch
    count = len(rows)
    latents, noise, levels = to_device(latents[rows], device), to_device(noise[rows], device), to_device(levels[rows], device)
    prompt_embeds = {name: to_device(tensor[rows], device).to(parts.weight_dtype) for name, tensor in prompt_embeds.items()}
    conditioning = {name: to_device(tensor[rows], device) for name, tensor in conditioning.items()}
    sources = [sources[row] for row in rows]
    sample_weights = torch.tensor(share.weights, device=device)
    noisy = family.noisy_input(options, latents, noise, levels)
    target = family.target(options, latents, noise, levels)
    weights = family.loss_weights(options, levels)
    timesteps = family.timesteps(levels)
    total, failure = 0.0, None
    for group, masks in forward_groups(parts.adapter, [float(t) for t in timesteps]):
        with masks:
            try:
                with parts.accelerator.autocast():
                    prediction = family.predict(
                        parts.denoiser, noisy[group].to(parts.weight_dtype), {name: t[group] for name, t in prompt_embeds.items()},
                        {name: t[group] for name, t in conditioning.items()}, levels[group], options, generator,
                    )
            except MaskBatchMismatch as mismatch:  # nothing ran backward yet: redo this micro-batch one sample at a time
                parts.adapter.batched_masks = False
                parts.say(f"note: T-LoRA masks go one sample at a time from now on ({mismatch})")
                generator.set_state(start)
                return accumulate_gradients(parts, indices, generator, share)
            error = F.mse_loss(prediction.float(), target[group].float(), reduction="none")
            per_sample = error.mean(dim=tuple(range(1, error.ndim)))
            loss = ((per_sample * weights[group].float() if weights is not None else per_sample) * sample_weights[group]).sum()
            value = loss.item()
            parts.accelerator.backward(loss)
            if not math.isfinite(value) and failure is None:
                embeds = [torch.cat([t[row].flatten().float() for t in prompt_embeds.values()]) for row in range(count)]
                failure = NonFiniteLoss(f"loss is {value}", known_hazards(parts) + diagnose(latents, embeds, prediction, sources))
        total += value
    return total, drawn, failure


def known_hazards(parts: Parts) -> list[str]:
    """The family's known causes of a non-finite loss or gradient for this adapter (named before the evidence)."""
    names = {id(module): name for name, module in parts.denoiser.named_modules()}
    adapted = [names.get(id(lora.org_module[0]), lora.lora_name) for lora in parts.adapter.network.loras]
    return parts.family.nan_hazards(parts.adapter.config, adapted)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on the accelerator; on CUDA through pinned memory, copied without blocking the host (it
    goes on queueing the step's work)."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def forward_groups(adapter: Adapter, timesteps: list[float]):
    """The forwards of a micro-batch (row groups) and the T-LoRA mask context of each: one batched forward
    with per-sample masks (or LyCORIS's one mask when every sample has the same ranks); one forward per sample
    only when a T-LoRA module cannot take per-sample masks (a convolution, dropout)."""
    rows = list(range(len(timesteps)))
    if adapter.tlora is None:
        return [(rows, contextlib.nullcontext())]
    if len({active_ranks(adapter, t) for t in timesteps}) == 1:
        return [(rows, timestep_mask(adapter, timesteps[0]))]
    if can_batch_masks(adapter):
        return [(rows, sample_masks(adapter, timesteps))]
    return [([row], timestep_mask(adapter, timesteps[row])) for row in rows]


def load_batch(plan: DataPlan, indices: list[int], generator: torch.Generator, dropout: float, family: Family, options: TrainingOptions,
               reader: Optional[Reader] = None):
    """Cached latents and prompt embeddings of a batch, and the family's per-sample conditioning (SDXL: sizes
    and crop); a caption is drawn per sample, and dropped (the empty prompt) with probability
    ``caption_dropout_probability``. Embeddings are stacked by name. Files come through ``reader`` (kept and
    read ahead, ``prefetch.py``) when given."""
    read = reader.tensors if reader is not None else caching.read_tensors
    latents, embeds, sources, samples = [], [], [], []
    for index in indices:
        sample = plan.samples[index]
        caption = sample.captions[int(torch.randint(len(sample.captions), (1,), generator=generator))]
        if dropout > 0 and float(torch.rand(1, generator=generator)) < dropout:
            caption = ""
        latents.append(read(sample.latent_file)["latents"])
        embeds.append(read(plan.prompt_files[caption]))
        sources.append((sample.latent_file, plan.prompt_files[caption], sample.path))
        samples.append(sample)
    stacked = {name: torch.stack([embed[name] for embed in embeds]) for name in embeds[0]}
    return torch.stack(latents), stacked, family.sample_conditioning(samples, options), sources


def gradient_norm(params: list) -> float:
    grads = [p.grad.detach() for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())) if grads else 0.0


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
        (f"  - low-precision overflow in the base model (mixed_precision {options.mixed_precision}); try \"mixed_precision\": \"no\" to confirm"
         if options.mixed_precision != "no" else "  - the base model already runs in full precision (mixed_precision \"no\"): an overflow there points at its weights or inputs"),
        *([f"  - the quantized base (base_model_precision {options.base_model_precision}); try \"no_change\" to confirm"]
          if options.base_model_precision != "no_change" else []),
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
