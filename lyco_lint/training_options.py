"""SimpleTuner training options as data, and how SimpleTuner's loader turns config.json into argparse input.

The facts live in ``data/simpletuner_options.json`` (regenerate it with
``python -m lyco_lint.tools.build_simpletuner_data``); they are read lazily, once, with ``json``
only, so that linting a training config stays fast. On top of the data this module models the
two steps SimpleTuner takes before any option is used (``/work/shared/reference/simpletuner-compat.md``
§1):

1. the JSON loader (``mapping_to_cli_args``) turns each key/value into ``--key=value`` strings —
   dropping ``null``, ``""``, the string ``"false"`` and objects, turning ``true`` into a bare
   ``--key``, and a list into one argument per item (JSON-valued options get one JSON text);
2. argparse resolves the key (exact name, alias, or — ``allow_abbrev`` — a unique prefix) and
   parses each value with the option's type.

:func:`resolve_key` is step 2's key lookup, :func:`loader_output` is step 1 and
:func:`parse_problem` is step 2's value parsing. The LYC3xx rules (``rules/training.py``) are
built on these three. This module also registers the ``lyco explain OPTION`` topics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Iterator, Optional

from .explain import Topic, register_provider
from .jsonpos import Member, join_pointer, to_python

if TYPE_CHECKING:  # pragma: no cover
    from .documents import Document

DATA_FILE = "simpletuner_options.json"


@lru_cache(maxsize=1)
def data() -> dict[str, Any]:
    """The whole data file (SimpleTuner version, options, families, loader facts)."""
    text = resources.files("lyco_lint").joinpath("data", DATA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def simpletuner_version() -> str:
    """``SimpleTuner 4.8.0 (bghira/SimpleTuner@bc8e6ab7)`` from the data file's source line."""
    source = data()["source"]  # "bghira/SimpleTuner <sha> (<version>)"
    repository, _, rest = source.partition(" ")
    commit, _, version = rest.partition(" ")
    return f"SimpleTuner {version.strip('()')} ({repository}@{commit[:8]})" if version else source


def option(name: str) -> Optional[dict[str, Any]]:
    """The spec of a canonical option name (``type``, ``default``, ``choices``, ``aliases``, ``shape``)."""
    return data()["options"].get(name)


def option_names() -> list[str]:
    return list(data()["options"])


def family(name: Optional[str]) -> Optional[dict[str, Any]]:
    """A model family by its ``--model_family`` name, compared as SimpleTuner does (stripped, lower-cased)."""
    if not isinstance(name, str):
        return None
    return data()["families"].get(name.strip().lower())


def family_names() -> list[str]:
    return list(data()["families"])


def flavours(family_name: Optional[str]) -> list[str]:
    entry = family(family_name)
    return list(entry["flavours"]) if entry else []


def is_video_family(family_name: Optional[str]) -> bool:
    entry = family(family_name)
    return bool(entry and entry.get("video"))


def is_sdxl_unet_family(family_name: Optional[str]) -> bool:
    entry = family(family_name)
    return bool(entry and entry.get("sdxl_unet"))


# -- step 2a: which option does a key name? -------------------------------------------------------


@dataclass(frozen=True)
class KeyResolution:
    """What SimpleTuner makes of one config.json key.

    ``how`` is one of ``option`` (exact name), ``alias`` (an argparse alias), ``legacy`` (renamed
    by the loader), ``ignored`` (dropped by the loader), ``abbreviation`` (a unique prefix argparse
    expands because of ``allow_abbrev``), ``ambiguous`` (a prefix of several options: argparse
    refuses it), ``not_accepted`` (a WebUI-only key the trainer rejects) or ``unknown``.
    ``option`` is the canonical option the value ends up in, when there is one.
    """

    key: str
    name: str
    how: str
    option: Optional[str] = None
    candidates: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.how in ("option", "alias", "legacy", "ignored", "abbreviation")


def key_name(key: str) -> str:
    """The option name SimpleTuner derives from a key: stripped, without leading dashes."""
    return key.strip().lstrip("-")


@lru_cache(maxsize=1)
def _option_strings() -> dict[str, str]:
    """Every string argparse knows (names and aliases, without ``--``) → its canonical option."""
    strings = {}
    for name, spec in data()["options"].items():
        strings[name] = name
        for alias in spec.get("aliases", ()):
            strings[alias] = name
    return strings


