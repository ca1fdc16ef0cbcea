"""A small JSON Schema validator for the keywords lyco's own schemas use, for the lint hot path.

Importing ``jsonschema`` costs 50–80 ms on a 2-core machine (attrs, referencing, its format checkers and
the bundled metaschemas) — more than parsing and checking a config takes. ``lyco lint`` runs once per
commit in pre-commit, so the schemas in ``schemas/`` are applied here by a validator that knows exactly
the draft 2020-12 keywords they use, with jsonschema's semantics (``1.0`` is an integer, ``true`` is not
``1`` for ``const``). Anything else in a schema raises :class:`UnsupportedSchema` and the caller falls
back to jsonschema. ``tests/test_fastschema.py`` checks that both report the same errors (location and
keyword) on generated documents, and jsonschema still checks the schemas themselves.

Errors carry the attributes of ``jsonschema.ValidationError`` that :mod:`lyco_lint.schemas` reads:
``validator``, ``validator_value``, ``schema``, ``instance``, ``absolute_path``, ``message``, ``context``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

# Keywords that only annotate (documentation, lyco's own x-lyco-* data) and never fail.
ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "default", "deprecated", "examples"})
ASSERTIONS = frozenset(
    {
        "type", "properties", "additionalProperties", "required", "if", "then", "else", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "not", "const", "enum", "items", "minLength", "$ref",
    }
)


class UnsupportedSchema(ValueError):
    """The schema uses a keyword this validator does not implement: use jsonschema instead."""


@dataclass
class SchemaError:
    validator: str
    validator_value: Any
    schema: dict
    instance: Any
    absolute_path: tuple
    message: str
    context: tuple = ()


def _check_supported(schema: Any, where: str = "#") -> None:
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise UnsupportedSchema(f"{where}: a schema must be an object or a boolean")
    for keyword, value in schema.items():
        if keyword in ANNOTATIONS or keyword.startswith("x-"):
            continue
        if keyword not in ASSERTIONS:
            raise UnsupportedSchema(f"{where}: keyword '{keyword}' is not implemented")
        if keyword == "properties":
            for name, subschema in value.items():
                _check_supported(subschema, f"{where}/properties/{name}")
        elif keyword in ("additionalProperties", "if", "then", "else", "not", "items"):
            _check_supported(value, f"{where}/{keyword}")


def _is_type(instance: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(instance, dict)
    if kind == "array":
        return isinstance(instance, list)
    if kind == "string":
        return isinstance(instance, str)
    if kind == "boolean":
        return isinstance(instance, bool)
    if kind == "null":
        return instance is None
    if isinstance(instance, bool):
        return False
    if kind == "number":
        return isinstance(instance, (int, float))
    if kind == "integer":
        return isinstance(instance, int) or (isinstance(instance, float) and instance.is_integer())
    raise UnsupportedSchema(f"type '{kind}' is not implemented")


def _equal(one: Any, two: Any) -> bool:
    """jsonschema's equality: booleans are not numbers, containers compare element-wise."""
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one == two
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(_equal(one[k], two[k]) for k in one)
    return one == two


def _is_number(instance: Any) -> bool:
    return isinstance(instance, (int, float)) and not isinstance(instance, bool)


