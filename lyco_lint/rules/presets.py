"""LYC201-LYC206, LYC209: ``apply_preset`` — unknown and ignored preset keys, targets that do not do what
they look like, class names that do not exist in the model family, and invalid name patterns.

Class names are checked against the family module index (``knowledge.families.module_classes``): for each
SimpleTuner model family whose model class exists in diffusers, every ``type(module).__name__`` of the model
built from its released configs.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from ..catalog import ERROR, INFO, LYCORIS, UNSAFE, WARNING, Fix, Hit, rename_key, replace_value, rule
from ..documents import Document
from ..jsonpos import join_pointer
from ..knowledge.families import class_index, module_classes, simpletuner_model_may_differ
from ..knowledge.lycoris import DEFAULT_TARGET_CLASSES
from ..schemas import APPLY_PRESET_ID, schema
from .structure import key_rename_fix, schema_hits
PATTERN_KEYS = ("target_name", "exclude_name")


def apply_preset(document: Document) -> dict[str, Any]:
    preset = document.value.get("apply_preset")
    return preset if isinstance(preset, dict) else {}


def preset_pointer(*parts: Any) -> str:
    return join_pointer("", "apply_preset", *parts)


# -- LYC201 / LYC202 --------------------------------------------------------------------------------------


@rule(
    "LYC201",
    "unknown-preset-key",
    ERROR,
    applies_to=LYCORIS,
    summary="Reports an `apply_preset` key that LyCORIS does not accept, with the closest valid key (`target_modules` → `target_module`).",
    why=(
        "LycorisNetwork.apply_preset raises `KeyError: Unknown preset key` for any other key, after the model has "
        "been loaded."
    ),
    example='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8,\n "apply_preset": {"target_modules": ["Flux2Attention"]}}',
    fixed='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8,\n "apply_preset": {"target_module": ["Flux2Attention"]}}',
    fix="Unsafe: a key with exactly one close preset key is renamed to it (LyCORIS raised KeyError on it before).",
)
def unknown_preset_key(document: Document) -> Iterator[Hit]:
    for hit in schema_hits(document, "LYC201"):
        yield Hit(hit.pointer, hit.message, at=hit.at, fix=key_rename_fix(document, hit.pointer))


_IGNORED_KEY_FIX = {
    "unet_target_module": "rename it to target_module",
    "unet_target_name": "rename it to target_name",
    "text_encoder_target_module": "SimpleTuner's LyCORIS path trains only the diffusion model: delete it",
    "text_encoder_target_name": "SimpleTuner's LyCORIS path trains only the diffusion model: delete it",
}


@rule(
    "LYC202",
    "preset-key-ignored",
    WARNING,
    applies_to=LYCORIS,
    summary=(
        "Reports `unet_target_module`, `unet_target_name`, `text_encoder_target_module` and "
        "`text_encoder_target_name` in `apply_preset`: accepted, then ignored by `create_lycoris`."
    ),
    why=(
        "Only lycoris.kohya (sd-scripts) reads them. With create_lycoris, as SimpleTuner uses it, the targets they "
        "name are not used and the default class list adapts every Linear and Conv of the model."
    ),
    example='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8,\n "apply_preset": {"unet_target_module": ["Flux2Attention"]}}',
    fixed='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8,\n "apply_preset": {"target_module": ["Flux2Attention"]}}',
)
def preset_key_ignored(document: Document) -> Iterator[Hit]:
    properties = schema(APPLY_PRESET_ID)["properties"]
    for key in apply_preset(document):
        if not properties.get(key, {}).get("x-lyco-ignored"):
            continue
        fix = _IGNORED_KEY_FIX.get(key, "delete it")
        replacement = key.split("_", 1)[1] if key.startswith("unet_") else None
        if replacement and replacement in apply_preset(document):
            fix = f"delete it (the {replacement} next to it is what create_lycoris uses)"
        yield Hit(
            preset_pointer(key),
            f"apply_preset key '{key}' is accepted and then ignored by create_lycoris (only lycoris.kohya reads it); {fix}",
            at="key",
        )


# -- LYC203 / LYC204 --------------------------------------------------------------------------------------


@rule(
    "LYC203",
    "target-name-without-target-module",
    WARNING,
    applies_to=LYCORIS,
    summary="Reports a non-empty `target_name` without `target_module` in `apply_preset`.",
    why=(
        "target_name adds targets, it does not restrict them: without target_module, LyCORIS's default class list "
        "(Linear, Conv1d, Conv2d, Conv3d, GroupNorm, LayerNorm) still adapts every Linear and Conv of the model. "
        "`\"target_module\": []` makes the names the only targets."
    ),
    example='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8,\n "apply_preset": {"target_name": [".*attn.*"]}}',
    fixed='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8,\n "apply_preset": {"target_module": [], "target_name": [".*attn.*"]}}',
)
def target_name_without_target_module(document: Document) -> Iterator[Hit]:
    preset = apply_preset(document)
    names = preset.get("target_name")
    if "target_module" in preset or not isinstance(names, list) or not names:
        return
    yield Hit(
        preset_pointer("target_name"),
        "target_name without target_module restricts nothing: LyCORIS's default target classes (Linear, Conv1d, "
        "Conv2d, Conv3d, GroupNorm, LayerNorm) still adapt every Linear and Conv of the model; add "
        "\"target_module\": [] to adapt only the named modules",
        at="key",
    )


@rule(
    "LYC204",
    "algo-map-key-not-targeted",
    WARNING,
    applies_to=LYCORIS,
    summary="Reports a `module_algo_map` key that is not in `target_module` (only when `target_module` is given).",
    why=(
        "create_lycoris adds the module_algo_map keys to the target classes: the class becomes an extra target "
        "everywhere in the model, not only inside the target_module classes (kohya's wrapper ignores it instead; "
        "KohakuBlueleaf/LyCORIS#208)."
    ),
    example=(
        '{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1,\n'
        ' "apply_preset": {"target_module": ["Flux2Attention"], "module_algo_map": {"Flux2FeedForward": {"factor": 4}}}}'
    ),
    fixed=(
        '{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1,\n'
        ' "apply_preset": {"target_module": ["Flux2Attention", "Flux2FeedForward"],\n'
        '                  "module_algo_map": {"Flux2FeedForward": {"factor": 4}}}}'
    ),
)
def algo_map_key_not_targeted(document: Document) -> Iterator[Hit]:
    preset = apply_preset(document)
    targets, entries = preset.get("target_module"), preset.get("module_algo_map")
    if not isinstance(targets, list) or not isinstance(entries, dict):
        return
    for key in entries:
        if key in targets:
            continue
        yield Hit(
            preset_pointer("module_algo_map", key),
            f"module_algo_map key '{key}' is not in target_module: create_lycoris adds it as an extra target, so "
            f"every {key} in the model is adapted, also outside the target_module classes; add '{key}' to "
            f"target_module to make that explicit, or delete the entry",
            at="key",
        )


# -- LYC205 / LYC209: class names of the model family ---------------------------------------------------------


def class_targets(document: Document) -> Iterator[tuple[str, str, str]]:
    """(class name, pointer, at) for every target_module item and module_algo_map key."""
    preset = apply_preset(document)
    targets = preset.get("target_module")
    if isinstance(targets, list):
        for index, name in enumerate(targets):
            if isinstance(name, str) and name:
                yield name, preset_pointer("target_module", index), "value"
    entries = preset.get("module_algo_map")
    if isinstance(entries, dict):
        for name in entries:
            yield name, preset_pointer("module_algo_map", name), "key"


def closest_classes(name: str, classes: list[str], limit: int = 3) -> list[str]:
    """Real classes a wrong name most likely meant: those that contain it (``Attention`` →
    ``Flux2Attention``, ``Flux2ParallelSelfAttention``), shortest first, then near spellings."""
    import difflib

    wanted = name.lower()
    containing = sorted((c for c in classes if wanted in c.lower() and c != name), key=lambda c: (len(c), c))
    close = difflib.get_close_matches(name, classes, n=limit, cutoff=0.6)
    lowered = {c.lower(): c for c in classes}
    close += [lowered[m] for m in difflib.get_close_matches(wanted, list(lowered), n=limit, cutoff=0.6)]
    picked: list[str] = []
    for candidate in containing + close:
        if candidate not in picked:
            picked.append(candidate)
    return picked[:limit]


def _listing(classes: list[str], limit: int = 12) -> str:
    shown = ", ".join(classes[:limit])
    return shown + (f", ... ({len(classes) - limit} more)" if len(classes) > limit else "")


def _quoted(names: list[str]) -> str:
    quoted = [f"'{name}'" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


@rule(
    "LYC205",
    "unknown-target-module",
    ERROR,
    applies_to=LYCORIS,
    summary=(
        "Reports a `target_module` class (or `module_algo_map` key) that does not exist in the model family (from "
        "`--family` or the training config's `model_family`) or, with `--model`, in the real model, with the closest "
        "real classes. Listing a LyCORIS default class (Linear, Conv2d, ...) the model lacks is only a warning, and "
        "so is a class missing from a family whose SimpleTuner model may differ from diffusers' (only flux2 and the "
        "UNet families are verified to match)."
    ),
    why=(
        "LyCORIS matches exact class names and says nothing when a name matches no module: generic names such as "
        "`Attention` or `FeedForward` adapt nothing in Flux 2 (its classes are Flux2Attention, Flux2FeedForward, "
        "Flux2ParallelSelfAttention). When no target matches, zero modules are adapted and training stops with "
        "`optimizer got an empty parameter list` (bghira/SimpleTuner#2435, #843, #1384)."
    ),
    example=(
        '{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1,\n'
        ' "apply_preset": {"target_module": ["Attention", "FeedForward"]}}'
    ),
    fixed=(
        '{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1,\n'
        ' "apply_preset": {"target_module": ["Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention"]}}'
    ),
    fix=(
        "Unsafe: a class with exactly one real class that contains or resembles it (`Attention` → `Flux2Attention` "
        "when the model has no other attention class) is replaced by it; the layers it adapts change."
    ),
)
def unknown_target_module(document: Document) -> Iterator[Hit]:
    family = document.context.family
    # SimpleTuner trains its own copy of most model classes; only where that copy is known to build the
    # same module classes is a missing class certain (error); elsewhere it is likely (warning).
    certain = not simpletuner_model_may_differ(family)
    model_analysis = document.context.model
    as_built = model_analysis is not None and document.context.trained_as_built  # lyco train: this model trains
    if model_analysis is not None:  # `--model`: the real model's classes
        classes, model = sorted(model_analysis.classes), model_analysis.class_name
        where = f"the model {model}"
    else:
        entry = module_classes(family)
        if entry is None:
            return  # no family, or one the index does not cover (LYC209)
        classes, model = sorted(entry.classes), entry.model_class or "the model"
        where = f"the {family} model ({model})"
    known = set(classes)
    targets = list(class_targets(document))
    for name, pointer, at in targets:
        if name in known:
            continue
        guesses = closest_classes(name, classes)
        hint = f"did you mean {_quoted(guesses)}?" if guesses else f"its classes are {_listing(classes)}"
        harmless = name in DEFAULT_TARGET_CLASSES and any(other in known for other, _p, _a in targets)
        what = "target_module" if "/target_module/" in pointer else "module_algo_map key"
        caveat = "" if certain else (
            f" (lyco train trains diffusers' {model}, not SimpleTuner's own copy of the {family} model: a config "
            f"written for SimpleTuner's class names needs {model}'s names here)"
            if as_built
            else f" (lyco's index is built from diffusers' {model}; SimpleTuner trains its own copy, which may name its "
            f"classes differently: `lyco lint --model` checks the real model)"
        )
        fix = None
        if len(guesses) == 1 and guesses[0] not in {other for other, _p, _a in targets}:
            edit = rename_key(pointer, guesses[0]) if at == "key" else replace_value(pointer, guesses[0])
            fix = Fix(f"Write '{guesses[0]}'", (edit,), UNSAFE)
        yield Hit(
            pointer,
            f"{what} '{name}' is not a module class of {where}: LyCORIS matches exact class names, so it adapts "
            f"nothing (with no match at all, training stops with 'optimizer got an empty parameter list'); "
            f"{hint}{caveat}",
            at=at,
            severity=WARNING if harmless or not (certain or as_built) else None,
            fix=fix,
        )


@rule(
    "LYC209",
    "family-not-indexed",
    INFO,
    applies_to=LYCORIS,
    summary=(
        "Reports, once per file, that the target classes could not be checked: lyco's class index does not cover the "
        "model family (its model class is not in diffusers), or no family is known at all (a bare LyCORIS config "
        "linted without `--family`, or a training config without `model_family`). Not with `--model`, which "
        "checks the real model."
    ),
    why=(
        "LYC205 needs the family's class names; for families SimpleTuner defines itself lyco cannot know them "
        "without loading the model, and without a family it cannot know which model is meant. \"All checks "
        "passed\" would claim a check that never ran. `lyco lint --family NAME`, linting the training config that "
        "points at the file, or `lyco lint --model` check the targets."
    ),
    example='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8,\n "apply_preset": {"target_module": ["Block"]}}',
    # nothing to change in the file: the check needs the real model
    fixed='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8,\n "apply_preset": {"target_module": ["Block"]}}',
)
def family_not_indexed(document: Document) -> Iterator[Hit]:
    family = document.context.family
    if document.context.model is not None or not class_index():
        return
    if family and module_classes(family) is not None:
        return
    targets = list(class_targets(document))
    if not targets:
        return
    _name, pointer, _at = targets[0]
    pointer = preset_pointer("target_module") if "/target_module/" in pointer else preset_pointer("module_algo_map")
    if not family:
        training = document.context.training
        route = (
            f"{training.display_path} sets no model_family; set it there, or pass `lyco lint --family NAME`"
            if training is not None
            else "pass `lyco lint --family NAME` (flux2, sdxl, ...), or lint the training config that points at this "
            "file (its model_family is used)"
        )
        yield Hit(
            pointer,
            f"the target classes were not checked: no model family is known for this LyCORIS config; {route}, or "
            "check against the real model with `lyco lint --model`",
            at="key",
        )
        return
    yield Hit(
        pointer,
        f"the target classes could not be verified: lyco's class index does not cover the model family '{family}' "
        f"(only families whose model class is in diffusers are indexed); `lyco lint --model` checks them against "
        f"the real model",
        at="key",
    )


# -- LYC206 ------------------------------------------------------------------------------------------------------


def regex_problem(pattern: str) -> Optional[str]:
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as error:
        hint = ""
        if pattern.startswith(("*", "?", "+")) or "*" in pattern and ".*" not in pattern:
            hint = " (this looks like a wildcard pattern: write '.*' for 'anything', or set \"use_fnmatch\": true)"
        return f"{error}{hint}"
    return None


def fnmatch_problem(pattern: str) -> Optional[str]:
    """fnmatch never fails, but a '[' without its ']' matches a literal '[' instead of a character set."""
    index, length = 0, len(pattern)
    while index < length:
        if pattern[index] == "[":
            end = index + 1
            if end < length and pattern[end] == "!":
                end += 1
            if end < length and pattern[end] == "]":
                end += 1
            while end < length and pattern[end] != "]":
                end += 1
            if end >= length:
                return f"the '[' at position {index} is never closed, so fnmatch matches a literal '[' there"
            index = end
        index += 1
    return None


def patterns(document: Document) -> Iterator[tuple[str, str, str, str]]:
    """(pattern, where, pointer, at) for target_name and exclude_name items and name_algo_map keys."""
    preset = apply_preset(document)
    for key in PATTERN_KEYS:
        items = preset.get(key)
        if isinstance(items, list):
            for index, item in enumerate(items):
                if isinstance(item, str):
                    yield item, key, preset_pointer(key, index), "value"
    entries = preset.get("name_algo_map")
    if isinstance(entries, dict):
        for key in entries:
            yield key, "name_algo_map key", preset_pointer("name_algo_map", key), "key"


@rule(
    "LYC206",
    "invalid-pattern",
    ERROR,
    applies_to=LYCORIS,
    summary=(
        "Reports a `target_name`, `exclude_name` or `name_algo_map` key that is not a valid Python regular expression "
        "(with `use_fnmatch: true`: an fnmatch pattern with a `[` that is never closed)."
    ),
    why=(
        "LyCORIS matches module paths with re.match: an invalid pattern such as `*attn*` raises re.error while the "
        "network is built, after the model is loaded. fnmatch patterns never fail, but an unclosed `[` silently "
        "matches a literal bracket."
    ),
    example='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8,\n "apply_preset": {"target_module": [], "target_name": ["*attn*"]}}',
    fixed='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8,\n "apply_preset": {"target_module": [], "target_name": [".*attn.*"]}}',
)
def invalid_pattern(document: Document) -> Iterator[Hit]:
    use_fnmatch = apply_preset(document).get("use_fnmatch") is True
    for pattern, where, pointer, at in patterns(document):
        if use_fnmatch:
            problem = fnmatch_problem(pattern)
            if problem:
                yield Hit(pointer, f"{where} '{pattern}' (fnmatch, use_fnmatch is true): {problem}; close it with ']' or drop it", at=at)
            continue
        problem = regex_problem(pattern)
        if problem:
            yield Hit(
                pointer,
                f"{where} '{pattern}' is not a valid Python regular expression: {problem}; LyCORIS raises re.error "
                f"while it builds the network",
                at=at,
            )


# -- LYC212 -----------------------------------------------------------------------------------------------


@rule(
    "LYC212",
    "lora-prefix-unmapped",
    WARNING,
    applies_to=LYCORIS,
    summary=(
        "Reports `apply_preset.lora_prefix` set to a prefix ComfyUI's LoRA key map does not know for the model "
        "family (flux2 and flux: `lycoris`, `lora_transformer`; sdxl: `lycoris`, `lora_unet`; the map lyco carries "
        "from ComfyUI's source). The family comes from the training config or `--family`."
    ),
    why=(
        "LyCORIS names every module `<lora_prefix>_<module path>`; ComfyUI matches names against its key map and logs "
        "each unknown one as 'lora key not loaded', so the adapter renders as the base model. LyCORIS's own "
        "create_lycoris_from_weights looks for `lycoris_` too unless the same preset is applied first."
    ),
    example=(
        '{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1,\n'
        ' "apply_preset": {"target_module": ["Flux2Attention"], "lora_prefix": "lora_unet"}}'
    ),
    fixed='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1,\n "apply_preset": {"target_module": ["Flux2Attention"]}}',
)
def lora_prefix_unmapped(document: Document) -> Iterator[Hit]:
    prefix = apply_preset(document).get("lora_prefix")
    if not isinstance(prefix, str):
        return
    from ..knowledge import comfyui  # only for configs that set a prefix
    family = document.context.family
    if family not in comfyui.families():
        return
    written = prefix.replace(".", "_")  # LyCORIS writes the name with dots as underscores
    if comfyui.maps_prefix(family, written):
        return
    known = " or ".join(f"'{name}'" for name in comfyui.prefixes(family))
    yield Hit(
        preset_pointer("lora_prefix"),
        f"lora_prefix '{prefix}' names every module '{written}_<module path>', and ComfyUI {comfyui.version()}'s LoRA key "
        f"map for {family} knows only {known}: it loads none of the adapter ('lora key not loaded'), and LyCORIS's "
        "create_lycoris_from_weights looks for 'lycoris_' unless this preset is applied first; remove lora_prefix",
    )
