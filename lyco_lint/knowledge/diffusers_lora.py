"""What diffusers' ``pipeline.load_lora_weights(file)`` does with a LyCORIS adapter, for flux2, flux and sdxl.

The rules below replay diffusers 0.42.1's loaders (``loaders/lora_pipeline.py``: ``Flux2LoraLoaderMixin``,
``FluxLoraLoaderMixin``, ``StableDiffusionXLLoraLoaderMixin``; ``loaders/lora_conversion_utils.py``;
``utils/peft_utils._create_lokr_config``, with peft 0.21.2) for files written by LyCORIS's ``save_weights``;
the test suite runs the real ``load_lora_weights`` on tiny pipelines and checks every outcome named here.

In short: FLUX.2 loads LoKr files whose modules all sit in the transformer blocks and whose Kronecker blocks
one ``decompose_factor`` reproduces (a ``module_algo_map`` with different factors per class does not), loads
*nothing* from a LyCORIS LoRA file (its kohya converter only knows BFL names) and refuses everything else;
FLUX.1 and SDXL refuse LyCORIS files (their ``alpha`` tensors have no ``lora`` in the name), except SDXL LoRA
files under the kohya prefix ``lora_unet_``. DoRA's ``dora_scale`` is dropped with a warning everywhere, so a
DoRA adapter that loads is applied without its magnitude vector.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Optional

from .lycoris import balanced_split

Shapes = Mapping[str, tuple[int, ...]]

DIFFUSERS_VERSION = "0.42.1"
PIPELINES = {"flux2": "Flux2Pipeline, Flux2KleinPipeline", "flux": "FluxPipeline", "sdxl": "StableDiffusionXLPipeline"}
LOADS, LOADS_NOTHING, REFUSES = "loads", "loads nothing", "refuses"

# lora_conversion_utils._LYCORIS_FLUX2_SUBPATH_MAP: the block sub-paths the FLUX.2 LyCORIS LoKr converter knows.
FLUX2_SUBPATHS = frozenset({
    "attn_to_q", "attn_to_k", "attn_to_v", "attn_to_out_0", "attn_to_add_out", "attn_add_q_proj", "attn_add_k_proj",
    "attn_add_v_proj", "attn_to_qkv_mlp_proj", "attn_to_out", "ff_linear_in", "ff_linear_out", "ff_context_linear_in",
    "ff_context_linear_out",
})
_FLUX2_LYCORIS_KEY = re.compile(r"^lycoris_((?:single_)?transformer_blocks)_(\d+)_(.+)\.(.+)$")
KOHYA_PREFIXES = ("lora_te_", "lora_unet_", "lora_te1_", "lora_te2_")
LORA_SUFFIXES = frozenset({"lora_up.weight", "lora_down.weight", "alpha"})


@dataclass(frozen=True)
class DiffusersVerdict:
    family: str
    pipeline: str
    outcome: str  # LOADS, LOADS_NOTHING, REFUSES
    modules: int  # modules loaded
    message: str  # what diffusers says or does
    dropped: tuple[str, ...] = ()  # keys diffusers drops before loading (dora_scale)

    @property
    def version(self) -> str:
        return DIFFUSERS_VERSION


def peft_factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
    """peft 0.21.2's ``tuners.lokr.layer.factorization`` (differs from LyCORIS's when factor > sqrt(dimension))."""
    if factor > 0 and dimension % factor == 0:
        return factor, dimension // factor  # as given, where LyCORIS puts the smaller side first
    return balanced_split(dimension, dimension if factor == -1 else factor)  # LyCORIS: any factor < 0


def _lokr_blocks(shapes: Shapes) -> Optional[tuple[tuple[int, int], tuple[int, int]]]:
    s = shapes.get
    try:
        w1 = s("lokr_w1") or (s("lokr_w1_a")[0], s("lokr_w1_b")[1])
        w2 = s("lokr_w2") or (s("lokr_w2_a")[0], s("lokr_w2_b")[1])
    except TypeError:
        return None
    return (w1[0], w2[0]), (w1[1], w2[1])


def decompose_factor(modules: Mapping[str, Shapes]) -> Optional[int]:
    """The ``decompose_factor`` diffusers' ``_create_lokr_config`` finds for these LoKr modules (None: none fits)."""
    found = [_lokr_blocks(shapes) for shapes in modules.values()]
    if any(blocks is None for blocks in found):
        return None
    for candidate in sorted({out[0] for out, _ in found}) + [-1]:
        if all(
            peft_factorization(out[0] * out[1], candidate) == out and peft_factorization(ins[0] * ins[1], candidate) == ins
            for out, ins in found
        ):
            return candidate
    return None


