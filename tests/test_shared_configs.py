"""A LyCORIS config or a dataset config that two training configs share is linted in each one's context: a
problem with either run is reported, whatever the order of the arguments; a finding both contexts give is
reported once, and one only some give names the training config it is about (and offers no fix to the shared
file, which the other runs read too)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lyco_lint.cli import main
from lyco_lint.engine import Options, lint_paths

FLUX_ONLY = {"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 16,
             "apply_preset": {"target_module": ["FluxTransformerBlock"]}}
DATASETS = [
    {"id": "photos", "type": "local", "instance_data_dir": ".", "caption_strategy": "textfile"},
    {"id": "text-embeds", "dataset_type": "text_embeds", "default": True, "type": "local"},
]
ORDERS = [("flux.json", "sdxl.json"), ("sdxl.json", "flux.json")]


def training(family: str, **extra) -> dict:
    return {"model_type": "lora", "model_family": family, "pretrained_model_name_or_path": f"{family}-model",
            "lora_type": "lycoris", "lycoris_config": "lyco.json", "output_dir": f"out-{family}",
            "data_backend_config": "mdb.json", "optimizer": "adamw_bf16", **extra}


@pytest.fixture
def shared(tmp_path, monkeypatch):
    """flux.json and sdxl.json in tmp_path, both pointing at lyco.json and mdb.json; returns a writer."""
    monkeypatch.chdir(tmp_path)

    def _write(lycoris=FLUX_ONLY, flux=None, sdxl=None):
        for name, value in (("lyco.json", lycoris), ("mdb.json", DATASETS),
                            ("flux.json", flux or training("flux")), ("sdxl.json", sdxl or training("sdxl"))):
            (tmp_path / name).write_text(json.dumps(value, indent=2), encoding="utf-8")
        return tmp_path

    return _write


def findings_in(name: str, order, **options) -> list[dict]:
    return [f.as_dict() for f in lint_paths(list(order), Options(**options)).findings if f.file == name]


@pytest.mark.parametrize("order", ORDERS)
def test_a_shared_lycoris_config_is_checked_against_every_training_config(shared, order):
    shared()
    found = findings_in("lyco.json", order)
    assert [f["code"] for f in found] == ["LYC205"]
    # the Flux run is fine; the message says which run it breaks (and still names the family)
    assert found[0]["message"].startswith("with the training config sdxl.json: target_module 'FluxTransformerBlock'")
    assert "of the sdxl model" in found[0]["message"]
    assert found == findings_in("lyco.json", reversed(order))


def test_either_training_config_alone_gives_what_its_own_context_gives(shared):
    shared(lycoris={**FLUX_ONLY, "apply_preset": {"target_module": ["FluxAttention"]}})  # SDXL's guess: 'Attention'
    assert findings_in("lyco.json", ["flux.json"]) == []
    alone = findings_in("lyco.json", ["sdxl.json"])
    assert [f["code"] for f in alone] == ["LYC205"] and not alone[0]["message"].startswith("with the training config")
    # alone, the file is SDXL's only: the rename to an SDXL class is offered (unsafe); shared, it would break Flux
    assert alone[0]["fix"] is not None
    assert findings_in("lyco.json", ORDERS[0])[0]["fix"] is None


def test_a_finding_every_context_gives_is_reported_once_as_it_is(shared):
    shared(lycoris={**FLUX_ONLY, "rank_dropot": 0.1})  # a typo: the same problem for both runs
    found = findings_in("lyco.json", ORDERS[0])
    typo = [f for f in found if f["code"] == "LYC011"]
    assert len(typo) == 1 and not typo[0]["message"].startswith("with the training config")
    assert typo[0]["fix"] is not None  # a fix both runs want is still offered
    assert [f["code"] for f in found].count("LYC205") == 1


@pytest.mark.parametrize("order", ORDERS)
def test_a_shared_dataset_config_is_checked_against_every_training_config(shared, order):
    shared(flux=training("flux", controlnet=True))  # only the Flux run needs conditioning data
    found = [f for f in findings_in("mdb.json", order) if "controlnet" in f["message"]]
    assert len(found) == 1
    assert found[0]["message"].startswith("with the training config flux.json: dataset 'photos': with controlnet")
    assert found == [f for f in findings_in("mdb.json", reversed(order)) if "controlnet" in f["message"]]


def test_a_model_that_cannot_be_found_is_reported_once_for_the_shared_file(shared, tmp_path):
    shared()
    missing = str(tmp_path / "no-such-model")
    unavailable = [f for f in findings_in("lyco.json", ORDERS[0], model=missing) if f["code"] == "LYC210"]
    assert len(unavailable) == 1 and unavailable[0]["message"].startswith(f"--model {missing}: no such file")


TINY_FLUX = {
    "_class_name": "FluxTransformer2DModel", "patch_size": 1, "in_channels": 8, "num_layers": 1,
    "num_single_layers": 1, "attention_head_dim": 16, "num_attention_heads": 2, "joint_attention_dim": 32,
    "pooled_projection_dim": 16, "axes_dims_rope": [4, 6, 6],
}
TINY_SDXL = {
    "_class_name": "UNet2DConditionModel", "block_out_channels": [32, 64], "layers_per_block": 1, "sample_size": 16,
    "in_channels": 4, "out_channels": 4, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"], "attention_head_dim": [2, 4], "use_linear_projection": True,
    "addition_embed_type": "text_time", "addition_time_embed_dim": 8, "transformer_layers_per_block": [1, 1],
    "projection_class_embeddings_input_dim": 56, "cross_attention_dim": 32, "norm_num_groups": 16,
}


@pytest.mark.parametrize("order", ORDERS)
def test_model_auto_analyses_the_shared_config_against_each_training_configs_model(shared, tmp_path, order):
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    pytest.importorskip("lycoris")
    for folder, config in (("flux-model/transformer", TINY_FLUX), ("sdxl-model/unet", TINY_SDXL)):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "config.json").write_text(json.dumps(config))  # meta-device build: no weights needed
    shared(lycoris={**FLUX_ONLY, "apply_preset": {"target_module": ["FluxAttention"]}})
    found = findings_in("lyco.json", order, model="auto")
    by_code = {f["code"]: f["message"] for f in found}
    # the tiny Flux model is adapted (LYC402: a large share of it), the SDXL UNet is not (LYC207)
    assert by_code["LYC402"].startswith("with the training config flux.json: the adapter trains")
    assert by_code["LYC207"].startswith("with the training config sdxl.json: this config adapts no layer of UNet2DConditionModel")
    assert "LYC210" not in by_code
    assert found == findings_in("lyco.json", reversed(order), model="auto")


def test_fix_on_a_shared_config_fixes_it_once_and_leaves_the_context_finding(shared, capsys):
    folder = shared(lycoris={**FLUX_ONLY, "algo": "lokr", "linear_dim": 10000, "linear_alpha": 1, "factor": 8})
    status = main(["lint", "--fix", "--unsafe-fixes", "sdxl.json", "flux.json"])
    out = capsys.readouterr().out
    fixed = json.loads((folder / "lyco.json").read_text())
    assert fixed["linear_alpha"] == 10000  # LYC103's safe fix, which both runs give
    assert fixed["apply_preset"] == FLUX_ONLY["apply_preset"]  # not renamed to an SDXL class: Flux trains it
    assert "Fixed 1 problem" in out and "LYC205" in out and status == 1


SCRIPT = Path(sys.executable).with_name("lyco")
LYCO = str(SCRIPT) if SCRIPT.exists() else shutil.which("lyco")


@pytest.mark.skipif(LYCO is None, reason="the lyco console script is not installed")
@pytest.mark.parametrize("order", ORDERS)
def test_the_exit_status_does_not_depend_on_the_order(shared, order):
    folder = shared()
    run = subprocess.run([LYCO, "lint", *order], capture_output=True, text=True, cwd=folder, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "LYC205 [error] with the training config sdxl.json" in run.stdout
