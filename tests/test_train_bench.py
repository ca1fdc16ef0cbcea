"""`python -m lyco_train.bench`: times train_step on a real run, and bad input is one clear message (the README's
command on the example config, whose dataset folder does not exist here)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("lycoris")

from train_fixtures import one_thread, pipeline, write_setup  # noqa: E402,F401 (fixtures)

ROOT = Path(__file__).resolve().parent.parent


def bench(*arguments: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lyco_train.bench", *arguments], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_the_readme_command_without_the_dataset_folder_is_one_clear_error():
    done = bench("examples/train/config.json", "--steps", "1")
    assert done.returncode == 1
    assert done.stdout.strip().splitlines()[-1] == (
        "error: dataset 'my-images': instance_data_dir datasets/my-images is not a folder; point it at your images"
    )
    assert "Traceback" not in done.stdout + done.stderr


def test_a_missing_config_is_exit_2():
    done = bench("no-such-config.json")
    assert done.returncode == 2 and "error: config file no-such-config.json not found" in done.stdout


def test_it_times_the_steps_of_a_real_run(tmp_path, pipeline):
    config = write_setup(tmp_path, pipeline)
    done = bench(str(config), "--steps", "2", "--warmup", "1", "--threads", "1", "--adapter-path", "bypass")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "adapter path (bypass, pinned): 0 layer(s) rebuild, 14 bypass" in done.stdout
    assert "train_step: median" in done.stdout and "over 2 steps" in done.stdout
    assert not (tmp_path / "output" / "pytorch_lora_weights.safetensors").exists()  # nothing saved
