"""Rule modules. Each registers its rules in :mod:`lyco_lint.catalog` when imported.

To add a rule, write one ``@rule(...)`` function in the module of its family of codes:
``structure`` (LYC0xx: JSON and schema), ``algorithms`` (LYC1xx), ``presets`` (LYC2xx),
``training`` (LYC3xx).
"""

import importlib

MODULES = ("structure", "algorithms", "presets", "training", "model")


def load_all() -> None:
    for name in MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:  # a rule module not written yet
            if error.name != f"{__name__}.{name}":
                raise
