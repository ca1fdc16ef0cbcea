"""Validation images during `lyco train`: SimpleTuner's options read as the values say, the images of each interval
(T-LoRA included) on every family, prompts encoded with the training prompts, and a run with validation trains
bit-identical weights to the same run without (and resumes exactly)."""

import json
from pathlib import Path

import pytest

from lyco_train.config import ConfigError
from lyco_train.options import TrainingOptions
from lyco_train.validation import Prompt, negative_prompt, parse_sizes, read_prompt_library, validation_prompts

# -- the settings, read as written (no torch) --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, sizes",
    [("256", [(256, 256)]), ("64", [(64, 64)]), ("1024x768", [(1024, 768)]), ("512, 768x512,512", [(512, 512), (768, 512)]), ("100", [(96, 96)])],
)
def test_validation_resolution_is_pixels_as_written(text, sizes):
    """Below 128 is not megapixels (SimpleTuner's trap, LYC319); sides round down to multiples of 16."""
    assert parse_sizes(text) == sizes


@pytest.mark.parametrize("text", ["1.5", "0.5", "big", "1024x", "8"])
def test_a_validation_resolution_that_is_not_pixels_is_a_clear_error(text):
    with pytest.raises(ConfigError, match="validation_resolution"):
        parse_sizes(text)


def test_prompts_come_in_simpletuners_order_with_safe_unique_names(tmp_path):
    library = tmp_path / "prompts.json"
    library.write_text(json.dumps({"red circle/1": "a red circle", "blue": {"prompt": "a blue square", "adapter_strength": 0.5}, "validation": "x"}))
    options = TrainingOptions(validation_prompt="a green circle", user_prompt_library=str(library))
    prompts = validation_prompts(options, None, unconditional=True)
    assert prompts == [
        Prompt("unconditional", ""), Prompt("red-circle-1", "a red circle"), Prompt("blue", "a blue square", 0.5),
        Prompt("validation", "x"), Prompt("validation-2", "a green circle"),
    ]
    assert validation_prompts(TrainingOptions(validation_prompt="None"), None, unconditional=False) == []  # SimpleTuner's unset


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found"),
        ("{not json", "invalid JSON"),
        ('["a list"]', "non-empty JSON object"),
        ('{"a": 3}', "must be a prompt"),
        ('{"a": {"prompt": "x", "lyrics": "la"}}', "lyrics"),
        ('{"a": {"prompt": "x", "adapter_strength": "high"}}', "adapter_strength must be a number"),
    ],
)
def test_a_prompt_file_that_is_not_one_gets_one_clear_message(tmp_path, content, message):
    path = tmp_path / "prompts.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        read_prompt_library(path)


def test_the_negative_prompt_none_is_the_empty_prompt():
    assert negative_prompt(TrainingOptions()) == "blurry, cropped, ugly"
    assert negative_prompt(TrainingOptions(validation_negative_prompt="None")) == ""


# -- runs on the tiny pipelines ----------------------------------------------------------------------------------

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("lycoris")

from safetensors.torch import load_file  # noqa: E402

from train_fixtures import FLUX2_LOKR, FLUX2_TLORA, metrics, one_thread, pipeline, with_options, write_setup  # noqa: E402,F401 (fixtures)

from lyco_train import run  # noqa: E402

VALIDATION = {
    "validation_prompt": "a red circle", "validation_step_interval": 2, "num_validation_images": 2, "validation_resolution": "32",
    "validation_num_inference_steps": 2, "validation_guidance": 3.0,
}


def images_of(output: Path) -> dict[str, list[str]]:
    folder = output / "validation"
    return {step.name: sorted(path.name for path in step.iterdir()) for step in sorted(folder.iterdir())} if folder.is_dir() else {}


def same_weights(a: Path, b: Path) -> None:
    first, second = load_file(str(a / "pytorch_lora_weights.safetensors")), load_file(str(b / "pytorch_lora_weights.safetensors"))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_validation_writes_each_interval_and_does_not_change_training(tmp_path, pipeline, capsys):
    with_validation = write_setup(tmp_path / "with", pipeline, options=VALIDATION)
    assert run(with_validation) == 0
    out = capsys.readouterr().out
    assert ("validation: 2 prompt(s) (unconditional, validation) × 2 image(s) at 32x32, 2 steps, CFG 3 against the negative prompt "
            "from step 2, strength 1, seed 7; every 2 steps from step 2") in out
    assert "validation at step 2 " in out and "validation at step 4: 4 image(s) in" in out  # the progress line, then the summary
    names = ["grid.png", "unconditional-1-32x32.png", "unconditional-2-32x32.png", "validation-1-32x32.png", "validation-2-32x32.png"]
    output = tmp_path / "with" / "output"
    assert images_of(output) == {"step-000002": names, "step-000004": names}
    from PIL import Image

    with Image.open(output / "validation" / "step-000004" / "grid.png") as grid:
        assert grid.width > 2 * 128 and grid.height > 2 * 128  # two rows of two enlarged images and the labels
    assert not list((output / "validation").glob(".*"))

    without = write_setup(tmp_path / "without", pipeline, options={**VALIDATION, "validation_disable": True})
    assert run(without) == 0
    assert "validation: off (validation_disable)" in capsys.readouterr().out
    assert images_of(tmp_path / "without" / "output") == {}
    same_weights(output, tmp_path / "without" / "output")  # bit-identical: validation draws from its own generator
    rows = lambda root: [row["loss"] for row in metrics(root / "output")]  # noqa: E731
    assert rows(tmp_path / "with") == rows(tmp_path / "without")


