"""Output formats for findings: text (rich on a terminal, plain otherwise), json, sarif, github."""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Callable, TextIO
from urllib.parse import quote

from . import __version__
from .engine import Finding, LintResult

FORMATS = ("text", "json", "sarif", "github")
INFORMATION_URI = "https://github.com/lyco-dev/lyco"


def report(result: LintResult, fmt: str, stream: TextIO, *, quiet: bool = False, color: bool | None = None) -> None:
    REPORTERS[fmt](result, stream, quiet, color)


# -- what input text may reach the output ---------------------------------------------------------

# Messages quote keys and values from the file: a 10 MB value must not be echoed whole.
MESSAGE_LIMIT = 1000
# Characters a terminal acts on or that change what a line looks like: C0/C1 controls (escape sequences,
# carriage returns, line breaks that would forge a finding line), DEL, bidirectional overrides, and lone
# surrogates (from JSON \udc00 escapes or undecodable file names), which UTF-8 output cannot encode.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut in the middle to at most about ``limit`` characters (the fix at its end stays)."""
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 2 // 3], text[-(limit // 3) :]
    return f"{head} [... {len(text) - len(head) - len(tail):,} characters left out ...] {tail}"


def printable(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` safe for a terminal or a log: unsafe characters escaped as Python writes them, then clipped."""
    escaped = _UNSAFE.sub(lambda m: _NAMED_ESCAPES.get(m.group(), f"\\u{ord(m.group()):04x}" if ord(m.group()) > 0xFF else f"\\x{ord(m.group()):02x}"), text)
    return clip(escaped, limit)


def json_text(value) -> str:
    """The whole JSON document as one string (written at once: never half a document): NaN and infinities,
    which JSON has no words for, as null, and lone surrogates as \\uXXXX escapes, which is what they are in
    JSON, so that UTF-8 output can carry them."""
    text = json.dumps(_finite(value), indent=2, ensure_ascii=False, allow_nan=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


def _finite(value):
    """``value`` with every non-finite float (an adapter's NaN alpha, a config's Infinity) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


# -- text -----------------------------------------------------------------------------------------


def _summary(result: LintResult) -> str:
    counts = Counter(finding.severity.value for finding in result.findings)
    files = len(result.documents)
    checked = f"{files} file{'s' if files != 1 else ''}"
    fixed = f"Fixed {result.fixed} problem{'s' if result.fixed != 1 else ''}. " if result.fixed else ""
    if not result.findings:
        return f"{fixed}All checks passed ({checked})."
    parts = [f"{counts[level]} {level}{'s' if counts[level] != 1 else ''}" for level in ("error", "warning", "info") if counts[level]]
    total = len(result.findings)
    summary = f"{fixed}Found {total} problem{'s' if total != 1 else ''} ({', '.join(parts)}) in {checked}."
    return summary + _fix_hint(result)


def _fix_hint(result: LintResult) -> str:
    """ruff's hint: how many findings --fix would fix, and how many more --unsafe-fixes would."""
    from .fixes import fixable_counts

    applicable, hidden = fixable_counts(result.findings, result.unsafe_fixes)
    hint = ""
    if applicable:
        flags = "--fix --unsafe-fixes" if result.unsafe_fixes else "--fix"
        hint = f"\n[*] {applicable} fixable with `lyco lint {flags}`"
    if hidden:
        hint += f"{' ' if hint else chr(10)}({hidden} more with `--unsafe-fixes`)"
    return hint


def _blocked(result: LintResult) -> set[int]:
    if not any(finding.fix is not None for finding in result.findings):
        return set()
    from .fixes import blocked_fixes

    return blocked_fixes(result.findings, result.unsafe_fixes)


def _mark(finding: Finding, result: LintResult, blocked: set[int]) -> str:
    """`[*] ` for a finding `lyco lint --fix` would fix (with --unsafe-fixes, unsafe fixes count too; not one
    whose fix would write a duplicate key: ``fixes.blocked_fixes``)."""
    usable = finding.fix is not None and id(finding) not in blocked
    return "[*] " if usable and finding.fix.applies(result.unsafe_fixes) else ""


def _where(finding: Finding) -> str:
    """``line:column`` in a config; in a weights file the tensor key, pytest-style (``file::key``), or nothing."""
    if finding.line is None:
        return f"::{printable(finding.tensor)}" if finding.tensor else ""
    return f":{finding.line}:{finding.column}"


def _headline(finding: Finding, mark: str = "") -> str:
    return (
        f"{printable(finding.file)}{_where(finding)}: {finding.code} {mark}[{finding.severity.value}] "
        f"{printable(finding.message)} ({finding.name})"
    )


def _text(result: LintResult, stream: TextIO, quiet: bool, color: bool | None) -> None:
    terminal = stream.isatty() if color is None else color
    if terminal:
        _rich_text(result, stream, quiet, color)
        return
    blocked = _blocked(result)
    for finding in result.findings:
        stream.write(_headline(finding, _mark(finding, result, blocked)) + "\n")
    if not quiet:
        stream.write(_summary(result) + "\n")


_STYLES = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _rich_text(result: LintResult, stream: TextIO, quiet: bool, color: bool | None) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(file=stream, force_terminal=True if color else None, highlight=False, soft_wrap=True)
    blocked = _blocked(result)
    current_file = None
    for finding in result.findings:
        if finding.file != current_file:
            current_file = finding.file
            console.print(Text(printable(finding.file), style="bold underline"))
        line = Text("  ")
        where = f"{finding.line}:{finding.column}" if finding.line is not None else printable(finding.tensor or "")
        if where:
            line.append(where, style="dim")
            line.append(" ")
        line.append(finding.code, style=_STYLES[finding.severity.value])
        if _mark(finding, result, blocked):
            line.append(" [*]", style="bold")
        line.append(f" [{finding.severity.value}] ", style=_STYLES[finding.severity.value])
        line.append(printable(finding.message))
        line.append(f" ({finding.name})", style="dim")
        console.print(line)
        frame = _code_frame(result.sources.get(finding.file, ""), finding)
        if frame:
            console.print(Text(frame, style="dim"))
    if not quiet:
        style = "bold green" if not result.findings else "bold"
        console.print(Text(_summary(result), style=style))


FRAME_WIDTH = 120  # characters of the source line shown around the finding


def _code_frame(text: str, finding: Finding) -> str:
    lines = text.splitlines()
    if finding.line is None or not 1 <= finding.line <= len(lines):
        return ""
    # one character for one character, so that the carets stay under the finding
    source = _UNSAFE.sub("\ufffd", lines[finding.line - 1].expandtabs(1))
    column = finding.column
    end = finding.end_column if finding.end_line == finding.line else len(source) + 1
    if len(source) > FRAME_WIDTH:  # a minified file or a huge value: a window around the finding
        start = max(0, column - 1 - FRAME_WIDTH // 4)
        shown = source[start : start + FRAME_WIDTH]
        prefix = "..." if start else ""
        suffix = "..." if start + FRAME_WIDTH < len(source) else ""
        source, column, end = prefix + shown + suffix, column - start + len(prefix), min(end - start + len(prefix), len(prefix) + len(shown) + 1)
    width = len(str(finding.line))
    carets = "^" * max(1, min(end, len(source) + 1) - column)
    return (
        f"   {' ' * width} |\n"
        f"   {finding.line} | {source}\n"
        f"   {' ' * width} | {' ' * (column - 1)}{carets}"
    )


# -- machine formats ------------------------------------------------------------------------------


def _json(result: LintResult, stream: TextIO, quiet: bool, color: bool | None) -> None:
    stream.write(json_text([dict(finding.as_dict(), message=clip(finding.message)) for finding in result.findings]))


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
                        "message": {"text": clip(finding.message)},
                        "locations": [_sarif_location(finding)],
                        **_sarif_fixes(finding),
                    }
                    for finding in result.findings
                ],
            }
        ],
    }


def artifact_uri(file: str) -> str:
    """A finding's file as a SARIF artifact URI (RFC 3986): a relative path percent-encoded with its slashes
    kept (``sp ace/x#1.json`` -> ``sp%20ace/x%231.json``), an absolute one as a ``file:`` URI."""
    path, posix = Path(file), file.replace("\\", "/")
    try:
        if path.is_absolute():
            return path.as_uri()
        raw = os.fsencode(posix)
    except UnicodeEncodeError:  # a lone surrogate no file system encoding maps to a byte
        raw = posix.encode("utf-8", "surrogatepass")
        if path.is_absolute():
            return "file://" + ("" if posix.startswith("/") else "/") + quote(raw, safe="/:")
    return quote(raw, safe="/")


def _sarif_fixes(finding: Finding) -> dict:
    """SARIF's `fixes`: the finding's edits as replacements of regions of its file."""
    if finding.fix is None:
        return {}
    replacements = [
        {
            "deletedRegion": {"startLine": e.line, "startColumn": e.column, "endLine": e.end_line, "endColumn": e.end_column},
            "insertedContent": {"text": e.content},
        }
        for e in finding.fix.edits
    ]
    change = {"artifactLocation": {"uri": artifact_uri(finding.file)}, "replacements": replacements}
    return {"fixes": [{"description": {"text": f"{finding.fix.description} ({finding.fix.safety})"}, "artifactChanges": [change]}]}


def _sarif_location(finding: Finding) -> dict:
    """A region for a config; for a weights file the artifact alone, and the tensor key as a logical location."""
    physical: dict = {"artifactLocation": {"uri": artifact_uri(finding.file)}}
    if finding.line is None:
        logical = {"fullyQualifiedName": finding.tensor or "/", "kind": "member" if finding.tensor else "module"}
        return {"physicalLocation": physical, "logicalLocations": [logical]}
    physical["region"] = {
        "startLine": finding.line,
        "startColumn": finding.column,
        "endLine": finding.end_line,
        "endColumn": finding.end_column,
    }
    return {"physicalLocation": physical, "logicalLocations": [{"fullyQualifiedName": finding.pointer or "/"}]}


def _sarif(result: LintResult, stream: TextIO, quiet: bool, color: bool | None) -> None:
    stream.write(json_text(sarif_log(result)))


_GITHUB_COMMAND = {"error": "error", "warning": "warning", "info": "notice"}


def _escape_data(text: str) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return printable(text)  # what is left that a log viewer would act on


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _github(result: LintResult, stream: TextIO, quiet: bool, color: bool | None) -> None:
    for finding in result.findings:
        properties = [f"file={_escape_property(finding.file)}"]
        message = finding.message
        if finding.line is None:  # a weights file: no line; the tensor key goes into the message
            message = f"{finding.tensor}: {message}" if finding.tensor else message
        else:
            properties.append(f"line={finding.line}")
            if finding.end_line == finding.line:
                properties += [f"col={finding.column}", f"endColumn={finding.end_column}"]
            properties.append(f"endLine={finding.end_line}")
        properties.append(f"title={_escape_property(f'{finding.code} ({finding.name})')}")
        command = _GITHUB_COMMAND[finding.severity.value]
        stream.write(f"::{command} {','.join(properties)}::{_escape_data(message)}\n")
    if not quiet:
        stream.write(_summary(result) + "\n")


REPORTERS: dict[str, Callable[[LintResult, TextIO, bool, "bool | None"], None]] = {
    "text": _text,
    "json": _json,
    "sarif": _sarif,
    "github": _github,
}

