"""Context managers around lycoris-lora 4.1.3 that every network build needs (lint, plan and train).

* :func:`preset_state` — ``LycorisNetwork``'s class-level preset state leaks between networks built in one
  process; start from LyCORIS's defaults and put the caller's state back afterwards.
* :func:`captured_output` — LyCORIS logs to its own stdout handler and ``print()``s some warnings; collect
  both instead, so that lint's machine formats and the trainer's progress bar stay clean.
* :func:`no_tlora_gc` — T-LoRA's constructor runs ``gc.collect()`` after each module's SVD init: about 0.2 s
  per module once torch and diffusers are loaded (21 s instead of 0.1 s for Flux 2 Klein 4B's 100 layers).
  Tensors are freed by reference counting anyway; one collection at the end is enough.
* :func:`shape_only` and :func:`recorded_constructions` — for builds on the meta device (``analyse``).
* :func:`quiet_import_noise` — before the first import of diffusers or lycoris (both import torchao where it
  is installed): the warnings that import prints are not about anything lyco does.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import logging
import types
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..knowledge.lycoris import PRESET_DEFAULTS, default_preset_state


# Warnings torchao's import prints where it is installed, none of them about lyco's use: optional CUDA
# extensions it cannot load on this machine, torch deprecating its enum registration, and diffusers failing to
# import torchao classes for loading torchao-serialized checkpoints (lyco never loads those).
IMPORT_NOISE = ("torchao", "torch.utils._pytree", "diffusers.quantizers.torchao.torchao_quantizer")


def quiet_import_noise() -> None:
    for name in IMPORT_NOISE:
        logging.getLogger(name).setLevel(logging.ERROR)


def class_state(network_class) -> dict[str, Any]:
    """The preset state a LycorisNetwork class holds now."""
    return {name: getattr(network_class, name) for name in PRESET_DEFAULTS}


@contextlib.contextmanager
def preset_state(network_class) -> Iterator[None]:
    saved = class_state(network_class)
    for name, value in default_preset_state().items():
        setattr(network_class, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(network_class, name, value)


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


@contextlib.contextmanager
def captured_output(sink: list[str]) -> Iterator[None]:
    """LyCORIS's warnings (logger and ``print``) go to ``sink``; its INFO chatter is dropped."""
    logger = logging.getLogger("LyCORIS")
    handlers, level, propagate = logger.handlers[:], logger.level, logger.propagate
    logger.handlers = [_ListHandler(sink)]
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield
    finally:
        logger.handlers, logger.level, logger.propagate = handlers, level, propagate
        sink.extend(line.strip() for line in printed.getvalue().splitlines() if line.strip())


@contextlib.contextmanager
def no_tlora_gc() -> Iterator[None]:
    try:
        from lycoris.modules import tlora
    except ImportError:  # pragma: no cover - a LyCORIS without T-LoRA
        yield
        return
    saved = getattr(tlora, "gc", None)
    tlora.gc = types.SimpleNamespace(collect=lambda *args: 0)
    try:
        yield
    finally:
        tlora.gc = saved
        gc.collect()


@functools.lru_cache(maxsize=None)
def _shape_only_class() -> type:
    import torch
    from torch.overrides import TorchFunctionMode

    class ShapeOnly(TorchFunctionMode):
        """Lets LyCORIS's constructors run on meta weights.

        Two things they need data for: ``weight.cpu()`` before computing DoRA's magnitude or ``full``'s copy
        of the original weight (a meta tensor stays meta instead: only its shape matters here), and
        ``torch.tensor(kernel_size).prod().item()`` in conv LoKr/LoHa (small tensors of Python numbers are
        made on the CPU so that they can be read back).
        """

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is torch.Tensor.cpu and args and getattr(args[0], "is_meta", False):
                return args[0]
            if func in (torch.tensor, torch.as_tensor) and kwargs.get("device") is None:
                kwargs["device"] = "cpu"
            return func(*args, **kwargs)

    return ShapeOnly


def shape_only():
    return _shape_only_class()()


@dataclass(frozen=True)
class Construction:
    """The arguments LyCORIS passed to one module constructor: the settings the layer really got."""

    algo: str
    dim: Any
    alpha: Any
    use_tucker: Any
    kwargs: dict


@contextlib.contextmanager
def recorded_constructions(sink: dict[str, Construction]) -> Iterator[None]:
    from lycoris import wrapper

    originals = dict(wrapper.network_module_dict)

    def recorder(algo: str, module_class: type) -> Callable:
        def construct(lora_name, org_module, multiplier, dim, alpha, dropout, rank_dropout, module_dropout, use_tucker, **kwargs):
            module = module_class(
                lora_name, org_module, multiplier, dim, alpha, dropout, rank_dropout, module_dropout, use_tucker, **kwargs
            )
            sink[lora_name] = Construction(algo, dim, alpha, use_tucker, dict(kwargs))
            return module

        return construct

    wrapper.network_module_dict.update({algo: recorder(algo, cls) for algo, cls in originals.items()})
    try:
        yield
    finally:
        wrapper.network_module_dict.clear()
        wrapper.network_module_dict.update(originals)
