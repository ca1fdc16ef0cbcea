"""The model-aware core of ``lyco lint --model`` and ``lyco plan``: which layers a LyCORIS config
really adapts in a real diffusers model, and what that costs.

Three steps, each usable on its own:

* :func:`resolve_model` finds the ``config.json`` of the trained component (the transformer or UNet)
  from a local pipeline folder, a model folder, a Hugging Face Hub id (only that one small file is
  fetched, local cache first) or ``auto`` (the training config's ``pretrained_model_name_or_path``);
* :func:`build_meta_model` builds the diffusers class from that config on the meta device: every
  module and parameter shape exists, no weight is read and no memory is allocated for them;
* :func:`analyse` runs LyCORIS itself (``create_lycoris``, as SimpleTuner calls it) on the meta model,
  with the adapter's parameters created on the meta device too, and reports what was adapted, how,
  and how many parameters it trains.

This module imports torch, diffusers and LyCORIS (inside functions): the lint path must never import it
unless a model was asked for. Nothing here writes to stdout: LyCORIS's logger and its ``print``
warnings are captured into :attr:`Analysis.messages`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import io
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .lycoris_state import PRESET_DEFAULTS, reset_preset_state
from .units import TRAINING_BYTES_PER_PARAM

# Image tokens per forward used to spread the once-per-forward cost of the rebuild path: a 1024x1024
# image in Flux-style transformers (128x128 latent, 2x2 patches). Text tokens are left out.
REFERENCE_TOKENS = 4096

# SimpleTuner reads these from the LyCORIS config itself and deletes them before create_lycoris.
SIMPLETUNER_ONLY_KEYS = ("tlora_min_rank", "tlora_alpha")

# Where SimpleTuner loads the trained component from, per --model_family (`model_subfolder` in
# SimpleTuner 4.8's model metadata). Every family not listed uses "transformer".
_FAMILY_SUBFOLDER = {
    "ace_step": "ace_step_transformer",
    "anima": "split_files/diffusion_models",
    "deepfloyd": "unet",
    "kolors": "unet",
    "longcat_video": "dit",
    "sd1x": "unet",
    "sdxl": "unet",
    "stable_cascade": "prior",
}
_UNET_FAMILIES = frozenset({"deepfloyd", "kolors", "sd1x", "sdxl", "stable_cascade"})
# Components tried, in order, in a pipeline's model_index.json when the family does not say.
_TRAINED_COMPONENTS = ("transformer", "unet", "prior", "dit")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelError(Exception):
    """The model could not be found, read or built; the message says what to do instead."""


class AnalysisError(ModelError):
    """LyCORIS refused to build the config on this model (its own error, reworded)."""


# -- 1. resolving the model's config ----------------------------------------------------------


@dataclass(frozen=True)
class ModelSource:
    """The trained component's diffusers config and where it came from."""

    config: dict
    class_name: str
    origin: str  # for messages: the config.json path, or "hub:org/name/transformer/config.json"
    config_path: Optional[Path] = None  # the config.json that was read
    repo_id: Optional[str] = None
    subfolder: Optional[str] = None


def resolve_model(spec: str, family: Optional[str] = None, training_options: Optional[dict] = None) -> ModelSource:
    """Find the trained component's ``config.json`` for ``--model SPEC``.

    ``spec`` is a local folder (a diffusers pipeline with ``model_index.json``, a model folder with
    ``config.json``, or the pipeline's ``transformer``/``unet`` subfolder), a ``config.json`` file, a Hub id
    (``org/name``), or ``auto`` to take ``pretrained_model_name_or_path`` from ``training_options``.
    Only config files are ever read or fetched, never weights.
    """
    family = family.strip().lower() if isinstance(family, str) and family.strip() else None
    subfolder = _FAMILY_SUBFOLDER.get(family, "transformer") if family else None
    if spec == "auto":
        spec, subfolder = _auto_spec(family, training_options or {})
    path = Path(spec).expanduser()
    if path.exists():
        return _local_source(path, subfolder)
    if _HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        return _hub_source(spec, subfolder)
    raise ModelError(
        f"--model {spec}: no such file or folder, and not a Hugging Face Hub id (org/name); pass a diffusers "
        "pipeline folder, its transformer/ or unet/ folder, or a Hub id such as black-forest-labs/FLUX.2-klein-4B"
    )


def _auto_spec(family: Optional[str], options: dict) -> tuple[str, Optional[str]]:
    """What SimpleTuner loads: an explicit transformer/unet path and subfolder, else the base model."""
    kind = "unet" if family in _UNET_FAMILIES else "transformer"
    own_path = options.get(f"pretrained_{kind}_model_name_or_path")
    base_path = options.get("pretrained_model_name_or_path")
    spec = own_path if isinstance(own_path, str) and own_path.strip() else base_path
    if not isinstance(spec, str) or not spec.strip():
        raise ModelError(
            "--model auto reads pretrained_model_name_or_path from the training config, which has none: set it "
            "there, or pass the model to --model (a local folder or a Hub id)"
        )
    subfolder = options.get(f"pretrained_{kind}_subfolder")
    if not isinstance(subfolder, str) or not subfolder.strip():
        subfolder = _FAMILY_SUBFOLDER.get(family, kind) if family else None
    elif subfolder.strip().lower() == "none":  # SimpleTuner's spelling of "the repository root"
        subfolder = None
    return spec.strip(), subfolder


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"cannot read {path}: {error}") from None
    if not isinstance(value, dict):
        raise ModelError(f"{path} is not a JSON object")
    return value


