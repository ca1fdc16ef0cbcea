"""Documents: a file read with positions, what kind of config it is, and the context it is linted in.

Two kinds of file are linted:

* a **LyCORIS config** (the keyword arguments of ``lycoris.create_lycoris`` plus ``apply_preset``),
  recognised by ``algo`` or ``apply_preset``, or because a training config points at it;
* a **SimpleTuner training config** (``config.json``), recognised by its training keys, with or
  without a leading ``--``.

A LyCORIS config reached through a training config carries a :class:`LintContext` naming that
training config and its model family, so that rules can combine the two files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Optional

from .jsonpos import JSONSyntaxError, Member, Node, Span, parse, to_python, walk

LYCORIS = "lycoris"
TRAINING = "training"
UNKNOWN = "unknown"

# `algo` or `apply_preset` make a LyCORIS config; the other required keys count too, so that a config
# missing its `algo` is still linted (and told so) instead of being skipped as an unrelated file.
LYCORIS_MARKERS = frozenset({"algo", "apply_preset", "linear_dim", "linear_alpha", "multiplier"})
TRAINING_MARKERS = frozenset(
    {
        "model_type",
        "model_family",
        "model_flavour",
        "lora_type",
        "lycoris_config",
        "pretrained_model_name_or_path",
        "output_dir",
        "data_backend_config",
        "optimizer",
        "learning_rate",
        "train_batch_size",
        "max_train_steps",
    }
)

def option_name(key: str) -> str:
    """A training config key as SimpleTuner reads it: without the leading ``--``."""
    return key[2:] if key.startswith("--") else key


@dataclass
class LintContext:
    """What a LyCORIS config is linted against.

    ``family`` is the model family (from ``--family`` or the training config's ``model_family``),
    lower-cased as SimpleTuner does. ``training`` is the training config that pointed at this file,
    when there is one: rules read its attention, precision and validation settings from it.
    ``model`` is the analysis of the real model (built on the meta device) when ``--model`` is given.
    """

    family: Optional[str] = None
    training: Optional["Document"] = None
    model: Any = None  # a lyco_lint.meta_model.analysis.Analysis of the real model, with `--model`


@dataclass
class Document:
    path: Path
    display_path: str
    text: str
    root: Optional[Node] = None
    syntax_error: Optional[JSONSyntaxError] = None
    context: LintContext = field(default_factory=LintContext)
    forced_kind: Optional[str] = None  # set when a training config points at this file
    # findings the engine itself makes about this file (the model could not be analysed, ...): (Rule, Hit)
    engine_hits: list = field(default_factory=list)
    derived: dict[str, Any] = field(default_factory=dict, repr=False)  # see derive()

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def read(cls, path: Path, display_path: str) -> "Document":
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            document = cls(path, display_path, "")
            document.syntax_error = JSONSyntaxError(
                f"the file is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start})", 1, 1
            )
            return document
        return cls.from_text(path, display_path, text)

    @classmethod
    def from_text(cls, path: Path, display_path: str, text: str) -> "Document":
        document = cls(path, display_path, text)
        try:
            document.root = parse(text)
        except JSONSyntaxError as error:
            document.syntax_error = error
        return document

    # -- what it is ------------------------------------------------------------------------
    @property
    def is_object(self) -> bool:
        return self.root is not None and self.root.kind == "object"

    @property
    def kind(self) -> str:
        if self.forced_kind:
            return self.forced_kind
        if not self.is_object:
            return UNKNOWN
        keys = {option_name(member.key) for member in self.root.members}
        if keys & TRAINING_MARKERS:
            return TRAINING
        if keys & LYCORIS_MARKERS:
            return LYCORIS
        return UNKNOWN

    @cached_property
    def value(self) -> Any:
        """The document as ``json.loads`` returns it."""
        return to_python(self.root) if self.root is not None else None

    def derive(self, name: str, compute: Callable[["Document"], Any]) -> Any:
        """``compute(self)``, computed once per document: the views other modules build on a document
        (the training settings, the schema problems) without this module knowing them."""
        if name not in self.derived:
            self.derived[name] = compute(self)
        return self.derived[name]

    # -- positions -------------------------------------------------------------------------
    @cached_property
    def _index(self) -> dict[str, tuple[Node, Optional[Member]]]:
        if self.root is None:
            return {}
        return {pointer: (node, member) for pointer, node, member in walk(self.root)}

    def locate(self, pointer: str, at: str = "value") -> Span:
        """The span of the key or value at ``pointer``; the nearest existing parent otherwise."""
        while True:
            entry = self._index.get(pointer)
            if entry is not None:
                node, member = entry
                if at == "key" and member is not None:
                    return member.key_span
                if node.kind in ("object", "array") and pointer != "" and member is not None and at != "whole":
                    # point at the key of a container value rather than its whole body
                    return member.key_span
                if node.kind in ("object", "array"):
                    # the opening bracket
                    return Span(node.span.line, node.span.column, node.span.line, node.span.column + 1)
                return node.span
            if not pointer:
                return Span(1, 1, 1, 1)
            pointer = pointer.rsplit("/", 1)[0]
            at = "key"
