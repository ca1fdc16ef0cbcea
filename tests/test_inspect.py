"""`lyco inspect` on adapters made with real LyCORIS networks on tiny real FLUX.2, FLUX.1 and SDXL models:
what the file holds equals what LyCORIS's own loader builds from it, the delta norms equal the deltas LyCORIS's
forward applies, ComfyUI's key map per family, diffusers' real load_lora_weights against lyco's prediction, the
fit against the model (--model, meta device) and LyCORIS's create_lycoris_from_weights run on the meta model."""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
pytest.importorskip("lycoris")
pytest.importorskip("numpy")
from safetensors.torch import load_file, save_file  # noqa: E402

from test_model import TINY  # noqa: E402
from test_model import build_models  # noqa: E402
from weights_fixtures import ALGOS, SEED_LOKR, lycoris_file, renamed, with_targets  # noqa: E402

from lyco_lint.cli import main  # noqa: E402
from lyco_lint.engine import Options, lint_paths  # noqa: E402
from lyco_lint.knowledge.diffusers_lora import LOADS, LOADS_NOTHING  # noqa: E402
from lyco_lint.weights.inspection import Inspection  # noqa: E402

FAMILY_ALGOS = [(family, algo) for family in ("flux2", "flux", "sdxl") for algo in ALGOS if not (family == "sdxl" and algo == "tlora")]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def adapters(models, tmp_path_factory):
    """(family, algo) -> file; 'seed' is the user document's Flux 2 LoKr config, '<family>-all' LyCORIS's default
    targets (every Linear and Conv), 'lokr-alpha' a decomposed LoKr with alpha 8 at rank 2."""
    root = tmp_path_factory.mktemp("adapters")
    made = {(f, a): lycoris_file(models[f][1], with_targets(f, ALGOS[a]), root / f"{f}-{a}.safetensors") for f, a in FAMILY_ALGOS}
    made["seed"] = lycoris_file(models["flux2"][1], SEED_LOKR, root / "seed.safetensors")
    for family in ("flux2", "flux", "sdxl"):
        made[f"{family}-all"] = lycoris_file(models[family][1], {**ALGOS["lokr"], "factor": -1}, root / f"{family}-all.safetensors")
    made["lokr-alpha"] = lycoris_file(
        models["flux2"][1], with_targets("flux2", {"algo": "lokr", "multiplier": 1.0, "linear_dim": 2, "linear_alpha": 8, "factor": 4}),
        root / "lokr-alpha.safetensors",
    )
    made["loha-alpha"] = lycoris_file(
        models["flux2"][1], with_targets("flux2", {"algo": "loha", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 2}),
        root / "loha-alpha.safetensors",
    )
    return made


def inspect_file(path, **options):
    result = lint_paths([str(path)], Options(**options))
    return result.documents[0], [finding.as_dict() for finding in result.findings]


def codes(found):
    return sorted({finding["code"] for finding in found})


def loaded_network(model, path):
    """LyCORIS's own loader on ``model`` (the network is built, not applied)."""
    from lycoris import create_lycoris_from_weights

    from lyco_lint.meta_model.patches import no_tlora_gc

    with no_tlora_gc():
        network, _ = create_lycoris_from_weights(1.0, str(path), model)
    return network


# -- what the file holds --------------------------------------------------------------------------------------


@pytest.mark.parametrize("family, algo", FAMILY_ALGOS)
def test_the_inventory_is_what_lycoris_loader_builds(models, adapters, family, algo):
    inspection, found = inspect_file(adapters[(family, algo)])
    network = loaded_network(models[family][1], adapters[(family, algo)])
    modules = inspection.adapter.modules
    assert {lora.lora_name for lora in network.loras} == set(modules)
    for lora in network.loras:
        module = modules[lora.lora_name]
        assert module.algorithm.module_class == type(lora).__name__
        assert module.lycoris_scale == pytest.approx(float(lora.scale)), lora.lora_name
        if algo != "lokr":
            assert module.rank == lora.lora_dim
        layer = lora.org_module[0]
        flat = (layer.weight.shape[0], math.prod(layer.weight.shape[1:]))
        assert tuple(module.weight_shape) in (tuple(layer.weight.shape), flat)
    assert inspection.family.name == family
    assert "LYC601" not in codes(found) and "LYC602" not in codes(found) and "LYC603" not in codes(found)
    assert inspection.adapter.params == sum(p.numel() for lora in network.loras for n, p in lora.state_dict().items() if n != "alpha" and not n.startswith("base_"))