def test_tlora_validation_resumes_exactly_and_renders_the_base_model_at_startup(tmp_path, pipeline, capsys):
    """T-LoRA with validation (startup, interval): 2 steps, then a resume to 4, trains what 4 steps without
    validation train; the step-0 images are the base model's (what `lyco sample --strength 0` renders)."""
    options = {**VALIDATION, "validation_on_startup": True, "validation_guidance": 1.0, "learning_rate": 1e-2, "lr_warmup_steps": 0}
    straight = write_setup(tmp_path / "straight", pipeline, lycoris=FLUX2_TLORA, options={**options, "validation_disable": True})
    assert run(straight) == 0
    halves = write_setup(tmp_path / "halves", pipeline, lycoris=FLUX2_TLORA, options={**options, "max_train_steps": 2})
    assert run(halves) == 0
    assert run(with_options(halves, max_train_steps=4)) == 0
    out = capsys.readouterr().out
    assert "resumed from" in out and "no CFG" in out
    output = tmp_path / "halves" / "output"
    assert set(images_of(output)) == {"step-000000", "step-000002", "step-000004"}  # the resumed run's startup is step 2
    first = load_file(str(tmp_path / "straight" / "output" / "pytorch_lora_weights.safetensors"))
    second = load_file(str(output / "pytorch_lora_weights.safetensors"))
    for key in first:
        torch.testing.assert_close(second[key], first[key], rtol=1e-5, atol=1e-7, msg=key)

    from lyco_lint.cli import main

    assert main(["sample", str(halves), "--strength", "0", "--num-images", "2", "--steps", "2", "--output", str(tmp_path / "base")]) == 0
    import numpy
    from PIL import Image

    for index in (1, 2):
        step0 = numpy.asarray(Image.open(output / "validation" / "step-000000" / f"validation-{index}-32x32.png"), dtype=numpy.int16)
        base = numpy.asarray(Image.open(tmp_path / "base" / f"validation-{index}-32x32.png"), dtype=numpy.int16)
        assert numpy.abs(step0 - base).max() <= 1
    trained = numpy.asarray(Image.open(output / "validation" / "step-000004" / "validation-1-32x32.png"), dtype=numpy.int16)
    assert numpy.abs(trained - numpy.asarray(Image.open(tmp_path / "base" / "validation-1-32x32.png"), dtype=numpy.int16)).max() > 0


def test_validation_prompts_are_encoded_in_the_caching_phase_and_no_text_encoder_is_kept(tmp_path, pipeline, capsys, monkeypatch):
    config = write_setup(tmp_path, pipeline, options={**VALIDATION, "max_train_steps": 2, "validation_prompt": "a small black square"})
    assert run(config) == 0
    # 5 training prompts (captions and the empty one) + the validation prompt + the negative prompt
    assert "7 prompt(s) encoded, 0 reused" in capsys.readouterr().out
    from lyco_train.families import get_family

    def must_not_load(*_args, **_kwargs):
        raise AssertionError("the text encoder was loaded although every prompt is cached")

    monkeypatch.setattr(get_family("flux2"), "load_text_encoder", must_not_load)
    assert run(with_options(config, output_dir=str(tmp_path / "again"))) == 0
    assert "0 prompt(s) encoded, 7 reused" in capsys.readouterr().out
    assert set(images_of(tmp_path / "again")) == {"step-000002"}


def test_no_prompt_is_encoded_for_a_run_that_renders_nothing(tmp_path, pipeline, capsys):
    config = write_setup(tmp_path, pipeline, options={"validation_prompt": "a red circle", "max_train_steps": 1})
    assert run(config, dry_run=True) == 0
    out = capsys.readouterr().out
    assert "validation: none in this run (every 100 steps; the run ends at step 1)" in out
    assert "prompts: 5 unique" in out  # no validation prompt, no negative prompt


