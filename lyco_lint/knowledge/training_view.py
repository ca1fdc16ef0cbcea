"""A training config (``config.json``) as SimpleTuner reads it, and the files it names.

:func:`settings` is every top-level key with what SimpleTuner's loader and argparse make of it
(:mod:`.simpletuner`); :func:`effective` is the setting argparse ends up with for an option. Both are read
once per document. :func:`find_named_file` resolves ``lycoris_config`` and ``data_backend_config`` the way
lint and the trainer both look for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..documents import Document
from ..jsonpos import Member, join_pointer, to_python
from . import simpletuner
from .simpletuner import FLAG, KeyResolution, LoaderOutput, loader_output, resolve_key


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


def settings(document: Document) -> list[Setting]:
    """Every top-level key of a training config with what SimpleTuner makes of it (read once per document)."""
    return document.derive("training_settings", _read_settings)


def _read_settings(document: Document) -> list[Setting]:
    if not document.is_object:
        return []
    found = []
    for member in document.root.members:
        resolution = resolve_key(member.key)
        value = to_python(member.value)
        found.append(Setting(member, resolution, value, loader_output(resolution.option, value)))
    return found


def options(document: Document) -> dict[str, Any]:
    """A training config's values keyed by the option SimpleTuner sets with them (``--`` stripped, aliases
    and legacy names resolved; the last key wins, as in argparse)."""
    return document.derive(
        "training_options",
        lambda doc: {setting.option or setting.resolution.name: setting.value for setting in settings(doc)},
    )


def effective(document: Document, option_name: str) -> Optional[Setting]:
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
    return simpletuner.data()["legacy_renames"][setting.resolution.name]["transform"] == "identity"


def effective_text(document: Optional[Document], option_name: str) -> Optional[str]:
    if document is None:
        return None
    setting = effective(document, option_name)
    return setting.text if setting else None


def uses_lycoris(document: Document) -> bool:
    return effective_text(document, "lora_type") == "lycoris"


def model_family(training: Document) -> Optional[str]:
    """The training config's ``model_family`` as SimpleTuner compares it (stripped, lower-cased)."""
    family = effective_text(training, "model_family")
    return family.strip().lower() if family else None


# -- files a training config names -------------------------------------------------------------------

# SimpleTuner's default when lora_type is lycoris and lycoris_config is absent.
DEFAULT_LYCORIS_CONFIG = "config/lycoris_config.json"
# SimpleTuner resolves `config/examples/X` inside its installed package (simpletuner/examples/X).
BUNDLED_EXAMPLES_PREFIX = "config/examples/"


def bundled_example(config_path: Path, reference: str) -> Optional[Path]:
    """Where ``config/examples/X`` lies when the training config itself sits in a copy of SimpleTuner's
    examples folder: the same file SimpleTuner would open from its package."""
    if not reference.startswith(BUNDLED_EXAMPLES_PREFIX):
        return None
    rest = reference[len(BUNDLED_EXAMPLES_PREFIX) :]
    for folder in config_path.resolve().parents:
        if folder.name == "examples" and (folder / rest).is_file():
            return folder / rest
    return None


def find_named_file(config_path: Path, reference: str) -> tuple[Optional[Path], list[Path]]:
    """Find a file a training config (at ``config_path``) names: its LyCORIS config, its data backend config.

    Returns the path found (or None) and every place looked, in order. Relative paths are tried
    against the training config's folder, then the current directory (SimpleTuner resolves against
    its working directory; users usually write them relative to the config file), then as one of
    SimpleTuner's bundled examples.
    """
    candidate = Path(reference).expanduser()
    places = [candidate] if candidate.is_absolute() else [config_path.parent / candidate, Path.cwd() / candidate]
    unique: list[Path] = []
    for place in places:
        if place not in unique:
            unique.append(place)
    for place in unique:
        if place.is_file():
            return place, unique
    return bundled_example(config_path, reference), unique


def resolve_lycoris_config(training: Document) -> tuple[Optional[Path], list[Path], str]:
    """The LyCORIS config a training config points at, as SimpleTuner reads ``lycoris_config``
    (SimpleTuner's default ``config/lycoris_config.json`` when it is not set).

    Returns the path found (or None), every place looked, and the reference as written.
    """
    reference = effective_text(training, "lycoris_config") or DEFAULT_LYCORIS_CONFIG
    found, places = find_named_file(training.path, reference)
    return found, places, reference


def resolve_data_backend_config(training: Document) -> tuple[Optional[Path], list[Path], Optional[str]]:
    """The dataset config (``multidatabackend.json``) a training config names in ``data_backend_config``.

    Returns the path found (or None), every place looked, and the reference as written (None when the option
    is not set or is a ``{env:...}`` placeholder lint cannot resolve)."""
    setting = effective(training, "data_backend_config")
    if setting is None or setting.text is None or setting.output.placeholder:
        return None, [], None
    found, places = find_named_file(training.path, setting.text)
    return found, places, setting.text
