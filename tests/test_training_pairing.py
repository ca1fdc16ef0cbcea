"""A training config and its LyCORIS config linted together: LYC304, LYC305, LYC307 and LYC309 read the
training config through the LyCORIS config's context and point into the file that holds the offending
value (or into both). Also: the fixtures under tests/fixtures/training and the shipped example."""

import copy
import json
import logging
import time

import pytest

from conftest import EXAMPLES, ROOT
from lyco_lint.engine import Options, lint_paths
from lyco_lint.knowledge.sdxl_unet import feedforward_adaptations, sdxl_feedforward_tree

FIXTURES = ROOT / "tests" / "fixtures" / "training"

LOKR = {"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 8}
DATASETS = [{"id": "images", "type": "local", "instance_data_dir": "datasets/images", "caption_strategy": "textfile"}]


def training_config(family, **extra):
    config = {
        "model_type": "lora",
        "model_family": family,
        "output_dir": "output/run",
        "data_backend_config": "multidatabackend.json",
        "optimizer": "adamw_bf16",
        "lora_type": "lycoris",
        "lycoris_config": "lycoris_config.json",
    }
    config.update(extra)
    return config


@pytest.fixture
def pair(write):
    """Write config.json + lycoris_config.json (+ datasets), lint the training config, return LYC3xx findings."""

    def _pair(family, lycoris, **extra):
        write(DATASETS, "multidatabackend.json")
        write(lycoris, "lycoris_config.json")
        path = write(training_config(family, **extra), "config.json")
        result = lint_paths([str(path)])
        return [f.as_dict() for f in result.findings if f.code.startswith("LYC3")]

    return _pair


def only(findings, code):
    return [finding for finding in findings if finding["code"] == code]


def file_of(finding):
    return finding["file"].rsplit("/", 1)[-1]


def preset(**apply_preset):
    return {**LOKR, "apply_preset": apply_preset}


# -- LYC304 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lycoris, pointer",
    [
        (preset(target_module=["Attention", "FeedForward"]), "/apply_preset/target_module/1"),
        (preset(target_module=["BasicTransformerBlock"]), "/apply_preset/target_module/0"),
        (preset(target_module=["Transformer2DModel"]), "/apply_preset/target_module/0"),
        (preset(target_module=["Attention"], module_algo_map={"GEGLU": {"factor": 4}}), "/apply_preset/module_algo_map/GEGLU"),
        (preset(target_module=[], target_name=[".*ff\\.net\\.2"]), "/apply_preset/target_name/0"),
        (preset(target_module=["Attention"], name_algo_map={"mid_block.*ff.net.2": {"dim": 8}}, use_fnmatch=True),
         "/apply_preset/name_algo_map/mid_block.*ff.net.2"),
        (LOKR, ""),  # no apply_preset: every Linear
        (preset(module_algo_map={"Attention": {"factor": 4}}), "/apply_preset"),  # no target_module: defaults
    ],
)
def test_lyc304_feedforward_targets_on_sdxl(pair, lycoris, pointer):
    findings = only(pair("sdxl", lycoris), "LYC304")
    assert len(findings) == 1
    assert findings[0]["pointer"] == pointer and file_of(findings[0]) == "lycoris_config.json"
    assert "Attention" in findings[0]["message"] and "NaN" in findings[0]["message"]


@pytest.mark.parametrize(
    "lycoris",
    [
        preset(target_module=["Attention"]),
        preset(target_module=["Attention"], module_algo_map={"Attention": {"factor": 4}}),
        preset(target_module=["Transformer2DModel"], exclude_name=[".*ff.*"]),
        preset(target_module=["BasicTransformerBlock"], exclude_name=["*.ff.*"], use_fnmatch=True),
        preset(target_module=[], target_name=[".*attn1.to_q"]),
        preset(target_module=["ResnetBlock2D", "Attention"]),
    ],
)
def test_lyc304_quiet_when_only_attention_is_adapted(pair, lycoris):
    assert only(pair("sdxl", lycoris), "LYC304") == []


