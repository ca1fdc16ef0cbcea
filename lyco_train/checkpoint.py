"""Checkpoints: ``output_dir/checkpoint-STEP/`` with everything a run needs to continue exactly, checked
before it is written and before it is trusted.

Contents (no pickle anywhere: tensors in safetensors, the rest in JSON):

* ``pytorch_lora_weights.safetensors`` — the adapter (float32), loadable like the final weights;
* ``optimizer.safetensors`` + ``optimizer.json`` — the optimizer state, tensors split from structure;
* ``rng.safetensors`` + ``rng.json`` — torch (CPU, CUDA), the run's noise generator, Python, NumPy;
* ``training_state.json`` — step, data position (epoch, batch), seed, the batch geometry and the schedule
  settings it was trained with (so a resume can say what changed), lyco version;
* ``lycoris_config.json`` — the LyCORIS config the run used;
* ``manifest.json`` — written last: every other file's size and SHA-256.

No bad state is written: the adapter's parameters and the optimizer's state are checked for NaN/inf before
anything is written (:class:`NonFiniteState` otherwise). A checkpoint's files are written into
``.checkpoint-STEP.tmp``, then ``lyco_lint.atomic.publish_directory`` flushes every file to disk and renames
the folder into place (replacing an older ``checkpoint-STEP`` only once the new one is complete), so neither
a crash nor a power cut leaves a half checkpoint that ``resume_from_checkpoint: latest`` would pick.

No bad state is trusted: :func:`checkpoint_problem` (standard library only, so ``--dry-run`` uses it) checks
a folder against its manifest — a truncated, changed or missing file is named. Checkpoints written before
the manifest existed get the structural checks only (JSON parses, safetensors headers cover their files).
Finding, choosing and pruning checkpoints is in ``plan.py``.

The schedule is not restored from a checkpoint: a resumed run follows the config's learning rate, schedule
and optimizer settings (as SimpleTuner does for the learning rate), at the checkpoint's step.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path
from typing import Any, Optional

from lyco_lint.atomic import publish_directory

from .adapter import WEIGHTS_NAME, Adapter, load_adapter_weights, write_adapter

MANIFEST_NAME = "manifest.json"
STATE_NAME = "training_state.json"
CHECKPOINT_FILES = (
    WEIGHTS_NAME, "optimizer.safetensors", "optimizer.json", "rng.safetensors", "rng.json", STATE_NAME, "lycoris_config.json",
)
STATE_KEYS = ("global_step", "epoch", "batch_in_epoch")  # the integers a resume cannot do without


class NonFiniteState(Exception):
    """The adapter or the optimizer holds NaN/inf: nothing is written."""


# -- plain state <-> (JSON, tensors) -------------------------------------------------------------


def split_tensors(value: Any, tensors: dict, prefix: str = "t") -> Any:
    """A JSON-able copy of ``value`` where each tensor is replaced by a reference into ``tensors``."""
    import torch

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


def join_tensors(value: Any, tensors: dict) -> Any:
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
    from safetensors.torch import save_file

    tensors: dict = {}
    structure = split_tensors(state, tensors)
    save_file(tensors, str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(json.dumps(structure), encoding="utf-8")


def load_state(folder: Path, name: str) -> Any:
    from safetensors.torch import load_file

    structure = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    return join_tensors(structure, load_file(str(folder / f"{name}.safetensors")))


# -- random number generators --------------------------------------------------------------------


def rng_state(generator) -> dict[str, Any]:
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generator": generator.get_state(),
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)],
    }


def restore_rng_state(state: dict[str, Any], generator) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch_cpu"])
    if state["torch_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
    generator.set_state(state["generator"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached))


# -- finiteness ----------------------------------------------------------------------------------


def non_finite_parameters(adapter: Adapter, params: Optional[list] = None) -> Optional[str]:
    """What is not finite in the adapter (named by their saved keys), or None. The common case costs one fused
    norm of the trainable ``params`` and one device sync (a NaN/inf makes it non-finite; an overflowing norm of
    finite values only sends it to the exact check)."""
    import torch

    params = adapter.parameters() if params is None else params
    total_norm = getattr(torch.nn.utils, "get_total_norm", None)
    if params and total_norm is not None and bool(torch.isfinite(total_norm([p.detach() for p in params], 2.0))):
        return None
    named = [(name, tensor) for name, tensor in adapter.network.state_dict().items() if tensor.is_floating_point()]
    if not named or bool(torch.stack([torch.isfinite(tensor).all() for _name, tensor in named]).all()):
        return None
    bad = [(name, int((~torch.isfinite(tensor)).sum())) for name, tensor in named if not bool(torch.isfinite(tensor).all())]
    total = sum(tensor.numel() for _name, tensor in named)
    shown = ", ".join(f"{name} ({count:,})" for name, count in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    return f"adapter parameters are not finite: {sum(count for _n, count in bad):,} of {total:,} values in {shown}"


def non_finite_optimizer_state(optimizer) -> Optional[str]:
    """What is not finite in the optimizer's state (moments, step counters), or None."""
    import torch

    bad: dict[str, int] = {}
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                bad[key] = bad.get(key, 0) + int((~torch.isfinite(value)).sum())
    if not bad:
        return None
    return "optimizer state is not finite: " + ", ".join(f"{key} ({count:,} values)" for key, count in bad.items())


