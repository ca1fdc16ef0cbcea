"""`lyco inspect` speed on a FLUX.2 [klein] 4B-shaped LoKr adapter of about 761 M parameters (the user document's
Flux 2 LoKr config: full-matrix blocks, attention factor 2, feed-forward factor 4, on 5 double + 20 single blocks).

    python benchmarks/bench_inspect.py [--runs 5] [--dtype F32|BF16] [--keep DIR]

The key names and shapes come from LyCORIS itself, run on the Klein 4B transformer built on the meta device
(``lyco_lint.meta_model``); the file is written with random values (one alpha per module, like LyCORIS's
``save_weights``) to a temporary folder, never into the repository, and checked with the safetensors library.
Then ``lyco inspect FILE`` (and ``lyco lint FILE``) run as whole processes, without ``--model``: every tensor is
read (non-finite check, delta norms) through a memory map. The first run is reported apart (the page cache
may not hold the file yet); the median of the others is the figure. Goal: <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SEED = ROOT / "examples" / "flux2-lokr.lycoris.json"
KLEIN_4B = {
    "_class_name": "Flux2Transformer2DModel", "patch_size": 1, "in_channels": 128, "num_layers": 5, "num_single_layers": 20,
    "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 7680, "timestep_guidance_channels": 256,
    "mlp_ratio": 3.0, "axes_dims_rope": [32, 32, 32, 32], "rope_theta": 2000, "eps": 1e-06, "guidance_embeds": False,
}
GOAL_S = 2.0


def lycoris_shapes(folder: Path) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of every tensor LyCORIS's save_weights writes for the seed config on Klein 4B."""
    from lyco_lint.meta_model.analyse import analyse_spec

    (folder / "config.json").write_text(json.dumps(KLEIN_4B))
    analysis = analyse_spec(str(folder), json.loads(SEED.read_text()))
    shapes = []
    for module in analysis.modules:
        shapes.append((f"{module.lora_name}.alpha", ()))
        shapes.extend((f"{module.lora_name}.{name}", shape) for name, shape in module.parameter_shapes)
    return sorted(shapes)


def write_file(path: Path, shapes: list[tuple[str, tuple[int, ...]]], dtype: str) -> int:
    """A safetensors file of random values, written tensor by tensor (never the whole file in memory)."""
    import numpy as np

    size = {"F32": 4, "BF16": 2}[dtype]
    header, offset = {"__metadata__": {"lycoris_config": SEED.read_text(), "model_family": "flux2"}}, 0
    for key, shape in shapes:
        count = 1
        for n in shape:
            count *= n
        header[key] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + count * size]}
        offset += count * size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    rng = np.random.default_rng(0)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text)
        for key, shape in shapes:
            if key.endswith(".alpha"):
                values = np.full(shape, 10000.0, dtype=np.float32)
            else:
                values = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.01)
            if dtype == "BF16":
                values = (values.view(np.uint32) >> 16).astype(np.uint16)
            handle.write(values.tobytes())
    return offset


def timed(command: list[str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    return time.perf_counter() - start, done.returncode, done.stdout


def main() -> None:
    # The children write their bytecode caches, as on a user's machine (pip compiles them at install): with
    # PYTHONDONTWRITEBYTECODE set, every module edited since its cache was written compiles from source in
    # every run (about 7 ms each) and the numbers measure the compiler.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dtype", choices=("F32", "BF16"), default="F32")
    parser.add_argument("--keep", type=Path, help="write (or reuse) the file in this folder and keep it")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="lyco-bench-inspect-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"klein4b-lokr-{args.dtype.lower()}.safetensors"
    shapes = lycoris_shapes(folder)
    params = sum(_count(shape) for key, shape in shapes if not key.endswith(".alpha"))
    if not path.exists():
        started = time.perf_counter()
        write_file(path, shapes, args.dtype)
        print(f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    from safetensors import safe_open

    with safe_open(str(path), "np") as handle:  # the safetensors library reads the file we wrote
        assert len(list(handle.keys())) == len(shapes)
    lyco = [str(Path(sys.executable).with_name("lyco"))]
    results = {}
    for name, command in (("inspect", [*lyco, "inspect", str(path)]), ("lint", [*lyco, "lint", str(path)])):
        runs = [timed(command) for _ in range(args.runs + 1)]
        assert all(status == 0 for _t, status, _out in runs), runs[0][2]
        walls = [wall for wall, _s, _o in runs]
        results[name] = {"first_s": round(walls[0], 3), "median_s": round(statistics.median(walls[1:]), 3), "runs": [round(w, 3) for w in walls[1:]]}
    results.update(
        parameters=params, modules=sum(1 for key, _ in shapes if key.endswith(".alpha")), dtype=args.dtype,
        file_bytes=path.stat().st_size, goal_s=GOAL_S, within_goal=results["inspect"]["median_s"] <= GOAL_S,
        ratio_to_goal=round(results["inspect"]["median_s"] / GOAL_S, 3),
    )
    print(json.dumps(results, indent=2))
    if not args.keep:
        path.unlink()
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()


def _count(shape) -> int:
    count = 1
    for n in shape:
        count *= n
    return count


if __name__ == "__main__":
    main()
