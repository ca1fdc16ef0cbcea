"""The dataset crop settings SimpleTuner users write: crop_style (random by default, center/centre, corner; face
refused), crop_aspect (square, preserve, closest, random) with crop_aspect_buckets, and the crop coordinates
each sample keeps. The data plan is torch-free and needs no model."""

import random
from pathlib import Path

import pytest

from train_fixtures import write_images

from lyco_lint.knowledge import datasets
from lyco_train.config import DatasetSpec, read_data_backends
from lyco_train.data import bucket_aspect, cover_size, crop_top_left, latent_cache_key, plan_geometry, training_size


def spec(**overrides) -> DatasetSpec:
    values = dict(id="d", instance_data_dir=Path("."), caption_strategy="filename", instance_prompt=None, resolution=64,
                  resolution_type="pixel_area", crop=True, repeats=0, cache_dir_vae=Path("."))
    values.update(overrides)
    return DatasetSpec(**values)


def test_the_defaults_are_simpletuners_from_lyco_lints_dataset_facts():
    plain = spec()
    assert plain.crop_style == datasets.default("crop_style") == "random"
    assert plain.crop_aspect == datasets.default("crop_aspect") == "square"


def test_crop_styles_cut_where_simpletuners_croppers_cut():
    rng = random.Random(0)
    resized, size = (160, 64), (64, 64)
    assert crop_top_left(resized, size, "center", rng) == (0, 48)
    assert crop_top_left(resized, size, "centre", rng) == (0, 48)
    assert crop_top_left(resized, size, "corner", rng) == (0, 0)
    draws = {crop_top_left(resized, size, "random", random.Random(seed)) for seed in range(40)}
    assert all(top == 0 and 0 <= left <= 96 for top, left in draws) and len(draws) > 20
    assert crop_top_left((64, 64), (64, 64), "random", rng) == (0, 0)  # nothing to cut


def test_a_random_crop_is_reproducible_and_differs_between_images_and_datasets():
    a = plan_geometry(160, 64, spec(), 64, random.Random("lyco-crop:d:aaaa"))
    assert a == plan_geometry(160, 64, spec(), 64, random.Random("lyco-crop:d:aaaa"))
    others = {plan_geometry(160, 64, spec(), 64, random.Random(f"lyco-crop:d:{digest}")).crop_top_left for digest in "bcdefgh"}
    assert len(others | {a.crop_top_left}) > 3
    assert a.size == (64, 64) and a.resized == (160, 64)


def test_crop_aspects():
    rng = random.Random(1)
    square = spec(resolution=1024)
    assert plan_geometry(3000, 2000, square, 64, rng).size == (1024, 1024)
    preserve = spec(resolution=1024, crop_aspect="preserve")
    assert plan_geometry(3000, 2000, preserve, 64, rng).size == training_size(3000, 2000, spec(resolution=1024, crop=False), 64)
    buckets = ((0.75, None), (1.0, None), (1.5, None))
    closest = spec(resolution=1024, crop_aspect="closest", crop_aspect_buckets=buckets)
    assert plan_geometry(3000, 2000, closest, 64, rng).size == (1280, 832)  # aspect 1.5 at 1024²
    assert plan_geometry(2000, 2900, closest, 64, rng).size == (896, 1152)  # 0.69 -> 0.75
    weighted = ((0.5, 0.0), (2.0, 1.0))
    assert bucket_aspect(1.0, "random", weighted, random.Random(3)) == 2.0  # a zero weight is never drawn
    uniform = {bucket_aspect(1.0, "random", buckets, random.Random(seed)) for seed in range(30)}
    assert uniform == {0.75, 1.0, 1.5}
    drawn = plan_geometry(3000, 2000, spec(resolution=1024, crop_aspect="random", crop_aspect_buckets=buckets), 64, random.Random(4))
    assert drawn.size in {(896, 1152), (1024, 1024), (1280, 832)}


def test_the_cover_size_holds_the_crop():
    assert cover_size((40, 24), (64, 64)) == (107, 64)
    assert cover_size((3000, 2000), (1280, 832)) == (1280, 853)


def test_without_crop_the_rounding_leftover_is_cut_by_crop_style():
    bucket = spec(resolution=1024, crop=False, crop_style="corner")
    geometry = plan_geometry(1000, 700, bucket, 64, random.Random(0))
    assert geometry.size == training_size(1000, 700, bucket, 64) and geometry.crop_top_left == (0, 0)
    centred = plan_geometry(1000, 700, spec(resolution=1024, crop=False, crop_style="center"), 64, random.Random(0))
    assert centred.crop_top_left == ((centred.resized[1] - centred.size[1]) // 2, (centred.resized[0] - centred.size[0]) // 2)


def test_the_latent_cache_key_follows_the_crop():
    one = plan_geometry(160, 64, spec(crop_style="corner"), 64, random.Random(0))
    two = plan_geometry(160, 64, spec(crop_style="center"), 64, random.Random(0))
    assert latent_cache_key("x", one, "vae") != latent_cache_key("x", two, "vae")
    assert latent_cache_key("x", one, "vae") == latent_cache_key("x", one, "vae")


def write_backends(tmp_path: Path, **entry) -> Path:
    import json

    write_images(tmp_path / "images", [("a.png", (32, 32), (1, 2, 3), "a")])
    path = tmp_path / "multidatabackend.json"
    path.write_text(json.dumps([{"id": "d", "type": "local", "instance_data_dir": str(tmp_path / "images"), **entry}]))
    return path


VALUES = {"caption_strategy": "textfile", "instance_prompt": None, "resolution": 64, "resolution_type": "pixel_area",
          "output_dir": "out", "model_family": "sdxl", "cache_dir_vae": "", "cache_dir_text": "cache"}


@pytest.mark.parametrize("entry, style, aspect, buckets", [
    ({"crop": True}, "random", "square", ()),
    ({"crop": True, "crop_style": "centre"}, "centre", "square", ()),
    ({"crop": True, "crop_style": "corner", "crop_aspect": "preserve"}, "corner", "preserve", ()),
    ({"crop": True, "crop_aspect": "closest", "crop_aspect_buckets": [1, 1.5]}, "random", "closest", ((1.0, None), (1.5, None))),
    ({"crop": True, "crop_aspect": "random", "crop_aspect_buckets": [{"aspect": 1.0, "weight": 0.25}, {"aspect": 0.75, "weight": 0.75}]},
     "random", "random", ((1.0, 0.25), (0.75, 0.75))),
])
def test_crop_settings_are_read_as_written(tmp_path, entry, style, aspect, buckets):
    (dataset,), _embeds = read_data_backends(write_backends(tmp_path, **entry), VALUES)
    assert (dataset.crop_style, dataset.crop_aspect, dataset.crop_aspect_buckets) == (style, aspect, buckets)