@pytest.mark.parametrize("name", ["lokr", "lora", "loha", "dora", "lokr-alpha"])
def test_delta_norms_are_the_deltas_lycoris_forward_applies(models, adapters, name):
    path = adapters.get(("flux2", name)) or adapters[name]
    inspection, _ = inspect_file(path)
    model = copy.deepcopy(models["flux2"][1])
    network = loaded_network(model, path)
    network.apply_to()
    for lora in network.loras:
        if lora.wd:  # DoRA: the delta lyco measures is the low-rank part, before the magnitude renormalisation
            continue
        eye = torch.eye(lora.org_module[0].in_features)
        with torch.no_grad():  # the bypass forward's added term: delta @ x, without cancelling against W @ x
            delta = lora.bypass_forward_diff(eye).T
        assert inspection.health.modules[lora.lora_name].norm == pytest.approx(delta.norm().item(), rel=1e-4), lora.lora_name


def test_merge_to_bakes_the_scale_of_lokr_and_loha_twice(models, adapters):
    """The fact behind LYC607, measured with lycoris-lora itself: merged delta / apply_to delta = the scale (for LoHa
    and LoKr; 1 for LoRA)."""
    x = torch.randn(3, 32, generator=torch.Generator().manual_seed(1))
    for name, expected in (("lokr-alpha", 4.0), ("loha-alpha", 0.5), (("flux2", "lora"), 1.0)):
        path = adapters[name]
        base = models["flux2"][1]
        layer = lambda m: m.transformer_blocks[0].attn.to_q  # noqa: E731
        y0 = layer(base)(x)
        applied, merged = copy.deepcopy(base), copy.deepcopy(base)
        loaded_network(applied, path).apply_to()
        network = loaded_network(merged, path)
        network.merge_to()
        ratio = ((layer(merged)(x) - y0).norm() / (layer(applied)(x) - y0).norm()).item()
        module = Inspection.open(path, "x").adapter.modules["lycoris_transformer_blocks_0_attn_to_q"]
        assert module.merge_scale / module.lycoris_scale == pytest.approx(expected)
        assert ratio == pytest.approx(expected, rel=1e-2)  # float32 outputs: the delta is small against W @ x
    inspection, found = inspect_file(adapters["lokr-alpha"])
    squared = [f for f in found if f["code"] == "LYC607"]
    assert len(squared) == 1 and "scale 4, but LyCORIS 4.1.3's merge_to() bakes 16" in squared[0]["message"]
    assert "14 lokr modules" in squared[0]["message"]


def test_dead_modules_and_outliers(models, tmp_path):
    untrained = lycoris_file(models["flux2"][1], with_targets("flux2", ALGOS["lokr"]), tmp_path / "untrained.safetensors", moved=False)
    _, found = inspect_file(untrained)
    dead = [f for f in found if f["code"] == "LYC603"]
    assert len(dead) == 1 and "14 modules" in dead[0]["message"] and dead[0]["tensor"].endswith(".lokr_w2")

    tensors = load_file(str(lycoris_file(models["flux2"][1], with_targets("flux2", ALGOS["lora"]), tmp_path / "lora.safetensors")))
    key = "lycoris_transformer_blocks_0_ff_linear_in.lora_up.weight"
    tensors[key] = tensors[key] * 1000
    path = tmp_path / "outlier.safetensors"
    save_file(tensors, str(path))
    _, found = inspect_file(path)
    outliers = [f for f in found if f["code"] == "LYC609"]
    assert [f["tensor"] for f in outliers] == [key] and "x the median" in outliers[0]["message"]


