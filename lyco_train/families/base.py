"""The contract between the trainer and a model family: everything that differs between models.

The trainer (``run.py``, ``caching.py``, ``loop.py``) talks to a family only through these members. The
first group is torch-free (the data plan and ``--dry-run`` use it); the loaders, encoders and the
objective import torch, diffusers or transformers inside the methods that need them.

Tensors are torch tensors; ``options`` is the run's :class:`~lyco_train.options.TrainingOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from ..options import TrainingOptions


@runtime_checkable
class Family(Protocol):
    """A model family lyco train can train (one class per family, registered in ``families/__init__.py``)."""

    # -- identity and choices (no torch) ------------------------------------------------------------

    @property
    def name(self) -> str:
        """The ``model_family`` value this family trains (SimpleTuner's name)."""

    @property
    def num_train_timesteps(self) -> int:
        """The timestep scale of :meth:`timesteps` (T-LoRA masks and metrics use it)."""

    def flavour(self, options: TrainingOptions) -> str:
        """The ``model_flavour`` trained: the one set, or SimpleTuner's default flavour of the family."""

    def model_root(self, options: TrainingOptions) -> str:
        """Where the pipeline is loaded from: ``pretrained_model_name_or_path`` or the flavour's hub id."""

    def check(self, options: TrainingOptions) -> None:
        """Raise :class:`~lyco_train.config.ConfigError` (with the fix) for flavours or options it cannot train."""

    def pixel_multiple(self, options: TrainingOptions) -> int:
        """Image sides must be multiples of this (the VAE's downscale times any patching)."""

    def latent_identity(self, options: TrainingOptions) -> str:
        """What the cached latents depend on (VAE files, dtype); part of every latent cache key."""

    def text_identity(self, options: TrainingOptions) -> str:
        """What the cached prompt embeddings depend on (text encoders, tokenizers, layers, length, dtype)."""

    # -- components (torch from here on) -------------------------------------------------------------

    def load_denoiser(self, options: TrainingOptions, dtype: torch.dtype, device: torch.device) -> torch.nn.Module:
        """The model the adapter trains (transformer or UNet), in ``dtype`` on ``device``."""

    def load_vae(self, options: TrainingOptions, device: torch.device) -> Any:
        """The latent encoder on ``device``, frozen and in eval mode, in whatever form encode_images takes."""

    def load_text_encoder(self, options: TrainingOptions, device: torch.device) -> Any:
        """The prompt encoder(s) and tokenizer(s) on ``device``, frozen, in whatever form encode_prompts takes."""

    def encode_images(self, vae: Any, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels (B, 3, H, W) in [-1, 1] -> the latents the denoiser trains on, float32."""

    def encode_prompts(self, text_encoder: Any, prompts: list[str], options: TrainingOptions) -> torch.Tensor:
        """Prompts -> one prompt embedding per prompt (B, ...), as the family's pipeline computes them."""

    # -- the objective --------------------------------------------------------------------------------

    def sample_sigmas(self, options: TrainingOptions, count: int, generator: torch.Generator) -> torch.Tensor:
        """One noise level per sample, drawn from ``generator``."""

    def noisy_input(self, latents: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
        """The latents noised to each sample's noise level."""

    def target(self, latents: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """What the denoiser learns to predict (the loss is its mean squared error)."""

    def timesteps(self, sigmas: torch.Tensor) -> torch.Tensor:
        """Each noise level on the 0 to ``num_train_timesteps`` scale."""

    def predict(
        self,
        denoiser: torch.nn.Module,
        noisy_latents: torch.Tensor,
        prompt_embeds: torch.Tensor,
        sigmas: torch.Tensor,
        options: TrainingOptions,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """The denoiser's prediction for noisy latents, in the shape of :meth:`target`."""
