"""No bad state, ever: each defect found in the trainer has a test here that failed before its fix.

A non-finite adapter or optimizer state is never written (checkpoint or final weights) and never called good;
a resumed run follows the config's learning rate and schedule and says what changed; a fresh run refuses an
output folder that holds an earlier run; a damaged checkpoint is named and skipped for the newest intact one
(in --dry-run too); an output_dir that cannot be written is an error before any work; micro-batches are
weighted by their samples; the NaN message fits the run's settings.
"""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("lycoris")

from safetensors.torch import load_file  # noqa: E402

from train_fixtures import metrics, one_thread, pipeline, with_options, write_setup  # noqa: E402,F401 (fixtures)

from lyco_train import run  # noqa: E402


def snapshot(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def all_finite(weights_file: Path) -> bool:
    return all(torch.isfinite(tensor).all() for tensor in load_file(str(weights_file)).values())


EXPLODING = {"optimizer": "adamw_bf16", "learning_rate": 1e40, "lr_warmup_steps": 0, "lr_scheduler": "constant"}


# -- a non-finite state is never saved, never called good ----------------------------------------


def test_an_exploding_step_writes_no_checkpoint_and_calls_none_good(tmp_path, pipeline, capsys):
    """Was: lr 1e40 with a checkpoint every step wrote checkpoint-1 full of inf and called it 'the last good
    checkpoint'."""
    config = write_setup(tmp_path, pipeline, options={**EXPLODING, "checkpoint_step_interval": 1, "max_train_steps": 3})
    assert run(config) == 1
    out = capsys.readouterr().out
    output = tmp_path / "output"
    written = sorted(output.glob("checkpoint-*"))
    for folder in written:  # whatever was written is finite
        assert all_finite(folder / "pytorch_lora_weights.safetensors"), folder
    assert "training stopped at step 1" in out and "not finite" in out
    assert "the last good checkpoint is" not in out and "no checkpoint was written" in out
    assert not (output / "pytorch_lora_weights.safetensors").exists()
    assert metrics(output)[-1]["loss"] is None and "not finite" in metrics(output)[-1]["error"]


def test_one_exploding_step_exits_1_without_an_adapter(tmp_path, pipeline, capsys):
    """Was: lr 1e40 and one step exited 0 with an inf adapter."""
    config = write_setup(tmp_path, pipeline, options={**EXPLODING, "max_train_steps": 1, "checkpoint_step_interval": 0})
    assert run(config) == 1
    assert not (tmp_path / "output" / "pytorch_lora_weights.safetensors").exists()
    assert "adapter parameters" in capsys.readouterr().out


def test_a_non_finite_optimizer_state_is_refused_at_save(tmp_path, pipeline):
    """Parameters can stay finite while AdamW's second moment overflows (g² > 3.4e38): that state is not
    saved either."""
    from diffusers import Flux2Transformer2DModel

    from lyco_train.adapter import build_adapter
    from lyco_train.checkpoint import NonFiniteState, save_checkpoint
    from lyco_train.optim import build_optimizer
    from lyco_train.options import TrainingOptions
    from train_fixtures import FLUX2_LOKR

    denoiser = Flux2Transformer2DModel.from_pretrained(pipeline, subfolder="transformer")
    adapter = build_adapter(denoiser, FLUX2_LOKR, seed=0, device=torch.device("cpu"), max_timestep=1000)
    options = TrainingOptions(optimizer="torch-adamw", learning_rate=1e-3, lr_scheduler="constant")
    optimizer = build_optimizer(adapter.parameters(), options)
    for parameter in adapter.parameters():
        parameter.grad = torch.full_like(parameter, 1e30)  # finite, but its square is not
    optimizer.step()
    assert all(torch.isfinite(p).all() for p in adapter.parameters())
    lycoris_path = tmp_path / "lycoris.json"
    lycoris_path.write_text(json.dumps(FLUX2_LOKR))
    (tmp_path / "output").mkdir()
    with pytest.raises(NonFiniteState, match="optimizer state.*exp_avg_sq"):
        save_checkpoint(
            tmp_path / "output", 1, adapter=adapter, optimizer=optimizer,
            generator=torch.Generator(), training_state={"global_step": 1, "epoch": 0, "batch_in_epoch": 1, "seed": 1},
            lycoris_path=lycoris_path, metadata={},
        )
    assert list((tmp_path / "output").iterdir()) == []  # no folder, no temporary left


def test_the_nan_message_fits_the_runs_precision():
    """Was: it suggested mixed_precision "no" even when that was already the setting."""
    from lyco_train.loop import NonFiniteLoss, non_finite_message
    from lyco_train.options import TrainingOptions

    failure = NonFiniteLoss("loss is nan", [])
    in_fp32 = non_finite_message(TrainingOptions(mixed_precision="no"), 3, failure, None)
    in_bf16 = non_finite_message(TrainingOptions(mixed_precision="bf16"), 3, failure, None)
    assert '"mixed_precision": "no"' not in in_fp32 and "full precision" in in_fp32
    assert '"mixed_precision": "no"' in in_bf16


# -- resume follows the config ------------------------------------------------------------------


def test_a_changed_learning_rate_and_schedule_on_resume_follow_the_config(tmp_path, pipeline, capsys):
    """Was: the checkpoint's learning rate silently replaced the config's."""
    config = write_setup(tmp_path, pipeline, options={"max_train_steps": 2, "lr_warmup_steps": 0, "lr_scheduler": "constant"})
    assert run(config) == 0
    capsys.readouterr()
    assert run(with_options(config, max_train_steps=4, learning_rate=2e-3, lr_scheduler="linear")) == 0
    out = capsys.readouterr().out
    rows = metrics(tmp_path / "output")
    assert [row["lr"] for row in rows[:2]] == pytest.approx([1e-3, 1e-3])
    # linear decay from the config's 2e-3 over the 4 steps, at steps 3 and 4: 2e-3 * (4 - 2) / 4, 2e-3 * 1 / 4
    assert [row["lr"] for row in rows[2:]] == pytest.approx([1e-3, 5e-4])
    assert "resumed from" in out and "checkpoint-2" in out
    assert "learning_rate 0.001 -> 0.002" in out and "lr_scheduler constant -> linear" in out


def test_a_resume_with_another_micro_batch_is_refused_in_the_dry_run_too(tmp_path, pipeline, capsys):
    """Was: --dry-run said 'resuming from checkpoint-2' and exited 0; the real run then loaded everything and
    refused the checkpoint (its data order is cut in micro-batches of train_batch_size × processes)."""
    config = write_setup(tmp_path, pipeline, options={"max_train_steps": 2, "train_batch_size": 2, "checkpoint_step_interval": 2})
    assert run(config) == 0
    capsys.readouterr()
    changed = with_options(config, max_train_steps=4, train_batch_size=1, resume_from_checkpoint="latest")
    for dry_run in (True, False):
        assert run(changed, dry_run=dry_run) == 1
        out = capsys.readouterr().out
        assert "checkpoint-2 was trained with global micro-batches of 2 samples" in out and "makes 1 (1 × 1)" in out, out
        assert "caches:" not in out  # refused before anything loads
    done = subprocess.run([str(Path(sys.executable).parent / "lyco"), "train", str(changed), "--dry-run"], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 1 and "was trained with global micro-batches of 2 samples" in done.stdout, done.stdout + done.stderr


def test_a_fresh_run_refuses_a_folder_with_an_earlier_run(tmp_path, pipeline, capsys):
    """Was: resume_from_checkpoint none in a folder with an older run pruned the new run's checkpoints and a
    later 'latest' resumed the old run."""
    config = write_setup(tmp_path, pipeline, options={"max_train_steps": 2})
    assert run(config) == 0
    before = snapshot(tmp_path / "output")
    capsys.readouterr()
    assert run(with_options(config, resume_from_checkpoint="none", checkpoints_total_limit=1, learning_rate=5e-4)) == 1
    out = capsys.readouterr().out
    assert "checkpoint-2" in out and "earlier run" in out and "output_dir" in out
    assert snapshot(tmp_path / "output") == before


# -- damaged checkpoints -------------------------------------------------------------------------


@pytest.fixture
def two_checkpoints(tmp_path, pipeline):
    config = write_setup(tmp_path, pipeline, options={"max_train_steps": 4, "checkpoint_step_interval": 2})
    assert run(config) == 0
    return config, tmp_path / "output"


def test_a_truncated_checkpoint_falls_back_to_the_newest_intact_one(two_checkpoints, capsys):
    """Was: a raw SafetensorError that named no file, although checkpoint-2 was intact."""
    config, output = two_checkpoints
    weights = output / "checkpoint-4" / "pytorch_lora_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    capsys.readouterr()
    assert run(with_options(config, max_train_steps=6)) == 0
    out = capsys.readouterr().out
    assert f"warning: {weights}" in out and "truncated" in out
    assert "resuming from checkpoint-2" in out
    assert [row["step"] for row in metrics(output)] == [1, 2, 3, 4, 5, 6]
    assert all_finite(output / "checkpoint-4" / "pytorch_lora_weights.safetensors")  # rewritten whole


def test_a_corrupt_training_state_is_named_in_the_dry_run(two_checkpoints, capsys):
    """Was: JSONDecodeError, even in --dry-run."""
    config, output = two_checkpoints
    state = output / "checkpoint-4" / "training_state.json"
    state.write_text('{"global_step": 4, "epo')
    capsys.readouterr()
    assert run(config, dry_run=True) == 0
    out = capsys.readouterr().out
    assert f"warning: {state}" in out and "resuming from checkpoint-2" in out
    assert "(resuming from checkpoint-2)" in out


def test_a_damaged_checkpoint_named_in_the_config_is_a_clear_error(two_checkpoints, capsys):
    config, output = two_checkpoints
    optimizer_file = output / "checkpoint-4" / "optimizer.safetensors"
    data = bytearray(optimizer_file.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the tensor data: only the checksum sees it
    optimizer_file.write_bytes(bytes(data))
    capsys.readouterr()
    assert run(with_options(config, resume_from_checkpoint="checkpoint-4", max_train_steps=6), dry_run=True) == 1
    out = capsys.readouterr().out
    assert str(optimizer_file) in out and "checksum" in out and "checkpoint-2" in out  # names the intact one


# -- output_dir ---------------------------------------------------------------------------------


def test_an_output_dir_that_is_a_file_is_an_error_before_any_work(tmp_path, pipeline, capsys):
    config = write_setup(tmp_path, pipeline)
    (tmp_path / "taken").write_text("a file")
    assert run(with_options(config, output_dir=str(tmp_path / "taken"))) == 1
    out = capsys.readouterr().out
    assert f"output_dir {tmp_path / 'taken'} is a file" in out
    assert not (tmp_path / "cache").exists()  # nothing was encoded


def test_an_output_dir_that_cannot_be_created_is_an_error_before_any_work(tmp_path, pipeline, capsys):
    config = write_setup(tmp_path, pipeline)
    assert run(with_options(config, output_dir="/sys/lyco-cannot-write-here/output")) == 1
    out = capsys.readouterr().out
    assert "output_dir /sys/lyco-cannot-write-here/output" in out and "cannot" in out
    assert not (tmp_path / "cache").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_dir_is_an_error_before_any_work(tmp_path, pipeline, capsys):
    config = write_setup(tmp_path, pipeline)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert run(with_options(config, output_dir=str(locked))) == 1
    finally:
        locked.chmod(0o700)
    assert "not writable" in capsys.readouterr().out


# -- partial batches ------------------------------------------------------------------------------


def test_micro_batches_of_different_sizes_are_weighted_by_their_samples(tmp_path, pipeline):
    """Was: each micro-batch's mean loss counted the same, so the lone sample at the end of a bucket weighed
    as much as a full batch. Now every sample of the step counts 1 / (samples in the step): a step of [a, b]
    and [c] trains what (2 × the step of [a, b] + the step of [c]) / 3 would."""
    from lyco_train.loop import prepare, train_step
    from lyco_train.run import prepare_run

    config = write_setup(tmp_path, pipeline, options={"train_batch_size": 2, "gradient_accumulation_steps": 2, "caption_dropout_probability": 0.0})
    plan = prepare_run(config, print)
    pair, single = [members for _size, members in sorted(plan.data.buckets.items(), key=lambda item: -len(item[1]))]

    def step(micro_batches, generator):
        parts, _ = prepare(plan, print)
        total = [torch.zeros_like(p) for p in parts.params]
        for index, parameter in enumerate(parts.params):  # what backward adds to each gradient, summed
            parameter.register_hook(lambda grad, index=index: total.__setitem__(index, total[index] + grad))
        result = train_step(parts, micro_batches, generator)
        return result, total

    generator = torch.Generator().manual_seed(5)
    both, both_grads = step([pair, single[:1]], generator)
    generator = torch.Generator().manual_seed(5)  # the same draws, one micro-batch per step
    first, first_grads = step([pair], generator)
    second, second_grads = step([single[:1]], generator)

    assert abs(first.loss - second.loss) > 1e-3  # equal weighting would give another number
    assert both.loss == pytest.approx((2 * first.loss + second.loss) / 3, rel=1e-5)
    for got, a, b in zip(both_grads, first_grads, second_grads):
        torch.testing.assert_close(got, (2 * a + b) / 3, rtol=1e-4, atol=1e-8)
    assert both.samples == 3
