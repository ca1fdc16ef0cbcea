"""Read a SimpleTuner-style ``config.json``, its LyCORIS config and its ``multidatabackend.json``
into one validated :class:`TrainConfig`.

Keys are read as SimpleTuner's JSON loader and argparse read them (SimpleTuner's ``json_file.py`` and
``cmd_args.py``, as modelled by ``lyco_lint.knowledge.simpletuner``): a leading ``--`` is optional,
``null``/``""``/the string ``"false"`` mean "not set", legacy names are renamed, booleans take
SimpleTuner's words, and every option lyco train implements gets SimpleTuner's default
(:class:`~.options.TrainingOptions`). Anything lyco train cannot honour is a
:class:`ConfigError` whose message names the option and says how to fix it. No torch here: this runs
before anything heavy is loaded (and in ``--dry-run``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from lyco_lint.knowledge.simpletuner import normalise_choice, parse_bool

from . import options as table
from .options import TrainingOptions

OPTIMIZERS = ("adamw_bf16", "torch-adamw", "torch-adam")


class ConfigError(Exception):
    """A config problem the user must fix; the message says what, where and how."""


@dataclass(frozen=True)
class DatasetSpec:
    """One local image dataset of multidatabackend.json."""

    id: str
    instance_data_dir: Path
    caption_strategy: str  # textfile | filename | instanceprompt
    instance_prompt: Optional[str]
    resolution: float
    resolution_type: str  # pixel | area | pixel_area
    crop: bool  # True: crop to crop_aspect; False: aspect buckets (the leftover pixels are cut by crop_style)
    repeats: int
    cache_dir_vae: Path
    crop_style: str = field(default_factory=lambda: _dataset_default("crop_style"))  # random | center | centre | corner
    crop_aspect: str = field(default_factory=lambda: _dataset_default("crop_aspect"))  # square | preserve | closest | random
    crop_aspect_buckets: tuple[tuple[float, Optional[float]], ...] = ()  # (aspect, weight or None)

    @property
    def shape_description(self) -> str:
        """How the images are shaped, for the printed plan."""
        style = {"random": "random", "center": "centre", "centre": "centre", "corner": "top-left"}[self.crop_style]
        if not self.crop:
            return f"aspect buckets ({style} cut of the rounding leftover)"
        shape = {"square": "squares", "preserve": "own aspect", "closest": "closest bucket aspect", "random": "random bucket aspect"}[self.crop_aspect]
        return f"{style} crops, {shape}"


@dataclass(frozen=True)
class TextEmbedSpec:
    id: str
    cache_dir: Path


@dataclass(frozen=True)
class TrainConfig:
    """A training config read and checked: its options, the LyCORIS config and the datasets."""

    path: Path
    options: TrainingOptions
    lycoris: dict[str, Any]
    lycoris_path: Path
    datasets: list[DatasetSpec]
    text_embeds: TextEmbedSpec
    notes: list[str] = field(default_factory=list)

    @property
    def output_dir(self) -> Path:
        return Path(self.options.output_dir)


# -- config.json ------------------------------------------------------------------------------------


def load_config(path: str | os.PathLike) -> TrainConfig:
    config_path = Path(path)
    raw = _read_json(config_path, "training config")
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path}: the top level must be a JSON object of options")
    notes: list[str] = []
    values = read_options(raw, str(config_path), notes)
    check_choices(values, str(config_path))
    lycoris_path = find_next_to(values["lycoris_config"], config_path, "lycoris_config")
    lycoris = _read_json(lycoris_path, "LyCORIS config")
    if not isinstance(lycoris, dict):
        raise ConfigError(f"{lycoris_path}: a LyCORIS config is a JSON object ({{\"algo\": ...}})")
    backend_path = find_next_to(values["data_backend_config"], config_path, "data_backend_config")
    datasets, text_embeds = read_data_backends(backend_path, values)
    return TrainConfig(config_path, TrainingOptions(**values), lycoris, lycoris_path, datasets, text_embeds, notes)


def read_options(raw: dict[str, Any], where: str, notes: list[str]) -> dict[str, Any]:
    """Typed values of every implemented option (SimpleTuner defaults filled in); notes for the rest."""
    given: dict[str, Any] = {}
    at_default: list[str] = []
    cosmetic: list[str] = []
    for key, value in raw.items():
        name = key[2:] if key.startswith("--") else key
        name = table.legacy_renames().get(name, name)
        if name in table.loader_ignored():
            continue  # SimpleTuner's loader drops these too
        if _loader_drops(value):
            continue  # null, "" and "false" leave SimpleTuner's default in place
        if name in table.IMPLEMENTED:
            given[name] = parse_value(name, value, where)
        elif name in table.COSMETIC:
            required = table.COSMETIC_REQUIRED.get(name)
            if required is not None and _as_plain(value) != required[0]:
                raise ConfigError(f"{where}: {key}: {required[1]}")
            cosmetic.append(name)
        else:
            _check_not_implemented(name, key, value, where)
            at_default.append(name)
    values = {name: default for name, (_kind, default) in table.IMPLEMENTED.items()}
    values.update(given)
    for name in table.simpletuner_required():
        if name not in given:
            raise ConfigError(f"{where}: '{name}' is required (SimpleTuner requires it too); add \"{name}\": ...")
    normalise(values)
    if cosmetic:
        notes.append(f"not used by lyco train (no effect on the weights): {', '.join(sorted(cosmetic))}")
    if at_default:
        notes.append(f"at SimpleTuner's default, not read by lyco train: {', '.join(sorted(at_default))}")
    return values


def _loader_drops(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, str) and value.strip().lower() == "false")


def _as_plain(value: Any) -> Any:
    """A boolean word (SimpleTuner's) as a bool; any other value unchanged."""
    if isinstance(value, str) and parse_bool(value) is not None:
        return parse_bool(value)
    return value


def _check_not_implemented(name: str, key: str, value: Any, where: str) -> None:
    spec = table.simpletuner_option(name)
    if spec is None:
        raise ConfigError(
            f"{where}: unknown option '{key}': SimpleTuner rejects it too; check the spelling (`lyco lint` suggests the nearest option)"
        )
    default = spec.get("default")
    if _same_value(value, default):
        return
    raise ConfigError(
        f"{where}: '{key}' is set to {json.dumps(value)} but lyco train does not implement {name} "
        f"(SimpleTuner's default is {json.dumps(default)}); remove it or set it to the default, "
        "or train this config with SimpleTuner"
    )


def _same_value(value: Any, default: Any) -> bool:
    value = _as_plain(value)
    if isinstance(default, bool) or isinstance(value, bool):
        return value is default
    if isinstance(default, (int, float)) and isinstance(value, (int, float, str)):
        try:
            return float(value) == float(default)
        except ValueError:
            return False
    return value == default or str(value) == str(default)


def parse_value(name: str, value: Any, where: str) -> Any:
    """Convert a JSON value as SimpleTuner's loader + argparse would, or explain why it cannot."""
    kind, _default = table.IMPLEMENTED[name]
    shown = json.dumps(value)
    if isinstance(value, (list, dict)):
        raise ConfigError(f"{where}: {name}: expected a single value, got {shown}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        parsed = parse_bool(str(value))
        if parsed is not None:
            return parsed
        raise ConfigError(f"{where}: {name}: expected true or false, got {shown}")
    if value is True or value is False:
        raise ConfigError(f"{where}: {name}: expected a {_kind_name(kind)}, got {shown}")
    if kind is int:
        if isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
            return int(value)
        raise ConfigError(f"{where}: {name}: expected a whole number, got {shown} (write it without a decimal point)")
    if kind is float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {name}: expected a number, got {shown}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{where}: {name}: expected a finite number, got {shown}")
        return number
    return normalise_choice(name, str(value))  # SimpleTuner's rewrites (model_family lower-cased, cosine_with_warmup)


def _kind_name(kind: Any) -> str:
    return {int: "whole number", float: "number", str: "string"}.get(kind, "value")


def normalise(values: dict[str, Any]) -> None:
    """SimpleTuner's rewrite of ``constant`` with warmup steps into ``constant_with_warmup``, and its
    meaning of a max_train_steps of 0 (not set)."""
    if values["lr_scheduler"] == "constant" and values["lr_warmup_steps"] > 0:
        values["lr_scheduler"] = "constant_with_warmup"
    if values["max_train_steps"] is not None and values["max_train_steps"] <= 0:
        values["max_train_steps"] = None


def check_choices(values: dict[str, Any], where: str) -> None:
    """Values lyco train cannot train with, each with the fix."""
    for name, (kind, _default) in table.IMPLEMENTED.items():
        if isinstance(kind, tuple) and values[name] is not None and values[name] not in kind:
            raise ConfigError(f"{where}: {name}: '{values[name]}' is not one of {', '.join(kind)}")
    if values["model_type"] != "lora":
        raise ConfigError(f"{where}: model_type: lyco train trains LyCORIS adapters only; set \"model_type\": \"lora\"")
    if values["lora_type"] != "lycoris":
        raise ConfigError(
            f"{where}: lora_type: lyco train trains LyCORIS adapters only; set \"lora_type\": \"lycoris\" and point lycoris_config at a LyCORIS config"
        )
    if values["mixed_precision"] not in ("bf16", "no"):
        raise ConfigError(f"{where}: mixed_precision '{values['mixed_precision']}' is not implemented; use \"bf16\" or \"no\"")
    if values["optimizer"] not in OPTIMIZERS:
        raise ConfigError(f"{where}: optimizer '{values['optimizer']}' is not implemented; choose one of {', '.join(OPTIMIZERS)}")
    if values["caption_strategy"] not in ("filename", "textfile", "instance_prompt"):
        raise ConfigError(f"{where}: caption_strategy '{values['caption_strategy']}' is not implemented; use textfile, filename or instanceprompt")
    positive = ("train_batch_size", "gradient_accumulation_steps")
    for name in positive:
        if values[name] < 1:
            raise ConfigError(f"{where}: {name} must be at least 1, got {values[name]}")
    if not 0.0 <= values["caption_dropout_probability"] <= 1.0:
        raise ConfigError(f"{where}: caption_dropout_probability must be between 0 and 1, got {values['caption_dropout_probability']}")
    if values["max_train_steps"] is None and values["num_train_epochs"] < 1:
        raise ConfigError(f"{where}: set max_train_steps or num_train_epochs to a positive number")
    if values["learning_rate"] <= 0:
        raise ConfigError(f"{where}: learning_rate must be positive, got {values['learning_rate']}")
    if values["lr_scheduler"] == "sine" and values["lr_warmup_steps"] <= 0:
        raise ConfigError(f"{where}: lr_scheduler sine uses lr_warmup_steps as its half period (as SimpleTuner does); set lr_warmup_steps > 0")
    if values["lr_scheduler"] == "polynomial" and values["lr_end"] >= values["learning_rate"]:
        raise ConfigError(f"{where}: lr_scheduler polynomial decays to lr_end ({values['lr_end']}), which must be below learning_rate ({values['learning_rate']})")
    if values["checkpoints_total_limit"] is not None and values["checkpoints_total_limit"] < 1:
        raise ConfigError(f"{where}: checkpoints_total_limit must be at least 1, got {values['checkpoints_total_limit']}")


def find_next_to(value: Optional[str], config_path: Path, name: str) -> Path:
    """A file named in config.json, found where ``lyco lint`` looks: next to config.json, then relative to
    the current directory (then as one of SimpleTuner's bundled examples)."""
    from lyco_lint.knowledge.training_view import find_named_file

    if not value:
        raise ConfigError(f"{config_path}: '{name}' is required; give the path of the file")
    found, places = find_named_file(config_path, value)
    if found is None:
        tried = ", ".join(str(place) for place in places)
        raise ConfigError(f"{config_path}: {name}: file '{value}' not found (looked at {tried})")
    return found


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read the {what} {path}: {error.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}") from None


# -- multidatabackend.json ----------------------------------------------------------------------------

IMAGE_KEYS = {
    "id", "type", "dataset_type", "instance_data_dir", "caption_strategy", "instance_prompt", "resolution",
    "resolution_type", "crop", "crop_style", "crop_aspect", "crop_aspect_buckets", "repeats", "cache_dir_vae", "disabled",
    "disable", "text_embeds",
}
TEXT_EMBED_KEYS = {"id", "type", "dataset_type", "cache_dir", "default", "disabled", "disable"}


def read_data_backends(path: Path, values: dict[str, Any]) -> tuple[list[DatasetSpec], TextEmbedSpec]:
    entries = _read_json(path, "data backend config")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: a data backend config is a non-empty JSON list of dataset objects")
    images, embeds, seen = [], [], set()
    for index, entry in enumerate(entries):
        where = f"{path}: entry {index}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: each dataset is a JSON object")
        if _flag(entry, "disabled", where) or _flag(entry, "disable", where):
            continue
        ident = entry.get("id")
        if not isinstance(ident, str) or not ident.strip():
            raise ConfigError(f"{where}: each dataset needs a unique non-empty 'id'")
        where = f"{path}: dataset '{ident}'"
        if ident in seen:
            raise ConfigError(f"{where}: id '{ident}' is used twice; each dataset needs a unique 'id'")
        seen.add(ident)
        kind = entry.get("dataset_type", "image")
        if entry.get("type", "local") != "local":
            raise ConfigError(f"{where}: type '{entry.get('type')}' is not implemented; lyco train reads local folders (\"type\": \"local\")")
        if kind == "image":
            images.append((where, entry))
        elif kind == "text_embeds":
            embeds.append((where, entry))
        else:
            raise ConfigError(f"{where}: dataset_type '{kind}' is not implemented; lyco train reads image datasets and one text_embeds cache")
    text_embeds = _text_embed_spec(path, embeds, values)
    datasets = [_image_spec(where, entry, values, text_embeds) for where, entry in images]
    if not datasets:
        raise ConfigError(f"{path}: no enabled image dataset; add one with \"dataset_type\": \"image\" (the default) and \"instance_data_dir\"")
    cache_dirs: dict[Path, str] = {}
    for spec in datasets:
        key = spec.cache_dir_vae.resolve()
        if key in cache_dirs:
            raise ConfigError(f"{path}: datasets '{cache_dirs[key]}' and '{spec.id}' share cache_dir_vae {spec.cache_dir_vae}; give each its own folder")
        cache_dirs[key] = spec.id
    return datasets, text_embeds


def _unknown_keys(where: str, entry: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: {', '.join(repr(key) for key in unknown)} not implemented by lyco train "
            f"(it reads {', '.join(sorted(allowed))}); remove {'them' if len(unknown) > 1 else 'it'}"
        )


def _flag(entry: dict[str, Any], key: str, where: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: '{key}' must be true or false, got {json.dumps(value)}")
    return value


def _text_embed_spec(path: Path, embeds: list, values: dict[str, Any]) -> TextEmbedSpec:
    family = values.get("model_family") or "model"
    if not embeds:
        # SimpleTuner creates this backend itself when the file has none.
        return TextEmbedSpec("text-embeds", Path(values["output_dir"]) / "cache" / "text" / family)
    if len(embeds) > 1:
        names = ", ".join(entry["id"] for _where, entry in embeds)
        raise ConfigError(f"{path}: several text_embeds entries ({names}); lyco train uses one, so keep one and disable the others")
    where, entry = embeds[0]
    _unknown_keys(where, entry, TEXT_EMBED_KEYS)
    _flag(entry, "default", where)
    cache_dir = entry.get("cache_dir") or values.get("cache_dir_text") or "cache"
    if not isinstance(cache_dir, str):
        raise ConfigError(f"{where}: cache_dir must be a folder path")
    return TextEmbedSpec(entry["id"], Path(cache_dir))


def _image_spec(where: str, entry: dict[str, Any], values: dict[str, Any], text_embeds: TextEmbedSpec) -> DatasetSpec:
    _unknown_keys(where, entry, IMAGE_KEYS)
    ident = entry["id"]
    folder = entry.get("instance_data_dir")
    if not isinstance(folder, str) or not folder:
        raise ConfigError(f"{where}: 'instance_data_dir' (the folder of images) is required")
    strategy = entry.get("caption_strategy", values["caption_strategy"])
    if strategy == "instance_prompt":
        raise ConfigError(f"{where}: caption_strategy 'instance_prompt' is rejected by SimpleTuner's caption code; write 'instanceprompt'")
    if strategy not in ("textfile", "filename", "instanceprompt"):
        raise ConfigError(f"{where}: caption_strategy '{strategy}' is not implemented; use textfile, filename or instanceprompt")
    prompt = entry.get("instance_prompt", values["instance_prompt"])
    if strategy == "instanceprompt" and not (isinstance(prompt, str) and prompt.strip()):
        raise ConfigError(f"{where}: caption_strategy instanceprompt needs 'instance_prompt' (the caption for every image)")
    resolution = entry.get("resolution", values["resolution"])
    if isinstance(resolution, bool) or not isinstance(resolution, (int, float)) or resolution <= 0:
        raise ConfigError(f"{where}: resolution must be a positive number, got {json.dumps(resolution)}")
    resolution_type = entry.get("resolution_type", values["resolution_type"])
    if resolution_type not in ("pixel", "area", "pixel_area"):
        raise ConfigError(f"{where}: resolution_type '{resolution_type}' is not one of pixel, area, pixel_area")
    crop = _flag(entry, "crop", where)
    crop_style, crop_aspect, buckets = _crop_settings(where, entry)
    repeats = entry.get("repeats", 0)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 0:
        raise ConfigError(f"{where}: repeats must be a whole number >= 0 (0 = each image once per epoch), got {json.dumps(repeats)}")
    embeds_id = entry.get("text_embeds", text_embeds.id)
    if embeds_id != text_embeds.id:
        raise ConfigError(f"{where}: text_embeds '{embeds_id}' is not the id of the text_embeds entry ('{text_embeds.id}')")
    cache_dir = entry.get("cache_dir_vae")
    if cache_dir is None and values.get("cache_dir_vae"):
        cache_dir = str(Path(values["cache_dir_vae"]) / ident)
    if cache_dir is None:
        family = values.get("model_family") or "model"
        cache_dir = str(Path(values["output_dir"]) / "cache" / "vae" / family / ident)
    if not isinstance(cache_dir, str) or not cache_dir:
        raise ConfigError(f"{where}: cache_dir_vae must be a folder path")
    return DatasetSpec(
        id=ident,
        instance_data_dir=Path(folder).expanduser(),
        caption_strategy=strategy,
        instance_prompt=prompt,
        resolution=float(resolution),
        resolution_type=resolution_type,
        crop=crop,
        repeats=repeats,
        cache_dir_vae=Path(cache_dir).expanduser(),
        crop_style=crop_style,
        crop_aspect=crop_aspect,
        crop_aspect_buckets=buckets,
    )


def _dataset_default(key: str) -> Any:
    """SimpleTuner's default for a dataset key (lyco_lint's dataset facts, the one home of them)."""
    from lyco_lint.knowledge import datasets

    return datasets.default(key)


def _crop_settings(where: str, entry: dict[str, Any]) -> tuple[str, str, tuple[tuple[float, Optional[float]], ...]]:
    """crop_style, crop_aspect and crop_aspect_buckets as SimpleTuner checks them (factory.py), checked even
    without crop as SimpleTuner does; defaults and choices from lyco_lint's dataset facts."""
    from lyco_lint.knowledge import datasets

    style = entry.get("crop_style", _dataset_default("crop_style"))
    styles = datasets.choices("crop_style")
    if style not in styles:
        raise ConfigError(f"{where}: crop_style {json.dumps(style)} is not one of {', '.join(styles)} (SimpleTuner refuses it too)")
    if style == "face":
        raise ConfigError(
            f"{where}: crop_style 'face' needs SimpleTuner's face detector (an OpenCV Haar cascade), which lyco train "
            "does not have; use \"random\" (SimpleTuner's default), \"center\" or \"corner\""
        )
    aspect = entry.get("crop_aspect", _dataset_default("crop_aspect"))
    aspects = datasets.choices("crop_aspect")
    if aspect not in aspects:
        raise ConfigError(f"{where}: crop_aspect {json.dumps(aspect)} is not one of {', '.join(aspects)} (SimpleTuner refuses it too)")
    buckets: tuple[tuple[float, Optional[float]], ...] = ()
    if aspect in ("random", "closest"):
        buckets = _aspect_buckets(where, entry.get("crop_aspect_buckets"), aspect)
    return style, aspect, buckets


def _aspect_buckets(where: str, value: Any, mode: str) -> tuple[tuple[float, Optional[float]], ...]:
    example = '"crop_aspect_buckets": [0.75, 1.0, 1.5] or [{"aspect": 1.0, "weight": 0.5}, {"aspect": 1.5, "weight": 0.5}]'
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: crop_aspect '{mode}' needs crop_aspect_buckets, a non-empty list of aspect ratios (width/height): {example}")
    buckets = []
    for item in value:
        if isinstance(item, dict):
            if "aspect" not in item and "aspect_bucket" in item:
                raise ConfigError(
                    f"{where}: crop_aspect_buckets item {json.dumps(item)}: SimpleTuner's messages say 'aspect_bucket' but its "
                    "code reads 'aspect' (a KeyError otherwise); write {\"aspect\": ..., \"weight\": ...}"
                )
            aspect, weight = item.get("aspect"), item.get("weight")
        else:
            aspect, weight = item, None
        if isinstance(aspect, bool) or not isinstance(aspect, (int, float)) or not 0 < aspect < 100:
            raise ConfigError(f"{where}: crop_aspect_buckets item {json.dumps(item)} is not a positive aspect ratio (width/height); {example}")
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0):
            raise ConfigError(f"{where}: crop_aspect_buckets item {json.dumps(item)}: weight must be a number >= 0")
        buckets.append((float(aspect), None if weight is None else float(weight)))
    kinds = {isinstance(item, dict) for item in value}
    if mode == "random" and len(kinds) > 1:
        raise ConfigError(f"{where}: crop_aspect_buckets mixes numbers and objects; SimpleTuner's random crop_aspect reads one kind: {example}")
    if mode == "random" and kinds == {True}:
        weights = [weight for _aspect, weight in buckets]
        if None in weights or abs(sum(weights) - 1.0) > 1e-6:
            raise ConfigError(f"{where}: crop_aspect random with weighted buckets: every item needs a weight and the weights must add up to 1 (SimpleTuner refuses it otherwise)")
    return tuple(buckets)
