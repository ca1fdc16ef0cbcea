"""`--model` analysis speed and memory: the seed Flux 2 LoKr config on a Flux 2 Klein 9B-shaped model.

    python benchmarks/bench_model.py [--runs 5]

The model is a folder holding only a ``config.json`` shaped like FLUX.2 [klein] 9B's transformer (8 double +
24 single blocks, 32 heads of 128 = hidden 4096, joint_attention_dim 12288): there is no weight file to read,
and the child process also records every file it opens under that folder. Measures whole processes (this
machine is noisy: medians, plus CPU time, which suffers less from other processes):

* ``python -c pass``: the interpreter's start-up;
* the import floor: torch, LyCORIS and diffusers' Flux 2 model class, nothing else;
* resolve -> build on the meta device -> analyse with LyCORIS, through ``lyco_lint.meta_model``, once ending
  normally and once ending with ``os._exit(0)`` after flushing (the interpreter's teardown of torch and
  diffusers costs about 1 s), and ``lyco lint --model`` when the CLI has that option: cold (no analysis
  cache) and warm (the analysis read back from the on-disk cache, lyco_lint.meta_model.cache; goal <= 0.3 s).

Peak RSS is the child's ``ru_maxrss``. Goals: <= 5 s wall and < 1.5 GB peak RSS, no weight file read. Also
prints the seed config's trainable-parameter count on a Klein 4B-shaped config (5 + 20 blocks, 24 heads,
joint_attention_dim 7680).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "flux2-lokr.lycoris.json"

KLEIN_9B = {
    "_class_name": "Flux2Transformer2DModel",
    "patch_size": 1,
    "in_channels": 128,
    "num_layers": 8,
    "num_single_layers": 24,
    "attention_head_dim": 128,
    "num_attention_heads": 32,
    "joint_attention_dim": 12288,
    "timestep_guidance_channels": 256,
    "mlp_ratio": 3.0,
    "axes_dims_rope": [32, 32, 32, 32],
    "rope_theta": 2000,
    "eps": 1e-06,
    "guidance_embeds": False,
}
KLEIN_4B = {**KLEIN_9B, "num_layers": 5, "num_single_layers": 20, "num_attention_heads": 24, "joint_attention_dim": 7680}

IMPORT_FLOOR = "import torch, lycoris, diffusers; diffusers.Flux2Transformer2DModel"

# The child: resolve -> build -> analyse, with an audit hook recording every file opened under the model folder.
ANALYSE = r"""
import json, sys, time
start = time.perf_counter()
folder = sys.argv[1]
opened = []
sys.addaudithook(lambda event, args: opened.append(args[0]) if event == "open" and isinstance(args[0], str) and args[0].startswith(folder) else None)
from lyco_lint.meta_model.analyse import analyse
from lyco_lint.meta_model.build import build_meta_model
from lyco_lint.meta_model.resolve import resolve_model
imported = time.perf_counter()
source = resolve_model(folder)
model = build_meta_model(source)
built = time.perf_counter()
analysis = analyse(model, json.load(open(sys.argv[2])), source=source)
done = time.perf_counter()
print(json.dumps({
    "adapted": analysis.adapted_count, "trainable": analysis.trainable_params, "base": analysis.base_params,
    "bypass_gflop": analysis.estimate.bypass_flops / 1e9 if analysis.estimate else None,
    "rebuild_gflop": analysis.estimate.rebuild_flops / 1e9 if analysis.estimate else None,
    "opened": sorted(set(opened)),
    "phases": {"lyco_lint.meta_model import": imported - start, "resolve+build (imports torch, diffusers)": built - imported,
               "analyse (imports lycoris)": done - built},
}))
if "--fast-exit" in sys.argv:  # skip the interpreter's teardown of torch and diffusers (about 1 s)
    sys.stdout.flush(); sys.stderr.flush()
    import os; os._exit(0)