def test_an_extreme_scale_is_reported(models, tmp_path):
    config = with_targets("flux2", {"algo": "lora", "multiplier": 1.0, "linear_dim": 2048, "linear_alpha": 1})
    _, found = inspect_file(lycoris_file(models["flux2"][1], config, tmp_path / "rank2048.safetensors"))
    extreme = [f for f in found if f["code"] == "LYC608"]
    assert len(extreme) == 1 and "scale 0.000488281" in extreme[0]["message"] and "14 modules" in extreme[0]["message"]


def test_incomplete_modules_are_lyc611_and_lycoris_fails_on_them(models, adapters, tmp_path):
    from lycoris import create_lycoris_from_weights

    tensors = load_file(str(adapters[("flux2", "lora")]))
    del tensors["lycoris_transformer_blocks_0_attn_to_q.lora_down.weight"]
    tensors = {k: v for k, v in tensors.items() if not k.startswith("lycoris_transformer_blocks_0_attn_to_k.") or k.endswith(".alpha")}
    path = tmp_path / "incomplete.safetensors"
    save_file(tensors, str(path))
    _, found = inspect_file(path)
    incomplete = sorted(f["message"] for f in found if f["code"] == "LYC611")
    assert len(incomplete) == 2 and all(f["severity"] == "error" for f in found if f["code"] == "LYC611")
    assert "lycoris_transformer_blocks_0_attn_to_k has no tensor that names a LyCORIS algorithm (only alpha)" in incomplete[0]
    assert "lycoris_transformer_blocks_0_attn_to_q is a lora module without lora_down.weight" in incomplete[1]
    with pytest.raises(AttributeError):
        create_lycoris_from_weights(1.0, str(path), copy.deepcopy(models["flux2"][1]))


# -- ComfyUI --------------------------------------------------------------------------------------------------


def comfy_unloaded(inspection):
    return {entry.name: entry.reason for entry in inspection.comfyui.not_loaded}


def test_comfyui_drops_flux2_embedders_and_modulation_of_a_default_target_file(adapters):
    inspection, found = inspect_file(adapters["flux2-all"])
    assert comfy_unloaded(inspection) == {
        "lycoris_time_guidance_embed_timestep_embedder_linear_1": "unmapped",
        "lycoris_time_guidance_embed_timestep_embedder_linear_2": "unmapped",
        "lycoris_double_stream_modulation_img_linear": "unmapped",
        "lycoris_double_stream_modulation_txt_linear": "unmapped",
        "lycoris_single_stream_modulation_linear": "unmapped",
    }
    assert len(inspection.comfyui.loaded) == len(inspection.adapter.modules) - 5
    warning = [f for f in found if f["code"] == "LYC605"]
    assert len(warning) == 1 and "15 keys of 5 modules" in warning[0]["message"] and warning[0]["severity"] == "warning"


@pytest.mark.parametrize("family", ["flux", "sdxl"])
def test_comfyui_maps_every_layer_of_a_default_target_flux1_and_sdxl_file(adapters, family):
    inspection, found = inspect_file(adapters[f"{family}-all"])
    assert inspection.comfyui.not_loaded == () and len(inspection.comfyui.loaded) == len(inspection.adapter.modules)
    assert "LYC605" not in codes(found)


@pytest.mark.parametrize("family, algo", FAMILY_ALGOS)
def test_comfyui_loads_every_algorithm_it_has_an_adapter_for(adapters, family, algo):
    inspection, found = inspect_file(adapters[(family, algo)])
    if algo == "tlora":
        assert set(comfy_unloaded(inspection).values()) == {"tensors"} and not inspection.comfyui.loaded
        assert {"LYC605", "LYC606"} <= set(codes(found))
    else:
        assert comfy_unloaded(inspection) == {} and "LYC605" not in codes(found)


