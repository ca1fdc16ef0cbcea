"""Datasets: find the images and their captions, choose each image's training size and crop, name its cache
files, and order the batches of each epoch.

No torch here (``--dry-run`` uses this module alone). The geometry follows SimpleTuner's ``TrainingSample``
(helpers/image_manipulation/training_sample.py and cropping.py):

* the training size: without ``crop`` (or with ``crop_aspect: preserve``) the image keeps its aspect ratio,
  scaled to the target area (``pixel_area``/``area``) or shorter edge (``pixel``); ``crop_aspect: square``
  gives a square, ``closest`` the aspect of ``crop_aspect_buckets`` nearest the image's, ``random`` one drawn
  from them (weighted when the buckets carry weights). Each side is rounded to a multiple of the bucket
  alignment;
* the image is scaled to just cover that size (the "intermediary" size) and cut to it by ``crop_style``:
  ``center``/``centre``, ``corner`` (top-left) or ``random`` (SimpleTuner's default; the leftover pixels of
  aspect buckets are cut the same way, as SimpleTuner does);
* random draws (the aspect of ``crop_aspect: random``, the offset of ``crop_style: random``) come from a
  generator seeded by the dataset id and the image's content, so every run — resumed or not — and the
  latent cache agree on them; SimpleTuner likewise draws them once, when it caches the latents.

Each sample keeps its original size, the intermediary size and the crop's top-left corner: SDXL conditions
on them (its add_time_ids). Images of one size form a bucket and a batch never mixes buckets.
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
RESIZE_VERSION = "cover-lanczos-crop-v2"  # part of every latent cache key: change it when resizing changes


@dataclass(frozen=True)
class Geometry:
    """How one image becomes a training sample: scaled to ``resized``, then cut to ``size`` at ``crop_top_left``."""

    size: tuple[int, int]  # (width, height) the image is trained at
    resized: tuple[int, int]  # (width, height) it is scaled to before the crop (SimpleTuner's intermediary size)
    crop_top_left: tuple[int, int]  # (top, left) of the crop in the resized image (SDXL's crops_coords_top_left)


@dataclass(frozen=True)
class Sample:
    path: Path
    dataset: str
    captions: tuple[str, ...]
    size: tuple[int, int]  # (width, height) the image is trained at
    repeats: int
    latent_file: Path
    original_size: tuple[int, int]  # (width, height) of the image file
    resized: tuple[int, int]  # (width, height) before the crop
    crop_top_left: tuple[int, int]  # (top, left) in the resized image


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
    digest = hashlib.sha256(data).hexdigest()
    geometry = plan_geometry(width, height, spec, alignment, random.Random(f"lyco-crop:{spec.id}:{digest}"))
    key = latent_cache_key(digest, geometry, identity)
    return Sample(
        path, spec.id, captions, geometry.size, spec.repeats, spec.cache_dir_vae / f"{key}.safetensors",
        original_size=(width, height), resized=geometry.resized, crop_top_left=geometry.crop_top_left,
    )


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


def plan_geometry(width: int, height: int, spec: DatasetSpec, alignment: int, rng: random.Random) -> Geometry:
    """The training size, the intermediary size and the crop of an image (see the module docstring)."""
    aspect = None
    if spec.crop and spec.crop_aspect in ("closest", "random"):
        aspect = bucket_aspect(width / height, spec.crop_aspect, spec.crop_aspect_buckets, rng)
    size = training_size(width, height, spec, alignment, aspect)
    resized = cover_size((width, height), size)
    return Geometry(size, resized, crop_top_left(resized, size, spec.crop_style, rng))


def bucket_aspect(own: float, mode: str, buckets: tuple[tuple[float, Optional[float]], ...], rng: random.Random) -> float:
    """``closest``: the bucket aspect nearest the image's own; ``random``: a draw, weighted if the buckets are."""
    aspects = [aspect for aspect, _weight in buckets]
    if mode == "closest":
        return min(aspects, key=lambda aspect: abs(aspect - own))
    weights = [weight for _aspect, weight in buckets]
    if None in weights:
        return rng.choice(aspects)
    return rng.choices(aspects, weights)[0]


def training_size(width: int, height: int, spec: DatasetSpec, alignment: int, aspect: Optional[float] = None) -> tuple[int, int]:
    """The (width, height) an image is trained at, both multiples of ``alignment``: a square with
    ``crop_aspect: square``, else ``aspect`` (width/height; the image's own when None) at the resolution."""

    def snap(value: float) -> int:
        return max(alignment, int(round(value / alignment)) * alignment)

    if spec.resolution_type == "area":
        area = spec.resolution * 1_000_000  # megapixels
    elif spec.resolution_type == "pixel_area":
        area = spec.resolution**2
    else:
        area = None
    if spec.crop and spec.crop_aspect == "square":
        side = spec.resolution if area is None else math.sqrt(area)
        return snap(side), snap(side)
    aspect = width / height if aspect is None else aspect
    if area is None:  # pixel: the shorter edge becomes the resolution
        return (snap(spec.resolution * aspect), snap(spec.resolution)) if aspect >= 1 else (snap(spec.resolution), snap(spec.resolution / aspect))
    return snap(math.sqrt(area * aspect)), snap(math.sqrt(area / aspect))


def cover_size(original: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """The image scaled (aspect kept) to just cover ``size``: SimpleTuner's intermediary size."""
    scale = max(size[0] / original[0], size[1] / original[1])
    return max(size[0], round(original[0] * scale)), max(size[1], round(original[1] * scale))


def crop_top_left(resized: tuple[int, int], size: tuple[int, int], style: str, rng: random.Random) -> tuple[int, int]:
    """(top, left) of the ``size`` crop of an image scaled to ``resized``, by crop_style (SimpleTuner's
    CenterCropping, CornerCropping and RandomCropping)."""
    spare_x, spare_y = resized[0] - size[0], resized[1] - size[1]
    if style in ("center", "centre"):
        return spare_y // 2, spare_x // 2
    if style == "corner":
        return 0, 0
    left = rng.randint(0, spare_x) if spare_x > 0 else 0
    top = rng.randint(0, spare_y) if spare_y > 0 else 0
    return top, left


def latent_cache_key(image_digest: str, geometry: Geometry, identity: str) -> str:
    (width, height), (rw, rh), (top, left) = geometry.size, geometry.resized, geometry.crop_top_left
    text = f"{image_digest}|{width}x{height}|from={rw}x{rh}|at={top},{left}|{RESIZE_VERSION}|{identity}"
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