def _model_config(path: Path, origin: str, **where: Any) -> ModelSource:
    config = _read_json(path)
    class_name = config.get("_class_name")
    if not isinstance(class_name, str):
        raise ModelError(
            f"{origin} has no '_class_name', so it is not a diffusers model config (a text encoder or VAE "
            "config?); point --model at the pipeline folder or its transformer/ or unet/ folder"
        )
    return ModelSource(config, class_name, origin, config_path=path, **where)


def _pick_component(index: dict, subfolder: Optional[str], origin: str) -> str:
    components = [name for name, value in index.items() if not name.startswith("_") and isinstance(value, list)]
    for candidate in ([subfolder] if subfolder else []) + list(_TRAINED_COMPONENTS):
        if candidate in components:
            return candidate
    raise ModelError(
        f"{origin} lists no transformer or unet component (components: {', '.join(components) or 'none'}); "
        "point --model at the trained component's folder instead"
    )


def _local_source(path: Path, subfolder: Optional[str]) -> ModelSource:
    if path.is_file():
        if path.suffix != ".json":
            raise ModelError(
                f"{path} is a file, not a diffusers folder: single-file checkpoints are not read (lyco never "
                "loads weights); pass the folder holding the model's config.json, or its Hub id"
            )
        return _model_config(path, str(path))
    if subfolder and (path / subfolder / "config.json").is_file():
        return _model_config(path / subfolder / "config.json", str(path / subfolder / "config.json"), subfolder=subfolder)
    if (path / "config.json").is_file():
        return _model_config(path / "config.json", str(path / "config.json"))
    if (path / "model_index.json").is_file():
        component = _pick_component(_read_json(path / "model_index.json"), subfolder, str(path / "model_index.json"))
        config_path = path / component / "config.json"
        if not config_path.is_file():
            raise ModelError(f"{path}/model_index.json names a '{component}' component but {config_path} is missing")
        return _model_config(config_path, str(config_path), subfolder=component)
    raise ModelError(
        f"{path} holds neither model_index.json (a diffusers pipeline) nor config.json (a diffusers model); "
        "point --model at the pipeline folder or its transformer/ or unet/ folder"
    )


# Hub ----------------------------------------------------------------------------------------


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _hub_offline() -> bool:
    # Read now, not at huggingface_hub's import time, so that a caller's environment always counts.
    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")


