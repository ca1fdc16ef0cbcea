"""Cached latents and prompt embeddings, read ahead of the step and kept in memory.

* **Kept.** Every cache file read is kept in memory (least recently used first out) up to a budget, a quarter
  of the machine's memory by default: the caches of a dataset that fits are read once per run, so once per
  epoch at most whatever the repeats and caption dropout do; a larger one reads a file again only after it
  was pushed out.
* **Read ahead.** While a step computes, one background thread reads the files of the next step's
  micro-batches (the ones the followed :class:`~.data.BatchStream` gives next: their latents, and the prompt
  embeddings each sample may draw, its captions and the empty prompt of caption dropout), so the step never
  waits on the disk. (On CUDA the step puts its batch in pinned memory and copies it with
  ``non_blocking=True``: ``loop.to_device``.)

Reads count per file (:attr:`Reader.reads`), which the tests check.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import Future
from pathlib import Path
from typing import Optional

MEMORY_SHARE = 0.25  # of the machine's physical memory, for the kept files
DEFAULT_BUDGET = 8 * 2**30  # when the machine's memory cannot be read


def default_budget() -> int:
    """This process's share: every process on the machine keeps its own copies (each reads the whole global
    micro-batch), so the quarter of the machine's memory is split between the processes it runs
    (``LOCAL_WORLD_SIZE``, set by accelerate launch and torchrun)."""
    try:
        processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        processes = 1
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * MEMORY_SHARE) // processes
    except (ValueError, OSError, AttributeError):
        return DEFAULT_BUDGET // processes


class Reader:
    """Reads cache files (safetensors: a dict of tensors) for the steps, ahead of them when it follows a stream."""

    def __init__(self, plan, dropout: float, *, budget: Optional[int] = None, steps_ahead: int = 1):
        self.plan, self.dropout = plan, dropout
        self.budget = default_budget() if budget is None else budget
        self.steps_ahead = steps_ahead
        self.kept: OrderedDict[Path, dict] = OrderedDict()
        self.kept_bytes = 0
        self.pending: dict[Path, Future] = {}
        self.reads: dict[Path, int] = {}
        self.lock = threading.Lock()
        self.stream = None
        self.accumulation = 1

    # -- what the step reads -------------------------------------------------------------------------

    def tensors(self, path: Path) -> dict:
        """The file's tensors: kept, being read ahead (waited for), or read now."""
        with self.lock:
            if path in self.kept:
                self.kept.move_to_end(path)
                return self.kept[path]
            future = self.pending.get(path)
        if future is not None:
            return future.result()
        return self._read(path)

    def _read(self, path: Path) -> dict:
        from .caching import read_tensors

        with self.lock:
            if path in self.kept:  # read meanwhile by the other thread
                return self.kept[path]
        tensors = read_tensors(path)
        size = sum(tensor.numel() * tensor.element_size() for tensor in tensors.values())
        with self.lock:
            self.reads[path] = self.reads.get(path, 0) + 1
            self.pending.pop(path, None)
            if size <= self.budget:
                self.kept[path] = tensors
                self.kept_bytes += size
                while self.kept_bytes > self.budget:
                    _old, dropped = self.kept.popitem(last=False)
                    self.kept_bytes -= sum(tensor.numel() * tensor.element_size() for tensor in dropped.values())
        return tensors

    # -- reading ahead -------------------------------------------------------------------------------

    def follow(self, stream, accumulation: int = 1) -> None:
        """Read ahead of ``stream`` (the loop's BatchStream): ``accumulation`` micro-batches per step."""
        self.stream, self.accumulation = stream, accumulation
        self.read_ahead()

    def upcoming(self) -> list[list[int]]:
        """The micro-batches the followed stream gives next (a copy of it at its position; it is not moved)."""
        if self.stream is None:
            return []
        from .data import BatchStream

        stream = self.stream
        ahead = BatchStream(stream.plan, stream.seed, stream.batch_size, stream.epoch, stream.batch_in_epoch)
        return [ahead.next() for _ in range(self.accumulation * self.steps_ahead)]

    def files_of(self, indices: list[int]) -> list[Path]:
        """The cache files a micro-batch may read: latents, and every prompt each sample may draw."""
        files: list[Path] = []
        for index in indices:
            sample = self.plan.samples[index]
            files.append(sample.latent_file)
            files += [self.plan.prompt_files[caption] for caption in sample.captions]
            if self.dropout > 0:
                files.append(self.plan.prompt_files[""])
        return list(dict.fromkeys(files))

    def read_ahead(self) -> None:
        """Start reading the next step's files in the background (those not kept or already on their way): one
        short-lived thread per step, gone when its files are read."""
        if self.stream is None:
            return
        paths = []
        with self.lock:
            for indices in self.upcoming():
                for path in self.files_of(indices):
                    if path not in self.kept and path not in self.pending:
                        self.pending[path] = Future()
                        paths.append(path)
        if paths:
            threading.Thread(target=self._fill, args=(paths,), name="lyco-read-ahead", daemon=True).start()

    def _fill(self, paths: list[Path]) -> None:
        for path in paths:
            future = self.pending.get(path)
            try:
                tensors = self._read(path)
            except BaseException as error:  # noqa: BLE001 - the step that needs the file raises it
                with self.lock:
                    self.pending.pop(path, None)
                if future is not None:
                    future.set_exception(error)
                continue
            if future is not None:
                future.set_result(tensors)
