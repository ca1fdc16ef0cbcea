"""Output formats for findings: text (rich on a terminal, plain otherwise), json, sarif, github."""

from __future__ import annotations

import json
from collections import Counter
from typing import Callable, TextIO

from . import __version__
from .engine import Finding, LintResult

FORMATS = ("text", "json", "sarif", "github")
INFORMATION_URI = "https://github.com/lyco-dev/lyco"


def report(result: LintResult, fmt: str, stream: TextIO, *, quiet: bool = False, color: bool | None = None) -> None:
    REPORTERS[fmt](result, stream, quiet, color)


# -- text -----------------------------------------------------------------------------------------


def _summary(result: LintResult) -> str:
    counts = Counter(finding.severity.value for finding in result.findings)
    files = len(result.documents)
    checked = f"{files} file{'s' if files != 1 else ''}"
    if not result.findings:
        return f"All checks passed ({checked})."
    parts = [f"{counts[level]} {level}{'s' if counts[level] != 1 else ''}" for level in ("error", "warning", "info") if counts[level]]
    total = len(result.findings)
    return f"Found {total} problem{'s' if total != 1 else ''} ({', '.join(parts)}) in {checked}."


def _headline(finding: Finding) -> str:
    return (
        f"{finding.file}:{finding.line}:{finding.column}: {finding.code} [{finding.severity.value}] "
        f"{finding.message} ({finding.name})"
    )


def _text(result: LintResult, stream: TextIO, quiet: bool, color: bool | None) -> None:
    terminal = stream.isatty() if color is None else color
    if terminal:
        _rich_text(result, stream, quiet, color)
        return
    for finding in result.findings:
        stream.write(_headline(finding) + "\n")
    if not quiet:
        stream.write(_summary(result) + "\n")


_STYLES = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _rich_text(result: LintResult, stream: TextIO, quiet: bool, color: bool | None) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(file=stream, force_terminal=True if color else None, highlight=False, soft_wrap=True)
    current_file = None
    for finding in result.findings:
        if finding.file != current_file:
            current_file = finding.file
            console.print(Text(finding.file, style="bold underline"))
        line = Text("  ")
        line.append(f"{finding.line}:{finding.column}", style="dim")
        line.append(" ")
        line.append(finding.code, style=_STYLES[finding.severity.value])
        line.append(f" [{finding.severity.value}] ", style=_STYLES[finding.severity.value])
        line.append(finding.message)
        line.append(f" ({finding.name})", style="dim")
        console.print(line)
        frame = _code_frame(result.sources.get(finding.file, ""), finding)
        if frame:
            console.print(Text(frame, style="dim"))
    if not quiet:
        style = "bold green" if not result.findings else "bold"
        console.print(Text(_summary(result), style=style))


def _code_frame(text: str, finding: Finding) -> str:
    lines = text.splitlines()
    if not 1 <= finding.line <= len(lines):
        return ""
    source = lines[finding.line - 1].expandtabs(1)
    width = len(str(finding.line))
    end = finding.end_column if finding.end_line == finding.line else len(source) + 1
    carets = "^" * max(1, min(end, len(source) + 1) - finding.column)
    return (
        f"   {' ' * width} |\n"
        f"   {finding.line} | {source}\n"
        f"   {' ' * width} | {' ' * (finding.column - 1)}{carets}"
    )


# -- machine formats ------------------------------------------------------------------------------


def _json(result: LintResult, stream: TextIO, quiet: bool, color: bool | None) -> None:
    json.dump([finding.as_dict() for finding in result.findings], stream, indent=2, ensure_ascii=False)
    stream.write("\n")


_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def sarif_log(result: LintResult) -> dict:
    from .rules import load_rules

    rules = sorted(load_rules().values(), key=lambda entry: entry.code)
    index = {entry.code: position for position, entry in enumerate(rules)}
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "lyco",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [
                            {
                                "id": entry.code,
                                "name": entry.name,
                                "shortDescription": {"text": entry.summary},
                                "fullDescription": {"text": f"{entry.summary} {entry.why}"},
                                "help": {"text": entry.doc_markdown, "markdown": entry.doc_markdown},
                                "defaultConfiguration": {"level": _SARIF_LEVEL[entry.severity.value]},
                            }
                            for entry in rules
                        ],
                    }
                },
                "results": [
                    {
                        "ruleId": finding.code,
                        "ruleIndex": index[finding.code],
                        "level": _SARIF_LEVEL[finding.severity.value],
                        "message": {"text": finding.message},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": finding.file.replace("\\", "/")},
                                    "region": {
                                        "startLine": finding.line,
                                        "startColumn": finding.column,
                                        "endLine": finding.end_line,
                                        "endColumn": finding.end_column,
                                    },
                                },
                                "logicalLocations": [{"fullyQualifiedName": finding.pointer or "/"}],
                            }
                        ],
                    }
                    for finding in result.findings
                ],
            }
        ],
    }


def _sarif(result: LintResult, stream: TextIO, quiet: bool, color: bool | None) -> None:
    json.dump(sarif_log(result), stream, indent=2, ensure_ascii=False)
    stream.write("\n")


_GITHUB_COMMAND = {"error": "error", "warning": "warning", "info": "notice"}


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _github(result: LintResult, stream: TextIO, quiet: bool, color: bool | None) -> None:
    for finding in result.findings:
        properties = [f"file={_escape_property(finding.file)}", f"line={finding.line}"]
        if finding.end_line == finding.line:
            properties += [f"col={finding.column}", f"endColumn={finding.end_column}"]
        properties += [f"endLine={finding.end_line}", f"title={_escape_property(f'{finding.code} ({finding.name})')}"]
        command = _GITHUB_COMMAND[finding.severity.value]
        stream.write(f"::{command} {','.join(properties)}::{_escape_data(finding.message)}\n")
    if not quiet:
        stream.write(_summary(result) + "\n")


REPORTERS: dict[str, Callable[[LintResult, TextIO, bool, "bool | None"], None]] = {
    "text": _text,
    "json": _json,
    "sarif": _sarif,
    "github": _github,
}

