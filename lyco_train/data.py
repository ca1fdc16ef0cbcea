"""Datasets: find the images and their captions, choose each image's training size (aspect buckets, or a
centre-cropped square with ``crop: true``), name its cache files, and order the batches of each epoch.

No torch here (``--dry-run`` uses this module alone). Sizes: without ``crop`` each image keeps its aspect
ratio — it is scaled to the target area (``pixel_area``/``area``) or shorter edge (``pixel``), each side
rounded to a multiple of the bucket alignment, and the few pixels the rounding leaves over are cut at the
centre. Images of one size form a bucket and a batch never mixes buckets (Flux 2 takes one set of position
ids per batch).
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .config import ConfigError, DatasetSpec, TrainConfig

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
RESIZE_VERSION = "cover-lanczos-centre-v1"  # part of every latent cache key: change it when resizing changes


@dataclass(frozen=True)
class Sample:
    path: Path
    dataset: str
    captions: tuple[str, ...]
    size: tuple[int, int]  # (width, height) the image is trained at
    repeats: int
    latent_file: Path


@dataclass
class DataPlan:
    samples: list[Sample]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    prompt_files: dict[str, Path] = field(default_factory=dict)  # prompt -> text-embed cache file

    @property
    def buckets(self) -> dict[tuple[int, int], list[int]]:
        groups: dict[tuple[int, int], list[int]] = {}
        for index, sample in enumerate(self.samples):
            groups.setdefault(sample.size, []).append(index)
        return dict(sorted(groups.items()))

    def batches_per_epoch(self, batch_size: int) -> int:
        return sum(
            math.ceil(sum(1 + self.samples[i].repeats for i in members) / batch_size)
            for members in self.buckets.values()
        )


def plan_data(
    config: TrainConfig,
    alignment: int,
    latent_identity: str,
    text_identity: str,
    warn: Callable[[str], None],
) -> DataPlan:
    """Every usable image of every dataset, with its captions, size and cache files."""
    plan = DataPlan(samples=[])
    for spec in config.datasets:
        folder = spec.instance_data_dir
        if not folder.is_dir():
            raise ConfigError(f"dataset '{spec.id}': instance_data_dir {folder} is not a folder; point it at your images")
        for path in find_images(folder):
            sample = _sample(spec, path, alignment, latent_identity, plan, warn)
            if sample is not None:
                plan.samples.append(sample)
    if not plan.samples:
        folders = ", ".join(str(spec.instance_data_dir) for spec in config.datasets)
        raise ConfigError(
            f"no usable image in {folders}: lyco train reads {', '.join(IMAGE_SUFFIXES)} files with a caption "
            "(see caption_strategy); add images or fix the ones reported above"
        )
    prompts = sorted({caption for sample in plan.samples for caption in sample.captions})
    if config.options.caption_dropout_probability > 0:
        prompts.append("")  # a dropped caption trains on the empty prompt, as in SimpleTuner
    cache = config.text_embeds.cache_dir
    plan.prompt_files = {prompt: cache / f"{text_cache_key(prompt, text_identity)}.safetensors" for prompt in dict.fromkeys(prompts)}
    return plan


def find_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _sample(spec: DatasetSpec, path: Path, alignment: int, identity: str, plan: DataPlan, warn) -> Optional[Sample]:
    try:
        data = path.read_bytes()
        width, height = read_image_size(path)
    except Exception as error:  # PIL raises many types for broken files; all mean "unusable"
        reason = f"{type(error).__name__}: {error}".strip()
        warn(f"skipping unreadable image {path} ({reason})")
        plan.skipped.append((path, reason))
        return None
    captions = read_captions(spec, path)
    if not captions:
        reason = f"no caption ({caption_source(spec, path)})"
        warn(f"skipping {path}: {reason}")
        plan.skipped.append((path, reason))
        return None
    size = training_size(width, height, spec, alignment)
    key = latent_cache_key(hashlib.sha256(data).hexdigest(), size, spec.crop, identity)
    return Sample(path, spec.id, captions, size, spec.repeats, spec.cache_dir_vae / f"{key}.safetensors")


def read_image_size(path: Path) -> tuple[int, int]:
    """Decode the whole image (so a truncated file is caught now, not mid-run) and return its size."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image.size


