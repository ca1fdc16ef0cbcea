"""Rule modules. Each registers its rules in :mod:`lyco_lint.catalog` when imported.

To add a rule, write one ``@rule(...)`` function in the module of its family of codes:
``structure`` (LYC0xx: JSON and schema), ``algorithms`` (LYC1xx), ``presets`` (LYC2xx),
``training`` (LYC3xx), ``model`` (rules that need ``--model``: LYC207-LYC211, LYC4xx).
"""

import importlib

MODULES = ("structure", "algorithms", "presets", "training", "model")


def load_all() -> None:
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
