"""lyco train's config reading, data plan and lint gate: fast, no model is loaded."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from train_fixtures import FLUX2_LOKR, write_images, write_setup

from lyco_train import run
from lyco_train.config import ConfigError, load_config
from lyco_train.data import BatchStream, epoch_batches, plan_data, training_size
from lyco_train.config import DatasetSpec
from lyco_train.options import IMPLEMENTED, simpletuner_option

ROOT = Path(__file__).resolve().parent.parent


TINY_TRANSFORMER_CONFIG = {
    "_class_name": "Flux2Transformer2DModel", "num_layers": 1, "num_single_layers": 1, "num_attention_heads": 2,
    "attention_head_dim": 16, "joint_attention_dim": 32, "guidance_embeds": False, "in_channels": 8,
    "axes_dims_rope": [4, 4, 4, 4], "timestep_guidance_channels": 16,
}


@pytest.fixture
def fake_model(tmp_path):
    """A model folder with config files only, no weights: the VAE's (its downscale, for the plan) and the
    transformer's (the lint gate builds it on the meta device to check the LyCORIS config)."""
    folder = tmp_path / "model"
    (folder / "vae").mkdir(parents=True)
    (folder / "vae" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLFlux2", "block_out_channels": [8, 16]}))
    (folder / "transformer").mkdir()
    (folder / "transformer" / "config.json").write_text(json.dumps(TINY_TRANSFORMER_CONFIG))
    for component in ("text_encoder", "tokenizer"):
        (folder / component).mkdir()
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "Flux2KleinPipeline", "transformer": ["diffusers", "Flux2Transformer2DModel"],
        "vae": ["diffusers", "AutoencoderKLFlux2"], "text_encoder": ["transformers", "Qwen3ForCausalLM"],
        "tokenizer": ["transformers", "Qwen2TokenizerFast"], "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    }))
    return folder


def setup(tmp_path, fake_model, **kwargs):
    return write_setup(tmp_path / "run", fake_model, **kwargs)


def edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def plan(config):
    from lyco_train.families import get_family

    flux2 = get_family("flux2")
    warnings = []
    result = plan_data(config, 8, flux2.latent_identity(config.options), flux2.text_identity(config.options), warnings.append)
    return result, warnings


# -- options -----------------------------------------------------------------------------------------


def test_implemented_defaults_are_simpletuners():
    for name, (_kind, default) in IMPLEMENTED.items():
        spec = simpletuner_option(name)
        assert spec is not None, name
        assert spec.get("default") == default or str(spec.get("default")) == str(default), name


def test_implemented_choices_are_simpletuners():
    """A TrainingOptions field typed as a Literal allows exactly SimpleTuner's choices."""
    choices = {name: kind for name, (kind, _default) in IMPLEMENTED.items() if isinstance(kind, tuple)}
    assert choices
    for name, kind in choices.items():
        assert list(kind) == simpletuner_option(name)["choices"], name


def test_defaults_fill_options_that_are_not_given(tmp_path, fake_model):
    config = load_config(setup(tmp_path, fake_model))
    assert config.options.caption_dropout_probability == 0.1
    assert config.options.max_grad_norm == 2.0 and config.options.grad_clip_method == "value"
    assert config.options.flow_schedule_shift == 3.0
    assert config.options.gradient_checkpointing is True
    assert config.options.checkpoints_total_limit == 5
    assert config.options.resume_from_checkpoint == "latest"


def test_dashed_keys_and_legacy_names_are_read(tmp_path, fake_model):
    path = setup(tmp_path, fake_model)
    edit_json(path, lambda d: d.update({"--learning_rate": 5e-5, "checkpointing_steps": 3, "save_total_limit": 2}))
    config = load_config(path)
    assert config.options.learning_rate == 5e-5
    assert config.options.checkpoint_step_interval == 3 and config.options.checkpoints_total_limit == 2


def test_null_and_false_string_leave_the_default(tmp_path, fake_model):
    path = setup(tmp_path, fake_model, options={"gradient_checkpointing": "false", "seed": None})
    config = load_config(path)
    assert config.options.gradient_checkpointing is True  # SimpleTuner's loader drops the string "false"
    assert config.options.seed is None


def test_scheduler_names_are_normalised_as_simpletuner_does(tmp_path, fake_model):
    config = load_config(setup(tmp_path, fake_model, options={"lr_scheduler": "constant", "lr_warmup_steps": 10}))
    assert config.options.lr_scheduler == "constant_with_warmup"
    config = load_config(setup(tmp_path, fake_model, options={"lr_scheduler": "cosine_with_warmup", "lr_warmup_steps": 0}))
    assert config.options.lr_scheduler == "cosine"


def test_unimplemented_option_that_changes_training_is_an_error_naming_it(tmp_path, fake_model):
    path = setup(tmp_path, fake_model, options={"use_ema": True})
    with pytest.raises(ConfigError, match="use_ema.*does not implement"):
        load_config(path)


def test_unimplemented_option_at_its_default_is_a_note(tmp_path, fake_model):
    config = load_config(setup(tmp_path, fake_model, options={"train_text_encoder": False, "use_ema": False}))
    assert any("train_text_encoder" in note and "use_ema" in note for note in config.notes)


def test_cosmetic_options_are_one_note(tmp_path, fake_model):
    config = load_config(setup(tmp_path, fake_model, options={"tracker_image_layout": "table", "disable_benchmark": True, "push_to_hub": False}))
    notes = [note for note in config.notes if "tracker_image_layout" in note]
    assert len(notes) == 1 and "disable_benchmark" in notes[0]


def test_hub_publishing_is_refused(tmp_path, fake_model):
    with pytest.raises(ConfigError, match="push_to_hub"):
        load_config(setup(tmp_path, fake_model, options={"push_to_hub": True}))


def test_unknown_option_is_an_error(tmp_path, fake_model):
    with pytest.raises(ConfigError, match="unknown option 'learning_rat'"):
        load_config(setup(tmp_path, fake_model, options={"learning_rat": 1.0}))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"model_type": "full"}, "model_type"),
        ({"lora_type": "standard"}, "lora_type"),
        ({"mixed_precision": "fp16"}, "mixed_precision 'fp16'"),
        ({"optimizer": "prodigy"}, "optimizer 'prodigy'"),
        ({"train_batch_size": 2.0}, "whole number"),
        ({"lr_scheduler": "sine", "lr_warmup_steps": 0}, "sine"),
    ],
)
def test_options_lyco_cannot_train_with_are_errors(tmp_path, fake_model, options, message):
    with pytest.raises(ConfigError, match=message):
        load_config(setup(tmp_path, fake_model, options=options))


