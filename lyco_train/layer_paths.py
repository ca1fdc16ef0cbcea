"""The forward path of each adapted layer: LyCORIS's bypass forward or the rebuilt weight, whichever runs faster
on this device, measured once per distinct layer shape.

Two ways to run an adapted layer compute the same function (lycoris-lora 4.1.3, verified per algo by running
LyCORIS in ``tests/test_train_paths.py``):

* **bypass**: LyCORIS's ``bypass_forward``: the frozen layer, plus the adapter's factors applied to the input
  (``W x + ΔW x`` without ever forming ΔW). Cheap in FLOPs, but its many small matmuls can run at a fraction
  of the device's throughput (full-matrix LoKr on FLUX.2).
* **rebuild**: the layer runs once with its rebuilt weight ``W' = W + ΔW`` (LyCORIS's own ΔW: ``get_weight``
  for LoKr/LoHa, ``make_weight`` for LoCon, ``get_merged_weight`` for the others): one full-size matmul
  forward, two backward. (LyCORIS's own non-bypass forward runs the frozen layer *and* a second matmul with
  ΔW, and rounds ``(W + ΔW) − W`` in the base dtype; lyco's rebuilt weight is one matmul, rounded once.)

Which one is faster depends on the layer and the device, not on FLOPs alone, so with ``--adapter-path auto``
(the default) each distinct layer (LyCORIS class, weight and adapter shapes, the input shape the model gives
it, dtypes) is timed once for both paths (a few forward + backward iterations), and each layer gets the faster
one. Measurements are kept in lyco's cache folder (``$LYCO_CACHE_DIR``, else ``$XDG_CACHE_HOME/lyco`` or
``~/.cache/lyco``, then ``adapter-paths/``), one file per device and lyco/torch/LyCORIS version: the next run
on the same device reads them. ``bypass`` or ``rebuild`` pins every switchable layer.

Layers whose two paths are *not* the same function keep the path the LyCORIS config chose (``bypass_mode``):
DoRA (``dora_wd``: bypass ignores it), dropout, ``rank_dropout`` and ``module_dropout`` (random in
different places), Diag-OFT, BOFT and IA3 on a layer with a bias (bypass transforms ``W x + b``, rebuild only
``W``), T-LoRA on convolutions, and every module kind not in :data:`REBUILT_WEIGHT` (DyLoRA's random rank,
Full, the norm modules). A quantized base always runs in bypass (torchao's weights cannot be added to), and
so does a base sharded with FSDP (its weights are shards outside the forward).

Saved weights do not depend on the path: the parameters are LyCORIS's, in LyCORIS's layout.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

PATH_CHOICES = ("auto", "bypass", "rebuild")
MEASURE_ITERATIONS = 5  # timed forward + backward iterations per path (after one warm-up)
MARGIN = 0.03  # a path must be this much faster to replace the config's choice (timing noise)
CACHE_FOLDER = "adapter-paths"
CACHE_FORMAT = 2  # bump when a forward path changes: older measurements are of other code


# -- the rebuilt weight of each LyCORIS module kind ----------------------------------------------------


def _lora_weight(lora, device):
    """LoCon: W + make_weight · scale · multiplier (LoConModule.forward's rebuild; make_weight holds the scalar)."""
    import torch

    return torch.add(lora.org_module[0].weight, lora.make_weight(device), alpha=float(lora.scale * lora.multiplier))


def _kron_weight(lora, device):
    """LoKr, LoHa: W + get_weight(shape) · scalar · multiplier (their rebuild forwards; get_merged_weight would
    apply the scale twice, LYC115). The scalar is a constant 1 unless use_scalar makes it a parameter."""
    import torch

    delta = lora.get_weight(lora.shape).to(device)
    if isinstance(lora.scalar, torch.nn.Parameter):
        delta = delta * lora.scalar
    return torch.add(lora.org_module[0].weight, delta, alpha=float(lora.multiplier))


def _merged_weight(lora, device):
    """IA3, Diag-OFT, BOFT, GLoRA, T-LoRA: get_merged_weight (equal to their rebuild forwards)."""
    return lora.get_merged_weight(lora.multiplier, lora.org_module[0].weight.shape, device)[0]


REBUILT_WEIGHT: dict[str, Callable] = {
    "LoConModule": _lora_weight,
    "LokrModule": _kron_weight,
    "LohaModule": _kron_weight,
    "IA3Module": _merged_weight,
    "DiagOFTModule": _merged_weight,
    "ButterflyOFTModule": _merged_weight,
    "GLoRAModule": _merged_weight,
    "TLoraModule": _merged_weight,
}
BIAS_SENSITIVE = ("IA3Module", "DiagOFTModule", "ButterflyOFTModule")  # bypass transforms the bias too


def rebuild_forward(lora, x, *args, **kwargs):
    """The layer with its rebuilt weight: one op (F.linear / F.convNd) with W + ΔW, rounded once to the base's dtype."""
    layer = lora.org_module[0]
    weight = REBUILT_WEIGHT[type(lora).__name__](lora, x.device).to(layer.weight.dtype)
    return lora.op(x, weight, layer.bias, **lora.kw_dict)


def _stochastic(lora) -> bool:
    """Dropout of any kind: the two paths draw their randomness in different places."""
    import torch

    for name in ("dropout", "rank_dropout", "module_dropout", "drop"):
        value = getattr(lora, name, 0)
        if isinstance(value, torch.nn.Dropout):
            value = value.p
        if isinstance(value, (int, float)) and value > 0:
            return True
    return False


def fixed_reason(lora) -> Optional[str]:
    """Why this layer keeps the config's path (its two paths differ, or one cannot run), or None."""
    import torch

    kind = type(lora).__name__
    layer = lora.org_module[0]
    if kind not in REBUILT_WEIGHT:
        return f"{kind} (not verified on both paths)"
    if type(layer) not in (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d):
        return f"a {type(layer).__name__} layer"
    if getattr(layer, "padding_mode", "zeros") != "zeros":
        return "a padded convolution"
    if getattr(lora, "wd", False):
        return "DoRA (bypass ignores the weight norms)"
    if _stochastic(lora):
        return "dropout (drawn differently on each path)"
    if kind in BIAS_SENSITIVE and layer.bias is not None:
        return f"{kind} on a layer with a bias (bypass transforms the bias too)"
    if kind == "TLoraModule" and lora.module_type != "linear":
        return "T-LoRA on a convolution"
    if getattr(lora, "is_quant", False):
        return "a quantized layer"
    return None


SAMPLE_MASKS: dict[int, Any] = {}  # mask group -> (batch, rank) float mask of the forward in progress


class MaskBatchMismatch(RuntimeError):
    """A T-LoRA layer saw an input whose first axis is not the batch: the per-sample mask cannot apply."""


def tlora_forward(lora, x, *args, **kwargs):
    """A T-LoRA Linear: with a per-sample mask set, T-LoRA's bypass computation with each sample's ranks
    (``P(Q x · λ·m_b) − P₀(Q₀ x · λ₀·m_b)``, scaled); otherwise the layer's chosen path."""
    import torch.nn.functional as F

    masks = SAMPLE_MASKS.get(lora.mask_group_id)
    if masks is None:
        if getattr(lora, "_lyco_path", None) == "rebuild":
            return rebuild_forward(lora, x, *args, **kwargs)
        return lora.forward(x, *args, **kwargs)
    if x.shape[0] != masks.shape[0]:
        raise MaskBatchMismatch(f"{lora.lora_name}: input {tuple(x.shape)} for {masks.shape[0]} per-sample masks")
    rank = lora.lora_dim
    if masks.shape[1] < rank:  # a module of higher rank than the schedule: the extra ranks stay on (as LyCORIS pads)
        masks = F.pad(masks, (0, rank - masks.shape[1]), value=1.0)
    mask = masks[:, :rank].to(x.dtype).view(masks.shape[0], *([1] * (x.dim() - 2)), rank)
    dtype = x.dtype
    current = F.linear(F.linear(x, lora.q_layer.weight.to(dtype)) * (lora.lambda_layer.to(dtype) * mask), lora.p_layer.weight.to(dtype))
    base = F.linear(F.linear(x, lora.base_q.to(dtype)) * (lora.base_lambda.to(dtype) * mask), lora.base_p.to(dtype))
    return lora.org_forward(x) + (current - base) * (lora.scale * lora.multiplier)


# -- installing a path ---------------------------------------------------------------------------------


def install(lora, path: Optional[str]) -> None:
    """Run ``lora``'s layer on ``path`` ("bypass" or "rebuild"), or with None as LyCORIS runs it (the config's
    ``bypass_mode``: for the layers :func:`fixed_reason` names). T-LoRA Linear layers always get
    :func:`tlora_forward`, which applies a per-sample rank mask when one is set and otherwise takes the path."""
    layer = lora.org_module[0]
    lora._lyco_path = path or "config"
    if path is not None:
        lora.bypass_mode = path == "bypass"
    # bound methods of the LyCORIS module, as LyCORIS's own apply_to installs: dynamo compiles one block's code
    # for every block of its class (a functools.partial per layer would be guarded by identity: one
    # recompilation per block, until the recompile limit turns compilation off)
    if type(lora).__name__ == "TLoraModule" and lora.module_type == "linear":
        layer.forward = types.MethodType(tlora_forward, lora)
    elif path == "rebuild":
        layer.forward = types.MethodType(rebuild_forward, lora)
    else:
        layer.forward = lora.forward


def path_of(lora) -> str:
    """The path installed: "bypass", "rebuild" or "config" (LyCORIS's own forward, as the config says)."""
    return getattr(lora, "_lyco_path", "config")


def install_configured(network) -> None:
    """Every layer on the path its LyCORIS config says (what LyCORIS computes), with lyco's forwards."""
    for lora in network.loras:
        install(lora, None if fixed_reason(lora) else ("bypass" if lora.bypass_mode else "rebuild"))


def batches_masks(network) -> bool:
    """Every T-LoRA module is a Linear without dropout: per-sample masks apply in one batched forward."""
    tlora = [lora for lora in network.loras if type(lora).__name__ == "TLoraModule"]
    return all(lora.module_type == "linear" and not _stochastic(lora) for lora in tlora)


def forward_on(lora, path: str) -> Callable:
    """The layer's forward on ``path``, for timing (nothing installed)."""
    if path == "rebuild":
        return types.MethodType(rebuild_forward, lora)

    def bypass(x):
        return lora.bypass_forward(x, scale=lora.multiplier)

    return bypass


# -- measuring -----------------------------------------------------------------------------------------


@dataclass
class Choice:
    """The paths chosen for a network, and what the run prints about them."""

    setting: str  # auto | bypass | rebuild
    paths: list[str]  # per network.loras entry
    fixed: dict[int, str] = field(default_factory=dict)  # lora index -> why it keeps the config's path
    timings: dict[int, tuple[float, float]] = field(default_factory=dict)  # lora index -> (bypass s, rebuild s)
    configured: list[str] = field(default_factory=list)  # the config's path per lora
    device: str = ""
    measured: int = 0  # distinct layer shapes timed in this run
    cached: int = 0  # distinct layer shapes read from the cache

    def describe(self) -> str:
        rebuild = sum(1 for index, path in enumerate(self.paths) if path == "rebuild" and index not in self.fixed)
        bypass = sum(1 for index, path in enumerate(self.paths) if path == "bypass" and index not in self.fixed)
        how = {"auto": f"measured on {self.device}", "bypass": "pinned", "rebuild": "pinned"}[self.setting]
        text = f"adapter path ({self.setting}, {how}): {rebuild} layer(s) rebuild, {bypass} bypass"
        if self.fixed:
            reasons = sorted(set(self.fixed.values()))
            text += f", {len(self.fixed)} as the config says ({'; '.join(reasons[:3])})"
        if self.timings:
            before = sum(self.timings[i][0 if self.configured[i] == "bypass" else 1] for i in self.timings)
            after = sum(self.timings[i][0 if self.paths[i] == "bypass" else 1] for i in self.timings)
            if before > 0:
                text += (
                    f"; adapted layers forward + backward {after * 1e3:.3g} ms per micro-batch, the config's bypass_mode "
                    f"{before * 1e3:.3g} ms (expected {(before - after) * 1e3:+.3g} ms saved, {before / max(after, 1e-12):.2f}×)"
                )
            text += f"; {self.measured} layer shape(s) timed now, {self.cached} read from the cache"
        return text


def layer_key(lora, shape: tuple, dtype, autocast_dtype) -> str:
    layer = lora.org_module[0]
    parts = (
        type(lora).__name__, type(layer).__name__, tuple(layer.weight.shape), str(layer.weight.dtype), layer.bias is not None,
        tuple((name, tuple(p.shape)) for name, p in lora.named_parameters()), tuple(lora.kw_dict.items()) if lora.kw_dict else (),
        tuple(shape), str(dtype), str(autocast_dtype),
    )
    return repr(parts)


def time_layer(lora, shape: tuple, dtype, device, autocast: Callable, iterations: int = MEASURE_ITERATIONS) -> tuple[float, float]:
    """Median seconds of one forward + backward of the layer on each path (bypass, rebuild), with the input's
    gradient (as inside the model) and the adapter's gradients; the adapter's gradients are cleared after."""
    import torch

    params = [p for p in lora.parameters() if p.requires_grad]
    x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    result = []
    for path in ("bypass", "rebuild"):
        forward = forward_on(lora, path)
        seconds = []
        for index in range(iterations + 1):
            synchronize()
            started = time.perf_counter()
            with autocast():
                out = forward(x)
            grad = torch.ones_like(out)
            torch.autograd.backward(out, grad, inputs=[x, *params])
            synchronize()
            if index:  # the first one warms up
                seconds.append(time.perf_counter() - started)
        result.append(statistics.median(seconds))
    x.grad = None
    for p in params:
        p.grad = None
    return result[0], result[1]


def input_shapes(denoiser, loras, run_forward: Callable[[], Any]) -> dict[int, tuple[tuple, Any]]:
    """The input shape and dtype each adapted layer sees in one forward of the model (no gradients)."""
    import torch

    seen: dict[int, tuple[tuple, Any]] = {}
    handles = []
    for index, lora in enumerate(loras):
        def hook(_module, args, index=index):
            if index not in seen and args and isinstance(args[0], torch.Tensor):
                seen[index] = (tuple(args[0].shape), args[0].dtype)

        handles.append(lora.org_module[0].register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            run_forward()
    finally:
        for handle in handles:
            handle.remove()
    return seen


# -- the cache -----------------------------------------------------------------------------------------


def device_name(device) -> str:
    import os
    import platform

    import torch

    if device.type == "cuda":
        return f"cuda {torch.cuda.get_device_name(device)}"
    return f"cpu {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads, {os.cpu_count()} cores)"


def cache_file(device) -> Any:
    from lyco_lint.meta_model.cache import cache_dir, versions

    identity = {"format": CACHE_FORMAT, "device": device_name(device), "versions": versions()}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir() / CACHE_FOLDER / f"{digest}.json"


def read_cache(path) -> dict[str, list[float]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    layers = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(layers, dict):
        return {}
    return {key: value for key, value in layers.items() if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)}


def write_cache(path, device, layers: dict[str, list[float]]) -> None:
    from lyco_lint.atomic import write_text

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps({"device": device_name(device), "layers": layers}, indent=1, sort_keys=True))
    except OSError:
        pass  # a read-only cache folder costs a measurement next time, nothing else


# -- choosing ------------------------------------------------------------------------------------------


def choose(network, setting: str, *, quantized: Optional[str], sharded: bool, device, autocast: Callable,
           shapes: Callable[[], dict[int, tuple[tuple, Any]]]) -> Choice:
    """Decide and install the path of every adapted layer. ``shapes`` gives each layer's input shape (a probe
    forward), called only when something must be measured."""
    from .config import ConfigError

    loras = list(network.loras)
    configured = ["bypass" if lora.bypass_mode else "rebuild" for lora in loras]
    if quantized is not None or sharded:
        if setting == "rebuild":
            what = f"a {quantized} base" if quantized else "a base sharded with FSDP"
            raise ConfigError(f"--adapter-path rebuild: {what} runs every LyCORIS module in bypass mode (its weights cannot be rebuilt); use auto or bypass")
        reason = "a quantized base" if quantized else "an FSDP-sharded base"
        choice = Choice(setting, list(configured), {i: reason for i in range(len(loras))}, configured=configured, device=device_name(device))
        for lora in loras:
            install(lora, None)
        return choice
    fixed = {index: reason for index, lora in enumerate(loras) if (reason := fixed_reason(lora)) is not None}
    paths = list(configured)
    choice = Choice(setting, paths, fixed, configured=configured, device=device_name(device))
    switchable = [index for index in range(len(loras)) if index not in fixed]
    if setting in ("bypass", "rebuild"):
        for index in switchable:
            paths[index] = setting
    elif switchable:
        seen = shapes()
        path = cache_file(device)
        known = read_cache(path)
        fresh, keys = 0, set()
        for index in switchable:
            if index not in seen:
                continue  # the probe forward did not reach it (a branch this model skips): keep the config's
            shape, dtype = seen[index]
            key = layer_key(loras[index], shape, dtype, autocast_dtype(autocast))
            keys.add(key)
            if key not in known:
                known[key] = list(time_layer(loras[index], shape, dtype, device, autocast))
                fresh += 1
            bypass, rebuild = known[key]
            choice.timings[index] = (bypass, rebuild)
            current = bypass if configured[index] == "bypass" else rebuild
            other, faster = ("rebuild", rebuild) if configured[index] == "bypass" else ("bypass", bypass)
            paths[index] = other if faster < current * (1 - MARGIN) else configured[index]
        choice.measured, choice.cached = fresh, len(keys) - fresh
        if fresh:
            write_cache(path, device, known)
    for index, (lora, chosen) in enumerate(zip(loras, paths)):
        install(lora, None if index in fixed else chosen)
    return choice


def autocast_dtype(autocast: Callable):
    """The dtype an autocast context computes in (part of a measurement's key), or None."""
    import torch

    with autocast():
        for kind in ("cuda", "cpu"):
            if torch.is_autocast_enabled(kind):
                return str(torch.get_autocast_dtype(kind))
    return None
