"""What LyCORIS does to a model: the result types of ``lyco lint --model`` and ``lyco plan``.

Plain data, importable without torch: the model rules and the plan read these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..knowledge.selection import Shadowed
from ..units import TRAINING_BYTES_PER_PARAM
from .resolve import ModelSource

# Image tokens per forward used to spread the once-per-forward cost of the rebuild path: a 1024x1024
# image in Flux-style transformers (128x128 latent, 2x2 patches). Text tokens are left out.
REFERENCE_TOKENS = 4096


@dataclass(frozen=True)
class AdaptedModule:
    """One layer LyCORIS wraps, with the settings it really got."""

    lora_name: str
    path: str  # the layer's dotted path in the model
    layer_class: str  # Linear, Conv2d, ...
    via: str  # "class" (inside a target_module subtree) or "name" (target_name / name_algo_map)
    target: str  # the target_module class or the name pattern that selected it
    options_from: Optional[str]  # "module_algo_map.X" / "name_algo_map.X" whose options apply, None = top level
    algo: str
    module_class: str  # LokrModule, LoConModule, ...
    dim: Optional[int]
    alpha: Optional[float]
    scale: Optional[float]
    factor: Optional[int]  # lokr only
    full_matrix: Optional[bool]  # lokr only: both Kronecker blocks are full matrices
    bypass: bool
    dora: bool
    weight_shape: tuple[int, ...]
    parameter_shapes: tuple[tuple[str, tuple[int, ...]], ...]
    trainable_params: int

    @property
    def settings(self) -> dict:
        """The settings that define a group in the plan."""
        return {
            "algo": self.algo,
            "dim": self.dim,
            "alpha": self.alpha,
            "factor": self.factor,
            "full_matrix": self.full_matrix,
            "bypass": self.bypass,
            "dora": self.dora,
        }


@dataclass(frozen=True)
class LayerCost:
    """Extra forward FLOPs of one adapted Linear over its frozen layer, per token."""

    lora_name: str
    trainable_params: int
    bypass_flops: float
    rebuild_flops: float


@dataclass(frozen=True)
class BypassEstimate:
    """Forward FLOPs of the bypass path vs the rebuild path, counted by running LyCORIS's own forward.

    Model: each adapted ``nn.Linear`` in bypass mode is run through its LyCORIS module on a meta input of
    ``tokens`` tokens, once with ``bypass_mode`` on and once off, under a FLOP counter (matmuls with
    torch's flop formulas, 2 per multiply-add; element-wise ops 1 per output element). The frozen layer's
    own forward is subtracted, and the result divided by ``tokens``: the rebuild path's once-per-forward
    work (materialising ΔW, W + ΔW − W) is spread over the tokens, its extra full matmul is per token.
    Conv layers are not estimated. Numbers are per forward; backward scales both paths alike.
    """

    tokens: int
    layers: tuple[LayerCost, ...]
    skipped: tuple[str, ...]  # adapted layers not estimated (convs, forwards that need real data)

    @property
    def bypass_flops(self) -> float:
        return sum(layer.bypass_flops for layer in self.layers)

    @property
    def rebuild_flops(self) -> float:
        return sum(layer.rebuild_flops for layer in self.layers)

    @property
    def params(self) -> int:
        return sum(layer.trainable_params for layer in self.layers)

    @property
    def rebuild_cheaper_params(self) -> int:
        return sum(layer.trainable_params for layer in self.layers if layer.rebuild_flops < layer.bypass_flops)

    @property
    def rebuild_cheaper_share(self) -> float:
        return self.rebuild_cheaper_params / self.params if self.params else 0.0

    @property
    def rebuild_cheaper(self) -> bool:
        """Rebuild is cheaper for most adapted parameters and saves at least 10 % of the adapter's FLOPs."""
        return self.rebuild_cheaper_share > 0.5 and self.bypass_flops >= 1.1 * self.rebuild_flops


@dataclass(frozen=True)
class Analysis:
    """What a LyCORIS config does to one model, as LyCORIS itself built it."""

    model_class: str
    classes: frozenset[str]  # type(m).__name__ of every named_modules() entry, the root included
    base_params: int
    modules: tuple[AdaptedModule, ...]
    target_classes: tuple[str, ...]  # the classes LyCORIS looked for (target_module + module_algo_map keys)
    target_names: tuple[str, ...]  # the names/patterns it looked for (target_name + name_algo_map keys)
    unmatched_classes: tuple[str, ...]
    unmatched_names: tuple[str, ...]
    shadowed: tuple[Shadowed, ...]
    bypass: bool  # some adapted layer runs LyCORIS's bypass forward
    estimate: Optional[BypassEstimate]
    messages: tuple[str, ...]  # LyCORIS's own warnings (logger and print), deduplicated
    source: Optional[ModelSource] = None

    @property
    def class_name(self) -> str:
        """The model's diffusers class (what LYC205 names)."""
        return self.model_class

    @property
    def adapted_count(self) -> int:
        return len(self.modules)

    @property
    def trainable_params(self) -> int:
        return sum(module.trainable_params for module in self.modules)

    @property
    def training_bytes(self) -> int:
        return self.trainable_params * TRAINING_BYTES_PER_PARAM

    @property
    def adapter_share(self) -> float:
        return self.trainable_params / self.base_params if self.base_params else 0.0

    @property
    def origin(self) -> str:
        return self.source.origin if self.source else self.model_class
