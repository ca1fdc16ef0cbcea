"""Compiled blocks: SimpleTuner's ``dynamo_*`` options, applied by lyco to the denoiser with its LyCORIS modules.

* ``dynamo_backend``: ``no`` (SimpleTuner's default) trains eagerly; any other value is ``torch.compile``'s
  backend (``inductor``, ``aot_eager``, ``eager``, ``cudagraphs``, ...; one torch does not have is an error
  naming the ones it has).
* ``dynamo_use_regional_compilation``: compile each repeated block (the classes diffusers lists in the model's
  ``_repeated_blocks``, as ``compile_repeated_blocks`` does; FLUX.2's and FLUX.1's double and single blocks,
  SDXL's ``BasicTransformerBlock``) instead of the whole denoiser: one compilation per block class instead of
  one huge graph, the same speed-up. Off (SimpleTuner's default): the whole denoiser is compiled, as accelerate
  compiles SimpleTuner's model.
* ``dynamo_mode`` (``""``: torch's default), ``dynamo_fullgraph``, ``dynamo_dynamic``: ``torch.compile``'s
  ``mode``, ``fullgraph`` and ``dynamic``.

The adapted layers are compiled with their block: the path ``layer_paths`` chose for each, and T-LoRA's
per-sample masks. Some LyCORIS algorithms break tracing (KohakuBlueleaf/LyCORIS#287: DyLoRA's random rank,
Full, backend discovery under ``fullgraph``): before compiling, one layer of each LyCORIS module kind is traced
on its own (``aot_eager``, forward and backward); a kind that fails runs eagerly inside the compiled blocks
(``torch.compiler.disable``, with ``fullgraph`` turned off), with a message, not a crash. A compilation that
still fails in a training step (a backend error) turns compilation off for the run, with a message, and the
step is redone eagerly (nothing was applied yet: the failure comes before the optimizer step).

``accelerate launch --dynamo_backend`` is refused at start (``distributed.check_launch_environment``): compiling
is this config's option, not the launcher's.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .config import ConfigError


@dataclass
class Compiled:
    """What was compiled, so it can be undone."""

    modules: list  # the compiled modules (blocks, or the denoiser)
    description: str
    eager_kinds: dict[str, str] = field(default_factory=dict)  # LyCORIS module kind -> why it runs eagerly
    active: bool = True

    def undo(self) -> None:
        for module in self.modules:
            module._compiled_call_impl = None  # what nn.Module.compile set
        self.active = False


def compile_errors() -> tuple[type, ...]:
    """The exceptions a failed compilation raises (dynamo, AOT autograd, inductor)."""
    import torch._dynamo.exc as dynamo

    errors: list[type] = [dynamo.TorchDynamoException]
    try:
        from torch._inductor.exc import InductorError

        errors.append(InductorError)
    except ImportError:
        pass
    return tuple(errors)


def settings(options) -> dict[str, Any]:
    """``torch.compile``'s keyword arguments from the dynamo_* options."""
    return {
        "backend": options.dynamo_backend,
        "mode": options.dynamo_mode or None,
        "fullgraph": bool(options.dynamo_fullgraph),
        "dynamic": bool(options.dynamo_dynamic),
    }


def check_backend(backend: str) -> None:
    import torch._dynamo

    available = torch._dynamo.list_backends(exclude_tags=())
    if backend not in available:
        raise ConfigError(f"dynamo_backend {backend!r}: this torch ({torch.__version__}) has no such backend; choose one of {', '.join(sorted(available))}, or \"no\"")


def blocks_of(denoiser) -> list:
    """The repeated blocks diffusers names for the model (``_repeated_blocks``), in model order."""
    names = tuple(getattr(denoiser, "_repeated_blocks", None) or ())
    return [module for module in denoiser.modules() if type(module).__name__ in names]


def probe_input(lora):
    """A small input for one adapted layer: (2, 3, in_features) tokens, or (2, C, 5, 5) for a convolution."""
    import torch

    layer = lora.org_module[0]
    dtype = layer.weight.dtype
    device = layer.weight.device
    if isinstance(layer, torch.nn.Linear):
        return torch.randn(2, 3, layer.in_features, dtype=dtype, device=device)
    spatial = {torch.nn.Conv1d: (7,), torch.nn.Conv2d: (7, 7), torch.nn.Conv3d: (7, 7, 7)}.get(type(layer))
    if spatial is None:
        return None
    return torch.randn(2, layer.in_channels, *spatial, dtype=dtype, device=device)


