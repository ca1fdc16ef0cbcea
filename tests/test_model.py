"""`lyco lint --model` core: resolving a model's config, building it on the meta device, running LyCORIS on it,
and the rules that read the analysis (LYC207, LYC208, LYC401, LYC402).

Tiny real diffusers models (random weights, saved with save_pretrained) stand in for Flux 2, Flux and SDXL: every
count the meta analysis gives is compared with a real LyCORIS network built on the real tiny model (CPU, real
weights), the way SimpleTuner builds it.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
lycoris = pytest.importorskip("lycoris")

from lyco_lint.documents import Document, LintContext  # noqa: E402
from lyco_lint.engine import Options, lint_document  # noqa: E402
from lyco_lint.meta_model.analyse import AnalysisError, analyse, analyse_spec  # noqa: E402
from lyco_lint.meta_model.build import build_meta_model, model_class  # noqa: E402
from lyco_lint.meta_model.patches import no_tlora_gc as _no_tlora_gc  # noqa: E402
from lyco_lint.meta_model.resolve import ModelError, resolve_model  # noqa: E402
from lyco_lint.plan import plan_as_dict, render_plan  # noqa: E402

from conftest import EXAMPLES, codes  # noqa: E402

FLUX2_TARGETS = ["Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention"]
TINY_FLUX2 = {
    "num_layers": 1, "num_single_layers": 1, "num_attention_heads": 2, "attention_head_dim": 16,
    "joint_attention_dim": 32, "guidance_embeds": False, "in_channels": 8, "axes_dims_rope": [4, 4, 4, 4],
    "timestep_guidance_channels": 16,
}
TINY_FLUX = {
    "patch_size": 1, "in_channels": 8, "num_layers": 1, "num_single_layers": 1, "attention_head_dim": 16,
    "num_attention_heads": 2, "joint_attention_dim": 32, "pooled_projection_dim": 16, "axes_dims_rope": [4, 6, 6],
}
TINY_SDXL = {
    "block_out_channels": [32, 64], "layers_per_block": 1, "sample_size": 16, "in_channels": 4, "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"], "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "attention_head_dim": [2, 4], "use_linear_projection": True, "addition_embed_type": "text_time",
    "addition_time_embed_dim": 8, "transformer_layers_per_block": [1, 1], "projection_class_embeddings_input_dim": 56,
    "cross_attention_dim": 32, "norm_num_groups": 16,
}
# family -> (class, config, component folder, target classes of its attention and MLP blocks)
TINY = {
    "flux2": ("Flux2Transformer2DModel", TINY_FLUX2, "transformer", FLUX2_TARGETS),
    "flux": ("FluxTransformer2DModel", TINY_FLUX, "transformer", ["FluxAttention", "FeedForward"]),
    "sdxl": ("UNet2DConditionModel", TINY_SDXL, "unet", ["Transformer2DModel", "ResnetBlock2D"]),
}
ALGO_CONFIGS = {
    "lokr": {"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 4, "full_matrix": True, "bypass_mode": True},
    "lora": {"algo": "lora", "multiplier": 1.0, "linear_dim": 8, "linear_alpha": 4},
    "loha": {"algo": "loha", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 2},
    "tlora": {"algo": "tlora", "multiplier": 1.0, "linear_dim": 8, "linear_alpha": 4, "tlora_min_rank": 1, "tlora_alpha": 1.0},
}
from lyco_lint.knowledge.lycoris import PRESET_DEFAULTS as LYCORIS_DEFAULTS  # noqa: E402


def build_models(root: Path) -> dict[str, tuple[Path, Any]]:
    """family -> (pipeline folder, the TINY model with its random weights): the model saved with save_pretrained in
    its component folder, and a model_index.json that names it beside a VAE (whose folder nothing here reads)."""
    built = {}
    for family, (class_name, config, component, _targets) in TINY.items():
        torch.manual_seed(0)
        model = getattr(diffusers, class_name)(**config)
        folder = root / family
        model.save_pretrained(folder / component)
        (folder / "model_index.json").write_text(
            json.dumps({"_class_name": "SomePipeline", component: ["diffusers", class_name], "vae": ["diffusers", "AutoencoderKL"]})
        )
        built[family] = (folder, model)
    return built


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """family -> pipeline folder (model_index.json + component folder with config and real random weights)."""
    return {family: folder for family, (folder, _model) in build_models(tmp_path_factory.mktemp("models")).items()}


def real_network(model, config):
    """A real LyCORIS network, built the way SimpleTuner builds it (class state reset first)."""
    from lycoris import LycorisNetwork, create_lycoris

    for name, value in LYCORIS_DEFAULTS.items():
        setattr(LycorisNetwork, name, copy.deepcopy(value))
    config = dict(config)
    preset = config.pop("apply_preset", None)
    for key in ("tlora_min_rank", "tlora_alpha"):
        config.pop(key, None)
    if preset:
        LycorisNetwork.apply_preset(preset)
    multiplier, dim, alpha = (int(config.pop(key, default)) for key, default in (("multiplier", 1), ("linear_dim", 4), ("linear_alpha", 1)))
    with _no_tlora_gc():  # T-LoRA's per-module gc.collect() costs ~0.3 s each in this process; counts are unaffected
        return create_lycoris(model, multiplier, dim, alpha, **config)


def real_model(folder, family):
    class_name, _config, component, _targets = TINY[family]
    return getattr(diffusers, class_name).from_pretrained(folder / component)


def meta_analysis(folder, family, config):
    source = resolve_model(str(folder), family, None)
    return analyse(build_meta_model(source), config, source=source)


def assert_same_as_lycoris(analysis, network):
    real = {lora.lora_name: sum(p.numel() for p in lora.parameters()) for lora in network.loras}
    assert analysis.adapted_count == len(network.loras) > 0
    assert {m.lora_name: m.trainable_params for m in analysis.modules} == real
    assert analysis.trainable_params == sum(real.values())
    assert "?" not in {m.target for m in analysis.modules}
    assert not any("disagrees" in message for message in analysis.messages)


# -- the analysis equals a real LyCORIS network -----------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(TINY))
@pytest.mark.parametrize("algo", sorted(ALGO_CONFIGS))
def test_meta_analysis_counts_equal_a_real_lycoris_network(tiny, family, algo):
    targets = TINY[family][3]
    config = {**ALGO_CONFIGS[algo], "apply_preset": {"target_module": targets}}
    analysis = meta_analysis(tiny[family], family, config)
    model = real_model(tiny[family], family)
    assert_same_as_lycoris(analysis, real_network(model, config))
    assert analysis.base_params == sum(p.numel() for p in model.parameters())
    assert analysis.classes == {type(m).__name__ for _n, m in model.named_modules()}
    assert {m.target for m in analysis.modules} <= set(targets)
    assert {m.algo for m in analysis.modules} == {algo}


@pytest.mark.parametrize(
    "config",
    [
        # LyCORIS's default targets: every Linear and Conv, k=3 convs included (conv LoKr reads a shape with .item())
        {"algo": "lokr", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 1, "factor": -1},
        {"algo": "loha", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 1, "use_tucker": True},
        {"algo": "tlora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 1},
        # DoRA and `full` copy the original weight to the CPU at construction
        {"algo": "lora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 1, "dora_wd": True},
        {"algo": "lokr", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 1, "dora_wd": True, "wd_on_output": False},
        {"algo": "full", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 1, "apply_preset": {"target_module": ["Transformer2DModel"]}},
        {"algo": "lora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 1, "train_norm": True,
         "apply_preset": {"target_module": ["ResnetBlock2D"], "enable_conv": False}},
    ],
    ids=["lokr-conv", "loha-tucker", "tlora-conv", "lora-dora", "lokr-dora", "full", "train-norm"],
)
def test_meta_device_handles_what_lycoris_computes_from_weights(tiny, config):
    analysis = meta_analysis(tiny["sdxl"], "sdxl", config)
    assert_same_as_lycoris(analysis, real_network(real_model(tiny["sdxl"], "sdxl"), config))


@pytest.mark.parametrize(
    "preset",
    [
        # name_algo_map inside a class subtree (shadowed), and by name outside it
        {"target_module": ["Flux2Attention"], "name_algo_map": {"transformer_blocks.0.attn.to_q": {"dim": 4}, "x_embedder": {"algo": "loha"}}},
        # nested module_algo_map class inside a targeted block
        {"target_module": ["Flux2TransformerBlock"], "module_algo_map": {"Flux2FeedForward": {"algo": "loha", "dim": 2}}},
        # exclusion, fnmatch names, name-only targeting
        {"target_module": [], "target_name": ["*attn.to_*"], "use_fnmatch": True, "exclude_name": ["single_*"]},
        {"target_module": ["Flux2ParallelSelfAttention"], "target_name": ["transformer_blocks\\.0\\.ff"], "exclude_name": [".*to_out"]},
    ],
    ids=["name-map", "nested-class", "fnmatch", "regex"],
)
def test_replayed_walk_chooses_exactly_the_layers_lycoris_adapts(tiny, preset):
    config = {"algo": "lora", "multiplier": 1.0, "linear_dim": 8, "linear_alpha": 4, "apply_preset": preset}
    analysis = meta_analysis(tiny["flux2"], "flux2", config)
    assert_same_as_lycoris(analysis, real_network(real_model(tiny["flux2"], "flux2"), config))


def test_effective_settings_come_from_lycoris(tiny):
    config = json.loads((EXAMPLES / "flux2-lokr.lycoris.json").read_text())
    analysis = meta_analysis(tiny["flux2"], "flux2", config)
    by_target = {}
    for module in analysis.modules:
        by_target.setdefault(module.target, set()).add((module.algo, module.factor, module.full_matrix, module.bypass, module.scale))
    # module_algo_map factors, all-full Kronecker blocks (alpha forced to dim: scale 1), bypass from the top level
    assert by_target == {
        "Flux2Attention": {("lokr", 2, True, True, 1.0)},
        "Flux2FeedForward": {("lokr", 4, True, True, 1.0)},
        "Flux2ParallelSelfAttention": {("lokr", 2, True, True, 1.0)},
    }
    q = next(m for m in analysis.modules if m.path == "transformer_blocks.0.attn.to_q")
    assert q.options_from == "module_algo_map.Flux2Attention" and q.via == "class"
    assert dict(q.parameter_shapes) == {"lokr_w1": (2, 2), "lokr_w2": (16, 16)}  # 32x32 layer, factor 2


def test_flux2_klein_4b_seed_lokr_trains_761m_parameters_without_allocating_them(tmp_path):
    klein_4b = {
        "_class_name": "Flux2Transformer2DModel", "num_layers": 5, "num_single_layers": 20, "num_attention_heads": 24,
        "attention_head_dim": 128, "joint_attention_dim": 7680, "guidance_embeds": False, "in_channels": 128,
    }
    (tmp_path / "config.json").write_text(json.dumps(klein_4b))
    config = json.loads((EXAMPLES / "flux2-lokr.lycoris.json").read_text())
    analysis = analyse_spec(str(tmp_path), config)
    assert analysis.adapted_count == 100  # 5 x 8 attention + 5 x 2 x 2 feed-forward + 20 x 2 single-block layers
    assert analysis.trainable_params == 760_873_600
    assert analysis.base_params == 3_875_544_576
    q = next(m for m in analysis.modules if m.path == "transformer_blocks.0.attn.to_q")
    assert q.trainable_params == 2 * 2 + 1536 * 1536  # 3072x3072, factor 2, both blocks full (reference §9.2)
    # measured on the real forward: bypass is cheaper than rebuild for this config, so LYC401 stays silent
    assert analysis.estimate.bypass_flops < analysis.estimate.rebuild_flops
    assert not analysis.estimate.rebuild_cheaper


def test_bypass_estimate_counts_lycoris_forward_flops(tiny):
    config = {"algo": "lora", "multiplier": 1.0, "linear_dim": 64, "linear_alpha": 1, "bypass_mode": True,
              "apply_preset": {"target_module": ["Flux2Attention"]}}
    analysis = meta_analysis(tiny["flux2"], "flux2", config)
    estimate = analysis.estimate
    q = next(layer for layer in estimate.layers if layer.lora_name.endswith("transformer_blocks_0_attn_to_q"))
    # 32x32 Linear, rank 64: bypass = down + up matmuls (2*64*(32+32) per token) plus a few element-wise ops;
    # rebuild = one extra 32x32 matmul per token plus ΔW = up @ down once per forward, spread over 4096 tokens
    assert q.bypass_flops == pytest.approx(2 * 64 * 64, rel=0.05)
    assert q.rebuild_flops == pytest.approx(2 * 32 * 32 + 2 * 32 * 32 * 64 / 4096, rel=0.05)
    assert estimate.rebuild_cheaper


# -- the meta model -----------------------------------------------------------------------------------------------


def test_a_folder_with_only_config_json_works_and_no_weight_file_is_opened(tiny, tmp_path):
    only_config = tmp_path / "only-config"
    only_config.mkdir()
    shutil.copy(tiny["flux2"] / "transformer" / "config.json", only_config / "config.json")
    # a weight file that cannot be read: any attempt to load it would fail the analysis
    with_weights = tmp_path / "with-weights"
    with_weights.mkdir()
    shutil.copy(only_config / "config.json", with_weights / "config.json")
    (with_weights / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    opened = []
    watching = [True]

    def audit(event, args):
        if watching[0] and event == "open" and isinstance(args[0], str) and str(tmp_path) in args[0]:
            opened.append(args[0])

    sys.addaudithook(audit)
    try:
        config = {**ALGO_CONFIGS["lokr"], "apply_preset": {"target_module": FLUX2_TARGETS}}
        first = analyse_spec(str(only_config), config)
        second = analyse_spec(str(with_weights), config)
    finally:
        watching[0] = False
    assert first.trainable_params == second.trainable_params > 0
    assert opened and all(path.endswith("config.json") for path in opened)
    model = build_meta_model(resolve_model(str(only_config)))
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_the_model_file_import_gives_diffusers_own_class():
    assert model_class("Flux2Transformer2DModel") is diffusers.Flux2Transformer2DModel
    assert model_class("UNet2DConditionModel") is diffusers.UNet2DConditionModel
    import diffusers.models.transformers as transformers_package  # the real package still imports afterwards

    assert transformers_package.FluxTransformer2DModel is diffusers.FluxTransformer2DModel


def test_analysis_prints_nothing_and_leaves_lycoris_class_state_alone(tiny, capsys):
    from lycoris import LycorisNetwork

    LycorisNetwork.apply_preset({"target_module": ["Sentinel"], "lora_prefix": "caller"})
    try:
        config = {"algo": "loha", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 1, "dropout": 0.1,
                  "apply_preset": {"target_module": ["Flux2Attention", "NoSuchClass"]}}
        analysis = meta_analysis(tiny["flux2"], "flux2", config)
        assert LycorisNetwork.TARGET_REPLACE_MODULE == ["Sentinel"] and LycorisNetwork.LORA_PREFIX == "caller"
    finally:
        for name, value in LYCORIS_DEFAULTS.items():
            setattr(LycorisNetwork, name, copy.deepcopy(value))
    assert capsys.readouterr().out == ""
    assert analysis.unmatched_classes == ("NoSuchClass",)
    assert any("NoSuchClass" in message for message in analysis.messages)  # LyCORIS's own warning, kept
    assert any("dropout" in message for message in analysis.messages)  # LoHa's print() warning, kept


def test_a_config_lycoris_rejects_is_an_analysis_error(tiny):
    with pytest.raises(AnalysisError, match="Unknown preset key"):
        meta_analysis(tiny["flux2"], "flux2", {"algo": "lora", "multiplier": 1, "linear_dim": 4, "linear_alpha": 1,
                                                "apply_preset": {"target_modules": ["Flux2Attention"]}})
    with pytest.raises(AnalysisError, match="bypass mode is not supported in Full algo"):
        meta_analysis(tiny["flux2"], "flux2", {"algo": "full", "multiplier": 1, "linear_dim": 4, "linear_alpha": 1, "bypass_mode": True})


# -- resolving the model ---------------------------------------------------------------------------------------------


def test_pipeline_folders_resolve_to_the_trained_component(tiny):
    assert resolve_model(str(tiny["flux2"]), "flux2").class_name == "Flux2Transformer2DModel"
    assert resolve_model(str(tiny["sdxl"]), None).subfolder == "unet"  # model_index.json names the component
    direct = resolve_model(str(tiny["sdxl"] / "unet"))
    assert direct.class_name == "UNet2DConditionModel" and direct.config_path.name == "config.json"
    auto = resolve_model("auto", "flux2", {"pretrained_model_name_or_path": str(tiny["flux2"])})
    assert auto.config_path == tiny["flux2"] / "transformer" / "config.json"


def test_model_auto_without_a_base_model_path_says_what_to_set():
    with pytest.raises(ModelError, match="pretrained_model_name_or_path"):
        resolve_model("auto", "flux2", {"model_family": "flux2"})


def test_a_folder_that_is_not_a_diffusers_model_is_explained(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelError, match="neither model_index.json"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen3"}))
    with pytest.raises(ModelError, match="_class_name"):
        resolve_model(str(tmp_path))


def test_hub_id_without_network_or_cache_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ModelError) as error:
        resolve_model("black-forest-labs/FLUX.2-klein-4B", "flux2")
    message = str(error.value)
    assert "not in the local Hugging Face cache" in message and "HF_HUB_OFFLINE" in message
    assert "hf download black-forest-labs/FLUX.2-klein-4B transformer/config.json" in message
    assert "local folder" in message


def test_hub_id_with_an_unreachable_hub_fails_fast_with_a_clear_error(tmp_path, monkeypatch):
    import time

    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    start = time.perf_counter()
    with pytest.raises(ModelError, match="cannot reach the Hugging Face Hub") as error:
        resolve_model("acme/tiny-flux2", "flux2")
    assert time.perf_counter() - start < 10  # no retry loop
    assert "hf download acme/tiny-flux2 transformer/config.json" in str(error.value)


def test_hub_id_is_read_from_the_local_cache_first(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--acme--tiny-flux2"
    snapshot = repo / "snapshots" / ("a" * 40)
    (snapshot / "transformer").mkdir(parents=True)
    shutil.copy(tiny["flux2"] / "transformer" / "config.json", snapshot / "transformer" / "config.json")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    source = resolve_model("acme/tiny-flux2", "flux2")
    assert source.class_name == "Flux2Transformer2DModel" and source.repo_id == "acme/tiny-flux2"
    assert source.origin == "hub:acme/tiny-flux2/transformer/config.json"


def test_a_path_that_is_neither_a_folder_nor_a_hub_id_is_explained():
    with pytest.raises(ModelError, match="no such file or folder"):
        resolve_model("./missing/model/folder")


# -- rules -------------------------------------------------------------------------------------------------------


def lint_with_model(tmp_path, tiny, config, family="flux2", training=None, select=("LYC207", "LYC208", "LYC401", "LYC402")):
    path = tmp_path / "config.lycoris.json"
    path.write_text(json.dumps(config, indent=2))
    document = Document.read(path, path.name)
    document.context = LintContext(family=family, training=training)
    document.context.model = meta_analysis(tiny[family], family, document.value)
    return [finding.as_dict() for finding in lint_document(document, Options(select=list(select)))]


def test_lyc207_reports_a_config_that_adapts_nothing(tmp_path, tiny):
    config = {"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1,
              "apply_preset": {"target_module": ["Attention", "FeedForward"]}}
    findings = lint_with_model(tmp_path, tiny, config)
    assert codes(findings) == ["LYC207"]
    assert findings[0]["severity"] == "error" and findings[0]["pointer"] == "/apply_preset/target_module"
    assert "Flux2Attention" in findings[0]["message"] and "empty parameter list" in findings[0]["message"]


def test_lyc207_explains_target_names_that_match_no_path(tmp_path, tiny):
    config = {"algo": "lora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 1,
              "apply_preset": {"target_module": [], "target_name": ["to_q"]}}
    findings = lint_with_model(tmp_path, tiny, config)
    assert codes(findings) == ["LYC207"] and findings[0]["pointer"] == "/apply_preset/target_name"
    assert "'.*to_q'" in findings[0]["message"]


def test_lyc207_is_a_warning_for_a_family_simpletuner_builds_differently(tmp_path, tiny):
    # SimpleTuner's own Flux copy uses diffusers' generic Attention, diffusers' Flux has FluxAttention
    config = {"algo": "lora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 1,
              "apply_preset": {"target_module": ["Attention"]}}
    findings = lint_with_model(tmp_path, tiny, config, family="flux")
    assert codes(findings) == ["LYC207"] and findings[0]["severity"] == "warning"
    assert "SimpleTuner trains its own copy of the flux model" in findings[0]["message"]
    assert "FluxAttention" in findings[0]["message"]


def test_lyc207_is_silent_when_layers_are_adapted(tmp_path, tiny):
    config = {"algo": "lora", "multiplier": 1.0, "linear_dim": 1, "linear_alpha": 1,
              "apply_preset": {"target_module": ["Flux2Attention"]}}
    assert lint_with_model(tmp_path, tiny, config) == []


def test_lyc208_reports_a_name_map_entry_inside_a_class_subtree(tmp_path, tiny):
    config = {"algo": "lora", "multiplier": 1.0, "linear_dim": 1, "linear_alpha": 1,
              "apply_preset": {"target_module": ["Flux2Attention"],
                               "name_algo_map": {"transformer_blocks.0.attn.to_q": {"algo": "lora", "dim": 8}}}}
    findings = lint_with_model(tmp_path, tiny, config)
    assert codes(findings) == ["LYC208"]
    assert findings[0]["pointer"] == "/apply_preset/name_algo_map/transformer_blocks.0.attn.to_q"
    assert "Flux2Attention" in findings[0]["message"]
    # pinned LyCORIS 4.1.3 behaviour: the layer really gets the global rank, not the entry's
    network = real_network(real_model(tiny["flux2"], "flux2"), config)
    to_q = next(lora for lora in network.loras if lora.lora_name.endswith("transformer_blocks_0_attn_to_q"))
    assert to_q.lora_dim == 1


def test_lyc208_is_silent_when_the_layer_is_reached_by_name(tmp_path, tiny):
    config = {"algo": "lora", "multiplier": 1.0, "linear_dim": 1, "linear_alpha": 1,
              "apply_preset": {"target_module": [], "target_name": [".*\\.attn\\.(to_q|to_k|to_v|to_out\\.0)$"],
                               "name_algo_map": {"transformer_blocks.0.attn.to_q": {"algo": "lora", "dim": 8}}}}
    assert lint_with_model(tmp_path, tiny, config) == []
    network = real_network(real_model(tiny["flux2"], "flux2"), config)
    to_q = next(lora for lora in network.loras if lora.lora_name.endswith("transformer_blocks_0_attn_to_q"))
    assert to_q.lora_dim == 8


HIGH_RANK_BYPASS = {"algo": "lora", "multiplier": 1.0, "linear_dim": 64, "linear_alpha": 1, "bypass_mode": True,
                    "apply_preset": {"target_module": ["Flux2Attention"]}}


def test_lyc401_reports_bypass_that_costs_more_than_rebuild(tmp_path, tiny):
    findings = lint_with_model(tmp_path, tiny, HIGH_RANK_BYPASS, select=("LYC401",))
    assert codes(findings) == ["LYC401"]
    assert findings[0]["severity"] == "info" and findings[0]["pointer"] == "/bypass_mode"
    assert "GFLOP" in findings[0]["message"] and "4096 tokens" in findings[0]["message"]
    assert findings[0]["message"].startswith("FLOP estimate:") and "lyco train times both paths per layer" in findings[0]["message"]


def test_lyc401_is_silent_for_cheap_bypass_and_for_quantized_base_models(tmp_path, tiny):
    seed = json.loads((EXAMPLES / "flux2-lokr.lycoris.json").read_text())
    assert lint_with_model(tmp_path, tiny, seed, select=("LYC401",)) == []
    training_path = tmp_path / "config.json"
    training_path.write_text(json.dumps({"model_family": "flux2", "base_model_precision": "int8-torchao"}))
    training = Document.read(training_path, "config.json")
    assert lint_with_model(tmp_path, tiny, HIGH_RANK_BYPASS, training=training, select=("LYC401",)) == []


def test_lyc402_reports_an_adapter_above_a_tenth_of_the_model(tmp_path, tiny):
    seed = json.loads((EXAMPLES / "flux2-lokr.lycoris.json").read_text())
    findings = lint_with_model(tmp_path, tiny, seed, select=("LYC402",))
    assert codes(findings) == ["LYC402"]
    analysis = meta_analysis(tiny["flux2"], "flux2", seed)
    assert f"{analysis.trainable_params:,}" in findings[0]["message"]
    assert f"{analysis.base_params:,}" in findings[0]["message"]
    assert findings[0]["pointer"] == "/factor"


def test_lyc402_is_silent_for_a_small_adapter(tmp_path, tiny):
    config = {"algo": "lora", "multiplier": 1.0, "linear_dim": 1, "linear_alpha": 1,
              "apply_preset": {"target_module": ["Flux2Attention"]}}
    assert lint_with_model(tmp_path, tiny, config, select=("LYC402",)) == []


def test_model_rules_are_silent_without_a_model(lint):
    config = {"algo": "lora", "multiplier": 1.0, "linear_dim": 64, "linear_alpha": 1, "bypass_mode": True,
              "apply_preset": {"target_module": ["NoSuchClass"]}}
    assert lint(config, select=["LYC207", "LYC208", "LYC401", "LYC402"]) == []


# -- plan ---------------------------------------------------------------------------------------------------------


def test_plan_groups_layers_by_target_with_sizes(tiny):
    from rich.console import Console

    seed = json.loads((EXAMPLES / "flux2-lokr.lycoris.json").read_text())
    analysis = meta_analysis(tiny["flux2"], "flux2", seed)
    plan = plan_as_dict(analysis)
    assert plan["adapted_modules"] == analysis.adapted_count == sum(group["modules"] for group in plan["groups"])
    assert plan["trainable_params"] == sum(group["trainable_params"] for group in plan["groups"])
    assert plan["base_params"] == analysis.base_params
    assert [(g["target"], g["factor"], g["full_matrix"], g["bypass"]) for g in plan["groups"]] == [
        ("Flux2Attention", 2, True, True), ("Flux2FeedForward", 4, True, True), ("Flux2ParallelSelfAttention", 2, True, True),
    ]
    assert all(g["training_bytes"] == 16 * g["trainable_params"] for g in plan["groups"])
    json.dumps(plan)  # plain data
    console = Console(record=True, width=160)
    render_plan(analysis, console)
    text = console.export_text()
    assert "Flux2ParallelSelfAttention" in text and "Total" in text and f"{analysis.base_params:,}" in text


@pytest.fixture(scope="module")
def klein_4b(tmp_path_factory):
    folder = tmp_path_factory.mktemp("klein-4b")
    (folder / "config.json").write_text(json.dumps({
        "_class_name": "Flux2Transformer2DModel", "num_layers": 5, "num_single_layers": 20, "num_attention_heads": 24,
        "attention_head_dim": 128, "joint_attention_dim": 7680, "guidance_embeds": False, "in_channels": 128,
    }))
    return folder


@pytest.mark.parametrize("code", ["LYC207", "LYC208", "LYC401", "LYC402"])
def test_rule_docs_examples_behave_as_documented_on_flux2_klein_4b(tmp_path, klein_4b, code):
    from lyco_lint.rules import find_rule

    entry = find_rule(code)
    for text, expected in ((entry.example, [code]), (entry.fixed, [])):
        path = tmp_path / "doc.lycoris.json"
        path.write_text(text)
        document = Document.read(path, path.name)
        document.context = LintContext(family="flux2")
        document.context.model = analyse_spec(str(klein_4b), document.value)
        assert codes(finding.as_dict() for finding in lint_document(document, Options(select=[code]))) == expected, text


# -- the command line: lyco lint --model, lyco plan ------------------------------------------------------------


def cli(capsys, *argv):
    from lyco_lint.cli import main

    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_lint_with_model_checks_targets_against_the_real_model(tiny, tmp_path, capsys):
    config = tmp_path / "lycoris.json"
    config.write_text(json.dumps({**ALGO_CONFIGS["lora"], "apply_preset": {"target_module": ["Attention", "FeedForward"]}}))
    status, out, _ = cli(capsys, "lint", "--format", "json", "--model", str(tiny["flux2"] / "transformer"), str(config))
    findings = json.loads(out)
    assert status == 1 and {"LYC205", "LYC207"} <= {f["code"] for f in findings}
    attention = next(f for f in findings if f["code"] == "LYC205" and "'Attention'" in f["message"])
    assert "Flux2Attention" in attention["message"] and "Flux2Transformer2DModel" in attention["message"]
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({**ALGO_CONFIGS["lora"], "apply_preset": {"target_module": FLUX2_TARGETS}}))
    status, out, _ = cli(capsys, "lint", "--format", "json", "--model", str(tiny["flux2"]), "--family", "flux2", str(fixed))
    assert status == 0 and [f for f in json.loads(out) if f["severity"] == "error"] == []


def test_lint_with_model_auto_follows_the_training_config(tiny, tmp_path, capsys):
    (tmp_path / "lycoris.json").write_text(json.dumps({**ALGO_CONFIGS["lora"], "apply_preset": {"target_module": ["Attention"]}}))
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "lora", "model_family": "flux2", "lora_type": "lycoris", "lycoris_config": "lycoris.json",
        "pretrained_model_name_or_path": str(tiny["flux2"]), "output_dir": "out", "optimizer": "adamw_bf16",
        "data_backend_config": "multidatabackend.json",
    }))
    status, out, _ = cli(capsys, "lint", "--format", "json", "--model", "auto", str(tmp_path / "config.json"))
    codes_found = {f["code"] for f in json.loads(out) if f["file"].endswith("lycoris.json")}
    assert status == 1 and {"LYC205", "LYC207"} <= codes_found


def test_lint_with_an_unreachable_hub_model_is_one_finding_not_a_crash(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    config = tmp_path / "lycoris.json"
    config.write_text(json.dumps(ALGO_CONFIGS["lora"]))
    status, out, err = cli(capsys, "lint", "--format", "json", "--model", "some-org/some-model", str(config))
    findings = json.loads(out)
    assert status == 1 and [f["code"] for f in findings] == ["LYC210"] and "Traceback" not in err
    assert "some-org/some-model" in findings[0]["message"]


def test_lint_reports_a_config_lycoris_refuses_to_build(tiny, tmp_path, capsys):
    config = tmp_path / "lycoris.json"
    config.write_text(json.dumps({"algo": "full", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 1, "bypass_mode": True}))
    status, out, _ = cli(capsys, "lint", "--format", "json", "--model", str(tiny["flux2"]), "--family", "flux2", str(config))
    assert status == 1 and "LYC211" in {f["code"] for f in json.loads(out)}


def test_plan_json_counts_equal_a_real_lycoris_network(tiny, tmp_path, capsys):
    config = {**ALGO_CONFIGS["lokr"], "apply_preset": {"target_module": FLUX2_TARGETS}}
    path = tmp_path / "lycoris.json"
    path.write_text(json.dumps(config))
    status, out, _ = cli(capsys, "plan", "--format", "json", "--model", str(tiny["flux2"]), "--family", "flux2", str(path))
    plan = json.loads(out)
    network = real_network(real_model(tiny["flux2"], "flux2"), config)
    assert status == 0
    assert plan["adapted_modules"] == len(network.loras)
    assert plan["trainable_params"] == sum(p.numel() for lora in network.loras for p in lora.parameters())
    assert plan["base_params"] == sum(p.numel() for p in real_model(tiny["flux2"], "flux2").parameters())
    assert sum(group["modules"] for group in plan["groups"]) == plan["adapted_modules"]


def test_plan_text_is_a_table_and_a_bare_config_needs_a_model(tiny, tmp_path, capsys):
    path = tmp_path / "lycoris.json"
    path.write_text(json.dumps({**ALGO_CONFIGS["lora"], "apply_preset": {"target_module": FLUX2_TARGETS}}))
    status, out, _ = cli(capsys, "plan", "--model", str(tiny["flux2"]), "--family", "flux2", str(path))
    assert status == 0 and "Flux2Attention" in out and "Flux2Transformer2DModel" in out
    status, _, err = cli(capsys, "plan", str(path))
    assert status == 2 and "--model" in err
