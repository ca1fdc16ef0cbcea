"""A quantized base model (``base_model_precision``): the frozen denoiser's Linear weights in 8 bits, with torchao.

SimpleTuner's torchao choices (helpers/training/quantisation/__init__.py), as lyco trains them:

* ``int8-torchao``: int8 weights with one float32 scale per output row (torchao ``Int8WeightOnlyConfig``;
  SimpleTuner uses the prototype ``int8_weight_only_quantized_training``, made for training the int8 weights
  themselves — here they are frozen). Runs on the CPU and on GPUs.
* ``fp8wo-torchao``: float8 (e4m3) weights with per-row scales (``Float8WeightOnlyConfig``). CPU and GPU.
* ``fp8-torchao``: float8 weights and activations (``Float8DynamicActivationFloat8WeightConfig``); torchao runs
  it only on CUDA GPUs of compute capability 8.9 or newer.

Linear layers whose sides are not multiples of 16 stay unquantized (SimpleTuner's ``_torchao_filter_fn``;
torchao's kernels need the alignment). The LyCORIS network trains in ``bypass_mode`` (required: LyCORIS
would otherwise add ΔW to the quantized weight, which torchao's tensors do not support — bghira/SimpleTuner#2612;
``lyco lint`` reports it as LYC309), and every quantized layer is checked after quantization: torchao quantized
it (it silently leaves layers alone where a scheme has no kernel) and it passes a gradient to its input (without
one the adapters before it would not learn — torchao 0.18's dynamic int8 activation schemes do not, verified on
the CPU, so ``int8dq-torchao`` and ``int8dq-int4-torchao`` are refused). The other backends (quanto,
bitsandbytes, SDNQ, fp8-native, TransformerEngine) are refused with the supported choices named.

The adapter trained on a quantized base is an ordinary LyCORIS file: it loads onto the bf16 base.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from lyco_lint.meta_model.patches import quiet_import_noise

from .config import ConfigError

ALIGNMENT = 16  # both sides of a quantized Linear are multiples of this


@dataclass(frozen=True)
class Scheme:
    config: str  # torchao.quantization class
    weight_bytes: int  # per weight element
    row_bytes: int  # per output row: scales (float32) and zero points (measured with torchao 0.18)
    tensor_bytes: int  # per weight tensor: a per-tensor scale
    cuda_capability: Optional[tuple[int, int]] = None  # the GPU it needs, None: CPU too
    what: str = ""


SCHEMES: dict[str, Scheme] = {
    "int8-torchao": Scheme("Int8WeightOnlyConfig", 1, 4 + 1, 0, None, "int8 weights, per-row scales and zero points"),
    "fp8wo-torchao": Scheme("Float8WeightOnlyConfig", 1, 4, 0, None, "float8 e4m3 weights, per-row scales"),
    # torchao's default granularity for this config is per tensor (not measurable without such a GPU)
    "fp8-torchao": Scheme("Float8DynamicActivationFloat8WeightConfig", 1, 0, 4, (8, 9), "float8 weights and activations"),
}
WHY_NOT = {
    "int8dq-torchao": "torchao's dynamic int8 activation quantization passes no gradient to its input (torchao 0.18), so the adapters before each quantized layer would not learn",
    "int8dq-int4-torchao": "torchao's dynamic int8 activation quantization passes no gradient to its input (torchao 0.18), so the adapters before each quantized layer would not learn",
    "int4-torchao": "torchao 0.18 leaves the weights unquantized on the CPU and lyco has not verified its int4 kernels' backward",
    "fp8-int4-torchao": "lyco has not verified torchao's float8-activation int4 kernels' backward",
}


def supported() -> str:
    return ", ".join(SCHEMES)


def check_precision(options, lycoris_config: dict[str, Any], *, sharded: bool) -> None:
    """Refuse, before anything is loaded, a ``base_model_precision`` lyco cannot train on, with the fix."""
    from lyco_lint.knowledge.lycoris import bypass_enabled

    precision = options.base_model_precision
    if precision == "no_change":
        return
    if precision not in SCHEMES:
        reason = WHY_NOT.get(precision) or f"lyco train quantizes with torchao only ({precision.rsplit('-', 1)[-1]} is not supported)"
        raise ConfigError(f"base_model_precision {precision}: {reason}; choose one of {supported()}, or no_change")
    if options.quantize_via == "pipeline":
        raise ConfigError("quantize_via pipeline (quantized while diffusers loads the model) is not implemented; use \"accelerator\" (the default) or \"cpu\"")
    if sharded:
        raise ConfigError(f"base_model_precision {precision} with FSDP: lyco train does not shard torchao-quantized weights; train the quantized base without --use_fsdp, or shard the bf16 base")
    algo = str(lycoris_config.get("algo", "lora")).lower()
    if algo == "full":
        raise ConfigError(f"base_model_precision {precision}: LyCORIS' full algo rewrites the base weights and cannot run on a quantized base; choose another algo or no_change")
    if not bypass_enabled(lycoris_config):
        raise ConfigError(
            f"base_model_precision {precision} quantizes the base weights, so LyCORIS must run in bypass mode (without it LyCORIS adds "
            "ΔW to the quantized weight, which torchao's tensors do not support: NotImplementedError, bghira/SimpleTuner#2612; "
            "LYC309): add \"bypass_mode\": true to the LyCORIS config"
        )


def quantizable(module, _name: str = "") -> bool:
    """SimpleTuner's filter: a Linear whose input and output sides are multiples of 16."""
    import torch

    return isinstance(module, torch.nn.Linear) and module.in_features % ALIGNMENT == 0 and module.out_features % ALIGNMENT == 0


