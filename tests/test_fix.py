"""`lyco lint --fix`, `--unsafe-fixes` and `--diff`: rules offer fixes, only the edited spans change, writes are
atomic, what remains is reported and decides the exit status; json and sarif carry the edits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from lyco_lint.catalog import SAFE, TRAINING, UNSAFE, LYCORIS, DATASET
from lyco_lint.cli import main
from lyco_lint.engine import Options, lint_paths
from lyco_lint.fixes import apply_fixes, fixed_files
from lyco_lint.rules import load_rules

# Safe: a deprecated alias (LYC016), a full-matrix LoKr's ignored alpha (LYC103), the string "false" at the top
# level (LYC014). Unsafe: a typo (LYC011), a flag written 0 (LYC014). No fix: a typo of a key already written.
MIXED = (
    '{\n'
    '\t"algo": "lokr",\n'
    '\t"multiplier": 1.0,\n'
    '\t"linear_dim": 10000,   \n'
    '\t"linear_alpha": 1,\n'
    '\t"factor": 16,\n'
    '\t"bypass_mode": "false",\n'
    '\t"use_scalar": 0,\n'
    '\t"use_cp": true,\n'
    '\t"note": "\u00e9t\u00e9 \u2014 \u65e5\u672c",\n'
    '\t"rank_dropot": 0.1,\n'
    '\t"factr": 2\n'
    '}\n'
)


def run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def codes_in(path: Path) -> list[str]:
    return sorted(f.code for f in lint_paths([str(path)]).findings)


def test_fix_applies_safe_fixes_only_and_keeps_every_other_byte(tmp_path, capsys):
    path = tmp_path / "cfg.lycoris.json"
    original = ("\ufeff" + MIXED).replace("\n", "\r\n").encode("utf-8")
    path.write_bytes(original)
    path.chmod(0o640)
    status, out, _ = run(capsys, "lint", "--fix", str(path))
    fixed = path.read_bytes()
    expected = original.replace(b'"linear_alpha": 1,', b'"linear_alpha": 10000,').replace(
        b'"bypass_mode": "false"', b'"bypass_mode": false').replace(b'"use_cp": true', b'"use_tucker": true')
    assert fixed == expected  # BOM, CRLF, tabs, trailing spaces, key order and non-ASCII text untouched
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    assert "Fixed 3 problems." in out
    # what remains is reported and decides the exit status: the unfixed flag and unknown keys are errors
    assert status == 1 and "LYC014" in out and "LYC011" in out and "LYC016" not in out
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_unsafe_fixes_too(tmp_path, capsys):
    path = tmp_path / "cfg.lycoris.json"
    path.write_text(MIXED, encoding="utf-8")
    status, out, _ = run(capsys, "lint", "--fix", "--unsafe-fixes", str(path))
    config = json.loads(path.read_text(encoding="utf-8"))
    assert config["rank_dropout"] == 0.1 and config["use_scalar"] is False and "factr" in config  # factor exists: no rename
    assert config["note"] == "\u00e9t\u00e9 \u2014 \u65e5\u672c"
    assert "Fixed 5 problems." in out


def test_an_unknown_algo_with_one_close_name(tmp_path, capsys):
    path = tmp_path / "cfg.lycoris.json"
    path.write_text('{"algo": "lycoris-lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 16}')
    assert run(capsys, "lint", "--fix", "--unsafe-fixes", str(path))[0] == 0
    assert json.loads(path.read_text())["algo"] == "lokr"


def test_diff_prints_a_unified_diff_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "cfg.lycoris.json"
    path.write_text(MIXED, encoding="utf-8")
    before = path.read_bytes()
    status, out, err = run(capsys, "lint", "--diff", str(path))
    assert path.read_bytes() == before and status == 1
    assert out.startswith(f"--- {path}\n+++ {path}\n@@ ")
    assert '-\t"linear_alpha": 1,\n+\t"linear_alpha": 10000,\n' in out and "would fix 3 problems" in err
    copy = tmp_path / "copy.json"
    copy.write_bytes(before)
    patched = subprocess.run(["patch", "--silent", str(copy)], input=out, text=True, capture_output=True)
    if patched.returncode == 0 or "not found" not in patched.stderr:
        assert patched.returncode == 0 and copy.read_bytes() == before.replace(b'"linear_alpha": 1,', b'"linear_alpha": 10000,').replace(
            b'"bypass_mode": "false"', b'"bypass_mode": false').replace(b'"use_cp": true', b'"use_tucker": true')
    clean = tmp_path / "clean.lycoris.json"
    clean.write_text('{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8}')
    assert run(capsys, "lint", "--diff", str(clean))[0] == 0


def test_fixing_everything_exits_0(tmp_path, capsys):
    path = tmp_path / "cfg.lycoris.json"
    path.write_text('{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8, "bypass_mode": "false"}')
    status, out, _ = run(capsys, "lint", "--fix", str(path))
    assert status == 0 and "Fixed 1 problem. All checks passed (1 file)." in out


def test_overlapping_fixes_take_several_passes(tmp_path, capsys):
    path = tmp_path / "cfg.lycoris.json"
    path.write_text('{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8,\n "factor": 1, "factor": 2, "factor": 3}\n')
    status, out, _ = run(capsys, "lint", "--fix", str(path))
    assert path.read_text() == '{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8,\n "factor": 3}\n'
    assert "LYC002" not in out


def test_two_renames_to_one_key_are_not_applied_and_stay_reported(tmp_path, capsys):
    # renaming both typos would write "linear_dim" twice, and LYC002's safe fix would then delete the user's 16
    path = tmp_path / "cfg.lycoris.json"
    text = '{\n  "algo": "lora",\n  "multiplier": 1.0,\n  "linear_alpha": 8,\n  "linear_dimm": 16,\n  "liner_dim": 32\n}\n'
    path.write_text(text)
    status, out, _ = run(capsys, "lint", "--fix", "--unsafe-fixes", str(path))
    assert path.read_text() == text
    assert status == 1 and out.count("LYC011") == 2 and "All checks passed" not in out
    assert "fixable" not in out  # nothing is offered that --fix would not apply
    status, out, _ = run(capsys, "lint", "--unsafe-fixes", str(path))
    assert out.count("LYC011") == 2 and "[*]" not in out  # nor marked as fixable
    status, out, _ = run(capsys, "lint", "--diff", "--unsafe-fixes", str(path))
    assert "+" not in out.replace("+++", "")


def test_a_rename_still_applies_when_it_writes_a_key_nothing_else_writes(tmp_path, capsys):
    path = tmp_path / "cfg.lycoris.json"
    path.write_text('{"algo": "lora", "multiplier": 1.0, "linear_alpha": 8, "linear_dimm": 16, "rank_dropot": 0.1}')
    status, out, _ = run(capsys, "lint", "--fix", "--unsafe-fixes", str(path))
    assert json.loads(path.read_text()) == {"algo": "lora", "multiplier": 1.0, "linear_alpha": 8, "linear_dim": 16, "rank_dropout": 0.1}
    assert status == 0, out


def test_a_dataset_entry_with_two_typos_of_one_key_keeps_both_values(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "multidatabackend.json"
    text = json.dumps([
        {"id": "photos", "type": "local", "instance_data_dir": ".", "caption_strategy": "filename", "repeat": 5, "repeatss": 1},
        {"id": "text-embeds", "dataset_type": "text_embeds", "type": "local", "default": True, "cache_dir": "cache/text"},
    ])
    path.write_text(text)
    status, out, _ = run(capsys, "lint", "--fix", "--unsafe-fixes", str(path))
    assert path.read_text() == text and out.count("LYC502") == 2 and status == 1


def test_apply_fixes_refuses_renames_that_make_a_duplicate_key(tmp_path):
    from lyco_lint.catalog import Fix, rename_key
    from lyco_lint.documents import Document
    from lyco_lint.fixes import resolve

    text = '{"a": 1, "b": 2, "c": 3}'
    path = tmp_path / "x.lycoris.json"
    path.write_text(text)
    document = Document.read(path, str(path))

    def renaming(key, new):
        return resolve(document, Fix(f"Rename {key}", (rename_key("/" + key, new),)))

    assert apply_fixes(text, [renaming("a", "z"), renaming("b", "z")]) == (text, 0)  # both write "z"
    assert apply_fixes(text, [renaming("a", "c")]) == (text, 0)  # "c" is there already
    assert apply_fixes(text, [renaming("a", "z"), renaming("b", "y")]) == ('{"z": 1, "y": 2, "c": 3}', 2)


def test_fixes_follow_a_symbolic_link_and_keep_it(tmp_path, capsys):
    target = tmp_path / "real.lycoris.json"
    target.write_text('{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8, "use_cp": true}')
    link = tmp_path / "link.lycoris.json"
    link.symlink_to(target)
    run(capsys, "lint", "--fix", str(link))
    assert link.is_symlink() and '"use_tucker": true' in target.read_text()


def test_training_and_dataset_configs_are_fixed_too(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "multidatabackend.json").write_text(json.dumps([
        {"id": "photos", "type": "local", "instance_data_dir": ".", "crop_styl": "center"},
        {"id": "text-embeds", "dataset_type": "text_embeds", "type": "local", "default": True},
    ], indent=2))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "--model_type": "lora", "model_family": "flux2", "output_dir": "out", "optimizer": "adamw_bf16",
        "data_backend_config": "multidatabackend.json", "lora_typ": "standard", "gradient_checkpointing": "false",
    }, indent=2))
    status, out, _ = run(capsys, "lint", "--fix", "--unsafe-fixes", str(config))
    training = json.loads(config.read_text())
    assert training["lora_type"] == "standard" and training["gradient_checkpointing"] is False and "lora_typ" not in training
    assert json.loads((tmp_path / "multidatabackend.json").read_text())[0]["crop_style"] == "center"
    assert status == 0, out


def test_text_marks_fixable_findings_and_json_and_sarif_carry_the_edits(tmp_path, capsys):
    path = tmp_path / "cfg.lycoris.json"
    path.write_text(MIXED, encoding="utf-8")
    _, out, _ = run(capsys, "lint", str(path))
    assert "LYC016 [*] [warning]" in out and "LYC011 [error]" in out
    assert "[*] 3 fixable with `lyco lint --fix` (2 more with `--unsafe-fixes`)" in out
    _, out, _ = run(capsys, "lint", "--unsafe-fixes", str(path))
    assert "LYC011 [*] [error] unknown key 'rank_dropot'" in out and "LYC011 [error] unknown key 'factr'" in out
    _, out, _ = run(capsys, "lint", "--format", "json", str(path))
    findings = {f["code"] + f["pointer"]: f for f in json.loads(out)}
    fix = findings["LYC016/use_cp"]["fix"]
    assert fix["applicability"] == SAFE and fix["message"] == "Rename 'use_cp' to 'use_tucker'"
    assert fix["edits"][0] == {"content": '"use_tucker"', "location": {"line": 9, "column": 2}, "end_location": {"line": 9, "column": 10}}
    assert findings["LYC011/rank_dropot"]["fix"]["applicability"] == UNSAFE and findings["LYC011/factr"]["fix"] is None
    _, out, _ = run(capsys, "lint", "--format", "sarif", str(path))
    results = json.loads(out)["runs"][0]["results"]
    sarif_fix = next(r for r in results if r["ruleId"] == "LYC016")["fixes"][0]
    replacement = sarif_fix["artifactChanges"][0]["replacements"][0]
    assert replacement["insertedContent"]["text"] == '"use_tucker"' and replacement["deletedRegion"]["startLine"] == 9


def test_explain_says_whether_and_how_a_rule_fixes(capsys):
    _, out, _ = run(capsys, "explain", "LYC016")
    assert "## Fix safety\nSafe:" in out
    _, out, _ = run(capsys, "explain", "LYC304")
    assert "## Fix safety\nThis rule offers no automatic fix" in out
    _, out, _ = run(capsys, "explain", "--format", "json", "LYC011")
    assert json.loads(out)["fix"].startswith("Unsafe:")


FIXING = sorted(code for code, entry in load_rules().items() if entry.fix_doc)


def test_the_rules_that_fix_are_the_expected_ones():
    assert {"LYC002", "LYC011", "LYC014", "LYC015", "LYC016", "LYC103", "LYC201", "LYC205", "LYC310", "LYC311",
            "LYC313", "LYC502", "LYC504", "LYC506"} <= set(FIXING)


@pytest.mark.parametrize("code", FIXING)
def test_every_fixing_rule_fixes_its_documented_example(tmp_path, code, monkeypatch):
    """The example of a rule that offers fixes gets one, and the fixed file still parses and loses that finding."""
    monkeypatch.chdir(tmp_path)
    entry = load_rules()[code]
    name = "multidatabackend.json" if entry.applies_to == (DATASET,) else "config.json" if TRAINING in entry.applies_to and LYCORIS not in entry.applies_to else "x.lycoris.json"
    path = tmp_path / name
    path.write_text(entry.example, encoding="utf-8")
    options = Options(family="flux2" if code == "LYC205" else None)
    result = lint_paths([str(path)], options)
    mine = [f for f in result.findings if f.code == code and f.fix is not None]
    assert mine, f"{code}'s example gets no fix"
    after, applied = apply_fixes(entry.example, [f.fix for f in mine])
    assert applied == len(mine) and after != entry.example
    json.loads(after)  # still JSON
    path.write_text(after, encoding="utf-8")
    remaining = [f for f in lint_paths([str(path)], options).findings if f.code == code]
    assert len(remaining) < len([f for f in result.findings if f.code == code])


from test_properties import mutated_config  # noqa: E402  (hypothesis strategy of broken configs)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=mutated_config())
def test_fixes_never_break_the_json(tmp_path, config):
    path = tmp_path / "fuzz.lycoris.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    result = lint_paths([str(path)])
    for change in fixed_files(result.findings, result.documents, unsafe=True):
        json.loads(change.after)
        assert change.after != change.before
