"""LYC3xx on a training config alone: every code fires on a broken config.json and stays quiet on the
fixed one, and the model of SimpleTuner's loader + argparse agrees with stdlib argparse."""

import argparse
import json
import math
from pathlib import Path

import pytest

from conftest import REFERENCE, ROOT, changed, codes
from lyco_lint.knowledge import families, simpletuner as st
from lyco_lint.cli import main
from lyco_lint.engine import Options, lint_paths


# The smallest config SimpleTuner starts with (PEFT LoRA, so the LyCORIS rules stay quiet).
MINIMAL = {
    "model_type": "lora",
    "model_family": "flux2",
    "output_dir": "output/run",
    "data_backend_config": "multidatabackend.json",
    "optimizer": "adamw_bf16",
}
DATASETS = [{"id": "images", "type": "local", "instance_data_dir": "datasets/images", "caption_strategy": "textfile"}]


def training(**changes):
    return changed(MINIMAL, **changes)


@pytest.fixture
def check(tmp_path, write):
    """Lint a training config written as tmp_path/config.json next to its datasets file; LYC3xx findings only."""

    def _check(config, **options):
        write(DATASETS, "multidatabackend.json")
        path = write(config, "config.json")
        findings = lint_paths([str(path)], Options(**options)).findings
        return [f.as_dict() for f in findings if f.code.startswith("LYC3")]

    return _check


def only(findings, code):
    return [finding for finding in findings if finding["code"] == code]


def test_the_minimal_training_config_is_clean(check):
    assert check(MINIMAL) == []


# -- LYC301 -------------------------------------------------------------------------------------------


def test_lyc301_missing_lycoris_config_says_where_it_looked(check, tmp_path):
    findings = only(check(training(lora_type="lycoris", lycoris_config="cfg/lycoris.json")), "LYC301")
    assert len(findings) == 1 and findings[0]["severity"] == "error"
    assert findings[0]["pointer"] == "/lycoris_config"
    assert str(tmp_path / "cfg/lycoris.json") in findings[0]["message"]
    assert str(Path.cwd() / "cfg/lycoris.json") in findings[0]["message"]


def test_lyc301_uses_simpletuners_default_path_when_lycoris_config_is_absent(check):
    findings = only(check(training(lora_type="lycoris")), "LYC301")
    assert "config/lycoris_config.json" in findings[0]["message"] and "default" in findings[0]["message"]
    assert findings[0]["pointer"] == "/lora_type"


