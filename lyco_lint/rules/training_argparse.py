"""LYC310-LYC315: what SimpleTuner's loader and argparse make of a ``config.json``.

SimpleTuner checks a config.json only when a run starts, after its loader has rewritten the JSON into
``--key=value`` arguments (``knowledge.simpletuner.loader_output``) and argparse has parsed them. These
rules replay those two steps on the file, so that every finding is something SimpleTuner would refuse or
silently drop.
"""

from __future__ import annotations

from typing import Any, Iterator

from ..catalog import ERROR, TRAINING, WARNING, Hit, rule
from ..documents import Document
from ..jsonpos import join_pointer
from ..knowledge import simpletuner as st
from ..knowledge.families import family, family_alias, family_names, flavours
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
            )
            continue
        what, fix = _unknown_key_text(resolution)
        if setting.output.dropped is None:
            yield Hit(setting.pointer, f"{what}, so argparse stops at start-up with {fix}", at="key")
        else:
            yield Hit(
                setting.pointer,
                f"{what}; SimpleTuner's loader drops it today only because its value is "
                f"{_dropped_text(setting.output.dropped)}, and any other value stops argparse at start-up with {fix}",
                at="key",
                severity=WARNING,
            )


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
            yield Hit(
                setting.pointer,
                f"'{argument}' is not a choice of {name} (argparse stops with 'invalid choice'); {hint}"
                f"choices: {_choices_text(choices)}.",
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


