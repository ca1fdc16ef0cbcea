"""What the families share about model folders: which pipeline a folder holds and whether it is the family's,
the content identity of a component (part of the cache keys), and SimpleTuner's family facts; and the option
checks and readings several families make alike. (The members they implement alike are in ``mixins.py``.)

Torch-free: the folder check runs in ``Family.check``, before anything is loaded (``--dry-run`` included),
and reads only ``model_index.json`` and ``config.json`` files.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Optional

from lyco_lint.knowledge.families import Family as FamilyFacts
from lyco_lint.knowledge.families import family as family_facts
from lyco_lint.knowledge.families import module_classes

from ..config import ConfigError
from ..options import TrainingOptions

# The diffusers pipeline classes of each model_family lyco train trains (model_index.json's _class_name), and
# a few others a user may point at by mistake, so the message can say which family a folder fits.
PIPELINES: dict[str, tuple[str, ...]] = {
    "flux2": ("Flux2Pipeline", "Flux2KleinPipeline"),
    "flux": ("FluxPipeline",),
    "sdxl": ("StableDiffusionXLPipeline",),
}
OTHER_PIPELINES: dict[str, str] = {
    "StableDiffusionXLImg2ImgPipeline": "sdxl (a refiner)",
    "FluxKontextPipeline": "flux (kontext)",
    "KolorsPipeline": "kolors",
    "StableDiffusion3Pipeline": "sd3",
    "StableDiffusionPipeline": "sd1x/sd2x",
    "QwenImagePipeline": "qwen_image",
    "HiDreamImagePipeline": "hidream",
    "PixArtSigmaPipeline": "pixart_sigma",
    "SanaPipeline": "sana",
    "WanPipeline": "wan",
}
LABELS = {"flux2": "FLUX.2", "flux": "FLUX.1", "sdxl": "SDXL"}


def a(label: str) -> str:
    """``label`` with its article: "an SDXL", "a FLUX.1"."""
    return f"{'an' if label.startswith('SDXL') else 'a'} {label}"


def facts(name: str) -> FamilyFacts:
    """SimpleTuner's facts about a family (flavours, default flavour, subfolder) from lyco_lint's family data."""
    found = family_facts(name)
    if found is None:
        raise ConfigError(f"lyco_lint's family data (lyco_lint/data/families.json) has no {name} entry; reinstall lyco")
    return found


def denoiser_class(name: str) -> str:
    """diffusers' class of the family's trained component (lyco_lint's module-class index)."""
    classes = module_classes(name)
    if classes is None:
        raise ConfigError(f"lyco_lint's module index (lyco_lint/data/family_modules.json) has no {name} entry; reinstall lyco")
    return classes.model_class


def check_flavour(name: str, flavour: str) -> None:
    known = facts(name).flavours
    if flavour not in known:
        raise ConfigError(f"model_flavour '{flavour}' is not a {name} flavour; choose one of {', '.join(known)}")


def read_json(path: Path) -> Optional[dict[str, Any]]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    return value if isinstance(value, dict) else None


def local_json(root: str, subfolder: str, name: str) -> Optional[dict[str, Any]]:
    """``root/subfolder/name`` as JSON when ``root`` is a local folder that has it, else None."""
    path = Path(root).expanduser() / subfolder / name
    return read_json(path) if path.is_file() else None


def component_identity(root: str, subfolder: str, revision: Optional[str]) -> str:
    """Content identity of a component: its config files and weight file sizes (hashing multi-GB weights on
    every start would cost more than it saves); a hub id with its revision when not a local folder."""
    folder = Path(root).expanduser() / subfolder
    if not folder.is_dir():
        return f"{root}@{revision or 'main'}/{subfolder}"
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.suffix in (".json", ".jinja", ".txt", ".model"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        elif path.is_file():
            digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return f"{subfolder}:{digest.hexdigest()[:32]}"


def pipeline_family(class_name: str) -> Optional[str]:
    """The model_family a pipeline class belongs to (lyco train's, or another SimpleTuner family's name)."""
    for name, classes in PIPELINES.items():
        if class_name in classes:
            return name
    return OTHER_PIPELINES.get(class_name)


def denoiser_family(class_name: str) -> Optional[str]:
    return next((name for name in PIPELINES if denoiser_class(name) == class_name), None)


def _fits(family: Optional[str]) -> str:
    if family is None:
        return "no model_family lyco train trains"
    if family in PIPELINES:
        return f"model_family \"{family}\" ({LABELS[family]})"
    return f"SimpleTuner's model_family {family}, which lyco train does not train (it trains {', '.join(sorted(PIPELINES))})"


def check_model_folder(name: str, options: TrainingOptions, root: str, components: dict[str, Optional[str]]) -> None:
    """Refuse a local ``pretrained_model_name_or_path`` that is not a pipeline of family ``name``: a component
    folder (``transformer/``, ``unet/``), another family's pipeline, or a pipeline missing a component the
    family loads. ``components`` maps each component folder to its class (None: any class), checked against
    ``model_index.json`` and the component's ``config.json``. A folder without ``model_index.json`` (a partial
    download) is checked by its component folders. Hub ids are not checked here (nothing is fetched before
    the run)."""
    folder = Path(root).expanduser()
    label = f"{LABELS[name]} (model_family \"{name}\")"
    if not folder.is_dir():
        if folder.exists() or root.startswith((".", "/", "~")):
            raise ConfigError(f"pretrained_model_name_or_path {root} is not a folder; point it at a diffusers {label} pipeline folder (with model_index.json) or a Hub id")
        return
    index_path = folder / "model_index.json"
    index = read_json(index_path) if index_path.is_file() else None
    if index is None:
        config = read_json(folder / "config.json") if (folder / "config.json").is_file() else None
        class_name = (config or {}).get("_class_name")
        if isinstance(class_name, str):
            fits = denoiser_family(class_name)
            owner = f"of {a(LABELS[fits])} pipeline" if fits else "of a pipeline"
            raise ConfigError(
                f"pretrained_model_name_or_path {root} is a single component, the {folder.name}/ folder {owner} ({class_name} "
                f"in {folder / 'config.json'}), not a pipeline: point it at the pipeline folder that holds model_index.json "
                f"(the folder above, {folder.parent}, if it is one); lyco train loads the VAE and text encoders from there too"
            )
    else:
        class_name = index.get("_class_name")
        if class_name not in PIPELINES[name]:
            raise ConfigError(
                f"pretrained_model_name_or_path {root} is a {class_name} folder ({index_path}), which fits "
                f"{_fits(pipeline_family(str(class_name)))}, not model_family \"{name}\" (which takes {' or '.join(PIPELINES[name])}); "
                "set model_family to the folder's family, or point pretrained_model_name_or_path at "
                f"{a(LABELS[name])} pipeline"
            )
    for component, wanted in components.items():
        entry = (index or {}).get(component)
        listed = entry[1] if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str) else None
        if not (folder / component).is_dir() or (index is not None and listed is None):
            raise ConfigError(
                f"{root} has no {component}/ component{' in ' + str(index_path) if index is not None else ''}, which "
                f"{LABELS[name]} training loads{_what_it_is(folder, name)}; point pretrained_model_name_or_path at a complete {label} pipeline"
            )
        config_path = folder / component / "config.json"
        config = read_json(config_path) if config_path.is_file() else None
        found = listed or (config or {}).get("_class_name")
        if wanted is not None and found is not None and found != wanted:
            raise ConfigError(
                f"{root}: its {component} is {found} ({config_path if config else index_path}), but {label} trains with "
                f"{wanted}{_what_it_is(folder, name)}; set model_family to the folder's family or point pretrained_model_name_or_path "
                f"at {a(LABELS[name])} pipeline"
            )


def _what_it_is(folder: Path, name: str) -> str:
    """", and the folder looks like a FLUX.1 pipeline (its transformer/ is a FluxTransformer2DModel): model_family
    \"flux\"" when a family's denoiser is there; "" otherwise."""
    for other in (family for family in PIPELINES if family != name):
        subfolder = facts(other).subfolder
        config_path = folder / subfolder / "config.json"
        config = read_json(config_path) if config_path.is_file() else None
        if config and config.get("_class_name") == denoiser_class(other):
            return f"; the folder looks like {a(LABELS[other])} pipeline (its {subfolder}/ is a {denoiser_class(other)}), which fits model_family \"{other}\""
    return ""


def check_transformer_folder(name: str, options: TrainingOptions) -> None:
    """A local ``pretrained_transformer_model_name_or_path`` (or unet path) must hold the family's denoiser."""
    root = options.pretrained_transformer_model_name_or_path
    if not root or not Path(root).expanduser().is_dir():
        return
    subfolder = transformer_subfolder(options)
    path = Path(root).expanduser() / (subfolder or "") / "config.json"
    config = read_json(path) if path.is_file() else None
    if config is None:
        raise ConfigError(f"pretrained_transformer_model_name_or_path {root}: no {path}; set pretrained_transformer_subfolder to the folder holding config.json (\"none\" for the folder itself)")
    wanted = denoiser_class(name)
    if config.get("_class_name") != wanted:
        raise ConfigError(f"{path} is {config.get('_class_name')}, but {LABELS[name]} trains {wanted}; point pretrained_transformer_model_name_or_path at {a(LABELS[name])} model")


def transformer_subfolder(options: TrainingOptions) -> Optional[str]:
    subfolder = options.pretrained_transformer_subfolder
    return None if subfolder in (None, "", "none") else subfolder


def check_pipeline_folders(name: str, options: TrainingOptions, root: str, folder: dict[str, Optional[str]]) -> None:
    """:func:`check_model_folder` for a family whose transformer may come from elsewhere: with
    ``pretrained_transformer_model_name_or_path`` set the pipeline folder need not hold ``transformer/`` (it is
    loaded from there instead), and that folder must hold the family's transformer."""
    if options.pretrained_transformer_model_name_or_path:
        folder = {component: wanted for component, wanted in folder.items() if component != "transformer"}
    check_model_folder(name, options, root, folder)
    check_transformer_folder(name, options)


def validation_guidance(options: TrainingOptions) -> float:
    """``validation_guidance``; unset means 1.0, as in SimpleTuner."""
    return 1.0 if options.validation_guidance is None else float(options.validation_guidance)


def check_text_length(name: str, flavour: str, options: TrainingOptions, used: int) -> None:
    """SimpleTuner ignores tokenizer_max_length for SDXL and FLUX.1 (it warns and uses its own length): a
    different value would not be honoured, so it is refused rather than silently dropped."""
    if options.tokenizer_max_length is not None and options.tokenizer_max_length != used:
        raise ConfigError(
            f"tokenizer_max_length {options.tokenizer_max_length}: SimpleTuner ignores it for {LABELS[name]} {flavour} "
            f"and uses {used} tokens, and so does lyco train; remove it (or set it to {used})"
        )


# -- what the flow-matching families (FLUX.1, FLUX.2) share: the objective they train, how they render -----------


def check_flow_prediction_type(name: str, options: TrainingOptions) -> None:
    if options.prediction_type not in (None, "flow_matching"):
        raise ConfigError(
            f"prediction_type '{options.prediction_type}': {LABELS[name]} trains with flow matching (SimpleTuner ignores "
            "prediction_type for it); remove it"
        )


def check_flow_rendering(name: str, options: TrainingOptions) -> None:
    """The validation settings a flow-matching pipeline cannot render: another scheduler than its own
    flow-matching Euler (SimpleTuner maps ``euler`` to it too; the others have no flow-matching form in diffusers'
    pipelines), and guidance rescale (SDXL's)."""
    scheduler = options.validation_noise_scheduler
    if scheduler not in (None, "euler"):
        raise ConfigError(
            f"validation_noise_scheduler '{scheduler}': {LABELS[name]} renders with its pipeline's flow-matching Euler "
            "scheduler (SimpleTuner's \"euler\" for it); remove validation_noise_scheduler or set it to \"euler\""
        )
    if options.validation_guidance_rescale:
        raise ConfigError(
            f"validation_guidance_rescale {options.validation_guidance_rescale:g}: {LABELS[name]}'s pipeline has no guidance "
            "rescale (SimpleTuner passes it only with skip-layer guidance); remove it"
        )


def loads_model(load):
    """For a family's ``load_*`` method: a model that cannot be read or fetched (diffusers and transformers raise
    OSError for a missing file, a folder that is not a pipeline, or a Hub id with no connection and no cached
    copy) is a ConfigError that names the model and the way out, not an internal error."""

    @functools.wraps(load)
    def checked(self, options: TrainingOptions, *args, **kwargs):
        try:
            return load(self, options, *args, **kwargs)
        except OSError as error:
            raise ConfigError(cannot_load(self.model_root(options), error)) from None

    return checked


def check_reachable(root: str) -> None:
    """Before loading from a Hub id: one quick look (the local cache, then one request) instead of
    huggingface_hub's retries per file (about a minute for a pipeline) when there is no connection."""
    if Path(root).expanduser().exists():
        return
    from lyco_lint.meta_model.resolve import hub_unavailable

    why = hub_unavailable(root, "model_index.json")
    if why is not None:
        raise ConfigError(cannot_load(root, why))


def cannot_load(root: str, error: Exception | str) -> str:
    detail = " ".join(str(error).split())[:400] or type(error).__name__
    if Path(root).expanduser().exists():
        fix = "check that the folder is a complete diffusers pipeline (a download that stopped part way?)"
    else:
        fix = (f"without a connection the model must be in the local Hugging Face cache: download it once (`hf download {root}`), "
               "or point pretrained_model_name_or_path (lyco sample and merge: --model) at a local pipeline folder")
    return f"cannot load the model {root}: {detail}; {fix}"


def flow_scheduler(options: TrainingOptions, root: str):
    """The pipeline's own flow-matching scheduler, fresh (training never touches it)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler.from_pretrained(root, subfolder="scheduler", revision=options.revision)