def test_lyc301_quiet_when_the_file_exists_next_to_the_config(check, write):
    write({"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1}, "lycoris.json")
    assert only(check(training(lora_type="lycoris", lycoris_config="lycoris.json")), "LYC301") == []


def test_lyc301_bundled_example_path_is_only_a_warning(check):
    config = training(lora_type="lycoris", lycoris_config="config/examples/sdxl.lycoris-lokr/lycoris_config.json")
    findings = only(check(config), "LYC301")
    assert [f["severity"] for f in findings] == ["warning"]
    assert "installed package" in findings[0]["message"]


def test_lyc301_bundled_example_path_found_inside_an_examples_folder(tmp_path, write):
    lycoris = {"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1}
    write(lycoris, "examples/sdxl.lycoris-lokr/lycoris_config.json")
    config = training(lora_type="lycoris", lycoris_config="config/examples/sdxl.lycoris-lokr/lycoris_config.json")
    path = write(config, "examples/sdxl.lycoris-lokr/config.json")
    assert "LYC301" not in codes(f.as_dict() for f in lint_paths([str(path)]).findings)


def test_lyc301_skips_environment_placeholders(check):
    assert only(check(training(lora_type="lycoris", lycoris_config="{env:LYCORIS_CONFIG}")), "LYC301") == []


# -- LYC302 / LYC303 ----------------------------------------------------------------------------------


def test_lyc302_lycoris_config_with_a_peft_lora(check):
    findings = only(check(training(lora_type="standard", lycoris_config="lycoris.json")), "LYC302")
    assert len(findings) == 1 and "lora_type is 'standard'" in findings[0]["message"]
    # lora_type defaults to standard
    assert only(check(training(lycoris_config="lycoris.json")), "LYC302")


def test_lyc302_lycoris_config_with_a_full_finetune(check, write):
    write({"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1}, "lycoris.json")
    findings = only(check(training(model_type="full", lora_type="lycoris", lycoris_config="lycoris.json")), "LYC302")
    assert len(findings) == 1 and "model_type is 'full'" in findings[0]["message"]


def test_lyc302_quiet_for_a_lycoris_lora(check, write):
    write({"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1}, "lycoris.json")
    assert only(check(training(lora_type="lycoris", lycoris_config="lycoris.json")), "LYC302") == []


def test_lyc303_peft_options_ignored_under_lycoris(check, write):
    write({"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1}, "lycoris.json")
    config = training(
        lora_type="lycoris", lycoris_config="lycoris.json", lora_rank=128, lora_alpha=128,
        lora_format="comfyui", use_dora=True, peft_lora_target_modules=["to_q"], flux_lora_target="all",
    )
    findings = only(check(config), "LYC303")
    flagged = {f["pointer"] for f in findings}
    assert flagged == {"/lora_rank", "/lora_alpha", "/lora_format", "/use_dora", "/peft_lora_target_modules", "/flux_lora_target"}
    rank = next(f for f in findings if f["pointer"] == "/lora_rank")
    assert "linear_dim" in rank["message"] and rank["severity"] == "warning"
    assert (rank["line"], rank["column"]) == (9, 3)  # the key (conftest writes indent=2)


def test_lyc303_quiet_for_peft_and_for_dora_switched_off(check, write):
    assert only(check(training(lora_type="standard", lora_rank=64, use_dora=True)), "LYC303") == []
    write({"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1}, "lycoris.json")
    assert only(check(training(lora_type="lycoris", lycoris_config="lycoris.json", use_dora=False)), "LYC303") == []


# -- LYC306 / LYC308 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("usage", ["training", "training+inference"])
def test_lyc306_sageattention_in_training(check, usage):
    config = training(attention_mechanism="sageattention-int8-fp16-triton", sageattention_usage=usage)
    findings = only(check(config), "LYC306")
    assert len(findings) == 1 and findings[0]["pointer"] == "/sageattention_usage"
    assert "gradients" in findings[0]["message"]


@pytest.mark.parametrize(
    "settings",
    [
        {"attention_mechanism": "sageattention", "sageattention_usage": "inference"},
        {"attention_mechanism": "sageattention"},  # usage defaults to inference
        {"attention_mechanism": "flash-attn-2", "sageattention_usage": "training"},
    ],
)
def test_lyc306_quiet_without_sage_in_training(check, settings):
    assert only(check(training(**settings)), "LYC306") == []


@pytest.mark.parametrize("value", ["full", True, "NaN", "inf", "1e999"])
def test_lyc308_strength_that_is_not_a_finite_number_is_an_error(check, value):
    findings = check(training(validation_lycoris_strength=value))
    assert [f["severity"] for f in only(findings, "LYC308")] == ["error"]
    assert only(findings, "LYC314") == []  # LYC308 owns the option


def test_lyc308_leaves_a_nan_literal_to_lyc017(check, tmp_path, write):
    write(DATASETS, "multidatabackend.json")
    text = json.dumps(MINIMAL)[:-1] + ', "validation_lycoris_strength": NaN}'
    path = write(text, "config.json")
    findings = [f for f in lint_paths([str(path)]).findings if f.code in ("LYC308", "LYC017")]
    assert [f.code for f in findings] == ["LYC017"] and "finite" in findings[0].message


@pytest.mark.parametrize("value", [-0.5, 2.5, "3"])
def test_lyc308_strength_outside_0_to_2_is_a_warning(check, value):
    findings = only(check(training(validation_lycoris_strength=value)), "LYC308")
    assert [f["severity"] for f in findings] == ["warning"]
    assert "0..2" in findings[0]["message"]


@pytest.mark.parametrize("value", [1.0, 2, "0.8", 0.01, None])
def test_lyc308_quiet_for_sensible_strengths(check, value):
    assert only(check(training(validation_lycoris_strength=value)), "LYC308") == []


# -- LYC310 -------------------------------------------------------------------------------------------


def test_lyc310_unknown_key_suggests_the_closest_option(check):
    findings = only(check(training(lora_ranks=16)), "LYC310")
    assert len(findings) == 1 and findings[0]["severity"] == "error"
    assert "'lora_rank'" in findings[0]["message"] and findings[0]["pointer"] == "/lora_ranks"


def test_lyc310_a_removed_option_gets_no_unrelated_suggestion(check):
    findings = only(check(training(validation_torch_compile=False)), "LYC310")
    assert len(findings) == 1 and "did you mean" not in findings[0]["message"]
    assert "if it was removed from SimpleTuner, delete it" in findings[0]["message"]


def test_lyc310_abbreviation_is_a_warning_naming_the_full_option(check):
    findings = only(check(training(lora_ra=16)), "LYC310")
    assert [f["severity"] for f in findings] == ["warning"]
    assert "lora_rank" in findings[0]["message"] and "abbreviation" in findings[0]["message"]


def test_lyc310_ambiguous_prefix_is_an_error(check):
    findings = only(check(training(lora_=16)), "LYC310")
    assert [f["severity"] for f in findings] == ["error"]
    assert "ambiguous" in findings[0]["message"] and "lora_rank" in findings[0]["message"]


def test_lyc310_accepts_dashes_legacy_renames_aliases_and_ignored_keys(check):
    config = {f"--{key}": value for key, value in MINIMAL.items()}
    config.update({
        "validation_steps": 100, "checkpointing_steps": 500, "save_total_limit": 3, "vae_cache_preprocess": False,
        "ignore_final_epochs": True, "fused_qkv_projections": False, "repeats": 3, "aspect_ratio_bucketing": True,
        "__active_tab__": "model", "-seed": 42,
    })
    assert only(check(config), "LYC310") == []


def test_lyc310_unknown_key_with_a_dropped_value_is_only_a_warning(check):
    findings = only(check(training(validation_torch_compile=None, my_notes={"a": 1})), "LYC310")
    assert [f["severity"] for f in findings] == ["warning", "warning"]
    assert "drops it today" in findings[0]["message"]


def test_lyc310_webui_only_keys_are_rejected(check):
    findings = only(check(training(configs_dir="config")), "LYC310")
    assert len(findings) == 1 and "WebUI" in findings[0]["message"]


# -- LYC311 -------------------------------------------------------------------------------------------


def test_lyc311_string_false_cannot_turn_off_a_default_that_is_on(check):
    findings = only(check(training(gradient_checkpointing="False")), "LYC311")
    assert len(findings) == 1 and "stays on" in findings[0]["message"] and "JSON false" in findings[0]["message"]


def test_lyc311_string_false_on_other_options(check):
    findings = only(check(training(use_ema="false", validation_prompt="false")), "LYC311")
    assert len(findings) == 2


def test_lyc311_leaves_unknown_keys_to_lyc310(check):
    findings = check(training(validation_torch_compile="false"))
    assert codes(findings) == ["LYC310"] and findings[0]["severity"] == "warning"


def test_lyc311_quiet_for_json_false_and_legacy_keys_the_loader_reads(check):
    assert only(check(training(gradient_checkpointing=False, vae_cache_preprocess="false")), "LYC311") == []


# -- LYC312 / LYC313 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "family, suggestion",
    [("kandinsky5-image", "kandinsky5_image"), ("pixart_sigma", "pixart"), ("flux-2", "flux2"), ("sdxl1", "sdxl")],
)
def test_lyc312_unknown_family_suggests_the_closest(check, family, suggestion):
    findings = only(check(training(model_family=family)), "LYC312")
    assert len(findings) == 1 and f"'{suggestion}'" in findings[0]["message"]


@pytest.mark.parametrize("family", ["flux2", "FLUX2", " Flux2 ", "kandinsky5_image", "qwen_image"])
def test_lyc312_family_is_compared_lower_cased_and_stripped(check, family):
    assert only(check(training(model_family=family)), "LYC312") == []


def test_lyc312_flavour_not_of_the_family(check):
    findings = only(check(training(model_flavour="klein-8b")), "LYC312")
    assert len(findings) == 1 and findings[0]["pointer"] == "/model_flavour"
    assert "klein-9b" in findings[0]["message"]
    assert only(check(training(model_flavour="klein-4b")), "LYC312") == []


def test_lyc313_choice_is_case_sensitive(check):
    findings = only(check(training(lora_type="LyCORIS")), "LYC313")
    assert len(findings) == 1 and "'lycoris'" in findings[0]["message"]
    assert findings[0]["pointer"] == "/lora_type"


@pytest.mark.parametrize(
    "settings",
    [{"mixed_precision": "bf17"}, {"aspect_bucket_rounding": 12}, {"model_type": "LoRA"}, {"base_model_precision": "int8"}],
)
def test_lyc313_values_outside_the_choices(check, settings):
    assert len(only(check(training(**settings)), "LYC313")) == 1


@pytest.mark.parametrize(
    "settings",
    [{"lr_scheduler": "cosine_with_warmup"}, {"aspect_bucket_rounding": "3"}, {"mixed_precision": " bf16 "},
     {"attention_mechanism": "flash-attn-3-varlen-hub"}],
)
def test_lyc313_quiet_for_valid_and_normalised_choices(check, settings):
    assert only(check(training(**settings)), "LYC313") == []


# -- LYC314 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, fragment",
    [
        ({"learning_rate": "fast"}, "not a number"),
        ({"lora_rank": 16.0}, "write 16"),
        ({"lora_rank": "16.5"}, "not an integer"),
        ({"lora_rank": True}, "bare flag"),
        ({"validation_prompt": True}, "bare flag"),
        ({"use_ema": "maybe"}, "not a boolean"),
        ({"use_ema": 2}, "not a boolean"),
        ({"max_train_steps": 1e4}, "write 10000"),
        ({"aspect_bucket_rounding": "two"}, "not an integer"),
    ],
)
def test_lyc314_values_argparse_cannot_parse(check, settings, fragment):
    findings = only(check(training(**settings)), "LYC314")
    assert len(findings) == 1 and fragment in findings[0]["message"]


def test_lyc314_array_for_a_single_value_option_keeps_only_the_last_element(check):
    findings = only(check(training(validation_guidance_skip_layers=[7, 8, 9], learning_rate=[1e-4, 5e-5])), "LYC314")
    assert len(findings) == 2
    assert all("keeps only the last" in f["message"] for f in findings)
    assert "'9'" in findings[0]["message"] and "JSON string" in findings[0]["message"]


def test_lyc314_bad_item_of_an_array_points_at_the_item(check, tmp_path):
    findings = only(check(training(lora_rank=["8", "many"])), "LYC314")
    assert {f["pointer"] for f in findings} == {"/lora_rank", "/lora_rank/1"}


def test_lyc314_object_for_an_option_whose_objects_are_dropped(check):
    findings = only(check(training(quantization_config={"quant_type": "int8"})), "LYC314")
    assert len(findings) == 1 and "silently lost" in findings[0]["message"]
    assert findings[0]["severity"] == "warning"  # SimpleTuner starts; the value is lost


@pytest.mark.parametrize(
    "settings",
    [
        {"learning_rate": "1e-4"},
        {"learning_rate": 0.0001, "adam_beta1": "0.9"},
        {"lora_rank": "16", "train_batch_size": " 2 "},
        {"use_ema": "yes", "push_to_hub": 0, "gradient_checkpointing": 1, "validation_disable_unconditional": "on"},
        {"tread_config": {"routes": [{"selection_ratio": 0.5, "start_layer_idx": 2, "end_layer_idx": -2}]}},
        {"webhook_config": [{"webhook_type": "raw", "callback_url": "https://example.com/hook"}]},
        {"peft_lora_target_modules": ["to_q", "to_k", "to_v"]},
        {"validation_resolution": "1024x1024,768x1344", "validation_guidance_skip_layers": "[7, 8, 9]"},
        {"lora_rank": [32]},
        {"learning_rate": "{env:LEARNING_RATE}"},
        {"validation_prompt": False, "seed": None, "hub_model_id": ""},
        {"validation_prompt_library": "config/user_prompt_library.json"},  # a checkbox that takes a path too
    ],
)
def test_lyc314_quiet_for_values_simpletuner_parses(check, settings):
    assert only(check(training(**settings)), "LYC314") == []


# -- LYC315 / LYC316 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["model_type", "model_family", "output_dir", "data_backend_config", "optimizer"])
def test_lyc315_each_required_option(check, missing):
    findings = only(check(training(**{missing: ...})), "LYC315")
    assert len(findings) == 1 and f"--{missing}" in findings[0]["message"]
    assert (findings[0]["line"], findings[0]["column"]) == (1, 1)


@pytest.mark.parametrize("dropped", [None, "", "false"])
def test_lyc315_required_option_with_a_value_the_loader_drops(check, dropped):
    findings = only(check(training(optimizer=dropped)), "LYC315")
    assert len(findings) == 1 and findings[0]["pointer"] == "/optimizer"


def test_lyc315_quiet_for_dashed_keys(check):
    assert only(check({f"--{key}": value for key, value in MINIMAL.items()}), "LYC315") == []


def test_lyc316_data_backend_config_not_found(check, tmp_path):
    findings = only(check(training(data_backend_config="config/datasets.json")), "LYC316")
    assert len(findings) == 1 and findings[0]["severity"] == "warning"
    assert str(tmp_path / "config/datasets.json") in findings[0]["message"]


def test_lyc316_found_relative_to_the_current_directory(check, tmp_path, monkeypatch, write):
    write(DATASETS, "run/config/datasets.json")
    monkeypatch.chdir(tmp_path / "run")
    assert only(check(training(data_backend_config="config/datasets.json")), "LYC316") == []


# -- the loader + argparse model against stdlib argparse ----------------------------------------------


def simpletuner_parser():
    """An argparse parser built from the data file the way SimpleTuner builds its own."""

    def parse_bool(text):
        truthy, falsy = st.bool_words()
        if text.strip().lower() in truthy:
            return True
        if text.strip().lower() in falsy:
            return False
        raise argparse.ArgumentTypeError(f"bad boolean {text!r}")

    parser = argparse.ArgumentParser(exit_on_error=False, add_help=False)

    def fail(message):
        raise ValueError(message)

    parser.error = fail
    for name, spec in st.data()["options"].items():
        strings = [f"--{name}"] + [f"--{alias}" for alias in spec.get("aliases", ())]
        kwargs = {"required": name in st.data()["required"]}
        if spec["type"] == "bool":
            kwargs.update(nargs="?", const=True, type=parse_bool)
        elif spec["type"] == "int":
            kwargs.update(type=int)
        elif spec["type"] == "float":
            kwargs.update(type=float)
        if "choices" in spec:
            kwargs.update(choices=spec["choices"], type=int if isinstance(spec["choices"][0], int) else str)
        parser.add_argument(*strings, **kwargs)
    return parser


def cli_args(config):
    args = []
    for key, value in config.items():
        resolution = st.resolve_key(key)
        output = st.loader_output(resolution.option, value)
        name = key.strip().lstrip("-")
        if resolution.how == "legacy":
            name = resolution.option
        for argument in output.values:
            args.append(f"--{name}" if argument is st.FLAG else f"--{name}={argument}")
    return args


CASES = [
    {},
    {"learning_rate": "fast"},
    {"learning_rate": "1e-4"},
    {"lora_rank": 16.0},
    {"lora_rank": "16"},
    {"lora_rank": True},
    {"use_ema": "maybe"},
    {"use_ema": "Yes"},
    {"use_ema": 1},
    {"use_ema": False},
    {"lora_type": "LyCORIS"},
    {"lora_type": " lycoris "},
    {"aspect_bucket_rounding": 12},
    {"aspect_bucket_rounding": "4"},
    {"lora_ranks": 16},
    {"lora_ra": 16},
    {"lora_": 16},
    {"--validation_step": 100},
    {"validation_prompt": True},
    {"output_dir": None},
    {"optimizer": "false"},
    {"gradient_checkpointing": "false"},
    {"train_batch_size": [1, 2]},
    {"train_batch_size": [1, "x"]},
    {"validation_steps": 100},
    {"validation_step_int": 100},
    {"model_fam": "flux2", "model_family": None},
]


@pytest.mark.parametrize("changes", CASES, ids=lambda changes: json.dumps(changes))
def test_lint_errors_match_what_argparse_refuses(check, changes):
    config = {**{key: value for key, value in MINIMAL.items() if not any(k.lstrip("-") == key for k in changes)}, **changes}
    try:
        simpletuner_parser().parse_args(cli_args(config))
        refused = False
    except (ValueError, argparse.ArgumentError):
        refused = True
    findings = check(config)
    errors = [f for f in findings if f["severity"] == "error" and f["code"] in ("LYC310", "LYC313", "LYC314", "LYC315")]
    # arrays argparse truncates are accepted by SimpleTuner, and reported by lint on purpose
    errors = [f for f in errors if "keeps only the last" not in f["message"]]
    assert bool(errors) == refused, errors


# -- data, generator and explain ----------------------------------------------------------------------


def test_data_records_the_simpletuner_version_and_the_facts_the_rules_need():
    data = st.data()
    assert "4.8.0" in data["source"] and "bc8e6ab7" in data["source"]
    assert data["allow_abbrev"] is True
    assert set(data["required"]) == {"model_type", "model_family", "output_dir", "data_backend_config", "optimizer"}
    assert st.option("lora_type")["choices"] == ["standard", "lycoris"]
    assert st.resolve_key("--validation_steps").option == "validation_step_interval"
    assert families.flavours("FLUX2") == ["dev", "klein-4b", "klein-9b"]
    assert families.is_video_family("wan") and not families.is_video_family("flux2")
    assert families.is_sdxl_unet_family("kolors") and not families.is_sdxl_unet_family("sd1x")


@pytest.mark.skipif(not (REFERENCE / "simpletuner_options.json").exists(), reason="reference files not available")
def test_generator_reproduces_the_shipped_data_atomically(tmp_path):
    from tools.build_simpletuner_data import main as build

    output = tmp_path / "data"
    status = build([str(REFERENCE / "simpletuner_options.json"), str(REFERENCE / "simpletuner_model_families.json"), "--output-dir", str(output)])
    assert status == 0
    for name in ("simpletuner_options.json", "families.json"):
        shipped = ROOT / "lyco_lint" / "data" / name
        assert (output / name).read_text(encoding="utf-8") == shipped.read_text(encoding="utf-8")
        assert (output / name).stat().st_mode & 0o644 == 0o644
    assert sorted(p.name for p in output.iterdir()) == ["families.json", "simpletuner_options.json"]  # no temporary left behind


def test_explain_a_training_option(capsys):
    assert main(["explain", "lora_type"]) == 0
    out = capsys.readouterr().out
    assert "# lora_type" in out and "one of standard, lycoris" in out and 'Default: "standard"' in out
    assert "LYC303" in out and "SimpleTuner 4.8.0" in out


def test_explain_lists_training_options_and_finds_dashed_names(capsys):
    from lyco_lint.explain import lookup

    assert lookup("--base_model_precision").kind == "training-option"
    topics = [t for t in __import__("lyco_lint.explain", fromlist=["all_topics"]).all_topics() if t.kind == "training-option"]
    assert 30 <= len(topics) <= 60
    from lyco_lint.knowledge.option_docs import OPTION_DOCS

    assert len(topics) == len(OPTION_DOCS)  # every documented option exists in SimpleTuner's parser
    assert all(topic.data["description"] and topic.data["type"] for topic in topics)


@pytest.mark.parametrize("code", [f"LYC3{n:02d}" for n in range(1, 17)])
def test_explain_every_training_rule(capsys, code):
    assert main(["explain", code]) == 0
    out = capsys.readouterr().out
    assert f"({code})" in out and "## Example" in out and "## Use instead" in out


def test_rule_examples_are_json():
    from lyco_lint.rules import load_rules

    for code, entry in load_rules().items():
        if code.startswith("LYC3"):
            json.loads(entry.example)
            json.loads(entry.fixed)


def test_float_values_are_passed_as_python_prints_them():
    # SimpleTuner calls str() on the loaded number: 1e-4 → "0.0001", 16.0 → "16.0"
    assert st.loader_output("learning_rate", 1e-4).values == ("0.0001",)
    assert st.loader_output("lora_rank", 16.0).values == ("16.0",)
    assert math.isnan(float(st.loader_output("learning_rate", float("nan")).values[0]))
