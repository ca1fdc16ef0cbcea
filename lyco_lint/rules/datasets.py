"""LYC501-LYC503, LYC505-LYC599: SimpleTuner's dataset config (``multidatabackend.json``), the third file of every run.

SimpleTuner reads every key with ``dict.get``: a typo is ignored without a word, ``"false"`` is true for the
flags it reads by truthiness, and most mistakes surface only after the models are loaded, or never. The
facts are ``knowledge.datasets`` (SimpleTuner 4.8.0, with file:line). Entries that are disabled (``disabled``
or ``disable`` truthy) are dropped by SimpleTuner before anything else, so only their ``disabled`` value is
checked. A dataset config reached through a training config's ``data_backend_config`` reads the defaults the
training config sets (``caption_strategy``, ``instance_prompt``, ``resolution_type``, ...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Optional

from ..catalog import DATASET, ERROR, UNSAFE, WARNING, Fix, Hit, rename_key, replace_value, rule
from ..documents import Document
from ..jsonpos import join_pointer
from ..knowledge import datasets as ds
from ..knowledge.dataset_view import Entry, enabled, entries, listing, setting, shown, substitute
from ..knowledge.training_view import effective
from ..schemas import did_you_mean

# -- LYC501 ----------------------------------------------------------------------------------------------------------


@rule(
    "LYC501",
    "dataset-config-shape",
    ERROR,
    applies_to=DATASET,
    summary=(
        "Reports a dataset config that is not a non-empty JSON array of objects: a top-level object (a single "
        "dataset not wrapped in `[...]`), an empty array, or an item that is not an object."
    ),
    why=(
        "SimpleTuner sorts the entries before anything else and crashes with AttributeError on anything but "
        "objects; an empty list stops with \"Must provide at least one data backend in the data backend config "
        "file.\" — both after the models are loaded."
    ),
    example='{"id": "my-images", "type": "local", "instance_data_dir": "datasets/my-images"}',
    fixed='[{"id": "my-images", "type": "local", "instance_data_dir": "datasets/my-images"}]',
)
def dataset_config_shape(document: Document) -> Iterator[Hit]:
    root = document.root
    if root.kind != "array":
        article = "an" if root.kind[0] in "aeiou" else "a"
        hint = " (a single dataset: wrap it in [ ... ])" if root.kind == "object" else ""
        yield Hit(
            "",
            f"a dataset config is a JSON array of datasets, but the top level is {article} {root.kind}{hint}; "
            "SimpleTuner crashes on it when it sorts the entries",
            at="whole",
        )
        return
    if not root.items:
        yield Hit(
            "",
            "the dataset config is empty: SimpleTuner stops with 'Must provide at least one data backend in the data "
            "backend config file.'; add a dataset such as {\"id\": \"my-images\", \"type\": \"local\", "
            "\"instance_data_dir\": \"datasets/my-images\"}",
            at="whole",
        )
        return
    for index, item in enumerate(root.items):
        if item.kind != "object":
            yield Hit(
                join_pointer("", index),
                f"item {index} is {'an' if item.kind[0] in 'aeiou' else 'a'} {item.kind}, not a dataset object; "
                "SimpleTuner crashes on it (AttributeError) when it sorts the entries",
            )


# -- LYC502 ----------------------------------------------------------------------------------------------------------


def _applies_text(key: ds.DatasetKey) -> str:
    parts = []
    for kinds, backends in key.where:
        text = ", ".join(kinds)
        parts.append(f"{text} datasets" + (f" with type {', '.join(backends)}" if backends else ""))
    return "; ".join(parts)


def _entry_keys(entry: Entry) -> frozenset[str]:
    if entry.backend is None:  # type missing or unknown (LYC503/LYC504): any storage type's keys
        return frozenset().union(*(ds.backend_keys(entry.dataset_type, backend) for backend in ds.backend_types()))
    return ds.backend_keys(entry.dataset_type, entry.backend)


def _kind_text(entry: Entry) -> str:
    return f"{entry.dataset_type} datasets" + (f" with type {entry.backend}" if entry.backend else "")


@rule(
    "LYC502",
    "unknown-dataset-key",
    ERROR,
    applies_to=DATASET,
    summary=(
        "Reports a key SimpleTuner does not read for that dataset (its `dataset_type` and storage `type`), with "
        "the closest known key, and keys inside `caption_shuffle`, `parquet`, `video` and `huggingface` it does "
        "not read. A key SimpleTuner reads but ignores (`ignore_epochs`, `hash_filenames`, "
        "`max_upscale_threshold`) is a warning; `disable_vae_cache`, which it refuses, an error."
    ),
    why=(
        "SimpleTuner reads dataset entries with dict.get and never checks their keys: `crop_styl` or `repeat` "
        "trains with the default instead, and a key of another dataset type (`crop` on a text_embeds entry) "
        "does nothing. `caption_filter_list` outside a text_embeds entry stops the run."
    ),
    example='[{"id": "my-images", "type": "local", "instance_data_dir": "datasets/my-images", "crop_styl": "center"}]',
    fixed='[{"id": "my-images", "type": "local", "instance_data_dir": "datasets/my-images", "crop_style": "center"}]',
    fix=(
        "Unsafe: a key with exactly one close known key is renamed to it (the value starts being read, which "
        "changes the run to what the key evidently meant)."
    ),
)
def unknown_dataset_key(document: Document) -> Iterator[Hit]:
    for entry in enabled(document):
        if not entry.known_type:
            continue  # LYC504 reports the dataset_type
        known = _entry_keys(entry)
        for key in entry.value:
            yield from _key_hits(entry, key, known)
        for key, names in _nested(entry):
            for sub in entry.value[key]:
                if sub not in names:
                    guess = did_you_mean(sub, names)
                    hint = f"did you mean '{guess}'? " if guess else ""
                    yield Hit(
                        entry.at(key, sub),
                        f"'{sub}' is not a key of {key} (SimpleTuner reads {listing(names)}); {hint}it is ignored",
                        at="key",
                        fix=_rename_fix(entry.at(key, sub), sub, guess, entry.value[key]),
                    )


def _nested(entry: Entry) -> Iterator[tuple[str, tuple[str, ...]]]:
    for key, value in entry.value.items():
        spec = ds.dataset_key(key)
        if spec is not None and spec.subkeys and isinstance(value, dict) and spec.applies(entry.dataset_type, entry.backend or "local"):
            yield key, spec.subkeys


def _rename_fix(pointer: str, key: str, guess: Optional[str], container: dict) -> Optional[Fix]:
    if guess is None or guess in container:
        return None
    return Fix(f"Rename '{key}' to '{guess}'", (rename_key(pointer, guess),), UNSAFE)


def _key_hits(entry: Entry, key: str, known: frozenset[str]) -> Iterator[Hit]:
    spec = ds.dataset_key(key)
    pointer = entry.at(key)
    if key in known and spec is not None:
        if spec.status == "removed":
            yield Hit(
                pointer,
                f"'{key}' has been removed: SimpleTuner stops with '(id={entry.ident}) {key} has been removed. Use "
                f"{spec.replaced_by} instead.'; write \"{spec.replaced_by}\"",
                at="key",
                fix=Fix(f"Rename '{key}' to '{spec.replaced_by}'", (rename_key(pointer, spec.replaced_by),), UNSAFE)
                if spec.replaced_by not in entry.value else None,
            )
        elif spec.status in ("deprecated", "ignored", "no_effect"):
            why = {
                "deprecated": "SimpleTuner logs that it is deprecated and will do nothing",
                "ignored": "SimpleTuner ignores it (the value is always true)",
                "no_effect": "SimpleTuner reads it but never passes it on, so it has no effect",
            }[spec.status]
            yield Hit(pointer, f"'{key}': {why}; remove it", at="key", severity=WARNING)
        return
    if spec is not None and key == "caption_filter_list":
        yield Hit(
            pointer,
            f"caption_filter_list on {entry.label} ({entry.dataset_type}): SimpleTuner stops with 'caption_filter_list "
            "is only a valid setting for text datasets'; move it to the text_embeds entry",
            at="key",
        )
        return
    if spec is not None:
        yield Hit(
            pointer,
            f"'{key}' is not read for {_kind_text(entry)} (SimpleTuner reads it for {_applies_text(spec)}), so it is "
            "ignored without a word; remove it",
            at="key",
        )
        return
    guess = did_you_mean(key, sorted(known))
    hint = f"did you mean '{guess}'?" if guess else "no known key is close; remove it"
    yield Hit(
        pointer,
        f"'{key}' is not a key SimpleTuner reads for {_kind_text(entry)}: it is ignored without a word; {hint}",
        at="key",
        fix=_rename_fix(pointer, key, guess, entry.value),
    )


# -- LYC503 ----------------------------------------------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@rule(
    "LYC503",
    "dataset-missing-required",
    ERROR,
    applies_to=DATASET,
    summary=(
        "Reports what SimpleTuner requires and a dataset lacks: `id` and `type` on every entry; "
        "`instance_data_dir` on a local dataset; the four `aws_*` keys on aws; `csv_file`, `csv_cache_dir`, "
        "`csv_caption_column` and `caption_strategy: csv` on csv; `dataset_name` on huggingface; `source` on "
        "webshart; `instance_prompt` for `caption_strategy: instanceprompt` or `prepend_instance_prompt`; "
        "`parquet` (with `path`) for the parquet metadata backend; `target_downsample_size` with "
        "`maximum_image_size`; `crop_aspect_buckets` for `crop_aspect` random or closest; and at least one enabled "
        "dataset of samples. A video dataset without `video.num_frames` is a warning."
    ),
    why=(
        "SimpleTuner finds each of these only while it configures the datasets, after the models are loaded: a "
        "missing `type` is a bare KeyError, and a video dataset without num_frames computes `None * 5`."
    ),
    example='[{"id": "my-images", "instance_data_dir": "datasets/my-images"}]',
    fixed='[{"id": "my-images", "type": "local", "instance_data_dir": "datasets/my-images"}]',
)
def dataset_missing_required(document: Document) -> Iterator[Hit]:
    active = enabled(document)
    for entry in active:
        yield from _required_hits(document, entry, active)
    if entries(document) and not any(entry.primary for entry in active):
        yield Hit(
            "",
            "no enabled dataset of samples (image, video, audio, ...): SimpleTuner stops with 'Must provide at least "
            "one data backend in the data backend config file.'; add one, or enable a disabled one",
            at="whole",
        )
    training = document.context.training
    if training is not None and effective(training, "controlnet") is not None and effective(training, "controlnet").value is True:
        for entry in active:
            if entry.dataset_type == "image" and not entry.value.get("conditioning") and not entry.value.get("conditioning_data"):
                yield Hit(entry.pointer, f"{entry.label}: with controlnet every image dataset needs conditioning_data (or a conditioning block)", at="whole")


def _missing(entry: Entry, key: str, why: str, severity=None) -> Hit:
    where = entry.at(key) if key in entry.value else entry.pointer
    return Hit(where, f"{entry.label} needs {why}", at="value" if key in entry.value else "whole", severity=severity)


def _required_hits(document: Document, entry: Entry, active: list[Entry]) -> Iterator[Hit]:
    value = entry.value
    if _blank(value.get("id")):
        yield _missing(entry, "id", "a non-empty 'id' (SimpleTuner: 'Each dataset needs a unique 'id' field.'); ids name its caches, so keep them stable")
    if "type" not in value:
        yield _missing(entry, "type", "a storage 'type' (local, aws, csv, huggingface, webshart): SimpleTuner reads backend['type'] and stops with KeyError without it")
    if not entry.known_type:
        return
    backend = entry.backend
    if backend == "local" and entry.primary and _blank(value.get("instance_data_dir")) and _blank(value.get("instance_data_root")):
        yield _missing(entry, "instance_data_dir", "'instance_data_dir' (the folder of its files): 'A local backend requires instance_data_dir be defined and pointing to the image data directory.'")
    if backend == "aws":
        absent = [key for key in ("aws_bucket_name", "aws_endpoint_url", "aws_access_key_id", "aws_secret_access_key") if _blank(value.get(key))]
        if absent:
            yield _missing(entry, absent[0], f"{', '.join(absent)} (SimpleTuner: 'Missing required AWS configuration keys')")
    if backend == "csv" and entry.primary:
        absent = [key for key in ("csv_file", "csv_cache_dir", "csv_caption_column") if _blank(value.get(key))]
        if absent:
            yield _missing(entry, absent[0], f"{', '.join(absent)} (SimpleTuner: 'Missing required CSV configuration keys')")
        if value.get("caption_strategy") != "csv":
            yield _missing(entry, "caption_strategy", "\"caption_strategy\": \"csv\" written in the entry: without it the global default (filename) is used and refused ('caption_strategy must be 'csv' for CSV backends.')")
    if backend == "huggingface" and _blank(value.get("dataset_name")) and not (isinstance(value.get("huggingface"), dict) and value["huggingface"].get("dataset_name")):
        yield _missing(entry, "dataset_name", "'dataset_name' ('dataset_name is required for HuggingFace backends.')")
    if backend == "webshart" and _blank(value.get("source")) and not (isinstance(value.get("webshart"), dict) and value["webshart"].get("source")):
        yield _missing(entry, "source", f"'source' ('(id={entry.ident}) Webshart backends require a source field.')")
    if not entry.primary:
        return
    strategy = setting(document, entry, "caption_strategy")
    prompt = setting(document, entry, "instance_prompt")
    prepend = value.get("prepend_instance_prompt")
    if (strategy == "instanceprompt" or prepend) and _blank(prompt) and not isinstance(prompt, list):
        reason = "caption_strategy instanceprompt" if strategy == "instanceprompt" else "prepend_instance_prompt"
        yield _missing(entry, "instance_prompt", f"'instance_prompt' for {reason} (SimpleTuner stops: '...but no instance_prompt was provided')")
    if value.get("metadata_backend") == "parquet" or strategy == "parquet":
        parquet = value.get("parquet")
        if not isinstance(parquet, dict) or _blank(parquet.get("path")):
            yield _missing(entry, "parquet", "a 'parquet' object with a 'path' for the parquet metadata backend ('Parquet metadata backend requires a 'parquet' field')")
    if value.get("maximum_image_size") is not None and setting(document, entry, "target_downsample_size") is None:
        yield _missing(entry, "maximum_image_size", "'target_downsample_size' with maximum_image_size ('...you must also provide a value for `target_downsample_size`.')")
    if value.get("crop_aspect") in ("random", "closest") and "crop_aspect_buckets" not in value:
        yield _missing(entry, "crop_aspect", f"'crop_aspect_buckets' (a list of aspect ratios) for crop_aspect {value['crop_aspect']}")
    if entry.dataset_type == "video":
        video = value.get("video")
        if not isinstance(video, dict) or video.get("num_frames") is None:
            yield _missing(
                entry,
                "video",
                "video.num_frames: without it SimpleTuner uses --framerate × 5, and --framerate is unset by default "
                "(None × 5 fails); set \"video\": {\"num_frames\": ...}",
                severity=WARNING,
            )
    if value.get("conditioning_type") in ("reference_strict", "mask") and _blank(value.get("source_dataset_id")):
        ident = entry.ident
        linked = any(_names(other.value.get("conditioning_data"), ident) for other in active if other is not entry)
        if not linked:
            yield _missing(entry, "conditioning_type", "'source_dataset_id' (or a dataset whose conditioning_data names it): 'Could not find source dataset for strict conditioning alignment.'")


def _names(reference: Any, ident: Any) -> bool:
    return reference == ident or (isinstance(reference, list) and ident in reference)


# -- LYC505 ----------------------------------------------------------------------------------------------------------

def _elsewhere(document: Document, relative: str) -> Optional[Path]:
    """Where a relative path exists if not in the current directory: next to the dataset config or the training config."""
    folders = [document.path.parent]
    if document.context.training is not None:
        folders.append(document.context.training.path.parent)
    for folder in folders:
        candidate = folder / relative
        if candidate.exists():
            return candidate
    return None


@rule(
    "LYC505",
    "dataset-path-not-found",
    WARNING,
    applies_to=DATASET,
    summary=(
        "Reports a path a dataset needs that does not exist where SimpleTuner looks for it: a local dataset's "
        "`instance_data_dir`, a csv dataset's `csv_file`, `parquet.path`, a `caption_filter_list` file. Relative "
        "paths are resolved against the current directory, as SimpleTuner does (not against the dataset config's "
        "folder); when the path exists relative to the config file instead, the message says so. Placeholders "
        "(`{output_dir}`, `{model_family}`, `{id}`, `{env:VAR}`) are filled from the training config and the "
        "environment; a path lint cannot fill is not checked."
    ),
    why=(
        "SimpleTuner checks the folders only after the models are loaded ('The following dataset directories do "
        "not exist'), and resolves every relative path against the directory it is started in: a config that "
        "works from one folder fails from another. A warning, since the path may be meant for the training machine."
    ),
    example='[{"id": "my-images", "type": "local", "instance_data_dir": "no/such/folder"}]',
    fixed='[{"id": "my-images", "type": "local", "instance_data_dir": "."}]',
)
def dataset_path_not_found(document: Document) -> Iterator[Hit]:
    for entry in enabled(document):
        for pointer, text, what in _needed_paths(entry):
            filled = substitute(document, entry, text)
            if filled is None or not filled.strip():
                continue
            path = Path(filled).expanduser()
            if path.exists():
                continue
            where = "the current directory" if not path.is_absolute() else "that path"
            other = _elsewhere(document, filled) if not path.is_absolute() else None
            if other is not None:
                message = (
                    f"{what} '{text}' does not exist relative to {where} ({Path.cwd()}), where SimpleTuner resolves it; "
                    f"it exists relative to the config file ({other}). SimpleTuner only finds it when started from "
                    f"{other.parent if other.name == Path(filled).name else other}; write an absolute path, or run it from there"
                )
            else:
                message = f"{what} '{text}' does not exist (SimpleTuner resolves relative paths against {where}, {Path.cwd()}); create it or fix the path"
            yield Hit(pointer, message)


def _needed_paths(entry: Entry) -> Iterator[tuple[str, str, str]]:
    value = entry.value
    if entry.backend == "local" and entry.primary:
        for key in ("instance_data_dir", "instance_data_root"):
            if isinstance(value.get(key), str) and value[key].strip():
                yield entry.at(key), value[key], f"{entry.label}: {key}"
                break
    if entry.backend == "csv" and isinstance(value.get("csv_file"), str):
        yield entry.at("csv_file"), value["csv_file"], f"{entry.label}: csv_file"
    parquet = value.get("parquet")
    if isinstance(parquet, dict) and isinstance(parquet.get("path"), str) and entry.backend in ("local", None):
        yield entry.at("parquet", "path"), parquet["path"], f"{entry.label}: parquet.path"
    filters = value.get("caption_filter_list")
    if isinstance(filters, str) and filters.endswith((".txt", ".json")):
        yield entry.at("caption_filter_list"), filters, f"{entry.label}: caption_filter_list"


# -- LYC506 / LYC507 ------------------------------------------------------------------------------------------------


@rule(
    "LYC506",
    "no-text-embeds-backend",
    ERROR,
    applies_to=DATASET,
    summary=(
        "Reports a dataset whose `text_embeds` (or `text_embed_cache`) names no enabled text_embeds entry, and more "
        "than one enabled text_embeds entry with `default: true`. Without any text_embeds entry SimpleTuner creates "
        "its own (`<output_dir>/cache/text/<model_family>`), which is fine."
    ),
    why=(
        "SimpleTuner stops with 'Text embed backend X not found in data backend config file.' or 'Only one text "
        "embed backend can be marked as default.' while configuring the datasets, after the models are loaded."
    ),
    example=(
        '[{"id": "my-images", "type": "local", "instance_data_dir": ".", "text_embeds": "text-embed"},\n'
        ' {"id": "text-embeds", "dataset_type": "text_embeds", "type": "local", "default": true}]'
    ),
    fixed=(
        '[{"id": "my-images", "type": "local", "instance_data_dir": ".", "text_embeds": "text-embeds"},\n'
        ' {"id": "text-embeds", "dataset_type": "text_embeds", "type": "local", "default": true}]'
    ),
    fix="Unsafe: a text_embeds reference with exactly one close enabled text_embeds id is replaced by it.",
)
def no_text_embeds_backend(document: Document) -> Iterator[Hit]:
    active = enabled(document)
    caches = [entry for entry in active if entry.dataset_type == "text_embeds"]
    ids = [entry.ident for entry in caches if isinstance(entry.ident, str)]
    disabled = {entry.ident for entry in entries(document) if not entry.enabled and entry.dataset_type == "text_embeds"}
    for entry in active:
        if not entry.primary:
            continue
        for key in ("text_embeds", "text_embed_cache"):
            name = entry.value.get(key)
            if not isinstance(name, str) or name in ids:
                continue
            guess = did_you_mean(name, ids)
            state = "is disabled" if name in disabled else "is not an enabled text_embeds entry"
            hint = f"did you mean '{guess}'?" if guess else (f"enabled text_embeds ids: {', '.join(ids)}" if ids else "add a text_embeds entry with that id")
            yield Hit(
                entry.at(key),
                f"{key} '{name}' {state}: SimpleTuner stops with 'Text embed backend {name} not found in data backend "
                f"config file.'; {hint}",
                fix=Fix(f"Write '{guess}'", (replace_value(entry.at(key), guess),), UNSAFE) if guess else None,
            )
    defaults = [entry for entry in caches if entry.value.get("default") is True]
    for extra in defaults[1:]:
        yield Hit(
            extra.at("default"),
            f"{extra.label} is a second default text_embeds entry (after {defaults[0].label}): SimpleTuner stops with "
            "'Only one text embed backend can be marked as default.'; keep one default",
        )


@rule(
    "LYC507",
    "duplicate-dataset-id",
    ERROR,
    applies_to=DATASET,
    summary="Reports an enabled dataset whose `id` an earlier enabled dataset already uses.",
    why=(
        "SimpleTuner stops with 'Each dataset needs a unique 'id' field.' after the models are loaded, except for "
        "two text_embeds entries, where the later one silently replaces the earlier. Ids also name the caches, so "
        "two datasets sharing one would share bucket files."
    ),
    example='[{"id": "photos", "type": "local", "instance_data_dir": "a"}, {"id": "photos", "type": "local", "instance_data_dir": "b"}]',
    fixed='[{"id": "photos-a", "type": "local", "instance_data_dir": "a"}, {"id": "photos-b", "type": "local", "instance_data_dir": "b"}]',
)
def duplicate_dataset_id(document: Document) -> Iterator[Hit]:
    first: dict[str, Entry] = {}
    for entry in enabled(document):
        ident = entry.ident
        if not isinstance(ident, str) or not ident.strip():
            continue
        if ident in first:
            earlier = first[ident]
            both_text = earlier.dataset_type == entry.dataset_type == "text_embeds"
            effect = "the later one silently replaces the earlier" if both_text else "SimpleTuner stops with 'Each dataset needs a unique 'id' field.'"
            yield Hit(entry.at("id"), f"id '{ident}' is also entry {earlier.index}'s: {effect}; give each dataset its own id")
        else:
            first[ident] = entry


# -- LYC508 ----------------------------------------------------------------------------------------------------------

MAX_CACHE_BYTES = 8 * 2**20  # a bucket cache lists every file of the dataset; beyond this, only say that it exists


@rule(
    "LYC508",
    "cached-dataset-config",
    WARNING,
    applies_to=DATASET,
    summary=(
        "Reports a local dataset whose aspect-bucket cache (`aspect_ratio_bucket_indices_<id>.json` in its "
        "`instance_data_dir`) from an earlier run records different values for keys of this entry (`crop`, "
        "`resolution`, `crop_style`, ...). Keys SimpleTuner re-reads on every run (`repeats`, `probability`, the "
        "schedule, ...) are not compared."
    ),
    why=(
        "When a bucket cache exists SimpleTuner logs the changed keys as errors and restores the cached values: the "
        "edit to the dataset config silently does nothing unless `--override_dataset_config` is set or the cache "
        "is deleted."
    ),
    example='[{"id": "my-images", "type": "local", "instance_data_dir": "datasets/my-images", "resolution": 1024}]',
    fixed='[{"id": "my-images", "type": "local", "instance_data_dir": "datasets/my-images", "resolution": 1024}]',
)
def cached_dataset_config(document: Document) -> Iterator[Hit]:
    exempt = ds.cache_exempt_keys()
    for entry in enabled(document):
        if entry.backend != "local" or not entry.primary or not isinstance(entry.value.get("instance_data_dir"), str):
            continue
        folder = substitute(document, entry, entry.value["instance_data_dir"])
        if not folder:
            continue
        cache = Path(folder).expanduser() / ds.bucket_cache_names(entry.value)[0]
        cached = _cached_config(cache)
        if cached is None:
            continue
        changed = [
            key for key, value in entry.value.items()
            if key not in exempt and key in cached and cached[key] != value
        ]
        if changed:
            differences = ", ".join(f"{key} ({shown(cached[key])} cached, {shown(entry.value[key])} here)" for key in changed[:4])
            yield Hit(
                entry.at(changed[0]),
                f"{entry.label}: the bucket cache of an earlier run ({cache}) records other values for {differences}; "
                "SimpleTuner restores the cached values unless --override_dataset_config is set: set it, or delete "
                "the cache files to rebuild them",
                at="key",
            )


def _cached_config(cache: Path) -> Optional[dict[str, Any]]:
    try:
        if not cache.is_file() or cache.stat().st_size > MAX_CACHE_BYTES:
            return None
        value = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    config = value.get("config") if isinstance(value, dict) else None
    return config if isinstance(config, dict) and config else None