def _hub_cache_dir() -> str:
    """The Hub cache folder, with huggingface_hub's precedence, read from the environment now."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return os.path.expanduser(os.path.expandvars(os.environ[name]))
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return os.path.join(os.path.expanduser(os.path.expandvars(home)), "hub")


def _hub_candidates(repo_id: str, subfolder: Optional[str], fetch: Callable[[str], Optional[Path]]) -> Optional[ModelSource]:
    """Look for the component config in the order a pipeline repo, then a model repo, lays it out."""
    if subfolder:
        found = fetch(f"{subfolder}/config.json")
        if found:
            return _model_config(found, f"hub:{repo_id}/{subfolder}/config.json", repo_id=repo_id, subfolder=subfolder)
    index = fetch("model_index.json")
    if index:
        component = _pick_component(_read_json(index), subfolder, f"hub:{repo_id}/model_index.json")
        found = fetch(f"{component}/config.json")
        if found:
            return _model_config(found, f"hub:{repo_id}/{component}/config.json", repo_id=repo_id, subfolder=component)
    found = fetch("config.json")
    if found:
        return _model_config(found, f"hub:{repo_id}/config.json", repo_id=repo_id)
    return None


def _hub_source(repo_id: str, subfolder: Optional[str]) -> ModelSource:
    try:
        import huggingface_hub
        from huggingface_hub import errors as hub_errors
    except ImportError:
        raise ModelError(
            f"--model {repo_id} looks like a Hub id, but huggingface_hub is not installed "
            "(pip install 'lyco[train]'); or pass a local folder holding the model's config.json"
        ) from None
    cache_dir = _hub_cache_dir()
    wanted = f"{subfolder}/config.json" if subfolder else "model_index.json or config.json"

    def cached(filename: str) -> Optional[Path]:
        found = huggingface_hub.try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
        return Path(found) if isinstance(found, str) else None

    def unreachable(error: Exception) -> ModelError:
        detail = str(error).splitlines()[0] if str(error) else "no details"
        return ModelError(
            f"cannot reach the Hugging Face Hub for {repo_id} ({type(error).__name__}: {detail}) and its {wanted} is "
            f"not in the local cache ({cache_dir}); fetch just the config once with network "
            f"(`hf download {repo_id} {wanted.split(' ')[0]}`), or pass a local folder holding the model's config.json"
        )

    def download(filename: str) -> Optional[Path]:
        try:
            return Path(huggingface_hub.hf_hub_download(repo_id, filename, cache_dir=cache_dir))
        except hub_errors.LocalEntryNotFoundError as error:  # no connection (a subclass of EntryNotFoundError)
            raise unreachable(error) from None
        except hub_errors.EntryNotFoundError:
            return None
        except hub_errors.GatedRepoError:
            raise ModelError(
                f"{repo_id} is gated on the Hugging Face Hub: accept its licence on huggingface.co and log in "
                f"(`hf auth login`), or pass a local folder holding its {wanted}"
            ) from None
        except hub_errors.RepositoryNotFoundError:
            raise ModelError(
                f"{repo_id}: no such model on the Hugging Face Hub (or it is private and you are not logged in); "
                "check the id, or pass a local folder"
            ) from None
        except Exception as error:  # proxy, timeout, server error: huggingface_hub raises many kinds
            raise unreachable(error) from None

    source = _hub_candidates(repo_id, subfolder, cached)
    if source is not None:
        return source
    if _hub_offline():
        raise ModelError(
            f"{repo_id}: its {wanted} is not in the local Hugging Face cache ({cache_dir}) and the Hub is off "
            f"limits (HF_HUB_OFFLINE is set); fetch just the config once with network "
            f"(`hf download {repo_id} {wanted.split(' ')[0]}`), or pass a local folder holding the model's "
            "config.json"
        )
    try:  # one quick request first: hf_hub_download retries a dead connection for about 25 s per file
        huggingface_hub.utils.get_session().head(huggingface_hub.hf_hub_url(repo_id, "config.json"), timeout=10)
    except Exception as error:
        raise unreachable(error) from None
    source = _hub_candidates(repo_id, subfolder, download)
    if source is None:
        raise ModelError(f"{repo_id} on the Hugging Face Hub has no diffusers config (looked for {wanted})")
    return source


# -- 2. the meta model ------------------------------------------------------------------------


def model_class(class_name: str) -> type:
    """The diffusers model class called ``class_name``."""
    import diffusers

    found = _import_model_file(class_name)
    if found is None and not class_name.startswith("_"):
        found = getattr(diffusers, class_name, None)
    if not isinstance(found, type) or not hasattr(found, "from_config"):
        raise ModelError(
            f"diffusers {diffusers.__version__} has no model class '{class_name}' (a class defined by the trainer "
            "itself, or a newer diffusers release?); lyco can only build diffusers' own model classes"
        )
    return found


def _import_model_file(class_name: str) -> Optional[type]:
    """Import only the file that defines a diffusers model class (about 0.3 s faster than ``diffusers.X``).

    ``diffusers.models.transformers`` and ``diffusers.models.unets`` import every model file of their
    package in their ``__init__``. The file itself only needs its parent package to exist, so a bare
    package module stands in while it is imported and is dropped afterwards: a later
    ``import diffusers.models.transformers`` runs the real ``__init__`` and reuses the loaded file.
    Returns None (the caller falls back to ``diffusers.<class_name>``) whenever the layout is not the
    expected one.
    """
    import importlib
    import importlib.util
    import sys
    import types

    try:
        models = importlib.import_module("diffusers.models")
        relative = getattr(models, "_class_to_module", {}).get(class_name)
        if not relative:
            return None
        module_name = f"diffusers.models.{relative}"
        package_name = module_name.rpartition(".")[0]
        if module_name not in sys.modules and package_name != "diffusers.models" and package_name not in sys.modules:
            spec = importlib.util.find_spec(package_name)
            if spec is None or not spec.submodule_search_locations:
                return None
            stand_in = types.ModuleType(package_name)
            stand_in.__path__ = list(spec.submodule_search_locations)
            stand_in.__spec__, stand_in.__package__ = spec, package_name
            sys.modules[package_name] = stand_in
            try:
                module = importlib.import_module(module_name)
            finally:
                if sys.modules.get(package_name) is stand_in:
                    del sys.modules[package_name]
                parent = sys.modules.get(package_name.rpartition(".")[0])
                if parent is not None and parent.__dict__.get(package_name.rpartition(".")[2]) is stand_in:
                    delattr(parent, package_name.rpartition(".")[2])
        else:
            module = importlib.import_module(module_name)
        found = getattr(module, class_name, None)
        return found if isinstance(found, type) else None
    except Exception:  # any surprise: the ordinary lazy import decides
        return None


def build_meta_model(source: ModelSource):
    """Build ``source``'s diffusers model with every parameter on the meta device (nothing read, nothing allocated)."""
    from diffusers.utils import logging as diffusers_logging

    cls = model_class(source.class_name)
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # unexpected-config-key notices are not ours to print
    try:
        with _empty_weights():
            model = cls.from_config(source.config)
    except Exception as error:
        raise ModelError(f"diffusers could not build {source.class_name} from {source.origin}: {error}") from None
    finally:
        diffusers_logging.set_verbosity(verbosity)
    if any(parameter.device.type != "meta" for parameter in model.parameters()):  # pragma: no cover - a guard
        raise ModelError(f"{source.class_name} created real parameters; refusing to go on")
    return model.eval().requires_grad_(False)


