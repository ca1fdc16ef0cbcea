"""LYC2xx: apply_preset keys, targets and patterns. Every code fires on a broken config and stays quiet on the fixed
one; class names are checked against the model family from --family or the training config."""

import json

import pytest

from conftest import EXAMPLES, VALID_LYCORIS, codes
from lyco_lint.cli import main


def preset(**apply_preset):
    return {**VALID_LYCORIS, "apply_preset": apply_preset}


def only(findings, code):
    return [finding for finding in findings if finding["code"] == code]


def position(finding):
    return finding["line"], finding["column"]


FLUX2_TARGETS = ["Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention"]


# -- LYC201 unknown-preset-key -----------------------------------------------------------------------------------


def test_lyc201_unknown_preset_key_suggests_the_closest(lint):
    findings = only(lint('{"algo": "lora", "multiplier": 1, "linear_dim": 4, "linear_alpha": 1,\n'
                         ' "apply_preset": {"target_modules": ["Flux2Attention"]}}'), "LYC201")
    assert len(findings) == 1 and position(findings[0]) == (2, 19) and findings[0]["severity"] == "error"
    assert "did you mean 'target_module'?" in findings[0]["message"] and "KeyError" in findings[0]["message"]


def test_lyc201_quiet_for_valid_keys(lint):
    config = preset(target_module=[], target_name=[".*attn.*"], exclude_name=[], enable_conv=False, use_fnmatch=False,
                    lora_prefix="lycoris", module_algo_map={}, name_algo_map={})
    assert [code for code in codes(lint(config)) if code.startswith("LYC2")] == []


# -- LYC202 preset-key-ignored -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key, fix", [
    ("unet_target_module", "rename it to target_module"),
    ("unet_target_name", "rename it to target_name"),
    ("text_encoder_target_module", "trains only the diffusion model"),
    ("text_encoder_target_name", "trains only the diffusion model"),
])
def test_lyc202_kohya_only_keys_are_ignored(lint, key, fix):
    findings = only(lint(preset(**{key: ["Flux2Attention"]})), "LYC202")
    assert len(findings) == 1 and findings[0]["pointer"] == f"/apply_preset/{key}" and findings[0]["severity"] == "warning"
    assert "ignored by create_lycoris" in findings[0]["message"] and fix in findings[0]["message"]


def test_lyc202_quiet_for_target_module(lint):
    assert "LYC202" not in codes(lint(preset(target_module=["Flux2Attention"])))


# -- LYC203 target-name-without-target-module ------------------------------------------------------------------


def test_lyc203_target_name_alone(lint):
    findings = only(lint('{"algo": "lora", "multiplier": 1, "linear_dim": 4, "linear_alpha": 1,\n'
                         ' "apply_preset": {"target_name": [".*to_q"]}}'), "LYC203")
    assert len(findings) == 1 and position(findings[0]) == (2, 19)
    assert '"target_module": []' in findings[0]["message"]


def test_lyc203_quiet_with_target_module_or_no_names(lint):
    assert "LYC203" not in codes(lint(preset(target_module=[], target_name=[".*to_q"])))
    assert "LYC203" not in codes(lint(preset(target_name=[])))


# -- LYC204 algo-map-key-not-targeted --------------------------------------------------------------------------


def test_lyc204_map_key_outside_target_module(lint):
    text = ('{"algo": "lokr", "multiplier": 1, "linear_dim": 10000, "linear_alpha": 10000,\n'
            ' "apply_preset": {"target_module": ["Flux2Attention"],\n'
            '   "module_algo_map": {"Flux2FeedForward": {"factor": 4}}}}')
    findings = only(lint(text), "LYC204")
    assert len(findings) == 1 and position(findings[0]) == (3, 24) and findings[0]["severity"] == "warning"
    assert "extra target" in findings[0]["message"] and "every Flux2FeedForward in the model" in findings[0]["message"]


def test_lyc204_quiet_when_targeted_or_without_target_module(lint):
    targeted = preset(target_module=["Flux2Attention"], module_algo_map={"Flux2Attention": {"dim": 8}})
    assert "LYC204" not in codes(lint(targeted))
    assert "LYC204" not in codes(lint(preset(module_algo_map={"Flux2Attention": {"dim": 8}})))


# -- LYC205 unknown-target-module / LYC209 family-not-indexed --------------------------------------------------


def test_lyc205_generic_names_on_flux2_suggest_the_flux2_classes(lint):
    text = ('{"algo": "lora", "multiplier": 1, "linear_dim": 4, "linear_alpha": 1,\n'
            ' "apply_preset": {"target_module": ["Flux2Attention", "Linear", "Flux2FeedForward", "Attention"],\n'
            '   "module_algo_map": {"FeedForward": {"dim": 8}}}}')
    findings = only(lint(text, family="flux2"), "LYC205")
    assert [f["pointer"] for f in findings] == ["/apply_preset/target_module/3", "/apply_preset/module_algo_map/FeedForward"]
    assert position(findings[0]) == (2, 85) and findings[0]["end_column"] == 96  # the list item "Attention"
    assert position(findings[1]) == (3, 24)  # the map key
    first, second = findings[0]["message"], findings[1]["message"]
    assert "flux2 model (Flux2Transformer2DModel)" in first and "empty parameter list" in first
    assert "did you mean 'Flux2Attention' or 'Flux2ParallelSelfAttention'?" in first
    assert "did you mean 'Flux2FeedForward'?" in second