@dataclass(frozen=True)
class QuantizeReport:
    precision: str
    quantized: int  # Linear layers
    linears: int
    before_bytes: int
    after_bytes: int

    def describe(self) -> str:
        from lyco_lint.units import human_bytes

        kept = self.linears - self.quantized
        return (
            f"base model: {self.precision}, {self.quantized} of {self.linears} Linear layers quantized"
            + (f" ({kept} kept: sides not multiples of {ALIGNMENT})" if kept else "")
            + f"; weights {human_bytes(self.after_bytes)} (unquantized {human_bytes(self.before_bytes)})"
        )


def _torchao():
    """torchao's quantize_ and configs."""
    quiet_import_noise()
    try:
        import torchao.quantization as quantization
    except ModuleNotFoundError:
        raise ConfigError("base_model_precision needs torchao: pip install 'lyco[quantize]' (or pip install torchao)") from None
    return quantization


def quantize_base(denoiser, precision: str) -> QuantizeReport:
    """Quantize the frozen denoiser's Linear weights in place (on whatever device it is on), then check that
    every chosen layer is quantized and passes a gradient to its input."""
    import torch

    scheme = SCHEMES[precision]
    device = next(denoiser.parameters()).device
    if scheme.cuda_capability is not None:
        capable = device.type == "cuda" and torch.cuda.get_device_capability(device) >= scheme.cuda_capability
        if not capable:
            major, minor = scheme.cuda_capability
            raise ConfigError(
                f"base_model_precision {precision} ({scheme.what}) needs a CUDA GPU of compute capability {major}.{minor} or newer "
                f"(torchao's kernels); this run's base model is on {device}: choose int8-torchao or fp8wo-torchao"
            )
    quantization = _torchao()
    chosen = [name for name, module in denoiser.named_modules() if quantizable(module)]
    linears = sum(1 for module in denoiser.modules() if isinstance(module, torch.nn.Linear))
    before = storage_bytes(denoiser)
    quantization.quantize_(denoiser, getattr(quantization, scheme.config)(), filter_fn=quantizable)
    modules = dict(denoiser.named_modules())
    left = [name for name in chosen if not is_quantized(modules[name].weight)]
    if left:
        raise ConfigError(
            f"base_model_precision {precision}: torchao left {len(left)} of {len(chosen)} layers unquantized on {device} "
            f"(e.g. {left[0]}): it has no kernel for this scheme there; choose {supported()}"
        )
    if chosen:
        check_input_gradient(modules[chosen[0]], precision)
    return QuantizeReport(precision, len(chosen), linears, before, storage_bytes(denoiser))


