"""`lyco explain ALGO` and `lyco explain LYC1xx/LYC2xx`: every algorithm and every code is documented, and what an
algo honours comes from the schemas' x-lyco-algos annotations."""

import json

import pytest

from lyco_lint.knowledge import algorithms, lycoris
from lyco_lint.rules import load_rules
from lyco_lint.cli import main
from lyco_lint.schemas import LYCORIS_CONFIG_ID, schema

ALGOS = schema(LYCORIS_CONFIG_ID)["properties"]["algo"]["x-lyco-choices"]
CODES = [f"LYC1{n:02d}" for n in range(1, 15)] + [f"LYC20{n}" for n in range(1, 7)] + ["LYC209"]


def explain(capsys, *args):
    status = main(["explain", *args])
    return status, capsys.readouterr().out


def test_every_schema_algo_has_facts_and_nothing_else_does():
    assert sorted(algorithms.ALGORITHMS) == sorted(ALGOS)


@pytest.mark.parametrize("algo", ALGOS)
def test_explain_every_algo_as_markdown(capsys, algo):
    status, out = explain(capsys, algo)
    assert status == 0
    assert out.startswith(f"# {algo}: ")
    for heading in ("## What linear_dim means", "## Options it honours", "## Options it ignores (LYC101)", "## Known problems in lycoris-lora 4.1.3"):
        assert heading in out


def test_explain_lokr_json_derives_options_from_the_schema(capsys):
    status, out = explain(capsys, "LoKr", "--format", "json")
    data = json.loads(out)
    assert status == 0 and data["kind"] == "algo" and data["algo"] == "lokr"
    assert {"factor", "full_matrix", "decompose_both"} <= set(data["options"]["honours"])
    assert {"constraint", "block_size"} <= set(data["options"]["ignores"])
    assert "rs_lora" in data["options"]["map_only"] and "LYC110" in data["rules"]
    assert any("#291" in caveat for caveat in data["caveats"])


def test_option_table_follows_x_lyco_algos_for_every_algo():
    properties = schema(LYCORIS_CONFIG_ID)["properties"]
    for algo in ALGOS:
        table = lycoris.option_table(algo)
        for name, spec in properties.items():
            if "x-lyco-algos" not in spec or spec.get("deprecated"):
                continue
            honoured = algo in spec["x-lyco-algos"]
            assert (name in table["ignores"]) is not honoured, (algo, name)


def test_explain_tlora_mentions_its_map_only_options_and_limits(capsys):
    _status, out = explain(capsys, "tlora")
    assert "`sig_type`" in out and "train_batch_size above 1" in out and "LYC108" in out


@pytest.mark.parametrize("code", CODES)
def test_explain_every_new_code(capsys, code):
    status, out = explain(capsys, code)
    assert status == 0 and f"({code})" in out.splitlines()[0]
    assert "## Why is this bad?" in out and "## Use instead" in out


@pytest.mark.parametrize("code", CODES)
def test_rule_examples_are_json(code):
    entry = load_rules()[code]
    json.loads(entry.example)
    json.loads(entry.fixed)


def test_explain_by_rule_name(capsys):
    status, out = explain(capsys, "unknown-target-module")
    assert status == 0 and "# unknown-target-module (LYC205)" in out


def test_algorithms_are_listed(capsys):
    status, out = explain(capsys)
    assert status == 0 and "Algorithms" in out
    assert all(f"  {algo} " in out for algo in ALGOS)
