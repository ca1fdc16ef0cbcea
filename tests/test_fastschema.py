"""lyco's own validator (the lint hot path) reports exactly what jsonschema reports on the shipped schemas."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyco_lint.fastschema import UnsupportedSchema, Validator
from lyco_lint.schemas import LYCORIS_CONFIG_ID, jsonschema_validator, load_schemas, validator
from test_properties import JSON_VALUES, SEEDS, mutated_config


def errors(found):
    return sorted((tuple(map(str, e.absolute_path)), e.validator, json.dumps(e.validator_value, sort_keys=True)) for e in found)


def assert_same(document):
    ours = errors(Validator(load_schemas()[LYCORIS_CONFIG_ID], load_schemas()).iter_errors(document))
    theirs = errors(jsonschema_validator(LYCORIS_CONFIG_ID).iter_errors(document))
    assert ours == theirs, document


def test_lint_uses_the_fast_validator_for_the_shipped_schemas():
    assert isinstance(validator(LYCORIS_CONFIG_ID), Validator)


@settings(max_examples=300, deadline=None)
@given(config=mutated_config())
def test_same_errors_as_jsonschema_on_mutated_configs(config):
    assert_same(config)


@settings(max_examples=200, deadline=None)
@given(value=JSON_VALUES)
def test_same_errors_as_jsonschema_on_arbitrary_json(value):
    assert_same(value)


@pytest.mark.parametrize(
    "document",
    [
        {"algo": "lokr", "multiplier": 1, "linear_alpha": 1, "full_matrix": True},  # linear_dim not required
        {"algo": "lokr", "multiplier": 1, "linear_alpha": 1, "full_matrix": 1},  # 1 is not true for const
        {"algo": "lora", "multiplier": 1, "linear_alpha": 1, "linear_dim": 16.0},  # 16.0 is an integer
        {"algo": "lora", "multiplier": True, "linear_alpha": 1, "linear_dim": 4, "factor": 0, "dropout": 1},
        {"apply_preset": {"target_module": ["", 3], "module_algo_map": {"A": {"sig_type": "x", "factor": -2}}}},
        *SEEDS,
    ],
)
def test_same_errors_as_jsonschema_on_edge_cases(document):
    assert_same(document)


def test_unknown_keywords_are_refused_so_lint_falls_back_to_jsonschema():
    with pytest.raises(UnsupportedSchema):
        Validator({"type": "object", "patternProperties": {"^x": {}}}, {})