def read_captions(spec: DatasetSpec, path: Path) -> tuple[str, ...]:
    if spec.caption_strategy == "instanceprompt":
        return (spec.instance_prompt.strip(),)
    if spec.caption_strategy == "filename":
        return (clean_filename(path.stem),) if clean_filename(path.stem) else ()
    text_file = path.with_suffix(".txt")
    if not text_file.is_file():
        return ()
    lines = text_file.read_text(encoding="utf-8", errors="replace").splitlines()
    # SimpleTuner reads one caption per line; one of them is drawn each time the image is used.
    return tuple(dict.fromkeys(line.strip() for line in lines if line.strip()))


def caption_source(spec: DatasetSpec, path: Path) -> str:
    if spec.caption_strategy == "textfile":
        return f"caption_strategy textfile expects a non-empty {path.with_suffix('.txt').name} next to it"
    return "the file name gives an empty caption"


def clean_filename(stem: str) -> str:
    return " ".join(stem.replace("_", " ").split())


def training_size(width: int, height: int, spec: DatasetSpec, alignment: int) -> tuple[int, int]:
    """The (width, height) an image is trained at; both multiples of ``alignment``."""

    def snap(value: float) -> int:
        return max(alignment, int(round(value / alignment)) * alignment)

    if spec.resolution_type == "area":
        area = spec.resolution * 1_000_000  # megapixels
    elif spec.resolution_type == "pixel_area":
        area = spec.resolution**2
    else:
        area = None
    if spec.crop:
        side = spec.resolution if area is None else math.sqrt(area)
        return snap(side), snap(side)
    if area is None:  # pixel: the shorter edge becomes the resolution
        scale = spec.resolution / min(width, height)
    else:
        scale = math.sqrt(area / (width * height))
    return snap(width * scale), snap(height * scale)


def latent_cache_key(image_digest: str, size: tuple[int, int], crop: bool, identity: str) -> str:
    text = f"{image_digest}|{size[0]}x{size[1]}|crop={crop}|{RESIZE_VERSION}|{identity}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def text_cache_key(prompt: str, identity: str) -> str:
    return hashlib.sha256(f"{prompt}\x00{identity}".encode("utf-8")).hexdigest()


# -- batch order ------------------------------------------------------------------------------------


def epoch_batches(plan: DataPlan, epoch: int, seed: int, batch_size: int) -> list[list[int]]:
    """The batches (lists of sample indices) of one epoch: a pure function of (seed, epoch), so a resumed
    run replays the same order from its saved position."""
    rng = random.Random(f"lyco-epoch:{seed}:{epoch}")
    batches: list[list[int]] = []
    for members in plan.buckets.values():
        items = [index for index in members for _ in range(1 + plan.samples[index].repeats)]
        rng.shuffle(items)
        batches.extend(items[start : start + batch_size] for start in range(0, len(items), batch_size))
    rng.shuffle(batches)
    return batches


class BatchStream:
    """Micro-batches across epochs, with the position (epoch, batch) a checkpoint stores."""

    def __init__(self, plan: DataPlan, seed: int, batch_size: int, epoch: int = 0, batch_in_epoch: int = 0):
        self.plan, self.seed, self.batch_size = plan, seed, batch_size
        self.epoch, self.batch_in_epoch = epoch, batch_in_epoch
        self._batches = epoch_batches(plan, epoch, seed, batch_size)

    def next(self) -> list[int]:
        if self.batch_in_epoch >= len(self._batches):
            self.epoch += 1
            self.batch_in_epoch = 0
            self._batches = epoch_batches(self.plan, self.epoch, self.seed, self.batch_size)
        batch = self._batches[self.batch_in_epoch]
        self.batch_in_epoch += 1
        return batch

    def position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch}
