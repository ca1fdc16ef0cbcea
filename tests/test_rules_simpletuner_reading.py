"""How SimpleTuner and inference tools really read a config: SimpleTuner's int() casts (LYC317), fp16 on
bf16-native models (LYC318), validation values (LYC319, LYC308), merge_to's doubled scale (LYC115) and
T-LoRA masks (LYC116)."""

from __future__ import annotations

import json

import pytest

from conftest import VALID_LYCORIS, changed, codes


def only(findings, code):
    return [f for f in findings if f["code"] == code]


# -- LYC317 --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key, value, severity, words", [
    ("multiplier", 0.5, "error", "becomes 0, so the adapter's output is multiplied by 0"),
    ("multiplier", -0.9, "error", "becomes 0"),
    ("multiplier", 1.5, "warning", "trains at multiplier 1, not 1.5 (lyco trains 1.5)"),
    ("linear_alpha", 0.5, "warning", "alpha 0, which LyCORIS replaces by the dim: scale 1 instead of 0.5/16"),
    ("linear_alpha", 4.5, "warning", "scale 4/16 = 0.25 instead of 4.5/16"),
    ("linear_dim", 0.5, "error", "a rank below 1 disables every Linear layer"),
    ("linear_dim", 16.5, "warning", "rank 16"),
])
def test_simpletuner_int_casts(lint, key, value, severity, words):
    found = only(lint(changed(VALID_LYCORIS, **{"linear_dim": 16, key: value})), "LYC317")
    assert [f["severity"] for f in found] == [severity] and words in found[0]["message"], found
    assert found[0]["pointer"] == f"/{key}"


def test_whole_numbers_and_all_full_lokr_alpha_are_not_reported(lint):
    assert only(lint(changed(VALID_LYCORIS, multiplier=1.0, linear_alpha=8.0)), "LYC317") == []
    lokr = {"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 0.5, "full_matrix": True}
    assert only(lint(lokr), "LYC317") == []  # alpha is ignored: scale 1 either way (LYC103 says so)


def test_tlora_min_rank_cast_only_for_tlora(lint):
    tlora = {"algo": "tlora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8, "tlora_min_rank": 0.5}
    assert [f["severity"] for f in only(lint(tlora), "LYC317")] == ["error"]
    assert [f["severity"] for f in only(lint(dict(tlora, tlora_min_rank=2.5)), "LYC317")] == ["warning"]


def test_lyco_reads_the_values_as_written_so_the_plan_and_training_agree():
    from lyco_lint.knowledge.lycoris import network_arguments, simpletuner_casts

    config = changed(VALID_LYCORIS, multiplier=1.5, linear_alpha=0.5)
    arguments = network_arguments(config)
    assert (arguments.multiplier, arguments.linear_alpha) == (1.5, 0.5)
    assert [(cast.key, cast.written, cast.used) for cast in simpletuner_casts(config)] == [("multiplier", 1.5, 1), ("linear_alpha", 0.5, 0)]


# -- LYC318 --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family, reported", [("flux", True), ("flux2", True), ("sd3", True), ("qwen_image", True), ("sdxl", False), ("sd1x", False)])
def test_fp16_on_bf16_native_families(lint, family, reported):
    found = only(lint({"model_family": family, "mixed_precision": "fp16"}, "config.json"), "LYC318")
    assert bool(found) == reported
    assert only(lint({"model_family": family, "mixed_precision": "bf16"}, "config.json"), "LYC318") == []


# -- LYC319 / LYC308 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, reported, words", [
    (64, True, "64000×64000"),
    ("0.5", True, "0 pixels"),
    (2, True, "2000×2000"),
    (1, False, ""),
    ("1.5", False, ""),
    (512, False, ""),
    ("64,1024", False, ""),  # a list is read as written
    ("64x64", False, ""),
])
def test_validation_resolution_below_128_is_megapixels(lint, value, reported, words):
    found = only(lint({"model_family": "flux2", "validation_resolution": value}, "config.json"), "LYC319")
    assert bool(found) == reported and (not reported or words in found[0]["message"]), found


