"""The rule modules, one per concern, and the complete catalog.

Importing this package imports every rule module, and each registers its rules in
:mod:`lyco_lint.catalog` with ``@rule`` (or ``engine_rule`` for codes the engine emits itself). To add a
rule, write one decorated function in the module that owns its codes (:data:`CODE_TABLE`; a test checks
that every registered code sits in its module's range and that the table covers the catalog).
"""

from __future__ import annotations

from typing import Optional

from .. import catalog
from ..catalog import Rule
from . import algorithms, dataset_values, datasets, model, presets, structure, training_argparse, training_hazards, training_wiring, weights

# module -> (what it checks, the code ranges it owns as (first, last) inclusive)
CODE_TABLE: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    structure.__name__: ("the file: JSON syntax, duplicate keys, the LyCORIS schema", (("LYC001", "LYC099"),)),
    algorithms.__name__: ("algorithm options and their lycoris-lora 4.1.3 traps", (("LYC101", "LYC199"),)),
    presets.__name__: ("apply_preset: preset keys, target classes of the family, patterns", (("LYC201", "LYC206"), ("LYC209", "LYC209"), ("LYC212", "LYC212"))),
    model.__name__: ("the real model (--model): adaptation, costs", (("LYC207", "LYC208"), ("LYC210", "LYC211"), ("LYC213", "LYC299"), ("LYC401", "LYC499"))),
    training_wiring.__name__: ("how a training config wires in its LyCORIS config and files", (("LYC301", "LYC303"), ("LYC316", "LYC316"), ("LYC320", "LYC320"))),
    training_hazards.__name__: ("training and LyCORIS config combinations that train badly", (("LYC304", "LYC309"),)),
    training_argparse.__name__: ("what SimpleTuner's loader and argparse make of config.json", (("LYC310", "LYC315"), ("LYC317", "LYC319"), ("LYC321", "LYC399"))),
    datasets.__name__: ("the dataset config (multidatabackend.json): shape, keys, required keys, paths, ids", (("LYC501", "LYC503"), ("LYC505", "LYC599"))),
    dataset_values.__name__: ("values in the dataset config SimpleTuner rejects or misreads", (("LYC504", "LYC504"),)),
    weights.__name__: ("adapter weights files: readable, healthy, fitting the model, loading where they are used", (("LYC601", "LYC699"),)),
}


def load_rules() -> dict[str, Rule]:
    """Every registered rule by code (the rule modules are imported with this package)."""
    return catalog.RULES


def find_rule(code_or_name: str) -> Optional[Rule]:
    return catalog.RULES.get(code_or_name.upper()) or catalog.BY_NAME.get(code_or_name.lower())


def rules_for(applies_to: str) -> list[Rule]:
    return [entry for entry in catalog.RULES.values() if applies_to in entry.applies_to]
