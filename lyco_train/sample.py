"""``lyco sample``: the user document's inference example as a command.

The model, flavour and validation settings come from the training config (or ``--model`` with SimpleTuner's
validation defaults); each command-line option replaces the setting it names (``--steps``:
``validation_num_inference_steps``, ``--guidance``: ``validation_guidance``, ``--seed``: ``validation_seed``,
``--strength``: ``validation_lycoris_strength``, ``--num-images``: ``num_validation_images``, ``--width`` and
``--height``: ``validation_resolution``). The prompts: ``--prompt`` (repeatable) and ``--prompt-library``, else
the config's ``validation_prompt`` and ``user_prompt_library``.

The images are what the trained network renders under ``apply_to()`` — for T-LoRA with the rank mask of each
denoising step's timestep (``sampling.tlora_masks``). Where merging is exact and faster — float32 weights,
an algorithm other than T-LoRA, one strength for every prompt — the adapter is merged into the weights
instead (``merge.merge_into``: each module's change once, as its forward computes it). In bfloat16 it is
applied: rounding the merged weights to bfloat16 would lose part of a small change.

Prompt embeddings are read from the run's text cache when it has them; the others are encoded with the
family's text encoder, which is dropped before the denoiser loads.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

from .config import ConfigError
from .inference import InputError, Source

ENCODE_BATCH = 8


def main(
    config: Optional[str] = None,
    *,
    model: Optional[str] = None,
    weights: Optional[str] = None,
    prompts: Sequence[str] = (),
    prompt_library: Optional[str] = None,
    strength: Optional[float] = None,
    steps: Optional[int] = None,
    guidance: Optional[float] = None,
    seed: Optional[int] = None,
    width: Optional[int] = None,
    height: Optional[int] = None,
    num_images: Optional[int] = None,
    output: Optional[str] = None,
    dtype: Optional[str] = None,
    console=None,
) -> int:
    """``lyco sample``: 0 written, 1 a config problem, 2 bad input (missing or unfit files, a bad prompt file)."""
    from rich.console import Console

    from .inference import check_output, command_status, resolve
    from lyco_lint.meta_model.patches import quiet_import_noise

    quiet_import_noise()

    console = console or Console()
    say = lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)  # noqa: E731

    def work() -> list[Path]:
        source = resolve(config, model, weights, dtype)
        source.options = overridden(source.options, strength, steps, guidance, seed, width, height, num_images)
        chosen = chosen_prompts(source, prompts, prompt_library)
        folder = Path(output) if output else (source.config.output_dir / "samples" if source.config else Path("samples"))
        check_output(folder)
        return sample(source, chosen, folder, console, say)

    status, written = command_status("sample", "the images", say, work)
    if status:
        return status
    for path in written:
        say(f"wrote {path}")
    return 0


def overridden(options, strength, steps, guidance, seed, width, height, num_images):
    """The options with the command line's values in place of the settings they name."""
    if (width is None) != (height is None):
        raise InputError("give --width and --height together (or neither: validation_resolution)")
    for name, value in (("--steps", steps), ("--num-images", num_images), ("--width", width), ("--height", height)):
        if value is not None and value < 1:
            raise InputError(f"{name} must be at least 1, got {value}")
    changes = {
        "validation_lycoris_strength": strength, "validation_num_inference_steps": steps, "validation_guidance": guidance,
        "validation_seed": seed, "num_validation_images": num_images,
        "validation_resolution": f"{width}x{height}" if width is not None else None,
    }
    return replace(options, **{name: value for name, value in changes.items() if value is not None})


def chosen_prompts(source: Source, prompts: Sequence[str], library: Optional[str]) -> list:
    from .validation import Prompt, read_prompt_library, unique_names, validation_prompts

    chosen = [Prompt(f"prompt-{index}", text) for index, text in enumerate(prompts, 1)]
    if library:
        try:
            chosen += read_prompt_library(Path(library))
        except ConfigError as error:
            raise InputError(str(error)) from None
    if not chosen:
        config_path = source.config.path if source.config else None
        chosen = validation_prompts(source.options, config_path, unconditional=False)
    if not chosen:
        raise InputError("no prompt: pass --prompt TEXT (repeatable) or --prompt-library FILE, or set validation_prompt in the training config")
    return unique_names(chosen)


