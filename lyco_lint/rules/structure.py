"""LYC0xx: the file itself — JSON syntax, duplicate keys, top-level shape, and the LyCORIS schema."""

from __future__ import annotations

import math
from typing import Any, Iterator, Optional

from ..catalog import DATASET, ERROR, LYCORIS, SAFE, TRAINING, UNSAFE, WARNING, Fix, Hit, delete_member, engine_rule, rename_key, replace_value, rule
from ..documents import Document, option_name
from ..jsonpos import Member, join_pointer, to_python, unescape_pointer, walk
from ..knowledge.lycoris import algo_names, str_bool, tucker_enabled, unknown_algo_hint
from ..knowledge.simpletuner import resolve_key
from ..schemas import APPLY_PRESET_ID, LYCORIS_CONFIG_ID, MODULE_OPTIONS_ID, check_document, did_you_mean, schema, spend_suggestion

# Codes the engine emits itself, before any rule runs (engine.py refers to them by these names).
INVALID_JSON = engine_rule(
    "LYC001",
    "invalid-json",
    ERROR,
    summary="Reports a file that is not valid JSON, at the position of the parse error.",
    why=(
        "SimpleTuner and LyCORIS read configs with Python's json module, which stops with a bare "
        "JSONDecodeError after the model is loaded. Trailing commas and comments, common in examples "
        "copied from documentation, are the usual cause."
    ),
    example='{\n  "algo": "lokr",\n  "linear_dim": 10000,\n}',
    fixed='{\n  "algo": "lokr",\n  "linear_dim": 10000\n}',
)

WRONG_ROOT_TYPE = engine_rule(
    "LYC003",
    "wrong-root-type",
    ERROR,
    summary="Reports a file whose top level is not a JSON object.",
    why=(
        "Both a LyCORIS config and a SimpleTuner training config are objects of named options; a list or a "
        "bare value cannot be read as either."
    ),
    example='[{"algo": "lokr"}]',
    fixed='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1}',
)

UNRECOGNIZED_FILE = engine_rule(
    "LYC004",
    "unrecognized-file",
    WARNING,
    summary=(
        "Reports a JSON object named on the command line that is neither a LyCORIS config (it has `algo`, "
        "`apply_preset`, `linear_dim`, `linear_alpha` or `multiplier`) nor a SimpleTuner training config (it has "
        "`model_type`, `model_family`, `lora_type`, ...). Files found by walking a folder are skipped silently."
    ),
    why="lyco cannot tell which rules apply, so nothing in the file was checked.",
    example='{"name": "my-dataset"}',
    fixed='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8}',
)

FILE_TOO_LARGE = engine_rule(
    "LYC005",
    "file-too-large",
    WARNING,
    summary=(
        "Reports a file larger than 256 KiB, or holding more than 20,000 JSON values, which lyco does not check. "
        "Named on the command line (or by pre-commit) it is always reported; found by walking a folder, only when "
        "its name is a config's (config.json, *lycoris*.json, *multidatabackend*.json)."
    ),
    why=(
        "SimpleTuner and LyCORIS configs are a few KB. Reading a file of tens of MB whole would cost seconds and "
        "hundreds of MB of memory, so lyco reads at most 256 KiB of any file; a file beyond that is data, not a "
        "config, and nothing in it was checked."
    ),
    example='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8, "apply_preset": {"target_name": ["<30,000 patterns>"]}}',
    fixed='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8, "apply_preset": {"target_name": [".*attn.*"]}}',
)

UNREADABLE_FILE = engine_rule(
    "LYC006",
    "unreadable-file",
    ERROR,
    summary=(
        "Reports a file lyco cannot read: permission denied, a symbolic link loop or a link to nothing, or a path "
        "that is not a regular file (a named pipe, a device such as /dev/null, a socket). The other files are still "
        "linted, and `lyco lint` exits with status 2 at the end."
    ),
    why="Nothing in the file was checked; SimpleTuner would fail on it too, or hang reading a pipe.",
    example="lyco lint config.json   # chmod 000 config.json",
    fixed="lyco lint config.json   # chmod 644 config.json",
)


