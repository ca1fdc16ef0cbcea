"""LYC0xx: every code fires on a broken file and stays quiet on the fixed one."""

import pytest

from conftest import VALID_LYCORIS, changed, codes


def with_(**changes):
    return changed(VALID_LYCORIS, **changes)


def only(findings, code):
    return [finding for finding in findings if finding["code"] == code]


def test_a_valid_config_has_no_findings(lint):
    assert lint(VALID_LYCORIS) == []


def test_lyc001_invalid_json_points_at_the_trailing_comma(lint):
    findings = lint('{\n  "algo": "lokr",\n  "multiplier": 1.0,\n}')
    assert codes(findings) == ["LYC001"]
    assert (findings[0]["line"], findings[0]["column"]) == (3, 20)
    assert "trailing comma" in findings[0]["message"]


def test_lyc002_duplicate_key_points_at_the_second_occurrence(lint):
    findings = lint('{"algo": "lora", "multiplier": 1, "linear_dim": 4,\n "linear_alpha": 1, "linear_dim": 8}')
    duplicate = only(findings, "LYC002")
    assert len(duplicate) == 1 and (duplicate[0]["line"], duplicate[0]["column"]) == (2, 21)
    assert "'linear_dim' appears twice" in duplicate[0]["message"]


def test_lyc002_counts_dashed_and_plain_training_keys_as_one(lint):
    text = '{"model_type": "lora", "--model_type": "full"}'
    assert "LYC002" in codes(lint(text, name="config.json"))
    assert "LYC002" not in codes(lint('{"model_type": "lora"}', name="config.json"))


def test_lyc002_an_option_and_its_legacy_name_with_different_values_is_a_warning(lint):
    text = '{"model_type": "lora", "validation_steps": 100, "validation_step_interval": 200}'
    duplicate = only(lint(text, name="config.json"), "LYC002")
    assert len(duplicate) == 1 and duplicate[0]["severity"] == "warning"
    assert "validation_steps" in duplicate[0]["message"] and "'validation_step_interval'" in duplicate[0]["message"]
    # SimpleTuner's own examples set both to the same value: harmless
    same = '{"model_type": "lora", "validation_steps": 100, "validation_step_interval": 100}'
    assert only(lint(same, name="config.json"), "LYC002") == []


def test_lyc002_applies_to_dataset_configs(lint, tmp_path, monkeypatch):
    # SimpleTuner reads multidatabackend.json with json.load, which keeps the last "repeats" without a word
    monkeypatch.chdir(tmp_path)
    text = ('[{"id": "a", "type": "local", "instance_data_dir": ".", "caption_strategy": "filename", "repeats": 5, '
            '"repeats": 1},\n {"id": "te", "dataset_type": "text_embeds", "default": true, "type": "local", '
            '"cache_dir": "cache/text"}]')
    duplicate = only(lint(text, name="multidatabackend.json"), "LYC002")
    assert [(f["pointer"], f["line"], f["column"]) for f in duplicate] == [("/0/repeats", 1, text.index('"repeats": 1') + 1)]
    assert duplicate[0]["fix"]["applicability"] == "safe"


def test_lyc003_wrong_root_type(lint):
    findings = lint('[{"algo": "lora"}]')
    assert codes(findings) == ["LYC003"]
    assert "array" in findings[0]["message"]


def test_lyc004_unrecognized_file_named_explicitly(lint):
    findings = lint({"name": "not a config"}, name="package.json")
    assert codes(findings) == ["LYC004"]
    assert findings[0]["severity"] == "warning"


@pytest.mark.parametrize("missing", ["algo", "multiplier", "linear_alpha", "linear_dim"])
def test_lyc010_missing_required(lint, missing):
    findings = lint(with_(**{missing: ...}))
    assert codes(findings) == ["LYC010"]
    assert f"'{missing}'" in findings[0]["message"]
    assert findings[0]["pointer"] == ""


def test_lyc010_reports_every_missing_key(lint):
    findings = lint({"linear_dim": 4})
    assert codes(findings) == ["LYC010"] * 3
    assert {f["message"].split("'")[1] for f in findings} == {"algo", "multiplier", "linear_alpha"}


