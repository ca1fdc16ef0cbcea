"""The bypass/rebuild FLOP model (LYC401, ``lyco plan``): both forward paths of every adapted Linear that runs in
bypass mode, counted by running LyCORIS's own forward on the meta device under a FLOP counter."""

from __future__ import annotations

from typing import Callable, Optional

from .analysis import BypassEstimate, LayerCost
from .patches import shape_only


def _flop_counter():
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves
    from torch.utils.flop_counter import flop_registry

    class FlopCounter(TorchDispatchMode):
        """Matmul FLOPs with torch's formulas, plus one FLOP per output element of element-wise ops."""

        def __init__(self) -> None:
            super().__init__()
            self.flops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.flops += formula(*args, **kwargs, out_val=out)
            elif torch.Tag.pointwise in func.tags:
                self.flops += sum(t.numel() for t in tree_leaves(out) if isinstance(t, torch.Tensor))
            return out

    return FlopCounter()


def _forward_flops(forward: Callable, x) -> int:
    counter = _flop_counter()
    with counter:
        forward(x)
    return counter.flops


def estimate_bypass(loras, tokens: int) -> BypassEstimate:
    """Count both paths of every adapted Linear that runs in bypass mode, once per distinct shape and settings."""
    import torch

    costs: dict[tuple, tuple[float, float]] = {}
    layers, skipped = [], []
    for lora in loras:
        layer = lora.org_module[0]
        if not getattr(lora, "bypass_mode", False):
            continue  # runs the rebuild path already: bypass_mode does not change its cost
        if not isinstance(layer, torch.nn.Linear):
            skipped.append(lora.lora_name)
            continue
        key = (
            type(lora).__name__,
            tuple(layer.weight.shape),
            layer.bias is not None,
            tuple((name, tuple(p.shape)) for name, p in lora.named_parameters()),
            bool(getattr(lora, "wd", False)),
        )
        if key not in costs:
            costs[key] = _both_paths(lora, layer, tokens)
        bypass, rebuild = costs[key]
        if bypass is None:
            skipped.append(lora.lora_name)
            continue
        params = sum(p.numel() for p in lora.parameters())
        layers.append(LayerCost(lora.lora_name, params, bypass, rebuild))
    return BypassEstimate(tokens, tuple(layers), tuple(skipped))


def _both_paths(lora, layer, tokens: int) -> tuple[Optional[float], Optional[float]]:
    import torch

    x = torch.empty(1, tokens, layer.in_features, device="meta", dtype=layer.weight.dtype)
    saved_mode, saved_training = lora.bypass_mode, lora.training
    lora.eval()  # no dropout randomness (module_dropout draws a real random number in training)
    try:
        with torch.no_grad(), shape_only():
            base = _forward_flops(lora.org_forward, x)
            lora.bypass_mode = True
            bypass = _forward_flops(lora.forward, x) - base
            lora.bypass_mode = False
            rebuild = _forward_flops(lora.forward, x) - base
    except Exception:  # a forward that needs real data (DyLoRA's random block, ...): not estimated
        return None, None
    finally:
        lora.bypass_mode = saved_mode
        lora.train(saved_training)
    return bypass / tokens, rebuild / tokens
