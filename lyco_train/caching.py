"""VAE latents and prompt embeddings, encoded once and kept as safetensors files keyed by content.

A latent's file name hashes the image bytes, its geometry (training size, intermediary size, crop) and the VAE
(config files, weight sizes, dtype); a prompt's hashes the prompt and the text encoder(s). A changed image or
caption gets a new key and is encoded; an unchanged one is read from disk. A latent file holds one tensor
(``latents``); a prompt file holds the family's named embeddings (FLUX.2 ``prompt_embeds``; SDXL and FLUX.1
also ``pooled_prompt_embeds``), one row each. The encoders are loaded only when something is
missing, and are dropped (and the accelerator's memory released) as soon as the caches are complete.
Each cache file is written atomically and flushed to disk (``lyco_lint.atomic``): a crash or power cut
never leaves a half-written file under a valid key.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

from lyco_lint.atomic import atomic_path

from .config import TrainConfig
from .data import DataPlan, Sample
from .families.base import Family

ENCODE_BATCH = 8


@dataclass
class CacheReport:
    images_encoded: int
    images_cached: int
    prompts_encoded: int
    prompts_cached: int


def build_caches(config: TrainConfig, plan: DataPlan, family: Family, device: torch.device, say: Callable[[str], None]) -> CacheReport:
    missing_images = [sample for sample in plan.samples if not sample.latent_file.is_file()]
    missing_prompts = [prompt for prompt, path in plan.prompt_files.items() if not path.is_file()]
    if missing_images:
        say(f"encoding {len(missing_images)} image(s) with the VAE")
        encode_missing_images(config, family, missing_images, device)
        free_accelerator(device)
    if missing_prompts:
        say(f"encoding {len(missing_prompts)} prompt(s) with the text encoder")
        encode_missing_prompts(config, family, plan, missing_prompts, device)
        free_accelerator(device)
    return CacheReport(
        images_encoded=len(missing_images),
        images_cached=len(plan.samples) - len(missing_images),
        prompts_encoded=len(missing_prompts),
        prompts_cached=len(plan.prompt_files) - len(missing_prompts),
    )


def encode_missing_images(config: TrainConfig, family: Family, samples: list[Sample], device: torch.device) -> None:
    vae = family.load_vae(config.options, device)  # garbage once this function returns (then free_accelerator)
    for sample in samples:  # one at a time: sizes differ between buckets
        with torch.no_grad():
            latents = family.encode_images(vae, load_pixels(sample).unsqueeze(0))
        write_tensor(sample.latent_file, "latents", latents[0])


def encode_missing_prompts(config: TrainConfig, family: Family, plan: DataPlan, prompts: list[str], device: torch.device) -> None:
    text_encoder = family.load_text_encoder(config.options, device)
    for start in range(0, len(prompts), ENCODE_BATCH):
        chunk = prompts[start : start + ENCODE_BATCH]
        embeds = family.encode_prompts(text_encoder, chunk, config.options)
        for row, prompt in enumerate(chunk):
            write_tensors(plan.prompt_files[prompt], {name: tensor[row] for name, tensor in embeds.items()})


def load_pixels(sample: Sample) -> torch.Tensor:
    """The image as the data plan shaped it: scaled to its intermediary size, cut to its training size at its
    crop; (3, H, W) in [-1, 1]."""
    import numpy as np
    from PIL import Image

    width, height = sample.size
    top, left = sample.crop_top_left
    with Image.open(sample.path) as image:
        resized = image.convert("RGB").resize(sample.resized, Image.LANCZOS)
    cropped = resized.crop((left, top, left + width, top + height))
    array = torch.from_numpy(np.asarray(cropped, dtype=np.float32).copy())
    return array.permute(2, 0, 1) / 127.5 - 1.0


def write_tensor(path: Path, name: str, tensor: torch.Tensor) -> None:
    write_tensors(path, {name: tensor})


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    with atomic_path(path) as temporary:
        save_file({name: tensor.detach().to("cpu").contiguous() for name, tensor in tensors.items()}, str(temporary))


def read_tensor(path: Path, name: str) -> torch.Tensor:
    return load_file(str(path))[name]


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def free_accelerator(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
