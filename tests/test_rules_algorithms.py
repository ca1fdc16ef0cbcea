"""LYC1xx: algorithm options. Every code fires on a broken config (top level and map entries) and stays quiet on
the fixed one; findings point at the offending key or value."""

import json

import pytest

from conftest import VALID_LYCORIS, codes


def config(**changes):
    result = dict(VALID_LYCORIS)
    result.update(changes)
    return result


def with_map(entries, map_name="module_algo_map", **changes):
    return config(apply_preset={"target_module": list(entries), map_name: entries}, **changes)


def only(findings, code):
    return [finding for finding in findings if finding["code"] == code]


def position(finding):
    return finding["line"], finding["column"]


def lint_text(lint, text):
    """Lint raw text (so that tests know the exact line and column of each key)."""
    return lint(text)


def test_valid_configs_of_every_algo_have_no_algorithm_findings(lint):
    for algo, dim in (("lora", 16), ("loha", 16), ("lokr", 16), ("dylora", 16), ("glora", 8), ("full", 1),
                      ("diag-oft", 8), ("boft", 8), ("ia3", 1), ("tlora", 16), ("locon", 16)):
        findings = lint(config(algo=algo, linear_dim=dim, linear_alpha=dim))
        # LYC116 is about inference, not the config: every T-LoRA adapter needs its masks there
        assert [f for f in findings if f["code"].startswith("LYC1") and f["code"] != "LYC116"] == [], algo


# -- LYC101 option-not-for-algo ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algo, option, value", [
    ("loha", "factor", 8),
    ("lokr", "constraint", 0.5),
    ("tlora", "use_tucker", True),
    ("lora", "block_size", 8),
    ("ia3", "dora_wd", True),
    ("full", "dropout", 0.1),
])
def test_lyc101_option_the_algo_ignores(lint, algo, option, value):
    findings = only(lint(config(algo=algo, **{option: value})), "LYC101")
    assert len(findings) == 1
    assert findings[0]["pointer"] == f"/{option}" and findings[0]["severity"] == "warning"
    assert f"'{option}' at the top level has no effect with algo '{algo}'" in findings[0]["message"]


def test_lyc101_points_at_the_key(lint):
    findings = only(lint('{"algo": "loha", "multiplier": 1.0, "linear_dim": 8, "linear_alpha": 4,\n  "factor": 8}'), "LYC101")
    assert position(findings[0]) == (2, 3) and findings[0]["end_column"] == 11
    assert "only lokr reads it" in findings[0]["message"]


def test_lyc101_quiet_for_options_the_algo_reads_and_for_defaults(lint):
    assert "LYC101" not in codes(lint(config(algo="lokr", factor=8, decompose_both=True)))
    assert "LYC101" not in codes(lint(config(algo="diag-oft", constraint=0.5, rescaled=True)))
    assert "LYC101" not in codes(lint(config(algo="loha", factor=-1, use_tucker=False, dropout=0.0)))


def test_lyc101_map_entry_uses_its_own_algo(lint):
    findings = only(lint(with_map({"Attention": {"algo": "loha", "factor": 4}}, algo="lokr")), "LYC101")
    assert [f["pointer"] for f in findings] == ["/apply_preset/module_algo_map/Attention/factor"]
    assert "in the module_algo_map entry 'Attention'" in findings[0]["message"]
    assert "LYC101" not in codes(lint(with_map({"Attention": {"algo": "lokr", "factor": 4}}, algo="loha")))


def test_lyc101_map_entry_without_algo_uses_the_top_level_algo(lint):
    findings = only(lint(with_map({"Attention": {"constraint": 0.5}}, map_name="name_algo_map", algo="lora")), "LYC101")
    assert [f["pointer"] for f in findings] == ["/apply_preset/name_algo_map/Attention/constraint"]


def test_lyc101_top_level_option_is_quiet_when_a_map_entry_algo_reads_it(lint):
    # create_lycoris passes top-level options to every module, map entries included
    assert "LYC101" not in codes(lint(with_map({"Attention": {"algo": "lokr"}}, algo="lora", factor=8)))


