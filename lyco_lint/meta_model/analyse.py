"""Run LyCORIS itself on a model built on the meta device and record what it adapted, how, and how many
parameters it trains (``lyco lint --model``, ``lyco plan``).

The network is built by :func:`.network.build_network`, the function the trainer uses too, with the adapter's
parameters created on the meta device (even a billion-parameter adapter allocates nothing); it is never
applied to the model. Nothing here writes to stdout: LyCORIS's warnings land in :attr:`Analysis.messages`.
"""

from __future__ import annotations

from typing import Optional

from ..knowledge.lycoris import NetworkArgumentError, network_arguments, str_bool
from ..knowledge.selection import Choice, Layer, Selection, module_tree
from .analysis import REFERENCE_TOKENS, AdaptedModule, Analysis
from .build import build_meta_model
from .cost import estimate_bypass
from .network import build_network
from .patches import Construction, recorded_constructions, shape_only
from .resolve import ModelError, ModelSource, resolve_model


class AnalysisError(ModelError):
    """LyCORIS refused to build the config on this model (its own error, reworded)."""

    refused_by_lycoris = True  # LYC211, where other ModelErrors are LYC210 (the engine need not import this module)


def analyse(model, lycoris_config: dict, source: Optional[ModelSource] = None, tokens: int = REFERENCE_TOKENS) -> Analysis:
    """Apply ``lycoris_config`` to ``model`` the way lyco train and SimpleTuner do, with LyCORIS 4.1.3 itself."""
    import torch

    try:
        arguments = network_arguments(lycoris_config)
    except NetworkArgumentError as error:
        raise AnalysisError(str(error)) from None
    messages: list[str] = []
    constructions: dict[str, Construction] = {}
    try:
        with torch.device("meta"), shape_only(), recorded_constructions(constructions):
            built = build_network(model, arguments, messages)
    except Exception as error:
        raise AnalysisError(
            f"LyCORIS could not build this config on {type(model).__name__}: {type(error).__name__}: {error}"
        ) from None
    network = built.network
    selection = replay_selection(network, built.state, arguments.kwargs, arguments.linear_dim, module_tree(model))
    modules = tuple(_adapted(lora, constructions.get(lora.lora_name), selection) for lora in network.loras)
    if {m.lora_name for m in modules} != set(selection.chosen):
        messages.append(
            "lyco's replay of LyCORIS's module walk disagrees with LyCORIS on which layers are adapted; "
            "the 'target' column may be wrong (please report this)"
        )
    bypass = any(module.bypass for module in modules)
    return Analysis(
        model_class=type(model).__name__,
        classes=frozenset(type(module).__name__ for _name, module in model.named_modules()),
        base_params=sum(parameter.numel() for parameter in model.parameters()),
        modules=modules,
        target_classes=tuple(sorted(selection.target_classes)),
        target_names=tuple(sorted(selection.target_names)),
        unmatched_classes=tuple(sorted(selection.unmatched_classes)),
        unmatched_names=tuple(sorted(selection.unmatched_names)),
        shadowed=selection.shadowed(),
        bypass=bypass,
        estimate=estimate_bypass(network.loras, tokens) if bypass else None,
        messages=tuple(dict.fromkeys(messages)),
        source=source,
    )


def analyse_spec(spec: str, lycoris_config: dict, family: Optional[str] = None, training_options: Optional[dict] = None) -> Analysis:
    """resolve → build → analyse in one call (what ``--model`` does)."""
    source = resolve_model(spec, family, training_options)
    return analyse(build_meta_model(source), lycoris_config, source=source)


def replay_selection(network, state: dict, kwargs: dict, linear_dim: int, layers: list[Layer]) -> Selection:
    """The walk ``network`` just did over ``layers``: its class state and the root options create_lycoris derived."""
    import torch
    from lycoris.modules.base import is_supported_linear_module

    train_norm = str_bool(kwargs.get("train_norm", False))
    weight_decompose = str_bool(kwargs.get("dora_wd", False))
    conv_dim = network.conv_lora_dim

    def adapts(layer: Layer, algo: str, options: dict) -> bool:
        """create_single_module's test: does this layer get a LyCORIS module?"""
        module = layer.module
        if train_norm and "Norm" in layer.class_name:
            return True
        decompose = options.get("weight_decompose", weight_decompose)
        if is_supported_linear_module(module, algo, weight_decompose=decompose) and linear_dim > 0:
            return True
        if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            if module.kernel_size[0] == 1 and linear_dim > 0:
                return True
            return bool(conv_dim > 0 or options.get("dim"))
        return False

    algo = (kwargs.get("algo", "lora") or "lora").lower()
    train_llm_adapter = bool(getattr(network, "train_llm_adapter", False))
    return Selection(state, algo, adapts, train_llm_adapter=train_llm_adapter).walk(layers)


def _adapted(lora, construction: Optional[Construction], selection: Selection) -> AdaptedModule:
    layer = lora.org_module[0]
    choice = selection.chosen.get(lora.lora_name) or Choice("?", "?", "?", None, "?")
    kwargs = construction.kwargs if construction else {}
    algo = construction.algo if construction else type(lora).__name__.replace("Module", "").lower()
    is_lokr = type(lora).__name__ == "LokrModule"
    factor = kwargs.get("factor") if is_lokr else None
    try:
        factor = int(factor) if factor is not None else None
    except (TypeError, ValueError):
        pass
    parameters = tuple((name, tuple(parameter.shape)) for name, parameter in lora.named_parameters())
    return AdaptedModule(
        lora_name=lora.lora_name,
        path=choice.path,
        layer_class=type(layer).__name__,
        via=choice.via,
        target=choice.target,
        options_from=choice.options_from,
        algo=algo,
        module_class=type(lora).__name__,
        dim=_number(construction.dim if construction else getattr(lora, "lora_dim", None)),
        alpha=_number(construction.alpha if construction else None),
        scale=_number(getattr(lora, "scale", None)),
        factor=factor,
        full_matrix=bool(lora.use_w1 and lora.use_w2) if is_lokr else None,
        bypass=bool(getattr(lora, "bypass_mode", False)),
        dora=bool(getattr(lora, "wd", False)),
        weight_shape=tuple(layer.weight.shape) if getattr(layer, "weight", None) is not None else (),
        parameter_shapes=parameters,
        trainable_params=sum(parameter.numel() for parameter in lora.parameters()),
    )


def _number(value):
    """A plain number for reports; anything else (a tensor, a string LyCORIS failed to use) is None."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
