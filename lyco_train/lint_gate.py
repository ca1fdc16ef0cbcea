"""The lint gate: ``lyco train`` runs ``lyco lint`` on the config first and refuses to start on errors.

The config is linted with the model, as ``lyco lint --model auto`` does: LyCORIS is run on the transformer
built on the meta device from its config alone (no weights read), so target classes that match nothing,
or a config LyCORIS refuses, stop the run before anything is loaded, created or written. The model lint
builds is diffusers' class, which is what lyco train trains, so class findings are errors here even for
families whose SimpleTuner model is its own copy (FLUX.1: SimpleTuner's builds ``Attention``, diffusers'
``FluxAttention``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO


def lint_gate(config_path: Path, stream: TextIO):
    """The lint result when lint finds no error (its LyCORIS document carries the model analysis for the
    plan), else None. Findings are printed as `lyco lint` prints them."""
    from lyco_lint.engine import Options, exit_status, lint_paths
    from lyco_lint.reporters import report

    # trained_as_built: lyco train trains diffusers' class as lint builds it (for FLUX.1 FluxAttention, where SimpleTuner's
    # own copy builds the generic Attention), so a target class the model lacks is certain: an error.
    result = lint_paths([str(config_path)], Options(model="auto", trained_as_built=True))
    missing = _missing_train_extra()
    errors = [finding for finding in result.findings if finding.severity.value == "error"]
    if missing and errors and all(finding.code == "LYC210" for finding in errors):
        # the config may be fine: the only error is that this install cannot build the model, so say that alone
        stream.write(f"lyco train: not starting: training needs the train extra ({missing} is not installed): pip install 'lyco[train]'\n")
        return None
    if result.findings:
        report(result, "text", stream)
    if exit_status(result.findings) != 0:
        problem = family_problem(config_path)
        if problem:  # often the cause of the class findings: a model folder of another family
            stream.write(f"lyco train: also: {problem}\n")
        stream.write("lyco train: not starting: `lyco lint` reports errors in the config (above); fix them and run again.\n")
        return None
    return result


def _missing_train_extra():
    """The first of torch, diffusers and lycoris that cannot be imported (a lint-only install), or None."""
    import importlib.util

    for name in ("torch", "diffusers", "lycoris"):
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):  # a module set to None in sys.modules (how tests hide it)
            return name
    return None


def family_problem(config_path: Path):
    """What the family's own check (flavour, options, the model folder) says about the config, or None; read
    only when lint refused the config, so a model folder of another family is named next to the class findings
    it causes."""
    from .config import ConfigError, load_config
    from .families import get_family

    try:
        options = load_config(config_path).options
    except ConfigError:
        return None  # the config itself is broken: lint's findings say how
    try:
        get_family(options.model_family).check(options)
    except ConfigError as error:
        return str(error)
    return None


def model_analysis(result):
    """The analysis of the LyCORIS config on the model (``lyco plan``'s data), when lint made one."""
    return next((d.context.model for d in result.documents if d.context.model is not None), None)