def _empty_weights():
    """accelerate's init_empty_weights (parameters on meta, small buffers real), else the meta device."""
    try:
        from accelerate import init_empty_weights
    except ImportError:
        import torch

        return torch.device("meta")
    return init_empty_weights()


# -- 3. the analysis --------------------------------------------------------------------------


@dataclass(frozen=True)
class AdaptedModule:
    """One layer LyCORIS wraps, with the settings it really got."""

    lora_name: str
    path: str  # the layer's dotted path in the model
    layer_class: str  # Linear, Conv2d, ...
    via: str  # "class" (inside a target_module subtree) or "name" (target_name / name_algo_map)
    target: str  # the target_module class or the name pattern that selected it
    options_from: Optional[str]  # "module_algo_map.X" / "name_algo_map.X" whose options apply, None = top level
    algo: str
    module_class: str  # LokrModule, LoConModule, ...
    dim: Optional[int]
    alpha: Optional[float]
    scale: Optional[float]
    factor: Optional[int]  # lokr only
    full_matrix: Optional[bool]  # lokr only: both Kronecker blocks are full matrices
    bypass: bool
    dora: bool
    weight_shape: tuple[int, ...]
    parameter_shapes: tuple[tuple[str, tuple[int, ...]], ...]
    trainable_params: int

    @property
    def settings(self) -> dict:
        """The settings that define a group in the plan."""
        return {
            "algo": self.algo,
            "dim": self.dim,
            "alpha": self.alpha,
            "factor": self.factor,
            "full_matrix": self.full_matrix,
            "bypass": self.bypass,
            "dora": self.dora,
        }


@dataclass(frozen=True)
class ShadowedMapEntry:
    """A name_algo_map key that matches layers LyCORIS reached through a target_module subtree.

    LyCORIS does not read name_algo_map inside a class subtree, so those layers get the class's options.
    """

    key: str
    options: dict
    shadowed_paths: tuple[str, ...]
    winning_classes: tuple[str, ...]  # the target_module classes whose subtrees reached them
    applied: int  # layers where the entry did apply (reached by name)


@dataclass(frozen=True)
class LayerCost:
    """Extra forward FLOPs of one adapted Linear over its frozen layer, per token."""

    lora_name: str
    trainable_params: int
    bypass_flops: float
    rebuild_flops: float


@dataclass(frozen=True)
class BypassEstimate:
    """Forward FLOPs of the bypass path vs the rebuild path, counted by running LyCORIS's own forward.

    Model: each adapted ``nn.Linear`` in bypass mode is run through its LyCORIS module on a meta input of
    ``tokens`` tokens, once with ``bypass_mode`` on and once off, under a FLOP counter (matmuls with
    torch's flop formulas, 2 per multiply-add; element-wise ops 1 per output element). The frozen layer's
    own forward is subtracted, and the result divided by ``tokens``: the rebuild path's once-per-forward
    work (materialising ΔW, W + ΔW − W) is spread over the tokens, its extra full matmul is per token.
    Conv layers are not estimated. Numbers are per forward; backward scales both paths alike.
    """

    tokens: int
    layers: tuple[LayerCost, ...]
    skipped: tuple[str, ...]  # adapted layers not estimated (convs, forwards that need real data)

    @property
    def bypass_flops(self) -> float:
        return sum(layer.bypass_flops for layer in self.layers)

    @property
    def rebuild_flops(self) -> float:
        return sum(layer.rebuild_flops for layer in self.layers)

    @property
    def params(self) -> int:
        return sum(layer.trainable_params for layer in self.layers)

    @property
    def rebuild_cheaper_params(self) -> int:
        return sum(layer.trainable_params for layer in self.layers if layer.rebuild_flops < layer.bypass_flops)

    @property
    def rebuild_cheaper_share(self) -> float:
        return self.rebuild_cheaper_params / self.params if self.params else 0.0

    @property
    def rebuild_cheaper(self) -> bool:
        """Rebuild is cheaper for most adapted parameters and saves at least 10 % of the adapter's FLOPs."""
        return self.rebuild_cheaper_share > 0.5 and self.bypass_flops >= 1.1 * self.rebuild_flops


