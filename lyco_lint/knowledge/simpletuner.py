"""SimpleTuner's training options as data, and how SimpleTuner's loader turns config.json into argparse input.

The facts live in ``data/simpletuner_options.json`` (regenerated from a reading of SimpleTuner 4.8.0's
argparse parser with ``python tools/build_simpletuner_data.py``); they are read lazily, once, with ``json``
only, so that linting a training config stays fast. On top of the data this module models the two steps
SimpleTuner takes before any option is used (``simpletuner/helpers/configuration/cmd_args.py`` and
``json_file.py``):

1. the JSON loader (``mapping_to_cli_args``) turns each key/value into ``--key=value`` strings —
   dropping ``null``, ``""``, the string ``"false"`` and objects, turning ``true`` into a bare
   ``--key``, and a list into one argument per item (JSON-valued options get one JSON text);
2. argparse resolves the key (exact name, alias, or — ``allow_abbrev`` — a unique prefix) and
   parses each value with the option's type.

:func:`resolve_key` is step 2's key lookup, :func:`loader_output` is step 1 and
:func:`parse_problem` is step 2's value parsing. The LYC3xx rules and the trainer's config reader are
built on these; :mod:`.training_view` applies them to a whole ``config.json``.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Optional

DATA_FILE = "simpletuner_options.json"


@lru_cache(maxsize=1)
def data() -> dict[str, Any]:
    """The whole data file (SimpleTuner version, options, loader facts)."""
    text = resources.files("lyco_lint").joinpath("data", DATA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def simpletuner_version() -> str:
    """``SimpleTuner 4.8.0 (bghira/SimpleTuner@bc8e6ab7)`` from the data file's source line."""
    source = data()["source"]  # "bghira/SimpleTuner <sha> (<version>)"
    repository, _, rest = source.partition(" ")
    commit, _, version = rest.partition(" ")
    return f"SimpleTuner {version.strip('()')} ({repository}@{commit[:8]})" if version else source


def option(name: str) -> Optional[dict[str, Any]]:
    """The spec of a canonical option name (``type``, ``default``, ``choices``, ``aliases``, ``shape``)."""
    return data()["options"].get(name)


def option_names() -> list[str]:
    return list(data()["options"])


# -- step 2a: which option does a key name? -------------------------------------------------------


@dataclass(frozen=True)
class KeyResolution:
    """What SimpleTuner makes of one config.json key.

    ``how`` is one of ``option`` (exact name), ``alias`` (an argparse alias), ``legacy`` (renamed
    by the loader), ``ignored`` (dropped by the loader), ``abbreviation`` (a unique prefix argparse
    expands because of ``allow_abbrev``), ``ambiguous`` (a prefix of several options: argparse
    refuses it), ``not_accepted`` (a WebUI-only key the trainer rejects) or ``unknown``.
    ``option`` is the canonical option the value ends up in, when there is one.
    """

    key: str
    name: str
    how: str
    option: Optional[str] = None
    candidates: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.how in ("option", "alias", "legacy", "ignored", "abbreviation")


def key_name(key: str) -> str:
    """The option name SimpleTuner derives from a key: stripped, without leading dashes."""
    return key.strip().lstrip("-")


@lru_cache(maxsize=1)
def _option_strings() -> dict[str, str]:
    """Every string argparse knows (names and aliases, without ``--``) → its canonical option."""
    strings = {}
    for name, spec in data()["options"].items():
        strings[name] = name
        for alias in spec.get("aliases", ()):
            strings[alias] = name
    return strings


@lru_cache(maxsize=1)
def _sorted_strings() -> list[str]:
    return sorted(_option_strings())


def _prefixed(prefix: str) -> list[str]:
    """The option strings starting with ``prefix``, sorted: a range of the sorted list (a config of thousands of
    unknown keys stays fast)."""
    strings = _sorted_strings()
    start = bisect.bisect_left(strings, prefix)
    end = start
    while end < len(strings) and strings[end].startswith(prefix):
        end += 1
    return strings[start:end]


@lru_cache(maxsize=1024)
def resolve_key(key: str) -> KeyResolution:
    name = key_name(key)
    facts = data()
    if key.strip().startswith("---"):
        # "---x" is passed as is ("--" is only added when missing); argparse knows no such option
        return KeyResolution(key, name, "unknown")
    legacy = facts["legacy_renames"].get(name)
    strings = _option_strings()
    if name in facts["ignored_keys"]:
        return KeyResolution(key, name, "ignored")
    if legacy and legacy["stage"] != "argparse_alias":
        return KeyResolution(key, name, "legacy", legacy["new"])
    if name in facts["options"]:
        return KeyResolution(key, name, "option", name)
    if name in strings:
        return KeyResolution(key, name, "alias", strings[name])
    if name in facts["not_accepted"]:
        return KeyResolution(key, name, "not_accepted")
    if name and facts.get("allow_abbrev", True):
        # argparse compares option strings, not options: a prefix of an option and of its own alias
        # ("validation_step" → validation_step_interval, validation_steps) is ambiguous too.
        matches = _prefixed(name)
        if len(matches) == 1:
            return KeyResolution(key, name, "abbreviation", strings[matches[0]], tuple(matches))
        if len(matches) > 1:
            return KeyResolution(key, name, "ambiguous", None, tuple(matches))
    return KeyResolution(key, name, "unknown")


