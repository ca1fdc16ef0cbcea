"""Build a LyCORIS network on a model as SimpleTuner does: the one function ``lyco lint --model``,
``lyco plan`` and ``lyco train`` call, so that what the plan shows is what trains.

The arguments come from :func:`lyco_lint.knowledge.lycoris.network_arguments`; the call order is
SimpleTuner's (``init_trainable_peft_adapter``): ``LycorisNetwork.apply_preset(apply_preset)`` when it is a
non-empty object, then ``create_lycoris(model, multiplier, linear_dim, linear_alpha, **rest)``. Unlike
SimpleTuner, the class-level preset state is reset first and restored afterwards (it leaks between
networks). The network is not applied to the model here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Optional

from ..knowledge.lycoris import NetworkArguments
from .patches import captured_output, class_state, no_tlora_gc, preset_state, quiet_import_noise


@dataclass
class BuiltNetwork:
    network: Any  # lycoris.LycorisNetwork
    arguments: NetworkArguments
    state: dict[str, Any]  # LycorisNetwork's preset state the modules were selected with
    messages: list[str]  # LyCORIS's own warnings, in order


def build_network(model, arguments: NetworkArguments, messages: Optional[list[str]] = None) -> BuiltNetwork:
    """create_lycoris on ``model``; LyCORIS's exceptions propagate unchanged (callers reword them)."""
    quiet_import_noise()
    from lycoris import LycorisNetwork, create_lycoris

    sink = messages if messages is not None else []
    with preset_state(LycorisNetwork), captured_output(sink), no_tlora_gc():
        if arguments.preset:
            LycorisNetwork.apply_preset(copy.deepcopy(arguments.preset))
        network = create_lycoris(
            model, arguments.multiplier, arguments.linear_dim, arguments.linear_alpha, **copy.deepcopy(arguments.kwargs)
        )
        state = class_state(LycorisNetwork)
    return BuiltNetwork(network, arguments, copy.deepcopy(state), sink)
