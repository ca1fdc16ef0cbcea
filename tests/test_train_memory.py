"""The memory side: the dry run prints an estimate (base, adapter training state, the rebuild path's weights),
a CUDA run writes each step's peak memory to metrics.jsonl, gradient checkpointing stays available."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("lycoris")

from train_fixtures import FLUX2_LOKR, metrics, one_thread, pipeline, write_setup  # noqa: E402,F401 (fixtures)

from lyco_train import run  # noqa: E402


def test_the_dry_run_prints_a_memory_estimate(tmp_path, pipeline, capsys):
    assert run(write_setup(tmp_path, pipeline), dry_run=True) == 0
    out = capsys.readouterr().out
    # 16,176 fp32 base parameters; 1,736 adapter parameters × 16 bytes; 14 adapted weights (9,968 elements) × 4 bytes
    assert "memory estimate per process: base 64.7 kB + adapter training state 27.8 kB = 92.5 kB, up to 132.4 kB when every adapted layer" in out
    assert "activations come on top (gradient_checkpointing on" in out


def test_steps_report_peak_memory_on_cuda_only(tmp_path, pipeline):
    config = write_setup(tmp_path, pipeline, options={"max_train_steps": 2, "gradient_checkpointing": True})
    assert run(config) == 0
    rows = metrics(tmp_path / "output")
    if torch.cuda.is_available():
        assert all(row["peak_memory_gib"] > 0 for row in rows)
    else:
        assert all("peak_memory_gib" not in row for row in rows)  # no CUDA allocator to ask


@pytest.mark.skipif(not torch.cuda.is_available(), reason="peak memory is measured by the CUDA allocator")
def test_gradient_checkpointing_lowers_the_peak_on_cuda(tmp_path, pipeline):
    peaks = {}
    for checkpointing in (False, True):
        root = tmp_path / str(checkpointing)
        assert run(write_setup(root, pipeline, lycoris=FLUX2_LOKR, options={"max_train_steps": 2, "gradient_checkpointing": checkpointing})) == 0
        peaks[checkpointing] = max(row["peak_memory_gib"] for row in metrics(root / "output"))
    assert peaks[True] <= peaks[False]
