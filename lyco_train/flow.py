"""Rectified flow matching, as SimpleTuner and diffusers' Flux trainers do it (the FLUX.1 and FLUX.2 objective).

``x_σ = (1 − σ)·x₀ + σ·ε`` and the model learns the velocity ``ε − x₀``. σ is drawn per sample as
``sigmoid(flow_sigmoid_scale · N(0, 1))`` (SimpleTuner's default; ``flow_use_uniform_schedule`` draws
``U(0, 1)`` instead), then shifted towards noise with the shift s: ``σ ← s·σ / (1 + (s − 1)·σ)``. The timestep
is ``1000·σ``.

The shift is ``flow_schedule_shift``, or, with ``flow_schedule_auto_shift`` (which wins, as SimpleTuner's
safety check sets the static shift to 0 then), ``exp(μ)`` with μ from diffusers' ``calculate_shift`` over the
image's token count and the scheduler config's base/max sequence lengths and shifts (SimpleTuner's
``apply_flow_schedule_shift`` in helpers/training/custom_schedule.py). ``flux_fast_schedule`` (FLUX.1 schnell)
draws σ from SimpleTuner's fixed list instead: 1.0 seven times in ten, else 0.75, 0.5 or 0.25, unshifted.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

FAST_SCHEDULE_SIGMAS = (1.0,) * 7 + (0.75, 0.5, 0.25)  # SimpleTuner's sample_flow_sigmas, flux_fast_schedule


def sample_sigmas(options: Any, count: int, generator: torch.Generator, auto_shift: Optional[float] = None) -> torch.Tensor:
    """σ per sample from the options' schedule. ``auto_shift`` is the resolution-dependent shift of this batch,
    used only when ``flow_schedule_auto_shift`` is on (see :func:`resolution_shift`)."""
    if getattr(options, "flux_fast_schedule", False):
        picks = torch.randint(len(FAST_SCHEDULE_SIGMAS), (count,), generator=generator)
        return torch.tensor(FAST_SCHEDULE_SIGMAS)[picks]
    if options.flow_use_uniform_schedule:
        sigmas = torch.rand(count, generator=generator)
    else:
        sigmas = torch.sigmoid(options.flow_sigmoid_scale * torch.randn(count, generator=generator))
    shift = auto_shift if options.flow_schedule_auto_shift else options.flow_schedule_shift
    return shift_sigmas(sigmas, shift)


def shift_sigmas(sigmas: torch.Tensor, shift: Optional[float]) -> torch.Tensor:
    if shift is not None and shift > 0:
        sigmas = sigmas * shift / (1 + (shift - 1) * sigmas)
    return sigmas


def resolution_shift(scheduler_config: dict, tokens: int) -> float:
    """``exp(μ)`` for an image of ``tokens`` packed tokens, μ = diffusers' ``calculate_shift`` with the
    scheduler config's (or diffusers' default) base/max image sequence lengths and shifts."""
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    mu = calculate_shift(
        tokens,
        scheduler_config.get("base_image_seq_len", 256),
        scheduler_config.get("max_image_seq_len", 4096),
        scheduler_config.get("base_shift", 0.5),
        scheduler_config.get("max_shift", 1.15),
    )
    return math.exp(mu)


def noisy_input(latents: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    sigma = sigmas.view(-1, *([1] * (latents.ndim - 1))).to(latents.dtype)
    return (1 - sigma) * latents + sigma * noise


def velocity_target(latents: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - latents


def guidance(denoiser, options: Any, batch: int, generator: torch.Generator) -> Optional[torch.Tensor]:
    """The guidance input of guidance-distilled transformers (SimpleTuner's ``flux_guidance_*``: a constant,
    or one uniform draw per sample in ``random-range``); None for a transformer without a guidance embedding."""
    if not getattr(denoiser.config, "guidance_embeds", False):
        return None
    if options.flux_guidance_mode == "random-range":
        low, high = options.flux_guidance_min, options.flux_guidance_max
        values = low + (high - low) * torch.rand(batch, generator=generator)
    else:
        values = torch.full((batch,), float(options.flux_guidance_value))
    return values.to(next(denoiser.parameters()).device)
