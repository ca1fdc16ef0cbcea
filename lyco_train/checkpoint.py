"""Checkpoints: ``output_dir/checkpoint-STEP/`` with everything a run needs to continue exactly.

Contents (no pickle anywhere: tensors in safetensors, the rest in JSON):

* ``pytorch_lora_weights.safetensors`` — the adapter (float32), loadable like the final weights;
* ``optimizer.safetensors`` + ``optimizer.json`` — the optimizer state, tensors split from structure;
* ``scheduler.json`` — the learning-rate schedule's counters;
* ``rng.safetensors`` + ``rng.json`` — torch (CPU, CUDA), the run's noise generator, Python, NumPy;
* ``training_state.json`` — step, data position (epoch, batch), seed, lyco version;
* ``lycoris_config.json`` — the LyCORIS config the run used.

Finding checkpoints, choosing the one to resume and pruning old ones is in ``plan.py`` (no torch).

A checkpoint's files are written into ``.checkpoint-STEP.tmp``, then ``lyco_lint.atomic.publish_directory``
flushes every file to disk and renames the folder into place (replacing an older ``checkpoint-STEP`` only
once the new one is complete), so neither a crash nor a power cut leaves a half checkpoint that
``resume_from_checkpoint: latest`` would pick.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from lyco_lint.atomic import publish_directory

from .adapter import WEIGHTS_NAME, Adapter, load_adapter_weights, write_adapter


# -- plain state <-> (JSON, tensors) -------------------------------------------------------------


def split_tensors(value: Any, tensors: dict[str, torch.Tensor], prefix: str = "t") -> Any:
    """A JSON-able copy of ``value`` where each tensor is replaced by a reference into ``tensors``."""
    if isinstance(value, torch.Tensor):
        key = f"{prefix}{len(tensors)}"
        tensors[key] = value.detach().to("cpu").clone().contiguous()
        return {"__tensor__": key}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: split_tensors(v, tensors, prefix) for k, v in value.items()}
        return {"__items__": [[k, split_tensors(v, tensors, prefix)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [split_tensors(v, tensors, prefix) for v in value]}
    if isinstance(value, list):
        return [split_tensors(v, tensors, prefix) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint")


def join_tensors(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tensor__"}:
            return tensors[value["__tensor__"]]
        if set(value) == {"__items__"}:
            return {k: join_tensors(v, tensors) for k, v in value["__items__"]}
        if set(value) == {"__tuple__"}:
            return tuple(join_tensors(v, tensors) for v in value["__tuple__"])
        return {k: join_tensors(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [join_tensors(v, tensors) for v in value]
    return value


def save_state(folder: Path, name: str, state: Any) -> None:
    tensors: dict[str, torch.Tensor] = {}
    structure = split_tensors(state, tensors)
    save_file(tensors, str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(json.dumps(structure), encoding="utf-8")


def load_state(folder: Path, name: str) -> Any:
    structure = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    return join_tensors(structure, load_file(str(folder / f"{name}.safetensors")))


# -- random number generators --------------------------------------------------------------------


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generator": generator.get_state(),
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)],
    }


def restore_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch_cpu"])
    if state["torch_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
    generator.set_state(state["generator"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached))


# -- checkpoints ---------------------------------------------------------------------------------


def save_checkpoint(output_dir: Path, step: int, *, adapter: Adapter, optimizer, scheduler, generator, training_state: dict, lycoris_path: Path, metadata: dict[str, str]) -> Path:
    """Write ``output_dir/checkpoint-STEP`` (see the module docstring); returns its path."""
    final = output_dir / f"checkpoint-{step}"
    temporary = output_dir / f".checkpoint-{step}.tmp"
    if temporary.exists():  # left by a run that crashed while writing this step
        shutil.rmtree(temporary)
    temporary.mkdir(parents=True)
    # Plain writes: the folder is invisible to resume until publish_directory has flushed and renamed it.
    write_adapter(adapter, temporary / WEIGHTS_NAME, metadata)
    save_state(temporary, "optimizer", optimizer.state_dict())
    (temporary / "scheduler.json").write_text(json.dumps(scheduler.state_dict()), encoding="utf-8")
    save_state(temporary, "rng", rng_state(generator))
    (temporary / "training_state.json").write_text(json.dumps(training_state, indent=2), encoding="utf-8")
    shutil.copyfile(lycoris_path, temporary / "lycoris_config.json")
    publish_directory(temporary, final)
    return final


def load_checkpoint(path: Path, *, adapter: Adapter, optimizer, scheduler, generator) -> dict:
    state = json.loads((path / "training_state.json").read_text(encoding="utf-8"))
    load_adapter_weights(adapter, path / WEIGHTS_NAME)
    optimizer.load_state_dict(load_state(path, "optimizer"))
    scheduler.load_state_dict(json.loads((path / "scheduler.json").read_text(encoding="utf-8")))
    restore_rng_state(load_state(path, "rng"), generator)
    return state
