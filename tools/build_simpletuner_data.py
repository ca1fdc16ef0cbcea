"""Regenerate ``lyco_lint/data/simpletuner_options.json`` and ``lyco_lint/data/families.json``: SimpleTuner's
options, loader facts and model families, as lint, plan and the trainer read them.

The two reference files (``shared/reference/simpletuner_options.json`` and
``shared/reference/simpletuner_model_families.json``) are a static reading of SimpleTuner's
argparse parser and model registry. They are large and full of provenance notes; the linter
only needs, per option, how argparse parses it (type, choices, aliases), its default (for
messages and ``lyco explain``), and a few loader facts (legacy renames, ignored keys, options
whose JSON objects/arrays the loader serialises into one argument). This tool keeps exactly
that in ``simpletuner_options.json``; ``families.json`` holds per family what lyco needs: flavours and the
default one, the class SimpleTuner trains, the component folder it loads (``model_subfolder``), whether
it is a UNet, its prediction type, and two hand-kept facts (video families, SDXL-UNet families).

Run it when the reference files change (a new SimpleTuner version)::

    python tools/build_simpletuner_data.py SOURCE_OPTIONS SOURCE_FAMILIES [--output-dir DIR]

The outputs are written atomically, so a linter running at the same time never reads half a file. This
tool is for maintainers and is not part of the wheel.
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

GENERATED_BY = "python tools/build_simpletuner_data.py"
DEFAULT_OUTPUT_DIR = ROOT / "lyco_lint" / "data"
OPTIONS_FILE = "simpletuner_options.json"
FAMILIES_FILE = "families.json"

# Families whose training data is video (temporal VAE compression mixes frames across timesteps,
# which T-LoRA's per-timestep rank mask does not expect). The family reference has no "video"
# field and class names are no guide (Kandinsky 5 image also uses a *3DModel class, Cosmos 2
# image is CosmosTransformer3DModel), so this list is written by hand. cosmos3 is left out on
# purpose: one family trains images, video and audio, and only the dataset says which.
VIDEO_FAMILIES = (
    "hunyuanvideo",
    "infinitetalk",
    "kandinsky5_video",
    "longcat_video",
    "ltxvideo",
    "ltxvideo2",
    "minimaxh3",
    "sanavideo",
    "wan",
    "wan_s2v",
)

# Families that train the SDXL UNet (same down/mid/up block layout, diffusers FeedForward inside
# BasicTransformerBlock): the LyCORIS FeedForward NaN hazard of SimpleTuner's LYCORIS.md applies.
SDXL_UNET_FAMILIES = ("sdxl", "kolors")

# Families whose transformer is released in bfloat16 only and whose activations exceed float16's range (65504):
# with `mixed_precision: fp16` the loss overflows to inf/NaN early (KohakuBlueleaf/LyCORIS#136 and
# kohya-ss/sd-scripts#1595 for Flux; the model cards and diffusers' examples of these families all use bf16).
# chroma is Flux's architecture. The SDXL / SD 1.x UNets train in fp16 routinely and are not listed.
BF16_NATIVE_FAMILIES = ("auraflow", "chroma", "flux", "flux2", "hidream", "qwen_image", "sd3")


def _option_entry(spec: dict[str, Any]) -> dict[str, Any]:
    """One option, stripped to what argparse does with it (dynamic choices are not enforced by
    argparse, so they are not kept; the default is kept for messages and ``lyco explain``)."""
    entry: dict[str, Any] = {"type": spec["type"]}
    if spec.get("default") is not None:
        entry["default"] = spec["default"]
    if spec.get("choices") and not spec.get("dynamic_choices"):
        entry["choices"] = spec["choices"]
    if spec.get("aliases"):
        entry["aliases"] = spec["aliases"]
    if spec.get("json_shape"):
        entry["shape"] = spec["json_shape"]
    if spec.get("accepts_string"):
        entry["accepts_string"] = True  # a checkbox that also takes a text value (a path)
    return entry


def _family_entry(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "flavours": spec.get("flavours") or [],
        "default_flavour": spec.get("default_flavour"),
        "model_class": spec.get("model_class_actual") or spec.get("model_class"),
        "subfolder": spec.get("model_subfolder") or "transformer",
        "unet": spec.get("model_type") == "unet",
        "prediction_type": spec.get("prediction_type"),
    }
    if name in VIDEO_FAMILIES:
        entry["video"] = True
    if name in SDXL_UNET_FAMILIES:
        entry["sdxl_unet"] = True
    if name in BF16_NATIVE_FAMILIES:
        entry["bf16_native"] = True
    return entry


def _family_aliases(families: dict[str, Any]) -> dict[str, str]:
    """Registry names that are not ``--model_family`` choices, mapped to the family that has them."""
    aliases = {}
    for name, spec in (families.get("registry_names_outside_choices") or {}).items():
        target = spec.get("same_class_as")
        if target:
            aliases[name] = target
    for name, spec in families["families"].items():
        for registered in spec.get("registered_as") or []:
            if registered != name:
                aliases.setdefault(registered, name)
    return aliases


def build(options_reference: dict[str, Any], families_reference: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the options file, the families file)."""
    options = options_reference["options"]
    notes = options_reference.get("legacy_rename_notes", {})
    serialised = set(options_reference.get("json_serialised_by_loader", []))
    missing = [name for name in VIDEO_FAMILIES + SDXL_UNET_FAMILIES + BF16_NATIVE_FAMILIES if name not in families_reference["families"]]
    if missing:
        raise SystemExit(f"hand-written family lists name families the reference lacks: {missing}")
    return {
        "source": options_reference.get("source"),
        "families_source": families_reference.get("source"),
        "generated_by": GENERATED_BY,
        "allow_abbrev": bool(options_reference["parser"].get("allow_abbrev", True)),
        "bool_values": options_reference["parser"]["bool_values"],
        "required": sorted(options_reference["required"]),
        "legacy_renames": {
            old: {"new": new, "transform": notes.get(old, {}).get("transform", "identity").split(" ")[0],
                  "stage": notes.get(old, {}).get("stage", "json_loader").split(" ")[0]}
            for old, new in sorted(options_reference["legacy_renames"].items())
        },
        "ignored_keys": sorted(options_reference["ignored_keys"]),
        "not_accepted": dict(sorted(options_reference.get("not_accepted_registry_keys", {}).items())),
        "json_serialised": sorted(serialised),
        "choice_aliases": {"lr_scheduler": {"cosine_with_warmup": "cosine"}},
        "options": {name: _option_entry(spec) for name, spec in sorted(options.items())},
    }, {
        "source": families_reference.get("source"),
        "generated_by": GENERATED_BY,
        "families": {
            name: _family_entry(name, spec) for name, spec in sorted(families_reference["families"].items())
        },
        "family_aliases": dict(sorted(_family_aliases(families_reference).items())),
    }


