"""``lyco lint --fix``: turn the fixes rules offer into text edits, and apply them.

A rule attaches a :class:`lyco_lint.catalog.Fix` to a hit: edits by JSON pointer (replace a key, replace a
value, delete a member) and a safety. :func:`resolve` turns those into spans of the file (line and column,
as findings have them) when the finding is made; :func:`fixed_files` applies the applicable fixes of a lint
run to each file's text: only the edited spans change, every other byte of the file stays as it was
(indentation, key order, line endings, a byte order mark). Fixes that overlap an edit already taken wait for
the next pass (the CLI lints again after writing, as ruff does). Two renames that would write the same key into
one object, or a rename onto a key the object has, are not applied at all: the duplicate key would silently
lose one of the values. Writes go through :mod:`lyco_lint.atomic`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

from .catalog import SAFE, TRAINING, Edit, Fix
from .jsonpos import Span

if TYPE_CHECKING:  # pragma: no cover
    from .documents import Document


@dataclass(frozen=True)
class FixEdit:
    """Replace the text from (line, column) to (end_line, end_column) (1-based, end exclusive) with ``content``."""

    line: int
    column: int
    end_line: int
    end_column: int
    content: str
    # A key rename: (the object's pointer, the key it writes), and whether that key is already in the object.
    # apply_fixes refuses two renames to one key, and a rename onto a key that is there (a duplicate key).
    new_key: Optional[tuple[str, str]] = None
    onto_existing: bool = False

    def as_dict(self) -> dict:
        return {
            "content": self.content,
            "location": {"line": self.line, "column": self.column},
            "end_location": {"line": self.end_line, "column": self.end_column},
        }


@dataclass(frozen=True)
class FindingFix:
    description: str
    safety: str  # catalog.SAFE or catalog.UNSAFE
    edits: tuple[FixEdit, ...]

    def as_dict(self) -> dict:
        return {"applicability": self.safety, "message": self.description, "edits": [edit.as_dict() for edit in self.edits]}

    def applies(self, unsafe: bool) -> bool:
        return self.safety == SAFE or unsafe


# -- pointers to spans -------------------------------------------------------------------------------------------


def resolve(document: "Document", fix: Optional[Fix]) -> Optional[FindingFix]:
    """The fix as spans of ``document``, or None when one of its edits does not point at anything."""
    if fix is None:
        return None
    edits = []
    for edit in fix.edits:
        span = _span(document, edit)
        if span is None:
            return None
        new_key, onto_existing = _renamed_key(document, edit) if edit.at == "key" else (None, False)
        edits.append(FixEdit(span.line, span.column, span.end_line, span.end_column, edit.replacement, new_key, onto_existing))
    return FindingFix(fix.description, fix.safety, tuple(edits))


def _renamed_key(document: "Document", edit: Edit) -> tuple[Optional[tuple[str, str]], bool]:
    """(the object and the key a rename writes, whether that key is already one of the object's), as the reader
    of the file counts keys: a training config's `k` and `--k` are one (SimpleTuner strips the dashes)."""
    import json

    parent_pointer = edit.pointer.rsplit("/", 1)[0]
    parent = document.node_at(parent_pointer) if parent_pointer else document.root
    member = document.member_at(edit.pointer)
    try:
        new = json.loads(edit.replacement)
    except ValueError:
        return None, False
    if parent is None or parent.kind != "object" or member is None or not isinstance(new, str):
        return None, False

    def identity(key: str) -> str:
        return key.lstrip("-") if document.kind == TRAINING and parent_pointer == "" else key

    existing = {identity(other.key) for other in parent.members if other is not member}
    return (parent_pointer, identity(new)), identity(new) in existing and identity(new) != identity(member.key)


def _span(document: "Document", edit: Edit) -> Optional[Span]:
    if edit.at == "key":
        member = document.member_at(edit.pointer)
        return member.key_span if member is not None else None
    if edit.at == "value":
        node = document.node_at(edit.pointer)
        return node.span if node is not None else None
    if edit.at == "member":
        return _member_span(document, edit)
    return None


def _member_span(document: "Document", edit: Edit) -> Optional[Span]:
    """The text to delete to remove a member and one comma: up to the next key, else from the previous value."""
    parent = document.node_at(edit.pointer.rsplit("/", 1)[0]) if "/" in edit.pointer else None
    if parent is None or parent.kind != "object":
        return None
    members = parent.members
    key = document.member_at(edit.pointer).key if document.member_at(edit.pointer) else None
    index = edit.index if edit.index is not None else next((i for i, m in enumerate(members) if m.key == key), None)
    if index is None or not 0 <= index < len(members):
        return None
    this = members[index]
    if index + 1 < len(members):
        following = members[index + 1].key_span
        return Span(this.key_span.line, this.key_span.column, following.line, following.column)
    if index > 0:
        previous = members[index - 1].value.span
        return Span(previous.end_line, previous.end_column, this.value.span.end_line, this.value.span.end_column)
    return Span(this.key_span.line, this.key_span.column, this.value.span.end_line, this.value.span.end_column)


# -- applying ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixedFile:
    path: Path
    display_path: str
    before: str
    after: str
    fixed: int  # findings fixed
    has_bom: bool = False

    def diff(self) -> str:
        import difflib

        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=self.display_path,
                tofile=self.display_path,
            )
        )

    def write(self) -> None:
        """Write the fixed text over the file (through a symbolic link to its target), atomically, unless the
        file changed since it was read."""
        from .atomic import write_text

        target = self.path.resolve()
        current = target.read_bytes().decode("utf-8-sig")
        if current != self.before:
            raise OSError(f"{self.display_path} changed while it was being fixed; run lyco lint --fix again")
        write_text(target, ("\ufeff" if self.has_bom else "") + self.after)


