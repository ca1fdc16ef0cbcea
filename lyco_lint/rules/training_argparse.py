"""LYC310-LYC315, LYC317-LYC319: what SimpleTuner's loader, argparse and trainer make of the config files.

SimpleTuner checks a config.json only when a run starts, after its loader has rewritten the JSON into
``--key=value`` arguments (``knowledge.simpletuner.loader_output``) and argparse has parsed them. These
rules replay those two steps on the file, so that every finding is something SimpleTuner would refuse or
silently drop. LYC317 replays the trainer's ``int()`` casts of the LyCORIS config, LYC318 flags fp16 on
bf16-native models, LYC319 the validation values SimpleTuner reads differently from how they look.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Optional

from ..catalog import ERROR, LYCORIS, SAFE, TRAINING, UNSAFE, WARNING, Fix, Hit, rename_key, replace_value, rule
from ..documents import Document
from ..jsonpos import join_pointer
from ..knowledge import simpletuner as st
from ..knowledge.families import family, family_alias, family_names, flavours, is_bf16_native_family
from ..knowledge.lycoris import lokr_is_all_full, simpletuner_casts, str_bool
from ..knowledge.training_view import Setting, effective, passes_value, settings
from ..schemas import did_you_mean


ALLOW_ABBREV_NOTE = (
    "SimpleTuner's parser keeps argparse's allow_abbrev: a unique prefix of an option name is silently "
    "expanded. lyco accepts such a key (SimpleTuner runs with it) but reports it as a warning, because "
    "the next SimpleTuner release may add an option that makes the prefix ambiguous, and a prefix shared "
    "by several options is an error."
)


@rule(
    "LYC310",
    "unknown-training-option",
    ERROR,
    applies_to=TRAINING,
    summary=(
        "Reports a training config key SimpleTuner does not accept, after stripping leading dashes and "
        "applying its legacy renames (`validation_steps`, `checkpointing_steps`, `save_total_limit`, ...); "
        "keys its loader ignores (`repeats`, `aspect_ratio_bucketing`, ...) are fine. The closest option is "
        "suggested. " + ALLOW_ABBREV_NOTE + " An unknown key whose value the loader drops anyway (`null`, "
        "`\"\"`, `\"false\"`, an object) is only a warning."
    ),
    why=(
        "Unknown keys are fatal, but only at start-up: argparse stops with \"unrecognized arguments\" after the "
        "environment and config were loaded, often on a rented GPU."
    ),
    example='{"model_type": "lora", "lora_ranks": 16}',
    fixed='{"model_type": "lora", "lora_rank": 16}',
    fix=(
        "Safe: an abbreviation is written as the option argparse expands it to. Unsafe: an unknown key with a close "
        "option is renamed to it (the leading -- is kept)."
    ),
)
def unknown_training_option(document: Document) -> Iterator[Hit]:
    for setting in settings(document):
        resolution = setting.resolution
        if resolution.accepted and resolution.how != "abbreviation":
            continue
        name = resolution.name
        if resolution.how == "abbreviation":
            yield Hit(
                setting.pointer,
                f"'{name}' is an abbreviation of {resolution.option}: SimpleTuner accepts it only because argparse "
                f"expands unique prefixes, and a future option can make it ambiguous; write \"{resolution.option}\".",
                at="key",
                severity=WARNING,
                fix=_option_rename(document, setting, resolution.option, SAFE),
            )
            continue
        what, fix = _unknown_key_text(resolution)
        suggestion = did_you_mean(name, st.option_names(), cutoff=0.75) if resolution.how == "unknown" else None
        rename = _option_rename(document, setting, suggestion, UNSAFE) if suggestion else None
        if setting.output.dropped is None:
            yield Hit(setting.pointer, f"{what}, so argparse stops at start-up with {fix}", at="key", fix=rename)
        else:
            yield Hit(
                setting.pointer,
                f"{what}; SimpleTuner's loader drops it today only because its value is "
                f"{_dropped_text(setting.output.dropped)}, and any other value stops argparse at start-up with {fix}",
                at="key",
                severity=WARNING,
                fix=rename,
            )


def _option_rename(document: Document, setting: Setting, option: Optional[str], safety: str) -> Optional[Fix]:
    """Rename a training config key to ``option``, keeping its leading dashes, unless that option is set already."""
    if not option or any(other.option == option for other in settings(document) if other is not setting):
        return None
    key = setting.member.key
    new = ("--" if key.startswith("--") else "") + option
    return Fix(f"Rename '{key}' to '{new}'", (rename_key(setting.pointer, new),), safety)


def _unknown_key_text(resolution: st.KeyResolution) -> tuple[str, str]:
    """(what is wrong with the key, argparse's error and the fix) for LYC310's messages."""
    name = resolution.name
    if resolution.how == "ambiguous":
        shown = ", ".join(resolution.candidates[:6]) + (", ..." if len(resolution.candidates) > 6 else "")
        return (
            f"'{name}' is not an option but a prefix of several ({shown})",
            "'ambiguous option'; write the full option name.",
        )
    if resolution.how == "not_accepted":
        return (
            f"'{name}' is a SimpleTuner WebUI setting that the trainer does not accept",
            "'unrecognized arguments'; remove it from config.json.",
        )
    # SimpleTuner's 555 options share long prefixes (validation_, lora_, ...): a loose match suggests an
    # unrelated option for a removed one (validation_torch_compile -> validation_prompt)
    suggestion = did_you_mean(name, st.option_names(), cutoff=0.75)
    hint = (
        f"did you mean '{suggestion}'?"
        if suggestion
        else f"no {st.simpletuner_version()} option is close; if it was removed from SimpleTuner, delete it."
    )
    return f"'{name}' is not a SimpleTuner option", f"'unrecognized arguments'; {hint}"


def _dropped_text(reason: str) -> str:
    return {
        "null": "null",
        "empty": "\"\"",
        "string-false": "\"false\"",
        "object": "(an object)",
        "empty-list": "[]",
    }.get(reason, reason)


def _loader_handles(resolution: st.KeyResolution) -> bool:
    """Keys the loader consumes itself before its generic value conversion (legacy handlers, ignored keys)."""
    if resolution.how == "ignored":
        return True
    legacy = st.data()["legacy_renames"].get(resolution.name)
    return bool(legacy and legacy["stage"] == "json_loader" and resolution.how == "legacy")


@rule(
    "LYC311",
    "string-false",
    WARNING,
    applies_to=TRAINING,
    summary='Reports the string `"false"` (any case) as a value in a training config.',
    why=(
        "SimpleTuner's loader drops the string \"false\" instead of passing it on, so it cannot turn off an "
        "option whose default is on (`gradient_checkpointing`, ...); only JSON `false` can. Where the default is "
        "off it does nothing but mislead."
    ),
    example='{"model_family": "flux2", "gradient_checkpointing": "false"}',
    fixed='{"model_family": "flux2", "gradient_checkpointing": false}',
    fix="Unsafe: the string is written as JSON false, which turns the option off (SimpleTuner ignored it before).",
)
def string_false(document: Document) -> Iterator[Hit]:
    for setting in settings(document):
        if setting.output.dropped != "string-false" or _loader_handles(setting.resolution):
            continue
        if not setting.resolution.accepted:
            continue  # LYC310 reports the key itself
        spec = st.option(setting.option or "") or {}
        default = spec.get("default")
        if default is True:
            effect = f"so {setting.option} stays on (its default is true)"
        elif setting.option and "default" in spec:
            effect = f"so {setting.option} keeps its default {st.default_text(spec)}"
        else:
            effect = "so the value has no effect"
        yield Hit(
            setting.pointer,
            f"SimpleTuner drops the string \"false\", {effect}; write JSON false (without quotes).",
            fix=Fix("Write false", (replace_value(setting.pointer, False),), UNSAFE),
        )


@rule(
    "LYC312",
    "unknown-model-family",
    ERROR,
    applies_to=TRAINING,
    summary=(
        "Reports a `model_family` that is not a SimpleTuner family (compared after stripping and lower-casing, "
        "as SimpleTuner does; dashes are not underscores) and a `model_flavour` that is not one of the "
        "family's flavours. The closest name is suggested."
    ),
    why=(
        "argparse refuses an unknown family at start-up; an unknown flavour is only noticed when the model is "
        "looked up. Registry names such as `kandinsky5-image` or `pixart_sigma` look right but are not "
        "accepted values."
    ),
    example='{"model_family": "kandinsky5-image", "model_flavour": "t2i-lite"}',
    fixed='{"model_family": "kandinsky5_image", "model_flavour": "t2i-lite-sft"}',
)
def unknown_model_family(document: Document) -> Iterator[Hit]:
    setting = effective(document, "model_family")
    if setting is None or setting.text is None or setting.output.placeholder:
        return
    family_name = setting.text.strip().lower()
    if family(family_name) is None:
        alias = family_alias(family_name)
        suggestion = alias or did_you_mean(family_name, family_names())
        hint = f"did you mean '{suggestion}'?" if suggestion else "run `lyco explain model_family`"
        yield Hit(
            setting.pointer,
            f"'{setting.text}' is not a SimpleTuner model family (argparse refuses it at start-up); {hint}",
        )
        return
    flavour = effective(document, "model_flavour")
    if flavour is None or flavour.text is None or flavour.output.placeholder:
        return
    known = flavours(family_name)
    if known and flavour.text not in known:
        suggestion = did_you_mean(flavour.text, known)
        hint = f"did you mean '{suggestion}'? " if suggestion else ""
        yield Hit(
            flavour.pointer,
            f"'{flavour.text}' is not a flavour of {family_name}; {hint}its flavours are {', '.join(known)}.",
        )


def _choices_text(choices: list[Any], limit: int = 10) -> str:
    shown = ", ".join(str(choice) for choice in choices[:limit])
    return shown + (f", ... ({len(choices)} choices)" if len(choices) > limit else "")


@rule(
    "LYC313",
    "invalid-choice",
    ERROR,
    applies_to=TRAINING,
    summary=(
        "Reports a value that is not among the option's choices (`lora_type: \"LyCORIS\"`, "
        "`mixed_precision: \"bf17\"`). Choices are case-sensitive; only `model_family` is lower-cased by "
        "SimpleTuner (LYC312) and `lr_scheduler: cosine_with_warmup` is rewritten to `cosine`."
    ),
    why="argparse stops at start-up with \"invalid choice\".",
    example='{"lora_type": "LyCORIS"}',
    fixed='{"lora_type": "lycoris"}',
    fix="Unsafe: a string value with one close choice (`LyCORIS` → `lycoris`) is replaced by it.",
)
def invalid_choice(document: Document) -> Iterator[Hit]:
    for setting in settings(document):
        name = setting.option
        spec = st.option(name or "")
        if not spec or "choices" not in spec or name == "model_family" or setting.resolution.how == "legacy":
            continue
        if setting.output.placeholder or setting.output.serialised:
            continue
        for argument in setting.output.values:
            if argument is st.FLAG or st.parse_problem(name, argument) or not st.choice_problem(name, argument):
                continue
            choices = spec["choices"]
            suggestion = did_you_mean(str(argument), [str(choice) for choice in choices])
            hint = f"did you mean '{suggestion}'? " if suggestion else ""
            single = isinstance(setting.value, str) and len(setting.output.values) == 1
            fix = Fix(f"Write '{suggestion}'", (replace_value(setting.pointer, suggestion),), UNSAFE) if suggestion and single else None
            yield Hit(
                setting.pointer,
                f"'{argument}' is not a choice of {name} (argparse stops with 'invalid choice'); {hint}"
                f"choices: {_choices_text(choices)}.",
                fix=fix,
            )


@rule(
    "LYC314",
    "training-option-wrong-type",
    ERROR,
    applies_to=TRAINING,
    summary=(
        "Reports a value SimpleTuner cannot parse for its option, replaying its loader and argparse: "
        "`learning_rate: \"fast\"` (float() fails), `lora_rank: 16.0` (passed as the text \"16.0\", which "
        "int() rejects), `true` for an option that needs a value, a boolean word SimpleTuner does not know, "
        "an array for an option that takes one value (argparse keeps only the last element), and (as a "
        "warning) an object for an option whose objects the loader drops. Numbers written as strings that "
        "Python parses "
        "(`\"1e-4\"`, `\"16\"`) are fine, and so are objects and arrays for JSON-valued options "
        "(`tread_config`, `peft_lora_target_modules`, ...)."
    ),
    why=(
        "A value argparse cannot parse stops the run at start-up; a truncated array or a dropped object is "
        "worse: the run goes on with a different setting than the file shows."
    ),
    example='{"learning_rate": "fast", "lora_rank": 16.0, "validation_guidance_skip_layers": [7, 8, 9]}',
    fixed='{"learning_rate": 1e-4, "lora_rank": 16, "validation_guidance_skip_layers": "[7, 8, 9]"}',
)
def training_option_wrong_type(document: Document) -> Iterator[Hit]:
    for setting in settings(document):
        name = setting.option
        if name is None or setting.resolution.how == "ignored" or setting.output.placeholder:
            continue
        if not passes_value(setting):
            continue  # inverted booleans: the loader takes any truthy/falsy value
        yield from _wrong_type_hits(setting, name)


def _wrong_type_hits(setting: Setting, name: str) -> Iterator[Hit]:
    output = setting.output
    if output.dropped == "object":
        # A warning, not an error: SimpleTuner starts, and the object may yet be read from the loader's
        # leftovers by a code path lint cannot see; by SimpleTuner 4.8.0's loader it is simply dropped.
        yield Hit(
            setting.pointer,
            f"SimpleTuner's loader drops objects for {name} (only some JSON-valued options are passed inline), "
            f"so this setting is silently lost; give {name} as a path to a JSON file or as a JSON string.",
            severity=WARNING,
        )
        return
    if output.serialised:
        return
    items = setting.value if isinstance(setting.value, list) else None
    if items is not None and len(output.values) > 1:
        yield Hit(
            setting.pointer,
            f"{name} takes one value, but SimpleTuner passes one --{name} per array element and argparse keeps only "
            f"the last ('{output.values[-1]}'); {_one_value_hint(name)}",
            at="key",
        )
    if name == "validation_lycoris_strength":
        return  # LYC308 reports its values
    for index, argument in enumerate(output.values):
        problem = st.parse_problem(name, argument)
        if problem is None:
            continue
        pointer = setting.pointer
        if items is not None:
            pointer = join_pointer(setting.pointer, _item_index(items, index))
        shown = "true" if argument is st.FLAG else f"'{argument}'"
        yield Hit(pointer, f"{name}: {shown} {problem}; {_type_hint(name, argument)}")


def _item_index(items: list[Any], emitted_index: int) -> int:
    """The array index of the n-th item the loader passes on (it skips empty items)."""
    seen = -1
    for index, item in enumerate(items):
        if str(item).strip():
            seen += 1
            if seen == emitted_index:
                return index
    return len(items) - 1


def _one_value_hint(name: str) -> str:
    shape = (st.option(name) or {}).get("shape", "")
    if "csv" in shape:
        return "write the items as one comma-separated string."
    if shape:
        return "write the array as one JSON string, such as \"[7, 8, 9]\"."
    return "write a single value."


def _type_hint(name: str, argument: Any) -> str:
    kind = (st.option(name) or {}).get("type")
    if kind == "int" and argument is not st.FLAG:
        try:
            number = float(argument)
            if number.is_integer():
                return f"write {int(number)} (an integer, without a decimal point)."
        except ValueError:
            pass
        return "write an integer."
    if kind == "float":
        return "write a number such as 1e-4."
    if kind == "bool":
        return "write JSON true or false."
    if kind == "choice":
        return f"write one of {_choices_text((st.option(name) or {}).get('choices', []))}."
    return f"write a {st.type_text(name)}."


@rule(
    "LYC315",
    "missing-required-training-option",
    ERROR,
    applies_to=TRAINING,
    summary=(
        "Reports a training config without `model_type`, `model_family`, `output_dir`, `data_backend_config` "
        "or `optimizer`, or with one of them set to a value SimpleTuner's loader drops (`null`, `\"\"`, "
        "`\"false\"`)."
    ),
    why="argparse marks these five required and stops at start-up with \"the following arguments are required\".",
    example='{"model_type": "lora", "model_family": "flux2", "output_dir": "output/flux2"}',
    fixed=(
        '{"model_type": "lora", "model_family": "flux2", "output_dir": "output/flux2",\n'
        ' "data_backend_config": "config/multidatabackend.json", "optimizer": "adamw_bf16"}'
    ),
)
def missing_required_training_option(document: Document) -> Iterator[Hit]:
    all_settings = settings(document)
    for name in st.data()["required"]:
        if effective(document, name) is not None:
            continue
        present = [s for s in all_settings if s.option == name]
        if present:
            setting = present[-1]
            dropped = _dropped_text(setting.output.dropped or "")
            yield Hit(
                setting.pointer,
                f"{name} is required, and SimpleTuner's loader drops the value {dropped}, "
                f"so argparse stops with 'the following arguments are required: --{name}'; give it a value.",
            )
        else:
            yield Hit(
                "",
                f"{name} is required: without it argparse stops at start-up with 'the following arguments are "
                f"required: --{name}'; add \"{name}\": {_required_example(name)}.",
                at="whole",
            )


def _required_example(name: str) -> str:
    return {
        "model_type": '"lora"',
        "model_family": '"flux2"',
        "output_dir": '"output/my-run"',
        "data_backend_config": '"config/multidatabackend.json"',
        "optimizer": '"adamw_bf16"',
    }.get(name, "...")




# -- LYC317: SimpleTuner's int() casts of the LyCORIS config -----------------------------------------------------


def _scale_text(alpha: float, dim: Any) -> str:
    return f"{alpha:g}/{dim} = {alpha / dim:.4g}" if isinstance(dim, int) and dim > 0 else f"{alpha:g}/linear_dim"


@rule(
    "LYC317",
    "simpletuner-int-cast",
    ERROR,
    applies_to=LYCORIS,
    summary=(
        "Reports a fractional `multiplier`, `linear_dim`, `linear_alpha` or (for T-LoRA) `tlora_min_rank` in a "
        "LyCORIS config, which SimpleTuner's trainer truncates with `int()` before calling LyCORIS, and says what "
        "it really uses. An error where the result disables or breaks the adapter (`multiplier` 0.5 → 0, "
        "`linear_dim` below 1, `tlora_min_rank` below 1), a warning where it only changes the scale or the rank "
        "(`linear_alpha` 0.5 → 0, which LyCORIS reads as alpha = dim; `multiplier` 1.5 → 1). lyco reads these "
        "values as written, so `lyco train` trains the file's value when the finding is a warning."
    ),
    why=(
        "SimpleTuner's init_trainable_peft_adapter casts `int(cfg['multiplier'])`, `int(cfg['linear_alpha'])`, ... "
        "without a word: `multiplier: 0.5` trains an adapter whose output is multiplied by 0 (it learns nothing), "
        "and `linear_alpha: 0.5` gives alpha 0, which LyCORIS replaces by the dim (scale 1 instead of 0.5/dim)."
    ),
    example='{"algo": "lora", "multiplier": 0.5, "linear_dim": 16, "linear_alpha": 8}',
    fixed='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8}',
)
def simpletuner_int_cast(document: Document) -> Iterator[Hit]:
    config = document.value
    algo = str(config.get("algo") or "lora").lower()
    dim = config.get("linear_dim", 4)
    for cast in simpletuner_casts(config):
        written, used, pointer = cast.written, cast.used, join_pointer("", cast.key)
        head = f"SimpleTuner reads {cast.key} with int(): {written:g} becomes {used}"
        if cast.key == "multiplier":
            if used == 0:
                yield Hit(pointer, f"{head}, so the adapter's output is multiplied by 0 and it learns nothing; write 1.0 (or another whole number)")
            else:
                yield Hit(pointer, f"{head}: the adapter trains at multiplier {used}, not {written:g} (lyco trains {written:g}); write {used}.0 or a whole number", severity=WARNING)
        elif cast.key == "linear_dim":
            if used < 1:
                yield Hit(pointer, f"{head}: a rank below 1 disables every Linear layer, so nothing is adapted; write a whole rank such as 16")
            else:
                yield Hit(pointer, f"{head}: the adapter has rank {used}; write {used}", severity=WARNING)
        elif cast.key == "linear_alpha":
            if algo == "lokr" and lokr_is_all_full(dim, config.get("factor", -1), str_bool(config.get("full_matrix", False))):
                continue  # full-matrix LoKr ignores alpha (scale 1 either way; LYC103)
            if used == 0:
                effect = f"alpha 0, which LyCORIS replaces by the dim: scale 1 instead of {_scale_text(written, dim)}"
            else:
                effect = f"scale {_scale_text(float(used), dim)} instead of {_scale_text(written, dim)}"
            yield Hit(pointer, f"{head}, so SimpleTuner trains with {effect} (lyco trains {written:g}); write a whole alpha", severity=WARNING)
        elif cast.key == "tlora_min_rank" and algo == "tlora":
            if used < 1:
                yield Hit(pointer, f"{head}: T-LoRA needs a minimum rank of at least 1, so its timestep masks break; write 1 or more")
            else:
                yield Hit(pointer, f"{head}: the minimum T-LoRA rank is {used}; write {used}", severity=WARNING)


# -- LYC318: fp16 on bf16-native models --------------------------------------------------------------------------


@rule(
    "LYC318",
    "fp16-nan-risk",
    WARNING,
    applies_to=TRAINING,
    summary=(
        "Reports `mixed_precision: fp16` on a model family whose transformer is released in bfloat16 only (flux, "
        "flux2, chroma, sd3, hidream, qwen_image, auraflow). SDXL and SD 1.x, which train in fp16 routinely, are "
        "not reported."
    ),
    why=(
        "Activations of these DiTs exceed float16's range (65504): the loss goes NaN within the first steps "
        "(KohakuBlueleaf/LyCORIS#136, kohya-ss/sd-scripts#1595), after the models were loaded and cached."
    ),
    example='{"model_family": "flux2", "mixed_precision": "fp16"}',
    fixed='{"model_family": "flux2", "mixed_precision": "bf16"}',
)
def fp16_nan_risk(document: Document) -> Iterator[Hit]:
    precision = effective(document, "mixed_precision")
    family_setting = effective(document, "model_family")
    if precision is None or precision.text != "fp16" or family_setting is None or family_setting.text is None:
        return
    name = family_setting.text.strip().lower()
    if is_bf16_native_family(name):
        yield Hit(
            precision.pointer,
            f"mixed_precision fp16 on {name}, a model released in bfloat16 whose activations overflow float16: the "
            "loss goes NaN early; use \"mixed_precision\": \"bf16\" (on a GPU without bf16, train a smaller model)",
        )


# -- LYC319: validation values SimpleTuner reads differently -----------------------------------------------------


def megapixel_resolution(text: str) -> Optional[int]:
    """The pixels SimpleTuner makes of a single-number ``validation_resolution`` below 128 (cmd_args.py: it reads
    it as megapixels: 1 → 1024, otherwise int(value) × 1000 rounded down to a multiple of 8); None when it is
    read as written (128 or more, a list, WxH)."""
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number) or int(number) >= 128:
        return None
    whole = int(number)
    return 1024 if whole == 1 else int(int(whole * 1e3) / 8) * 8


@rule(
    "LYC319",
    "validation-value-trap",
    WARNING,
    applies_to=TRAINING,
    summary=(
        "Reports validation settings SimpleTuner reads differently from how they look: a single "
        "`validation_resolution` below 128 is read as megapixels (`64` → 64000 px square, `0.5` → 0, `2` → 2000; "
        "only 1 and 1.x mean 1024), and `validation_seed: 0` is ignored (SimpleTuner uses `validation_seed or "
        "seed`). `validation_lycoris_strength: 0`, which becomes 1.0, is LYC308's."
    ),
    why=(
        "Validation renders at a size nobody asked for (64000×64000 runs out of memory after the first checkpoint; "
        "0 fails), or with the training seed instead of the one written, and nothing says so."
    ),
    example='{"model_family": "flux2", "validation_resolution": 64, "validation_seed": 0, "seed": 42}',
    fixed='{"model_family": "flux2", "validation_resolution": "1024", "validation_seed": 7, "seed": 42}',
)
def validation_value_trap(document: Document) -> Iterator[Hit]:
    resolution = effective(document, "validation_resolution")
    if resolution is not None and resolution.text is not None and not resolution.output.placeholder:
        pixels = megapixel_resolution(resolution.text)
        if pixels is not None and pixels != 1024:
            what = "0 pixels, which fails" if pixels == 0 else f"{pixels}×{pixels} pixels"
            yield Hit(
                resolution.pointer,
                f"validation_resolution {resolution.text} is below 128, so SimpleTuner reads it as megapixels and "
                f"renders at {what} (lyco train reads it as written, in pixels); write the size SimpleTuner reads the same "
                f"way, such as \"1024\" or \"1024x768\"",
            )
    seed = effective(document, "validation_seed")
    if seed is not None and seed.text is not None and seed.text.strip() in ("0", "-0"):
        training_seed = effective(document, "seed")
        fallback = f"the training seed {training_seed.text}" if training_seed is not None and training_seed.text not in (None, "0") else None
        if fallback:
            yield Hit(
                seed.pointer,
                f"validation_seed 0 is ignored: SimpleTuner uses `validation_seed or seed`, so validation renders with "
                f"{fallback} (lyco train uses 0 as written); write another seed (any but 0) to fix it",
            )
