"""`lyco inspect` on adapters trained by `lyco train` on the tiny FLUX.2 [klein] pipeline (two steps each): LoKr, LoRA,
LoHa, T-LoRA and DoRA come out healthy, fit the model named by their own metadata (--model auto), and load where
lyco says they load."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("lycoris")
pytest.importorskip("numpy")

from train_fixtures import FLUX2_LOKR, FLUX2_TLORA, one_thread, pipeline, write_setup  # noqa: E402,F401 (fixtures)

from lyco_lint.cli import main  # noqa: E402
from lyco_train import run  # noqa: E402

TARGETS = {"target_module": ["Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention"]}
CONFIGS = {
    "lokr": FLUX2_LOKR,
    "lora": {"algo": "lora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 4, "apply_preset": TARGETS},
    "loha": {"algo": "loha", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 4, "apply_preset": TARGETS},
    "tlora": FLUX2_TLORA,
    "dora": {"algo": "lora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 4, "dora_wd": True, "apply_preset": TARGETS},
}


@pytest.fixture(scope="module")
def trained(pipeline, tmp_path_factory):
    files = {}
    for algo, config in CONFIGS.items():
        root = tmp_path_factory.mktemp(f"train-{algo}")
        setup = write_setup(root, pipeline, lycoris=config, options={"max_train_steps": 2, "checkpoint_step_interval": 100, "lr_warmup_steps": 0})
        assert run(setup) == 0, algo
        files[algo] = root / "output" / "pytorch_lora_weights.safetensors"
    return files


def inspect_json(capsys, *args):
    """``lyco inspect --format json`` in this process (test_inspect.py runs the console script)."""
    capsys.readouterr()
    status = main(["inspect", "--format", "json", *args])
    done = capsys.readouterr()
    return status, json.loads(done.out), done.err


@pytest.mark.parametrize("algo", sorted(CONFIGS))
def test_a_trained_adapter_is_healthy_fits_its_model_and_says_where_it_loads(trained, algo, capsys):
    status, facts, stderr = inspect_json(capsys, str(trained[algo]), "--model", "auto")
    assert status == 0, stderr
    found = {finding["code"] for finding in facts["findings"]}
    assert not found & {"LYC601", "LYC602", "LYC603", "LYC604", "LYC210"}, facts["findings"]
    assert facts["metadata"]["lyco"]["model_family"] == "flux2" and facts["family"]["name"] == "flux2"
    count = 10 if algo == "tlora" else 14  # the T-LoRA config targets the attention classes only
    assert len(facts["modules"]) == count and all(module["dead"] is not True for module in facts["modules"])
    model = facts["model"]
    assert model["class"] == "Flux2Transformer2DModel" and model["matched_modules"] == count and model["mismatches"] == []
    assert model["create_lycoris_from_weights"]["modules"] == count and model["create_lycoris_from_weights"]["error"] is None
    expected_class = {"lokr": "LokrModule", "lora": "LoConModule", "dora": "LoConModule", "loha": "LohaModule", "tlora": "TLoraModule"}[algo]
    assert model["create_lycoris_from_weights"]["algo_table"] == {expected_class: count}
    comfy = facts["comfyui"]
    if algo == "tlora":
        assert comfy["loaded_modules"] == 0 and {"LYC605", "LYC606"} <= found
    else:
        assert comfy["loaded_modules"] == 14 and comfy["not_loaded"] == [] and "LYC605" not in found
    if algo == "dora":
        assert all(module["dora"] for module in facts["modules"]) and facts["diffusers"]["dropped_keys"]
    # the user document's LoKr gives attention factor 2 and feed-forward factor 4: no single decompose_factor for diffusers
    assert facts["diffusers"]["outcome"] == ("loads nothing" if algo in ("lora", "dora") else "refuses")
    if algo == "lokr":
        assert "decompose_factor" in facts["diffusers"]["message"] and "LYC610" in found


def test_the_trained_lokr_has_the_scale_and_blocks_of_its_config(trained, capsys):
    _status, facts, _ = inspect_json(capsys, str(trained["lokr"]))
    assert facts["lycoris_config"]["factor"] == 4 and facts["lycoris_config"]["full_matrix"] is True
    assert {module["scale"] for module in facts["modules"]} == {1.0} and all(module["full_matrix"] for module in facts["modules"])
    assert facts["health"]["checked"] and facts["health"]["dead_modules"] == []