def test_lyc304_kolors_has_the_sdxl_unet(pair):
    assert only(pair("Kolors", preset(target_module=["Attention", "FeedForward"])), "LYC304")


@pytest.mark.parametrize("family", ["flux", "sd3", "sd1x", "wan"])
def test_lyc304_quiet_for_other_families(pair, family):
    assert only(pair(family, preset(target_module=["Attention", "FeedForward"])), "LYC304") == []


def test_lyc304_bare_lycoris_config_with_family_option(write):
    path = write(preset(target_module=["Attention", "FeedForward"]), "lycoris.json")
    with_family = lint_paths([str(path)], Options(family="SDXL")).findings
    assert [f.code for f in with_family if f.code.startswith("LYC3")] == ["LYC304"]
    assert [f for f in lint_paths([str(path)]).findings if f.code.startswith("LYC3")] == []


# -- LYC305 / LYC306 -----------------------------------------------------------------------------------


def test_lyc305_is_reported_in_both_files(pair):
    findings = pair(
        "sdxl", preset(target_module=["Attention", "FeedForward"]),
        attention_mechanism="sageattention", sageattention_usage="training",
    )
    hits = only(findings, "LYC305")
    assert sorted(file_of(f) for f in hits) == ["config.json", "lycoris_config.json"]
    in_training = next(f for f in hits if file_of(f) == "config.json")
    assert in_training["pointer"] == "/sageattention_usage" and in_training["severity"] == "error"
    in_lycoris = next(f for f in hits if file_of(f) == "lycoris_config.json")
    assert in_lycoris["pointer"] == "/apply_preset/target_module/1"
    assert "LYC306" in [f["code"] for f in findings] and "LYC304" in [f["code"] for f in findings]


@pytest.mark.parametrize(
    "family, lycoris, attention",
    [
        ("sdxl", preset(target_module=["Attention", "FeedForward"]), {"attention_mechanism": "sageattention", "sageattention_usage": "inference"}),
        ("sdxl", preset(target_module=["Attention", "FeedForward"]), {"attention_mechanism": "xformers", "sageattention_usage": "training"}),
        ("sdxl", preset(target_module=["Attention"]), {"attention_mechanism": "sageattention", "sageattention_usage": "training"}),
        ("flux", preset(target_module=["Attention", "FeedForward"]), {"attention_mechanism": "sageattention", "sageattention_usage": "training"}),
    ],
)
def test_lyc305_needs_all_three_conditions(pair, family, lycoris, attention):
    assert only(pair(family, lycoris, **attention), "LYC305") == []


# -- LYC307 --------------------------------------------------------------------------------------------

TLORA = {"algo": "tlora", "multiplier": 1.0, "linear_dim": 64, "linear_alpha": 32, "tlora_min_rank": 1, "tlora_alpha": 1.0,
         "apply_preset": {"target_module": ["Attention"]}}


@pytest.mark.parametrize("family", ["wan", "ltxvideo2", "hunyuanvideo", "kandinsky5_video"])
def test_lyc307_tlora_on_a_video_family(pair, family):
    findings = only(pair(family, TLORA), "LYC307")
    assert len(findings) == 1 and findings[0]["pointer"] == "/algo" and file_of(findings[0]) == "lycoris_config.json"


@pytest.mark.parametrize("family", ["flux2", "sdxl", "kandinsky5_image", "cosmos"])
def test_lyc307_quiet_for_image_families(pair, family):
    assert only(pair(family, TLORA), "LYC307") == []


def test_lyc307_bare_tlora_config_with_family_option(write):
    path = write(TLORA, "tlora.json")
    assert "LYC307" in [f.code for f in lint_paths([str(path)], Options(family="wan")).findings]
    assert "LYC307" not in [f.code for f in lint_paths([str(path)], Options(family="flux2")).findings]


# -- LYC309 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["int8-torchao", "fp8-torchao", "int4-torchao", "nf4-bnb"])
def test_lyc309_undetected_quantisation_without_bypass_points_at_both_files(pair, precision):
    findings = only(pair("flux2", preset(target_module=["Flux2Attention"]), base_model_precision=precision), "LYC309")
    assert sorted(file_of(f) for f in findings) == ["config.json", "lycoris_config.json"]
    assert next(f for f in findings if file_of(f) == "config.json")["pointer"] == "/base_model_precision"
    assert all("bypass_mode" in f["message"] for f in findings)


