"""Pins the lycoris-lora 4.1.3 behaviours that the LYC1xx/LYC2xx rules rely on, by running the real library on
tiny torch modules (and one tiny diffusers Flux 2 transformer).

If one of these fails after a LyCORIS upgrade, the rule that cites it (named in each test) must be revisited.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
lycoris = pytest.importorskip("lycoris")

from torch import nn  # noqa: E402

from lycoris import LycorisNetwork, create_lycoris  # noqa: E402

PRESET_STATE = (
    "ENABLE_CONV",
    "TARGET_REPLACE_MODULE",
    "TARGET_REPLACE_NAME",
    "LORA_PREFIX",
    "MODULE_ALGO_MAP",
    "NAME_ALGO_MAP",
    "USE_FNMATCH",
    "TARGET_EXCLUDE_NAME",
)
_DEFAULTS = {name: getattr(LycorisNetwork, name) for name in PRESET_STATE}


@pytest.fixture(autouse=True)
def fresh_lycoris():
    """apply_preset mutates class attributes that leak into the next network: reset them around each test.
    The "LyCORIS" logger writes INFO lines to stdout: keep it quiet."""
    logger = logging.getLogger("LyCORIS")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    reset_preset_state()
    yield
    reset_preset_state()
    logger.setLevel(level)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.to_q = nn.Linear(16, 16)
        self.to_out = nn.Linear(16, 16)


class FeedForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(16, 32)
        self.down = nn.Linear(32, 16)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = Attention()
        self.ff = FeedForward()
        self.conv = nn.Conv2d(4, 4, 3)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(), Block()])
        self.proj_out = nn.Linear(16, 16)


def reset_preset_state():
    for name, value in _DEFAULTS.items():
        setattr(LycorisNetwork, name, value)


def build(apply_preset=None, **kwargs):
    """create_lycoris on a fresh tiny model, after a fresh apply_preset (as SimpleTuner calls them)."""
    torch.manual_seed(0)
    reset_preset_state()
    if apply_preset is not None:
        LycorisNetwork.apply_preset(apply_preset)
    options = {"algo": "lora", **kwargs}
    return create_lycoris(Model(), 1.0, options.pop("linear_dim", 4), options.pop("linear_alpha", 1), **options)


def adapted(network) -> dict[str, nn.Module]:
    return {module.lora_name: module for module in network.loras}


# -- LYC102: module options create_lycoris drops at the top level ----------------------------------


def test_top_level_rs_lora_and_weight_decompose_are_dropped():
    network = build(rs_lora=True, weight_decompose=True, wd_on_out=False)
    modules = list(adapted(network).values())
    assert modules
    assert not any(module.rs_lora for module in modules)
    assert not any(module.wd for module in modules)
    assert all(module.wd_on_out for module in modules)


def test_the_same_options_work_in_a_map_entry_and_dora_wd_works_at_the_top():
    network = build({"module_algo_map": {"Attention": {"rs_lora": True, "weight_decompose": True}}})
    in_attention = [m for name, m in adapted(network).items() if "_attn_" in name]
    assert in_attention and all(m.rs_lora and m.wd for m in in_attention)
    assert all(m.wd for m in build(dora_wd=True).loras)


# -- LYC113 / LYC114: map entries -------------------------------------------------------------------


@pytest.mark.parametrize("option", ["dropout", "rank_dropout", "module_dropout", "multiplier"])
def test_dropout_or_multiplier_in_a_map_entry_raises_type_error(option):
    with pytest.raises(TypeError, match="multiple values"):
        build({"module_algo_map": {"Attention": {option: 0.1}}})


def test_map_algo_is_case_sensitive_while_the_top_level_algo_is_lower_cased():
    with pytest.raises(KeyError):
        build({"module_algo_map": {"Attention": {"algo": "LoKr"}}})
    assert {type(m).__name__ for m in build(algo="LoKr").loras} == {"LokrModule"}


def test_map_entry_without_algo_uses_the_top_level_algo_and_inherits_top_level_flags():
    network = build({"module_algo_map": {"Attention": {"dim": 8}}}, algo="lokr", full_matrix=True, bypass_mode=True)
    attention = [m for name, m in adapted(network).items() if "_attn_" in name]
    assert {type(m).__name__ for m in attention} == {"LokrModule"}
    assert all(m.full_matrix and m.bypass_mode for m in attention)


# -- LYC201 / LYC202 / LYC203 / LYC204: apply_preset ------------------------------------------------


def test_unknown_preset_key_raises_key_error():
    with pytest.raises(KeyError, match="target_modules"):
        LycorisNetwork.apply_preset({"target_modules": ["Attention"]})


def test_unet_target_module_is_accepted_then_ignored():
    everything = set(adapted(build()))
    assert set(adapted(build({"unet_target_module": ["Attention"], "text_encoder_target_name": ["x"]}))) == everything


def test_target_name_alone_restricts_nothing_without_an_empty_target_module():
    everything = set(adapted(build()))
    assert set(adapted(build({"target_name": ["proj_out"]}))) == everything
    assert set(adapted(build({"target_name": ["proj_out"], "target_module": []}))) == {"lycoris_proj_out"}


def test_module_algo_map_keys_become_extra_targets():
    network = build({"target_module": ["Attention"], "module_algo_map": {"FeedForward": {"dim": 2}}})
    names = set(adapted(network))
    assert any("_ff_" in name for name in names)  # FeedForward adapted although not in target_module
    assert not any("proj_out" in name for name in names)


def test_name_algo_map_is_ignored_inside_a_target_module_subtree():
    network = build({"target_module": ["Block"], "name_algo_map": {r".*\.attn\.to_q$": {"algo": "loha"}}})
    assert {type(m).__name__ for m in network.loras} == {"LoConModule"}
    by_name_only = build({"target_module": [], "name_algo_map": {r".*\.attn\.to_q$": {"algo": "loha"}}})
    assert {type(m).__name__ for m in by_name_only.loras} == {"LohaModule"}


def test_unknown_target_class_adapts_zero_modules_without_an_error():
    assert build({"target_module": ["Flux2Attention"]}).loras == []


# -- LYC206: patterns ---------------------------------------------------------------------------------


def test_invalid_regex_in_target_name_raises_when_the_network_is_built():
    with pytest.raises(re.error):
        build({"target_name": ["*proj"], "target_module": []})


def test_fnmatch_patterns_never_raise_and_an_unbalanced_bracket_is_literal():
    network = build({"target_name": ["proj_[out"], "target_module": [], "use_fnmatch": True})
    assert network.loras == []
    assert fnmatch.fnmatch("proj_[out", "proj_[out")


# -- LYC111: conv_dim 0 and enable_conv -------------------------------------------------------------------


def _conv_modules(network):
    return [m for name, m in adapted(network).items() if name.endswith("_conv")]


def test_conv_dim_zero_falls_back_to_linear_dim():
    convs = _conv_modules(build(linear_dim=8, conv_dim=0))
    assert convs and all(m.lora_dim == 8 for m in convs)


def test_enable_conv_false_is_undone_by_the_default_preset_and_kept_by_full_lin():
    assert _conv_modules(build({"enable_conv": False}))
    assert not _conv_modules(build({"enable_conv": False}, preset="full-lin"))


# -- LYC104 / LYC105 / LYC106: algorithm constraints ----------------------------------------------------


def test_full_with_bypass_mode_raises_value_error():
    with pytest.raises(ValueError, match="bypass mode is not supported in Full"):
        build(algo="full", bypass_mode=True)


def test_dylora_dim_must_be_a_multiple_of_block_size():
    with pytest.raises(AssertionError, match="multiple of block_size"):
        build(algo="dylora", linear_dim=10)
    assert build(algo="dylora", linear_dim=12, block_size=6).loras


def test_dora_is_not_trained_in_bypass_mode():
    layer = nn.Linear(16, 16)
    network = create_lycoris(layer, 1.0, 4, 4, algo="lora", dora_wd=True, bypass_mode=True, preset="full")
    network.apply_to()
    (module,) = network.loras
    nn.init.normal_(module.lora_up.weight)  # a non-zero delta, so that the magnitude could matter
    layer(torch.randn(2, 16)).sum().backward()
    assert module.wd and module.dora_scale.grad is None
    network.restore()


# -- LYC103 / LYC107: LoKr full-matrix mode and defaults ------------------------------------------------


def _lokr(dim, alpha, factor, **kwargs):
    network = create_lycoris(nn.Linear(64, 64), 1.0, dim, alpha, algo="lokr", factor=factor, **kwargs)
    (module,) = network.loras
    return module


def test_lokr_w2_is_full_when_dim_reaches_half_its_larger_side():
    # 64 = 2 x 32 with factor 2: w2 is 32x32, full from dim 16 on
    assert _lokr(16, 1, 2).use_w2 and not _lokr(15, 1, 2).use_w2


def test_lokr_all_full_ignores_linear_alpha():
    assert _lokr(10000, 1, 4).scale == 1.0
    assert _lokr(4, 1, 4, full_matrix=True).scale == 1.0
    assert _lokr(4, 1, 4).scale == 0.25  # decomposed: alpha / dim


def _lokr_outputs_twice(bypass_mode):
    torch.manual_seed(0)
    layer = nn.Linear(16, 16)
    network = create_lycoris(layer, 1.0, 4, 4, algo="lokr", rank_dropout=0.9, use_scalar=True, bypass_mode=bypass_mode)
    network.apply_to()
    network.train()
    with torch.no_grad():
        network.loras[0].scalar.fill_(1.0)  # a non-zero delta
        x = torch.randn(2, 16)
        outputs = layer(x), layer(x)
    network.restore()
    return outputs


def test_lokr_rank_dropout_acts_in_rebuild_and_is_ignored_in_bypass():
    # (LYC110; the CUDA crash itself is in the rebuild path: the mask is torch.rand(...) on the CPU)
    first, second = _lokr_outputs_twice(bypass_mode=False)
    assert not torch.equal(first, second)
    first, second = _lokr_outputs_twice(bypass_mode=True)
    assert torch.equal(first, second)


def test_wd_on_output_defaults_to_true():
    assert _lokr(4, 1, 4, dora_wd=True).wd_on_out is True


# -- LYC205: class names of a real model family -------------------------------------------------------------


def test_generic_class_names_match_nothing_in_a_diffusers_flux2_transformer():
    diffusers = pytest.importorskip("diffusers")
    model = diffusers.Flux2Transformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=8, timestep_guidance_channels=16, mlp_ratio=2.0,
        axes_dims_rope=[4, 4, 4, 4], guidance_embeds=False,
    )
    LycorisNetwork.apply_preset({"target_module": ["Attention", "FeedForward"]})
    assert create_lycoris(model, 1.0, 4, 1, algo="lora").loras == []
    reset_preset_state()
    LycorisNetwork.apply_preset({"target_module": ["Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention"]})
    assert len(create_lycoris(model, 1.0, 4, 1, algo="lora").loras) > 0
    # the shipped family index (read by LYC205) lists exactly the classes of the real model
    index = Path(__file__).resolve().parent.parent / "lyco_lint" / "data" / "family_modules.json"
    classes = set(json.loads(index.read_text(encoding="utf-8"))["families"]["flux2"]["classes"])
    assert {type(module).__name__ for module in model.modules()} == classes


# -- LYC115: merge_to() applies the LoKr / LoHa scale twice; LYC317: alpha 0 means alpha = dim ----------------


def _merge_and_apply_effects(algo: str, dim: int, alpha: float, tmp_path) -> tuple[float, float, float]:
    """(scale, |Δ output| with apply_to, |Δ output| after create_lycoris_from_weights + merge_to) on one Linear."""
    from lycoris import create_lycoris_from_weights
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64))
    frozen = {key: value.clone() for key, value in model.state_dict().items()}
    x = torch.randn(3, 64)
    base = model(x).detach()
    LycorisNetwork.apply_preset({"target_module": ["Linear"]})
    network = create_lycoris(model, 1.0, dim, alpha, algo=algo)
    network.apply_to()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.1)
    applied = model(x).detach()
    path = tmp_path / f"{algo}.safetensors"
    save_file({key: value.contiguous() for key, value in network.state_dict().items()}, str(path))
    network.restore()
    merged_model = nn.Sequential(nn.Linear(64, 64))
    merged_model.load_state_dict(frozen)
    loaded, _ = create_lycoris_from_weights(1.0, str(path), merged_model)
    loaded.merge_to()
    merged = merged_model(x).detach()
    return float(network.loras[0].scale), float((applied - base).norm()), float((merged - base).norm())


@pytest.mark.parametrize("algo", ["lokr", "loha"])
def test_merge_to_applies_the_lokr_and_loha_scale_twice(algo, tmp_path):
    """LYC115 (and LYC607): at dim 2 / alpha 1 (w2 decomposed on a 64x64 layer) the merged model shows scale × the
    trained adapter's effect, i.e. half of it; apply_to() applies the scale once."""
    scale, applied, merged = _merge_and_apply_effects(algo, 2, 1, tmp_path)
    assert scale == 0.5 and applied > 0
    assert merged == pytest.approx(scale * applied, rel=1e-3)


