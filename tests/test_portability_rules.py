"""Config rules for adapters that load nowhere but LyCORIS, caught before training: LYC320 (fused QKV projections
under LyCORIS), LYC212 (a lora_prefix ComfyUI does not map) and, with --model, LYC213 (adapted layers outside
ComfyUI's key map for the family), checked on tiny real diffusers models built on the meta device."""

from __future__ import annotations

import json

import pytest

from conftest import VALID_LYCORIS, changed, codes

TRAINING = {"model_type": "lora", "model_family": "flux", "lora_type": "lycoris", "lycoris_config": "lycoris.json"}


@pytest.mark.parametrize(
    "options, fires",
    [
        ({"fuse_qkv_projections": True}, True),
        ({"fused_qkv_projections": True}, True),  # SimpleTuner's legacy name
        ({"--fuse_qkv_projections": "true"}, True),
        ({"fuse_qkv_projections": False}, False),
        ({"fuse_qkv_projections": True, "lora_type": "standard"}, False),
    ],
)
def test_lyc320_fused_qkv_with_lycoris(write, lint, options, fires):
    write(VALID_LYCORIS, "lycoris.json")
    found = lint({**TRAINING, **options}, "config.json")
    hits = [f for f in found if f["code"] == "LYC320"]
    assert bool(hits) == fires
    if fires:
        assert hits[0]["severity"] == "warning" and "to_added_qkv" in hits[0]["message"] and hits[0]["file"].endswith("config.json")


@pytest.mark.parametrize(
    "family, prefix, fires",
    [("flux2", "lora_unet", True), ("flux2", "lycoris", False), ("flux", "lora_transformer", False), ("flux", "lora.unet", True),
     ("sdxl", "lora_unet", False), ("sdxl", "lora_transformer", True), (None, "lora_unet", False)],
)
def test_lyc212_lora_prefix_unmapped(lint, family, prefix, fires):
    config = changed(VALID_LYCORIS, apply_preset={"target_module": ["Attention"], "lora_prefix": prefix})
    found = lint(config, family=family)
    hits = [f for f in found if f["code"] == "LYC212"]
    assert bool(hits) == fires
    if fires:
        assert hits[0]["pointer"] == "/apply_preset/lora_prefix" and "loads none of the adapter" in hits[0]["message"]


def test_lyc212_through_the_training_config(write, lint):
    write(changed(VALID_LYCORIS, apply_preset={"lora_prefix": "lora_unet"}), "lycoris.json")
    found = lint({**TRAINING, "model_family": "flux2"}, "config.json")
    assert "LYC212" in codes(found)


# -- LYC213 (--model) ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    pytest.importorskip("lycoris")
    from test_model import TINY

    folders = {}
    for family in ("flux2", "flux", "sdxl"):
        class_name, config, component, _targets = TINY[family]
        folder = tmp_path_factory.mktemp(family) / component
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"_class_name": class_name, **config}))
        folders[family] = folder
    return folders


def test_lyc213_names_the_flux2_layers_comfyui_drops(tiny, lint):
    config = {"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 4}
    found = [f for f in lint(config, model=str(tiny["flux2"]), family="flux2") if f["code"] == "LYC213"]
    assert len(found) == 1 and found[0]["severity"] == "warning"
    message = found[0]["message"]
    assert "5 of the 23 layers" in message and "time_guidance_embed.timestep_embedder.linear_1" in message
    assert "double_stream_modulation_img.linear" in message and "ComfyUI 0.38.1" in message


@pytest.mark.parametrize("family, targets", [("flux2", ["Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention"]),
                                             ("flux", None), ("sdxl", None)])
def test_lyc213_is_silent_when_every_adapted_layer_maps(tiny, lint, family, targets):
    config = {"algo": "lora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 4}
    if targets:
        config["apply_preset"] = {"target_module": targets}
    found = lint(config, model=str(tiny[family]))  # the family from the model class
    assert "LYC213" not in codes(found) and "LYC210" not in codes(found)
