"""What an adapter file holds, from its header and its one-element alpha tensors: LyCORIS modules, their
algorithm, rank, LoKr factor, alpha, and the scale each loader applies.

Keys are read the way lycoris-lora 4.1.3's ``create_lycoris_from_weights`` reads them: the module name is the
part before the first dot (``lycoris_transformer_blocks_0_attn_to_q``), the rest names the tensor
(``lokr_w1``, ``lora_up.weight``); a module's algorithm is the first of LyCORIS's module classes whose
detection key it holds (``modules/__init__.py`` ``MODULE_LIST`` order, each class's ``weight_list_det``), and
its settings are those ``make_module_from_state_dict`` rebuilds from the shapes.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional

from ..knowledge.lycoris import factorization, merge_to_scale
from .reader import FLOAT_DTYPES, Header, TensorData, TensorInfo


@dataclass(frozen=True)
class Algorithm:
    name: str
    module_class: str
    detect: tuple[str, ...]  # LyCORIS's weight_list_det: one of these marks the algorithm
    suffixes: tuple[str, ...]  # LyCORIS's weight_list: every tensor its loader reads


# In LyCORIS's detection order (lycoris/modules/__init__.py MODULE_LIST; DyLoRA is never detected).
ALGORITHMS = (
    Algorithm("lora", "LoConModule", ("lora_up.weight",), ("lora_up.weight", "lora_down.weight", "lora_mid.weight", "alpha", "dora_scale")),
    Algorithm("loha", "LohaModule", ("hada_w1_a",), ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2", "alpha", "dora_scale")),
    Algorithm("ia3", "IA3Module", ("on_input",), ("weight", "on_input")),
    Algorithm("lokr", "LokrModule", ("lokr_w1", "lokr_w1_a"), ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t1", "lokr_t2", "alpha", "dora_scale")),
    Algorithm("full", "FullModule", ("diff",), ("diff", "diff_b")),
    Algorithm("norm", "NormModule", ("w_norm",), ("w_norm", "b_norm")),
    Algorithm("diag-oft", "DiagOFTModule", ("oft_blocks",), ("oft_blocks", "rescale", "alpha")),  # 3-D oft_blocks
    Algorithm("boft", "ButterflyOFTModule", ("oft_blocks",), ("oft_blocks", "rescale", "alpha")),  # 4-D oft_blocks
    Algorithm("glora", "GLoRAModule", ("a1.weight",), ("a1.weight", "a2.weight", "b1.weight", "b2.weight", "bm.weight", "alpha")),
    Algorithm("tlora", "TLoraModule", ("lambda_layer",), ("q_layer.weight", "p_layer.weight", "lambda_layer", "alpha")),
)
BY_NAME = {algorithm.name: algorithm for algorithm in ALGORITHMS}
# Algorithms whose delta LyCORIS scales by alpha / rank.
RANKED = ("lora", "loha", "lokr", "tlora", "glora")

# Prefixes trainers give adapter keys (LyCORIS's default first); others are found as the names' common start.
KNOWN_PREFIXES = ("lycoris", "lora_transformer", "lora_unet", "lora_te1", "lora_te2", "lora_te", "lora_prior_unet")
_DIGITS = re.compile(r"(?<=_)\d+(?=_|$)")


@dataclass
class Module:
    """One adapted layer: its tensors (suffix -> info) and what LyCORIS's loader rebuilds from them."""

    name: str
    tensors: dict[str, TensorInfo]
    alpha: Optional[float] = None

    @cached_property
    def algorithm(self) -> Optional[Algorithm]:
        for algorithm in ALGORITHMS:
            if any(suffix in self.tensors for suffix in algorithm.detect):
                if algorithm.name in ("diag-oft", "boft"):
                    dims = len(self.tensors["oft_blocks"].shape)
                    if dims != (3 if algorithm.name == "diag-oft" else 4):
                        continue
                return algorithm
        return None

    @property
    def algo(self) -> Optional[str]:
        return self.algorithm.name if self.algorithm else None

    @property
    def missing(self) -> list[str]:
        """Factors the algorithm needs that the module lacks (LyCORIS's loader then fails on it)."""
        needed = {
            "lora": [("lora_up.weight",), ("lora_down.weight",)],
            "loha": [("hada_w1_a",), ("hada_w1_b",), ("hada_w2_a",), ("hada_w2_b",)],
            "lokr": [("lokr_w1", "lokr_w1_a"), ("lokr_w2", "lokr_w2_a")] + (
                [("lokr_w1_b",)] if "lokr_w1_a" in self.tensors else []) + ([("lokr_w2_b",)] if "lokr_w2_a" in self.tensors else []),
            "tlora": [("q_layer.weight",), ("p_layer.weight",), ("lambda_layer",)],
            "glora": [("a1.weight",), ("a2.weight",), ("b1.weight",), ("b2.weight",)],
        }.get(self.algo or "", [])
        return [choices[0] for choices in needed if not any(choice in self.tensors for choice in choices)]

    @property
    def unknown_suffixes(self) -> list[str]:
        """Tensors of this module that LyCORIS's loader does not read."""
        known = self.algorithm.suffixes if self.algorithm else ()
        return sorted(suffix for suffix in self.tensors if suffix not in known)

    def shape(self, suffix: str) -> Optional[tuple[int, ...]]:
        info = self.tensors.get(suffix)
        return info.shape if info else None

    @property
    def params(self) -> int:
        return sum(info.numel for suffix, info in self.tensors.items() if suffix != "alpha")

    @property
    def dora(self) -> bool:
        return "dora_scale" in self.tensors

    @property
    def tucker(self) -> bool:
        return any(suffix in self.tensors for suffix in ("lora_mid.weight", "hada_t1", "lokr_t2"))

    @property
    def full_matrix(self) -> Optional[bool]:
        """LoKr: both Kronecker blocks are stored whole (LyCORIS then ignores alpha: scale 1)."""
        if self.algo != "lokr":
            return None
        return "lokr_w1" in self.tensors and "lokr_w2" in self.tensors

    @property
    def rank(self) -> Optional[int]:
        """The rank LyCORIS's loader rebuilds the module with (``lora_dim``)."""
        algo, s = self.algo, self.shape
        try:
            if algo == "lora":
                return s("lora_down.weight")[0]
            if algo == "loha":
                return s("hada_w1_b")[0]
            if algo == "lokr":
                if "lokr_w1_a" in self.tensors:
                    return s("lokr_w1_a")[1]
                if "lokr_w2_a" in self.tensors:
                    return s("lokr_w2_a")[1]
                return None  # both blocks whole: no rank
            if algo == "tlora":
                return s("q_layer.weight")[0]
            if algo == "glora":
                return s("a1.weight")[0]
        except (TypeError, IndexError):
            return None
        return None

    @property
    def blocks(self) -> Optional[tuple[tuple[int, int], tuple[int, int]]]:
        """LoKr: the (rows, cols) of the small block w1 and of the large block w2."""
        if self.algo != "lokr":
            return None
        s = self.shape
        try:
            w1 = s("lokr_w1") or (s("lokr_w1_a")[0], s("lokr_w1_b")[1])
            if "lokr_w2" in self.tensors:
                w2 = s("lokr_w2")[:2]
            elif "lokr_t2" in self.tensors:
                w2 = (s("lokr_w2_a")[1], s("lokr_w2_b")[1])
            else:
                w2 = (s("lokr_w2_a")[0], s("lokr_w2_b")[1])
        except (TypeError, IndexError):
            return None
        return (w1[0], w1[1]), (w2[0], w2[1])

    @property
    def factor(self) -> Optional[int]:
        """LoKr: the factor LyCORIS's make_module_from_state_dict infers from the blocks (-1: near-square)."""
        blocks = self.blocks
        if blocks is None:
            return None
        (a, c), (b, d) = blocks
        out_dim, in_dim = a * b, c * d
        if (a, c) == (factorization(out_dim, -1)[0], factorization(in_dim, -1)[0]):
            return -1
        factor1, factor2 = max(a, c), max(b, d)
        for candidate in (factor1, factor2):
            if out_dim % candidate == 0 and in_dim % candidate == 0 and candidate in (a, b) and candidate in (c, d):
                return candidate
        return min(factor1, factor2)

    @property
    def weight_shape(self) -> Optional[tuple[int, ...]]:
        """The shape of the layer weight this module's delta has (convolutions without Tucker flattened)."""
        s, algo = self.shape, self.algo
        try:
            if algo == "lora":
                up, down, mid = s("lora_up.weight"), s("lora_down.weight"), s("lora_mid.weight")
                return (up[0], down[1], *(mid or down)[2:])
            if algo == "loha":
                t1 = s("hada_t1")
                return (s("hada_w1_a")[0], s("hada_w1_b")[1], *(t1[2:] if t1 else ()))
            if algo == "lokr":
                (a, c), (b, d) = self.blocks
                kernel = s("lokr_w2")[2:] if "lokr_w2" in self.tensors else (s("lokr_t2")[2:] if "lokr_t2" in self.tensors else ())
                return (a * b, c * d, *kernel)
            if algo == "tlora":
                p, q = s("p_layer.weight"), s("q_layer.weight")
                return (p[0], q[1], *q[2:])
            if algo == "full":
                return s("diff")
            if algo == "norm":
                return s("w_norm")
        except (TypeError, IndexError, ValueError):
            return None
        return None

    @property
    def lycoris_scale(self) -> Optional[float]:
        """The scale create_lycoris_from_weights gives the module (alpha 0 or absent counts as the rank)."""
        algo = self.algo
        if algo not in RANKED:
            return 1.0 if algo in ("full", "norm") else None
        if self.full_matrix:
            return 1.0
        rank = self.rank
        if not rank:
            return None
        alpha = rank if not self.alpha else self.alpha
        return alpha / rank

    @property
    def comfyui_scale(self) -> Optional[float]:
        """The scale ComfyUI's weight adapters apply (alpha / the rank they read; 1 without alpha or rank)."""
        algo, s = self.algo, self.shape
        try:
            if algo == "lora":
                rank = s("lora_down.weight")[0]
            elif algo == "loha":
                rank = s("hada_w1_b")[0]
            elif algo == "lokr":
                rank = s("lokr_w2_b")[0] if "lokr_w2_b" in self.tensors else (s("lokr_w1_b")[0] if "lokr_w1_b" in self.tensors else None)
            else:
                return None
        except (TypeError, IndexError):
            return None  # a factor is missing
        return self.alpha / rank if self.alpha is not None and rank else 1.0

    @property
    def merge_scale(self) -> Optional[float]:
        """The scale LyCORIS 4.1.3's ``merge_to()`` bakes in (``knowledge.lycoris.merge_to_scale``)."""
        scale = self.lycoris_scale
        return None if scale is None else merge_to_scale(self.algo, scale)