class Validator:
    """Validates documents against one schema of a registry (``$id`` → schema)."""

    def __init__(self, schema: dict, registry: dict[str, dict]) -> None:
        for contents in [schema, *registry.values()]:
            _check_supported(contents)
        self.schema = schema
        self.registry = registry

    def iter_errors(self, instance: Any) -> Iterator[SchemaError]:
        yield from self._descend(instance, self.schema, ())

    def is_valid(self, instance: Any, schema: Any, path: tuple = ()) -> bool:
        return next(self._descend(instance, schema, path), None) is None

    def _descend(self, instance: Any, schema: Any, path: tuple) -> Iterator[SchemaError]:
        if schema is True:
            return
        if schema is False:
            yield SchemaError("false", False, {}, instance, path, "False schema does not allow the value")
            return
        for keyword, value in schema.items():
            check = _KEYWORDS.get(keyword)
            if check is not None:
                yield from check(self, instance, value, schema, path)

    # -- keywords ----------------------------------------------------------------------------------

    def _ref(self, instance, value, schema, path):
        if value not in self.registry:
            raise UnsupportedSchema(f"$ref '{value}' is not in the registry")
        yield from self._descend(instance, self.registry[value], path)

    def _type(self, instance, value, schema, path):
        kinds = [value] if isinstance(value, str) else value
        if not any(_is_type(instance, kind) for kind in kinds):
            yield SchemaError("type", value, schema, instance, path, f"{instance!r} is not of type {value!r}")

    def _properties(self, instance, value, schema, path):
        if not isinstance(instance, dict):
            return
        for name, subschema in value.items():
            if name in instance:
                yield from self._descend(instance[name], subschema, path + (name,))

    def _additional_properties(self, instance, value, schema, path):
        if not isinstance(instance, dict):
            return
        extras = [name for name in instance if name not in schema.get("properties", {})]
        if value is False:
            if extras:
                yield SchemaError(
                    "additionalProperties", value, schema, instance, path, "Additional properties are not allowed"
                )
            return
        for name in extras:
            yield from self._descend(instance[name], value, path + (name,))

    def _required(self, instance, value, schema, path):
        if not isinstance(instance, dict):
            return
        for name in value:
            if name not in instance:
                yield SchemaError("required", value, schema, instance, path, f"{name!r} is a required property")

    def _if(self, instance, value, schema, path):
        if self.is_valid(instance, value, path):
            if "then" in schema:
                yield from self._descend(instance, schema["then"], path)
        elif "else" in schema:
            yield from self._descend(instance, schema["else"], path)

    def _not(self, instance, value, schema, path):
        if self.is_valid(instance, value, path):
            yield SchemaError("not", value, schema, instance, path, f"{instance!r} should not be valid under {value!r}")

    def _const(self, instance, value, schema, path):
        if not _equal(instance, value):
            yield SchemaError("const", value, schema, instance, path, f"{value!r} was expected")

    def _enum(self, instance, value, schema, path):
        if not any(_equal(instance, choice) for choice in value):
            yield SchemaError("enum", value, schema, instance, path, f"{instance!r} is not one of {value!r}")

    def _items(self, instance, value, schema, path):
        if isinstance(instance, list):
            for index, item in enumerate(instance):
                yield from self._descend(item, value, path + (index,))

    def _min_length(self, instance, value, schema, path):
        if isinstance(instance, str) and len(instance) < value:
            yield SchemaError("minLength", value, schema, instance, path, f"{instance!r} is too short")


def _bound(keyword: str, failed):
    """A numeric bound keyword (non-numbers pass, as in jsonschema)."""

    def check(self, instance, value, schema, path):
        if _is_number(instance) and failed(instance, value):
            yield SchemaError(keyword, value, schema, instance, path, f"{instance!r} violates {keyword} {value!r}")

    return check


_KEYWORDS = {
    "$ref": Validator._ref,
    "type": Validator._type,
    "properties": Validator._properties,
    "additionalProperties": Validator._additional_properties,
    "required": Validator._required,
    "if": Validator._if,
    "minimum": _bound("minimum", lambda number, bound: number < bound),
    "maximum": _bound("maximum", lambda number, bound: number > bound),
    "exclusiveMinimum": _bound("exclusiveMinimum", lambda number, bound: number <= bound),
    "exclusiveMaximum": _bound("exclusiveMaximum", lambda number, bound: number >= bound),
    "not": Validator._not,
    "const": Validator._const,
    "enum": Validator._enum,
    "items": Validator._items,
    "minLength": Validator._min_length,
}
