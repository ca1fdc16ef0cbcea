"""Does `lyco train` learn? A validation loss measured outside the trainer, before and after training, for each
family, on the tiny real pipelines the tests build (random weights, CPU).

    python benchmarks/learning.py [--steps 300] [--families sdxl flux] [--threads 1]

For each family: 3 images of 64 px (a red, a blue and a green circle, each with its caption), a LoRA of rank 4
(SDXL on ``Attention``, FLUX.1 on ``FluxAttention`` + ``FeedForward``), ``torch-adamw``, batch 2, seed 7, no
caption dropout. The validation loss is the denoising loss at five
fixed timesteps (100 ... 900, σ = t/1000 for flow matching) with fixed noise, computed with the diffusers
pipeline's own components (image processor, VAE scaling, ``encode_prompt``, add_time_ids or latent packing and
position ids, scheduler) on the base model and on a fresh denoiser carrying the trained weights loaded by
LyCORIS' ``create_lycoris_from_weights``.

Measured on the 2-core CPU machine (1 thread, other jobs running), 300 steps, learning rates SDXL 1e-2, FLUX.1 3e-3:

    sdxl   before 1.1363  after 0.9925  ratio 0.873   (2.6 steps/s under load; ~10 steps/s on an idle core)
    flux   before 1.2974  after 0.9352  ratio 0.721   (9.9 steps/s)

(The tests run 40 steps and check a 5 % drop: SDXL 0.891, FLUX.1 0.902 when measured.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

IMAGES = [
    ("red.png", (64, 64), (220, 30, 30), "a red circle on white background"),
    ("blue.png", (64, 64), (30, 30, 220), "a blue circle on white background"),
    ("green.png", (64, 64), (30, 200, 30), "a green circle on black background"),
]
LEARNING_RATES = {"sdxl": 1e-2, "flux": 3e-3}


def measure(family: str, steps: int, root: Path) -> dict:
    import family_fixtures as ff

    from lyco_train import run

    pipeline = (ff.build_tiny_sdxl if family == "sdxl" else ff.build_tiny_flux)(root / "pipeline")
    lycoris = ff.SDXL_ATTENTION_LORA if family == "sdxl" else ff.FLUX_LORA
    options = {"max_train_steps": steps, "checkpoint_step_interval": 0, "learning_rate": LEARNING_RATES[family], "caption_dropout_probability": 0.0}
    config = ff.write_family_setup(root / "run", pipeline, family, lycoris=lycoris, options=options, images=IMAGES)
    items = [(root / "run" / "images" / name, caption) for name, _size, _colour, caption in IMAGES]
    before = ff.validation_loss(family, pipeline, items)
    started = time.perf_counter()
    if run(config) != 0:
        raise SystemExit(f"{family}: training failed")
    seconds = time.perf_counter() - started
    after = ff.validation_loss(family, pipeline, items, root / "run" / "output" / "pytorch_lora_weights.safetensors")
    return {"family": family, "before": before, "after": after, "ratio": after / before, "steps_per_s": steps / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--families", nargs="+", default=["sdxl", "flux"], choices=["sdxl", "flux"])
    parser.add_argument("--threads", type=int, default=1)
    arguments = parser.parse_args()
    import torch

    torch.set_num_threads(arguments.threads)
    results = []
    for family in arguments.families:
        with tempfile.TemporaryDirectory() as folder:
            results.append(measure(family, arguments.steps, Path(folder)))
    for r in results:
        print(f"{r['family']:6} before {r['before']:.4f}  after {r['after']:.4f}  ratio {r['ratio']:.3f}   ({r['steps_per_s']:.1f} steps/s, {arguments.steps} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