def test_merge_to_is_exact_for_lora_and_for_scale_1(tmp_path):
    scale, applied, merged = _merge_and_apply_effects("lora", 2, 1, tmp_path)
    assert scale == 0.5 and merged == pytest.approx(applied, rel=1e-3)
    scale, applied, merged = _merge_and_apply_effects("lokr", 4, 4, tmp_path)
    assert scale == 1.0 and merged == pytest.approx(applied, rel=1e-3)


@pytest.mark.parametrize("algo, dim", [("lora", 4), ("loha", 4), ("lokr", 1), ("tlora", 4)])
def test_alpha_zero_means_alpha_equals_dim(algo, dim):
    """LYC317: SimpleTuner's int(linear_alpha) turns 0.5 into 0, which LyCORIS reads as alpha = dim (scale 1).
    (LoKr at dim 1 keeps w2 decomposed on these 16-wide layers; at a higher dim its scale is 1 anyway.)"""
    def linear_scales(network):
        return {float(module.scale) for module in network.loras if isinstance(module.org_module[0], nn.Linear)}

    assert linear_scales(build(algo=algo, linear_dim=dim, linear_alpha=0)) == {1.0}
    assert linear_scales(build(algo=algo, linear_dim=dim, linear_alpha=0.5)) == {0.5 / dim}
