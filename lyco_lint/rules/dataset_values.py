"""LYC504: values in a dataset config (``multidatabackend.json``) that SimpleTuner rejects or misreads: choices,
storage types a dataset type cannot use, flags read by truthiness, numbers of the wrong kind, references to no
enabled dataset, shared caches and a schedule with nothing to train at the start. The keys themselves are
:mod:`.datasets`' (LYC501-LYC503, LYC505-LYC508).
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Iterator, Optional

from ..catalog import DATASET, ERROR, UNSAFE, WARNING, Fix, Hit, replace_value, rule
from ..documents import Document
from ..knowledge import datasets as ds
from ..knowledge.dataset_view import Entry, enabled, entries, listing, setting, shown
from ..knowledge.training_view import effective
from ..schemas import did_you_mean

# -- LYC504 ----------------------------------------------------------------------------------------------------------

_EXAMPLE_PLACEHOLDER = re.compile(r"^\w+(\|\w+)+$")  # "random|center|corner" from SimpleTuner's example file


@rule(
    "LYC504",
    "dataset-invalid-value",
    ERROR,
    applies_to=DATASET,
    summary=(
        "Reports a value SimpleTuner rejects or misreads: not one of the choices (`dataset_type`, `type`, "
        "`crop_style`, `crop_aspect`, `resolution_type`, `caption_strategy`, `metadata_backend`, "
        "`conditioning_type`, ...), a storage type the dataset type cannot use (memory for images, csv for text "
        "embeds), a string where SimpleTuner reads a flag by truthiness (`\"disabled\": \"false\"` disables the "
        "dataset), a non-boolean `default`, wrong types (`resolution: \"1024\"`, `train_batch_size: 4.0`, a "
        "truncated `repeats`), a `probability` of 0, a reference to no enabled dataset (`conditioning_data`, "
        "`image_embeds`, ...), two datasets sharing a `cache_dir_vae`, and a schedule with nothing to train at the "
        "start. Values that only surprise (a truncated number, a deprecated choice) are warnings."
    ),
    why=(
        "SimpleTuner validates few values at all and those late: `crop_style` and `resolution_type` fail after "
        "the models are loaded, `\"crop\": \"false\"` turns cropping on, `\"default\": \"true\"` on a text-embeds "
        "entry is counted as not default but chosen as default, and a `dataset_type` of \"Video\" half-works "
        "(the enum lower-cases it, other checks compare the raw string)."
    ),
    example='[{"id": "my-images", "type": "local", "instance_data_dir": "datasets/my-images", "crop": "false", "crop_style": "middle"}]',
    fixed='[{"id": "my-images", "type": "local", "instance_data_dir": "datasets/my-images", "crop": false, "crop_style": "center"}]',
    fix=(
        "Safe: a flag read by truthiness written as the JSON boolean it means (1 → true, null → false, \"true\" → "
        "true). Unsafe: the string \"false\" (and \"no\", \"off\", \"0\") written as false, which changes what "
        "SimpleTuner does to what it says; a choice written in the wrong case, or with one close choice, replaced "
        "by it."
    ),
)
def dataset_invalid_value(document: Document) -> Iterator[Hit]:
    active = enabled(document)
    for entry in entries(document):
        for key in ("disabled", "disable"):
            if key in entry.value:
                yield from _flag_hits(entry, key, entry.value[key])
    for entry in active:
        for key, value in entry.value.items():
            if key in ("disabled", "disable"):
                continue
            spec = ds.dataset_key(key)
            if spec is None or (not spec.applies(entry.dataset_type, entry.backend or "local") and key not in ("type", "dataset_type")):
                continue  # LYC502 reports keys this dataset does not read
            yield from _value_hits(document, entry, spec, value)
    yield from _reference_hits(active)
    yield from _cache_dir_hits(document, active)
    yield from _schedule_hits(active)
    yield from _inherited_caption_strategy(document, active)


def _inherited_caption_strategy(document: Document, active: list[Entry]) -> Iterator[Hit]:
    """argparse accepts the global `caption_strategy: instance_prompt`; the datasets that inherit it refuse it."""
    training = document.context.training
    option = effective(training, "caption_strategy") if training is not None else None
    if option is None or option.text != "instance_prompt":
        return
    inheriting = [entry.label for entry in active if entry.primary and "caption_strategy" not in entry.value]
    if inheriting:
        yield Hit(
            option.pointer,
            f"caption_strategy 'instance_prompt' passes argparse, but the datasets that inherit it ({listing(inheriting, 4)} "
            f"in {document.display_path}) refuse it ('Unsupported caption strategy'); write \"caption_strategy\": "
            "\"instanceprompt\" in each dataset instead (argparse does not accept that spelling here)",
            document=training,
        )


def _choice_hit(pointer: str, key: str, value: Any, allowed: tuple, what: str = "") -> Optional[Hit]:
    if not isinstance(value, str) or value in allowed or "{" in value:
        return None
    lowered = value.strip().lower()
    if lowered in allowed:
        return Hit(
            pointer,
            f"{key} '{value}' must be written '{lowered}': SimpleTuner compares the exact string{what}",
            fix=Fix(f"Write '{lowered}'", (replace_value(pointer, lowered),), UNSAFE),
        )
    if _EXAMPLE_PLACEHOLDER.match(value):
        return Hit(pointer, f"{key} '{value}' lists the choices, as SimpleTuner's example file does; pick one of {', '.join(map(str, allowed))}")
    guess = did_you_mean(value, [str(choice) for choice in allowed])
    hint = f"did you mean '{guess}'? " if guess else ""
    return Hit(
        pointer,
        f"{key} '{value}' is not one of SimpleTuner's choices; {hint}choices: {', '.join(map(str, allowed))}",
        fix=Fix(f"Write '{guess}'", (replace_value(pointer, guess),), UNSAFE) if guess else None,
    )


def _dataset_type_hit(pointer: str, value: str) -> Hit:
    lowered = value.strip().lower()
    if lowered in ds.dataset_types():
        return Hit(
            pointer,
            f"dataset_type '{value}' half-works: SimpleTuner's enum lower-cases it, but many of its checks compare the "
            f"raw string (== 'video', ...); write '{lowered}'",
            fix=Fix(f"Write '{lowered}'", (replace_value(pointer, lowered),), UNSAFE),
        )
    guess = did_you_mean(lowered, list(ds.dataset_types()))
    hint = f"did you mean '{guess}'? " if guess else ""
    return Hit(
        pointer,
        f"dataset_type '{value}' is not one SimpleTuner knows (it stops with 'Unknown dataset_type'); {hint}choices: "
        f"{', '.join(ds.dataset_types())}",
        fix=Fix(f"Write '{guess}'", (replace_value(pointer, guess),), UNSAFE) if guess else None,
    )


def _flag_hits(entry: Entry, key: str, value: Any) -> Iterator[Hit]:
    """A flag SimpleTuner reads by Python truthiness (or ``_as_bool``), written as anything but a JSON boolean."""
    spec = ds.dataset_key(key)
    pointer = entry.at(key)
    if isinstance(value, bool) or spec is None:
        return
    if spec.reading == ds.AS_BOOL:
        if ds.as_bool(value) is None:
            yield Hit(pointer, f"{key}: {shown(value)} is not a boolean SimpleTuner understands (true/false, yes/no, on/off, 1/0); write true or false", severity=WARNING)
        return
    means = bool(value)
    consequence = {
        "disabled": "the dataset is dropped" if means else "the dataset stays enabled",
        "disable": "the dataset is dropped" if means else "the dataset stays enabled",
        "crop": "images are cropped" if means else "images are not cropped",
    }.get(key, f"{key} is {'on' if means else 'off'}")
    if isinstance(value, str):
        word = value.strip().lower()
        said = True if word in ("true", "yes", "on", "1") else False if word in ("false", "no", "off", "0", "") else None
        if said is not None and said != means:
            yield Hit(
                pointer,
                f"{key} is the string {shown(value)}, which SimpleTuner reads by Python truthiness as {str(means).lower()}: "
                f"{consequence}; write {str(said).lower()} without quotes",
                fix=Fix(f"Write {str(said).lower()}", (replace_value(pointer, said),), UNSAFE),
            )
            return
        yield Hit(
            pointer,
            f"{key} is the string {shown(value)}; SimpleTuner reads it by truthiness as {str(means).lower()} "
            f"({consequence}); write {str(means).lower()}",
            fix=Fix(f"Write {str(means).lower()}", (replace_value(pointer, means),)),
        )
        return
    yield Hit(
        pointer,
        f"{key} is {shown(value)}, which SimpleTuner reads by truthiness as {str(means).lower()} ({consequence}); write "
        f"{str(means).lower()}",
        severity=WARNING,
        fix=Fix(f"Write {str(means).lower()}", (replace_value(pointer, means),)),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _value_hits(document: Document, entry: Entry, spec: ds.DatasetKey, value: Any) -> Iterator[Hit]:
    key, pointer = spec.name, entry.at(spec.name)
    if isinstance(value, float) and not math.isfinite(value):
        return  # LYC017
    if key == "type":
        if isinstance(value, str) and value in ds.backend_types() and entry.known_type and value not in ds.allowed_backend_types(entry.dataset_type):
            allowed = ds.allowed_backend_types(entry.dataset_type)
            yield Hit(pointer, f"type '{value}' cannot hold {entry.dataset_type} datasets (SimpleTuner refuses it); use one of {', '.join(allowed)}")
            return
        if not isinstance(value, str):
            yield Hit(pointer, f"type must be a string (local, aws, csv, huggingface, webshart), not {shown(value)}")
            return
    if key == "dataset_type":
        if isinstance(value, str) and value not in ds.dataset_types() and "{" not in value:
            yield _dataset_type_hit(pointer, value)
        return
    if key == "caption_strategy" and value == "instance_prompt":
        yield Hit(pointer, "caption_strategy 'instance_prompt' is refused by SimpleTuner's caption code ('Unsupported caption strategy'); write 'instanceprompt'", fix=Fix("Write 'instanceprompt'", (replace_value(pointer, "instanceprompt"),), UNSAFE))
        return
    if key == "metadata_backend" and value == "filesystem":
        yield Hit(pointer, "metadata_backend 'filesystem' is deprecated: SimpleTuner warns and uses 'discovery'; write 'discovery'", severity=WARNING, fix=Fix("Write 'discovery'", (replace_value(pointer, "discovery"),)))
        return
    if spec.choices and key not in ("dataset_type",):
        hit = _choice_hit(pointer, key, value, spec.choices)
        if hit is not None:
            yield hit
        return
    if spec.reading == ds.MIXED_BOOL:
        if not isinstance(value, bool):
            yield Hit(
                pointer,
                f"default is {shown(value)}, not true or false: SimpleTuner counts default text-embeds entries with "
                f"`is True` (so this one does not count) but picks the default by truthiness (so this one may be "
                f"picked): which cache holds the validation prompts depends on the order; write {str(bool(value)).lower()}",
                fix=Fix(f"Write {str(bool(value)).lower()}", (replace_value(pointer, bool(value)),), UNSAFE),
            )
        return
    if spec.is_flag:
        yield from _flag_hits(entry, key, value)
        return
    yield from _number_hits(document, entry, spec, value)
    if spec.type == "string" and value is not None and not isinstance(value, str):
        yield Hit(pointer, f"{key} must be a string, not {shown(value)}")
    elif spec.type == "object" and value is not None and not isinstance(value, dict):
        yield Hit(pointer, f"{key} must be a JSON object, not {shown(value)}")
    elif spec.type == "array" and value is not None and not isinstance(value, list):
        yield Hit(pointer, f"{key} must be a JSON array, not {shown(value)}")
    if key == "video" and isinstance(value, dict):
        yield from _video_hits(entry, value)
    if key == "caption_shuffle" and isinstance(value, dict):
        hit = _choice_hit(entry.at(key, "split_on"), "caption_shuffle.split_on", value.get("split_on"), ds.choices("caption_shuffle.split_on"))
        if "split_on" in value and hit is not None:
            yield hit


SIZE_KEYS = ("maximum_image_size", "target_downsample_size", "minimum_image_size")


def _number_hits(document: Document, entry: Entry, spec: ds.DatasetKey, value: Any) -> Iterator[Hit]:
    key, pointer = spec.name, entry.at(spec.name)
    if spec.type not in ("integer", "number") or value is None:
        return
    pixel_area = setting(document, entry, "resolution_type") == "pixel_area"
    if key == "train_batch_size":
        if not ((_is_int(value) and value >= 1) or (isinstance(value, str) and value.isdigit() and value == str(int(value)) and int(value) >= 1)):
            yield Hit(pointer, f"train_batch_size {shown(value)}: SimpleTuner stops with '(id={entry.ident}) train_batch_size must be a positive integer.'; write a whole number such as 1")
        return
    if key == "repeats":
        if isinstance(value, str):
            try:
                int(value)
            except ValueError:
                yield Hit(pointer, f"repeats {shown(value)}: SimpleTuner calls int() on it and stops with ValueError; write a whole number (0 = each sample once per epoch)")
        elif isinstance(value, float) and not value.is_integer():
            yield Hit(pointer, f"repeats {value} is truncated by SimpleTuner's int() to {int(value)}; write {int(value)} (repeats are whole extra passes)", severity=WARNING)
        return
    if key == "probability":
        if _is_number(value) and value == 0:
            yield Hit(pointer, "probability 0: the dataset gets weight 0 and is never sampled; remove the dataset, disable it, or give it a weight", severity=WARNING)
        elif not _is_number(value) and not (isinstance(value, str) and _float(value) is not None):
            yield Hit(pointer, f"probability {shown(value)} is not a number (SimpleTuner calls float() on it)")
        return
    if spec.reading in ("lenient_int", "lenient_float"):
        if not (_is_int(value) if spec.reading == "lenient_int" else _is_number(value)):
            fallback = {"start_epoch": "1", "start_step": "0", "end_epoch": "no end", "end_step": "no end"}.get(key, "its default")
            yield Hit(pointer, f"{key} {shown(value)} is not a {'whole ' if spec.reading == 'lenient_int' else ''}number: SimpleTuner silently uses {fallback} instead", severity=WARNING)
        return
    if key == "resolution" and pixel_area:
        if isinstance(value, str):
            yield Hit(pointer, f"resolution {shown(value)} as a string passes SimpleTuner's check under pixel_area and then crashes multiplying it (TypeError); write the number")
        elif isinstance(value, float):
            yield Hit(pointer, f"resolution {value}: under pixel_area SimpleTuner requires a JSON integer (a float raises); write {int(value) if value.is_integer() else round(value)}")
        return
    if key in SIZE_KEYS and pixel_area and isinstance(value, str):
        yield Hit(pointer, f"{key} {shown(value)} as a string crashes SimpleTuner under pixel_area (TypeError); write the number")
        return
    if key in SIZE_KEYS and pixel_area and _is_number(value) and 0 < value <= 10:
        yield Hit(pointer, f"{key} {value} looks like megapixels, but under pixel_area SimpleTuner reads an edge in pixels (squared, then / 1e6); write the edge, such as 1024", severity=WARNING)
        return
    if isinstance(value, str) and _float(value) is not None:
        yield Hit(pointer, f"{key} {shown(value)} is a string; write the number without quotes", severity=WARNING)
    elif not _is_number(value):
        yield Hit(pointer, f"{key} must be a number, not {shown(value)}")
    elif spec.type == "integer" and not float(value).is_integer():
        yield Hit(pointer, f"{key} {value} is not a whole number; write one", severity=WARNING)


def _float(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None


def _video_hits(entry: Entry, video: dict) -> Iterator[Hit]:
    num, low = video.get("num_frames"), video.get("min_frames")
    if num is not None and low is not None and not _is_int(num) and not _is_int(low):
        yield Hit(entry.at("video"), "video.num_frames and video.min_frames must be whole numbers", at="key")
    elif _is_int(num) and _is_int(low) and low < num:
        yield Hit(entry.at("video", "min_frames"), f"video.min_frames {low} is below num_frames {num}: SimpleTuner requires min_frames >= num_frames")
    for name in ("num_frames", "min_frames"):
        if _is_int(video.get(name)) and video[name] < 1:
            yield Hit(entry.at("video", name), f"video.{name} must be at least 1")
    hit = _choice_hit(entry.at("video", "bucket_strategy"), "video.bucket_strategy", video.get("bucket_strategy"), ds.choices("video.bucket_strategy"))
    if "bucket_strategy" in video and hit is not None:
        yield hit


REFERENCE_KEYS = {
    # key -> dataset types the named entry must have (None: any primary)
    "image_embeds": ("image_embeds",),
    "conditioning_image_embeds": ("conditioning_image_embeds",),
    "conditioning_data": ("conditioning",),
    "s2v_datasets": ("audio",),
    "source_dataset_id": None,
}


def _reference_hits(active: list[Entry]) -> Iterator[Hit]:
    by_id = {entry.ident: entry for entry in active if isinstance(entry.ident, str)}
    for entry in active:
        for key, kinds in REFERENCE_KEYS.items():
            if key not in entry.value:
                continue
            value = entry.value[key]
            names = value if isinstance(value, list) else [value]
            for index, name in enumerate(names):
                if not isinstance(name, str):
                    continue
                pointer = entry.at(key, index) if isinstance(value, list) else entry.at(key)
                target = by_id.get(name)
                if target is None:
                    yield Hit(pointer, f"{key} '{name}' names no enabled dataset of this config (SimpleTuner stops: '... not found'); known ids: {listing(by_id)}")
                elif kinds is not None and target.dataset_type not in kinds:
                    yield Hit(pointer, f"{key} '{name}' names a {target.dataset_type} dataset; it must name a {' or '.join(kinds)} dataset")


def _cache_dir_hits(document: Document, active: list[Entry]) -> Iterator[Hit]:
    seen: dict[str, Entry] = {}
    text_caches = {entry.value.get("cache_dir"): entry for entry in active if entry.dataset_type == "text_embeds" and isinstance(entry.value.get("cache_dir"), str)}
    for entry in active:
        folder = entry.value.get("cache_dir_vae")
        if not entry.primary or not isinstance(folder, str):
            continue
        key = os.path.normpath(folder)
        if key in seen:
            yield Hit(entry.at("cache_dir_vae"), f"cache_dir_vae '{folder}' is also {seen[key].label}'s: SimpleTuner refuses two datasets sharing a VAE cache; give each its own folder")
        elif key in {os.path.normpath(path) for path in text_caches}:
            yield Hit(entry.at("cache_dir_vae"), f"cache_dir_vae '{folder}' is also the text-embeds cache_dir: SimpleTuner refuses it; give the VAE cache its own folder")
        seen.setdefault(key, entry)


def _schedule_hits(active: list[Entry]) -> Iterator[Hit]:
    primaries = [entry for entry in active if entry.primary]
    for entry in primaries:
        value = entry.value
        for start, end in (("start_epoch", "end_epoch"), ("start_step", "end_step")):
            low, high = value.get(start), value.get(end)
            if _is_int(low) and _is_int(high) and high > 0 and high < low and (start == "start_epoch" or low > 0):
                yield Hit(entry.at(end), f"{end} {high} is before {start} {low}: SimpleTuner stops ('{end} ... must be >= {start}')")

    def starts_late(entry: Entry) -> bool:
        epoch, step = entry.value.get("start_epoch", 1), entry.value.get("start_step", 0)
        return (_is_int(epoch) and epoch > 1) or (_is_int(step) and step > 1)

    if primaries and all(starts_late(entry) for entry in primaries):
        yield Hit(primaries[0].at("start_epoch") if "start_epoch" in primaries[0].value else primaries[0].at("start_step"), "no dataset is available at the start of training: SimpleTuner stops ('At least one dataset must be available at the start of training'); let one start at epoch 1, step 0")