def test_lyc309_points_at_a_bypass_mode_set_to_false(pair):
    findings = only(pair("flux2", {**LOKR, "bypass_mode": "false"}, base_model_precision="int8-torchao"), "LYC309")
    assert next(f for f in findings if file_of(f) == "lycoris_config.json")["pointer"] == "/bypass_mode"


@pytest.mark.parametrize(
    "lycoris, precision",
    [
        ({**LOKR, "bypass_mode": True}, "int8-torchao"),
        (LOKR, "int8-quanto"),  # quanto layers force bypass inside LyCORIS
        (LOKR, "no_change"),
        ({"algo": "full", "multiplier": 1.0, "linear_dim": 1, "linear_alpha": 1}, "int8-torchao"),
    ],
)
def test_lyc309_quiet_with_bypass_or_detected_quantisation(pair, lycoris, precision):
    assert only(pair("flux2", lycoris, base_model_precision=precision), "LYC309") == []


def test_lyc309_init_lora_drops_bypass_mode_on_a_torchao_base(pair):
    findings = only(pair("flux2", {**LOKR, "bypass_mode": True}, base_model_precision="int8-torchao",
                         init_lora="output/previous/pytorch_lora_weights.safetensors"), "LYC309")
    assert [(file_of(f), f["pointer"]) for f in findings] == [("config.json", "/init_lora")]
    # nf4-bnb layers are Linear subclasses: create_lycoris_from_weights leaves bypass to LyCORIS, which turns it on
    assert only(pair("flux2", LOKR, base_model_precision="nf4-bnb", init_lora="previous.safetensors"), "LYC309") == []


def test_lyc309_needs_a_training_config(write):
    path = write(LOKR, "lycoris.json")
    assert "LYC309" not in [f.code for f in lint_paths([str(path)], Options(family="flux2")).findings]


# -- fixtures and the shipped example -----------------------------------------------------------------

GOOD = sorted(path.parent.name for path in (FIXTURES / "good").glob("*/config.json"))
BROKEN = {
    "flux2-torchao-no-bypass": {"LYC303", "LYC309"},
    "sdxl-feedforward-sage": {"LYC304", "LYC305", "LYC306"},
    "sdxl-default-targets": {"LYC304"},
    "kolors-transformer-block": {"LYC304"},
    "wan-tlora": {"LYC307"},
    "flux2-lycoris-config-missing": {"LYC301"},
    "sd3-lycoris-config-unused": {"LYC302"},
    "qwen-image-bad-strength": {"LYC308"},
    "flux-argparse-traps": {"LYC310", "LYC311", "LYC312", "LYC313", "LYC314"},
    "hidream-missing-required": {"LYC315", "LYC316"},
    # failure-table cases other rule families catch once the pair is linted in context
    "flux2-generic-targets": set(),
    "hidream-trailing-comma": set(),
}


def test_fixture_sets_are_complete():
    assert len(GOOD) >= 8
    assert sorted(BROKEN) == sorted(p.parent.name for p in (FIXTURES / "broken").glob("*/config.json"))
    covered = set().union(*BROKEN.values())
    assert covered == {f"LYC3{n:02d}" for n in range(1, 17)}


@pytest.mark.parametrize("name", GOOD)
def test_good_fixture_lints_without_errors_or_training_findings(name):
    config = FIXTURES / "good" / name / "config.json"
    result = lint_paths([str(config)])
    raw = json.loads(config.read_text(encoding="utf-8"))
    uses_lycoris = (raw.get("lora_type") or raw.get("--lora_type")) == "lycoris"
    datasets = raw.get("data_backend_config") or raw.get("--data_backend_config")
    has_datasets = bool(datasets) and (config.parent / datasets).is_file()
    # the LyCORIS config and the dataset config came along
    assert len(result.documents) == 1 + uses_lycoris + has_datasets
    assert has_datasets == any(d.kind == "dataset" for d in result.documents)
    assert [f for f in result.findings if f.code.startswith("LYC3") or f.severity.value == "error"] == []


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_fixture_reports_its_codes(name):
    result = lint_paths([str(FIXTURES / "broken" / name / "config.json")])
    assert {f.code for f in result.findings if f.code.startswith("LYC3")} == BROKEN[name]