@rule(
    "LYC002",
    "duplicate-key",
    ERROR,
    applies_to=(LYCORIS, TRAINING, DATASET),
    summary=(
        "Reports a key that appears twice in one object of a LyCORIS, training or dataset config "
        "(multidatabackend.json); in a training config `k` and `--k` count as the same "
        "key (SimpleTuner strips the dashes). An option and its alias or legacy name (`validation_steps`, "
        "`validation_step_interval`) with different values is a warning: argparse keeps the last."
    ),
    why=(
        "Python's json module keeps the last value without a word, so the earlier setting is silently "
        "ignored, and which one the author meant is anyone's guess."
    ),
    example='{"algo": "lokr", "factor": 4, "factor": 8}',
    fixed='{"algo": "lokr", "factor": 8}',
    fix="Safe: the earlier of two identical keys (or `k` and `--k`) is deleted; json.load kept the last one anyway.",
)
def duplicate_key(document: Document) -> Iterator[Hit]:
    training = document.kind == TRAINING
    for pointer, node, _member in walk(document.root):
        if node.kind != "object":
            continue
        first: dict[str, tuple[Member, int]] = {}
        for index, member in enumerate(node.members):
            name = _training_option(member.key) if training and pointer == "" else member.key
            if name not in first:
                first[name] = (member, index)
                continue
            earlier, earlier_index = first[name]
            if earlier.key == member.key or option_name(earlier.key) == option_name(member.key):
                also = "" if earlier.key == member.key else f" (also written '{earlier.key}')"
                yield Hit(
                    join_pointer(pointer, member.key),
                    f"key '{member.key}' appears twice in this object{also}; only the last value counts and the "
                    f"other is silently lost: delete one of them",
                    at="key",
                    fix=Fix(f"Delete the earlier '{earlier.key}'", (delete_member(join_pointer(pointer, earlier.key), earlier_index),)),
                )
            elif to_python(earlier.value) != to_python(member.value):
                # an option and its alias or legacy name: SimpleTuner accepts both and argparse keeps the
                # last, so this is a warning; with equal values (SimpleTuner's own examples) it is harmless
                yield Hit(
                    join_pointer(pointer, member.key),
                    f"'{member.key}' and '{earlier.key}' set the same option with different values; SimpleTuner "
                    f"keeps the last one ('{member.key}'): delete the other",
                    at="key",
                    severity=WARNING,
                )


def _training_option(key: str) -> str:
    """The option a training config key sets: `--k`, an alias and a legacy name of one option are one."""
    resolution = resolve_key(key)
    return resolution.option or resolution.name


# -- schema-derived rules -----------------------------------------------------------------------


def schema_problems(document: Document) -> list:
    """The LyCORIS config schema's problems with this file, computed once and shared by the rules. A NaN or
    infinite value is LYC017's alone: its type and range problems are left out."""
    return document.derive("schema_problems", _schema_problems)


def _schema_problems(document: Document) -> list:
    return [problem for problem in check_document(document.value, LYCORIS_CONFIG_ID) if not _non_finite(document, problem.pointer)]


def _non_finite(document: Document, pointer: str) -> bool:
    node = document.node_at(pointer)
    return node is not None and node.kind == "number" and isinstance(node.value, float) and not math.isfinite(node.value)


def schema_hits(document: Document, code: str) -> Iterator[Hit]:
    """The schema problems of ``document`` that belong to ``code`` (also used by LYC1xx/LYC2xx rules)."""
    for problem in schema_problems(document):
        if problem.code == code:
            yield Hit(problem.pointer, problem.message, at=problem.at)


@rule(
    "LYC010",
    "missing-required",
    ERROR,
    applies_to=LYCORIS,
    summary=(
        "Reports a LyCORIS config without `algo`, `multiplier` or `linear_alpha`, or without `linear_dim` "
        "while `full_matrix` is not JSON `true`."
    ),
    why=(
        "SimpleTuner asserts these keys at start-up (the string \"true\" does not count for full_matrix); "
        "without them training never starts."
    ),
    example='{"algo": "lokr", "linear_dim": 16}',
    fixed='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1}',
)
def missing_required(document: Document) -> Iterator[Hit]:
    return schema_hits(document, "LYC010")


