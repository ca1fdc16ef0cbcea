"""The lint gate: ``lyco train`` runs ``lyco lint`` on the config first and refuses to start on errors.

Only lyco_lint is imported here (no torch), so a broken config is reported in well under a second and
nothing is loaded, created or written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO


def lint_gate(config_path: Path, stream: TextIO) -> bool:
    """True when lint finds no error. Findings are printed as `lyco lint` prints them."""
    from lyco_lint.engine import exit_status, lint_paths
    from lyco_lint.reporters import report

    result = lint_paths([str(config_path)])
    if result.findings:
        report(result, "text", stream)
    if exit_status(result.findings) != 0:
        stream.write("lyco train: not starting: `lyco lint` reports errors in the config (above); fix them and run again.\n")
        return False
    return True
