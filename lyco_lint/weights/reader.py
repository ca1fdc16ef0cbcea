"""The safetensors format, read with the standard library: the header (validated the way the safetensors
library validates it, with a message that says what is wrong and what to do) and single tensors' bytes from a
memory map, so that a check touches only the tensors it needs and the operating system reads only those pages.

Layout (safetensors' own format description): 8 bytes little-endian header length N, N bytes of UTF-8 JSON
(``{"__metadata__": {str: str}, KEY: {"dtype", "shape", "data_offsets": [begin, end]}}``), then the tensor
data; offsets are relative to the end of the header, cover the data without gaps or overlaps, and each
tensor's byte length equals its element count times its dtype's size.
"""

from __future__ import annotations

import json
import math
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

# Bits per element of every dtype safetensors 0.8 knows (F4/F6 are packed sub-byte formats).
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E5M2", "F8_E4M3"})
# safetensors refuses headers above 100 MB (HeaderTooLarge); so does ComfyUI.
MAX_HEADER_BYTES = 100_000_000

_STRUCT = {"F64": "<d", "F32": "<f", "F16": "<e", "I64": "<q", "I32": "<i", "I16": "<h", "I8": "<b", "U8": "<B", "U16": "<H", "U32": "<I", "U64": "<Q"}


class WeightsError(Exception):
    """The file is not a readable safetensors file; ``key`` names the tensor at fault, when one is."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class TensorInfo:
    key: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # byte offsets relative to the start of the data section
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass
class Header:
    path: Path
    file_size: int
    data_start: int  # 8 + header length
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]


def _looks_like(raw: bytes) -> str:
    """What a file that is not safetensors probably is, for the message."""
    if raw.startswith(b"PK\x03\x04"):
        return " (it is a zip archive: a PyTorch checkpoint saved with torch.save, .pt/.ckpt/.bin?)"
    if raw[:1] == b"\x80" and raw[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return " (it is a Python pickle: a PyTorch checkpoint saved with torch.save?)"
    if raw.startswith(b"version https://git-lfs"):
        return " (it is a Git LFS pointer: run `git lfs pull` to fetch the real file)"
    if raw.lstrip()[:1] in (b"{", b"<"):
        return " (it is a text file: JSON or HTML, an error page saved instead of the download?)"
    return ""


def read_header(path: Path) -> Header:
    """The validated header of the safetensors file at ``path``; :class:`WeightsError` when it is not one."""
    file_size = path.stat().st_size
    with open(path, "rb") as handle:
        start = handle.read(8)
        peek = handle.read(1)
        hint = _looks_like(start + peek + handle.read(63)) if peek != b"{" else ""
        if len(start) < 8 and not hint:
            raise WeightsError(
                f"the file is {file_size} bytes long; a safetensors file starts with an 8-byte header length "
                "(an empty file, or an interrupted download or copy: fetch it again)"
            )
        if hint or (peek and peek != b"{"):
            raise WeightsError(f"not a safetensors file: its header does not start with a JSON object{hint}")
        (length,) = struct.unpack("<Q", start)
        if length > MAX_HEADER_BYTES:
            raise WeightsError(
                f"not a safetensors file: its first 8 bytes give a header of {length:,} bytes, above safetensors' "
                f"limit of {MAX_HEADER_BYTES:,}"
            )
        if 8 + length > file_size:
            raise WeightsError(
                f"the header is cut off: it declares {length:,} bytes but the file ends {file_size - 8:,} bytes after "
                "the length field (a truncated file: an interrupted download or copy; fetch it again)"
            )
        handle.seek(8)
        raw = handle.read(length)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise WeightsError(
            f"not a safetensors file: the header is not UTF-8 (byte 0x{raw[error.start]:02x} at offset {8 + error.start})"
        ) from None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise WeightsError(f"not a safetensors file: the header is not JSON ({error.msg} at header byte {error.pos})") from None
    if not isinstance(parsed, dict):
        raise WeightsError("not a safetensors file: the header is JSON but not an object of tensors")
    metadata = parsed.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise WeightsError("the header's __metadata__ must map strings to strings (safetensors refuses anything else)")
    tensors = {key: _tensor_info(key, entry) for key, entry in parsed.items()}
    header = Header(path, file_size, 8 + length, tensors, metadata)
    _check_layout(header)
    return header


def _tensor_info(key: str, entry) -> TensorInfo:
    if not isinstance(entry, dict):
        raise WeightsError(f"tensor '{key}': its header entry is not an object", key)
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_BITS:
        raise WeightsError(f"tensor '{key}': unknown dtype {dtype!r} (safetensors knows {', '.join(DTYPE_BITS)})", key)
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise WeightsError(f"tensor '{key}': shape {shape!r} is not a list of non-negative integers", key)
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in offsets)
        or offsets[0] > offsets[1]
    ):
        raise WeightsError(f"tensor '{key}': data_offsets {offsets!r} is not [begin, end] with begin <= end", key)
    info = TensorInfo(key, dtype, tuple(shape), offsets[0], offsets[1])
    bits = info.numel * DTYPE_BITS[dtype]
    if bits % 8 or bits // 8 != info.nbytes:
        raise WeightsError(
            f"tensor '{key}': {dtype} {list(shape)} needs {bits / 8:g} bytes but its offsets span {info.nbytes:,}", key
        )
    return info


def _check_layout(header: Header) -> None:
    """Offsets cover the data section in order, without gaps or overlaps, and the file holds all of it."""
    position = 0
    for info in sorted(header.tensors.values(), key=lambda t: (t.begin, t.end)):
        if info.begin != position:
            what = "overlaps the tensor before it" if info.begin < position else f"leaves a gap of {info.begin - position:,} bytes"
            raise WeightsError(f"tensor '{info.key}' {what}: the header's offsets are corrupt", info.key)
        position = info.end
    available = header.file_size - header.data_start
    if position > available:
        cut = next(t for t in sorted(header.tensors.values(), key=lambda t: t.end) if t.end > available)
        raise WeightsError(
            f"the file is truncated: the header needs {position:,} bytes of tensor data but only {available:,} follow it, "
            f"so '{cut.key}' and every tensor after it are cut off (an interrupted download or copy: fetch it again)",
            cut.key,
        )
    if position < available:
        raise WeightsError(
            f"{available - position:,} bytes follow the last tensor: the file is corrupt or two files were "
            "concatenated (safetensors refuses it)"
        )


@dataclass
class TensorData:
    """The tensors' bytes through one read-only memory map (opened on first use)."""

    header: Header
    _map: Optional[mmap.mmap] = field(default=None, repr=False)

    def _mapped(self) -> mmap.mmap:
        if self._map is None:
            with open(self.header.path, "rb") as handle:
                self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            if hasattr(self._map, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
                self._map.madvise(mmap.MADV_SEQUENTIAL)
        return self._map

    def buffer(self, info: TensorInfo) -> memoryview:
        """The tensor's bytes, without copying them."""
        start = self.header.data_start + info.begin
        return memoryview(self._mapped())[start : start + info.nbytes]

    def scalar(self, info: TensorInfo) -> Optional[float]:
        """The value of a one-element tensor (an alpha), None for other shapes or dtypes."""
        if info.numel != 1:
            return None
        start = self.header.data_start + info.begin
        data = self._mapped()
        if info.dtype == "BF16":
            (bits,) = struct.unpack_from("<H", data, start)
            return struct.unpack("<f", struct.pack("<I", bits << 16))[0]
        if info.dtype == "BOOL":
            return float(data[start] != 0)
        fmt = _STRUCT.get(info.dtype)
        return float(struct.unpack_from(fmt, data, start)[0]) if fmt else None

    def close(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a numpy view still exports the buffer; the OS unmaps it at exit
                pass
            self._map = None


