"""report_to through accelerate's trackers: tensorboard offline (read back with tensorboard's own reader: the
scalars of every step and the validation images), wandb in offline mode where it is installed, and a tracker
that is not there is a clear error before any work."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("lycoris")

from train_fixtures import metrics, one_thread, pipeline, write_setup  # noqa: E402,F401 (fixtures)

from lyco_train import run  # noqa: E402

VALIDATION = {
    "validation_prompt": "a red circle", "validation_step_interval": 2, "num_validation_images": 2, "validation_resolution": "32",
    "validation_num_inference_steps": 2, "validation_guidance": 1.0, "max_train_steps": 2,
}


def test_tensorboard_event_file_holds_the_scalars_and_the_validation_images(tmp_path, pipeline):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = write_setup(tmp_path, pipeline, options={**VALIDATION, "report_to": "tensorboard", "tracker_project_name": "shapes"})
    assert run(config) == 0
    logs = tmp_path / "output" / "logs" / "shapes"
    events = list(logs.glob("events.out.tfevents.*"))
    assert len(events) == 1
    reader = EventAccumulator(str(logs), size_guidance={"images": 0, "scalars": 0})
    reader.Reload()
    tags = reader.Tags()
    assert {"loss", "lr", "grad_norm"} <= set(tags["scalars"])
    rows = metrics(tmp_path / "output")
    assert [event.step for event in reader.Scalars("loss")] == [1, 2]
    assert [event.value for event in reader.Scalars("loss")] == pytest.approx([row["loss"] for row in rows], rel=1e-6)
    assert [event.value for event in reader.Scalars("lr")] == pytest.approx([row["lr"] for row in rows])
    assert set(tags["images"]) == {"validation/unconditional-32x32", "validation/validation-32x32"}
    event = reader.Images("validation/validation-32x32")[0]
    assert event.step == 2 and (event.width, event.height) == (64, 32)  # tensorboard tiles a prompt's 2 images
    import io

    from PIL import Image

    tiled = Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB")
    for index in (0, 1):
        written = Image.open(tmp_path / "output" / "validation" / "step-000002" / f"validation-{index + 1}-32x32.png").convert("RGB")
        assert list(tiled.crop((32 * index, 0, 32 * index + 32, 32)).getdata()) == list(written.getdata())


def test_wandb_offline_run_records_the_run(tmp_path, pipeline, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    config = write_setup(tmp_path, pipeline, options={**VALIDATION, "report_to": "wandb", "tracker_run_name": "tiny"})
    assert run(config) == 0
    runs = list((tmp_path / "output" / "logs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb"))  # the run's records, synced later with `wandb sync`
    media = [path.name for path in (runs[0] / "files" / "media" / "images").rglob("*.png")] if (runs[0] / "files" / "media").is_dir() else []
    assert len(media) == 4  # two prompts × two images at step 2


def test_a_tracker_that_is_not_installed_is_an_error_before_any_work(tmp_path, pipeline, capsys, monkeypatch):
    import importlib.util

    from lyco_train import trackers

    real = importlib.util.find_spec
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name, *args: None if name == "wandb" else real(name, *args))
    config = write_setup(tmp_path, pipeline, options={**VALIDATION, "report_to": "wandb"})
    assert run(config) == 1
    out = capsys.readouterr().out
    assert "error: report_to wandb: the wandb package is not installed; pip install 'lyco[trackers]' (or pip install wandb), or set \"report_to\": \"none\"" in out
    assert not (tmp_path / "output").exists() and not (tmp_path / "cache").exists()  # nothing encoded, nothing written
