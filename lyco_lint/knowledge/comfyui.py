"""Which keys of a LyCORIS adapter ComfyUI loads, for the families lyco knows (flux2, flux, sdxl).

The facts are ComfyUI's, carried as data in ``data/comfyui_lora_keys.json`` with the ComfyUI version and the
commits they were read from: the LoRA key map ``model_lora_keys_unet`` builds per model (for these families, the
diffusers module paths of ``flux_to_diffusers`` or ``unet_to_diffusers`` behind the ``lycoris_`` and
``lora_transformer_``/``lora_unet_`` prefixes), the tensors its weight adapters consume, and the split of fused
``attn.to_qkv`` adapters in ``lora_convert``. ComfyUI loads a key when its module name is in the map and an
adapter consumes it; every other key is logged as "lora key not loaded" and ignored, so the image comes out
as if that part of the adapter did not exist.

Plain data in, plain data out: callers pass module names with their tensors' suffixes and shapes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping, Optional

Shapes = Mapping[str, tuple[int, ...]]  # tensor suffix -> shape, for one module


@lru_cache(maxsize=None)
def data() -> dict[str, Any]:
    try:
        return json.loads(resources.files("lyco_lint").joinpath("data", "comfyui_lora_keys.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # a broken install loses the ComfyUI checks, not the linter
        return {}


def version() -> str:
    return data().get("comfyui_version", "?")


def families() -> tuple[str, ...]:
    return tuple(data().get("families", {}))


def _family(family: Optional[str]) -> Optional[dict[str, Any]]:
    return data().get("families", {}).get(family) if family else None


def prefixes(family: str) -> tuple[str, ...]:
    """The name prefixes ComfyUI maps diffusers module paths under (LyCORIS's ``lora_prefix`` must be one)."""
    entry = _family(family)
    return tuple(entry["prefixes"]) if entry else ()


def maps_prefix(family: str, prefix: str) -> bool:
    return prefix in prefixes(family)


def _pattern(module: str, separator: str) -> str:
    parts = [re.escape(part) if part != "{n}" else r"\d+" for part in module.split(".")]
    return re.escape(separator).join(parts)


@lru_cache(maxsize=None)
def _regexes(family: str) -> tuple[re.Pattern, re.Pattern]:
    """(underscore names with a prefix, dotted diffusers paths) ComfyUI maps for the family."""
    entry = _family(family)
    modules = data()["maps"][entry["map"]]["modules"]
    underscored = "|".join(_pattern(module, "_") for module in modules)
    dotted = "|".join(_pattern(module, ".") for module in modules)
    names = "|".join(re.escape(prefix) for prefix in entry["prefixes"])
    return re.compile(rf"(?:{names})_(?:{underscored})"), re.compile(rf"(?:{dotted})")


def maps_name(family: str, name: str) -> bool:
    """Whether ComfyUI's key map has this module name (``lycoris_transformer_blocks_0_attn_to_q``)."""
    return _family(family) is not None and _regexes(family)[0].fullmatch(name) is not None


def covers_path(family: str, path: str) -> bool:
    """Whether ComfyUI maps the diffusers module at ``path`` (``transformer_blocks.0.attn.to_q``) at all."""
    return _family(family) is not None and _regexes(family)[1].fullmatch(path) is not None


def loads_path(family: str, path: str) -> bool:
    """Whether ComfyUI applies a LyCORIS module on the diffusers layer at ``path``: mapped, or a fused
    ``attn.to_qkv`` that ComfyUI splits into mapped q, k and v (``to_added_qkv`` is not split)."""
    if covers_path(family, path):
        return True
    fused = data().get("fused_qkv", {})
    match = re.fullmatch(r"(.*attn\.to_)qkv", path)
    return bool(
        match and any(word in path for word in fused.get("block_words", ()))
        and all(covers_path(family, match.group(1) + part) for part in fused.get("split_into", ()))
    )


@lru_cache(maxsize=None)
def consumed_suffixes() -> frozenset[str]:
    return frozenset(suffix for group in data().get("consumed_suffixes", {}).values() for suffix in group)


@dataclass(frozen=True)
class NotLoaded:
    name: str
    reason: str  # "unmapped", "tensors" (mapped, but no adapter takes these tensors), "dropped" (fused-qkv split)
    suffixes: tuple[str, ...]  # the tensors ComfyUI ignores


@dataclass(frozen=True)
class ComfyVerdict:
    family: str
    version: str
    loaded: tuple[str, ...]  # module names ComfyUI applies (a module in not_loaded too lacks some tensors)
    split: tuple[str, ...]  # fused attn.to_qkv modules ComfyUI splits into q, k and v and applies
    not_loaded: tuple[NotLoaded, ...]

    @property
    def ignored_keys(self) -> int:
        return sum(len(entry.suffixes) for entry in self.not_loaded)


def _fused_shapes(shapes: Shapes) -> Optional[tuple[int, int, Optional[int]]]:
    """lora_convert._qkv_shapes: (out, in, LoKr inner rows) of a fused qkv adapter, None when it is not split."""
    has = shapes.get
    if has("lokr_w2") and (has("lokr_w1") or has("lokr_w1_a")):
        out_inner, in_inner = has("lokr_w2")[0], has("lokr_w2")[1]
    elif has("lokr_w2_a") and has("lokr_w2_b") and has("lokr_w1_a"):
        out_inner, in_inner = has("lokr_w2_a")[0], has("lokr_w2_b")[1]
    else:
        out_inner = in_inner = None
    if has("lokr_w1"):
        if out_inner is None:
            return None
        out_dim, in_dim = has("lokr_w1")[0] * out_inner, has("lokr_w1")[1] * in_inner
    elif has("lokr_w1_a") and has("lokr_w1_b"):
        if out_inner is None:
            return None
        out_dim, in_dim = has("lokr_w1_a")[0] * out_inner, has("lokr_w1_b")[1] * in_inner
    elif has("lora_B.weight") and has("lora_A.weight"):
        out_dim, in_dim = has("lora_B.weight")[0], has("lora_A.weight")[1]
    elif has("lora_up.weight") and has("lora_down.weight"):
        out_dim, in_dim = has("lora_up.weight")[0], has("lora_down.weight")[1]
    else:
        return None
    if has("dora_scale") and has("dora_scale")[0] != out_dim:
        return None
    return out_dim, in_dim, out_inner


def _splits(shapes: Shapes) -> bool:
    found = _fused_shapes(shapes)
    if found is None:
        return False
    out_dim, in_dim, _inner = found
    kv = (out_dim - in_dim) // 2
    return kv > 0 and in_dim + 2 * kv == out_dim


def comfyui_load(family: str, modules: Mapping[str, Shapes]) -> Optional[ComfyVerdict]:
    """What ComfyUI does with an adapter's modules (name -> tensor suffix -> shape); None for a family the
    data does not cover."""
    if _family(family) is None:
        return None
    fused = data()["fused_qkv"]
    fused_re = re.compile(fused["pattern"])
    names = set(modules)
    convert = any(
        fused_re.search(f"{name}.{suffix}") and any(word in name for word in fused["block_words"])
        for name, shapes in modules.items()
        for suffix in shapes
    )
    split_bases = set()
    if convert:
        for name, shapes in modules.items():
            match = fused_re.search(f"{name}.")
            if match and _splits(shapes):
                split_bases.add(match.group(1))
    loaded, split, not_loaded = [], [], []
    consumed = consumed_suffixes()
    for name in sorted(names):
        suffixes = tuple(sorted(modules[name]))
        match = fused_re.search(f"{name}.")
        if match and match.group(1) in split_bases:
            targets = [match.group(1) + part for part in fused["split_into"]]
            if all(maps_name(family, target) for target in targets):
                split.append(name)
            else:
                not_loaded.append(NotLoaded(name, "unmapped", suffixes))
            continue
        if any(name == base + part for base in split_bases for part in fused["split_into"]):
            not_loaded.append(NotLoaded(name, "dropped", suffixes))
            continue
        if not maps_name(family, name):
            not_loaded.append(NotLoaded(name, "unmapped", suffixes))
            continue
        ignored = tuple(suffix for suffix in suffixes if suffix not in consumed)
        if any(suffix in consumed and suffix not in ("alpha", "dora_scale") for suffix in suffixes):
            loaded.append(name)  # applied, maybe without some of its tensors
        if ignored:
            not_loaded.append(NotLoaded(name, "tensors", ignored))
    return ComfyVerdict(family, version(), tuple(loaded), tuple(split), tuple(not_loaded))