# -- LYC102 option-dropped-at-top-level ------------------------------------------------------------------------


def test_lyc102_weight_decompose_names_dora_wd(lint):
    findings = only(lint('{"algo": "lora", "multiplier": 1.0, "linear_dim": 8, "linear_alpha": 4,\n "weight_decompose": true}'), "LYC102")
    assert len(findings) == 1 and position(findings[0]) == (2, 2) and findings[0]["severity"] == "error"
    assert 'the top-level switch is "dora_wd": write "dora_wd": true' in findings[0]["message"]


def test_lyc102_wd_on_out_names_wd_on_output(lint):
    message = only(lint(config(wd_on_out=False)), "LYC102")[0]["message"]
    assert '"wd_on_output": false' in message


@pytest.mark.parametrize("option, value", [("rs_lora", True), ("rank_dropout_scale", True), ("train_on_input", True),
                                           ("sig_type", "last"), ("use_data_init", False), ("mask_group_id", 1)])
def test_lyc102_map_only_options_say_where_they_work(lint, option, value):
    findings = only(lint(config(**{option: value})), "LYC102")
    assert len(findings) == 1 and findings[0]["pointer"] == f"/{option}"
    assert "module_algo_map" in findings[0]["message"] and f'"{option}": {json.dumps(value)}' in findings[0]["message"]


def test_lyc102_example_uses_the_configs_own_target_class(lint):
    message = only(lint(config(rs_lora=True, apply_preset={"target_module": ["Flux2Attention"]})), "LYC102")[0]["message"]
    assert '{"module_algo_map": {"Flux2Attention": {"rs_lora": true}}}' in message


def test_lyc102_default_value_is_only_a_warning(lint):
    assert only(lint(config(rs_lora=False)), "LYC102")[0]["severity"] == "warning"


def test_lyc102_quiet_when_the_option_is_in_a_map_entry(lint):
    assert "LYC102" not in codes(lint(with_map({"Attention": {"rs_lora": True, "weight_decompose": True}}, dora_wd=True)))


# -- LYC103 lokr-alpha-ignored ---------------------------------------------------------------------------------


def test_lyc103_full_matrix_lokr_ignores_linear_alpha(lint):
    findings = only(lint('{"algo": "lokr", "multiplier": 1.0, "full_matrix": true, "linear_dim": 8,\n "linear_alpha": 1}'), "LYC103")
    assert len(findings) == 1 and findings[0]["severity"] == "info"
    assert position(findings[0]) == (2, 18)
    assert "full_matrix is true" in findings[0]["message"] and "linear_alpha 1 has no effect" in findings[0]["message"]


def test_lyc103_linear_dim_10000_with_a_safe_factor(lint):
    message = only(lint(config(algo="lokr", linear_dim=10000, linear_alpha=1, factor=16)), "LYC103")[0]["message"]
    assert "linear_dim 10000 with factor 16" in message and "write 10000" in message


@pytest.mark.parametrize("changes", [
    {"linear_alpha": 10000},  # alpha equals the dim: says what happens
    {"linear_alpha": 0},  # 0 means alpha = dim
    {"linear_dim": 64},  # decomposed: alpha is used
    {"factor": 2},  # a 55296-wide projection split by 2 stays decomposed at 10000: not sure, say nothing
    {"algo": "lora"},
    {"linear_dim": None, "full_matrix": True},  # no written dim: linear_alpha is only there because SimpleTuner wants it
])
def test_lyc103_quiet_when_alpha_counts_or_it_is_not_certain(lint, changes):
    base = config(algo="lokr", linear_dim=10000, linear_alpha=1, factor=8)
    base.update(changes)
    base = {key: value for key, value in base.items() if value is not None}
    assert "LYC103" not in codes(lint(base))


