"""What ``lyco sample`` and ``lyco merge`` start from: the model, its family, its options and the adapter's
weights, each checked, and the adapter loaded onto the denoiser as LyCORIS loads it.

Two ways in:

* a training config: its model, flavour, LyCORIS config and validation settings; the weights default to the
  run's adapter (``output_dir/pytorch_lora_weights.safetensors``);
* ``--model`` (a diffusers pipeline folder or hub id) with ``--weights``: the family from the folder's
  ``model_index.json`` or, failing that, the weights' metadata (lyco writes ``model_family``,
  ``model_flavour`` and the complete ``lycoris_config``); SimpleTuner's validation defaults.

The adapter is built from the file with LyCORIS's own ``create_lycoris_from_weights`` (the algorithm, ranks,
factors and alphas come from the tensors), at the strength asked for; every module of the file must find its
layer in the denoiser (weights for another model are refused), and T-LoRA gets its mask schedule from the
LyCORIS config (the weights' metadata, else the training config).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional

from .config import ConfigError, TrainConfig, load_config
from .families import FAMILIES, components, get_family
from .families.base import Family
from .options import TrainingOptions


class InputError(ConfigError):
    """A file or argument that is not what the command needs (exit status 2)."""


@dataclass
class Source:
    options: TrainingOptions
    family: Family
    weights: Path
    lycoris: Optional[dict[str, Any]]  # the LyCORIS config the weights were trained with, when known
    config: Optional[TrainConfig] = None
    algos: dict[str, int] = field(default_factory=dict)  # algorithm -> modules in the file
    modules: dict[str, Any] = field(default_factory=dict)  # the file's modules (lyco_lint.weights.adapter.Module)

    @property
    def is_tlora(self) -> bool:
        return "tlora" in self.algos


def resolve(config: Optional[str], model: Optional[str], weights: Optional[str], dtype: Optional[str]) -> Source:
    """The command's inputs checked: a training config or ``--model`` (not both), the weights file, the dtype."""
    if dtype not in (None, "bf16", "fp32"):
        raise InputError(f"--dtype {dtype}: choose bf16 or fp32")
    if (config is None) == (model is None):
        raise InputError("give a training config (lyco sample config.json) or --model MODEL with --weights PATH, not both")
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise InputError(f"config file {path} not found")
        train = load_config(path)
        options = train.options
        weights_path = Path(weights) if weights else train.output_dir / "pytorch_lora_weights.safetensors"
        if not weights and not weights_path.is_file():
            raise InputError(
                f"the run has no adapter yet ({weights_path} not found): train it first (lyco train {path}), or pass --weights "
                f"(a checkpoint's: {train.output_dir}/checkpoint-STEP/pytorch_lora_weights.safetensors)"
            )
        family = get_family(options.model_family)
        family.check(options)
        source = Source(options, family, weights_path, train.lycoris, train)
    else:
        if not weights:
            raise InputError("--model needs --weights PATH (the adapter's .safetensors file)")
        source = from_model(model, Path(weights))
    read_weights(source)
    components.check_reachable(source.family.model_root(source.options))
    if dtype is not None:
        source.options = replace(source.options, mixed_precision="no" if dtype == "fp32" else "bf16")
    return source


def command_status(command: str, writing: str, say, work: Callable[[], Any]) -> tuple[int, Any]:
    """``lyco sample`` / ``lyco merge``: run ``work`` and turn what it raises into one line and the exit status
    (0 done, 1 a config problem, 2 bad input, a failed write of ``writing`` or missing dependencies); returns
    the status and what ``work`` returned (None when it failed)."""
    try:
        return 0, work()
    except InputError as error:
        say(f"error: {error}")
        return 2, None
    except ConfigError as error:
        say(f"error: {error}")
        return 1, None
    except OSError as error:  # writing the result: a full disk, permissions changed while it ran
        say(f"error: writing {writing}: {error}")
        return 2, None
    except ModuleNotFoundError as error:
        say(f"error: lyco {command} needs the trainer's dependencies ({error.name} is missing): pip install 'lyco[train]'")
        return 2, None


def check_output(folder: Path) -> None:
    """``--output`` can be written (not a file, not under one, writable), checked before anything loads."""
    from .plan import check_output_dir

    try:
        check_output_dir(folder, create=False, name="--output")
    except ConfigError as error:
        raise InputError(str(error)) from None


