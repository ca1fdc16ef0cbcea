"""Regenerate ``lyco_lint/data/simpletuner_datasets.json``: the keys of SimpleTuner's dataset config
(``multidatabackend.json``) as lint and the trainer read them.

The reference file (``shared/reference/simpletuner_datasets.json``) is a static reading of SimpleTuner
4.8.0's data backend factory, one entry per key with the file:line it was read from. This tool keeps what
lyco needs, per key:

* ``where``: the (dataset types, backend types) pairs of entries SimpleTuner reads the key for (``*`` in
  the reference is every dataset type; keys of one storage type, such as ``aws_bucket_name`` or
  ``csv_file``, are read only for that ``type``);
* ``type``, ``default`` (a value; ``default_text`` when the default is a rule such as
  ``<output_dir>/cache/vae/<model_family>/<id>``), ``default_from`` (the training option it falls back to),
  ``choices``;
* ``reading``: how SimpleTuner reads the value, where that differs from its JSON type: ``truthiness``
  (Python truthiness: the string "false" is true), ``as_bool`` (true/1/yes/on, false/0/no/off/""),
  ``int_if_truthy`` (``int(v) if v else 0``), ``float_or_default``, ``positive_int``, ``lenient_int`` (a bad
  value silently falls back), ``lenient_float``;
* ``status``: ``removed`` (SimpleTuner stops), ``deprecated`` / ``ignored`` / ``no_effect`` (read, but does
  nothing), with ``replaced_by``; ``alias_of`` for a second spelling;
* ``required_when`` (text), ``subkeys`` (the keys of an object value, where SimpleTuner reads a fixed set),
  ``source`` (SimpleTuner file:line) and ``notes``.

Keys the reference lists only inside another key's notes (the webshart keys, the huggingface top-level
columns, the flat audio keys, ``csv_shorten_filenames``) are added with that key's citation. Run it when
the reference changes (a new SimpleTuner version)::

    python tools/build_dataset_data.py SOURCE [--output PATH]

The output is written atomically. This tool is for maintainers and is not part of the wheel.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from lyco_lint.atomic import write_text  # noqa: E402

GENERATED_BY = "python tools/build_dataset_data.py"
DEFAULT_OUTPUT = ROOT / "lyco_lint" / "data" / "simpletuner_datasets.json"

PRIMARY = ["image", "video", "audio", "conditioning", "eval", "caption"]
CACHES = ["text_embeds", "image_embeds", "conditioning_image_embeds", "distillation_cache"]
PRIMARY_BACKENDS = ["local", "aws", "csv", "huggingface", "webshart"]
# Storage types a cache entry may use (the type key's notes): memory only holds text and image embeds, csv no
# cache at all; distillation caches use any builder type.
CACHE_BACKENDS = {
    "text_embeds": ["local", "memory", "aws"],
    "image_embeds": ["local", "memory", "aws"],
    "conditioning_image_embeds": ["local", "aws"],
    "distillation_cache": ["local", "aws", "csv", "huggingface", "webshart"],
}

# Keys read only for one storage type (the reference lists them for every dataset type; its required_when and
# notes name the type).
BACKEND_ONLY = {
    "aws_bucket_name": ["aws"], "aws_endpoint_url": ["aws"], "aws_access_key_id": ["aws"],
    "aws_secret_access_key": ["aws"], "aws_region_name": ["aws"], "aws_session_token": ["aws"],
    "aws_max_pool_connections": ["aws"],
    "csv_file": ["csv"], "csv_cache_dir": ["csv"], "csv_caption_column": ["csv"], "csv_url_column": ["csv"],
    "shorten_filenames": ["csv"],
    "dataset_name": ["huggingface"], "huggingface": ["huggingface"],
    "source": ["webshart"],
    "memory_filesystem_path": ["memory"], "memory_filesystem_size": ["memory"], "memory_filesystem_sudo": ["memory"],
}
# cache_dir is also the download cache of huggingface and webshart primary datasets (its notes).
ALSO_WHERE = {"cache_dir": [{"dataset_types": PRIMARY, "backend_types": ["huggingface", "webshart"]}]}

# How SimpleTuner reads a value, where the reference's coercion text says it differs from the JSON type.
READING_BY_KEY = {
    "repeats": "int_if_truthy",
    "probability": "float_or_default",
    "train_batch_size": "positive_int",
    "start_epoch": "lenient_int",
    "start_step": "lenient_int",
    "end_epoch": "lenient_int",
    "end_step": "lenient_int",
    "disable_after_epoch_step": "lenient_int",
    "slider_strength": "lenient_float",
    "default": "mixed_bool",
}

STATUS = {
    "disable_vae_cache": ("removed", "vae_cache_disable"),
    "ignore_epochs": ("deprecated", None),
    "hash_filenames": ("ignored", None),
    "max_upscale_threshold": ("no_effect", None),
}
ALIASES = {
    "disable": "disabled",
    "instance_data_root": "instance_data_dir",
    "text_embed_cache": "text_embeds",
    "is_regularization_data": "is_regularisation_data",
    "csv_shorten_filenames": "shorten_filenames",
}
# Defaults the reference writes as prose: the value part, when there is one.
DEFAULT_VALUES = {"metadata_backend": "discovery"}

# Object values whose keys SimpleTuner reads from a fixed set (from each key's notes).
SUBKEYS = {
    "caption_shuffle": ["enable", "count", "seed", "split_on", "position_start", "include_original"],
    "parquet": [
        "path", "caption_column", "fallback_caption_column", "filename_column", "identifier_includes_extension",
        "width_column", "height_column",
    ],
    "video": ["num_frames", "min_frames", "max_frames", "is_i2v", "bucket_strategy", "frame_interval"],
    "huggingface": [
        "dataset_name", "split", "revision", "image_column", "video_column", "audio_column", "cache_dir", "streaming",
        "num_proc", "composite_image_config", "auto_load", "filter_func",
    ],
}
# Nested values with choices (from the notes of their object key).
SUBKEY_CHOICES = {
    "caption_shuffle.split_on": ["comma", "space", "period"],
    "video.bucket_strategy": ["aspect_ratio", "resolution_frames"],
    "audio.truncation_mode": ["beginning", "end", "random"],
}

# Keys the reference names only in another key's notes: name -> (cited key, where, type, note).
FROM_NOTES = {
    **{
        name: ("source", "webshart", kind, "A webshart option (listed with `source`).")
        for name, kind in (
            ("webshart", "object"), ("metadata", "string"), ("hf_token", "string"), ("subfolder", "string"),
            ("metadata_cache_dir", "string"), ("shard_cache_dir", "string"), ("shard_cache_gb", "number"),
            ("parallel_downloads", "integer"), ("buffer_size", "integer"), ("max_file_size", "integer"),
            ("webshart_optimize_captions", "boolean"),
        )
    },
    **{
        name: ("huggingface", "huggingface", "string", "Also read at the top level of a huggingface entry.")
        for name in ("split", "revision", "image_column", "video_column", "audio_column")
    },
    **{
        f"audio_{name}": ("audio", None, kind, f"Flat spelling of audio.{name}.")
        for name, kind in (
            ("min_duration_seconds", "number"), ("max_duration_seconds", "number"), ("channels", "integer"),
            ("bucket_strategy", "string"), ("duration_interval", "number"), ("truncation_mode", "string"),
        )
    },
    "csv_shorten_filenames": ("shorten_filenames", "csv", "boolean", "Older spelling of shorten_filenames."),
}


def _dataset_types(applies_to: list[str]) -> list[str]:
    return PRIMARY + CACHES if "*" in applies_to else [kind for kind in PRIMARY + CACHES if kind in applies_to]


def _reading(name: str, spec: dict[str, Any]) -> str | None:
    if name in READING_BY_KEY:
        return READING_BY_KEY[name]
    coercion = (spec.get("coercion") or "").lower()
    if "_as_bool" in coercion:
        return "as_bool"
    if "truthiness" in coercion or "bool()" in coercion:
        return "truthiness"
    return None


def _default(name: str, spec: dict[str, Any]) -> tuple[Any, str | None]:
    """(default value, default as prose): the reference writes computed defaults as text."""
    value = spec.get("default")
    if name in DEFAULT_VALUES:
        return DEFAULT_VALUES[name], value
    if isinstance(value, dict) or (isinstance(value, str) and ("<" in value or "(" in value or " " in value)):
        return None, json.dumps(value) if isinstance(value, dict) else value
    return value, None


def key_entry(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    dataset_types = _dataset_types(spec.get("applies_to") or ["*"])
    where = [{"dataset_types": dataset_types, "backend_types": BACKEND_ONLY.get(name)}]
    where += ALSO_WHERE.get(name, [])
    default, default_text = _default(name, spec)
    kind = spec.get("type")
    entry: dict[str, Any] = {"where": where, "type": kind if kind not in ("removed", "ignored", "deprecated") else None}
    if default is not None:
        entry["default"] = default
    for field, value in (
        ("default_text", default_text),
        ("default_from", spec.get("default_from")),
        ("choices", spec.get("choices")),
        ("reading", _reading(name, spec)),
        ("required_when", spec.get("required_when")),
        ("alias_of", ALIASES.get(name)),
        ("subkeys", SUBKEYS.get(name)),
    ):
        if value is not None:
            entry[field] = value
    if name in STATUS:
        entry["status"], replaced_by = STATUS[name]
        if replaced_by:
            entry["replaced_by"] = replaced_by
    entry["source"] = spec["source"]
    if spec.get("notes") or spec.get("coercion"):
        entry["notes"] = " ".join(text for text in (spec.get("notes"), spec.get("coercion")) if text)
    return entry


def build(reference: dict[str, Any]) -> dict[str, Any]:
    keys = {name: key_entry(name, spec) for name, spec in reference["keys"].items()}
    for name, (cited, backend, kind, note) in FROM_NOTES.items():
        if name in keys:
            continue
        base = keys[cited]
        entry: dict[str, Any] = {
            "where": [{"dataset_types": base["where"][0]["dataset_types"], "backend_types": [backend] if backend else None}],
            "type": kind,
        }
        if name in ALIASES:
            entry["alias_of"] = ALIASES[name]
        entry["source"] = base["source"]
        entry["notes"] = note
        keys[name] = entry
    return {
        "source": f"{reference['source_repo']} {reference['commit'][:8]} (4.8.0)",
        "generated_by": GENERATED_BY,
        "dataset_types": reference["keys"]["dataset_type"]["choices"],
        "primary_dataset_types": PRIMARY,
        "cache_dataset_types": CACHES,
        "backend_types": reference["keys"]["type"]["choices"],
        "primary_backend_types": PRIMARY_BACKENDS,
        "cache_backend_types": CACHE_BACKENDS,
        "subkey_choices": SUBKEY_CHOICES,
        # the keys exempt from "a cached dataset config wins" (global rule cached_config_wins)
        "cache_exempt_keys": [
            "probability", "repeats", "train_batch_size", "start_epoch", "start_step", "end_epoch", "end_step",
            "caption_strategy", "maximum_image_size", "target_downsample_size", "parquet", "video", "conditioning",
            "conditioning_data", "conditioning_type", "conditioning_image_embeds", "hash_filenames",
        ],
        "global_rules": {rule["id"]: {"rule": rule["rule"], "source": rule["source"]} for rule in reference["global_rules"]},
        "keys": dict(sorted(keys.items())),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/build_dataset_data.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="simpletuner_datasets.json (the static reading of SimpleTuner)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    reference = json.loads(args.source.read_text(encoding="utf-8"))
    data = build(reference)
    write_text(args.output, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.output} ({len(data['keys'])} keys)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
