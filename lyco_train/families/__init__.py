"""Model families: one small module each, holding everything that differs between models.

A family module defines (see ``flux2.py``):

* ``NAME``, ``FLAVOURS`` (flavour -> hub id), ``DEFAULT_FLAVOUR``, ``TARGET_CLASSES`` (LyCORIS target
  classes that exist in its denoiser, for error messages), ``NUM_TRAIN_TIMESTEPS``;
* ``check(config)`` — refuse flavours or options the family cannot train, with the fix;
* ``pixel_multiple(config)``, ``latent_identity(config)``, ``text_identity(config)`` — torch-free, used by
  the data plan and the cache keys;
* ``load_denoiser(config, dtype)``, ``load_vae(config, dtype)``, ``load_text_encoder(config, dtype)``;
* ``encode_images(vae, pixels)``, ``encode_prompts(text_encoder, prompts, config)``;
* ``sample_sigmas(config, n, generator)``, ``noisy_input(latents, noise, sigmas)``, ``target(latents, noise)``,
  ``predict(denoiser, noisy, prompt_embeds, sigmas, config, generator)``.

To add a family (SDXL, FLUX.1): write ``<name>.py`` with those names and add it to ``FAMILIES``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..config import ConfigError

FAMILIES = {"flux2": "lyco_train.families.flux2"}


def get_family(name: str | None) -> ModuleType:
    if name not in FAMILIES:
        raise ConfigError(
            f"model_family '{name}' is not supported by lyco train yet; supported: {', '.join(sorted(FAMILIES))}"
        )
    return importlib.import_module(FAMILIES[name])
