"""Exit statuses of every command through the installed ``lyco`` console script, in a subprocess.

``main()`` in-process cannot see what the console script does after it: ``lyco lint --model`` and
``lyco plan`` end the process with ``os._exit`` (skipping the interpreter's teardown of torch and
diffusers), so the status the user's shell and CI see is only tested here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import VALID_LYCORIS

SCRIPT = Path(sys.executable).with_name("lyco")
LYCO = str(SCRIPT) if SCRIPT.exists() else shutil.which("lyco")
pytestmark = pytest.mark.skipif(LYCO is None, reason="the lyco console script is not installed")

TINY_FLUX2 = {
    "_class_name": "Flux2Transformer2DModel", "num_layers": 1, "num_single_layers": 1, "num_attention_heads": 2,
    "attention_head_dim": 16, "joint_attention_dim": 32, "guidance_embeds": False, "in_channels": 8,
    "axes_dims_rope": [4, 4, 4, 4], "timestep_guidance_channels": 16,
}
FLUX2_TARGETS = ["Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention"]


def lyco(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([LYCO, *argv], capture_output=True, text=True, cwd=cwd, timeout=300)


def write(folder: Path, name: str, value) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2), encoding="utf-8")
    return str(path)


@pytest.fixture
def model(tmp_path) -> str:
    """A Flux 2 model folder holding only its transformer's config.json (the model is built on the meta device)."""
    write(tmp_path / "model", "transformer/config.json", TINY_FLUX2)
    write(tmp_path / "model", "model_index.json", {"_class_name": "Flux2Pipeline", "transformer": ["diffusers", "Flux2Transformer2DModel"]})
    return str(tmp_path / "model")


def test_version_exits_0_and_prints_the_version():
    from lyco_lint import __version__

    done = lyco("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"lyco {__version__}", done.stderr


def test_lint_statuses(tmp_path):
    clean = write(tmp_path, "clean.lycoris.json", VALID_LYCORIS)
    broken = write(tmp_path, "broken.lycoris.json", dict(VALID_LYCORIS, factr=8))
    warns = write(tmp_path, "warns.lycoris.json", dict(VALID_LYCORIS, use_cp=True))
    assert lyco("lint", clean).returncode == 0
    assert lyco("lint", broken).returncode == 1
    assert lyco("lint", warns).returncode == 0
    assert lyco("lint", "--strict", warns).returncode == 1
    missing = lyco("lint", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert lyco("lint", "--format", "xml", clean).returncode == 2


def test_lint_with_model_exits_1_on_errors_and_strict_warnings(tmp_path, model):
    """Defect: the teardown-skipping exit ended every --model run with status 0."""
    wrong_target = write(tmp_path, "wrong.lycoris.json", dict(VALID_LYCORIS, apply_preset={"target_module": ["Attention"]}))
    done = lyco("lint", "--family", "flux2", "--model", model, wrong_target)
    assert done.returncode == 1 and "LYC205" in done.stdout, done.stdout + done.stderr
    # bypass mode that costs more than rebuilding (LYC401, a warning) on a small LoRA
    good = write(tmp_path, "good.lycoris.json", dict(VALID_LYCORIS, apply_preset={"target_module": FLUX2_TARGETS}))
    assert lyco("lint", "--family", "flux2", "--model", model, good).returncode == 0
    warning = write(tmp_path, "warning.lycoris.json", dict(VALID_LYCORIS, use_cp=True, apply_preset={"target_module": FLUX2_TARGETS}))
    assert lyco("lint", "--family", "flux2", "--model", model, warning).returncode == 0
    assert lyco("lint", "--strict", "--family", "flux2", "--model", model, warning).returncode == 1
    unavailable = lyco("lint", "--model", str(tmp_path / "no-model"), good)
    assert unavailable.returncode == 1 and "LYC210" in unavailable.stdout


def test_explain_statuses():
    assert lyco("explain", "LYC011").returncode == 0
    assert lyco("explain", "no-such-topic").returncode == 2


def test_plan_statuses(tmp_path, model):
    good = write(tmp_path, "good.lycoris.json", dict(VALID_LYCORIS, apply_preset={"target_module": FLUX2_TARGETS}))
    done = lyco("plan", "--family", "flux2", "--model", model, "--format", "json", good)
    assert done.returncode == 0 and json.loads(done.stdout)["adapted_modules"] > 0, done.stderr
    assert done.stderr == ""  # was: five lines of torchao's import warnings (diffusers and lycoris import it)
    unavailable = lyco("plan", "--model", str(tmp_path / "no-model"), good)
    assert unavailable.returncode == 2 and "LYC210" in unavailable.stderr
    assert lyco("plan", str(tmp_path / "nope.json")).returncode == 2


def test_plan_refuses_a_non_finite_number(tmp_path, model):
    """Defect: plan did not run LYC017, so "linear_alpha": NaN exited 0 and `--format json` wrote `"alpha": NaN`
    (not JSON). Like invalid JSON, it is refused with the finding on stderr."""
    config = tmp_path / "nan.lycoris.json"
    config.write_text('{"algo": "lora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": NaN, '
                      '"apply_preset": {"target_module": ["Flux2Attention"]}}')
    done = lyco("plan", "--family", "flux2", "--model", model, "--format", "json", str(config))
    assert done.returncode == 2 and done.stdout == "", done.stdout
    assert "nan.lycoris.json:1:70: LYC017 'linear_alpha': NaN is not a finite number" in done.stderr, done.stderr


def test_train_dry_run_on_a_bad_config_exits_1(tmp_path):
    config = write(tmp_path, "config.json", {"model_type": "lora", "model_family": "flux2", "lora_typ": "lycoris"})
    done = lyco("train", config, "--dry-run")
    assert done.returncode == 1 and "LYC310" in done.stdout + done.stderr, done.stdout + done.stderr


def test_lone_surrogates_and_huge_integers_lint_through_real_stdout(tmp_path):
    """Valid JSON that crashed lint: a lone surrogate escape (UTF-8 stdout cannot encode it) and an integer of more
    than 4,300 digits (Python's int/str limit). Machine formats are whole documents."""
    surrogate = tmp_path / "surrogate.lycoris.json"
    surrogate.write_text('{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8, "x\\udc00": 1}')
    huge = tmp_path / "huge.lycoris.json"
    huge.write_text('{"algo": "lora", "multiplier": 1.0, "linear_dim": ' + "1" * 5000 + ', "linear_alpha": 8}')
    for path, code in ((surrogate, "LYC011"), (huge, "LYC017")):
        for fmt in ("json", "sarif"):
            done = lyco("lint", "--format", fmt, str(path))
            assert done.returncode == 1 and "internal error" not in done.stderr, done.stderr
            assert code in json.dumps(json.loads(done.stdout))
        done = lyco("lint", str(path))
        assert done.returncode == 1 and code in done.stdout and "internal error" not in done.stderr
    assert "x\\udc00" in lyco("lint", str(surrogate)).stdout
