"""The rule catalog: every code lyco can report, with its documentation and its check.

A rule is a small function registered with :func:`rule`. It receives the document being linted
and yields :class:`Hit`s (where, and what to say); the engine turns hits into findings with
positions, severity and the rule's code. Adding a rule means writing one decorated function in
one of the ``lyco_lint.rules`` modules (importing ``lyco_lint.rules`` registers them all): the CLI,
the reporters, ``lyco explain`` and the SARIF rules table all read this catalog.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Union

if TYPE_CHECKING:  # pragma: no cover
    from .documents import Document


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 2, "warning": 1, "info": 0}[self.value]


ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

# Which documents a rule runs on.
LYCORIS = "lycoris"
TRAINING = "training"
DATASET = "dataset"
ENGINE = "engine"  # emitted by the loader itself (parse errors, unrecognised files)
WEIGHTS = "weights"  # adapter weights files (.safetensors); hits point at a tensor key, not a line


# How sure a fix is (ruff's applicability): a safe fix leaves the file meaning exactly what it meant to LyCORIS
# and SimpleTuner (a deprecated alias renamed, an ignored value written as the one used); an unsafe fix changes
# behaviour to what the author evidently meant (a typo corrected, "false" written as false).
SAFE = "safe"
UNSAFE = "unsafe"


@dataclass(frozen=True)
class Edit:
    """One change of a fix, by JSON pointer: replace the member's ``key``, its ``value``, or delete the whole
    ``member`` (with its comma). ``replacement`` is JSON text; the engine turns the pointer into a span."""

    pointer: str
    at: str  # "key", "value" or "member"
    replacement: str = ""
    index: Optional[int] = None  # "member": which member of the object (duplicate keys share a pointer)


@dataclass(frozen=True)
class Fix:
    description: str  # what the fix does, imperative: "Rename 'use_cp' to 'use_tucker'"
    edits: tuple[Edit, ...]
    safety: str = SAFE


def rename_key(pointer: str, new_key: str) -> Edit:
    return Edit(pointer, "key", json.dumps(new_key, ensure_ascii=False))


def replace_value(pointer: str, value: Any) -> Edit:
    return Edit(pointer, "value", json.dumps(value, ensure_ascii=False))


def delete_member(pointer: str, index: Optional[int] = None) -> Edit:
    return Edit(pointer, "member", index=index)


@dataclass(frozen=True)
class Hit:
    """What a rule reports: a JSON pointer into a document, the message, and where to point.

    ``at`` is ``"key"`` to underline the member's key (unknown or misplaced keys) or ``"value"``
    for its value. ``document`` lets a rule on one file point into the paired file (a training
    config's setting that makes the LyCORIS config dangerous). ``severity`` overrides the rule's
    default for rules whose severity depends on the value (LYC308). ``fix`` is the change that
    resolves the finding, when the rule knows one (``lyco lint --fix``); it edits ``document``.
    """

    pointer: str
    message: str
    at: str = "value"
    severity: Optional[Severity] = None
    document: Optional["Document"] = None
    fix: Optional[Fix] = None


Check = Callable[["Document"], Iterable[Hit]]


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: Severity
    applies_to: tuple[str, ...]
    summary: str
    why: str
    example: str
    fixed: str
    check: Optional[Check] = None
    fix_doc: Optional[str] = None  # how the rule fixes (lyco explain, "Fix safety"); None: it offers no fix

    @property
    def fix_text(self) -> str:
        return self.fix_doc or "This rule offers no automatic fix: the right change depends on what you meant."

    @property
    def doc_markdown(self) -> str:
        return (
            f"# {self.name} ({self.code})\n\n"
            f"Default severity: {self.severity.value}. Applies to: {self.applies_to_text}.\n\n"
            f"## What it does\n{self.summary}\n\n"
            f"## Why is this bad?\n{self.why}\n\n"
            f"## Example\n```{_fence(self.example)}\n{self.example.strip()}\n```\n\n"
            f"## Use instead\n```{_fence(self.fixed)}\n{self.fixed.strip()}\n```\n\n"
            f"## Fix safety\n{self.fix_text}\n"
        )


    @property
    def applies_to_text(self) -> str:
        return " and ".join(_APPLIES[kind] for kind in self.applies_to)


def _fence(example: str) -> str:
    """JSON examples are highlighted as JSON; command-line examples (model rules) as a console."""
    return "json" if example.lstrip()[:1] in "{[" else "console"


_APPLIES = {
    LYCORIS: "LyCORIS config files",
    TRAINING: "SimpleTuner training config files",
    DATASET: "SimpleTuner dataset config files (multidatabackend.json)",
    ENGINE: "every file",
    WEIGHTS: "adapter weights files (.safetensors)",
}

RULES: dict[str, Rule] = {}
BY_NAME: dict[str, Rule] = {}


def rule(
    code: str,
    name: str,
    severity: Severity,
    *,
    applies_to: Union[str, tuple[str, ...]],
    summary: str,
    why: str,
    example: str,
    fixed: str,
    fix: Optional[str] = None,
) -> Callable[[Check], Check]:
    """Register ``check`` in the catalog under ``code`` and ``name`` (both must be new). ``fix`` documents the
    fixes the check offers (which findings, what they change, safe or unsafe), for ``lyco explain``."""

    def register(check: Check) -> Check:
        kinds = (applies_to,) if isinstance(applies_to, str) else tuple(applies_to)
        _add(Rule(code, name, severity, kinds, summary, why, example, fixed, check, fix))
        return check

    return register


def engine_rule(code: str, name: str, severity: Severity, **docs: str) -> Rule:
    """Register a code that the engine emits itself (it has no check function)."""
    entry = Rule(code, name, severity, (ENGINE,), check=None, **docs)
    _add(entry)
    return entry


def _add(entry: Rule) -> None:
    if entry.code in RULES or entry.name in BY_NAME:
        raise ValueError(f"rule {entry.code} ({entry.name}) registered twice")
    RULES[entry.code] = entry
    BY_NAME[entry.name] = entry
