"""Model families: everything that differs between the models lyco train trains, one class per family.

The contract is the :class:`~.base.Family` protocol; each family is one module with one class
implementing it (``flux2.py``: :class:`~.flux2.Flux2`, ``flux.py``: :class:`~.flux.Flux` for FLUX.1,
``sdxl.py``: :class:`~.sdxl.SDXL`); ``components.py`` holds the functions they share (model folders,
SimpleTuner's facts, option checks) and ``mixins.py`` the contract members several implement alike.
``FAMILIES`` maps a ``model_family`` name to its family object. To add a family: write ``<name>.py`` with a
class implementing ``Family``, register an instance below and its pipeline classes in
``components.PIPELINES``; ``tests/test_train_families.py`` checks it against the protocol.
"""

from __future__ import annotations

from typing import Optional

from ..config import ConfigError
from .base import Family
from .flux import Flux
from .flux2 import Flux2
from .sdxl import SDXL

FAMILIES: dict[str, Family] = {family.name: family for family in (Flux2(), Flux(), SDXL())}


def get_family(name: Optional[str]) -> Family:
    """The family of a ``model_family`` value, or a ConfigError naming the supported ones."""
    if name not in FAMILIES:
        raise ConfigError(
            f"model_family '{name}' is not supported by lyco train yet; supported: {', '.join(sorted(FAMILIES))}"
        )
    return FAMILIES[name]