@lru_cache(maxsize=1024)
def resolve_key(key: str) -> KeyResolution:
    name = key_name(key)
    facts = data()
    if key.strip().startswith("---"):
        # "---x" is passed as is ("--" is only added when missing); argparse knows no such option
        return KeyResolution(key, name, "unknown")
    legacy = facts["legacy_renames"].get(name)
    strings = _option_strings()
    if name in facts["ignored_keys"]:
        return KeyResolution(key, name, "ignored")
    if legacy and legacy["stage"] != "argparse_alias":
        return KeyResolution(key, name, "legacy", legacy["new"])
    if name in facts["options"]:
        return KeyResolution(key, name, "option", name)
    if name in strings:
        return KeyResolution(key, name, "alias", strings[name])
    if name in facts["not_accepted"]:
        return KeyResolution(key, name, "not_accepted")
    if name and facts.get("allow_abbrev", True):
        # argparse compares option strings, not options: a prefix of an option and of its own alias
        # ("validation_step" → validation_step_interval, validation_steps) is ambiguous too.
        matches = sorted(string for string in strings if string.startswith(name))
        if len(matches) == 1:
            return KeyResolution(key, name, "abbreviation", strings[matches[0]], tuple(matches))
        if len(matches) > 1:
            return KeyResolution(key, name, "ambiguous", None, tuple(matches))
    return KeyResolution(key, name, "unknown")


# -- step 1: what the loader emits for a value ----------------------------------------------------

FLAG = object()  # a bare ``--key`` (from ``true`` or the string "true")


@dataclass(frozen=True)
class LoaderOutput:
    """What SimpleTuner's JSON loader passes to argparse for one value.

    ``values`` are the argument values in order (``FLAG`` for a bare ``--key``); an empty tuple means
    nothing is passed, and ``dropped`` then says why (``null``, ``empty``, ``string-false``,
    ``object``, ``empty-list``). ``serialised`` is set when a JSON-valued option got its list or
    object as one JSON text. ``placeholder`` is set when a ``{env:VAR}`` makes the value unknowable.
    """

    values: tuple[Any, ...] = ()
    dropped: Optional[str] = None
    serialised: bool = False
    placeholder: bool = False


def loader_output(option_name: Optional[str], value: Any) -> LoaderOutput:
    if value is None:
        return LoaderOutput(dropped="null")
    if isinstance(value, bool):
        # SimpleTuner 4.8: true → "--key"; false → "--key=false" (checkboxes parse it, others may not)
        return LoaderOutput((FLAG,) if value else ("false",))
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "false":
            return LoaderOutput(dropped="string-false")
        if text.lower() == "true":
            return LoaderOutput((FLAG,))
        if not text:
            return LoaderOutput(dropped="empty")
        return LoaderOutput((text,), placeholder="{env:" in text)
    if option_name in data()["json_serialised"] and isinstance(value, (dict, list)):
        return LoaderOutput((json.dumps(value),), serialised=True)
    if isinstance(value, dict):
        return LoaderOutput(dropped="object")
    if isinstance(value, list):
        items = tuple(text for text in (_python_str(item).strip() for item in value) if text)
        return LoaderOutput(items, dropped=None if items else "empty-list")
    return LoaderOutput((_python_str(value),))


def _python_str(value: Any) -> str:
    """``str(value)`` as SimpleTuner computes it on the value json.load returned."""
    return str(value)


# -- step 2b: does argparse accept a value? --------------------------------------------------------


def bool_words() -> tuple[set[str], set[str]]:
    words = data()["bool_values"]
    return set(words["true"]), set(words["false"])


def normalise_choice(option_name: str, text: str) -> str:
    """Values SimpleTuner rewrites before argparse sees them (``cosine_with_warmup`` → ``cosine``)."""
    if option_name == "model_family":
        return text.strip().lower()
    return data().get("choice_aliases", {}).get(option_name, {}).get(text, text)