# -- step 1: what the loader emits for a value ----------------------------------------------------

FLAG = object()  # a bare ``--key`` (from ``true`` or the string "true")


@dataclass(frozen=True)
class LoaderOutput:
    """What SimpleTuner's JSON loader passes to argparse for one value.

    ``values`` are the argument values in order (``FLAG`` for a bare ``--key``); an empty tuple means
    nothing is passed, and ``dropped`` then says why (``null``, ``empty``, ``string-false``,
    ``object``, ``empty-list``). ``serialised`` is set when a JSON-valued option got its list or
    object as one JSON text. ``placeholder`` is set when a ``{env:VAR}`` makes the value unknowable.
    """

    values: tuple[Any, ...] = ()
    dropped: Optional[str] = None
    serialised: bool = False
    placeholder: bool = False


def loader_output(option_name: Optional[str], value: Any) -> LoaderOutput:
    if value is None:
        return LoaderOutput(dropped="null")
    if isinstance(value, bool):
        # SimpleTuner 4.8: true → "--key"; false → "--key=false" (checkboxes parse it, others may not)
        return LoaderOutput((FLAG,) if value else ("false",))
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "false":
            return LoaderOutput(dropped="string-false")
        if text.lower() == "true":
            return LoaderOutput((FLAG,))
        if not text:
            return LoaderOutput(dropped="empty")
        return LoaderOutput((text,), placeholder="{env:" in text)
    if option_name in data()["json_serialised"] and isinstance(value, (dict, list)):
        return LoaderOutput((json.dumps(value),), serialised=True)
    if isinstance(value, dict):
        return LoaderOutput(dropped="object")
    if isinstance(value, list):
        items = tuple(text for text in (_python_str(item).strip() for item in value) if text)
        return LoaderOutput(items, dropped=None if items else "empty-list")
    return LoaderOutput((_python_str(value),))


def _python_str(value: Any) -> str:
    """``str(value)`` as SimpleTuner computes it on the value json.load returned."""
    return str(value)


# -- step 2b: does argparse accept a value? --------------------------------------------------------


def bool_words() -> tuple[frozenset[str], frozenset[str]]:
    """The words SimpleTuner's boolean options accept (lower-case): (true words, false words)."""
    words = data()["bool_values"]
    return frozenset(words["true"]), frozenset(words["false"])


def parse_bool(text: str) -> Optional[bool]:
    """A boolean option's value as SimpleTuner parses it, None when it is not a boolean word."""
    truthy, falsy = bool_words()
    lowered = text.strip().lower()
    return True if lowered in truthy else False if lowered in falsy else None


def normalise_choice(option_name: str, text: str) -> str:
    """Values SimpleTuner rewrites before argparse sees them (``cosine_with_warmup`` → ``cosine``)."""
    if option_name == "model_family":
        return text.strip().lower()
    return data().get("choice_aliases", {}).get(option_name, {}).get(text, text)


def parse_problem(option_name: str, argument: Any) -> Optional[str]:
    """Why argparse rejects one argument value for ``option_name`` (``None`` when it parses).

    Choice membership is not checked here (see :func:`choice_problem`): a value of the right
    type that is not a choice is a different mistake with a different fix.
    """
    spec = option(option_name)
    if spec is None:
        return None
    kind = spec["type"]
    if argument is FLAG:
        if kind == "bool":
            return None
        return "needs a value, but true makes SimpleTuner pass a bare flag with none (argparse: expected one argument)"
    if kind == "bool":
        truthy, falsy = bool_words()
        if argument.strip().lower() in truthy | falsy or spec.get("accepts_string"):
            return None
        return "is not a boolean SimpleTuner understands (true/false, yes/no, y/n, on/off, 1/0)"
    if kind == "int" or (kind == "choice" and _int_choices(spec)):
        try:
            int(argument)
        except ValueError:
            return "is not an integer (argparse calls int() on it)"
        return None
    if kind == "float":
        try:
            float(argument)
        except ValueError:
            return "is not a number (argparse calls float() on it)"
    return None


def choice_problem(option_name: str, argument: Any) -> Optional[str]:
    """Why a parsed value is not one of the option's static choices (``None`` when it is)."""
    spec = option(option_name)
    if spec is None or "choices" not in spec or argument is FLAG:
        return None
    choices = spec["choices"]
    if _int_choices(spec):
        try:
            return None if int(argument) in choices else "is not one of the choices"
        except ValueError:
            return None  # parse_problem reports it
    return None if normalise_choice(option_name, argument) in choices else "is not one of the choices"


def _int_choices(spec: dict[str, Any]) -> bool:
    return bool(spec.get("choices")) and all(isinstance(choice, int) for choice in spec["choices"])


def type_text(option_name: str) -> str:
    spec = option(option_name) or {}
    kind = spec.get("type", "str")
    if kind == "choice":
        return "one of " + ", ".join(map(str, spec["choices"]))
    if kind in ("json", "list"):
        shape = spec.get("shape", "").replace("_", " ")
        return f"{kind} ({shape})" if shape else kind
    return {"bool": "boolean", "int": "integer", "float": "number", "str": "string"}.get(kind, kind)


def default_text(spec: dict[str, Any]) -> str:
    return json.dumps(spec["default"]) if "default" in spec else "none"