@pytest.mark.parametrize(
    "name, code",
    [("flux2-generic-targets", "LYC205"), ("hidream-trailing-comma", "LYC001")],
)
def test_failure_table_cases_are_caught_in_the_lycoris_config(name, code):
    from lyco_lint.rules import load_rules

    if code not in load_rules():
        pytest.skip(f"{code} is not registered")
    result = lint_paths([str(FIXTURES / "broken" / name / "config.json")])
    hits = [f for f in result.findings if f.code == code]
    assert hits and all(f.file.endswith("lycoris_config.json") for f in hits)


def test_shipped_example_lints_clean_with_its_lycoris_config():
    result = lint_paths([str(EXAMPLES / "config" / "config.json")])
    names = ["config.json", "flux2-lokr.lycoris.json", "multidatabackend.json"]
    assert sorted(d.path.name for d in result.documents) == names
    for name in names[1:]:
        paired = next(d for d in result.documents if d.path.name == name)
        assert paired.context.family == "flux2" and paired.context.training is not None
    # the example's image folder (datasets/my-images) is the user's to create: only that may be reported
    assert [f for f in result.findings if f.severity.value != "info" and f.code != "LYC505"] == []


def test_linting_a_pair_is_fast():
    lint_paths([str(EXAMPLES / "config" / "config.json")])  # warm the caches once
    start = time.perf_counter()
    for _ in range(20):
        lint_paths([str(EXAMPLES / "config" / "config.json")])
    assert (time.perf_counter() - start) / 20 < 0.05


# -- pins: the facts the rules rely on, checked against LyCORIS and diffusers ---------------------------

SDXL_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
    addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
    use_linear_projection=True,
)


@pytest.fixture(scope="module")
def sdxl_unet():
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    with torch.device("meta"):
        return diffusers.UNet2DConditionModel(**SDXL_UNET)


def test_sdxl_feedforward_tree_matches_diffusers(sdxl_unet):
    modules = {name: type(module).__name__ for name, module in sdxl_unet.named_modules()}
    tree = dict(sdxl_feedforward_tree("UNet2DConditionModel"))
    assert all(modules[path] == cls for path, cls in tree.items())
    feedforward = sorted(name for name, cls in modules.items() if cls == "Linear" and ".ff." in name)
    assert sorted(path for path, cls in tree.items() if cls == "Linear") == feedforward


LYCORIS_CLASS_DEFAULTS = dict(
    ENABLE_CONV=True, TARGET_REPLACE_MODULE=["Linear", "Conv1d", "Conv2d", "Conv3d", "GroupNorm", "LayerNorm"],
    TARGET_REPLACE_NAME=[], LORA_PREFIX="lycoris", MODULE_ALGO_MAP={}, NAME_ALGO_MAP={}, USE_FNMATCH=False,
    TARGET_EXCLUDE_NAME=[],
)


