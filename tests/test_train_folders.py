"""The model folder must be the family's: a pipeline of another family, a component folder (transformer/, unet/)
or a pipeline missing a component is refused before anything is loaded — dry run included — saying what the
folder is and which family it fits. Only JSON files are read (the tiny pipelines are real ones)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from family_fixtures import FLUX_LOKR, SDXL_ATTENTION_LORA, tiny_flux_pipeline, tiny_sdxl_pipeline, write_family_setup  # noqa: E402
from train_fixtures import FLUX2_LOKR, tiny_pipeline, write_setup  # noqa: E402

from lyco_train import run  # noqa: E402
from lyco_train.config import ConfigError  # noqa: E402
from lyco_train.run import prepare_run  # noqa: E402

GENERIC_ATTENTION = {"algo": "lora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 4, "apply_preset": {"target_module": ["Attention"]}}
SCRIPT = Path(sys.executable).with_name("lyco")


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    return tiny_sdxl_pipeline(tmp_path_factory)


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    return tiny_flux_pipeline(tmp_path_factory)


@pytest.fixture(scope="module")
def flux2(tmp_path_factory):
    return tiny_pipeline(tmp_path_factory)


def nothing_written(root: Path) -> bool:
    return not (root / "output").exists() and not (root / "cache").exists()


def refused(config: Path) -> str:
    with pytest.raises(ConfigError) as error:
        prepare_run(config, print)
    return str(error.value)


def test_an_sdxl_folder_under_flux2_is_named_with_its_family(tmp_path, sdxl, capsys):
    # the LyCORIS config fits the UNet, so lint passes; the family check stops the dry run
    config = write_setup(tmp_path, sdxl, lycoris=GENERIC_ATTENTION)
    assert run(config, dry_run=True) == 1
    out = capsys.readouterr().out
    assert f"error: pretrained_model_name_or_path {sdxl} is a StableDiffusionXLPipeline folder" in out
    assert 'which fits model_family "sdxl" (SDXL), not model_family "flux2"' in out and "set model_family" in out
    assert "Traceback" not in out and nothing_written(tmp_path)


def test_with_flux2_targets_the_gate_names_the_folder_next_to_the_class_findings(tmp_path, sdxl, capsys):
    config = write_setup(tmp_path, sdxl, lycoris=FLUX2_LOKR)
    assert run(config, dry_run=True) == 1
    out = capsys.readouterr().out
    assert "LYC205 [error]" in out  # Flux2Attention is not a UNet class ...
    assert 'lyco train: also: pretrained_model_name_or_path' in out and 'fits model_family "sdxl"' in out  # ... because the folder is SDXL
    assert nothing_written(tmp_path)


def test_a_flux1_folder_under_flux2_and_a_flux2_folder_under_flux(tmp_path, flux, flux2):
    message = refused(write_setup(tmp_path / "a", flux, lycoris=GENERIC_ATTENTION))
    assert "is a FluxPipeline folder" in message and 'fits model_family "flux" (FLUX.1)' in message
    message = refused(write_family_setup(tmp_path / "b", flux2, "flux", lycoris=FLUX_LOKR))
    assert "is a Flux2KleinPipeline folder" in message and 'fits model_family "flux2" (FLUX.2)' in message
    message = refused(write_family_setup(tmp_path / "c", flux, "sdxl", lycoris=SDXL_ATTENTION_LORA))
    assert "is a FluxPipeline folder" in message and 'not model_family "sdxl"' in message


def test_a_path_to_the_transformer_folder_says_to_use_the_pipeline_folder(tmp_path, flux, sdxl, capsys):
    config = write_family_setup(tmp_path, flux / "transformer", "flux", lycoris=FLUX_LOKR)
    assert run(config, dry_run=True) == 1
    out = capsys.readouterr().out
    assert f"is a single component, the transformer/ folder of a FLUX.1 pipeline (FluxTransformer2DModel" in out
    assert f"the folder above, {flux}" in out and "TypeError" not in out and nothing_written(tmp_path)
    message = refused(write_family_setup(tmp_path / "unet", sdxl / "unet", "sdxl", lycoris=SDXL_ATTENTION_LORA))
    assert "the unet/ folder of an SDXL pipeline (UNet2DConditionModel" in message


def test_a_partial_download_is_checked_by_its_components(tmp_path, sdxl, flux):
    partial = tmp_path / "partial-sdxl"
    shutil.copytree(sdxl, partial)
    (partial / "model_index.json").unlink()
    message = refused(write_setup(tmp_path / "a", partial, lycoris=GENERIC_ATTENTION))
    assert "has no transformer/ component, which FLUX.2 training loads" in message
    assert 'looks like an SDXL pipeline (its unet/ is a UNet2DConditionModel), which fits model_family "sdxl"' in message
    # without model_index.json, but with the family's components, a folder is accepted (diffusers loads subfolders)
    prepare_run(write_family_setup(tmp_path / "b", partial, "sdxl", lycoris=SDXL_ATTENTION_LORA), print)
    # a component of the wrong class: a FLUX.1 folder whose vae/ is another model's
    mixed = tmp_path / "mixed-flux"
    shutil.copytree(flux, mixed)
    index = json.loads((mixed / "model_index.json").read_text())
    index["vae"] = ["diffusers", "AutoencoderKLFlux2"]
    (mixed / "model_index.json").write_text(json.dumps(index))
    message = refused(write_family_setup(tmp_path / "c", mixed, "flux", lycoris=FLUX_LOKR))
    assert "its vae is AutoencoderKLFlux2" in message and "trains with AutoencoderKL" in message


def test_a_missing_folder_is_an_error_before_anything_loads(tmp_path):
    message = refused(write_family_setup(tmp_path, tmp_path / "no-such-model", "sdxl", lycoris=SDXL_ATTENTION_LORA))
    assert "is not a folder" in message


@pytest.mark.skipif(not SCRIPT.exists(), reason="the lyco console script is not installed")
def test_the_console_script_exits_1_with_the_message(tmp_path, sdxl):
    config = write_setup(tmp_path, sdxl, lycoris=GENERIC_ATTENTION)
    done = subprocess.run([str(SCRIPT), "train", str(config), "--dry-run"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "is a StableDiffusionXLPipeline folder" in done.stdout and "Traceback" not in done.stdout + done.stderr