@rule(
    "LYC011",
    "unknown-key",
    ERROR,
    applies_to=LYCORIS,
    summary=(
        "Reports a key that neither LyCORIS nor SimpleTuner reads from a LyCORIS config (at the top level or "
        "in a `module_algo_map`/`name_algo_map` entry), with the closest known key."
    ),
    why=(
        "create_lycoris keeps a fixed list of keyword arguments and drops every other one without a word: a "
        "typo such as `factr` trains with the default instead, and nothing tells you."
    ),
    example='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1, "factr": 8}',
    fixed='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1, "factor": 8}',
    fix=(
        "Unsafe: a key with exactly one close known key, or a known misspelling (`lora_dim`, `dim` at the top level, "
        "`dora_wd` in a map entry), is renamed: the value starts being read, which changes the run."
    ),
)
def unknown_key(document: Document) -> Iterator[Hit]:
    for hit in schema_hits(document, "LYC011"):
        yield Hit(hit.pointer, hit.message, at=hit.at, fix=key_rename_fix(document, hit.pointer))


# The known keys an unknown key most likely meant, where a spelling guess would be wrong.
TOP_LEVEL_RENAMES = {"lora_dim": "linear_dim", "conv_lora_dim": "conv_dim", "alpha": "linear_alpha", "dim": "linear_dim", "network_module": "algo"}
MAP_ENTRY_RENAMES = {"dora_wd": "weight_decompose", "wd_on_output": "wd_on_out", "linear_dim": "dim", "linear_alpha": "alpha"}


def _container(pointer: str) -> tuple[list[str], str]:
    parts = [unescape_pointer(part) for part in pointer.split("/")[1:]]
    return parts[:-1], parts[-1]


def _known_keys(parents: list[str]) -> Optional[tuple[list[str], dict[str, str]]]:
    """The keys LyCORIS knows in the object at ``parents`` (and the renames that apply there)."""
    if not parents:
        return list(schema(LYCORIS_CONFIG_ID)["properties"]), TOP_LEVEL_RENAMES
    if parents == ["apply_preset"]:
        return list(schema(APPLY_PRESET_ID)["properties"]), {}
    if len(parents) == 3 and parents[0] == "apply_preset" and parents[1] in ("module_algo_map", "name_algo_map"):
        return list(schema(MODULE_OPTIONS_ID)["properties"]), MAP_ENTRY_RENAMES
    return None


def single_close_match(word: str, candidates: list[str], cutoff: float = 0.8, margin: float = 0.1) -> Optional[str]:
    """The one candidate a typo evidently meant: close enough, and clearly closer than any other."""
    import difflib

    if not spend_suggestion():
        return None
    scores = sorted((difflib.SequenceMatcher(None, word, name).ratio(), name) for name in candidates if name != word)
    if not scores or scores[-1][0] < cutoff:
        return None
    if len(scores) > 1 and scores[-2][0] >= cutoff and scores[-1][0] - scores[-2][0] < margin:
        return None
    return scores[-1][1]


def key_rename_fix(document: Document, pointer: str) -> Optional[Fix]:
    """An unsafe fix renaming an unknown key to the one it evidently meant (one close match), if any."""
    parents, key = _container(pointer)
    known = _known_keys(parents)
    if known is None:
        return None
    names, renames = known
    target = renames.get(key) or single_close_match(key, names)
    container = document.node_at(join_pointer("", *parents)) if parents else document.root
    if target is None or container is None or container.get(target) is not None:
        return None
    return Fix(f"Rename '{key}' to '{target}'", (rename_key(pointer, target),), UNSAFE)


@rule(
    "LYC012",
    "wrong-type",
    ERROR,
    applies_to=LYCORIS,
    summary="Reports a value of the wrong JSON type (`\"16\"` for an integer, `2.5` for `factor`, a string for a list).",
    why=(
        "LyCORIS and SimpleTuner mostly do not convert values: a string rank fails deep inside module "
        "construction, `int()` silently truncates 2.5 to 2, and a string where a list of class names belongs "
        "is iterated character by character."
    ),
    example='{"algo": "lora", "multiplier": 1.0, "linear_dim": "16", "linear_alpha": 8}',
    fixed='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8}',
)
def wrong_type(document: Document) -> Iterator[Hit]:
    return schema_hits(document, "LYC012")