def parse_problem(option_name: str, argument: Any) -> Optional[str]:
    """Why argparse rejects one argument value for ``option_name`` (``None`` when it parses).

    Choice membership is not checked here (see :func:`choice_problem`): a value of the right
    type that is not a choice is a different mistake with a different fix.
    """
    spec = option(option_name)
    if spec is None:
        return None
    kind = spec["type"]
    if argument is FLAG:
        if kind == "bool":
            return None
        return "needs a value, but true makes SimpleTuner pass a bare flag with none (argparse: expected one argument)"
    if kind == "bool":
        truthy, falsy = bool_words()
        if argument.strip().lower() in truthy | falsy or spec.get("accepts_string"):
            return None
        return "is not a boolean SimpleTuner understands (true/false, yes/no, y/n, on/off, 1/0)"
    if kind == "int" or (kind == "choice" and _int_choices(spec)):
        try:
            int(argument)
        except ValueError:
            return "is not an integer (argparse calls int() on it)"
        return None
    if kind == "float":
        try:
            float(argument)
        except ValueError:
            return "is not a number (argparse calls float() on it)"
    return None


def choice_problem(option_name: str, argument: Any) -> Optional[str]:
    """Why a parsed value is not one of the option's static choices (``None`` when it is)."""
    spec = option(option_name)
    if spec is None or "choices" not in spec or argument is FLAG:
        return None
    choices = spec["choices"]
    if _int_choices(spec):
        try:
            return None if int(argument) in choices else "is not one of the choices"
        except ValueError:
            return None  # parse_problem reports it
    return None if normalise_choice(option_name, argument) in choices else "is not one of the choices"


def _int_choices(spec: dict[str, Any]) -> bool:
    return bool(spec.get("choices")) and all(isinstance(choice, int) for choice in spec["choices"])


def type_text(option_name: str) -> str:
    spec = option(option_name) or {}
    kind = spec.get("type", "str")
    if kind == "choice":
        return "one of " + ", ".join(map(str, spec["choices"]))
    if kind in ("json", "list"):
        shape = spec.get("shape", "").replace("_", " ")
        return f"{kind} ({shape})" if shape else kind
    return {"bool": "boolean", "int": "integer", "float": "number", "str": "string"}.get(kind, kind)


# -- `lyco explain OPTION` --------------------------------------------------------------------------