def test_renamed_prefix_loads_in_comfyui_only_where_the_prefix_is_mapped(adapters, tmp_path):
    flux2 = renamed(adapters[("flux2", "lokr")], tmp_path / "flux2.safetensors", "lora_unet")
    sdxl = renamed(adapters[("sdxl", "lora")], tmp_path / "sdxl.safetensors", "lora_unet")
    inspection, found = inspect_file(flux2)
    assert inspection.adapter.prefix == "lora_unet" and inspection.comfyui.loaded == ()
    assert "ComfyUI's LoRA key map for flux2 has no such module name" in next(f["message"] for f in found if f["code"] == "LYC605")
    inspection, found = inspect_file(sdxl)
    assert inspection.comfyui.not_loaded == () and "LYC605" not in codes(found)


def test_comfyui_splits_a_fused_flux1_to_qkv_and_drops_to_added_qkv(models, tmp_path):
    """SimpleTuner's fuse_qkv_projections on FLUX.1: LyCORIS adapts the fused to_qkv and to_added_qkv and the unused
    to_q/to_k/to_v next to them (dead: the fused processors never call them)."""
    model = copy.deepcopy(models["flux"][1])
    model.fuse_qkv_projections()
    path = lycoris_file(model, {**ALGOS["lokr"], "factor": -1, "apply_preset": {"target_module": ["FluxAttention"]}}, tmp_path / "fused.safetensors")
    inspection, found = inspect_file(path, family="flux")
    verdict = inspection.comfyui
    assert set(verdict.split) == {"lycoris_transformer_blocks_0_attn_to_qkv", "lycoris_single_transformer_blocks_0_attn_to_qkv"}
    unloaded = comfy_unloaded(inspection)
    assert unloaded["lycoris_transformer_blocks_0_attn_to_added_qkv"] == "unmapped"
    assert {unloaded[f"lycoris_transformer_blocks_0_attn_to_{p}"] for p in "qkv"} == {"dropped"}


# -- diffusers --------------------------------------------------------------------------------------------------


def pipeline_for(family, folder):
    class_name, _config, component, _targets = TINY[family]
    model = getattr(diffusers, class_name).from_pretrained(folder / component)
    if family == "flux2":
        return diffusers.Flux2KleinPipeline(scheduler=None, vae=None, text_encoder=None, tokenizer=None, transformer=model), model
    if family == "flux":
        return diffusers.FluxPipeline(scheduler=None, vae=None, text_encoder=None, tokenizer=None, text_encoder_2=None,
                                      tokenizer_2=None, transformer=model), model
    return diffusers.StableDiffusionXLPipeline(vae=None, text_encoder=None, text_encoder_2=None, tokenizer=None,
                                               tokenizer_2=None, unet=model, scheduler=None), model


def adapted_layers(model):
    return sum(1 for _n, m in model.named_modules() if len(getattr(m, "lokr_w1", ())) or len(getattr(m, "lora_A", ())))


DIFFUSERS_CASES = [*FAMILY_ALGOS, "seed", "flux2-all", "lokr-alpha", ("flux2", "lokr", "lora_unet"), ("flux2", "lora", "lora_unet"),
                   ("sdxl", "lora", "lora_unet"), ("sdxl", "lokr", "lora_unet")]