def is_quantized(tensor) -> bool:
    from torchao.utils import TorchAOBaseTensor

    return isinstance(tensor, TorchAOBaseTensor)


def check_input_gradient(layer, precision: str) -> None:
    """The quantized layer passes the gradient its dequantized weight would: the adapters before it learn."""
    import torch

    weight = layer.weight
    probe = torch.ones(1, layer.in_features, device=weight.device, dtype=weight.dtype, requires_grad=True)
    output = layer(probe)
    if output.grad_fn is not None:
        output.float().sum().backward()
    expected = weight.dequantize().float().sum(dim=0)
    grad = probe.grad
    if grad is None or not torch.allclose(grad[0].float(), expected, rtol=0.05, atol=0.05 * float(expected.abs().max()) + 1e-6):
        raise ConfigError(
            f"base_model_precision {precision}: torchao's quantized layers pass no gradient to their input on {weight.device}, so "
            f"the adapters before each of them would not learn; choose {supported()}"
        )


# -- memory ----------------------------------------------------------------------------------------


def storage_bytes(module) -> int:
    """Bytes the module's parameters and buffers hold; a torchao tensor counts its int8/float8 data and scales."""
    total = 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        if is_quantized_safely(tensor):
            parts = [getattr(tensor, name) for name in tensor.tensor_data_names]
            parts += [getattr(tensor, name, None) for name in getattr(tensor, "optional_tensor_data_names", None) or ()]
            total += sum(part.numel() * part.element_size() for part in parts if part is not None)
        else:
            total += tensor.numel() * tensor.element_size()
    return total


def is_quantized_safely(tensor) -> bool:
    """:func:`is_quantized` without importing torchao when it is not loaded (a bf16 run)."""
    import sys

    return "torchao" in sys.modules and is_quantized(tensor)


def estimated_bytes(model, precision: str, element_bytes: int) -> int:
    """What :func:`storage_bytes` will measure once ``model`` (built on the meta device, no weights) is loaded
    with ``element_bytes`` per weight (2: bf16, 4: fp32) and quantized with ``precision``."""
    scheme = SCHEMES.get(precision)
    quantized_weights = set()
    total = 0
    if scheme is not None:
        for module in model.modules():
            if quantizable(module):
                quantized_weights.add(id(module.weight))
                total += module.weight.numel() * scheme.weight_bytes + module.out_features * scheme.row_bytes + scheme.tensor_bytes
    for tensor in list(model.parameters()) + list(model.buffers()):
        if id(tensor) not in quantized_weights:
            size = element_bytes if tensor.is_floating_point() else tensor.element_size()
            total += tensor.numel() * size
    return total


def memory_lines(model, precision: str, weight_dtype_name: str) -> list[str]:
    """The dry run's memory summary of the frozen base: in its dtype, and quantized when ``precision`` is set."""
    from lyco_lint.units import human_bytes

    element_bytes = 2 if weight_dtype_name == "bf16" else 4
    plain = estimated_bytes(model, "no_change", element_bytes)
    lines = [f"base model weights: {human_bytes(plain)} in {weight_dtype_name}"]
    if precision in SCHEMES:
        quantized = estimated_bytes(model, precision, element_bytes)
        count = sum(1 for module in model.modules() if quantizable(module))
        lines[0] += f"; {human_bytes(quantized)} with {precision} ({count} Linear layers quantized, {quantized / plain:.0%} of {weight_dtype_name})"
    return lines
