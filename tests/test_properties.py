"""Property-based: arbitrary JSON and mutated valid configs never crash the linter, every finding
has a position inside the file, and the exit status is 0, 1 or 2."""

import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import EXAMPLES
from lyco_lint.cli import main
from lyco_lint.engine import lint_document
from lyco_lint.documents import Document

KEYS = st.sampled_from(
    ["algo", "multiplier", "linear_dim", "linear_alpha", "factor", "full_matrix", "bypass_mode", "apply_preset",
     "target_module", "module_algo_map", "name_algo_map", "dora_wd", "tlora_min_rank", "model_family",
     "lora_type", "lycoris_config", "--model_type", "conv_dim", "preset", "use_cp", "weight_decompose"]
) | st.text(string.ascii_letters + "_-/~", max_size=12)
SCALARS = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=20)
JSON_VALUES = st.recursive(SCALARS, lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=6), max_leaves=30)
SEEDS = [seed for seed in (json.loads(p.read_text()) for p in sorted(EXAMPLES.rglob("*.json"))) if isinstance(seed, dict)]


def check_document_text(tmp_path, text):
    path = tmp_path / "doc.json"
    path.write_text(text, encoding="utf-8")
    document = Document.read(path, "doc.json")
    lines = text.splitlines() or [""]
    for finding in lint_document(document):
        assert finding.file == "doc.json"
        assert 1 <= finding.line <= max(len(lines), 1), finding
        assert 1 <= finding.column <= len(lines[finding.line - 1]) + 1, finding
        assert (finding.end_line, finding.end_column) >= (finding.line, finding.column), finding
        assert finding.message
    assert main(["lint", "--quiet", "--format", "json", str(path)]) in (0, 1, 2)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON_VALUES, indent=st.sampled_from([None, 2]))
def test_arbitrary_json_never_crashes(tmp_path, value, indent):
    check_document_text(tmp_path, json.dumps(value, indent=indent))


@st.composite
def mutated_config(draw):
    config = json.loads(json.dumps(draw(st.sampled_from(SEEDS))))
    for _ in range(draw(st.integers(1, 4))):
        target = config
        if isinstance(config.get("apply_preset"), dict) and draw(st.booleans()):
            target = config["apply_preset"]
        action = draw(st.sampled_from(["set", "delete", "rename"]))
        if action == "set" or not target:
            target[draw(KEYS)] = draw(JSON_VALUES)
        elif action == "delete":
            target.pop(draw(st.sampled_from(sorted(target))))
        else:
            old = draw(st.sampled_from(sorted(target)))
            target[old + draw(st.sampled_from(["s", "_", "X"]))] = target.pop(old)
    return config


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=mutated_config())
def test_mutated_configs_never_crash(tmp_path, config):
    check_document_text(tmp_path, json.dumps(config, indent=2))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet='{}[]",:0123456789.-+eE tfnrul\n\\aslgo', max_size=60))
def test_arbitrary_text_never_crashes(tmp_path, text):
    check_document_text(tmp_path, text)


# Values Python's json module reads but json.dumps does not write: placeholders replaced in the text.
SPECIAL_LITERALS = {
    "@@nan@@": "NaN",
    "@@inf@@": "Infinity",
    "@@-inf@@": "-Infinity",
    "@@overflow@@": "1e999",
    "@@huge@@": "9" * 4301,
    "@@-huge@@": "-" + "7" * 5000,
    "@@surrogate@@": '"\\udc00"',
    "@@escape@@": '"\\u001b[31mred\\nLYC999 forged"',
}
SPECIAL = st.sampled_from(sorted(SPECIAL_LITERALS))
SPECIAL_VALUES = st.recursive(
    SCALARS | SPECIAL, lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS | SPECIAL.map(lambda s: s + "k"), children, max_size=6), max_leaves=20
)


def with_special_literals(text: str) -> str:
    for placeholder, literal in SPECIAL_LITERALS.items():
        text = text.replace(f'"{placeholder}k"', literal if literal.startswith('"') else f'"{literal}"')
        text = text.replace(f'"{placeholder}"', literal)
    return text


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=SPECIAL_VALUES, seed=st.sampled_from(SEEDS))
def test_lone_surrogates_huge_integers_and_non_finite_numbers_lint_like_any_value(tmp_path, capsys, value, seed):
    """Valid JSON (as Python's json reads it) never crashes lint, machine formats are whole documents, and text
    output carries no control character from the input."""
    config = dict(seed, extra=value)
    text = with_special_literals(json.dumps(config, indent=2))
    check_document_text(tmp_path, text)
    capsys.readouterr()
    path = tmp_path / "doc.json"
    for fmt in ("json", "sarif"):
        assert main(["lint", "--format", fmt, str(path)]) in (0, 1)
        json.loads(capsys.readouterr().out)  # a whole document, or this raises
    assert main(["lint", "--format", "text", str(path)]) in (0, 1)
    out = capsys.readouterr().out
    assert not [char for char in out if char != "\n" and (ord(char) < 32 or 0xD800 <= ord(char) <= 0xDFFF)]
    assert "\nLYC999" not in out
