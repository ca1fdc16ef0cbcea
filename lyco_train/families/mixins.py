"""Members of the :class:`~.base.Family` contract that several families implement the same way.

A family class inherits these instead of writing them again; everything that differs per family stays in its
own module. ``components.py`` holds the shared functions (model folders, SimpleTuner's family facts); these
are the shared methods, for the members whose logic depends on nothing but the family's name, its Hub ids or
its objective. Torch is imported inside the methods that need it, as in the families.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Mapping

from . import components

if TYPE_CHECKING:
    import torch

    from ..options import TrainingOptions


class PipelinePaths:
    """Where a family's pipeline is loaded from and what its cached latents depend on.

    The family sets ``name`` (its ``model_family``) and ``hub_ids`` (the Hub id of each flavour)."""

    name: ClassVar[str]
    hub_ids: ClassVar[Mapping[str, str]]

    def flavour(self, options: TrainingOptions) -> str:
        return options.model_flavour or components.facts(self.name).default_flavour

    def model_root(self, options: TrainingOptions) -> str:
        return options.pretrained_model_name_or_path or self.hub_ids[self.flavour(options)]

    def latent_identity(self, options: TrainingOptions) -> str:
        # The family's name is in the key because each family encodes the same VAE output its own way
        # (shift and scale, pixel shuffle, batch-norm statistics): latents never cross families.
        return f"{self.name}-latents|{self._component_identity(options, 'vae')}|dtype={options.vae_dtype_name}"

    def _component_identity(self, options: TrainingOptions, subfolder: str) -> str:
        """The content identity of one component folder of the pipeline (part of the cache keys)."""
        return components.component_identity(self.model_root(options), subfolder, options.revision)


class RectifiedFlow:
    """The objective members of the rectified-flow families (FLUX.1, FLUX.2): ``flow.py``'s noising and velocity
    target, Gaussian noise, equal loss weights and the timestep 1000·σ. How σ is drawn stays per family
    (``sample_noise_levels``): the shift options they take differ."""

    num_train_timesteps = 1000  # flow.py: the timestep is 1000·σ

    def sample_noise(self, options: TrainingOptions, latents: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        import torch

        return torch.randn(latents.shape, generator=generator)

    def noisy_input(self, options: TrainingOptions, latents: torch.Tensor, noise: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        from ..flow import noisy_input

        return noisy_input(latents, noise, levels)

    def target(self, options: TrainingOptions, latents: torch.Tensor, noise: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        from ..flow import velocity_target

        return velocity_target(latents, noise)

    def loss_weights(self, options: TrainingOptions, levels: torch.Tensor) -> torch.Tensor | None:
        return None  # equal weights: lyco train weights by min-SNR (snr_gamma) in the DDPM objective only (SDXL)

    def timesteps(self, levels: torch.Tensor) -> torch.Tensor:
        """The 0–1000 timestep of each σ."""
        return levels * self.num_train_timesteps
