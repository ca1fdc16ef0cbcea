"""Several processes on accelerate, for real: `accelerate launch` (and torchrun) start 2 CPU processes on gloo.

2 processes × batch 1 train the adapter 1 process × batch 2 trains (same data order, float tolerance), with one
set of checkpoints, one metrics row per step and one adapter; a resume restores every process; FSDP shards the
frozen base and trains the same adapter; with two "machines" only global rank 0 writes; launches lyco cannot
serve stop at start.
"""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyco_train.distributed import split_step

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("lycoris")
pytest.importorskip("accelerate")

from safetensors.torch import load_file  # noqa: E402

from train_fixtures import metrics, one_thread, pipeline, with_options, write_setup  # noqa: E402,F401 (fixtures)

from lyco_train import run  # noqa: E402
from lyco_train.checkpoint import checkpoint_problem  # noqa: E402

BIN = Path(sys.executable).parent
STEPS = {"max_train_steps": 4, "checkpoint_step_interval": 2}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_env() -> dict[str, str]:
    return {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def launch(*arguments: str, processes: int = 2, extra: tuple[str, ...] = ("--multi_gpu",), port: int | None = None, env=None) -> subprocess.CompletedProcess:
    """`accelerate launch` with every setting given (so accelerate prints no defaults table)."""
    command = [
        str(BIN / "accelerate"), "launch", *extra, "--num_machines", "1", "--num_processes", str(processes), "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", str(port or free_port()), *arguments,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env or cpu_env(), timeout=600)


def same_adapter(a: Path, b: Path) -> None:
    first, second = load_file(str(a / "pytorch_lora_weights.safetensors")), load_file(str(b / "pytorch_lora_weights.safetensors"))
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(second[key], first[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, pipeline):
    """One process × batch 2, 4 steps: the run the launches must reproduce. The three images make one
    bucket of 2 and one of 1, so every epoch ends with a partial batch."""
    root = tmp_path_factory.mktemp("one-process")
    assert run(write_setup(root, pipeline, options={"train_batch_size": 2, **STEPS})) == 0
    return root / "output"


def test_two_processes_train_what_one_process_trains_with_the_whole_batch(tmp_path, pipeline, reference):
    config = write_setup(tmp_path, pipeline, options={"train_batch_size": 1, **STEPS})
    done = launch("-m", "lyco_train", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    output = tmp_path / "output"
    same_adapter(reference, output)
    rows = metrics(output)
    assert [row["step"] for row in rows] == [1, 2, 3, 4]  # one row per step, not one per process
    assert [row["loss"] for row in rows] == pytest.approx([row["loss"] for row in metrics(reference)], rel=1e-5)
    assert sorted(row["samples"] for row in rows) == [1, 1, 2, 2]  # the partial batches count their samples
    assert sorted(p.name for p in output.iterdir()) == [
        "checkpoint-2", "checkpoint-4", "loss_curve.png", "lycoris_config.json", "metrics.jsonl", "pytorch_lora_weights.safetensors",
    ]
    assert all(checkpoint_problem(output / name) is None for name in ("checkpoint-2", "checkpoint-4"))
    out = done.stdout
    assert out.count("lyco train: flux2") == 1 and out.count("done: 4 steps") == 1  # only the main process speaks
    assert "batch: 1 per process × 2 processes × 1 accumulation = 2 per step" in out
    assert "caches: 3 image(s) encoded, 0 reused; 5 prompt(s) encoded, 0 reused" in out  # split, counted once
    state = json.loads((output / "checkpoint-4" / "training_state.json").read_text())
    assert state["processes"] == 2 and state["micro_batch_size"] == 2


def test_a_resume_restores_every_process(tmp_path, pipeline, reference):
    """Two steps in one process (batch 2), then the console script resumes in two processes (batch 1 each: the
    same global batch, so the data order continues) and must end where the straight run ended: a process
    that did not load the checkpoint would pull the summed gradients elsewhere."""
    config = write_setup(tmp_path, pipeline, options={"train_batch_size": 2, **STEPS, "max_train_steps": 2})
    assert run(config) == 0
    with_options(config, train_batch_size=1, max_train_steps=4)
    done = launch("--no_python", str(BIN / "lyco"), "train", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resumed from" in done.stdout and "checkpoint-2 at step 2" in done.stdout
    same_adapter(reference, tmp_path / "output")
    assert [row["step"] for row in metrics(tmp_path / "output")] == [1, 2, 3, 4]


def test_fsdp_shards_the_base_and_trains_the_same_adapter(tmp_path, pipeline, reference):
    config = write_setup(tmp_path, pipeline, options={"train_batch_size": 1, **STEPS})
    done = launch("-m", "lyco_train", str(config), extra=("--use_fsdp", "--fsdp_version", "2"))
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"FSDP: the base model's (\d+) block\(s\) .* sharded over 2 processes: each holds ([\d.]+) kB of its ([\d.]+) kB", done.stdout)
    assert found, done.stdout
    assert int(found.group(1)) == 2 and float(found.group(2)) < 0.75 * float(found.group(3))  # each holds about half
    same_adapter(reference, tmp_path / "output")


def test_on_two_machines_only_global_rank_0_writes(tmp_path, pipeline, reference):
    """Two launchers on one host, one process each, as two machines would run: both are their machine's
    local main process, only machine 0's is the run's main process."""
    config = write_setup(tmp_path, pipeline, options={"train_batch_size": 1, **STEPS})
    port = free_port()
    machines = [
        subprocess.Popen(
            [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_machines", "2", "--machine_rank", str(rank), "--num_processes", "2",
             "--main_process_ip", "127.0.0.1", "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no",
             "-m", "lyco_train", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cpu_env(),
        )
        for rank in (0, 1)
    ]
    outputs = [machine.communicate(timeout=600)[0] for machine in machines]
    assert [machine.returncode for machine in machines] == [0, 0], outputs
    assert "done: 4 steps" in outputs[0] and "lyco train: flux2" in outputs[0]
    assert "done:" not in outputs[1] and "lyco train:" not in outputs[1] and "caches:" not in outputs[1]
    same_adapter(reference, tmp_path / "output")
    assert [row["step"] for row in metrics(tmp_path / "output")] == [1, 2, 3, 4]


def test_processes_accelerate_does_not_connect_are_refused(tmp_path, pipeline):
    """torchrun on a machine without GPUs and without ACCELERATE_USE_CPU: accelerate gives each process a
    one-process state, which would train two independent runs into one folder. lyco stops instead."""
    config = write_setup(tmp_path, pipeline, options={"train_batch_size": 1, **STEPS})
    env = {key: value for key, value in cpu_env().items() if key != "ACCELERATE_USE_CPU"}
    done = subprocess.run(
        [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "lyco_train", str(config)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 1
    assert "launched as process 0 of 2, but accelerate set up 1 process(es)" in done.stdout and "ACCELERATE_USE_CPU=1" in done.stdout
    assert not (tmp_path / "output" / "metrics.jsonl").exists()


@pytest.mark.parametrize(
    "variables, message",
    [
        ({"ACCELERATE_USE_DEEPSPEED": "true"}, "does not run under DeepSpeed"),
        ({"ACCELERATE_USE_MEGATRON_LM": "true"}, "does not run under Megatron-LM"),
        ({"ACCELERATE_DYNAMO_BACKEND": "INDUCTOR"}, "compiles with the config's dynamo_backend"),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "1"}, "add --fsdp_version 2"),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "FSDP_OFFLOAD_PARAMS": "true"}, "--fsdp_offload_params"),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "FSDP_ACTIVATION_CHECKPOINTING": "true"}, "gradient_checkpointing"),
    ],
    ids=["deepspeed", "megatron", "dynamo", "fsdp1", "fsdp-offload", "fsdp-activation-checkpointing"],
)
def test_a_launch_lyco_cannot_serve_is_refused_at_start(tmp_path, pipeline, monkeypatch, capsys, variables, message):
    """The variables `accelerate launch` sets for these launches (a DeepSpeed launch needs deepspeed installed,
    so the variables stand in for it)."""
    config = write_setup(tmp_path, pipeline)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert run(config) == 1
    out = capsys.readouterr().out
    assert message in out and "error:" in out
    assert not (tmp_path / "output").exists() and not (tmp_path / "cache").exists()


# -- shares of a global batch -------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=4), st.integers(1, 5))
def test_every_sample_is_computed_once_and_weighted_by_the_step(sizes, world):
    shares = [split_step(sizes, rank, world) for rank in range(world)]
    total = sum(sizes)
    for batch, size in enumerate(sizes):
        per_rank = [shares[rank][batch] for rank in range(world)]
        assert len({len(share.rows) for share in per_rank}) == 1  # the same forwards on every process
        real = [row for share in per_rank for row, weight in zip(share.rows, share.weights) if weight > 0]
        assert sorted(real) == list(range(size))  # each sample exactly once
        assert all(weight in (0.0, 1.0 / total) for share in per_rank for weight in share.weights)
    assert sum(weight for rank in shares for share in rank for weight in share.weights) == pytest.approx(1.0)