def check_finite(adapter: Adapter, optimizer=None) -> None:
    """Raise :class:`NonFiniteState` when the adapter (or the optimizer state) holds NaN/inf."""
    problem = non_finite_parameters(adapter) or (non_finite_optimizer_state(optimizer) if optimizer is not None else None)
    if problem:
        raise NonFiniteState(problem)


# -- checkpoints ---------------------------------------------------------------------------------


def save_checkpoint(output_dir: Path, step: int, *, adapter: Adapter, optimizer, generator, training_state: dict, lycoris_path: Path, metadata: dict[str, str]) -> Path:
    """Write ``output_dir/checkpoint-STEP`` (see the module docstring); returns its path. Raises
    :class:`NonFiniteState` (and writes nothing) when the adapter or the optimizer state is not finite. The
    schedule is not stored: a resumed run rebuilds it from the config at its step."""
    check_finite(adapter, optimizer)
    final = output_dir / f"checkpoint-{step}"
    temporary = output_dir / f".checkpoint-{step}.tmp"
    if temporary.exists():  # left by a run that crashed while writing this step
        shutil.rmtree(temporary)
    temporary.mkdir(parents=True)
    # Plain writes: the folder is invisible to resume until publish_directory has flushed and renamed it.
    write_adapter(adapter, temporary / WEIGHTS_NAME, metadata)
    save_state(temporary, "optimizer", optimizer.state_dict())
    save_state(temporary, "rng", rng_state(generator))
    (temporary / STATE_NAME).write_text(json.dumps(training_state, indent=2), encoding="utf-8")
    shutil.copyfile(lycoris_path, temporary / "lycoris_config.json")
    write_manifest(temporary)
    publish_directory(temporary, final)
    return final


def load_checkpoint(path: Path, *, adapter: Adapter, optimizer, generator) -> dict:
    """Restore the adapter, the optimizer's state (its hyperparameters stay the config's: see
    :func:`~.optim.follow_config`) and the random state; returns the training state."""
    state = json.loads((path / STATE_NAME).read_text(encoding="utf-8"))
    load_adapter_weights(adapter, path / WEIGHTS_NAME)
    optimizer.load_state_dict(load_state(path, "optimizer"))
    restore_rng_state(load_state(path, "rng"), generator)
    return state


# -- integrity (standard library only: --dry-run checks checkpoints too) ---------------------------


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    """``manifest.json``: the size and SHA-256 of every file in ``folder`` (written last)."""
    files = {path.name: {"bytes": path.stat().st_size, "sha256": file_digest(path)} for path in sorted(folder.iterdir()) if path.is_file()}
    (folder / MANIFEST_NAME).write_text(json.dumps({"format": 1, "files": files}, indent=2), encoding="utf-8")


def checkpoint_problem(folder: Path) -> Optional[str]:
    """Why ``folder`` cannot be resumed from, naming the file (None when it is intact)."""
    manifest_path = folder / MANIFEST_NAME
    if manifest_path.is_file():
        manifest, problem = _read_json(manifest_path)
        if problem:
            return problem
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if not isinstance(files, dict) or not all(name in files for name in CHECKPOINT_FILES):
            return f"{manifest_path} does not list this checkpoint's files"
        for name, expected in files.items():
            path = folder / name
            if not path.is_file():
                return f"{path} is missing"
            size = path.stat().st_size
            if size != expected.get("bytes"):
                how = "truncated" if size < expected.get("bytes", 0) else "longer than when it was written"
                return f"{path} is {how} ({size:,} of {expected.get('bytes', 0):,} bytes)"
            if file_digest(path) != expected.get("sha256"):
                return f"{path} does not match its checksum in {MANIFEST_NAME} (it changed after it was written)"
    else:  # written before checkpoints had a manifest: structural checks only
        for name in CHECKPOINT_FILES:
            path = folder / name
            if not path.is_file():
                return f"{path} is missing"
            problem = _read_json(path)[1] if path.suffix == ".json" else _safetensors_problem(path)
            if problem:
                return problem
    state, problem = _read_json(folder / STATE_NAME)
    if problem:
        return problem
    if not isinstance(state, dict) or not all(isinstance(state.get(key), int) and not isinstance(state.get(key), bool) for key in STATE_KEYS):
        return f"{folder / STATE_NAME} lacks {', '.join(STATE_KEYS)}"
    return None


def read_training_state(folder: Path) -> dict:
    """The training state of a checkpoint that :func:`checkpoint_problem` passed."""
    return json.loads((folder / STATE_NAME).read_text(encoding="utf-8"))


def _read_json(path: Path) -> tuple[Any, Optional[str]]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except OSError as error:
        return None, f"{path} cannot be read ({error.strerror})"
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        where = f"line {error.lineno} column {error.colno}: {error.msg}" if isinstance(error, json.JSONDecodeError) else "not UTF-8"
        return None, f"{path} is not valid JSON ({where})"


def _safetensors_problem(path: Path) -> Optional[str]:
    """A safetensors file whose header does not parse or whose tensors run past its end."""
    size = path.stat().st_size
    with path.open("rb") as stream:
        prefix = stream.read(8)
        if len(prefix) < 8:
            return f"{path} is truncated ({size:,} bytes, no header)"
        length = int.from_bytes(prefix, "little")
        if 8 + length > size:
            return f"{path} is truncated (its header alone needs {8 + length:,} bytes, the file has {size:,})"
        try:
            header = json.loads(stream.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return f"{path} has a damaged header"
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__" and isinstance(entry, dict)]
    needed = 8 + length + max(ends, default=0)
    if needed > size:
        return f"{path} is truncated ({size:,} of {needed:,} bytes)"
    return None