@rule(
    "LYC013",
    "out-of-range",
    ERROR,
    applies_to=LYCORIS,
    summary=(
        "Reports a value outside its valid range: `linear_dim` below 1, a dropout outside [0, 1), `factor` 0 or "
        "below -1, a negative alpha, an unknown `sig_type`, ..."
    ),
    why=(
        "LyCORIS does not validate these values: a rank of 0 disables every Linear layer, a dropout of 1 "
        "drops everything, and a factor of 0 gives a degenerate split, all without an error."
    ),
    example='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1, "dropout": 1.5}',
    fixed='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1, "dropout": 0.1}',
)
def out_of_range(document: Document) -> Iterator[Hit]:
    return schema_hits(document, "LYC013")


@rule(
    "LYC014",
    "non-boolean-flag",
    ERROR,
    applies_to=LYCORIS,
    summary="Reports a flag whose value is not a JSON boolean (`0`, `\"no\"`, `\"false\"`, `null`, ...).",
    why=(
        "LyCORIS reads flags with `str(value).lower() != \"false\"`: `0`, `\"no\"`, `\"off\"` and `null` all turn "
        "the option ON, and inside map entries even the string \"false\" is true."
    ),
    example='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1, "bypass_mode": 0}',
    fixed='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1, "bypass_mode": false}',
    fix=(
        "The value is written as the JSON boolean it says (\"false\", \"no\", \"off\", \"0\", 0 and null say "
        "false; \"true\", \"yes\", \"on\", \"1\" and 1 say true). Safe where LyCORIS already reads it that way (the "
        "top-level string \"false\"; 0 and null in a map entry), unsafe where it reads the opposite (0 at the top "
        "level is true)."
    ),
)
def non_boolean_flag(document: Document) -> Iterator[Hit]:
    for hit in schema_hits(document, "LYC014"):
        node = document.node_at(hit.pointer)
        fix = _flag_fix(hit.pointer, node.value, top_level=hit.pointer.count("/") == 1) if node is not None else None
        yield Hit(hit.pointer, hit.message, at=hit.at, fix=fix)


_SAYS_TRUE = frozenset({"true", "yes", "on", "1", "y"})
_SAYS_FALSE = frozenset({"false", "no", "off", "0", "n"})


def _flag_fix(pointer: str, value: Any, *, top_level: bool) -> Optional[Fix]:
    """Write the boolean the value says; safe when LyCORIS reads it the same way (str_bool at the top level,
    Python truthiness inside map entries)."""
    if value is None:
        said = False
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and value in (0, 1):
        said = bool(value)
    elif isinstance(value, str) and value.strip().lower() in _SAYS_TRUE | _SAYS_FALSE:
        said = value.strip().lower() in _SAYS_TRUE
    else:
        return None
    read = str_bool(value) if top_level else bool(value)
    return Fix(f"Write {str(said).lower()}", (replace_value(pointer, said),), SAFE if read == said else UNSAFE)


@rule(
    "LYC015",
    "unknown-algo",
    ERROR,
    applies_to=LYCORIS,
    summary="Reports an `algo` that LyCORIS does not know (compared case-insensitively, as LyCORIS does), with the closest name.",
    why=(
        "LyCORIS raises KeyError only when it builds the first module, after the model is loaded; `dora`, "
        "`oft` and `diag_oft` are common guesses that do not exist."
    ),
    example='{"algo": "lycoris-lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1}',
    fixed='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1}',
    fix="Unsafe: an algo with one close known name is replaced by it.",
)
def unknown_algo(document: Document) -> Iterator[Hit]:
    algo = document.value.get("algo")
    if not isinstance(algo, str) or algo.lower() in algo_names():
        return
    guess = did_you_mean(algo.lower().replace("_", "-").removeprefix("lycoris-"), algo_names(), cutoff=0.75)
    fix = Fix(f"Write '{guess}'", (replace_value("/algo", guess),), UNSAFE) if guess else None
    yield Hit("/algo", f"unknown algo '{algo}'; {unknown_algo_hint(algo)}", fix=fix)


