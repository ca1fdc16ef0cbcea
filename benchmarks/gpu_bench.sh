#!/usr/bin/env bash
# The full-shape benchmark on one CUDA GPU, as one command (about 8-10 minutes on an H200; see bench_train.py):
#
#     bash benchmarks/gpu_bench.sh            # JSON lines on stdout and in $OUT/bench_train_full.jsonl
#
# Needs the train extra (torch with CUDA, diffusers, lycoris-lora, accelerate) in the Python it runs. Each case's
# line is written as soon as it is measured, so a run stopped by a time limit keeps what it measured.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-python}"
if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; fi
"$PYTHON" - <<'PY' | tee "$OUT/environment.txt"
import importlib.metadata as m
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
for name in ("diffusers", "lycoris-lora", "accelerate", "transformers"):
    print(name, m.version(name))
PY
"$PYTHON" benchmarks/bench_train.py --shape full --json "$@" | tee "$OUT/bench_train_full.jsonl"
