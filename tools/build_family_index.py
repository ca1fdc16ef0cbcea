"""Regenerate ``lyco_lint/data/family_modules.json``, the shipped family module index.

LyCORIS selects the modules it wraps by *class name* (``target_module`` entries such as
``"Attention"`` or ``"FeedForward"``).  A class name that never occurs in the model silently
matches nothing, so the run trains an empty adapter.  The linter has to know which class names
each model family really contains, but it must stay light: it may not import torch or diffusers,
let alone build a multi-billion-parameter model.  This tool does the heavy part once, offline:
for every SimpleTuner model family whose model class exists in diffusers, it builds the model
on the meta device from the ``config.json`` of released checkpoints (no weights, no memory,
no network), collects ``type(module).__name__`` over ``model.named_modules()`` and writes the
sorted sets to a JSON file that ships with the linter.

Run it whenever the pinned diffusers version changes::

    python tools/build_family_index.py [--family NAME ...] [--output PATH]

Family names are exactly SimpleTuner's ``--model_family`` choices (the keys of
``lyco_lint/data/families.json``).  Families whose model class has no
counterpart in diffusers are absent from the index on purpose; the linter reports them as
"not covered" instead of guessing.  Families absent for that reason at diffusers 0.42.1:
ace_step (diffusers only has the differently built ``AceStepTransformer1DModel``), anima,
boogu_image, heartmula, ideogram (diffusers' ``Ideogram4Transformer2DModel`` is not the class
SimpleTuner trains), infinitetalk, longcat_video, mageflow, wan_s2v, z_image_omni and zlab_i1.

SimpleTuner trains its own copy or subclass of every covered class (``vendored: true`` in the
reference file); the index describes the same-named diffusers class, i.e. the model a diffusers
user of the family builds.  The UNet families (sd1x, sdxl, kolors, deepfloyd) train
``FlowMapUNet2DConditionModel``, a SimpleTuner subclass of ``UNet2DConditionModel`` whose optional
flow-map conditioning only adds a second ``TimestepEmbedding``, so for them the index differs
from SimpleTuner's model only in the root class name.  Vendored transformer bodies can differ
more: SimpleTuner's Flux copy, for one, still builds diffusers' generic ``Attention`` where
diffusers now has ``FluxAttention``, and holds its blocks in its own ``MutableModuleList``.

The released configs are data, one file per family in ``tools/family_configs/NAME.json``
(``{"model_class": ..., "configs": {flavour: config.json values}}``): flavours that only swap weights
(fine-tunes, distillations, edit variants with the same config) are not repeated; each distinct released
architecture is, so that the union covers every structural switch (guidance embedding, image branch, QK
norm, gated attention, ...) a family's releases turn on. The values are the released config.json ones (or
those of the diffusers conversion script that wrote them), so each entry stays checkable against its
source. This tool is for maintainers and is not part of the wheel.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from lyco_lint.atomic import write_text  # noqa: E402

GENERATED_BY = "python tools/build_family_index.py"
DEFAULT_OUTPUT = ROOT / "lyco_lint" / "data" / "family_modules.json"
CONFIG_FOLDER = Path(__file__).resolve().parent / "family_configs"


def load_family_configs() -> dict[str, dict]:
    """Family -> {"model_class", "configs"} from ``family_configs/*.json``."""
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(CONFIG_FOLDER.glob("*.json"))}


FAMILY_CONFIGS: dict[str, dict] = load_family_configs()


@functools.cache
def _quiet_diffusers():
    """Import diffusers with its config and deprecation chatter silenced, once per process.

    ``from_config`` logs every config key a class does not know and several classes warn about
    deprecated defaults; none of that is actionable here and it would bury the tool's output.
    """
    import diffusers
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", module=r"diffusers(\..*)?")
    return diffusers


def module_class_names(model_class: str, config: dict) -> set[str]:
    """Build ``model_class`` from ``config`` on the meta device and return its module class names.

    The meta device gives every parameter and buffer a shape but no storage, so even the
    largest configs (HiDream, LTX-2, FLUX.2-dev) build in about a second and allocate nothing.
    """
    import torch

    cls = getattr(_quiet_diffusers(), model_class)
    # from_config drops keys the class does not take, with only a (silenced) log line; a key
    # renamed in diffusers would then quietly build the default architecture instead.
    unknown = set(config) - set(inspect.signature(cls.__init__).parameters)
    if unknown:
        raise ValueError(f"{model_class} does not take config keys {sorted(unknown)}")
    with torch.device("meta"):
        model = cls.from_config(config)
    return {type(module).__name__ for _, module in model.named_modules()}


# Families whose model, as SimpleTuner trains it, has the same module classes as the diffusers class
# the index is built from (checked, with the reason). For the others SimpleTuner trains its own copy
# of the class body, which may build other module classes (its Flux copy builds the generic
# ``Attention``), so the linter reports an unknown class there as a warning, not an error.
SIMPLETUNER_VERIFIED = {
    "flux2": "vendored Flux2 transformer defines the same class names (reference simpletuner-compat.md §8.1)",
    "sd1x": "FlowMapUNet2DConditionModel subclasses diffusers' UNet2DConditionModel",
    "sdxl": "FlowMapUNet2DConditionModel subclasses diffusers' UNet2DConditionModel",
    "kolors": "FlowMapUNet2DConditionModel subclasses diffusers' UNet2DConditionModel",
    "deepfloyd": "FlowMapUNet2DConditionModel subclasses diffusers' UNet2DConditionModel",
}


def build_family(name: str) -> dict:
    """Return the index entry of family ``name``: its model class, config names and class names.

    The class set is the union over the family's configs, because a LyCORIS config written for
    a family should be judged against every module class any of its flavours can contain.
    """
    spec = FAMILY_CONFIGS[name]
    classes: set[str] = set()
    for config in spec["configs"].values():
        classes |= module_class_names(spec["model_class"], config)
    return {
        "model_class": spec["model_class"],
        "configs": list(spec["configs"]),
        "classes": sorted(classes),
        "simpletuner_verified": name in SIMPLETUNER_VERIFIED,
    }


def _versions() -> tuple[str, str]:
    import diffusers
    import torch

    return diffusers.__version__, torch.__version__


def _render(index: dict) -> str:
    """Serialise deterministically so that regenerating an unchanged index leaves no diff."""
    return json.dumps(index, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _starting_families(output: Path, partial: bool, diffusers_version: str) -> dict:
    """Entries kept from the current index when only some families are rebuilt.

    A partial rebuild may only patch an index made with the same diffusers version; mixing
    versions would make the file's ``diffusers_version`` header lie about some entries.
    """
    if not partial or not output.exists():
        return {}
    current = json.loads(output.read_text(encoding="utf-8"))
    if current.get("diffusers_version") != diffusers_version:
        raise SystemExit(
            f"{output} was generated with diffusers {current.get('diffusers_version')}, "
            f"but {diffusers_version} is installed: rebuild all families (omit --family)."
        )
    return dict(current.get("families", {}))


def main(argv: list[str] | None = None) -> int:
    """Rebuild the requested families (all by default) and write the index atomically."""
    parser = argparse.ArgumentParser(
        prog="tools/build_family_index.py",
        description="Regenerate the family module index shipped with lyco_lint.",
    )
    parser.add_argument(
        "--family",
        action="extend",
        nargs="+",
        choices=sorted(FAMILY_CONFIGS),
        metavar="NAME",
        help="rebuild only these families; the other entries of the index are kept",
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help=f"index to write (default: {DEFAULT_OUTPUT})"
    )
    args = parser.parse_args(argv)

    diffusers_version, torch_version = _versions()
    names = sorted(set(args.family)) if args.family else sorted(FAMILY_CONFIGS)
    families = _starting_families(args.output, bool(args.family), diffusers_version)
    for name in names:
        started = time.perf_counter()
        families[name] = build_family(name)
        print(
            f"{name}: {len(families[name]['classes'])} classes "
            f"({time.perf_counter() - started:.1f}s)",
            file=sys.stderr,
        )

    index = {
        "generated_by": GENERATED_BY,
        "diffusers_version": diffusers_version,
        "torch_version": torch_version,
        "families": families,
    }
    write_text(args.output, _render(index))
    print(f"wrote {args.output} ({len(families)} families)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