@pytest.mark.parametrize(
    "options, message",
    [
        ({"model_flavour": "dev", "validation_guidance_real": 2.0}, "Flux2Pipeline (FLUX.2 [dev]) has no negative prompt"),
        ({"validation_noise_scheduler": "unipc"}, "flow-matching Euler"),
        ({"validation_guidance_rescale": 0.7}, "no guidance rescale"),
        ({"validation_prompt_library": True}, "does not implement validation_prompt_library"),
        ({"validation_epoch_interval": 1}, "does not implement validation_epoch_interval"),
        ({"validation_resolution": "0.5"}, "not a size in pixels"),
        ({"user_prompt_library": "missing.json"}, "user_prompt_library: file 'missing.json' not found"),
        ({"num_validation_images": 0}, "num_validation_images must be at least 1"),
        ({"report_to": "swanlab"}, "report_to 'swanlab' is not implemented"),
    ],
)
def test_what_lyco_cannot_render_is_an_error_before_any_work(tmp_path, pipeline, capsys, options, message):
    config = write_setup(tmp_path, pipeline, options={**VALIDATION, **options})
    assert run(config, dry_run=True) == 1
    assert message in capsys.readouterr().out
    assert not (tmp_path / "output").exists()


@pytest.mark.parametrize("family", ["sdxl", "flux"])
def test_every_family_renders_its_validation_images(tmp_path, tmp_path_factory, family, capsys):
    from family_fixtures import FLUX_LORA, SDXL_ATTENTION_TLORA, tiny_flux_pipeline, tiny_sdxl_pipeline, write_family_setup

    folder = (tiny_sdxl_pipeline if family == "sdxl" else tiny_flux_pipeline)(tmp_path_factory)
    lycoris = SDXL_ATTENTION_TLORA if family == "sdxl" else FLUX_LORA
    options = {**VALIDATION, "max_train_steps": 2, "validation_resolution": "64", "num_validation_images": 1}
    if family == "flux":
        options.update(validation_guidance=3.5, validation_guidance_real=2.0, validation_no_cfg_until_timestep=0)
    config = write_family_setup(tmp_path, folder, family, lycoris=lycoris, options=options)
    assert run(config) == 0
    out = capsys.readouterr().out
    guidance = "CFG 3 against the negative prompt" if family == "sdxl" else "guidance embedding 3.5, true CFG 2 against the negative prompt"
    assert guidance in out
    assert images_of(tmp_path / "output") == {"step-000002": ["grid.png", "unconditional-1-64x64.png", "validation-1-64x64.png"]}


def test_validation_under_fsdp_renders_on_every_process_and_writes_once(tmp_path, pipeline):
    """With the base sharded, every forward gathers in every process, so every process renders (only the main one
    writes): no hang, the images of the one-process run, the same adapter."""
    import os
    import socket
    import subprocess
    import sys

    import numpy
    from PIL import Image

    options = {**VALIDATION, "max_train_steps": 2}
    single = write_setup(tmp_path / "single", pipeline, options={**options, "train_batch_size": 2})
    assert run(single) == 0
    config = write_setup(tmp_path / "fsdp", pipeline, options={**options, "train_batch_size": 1})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "accelerate"), "launch", "--use_fsdp", "--fsdp_version", "2", "--num_machines", "1",
         "--num_processes", "2", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port), "-m", "lyco_train", str(config)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("validation at step 2:") == 1
    first, second = (load_file(str(root / "output" / "pytorch_lora_weights.safetensors")) for root in (tmp_path / "single", tmp_path / "fsdp"))
    for key in first:
        torch.testing.assert_close(second[key], first[key], rtol=1e-5, atol=1e-6)
    for name in images_of(tmp_path / "single" / "output")["step-000002"]:
        a, b = (numpy.asarray(Image.open(root / "output" / "validation" / "step-000002" / name), dtype=numpy.int16) for root in (tmp_path / "single", tmp_path / "fsdp"))
        assert numpy.abs(a - b).max() <= 1, name


def test_a_failed_render_is_a_warning_and_training_goes_on(tmp_path, pipeline, capsys, monkeypatch):
    from lyco_train.families import get_family

    def out_of_memory(*_args, **_kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(get_family("flux2"), "pipeline", out_of_memory)
    config = write_setup(tmp_path, pipeline, options={**VALIDATION, "max_train_steps": 2})
    assert run(config) == 0
    out = capsys.readouterr().out
    assert "warning: validation at step 2 failed (RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB); training continues" in out
    assert "done: 2 steps" in out and images_of(tmp_path / "output") == {}
