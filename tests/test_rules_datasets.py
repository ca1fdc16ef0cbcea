"""LYC5xx: SimpleTuner's dataset config (multidatabackend.json), standalone and through a training config, and the
one home of its facts (knowledge.datasets, generated from the reference reading of SimpleTuner)."""

from __future__ import annotations

import json

import pytest

from conftest import EXAMPLES, REFERENCE, codes
from lyco_lint.engine import lint_paths

IMAGES = {"id": "photos", "type": "local", "instance_data_dir": "."}
TEXT = {"id": "text-embeds", "dataset_type": "text_embeds", "type": "local", "default": True, "cache_dir": "cache/text"}


def lint_datasets(write, entries, name="multidatabackend.json", **options):
    from lyco_lint.engine import Options

    path = write(entries if isinstance(entries, str) else json.dumps(entries, indent=2), name)
    return [f.as_dict() for f in lint_paths([str(path)], Options(**options)).findings]


def by_code(findings, code):
    return [f for f in findings if f["code"] == code]


# -- the facts -------------------------------------------------------------------------------------------------


def test_dataset_facts_have_one_home_with_a_clean_api():
    from lyco_lint.knowledge import datasets as ds

    assert ds.default("crop_style") == "random" and ds.default("resolution_type") == "pixel_area"
    assert ds.choices("crop_style") == ("random", "corner", "center", "centre", "face")
    assert ds.choices("video.bucket_strategy") == ("aspect_ratio", "resolution_frames")
    key = ds.dataset_key("disabled")
    assert key.reading == ds.TRUTHINESS and key.source.startswith("simpletuner/helpers/data_backend/factory.py:")
    assert "crop" in ds.backend_keys("image", "local") and "crop" not in ds.backend_keys("text_embeds", "local")
    assert "aws_bucket_name" in ds.backend_keys("image", "aws") and "aws_bucket_name" not in ds.backend_keys("image", "local")
    assert "default" in ds.backend_keys("text_embeds", "local")
    assert ds.allowed_backend_types("text_embeds") == ("local", "memory", "aws")
    assert ds.entry_dataset_type({"dataset_type": " Video "}) == "video" and ds.entry_dataset_type({"conditioning_type": "mask"}) == "conditioning"
    assert ds.is_disabled({"disabled": "false"}) and not ds.is_disabled({"disable": False})
    assert ds.as_bool("off") is False and ds.as_bool("maybe") is None


@pytest.mark.skipif(not (REFERENCE / "simpletuner_datasets.json").exists(), reason="reference files not available")
def test_the_data_file_is_what_the_generator_makes(tmp_path):
    from tools.build_dataset_data import main as build

    output = tmp_path / "datasets.json"
    assert build([str(REFERENCE / "simpletuner_datasets.json"), "--output", str(output)]) == 0
    shipped = json.loads((EXAMPLES.parent / "lyco_lint" / "data" / "simpletuner_datasets.json").read_text(encoding="utf-8"))
    assert json.loads(output.read_text(encoding="utf-8")) == shipped
    reference = json.loads((REFERENCE / "simpletuner_datasets.json").read_text(encoding="utf-8"))
    assert set(reference["keys"]) <= set(shipped["keys"])  # every key the reading found, plus those in its notes
    assert shipped["keys"]["type"]["choices"] == reference["keys"]["type"]["choices"]  # no `local` default: required


# -- recognition and pairing -----------------------------------------------------------------------------------


def test_a_dataset_config_is_recognised_by_content_and_passes(write, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    findings = lint_datasets(write, [IMAGES, TEXT], name="datasets.json")
    assert findings == []
    from lyco_lint.documents import DATASET, Document

    document = Document.read(write(json.dumps([IMAGES]), "anything.json"), "anything.json")
    assert document.kind == DATASET
    assert Document.read(write("[1, 2]", "numbers.json"), "numbers.json").kind != DATASET


def test_pre_commit_style_run_on_the_shipped_dataset_configs_has_no_errors():
    result = lint_paths([str(EXAMPLES / "config" / "multidatabackend.json"), str(EXAMPLES / "train" / "multidatabackend.json")])
    assert [f for f in result.findings if f.severity.value == "error" or f.code == "LYC003"] == []
    assert {d.kind for d in result.documents} == {"dataset"}


def test_linted_through_the_training_config_with_positions_in_its_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "multidatabackend.json").write_text(json.dumps([dict(IMAGES, crop_styl="center"), TEXT], indent=2))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "model_type": "lora", "model_family": "flux2", "output_dir": "out", "optimizer": "adamw_bf16",
        "data_backend_config": "multidatabackend.json", "caption_strategy": "instanceprompt",
    }))
    findings = [f.as_dict() for f in lint_paths([str(config)]).findings]
    unknown = by_code(findings, "LYC502")
    assert len(unknown) == 1 and unknown[0]["file"] == "multidatabackend.json" and unknown[0]["line"] == 6
    # the training config's caption_strategy applies to the dataset: instanceprompt needs an instance_prompt
    assert [f["file"] for f in by_code(findings, "LYC503")] == ["multidatabackend.json"]


