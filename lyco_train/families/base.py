"""The contract between the trainer and a model family: everything that differs between models.

The trainer (``run.py``, ``caching.py``, ``loop.py``) talks to a family only through these members. The
first group is torch-free (the data plan and ``--dry-run`` use it); the loaders, encoders and the
objective import torch, diffusers or transformers inside the methods that need them.

Tensors are torch tensors; ``options`` is the run's :class:`~lyco_train.options.TrainingOptions`.

Three kinds of model input pass through the trainer:

* latents: one tensor per image (``encode_images``), cached per image;
* prompt embeddings: a dict of named tensors per prompt (``encode_prompts``; FLUX.2 ``prompt_embeds``,
  SDXL ``prompt_embeds`` + ``pooled_prompt_embeds``), cached per prompt, stacked per batch by name;
* per-sample conditioning the data plan provides (``sample_conditioning``: SDXL's add_time_ids from each
  sample's original size, crop and target size), a dict of named tensors with one row per sample.

Noise levels: each family draws its own (``sample_noise_levels``): flow matching draws σ in [0, 1], the DDPM
objective integer timesteps; ``timesteps`` puts them on the 0 to ``num_train_timesteps`` scale for the
T-LoRA mask and the metrics. The same function maps the timestep the denoiser receives from the family's
diffusers pipeline when it renders, so validation and ``lyco sample`` mask T-LoRA as training does.

Rendering: ``guidance`` (torch-free) says how the family's pipeline is guided by the validation options and
refuses what it cannot render; ``pipeline`` builds the family's diffusers pipeline around the denoiser and VAE
already in memory (no text encoders: prompts come as embeddings), ``pipeline_inputs`` turns one prompt's
embeddings into that pipeline's arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import torch

    from ..data import Sample
    from ..options import TrainingOptions


@dataclass(frozen=True)
class Guidance:
    """How a family's diffusers pipeline is guided when it renders (validation, ``lyco sample``)."""

    negative_prompt: bool  # a negative-prompt pass per step: the negative prompt's embeddings are needed
    summary: str  # for the run's plan: "CFG 7.5 against the negative prompt", "guidance embedding 3.5"


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
        """Raise :class:`~lyco_train.config.ConfigError` (with the fix) for flavours or options it cannot train,
        and for a local model folder that is not this family's pipeline (read from its JSON files only)."""

    def pixel_multiple(self, options: TrainingOptions) -> int:
        """Image sides must be multiples of this (the VAE's downscale times any patching)."""

    def latent_identity(self, options: TrainingOptions) -> str:
        """What the cached latents depend on (VAE files, dtype); part of every latent cache key."""

    def text_identity(self, options: TrainingOptions) -> str:
        """What the cached prompt embeddings depend on (text encoders, tokenizers, layers, length, dtype)."""

    def nan_hazards(self, lycoris_config: dict[str, Any], adapted: Sequence[str]) -> list[str]:
        """Known causes of a non-finite loss in this family that the run's LyCORIS config has (``adapted``: the
        module paths LyCORIS adapted); the stop message names them first. Empty when there are none."""

    # -- components (torch from here on) -------------------------------------------------------------

    def load_denoiser(self, options: TrainingOptions, dtype: torch.dtype, device: torch.device) -> torch.nn.Module:
        """The model the adapter trains (transformer or UNet), in ``dtype`` on ``device``."""

    def load_vae(self, options: TrainingOptions, device: torch.device) -> Any:
        """The latent encoder on ``device``, frozen and in eval mode, in whatever form encode_images takes."""

    def load_text_encoder(self, options: TrainingOptions, device: torch.device) -> Any:
        """The prompt encoder(s) and tokenizer(s) on ``device``, frozen, in whatever form encode_prompts takes."""

    def encode_images(self, vae: Any, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels (B, 3, H, W) in [-1, 1] -> the latents the denoiser trains on, float32."""

    def encode_prompts(self, text_encoder: Any, prompts: list[str], options: TrainingOptions) -> dict[str, torch.Tensor]:
        """Prompts -> named embeddings, each with one row per prompt (B, ...), as the family's pipeline computes
        them."""

    def sample_conditioning(self, samples: Sequence[Sample], options: TrainingOptions) -> dict[str, torch.Tensor]:
        """Per-sample conditioning from the data plan (sizes, crop), each tensor with one row per sample; {} for
        families that take none."""

    # -- the objective --------------------------------------------------------------------------------

    def sample_noise_levels(self, options: TrainingOptions, latents: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One noise level per sample of ``latents`` (B, C, H, W), drawn from ``generator``."""

    def sample_noise(self, options: TrainingOptions, latents: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The noise added to ``latents``, drawn from ``generator`` (offset noise included where it applies)."""

    def noisy_input(self, options: TrainingOptions, latents: torch.Tensor, noise: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """The latents noised to each sample's noise level."""

    def target(self, options: TrainingOptions, latents: torch.Tensor, noise: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """What the denoiser learns to predict."""

    def loss_weights(self, options: TrainingOptions, levels: torch.Tensor) -> torch.Tensor | None:
        """Per-sample weights of the squared error (min-SNR), or None for equal weights."""

    def timesteps(self, levels: torch.Tensor) -> torch.Tensor:
        """Each noise level on the 0 to ``num_train_timesteps`` scale."""

    def predict(
        self,
        denoiser: torch.nn.Module,
        noisy_latents: torch.Tensor,
        prompt_embeds: dict[str, torch.Tensor],
        conditioning: dict[str, torch.Tensor],
        levels: torch.Tensor,
        options: TrainingOptions,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """The denoiser's prediction for noisy latents, in the shape of :meth:`target`."""

    # -- rendering (validation images, lyco sample) ------------------------------------------------------

    def guidance(self, options: TrainingOptions) -> Guidance:
        """How the validation options guide this family's pipeline (``validation_guidance``,
        ``validation_guidance_real``, ``validation_no_cfg_until_timestep``, ``validation_guidance_rescale``), and
        whether the negative prompt is encoded. Torch-free; raises
        :class:`~lyco_train.config.ConfigError` (with the fix) for settings the pipeline cannot render."""

    def pipeline(self, options: TrainingOptions, denoiser: torch.nn.Module, vae: Any) -> Any:
        """The family's diffusers pipeline around ``denoiser`` and ``vae`` (already on their device; nothing is
        copied or moved), without text encoders, with the validation scheduler (``validation_noise_scheduler``)."""

    def pipeline_inputs(
        self, options: TrainingOptions, prompt_embeds: dict[str, torch.Tensor], negative_embeds: dict[str, torch.Tensor] | None
    ) -> dict[str, Any]:
        """The pipeline call's arguments for one prompt: its embeddings (one row each, as :meth:`encode_prompts`
        gives them) under the pipeline's names, the negative prompt's when :meth:`guidance` needs them, and the
        guidance arguments."""
