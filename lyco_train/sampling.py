"""Rendering with a family's diffusers pipeline and the adapter as trained: validation and ``lyco sample``.

* :func:`render` — one prompt's images: the family's pipeline inputs (``Family.pipeline_inputs``), a fresh
  generator from the seed, the call under autocast in the run's dtype (as training computes), the
  progress advanced per denoising step (the pipeline's ``callback_on_step_end``).
* :func:`tlora_masks` — T-LoRA at inference as in training: a forward pre-hook on the denoiser reads the
  ``timestep`` argument of every call the pipeline makes (the conditional and the negative-prompt pass of
  each step alike), maps it to the 0–``num_train_timesteps`` scale with ``Family.timesteps`` (the function
  training uses on the same denoiser input) and sets that timestep's rank mask (``adapter.timestep_mask``:
  the same formula and scale as training); a forward hook clears it after the call.
* :func:`adapter_strength` — the network's multiplier for the render, restored afterwards.
* :func:`inference` — the denoiser and the network in eval mode without gradients, their modes restored.
* :func:`independent_random_state` — the global random state (torch CPU and CUDA, Python, NumPy) restored
  after the render, so a training run's numbers never depend on its validations.
"""

from __future__ import annotations

import contextlib
import inspect
import random
from typing import Callable, Iterator, Optional


def render(
    family,
    options,
    pipeline,
    prompt_embeds: dict,
    negative_embeds: Optional[dict],
    *,
    width: int,
    height: int,
    count: int,
    steps: int,
    seed: Optional[int],
    device,
    dtype,
    adapter=None,
    on_step: Optional[Callable[[], None]] = None,
) -> list:
    """``count`` images of one prompt (its embeddings: one row per tensor, as cached) at ``width`` × ``height``."""
    import torch

    def batch(embeds: Optional[dict]) -> Optional[dict]:
        return None if embeds is None else {name: tensor.unsqueeze(0).to(device, dtype) for name, tensor in embeds.items()}

    def step_done(_pipeline, _index, _timestep, _tensors) -> dict:
        if on_step is not None:
            on_step()
        return {}

    inputs = family.pipeline_inputs(options, batch(prompt_embeds), batch(negative_embeds))
    pipeline.set_progress_bar_config(disable=True)
    with tlora_masks(pipeline_denoiser(pipeline), adapter, family), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        output = pipeline(
            **inputs, width=width, height=height, num_inference_steps=steps, num_images_per_prompt=count,
            generator=make_generator(seed, options.validation_seed_source, options.validation_randomize, device),
            callback_on_step_end=step_done, output_type="pil",
        )
    return list(output.images)


def pipeline_denoiser(pipeline):
    return getattr(pipeline, "transformer", None) or pipeline.unet


def make_generator(seed: Optional[int], source: str, randomize: bool, device):
    """A fresh generator: ``seed`` on the CPU (``validation_seed_source: gpu``: on the accelerator), or a random
    seed with ``validation_randomize``."""
    import os

    import torch

    where = device if source == "gpu" and device.type == "cuda" else "cpu"
    chosen = int.from_bytes(os.urandom(4), "little") if randomize or seed is None else seed
    return torch.Generator(device=where).manual_seed(chosen)


@contextlib.contextmanager
def tlora_masks(denoiser, adapter, family) -> Iterator[None]:
    """Set the T-LoRA rank mask of each denoiser call's timestep around the call (nothing for other algos)."""
    if adapter is None or adapter.tlora is None:
        yield
        return
    import torch
    from lycoris.modules.tlora import clear_timestep_mask

    from .adapter import timestep_mask

    signature = inspect.signature(denoiser.forward)
    active: list[contextlib.ExitStack] = []

    def before(_module, args, kwargs) -> None:
        timestep = signature.bind_partial(*args, **kwargs).arguments["timestep"]
        values = family.timesteps(torch.as_tensor(timestep).detach().float().flatten().cpu())
        if not bool((values == values[0]).all()):
            raise RuntimeError(f"one denoiser call with several timesteps ({values.tolist()}): T-LoRA takes one rank mask per call")
        stack = contextlib.ExitStack()
        stack.enter_context(timestep_mask(adapter, float(values[0])))
        active.append(stack)

    def after(_module, _args, _kwargs, _output) -> None:
        while active:
            active.pop().close()

    handles = [denoiser.register_forward_pre_hook(before, with_kwargs=True), denoiser.register_forward_hook(after, with_kwargs=True)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        while active:
            active.pop().close()
        for group in adapter.tlora.group_ids:  # a call that raised never reached its forward hook
            clear_timestep_mask(group)


@contextlib.contextmanager
def adapter_strength(network, strength: float) -> Iterator[None]:
    """The LyCORIS multiplier at ``strength`` (0 renders the base model), then the one it had."""
    before = network.multiplier
    network.set_multiplier(float(strength))
    try:
        yield
    finally:
        network.set_multiplier(before)


@contextlib.contextmanager
def inference(denoiser, network) -> Iterator[None]:
    """No gradients, the denoiser and the LyCORIS modules in eval mode (no dropout), their modes restored."""
    import torch

    modules = [denoiser, *(network.loras if network is not None else [])]
    modes = [{module: module.training for module in root.modules()} for root in modules]
    for root in modules:
        root.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for saved in modes:
            for module, mode in saved.items():
                module.training = mode


@contextlib.contextmanager
def independent_random_state(device) -> Iterator[None]:
    """Whatever the render draws from the global generators, they are as before afterwards."""
    import numpy
    import torch

    python_state, numpy_state = random.getstate(), numpy.random.get_state()
    devices = [device] if getattr(device, "type", "cpu") == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python_state)
            numpy.random.set_state(numpy_state)


@contextlib.contextmanager
def progress(console, title: str, total: int) -> Iterator[Callable[[], None]]:
    """A progress line of ``total`` denoising steps; yields the function that advances it (a no-op without a
    console)."""
    if console is None:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn(title), BarColumn(), MofNCompleteColumn(), TextColumn("denoising steps"), TimeElapsedColumn(), console=console)
    task = bar.add_task(title, total=total)
    with bar:
        yield lambda: bar.advance(task)