@rule(
    "LYC016",
    "deprecated-alias",
    WARNING,
    applies_to=LYCORIS,
    summary="Reports the deprecated aliases `use_cp`, `use_conv_cp`, `disable_conv_cp` and `constrain`, naming the current option.",
    why=(
        "LyCORIS still copies them to the new names, with a warning in the log. `disable_conv_cp` is the trap: "
        "any value, false included, turns Tucker decomposition ON."
    ),
    example='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8, "use_cp": true}',
    fixed='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8, "use_tucker": true}',
    fix=(
        "Safe: the alias is renamed to the current option, with the value LyCORIS derives from it (`use_tucker` as "
        "create_lycoris computes it, so `\"disable_conv_cp\": false` becomes `\"use_tucker\": true`). Not offered "
        "when the current option is written too, or several Tucker aliases are."
    ),
)
def deprecated_alias(document: Document) -> Iterator[Hit]:
    properties = schema(LYCORIS_CONFIG_ID)["properties"]
    config = document.value
    tucker_aliases = [key for key in config if properties.get(key, {}).get("x-lyco-replaced-by") == "use_tucker" and properties[key].get("deprecated")]
    for member in document.root.members:
        spec = properties.get(member.key, {})
        if not spec.get("deprecated"):
            continue
        new = spec["x-lyco-replaced-by"]
        message = f"'{member.key}' is a deprecated alias of '{new}'; write '{new}' instead"
        if member.key == "disable_conv_cp":
            message += " (careful: any value of disable_conv_cp, false included, turns Tucker ON)"
        pointer = join_pointer("", member.key)
        fix = None
        if new not in config and (new != "use_tucker" or tucker_aliases == [member.key]):
            edits = (rename_key(pointer, new),)
            if new == "use_tucker":  # the value LyCORIS derives, as a boolean
                edits += (replace_value(pointer, tucker_enabled(config)),)
            fix = Fix(f"Rename '{member.key}' to '{new}'", edits)
        yield Hit(pointer, message, at="key", fix=fix)


# -- LYC017 -------------------------------------------------------------------------------------------


@rule(
    "LYC017",
    "non-finite-number",
    ERROR,
    applies_to=(LYCORIS, TRAINING),
    summary=(
        "Reports `NaN`, `Infinity`, `-Infinity`, a number that overflows to infinity (`1e999`) and an integer of "
        "more than 4,300 digits, anywhere in a LyCORIS or training config."
    ),
    why=(
        "JSON has no NaN or infinity, but Python's json module, which LyCORIS and SimpleTuner read configs with, "
        "accepts them: `multiplier: NaN` or `learning_rate: NaN` start a run whose every update is NaN (lyco train "
        "refuses them only after lint passed). An integer of more than 4,300 digits makes json.load raise "
        "ValueError, so the file cannot be read at all."
    ),
    example='{"algo": "lora", "multiplier": NaN, "linear_dim": 16, "linear_alpha": 8}',
    fixed='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8}',
)
def non_finite_number(document: Document) -> Iterator[Hit]:
    for pointer, node, _member in document.nodes():
        if node.kind != "number" or isinstance(node.value, int) or math.isfinite(node.value):
            continue
        name = unescape_pointer(pointer.rsplit("/", 1)[-1]) if pointer else "the value"
        literal = node.literal
        if literal is not None and "." not in literal and "e" not in literal.lower():
            digits = len(literal.lstrip("-"))
            yield Hit(
                pointer,
                f"'{name}' is an integer of {digits:,} digits ({literal[:12]}...): Python's json module refuses "
                "integers of more than 4,300 digits (ValueError), so LyCORIS and SimpleTuner cannot read this "
                "file; write a number of normal size.",
            )
            continue
        shown = literal or ("NaN" if node.value != node.value else "Infinity" if node.value > 0 else "-Infinity")
        what = f"{shown} overflows to infinity" if literal else f"{shown} is not a finite number"
        yield Hit(
            pointer,
            f"'{name}': {what}. JSON has no NaN or infinity, but Python's json module (how LyCORIS and SimpleTuner "
            "read configs) accepts it, and every value computed from it becomes NaN or infinite; write a finite number.",
        )
