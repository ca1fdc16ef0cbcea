"""The catalog itself: every rule is documented, and its documented example fails while its fix passes."""

import ast
import json
import re
from pathlib import Path

import pytest

from lyco_lint.catalog import DATASET, ENGINE, LYCORIS, TRAINING
from lyco_lint.rules import load_rules
from lyco_lint.engine import Options, lint_paths

RULES = load_rules()
TESTS = Path(__file__).resolve().parent

# Rules whose example needs more than one file on its own: the family (LYC205/LYC209/LYC304),
# a paired training config (LYC3xx on the LyCORIS side), files on disk, or the real model.
NEEDS_CONTEXT = {"LYC205": "flux2", "LYC304": "sdxl", "LYC212": "flux2"}
ONLY_WITH_MORE = {
    "LYC001", "LYC003", "LYC004",  # engine codes, tested in test_rules_structure.py
    "LYC005", "LYC006",  # a file too large or unreadable (test_lint_defects.py)
    "LYC508",  # needs a bucket cache from an earlier run on disk (test_rules_datasets.py)
    "LYC207", "LYC208", "LYC401", "LYC402", "LYC210", "LYC211",  # need --model (tests/test_model.py)
    "LYC305", "LYC307", "LYC309",  # combine a training config and a LyCORIS config (test_training_pairing.py)
    "LYC301", "LYC316",  # name files that must (not) exist
    "LYC209",  # an info with no fix in the file: the remedy is `--model`
    "LYC213",  # needs --model (tests/test_portability_rules.py)
    *(f"LYC6{n:02d}" for n in range(1, 12)),  # adapter weights files (tests/test_weights_format.py, test_inspect*.py)
}


def test_codes_and_names_are_stable_and_well_formed():
    for code, entry in RULES.items():
        assert re.fullmatch(r"LYC\d{3}", code) and re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", entry.name)
        assert entry.summary and entry.why and entry.example and entry.fixed, code


def test_every_rule_check_is_named_after_its_rule():
    """A helper placed between a @rule decorator and its check would silently replace the check."""
    for code, entry in RULES.items():
        if entry.check is not None:
            assert entry.check.__name__.replace("_", "-").startswith(entry.name.split("-")[0]) or entry.check.__name__.replace("_", "-") == entry.name, (code, entry.check.__name__)


def code_strings(source: str) -> set[str]:
    """The string literals of a test module's code: comments and docstrings do not count."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
        and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    }


def test_every_code_is_exercised_by_tests():
    strings = set()
    for path in TESTS.glob("test_*.py"):
        if path.name != Path(__file__).name:  # this file names every code without testing any
            strings |= code_strings(path.read_text(encoding="utf-8"))
    text = "\n".join(strings)
    for code in RULES:
        assert re.search(rf"\b{code}\b", text) or RULES[code].name in text, f"no test mentions {code}"


def test_comments_and_docstrings_do_not_count_as_tests():
    source = '"""LYC999"""\n# LYC998\ndef test_x():\n    """LYC997"""\n    assert "LYC996" in found\n'
    assert code_strings(source) == {"LYC996"}


@pytest.mark.parametrize("code", sorted(code for code in RULES if code not in ONLY_WITH_MORE))
def test_documented_example_fails_and_fix_passes(tmp_path, code):
    entry = RULES[code]
    name = "config.json" if TRAINING in entry.applies_to and LYCORIS not in entry.applies_to else "lycoris.json"
    if entry.applies_to == (DATASET,):
        name = "multidatabackend.json"
    options = Options(family=NEEDS_CONTEXT.get(code))

    def codes_of(text):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return [f.code for f in lint_paths([str(path)], options).findings]

    assert code in codes_of(entry.example), f"{code}'s example does not trigger it"
    assert code not in codes_of(entry.fixed), f"{code}'s fix still triggers it"