def test_validation_seed_zero_falls_through_to_seed(lint):
    found = only(lint({"model_family": "flux2", "validation_seed": 0, "seed": 42}, "config.json"), "LYC319")
    assert len(found) == 1 and "training seed 42" in found[0]["message"]
    assert only(lint({"model_family": "flux2", "validation_seed": 0}, "config.json"), "LYC319") == []  # 0 either way
    assert only(lint({"model_family": "flux2", "validation_seed": 3, "seed": 42}, "config.json"), "LYC319") == []


def test_validation_lycoris_strength_zero_becomes_one_in_one_home(lint):
    found = lint({"lora_type": "lycoris", "validation_lycoris_strength": 0}, "config.json")
    assert [(f["code"], f["severity"]) for f in found if f["code"] in ("LYC308", "LYC319", "LYC314")] == [("LYC308", "warning")]
    assert "float(strength or 1.0)" in only(found, "LYC308")[0]["message"]


def test_the_megapixel_reading_is_simpletuners():
    from lyco_lint.rules.training_argparse import megapixel_resolution

    assert [megapixel_resolution(text) for text in ("1", "1.5", "2", "64", "0.5", "127", "128", "x")] == [1024, 1024, 2000, 64000, 0, 127000, None, None]


# -- LYC115 / LYC116 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("config, reported", [
    ({"algo": "loha", "linear_dim": 8, "linear_alpha": 4}, True),
    ({"algo": "loha", "linear_dim": 8, "linear_alpha": 8}, False),
    ({"algo": "loha", "linear_dim": 8, "linear_alpha": 0}, False),  # alpha 0 is the dim: scale 1
    ({"algo": "lokr", "linear_dim": 16, "linear_alpha": 1, "factor": 4}, True),
    ({"algo": "lokr", "linear_dim": 10000, "linear_alpha": 1, "factor": 4}, False),  # all-full: scale 1
    ({"algo": "lokr", "linear_dim": 16, "linear_alpha": 1, "full_matrix": True}, False),
    ({"algo": "lora", "linear_dim": 16, "linear_alpha": 1}, False),  # LoRA merges exactly
])
def test_merge_changes_model(lint, config, reported):
    found = only(lint(dict(config, multiplier=1.0)), "LYC115")
    assert bool(found) == reported, found
    if reported:
        assert "merge_to() applies it twice" in found[0]["message"] and "apply_to()" in found[0]["message"]


def test_merge_changes_model_in_a_map_entry(lint):
    config = dict(VALID_LYCORIS, apply_preset={"module_algo_map": {"Block": {"algo": "lokr", "dim": 4, "alpha": 8}}})
    found = only(lint(config), "LYC115")
    assert [f["pointer"] for f in found] == ["/apply_preset/module_algo_map/Block/alpha"] and "2× the trained" in found[0]["message"]


def test_tlora_needs_masks_once(lint):
    found = only(lint({"algo": "tlora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8}), "LYC116")
    assert len(found) == 1 and found[0]["severity"] == "info" and "set_timestep_mask" in found[0]["message"]
    mapped = dict(VALID_LYCORIS, apply_preset={"module_algo_map": {"Block": {"algo": "tlora"}}})
    assert [f["pointer"] for f in only(lint(mapped), "LYC116")] == ["/apply_preset/module_algo_map/Block/algo"]
    assert only(lint(VALID_LYCORIS), "LYC116") == []


def test_merge_changes_model_counts_the_real_layers_with_the_model(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("lycoris")
    from lyco_lint.engine import Options, lint_paths
    from test_console_script import TINY_FLUX2

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps(TINY_FLUX2))
    config = tmp_path / "lokr.lycoris.json"
    targets = {"target_module": ["Flux2Attention"]}
    # dim 2 on 32-wide projections: w2 decomposed, scale 1/2 on every adapted layer
    config.write_text(json.dumps({"algo": "lokr", "multiplier": 1.0, "linear_dim": 2, "linear_alpha": 1, "apply_preset": targets}))
    found = [f for f in lint_paths([str(config)], Options(model=str(tmp_path / "model"), family="flux2")).findings if f.code == "LYC115"]
    assert len(found) == 1 and " layers of Flux2Transformer2DModel" in found[0].message
    # dim 16 reaches half of every block side of the tiny model: all full, scale 1, nothing to say
    config.write_text(json.dumps({"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1, "factor": 2, "apply_preset": targets}))
    assert [f for f in lint_paths([str(config)], Options(model=str(tmp_path / "model"), family="flux2")).findings if f.code == "LYC115"] == []
