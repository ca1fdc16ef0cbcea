"""Documents: a file read with positions, what kind of config it is, and the context it is linted in.

Three kinds of file are linted:

* a **LyCORIS config** (the keyword arguments of ``lycoris.create_lycoris`` plus ``apply_preset``),
  recognised by ``algo`` or ``apply_preset``, or because a training config points at it;
* a **SimpleTuner training config** (``config.json``), recognised by its training keys, with or
  without a leading ``--``;
* a **SimpleTuner dataset config** (``multidatabackend.json``), a JSON array of backend objects,
  recognised by their keys, by its name, or because a training config's ``data_backend_config``
  points at it.

A LyCORIS or dataset config reached through a training config carries a :class:`LintContext` naming
that training config and its model family, so that rules can combine the files.

Files are read with limits (configs are a few KB): at most :data:`MAX_FILE_BYTES` bytes are read and
at most :data:`MAX_VALUES` values parsed, so that any file is judged in well under a second.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Optional

from .jsonpos import JSONSyntaxError, JSONTooLarge, Member, Node, Span, parse, to_python, walk

LYCORIS = "lycoris"
TRAINING = "training"
DATASET = "dataset"
UNKNOWN = "unknown"

# SimpleTuner's configs are a few KB (a large multidatabackend.json is tens of KB): a file beyond these
# limits is not a config, and reading or parsing it whole would cost seconds and hundreds of MB.
MAX_FILE_BYTES = 256 * 1024
MAX_VALUES = 20_000

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

# Keys only SimpleTuner's dataset entries use; an array of objects using one of them is a dataset config.
DATASET_MARKERS = frozenset(
    {
        "dataset_type",
        "instance_data_dir",
        "instance_data_root",
        "caption_strategy",
        "cache_dir_vae",
        "crop_style",
        "crop_aspect",
        "resolution_type",
        "metadata_backend",
        "text_embeds",
        "aws_bucket_name",
        "csv_file",
        "conditioning_data",
    }
)
# With both "id" and "type", a backend type value marks a dataset entry as well.
BACKEND_TYPES = frozenset({"local", "aws", "csv", "huggingface", "webshart", "memory"})
DATASET_FILE_NAME = "multidatabackend"

# Keys transformers' and diffusers' save_pretrained write into a model's config.json (a text encoder's
# `model_type` would otherwise read as a training key): such a file describes a model, it is no config of ours.
MODEL_CONFIG_MARKERS = frozenset({"architectures", "transformers_version", "_class_name", "_diffusers_version"})

# Before parsing a file found by walking a folder: does its text name any key of a config lyco knows?
_MARKER_KEY = re.compile(
    r'"(?:--)?(?:%s)"\s*:' % "|".join(sorted(LYCORIS_MARKERS | TRAINING_MARKERS | DATASET_MARKERS | {"id"}))
)


def mentions_config_keys(text: str) -> bool:
    return _MARKER_KEY.search(text) is not None


def config_like_name(path: Path) -> bool:
    """Names that are configs whatever their content: a broken one is still reported from a folder walk."""
    name = path.name.lower()
    return name == "config.json" or "lycoris" in name or DATASET_FILE_NAME in name


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
    ``trained_as_built``: that model is the one that trains (``lyco train`` trains diffusers' classes, where
    SimpleTuner may train its own copy of them), so its class findings are certain.
    """

    family: Optional[str] = None
    training: Optional["Document"] = None
    model: Any = None  # a lyco_lint.meta_model.analysis.Analysis of the real model, with `--model`
    trained_as_built: bool = False


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
    unreadable: Optional[str] = None  # why the file could not be read at all (LYC006)
    too_large: Optional[str] = None  # why it was not parsed: beyond MAX_FILE_BYTES or MAX_VALUES (LYC005)
    skipped: bool = False  # found by a folder walk and not a config by its text: never parsed
    has_bom: bool = False  # the file starts with a UTF-8 byte order mark (kept when fixes are written)

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def read(cls, path: Path, display_path: str, *, sniff: bool = False) -> "Document":
        """Read ``path`` within the size limit. ``sniff``: a file found by walking a folder is only parsed when
        its text names a config key (or its name is a config's), so unrelated JSON costs a regex search."""
        document = cls(path, display_path, "")
        try:
            info = os.stat(path)
            if not stat.S_ISREG(info.st_mode):
                document.unreadable = _not_a_file(info.st_mode)
                return document
            with open(path, "rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
        except OSError as error:
            document.unreadable = _os_error_text(path, error)
            return document
        if len(raw) > MAX_FILE_BYTES:
            document.too_large = (
                f"the file is {_size_text(max(info.st_size, len(raw)))}, more than lyco reads "
                f"({MAX_FILE_BYTES // 1024} KiB; SimpleTuner and LyCORIS configs are a few KB)"
            )
            document.skipped = sniff and not config_like_name(path)
            return document
        document.has_bom = raw.startswith(b"\xef\xbb\xbf")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            document.syntax_error = JSONSyntaxError(
                f"the file is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start})", 1, 1
            )
            return document
        if sniff and not config_like_name(path) and not mentions_config_keys(text):
            document.text, document.skipped = text, True
            return document
        parsed = cls.from_text(path, display_path, text)
        parsed.has_bom = document.has_bom
        # a model's config.json inside a pipeline folder: skipped like any other unrelated JSON in a walk
        parsed.skipped = sniff and parsed.is_model_config
        return parsed

    @classmethod
    def from_text(cls, path: Path, display_path: str, text: str) -> "Document":
        document = cls(path, display_path, text)
        try:
            document.root = parse(text, max_values=MAX_VALUES)
        except JSONSyntaxError as error:
            document.syntax_error = error
        except JSONTooLarge as error:
            document.too_large = (
                f"the file holds {error}, more than lyco checks ({MAX_VALUES:,}; SimpleTuner and LyCORIS configs "
                "hold a few hundred)"
            )
        return document

    # -- what it is ------------------------------------------------------------------------
    @property
    def is_object(self) -> bool:
        return self.root is not None and self.root.kind == "object"

    @property
    def is_model_config(self) -> bool:
        """A transformers or diffusers model config (``architectures``, ``_class_name``, ...), not a training config."""
        return self.is_object and any(member.key in MODEL_CONFIG_MARKERS for member in self.root.members)

    @property
    def kind(self) -> str:
        return self.forced_kind or self._content_kind

    @cached_property
    def _content_kind(self) -> str:
        """The kind the file's content (or its name) says: computed once, rules ask for it often."""
        if self.root is None:
            return UNKNOWN
        if self.root.kind == "array":
            return DATASET if _is_dataset_array(self.root) or DATASET_FILE_NAME in self.path.name.lower() else UNKNOWN
        if not self.is_object:
            return DATASET if DATASET_FILE_NAME in self.path.name.lower() else UNKNOWN
        if self.is_model_config:
            return UNKNOWN
        keys = {option_name(member.key) for member in self.root.members}
        if keys & TRAINING_MARKERS:
            return TRAINING
        if keys & LYCORIS_MARKERS:
            return LYCORIS
        if DATASET_FILE_NAME in self.path.name.lower():
            return DATASET
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

    def nodes(self):
        """Every (pointer, node, member) of the document, from the index ``locate`` builds anyway."""
        return ((pointer, node, member) for pointer, (node, member) in self._index.items())

    def node_at(self, pointer: str) -> Optional[Node]:
        entry = self._index.get(pointer)
        return entry[0] if entry else None

    def member_at(self, pointer: str) -> Optional[Member]:
        """The object member at ``pointer`` (None for the root and array items)."""
        entry = self._index.get(pointer)
        return entry[1] if entry else None

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


# -- helpers ---------------------------------------------------------------------------------


def _is_dataset_array(root: Node) -> bool:
    """A JSON array of objects of which one at least uses a dataset key (or ``id`` with a backend ``type``)."""
    if not root.items or any(item.kind != "object" for item in root.items):
        return False
    for item in root.items:
        keys = {member.key for member in item.members}
        if keys & DATASET_MARKERS:
            return True
        backend = item.get("type")
        if "id" in keys and backend is not None and backend.kind == "string" and backend.value in BACKEND_TYPES:
            return True
    return False


def _size_text(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 1024:.0f} KiB"


def _not_a_file(mode: int) -> str:
    what = (
        "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
        else "a character device (such as /dev/null)" if stat.S_ISCHR(mode)
        else "a block device" if stat.S_ISBLK(mode)
        else "a socket" if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    return f"it is {what}, not a file: lyco reads only regular files (reading a pipe or device could block or never end)"


def _os_error_text(path: Path, error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "it is a symbolic link loop (too many levels of symbolic links): fix or remove the link"
    if error.errno == errno.ENOENT and os.path.islink(path):
        return f"it is a symbolic link to '{os.readlink(path)}', which does not exist: fix or remove the link"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied: lyco may not read it; check the file's permissions"
    return f"it cannot be read: {error.strerror or error}"