@pytest.mark.parametrize(
    "apply_preset",
    [
        None,
        {"target_module": ["Attention"]},
        {"target_module": ["Attention", "FeedForward"]},
        {"target_module": ["BasicTransformerBlock"]},
        {"target_module": ["Transformer2DModel"], "exclude_name": [".*ff.*"]},
        {"target_module": [], "target_name": [".*ff\\.net\\.2"]},
        {"target_module": ["Attention"], "module_algo_map": {"GEGLU": {"dim": 8}}},
        {"target_module": ["UNet2DConditionModel"]},
        {"target_module": ["Attention"], "name_algo_map": {"mid_block.*ff.net.2": {"dim": 8}}, "use_fnmatch": True},
        {"target_module": ["CrossAttnUpBlock2D"], "exclude_name": ["up_blocks.1"]},
    ],
)
def test_feedforward_replay_matches_lycoris(sdxl_unet, apply_preset):
    torch = pytest.importorskip("torch")
    lycoris = pytest.importorskip("lycoris")
    network_class = lycoris.LycorisNetwork
    for name, value in LYCORIS_CLASS_DEFAULTS.items():
        setattr(network_class, name, copy.deepcopy(value))
    if apply_preset:
        network_class.apply_preset(copy.deepcopy(apply_preset))
    logging.disable(logging.WARNING)
    try:
        with torch.device("meta"):
            network = lycoris.create_lycoris(sdxl_unet, 1.0, 4, 4, algo="lora")
    finally:
        logging.disable(logging.NOTSET)
        for name, value in LYCORIS_CLASS_DEFAULTS.items():
            setattr(network_class, name, copy.deepcopy(value))
    adapted = {lora.lora_name for lora in network.loras if "_ff_" in lora.lora_name}
    config = {"apply_preset": apply_preset} if apply_preset else {}
    replayed = {path for paths in feedforward_adaptations(config, "UNet2DConditionModel").values() for path in paths}
    assert {"lycoris_" + path.replace(".", "_") for path in replayed} == adapted


def test_lycoris_detects_bnb_subclasses_and_quanto_but_not_linear4bit():
    quant = pytest.importorskip("lycoris.utils.quant")
    names = {cls.__name__ for cls in quant.QuantLinears}
    # nf4-bnb loads as bnb's Linear4bit (diffusers' BitsAndBytesConfig), which is not in this tuple
    assert {"LinearNF4", "LinearFP4", "Linear8bitLt", "QLinear"} <= names and "Linear4bit" not in names


@pytest.mark.parametrize("value, expected", [(True, True), ("false", False), (False, False), ("true", True)])
def test_bypass_mode_is_read_with_str_bool(value, expected):
    torch = pytest.importorskip("torch")
    lycoris = pytest.importorskip("lycoris")
    from lyco_lint.knowledge.lycoris import bypass_enabled

    model = torch.nn.Sequential(torch.nn.Linear(8, 8))
    for name, default in LYCORIS_CLASS_DEFAULTS.items():
        setattr(lycoris.LycorisNetwork, name, copy.deepcopy(default))
    network = lycoris.create_lycoris(model, 1.0, 4, 4, algo="lora", bypass_mode=value)
    assert network.loras[0].bypass_mode is expected
    assert bypass_enabled({"bypass_mode": value}) is expected
    assert bypass_enabled({}) is False


def test_fixtures_are_plain_json():
    # they stand for real files: plain JSON, but for the one that shows a trailing comma
    for path in FIXTURES.rglob("*.json"):
        if "trailing-comma" in str(path) and path.name == "lycoris_config.json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(path.read_text(encoding="utf-8"))
        else:
            json.loads(path.read_text(encoding="utf-8"))


def test_pairing_reads_keys_and_values_as_simpletuner_does(write):
    """`--` keys, a family in capitals and a LyCORIS config found through `--lycoris_config` are paired, so
    the LyCORIS config is linted in the training config's context (here: LYC205 against flux2)."""
    write(DATASETS, "multidatabackend.json")
    write({**LOKR, "apply_preset": {"target_module": ["Attention"]}}, "nested/lycoris.json")
    config = {f"--{key}": value for key, value in training_config("FLUX2", lycoris_config="nested/lycoris.json").items()}
    path = write(config, "config.json")
    findings = lint_paths([str(path)]).findings
    paired = [f for f in findings if f.file.endswith("nested/lycoris.json")]
    assert [f.code for f in paired if f.code == "LYC205"] == ["LYC205"]
    assert "flux2" in paired[0].message or any("flux2" in f.message for f in paired)


def test_lora_type_standard_is_not_paired(write):
    write({"algo": "lokr"}, "lycoris_config.json")  # broken, but not used
    path = write(training_config("flux2", lora_type="standard"), "config.json")
    assert not [f for f in lint_paths([str(path)]).findings if f.file.endswith("lycoris_config.json")]