# -- multidatabackend.json ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dataset, message",
    [
        ({"probability": 0.5}, "'probability' not implemented"),
        ({"type": "aws"}, "type 'aws'"),
        ({"caption_strategy": "parquet"}, "caption_strategy 'parquet'"),
        ({"caption_strategy": "instance_prompt"}, "write 'instanceprompt'"),
        ({"caption_strategy": "instanceprompt"}, "needs 'instance_prompt'"),
        ({"crop": True, "crop_style": "face"}, "crop_style 'face' needs SimpleTuner's face detector.*use \"random\""),
        ({"crop_style": "random|center|corner"}, "crop_style \"random\\|center\\|corner\" is not one of random, corner, center, centre, face"),
        ({"crop": True, "crop_aspect": "square|preserve"}, "crop_aspect \"square\\|preserve\" is not one of square, preserve, random, closest"),
        ({"crop": True, "crop_aspect": "random"}, "crop_aspect 'random' needs crop_aspect_buckets"),
        ({"crop": True, "crop_aspect": "closest", "crop_aspect_buckets": []}, "crop_aspect 'closest' needs crop_aspect_buckets"),
        ({"crop": True, "crop_aspect": "random", "crop_aspect_buckets": [{"aspect_bucket": 1.0, "weight": 1.0}]}, "its\ncode reads 'aspect'|code reads 'aspect'"),
        ({"crop": True, "crop_aspect": "random", "crop_aspect_buckets": [{"aspect": 1.0, "weight": 0.3}, {"aspect": 1.5, "weight": 0.3}]}, "weights must add up to 1"),
        ({"crop": True, "crop_aspect": "random", "crop_aspect_buckets": [1.0, {"aspect": 1.5, "weight": 1.0}]}, "mixes numbers and objects"),
        ({"crop": True, "crop_aspect": "closest", "crop_aspect_buckets": [0]}, "not a positive aspect ratio"),
        ({"repeats": -1}, "repeats"),
    ],
)
def test_unsupported_dataset_entries_are_errors(tmp_path, fake_model, dataset, message):
    with pytest.raises(ConfigError, match=message):
        load_config(setup(tmp_path, fake_model, dataset=dataset))


def test_unsupported_dataset_type_is_an_error(tmp_path, fake_model):
    path = setup(tmp_path, fake_model)
    backends = path.parent / "multidatabackend.json"
    edit_json(backends, lambda d: d.append({"id": "ref", "dataset_type": "conditioning", "instance_data_dir": "x"}))
    with pytest.raises(ConfigError, match="dataset_type 'conditioning'"):
        load_config(path)


