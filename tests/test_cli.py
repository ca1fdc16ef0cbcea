"""`lyco lint` and `lyco explain` through `main(argv)`: formats, exit status, selection."""

import json
import re

import pytest

from conftest import EXAMPLES, VALID_LYCORIS
from lyco_lint.cli import main

BROKEN = dict(VALID_LYCORIS, factr=8, bypass_mode=0)  # one error (LYC011) and one error (LYC014)
WARNS = dict(VALID_LYCORIS, use_cp=True)  # a warning only (LYC016)


def run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_clean_file_exits_0_with_a_summary(capsys, write):
    status, out, _ = run(capsys, "lint", str(write(VALID_LYCORIS)))
    assert status == 0
    assert "All checks passed (1 file)" in out


def test_errors_exit_1_with_path_line_column_code(capsys, write):
    path = write(BROKEN)
    status, out, _ = run(capsys, "lint", str(path))
    assert status == 1
    assert re.search(r"config\.lycoris\.json:\d+:\d+: LYC011 \[error\] unknown key 'factr'", out)
    assert "Found 2 problems (2 errors) in 1 file." in out


def test_warnings_pass_unless_strict(capsys, write):
    path = str(write(WARNS))
    assert run(capsys, "lint", path)[0] == 0
    assert run(capsys, "lint", "--strict", path)[0] == 1


def test_missing_path_is_a_usage_error(capsys, tmp_path):
    status, out, err = run(capsys, "lint", str(tmp_path / "nope.json"))
    assert status == 2 and "no such file or directory" in err and "Traceback" not in err


def test_unknown_option_and_format_are_usage_errors(capsys, write):
    path = str(write(VALID_LYCORIS))
    assert run(capsys, "lint", "--no-such-option", path)[0] == 2
    status, _, err = run(capsys, "lint", "--format", "xml", path)
    assert status == 2 and "unknown format 'xml'" in err


def test_json_format_has_the_documented_fields(capsys, write):
    status, out, _ = run(capsys, "lint", "--format", "json", str(write(BROKEN)))
    findings = json.loads(out)
    assert status == 1 and len(findings) == 2
    for finding in findings:
        assert set(finding) >= {"file", "line", "column", "end_line", "end_column", "code", "name", "severity", "message", "pointer"}
    assert {f["pointer"] for f in findings} == {"/factr", "/bypass_mode"}


def test_sarif_format_is_sarif_2_1_0_with_a_rules_table(capsys, write):
    _, out, _ = run(capsys, "lint", "--format", "sarif", str(write(BROKEN)))
    log = json.loads(out)
    assert log["version"] == "2.1.0"
    run_ = log["runs"][0]
    rule_ids = [rule["id"] for rule in run_["tool"]["driver"]["rules"]]
    assert "LYC011" in rule_ids and "LYC001" in rule_ids
    result = next(r for r in run_["results"] if r["ruleId"] == "LYC011")
    assert rule_ids[result["ruleIndex"]] == "LYC011"
    region = result["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] >= 1 and region["startColumn"] >= 1 and result["level"] == "error"


def test_github_format_is_chosen_under_github_actions(capsys, write, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    _, out, _ = run(capsys, "lint", str(write(BROKEN)))
    lines = [line for line in out.splitlines() if line.startswith("::")]
    assert len(lines) == 2
    assert re.match(r"::error file=.*config\.lycoris\.json,line=\d+,col=\d+,endColumn=\d+,endLine=\d+,title=LYC0\d\d \(", lines[0])


def test_select_and_ignore_take_prefixes(capsys, write):
    path = str(write(BROKEN))
    _, out, _ = run(capsys, "lint", "--format", "json", "--select", "LYC011", path)
    assert [f["code"] for f in json.loads(out)] == ["LYC011"]
    status, out, _ = run(capsys, "lint", "--format", "json", "--ignore", "LYC01", path)
    assert json.loads(out) == [] and status == 0
    status, _, err = run(capsys, "lint", "--select", "XYZ", path)
    assert status == 2 and "matches no rule" in err


def test_quiet_drops_the_summary(capsys, write):
    _, out, _ = run(capsys, "lint", "--quiet", str(write(VALID_LYCORIS)))
    assert out == ""


def test_folders_lint_configs_and_skip_unrelated_json(capsys, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "lycoris.json").write_text(json.dumps(BROKEN))
    (tmp_path / "package.json").write_text('{"name": "x"}')
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "bad.json").write_text("{")
    status, out, _ = run(capsys, "lint", "--format", "json", str(tmp_path))
    files = {f["file"] for f in json.loads(out)}
    assert status == 1 and len(files) == 1 and next(iter(files)).endswith("sub/lycoris.json")


def test_shipped_examples_lint_without_errors(capsys):
    status, out, _ = run(capsys, "lint", "--format", "json", str(EXAMPLES))
    assert [f for f in json.loads(out) if f["severity"] == "error"] == []
    assert status == 0


def test_code_frame_on_a_terminal(capsys, write):
    from lyco_lint.engine import lint_paths
    from lyco_lint.reporters import report
    import io

    result = lint_paths([str(write('{"algo": "lora", "multiplier": 1, "linear_dim": 4, "linear_alpha": 1, "factr": 8}'))])
    stream = io.StringIO()
    report(result, "text", stream, color=True)
    text = re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())
    assert '"factr": 8' in text and "^^^^^^^" in text


@pytest.mark.parametrize("topic, words", [
    ("LYC011", "# unknown-key (LYC011)"),
    ("unknown-key", "## Why is this bad?"),
    ("linear_dim", "Type: integer"),
    ("apply_preset.target_module", "Flux2Attention"),
    ("target_module", "# apply_preset.target_module"),
    ("module_algo_map.weight_decompose", "DoRA"),
])
def test_explain_prints_the_doc(capsys, topic, words):
    status, out, _ = run(capsys, "explain", topic)
    assert status == 0 and words in out


def test_explain_lists_every_rule_and_field(capsys):
    from lyco_lint.rules import load_rules

    status, out, _ = run(capsys, "explain", "--format", "json")
    names = {entry["name"] for entry in json.loads(out)}
    assert status == 0 and set(load_rules()) <= names and {"linear_dim", "apply_preset.module_algo_map"} <= names


def test_explain_json_for_a_field_carries_schema_facts(capsys):
    _, out, _ = run(capsys, "explain", "factor", "--format", "json")
    doc = json.loads(out)
    assert doc["default"] == -1 and doc["algos"] == ["lokr"] and doc["type"] == "integer"


def test_explain_unknown_topic_suggests(capsys):
    status, _, err = run(capsys, "explain", "linear_dims")
    assert status == 2 and "linear_dim" in err


def test_explain_accepts_a_training_option_written_with_dashes(capsys):
    status, out, _ = run(capsys, "explain", "--lora_type")
    assert status == 0 and out.startswith("# lora_type")


def test_folders_report_broken_configs_but_not_other_broken_json(capsys, tmp_path):
    (tmp_path / "tsconfig.json").write_text('{"compilerOptions": {}, // a comment\n}')
    (tmp_path / "my.lycoris.json").write_text('{"algo": "lokr",}')
    status, out, _ = run(capsys, "lint", "--format", "json", str(tmp_path))
    findings = json.loads(out)
    assert status == 1 and [(f["code"], f["file"].rsplit("/", 1)[-1]) for f in findings] == [("LYC001", "my.lycoris.json")]
