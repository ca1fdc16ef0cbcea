"""A JSON parser that remembers where every key and value starts and ends.

The standard library parser throws positions away, and the linter needs them for every
finding (line and column of a key or a value, plus its end). This parser reads the same
language as ``json.loads`` (including ``NaN``/``Infinity``, which Python's json module and so
LyCORIS and SimpleTuner accept), keeps duplicate keys as separate members (so that they can be
reported) and raises :class:`JSONSyntaxError` with a 1-based line/column and a message that says
what a person would look for (a trailing comma, a comment, a single-quoted string, ...).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Union

__all__ = [
    "Span",
    "Node",
    "Member",
    "JSONSyntaxError",
    "JSONTooLarge",
    "parse",
    "to_python",
    "escape_pointer",
    "unescape_pointer",
    "join_pointer",
]


@dataclass(frozen=True)
class Span:
    """A region of the source: 1-based line and column of its start and of its end (exclusive)."""

    line: int
    column: int
    end_line: int
    end_column: int


@dataclass
class Member:
    """One ``"key": value`` pair of an object."""

    key: str
    key_span: Span
    value: "Node"


@dataclass
class Node:
    """A parsed JSON value. ``kind`` is object, array, string, number, boolean or null."""

    kind: str
    span: Span
    value: Any = None  # scalars only
    members: list[Member] = field(default_factory=list)  # objects only
    items: list["Node"] = field(default_factory=list)  # arrays only
    # numbers only: the literal as written when the value is not what it says (1e999 overflows to infinity;
    # an integer longer than Python's int/str conversion limit, which json.loads refuses, reads as infinity)
    literal: Union[str, None] = None

    def get(self, key: str) -> Union["Node", None]:
        """The value of the last member named ``key`` (json.loads keeps the last one)."""
        found = None
        for member in self.members:
            if member.key == key:
                found = member.value
        return found

    def member(self, key: str) -> Union[Member, None]:
        found = None
        for member in self.members:
            if member.key == key:
                found = member
        return found


class JSONSyntaxError(ValueError):
    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{message} (line {line}, column {column})")
        self.message = message
        self.line = line
        self.column = column


class JSONTooLarge(ValueError):
    """The text holds more values than the caller allows (configs hold a few hundred)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit:,} values")
        self.limit = limit


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")
_STRING_CHUNK = re.compile(r'[^"\\\x00-\x1f]*')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_CONSTANTS = {
    "true": ("boolean", True),
    "false": ("boolean", False),
    "null": ("null", None),
    "NaN": ("number", float("nan")),
    "Infinity": ("number", float("inf")),
    "-Infinity": ("number", float("-inf")),
}
_MAX_DEPTH = 200  # two stack frames per level; configs never come close
_INFINITY = float("inf")
# CPython refuses int(str) beyond this many digits (sys.get_int_max_str_digits(), 4300 by default); so does
# json.loads, which is how LyCORIS and SimpleTuner read configs
_MAX_INT_DIGITS = getattr(sys, "get_int_max_str_digits", lambda: 4300)() or 4300