def test_disabled_entries_are_skipped_and_text_cache_defaults_to_simpletuners(tmp_path, fake_model):
    path = setup(tmp_path, fake_model)
    backends = path.parent / "multidatabackend.json"
    edit_json(backends, lambda d: d.__setitem__(1, {**d[1], "disabled": True}))
    config = load_config(path)
    assert config.text_embeds.cache_dir == Path(config.output_dir) / "cache" / "text" / "flux2"


# -- sizes, buckets, batches -------------------------------------------------------------------------


def spec(**overrides):
    values = dict(id="d", instance_data_dir=Path("."), caption_strategy="filename", instance_prompt=None, resolution=1024,
                  resolution_type="pixel_area", crop=False, repeats=0, cache_dir_vae=Path("."))
    values.update(overrides)
    return DatasetSpec(**values)


def test_aspect_buckets_keep_area_and_aspect():
    assert training_size(2048, 1024, spec(), 64) == (1472, 704)
    assert training_size(1000, 1000, spec(), 64) == (1024, 1024)
    assert training_size(1200, 800, spec(resolution=512, resolution_type="pixel"), 16) == (768, 512)
    assert training_size(3000, 2000, spec(resolution=1.0, resolution_type="area"), 16) == (1232, 816)


def test_crop_gives_a_centre_square():
    assert training_size(2048, 1024, spec(crop=True), 64) == (1024, 1024)
    assert training_size(640, 480, spec(crop=True, resolution=512, resolution_type="pixel"), 16) == (512, 512)


def test_batches_never_mix_buckets_and_replay_per_epoch(tmp_path, fake_model):
    config = load_config(setup(tmp_path, fake_model, dataset={"repeats": 1}))
    data, _ = plan(config)
    first = epoch_batches(data, 0, seed=3, batch_size=2)
    assert first == epoch_batches(data, 0, seed=3, batch_size=2)
    assert first != epoch_batches(data, 1, seed=3, batch_size=2) or len(first) == 1
    for batch in first:
        assert len({data.samples[i].size for i in batch}) == 1
    assert sum(len(b) for b in first) == 2 * len(data.samples)  # repeats 1: each image twice per epoch
    stream = BatchStream(data, 3, 2)
    seen = [stream.next() for _ in range(len(first) + 1)]
    assert seen[: len(first)] == first and stream.position() == {"epoch": 1, "batch_in_epoch": 1}


def test_captions_follow_the_caption_strategy(tmp_path, fake_model):
    config = load_config(setup(tmp_path, fake_model))
    data, _ = plan(config)
    captions = {sample.path.name: sample.captions for sample in data.samples}
    assert captions["green.jpg"] == ("a green circle on white background", "a small green circle")
    assert "" in data.prompt_files  # caption dropout trains on the empty prompt
    config = load_config(setup(tmp_path, fake_model, dataset={"caption_strategy": "instanceprompt", "instance_prompt": "a shape"}))
    assert {sample.captions for sample in plan(config)[0].samples} == {("a shape",)}