@dataclass(frozen=True)
class Analysis:
    """What a LyCORIS config does to one model, as LyCORIS itself built it."""

    model_class: str
    classes: frozenset[str]  # type(m).__name__ of every named_modules() entry, the root included
    base_params: int
    modules: tuple[AdaptedModule, ...]
    target_classes: tuple[str, ...]  # the classes LyCORIS looked for (target_module + module_algo_map keys)
    target_names: tuple[str, ...]  # the names/patterns it looked for (target_name + name_algo_map keys)
    unmatched_classes: tuple[str, ...]
    unmatched_names: tuple[str, ...]
    shadowed: tuple[ShadowedMapEntry, ...]
    bypass: bool  # some adapted layer runs LyCORIS's bypass forward
    estimate: Optional[BypassEstimate]
    messages: tuple[str, ...]  # LyCORIS's own warnings (logger and print), deduplicated
    source: Optional[ModelSource] = None

    @property
    def class_name(self) -> str:
        """The model's diffusers class (what LYC205 names)."""
        return self.model_class

    @property
    def adapted_count(self) -> int:
        return len(self.modules)

    @property
    def trainable_params(self) -> int:
        return sum(module.trainable_params for module in self.modules)

    @property
    def training_bytes(self) -> int:
        return self.trainable_params * TRAINING_BYTES_PER_PARAM

    @property
    def adapter_share(self) -> float:
        return self.trainable_params / self.base_params if self.base_params else 0.0

    @property
    def origin(self) -> str:
        return self.source.origin if self.source else self.model_class


def analyse(model, lycoris_config: dict, source: Optional[ModelSource] = None, tokens: int = REFERENCE_TOKENS) -> Analysis:
    """Apply ``lycoris_config`` to ``model`` the way SimpleTuner does, with LyCORIS 4.1.3 itself.

    As SimpleTuner: ``LycorisNetwork.apply_preset(apply_preset)`` when it is a non-empty object; read
    ``multiplier``, ``linear_dim`` and ``linear_alpha`` with ``int()``; drop its own keys; then
    ``create_lycoris(model, multiplier, linear_dim, linear_alpha, **rest)`` (whose default ``preset="full"``
    re-enables convs). Unlike SimpleTuner, LycorisNetwork's class-level preset state is reset first (it leaks
    between networks) and restored afterwards. Modules are built with the meta device as default device, so
    even a billion-parameter adapter allocates nothing; the network is never applied to the model.
    """
    if not isinstance(lycoris_config, dict):
        raise AnalysisError("the LyCORIS config is not a JSON object")
    import torch
    from lycoris import LycorisNetwork, create_lycoris

    config = dict(lycoris_config)
    preset = config.pop("apply_preset", None)
    for key in SIMPLETUNER_ONLY_KEYS:
        config.pop(key, None)
    multiplier = _simpletuner_int(config, "multiplier", 1)
    linear_dim = _simpletuner_int(config, "linear_dim", 4)
    linear_alpha = _simpletuner_int(config, "linear_alpha", 1)
    messages: list[str] = []
    constructions: dict[str, _Construction] = {}
    with _preset_state(LycorisNetwork), _captured_output(messages), _recorded_constructions(constructions), _no_tlora_gc():
        try:
            if preset:
                if not isinstance(preset, dict):
                    raise AnalysisError("apply_preset must be a JSON object")
                LycorisNetwork.apply_preset(preset)
            with torch.device("meta"), _shape_only():
                network = create_lycoris(model, multiplier, linear_dim, linear_alpha, **config)
        except AnalysisError:
            raise
        except Exception as error:
            raise AnalysisError(
                f"LyCORIS could not build this config on {type(model).__name__}: {type(error).__name__}: {error}"
            ) from None
        selection = _Selection.after(network, config, linear_dim).walk(model)
        state = _class_state(LycorisNetwork)
    modules = tuple(_adapted(lora, constructions.get(lora.lora_name), selection) for lora in network.loras)
    if {m.lora_name for m in modules} != set(selection.chosen):
        messages.append(
            "lyco's replay of LyCORIS's module walk disagrees with LyCORIS on which layers are adapted; "
            "the 'target' column may be wrong (please report this)"
        )
    bypass = any(module.bypass for module in modules)
    return Analysis(
        model_class=type(model).__name__,
        classes=frozenset(type(module).__name__ for _name, module in model.named_modules()),
        base_params=sum(parameter.numel() for parameter in model.parameters()),
        modules=modules,
        target_classes=tuple(sorted(selection.target_classes)),
        target_names=tuple(sorted(selection.target_names)),
        unmatched_classes=tuple(sorted(selection.target_classes - selection.matched_classes)),
        unmatched_names=tuple(sorted(selection.target_names - selection.matched_names)),
        shadowed=selection.shadowed_entries(state["NAME_ALGO_MAP"]),
        bypass=bypass,
        estimate=_estimate_bypass(network.loras, tokens) if bypass else None,
        messages=tuple(dict.fromkeys(messages)),
        source=source,
    )


def analyse_spec(spec: str, lycoris_config: dict, family: Optional[str] = None, training_options: Optional[dict] = None) -> Analysis:
    """resolve → build → analyse in one call (what ``--model`` does)."""
    source = resolve_model(spec, family, training_options)
    return analyse(build_meta_model(source), lycoris_config, source=source)


