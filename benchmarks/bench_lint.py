"""Lint speed against check-jsonschema, measured in one run (this machine is noisy: medians).

    python benchmarks/bench_lint.py [--runs 7]

Measures whole processes, as pre-commit runs them:

* ``python -c pass``: the interpreter's own start-up, the floor under every number;
* ``check-jsonschema --schemafile <bundled lycoris schema> FILE``: the baseline (schema check only);
* ``lyco lint FILE``: one LyCORIS config, cold;
* ``lyco lint config.json``: a training config plus the LyCORIS config it points at;
* ``lyco lint`` of 200 files in one process.

Prints the median and spread of each and the ratios to the baseline. Goals on a 2-core machine:
one file <= 0.15 s (check-jsonschema about 0.28 s), 200 files <= 0.6 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def bundled_schema(folder: Path) -> Path:
    """The LyCORIS config schema with its $refs inlined under $defs, for a tool without our registry."""
    schemas = {}
    for path in (ROOT / "schemas").glob("*.schema.json"):
        schema = json.loads(path.read_text())
        schemas[schema["$id"]] = schema
    root = dict(schemas["urn:lyco:schema:lycoris-config"])
    names = {sid: sid.rsplit(":", 1)[-1] for sid in schemas if sid != root["$id"]}

    def rewrite(node):
        if isinstance(node, dict):
            return {k: (f"#/$defs/{names[v]}" if k == "$ref" and v in names else rewrite(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    root = rewrite(root)
    root["$defs"] = {names[sid]: rewrite({k: v for k, v in s.items() if k not in ("$id", "$schema")}) for sid, s in schemas.items() if sid in names}
    target = folder / "lycoris-config.bundled.schema.json"
    target.write_text(json.dumps(root))
    return target


def many_files(folder: Path, count: int) -> Path:
    """``count`` LyCORIS configs (variations of the shipped examples) in a fresh folder."""
    target = folder / "many"
    target.mkdir()
    sources = sorted(EXAMPLES.glob("*.lycoris.json"))
    for index in range(count):
        config = json.loads(sources[index % len(sources)].read_text())
        config["multiplier"] = 1.0 + index / 1000
        (target / f"config_{index:03d}.lycoris.json").write_text(json.dumps(config, indent=4))
    return target


def time_command(command: list[str], runs: int) -> list[float]:
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm the file cache
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        timings.append(time.perf_counter() - start)
    return timings


def main() -> int:
    # The children write their bytecode caches, as on a user's machine (pip compiles them at install): with
    # PYTHONDONTWRITEBYTECODE set, every module edited since its cache was written compiles from source in
    # every run (about 7 ms each) and the numbers measure the compiler.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--files", type=int, default=200)
    args = parser.parse_args()

    lyco = shutil.which("lyco") or sys.exit("lyco is not installed (pip install -e '.[dev]')")
    check_jsonschema = shutil.which("check-jsonschema") or sys.exit("check-jsonschema is not installed")
    one_file = str(EXAMPLES / "flux2-lokr.lycoris.json")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        schema = bundled_schema(folder)
        many = many_files(folder, args.files)
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "check-jsonschema (baseline)": [check_jsonschema, "--schemafile", str(schema), one_file],
            "lyco lint 1 file": [lyco, "lint", one_file],
            "lyco lint training+lycoris": [lyco, "lint", str(EXAMPLES / "config" / "config.json")],
            f"lyco lint {args.files} files": [lyco, "lint", str(many)],
        }
        results = {name: time_command(command, args.runs) for name, command in cases.items()}

    baseline = statistics.median(results["check-jsonschema (baseline)"])
    print(f"{'case':<32} {'median s':>9} {'min':>7} {'max':>7} {'÷ baseline':>11}")
    for name, timings in results.items():
        median = statistics.median(timings)
        print(f"{name:<32} {median:>9.3f} {min(timings):>7.3f} {max(timings):>7.3f} {median / baseline:>11.2f}")
    print(f"({args.runs} runs each, {args.files} files in the batch case)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
