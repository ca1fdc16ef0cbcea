"""The JSON Schemas in ``schemas/``: loading, the ``referencing`` registry, and schema errors as findings.

The schemas are the single source of truth for field documentation (``lyco explain``) and for the
shape checks (types, ranges, unknown keys, required keys). Each schema error becomes one
:class:`SchemaProblem` tagged with the catalog code that reports it; the rule functions in
``rules/structure.py`` pick their own code out of the list, so every finding still goes through
the catalog.

Custom annotations (ignored by validators, read here and by ``lyco explain``):

``x-lyco-rule``
    on a property: schema errors for that value are reported under this code instead of the
    generic one (``tlora_min_rank`` errors are LYC108 ``tlora-range``).
``x-lyco-unknown-key-rule``
    on an object: unknown keys in it are reported under this code (``apply_preset`` → LYC201).
``x-lyco-algos``
    algorithms that honour the option (LYC101 and ``lyco explain ALGO`` read it).
``x-lyco-map-only``
    a module option ``create_lycoris`` drops at the top level (LYC102).
``x-lyco-choices``, ``x-lyco-replaced-by``, ``x-lyco-ignored``, ``x-lyco-default-text``
    documentation helpers.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Optional

from .jsonpos import join_pointer

LYCORIS_CONFIG_ID = "urn:lyco:schema:lycoris-config"
APPLY_PRESET_ID = "urn:lyco:schema:apply-preset"
MODULE_OPTIONS_ID = "urn:lyco:schema:module-options"

SCHEMA_FILES = ("lycoris-config.schema.json", "apply-preset.schema.json", "module-options.schema.json")


def schema_dir() -> Path:
    """Where the schema files are: inside the installed package, or ``schemas/`` in a checkout."""
    packaged = Path(str(resources.files("lyco_lint"))) / "schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "schemas"


@lru_cache(maxsize=None)
def load_schemas() -> dict[str, dict[str, Any]]:
    """Every shipped schema keyed by its ``$id``."""
    folder = schema_dir()
    schemas = {}
    for name in SCHEMA_FILES:
        schema = json.loads((folder / name).read_text(encoding="utf-8"))
        schemas[schema["$id"]] = schema
    return schemas


def schema(schema_id: str) -> dict[str, Any]:
    return load_schemas()[schema_id]


@lru_cache(maxsize=None)
def validator(schema_id: str):
    """The validator lint uses: lyco's own for the keywords the shipped schemas use (importing jsonschema
    costs more than a whole lint run), jsonschema when a schema needs more (see fastschema.py)."""
    from .fastschema import UnsupportedSchema, Validator

    try:
        return Validator(schema(schema_id), load_schemas())
    except UnsupportedSchema:
        return jsonschema_validator(schema_id)


@lru_cache(maxsize=None)
def jsonschema_validator(schema_id: str):
    """A draft 2020-12 jsonschema validator with every shipped schema in a ``referencing`` registry."""
    from jsonschema import Draft202012Validator
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    registry = Registry().with_resources(
        (sid, DRAFT202012.create_resource(contents)) for sid, contents in load_schemas().items()
    )
    return Draft202012Validator(schema(schema_id), registry=registry)


@dataclass(frozen=True)
class SchemaProblem:
    code: str
    pointer: str
    message: str
    at: str  # "key" or "value"


# Unknown keys people write for a real option; the fix is more useful than a spelling guess.
KEY_HINTS = {
    "init_lokr_norm": "init_lokr_norm is a SimpleTuner training option: move it to config.json",
    "dora": "DoRA is switched on with dora_wd: true (weight_decompose in a map entry)",
    "use_dora": "use_dora is SimpleTuner's PEFT switch; for LyCORIS set dora_wd: true",
    "conv_lora_dim": "conv_lora_dim is a LycorisNetwork constructor name; in this file write conv_dim",
    "lora_dim": "lora_dim is a LycorisNetwork constructor name; in this file write linear_dim",
    "alpha": "at the top level the option is linear_alpha (alpha only works inside a map entry)",
    "dim": "at the top level the option is linear_dim (dim only works inside a map entry)",
    "network_module": "network_module is a kohya option; in this file write algo",
}
MAP_ENTRY_HINTS = {
    "dora_wd": "inside a map entry the DoRA switch is weight_decompose (dora_wd only works at the top level)",
    "wd_on_output": "inside a map entry the option is wd_on_out (wd_on_output only works at the top level)",
    "linear_dim": "inside a map entry the rank is dim",
    "linear_alpha": "inside a map entry the alpha is alpha",
    "conv_dim": "inside a map entry the rank is dim (for convolutions too)",
}


# A spelling suggestion costs milliseconds (difflib over hundreds of names). A file with thousands of unknown keys
# is not a config, and must still be judged in well under a second: the engine allows a budget of suggestions per
# file (suggestion_budget); beyond it, findings come without a guess.
_BUDGET: list[Optional[int]] = [None]


@contextlib.contextmanager
def suggestion_budget(count: int) -> Iterator[None]:
    previous, _BUDGET[0] = _BUDGET[0], count
    try:
        yield
    finally:
        _BUDGET[0] = previous


def spend_suggestion() -> bool:
    """Whether one more spelling suggestion may be computed (and count it)."""
    if _BUDGET[0] is None:
        return True
    if _BUDGET[0] <= 0:
        return False
    _BUDGET[0] -= 1
    return True


def did_you_mean(word: str, candidates: Iterator[str] | list[str], cutoff: float = 0.6) -> Optional[str]:
    """The closest candidate (case-insensitive), or None when none is at least ``cutoff`` similar (or the file's
    suggestion budget is spent)."""
    import difflib

    if not spend_suggestion():
        return None
    candidates = list(candidates)
    lowered = {candidate.lower(): candidate for candidate in candidates}
    if word.lower() in lowered:
        return lowered[word.lower()]
    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=cutoff)
    if not matches:
        matches = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=cutoff)
        matches = [lowered[m] for m in matches]
    return matches[0] if matches else None


def _describe(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    return text if len(text) <= 40 else text[:37] + "..."


_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "a JSON boolean (true or false)",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def check_document(value: Any, schema_id: str) -> list[SchemaProblem]:
    """Validate ``value`` and turn each error into one problem at one location.

    Problems point at keys for unknown/missing keys and at values for type and range errors; each
    missing key is its own problem, and a problem reported twice (through two schema branches) once.
    """
    problems: dict[SchemaProblem, None] = {}  # ordered, and a set: a file of thousands of keys stays linear
    for error in validator(schema_id).iter_errors(value):
        for problem in _problems_for(error):
            problems.setdefault(problem, None)
    return list(problems)


def _problems_for(error) -> Iterator[SchemaProblem]:
    if error.context:  # anyOf/oneOf (jsonschema only): report the most relevant alternative
        from jsonschema.exceptions import best_match

        yield from _problems_for(best_match(error.context))
        return
    pointer = join_pointer("", *error.absolute_path)
    keyword = error.validator
    subschema = error.schema if isinstance(error.schema, dict) else {}
    owner = subschema.get("x-lyco-rule")
    name = str(error.absolute_path[-1]) if error.absolute_path else "the file"

    if keyword in ("additionalProperties", "unevaluatedProperties"):
        known = list(subschema.get("properties", {}))
        code = subschema.get("x-lyco-unknown-key-rule", "LYC011")
        in_map_entry = subschema.get("$id") == MODULE_OPTIONS_ID
        for key in error.instance:
            if key in known:
                continue
            hints = MAP_ENTRY_HINTS if in_map_entry else KEY_HINTS
            hint = hints.get(key)
            if hint is None:
                guess = did_you_mean(key, known)
                hint = f"did you mean '{guess}'?" if guess else f"known keys here: {', '.join(sorted(known))}"
            where = _where(pointer)
            consequence = "LyCORIS raises KeyError" if code == "LYC201" else "LyCORIS would drop it silently"
            yield SchemaProblem(
                code,
                join_pointer(pointer, key),
                f"unknown key '{key}' {where} ({consequence}); {hint}",
                "key",
            )
        return

    if keyword == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "a key"
        extra = " (or set \"full_matrix\": true for full-matrix LoKr)" if missing == "linear_dim" else ""
        yield SchemaProblem(
            "LYC010",
            pointer,
            f"required key '{missing}' is missing{extra}; SimpleTuner refuses to start without it",
            "whole",
        )
        return

    if keyword == "type":
        expected = error.validator_value
        actual = _json_type(error.instance)
        if expected == "boolean":
            code = owner or "LYC014"
            yield SchemaProblem(
                code,
                pointer,
                f"'{name}' must be a JSON boolean, not {_describe(error.instance)}: LyCORIS treats every value "
                f"except false and the string \"false\" as true; write true or false",
                "value",
            )
            return
        wanted = " or ".join(_TYPE_WORDS.get(t, t) for t in ([expected] if isinstance(expected, str) else expected))
        fix = ""
        if actual == "string" and expected in ("integer", "number"):
            fix = f"; write {error.instance.strip()} without quotes" if _is_numeric(error.instance, expected) else ""
        elif actual == "number" and expected == "integer" and float(error.instance).is_integer():
            fix = f"; write {int(error.instance)}"
        elif actual == "string" and expected == "array":
            fix = f"; write [{_describe(error.instance)}]"
        yield SchemaProblem(
            owner or "LYC012",
            pointer,
            f"'{name}' must be {wanted}, not {_describe(error.instance)} ({actual}){fix}",
            "value",
        )
        return

    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "not", "enum", "const", "minLength"):
        yield SchemaProblem(owner or "LYC013", pointer, _range_message(name, keyword, error, subschema), "value")
        return

    yield SchemaProblem(owner or "LYC012", pointer, f"'{name}': {error.message}", "value")


def _is_numeric(text: str, expected: str) -> bool:
    try:
        number = float(text)
    except ValueError:
        return False
    return expected == "number" or number.is_integer()


def _range_message(name: str, keyword: str, error, subschema: dict) -> str:
    value = _describe(error.instance)
    bounds = []
    if "minimum" in subschema:
        bounds.append(f">= {subschema['minimum']}")
    if "exclusiveMinimum" in subschema:
        bounds.append(f"> {subschema['exclusiveMinimum']}")
    if "maximum" in subschema:
        bounds.append(f"<= {subschema['maximum']}")
    if "exclusiveMaximum" in subschema:
        bounds.append(f"< {subschema['exclusiveMaximum']}")
    if keyword == "not":
        return f"'{name}' is {value}, which LyCORIS does not accept here; use -1 (balanced) or a value >= 2"
    if keyword in ("enum", "const"):
        choices = error.validator_value if keyword == "enum" else [error.validator_value]
        guess = did_you_mean(str(error.instance), [str(c) for c in choices])
        suggestion = f"; did you mean '{guess}'?" if guess else ""
        return f"'{name}' is {value}, not one of {', '.join(map(str, choices))}{suggestion}"
    if keyword == "minLength":
        return f"'{name}' is an empty string"
    return f"'{name}' is {value}; it must be {' and '.join(bounds)}"


def _where(pointer: str) -> str:
    if not pointer:
        return "at the top level"
    parts = pointer.strip("/").split("/")
    if len(parts) >= 3 and parts[0] == "apply_preset" and parts[1] in ("module_algo_map", "name_algo_map"):
        return f"in the {parts[1]} entry '{parts[2]}'"
    return f"in '{parts[-1]}'"