@pytest.mark.parametrize("case", DIFFUSERS_CASES, ids=lambda case: "-".join(case) if isinstance(case, tuple) else case)
def test_diffusers_load_lora_weights_does_what_lyco_predicts(models, adapters, tmp_path, case):
    pytest.importorskip("peft")
    if isinstance(case, tuple) and len(case) == 3:
        family, algo, prefix = case
        path = renamed(adapters[(family, algo)], tmp_path / "renamed.safetensors", prefix)
    else:
        path = adapters[case]
        family = case[0] if isinstance(case, tuple) else ("flux2" if case in ("seed", "lokr-alpha") else case.split("-")[0])
    inspection, found = inspect_file(path, family=family)
    predicted = inspection.diffusers
    pipeline, model = pipeline_for(family, models[family][0])
    try:
        pipeline.load_lora_weights(str(path))
    except Exception as error:
        assert predicted.outcome == "refuses", f"diffusers raised {type(error).__name__}: {error}"
        said = predicted.message.split(":")[0]
        assert said in (type(error).__name__, "ValueError") and said == type(error).__name__, (said, error)
        assert any(f["code"] == "LYC610" for f in found)
        return
    assert predicted.outcome in (LOADS, LOADS_NOTHING), predicted
    assert adapted_layers(model) == predicted.modules
    if predicted.outcome == LOADS and family == "flux2":  # the loaded LoKr applies LyCORIS's delta
        x = torch.randn(3, 32, generator=torch.Generator().manual_seed(2))
        reference = copy.deepcopy(models["flux2"][1])
        loaded_network(reference, path).apply_to()
        layer = lambda m: m.transformer_blocks[0].attn.to_q  # noqa: E731
        assert torch.allclose(layer(model)(x), layer(reference)(x), atol=1e-6)


def test_diffusers_prediction_names_the_flux2_failures(adapters):
    messages = {name: inspect_file(adapters[name])[0].diffusers for name in ("seed", "flux2-all", ("flux2", "lora"), ("flux2", "dora"))}
    assert "decompose_factor" in messages["seed"].message and messages["seed"].outcome == "refuses"
    assert "not LyCORIS Flux2 LoKr keys" in messages["flux2-all"].message
    assert messages[("flux2", "lora")].outcome == LOADS_NOTHING
    assert messages[("flux2", "dora")].dropped and all(key.endswith(".dora_scale") for key in messages[("flux2", "dora")].dropped)


# -- against the model --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family, algo", FAMILY_ALGOS)
def test_the_file_fits_its_model_and_lycoris_loads_it_on_the_meta_model(models, adapters, family, algo):
    inspection, found = inspect_file(adapters[(family, algo)], model=str(models[family][0]))
    fit = inspection.fit
    real = loaded_network(models[family][1], adapters[(family, algo)])
    assert fit.mismatches == [] and len(fit.paths) == len(inspection.adapter.modules)
    assert fit.lycoris.error is None and fit.lycoris.modules == len(real.loras)
    assert fit.lycoris.algo_table == dict(real.algo_table)
    assert fit.lycoris.scales == pytest.approx({lora.lora_name: float(lora.scale) for lora in real.loras})
    assert sum(fit.classes.values()) == len(real.loras)
    assert "LYC604" not in codes(found)


def test_a_file_for_another_model_is_lyc604(models, adapters):
    _, found = inspect_file(adapters[("flux", "lokr")], model=str(models["flux2"][0]), family="flux2")
    mismatch = [f for f in found if f["code"] == "LYC604"]
    assert mismatch and mismatch[0]["severity"] == "error"
    assert any("no layer of Flux2Transformer2DModel is called" in f["message"] for f in mismatch)
    assert any("loads none of the" in f["message"] or "more like it" in f["message"] for f in mismatch)


def test_a_file_for_a_wider_model_is_a_shape_mismatch(models, adapters, tmp_path):
    class_name, config, component, _targets = TINY["flux2"]
    wider = getattr(diffusers, class_name)(**{**config, "attention_head_dim": 8})
    wider.save_pretrained(tmp_path / component)
    _, found = inspect_file(adapters[("flux2", "lora")], model=str(tmp_path / component))
    shapes = [f for f in found if f["code"] == "LYC604" and "has a weight of shape" in f["message"]]
    assert shapes and "more like it" in shapes[0]["message"]