def render(data: dict[str, Any]) -> str:
    # One option or family per line: small, and diffs stay readable when SimpleTuner changes.
    lines = ["{"]
    items = list(data.items())
    for index, (key, value) in enumerate(items):
        comma = "," if index < len(items) - 1 else ""
        if key in ("options", "families") and value:
            lines.append(f"  {json.dumps(key)}: {{")
            entries = list(value.items())
            for inner, (name, spec) in enumerate(entries):
                inner_comma = "," if inner < len(entries) - 1 else ""
                lines.append(f"    {json.dumps(name)}: {json.dumps(spec, ensure_ascii=False)}{inner_comma}")
            lines.append(f"  }}{comma}")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/build_simpletuner_data.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("source_options", type=Path, help="shared/reference/simpletuner_options.json")
    parser.add_argument("source_families", type=Path, help="shared/reference/simpletuner_model_families.json")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR)
    args = parser.parse_args(argv)
    options_reference = json.loads(args.source_options.read_text(encoding="utf-8"))
    families_reference = json.loads(args.source_families.read_text(encoding="utf-8"))
    options, families = build(options_reference, families_reference)
    write_text(args.output_dir / OPTIONS_FILE, render(options))
    write_text(args.output_dir / FAMILIES_FILE, render(families))
    print(
        f"wrote {args.output_dir}: {len(options['options'])} options, {len(families['families'])} families "
        f"({options['source']})",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
