"""``lyco explain``: documentation of every rule, every LyCORIS config field, every algorithm, the
training options lyco checks and every dataset config key. Rule docs come from the catalog, field docs from the
JSON Schemas, algorithm docs from ``knowledge.algorithms``, training-option docs from ``knowledge.option_docs``
over SimpleTuner's option table, dataset keys from ``knowledge.datasets``. :data:`PROVIDERS` lists every source; adding a kind of topic means adding its function there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from . import catalog
from .knowledge import datasets, simpletuner
from .knowledge.algorithms import ALGORITHMS, Algorithm
from .knowledge.lycoris import algo_names, option_table
from .knowledge.option_docs import OPTION_DOCS
from .rules import load_rules
from .schemas import APPLY_PRESET_ID, LYCORIS_CONFIG_ID, MODULE_OPTIONS_ID, schema


@dataclass(frozen=True)
class Topic:
    name: str
    kind: str  # rule, field, algo, training-option
    summary: str
    markdown: str
    data: dict[str, Any]


# -- rules ----------------------------------------------------------------------------------------


def _rule_topic(entry: catalog.Rule) -> Topic:
    data = {
        "code": entry.code,
        "name": entry.name,
        "severity": entry.severity.value,
        "applies_to": list(entry.applies_to),
        "summary": entry.summary,
        "why": entry.why,
        "example": entry.example,
        "fixed": entry.fixed,
        "fix": entry.fix_doc,
    }
    return Topic(entry.code, "rule", f"{entry.name}: {first_sentence(entry.summary)}", entry.doc_markdown, data)


def first_sentence(text: str) -> str:
    """The first sentence of ``text``, for one-line listings."""
    sentence = text.split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= 90 else sentence[:87] + "..."



def rule_topics() -> Iterator[Topic]:
    for entry in sorted(load_rules().values(), key=lambda e: e.code):
        yield _rule_topic(entry)


# -- LyCORIS config fields ------------------------------------------------------------------------

_FIELD_GROUPS = (
    ("", LYCORIS_CONFIG_ID),
    ("apply_preset.", APPLY_PRESET_ID),
    ("module_algo_map.*.", MODULE_OPTIONS_ID),
)


def _type_text(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return "one of " + ", ".join(json.dumps(choice) for choice in spec["enum"])
    kind = spec.get("type")
    if kind == "array":
        return f"array of {spec.get('items', {}).get('type', 'any')}"
    if kind == "object":
        return "object"
    return kind or "(not allowed)" if spec.get("x-lyco-rule") == "LYC113" else kind or "any"


def _range_text(spec: dict[str, Any]) -> Optional[str]:
    bounds = []
    for keyword, symbol in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if keyword in spec:
            bounds.append(f"{symbol} {spec[keyword]}")
    if "not" in spec and "const" in spec["not"]:
        bounds.append(f"not {spec['not']['const']}")
    return ", ".join(bounds) or None


def _field_topic(prefix: str, name: str, spec: dict[str, Any]) -> Topic:
    full = prefix + name
    if "$ref" in spec:
        target = spec["$ref"]
        spec = {**schema(target), **{k: v for k, v in spec.items() if k != "$ref"}}
    default = spec.get("x-lyco-default-text", json.dumps(spec["default"]) if "default" in spec else None)
    data = {
        "field": full,
        "description": spec.get("description", ""),
        "type": _type_text(spec),
        "default": spec.get("default"),
        "range": _range_text(spec),
        "choices": spec.get("x-lyco-choices") or spec.get("enum"),
        "algos": spec.get("x-lyco-algos"),
        "map_only": bool(spec.get("x-lyco-map-only")),
        "deprecated": bool(spec.get("deprecated")),
        "replaced_by": spec.get("x-lyco-replaced-by"),
        "read_by": spec.get("x-lyco-source", "LyCORIS"),
    }
    lines = [f"# {full}", "", data["description"], "", f"Type: {data['type']}"]
    if default is not None:
        lines.append(f"Default: {default}")
    if data["range"]:
        lines.append(f"Valid range: {data['range']}")
    if data["choices"]:
        lines.append("Choices: " + ", ".join(map(str, data["choices"])))
    if data["algos"]:
        lines.append("Honoured by: " + ", ".join(data["algos"]) + " (ignored by every other algo)")
    if data["map_only"]:
        lines.append("Where: only inside a module_algo_map / name_algo_map entry (create_lycoris drops it here).")
    if data["deprecated"]:
        lines.append(f"Deprecated: write {data['replaced_by']} instead.")
    lines.append(f"Read by: {data['read_by']}")
    return Topic(full, "field", first_sentence(data["description"]), "\n".join(lines) + "\n", data)


def field_topics() -> Iterator[Topic]:
    for prefix, schema_id in _FIELD_GROUPS:
        for name, spec in schema(schema_id)["properties"].items():
            yield _field_topic(prefix, name, spec)


# -- lyco explain ALGO --------------------------------------------------------------------------


def _bullets(items) -> str:
    return "\n".join(f"- {item}" for item in items) or "- (none)"


def _code_list(names: list[str]) -> str:
    return ", ".join(f"`{name}`" for name in names) or "(none)"


def algo_topic(algo: Algorithm) -> Topic:
    table = option_table(algo.name)
    data = {
        "algo": algo.name,
        "title": algo.title,
        "tagline": algo.tagline,
        "module_class": algo.module_class,
        "summary": algo.summary,
        "linear_dim": algo.linear_dim,
        "caveats": list(algo.caveats),
        "rules": list(algo.rules),
        "options": table,
        "lycoris_version": schema(LYCORIS_CONFIG_ID).get("x-lyco-lycoris-version"),
    }
    sections = [
        f"# {algo.name}: {algo.title}",
        "",
        algo.summary,
        "",
        f"LyCORIS class: `{algo.module_class}`. Write `\"algo\": \"{algo.name}\"` (lower-case inside map entries).",
        "",
        "## What linear_dim means",
        algo.linear_dim,
        "",
        "## Options it honours",
        f"Top level: {_code_list(table['honours'])}, plus the options every algo reads (`multiplier`, "
        "`linear_dim`, `conv_dim`, `module_dropout`, `bypass_mode`, `train_norm`, `preset`, `apply_preset`).",
        "",
        f"Only inside a module_algo_map / name_algo_map entry (create_lycoris drops them at the top level, LYC102): "
        f"{_code_list(table['map_only'])}.",
        "",
        "## Options it ignores (LYC101)",
        f"Top level: {_code_list(table['ignores'])}.",
        "",
        f"In a map entry using {algo.name}: {_code_list(table['map_entry_ignores'])}.",
        "",
        f"## Known problems in lycoris-lora {data['lycoris_version']}",
        _bullets(algo.caveats),
    ]
    if algo.rules:
        sections += ["", "## Related rules", ", ".join(f"`lyco explain {code}`" for code in algo.rules)]
    return Topic(algo.name, "algo", f"{algo.title}: {algo.tagline}", "\n".join(sections) + "\n", data)


def algorithm_topics() -> Iterator[Topic]:
    for name in algo_names():
        yield algo_topic(ALGORITHMS[name])


# -- training options ------------------------------------------------------------------------------


def _option_topic(name: str, description: str, rules: tuple[str, ...]) -> Topic:
    spec = simpletuner.option(name) or {}
    required = name in simpletuner.data()["required"]
    legacy = sorted(old for old, rename in simpletuner.data()["legacy_renames"].items() if rename["new"] == name)
    topic_data = {
        "option": name,
        "description": description,
        "type": simpletuner.type_text(name),
        "default": spec.get("default"),
        "choices": spec.get("choices"),
        "aliases": spec.get("aliases", []),
        "legacy_keys": legacy,
        "required": required,
        "rules": list(rules),
        "read_by": simpletuner.simpletuner_version(),
    }
    lines = [f"# {name}", "", description, "", f"Type: {topic_data['type']}", f"Default: {simpletuner.default_text(spec)}"]
    if required:
        lines.append("Required: yes (argparse refuses a config without it)")
    if topic_data["aliases"] or legacy:
        lines.append("Also accepted as: " + ", ".join(sorted(set(topic_data["aliases"]) | set(legacy))))
    lines.append(f"Write it as `\"{name}\"` or `\"--{name}\"` in config.json.")
    if rules:
        lines.append("Checked by: " + ", ".join(rules))
    lines.append(f"Read by: {topic_data['read_by']}")
    return Topic(name, "training-option", description.split(";")[0].rstrip("."), "\n".join(lines) + "\n", topic_data)


def training_option_topics() -> Iterator[Topic]:
    for name, (description, rules) in OPTION_DOCS.items():
        if simpletuner.option(name) is not None:
            yield _option_topic(name, description, rules)


# -- dataset config keys ---------------------------------------------------------------------------------

_READINGS = {
    "truthiness": "Python truthiness: the string \"false\" is true, 0, \"\" and null are false; write true or false",
    "as_bool": "true/1/yes/on and false/0/no/off/\"\" are understood (strings included)",
    "mixed_bool": "counted with `is True` but chosen by truthiness: write JSON true or false only",
    "int_if_truthy": "int(value) if value else 0: 2.7 becomes 2, \"3\" is 3",
    "float_or_default": "null or \"\" give the default, anything else float()",
    "positive_int": "a whole number >= 1, or its decimal string (\"4\"; not \"04\", 4.0 or true)",
    "lenient_int": "a value that is not a whole number silently falls back to the default",
    "lenient_float": "a value that is not a number silently falls back to the default",
}


def _dataset_key_topic(name: str) -> Topic:
    key = datasets.dataset_key(name)
    applies = "; ".join(
        ", ".join(kinds) + (f" (type {', '.join(backends)})" if backends else "") for kinds, backends in key.where
    )
    default = json.dumps(key.default) if key.default is not None else key.default_text
    data = {
        "key": name,
        "type": key.type,
        "default": key.default,
        "default_text": key.default_text,
        "default_from": key.default_from,
        "choices": list(key.choices) if key.choices else None,
        "dataset_types": list(key.dataset_types),
        "reading": key.reading,
        "required_when": key.required_when,
        "status": key.status,
        "alias_of": key.alias_of,
        "subkeys": list(key.subkeys) if key.subkeys else None,
        "source": key.source,
        "read_by": datasets.simpletuner_version(),
    }
    lines = [f"# {name} (dataset config)", "", key.notes or "A key of a dataset entry in multidatabackend.json.", ""]
    lines.append(f"Type: {key.type or 'any'}")
    if default is not None:
        lines.append(f"Default: {default}")
    if key.default_from:
        lines.append(f"When absent: {key.default_from} from the training config")
    if key.choices:
        lines.append("Choices: " + ", ".join(map(str, key.choices)))
    lines.append(f"Applies to: {applies}")
    if key.reading:
        lines.append(f"How SimpleTuner reads it: {_READINGS.get(key.reading, key.reading)}")
    if key.required_when:
        lines.append(f"Required: {key.required_when}")
    if key.alias_of:
        lines.append(f"Alias of: {key.alias_of}")
    if key.status:
        lines.append(f"Status: {key.status}" + (f" (write {key.replaced_by})" if key.replaced_by else ""))
    if key.subkeys:
        lines.append("Keys inside: " + ", ".join(key.subkeys))
    lines.append("Checked by: LYC502-LYC508")
    lines.append(f"Read by: {data['read_by']}, {key.source}")
    return Topic(name, "dataset-key", first_sentence(key.notes or f"dataset key ({key.type})"), "\n".join(lines) + "\n", data)


def dataset_key_topics() -> Iterator[Topic]:
    for name in datasets.key_names():
        yield _dataset_key_topic(name)


PROVIDERS: tuple[Callable[[], Iterator[Topic]], ...] = (
    rule_topics, field_topics, algorithm_topics, training_option_topics, dataset_key_topics
)


def all_topics() -> list[Topic]:
    return [topic for provider in PROVIDERS for topic in provider()]


def _aliases(topic: Topic) -> set[str]:
    names = {topic.name.lower()}
    if topic.kind == "rule":
        names.add(topic.data["name"])
    if topic.kind == "field":
        name = topic.name
        if name.startswith("module_algo_map.*."):
            option = name.removeprefix("module_algo_map.*.")
            for map_name in ("module_algo_map", "name_algo_map"):
                names |= {f"{map_name}.{option}", f"apply_preset.{map_name}.*.{option}", f"{map_name}.*.{option}"}
        if name.startswith("apply_preset."):
            names.add(name.removeprefix("apply_preset."))
    if topic.kind == "training-option":
        names.add("--" + topic.name)
    if topic.kind == "dataset-key":
        names |= {f"dataset.{topic.name}", f"multidatabackend.{topic.name}"}
    return {alias.lower() for alias in names}


def lookup(query: str) -> Optional[Topic]:
    wanted = query.strip().lower()
    topics = all_topics()
    # exact names first, so that a top-level field wins over a preset key of the same name
    for topic in topics:
        if topic.name.lower() == wanted:
            return topic
    for topic in topics:
        if wanted in _aliases(topic):
            return topic
    return None


def suggestions(query: str) -> list[str]:
    import difflib

    names = sorted({alias for topic in all_topics() for alias in _aliases(topic)})
    return difflib.get_close_matches(query.lower(), names, n=3, cutoff=0.6)
