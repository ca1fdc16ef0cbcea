"""An adapter file against the real model, built on the meta device (``--model``; no weight of either is read
beyond the file's header and alpha scalars).

Two questions. Does every module name the file holds map to a layer of the model, with the layer's weight
shape? (LyCORIS names a module ``<prefix>_<module path with dots as underscores>``.) And what does LyCORIS's
own ``create_lycoris_from_weights`` build from it? It is run on the meta model with meta tensors of the file's
shapes (and its real alpha values), under LyCORIS's default class state: like every caller that does not call
``LycorisNetwork.apply_preset`` first, it looks for the ``lycoris`` prefix.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

from .adapter import Module
from .inspection import Inspection

TORCH_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
}


@dataclass(frozen=True)
class Mismatch:
    name: str
    key: str  # the tensor key to point at
    problem: str
    kind: str  # "missing" (no such layer) or "shape"


@dataclass(frozen=True)
class LycorisLoad:
    """What create_lycoris_from_weights built on the meta model."""

    modules: int
    algo_table: dict[str, int]
    scales: dict[str, float]  # lora_name -> the scale LyCORIS gave the module
    error: Optional[str] = None
    prefix: str = "lycoris"


@dataclass
class Fit:
    model_class: str
    origin: str
    paths: dict[str, str] = field(default_factory=dict)  # module name -> model path, for names that map
    classes: Counter = field(default_factory=Counter)  # (block class, layer class) -> adapted layers
    block_classes: dict[str, str] = field(default_factory=dict)  # module name -> class of the block around its layer
    mismatches: list[Mismatch] = field(default_factory=list)
    lycoris: Optional[LycorisLoad] = None


def _matches(module: Module, weight_shape: tuple[int, ...]) -> bool:
    found = module.weight_shape
    if not found:
        return True  # ia3, oft, glora: no delta shape to compare
    if len(found) == len(weight_shape):
        return tuple(found) == tuple(weight_shape)
    flat = 1
    for size in found[1:]:
        flat *= size
    wanted = 1
    for size in weight_shape[1:]:
        wanted *= size
    return found[0] == weight_shape[0] and flat == wanted  # a convolution's delta stored flattened


_CONTAINERS = ("ModuleList", "Sequential", "ModuleDict")


def _block_class(named: dict, path: str) -> str:
    """The class of the nearest enclosing module that is not a container (Flux2Attention for attn.to_out.0)."""
    while "." in path:
        path = path.rsplit(".", 1)[0]
        name = type(named[path]).__name__
        if name not in _CONTAINERS:
            return name
    return type(named[""]).__name__


def check_fit(inspection: Inspection, model, source=None) -> Fit:
    adapter = inspection.adapter
    named = dict(model.named_modules())
    by_name = {f"{adapter.prefix}_{path}".replace(".", "_"): path for path in named if path}
    fit = Fit(type(model).__name__, source.origin if source else type(model).__name__)
    for module in adapter.modules.values():
        key = f"{module.name}.{sorted(module.tensors)[0]}"
        path = by_name.get(module.name)
        if path is None:
            fit.mismatches.append(Mismatch(module.name, key, f"no layer of {fit.model_class} is called {module.name}", "missing"))
            continue
        layer = named[path]
        fit.paths[module.name] = path
        weight = getattr(layer, "weight", None)
        if weight is not None and not _matches(module, tuple(weight.shape)):
            fit.mismatches.append(Mismatch(
                module.name, key,
                f"{module.name} is a {module.algo} delta of shape {list(module.weight_shape)}, but {path} "
                f"({type(layer).__name__}) has a weight of shape {list(weight.shape)}",
                "shape",
            ))
            continue
        fit.block_classes[module.name] = _block_class(named, path)
        fit.classes[(fit.block_classes[module.name], type(layer).__name__)] += 1
    fit.lycoris = lycoris_load(inspection, model)
    return fit


def lycoris_load(inspection: Inspection, model) -> LycorisLoad:
    """Run LyCORIS's create_lycoris_from_weights on the meta model (nothing is allocated or read)."""
    from ..meta_model.patches import captured_output, no_tlora_gc, preset_state, quiet_import_noise, shape_only

    quiet_import_noise()
    import torch
    from lycoris import LycorisNetwork, create_lycoris_from_weights

    weights = {}
    for key, info in inspection.header.tensors.items():
        if key.endswith(".alpha") and info.numel == 1:
            weights[key] = torch.tensor(inspection.data.scalar(info) or 0.0)
        else:
            dtype = getattr(torch, TORCH_DTYPES.get(info.dtype, "float32"), torch.float32)
            weights[key] = torch.empty(info.shape, dtype=dtype, device="meta")
    messages: list[str] = []
    try:
        with preset_state(LycorisNetwork), captured_output(messages), no_tlora_gc(), torch.device("meta"), shape_only():
            prefix = LycorisNetwork.LORA_PREFIX
            network, _ = create_lycoris_from_weights(1.0, inspection.display_path, model, weights_sd=weights)
    except Exception as error:
        return LycorisLoad(0, {}, {}, f"{type(error).__name__}: {error}")
    scales = {}
    for lora in network.loras:
        try:
            scales[lora.lora_name] = float(lora.scale)
        except (AttributeError, TypeError, ValueError):
            pass
    return LycorisLoad(len(network.loras), dict(network.algo_table), scales, None, prefix)
