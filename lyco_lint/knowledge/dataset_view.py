"""A dataset config (``multidatabackend.json``) as SimpleTuner reads it: its entries with the dataset type and
storage type SimpleTuner gives them, whether they are enabled, the value SimpleTuner uses for a key (the entry's,
else the training option it falls back to, else its default), and paths with SimpleTuner's placeholders filled.

The LYC5xx rules read a dataset config through this view; the facts are :mod:`.datasets`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Optional

from ..documents import Document
from ..jsonpos import join_pointer
from . import datasets as ds
from . import simpletuner as st
from .training_view import effective

# -- the entries, as SimpleTuner sees them --------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    index: int
    value: dict[str, Any]
    dataset_type: str  # as SimpleTuner resolves it (lower-cased; conditioning when conditioning_type is set)
    backend: Optional[str]  # the storage `type` when it is one SimpleTuner knows

    @property
    def pointer(self) -> str:
        return join_pointer("", self.index)

    def at(self, *keys: Any) -> str:
        return join_pointer("", self.index, *keys)

    @property
    def enabled(self) -> bool:
        return not ds.is_disabled(self.value)

    @property
    def ident(self) -> Any:
        return self.value.get("id")

    @property
    def label(self) -> str:
        ident = self.ident
        return f"dataset '{ident}'" if isinstance(ident, str) and ident.strip() else f"entry {self.index}"

    @property
    def primary(self) -> bool:
        return self.dataset_type in ds.primary_dataset_types()

    @property
    def known_type(self) -> bool:
        return self.dataset_type in ds.dataset_types()


def entries(document: Document) -> list[Entry]:
    """The object entries of the dataset config, in order (computed once per document)."""
    return document.derive("dataset_entries", _read_entries)


def _read_entries(document: Document) -> list[Entry]:
    value = document.value
    if not isinstance(value, list):
        return []
    found = []
    for index, item in enumerate(value):
        if isinstance(item, dict):
            backend = item.get("type")
            backend = backend if isinstance(backend, str) and backend in ds.backend_types() else None
            found.append(Entry(index, item, ds.entry_dataset_type(item), backend))
    return found


def enabled(document: Document) -> list[Entry]:
    return [entry for entry in entries(document) if entry.enabled]


def global_option(document: Document, name: str) -> Any:
    """A training option a dataset key falls back to: the paired training config's value, else SimpleTuner's
    default."""
    training = document.context.training
    if training is not None:
        setting = effective(training, name)
        if setting is not None:
            return setting.value
    return (st.option(name) or {}).get("default")


def setting(document: Document, entry: Entry, key: str) -> Any:
    """The value SimpleTuner uses for ``key``: the entry's, else the training option it falls back to, else the
    key's default."""
    if key in entry.value:
        return entry.value[key]
    spec = ds.dataset_key(key)
    if spec is not None and spec.default_from and spec.default_from.startswith("--"):
        option = spec.default_from[2:].split(" ")[0].rstrip(",")
        if st.option(option) is not None:
            return global_option(document, option)
    return ds.default(key)


def shown(value: Any) -> str:
    """A value as JSON, shortened for a message."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def listing(names, limit: int = 8) -> str:
    names = list(names)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def substitute(document: Document, entry: Entry, text: str) -> Optional[str]:
    """A path with SimpleTuner's placeholders filled ({model_family}, {output_dir}, {id}, {env:VAR}); None when one
    cannot be known here."""
    known = {"id": entry.ident if isinstance(entry.ident, str) else None}
    training = document.context.training
    if training is not None:
        for name in ("model_family", "output_dir"):
            found = effective(training, name)
            known[name] = found.text if found is not None else None
    unknown = False

    def fill(match: re.Match) -> str:
        nonlocal unknown
        token = match.group(1)
        if token.startswith("env:"):
            return os.environ.get(token[4:], "")
        if token in ("id", "model_family", "output_dir"):
            if known.get(token) is None:
                unknown = True
                return match.group()
            return known[token]
        return match.group()  # unknown tokens are kept as written, as SimpleTuner does

    filled = _PLACEHOLDER.sub(fill, text)
    return None if unknown else filled

