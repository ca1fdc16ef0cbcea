"""Numbers read from an adapter's tensors: non-finite values, modules whose delta is exactly zero, and the size of
each module's delta, with numpy (the only optional dependency of these checks).

Every floating-point tensor is read once through the memory map. For float32 the sum of squares (one BLAS dot
product, at memory speed) answers two questions at once: a finite sum means every value is finite, and the
exact checks (``isfinite``, ``any``) run only when it is not finite or is zero. A module's delta norm comes
from its factors without building the full matrix where algebra allows: ‖w1 ⊗ w2‖ = ‖w1‖·‖w2‖ for LoKr,
‖U·D‖² = Σ (UᵀU ⊙ DDᵀ) for LoRA and decomposed blocks; LoHa's Hadamard product takes whichever of the Gram
form and the row-blocked product costs less. T-LoRA's delta needs the base factors LyCORIS does not save
(it recomputes them from the model's weights at load), so it is not measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Optional

from .adapter import Adapter, Module
from .reader import FLOAT_DTYPES, TensorData, TensorInfo

# A delta whose RMS is this many times the median of the file's modules is reported as an outlier.
OUTLIER_RATIO = 10.0
OUTLIER_MIN_MODULES = 5
OUTLIER_REPORTED = 5
_BLOCK_ELEMENTS = 1 << 22  # rows of a materialised LoHa delta per block: at most 4 M values (16 MB)


@dataclass
class TensorHealth:
    key: str
    nonfinite: int  # values that are NaN or infinite
    zero: bool  # every value is exactly 0
    sum_squares: float  # over the finite values when some are not finite


@dataclass
class ModuleHealth:
    name: str
    dead: Optional[bool]  # the delta is exactly zero (None: cannot tell from the file)
    norm: Optional[float] = None  # Frobenius norm of the scaled delta
    rms: Optional[float] = None  # norm / sqrt(elements of the layer weight)
    note: str = ""  # why norm or dead is None


@dataclass
class Health:
    available: bool
    reason: str = ""  # why the tensors were not read
    tensors: dict[str, TensorHealth] = field(default_factory=dict)
    modules: dict[str, ModuleHealth] = field(default_factory=dict)

    @property
    def nonfinite(self) -> list[TensorHealth]:
        return [tensor for tensor in self.tensors.values() if tensor.nonfinite]

    @property
    def dead(self) -> list[ModuleHealth]:
        return [module for module in self.modules.values() if module.dead]

    def outliers(self) -> list[tuple[ModuleHealth, float]]:
        """Modules whose delta RMS is at least OUTLIER_RATIO times the median, largest first, with the ratio."""
        measured = [module for module in self.modules.values() if module.rms]
        if len(measured) < OUTLIER_MIN_MODULES:
            return []
        values = sorted(module.rms for module in measured)
        middle = len(values) // 2
        median = values[middle] if len(values) % 2 else math.sqrt(values[middle - 1] * values[middle])
        found = [(module, module.rms / median) for module in measured if module.rms >= OUTLIER_RATIO * median]
        return sorted(found, key=lambda pair: -pair[1])[:OUTLIER_REPORTED]

    def largest(self, count: int = 5) -> list[ModuleHealth]:
        return sorted((m for m in self.modules.values() if m.rms), key=lambda m: -m.rms)[:count]


def numpy_or_none():
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def measure(adapter: Adapter, data: TensorData) -> Health:
    np = numpy_or_none()
    if np is None:
        return Health(False, "numpy is not installed, so the tensors were not read (pip install numpy)")
    health = Health(True)
    with np.errstate(over="ignore", invalid="ignore"):  # overflowing sums are expected: they trigger the exact check
        for info in adapter.float_tensors:
            health.tensors[info.key] = _tensor_health(np, data, info)
        for module in adapter.modules.values():
            health.modules[module.name] = _module_health(np, data, module, health.tensors)
    return health


# -- tensors ------------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _float8_table(dtype: str):
    """float32 values of all 256 bytes of an 8-bit float format (E4M3 without infinities, E5M2 IEEE-like)."""
    import numpy as np

    exponent_bits, bias = (4, 7) if dtype == "F8_E4M3" else (5, 15)
    mantissa_bits = 7 - exponent_bits
    values = []
    for byte in range(256):
        sign = -1.0 if byte & 0x80 else 1.0
        exponent = (byte >> mantissa_bits) & ((1 << exponent_bits) - 1)
        mantissa = byte & ((1 << mantissa_bits) - 1)
        top = (1 << exponent_bits) - 1
        if dtype == "F8_E4M3" and exponent == top and mantissa == (1 << mantissa_bits) - 1:
            values.append(math.nan)
        elif dtype == "F8_E5M2" and exponent == top:
            values.append(sign * math.inf if mantissa == 0 else math.nan)
        elif exponent == 0:
            values.append(sign * mantissa / (1 << mantissa_bits) * 2.0 ** (1 - bias))
        else:
            values.append(sign * (1 + mantissa / (1 << mantissa_bits)) * 2.0 ** (exponent - bias))
    return np.array(values, dtype=np.float32)


def as_array(np, data: TensorData, info: TensorInfo) -> Any:
    """The tensor as a flat float32 (or float64) array; a view of the file for F32 and F64."""
    buffer = data.buffer(info)
    if info.dtype == "F32":
        return np.frombuffer(buffer, dtype="<f4")
    if info.dtype == "F64":
        return np.frombuffer(buffer, dtype="<f8")
    if info.dtype == "F16":
        return np.frombuffer(buffer, dtype="<f2").astype(np.float32)
    if info.dtype == "BF16":
        return (np.frombuffer(buffer, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    if info.dtype in ("F8_E4M3", "F8_E5M2"):
        return _float8_table(info.dtype)[np.frombuffer(buffer, dtype=np.uint8)]
    raise ValueError(f"{info.dtype} is not a floating-point dtype")  # pragma: no cover - callers filter


_CHUNK = 1 << 22  # values converted at a time from 16- and 8-bit floats (into one reused float32 buffer)


def _pieces(np, data: TensorData, info: TensorInfo):
    """The tensor's values as float arrays: the file's own bytes for F32 and F64, converted blocks otherwise (a
    reused buffer: allocating fresh memory for a whole large tensor costs more than the conversion)."""
    if info.dtype in ("F32", "F64"):
        yield as_array(np, data, info)
        return
    buffer = data.buffer(info)
    raw_type = {"BF16": "<u2", "F16": "<f2"}.get(info.dtype, np.uint8)
    raw = np.frombuffer(buffer, dtype=raw_type)
    out = np.empty(min(_CHUNK, raw.size), dtype=np.uint32 if info.dtype == "BF16" else np.float32)
    for start in range(0, raw.size, _CHUNK):
        part = raw[start : start + _CHUNK]
        target = out[: part.size]
        if info.dtype == "BF16":
            np.left_shift(part, 16, out=target, dtype=np.uint32)
            yield target.view(np.float32)
        elif info.dtype == "F16":
            np.copyto(target, part)
            yield target
        else:
            yield _float8_table(info.dtype)[part]


def _tensor_health(np, data: TensorData, info: TensorInfo) -> TensorHealth:
    total, nonfinite, nonzero = 0.0, 0, False
    for values in _pieces(np, data, info):
        if values.size == 0:
            continue
        part = float(np.dot(values, values))
        if not math.isfinite(part):
            finite = np.isfinite(values)
            bad = int(values.size - np.count_nonzero(finite))
            nonfinite += bad
            wide = values[finite].astype(np.float64) if bad else values.astype(np.float64)
            part = float(np.dot(wide, wide))  # the float32 sum overflowed, or NaNs are left out
        total += part
        nonzero = nonzero or part > 0.0 or bool(np.any(values))
    return TensorHealth(info.key, nonfinite, not nonzero and nonfinite == 0, total)


# -- modules ------------------------------------------------------------------------------------------------


def _matrix(np, data: TensorData, module: Module, suffix: str):
    info = module.tensors[suffix]
    return as_array(np, data, info).reshape(info.shape[0], -1).astype(np.float64)


def _product_norm(np, left, right) -> float:
    """‖left @ right‖ from the two small Gram matrices."""
    return math.sqrt(max(float(np.sum((left.T @ left) * (right @ right.T))), 0.0))


def _hadamard_norm(np, a1, b1, a2, b2) -> float:
    """‖(a1 @ b1) ⊙ (a2 @ b2)‖, by the cheaper of the face-splitting Gram form and blocks of rows."""
    rows, columns = a1.shape[0], b1.shape[1]
    ranks = a1.shape[1] * a2.shape[1]
    if (rows + columns) * ranks * ranks <= rows * columns * (a1.shape[1] + a2.shape[1]):
        left = (a1[:, :, None] * a2[:, None, :]).reshape(rows, ranks)
        right = (b1[:, None, :] * b2[None, :, :]).reshape(ranks, columns)
        return _product_norm(np, left, right)
    step = max(1, _BLOCK_ELEMENTS // max(columns, 1))
    total = 0.0
    for start in range(0, rows, step):
        block = (a1[start : start + step] @ b1) * (a2[start : start + step] @ b2)
        total += float(np.sum(block * block))
    return math.sqrt(total)


def _zero(tensors: dict[str, TensorHealth], module: Module, *suffixes: str) -> bool:
    """Whether any of these tensors (those the module has) is all zeros: the product is then zero."""
    return any(tensors[module.tensors[s].key].zero for s in suffixes if s in module.tensors and module.tensors[s].key in tensors)


def _module_health(np, data: TensorData, module: Module, tensors: dict[str, TensorHealth]) -> ModuleHealth:
    algo, has = module.algo, module.tensors
    if any(tensors[info.key].nonfinite for info in has.values() if info.key in tensors):
        return ModuleHealth(module.name, None, note="non-finite values")
    if module.missing or module.weight_shape is None and algo in ("lora", "loha", "lokr"):
        return ModuleHealth(module.name, None, note=f"incomplete: no {', '.join(module.missing) or 'consistent shapes'}")
    norm: Optional[float] = None
    note = ""
    if algo == "lora":
        dead = _zero(tensors, module, "lora_up.weight", "lora_down.weight", "lora_mid.weight")
        if "lora_mid.weight" in has:
            note = "Tucker (lora_mid) delta not measured"
        else:
            norm = _product_norm(np, _matrix(np, data, module, "lora_up.weight"), _matrix(np, data, module, "lora_down.weight"))
    elif algo == "lokr":
        dead = _zero(tensors, module, "lokr_w1", "lokr_w1_a", "lokr_w1_b") or _zero(tensors, module, "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2")
        if "lokr_t2" in has:
            note = "Tucker (lokr_t2) delta not measured"
        else:
            norm = _block_norm(np, data, module, tensors, "lokr_w1") * _block_norm(np, data, module, tensors, "lokr_w2")
    elif algo == "loha":
        dead = _zero(tensors, module, "hada_w1_a", "hada_w1_b") or _zero(tensors, module, "hada_w2_a", "hada_w2_b")
        if "hada_t1" in has:
            note = "Tucker (hada_t1) delta not measured"
        else:
            m = lambda s: _matrix(np, data, module, s)  # noqa: E731
            norm = _hadamard_norm(np, m("hada_w1_a"), m("hada_w1_b"), m("hada_w2_a"), m("hada_w2_b"))
    elif algo == "full":
        dead = _zero(tensors, module, "diff") and ("diff_b" not in has or _zero(tensors, module, "diff_b"))
        norm = math.sqrt(tensors[has["diff"].key].sum_squares)
    elif algo == "tlora":
        return ModuleHealth(module.name, None, note="T-LoRA's delta needs the base factors LyCORIS recomputes from the model")
    elif algo in ("norm", "ia3", "diag-oft", "boft"):
        dead = all(tensors[info.key].zero for info in has.values() if info.key in tensors and info.key.rsplit(".", 1)[-1] != "alpha")
        note = f"{algo} changes the layer multiplicatively: no delta norm"
    else:
        return ModuleHealth(module.name, None, note=f"algorithm {algo or 'unknown'}: not measured")
    scale = module.lycoris_scale
    if norm is not None and scale is not None:
        norm *= abs(scale)
    shape = module.weight_shape
    rms = norm / math.sqrt(math.prod(shape)) if norm and shape and math.prod(shape) else (0.0 if norm == 0 else None)
    return ModuleHealth(module.name, dead, norm=0.0 if dead else norm, rms=0.0 if dead else rms, note=note)


def _block_norm(np, data: TensorData, module: Module, tensors: dict[str, TensorHealth], block: str) -> float:
    """‖w1‖ or ‖w2‖ of a LoKr module, whole or as the product of its two factors."""
    if block in module.tensors:
        return math.sqrt(tensors[module.tensors[block].key].sum_squares)
    return _product_norm(np, _matrix(np, data, module, f"{block}_a"), _matrix(np, data, module, f"{block}_b"))