def read_weights(source: Source) -> None:
    """The file's header and modules (lyco_lint's reader: no torch); a clear error for what is not an adapter."""
    from lyco_lint.weights.adapter import read_adapter
    from lyco_lint.weights.reader import TensorData, WeightsError, read_header

    path = source.weights
    if not path.is_file():
        raise InputError(f"weights {path} not found; give the adapter's .safetensors file")
    try:
        header = read_header(path)
    except WeightsError as error:
        raise InputError(f"{path} is not an adapter lyco can load: {error}") from None
    adapter = read_adapter(header, TensorData(header))
    known = {name: module for name, module in adapter.modules.items() if module.algo is not None}
    if not known:
        raise InputError(f"{path} holds no LyCORIS module (no key LyCORIS's loader recognises); `lyco inspect {path}` tells what it is")
    source.modules = known
    for module in known.values():
        source.algos[module.algo] = source.algos.get(module.algo, 0) + 1
    metadata_config = header.metadata.get("lycoris_config")
    if metadata_config:
        try:
            parsed = json.loads(metadata_config)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            source.lycoris = parsed  # the complete config that trained these weights
    trained_on = header.metadata.get("model_family")
    if trained_on and trained_on != source.family.name:
        raise InputError(
            f"{path} was trained on model_family {trained_on} (its metadata), but the model is {source.family.name}; "
            "use the model the adapter was trained on"
        )


def from_model(model: str, weights: Path) -> Source:
    """The family and options for ``--model``: from the folder's model_index.json, else the weights' metadata."""
    from lyco_lint.weights.reader import WeightsError, read_header

    metadata: dict[str, str] = {}
    if weights.is_file():
        try:
            metadata = read_header(weights).metadata
        except WeightsError:
            metadata = {}  # read_weights says what is wrong with it
    folder = Path(model).expanduser()
    class_name = None
    if folder.is_dir():
        index = folder / "model_index.json"
        if not index.is_file():
            raise InputError(f"--model {model} is a folder without model_index.json; point it at a diffusers pipeline folder")
        class_name = (components.read_json(index) or {}).get("_class_name")
        name = components.pipeline_family(str(class_name))
        if name not in FAMILIES:
            raise InputError(f"--model {model} holds a {class_name}, which fits {name or 'no family lyco knows'}; lyco samples and merges {', '.join(sorted(FAMILIES))}")
    elif folder.exists() or model.startswith((".", "/", "~")):
        raise InputError(f"--model {model} is not a folder; point it at a diffusers pipeline folder (with model_index.json) or a hub id")
    else:
        name = metadata.get("model_family")
        if name not in FAMILIES:
            raise InputError(
                f"cannot tell the model family of {model}: the weights' metadata names {name or 'none'}; use a local pipeline "
                "folder (its model_index.json tells) or weights written by lyco train"
            )
    family = FAMILIES[name]
    flavour = metadata.get("model_flavour") if metadata.get("model_family") == name else None
    if name == "flux2" and class_name is not None:
        flavour = "dev" if class_name == "Flux2Pipeline" else (flavour if flavour and flavour != "dev" else "klein-4b")
    options = TrainingOptions(
        model_family=name, model_flavour=flavour, pretrained_model_name_or_path=model, model_type="lora", lora_type="lycoris",
    )
    return Source(options, family, weights, None)


# -- the adapter on the denoiser (torch) -------------------------------------------------------------------------


def load_adapter(source: Source, denoiser, strength: float, device):
    """LyCORIS's network from the weights on ``denoiser`` at ``strength`` (not applied yet), as an
    :class:`~lyco_train.adapter.Adapter` with T-LoRA's mask schedule; float32 on ``device``."""
    import torch
    from lycoris import create_lycoris_from_weights

    from lyco_lint.knowledge.lycoris import NetworkArgumentError, network_arguments
    from lyco_lint.meta_model.patches import captured_output, no_tlora_gc

    from .adapter import Adapter, TloraSchedule

    try:
        with no_tlora_gc(), captured_output([]):  # T-LoRA's init collects garbage per module (slow, not wrong); no INFO lines
            network, _ = create_lycoris_from_weights(float(strength), str(source.weights), denoiser)
    except (RuntimeError, ValueError, KeyError) as error:
        raise InputError(
            f"{source.weights} does not fit {type(denoiser).__name__} ({type(error).__name__}: {str(error).splitlines()[0][:200]}): "
            "weights for another model? `lyco inspect --model` tells where they do not fit"
        ) from None
    loaded = {module.lora_name for module in network.loras}
    missing = sorted(set(source.modules) - loaded)
    if missing:
        raise InputError(
            f"{source.weights}: {len(missing)} of its {len(source.modules)} modules have no layer in this {type(denoiser).__name__} "
            f"(e.g. {missing[0]}): the weights are for another model; use the model they were trained on"
        )
    network.to(device, dtype=torch.float32)
    network.requires_grad_(False)
    schedule = None
    if source.is_tlora:
        if source.lycoris is None:
            raise InputError(
                f"{source.weights} is a T-LoRA, whose rank mask per step comes from its LyCORIS config (tlora_min_rank, "
                "tlora_alpha), and the file does not carry it: sample it with the training config (lyco sample config.json)"
            )
        try:
            arguments = network_arguments(source.lycoris)
        except NetworkArgumentError as error:
            raise InputError(f"the LyCORIS config of {source.weights}: {error}") from None
        groups = sorted({getattr(module, "mask_group_id", 0) for module in network.loras})
        schedule = TloraSchedule(arguments.linear_dim, arguments.tlora_min_rank, arguments.tlora_alpha, source.family.num_train_timesteps, tuple(groups))
    return Adapter(network, dict(source.lycoris or {}), schedule)
