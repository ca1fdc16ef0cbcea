"""What users rely on outside Python: the console script, the wheel, the pre-commit hook, start-up cost."""

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import EXAMPLES, ROOT, VALID_LYCORIS, main_in_a_fresh_python


def test_lint_path_imports_no_torch_diffusers_or_lycoris():
    """Also not jsonschema: its import alone costs more than a lint run (fastschema.py validates instead)."""
    assert main_in_a_fresh_python(["lint", "--quiet", str(EXAMPLES)]) == (0, [])


def test_console_script_runs(tmp_path):
    config = tmp_path / "lycoris.json"
    config.write_text(json.dumps(VALID_LYCORIS))
    script = Path(sys.executable).with_name("lyco")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "lyco_lint"]
    done = subprocess.run([*command, "lint", str(config)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "All checks passed" in done.stdout


def test_wheel_ships_the_schemas_inside_the_package(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    wheel = next(tmp_path.glob("lyco-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for schema in ("lycoris-config", "apply-preset", "module-options"):
        assert f"lyco_lint/schemas/{schema}.schema.json" in names
    assert any(name.startswith("lyco_lint/data/") for name in names)

    # Installed from the wheel (not the checkout), run from an unrelated folder: schemas still load.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True)
    config = tmp_path / "lycoris.json"
    config.write_text(json.dumps(dict(VALID_LYCORIS, factr=2)))
    code = "import lyco_lint, lyco_lint.schemas as s, lyco_lint.cli as c; print(lyco_lint.__file__, s.schema_dir()); c.run()"
    done = subprocess.run(
        [sys.executable, "-c", code, "lint", str(config)],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    first_line = done.stdout.splitlines()[0]
    assert first_line.startswith(str(target)) and first_line.endswith("lyco_lint/schemas"), done.stdout + done.stderr
    assert done.returncode == 1 and "LYC011" in done.stdout


def test_pre_commit_manifest_is_well_formed_and_its_entry_runs(tmp_path):
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "lyco-lint")
    assert {"id", "name", "entry", "language"} <= set(hook) and hook["language"] == "python"
    assert "json" in hook.get("types", []) + hook.get("types_or", [])
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-manifest", str(ROOT / ".pre-commit-hooks.yaml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # pre-commit runs `entry [args] file1 file2 ...`
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(VALID_LYCORIS))
    bad.write_text(json.dumps(dict(VALID_LYCORIS, factr=1)))
    entry = hook["entry"].split()
    assert entry[0] == "lyco"
    command = [sys.executable, "-m", "lyco_lint", *entry[1:], *hook.get("args", [])]
    assert subprocess.run([*command, str(good)], capture_output=True).returncode == 0
    failed = subprocess.run([*command, str(good), str(bad)], capture_output=True, text=True)
    assert failed.returncode == 1 and re.search(r"bad\.json:\d+:\d+: LYC011", failed.stdout)


def test_schemas_are_valid_draft_2020_12_with_stable_ids():
    from jsonschema import Draft202012Validator

    from lyco_lint.schemas import load_schemas

    schemas = load_schemas()
    assert set(schemas) == {"urn:lyco:schema:lycoris-config", "urn:lyco:schema:apply-preset", "urn:lyco:schema:module-options"}
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_lycoris_option_is_documented():
    from lyco_lint.schemas import load_schemas

    for schema in load_schemas().values():
        for name, spec in schema["properties"].items():
            assert spec.get("description") or "$ref" in spec, name


def test_model_checks_on_a_lint_only_install_are_one_finding(tmp_path):
    """Without the train extra (simulated: torch, diffusers and lycoris cannot be imported), --model says what
    to install."""
    config = tmp_path / "lycoris.json"
    config.write_text(json.dumps(VALID_LYCORIS))
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "Flux2Transformer2DModel"}))
    code = (
        "import sys; sys.modules.update(dict.fromkeys(['torch', 'diffusers', 'lycoris'], None))\n"
        "from lyco_lint.cli import main\n"
        f"sys.exit(main(['lint', '--format', 'json', '--model', {str(tmp_path)!r}, {str(config)!r}]))\n"
    )
    # an empty analysis cache: in a real lint-only install no cache entry can match (the versions differ)
    environment = dict(os.environ, LYCO_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment)
    findings = json.loads(done.stdout)
    assert done.returncode == 1 and [f["code"] for f in findings] == ["LYC210"], done.stderr
    assert "pip install 'lyco[train]'" in findings[0]["message"]