def test_a_single_dataset_object_is_a_shape_error(write):
    assert codes(lint_datasets(write, IMAGES)) == ["LYC501"]
    assert codes(lint_datasets(write, [])) == ["LYC501"]
    found = lint_datasets(write, [IMAGES, 3])
    assert "LYC501" in codes(found) and by_code(found, "LYC501")[0]["pointer"] == "/1"


# -- the rules -------------------------------------------------------------------------------------------------


def test_unknown_keys_with_did_you_mean_and_keys_of_other_dataset_types(write, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    found = lint_datasets(write, [dict(IMAGES, repeat=2, caption_shuffle={"splt_on": "comma"}), dict(TEXT, crop=True), dict(IMAGES, id="s3", type="aws", instance_data_dir="x", csv_file="a.csv")])
    messages = {f["pointer"]: f["message"] for f in by_code(found, "LYC502")}
    assert "did you mean 'repeats'?" in messages["/0/repeat"] and "split_on" in messages["/0/caption_shuffle/splt_on"]
    assert "not read for text_embeds" in messages["/1/crop"] and "not read for image datasets with type aws" in messages["/2/csv_file"]


def test_keys_that_do_nothing_or_stop_simpletuner(write, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    found = lint_datasets(write, [dict(IMAGES, ignore_epochs=True, hash_filenames=True, disable_vae_cache=True), TEXT])
    severities = {f["pointer"]: f["severity"] for f in by_code(found, "LYC502")}
    assert severities == {"/0/ignore_epochs": "warning", "/0/hash_filenames": "warning", "/0/disable_vae_cache": "error"}


def test_string_false_is_true_for_truthiness_flags(write, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    found = lint_datasets(write, [dict(IMAGES, crop="false"), dict(IMAGES, id="b", disabled="false"), TEXT])
    messages = [f["message"] for f in by_code(found, "LYC504")]
    assert any("images are cropped" in m for m in messages) and any("the dataset is dropped" in m for m in messages)
    # _as_bool flags understand the words
    assert by_code(lint_datasets(write, [dict(IMAGES, vae_cache_ondemand="false"), TEXT]), "LYC504") == []


def test_text_embeds_default_is_mixed(write, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    found = lint_datasets(write, [IMAGES, dict(TEXT, default="true")])
    assert [f["pointer"] for f in by_code(found, "LYC504")] == ["/1/default"]
    assert "`is True`" in by_code(found, "LYC504")[0]["message"]


@pytest.mark.parametrize("change, words", [
    ({"crop_style": "middle"}, "not one of SimpleTuner's choices"),
    ({"crop_style": "random|center|corner"}, "lists the choices"),
    ({"resolution_type": "pixels"}, "did you mean 'pixel'?"),
    ({"caption_strategy": "instance_prompt"}, "instanceprompt"),
    ({"dataset_type": "Image"}, "half-works"),
    ({"type": "memory"}, "cannot hold image datasets"),
    ({"resolution": "1024"}, "crashes"),
    ({"resolution": 1024.0}, "JSON integer"),
    ({"train_batch_size": 4.0}, "positive integer"),
    ({"repeats": "x"}, "ValueError"),
    ({"probability": 0}, "never sampled"),
    ({"maximum_image_size": 1.5, "target_downsample_size": 1.0}, "looks like megapixels"),
])
def test_values_simpletuner_rejects_or_misreads(write, monkeypatch, tmp_path, change, words):
    monkeypatch.chdir(tmp_path)
    found = by_code(lint_datasets(write, [dict(IMAGES, **change), TEXT]), "LYC504")
    assert found and words in found[0]["message"], found


def test_references_caches_and_schedule(write, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    found = lint_datasets(write, [
        dict(IMAGES, conditioning_data="nope", cache_dir_vae="cache/vae"),
        dict(IMAGES, id="b", cache_dir_vae="cache/vae/", start_epoch=3, end_epoch=2),
        TEXT,
    ])
    messages = " ".join(f["message"] for f in by_code(found, "LYC504"))
    assert "names no enabled dataset" in messages and "sharing a VAE cache" in messages and "before start_epoch" in messages


def test_required_keys_per_storage_type(write, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    found = lint_datasets(write, [
        {"id": "a", "instance_data_dir": "."},
        {"id": "b", "type": "local"},
        {"id": "c", "type": "aws", "aws_bucket_name": "x"},
        {"id": "d", "type": "csv", "csv_file": "x.csv"},
        {"id": "e", "type": "huggingface"},
        {"id": "f", "type": "local", "instance_data_dir": ".", "caption_strategy": "instanceprompt"},
        {"id": "g", "type": "local", "instance_data_dir": ".", "dataset_type": "video"},
        TEXT,
    ])
    required = by_code(found, "LYC503")
    text = " ".join(f["message"] for f in required)
    for words in ("storage 'type'", "'instance_data_dir'", "aws_endpoint_url", "csv_cache_dir", "\"caption_strategy\": \"csv\"", "'dataset_name'", "'instance_prompt'", "num_frames"):
        assert words in text, words
    assert next(f for f in required if "num_frames" in f["message"])["severity"] == "warning"


def test_at_least_one_enabled_dataset_of_samples(write):
    found = lint_datasets(write, [dict(IMAGES, disabled=True), TEXT])
    assert [f["pointer"] for f in by_code(found, "LYC503")] == [""]


def test_text_embeds_references_and_defaults(write, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    found = lint_datasets(write, [dict(IMAGES, text_embeds="text-embed"), TEXT, dict(TEXT, id="other", cache_dir="c2")])
    messages = [f["message"] for f in by_code(found, "LYC506")]
    assert any("did you mean 'text-embeds'?" in m for m in messages)
    assert any("Only one text embed backend can be marked as default" in m for m in messages)
    assert by_code(lint_datasets(write, [dict(IMAGES, text_embeds="gone"), dict(TEXT, id="gone", disabled=True)]), "LYC506")[0]["message"].count("is disabled") == 1


def test_duplicate_ids(write, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    found = lint_datasets(write, [IMAGES, dict(IMAGES, instance_data_dir=".."), TEXT, dict(TEXT, disabled=True)])
    assert [f["pointer"] for f in by_code(found, "LYC507")] == ["/1/id"]


def test_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "project" / "datasets" / "photos").mkdir(parents=True)
    config = tmp_path / "project" / "multidatabackend.json"
    config.write_text(json.dumps([dict(IMAGES, instance_data_dir="datasets/photos"), TEXT]))
    monkeypatch.chdir(tmp_path / "project")
    assert by_code([f.as_dict() for f in lint_paths([str(config)]).findings], "LYC505") == []
    monkeypatch.chdir(tmp_path)
    found = by_code([f.as_dict() for f in lint_paths([str(config)]).findings], "LYC505")
    assert len(found) == 1 and "exists relative to the config file" in found[0]["message"]
    monkeypatch.setenv("DATA_ROOT", str(tmp_path / "project"))
    config.write_text(json.dumps([dict(IMAGES, instance_data_dir="{env:DATA_ROOT}/datasets/photos"), TEXT]))
    assert by_code([f.as_dict() for f in lint_paths([str(config)]).findings], "LYC505") == []


def test_a_cached_bucket_config_that_wins_over_the_edit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    cache = tmp_path / "photos" / "aspect_ratio_bucket_indices_photos.json"
    cache.write_text(json.dumps({"config": {"crop": False, "resolution": 1024, "repeats": 0}, "aspect_ratio_bucket_indices": {"1.0": ["a.png"]}}))
    config = tmp_path / "multidatabackend.json"
    config.write_text(json.dumps([dict(IMAGES, instance_data_dir="photos", crop=True, resolution=1024, repeats=3), TEXT]))
    found = by_code([f.as_dict() for f in lint_paths([str(config)]).findings], "LYC508")
    assert len(found) == 1 and "crop (false cached, true here)" in found[0]["message"] and "repeats" not in found[0]["message"]
    assert "--override_dataset_config" in found[0]["message"]
    config.write_text(json.dumps([dict(IMAGES, instance_data_dir="photos", crop=False), TEXT]))
    assert by_code([f.as_dict() for f in lint_paths([str(config)]).findings], "LYC508") == []


def test_disabled_entries_are_not_checked_beyond_their_flag(write, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    found = lint_datasets(write, [IMAGES, {"id": "old", "disabled": True, "crop_styl": 1, "type": "nope"}, TEXT])
    assert found == []


def test_explain_documents_every_dataset_key(capsys):
    from lyco_lint.cli import main
    from lyco_lint.knowledge.datasets import key_names

    assert main(["explain", "crop_style"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# crop_style (dataset config)") and "Default: \"random\"" in out and "factory.py:" in out
    assert main(["explain", "--format", "json"]) == 0
    names = {t["name"] for t in json.loads(capsys.readouterr().out) if t["kind"] == "dataset-key"}
    assert names == set(key_names())
    assert main(["explain", "dataset.resolution"]) == 0 and "(dataset config)" in capsys.readouterr().out


def test_the_global_instance_prompt_spelling_is_refused_by_the_datasets_that_inherit_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "multidatabackend.json").write_text(json.dumps([IMAGES, TEXT]))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "model_type": "lora", "model_family": "flux2", "output_dir": "out", "optimizer": "adamw_bf16",
        "data_backend_config": "multidatabackend.json", "caption_strategy": "instance_prompt", "instance_prompt": "a photo",
    }))
    found = [f for f in lint_paths([str(config)]).findings if f.code == "LYC504"]
    assert [(f.file, f.pointer) for f in found] == [("config.json", "/caption_strategy")]
    assert "dataset 'photos'" in found[0].message