def _offsets(text: str) -> list[int]:
    """Where each line starts, as jsonpos counts lines (only \\n ends a line)."""
    starts = [0]
    index = text.find("\n")
    while index != -1:
        starts.append(index + 1)
        index = text.find("\n", index + 1)
    return starts


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    if a[0] == a[1] or b[0] == b[1]:  # an insertion conflicts with an edit around the same place
        return a[0] == b[0] or b[0] < a[0] < b[1] or a[0] < b[0] < a[1]
    return a[0] < b[1] and b[0] < a[1]


def apply_fixes(text: str, fixes: Iterable[FindingFix]) -> tuple[str, int]:
    """``text`` with every fix whose edits overlap no edit already taken (a fix is applied whole or not at all),
    and how many fixes were applied."""
    fixes = list(fixes)
    starts = _offsets(text)
    taken: list[tuple[int, int, str]] = []
    applied = 0
    colliding = _colliding_renames(fixes)
    for fix in fixes:
        if any(edit.onto_existing or edit.new_key in colliding for edit in fix.edits):
            continue  # a duplicate key would lose one of the values: the findings stay reported
        ranges = [(starts[e.line - 1] + e.column - 1, starts[e.end_line - 1] + e.end_column - 1, e.content) for e in fix.edits]
        spans = [(start, end) for start, end, _content in ranges]
        if any(_overlaps(a, (b[0], b[1])) for a in spans for b in taken):
            continue  # the next pass, once this text has changed
        if any(_overlaps(a, b) for i, a in enumerate(spans) for b in spans[i + 1 :]):
            continue  # a fix whose own edits overlap is a rule's mistake: skip it rather than corrupt the file
        taken.extend(ranges)
        applied += 1
    for start, end, content in sorted(taken, key=lambda item: item[0], reverse=True):
        text = text[:start] + content + text[end:]
    return text, applied


def _colliding_renames(fixes: list[FindingFix]) -> set[tuple[str, str]]:
    """The (object, key) pairs that renames of two different keys of one object would both write."""
    sources: dict[tuple[str, str], set[tuple[int, int]]] = {}
    for fix in fixes:
        for edit in fix.edits:
            if edit.new_key is not None:
                sources.setdefault(edit.new_key, set()).add((edit.line, edit.column))
    return {key for key, renamed in sources.items() if len(renamed) > 1}


def fixed_files(findings, documents, unsafe: bool = False) -> list[FixedFile]:
    """The files of a lint run that its applicable fixes change, with their new text."""
    by_file: dict[str, list[FindingFix]] = {}
    for finding in findings:
        fix = getattr(finding, "fix", None)
        if fix is not None and fix.applies(unsafe):
            if fix not in by_file.setdefault(finding.file, []):
                by_file[finding.file].append(fix)
    changed = []
    for document in documents:
        fixes = by_file.get(getattr(document, "display_path", None))
        if not fixes or getattr(document, "text", None) is None or document.root is None:
            continue
        after, applied = apply_fixes(document.text, fixes)
        if applied and after != document.text:
            changed.append(FixedFile(document.path, document.display_path, document.text, after, applied, document.has_bom))
    return changed


def blocked_fixes(findings, unsafe: bool) -> set[int]:
    """The ids of the findings whose fix ``apply_fixes`` would not take (it would write a duplicate key), with
    the fixes that apply at this level (``unsafe``: --unsafe-fixes) applied together; a fix that needs
    --unsafe-fixes is judged with every fix applied."""
    with_fix = [f for f in findings if getattr(f, "fix", None) is not None]

    def colliding(with_unsafe: bool) -> dict[str, set[tuple[str, str]]]:
        by_file: dict[str, list[FindingFix]] = {}
        for finding in with_fix:
            if finding.fix.applies(with_unsafe):
                by_file.setdefault(finding.file, []).append(finding.fix)
        return {file: _colliding_renames(fixes) for file, fixes in by_file.items()}

    now, with_unsafe = colliding(unsafe), colliding(True)
    blocked = set()
    for finding in with_fix:
        collisions = (now if finding.fix.applies(unsafe) else with_unsafe).get(finding.file, ())
        if any(edit.onto_existing or edit.new_key in collisions for edit in finding.fix.edits):
            blocked.add(id(finding))
    return blocked


def fixable_counts(findings, unsafe: bool) -> tuple[int, int]:
    """(findings with a fix that applies, findings with an unsafe fix that needs --unsafe-fixes)."""
    blocked = blocked_fixes(findings, unsafe)
    usable = [f for f in findings if getattr(f, "fix", None) is not None and id(f) not in blocked]
    applicable = sum(1 for f in usable if f.fix.applies(unsafe))
    return applicable, len(usable) - applicable
