"""The on-disk cache of ``--model`` analyses: a repeated ``lyco lint --model MODEL FILE`` (pre-commit) reads the
analysis back instead of importing torch, diffusers and LyCORIS and building the model again.

An entry is keyed by what the analysis depends on: the trained component's config (its content, not its
path), the LyCORIS config, the token count of the FLOP estimate, and the versions of lyco, lycoris-lora,
diffusers, torch and accelerate (read from the installed distributions' metadata, without importing them: a
changed library misses). The value is the :class:`.analysis.Analysis` as JSON, written atomically; a file
that cannot be read back as an analysis is a miss. Nothing here imports torch.

The folder is ``$LYCO_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/lyco`` or ``~/.cache/lyco``, then
``model-analysis/``; deleting it is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Optional

from ..knowledge.selection import Shadowed
from .analysis import AdaptedModule, Analysis, BypassEstimate, LayerCost
from .resolve import ModelSource

CACHE_ENV = "LYCO_CACHE_DIR"
FORMAT = 1  # bump when Analysis changes shape
DISTRIBUTIONS = ("lycoris-lora", "diffusers", "torch", "accelerate")


def cache_dir() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lyco"


def versions() -> dict[str, Optional[str]]:
    """lyco's and the analysing libraries' versions, from package metadata (no import of the packages).

    The installed ``NAME-VERSION.dist-info`` folders on ``sys.path`` are the metadata importlib.metadata reads;
    listing them is much cheaper than importing importlib.metadata (about 0.1 s, a third of a warm run), which
    only answers for a package not found that way (an unusual layout, or not installed)."""
    from .. import __version__

    wanted = {_project_key(name): name for name in DISTRIBUTIONS}
    found: dict[str, Optional[str]] = {"lyco": __version__}
    for folder in sys.path:
        try:
            names = os.listdir(folder or ".")
        except OSError:
            continue
        for entry in names:
            if entry.endswith(".dist-info"):
                project, _, version = entry[: -len(".dist-info")].partition("-")
                name = wanted.get(_project_key(project))
                if name is not None and name not in found:
                    found[name] = version
    missing = [name for name in DISTRIBUTIONS if name not in found]
    if missing:
        from importlib import metadata

        for name in missing:
            try:
                found[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                found[name] = None
    return {name: found[name] for name in ("lyco", *DISTRIBUTIONS)}


def _project_key(name: str) -> str:
    """A distribution name as dist-info folders spell it (PEP 503 normalisation: lycoris-lora = lycoris_lora)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def cache_key(source: ModelSource, lycoris_config: Any, tokens: int) -> str:
    material = {
        "format": FORMAT,
        "versions": versions(),
        "model_class": source.class_name,
        "model_config": source.config,
        "lycoris_config": lycoris_config,
        "tokens": tokens,
    }
    text = json.dumps(material, sort_keys=True, ensure_ascii=True, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entry_path(key: str) -> Path:
    return cache_dir() / "model-analysis" / f"{key}.json"


def load(source: ModelSource, lycoris_config: Any, tokens: int) -> Optional[Analysis]:
    """The cached analysis of ``lycoris_config`` on ``source``'s model, or None (a miss)."""
    path = entry_path(cache_key(source, lycoris_config, tokens))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return analysis_from_json(data, source)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(source: ModelSource, lycoris_config: Any, tokens: int, analysis: Analysis) -> None:
    """Remember an analysis; a cache that cannot be written (read-only home, full disk) is no error."""
    from ..atomic import write_text

    try:
        write_text(entry_path(cache_key(source, lycoris_config, tokens)), json.dumps(analysis_to_json(analysis)), durable=False)
    except OSError:
        pass


# -- Analysis <-> JSON ---------------------------------------------------------------------------------------


def analysis_to_json(analysis: Analysis) -> dict[str, Any]:
    estimate = analysis.estimate
    return {
        "model_class": analysis.model_class,
        "classes": sorted(analysis.classes),
        "base_params": analysis.base_params,
        "modules": [_module_to_json(module) for module in analysis.modules],
        "target_classes": list(analysis.target_classes),
        "target_names": list(analysis.target_names),
        "unmatched_classes": list(analysis.unmatched_classes),
        "unmatched_names": list(analysis.unmatched_names),
        "shadowed": [
            {"key": s.key, "options": s.options, "shadowed_paths": list(s.shadowed_paths), "winning_classes": list(s.winning_classes), "applied": s.applied}
            for s in analysis.shadowed
        ],
        "bypass": analysis.bypass,
        "estimate": None if estimate is None else {
            "tokens": estimate.tokens,
            "layers": [[layer.lora_name, layer.trainable_params, layer.bypass_flops, layer.rebuild_flops] for layer in estimate.layers],
            "skipped": list(estimate.skipped),
        },
        "messages": list(analysis.messages),
    }


MODULE_FIELDS = (
    "lora_name", "path", "layer_class", "via", "target", "options_from", "algo", "module_class", "dim", "alpha",
    "scale", "factor", "full_matrix", "bypass", "dora", "weight_shape", "parameter_shapes", "trainable_params",
)


def _module_to_json(module: AdaptedModule) -> list[Any]:
    return [getattr(module, name) for name in MODULE_FIELDS]


def _module_from_json(values: list[Any]) -> AdaptedModule:
    fields = dict(zip(MODULE_FIELDS, values, strict=True))
    fields["weight_shape"] = tuple(fields["weight_shape"])
    fields["parameter_shapes"] = tuple((name, tuple(shape)) for name, shape in fields["parameter_shapes"])
    return AdaptedModule(**fields)


def analysis_from_json(data: dict[str, Any], source: Optional[ModelSource]) -> Analysis:
    estimate = data["estimate"]
    return Analysis(
        model_class=data["model_class"],
        classes=frozenset(data["classes"]),
        base_params=data["base_params"],
        modules=tuple(_module_from_json(values) for values in data["modules"]),
        target_classes=tuple(data["target_classes"]),
        target_names=tuple(data["target_names"]),
        unmatched_classes=tuple(data["unmatched_classes"]),
        unmatched_names=tuple(data["unmatched_names"]),
        shadowed=tuple(
            Shadowed(s["key"], s["options"], tuple(s["shadowed_paths"]), tuple(s["winning_classes"]), s["applied"])
            for s in data["shadowed"]
        ),
        bypass=data["bypass"],
        estimate=None if estimate is None else BypassEstimate(
            estimate["tokens"], tuple(LayerCost(*layer) for layer in estimate["layers"]), tuple(estimate["skipped"])
        ),
        messages=tuple(data["messages"]),
        source=source,
    )