def test_unreadable_images_are_skipped_with_a_warning_naming_them(tmp_path, fake_model):
    path = setup(tmp_path, fake_model)
    images = path.parent / "images"
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (images / "broken.txt").write_text("a broken picture")
    truncated = (images / "red.png").read_bytes()
    (images / "cut.png").write_bytes(truncated[: len(truncated) // 2])
    (images / "cut.txt").write_text("a cut picture")
    data, warnings = plan(load_config(path))
    assert {p.name for p, _ in data.skipped} == {"broken.png", "cut.png"}
    assert any("broken.png" in w for w in warnings) and any("cut.png" in w for w in warnings)
    assert len(data.samples) == 3


def test_no_usable_image_is_a_clear_error(tmp_path, fake_model):
    path = setup(tmp_path, fake_model, images=[("only.png", (32, 32), (1, 2, 3), None)])  # no caption file
    with pytest.raises(ConfigError, match="no usable image"):
        plan(load_config(path))


def test_changed_image_or_caption_gets_a_new_cache_key(tmp_path, fake_model):
    path = setup(tmp_path, fake_model)
    before, _ = plan(load_config(path))
    write_images(path.parent / "images", [("red.png", (40, 24), (10, 10, 240), None)])
    (path.parent / "images" / "blue.txt").write_text("a changed caption")
    after, _ = plan(load_config(path))
    files = lambda p: {s.path.name: s.latent_file for s in p.samples}  # noqa: E731
    assert files(before)["red.png"] != files(after)["red.png"]
    assert files(before)["green.jpg"] == files(after)["green.jpg"]
    assert "a changed caption" in after.prompt_files and "a changed caption" not in before.prompt_files


# -- run: lint gate and dry run ------------------------------------------------------------------------


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, fake_model, capsys):
    path = setup(tmp_path, fake_model, options={"train_batch_size": 1, "gradient_accumulation_steps": 2, "max_train_steps": 6})
    assert run(path, dry_run=True) == 0
    out = capsys.readouterr().out
    assert "3 image(s)" in out and "1 × 2 accumulation = 2 per step" in out and "steps: 6" in out
    assert "40x24 ×2" in out and "aspect buckets" in out
    assert not (tmp_path / "run" / "output").exists() and not (tmp_path / "run" / "cache").exists()


def test_dry_run_says_how_images_are_cropped(tmp_path, fake_model, capsys):
    path = setup(tmp_path, fake_model, dataset={"crop": True, "crop_style": "corner", "crop_aspect": "square"})
    assert run(path, dry_run=True) == 0
    assert "top-left crops, squares" in capsys.readouterr().out


def test_lint_errors_stop_the_run_before_anything_is_written(tmp_path, fake_model, capsys):
    broken = dict(FLUX2_LOKR, apply_preset={"target_module": ["Attention", "FeedForward"]})  # not Flux 2 classes
    path = setup(tmp_path, fake_model, lycoris=broken)
    assert run(path) == 1
    out = capsys.readouterr().out
    assert "LYC205 [error]" in out and "lycoris.json:" in out and "not starting" in out
    assert not (tmp_path / "run" / "output").exists() and not (tmp_path / "run" / "cache").exists()


def test_config_errors_exit_1_with_the_message(tmp_path, fake_model, capsys):
    assert run(setup(tmp_path, fake_model, options={"use_ema": True})) == 1
    assert "error:" in capsys.readouterr().out
    assert run(tmp_path / "missing.json") == 2


def test_dry_run_needs_no_weights_writes_nothing_and_shows_the_lycoris_plan(tmp_path, fake_model):
    path = setup(tmp_path, fake_model)
    code = f"from lyco_train import run; import sys; sys.exit(run({str(path)!r}, dry_run=True))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "LyCORIS plan for Flux2Transformer2DModel" in result.stdout and "Flux2Attention" in result.stdout
    assert not (tmp_path / "run" / "output").exists() and not (tmp_path / "run" / "cache").exists()


def test_the_lint_gate_checks_targets_against_the_model(tmp_path, fake_model, capsys):
    generic = {"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 4,
               "apply_preset": {"target_module": ["Attention", "FeedForward"]}}
    assert run(setup(tmp_path, fake_model, lycoris=generic), dry_run=True) == 1
    out = capsys.readouterr().out
    assert "LYC207" in out and "not starting" in out


def test_resume_point_finds_the_latest_intact_checkpoint(tmp_path):
    from lyco_train.checkpoint import CHECKPOINT_FILES, write_manifest
    from lyco_train.plan import resume_point

    output = tmp_path / "out"
    assert resume_point(output, "latest") is None  # nothing yet: a fresh start
    for step in (2, 10, 12):
        folder = output / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        for name in CHECKPOINT_FILES:
            (folder / name).write_text("{}")
        (folder / "training_state.json").write_text(json.dumps({"global_step": step, "epoch": 0, "batch_in_epoch": step}))
        write_manifest(folder)
    (output / "checkpoint-12" / "training_state.json").unlink()  # damaged: a file is missing
    (output / ".checkpoint-14.tmp").mkdir()  # an unfinished write is never a checkpoint
    warnings = []
    assert resume_point(output, "latest", warnings.append) == output / "checkpoint-10"
    assert warnings == [f"{output / 'checkpoint-12' / 'training_state.json'} is missing; resuming from checkpoint-10, the newest intact checkpoint"]
    assert resume_point(output, "checkpoint-2") == output / "checkpoint-2"
    assert resume_point(output, str(output / "checkpoint-2")) == output / "checkpoint-2"
    with pytest.raises(ConfigError, match="no checkpoint at 'checkpoint-99'"):
        resume_point(output, "checkpoint-99")
    with pytest.raises(ConfigError, match="checkpoint-12.*missing.*newest intact checkpoint is checkpoint-10"):
        resume_point(output, "checkpoint-12")


def test_main_parses_the_command_line(tmp_path, fake_model, capsys):
    from lyco_train import main

    assert main([str(setup(tmp_path, fake_model)), "--dry-run"]) == 0
    assert "dry run: nothing loaded" in capsys.readouterr().out