def sample(source: Source, prompts: list, folder: Path, console, say) -> list[Path]:
    """Render every prompt at every size and write the images and their grid into ``folder``."""
    import torch

    from . import caching, sampling
    from .images import Render, write_renders
    from .inference import load_adapter
    from .merge import merge_into
    from .options import torch_dtype
    from .validation import decoding_options, negative_prompt, parse_sizes, positive

    options, family = source.options, source.family
    guidance = family.guidance(options)
    sizes = parse_sizes(options.validation_resolution)
    count = positive(options.num_validation_images, "num_validation_images")
    steps = positive(options.validation_num_inference_steps, "validation_num_inference_steps")
    strength = options.validation_lycoris_strength
    seed = options.validation_seed if options.validation_seed is not None else (options.seed if options.seed is not None else 0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch_dtype(options.weight_dtype_name)
    negative = negative_prompt(options) if guidance.negative_prompt else None
    started = time.perf_counter()

    embeddings = prompt_embeddings(source, [prompt.text for prompt in prompts] + ([negative] if negative is not None else []), device, say)
    denoiser = family.load_denoiser(options, dtype, device).requires_grad_(False).eval()
    adapter = load_adapter(source, denoiser, strength, device)
    strengths = {strength if prompt.strength is None else prompt.strength for prompt in prompts}
    modules = f"{sum(source.algos.values())} module(s) ({', '.join(sorted(source.algos))})"
    if dtype == torch.float32 and adapter.tlora is None and len(strengths) == 1:
        (only,) = strengths  # every prompt's: a library's own adapter_strength wins over validation_lycoris_strength
        merge_into(adapter.network, only)
        say(f"adapter: {modules} of {source.weights} at strength {only:g}, merged into the float32 weights")
        network, adapter = None, None
    else:
        adapter.network.apply_to()
        network = adapter.network
        how = "applied, T-LoRA masked per denoising step" if adapter.tlora is not None else "applied"
        say(f"adapter: {modules} of {source.weights} at strength {strength:g}, {how} ({options.weight_dtype_name})")
    vae = family.load_vae(decoding_options(options), device)
    pipeline = family.pipeline(options, denoiser, vae)
    renders = []
    with sampling.inference(denoiser, network), sampling.progress(console, "sampling", len(prompts) * len(sizes) * steps) as advance:
        for prompt in prompts:
            chosen = strength if prompt.strength is None else prompt.strength
            with sampling.adapter_strength(network, chosen) if network is not None else contextlib.nullcontext():
                for width, height in sizes:
                    images = sampling.render(
                        family, options, pipeline, embeddings[prompt.text], embeddings.get(negative) if negative is not None else None,
                        width=width, height=height, count=count, steps=steps, seed=seed, device=device, dtype=dtype, adapter=adapter,
                        on_step=advance,
                    )
                    renders.append(Render(prompt.shortname, prompt.text, width, height, images))
    caching.free_accelerator(device)
    written = write_renders(renders, folder, options.validation_image_format, options.validation_image_quality, replace=False)
    say(f"sampled {sum(len(r.images) for r in renders)} image(s) of {len(prompts)} prompt(s), seed {seed}, {guidance.summary}, "
        f"in {time.perf_counter() - started:.1f} s")
    return written


def prompt_embeddings(source: Source, texts: list[str], device, say) -> dict:
    """Each text's embeddings (one row per tensor, on the CPU): the run's text cache first, the text encoder for
    the rest (loaded only then, dropped afterwards)."""
    from . import caching
    from .data import text_cache_key

    found: dict = {}
    missing = list(dict.fromkeys(texts))
    if source.config is not None:
        identity = source.family.text_identity(source.options)
        cache = source.config.text_embeds.cache_dir
        for text in list(missing):
            path = cache / f"{text_cache_key(text, identity)}.safetensors"
            if path.is_file():
                found[text] = caching.read_tensors(path)
                missing.remove(text)
    if missing:
        say(f"encoding {len(missing)} prompt(s) with the text encoder")
        encoder = source.family.load_text_encoder(source.options, device)
        for start in range(0, len(missing), ENCODE_BATCH):
            chunk = missing[start : start + ENCODE_BATCH]
            embeds = source.family.encode_prompts(encoder, chunk, source.options)
            for row, text in enumerate(chunk):
                found[text] = {name: tensor[row].detach().cpu() for name, tensor in embeds.items()}
        del encoder
        caching.free_accelerator(device)
    return found

