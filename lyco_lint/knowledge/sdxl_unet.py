"""The SDXL UNet's FeedForward layers, and which targets of a LyCORIS config make LyCORIS adapt them.

SimpleTuner's LyCORIS guide warns that training FeedForward on the SDXL UNet can drive the loss to NaN
(LYC304, LYC305; the trainer names it in its NaN message). Without torch, lint needs the part of the UNet
that holds them: the tree below is checked against a ``UNet2DConditionModel`` built on the meta device
(``tests/test_training_pairing.py``), and LyCORIS's walk over it is :class:`.selection.Selection`, the same
replay ``lyco lint --model`` uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional

from ..jsonpos import join_pointer
from .families import family
from .lycoris import DEFAULT_TARGET_CLASSES, normalize_top_level_algo, preset_state
from .selection import Layer, Selection

# Where SDXL's UNet keeps its diffusers FeedForward layers: (block path, block class, number of
# Transformer2DModel in the block, BasicTransformerBlocks in each). Kolors has the same layout.
SDXL_ATTENTION_BLOCKS = (
    ("down_blocks.1", "CrossAttnDownBlock2D", 2, 2),
    ("down_blocks.2", "CrossAttnDownBlock2D", 2, 10),
    ("mid_block", "UNetMidBlock2DCrossAttn", 1, 10),
    ("up_blocks.0", "CrossAttnUpBlock2D", 3, 10),
    ("up_blocks.1", "CrossAttnUpBlock2D", 3, 2),
)


@lru_cache(maxsize=4)
def sdxl_feedforward_tree(root_class: str) -> tuple[tuple[str, str], ...]:
    """(module path, class name) of every FeedForward Linear of the SDXL UNet and of all its ancestors, in
    ``named_modules()`` order (parents before children)."""
    nodes = {"": root_class}
    for block, block_class, transformers, depth in SDXL_ATTENTION_BLOCKS:
        if "." in block:
            nodes[block.split(".")[0]] = "ModuleList"
        nodes[block] = block_class
        nodes[f"{block}.attentions"] = "ModuleList"
        for index in range(transformers):
            transformer = f"{block}.attentions.{index}"
            nodes[transformer] = "Transformer2DModel"
            nodes[f"{transformer}.transformer_blocks"] = "ModuleList"
            for depth_index in range(depth):
                basic = f"{transformer}.transformer_blocks.{depth_index}"
                nodes[basic] = "BasicTransformerBlock"
                nodes[f"{basic}.ff"] = "FeedForward"
                nodes[f"{basic}.ff.net"] = "ModuleList"
                nodes[f"{basic}.ff.net.0"] = "GEGLU"
                nodes[f"{basic}.ff.net.0.proj"] = "Linear"
                nodes[f"{basic}.ff.net.2"] = "Linear"
    return tuple(nodes.items())


def feedforward_adaptations(config: Any, root_class: str) -> dict[tuple[str, str], list[str]]:
    """FeedForward Linears of the SDXL UNet that LyCORIS would adapt, keyed by the target responsible:
    ``("class", name)`` for a target_module class (or module_algo_map key), ``("name", pattern)`` for a
    target_name pattern (or name_algo_map key). Empty when LyCORIS itself would refuse the preset."""
    if not isinstance(config, dict) or not isinstance(config.get("apply_preset", {}), (dict, type(None))):
        return {}
    state = preset_state(config)
    if not isinstance(state["MODULE_ALGO_MAP"], dict) or not isinstance(state["NAME_ALGO_MAP"], dict):
        return {}  # LyCORIS itself fails on these (LYC2xx reports them)
    layers = [Layer(path, cls) for path, cls in sdxl_feedforward_tree(root_class)]
    algo = normalize_top_level_algo(config.get("algo")) or "lora"
    selection = Selection(state, algo, lambda layer, _algo, _options: layer.class_name == "Linear").walk(layers)
    adapted: dict[tuple[str, str], list[str]] = {}
    for choice in selection.chosen.values():
        adapted.setdefault((choice.via, choice.target), []).append(choice.path)
    return {key: sorted(paths) for key, paths in adapted.items()}


@dataclass(frozen=True)
class FeedForwardCause:
    """A target of the LyCORIS config that makes LyCORIS adapt SDXL FeedForward layers."""

    pointer: str
    at: str
    label: str
    example: str  # one FeedForward Linear it adapts
    count: int
    default_targets: bool = False  # no target_module: LyCORIS' own default list is in force


def feedforward_causes(config: Any, family_name: Optional[str]) -> list[FeedForwardCause]:
    """The targets through which LyCORIS would adapt FeedForward Linears of an SDXL-UNet family."""
    facts = family(family_name)
    if facts is None or not isinstance(config, dict):
        return []
    adaptations = feedforward_adaptations(config, facts.model_class or "UNet2DConditionModel")
    return [_cause(config, kind, target, paths) for (kind, target), paths in adaptations.items()]


def _cause(config: dict[str, Any], kind: str, target: str, paths: list[str]) -> FeedForwardCause:
    preset = config.get("apply_preset") if isinstance(config.get("apply_preset"), dict) else {}
    module_map = preset.get("module_algo_map") if isinstance(preset.get("module_algo_map"), dict) else {}
    example, count = paths[0], len(paths)
    if kind == "class":
        modules = preset.get("target_module")
        if "target_module" not in preset and target in DEFAULT_TARGET_CLASSES and target not in module_map:
            has_preset = "apply_preset" in config
            where = "/apply_preset" if has_preset else ""
            label = (
                "apply_preset has no target_module, so LyCORIS keeps its default targets and adapts every Linear "
                "and Conv layer"
                if has_preset
                else "there is no apply_preset, so LyCORIS adapts every Linear and Conv layer"
            )
            return FeedForwardCause(where, "key" if where else "whole", label, example, count, default_targets=True)
        if isinstance(modules, list) and target in modules:
            pointer = join_pointer("/apply_preset/target_module", modules.index(target))
            return FeedForwardCause(pointer, "value", f"target_module '{target}'", example, count)
        if target in module_map:
            pointer = join_pointer("/apply_preset/module_algo_map", target)
            label = f"module_algo_map key '{target}' (map keys are targets too)"
            return FeedForwardCause(pointer, "key", label, example, count)
        return FeedForwardCause("/apply_preset/target_module", "key", f"target_module '{target}'", example, count)
    names = preset.get("target_name")
    if isinstance(names, list) and target in names:
        pointer = join_pointer("/apply_preset/target_name", names.index(target))
        return FeedForwardCause(pointer, "value", f"target_name '{target}'", example, count)
    pointer = join_pointer("/apply_preset/name_algo_map", target)
    return FeedForwardCause(pointer, "key", f"name_algo_map key '{target}'", example, count)