"""


def measure(command: list[str], env: dict | None = None) -> tuple[float, float, float, str]:
    """Wall seconds, the child's own CPU seconds (user + sys) and peak RSS in MB (from wait4), and its stdout."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, text=True, env=env)
    _pid, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stdout, stderr = process.stdout.read(), process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):  # lint's status 1: the config has findings
        raise SystemExit(f"{' '.join(command[:3])} ... failed ({process.returncode}):\n{stderr[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout


def series(label: str, command: list[str], runs: int, env: dict | None = None) -> tuple[list[tuple[float, float, float, str]], str]:
    measure(command, env)  # warm the file cache (and, for a warm --model run, the analysis cache)
    results = [measure(command, env) for _ in range(runs)]
    walls = [r[0] for r in results]
    cpus = [r[1] for r in results]
    rss = max(r[2] for r in results)
    line = (
        f"{label:<50} wall median {statistics.median(walls):5.2f} s (min {min(walls):.2f}, max {max(walls):.2f})  "
        f"cpu median {statistics.median(cpus):5.2f} s  peak RSS {rss:6.0f} MB"
    )
    return results, line


def main() -> int:
    # The children write their bytecode caches, as on a user's machine (pip compiles them at install): with
    # PYTHONDONTWRITEBYTECODE set, every module edited since its cache was written compiles from source in
    # every run (about 7 ms each) and the numbers measure the compiler.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        klein_9b, klein_4b = Path(tmp) / "klein-9b", Path(tmp) / "klein-4b"
        for folder, config in ((klein_9b, KLEIN_9B), (klein_4b, KLEIN_4B)):
            folder.mkdir()
            (folder / "config.json").write_text(json.dumps(config))
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {args.runs} runs each\n")
        _, line = series("python -c pass", [python, "-c", "pass"], args.runs)
        print(line)
        _, line = series("import floor (torch, lycoris, diffusers Flux 2)", [python, "-c", IMPORT_FLOOR], args.runs)
        print(line)
        results, line = series("resolve + build + analyse (Klein 9B shape)", [python, "-c", ANALYSE, str(klein_9b), str(SEED)], args.runs)
        print(line)
        _, line = series("  same, ending with flush + os._exit(0)", [python, "-c", ANALYSE, str(klein_9b), str(SEED), "--fast-exit"], args.runs)
        print(line)
        report = json.loads(results[-1][3])
        phases = {name: statistics.median(json.loads(r[3])["phases"][name] for r in results) for name in report["phases"]}
        print("  in-process medians: " + ", ".join(f"{name} {value:.2f} s" for name, value in phases.items()))
        help_text = subprocess.run([python, "-m", "lyco_lint", "lint", "--help"], capture_output=True, text=True, cwd=ROOT).stdout
        if "--model" in help_text:
            lint_model = [python, "-m", "lyco_lint", "lint", "--model", str(klein_9b), str(SEED)]
            # cold: a cache folder that cannot be created, so every run analyses; warm: a cache the first run fills
            cold_env = dict(os.environ, LYCO_CACHE_DIR=os.devnull + "/lyco-cache")
            warm_env = dict(os.environ, LYCO_CACHE_DIR=str(Path(tmp) / "cache"))
            _, line = series("lyco lint --model (Klein 9B shape), cold", lint_model, args.runs, cold_env)
            print(line)
            _, line = series("lyco lint --model (Klein 9B shape), warm cache", lint_model, args.runs, warm_env)
            print(line)
        else:
            print("lyco lint --model: not wired yet (timed the library call above)")
        print(
            f"\nKlein 9B shape: {report['adapted']} adapted layers, {report['trainable']:,} trainable parameters, "
            f"base {report['base']:,}; files opened under the model folder: {[Path(p).name for p in report['opened']]}"
        )
        if report["bypass_gflop"] is not None:
            print(f"  bypass {report['bypass_gflop']:.2f} vs rebuild {report['rebuild_gflop']:.2f} GFLOP per token (4096 tokens)")
        four = json.loads(measure([python, "-c", ANALYSE, str(klein_4b), str(SEED)])[3])
        print(f"Klein 4B shape: {four['adapted']} adapted layers, {four['trainable']:,} trainable parameters, base {four['base']:,}")
        if four["bypass_gflop"] is not None:
            print(f"  bypass {four['bypass_gflop']:.2f} vs rebuild {four['rebuild_gflop']:.2f} GFLOP per token (4096 tokens)")
        weights_read = [p for p in report["opened"] + four["opened"] if not p.endswith("config.json")]
        print("no weight file read" if not weights_read else f"WEIGHT FILES OPENED: {weights_read}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
