"""How far the usual inference shortcuts render from the trained network, and what validation costs: on the tiny
real FLUX.2 [klein] pipeline the tests build (random weights, CPU), with trained-looking adapters (every factor
moved off its initial value).

    python benchmarks/render_fidelity.py [--steps 8] [--repeats 5]

For each case the generated latents (``output_type="latent"``, 2 images of 32 px, CFG 3, seed 5) of the trained
network under ``apply_to()`` are the reference; a shortcut's error is ‖latents − reference‖ as a fraction of
the adapter's effect ‖reference − base model‖:

* T-LoRA (rank 4, min rank 1) without the per-step masks (every rank at every step: merged weights, ComfyUI,
  diffusers' load_lora_weights, plain apply_to), against lyco's masked render (``sampling.tlora_masks``);
* LoKr of scale 0.5 (linear_dim 2, linear_alpha 1, w2 decomposed) merged with lycoris-lora 4.1.3's
  ``merge_to()`` (scale² baked in) and with ``lyco merge``'s ``merge_into``.

Then the median wall time of one masked T-LoRA render and of the same render with the hooks removed (the
cost of the masks), ``--repeats`` times each.

Measured on the 2-core CPU machine (1 thread, other jobs running), 8 steps, every factor moved by 0.3 · N(0, 1):

    tlora unmasked      error 2.57 of the adapter's effect (lyco masked: the reference)
    lokr merge_to       error 0.529 of the adapter's effect
    lokr lyco merge     error 6.02e-05 of the adapter's effect
    render (8 steps, 2 images, CFG): masked 0.334 s, unmasked 0.291 s (the masks: +0.043 s), median of 5

(merge_to bakes in 0.25 · ΔW instead of 0.5 · ΔW; lyco merge's error is float32 rounding carried through 8
steps. How far an unmasked T-LoRA lands depends on how far training moved its ranks.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel
    from train_fixtures import FLUX2_TLORA, build_tiny_flux2_klein

    from lyco_lint.knowledge.lycoris import network_arguments
    from lyco_lint.meta_model.network import build_network
    from lyco_train import sampling
    from lyco_train.adapter import build_adapter
    from lyco_train.families import get_family
    from lyco_train.merge import merge_into
    from lyco_train.options import TrainingOptions

    family = get_family("flux2")
    with tempfile.TemporaryDirectory() as folder:
        root = build_tiny_flux2_klein(Path(folder) / "klein")
        options = TrainingOptions(model_family="flux2", model_flavour="klein-4b", pretrained_model_name_or_path=str(root), mixed_precision="no",
                                  validation_guidance=3.0, validation_no_cfg_until_timestep=0)
        generator = torch.Generator().manual_seed(1)
        prompt = {"prompt_embeds": torch.randn(1, 8, 48, generator=generator)}
        negative = {"prompt_embeds": torch.randn(1, 8, 48, generator=generator)}

        def latents(denoiser, adapter=None):
            vae = AutoencoderKLFlux2.from_pretrained(root, subfolder="vae")
            pipe = family.pipeline(options, denoiser, vae)
            pipe.set_progress_bar_config(disable=True)
            with torch.no_grad(), sampling.tlora_masks(denoiser, adapter, family):
                return pipe(**family.pipeline_inputs(options, prompt, negative), width=32, height=32, num_inference_steps=arguments.steps,
                            num_images_per_prompt=2, generator=torch.Generator().manual_seed(5), output_type="latent").images

        def transformer():
            return Flux2Transformer2DModel.from_pretrained(root, subfolder="transformer").eval()

        def moved(network, seed=3):
            noise = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for module in network.loras:
                    for parameter in module.parameters():
                        parameter.add_(0.3 * torch.randn(parameter.shape, generator=noise))

        base = latents(transformer())

        def error(got, reference):
            return float((got - reference).norm() / (reference - base).norm())

        denoiser = transformer()
        adapter = build_adapter(denoiser, FLUX2_TLORA, seed=0, device=torch.device("cpu"), max_timestep=family.num_train_timesteps)
        moved(adapter.network)
        masked = latents(denoiser, adapter)
        unmasked = latents(denoiser)
        print(f"tlora unmasked      error {error(unmasked, masked):.3g} of the adapter's effect (lyco masked: the reference)")

        lokr = {"algo": "lokr", "multiplier": 1.0, "linear_dim": 2, "linear_alpha": 1, "factor": 2,
                "apply_preset": {"target_module": ["Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention"]}}

        def lokr_network(model):
            torch.manual_seed(0)
            network = build_network(model, network_arguments(lokr)).network
            moved(network)
            return network

        applied_model = transformer()
        applied = lokr_network(applied_model)
        applied.apply_to()
        reference = latents(applied_model)
        merged_model = transformer()
        lokr_network(merged_model).merge_to(1.0)
        print(f"lokr merge_to       error {error(latents(merged_model), reference):.3g} of the adapter's effect")
        ours_model = transformer()
        merge_into(lokr_network(ours_model), 1.0)
        print(f"lokr lyco merge     error {error(latents(ours_model), reference):.3g} of the adapter's effect")

        def timed(adapter_or_none):
            runs = []
            for _ in range(arguments.repeats):
                started = time.perf_counter()
                latents(denoiser, adapter_or_none)
                runs.append(time.perf_counter() - started)
            return statistics.median(runs)

        with_masks, without = timed(adapter), timed(None)
        print(f"render ({arguments.steps} steps, 2 images, CFG): masked {with_masks:.3f} s, unmasked {without:.3f} s "
              f"(the masks: {with_masks - without:+.3f} s), median of {arguments.repeats}")


if __name__ == "__main__":
    main()