# The options that matter for LyCORIS training, each described in our own words, with the rules
# that look at it. Type, default and choices come from the data file.
OPTION_DOCS: dict[str, tuple[str, tuple[str, ...]]] = {
    "model_type": (
        "Train the whole model (full) or an adapter (lora); LyCORIS needs lora.",
        ("LYC302", "LYC313", "LYC315"),
    ),
    "model_family": (
        "Which architecture is trained (flux2, sdxl, wan, ...); lower-cased by SimpleTuner, dashes are not "
        "underscores.",
        ("LYC312", "LYC315", "LYC205"),
    ),
    "model_flavour": (
        "Which release of the family (klein-9b, base-1.0, ...); must be one of the family's flavours.",
        ("LYC312",),
    ),
    "pretrained_model_name_or_path": (
        "Hub id or local folder of the base model; overrides the flavour's default checkpoint.",
        (),
    ),
    "output_dir": ("Where checkpoints, the final adapter and caches are written.", ("LYC315",)),
    "data_backend_config": (
        "Path of the multidatabackend.json that lists the datasets and text-embed caches.",
        ("LYC315", "LYC316"),
    ),
    "lora_type": (
        "Adapter implementation: standard (PEFT LoRA) or lycoris (a LyCORIS config file decides the algorithm).",
        ("LYC301", "LYC302", "LYC303", "LYC313"),
    ),
    "lycoris_config": (
        "Path of the LyCORIS JSON (algo, dims, apply_preset); read only when lora_type is lycoris.",
        ("LYC301", "LYC302"),
    ),
    "validation_lycoris_strength": (
        "Multiplier applied to the LyCORIS adapter while validation images are generated.",
        ("LYC308",),
    ),
    "init_lokr_norm": (
        "Start LoKr from a perturbed non-zero weight of this relative scale (a config.json option, not a LyCORIS key).",
        (),
    ),
    "init_lora": ("Existing adapter file to start from; with LyCORIS the network is rebuilt from its weights.", ()),
    "lora_rank": (
        "PEFT LoRA rank; ignored with lora_type lycoris (linear_dim in the LyCORIS config counts).",
        ("LYC303",),
    ),
    "lora_alpha": (
        "PEFT LoRA alpha; ignored with lora_type lycoris (linear_alpha in the LyCORIS config counts).",
        ("LYC303",),
    ),
    "lora_dropout": (
        "PEFT LoRA dropout; ignored with lora_type lycoris (use dropout in the LyCORIS config).",
        ("LYC303",),
    ),
    "lora_init_type": (
        "How PEFT initialises the LoRA matrices (default, gaussian, loftq, olora, pissa); PEFT only.",
        ("LYC303", "LYC313"),
    ),
    "peft_lora_mode": ("PEFT LoRA variant (standard or singlora); PEFT only.", ("LYC303", "LYC313")),
    "peft_lora_target_modules": ("Module names PEFT wraps, as a JSON list or a file; PEFT only.", ("LYC303",)),
    "use_dora": ("Weight-decomposed PEFT LoRA; PEFT only (LyCORIS uses dora_wd in its own config).", ("LYC303",)),
    "lora_format": (
        "Key layout of saved PEFT LoRA files (diffusers or comfyui); not applied to LyCORIS files.",
        ("LYC303", "LYC313"),
    ),
    "flux_lora_target": (
        "Preset of Flux layers PEFT wraps; PEFT only (LyCORIS uses apply_preset).",
        ("LYC303", "LYC313"),
    ),
    "slider_lora_target": ("Restrict a PEFT slider LoRA to a preset set of layers; PEFT only.", ("LYC303",)),
    "attention_mechanism": (
        "Attention kernel used by the model (diffusers SDPA, xformers, flash-attn, sageattention*, ...).",
        ("LYC305", "LYC306", "LYC313"),
    ),
    "sageattention_usage": (
        "When a SageAttention kernel is used: inference only, training, or both; its kernels give no gradients.",
        ("LYC305", "LYC306", "LYC313"),
    ),
    "base_model_precision": (
        "Quantisation of the frozen base weights (no_change, int8-torchao, int8-quanto, nf4-bnb, ...).",
        ("LYC309", "LYC313"),
    ),
    "mixed_precision": ("Autocast precision of training (bf16, fp16, no, ...).", ("LYC313",)),
    "quantize_via": ("Device that performs the base-model quantisation (cpu, accelerator, ...).", ("LYC313",)),
    "text_encoder_1_precision": ("Quantisation of the first text encoder, like base_model_precision.", ("LYC313",)),
    "gradient_precision": ("Precision of gradients for the optimizer step.", ("LYC313",)),
    "train_text_encoder": ("Train the text encoder too; refused together with lora_type lycoris.", ()),
    "optimizer": ("Optimizer name (adamw_bf16, optimi-lion, prodigy, ...).", ("LYC315",)),
    "learning_rate": ("Peak learning rate; a number, or a string float() can read (\"1e-4\").", ("LYC314",)),
    "lr_scheduler": ("Learning-rate schedule; cosine_with_warmup is accepted as cosine.", ("LYC313",)),
    "lr_warmup_steps": ("Steps of linear learning-rate warm-up; an integer.", ("LYC314",)),
    "train_batch_size": ("Samples per micro-batch per GPU; T-LoRA in lycoris-lora 4.1.3 needs 1.", ("LYC314",)),
    "gradient_accumulation_steps": ("Micro-batches summed before each optimizer step.", ("LYC314",)),
    "max_train_steps": ("Stop after this many optimizer steps (0: use num_train_epochs).", ("LYC314",)),
    "num_train_epochs": ("Stop after this many epochs (0: use max_train_steps).", ("LYC314",)),
    "gradient_checkpointing": (
        "Recompute activations in the backward pass to save memory; on by default.",
        ("LYC311",),
    ),
    "checkpoint_step_interval": (
        "Save a resumable checkpoint every N steps (legacy key: checkpointing_steps).",
        ("LYC314",),
    ),
    "checkpoints_total_limit": ("How many checkpoints to keep (legacy key: save_total_limit).", ("LYC314",)),
    "resume_from_checkpoint": ("Checkpoint to resume from (latest, a folder name, or empty for none).", ()),
    "seed": ("Random seed of the run.", ("LYC314",)),
    "resolution": ("Training resolution (its unit is set by resolution_type).", ("LYC314",)),
    "validation_step_interval": (
        "Generate validation images every N steps (legacy key: validation_steps).",
        ("LYC314",),
    ),
    "validation_prompt": ("Prompt of the validation images.", ()),
    "validation_resolution": ("Size of validation images, such as 1024x1024 or a comma-separated list.", ()),
    "validation_guidance": ("Classifier-free guidance scale used for validation images.", ("LYC314",)),
    "validation_num_inference_steps": ("Denoising steps per validation image.", ("LYC314",)),
    "validation_seed": ("Seed of the validation images.", ("LYC314",)),
    "validation_guidance_skip_layers": (
        "Layers skipped for skip-layer guidance in validation; give a JSON string, not an array.",
        ("LYC314",),
    ),
}