def test_lyc103_map_entry_with_its_own_alpha(lint):
    findings = only(lint(with_map({"Attention": {"algo": "lokr", "full_matrix": True, "alpha": 4, "rs_lora": True}})), "LYC103")
    assert [f["pointer"] for f in findings] == ["/apply_preset/module_algo_map/Attention/alpha"]
    assert "alpha 4 has no effect" in findings[0]["message"] and "√dim ≈ 4" in findings[0]["message"]


def lycoris_scales(cfg):
    """{layer name: scale} of the network real lycoris-lora builds for ``cfg`` the way SimpleTuner calls it
    (apply_preset, then create_lycoris(model, multiplier, linear_dim, linear_alpha, **rest)) on a model with a
    ResnetBlock2D (a 3x3 convolution and a Linear, 320 channels) and an Attention block (a Linear)."""
    pytest.importorskip("torch")
    pytest.importorskip("lycoris")
    import logging

    from torch import nn
    from lycoris import LycorisNetwork, create_lycoris

    from lyco_lint.knowledge.lycoris import default_preset_state

    class ResnetBlock2D(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(320, 320, 3, padding=1)
            self.lin = nn.Linear(320, 320)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.to_q = nn.Linear(320, 320)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.res, self.attn = ResnetBlock2D(), Attention()

    cfg = dict(cfg)
    logging.getLogger("LyCORIS").setLevel(logging.CRITICAL)
    LycorisNetwork.apply_preset(cfg.pop("apply_preset"))
    try:
        network = create_lycoris(Model(), cfg.pop("multiplier"), cfg.pop("linear_dim"), cfg.pop("linear_alpha"), **cfg)
        return {module.lora_name.removeprefix("lycoris_"): float(module.scale) for module in network.loras}
    finally:
        for attribute, value in default_preset_state().items():
            setattr(LycorisNetwork, attribute, value)


def test_lyc103_offers_no_fix_when_linear_alpha_also_scales_decomposed_convolutions(lint):
    # create_lycoris: conv_alpha = conv_alpha or linear_alpha; a 3x3 conv gets conv_dim 8 (decomposed for 320
    # channels split by 16: w2 is 20x20, full only from dim 10)
    cfg = config(algo="lokr", linear_dim=10000, linear_alpha=1, conv_dim=8, factor=16,
                 apply_preset={"target_module": ["ResnetBlock2D", "Attention"]})
    (finding,) = only(lint(cfg), "LYC103")
    assert finding.get("fix") is None
    message = finding["message"]
    assert "conv_alpha is not written" in message and "conv_dim 8 keeps them decomposed: scale 1/8" in message
    assert '"conv_alpha": 1' in message and "then write linear_alpha 10000" in message
    before = lycoris_scales(cfg)
    assert before == {"res_conv": 0.125, "res_lin": 1.0, "attn_to_q": 1.0}
    # what the fix used to write: the Linear layers stay at 1, the convolution's scale grows 10000-fold
    assert lycoris_scales({**cfg, "linear_alpha": 10000})["res_conv"] == 1250.0
    # what the message says to write keeps every scale, and then LYC103 has nothing to say
    advised = {**cfg, "conv_alpha": 1, "linear_alpha": 10000}
    assert lycoris_scales(advised) == before and "LYC103" not in codes(lint(advised))


def test_lyc103_offers_no_fix_when_a_map_entry_inherits_linear_alpha(lint):
    cfg = with_map({"Attention": {"dim": 4}}, algo="lokr", linear_dim=10000, linear_alpha=1, factor=16)
    cfg["apply_preset"]["target_module"] = ["ResnetBlock2D", "Attention"]
    (finding,) = only(lint(cfg), "LYC103")
    assert finding.get("fix") is None
    assert "the module_algo_map entry 'Attention' (algo lokr, no alpha of its own)" in finding["message"]
    assert '"alpha": 1 in those map entries' in finding["message"]
    assert lycoris_scales(cfg)["attn_to_q"] == 1 / 4  # decomposed at dim 4: linear_alpha / dim
    assert lycoris_scales({**cfg, "linear_alpha": 10000})["attn_to_q"] == 2500.0


@pytest.mark.parametrize("changes", [
    {"conv_dim": 10000},  # the convolutions are full-matrix too
    {"conv_alpha": 4},  # the convolutions have their own alpha
    {},  # conv_dim defaults to linear_dim
])
def test_lyc103_fix_when_nothing_else_reads_linear_alpha(lint, changes):
    cfg = config(algo="lokr", linear_dim=10000, linear_alpha=1, factor=16,
                 apply_preset={"target_module": ["ResnetBlock2D", "Attention"]}, **changes)
    (finding,) = only(lint(cfg), "LYC103")
    assert finding["fix"]["applicability"] == "safe" and "has no effect;" in finding["message"]
    before = lycoris_scales(cfg)
    assert lycoris_scales({**cfg, "linear_alpha": 10000}) == before


# -- LYC104 full-with-bypass -----------------------------------------------------------------------------------


def test_lyc104_full_with_bypass(lint):
    findings = only(lint(config(algo="full", bypass_mode=True)), "LYC104")
    assert len(findings) == 1 and findings[0]["pointer"] == "/bypass_mode" and findings[0]["severity"] == "error"
    assert "not supported in Full algo" in findings[0]["message"]
    assert "LYC104" not in codes(lint(config(algo="full", bypass_mode=False)))
    assert "LYC104" not in codes(lint(config(algo="lokr", bypass_mode=True)))


def test_lyc104_map_entry_full_inherits_top_level_bypass(lint):
    findings = only(lint(with_map({"Attention": {"algo": "full"}}, algo="lokr", bypass_mode=True)), "LYC104")
    assert [f["pointer"] for f in findings] == ["/apply_preset/module_algo_map/Attention/algo"]
    assert "inherited from the top level" in findings[0]["message"]
    assert "LYC104" not in codes(lint(with_map({"Attention": {"algo": "full", "bypass_mode": False}}, algo="lokr", bypass_mode=True)))


# -- LYC105 dylora-block-size ----------------------------------------------------------------------------------


def test_lyc105_dylora_dim_not_a_multiple_of_block_size(lint):
    findings = only(lint(config(algo="dylora", linear_dim=10)), "LYC105")
    assert len(findings) == 1 and findings[0]["pointer"] == "/linear_dim"
    assert "not a multiple of block_size 4 (the default)" in findings[0]["message"] and "use 8 or 12" in findings[0]["message"]
    assert "LYC105" not in codes(lint(config(algo="dylora", linear_dim=12)))
    assert "LYC105" not in codes(lint(config(algo="dylora", linear_dim=10, block_size=5)))


def test_lyc105_map_entry_dim(lint):
    findings = only(lint(with_map({"Attention": {"algo": "dylora", "dim": 6}})), "LYC105")
    assert [f["pointer"] for f in findings] == ["/apply_preset/module_algo_map/Attention/dim"]


# -- LYC106 dora-in-bypass -------------------------------------------------------------------------------------


def test_lyc106_dora_with_bypass(lint):
    findings = only(lint(config(dora_wd=True, bypass_mode=True)), "LYC106")
    assert len(findings) == 1 and findings[0]["pointer"] == "/dora_wd" and findings[0]["severity"] == "error"
    assert "DoRA is never trained" in findings[0]["message"]
    assert "LYC106" not in codes(lint(config(dora_wd=True)))
    assert "LYC106" not in codes(lint(config(bypass_mode=True)))


def test_lyc106_weight_decompose_in_a_map_entry_with_top_level_bypass(lint):
    findings = only(lint(with_map({"Attention": {"weight_decompose": True}}, bypass_mode=True)), "LYC106")
    assert [f["pointer"] for f in findings] == ["/apply_preset/module_algo_map/Attention/weight_decompose"]
    assert "LYC106" not in codes(lint(with_map({"Attention": {"weight_decompose": True, "bypass_mode": False}}, bypass_mode=True)))


# -- LYC107 dora-wd-on-output ----------------------------------------------------------------------------------


def test_lyc107_lokr_dora_with_default_wd_on_output(lint):
    findings = only(lint(config(algo="lokr", dora_wd=True)), "LYC107")
    assert len(findings) == 1 and findings[0]["pointer"] == "/dora_wd"
    assert "(default true)" in findings[0]["message"] and "#246" in findings[0]["message"]
    assert only(lint(config(algo="loha", dora_wd=True, wd_on_output=True)), "LYC107")[0]["pointer"] == "/wd_on_output"
    assert "LYC107" not in codes(lint(config(algo="lokr", dora_wd=True, wd_on_output=False)))
    assert "LYC107" not in codes(lint(config(algo="lora", dora_wd=True)))


def test_lyc107_map_entry_switch_is_wd_on_out(lint):
    findings = only(lint(with_map({"Attention": {"algo": "loha", "weight_decompose": True}})), "LYC107")
    assert findings[0]["pointer"] == "/apply_preset/module_algo_map/Attention/weight_decompose"
    assert '"wd_on_out": false' in findings[0]["message"]
    assert "LYC107" not in codes(lint(with_map({"Attention": {"algo": "loha", "weight_decompose": True, "wd_on_out": False}})))


# -- LYC108 / LYC109 T-LoRA ------------------------------------------------------------------------------------


def test_lyc108_min_rank_above_linear_dim(lint):
    findings = only(lint(config(algo="tlora", linear_dim=16, tlora_min_rank=32)), "LYC108")
    assert len(findings) == 1 and findings[0]["pointer"] == "/tlora_min_rank"
    assert "above linear_dim 16" in findings[0]["message"] and "between 1 and 16" in findings[0]["message"]


@pytest.mark.parametrize("changes", [{"tlora_min_rank": 0}, {"tlora_min_rank": 2.5}, {"tlora_alpha": 0}, {"tlora_alpha": -1.0}])
def test_lyc108_schema_range(lint, changes):
    findings = only(lint(config(algo="tlora", **changes)), "LYC108")
    assert [f["pointer"] for f in findings] == [f"/{next(iter(changes))}"]


def test_lyc108_quiet_in_range(lint):
    assert "LYC108" not in codes(lint(config(algo="tlora", linear_dim=16, tlora_min_rank=16, tlora_alpha=2.0)))


def test_lyc109_tlora_option_without_tlora(lint):
    findings = only(lint(config(algo="lokr", tlora_min_rank=4, tlora_alpha=1.0)), "LYC109")
    assert [f["pointer"] for f in findings] == ["/tlora_min_rank", "/tlora_alpha"]
    assert "algo is 'lokr'" in findings[0]["message"]
    assert "LYC109" not in codes(lint(config(algo="TLoRA", tlora_min_rank=4)))


# -- LYC110 lokr-rank-dropout ----------------------------------------------------------------------------------


def test_lyc110_lokr_rank_dropout(lint):
    findings = only(lint(config(algo="lokr", rank_dropout=0.1)), "LYC110")
    assert len(findings) == 1 and findings[0]["pointer"] == "/rank_dropout"
    assert "crashes on CUDA" in findings[0]["message"]
    assert "ignored in bypass" in only(lint(config(algo="lokr", rank_dropout=0.1, bypass_mode=True)), "LYC110")[0]["message"]
    assert "LYC110" not in codes(lint(config(algo="lokr", rank_dropout=0)))
    assert "LYC110" not in codes(lint(config(algo="lora", rank_dropout=0.1)))


def test_lyc110_lokr_map_entry_inherits_rank_dropout(lint):
    findings = only(lint(with_map({"Attention": {"algo": "lokr"}}, rank_dropout=0.2)), "LYC110")
    assert [f["pointer"] for f in findings] == ["/apply_preset/module_algo_map/Attention/algo"]


# -- LYC111 conv-dim-zero --------------------------------------------------------------------------------------


def test_lyc111_conv_dim_zero(lint):
    findings = only(lint('{"algo": "lora", "multiplier": 1.0, "linear_dim": 8, "linear_alpha": 4,\n "conv_dim": 0}'), "LYC111")
    assert len(findings) == 1 and position(findings[0]) == (2, 14)
    message = findings[0]["message"]
    assert '"enable_conv": false' in message and '"preset": "full-lin"' in message and "linear_dim (8)" in message


def test_lyc111_enable_conv_false_without_a_preset_that_keeps_it(lint):
    message = only(lint(config(conv_dim=0, apply_preset={"enable_conv": False})), "LYC111")[0]["message"]
    assert 'preset "full" turns it back on' in message


def test_lyc111_quiet_when_convs_are_really_off_or_conv_dim_is_set(lint):
    assert "LYC111" not in codes(lint(config(conv_dim=0, preset="full-lin", apply_preset={"enable_conv": False})))
    assert "LYC111" not in codes(lint(config(conv_dim=4)))


# -- LYC112 loha-high-dim --------------------------------------------------------------------------------------


def test_lyc112_loha_high_dim(lint):
    findings = only(lint(config(algo="loha", linear_dim=64, linear_alpha=32)), "LYC112")
    assert [f["pointer"] for f in findings] == ["/linear_dim"]
    assert "NaN" in findings[0]["message"] and "effective rank up to 4096" in findings[0]["message"]
    assert "LYC112" not in codes(lint(config(algo="loha", linear_dim=32)))
    assert "LYC112" not in codes(lint(config(algo="lora", linear_dim=64)))


def test_lyc112_loha_map_entry_dim(lint):
    findings = only(lint(with_map({"Attention": {"algo": "loha", "dim": 48}}, linear_dim=16)), "LYC112")
    assert [f["pointer"] for f in findings] == ["/apply_preset/module_algo_map/Attention/dim"]
    inherited = only(lint(with_map({"Attention": {"algo": "loha"}}, linear_dim=64)), "LYC112")
    assert [f["pointer"] for f in inherited] == ["/apply_preset/module_algo_map/Attention/algo"]
    assert "the top-level linear_dim 64" in inherited[0]["message"]


# -- LYC113 map-option-forbidden -------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["dropout", "rank_dropout", "module_dropout", "multiplier"])
def test_lyc113_forbidden_map_option(lint, option):
    findings = only(lint(with_map({"Attention": {option: 0.1}}, map_name="name_algo_map")), "LYC113")
    assert len(findings) == 1 and findings[0]["pointer"] == f"/apply_preset/name_algo_map/Attention/{option}"
    assert "TypeError" in findings[0]["message"] and "top level" in findings[0]["message"]


def test_lyc113_points_at_the_key(lint):
    text = '{"algo": "lora", "multiplier": 1.0, "linear_dim": 8, "linear_alpha": 4,\n "apply_preset": {"module_algo_map": {"Attention": {\n   "dropout": 0.1}}}}'
    findings = only(lint(text), "LYC113")
    assert position(findings[0]) == (3, 4) and findings[0]["end_column"] == 13


def test_lyc113_quiet_at_the_top_level(lint):
    assert "LYC113" not in codes(lint(with_map({"Attention": {"dim": 4}}, dropout=0.1)))


# -- LYC114 map-unknown-algo -----------------------------------------------------------------------------------


def test_lyc114_map_algo_is_case_sensitive(lint):
    findings = only(lint(with_map({"Attention": {"algo": "LoKr"}})), "LYC114")
    assert len(findings) == 1 and findings[0]["pointer"] == "/apply_preset/module_algo_map/Attention/algo"
    assert "case-sensitive" in findings[0]["message"] and "write 'lokr'" in findings[0]["message"]


def test_lyc114_unknown_map_algo_suggests_a_name(lint):
    message = only(lint(with_map({"Attention": {"algo": "diag_oft"}})), "LYC114")[0]["message"]
    assert "did you mean 'diag-oft'?" in message
    assert "weight_decompose" in only(lint(with_map({"Attention": {"algo": "dora"}})), "LYC114")[0]["message"]


def test_lyc114_quiet_for_known_lower_case_algos(lint):
    assert "LYC114" not in codes(lint(with_map({"Attention": {"algo": "lokr"}, "FeedForward": {"algo": "diag-oft"}})))