def test_renamed_keys_fit_the_model_but_lycoris_looks_for_its_own_prefix(models, adapters, tmp_path):
    path = renamed(adapters[("flux2", "lokr")], tmp_path / "renamed.safetensors", "lora_unet")
    inspection, found = inspect_file(path, model=str(models["flux2"][0]))
    assert len(inspection.fit.paths) == 14 and inspection.fit.lycoris.modules == 0
    message = next(f["message"] for f in found if f["code"] == "LYC604")
    assert "loads none of the 14 modules" in message and "apply_preset({'lora_prefix': 'lora_unet'})" in message


# -- the command ----------------------------------------------------------------------------------------------------


def lyco(*args, cwd=None):
    script = Path(sys.executable).with_name("lyco")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "lyco_lint"]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd)


def test_lyco_inspect_text_summary_and_exit_codes(models, adapters, tmp_path):
    done = lyco("inspect", str(adapters["seed"]), "--model", str(models["flux2"][0]))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for words in ("14 under the prefix 'lycoris'", "Flux2Attention", "Flux2FeedForward", "ComfyUI 0.38.1: loads 14 of 14 modules",
                  "diffusers 0.42.1", "decompose_factor", "create_lycoris_from_weights on the meta model: 14 modules", "LYC610"):
        assert words in out, words
    tensors = load_file(str(adapters[("flux2", "lokr")]))
    tensors["lycoris_transformer_blocks_0_attn_to_q.lokr_w2"][0, 0] = math.nan
    broken = tmp_path / "nan.safetensors"
    save_file(tensors, str(broken))
    done = lyco("inspect", str(broken))
    assert done.returncode == 1 and "nan.safetensors::lycoris_transformer_blocks_0_attn_to_q.lokr_w2: LYC602 [error]" in done.stdout
    assert lyco("inspect", str(adapters["flux2-all"])).returncode == 0
    assert lyco("inspect", "--strict", str(adapters["flux2-all"])).returncode == 1  # LYC605 is a warning
    missing = lyco("inspect", str(tmp_path / "nope.safetensors"))
    assert missing.returncode == 2 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "config.json").write_text("{}")
    assert lyco("inspect", str(tmp_path / "config.json")).returncode == 2