def _simpletuner_int(config: dict, key: str, default: int) -> int:
    value = config.pop(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise AnalysisError(f"SimpleTuner reads '{key}' with int(), which fails on {value!r}; give a number") from None


# LyCORIS plumbing ---------------------------------------------------------------------------


def _class_state(network_class) -> dict[str, Any]:
    return {name: getattr(network_class, name) for name in PRESET_DEFAULTS}


@contextlib.contextmanager
def _preset_state(network_class) -> Iterator[None]:
    """Start from LyCORIS's defaults and put the caller's state back afterwards."""
    saved = reset_preset_state(network_class)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(network_class, name, value)


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


@contextlib.contextmanager
def _captured_output(sink: list[str]) -> Iterator[None]:
    """LyCORIS logs to its own stdout handler and print()s some warnings: keep both off stdout."""
    logger = logging.getLogger("LyCORIS")
    handlers, level = logger.handlers[:], logger.level
    logger.handlers = [_ListHandler(sink)]
    logger.setLevel(logging.WARNING)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield
    finally:
        logger.handlers, logger.level = handlers, level
        sink.extend(line.strip() for line in printed.getvalue().splitlines() if line.strip())


@dataclass(frozen=True)
class _Construction:
    algo: str
    dim: Any
    alpha: Any
    use_tucker: Any
    kwargs: dict


@contextlib.contextmanager
def _recorded_constructions(sink: dict[str, _Construction]) -> Iterator[None]:
    """Record the arguments LyCORIS passes to each module constructor (the effective settings)."""
    from lycoris import wrapper

    originals = dict(wrapper.network_module_dict)

    def recorder(algo: str, module_class: type) -> Callable:
        def construct(lora_name, org_module, multiplier, dim, alpha, dropout, rank_dropout, module_dropout, use_tucker, **kwargs):
            module = module_class(
                lora_name, org_module, multiplier, dim, alpha, dropout, rank_dropout, module_dropout, use_tucker, **kwargs
            )
            sink[lora_name] = _Construction(algo, dim, alpha, use_tucker, dict(kwargs))
            return module

        return construct

    wrapper.network_module_dict.update({algo: recorder(algo, cls) for algo, cls in originals.items()})
    try:
        yield
    finally:
        wrapper.network_module_dict.clear()
        wrapper.network_module_dict.update(originals)


@contextlib.contextmanager
def _no_tlora_gc() -> Iterator[None]:
    """T-LoRA's constructor runs ``gc.collect()`` after each module's SVD init: about 0.2 s per module in a
    process holding torch and diffusers (21 s instead of 0.1 s for Flux 2 Klein 4B's 100 layers), to free
    tensors that on the meta device were never allocated. The module's ``gc`` name points to a no-op while
    the network is built."""
    import types

    try:
        from lycoris.modules import tlora
    except ImportError:  # pragma: no cover - older LyCORIS without T-LoRA
        yield
        return
    saved = getattr(tlora, "gc", None)
    tlora.gc = types.SimpleNamespace(collect=lambda *args: 0)
    try:
        yield
    finally:
        tlora.gc = saved


@functools.lru_cache(maxsize=None)
def _shape_only_class() -> type:
    import torch
    from torch.overrides import TorchFunctionMode

    class ShapeOnly(TorchFunctionMode):
        """Lets LyCORIS's constructors run on meta weights.

        Two things they need data for: ``weight.cpu()`` before computing DoRA's magnitude or ``full``'s copy
        of the original weight (a meta tensor stays meta instead: only its shape matters here), and
        ``torch.tensor(kernel_size).prod().item()`` in conv LoKr/LoHa (small tensors of Python numbers are
        made on the CPU so that they can be read back).
        """

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is torch.Tensor.cpu and args and getattr(args[0], "is_meta", False):
                return args[0]
            if func in (torch.tensor, torch.as_tensor) and kwargs.get("device") is None:
                kwargs["device"] = "cpu"
            return func(*args, **kwargs)

    return ShapeOnly


def _shape_only():
    return _shape_only_class()()


# Replaying LyCORIS's walk to know why each layer was chosen ----------------------------------


@dataclass
class _Choice:
    path: str
    via: str
    target: str
    options_from: Optional[str]


class _Selection:
    """A replay of ``LycorisNetwork.__init__``'s module walk (lycoris-lora 4.1.3, wrapper.py).

    LyCORIS does not record why it wrapped a layer. This replays the same walk over ``named_modules()``
    with the same class-level state and the same selection test, and records for each created module the
    target that reached it and the map entry whose options it got. :func:`analyse` checks that the replay
    chose exactly the modules LyCORIS built.
    """

    def __init__(self, state: dict, algo: str, lora_dim: int, conv_dim: int, train_norm: bool, weight_decompose: bool, train_llm_adapter: bool):
        self.state = state
        self.prefix = state["LORA_PREFIX"]
        self.algo = algo
        self.lora_dim, self.conv_dim = lora_dim, conv_dim
        self.train_norm, self.weight_decompose = train_norm, weight_decompose
        self.target_classes = set(state["TARGET_REPLACE_MODULE"]) | set(state["MODULE_ALGO_MAP"])
        if not train_llm_adapter:
            self.target_classes.discard("LLMAdapterTransformerBlock")
        self.target_names = set(state["TARGET_REPLACE_NAME"]) | set(state["NAME_ALGO_MAP"])
        self.matched_classes: set[str] = set()
        self.matched_names: set[str] = set()
        self.chosen: dict[str, _Choice] = {}
        self.shadowed: dict[str, list[tuple[str, str]]] = {}  # name_algo_map key -> (path, winning class)
        self.applied: dict[str, int] = {}

    @classmethod
    def after(cls, network, config: dict, linear_dim: int) -> "_Selection":
        """The walk ``network`` just did: its class state and the root options create_lycoris derived."""
        from lycoris import LycorisNetwork
        from lycoris.utils import str_bool

        return cls(
            _class_state(LycorisNetwork),
            algo=(config.get("algo", "lora") or "lora").lower(),
            lora_dim=linear_dim,
            conv_dim=network.conv_lora_dim,
            train_norm=str_bool(config.get("train_norm", False)),
            weight_decompose=str_bool(config.get("dora_wd", False)),
            train_llm_adapter=bool(getattr(network, "train_llm_adapter", False)),
        )

    def match(self, pattern: str, name: str) -> bool:
        if self.state["USE_FNMATCH"]:
            return fnmatch.fnmatch(name, pattern)
        return bool(re.match(pattern, name))

    def excluded(self, name: str) -> bool:
        patterns = self.state["TARGET_EXCLUDE_NAME"]
        return bool(name and patterns) and (name in patterns or any(self.match(t, name) for t in patterns))

    def name_key(self, name: str) -> Optional[str]:
        """find_conf_for_name: the exact key first, then the first matching pattern in map order."""
        name_map = self.state["NAME_ALGO_MAP"]
        if name in name_map:
            return name
        return next((key for key in name_map if self.match(key, name)), None)

    def creates(self, module, algo: str, options: dict) -> bool:
        """create_single_module's test: does this layer get a LyCORIS module?"""
        import torch
        from lycoris.modules.base import is_supported_linear_module

        if self.train_norm and "Norm" in type(module).__name__:
            return True
        decompose = options.get("weight_decompose", self.weight_decompose)
        if is_supported_linear_module(module, algo, weight_decompose=decompose) and self.lora_dim > 0:
            return True
        if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            if module.kernel_size[0] == 1 and self.lora_dim > 0:
                return True
            return bool(self.conv_dim > 0 or options.get("dim"))
        return False

    def walk(self, model) -> "_Selection":
        for name, module in model.named_modules():
            if self.excluded(name):
                continue
            class_name = type(module).__name__
            if class_name in self.target_classes and not any(self.match(t, name) for t in self.target_names):
                self.matched_classes.add(class_name)
                options = self.state["MODULE_ALGO_MAP"].get(class_name, {})
                origin = f"module_algo_map.{class_name}" if class_name in self.state["MODULE_ALGO_MAP"] else None
                self.walk_subtree(f"{self.prefix}_{name}", module, options.get("algo", self.algo), options, name, class_name, origin)
            elif name in self.target_names or any(self.match(t, name) for t in self.target_names):
                self.choose_by_name(name, module, class_name)
        return self

    def choose_by_name(self, name: str, module, class_name: str) -> None:
        self.matched_classes.add(class_name)
        if name in self.target_names:
            self.matched_names.add(name)
        matching = [t for t in self.target_names if self.match(t, name)]
        self.matched_names.update(matching)
        key = self.name_key(name)
        if key is not None:
            options, origin = self.state["NAME_ALGO_MAP"][key], f"name_algo_map.{key}"
        elif class_name in self.state["MODULE_ALGO_MAP"]:
            options, origin = self.state["MODULE_ALGO_MAP"][class_name], f"module_algo_map.{class_name}"
        else:
            options, origin = {}, None
        lora_name = f"{self.prefix}.{name}".replace(".", "_")
        if lora_name in self.chosen or not self.creates(module, options.get("algo", self.algo), options):
            return
        if key is not None:
            self.applied[key] = self.applied.get(key, 0) + 1
        target = key if key is not None else (name if name in self.target_names else sorted(matching)[0])
        self.chosen[lora_name] = _Choice(name, "name", target, origin)

    def walk_subtree(self, prefix: str, root, algo: str, options: dict, path: str, target: str, origin: Optional[str]) -> None:
        algo_map = self.state["MODULE_ALGO_MAP"]
        for name, module in root.named_modules():
            full_name = ".".join(part for part in (path, name) if part)
            if self.excluded(full_name):
                continue
            class_name = type(module).__name__
            if class_name in algo_map and module is not root:
                nested = algo_map[class_name]
                self.walk_subtree(
                    f"{prefix}_{name}" if name else prefix, module, nested.get("algo", algo), nested, full_name, target,
                    f"module_algo_map.{class_name}",
                )
                continue
            lora_name = f"{prefix}.{name}" if name else prefix
            lora_name = lora_name.replace(f"{self.prefix}_.", f"{self.prefix}.").replace(".", "_")
            if lora_name in self.chosen or not self.creates(module, algo, options):
                continue
            self.chosen[lora_name] = _Choice(full_name, "class", target, origin)
            key = self.name_key(full_name)
            if key is not None:  # name_algo_map is not read inside a class subtree
                self.shadowed.setdefault(key, []).append((full_name, target))

    def shadowed_entries(self, name_map: dict) -> tuple[ShadowedMapEntry, ...]:
        return tuple(
            ShadowedMapEntry(
                key=key,
                options=dict(name_map.get(key) or {}),
                shadowed_paths=tuple(path for path, _ in hits),
                winning_classes=tuple(sorted({cls for _, cls in hits})),
                applied=self.applied.get(key, 0),
            )
            for key, hits in self.shadowed.items()
        )


def _adapted(lora, construction: Optional[_Construction], selection: _Selection) -> AdaptedModule:
    layer = lora.org_module[0]
    choice = selection.chosen.get(lora.lora_name) or _Choice("?", "?", "?", None)
    kwargs = construction.kwargs if construction else {}
    algo = construction.algo if construction else type(lora).__name__.replace("Module", "").lower()
    is_lokr = type(lora).__name__ == "LokrModule"
    factor = kwargs.get("factor") if is_lokr else None
    try:
        factor = int(factor) if factor is not None else None
    except (TypeError, ValueError):
        pass
    parameters = tuple((name, tuple(parameter.shape)) for name, parameter in lora.named_parameters())
    return AdaptedModule(
        lora_name=lora.lora_name,
        path=choice.path,
        layer_class=type(layer).__name__,
        via=choice.via,
        target=choice.target,
        options_from=choice.options_from,
        algo=algo,
        module_class=type(lora).__name__,
        dim=_number(construction.dim if construction else getattr(lora, "lora_dim", None)),
        alpha=_number(construction.alpha if construction else None),
        scale=_number(getattr(lora, "scale", None)),
        factor=factor,
        full_matrix=bool(lora.use_w1 and lora.use_w2) if is_lokr else None,
        bypass=bool(getattr(lora, "bypass_mode", False)),
        dora=bool(getattr(lora, "wd", False)),
        weight_shape=tuple(layer.weight.shape) if getattr(layer, "weight", None) is not None else (),
        parameter_shapes=parameters,
        trainable_params=sum(parameter.numel() for parameter in lora.parameters()),
    )


def _number(value):
    """A plain number for reports; anything else (a tensor, a string LyCORIS failed to use) is None."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# Bypass vs rebuild --------------------------------------------------------------------------


def _flop_counter():
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves
    from torch.utils.flop_counter import flop_registry

    class FlopCounter(TorchDispatchMode):
        """Matmul FLOPs with torch's formulas, plus one FLOP per output element of element-wise ops."""

        def __init__(self) -> None:
            super().__init__()
            self.flops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.flops += formula(*args, **kwargs, out_val=out)
            elif torch.Tag.pointwise in func.tags:
                self.flops += sum(t.numel() for t in tree_leaves(out) if isinstance(t, torch.Tensor))
            return out

    return FlopCounter()


def _forward_flops(forward: Callable, x) -> int:
    counter = _flop_counter()
    with counter:
        forward(x)
    return counter.flops


def _estimate_bypass(loras, tokens: int) -> BypassEstimate:
    """Count both paths of every adapted Linear that runs in bypass mode, once per distinct shape and settings."""
    import torch

    costs: dict[tuple, tuple[float, float]] = {}
    layers, skipped = [], []
    for lora in loras:
        layer = lora.org_module[0]
        if not getattr(lora, "bypass_mode", False):
            continue  # runs the rebuild path already: bypass_mode does not change its cost
        if not isinstance(layer, torch.nn.Linear):
            skipped.append(lora.lora_name)
            continue
        key = (
            type(lora).__name__,
            tuple(layer.weight.shape),
            layer.bias is not None,
            tuple((name, tuple(p.shape)) for name, p in lora.named_parameters()),
            bool(getattr(lora, "wd", False)),
        )
        if key not in costs:
            costs[key] = _both_paths(lora, layer, tokens)
        bypass, rebuild = costs[key]
        if bypass is None:
            skipped.append(lora.lora_name)
            continue
        params = sum(p.numel() for p in lora.parameters())
        layers.append(LayerCost(lora.lora_name, params, bypass, rebuild))
    return BypassEstimate(tokens, tuple(layers), tuple(skipped))


def _both_paths(lora, layer, tokens: int) -> tuple[Optional[float], Optional[float]]:
    import torch

    x = torch.empty(1, tokens, layer.in_features, device="meta", dtype=layer.weight.dtype)
    saved_mode, saved_training = lora.bypass_mode, lora.training
    lora.eval()  # no dropout randomness (module_dropout draws a real random number in training)
    try:
        with torch.no_grad(), _shape_only():
            base = _forward_flops(lora.org_forward, x)
            lora.bypass_mode = True
            bypass = _forward_flops(lora.forward, x) - base
            lora.bypass_mode = False
            rebuild = _forward_flops(lora.forward, x) - base
    except Exception:  # a forward that needs real data (DyLoRA's random block, ...): not estimated
        return None, None
    finally:
        lora.bypass_mode = saved_mode
        lora.train(saved_training)
    return bypass / tokens, rebuild / tokens
