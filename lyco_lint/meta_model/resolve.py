"""Find the ``config.json`` of the trained component (the transformer or UNet) for ``--model SPEC``: a local
pipeline folder, a model folder, a Hugging Face Hub id (only that one small file is fetched, local cache
first) or ``auto`` (the training config's ``pretrained_model_name_or_path``). Only config files are ever read
or fetched, never weights. Which component folder a family trains comes from ``knowledge.families``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..knowledge.families import family as family_facts

# Components tried, in order, in a pipeline's model_index.json when the family does not say.
TRAINED_COMPONENTS = ("transformer", "unet", "prior", "dit")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelError(Exception):
    """The model could not be found, read or built; the message says what to do instead."""


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
    facts = family_facts(family)
    subfolder = facts.subfolder if facts else ("transformer" if family else None)
    if spec == "auto":
        spec, subfolder = _auto_spec(facts.component if facts else "transformer", subfolder, training_options or {})
    path = Path(spec).expanduser()
    if path.exists():
        return _local_source(path, subfolder)
    if _HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        return _hub_source(spec, subfolder)
    raise ModelError(
        f"--model {spec}: no such file or folder, and not a Hugging Face Hub id (org/name); pass a diffusers "
        "pipeline folder, its transformer/ or unet/ folder, or a Hub id such as black-forest-labs/FLUX.2-klein-4B"
    )


def _auto_spec(kind: str, family_subfolder: Optional[str], options: dict) -> tuple[str, Optional[str]]:
    """What SimpleTuner loads: an explicit transformer/unet path and subfolder, else the base model."""
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
        subfolder = family_subfolder
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
    for candidate in ([subfolder] if subfolder else []) + list(TRAINED_COMPONENTS):
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
    # a partial download (only the trained component's folder, no model_index.json): the component is there
    for component in TRAINED_COMPONENTS:
        if (path / component / "config.json").is_file():
            return _model_config(path / component / "config.json", str(path / component / "config.json"), subfolder=component)
    raise ModelError(
        f"{path} holds neither model_index.json (a diffusers pipeline) nor config.json (a diffusers model), nor a "
        "transformer/ or unet/ folder with one; point --model at the pipeline folder or its transformer/ or unet/ folder"
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


def hub_unavailable(repo_id: str, filename: str) -> Optional[str]:
    """Why ``repo_id``'s ``filename`` can be neither read from the local Hub cache nor fetched now (the Hub off
    limits, no connection), or None, after one quick request (a pipeline has a dozen files to retry)."""
    import huggingface_hub

    cache_dir = _hub_cache_dir()
    if isinstance(huggingface_hub.try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir), str):
        return None
    if _hub_offline():
        return f"HF_HUB_OFFLINE is set and its {filename} is not in the local Hugging Face cache ({cache_dir})"
    error = _quick_request_error(repo_id, filename)
    if error is not None:
        detail = str(error).splitlines()[0] if str(error) else "no details"
        return f"cannot reach the Hugging Face Hub ({type(error).__name__}: {detail}) and its {filename} is not in the local cache ({cache_dir})"
    return None


def _quick_request_error(repo_id: str, filename: str) -> Optional[Exception]:
    """What one HEAD request for the file raised (None: the Hub answered). hf_hub_download retries a dead
    connection for about 25 s per file; this fails in one try (10 s at most)."""
    import huggingface_hub

    try:
        huggingface_hub.utils.get_session().head(huggingface_hub.hf_hub_url(repo_id, filename), timeout=10)
    except Exception as error:  # proxy, timeout, DNS: requests and httpx raise many kinds
        return error
    return None


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
    error = _quick_request_error(repo_id, "config.json")  # before hf_hub_download's retries
    if error is not None:
        raise unreachable(error)
    source = _hub_candidates(repo_id, subfolder, download)
    if source is None:
        raise ModelError(f"{repo_id} on the Hugging Face Hub has no diffusers config (looked for {wanted})")
    return source
