"""`lyco sample`: with a training config or with --model and --weights alone, through the console script; bad
input (missing weights, weights for another model, a prompt file that is not one) is one clear message."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("lycoris")

from safetensors.torch import load_file, save_file  # noqa: E402

from train_fixtures import one_thread, pipeline, write_setup  # noqa: E402,F401 (fixtures)

from lyco_lint.cli import main  # noqa: E402

BIN = Path(sys.executable).parent
OPTIONS = {"max_train_steps": 1, "validation_disable": True, "validation_prompt": "a red circle", "tokenizer_max_length": None}  # 512 tokens, as --model
FAST = ["--steps", "2", "--width", "32", "--height", "32"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, pipeline):
    from lyco_train import run

    root = tmp_path_factory.mktemp("trained")
    config = write_setup(root, pipeline, options=OPTIONS)
    assert run(config) == 0
    return config


def lyco(*arguments: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(BIN / "lyco"), *arguments], capture_output=True, text=True, timeout=600, env=env)


def test_sample_with_model_and_weights_alone_renders_what_the_config_renders(tmp_path, trained, pipeline, capsys):
    weights = trained.parent / "output" / "pytorch_lora_weights.safetensors"
    done = lyco("sample", "--model", str(pipeline), "--weights", str(weights), "--prompt", "a red circle", "--prompt", "a blue square",
                "--num-images", "2", "--seed", "3", "--dtype", "fp32", "--output", str(tmp_path / "alone"), *FAST)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CFG 7.5 against the negative prompt from step 2" in done.stdout  # SimpleTuner's defaults for FLUX.2 [klein]
    names = sorted(path.name for path in (tmp_path / "alone").iterdir())
    assert names == ["grid.png", "prompt-1-1-32x32.png", "prompt-1-2-32x32.png", "prompt-2-1-32x32.png", "prompt-2-2-32x32.png"]
    library = tmp_path / "prompts.json"
    library.write_text(json.dumps({"red": "a red circle"}))
    assert main(["sample", str(trained), "--prompt-library", str(library), "--seed", "3", "--guidance", "7.5", "--output", str(tmp_path / "config"), *FAST]) == 0
    from PIL import Image

    assert list(Image.open(tmp_path / "config" / "red-1-32x32.png").getdata()) == list(Image.open(tmp_path / "alone" / "prompt-1-1-32x32.png").getdata())
    assert main(["sample", str(trained), "--output", str(tmp_path / "default"), *FAST]) == 0  # the config's validation_prompt
    assert sorted(path.name for path in (tmp_path / "default").iterdir()) == ["grid.png", "validation-1-32x32.png"]


def test_bad_input_is_one_clear_message(tmp_path, trained, pipeline, tmp_path_factory, capsys):
    def fails(*arguments: str) -> str:
        assert main(["sample", *arguments]) == 2
        return capsys.readouterr().out

    weights = trained.parent / "output" / "pytorch_lora_weights.safetensors"
    fresh = write_setup(tmp_path / "fresh", pipeline, options=OPTIONS)
    assert "the run has no adapter yet" in fails(str(fresh))
    assert "nothing.safetensors not found" in fails("--model", str(pipeline), "--weights", str(tmp_path / "nothing.safetensors"))
    (tmp_path / "notes.safetensors").write_text('{"a": 1}')
    assert "is not an adapter lyco can load: not a safetensors file" in fails("--model", str(pipeline), "--weights", str(tmp_path / "notes.safetensors"))
    (tmp_path / "prompts.txt").write_text("a red circle\na blue square\n")
    assert "invalid JSON" in fails(str(trained), "--prompt-library", str(tmp_path / "prompts.txt"))
    assert "give --width and --height together" in fails(str(trained), "--width", "32")

    # weights of the SDXL UNet on the FLUX.2 transformer: the metadata says so, and without it the layers do
    from family_fixtures import SDXL_ATTENTION_LORA, tiny_sdxl_pipeline

    from lyco_train.adapter import build_adapter, save_adapter

    sdxl = tiny_sdxl_pipeline(tmp_path_factory)
    from diffusers import UNet2DConditionModel

    adapter = build_adapter(UNet2DConditionModel.from_pretrained(sdxl, subfolder="unet"), SDXL_ATTENTION_LORA, seed=0, device=torch.device("cpu"), max_timestep=1000)
    other = tmp_path / "sdxl.safetensors"
    save_adapter(adapter, other, {"model_family": "sdxl"})
    assert "was trained on model_family sdxl (its metadata), but the model is flux2" in fails("--model", str(pipeline), "--weights", str(other), "--prompt", "x")
    bare = tmp_path / "bare.safetensors"
    save_file(load_file(str(other)), str(bare))
    assert "the weights are for another model" in fails("--model", str(pipeline), "--weights", str(bare), "--prompt", "x", *FAST)
    assert "the weights are for another model" not in fails("--model", str(pipeline), "--weights", str(weights), "--width", "32")

    done = lyco("sample", str(fresh))
    assert done.returncode == 2 and "the run has no adapter yet" in done.stdout and "Traceback" not in done.stderr


def test_a_model_that_cannot_be_loaded_is_one_clear_message(tmp_path, trained, pipeline):
    """Was: `lyco sample --model HUB-ID` with no connection and no cached copy printed 'internal error: OSError'."""
    weights = trained.parent / "output" / "pytorch_lora_weights.safetensors"  # its metadata says flux2 [klein]
    done = lyco("sample", "--model", "nobody/not-cached-anywhere", "--weights", str(weights), "--prompt", "x", *FAST)
    assert done.returncode == 1 and "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert "error: cannot load the model nobody/not-cached-anywhere:" in done.stdout
    assert "`hf download nobody/not-cached-anywhere`" in done.stdout
    # a local pipeline missing its VAE's weights (a download that stopped part way): named, with the folder
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(pipeline, partial)
    for file in (partial / "vae").glob("*.safetensors"):
        file.unlink()
    done = lyco("sample", "--model", str(partial), "--weights", str(weights), "--prompt", "x", *FAST)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert f"error: cannot load the model {partial}:" in done.stdout and "a complete diffusers pipeline" in done.stdout


def test_a_library_whose_prompts_share_one_strength_renders_at_it_in_float32(tmp_path, pipeline):
    """Was: in float32 with one strength for every prompt, the adapter was merged at validation_lycoris_strength,
    so a library's adapter_strength was dropped (and the line said 'strength 1')."""
    from PIL import Image

    from lyco_train import run

    config = write_setup(tmp_path, pipeline, options={**OPTIONS, "max_train_steps": 4, "learning_rate": 0.05, "checkpoint_step_interval": 0})
    assert run(config) == 0
    library = tmp_path / "library.json"
    library.write_text(json.dumps({"zero": {"prompt": "a red circle", "adapter_strength": 0}}))
    fp32 = ["--seed", "3", "--dtype", "fp32", *FAST]
    done = lyco("sample", str(config), "--prompt-library", str(library), "--output", str(tmp_path / "library"), *fp32)
    assert done.returncode == 0 and "at strength 0, merged into the float32 weights" in done.stdout, done.stdout + done.stderr
    for strength in ("0", "1"):
        assert main(["sample", str(config), "--prompt", "a red circle", "--strength", strength, "--output", str(tmp_path / strength), *fp32]) == 0
    pixels = lambda path: list(Image.open(path).getdata())  # noqa: E731
    at_zero, at_one = pixels(tmp_path / "0" / "prompt-1-1-32x32.png"), pixels(tmp_path / "1" / "prompt-1-1-32x32.png")
    assert at_zero != at_one  # the adapter changes the image, so the comparison below can fail
    assert pixels(tmp_path / "library" / "zero-1-32x32.png") == at_zero


def test_an_output_that_cannot_be_written_is_refused_before_anything_loads(tmp_path, trained, capsys):
    """Was: lyco sample rendered everything, then 'internal error: FileExistsError'; lyco merge loaded and merged
    the whole model first."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    assert main(["sample", str(trained), "--output", str(a_file), *FAST]) == 2
    out = capsys.readouterr().out
    assert f"error: --output {a_file} is a file" in out and "sampling" not in out and "encoding" not in out
    assert main(["merge", str(trained), "--output", str(a_file / "merged")]) == 2
    out = capsys.readouterr().out
    assert f"error: --output {a_file / 'merged'}: {a_file} is a file, so the folder cannot be created there" in out
    assert "Loading" not in out
    done = lyco("sample", str(trained), "--output", str(a_file / "under"), *FAST)
    assert done.returncode == 2 and "is a file" in done.stdout and "internal error" not in done.stderr
