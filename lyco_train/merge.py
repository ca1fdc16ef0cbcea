"""``lyco merge``: bake the adapter into the denoiser and write a diffusers pipeline folder.

The merged weight of each module is what the module's own forward computes under ``apply_to()`` at the
strength (the multiplier), computed once in float32 and cast to the layer's dtype:

* LoKr and LoHa: ``W + m · ΔW`` with ``ΔW = get_weight(shape) · scalar`` — ``get_weight`` already applies the
  module's scale (alpha / dim). lycoris-lora 4.1.3's ``get_merged_weight`` (what ``merge_to()`` calls) goes
  through ``get_diff_weight``, which multiplies by the scale again, so ``merge_to()`` bakes in scale² · ΔW
  whenever alpha ≠ dim with w2 (or a Hadamard factor) decomposed (``lyco_lint.weights.adapter.Module.merge_scale``
  and lint rules LYC115/LYC607 hold that fact); with DoRA (``dora_wd``) the weight decomposition is the forward's;
* every other algorithm (LoRA/LoCon with or without DoRA, full, IA³, GLoRA, BOFT, diag-OFT, DyLoRA):
  LyCORIS's ``get_merged_weight``, which matches its forward (``tests/test_merge.py`` measures each against
  ``apply_to()``);
* T-LoRA is refused: its ΔW depends on the timestep (the rank mask of each denoising step), so no single
  set of weights reproduces it.

The folder is the model's pipeline (``DiffusionPipeline.from_pretrained``: text encoders, tokenizers, VAE,
scheduler) with the merged denoiser, written by ``save_pretrained`` into a temporary folder that is renamed
into place once complete (``lyco_lint.atomic.publish_directory``); it loads back with
``DiffusionPipeline.from_pretrained``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

from .config import ConfigError
from .inference import InputError, Source

TLORA_REFUSAL = (
    "T-LoRA cannot be merged: its weight change depends on the timestep (each denoising step masks the ranks of its "
    "timestep), so no single set of merged weights reproduces it. Render it with `lyco sample` (the per-step masks, as "
    "in training), or load it with LyCORIS (create_lycoris_from_weights + apply_to) and set the timestep mask before "
    "every denoiser call"
)


def merged_weight(module, strength: float):
    """(weight, bias or None) of one LyCORIS module merged at ``strength``, as its forward computes it."""
    import torch
    from lycoris.modules.loha import LohaModule
    from lycoris.modules.lokr import LokrModule

    layer = module.org_module[0]
    weight = layer.weight
    if isinstance(module, (LokrModule, LohaModule)):
        base = weight.detach().float()
        diff = module.get_weight(weight.shape).float() * module.scalar.float()  # get_weight applies the scale: once
        if module.wd:
            return module.apply_weight_decompose(base + diff, strength), None
        return base + diff * strength, None
    merged, bias = module.get_merged_weight(strength, weight.shape, weight.device)
    return merged.to(torch.float32), (None if bias is None else bias.to(torch.float32))


def merge_into(network, strength: float) -> int:
    """Write every module's merged weight into its layer (the network must not be applied); returns the count."""
    import torch
    from lycoris.modules.tlora import TLoraModule

    if any(isinstance(module, TLoraModule) for module in network.loras):
        raise InputError(TLORA_REFUSAL)
    with torch.no_grad():
        for module in network.loras:
            if getattr(module, "not_supported", False):
                continue
            layer = module.org_module[0]
            weight, bias = merged_weight(module, strength)
            layer.weight.data.copy_(weight.to(layer.weight.dtype).view_as(layer.weight))
            if bias is not None:
                if layer.bias is None:
                    raise ConfigError(f"{module.lora_name} trains a bias its layer does not have; this adapter cannot be merged (use lyco sample)")
                layer.bias.data.copy_(bias.to(layer.bias.dtype).view_as(layer.bias))
    return len(network.loras)


def twice_scaled(source: Source) -> tuple[int, float]:
    """How many modules lycoris-lora 4.1.3's ``merge_to()`` would scale twice, and one such scale (lint's fact)."""
    wrong = [module for module in source.modules.values() if module.merge_scale is not None and module.lycoris_scale is not None
             and abs(module.merge_scale - module.lycoris_scale) > 1e-9]
    return len(wrong), (wrong[0].lycoris_scale if wrong else 1.0)


def merge(source: Source, output: Path, strength: float, say) -> Path:
    """Merge ``source``'s adapter into its model and write the pipeline folder ``output``."""
    import torch
    from diffusers import DiffusionPipeline

    from lyco_lint.atomic import publish_directory

    from .families import components
    from .inference import check_output, load_adapter
    from .options import torch_dtype

    if source.is_tlora:
        raise InputError(TLORA_REFUSAL)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise InputError(f"--output {output} already exists and is not an empty folder; choose a new folder (lyco merge never overwrites)")
    check_output(output)
    options, family = source.options, source.family
    dtype = torch_dtype(options.weight_dtype_name)
    cpu = torch.device("cpu")
    denoiser = family.load_denoiser(options, dtype, cpu)
    adapter = load_adapter(source, denoiser, strength, cpu)
    count = merge_into(adapter.network, strength)
    wrong, scale = twice_scaled(source)
    if wrong:
        say(
            f"note: lycoris-lora 4.1.3's merge_to() would apply the scale of {wrong} LoKr/LoHa module(s) twice ({scale:g} → {scale * scale:g}); "
            "lyco merges each module's change once, as apply_to() computes it"
        )
    component = components.facts(family.name).subfolder
    try:
        pipeline = DiffusionPipeline.from_pretrained(family.model_root(options), torch_dtype=dtype, revision=options.revision, **{component: denoiser})
    except OSError as error:
        raise ConfigError(components.cannot_load(family.model_root(options), error)) from None
    temporary = output.parent / f".{output.name}.tmp"
    if temporary.exists():
        shutil.rmtree(temporary)
    output.parent.mkdir(parents=True, exist_ok=True)
    pipeline.save_pretrained(temporary)
    if output.is_dir():
        output.rmdir()  # empty (checked above): publish_directory puts the complete folder in its place
    publish_directory(temporary, output)
    say(f"merged {count} module(s) of {source.weights} at strength {strength:g} into {type(denoiser).__name__} ({options.weight_dtype_name}); "
        f"pipeline written to {output}")
    return output


def main(config: Optional[str], model: Optional[str], weights: Optional[str], strength: Optional[float], output: str, dtype: Optional[str], console=None) -> int:
    """``lyco merge``: 0 written, 1 a config problem, 2 bad input (missing or unfit files, T-LoRA)."""
    from rich.console import Console

    from .inference import command_status, resolve
    from lyco_lint.meta_model.patches import quiet_import_noise

    quiet_import_noise()

    console = console or Console()
    say = lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)  # noqa: E731

    def work() -> Path:
        source = resolve(config, model, weights, dtype)
        chosen = source.options.validation_lycoris_strength if strength is None else strength
        return merge(source, Path(output), chosen, say)

    return command_status("merge", output, say, work)[0]
