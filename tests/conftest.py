import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# The shared fixture modules hold asserts (train_in_halves, ...): pytest rewrites them as it does the tests', so a
# failure there shows its values too.
pytest.register_assert_rewrite("train_fixtures", "family_fixtures", "weights_fixtures")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# The maintainer tools (tools/, not in the wheel) are imported by the tests that check their output.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# SimpleTuner's reference tables sit in shared/ inside the checkout or beside it; tests that compare
# against them skip when neither exists.
REFERENCE = next(
    (base / "shared" / "reference" for base in (ROOT, ROOT.parent) if (base / "shared" / "reference").is_dir()),
    ROOT / "shared" / "reference",
)

# `--model` analyses are cached on disk (lyco_lint.meta_model.cache): tests use a cache of their own, never the
# user's, and subprocesses inherit it. Tests of the cache itself set LYCO_CACHE_DIR per test.
os.environ["LYCO_CACHE_DIR"] = tempfile.mkdtemp(prefix="lyco-test-cache-")

# A minimal valid LyCORIS config; tests add or break one thing at a time.
VALID_LYCORIS = {"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8}


def changed(base, **changes):
    """A copy of ``base`` with keys set; a value of ``...`` removes the key."""
    config = dict(base)
    for key, value in changes.items():
        if value is ...:
            config.pop(key)
        else:
            config[key] = value
    return config


@pytest.fixture
def write(tmp_path):
    """Write a config (a dict, or raw text) to a file in tmp_path and return its path."""

    def _write(content, name="config.lycoris.json"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def lint(write):
    """Lint one config and return its findings (dicts, as `--format json` prints them)."""
    from lyco_lint.engine import Options, lint_paths

    def _lint(content, name="config.lycoris.json", **options):
        path = write(content, name)
        return [finding.as_dict() for finding in lint_paths([str(path)], Options(**options)).findings]

    return _lint


# What the lint path must never import (its start-up cost; jsonschema's import alone costs more than a lint run).
HEAVY_MODULES = ("torch", "diffusers", "lycoris", "safetensors", "accelerate", "jsonschema")


def main_in_a_fresh_python(arguments: list[str]) -> tuple[int, list[str]]:
    """``lyco_lint.cli.main(arguments)`` run in a fresh interpreter: its exit status and which of HEAVY_MODULES
    it imported."""
    code = (
        "import json, sys\n"
        "from lyco_lint.cli import main\n"
        f"status = main({list(arguments)!r})\n"
        f"heavy = [m for m in {HEAVY_MODULES!r} if m in sys.modules]\n"
        "print(json.dumps([status, heavy]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    status, heavy = json.loads(out.strip().splitlines()[-1])
    return status, heavy


def codes(findings):
    return [finding["code"] for finding in findings]