def _listed(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def diffusers_load(family: Optional[str], modules: Mapping[str, Shapes]) -> Optional[DiffusersVerdict]:
    """What ``load_lora_weights`` does with these modules (name -> tensor suffix -> shape); None when the
    family is not one of flux2, flux, sdxl."""
    if family not in PIPELINES:
        return None
    keys = [f"{name}.{suffix}" for name, shapes in modules.items() for suffix in shapes]
    dropped = tuple(key for key in keys if "dora_scale" in key)
    keys = [key for key in keys if "dora_scale" not in key]
    remaining = {name: {s: shape for s, shape in shapes.items() if "dora_scale" not in s} for name, shapes in modules.items()}

    def verdict(outcome: str, message: str, count: int = 0) -> DiffusersVerdict:
        return DiffusersVerdict(family, PIPELINES[family], outcome, count, message, dropped)

    no_lora_word = [key for key in keys if "lora" not in key]
    if family == "flux2":
        if any(".lora_down.weight" in key for key in keys):
            return verdict(LOADS_NOTHING, "its kohya FLUX.2 converter only knows BFL module names (double_blocks, single_blocks): "
                           "every key is dropped as 'Unsupported keys' and the pipeline is left unchanged, without an error")
        if any(".lokr_" in key for key in keys):
            return _flux2_lokr(verdict, keys, remaining)
        return verdict(REFUSES, "ValueError: Invalid adapter checkpoint. We currently support LoRA and LoKr.")
    if family == "flux":
        if any(".lora_down.weight" in key for key in keys) or no_lora_word:
            return verdict(REFUSES, "ValueError: Invalid LoRA checkpoint (its kohya FLUX.1 converter only knows BFL module names, "
                           "and LyCORIS's alpha, LoKr and LoHa tensors have no 'lora' in their names)")
        return verdict(REFUSES, "ValueError: Invalid LoRA checkpoint")
    # sdxl
    if keys and all(key.startswith(KOHYA_PREFIXES) for key in keys):
        others = [key for key in keys if key.split(".", 1)[1] not in LORA_SUFFIXES]
        if others:
            return verdict(REFUSES, f"ValueError: The following keys have not been correctly renamed: {_listed(others)} "
                           "(its kohya converter knows LoRA's lora_up/lora_down only)")
        return verdict(LOADS, "its kohya converter maps the lora_unet_ keys to the UNet", len(remaining))
    return verdict(REFUSES, "ValueError: Invalid LoRA checkpoint. Make sure all LoRA param names contain 'lora' "
                   f"({_listed(no_lora_word) if no_lora_word else 'the keys are not in a format it converts'})")


def _flux2_lokr(verdict, keys: list[str], modules: Mapping[str, Shapes]) -> DiffusersVerdict:
    keys = [key for key in keys if not key.endswith(".alpha")]  # baked into the left factor, then dropped
    if any(key.startswith("lycoris_") for key in keys):
        unknown = []
        for key in keys:
            match = _FLUX2_LYCORIS_KEY.match(key)
            if match is None or match.group(3) not in FLUX2_SUBPATHS:
                unknown.append(key)
        if unknown:
            return verdict(REFUSES, f"ValueError: These keys are not LyCORIS Flux2 LoKr keys: {_listed(unknown)} (its LyCORIS "
                           "converter knows the transformer blocks' attention and feed-forward layers only)")
    elif not any(key.startswith(("diffusion_model.", "transformer.")) for key in keys):
        others = [key for key in keys if ".lokr_" not in key]
        if others:
            return verdict(REFUSES, f"ValueError: `state_dict` contains unexpected non-LoKr keys: {_listed(others)}")
        return verdict(REFUSES, "NoMatchingPeftModuleError: the keys are read as bare diffusers module paths "
                       f"({_listed(sorted(modules))}), which name no module of the transformer")
    else:
        return verdict(REFUSES, "not predicted for keys starting with diffusion_model. or transformer.")
    others = [key for key in keys if "lokr" not in key and "lora" not in key]
    if others:
        return verdict(REFUSES, f"ValueError: Invalid adapter checkpoint. We currently support LoRA and LoKr. ({_listed(others)})")
    lokr = {name: shapes for name, shapes in modules.items() if any(s.startswith("lokr_") for s in shapes)}
    factor = decompose_factor(lokr)
    if factor is None:
        left = Counter(blocks[0][0] for blocks in map(_lokr_blocks, lokr.values()) if blocks)
        return verdict(REFUSES, "ValueError: Could not infer a `decompose_factor` that reproduces the Kronecker "
                       f"factorizations of this LoKr state dict (peft takes one factor for every layer; these small blocks have "
                       f"{len(left)} different sizes: {', '.join(str(size) for size in sorted(left))} rows)")
    return verdict(LOADS, f"as a peft LoKr adapter (decompose_factor {factor}; alpha baked into the weights)", len(lokr))