@dataclass
class Adapter:
    """Every key of a file, grouped into modules."""

    header: Header
    modules: dict[str, Module] = field(default_factory=dict)
    loose_keys: list[str] = field(default_factory=list)  # keys without a dot: LyCORIS's loader skips them

    @cached_property
    def prefix(self) -> str:
        """The prefix the module names share (``lycoris`` unless the config set ``apply_preset.lora_prefix``)."""
        names = list(self.modules)
        for known in KNOWN_PREFIXES:
            if names and all(name.startswith(known + "_") for name in names):
                return known
        if not names:
            return ""
        common = names[0]
        for name in names[1:]:
            while not name.startswith(common):
                common = common[:-1]
        return common.split("_")[0] if "_" in common else common

    def path_of(self, name: str) -> str:
        """A module's name without the prefix: the model path with dots written as underscores."""
        return name[len(self.prefix) + 1 :] if self.prefix and name.startswith(self.prefix + "_") else name

    @property
    def algo_counts(self) -> Counter:
        return Counter(module.algo or "unknown" for module in self.modules.values())

    @property
    def params(self) -> int:
        return sum(info.numel for key, info in self.header.tensors.items() if not key.endswith(".alpha"))

    @property
    def dtypes(self) -> Counter:
        """Parameters per dtype (alphas left out, as from ``params``)."""
        counts: Counter = Counter()
        for key, info in self.header.tensors.items():
            if not key.endswith(".alpha"):
                counts[info.dtype] += info.numel
        return counts

    @property
    def float_tensors(self) -> list[TensorInfo]:
        return [info for info in self.header.tensors.values() if info.dtype in FLOAT_DTYPES]


def read_adapter(header: Header, data: TensorData) -> Adapter:
    adapter = Adapter(header)
    for key, info in header.tensors.items():
        if "." not in key:
            adapter.loose_keys.append(key)
            continue
        name, suffix = key.split(".", 1)
        adapter.modules.setdefault(name, Module(name, {})).tensors[suffix] = info
    for module in adapter.modules.values():
        alpha = module.tensors.get("alpha")
        if alpha is not None:
            module.alpha = data.scalar(alpha)
    return adapter


def kind_of(path: str) -> str:
    """A module path with its block numbers replaced: ``transformer_blocks_{n}_attn_to_q``, for grouping."""
    return _DIGITS.sub("{n}", path)
