"""What the trainer writes survives a crash or a power cut: checkpoints, the adapter and the caches are
written atomically through lyco_lint.atomic and flushed to disk (fsync), and no temporary file is left."""

import json
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("lycoris")

from safetensors.torch import load_file  # noqa: E402

from train_fixtures import FLUX2_LOKR, one_thread, pipeline  # noqa: E402,F401 (fixtures)

from lyco_train.adapter import WEIGHTS_NAME, build_adapter, save_adapter  # noqa: E402
from lyco_train.caching import write_tensor  # noqa: E402
from lyco_train.checkpoint import checkpoint_problem, load_checkpoint, save_checkpoint  # noqa: E402
from lyco_train.optim import build_optimizer, build_scheduler  # noqa: E402
from lyco_train.options import TrainingOptions  # noqa: E402

CHECKPOINT_FILES = {
    WEIGHTS_NAME, "optimizer.safetensors", "optimizer.json", "rng.safetensors", "rng.json",
    "training_state.json", "lycoris_config.json", "manifest.json",
}


@pytest.fixture
def fsyncs(monkeypatch):
    """The path of every file or folder flushed with os.fsync (None where /proc cannot name it)."""
    synced = []
    original = os.fsync

    def recording(descriptor):
        try:
            synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        except OSError:
            synced.append(None)
        return original(descriptor)

    monkeypatch.setattr(os, "fsync", recording)
    return synced


def names_known(synced) -> bool:
    return bool(synced) and None not in synced


def trained_parts(pipeline):
    """A LoKr adapter on the tiny transformer after one optimizer step (so the optimizer has state)."""
    from diffusers import Flux2Transformer2DModel

    denoiser = Flux2Transformer2DModel.from_pretrained(pipeline, subfolder="transformer")
    adapter = build_adapter(denoiser, FLUX2_LOKR, seed=0, device=torch.device("cpu"), max_timestep=1000)
    options = TrainingOptions(optimizer="torch-adamw", learning_rate=1e-3, lr_scheduler="constant")
    optimizer = build_optimizer(adapter.parameters(), options)
    scheduler = build_scheduler(optimizer, options, 10)
    sum(p.square().sum() for p in adapter.parameters()).backward()
    optimizer.step()
    scheduler.step()
    return adapter, optimizer, scheduler


def test_a_checkpoint_is_complete_flushed_and_leaves_no_temporary_files(tmp_path, pipeline, fsyncs):
    adapter, optimizer, scheduler = trained_parts(pipeline)
    lycoris_path = tmp_path / "lycoris.json"
    lycoris_path.write_text(json.dumps(FLUX2_LOKR))
    output = tmp_path / "output"
    output.mkdir()
    generator = torch.Generator().manual_seed(3)
    state = {"global_step": 2, "epoch": 0, "batch_in_epoch": 2, "seed": 7, "lyco_version": "test"}
    parts = dict(adapter=adapter, optimizer=optimizer, generator=generator)

    save_checkpoint(output, 2, **parts, training_state=state, lycoris_path=lycoris_path, metadata={"global_step": "2"})
    folder = save_checkpoint(output, 2, **parts, training_state=state, lycoris_path=lycoris_path, metadata={"global_step": "2"})

    assert folder == output / "checkpoint-2"
    assert [p.name for p in output.iterdir()] == ["checkpoint-2"]  # no .tmp or .old folder: the rerun replaced it
    assert {p.name for p in folder.iterdir()} == CHECKPOINT_FILES
    assert all(p.stat().st_size > 0 for p in folder.iterdir())
    assert load_file(str(folder / WEIGHTS_NAME)).keys() == {k for k in adapter.network.state_dict()}
    assert load_checkpoint(folder, adapter=adapter, optimizer=optimizer, generator=generator) == state
    assert checkpoint_problem(folder) is None  # the manifest holds every file's size and checksum
    manifest = json.loads((folder / "manifest.json").read_text())["files"]
    assert set(manifest) == CHECKPOINT_FILES - {"manifest.json"}
    assert all(entry["bytes"] == (folder / name).stat().st_size for name, entry in manifest.items())
    if names_known(fsyncs):
        flushed = {Path(path).name for path in fsyncs if Path(path).parent.name == ".checkpoint-2.tmp"}
        assert flushed == CHECKPOINT_FILES  # every file reached the disk before the folder was renamed
        assert str(output.resolve()) in fsyncs  # and the rename itself
    else:
        assert len(fsyncs) >= 2 * (len(CHECKPOINT_FILES) + 1)


def test_the_adapter_and_cache_files_are_flushed_to_disk(tmp_path, pipeline, fsyncs):
    adapter, _optimizer, _scheduler = trained_parts(pipeline)
    save_adapter(adapter, tmp_path / WEIGHTS_NAME, {"global_step": "1"})
    write_tensor(tmp_path / "cache" / "latents.safetensors", "latents", torch.ones(2, 3))

    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted([WEIGHTS_NAME, "cache", "latents.safetensors"])
    assert load_file(str(tmp_path / WEIGHTS_NAME)).keys() == set(adapter.network.state_dict())
    assert torch.equal(load_file(str(tmp_path / "cache" / "latents.safetensors"))["latents"], torch.ones(2, 3))
    if names_known(fsyncs):
        files = [Path(path).name for path in fsyncs if Path(path).suffix == ".tmp"]
        assert any(name.startswith(f".{WEIGHTS_NAME}.") for name in files)
        assert any(name.startswith(".latents.safetensors.") for name in files)
        assert str(tmp_path.resolve()) in fsyncs and str((tmp_path / "cache").resolve()) in fsyncs  # the renames too
    else:
        assert len(fsyncs) >= 4


def test_the_adapter_file_is_what_lycoris_save_weights_writes(tmp_path, pipeline):
    """save_adapter writes through safetensors itself (save_weights would pickle a temporary name); the bytes
    must stay LyCORIS' own."""
    adapter, _optimizer, _scheduler = trained_parts(pipeline)
    metadata = {"global_step": "1"}
    save_adapter(adapter, tmp_path / "ours.safetensors", metadata)
    full = {"lycoris_config": json.dumps(adapter.config), **metadata}
    adapter.network.save_weights(str(tmp_path / "lycoris.safetensors"), torch.float32, full)
    # safetensors writes the metadata in a random key order on every call: compare the header as data and
    # the tensor bytes as bytes
    ours, theirs = (split_safetensors((tmp_path / name).read_bytes()) for name in ("ours.safetensors", "lycoris.safetensors"))
    assert ours == theirs


def split_safetensors(data: bytes) -> tuple[dict, bytes]:
    length = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + length]), data[8 + length :]