def test_lyc010_linear_dim_may_be_omitted_only_with_json_true_full_matrix(lint):
    assert lint(with_(algo="lokr", linear_dim=..., full_matrix=True)) == []
    findings = lint(with_(algo="lokr", linear_dim=..., full_matrix="true"))
    assert "LYC010" in codes(findings) and "LYC014" in codes(findings)


def test_lyc011_unknown_key_suggests_the_closest(lint):
    findings = lint(with_(algo="lokr", linear_alpha=16, factr=8))  # alpha = dim: scale 1, no LYC115
    assert codes(findings) == ["LYC011"]
    assert "did you mean 'factor'?" in findings[0]["message"]
    assert findings[0]["pointer"] == "/factr"


def test_lyc011_unknown_key_in_a_map_entry_names_the_map_spelling(lint):
    config = with_(algo="lokr", apply_preset={"module_algo_map": {"Attention": {"dora_wd": True}}})
    findings = only(lint(config), "LYC011")
    assert len(findings) == 1
    assert "weight_decompose" in findings[0]["message"]
    assert findings[0]["pointer"] == "/apply_preset/module_algo_map/Attention/dora_wd"


@pytest.mark.parametrize(
    "key, value, words",
    [("linear_dim", "16", "without quotes"), ("factor", 2.5, "an integer"), ("multiplier", "1", "a number")],
)
def test_lyc012_wrong_type(lint, key, value, words):
    findings = lint(with_(algo="lokr", linear_alpha=16, **{key: value}))
    assert codes(findings) == ["LYC012"]
    assert words in findings[0]["message"]


def test_lyc012_points_at_the_value(lint):
    findings = lint('{"algo": "lora", "multiplier": 1.0, "linear_dim": "16", "linear_alpha": 8}')
    assert (findings[0]["line"], findings[0]["column"], findings[0]["end_column"]) == (1, 51, 55)


@pytest.mark.parametrize(
    "key, value",
    [("linear_dim", 0), ("dropout", 1.0), ("rank_dropout", -0.1), ("factor", 0), ("factor", -2), ("linear_alpha", -1)],
)
def test_lyc013_out_of_range(lint, key, value):
    findings = lint(with_(algo="lokr", **{key: value}))
    assert "LYC013" in codes(findings)


def test_lyc013_accepts_the_edges_of_the_ranges(lint):
    assert lint(with_(algo="lokr", dropout=0.0, factor=-1, linear_alpha=0)) == []


@pytest.mark.parametrize("value", [0, "no", "false", None, 1])
def test_lyc014_non_boolean_flag(lint, value):
    findings = lint(with_(bypass_mode=value))
    assert codes(findings) == ["LYC014"]
    assert "JSON boolean" in findings[0]["message"]


def test_lyc014_applies_inside_map_entries(lint):
    config = with_(algo="lokr", apply_preset={"module_algo_map": {"Attention": {"full_matrix": "false"}}})
    assert "LYC014" in codes(lint(config))


@pytest.mark.parametrize("algo, hint", [("lycoris-lokr", "lokr"), ("dora", "dora_wd"), ("oft", "diag-oft"), ("diag_oft", "diag-oft")])
def test_lyc015_unknown_algo(lint, algo, hint):
    findings = lint(with_(algo=algo))
    assert codes(findings) == ["LYC015"]
    assert hint in findings[0]["message"]


def test_lyc015_top_level_algo_is_case_insensitive_like_lycoris(lint):
    assert lint(with_(algo="LoKr", linear_alpha=16)) == []


@pytest.mark.parametrize("alias, new", [("use_cp", "use_tucker"), ("disable_conv_cp", "use_tucker"), ("constrain", "constraint")])
def test_lyc016_deprecated_alias(lint, alias, new):
    value = 0.5 if alias == "constrain" else True
    findings = only(lint(with_(algo="lora", **{alias: value})), "LYC016")
    assert len(findings) == 1 and f"'{new}'" in findings[0]["message"]


def test_lyc016_not_for_the_current_name(lint):
    assert lint(with_(use_tucker=True)) == []