class _Parser:
    def __init__(self, text: str, max_values: Optional[int] = None) -> None:
        self.text = text
        self.pos = 0
        self.values_left = max_values if max_values is not None else -1
        self.max_values = max_values
        # offsets where each line starts, to turn an offset into line/column quickly
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    # -- positions -----------------------------------------------------------------------
    def line_col(self, offset: int) -> tuple[int, int]:
        lo, hi = 0, len(self.line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1, offset - self.line_starts[lo] + 1

    def span(self, start: int, end: int) -> Span:
        line, column = self.line_col(start)
        end_line, end_column = self.line_col(end)
        return Span(line, column, end_line, end_column)

    def fail(self, message: str, offset: int | None = None) -> JSONSyntaxError:
        offset = self.pos if offset is None else offset
        if offset >= len(self.text):
            # at the end of the file: point just after the last thing written, not at a line
            # past the final newline that editors and code frames do not show
            offset = len(self.text.rstrip())
        line, column = self.line_col(offset)
        return JSONSyntaxError(message, line, column)

    # -- grammar -------------------------------------------------------------------------
    def skip_whitespace(self) -> None:
        self.pos = _WHITESPACE.match(self.text, self.pos).end()
        if self.text.startswith(("//", "/*"), self.pos):
            raise self.fail("comments are not allowed in JSON; delete the comment")
        if self.text.startswith("#", self.pos):
            raise self.fail("'#' comments are not allowed in JSON; delete the comment")

    def parse_document(self) -> Node:
        if self.text.startswith("\ufeff"):
            self.pos = 1
        self.skip_whitespace()
        if self.pos >= len(self.text):
            raise self.fail("the file is empty; expected a JSON object")
        node = self.parse_value(0)
        self.skip_whitespace()
        if self.pos < len(self.text):
            raise self.fail("extra data after the JSON value; a file holds exactly one value")
        return node

    def parse_value(self, depth: int) -> Node:
        if depth > _MAX_DEPTH:
            raise self.fail(f"nesting deeper than {_MAX_DEPTH} levels")
        self.values_left -= 1
        if self.values_left == -1 and self.max_values is not None:
            raise JSONTooLarge(self.max_values)
        text, pos = self.text, self.pos
        char = text[pos : pos + 1]
        if char == "{":
            return self.parse_object(depth)
        if char == "[":
            return self.parse_array(depth)
        if char == '"':
            start = pos
            value = self.parse_string()
            return Node("string", self.span(start, self.pos), value)
        for word, (kind, value) in _CONSTANTS.items():
            if text.startswith(word, pos):
                self.pos = pos + len(word)
                return Node(kind, self.span(pos, self.pos), value)
        match = _NUMBER.match(text, pos)
        if match and match.end() > pos:
            self.pos = match.end()
            literal = match.group()
            span = self.span(pos, self.pos)
            if match.group(1) or match.group(2):
                value: Any = float(literal)
                if value in (_INFINITY, -_INFINITY):
                    return Node("number", span, value, literal=literal)
                return Node("number", span, value)
            if len(literal) - (literal[0] == "-") > _MAX_INT_DIGITS:
                # json.loads raises ValueError here (CPython's int/str conversion limit); lint reads it as the
                # infinity it practically is and reports it (LYC017) instead of crashing on it
                return Node("number", span, -_INFINITY if literal[0] == "-" else _INFINITY, literal=literal)
            return Node("number", span, int(literal))
        if char == "'":
            raise self.fail("strings must use double quotes (\"...\"), not single quotes")
        if char in ("}", "]"):
            raise self.fail(f"expected a value before '{char}'")
        if not char:
            raise self.fail("unexpected end of file: a value is missing")
        word = re.match(r"[A-Za-z_]\w*", text[pos:])
        if word:
            lowered = word.group().lower()
            hint = {"true": "true", "false": "false", "none": "null", "null": "null"}.get(lowered)
            if hint:
                raise self.fail(f"'{word.group()}' is not JSON; write {hint}")
            raise self.fail(f"'{word.group()}' is not a JSON value; strings need double quotes")
        raise self.fail(f"unexpected character {char!r}; expected a JSON value")

    def parse_object(self, depth: int) -> Node:
        start = self.pos
        self.pos += 1
        members: list[Member] = []
        self.skip_whitespace()
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return Node("object", self.span(start, self.pos), members=members)
        while True:
            self.skip_whitespace()
            key_start = self.pos
            char = self.text[self.pos : self.pos + 1]
            if char != '"':
                if char == "}" and members:
                    raise self.fail("trailing comma before '}'; delete the last ','", self.last_comma)
                if char == "'":
                    raise self.fail("keys must use double quotes (\"...\"), not single quotes")
                if not char:
                    raise self.fail("unexpected end of file inside an object: '}' is missing")
                raise self.fail("expected a key in double quotes")
            key = self.parse_string()
            key_span = self.span(key_start, self.pos)
            self.skip_whitespace()
            if not self.text.startswith(":", self.pos):
                raise self.fail(f"expected ':' after the key \"{key}\"")
            self.pos += 1
            self.skip_whitespace()
            value = self.parse_value(depth + 1)
            members.append(Member(key, key_span, value))
            self.skip_whitespace()
            char = self.text[self.pos : self.pos + 1]
            if char == ",":
                self.last_comma = self.pos
                self.pos += 1
                continue
            if char == "}":
                self.pos += 1
                return Node("object", self.span(start, self.pos), members=members)
            if not char:
                raise self.fail("unexpected end of file inside an object: '}' is missing")
            raise self.fail("expected ',' or '}' after a value (is a comma missing?)")

    def parse_array(self, depth: int) -> Node:
        start = self.pos
        self.pos += 1
        items: list[Node] = []
        self.skip_whitespace()
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return Node("array", self.span(start, self.pos), items=items)
        while True:
            self.skip_whitespace()
            if self.text.startswith("]", self.pos) and items:
                raise self.fail("trailing comma before ']'; delete the last ','", self.last_comma)
            items.append(self.parse_value(depth + 1))
            self.skip_whitespace()
            char = self.text[self.pos : self.pos + 1]
            if char == ",":
                self.last_comma = self.pos
                self.pos += 1
                continue
            if char == "]":
                self.pos += 1
                return Node("array", self.span(start, self.pos), items=items)
            if not char:
                raise self.fail("unexpected end of file inside an array: ']' is missing")
            raise self.fail("expected ',' or ']' after a value (is a comma missing?)")

    def parse_string(self) -> str:
        text = self.text
        self.pos += 1  # opening quote
        chunks: list[str] = []
        while True:
            match = _STRING_CHUNK.match(text, self.pos)
            chunks.append(match.group())
            self.pos = match.end()
            char = text[self.pos : self.pos + 1]
            if char == '"':
                self.pos += 1
                return "".join(chunks)
            if char == "\\":
                escape = text[self.pos + 1 : self.pos + 2]
                if escape in _ESCAPES:
                    chunks.append(_ESCAPES[escape])
                    self.pos += 2
                elif escape == "u":
                    chunks.append(self.parse_unicode_escape())
                else:
                    raise self.fail(f"invalid escape '\\{escape}' in a string (write '\\\\' for a backslash)")
            elif not char:
                raise self.fail("unterminated string: the closing '\"' is missing")
            else:
                raise self.fail("control character inside a string (a raw line break? write '\\n')")

    def parse_unicode_escape(self) -> str:
        digits = self.text[self.pos + 2 : self.pos + 6]
        if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
            raise self.fail("invalid \\u escape: expected four hex digits")
        self.pos += 6
        code = int(digits, 16)
        if 0xD800 <= code <= 0xDBFF and self.text.startswith("\\u", self.pos):
            low_digits = self.text[self.pos + 2 : self.pos + 6]
            if re.fullmatch(r"[0-9a-fA-F]{4}", low_digits) and 0xDC00 <= int(low_digits, 16) <= 0xDFFF:
                self.pos += 6
                return chr(0x10000 + ((code - 0xD800) << 10) + (int(low_digits, 16) - 0xDC00))
        return chr(code)

    last_comma = 0


def parse(text: str, max_values: Optional[int] = None) -> Node:
    """Parse ``text`` into a :class:`Node` tree; raise :class:`JSONSyntaxError` on bad input and
    :class:`JSONTooLarge` when it holds more than ``max_values`` values."""
    return _Parser(text, max_values).parse_document()


def to_python(node: Node) -> Any:
    """The plain value ``json.loads`` would return (the last of duplicate keys wins)."""
    if node.kind == "object":
        return {member.key: to_python(member.value) for member in node.members}
    if node.kind == "array":
        return [to_python(item) for item in node.items]
    return node.value


def escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def unescape_pointer(token: str) -> str:
    """A JSON pointer token as the key it names (``a~1b`` → ``a/b``)."""
    return token.replace("~1", "/").replace("~0", "~")


def join_pointer(pointer: str, *tokens: Union[str, int]) -> str:
    for token in tokens:
        pointer += "/" + escape_pointer(str(token))
    return pointer


def walk(node: Node, pointer: str = "") -> Iterator[tuple[str, Node, Union[Member, None]]]:
    """Every node below ``node`` (itself included) with its JSON pointer and, for object
    members, the member (so the key's span is at hand)."""
    stack: list[tuple[str, Node, Union[Member, None]]] = [(pointer, node, None)]
    while stack:
        current_pointer, current, member = stack.pop()
        yield current_pointer, current, member
        if current.kind == "object":
            for child in reversed(current.members):
                stack.append((join_pointer(current_pointer, child.key), child.value, child))
        elif current.kind == "array":
            for index in range(len(current.items) - 1, -1, -1):
                stack.append((join_pointer(current_pointer, index), current.items[index], None))
