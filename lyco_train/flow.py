"""Rectified flow matching, as SimpleTuner and diffusers' Flux trainers do it.

``x_σ = (1 − σ)·x₀ + σ·ε`` and the model learns the velocity ``ε − x₀``. σ is drawn per sample as
``sigmoid(flow_sigmoid_scale · N(0, 1))`` (SimpleTuner's default; ``flow_use_uniform_schedule`` draws
``U(0, 1)`` instead), then shifted towards noise with ``flow_schedule_shift`` s:
``σ ← s·σ / (1 + (s − 1)·σ)``. The timestep is ``1000·σ``.
"""

from __future__ import annotations

import torch


def sample_sigmas(count: int, generator: torch.Generator, *, shift: float | None, sigmoid_scale: float, uniform: bool) -> torch.Tensor:
    if uniform:
        sigmas = torch.rand(count, generator=generator)
    else:
        sigmas = torch.sigmoid(sigmoid_scale * torch.randn(count, generator=generator))
    if shift is not None and shift > 0:
        sigmas = sigmas * shift / (1 + (shift - 1) * sigmas)
    return sigmas


def noisy_input(latents: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    sigma = sigmas.view(-1, *([1] * (latents.ndim - 1))).to(latents.dtype)
    return (1 - sigma) * latents + sigma * noise


def velocity_target(latents: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - latents
