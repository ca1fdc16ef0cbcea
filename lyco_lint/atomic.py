"""Atomic, durable file writes: the one helper every file lyco writes goes through.

A file is written to a temporary name in its own folder, flushed to disk (``fsync``), then renamed over
the destination, and the folder entry is flushed too. A reader never sees half a file, and after a power
cut the destination holds either the old content or the new one. ``durable=False`` skips the two fsyncs
for files that are cheap to rebuild (plots, the loss curve) where the rename alone is enough.

Standard library only: ``lyco lint --fix`` uses it on the lint path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


def fsync_file(path: PathLike) -> None:
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())


def fsync_directory(folder: PathLike) -> None:
    """Flush a folder's entries (a rename is only durable once its folder is); a no-op where folders
    cannot be opened (Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


@contextlib.contextmanager
def atomic_path(path: PathLike, *, durable: bool = True) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; on success it replaces ``path``.

    For writers that need a file name (safetensors, Pillow). The temporary file is removed when the
    block fails. An existing destination keeps its permission bits.
    """
    destination = Path(path)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_name(destination)
    try:
        yield temporary
        if destination.exists():
            shutil.copymode(destination, temporary)
        if durable:
            fsync_file(temporary)
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    if durable:
        fsync_directory(destination.parent)


def write_bytes(path: PathLike, data: bytes, *, durable: bool = True) -> None:
    with atomic_path(path, durable=durable) as temporary:
        temporary.write_bytes(data)


def write_text(path: PathLike, text: str, *, durable: bool = True) -> None:
    write_bytes(path, text.encode("utf-8"), durable=durable)


def publish_directory(temporary: PathLike, final: PathLike, *, durable: bool = True) -> None:
    """Rename a fully written folder into place (checkpoints): its files are flushed first; an existing
    ``final`` is replaced only once the new folder is complete."""
    temporary, final = Path(temporary), Path(final)
    if durable:
        for child in temporary.rglob("*"):
            if child.is_file():
                fsync_file(child)
        fsync_directory(temporary)
    if final.exists():
        stale = final.with_name(f".{final.name}.old")
        if stale.exists():
            shutil.rmtree(stale)
        os.replace(final, stale)
        os.replace(temporary, final)
        shutil.rmtree(stale)
    else:
        os.replace(temporary, final)
    if durable:
        fsync_directory(final.parent)
