"""`lyco train` end to end on a tiny real FLUX.2 [klein] pipeline (CPU): outputs, exact resume, NaN stop,
cache reuse."""

import json
import math
import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")
pytest.importorskip("lycoris")

from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from train_fixtures import (  # noqa: E402,F401 (fixtures)
    FLUX2_LOKR, FLUX2_TLORA, assert_halves_trained_as_straight, metrics, one_thread, pipeline, train_in_halves, with_options,
    write_setup,
)

from lyco_train import run  # noqa: E402


def test_full_run_trains_and_writes_weights_checkpoints_metrics_and_curve(tmp_path, pipeline, capsys):
    config = write_setup(tmp_path, pipeline, options={"checkpoints_total_limit": 1})
    (tmp_path / "images" / "broken.webp").write_bytes(b"RIFF0000WEBPjunk")
    (tmp_path / "images" / "broken.txt").write_text("a broken picture")

    assert run(config) == 0

    out = capsys.readouterr().out
    assert "skipping unreadable image" in out and "broken.webp" in out
    output = tmp_path / "output"
    rows = metrics(output)
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    assert all(math.isfinite(row["loss"]) and row["loss"] > 0 for row in rows)
    assert rows[0]["lr"] == 0.0 and rows[2]["lr"] == pytest.approx(1e-3)  # warmup 2, then constant
    # checkpoints_total_limit 1: checkpoint-2 was pruned when checkpoint-4 was written
    assert sorted(p.name for p in output.iterdir() if p.name.startswith("checkpoint")) == ["checkpoint-4"]
    assert not list(output.glob(".*"))  # no temp folder or file left behind
    checkpoint = output / "checkpoint-4"
    assert {p.suffix for p in checkpoint.iterdir()} == {".json", ".safetensors"}  # no pickle anywhere
    assert json.loads((checkpoint / "training_state.json").read_text())["global_step"] == 4
    assert (output / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (output / "lycoris_config.json").read_text() == (tmp_path / "lycoris.json").read_text()

    weights = output / "pytorch_lora_weights.safetensors"
    with safe_open(str(weights), "pt") as handle:
        metadata = handle.metadata()
        assert all(handle.get_tensor(key).dtype == torch.float32 for key in handle.keys())
    saved = json.loads(metadata["lycoris_config"])
    assert saved["multiplier"] == 1.0 and saved["linear_dim"] == 10000 and saved["linear_alpha"] == 1.0
    assert saved["apply_preset"] == FLUX2_LOKR["apply_preset"]
    assert metadata["lyco_version"] and metadata["validation_lycoris_strength"] == "1.0"
    assert torch.equal(load_file(str(weights))["lycoris_transformer_blocks_0_attn_to_q.lokr_w1"],
                       load_file(str(checkpoint / "pytorch_lora_weights.safetensors"))["lycoris_transformer_blocks_0_attn_to_q.lokr_w1"])
    trained = [t for k, t in load_file(str(weights)).items() if k.endswith("lokr_w2")]
    assert any(t.abs().sum() > 0 for t in trained)  # LoKr's w2 starts at zero: training moved it

    # the weights load back into a fresh transformer with LyCORIS' own loader
    from diffusers import Flux2Transformer2DModel
    from lycoris import create_lycoris_from_weights

    fresh = Flux2Transformer2DModel.from_pretrained(pipeline, subfolder="transformer")
    network, _ = create_lycoris_from_weights(1.0, str(weights), fresh)
    assert len(network.loras) == 14


def test_flux2_dev_trains_with_mistral3_prompts_and_guidance(tmp_path_factory, tmp_path, capsys):
    """FLUX.2 [dev]: Mistral 3 prompt embeddings (diffusers' own function) and the guidance input."""
    from diffusers import Flux2Transformer2DModel
    from lycoris import create_lycoris_from_weights

    from train_fixtures import tiny_dev_pipeline

    pipeline = tiny_dev_pipeline(tmp_path_factory)
    config = write_setup(tmp_path, pipeline, options={"model_flavour": "dev", "flux_guidance_value": 3.5})
    assert run(config) == 0
    rows = metrics(tmp_path / "output")
    assert len(rows) == 4 and all(math.isfinite(row["loss"]) for row in rows)
    embeddings = load_file(str(next((tmp_path / "cache" / "text").rglob("*.safetensors"))))
    assert next(iter(embeddings.values())).shape[-1] == 48  # 3 Mistral hidden states of width 16
    fresh = Flux2Transformer2DModel.from_pretrained(pipeline, subfolder="transformer")
    assert fresh.config.guidance_embeds
    network, _ = create_lycoris_from_weights(1.0, str(tmp_path / "output" / "pytorch_lora_weights.safetensors"), fresh)
    assert len(network.loras) == 14


ACCUMULATE_BF16 = {"train_batch_size": 1, "gradient_accumulation_steps": 2, "mixed_precision": "bf16", "optimizer": "adamw_bf16"}


@pytest.mark.parametrize(
    "lycoris, options",
    [(FLUX2_LOKR, {}), (FLUX2_TLORA, {}), (FLUX2_LOKR, ACCUMULATE_BF16)],
    ids=["lokr", "tlora", "lokr-accumulation-bf16-adamw_bf16"],
)
def test_resume_continues_exactly(tmp_path, pipeline, lycoris, options, capsys):
    # One run of 4 steps ...
    straight = write_setup(tmp_path, pipeline, lycoris=lycoris, options={"output_dir": str(tmp_path / "straight"), **options})
    assert run(straight) == 0
    # ... equals 2 steps, then a second run that resumes from checkpoint-2 and goes on to 4.
    train_in_halves(straight)
    assert "resumed from" in capsys.readouterr().out
    assert_halves_trained_as_straight(tmp_path)


def test_second_run_encodes_nothing(tmp_path, pipeline, capsys, monkeypatch):
    config = write_setup(tmp_path, pipeline, options={"max_train_steps": 1})
    assert run(config) == 0
    assert "3 image(s) encoded, 0 reused; 5 prompt(s) encoded, 0 reused" in capsys.readouterr().out
    caches = sorted((tmp_path / "cache").rglob("*.safetensors"))
    stamps = {path: path.stat().st_mtime_ns for path in caches}
    assert len(caches) == 3 + 5

    from lyco_train.families import get_family

    flux2 = get_family("flux2")

    def must_not_load(*_args, **_kwargs):
        raise AssertionError("an encoder was loaded although every latent and prompt is cached")

    monkeypatch.setattr(flux2, "load_vae", must_not_load)
    monkeypatch.setattr(flux2, "load_text_encoder", must_not_load)
    assert run(with_options(config, output_dir=str(tmp_path / "again"))) == 0
    assert "0 image(s) encoded, 3 reused; 0 prompt(s) encoded, 5 reused" in capsys.readouterr().out
    assert {path: path.stat().st_mtime_ns for path in sorted((tmp_path / "cache").rglob("*.safetensors"))} == stamps


def test_non_finite_loss_stops_at_once_and_keeps_the_last_good_checkpoint(tmp_path, pipeline, capsys):
    config = write_setup(tmp_path, pipeline, options={"max_train_steps": 2})
    assert run(config) == 0
    output = tmp_path / "output"
    before = {path: path.read_bytes() for path in output.rglob("*") if path.is_file() and path.name != "metrics.jsonl"}
    capsys.readouterr()

    # A base model with a non-finite weight: the next step's loss is NaN.
    poisoned = tmp_path / "poisoned"
    shutil.copytree(pipeline, poisoned)
    weights_file = poisoned / "transformer" / "diffusion_pytorch_model.safetensors"
    weights = load_file(str(weights_file))
    weights["proj_out.weight"][0, 0] = float("nan")
    save_file(weights, str(weights_file))

    assert run(with_options(config, pretrained_model_name_or_path=str(poisoned), max_train_steps=4)) == 1

    out = capsys.readouterr().out
    assert "training stopped at step 3" in out and "likely causes" in out and "checkpoint-2" in out
    assert "prediction was not" in out  # the inputs were finite: it points at the model side
    after = {path: path.read_bytes() for path in output.rglob("*") if path.is_file() and path.name != "metrics.jsonl"}
    assert after == before  # nothing overwritten, nothing new (no checkpoint-4, no new weights)
    assert metrics(output)[-1] == {"step": 3, "loss": None, "error": "loss is nan"}


def test_bf16_run_trains_a_float32_adapter(tmp_path, pipeline):
    config = write_setup(tmp_path, pipeline, options={"mixed_precision": "bf16", "vae_dtype": "bf16", "max_train_steps": 2})
    assert run(config) == 0
    weights = load_file(str(tmp_path / "output" / "pytorch_lora_weights.safetensors"))
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}
    assert all(math.isfinite(row["loss"]) for row in metrics(tmp_path / "output"))


def test_resume_with_a_different_lycoris_config_is_a_clear_error(tmp_path, pipeline, capsys):
    config = write_setup(tmp_path, pipeline, options={"max_train_steps": 2})
    assert run(config) == 0
    (tmp_path / "lycoris.json").write_text(json.dumps(FLUX2_TLORA))
    assert run(with_options(config, max_train_steps=4)) == 1
    out = capsys.readouterr().out
    assert "checkpoint-2" in out and "does not match the network built from the LyCORIS config" in out