def trace_failure(lora, fullgraph: bool, autocast: Callable) -> Optional[str]:
    """Trace one layer's forward and backward on its own (aot_eager: tracing and autograd, no code
    generation); the first line of the error, or None when it traces."""
    import torch

    x = probe_input(lora)
    if x is None:
        return None
    layer = lora.org_module[0]
    forward = layer.forward
    try:
        compiled = torch.compile(lambda value: forward(value), backend="aot_eager", fullgraph=fullgraph, dynamic=False)
        with autocast():
            out = compiled(x.requires_grad_(True))
        out.float().sum().backward()
    except Exception as error:  # noqa: BLE001 - any failure to trace means: run this kind eagerly
        return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:160]}"
    finally:
        for parameter in lora.parameters():
            parameter.grad = None
    return None


def _eager_forward(lora, x, *args, **kwargs):
    return lora._lyco_eager_forward(x, *args, **kwargs)


def _disabled(function: Callable) -> Callable:
    import torch

    return torch.compiler.disable(function, recursive=True)


EAGER_FORWARD: Optional[Callable] = None  # _eager_forward outside the compiled graphs, made on first use


def kind_of(lora, path: str) -> str:
    """A LyCORIS module kind on a forward path, as the messages name it: "LokrModule (bypass)"."""
    return f"{type(lora).__name__} ({'as configured' if path == 'config' else path})"


def compile_denoiser(denoiser, network, options, autocast: Callable, say: Callable[[str], None]) -> Optional[Compiled]:
    """Compile the denoiser (or its repeated blocks) as the dynamo_* options say; None when dynamo_backend is no."""
    if options.dynamo_backend in (None, "", "no"):
        return None
    import torch

    check_backend(options.dynamo_backend)
    kwargs = settings(options)
    from .layer_paths import path_of

    global EAGER_FORWARD
    if EAGER_FORWARD is None:
        EAGER_FORWARD = _disabled(_eager_forward)
    eager: dict[str, str] = {}
    samples: dict[str, Any] = {}
    for lora in network.loras:  # one layer per LyCORIS kind and forward path
        samples.setdefault(kind_of(lora, path_of(lora)), lora)
    for kind, lora in samples.items():
        failure = trace_failure(lora, kwargs["fullgraph"], autocast)
        if failure is not None:
            eager[kind] = failure
    for lora in network.loras:
        if kind_of(lora, path_of(lora)) in eager:
            layer = lora.org_module[0]
            lora._lyco_eager_forward = layer.forward
            layer.forward = types.MethodType(EAGER_FORWARD, lora)  # one function for all: no per-layer recompilation
    for kind, failure in eager.items():
        say(f"note: torch.compile cannot trace LyCORIS {kind} ({failure}; see KohakuBlueleaf/LyCORIS#287): its layers run eagerly inside the compiled blocks")
    if eager and kwargs["fullgraph"]:
        kwargs["fullgraph"] = False
        say("note: dynamo_fullgraph turned off: the eager LyCORIS layers split the compiled graphs")
    if options.dynamo_use_regional_compilation:
        modules = blocks_of(denoiser)
        if not modules:
            raise ConfigError(
                f"dynamo_use_regional_compilation: {type(denoiser).__name__} names no repeated blocks (diffusers' _repeated_blocks); "
                "set it to false to compile the whole model"
            )
        what = f"{len(modules)} repeated block(s) ({', '.join(sorted({type(m).__name__ for m in modules}))})"
    else:
        modules = [denoiser]
        what = f"the whole {type(denoiser).__name__}"
    for module in modules:
        module.compile(**kwargs)
    shown = ", ".join(f"{key} {value}" for key, value in kwargs.items() if key != "backend" and value not in (None, False))
    description = f"torch.compile: {what} with {kwargs['backend']}{' (' + shown + ')' if shown else ''}, the LyCORIS layers inside; the first steps compile"
    return Compiled(modules, description, eager)