def test_lyco_inspect_json_has_every_fact(models, adapters, capsys):
    capsys.readouterr()
    assert main(["inspect", "--format", "json", str(adapters[("flux2", "tlora")]), "--model", str(models["flux2"][0])]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["family"]["name"] == "flux2" and facts["prefix"] == "lycoris" and facts["algorithms"] == {"tlora": 14}
    assert facts["lycoris_config"]["algo"] == "tlora" and facts["parameters"] > 0 and facts["dtypes"] == {"F32": facts["parameters"]}
    module = next(m for m in facts["modules"] if m["name"] == "lycoris_transformer_blocks_0_attn_to_q")
    assert module["algo"] == "tlora" and module["rank"] == 4 and module["scale"] == 1.0 and module["comfyui"]["loaded"] is False
    assert module["model_path"] == "transformer_blocks.0.attn.to_q"
    assert facts["comfyui"]["loaded_modules"] == 0 and facts["diffusers"]["outcome"] == "refuses"
    assert facts["model"]["create_lycoris_from_weights"] == {"modules": 14, "algo_table": {"TLoraModule": 14}, "error": None, "prefix": "lycoris"}
    assert {f["code"] for f in facts["findings"]} >= {"LYC605", "LYC606", "LYC610"}
    assert sum(group["modules"] for group in facts["groups"]) == 14


def test_weights_findings_in_sarif_and_github(adapters):
    done = lyco("lint", "--format", "sarif", str(adapters["flux2-all"]))
    log = json.loads(done.stdout)
    result = next(r for r in log["runs"][0]["results"] if r["ruleId"] == "LYC605")
    location = result["locations"][0]
    assert "region" not in location["physicalLocation"]
    assert location["logicalLocations"][0]["fullyQualifiedName"].startswith("lycoris_") and location["logicalLocations"][0]["kind"] == "member"
    done = lyco("lint", "--format", "github", str(adapters["flux2-all"]))
    line = next(line for line in done.stdout.splitlines() if "LYC605" in line)
    assert line.startswith("::warning file=") and "line=" not in line and re.search(r"::lycoris_\w+\.alpha: ComfyUI", line)


def test_lint_walks_folders_for_adapters_next_to_configs(adapters, tmp_path):
    shutil = pytest.importorskip("shutil")
    shutil.copy(adapters["flux2-all"], tmp_path / "adapter.safetensors")
    save_file({"transformer.weight": torch.ones(2)}, str(tmp_path / "model.safetensors"))  # not an adapter: skipped
    (tmp_path / "lycoris.json").write_text(json.dumps(ALGOS["lokr"]))
    done = lyco("lint", str(tmp_path))
    assert "adapter.safetensors::lycoris_" in done.stdout and "model.safetensors" not in done.stdout
    assert "in 2 files" in done.stdout


def test_the_in_process_entry_point_matches(adapters, capsys):
    assert main(["inspect", "--format", "json", str(adapters[("sdxl", "lokr")])]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["family"]["name"] == "sdxl" and facts["comfyui"]["loaded_modules"] == len(facts["modules"])


# -- review B: machine output that is not JSON, metadata that crashed the summary ----------------------------------


def raw_lokr_file(path: Path, *, alpha: float = 1.0, metadata: dict | None = None, header_text=None) -> Path:
    """A one-module LoKr written byte by byte, as safetensors lays it out (so a header can hold what
    safetensors' own writer refuses: a lone surrogate)."""
    import struct

    module = "lycoris_transformer_blocks_0_attn_to_q"
    tensors = {f"{module}.alpha": ([], [alpha]), f"{module}.lokr_w1": ([4, 4], [0.1] * 16), f"{module}.lokr_w2": ([8, 8], [0.01] * 64)}
    header, data = {}, b""
    for key, (shape, values) in tensors.items():
        raw = struct.pack(f"<{len(values)}f", *values)
        header[key] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    header["__metadata__"] = metadata or {"model_family": "flux"}
    text = json.dumps(header)  # ensure_ascii: a lone surrogate is written as the escape \udc00
    path.write_bytes(struct.pack("<Q", len(text)) + text.encode("ascii") + data)
    return path


def strict_json(text: str):
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON output"))


def test_inspect_json_of_a_nan_alpha_is_json(tmp_path):
    """Defect: `lyco inspect --format json` of a LoKr with a NaN alpha wrote `"alpha": NaN` (no JSON parser but
    Python's reads it). Non-finite numbers are null; the finding still says what is wrong."""
    path = raw_lokr_file(tmp_path / "nanalpha.safetensors", alpha=math.nan)
    done = lyco("inspect", "--format", "json", str(path))
    assert done.returncode == 1 and "internal error" not in done.stderr, done.stderr
    facts = strict_json(done.stdout)
    assert facts["modules"][0]["alpha"] is None and facts["groups"][0]["alpha"] is None
    assert "LYC602" in {finding["code"] for finding in facts["findings"]}


def test_inspect_escapes_a_lone_surrogate_in_the_metadata(tmp_path):
    """Defect: metadata {"note": "\\udc00x"} ended `lyco inspect` (text and json) in "internal error:
    UnicodeEncodeError ... surrogates not allowed"."""
    path = raw_lokr_file(tmp_path / "sur.safetensors", metadata={"model_family": "flux", "note": "\udc00x\x1b[31m"})
    done = lyco("inspect", str(path))
    assert done.returncode == 0 and "internal error" not in done.stderr, done.stderr
    assert "note=\\udc00x\\x1b[31m" in done.stdout and "\x1b" not in done.stdout
    done = lyco("inspect", "--format", "json", str(path))
    assert done.returncode == 0 and "internal error" not in done.stderr, done.stderr
    assert strict_json(done.stdout)["metadata"]["other"]["note"] == "\udc00x\x1b[31m"
    done.stdout.encode("ascii")
