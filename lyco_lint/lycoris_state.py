"""LycorisNetwork's class-level preset state, as lycoris-lora 4.1.3 ships it.

``LycorisNetwork.apply_preset`` sets these class attributes, and they persist between networks built
in one process (reference lycoris-4.1.3.md §7.3): a preset key left out keeps the previous network's
value. Everything that builds a network (``lyco lint --model``, ``lyco train``) starts from these
defaults. Plain data here, so importing this module costs nothing; ``lycoris`` is imported by callers.
"""

from __future__ import annotations

import copy
from typing import Any

PRESET_DEFAULTS: dict[str, Any] = {
    "ENABLE_CONV": True,
    "TARGET_REPLACE_MODULE": ["Linear", "Conv1d", "Conv2d", "Conv3d", "GroupNorm", "LayerNorm"],
    "TARGET_REPLACE_NAME": [],
    "LORA_PREFIX": "lycoris",
    "MODULE_ALGO_MAP": {},
    "NAME_ALGO_MAP": {},
    "USE_FNMATCH": False,
    "TARGET_EXCLUDE_NAME": [],
}


def reset_preset_state(network_class) -> dict[str, Any]:
    """Put LyCORIS's defaults on ``network_class`` (``lycoris.LycorisNetwork``); return the state it had."""
    saved = {name: getattr(network_class, name) for name in PRESET_DEFAULTS}
    for name, value in PRESET_DEFAULTS.items():
        setattr(network_class, name, copy.deepcopy(value))
    return saved