def test_lyc205_quiet_for_real_classes_or_without_a_family(lint):
    assert "LYC205" not in codes(lint(preset(target_module=FLUX2_TARGETS, module_algo_map={"Flux2Attention": {}}), family="flux2"))
    assert "LYC205" not in codes(lint(preset(target_module=["Attention"])))


def test_lyc205_default_torch_class_missing_from_the_model_is_only_a_warning(lint):
    findings = only(lint(preset(target_module=["Linear", "Conv2d"]), family="flux2"), "LYC205")
    assert [(f["pointer"], f["severity"]) for f in findings] == [("/apply_preset/target_module/1", "warning")]
    assert only(lint(preset(target_module=["Conv2d"]), family="flux2"), "LYC205")[0]["severity"] == "error"


def test_lyc205_is_a_warning_where_simpletuners_model_may_differ_from_diffusers(lint):
    # diffusers' Flux.1 names its attention FluxAttention, SimpleTuner's own Flux copy builds the generic Attention
    findings = only(lint(preset(target_module=["Attention"]), family="flux"), "LYC205")
    assert len(findings) == 1 and findings[0]["severity"] == "warning"
    assert "FluxAttention" in findings[0]["message"] and "lyco lint --model" in findings[0]["message"]
    # flux2 is verified to match SimpleTuner's model: the same mistake is an error there
    assert only(lint(preset(target_module=["Attention"]), family="flux2"), "LYC205")[0]["severity"] == "error"


def test_lyc205_family_from_the_training_config(tmp_path):
    (tmp_path / "lycoris.json").write_text(json.dumps(preset(target_module=["Attention"])))
    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "lora", "model_family": "Flux2", "lora_type": "lycoris", "lycoris_config": "lycoris.json"}))
    from lyco_lint.engine import lint_paths

    findings = [f for f in lint_paths([str(tmp_path / "config.json")]).findings if f.code == "LYC205"]
    assert len(findings) == 1 and findings[0].file.endswith("lycoris.json") and "flux2 model" in findings[0].message


def test_lyc209_family_not_in_the_index_is_one_info(lint):
    findings = only(lint(preset(target_module=["Block", "Attention"]), family="anima"), "LYC209")
    assert len(findings) == 1 and findings[0]["severity"] == "info" and findings[0]["pointer"] == "/apply_preset/target_module"
    assert "'anima'" in findings[0]["message"] and "lyco lint --model" in findings[0]["message"]
    assert "LYC205" not in codes(lint(preset(target_module=["Block"]), family="anima"))


def test_lyc209_quiet_for_indexed_families_and_configs_without_class_targets(lint):
    assert "LYC209" not in codes(lint(preset(target_module=["Attention"]), family="sdxl"))
    assert "LYC209" not in codes(lint(preset(target_module=[], target_name=[".*"]), family="anima"))


# -- LYC206 invalid-pattern ---------------------------------------------------------------------------------------


def test_lyc206_invalid_regex_in_target_name_exclude_name_and_name_algo_map(lint):
    config = preset(target_module=[], target_name=["*attn*"], exclude_name=["ok", "blocks.[0-"],
                    name_algo_map={"to_(q|k": {"dim": 4}})
    findings = only(lint(config), "LYC206")
    assert [f["pointer"] for f in findings] == [
        "/apply_preset/target_name/0", "/apply_preset/exclude_name/1", "/apply_preset/name_algo_map/to_(q|k"]
    assert "write '.*'" in findings[0]["message"] and "use_fnmatch" in findings[0]["message"]
    assert "re.error" in findings[1]["message"]


def test_lyc206_fnmatch_only_checks_unbalanced_brackets(lint):
    config = preset(target_module=[], use_fnmatch=True, target_name=["*attn*", "blocks.[0-9].*", "blocks.[0-9"])
    findings = only(lint(config), "LYC206")
    assert [f["pointer"] for f in findings] == ["/apply_preset/target_name/2"]
    assert "literal '['" in findings[0]["message"]


def test_lyc206_quiet_for_valid_patterns(lint):
    config = preset(target_module=[], target_name=[r".*\.to_q$", "transformer_blocks\\.[0-9]+"], exclude_name=["proj_out"])
    assert "LYC206" not in codes(lint(config))


# -- the shipped examples --------------------------------------------------------------------------------------------


def test_flux2_example_is_clean_on_flux2_and_the_generic_example_fails(capsys):
    status = main(["lint", "--format", "json", "--strict", "--family", "flux2", str(EXAMPLES / "flux2-lokr.lycoris.json")])
    findings = json.loads(capsys.readouterr().out)
    assert status == 0 and [f for f in findings if f["severity"] != "info"] == []
    status = main(["lint", "--format", "json", "--family", "flux2", str(EXAMPLES / "lokr.lycoris.json")])
    findings = json.loads(capsys.readouterr().out)
    assert status == 1 and "LYC205" in codes(findings)
    assert any("Flux2Attention" in f["message"] for f in findings if f["code"] == "LYC205")


def test_examples_have_no_errors(capsys):
    assert main(["lint", "--format", "json", str(EXAMPLES)]) == 0
    assert [f for f in json.loads(capsys.readouterr().out) if f["severity"] == "error"] == []
