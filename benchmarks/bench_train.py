"""lyco's training step against the plain diffusers + LyCORIS loop (``baseline_loop.py``), in one process.

    python benchmarks/bench_train.py [--shape tiny|full] [--json] [--cases NAME ...] [--steps 7] [--warmup 3]

For each case both sides get the same model (class and config, bf16 base, random weights), the same LyCORIS
config, batch, token counts and dtype (bf16 autocast, no gradient checkpointing, AdamW at 1e-4). lyco's side is
a real run: a pipeline folder with the case's denoiser config, images, ``config.json``, ``multidatabackend.json``
and the LyCORIS config, planned by ``run.prepare_run`` and prepared by ``loop.prepare`` (layer paths measured,
caches read ahead, blocks compiled when the case says so), timed through ``loop.train_step`` (data, noise,
loss weights, clipping, checks included). Its caches are written with random latents and embeddings of the
model's shapes (the encoders are not part of a step), and its denoiser is built in memory rather than read
from disk (the same class and config; ``--shape full`` weights would take minutes to write). The two sides
alternate step by step after their warm-ups; the medians of the timed steps are compared.

One JSON object per case (``--json``; a table otherwise): ``name``, ``lyco_step_s``, ``baseline_step_s``,
``ratio`` (lyco / baseline), ``lyco_spread_s`` and ``baseline_spread_s`` (min, max), ``peak_gib`` (lyco's
peak allocated memory per step, CUDA only; ``baseline_peak_gib`` too), the layer paths lyco chose and the
warm-up seconds. Cases:

* ``flux2-lokr``: FLUX.2 [klein] with the user document's LoKr (full-matrix, factor 2/4, ``bypass_mode: true``);
  the baseline runs it as written (bypass). ``flux2-lokr-compiled``: lyco with ``dynamo_backend: inductor``
  and regional compilation (the baseline as before: the plain loop as the document configures it).
* ``flux2-tlora-b4``: FLUX.2 T-LoRA (rank 4, attention) at batch 4 against the baseline's LoKr at batch 4:
  the ratio shows what the per-sample masks cost.
* ``sdxl-lokr``: SDXL with the document's generic LoKr (Attention factor 10, FeedForward factor 4);
  ``sdxl-lokr-compiled`` with regional compilation.
* ``flux1-lokr``: FLUX.1 [dev] LoKr on ``FluxAttention`` + ``FeedForward`` (factor 4, full w2).

``--shape tiny`` (the default, CPU): the tests' tiny sizes (FLUX.2: 1 double + 1 single block, 2 heads of 32,
64 image + 16 text tokens; SDXL: the anchor's tiny UNet, 16² latents); the compiled cases are left out unless
named (inductor's first compilation takes a minute per model on a small CPU). ``--shape full``: FLUX.2 Klein-4B
(5 double + 20 single blocks, 3072 wide, 4096 image + 512 text tokens, 1024²) and the SDXL UNet (128² latents,
1024²); needs a CUDA GPU. Runtime budget on one H200, all default cases: about 8–10 minutes (estimated, not yet
run: model set-up and LyCORIS init 1–2 min per FLUX.2 case, inductor compilation about 30 s per compiled model,
SDXL up to 4 min with LyCORIS's first-call kernel tuning); the goal cases run first, and ``--budget-s`` (default
480 s for full) skips the cases that would start after it, with a ``skipped`` line, so the run ends within a
10-minute limit unless one case alone overruns. ``benchmarks/gpu_bench.sh`` is that run as one command. ``flux1-lokr`` at
full shape (12 B parameters, two copies in memory) is left out of the default full run; name it to run it.

Measured on the 2-core CPU machine (``--shape tiny``, 1 thread): see the README (``lyco train`` → "Fast").
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DOCUMENT_FLUX2_LOKR = {  # the user document's Flux 2 LoKr config (tests/train_fixtures.py FLUX2_LOKR)
    "algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 4, "full_matrix": True, "bypass_mode": True,
    "apply_preset": {
        "target_module": ["Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention"],
        "module_algo_map": {"Flux2FeedForward": {"factor": 4}, "Flux2Attention": {"factor": 2}, "Flux2ParallelSelfAttention": {"factor": 2}},
    },
}
FLUX2_TLORA = {  # tests/train_fixtures.py FLUX2_TLORA
    "algo": "tlora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 4, "tlora_min_rank": 1, "tlora_alpha": 1.0,
    "apply_preset": {"target_module": ["Flux2Attention", "Flux2ParallelSelfAttention"]},
}
DOCUMENT_GENERIC_LOKR = {  # the user document's generic LoKr config
    "algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 10,
    "apply_preset": {"target_module": ["Attention", "FeedForward"], "module_algo_map": {"Attention": {"factor": 10}, "FeedForward": {"factor": 4}}},
}
FLUX_LOKR = {  # tests/family_fixtures.py FLUX_LOKR
    "algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 4,
    "apply_preset": {"target_module": ["FluxAttention", "FeedForward"]},
}
COMPILED = {"dynamo_backend": "inductor", "dynamo_use_regional_compilation": True}

# denoiser configs: (tiny, full)
FLUX2_SHAPES = {
    "tiny": dict(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=32, num_attention_heads=2,
                 joint_attention_dim=64, axes_dims_rope=(8, 8, 8, 8), guidance_embeds=False),
    "full": dict(patch_size=1, in_channels=128, num_layers=5, num_single_layers=20, attention_head_dim=128, num_attention_heads=24,
                 joint_attention_dim=7680, guidance_embeds=False),
}
SDXL_FULL = dict(
    sample_size=128, in_channels=4, out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), block_out_channels=(320, 640, 1280), layers_per_block=2,
    transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048, attention_head_dim=(5, 10, 20), use_linear_projection=True,
    addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
)
SDXL_SHAPES = {
    "tiny": dict(SDXL_FULL, block_out_channels=(32, 64, 64), transformer_layers_per_block=(1, 1, 1), attention_head_dim=(2, 4, 4),
                 cross_attention_dim=32, addition_time_embed_dim=8, projection_class_embeddings_input_dim=32 + 6 * 8, sample_size=16,
                 norm_num_groups=32),
    "full": SDXL_FULL,
}
FLUX_SHAPES = {
    "tiny": dict(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=32, num_attention_heads=2,
                 joint_attention_dim=64, pooled_projection_dim=32, guidance_embeds=True, axes_dims_rope=(8, 12, 12)),
    "full": dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128, num_attention_heads=24,
                 joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=(16, 56, 56)),
}
TOKENS = {"tiny": (8, 16), "full": (64, 512)}  # FLUX latent side (after patching) and text tokens
SDXL_SIDE = {"tiny": 16, "full": 128}


@dataclass
class Case:
    name: str
    family: str
    lycoris: dict
    baseline_lycoris: dict
    batch: int = 1
    options: dict = field(default_factory=dict)
    baseline_compiled: bool = False
    # more plain loops timed alongside (label, LyCORIS config, compile_repeated_blocks), with --shape full only
    # for the compiled ones: the anchor's other variants
    extra_baselines: tuple = ()


def variant(config: dict, **changes) -> dict:
    return {**copy.deepcopy(config), **changes}


CASES = [
    Case("flux2-lokr", "flux2", DOCUMENT_FLUX2_LOKR, DOCUMENT_FLUX2_LOKR,
         extra_baselines=(("rebuild", variant(DOCUMENT_FLUX2_LOKR, bypass_mode=False), False),)),
    Case("flux2-lokr-compiled", "flux2", DOCUMENT_FLUX2_LOKR, DOCUMENT_FLUX2_LOKR, options=COMPILED,
         extra_baselines=(("rebuild+compile_repeated_blocks", variant(DOCUMENT_FLUX2_LOKR, bypass_mode=False), True),)),
    Case("flux2-tlora-b4", "flux2", FLUX2_TLORA, DOCUMENT_FLUX2_LOKR, batch=4),
    Case("sdxl-lokr", "sdxl", DOCUMENT_GENERIC_LOKR, DOCUMENT_GENERIC_LOKR,
         extra_baselines=(("bypass", variant(DOCUMENT_GENERIC_LOKR, bypass_mode=True), False),)),
    Case("sdxl-lokr-compiled", "sdxl", DOCUMENT_GENERIC_LOKR, DOCUMENT_GENERIC_LOKR, options=COMPILED),
    Case("flux1-lokr", "flux", FLUX_LOKR, FLUX_LOKR),
]
DEFAULT_CASES = {
    "tiny": ["flux2-lokr", "flux2-tlora-b4", "sdxl-lokr", "flux1-lokr"],
    # the goals first (FLUX.2 and SDXL compiled), so a spent budget skips the least important
    "full": ["flux2-lokr-compiled", "flux2-lokr", "sdxl-lokr-compiled", "flux2-tlora-b4", "sdxl-lokr"],
}


# -- the two sides -----------------------------------------------------------------------------------------


def model_factory(family: str, shape: str) -> tuple[Callable, dict]:
    if family == "flux2":
        from diffusers import Flux2Transformer2DModel

        return (lambda: Flux2Transformer2DModel(**FLUX2_SHAPES[shape])), FLUX2_SHAPES[shape]
    if family == "flux":
        from diffusers import FluxTransformer2DModel

        return (lambda: FluxTransformer2DModel(**FLUX_SHAPES[shape])), FLUX_SHAPES[shape]
    from diffusers import UNet2DConditionModel

    return (lambda: UNet2DConditionModel(**SDXL_SHAPES[shape])), SDXL_SHAPES[shape]


def baseline_inputs(case: Case, shape: str, config: dict):
    import baseline_loop

    side, text = TOKENS[shape]
    if case.family == "flux2":
        return baseline_loop.flux2_inputs(config, case.batch, side * side, text)
    if case.family == "flux":
        return baseline_loop.flux_inputs(config, case.batch, side * side, text)
    return baseline_loop.sdxl_inputs(config, case.batch, SDXL_SIDE[shape])


def pipeline_folder(family: str, root: Path, config: dict) -> Path:
    """A tiny pipeline folder of the family (the tests' builders: VAE, text encoders, tokenizers, scheduler) whose
    denoiser config.json is the case's (the denoiser itself is built in memory)."""
    import torch

    folder = root / "pipeline"
    if family == "flux2":
        from diffusers import Flux2Transformer2DModel as Model
        from train_fixtures import build_tiny_flux2_klein as build
        subfolder = "transformer"
    elif family == "flux":
        from diffusers import FluxTransformer2DModel as Model
        from family_fixtures import build_tiny_flux as build
        subfolder = "transformer"
    else:
        from diffusers import UNet2DConditionModel as Model
        from family_fixtures import build_tiny_sdxl as build
        subfolder = "unet"
    build(folder)
    for path in (folder / subfolder).iterdir():
        path.unlink()
    with torch.device("meta"):
        Model(**config).save_config(folder / subfolder)
    return folder


def pixels(family: str, folder: Path, shape: str) -> int:
    """The image side whose latents have the case's token count (the pipeline's VAE and patching)."""
    from lyco_train.families import get_family
    from lyco_train.options import TrainingOptions

    multiple = get_family(family).pixel_multiple(TrainingOptions(pretrained_model_name_or_path=str(folder)))
    if family == "sdxl":
        vae = json.loads((folder / "vae" / "config.json").read_text())
        return SDXL_SIDE[shape] * 2 ** (len(vae["block_out_channels"]) - 1)
    side = TOKENS[shape][0]
    vae = json.loads((folder / "vae" / "config.json").read_text())
    scale = 2 ** (len(vae["block_out_channels"]) - 1) * 2  # VAE downscale × the 2×2 patching
    assert (side * scale) % multiple == 0
    return side * scale


def write_run(case: Case, shape: str, root: Path, folder: Path) -> Path:
    from train_fixtures import write_images

    side = pixels(case.family, folder, shape)
    images = [(f"image{index}.png", (side, side), (40 * index % 255, 120, 200), f"a photo of a circle {index}") for index in range(max(4, case.batch))]
    write_images(root / "images", images)
    backends = [
        {"id": "bench", "type": "local", "instance_data_dir": str(root / "images"), "caption_strategy": "textfile", "resolution": side,
         "resolution_type": "pixel", "cache_dir_vae": str(root / "cache" / "vae")},
        {"id": "text-embeds", "dataset_type": "text_embeds", "default": True, "type": "local", "cache_dir": str(root / "cache" / "text")},
    ]
    (root / "multidatabackend.json").write_text(json.dumps(backends))
    (root / "lycoris.json").write_text(json.dumps(case.lycoris))
    config = {
        "model_type": "lora", "lora_type": "lycoris", "model_family": case.family,
        "model_flavour": {"flux2": "klein-4b", "flux": "dev", "sdxl": "base-1.0"}[case.family],
        "pretrained_model_name_or_path": str(folder), "lycoris_config": "lycoris.json", "data_backend_config": "multidatabackend.json",
        "output_dir": str(root / "output"), "optimizer": "torch-adamw", "learning_rate": 1e-4, "lr_scheduler": "constant",
        "train_batch_size": case.batch, "max_train_steps": 1000, "checkpoint_step_interval": 0, "mixed_precision": "bf16",
        "gradient_checkpointing": False, "caption_dropout_probability": 0.0, "seed": 1, "aspect_bucket_alignment": 8 if case.family == "flux2" else 64,
        **({"tokenizer_max_length": TOKENS[shape][1]} if case.family == "flux2" else {}),
        **({"flux_guidance_value": 3.5} if case.family == "flux" else {}),
        **case.options,
    }
    path = root / "config.json"
    path.write_text(json.dumps(config))
    return path


def random_caches(plan, case: Case, shape: str, config: dict) -> None:
    """Latents and prompt embeddings of the model's shapes at the run's cache paths (random values)."""
    import torch

    from lyco_train.caching import write_tensor, write_tensors

    side, text = TOKENS[shape]
    generator = torch.Generator().manual_seed(0)
    for sample in plan.data.samples:
        if case.family == "flux2":
            latents = torch.randn(config["in_channels"], side, side, generator=generator)
        elif case.family == "flux":
            latents = torch.randn(config["in_channels"] // 4, side * 2, side * 2, generator=generator)
        else:
            latents = torch.randn(4, SDXL_SIDE[shape], SDXL_SIDE[shape], generator=generator)
        write_tensor(sample.latent_file, "latents", latents)
    for prompt, path in plan.data.prompt_files.items():
        if case.family == "flux2":
            tensors = {"prompt_embeds": torch.randn(text, config["joint_attention_dim"], generator=generator).bfloat16()}
        elif case.family == "flux":
            tensors = {"prompt_embeds": torch.randn(text, config["joint_attention_dim"], generator=generator).bfloat16(),
                       "pooled_prompt_embeds": torch.randn(config["pooled_projection_dim"], generator=generator).bfloat16()}
        else:
            pooled = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
            tensors = {"prompt_embeds": torch.randn(77, config["cross_attention_dim"], generator=generator).bfloat16(),
                       "pooled_prompt_embeds": torch.randn(pooled, generator=generator).bfloat16()}
        write_tensors(path, tensors)


class LycoSide:
    """lyco's run of the case, one ``train_step`` per call."""

    def __init__(self, case: Case, shape: str, root: Path, quiet: Callable[[str], None]):
        import torch

        from lyco_train.data import BatchStream
        from lyco_train.families import get_family
        from lyco_train.loop import prepare
        from lyco_train.run import prepare_run

        make_model, config = model_factory(case.family, shape)
        folder = pipeline_folder(case.family, root, config)
        plan = prepare_run(write_run(case, shape, root, folder), quiet)
        random_caches(plan, case, shape, config)
        family = get_family(case.family)

        def load_denoiser(options, dtype, device):  # the case's model, built in memory (random weights)
            torch.manual_seed(0)
            with torch.device(device):
                return make_model().to(dtype)

        family.load_denoiser = load_denoiser  # this process only: the benchmark's family object
        self.lines: list[str] = []
        self.parts, self.generator = prepare(replace(plan, adapter_path="auto"), lambda text: (self.lines.append(text), quiet(text)))
        self.stream = BatchStream(plan.data, plan.seed, plan.micro_batch_size)
        self.parts.reader.follow(self.stream)
        self.peak: Optional[float] = None

    def step(self) -> None:
        from lyco_train.loop import train_step

        result = train_step(self.parts, [self.stream.next()], self.generator)
        self.peak = max(self.peak or 0.0, result.peak_gib) if result.peak_gib is not None else None

    def paths(self) -> dict:
        choice = self.parts.adapter.path_choice
        counts: dict[str, int] = {}
        for index, path in enumerate(choice.paths):
            key = "config" if index in choice.fixed else path
            counts[key] = counts.get(key, 0) + 1
        return counts


# -- timing ------------------------------------------------------------------------------------------------


def timed(step: Callable[[], None], cuda: bool, peak: bool = False) -> tuple[float, Optional[float]]:
    import torch

    if cuda:
        torch.cuda.synchronize()
        if peak:
            torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    step()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return seconds, (torch.cuda.max_memory_allocated() / 2**30 if cuda and peak else None)


def run_case(case: Case, shape: str, steps: int, warmup: int, device, quiet) -> dict[str, Any]:
    import baseline_loop
    import torch

    cuda = device.type == "cuda"
    with tempfile.TemporaryDirectory(prefix=f"bench-{case.name}-") as folder:
        started = time.perf_counter()
        lyco = LycoSide(case, shape, Path(folder), quiet)
        make_model, config = model_factory(case.family, shape)
        inputs = baseline_inputs(case, shape, config)
        sides: dict[str, Callable[[], None]] = {"lyco": lyco.step}
        baselines = [("baseline", case.baseline_lycoris, case.baseline_compiled)]
        baselines += [extra for extra in case.extra_baselines if shape == "full" or not extra[2]]
        built = {}
        for label, lycoris_config, compiled in baselines:
            built[label] = baseline_loop.build(make_model, lycoris_config, inputs, device, compiled)
            sides[label] = built[label].step
        setup_s = time.perf_counter() - started
        warm = dict.fromkeys(sides, 0.0)
        for _ in range(warmup):  # the first steps compile, tune kernels, fill caches
            for name, side in sides.items():
                warm[name] += timed(side, cuda)[0]
        times: dict[str, list[float]] = {name: [] for name in sides}
        peaks: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(steps):  # alternating, so a busy machine slows every side alike
            for name, side in sides.items():
                seconds, peak = timed(side, cuda, peak=True)
                times[name].append(seconds)
                if peak is not None:
                    peaks[name].append(peak)
        lyco_s, base_s = statistics.median(times["lyco"]), statistics.median(times["baseline"])
        result = {
            "name": case.name, "shape": shape, "device": device_description(device), "batch": case.batch,
            "lyco_step_s": round(lyco_s, 5), "baseline_step_s": round(base_s, 5), "ratio": round(lyco_s / base_s, 3),
            "lyco_spread_s": [round(min(times["lyco"]), 5), round(max(times["lyco"]), 5)],
            "baseline_spread_s": [round(min(times["baseline"]), 5), round(max(times["baseline"]), 5)],
            "peak_gib": round(max(peaks["lyco"]), 2) if peaks["lyco"] else None,
            "baseline_peak_gib": round(max(peaks["baseline"]), 2) if peaks["baseline"] else None,
            "lyco_layer_paths": lyco.paths(), "lyco_compiled": lyco.parts.compiled is not None and lyco.parts.compiled.active,
            "baseline": f"plain loop, {case.baseline_lycoris['algo']}, bypass_mode {bool(case.baseline_lycoris.get('bypass_mode'))}"
            + (", compile_repeated_blocks" if case.baseline_compiled else ""),
            "other_baselines": {
                label: {"step_s": round(statistics.median(times[label]), 5), "ratio": round(lyco_s / statistics.median(times[label]), 3),
                        "peak_gib": round(max(peaks[label]), 2) if peaks[label] else None}
                for label, _config, _compiled in baselines[1:]
            },
            "warmup_s": {name: round(value, 2) for name, value in warm.items()}, "setup_s": round(setup_s, 1),
            "steps": steps,
        }
        del lyco, built, sides
        gc.collect()
        torch._dynamo.reset()  # compiled code holds on to its models
        if cuda:
            torch.cuda.empty_cache()
        return result


def device_description(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--json", action="store_true", help="one JSON object per case on stdout")
    parser.add_argument("--cases", nargs="+", choices=[case.name for case in CASES], help="default: the shape's default cases")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per side (default 15 tiny, 7 full)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (tiny; 1 keeps a shared machine's noise down)")
    parser.add_argument("--budget-s", type=float, default=None, help="skip cases that would start after this many seconds (default: 480 full)")
    arguments = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging

    import torch

    from lyco_train.quantize import quiet_import_noise

    quiet_import_noise()
    for name in ("lycoris", "diffusers", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if arguments.shape == "full" and not torch.cuda.is_available():
        print("error: --shape full needs a CUDA GPU (the real Klein-4B and SDXL shapes); run --shape tiny on the CPU", file=sys.stderr)
        return 2
    torch.set_num_threads(arguments.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    steps = arguments.steps or (7 if arguments.shape == "full" else 15)
    budget = arguments.budget_s if arguments.budget_s is not None else (480.0 if arguments.shape == "full" else None)
    names = arguments.cases or DEFAULT_CASES[arguments.shape]
    started = time.perf_counter()
    quiet = (lambda _text: None) if arguments.json else (lambda text: print(f"  {text}", file=sys.stderr))
    by_name = {case.name: case for case in CASES}
    for case in [by_name[name] for name in dict.fromkeys(names)]:
        elapsed = time.perf_counter() - started
        if budget is not None and elapsed > budget:
            result: dict[str, Any] = {"name": case.name, "skipped": f"the run's budget of {budget:.0f} s was spent ({elapsed:.0f} s)"}
        else:
            result = run_case(case, arguments.shape, steps, arguments.warmup, device, quiet)
            result["elapsed_s"] = round(time.perf_counter() - started, 1)
        if arguments.json:
            print(json.dumps(result), flush=True)
        elif "skipped" in result:
            print(f"{case.name:22s} skipped: {result['skipped']}", flush=True)
        else:
            peak = f"  peak {result['peak_gib']} GiB (baseline {result['baseline_peak_gib']})" if result["peak_gib"] is not None else ""
            print(
                f"{case.name:22s} lyco {result['lyco_step_s'] * 1e3:8.2f} ms  baseline {result['baseline_step_s'] * 1e3:8.2f} ms  "
                f"ratio {result['ratio']:.3f}  paths {result['lyco_layer_paths']}{peak}", flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
