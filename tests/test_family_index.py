"""The shipped family module index must match what the pinned diffusers really builds.

The linter trusts ``lyco_lint/data/family_modules.json`` to say which module class names each
model family contains.  If diffusers renames a class (as it did when Flux 2 got its own
``Flux2Attention`` instead of the generic ``Attention``), a stale index would let a LyCORIS
config that targets nothing pass as valid.  These tests rebuild a few families on the meta
device (no weights, a few seconds) and compare them with the shipped entries.
"""

import json
from pathlib import Path

import pytest
from conftest import REFERENCE

diffusers = pytest.importorskip("diffusers")
pytest.importorskip("torch")

from tools.build_family_index import FAMILY_CONFIGS, GENERATED_BY, build_family  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
INDEX_PATH = ROOT / "lyco_lint" / "data" / "family_modules.json"


@pytest.fixture(scope="module")
def index():
    return json.loads(INDEX_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def same_diffusers(index):
    """Skip comparisons that only hold for the diffusers version the index was built with."""
    if index["diffusers_version"] != diffusers.__version__:
        pytest.skip(
            f"index built with diffusers {index['diffusers_version']}, installed {diffusers.__version__}: "
            f"rebuild it with `{GENERATED_BY}`"
        )


def test_index_header_and_families(index):
    assert index["generated_by"] == GENERATED_BY
    assert sorted(index["families"]) == sorted(FAMILY_CONFIGS)


def test_index_was_built_with_the_installed_diffusers(index, same_diffusers):
    assert index["diffusers_version"] == diffusers.__version__


@pytest.mark.parametrize("family", ["flux2", "flux", "sdxl"])
def test_regenerated_family_equals_shipped_entry(index, same_diffusers, family):
    assert build_family(family) == index["families"][family]


def test_flux2_uses_its_own_attention_and_feed_forward_classes(index):
    classes = set(index["families"]["flux2"]["classes"])
    assert {"Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention"} <= classes
    assert not {"Attention", "FeedForward"} & classes


def test_unet_family_has_the_generic_diffusers_blocks(index):
    classes = set(index["families"]["sdxl"]["classes"])
    assert {"Attention", "FeedForward", "BasicTransformerBlock", "Transformer2DModel", "ResnetBlock2D"} <= classes


def test_family_names_and_classes_match_simpletuner(index):
    """Family keys must be SimpleTuner --model_family choices, with the diffusers class SimpleTuner's model
    copies (its registry's ``model_class``; a UNet family trains a subclass of it)."""
    reference = json.loads((REFERENCE / "simpletuner_model_families.json").read_text(encoding="utf-8"))["families"] if (REFERENCE / "simpletuner_model_families.json").exists() else None
    if reference is None:
        pytest.skip("SimpleTuner reference (shared/reference/simpletuner_model_families.json) not available")
    for family, entry in index["families"].items():
        assert family in reference, family
        assert entry["model_class"] == reference[family]["model_class"], family