def default_text(spec: dict[str, Any]) -> str:
    return json.dumps(spec["default"]) if "default" in spec else "none"


def _option_topic(name: str, description: str, rules: tuple[str, ...]) -> Topic:
    spec = option(name) or {}
    required = name in data()["required"]
    legacy = sorted(old for old, rename in data()["legacy_renames"].items() if rename["new"] == name)
    topic_data = {
        "option": name,
        "description": description,
        "type": type_text(name),
        "default": spec.get("default"),
        "choices": spec.get("choices"),
        "aliases": spec.get("aliases", []),
        "legacy_keys": legacy,
        "required": required,
        "rules": list(rules),
        "read_by": simpletuner_version(),
    }
    lines = [f"# {name}", "", description, "", f"Type: {topic_data['type']}", f"Default: {default_text(spec)}"]
    if required:
        lines.append("Required: yes (argparse refuses a config without it)")
    if topic_data["aliases"] or legacy:
        lines.append("Also accepted as: " + ", ".join(sorted(set(topic_data["aliases"]) | set(legacy))))
    lines.append(f"Write it as `\"{name}\"` or `\"--{name}\"` in config.json.")
    if rules:
        lines.append("Checked by: " + ", ".join(rules))
    lines.append(f"Read by: {topic_data['read_by']}")
    return Topic(name, "training-option", description.split(";")[0].rstrip("."), "\n".join(lines) + "\n", topic_data)


# -- a training config as SimpleTuner reads it --------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One top-level key of a training config, with what SimpleTuner makes of it."""

    member: Member
    resolution: KeyResolution
    value: Any
    output: LoaderOutput

    @property
    def pointer(self) -> str:
        return join_pointer("", self.member.key)

    @property
    def option(self) -> Optional[str]:
        return self.resolution.option

    @property
    def reaches_argparse(self) -> bool:
        return bool(self.output.values)

    @property
    def text(self) -> Optional[str]:
        """The last argument value as a string (what argparse keeps), or None for none/a bare flag."""
        if not self.output.values or self.output.values[-1] is FLAG:
            return None
        return self.output.values[-1]


def settings(document: "Document") -> list["Setting"]:
    """Every top-level key of a training config with what SimpleTuner makes of it (read once per document)."""
    return document.training_settings


def read_settings(document: "Document") -> list[Setting]:
    if not document.is_object:
        return []
    found = []
    for member in document.root.members:
        resolution = resolve_key(member.key)
        value = to_python(member.value)
        found.append(Setting(member, resolution, value, loader_output(resolution.option, value)))
    return found


def effective(document: "Document", option_name: str) -> Optional[Setting]:
    """The setting argparse ends up with for an option: the last key that passes it a value."""
    chosen = None
    for setting in settings(document):
        if setting.option == option_name and passes_value(setting) and setting.reaches_argparse:
            chosen = setting
    return chosen


def passes_value(setting: Setting) -> bool:
    """False for legacy keys the loader inverts (``vae_cache_preprocess``): their value is not passed on."""
    if setting.resolution.how != "legacy":
        return True
    return data()["legacy_renames"][setting.resolution.name]["transform"] == "identity"


def effective_text(document: Optional["Document"], option_name: str) -> Optional[str]:
    if document is None:
        return None
    setting = effective(document, option_name)
    return setting.text if setting else None


def uses_lycoris(document: "Document") -> bool:
    return effective_text(document, "lora_type") == "lycoris"


@register_provider
def training_option_topics() -> Iterator[Topic]:
    for name, (description, rules) in OPTION_DOCS.items():
        if option(name) is not None:
            yield _option_topic(name, description, rules)
