"""LYC3xx: SimpleTuner training configs (``config.json``), alone and combined with their LyCORIS config.

SimpleTuner checks a config.json only when a run starts, after its loader has rewritten the JSON
into ``--key=value`` arguments (``training_options.loader_output``) and argparse has parsed them;
LyCORIS-related mistakes surface even later, or never. The rules here replay those two steps on
the file, so that every finding is something SimpleTuner would refuse, silently drop or silently
misuse. Rules that combine both files (LYC304, LYC305, LYC307, LYC309) run on the LyCORIS config
and read the training config from its ``context``; when a finding is caused by a value in the
training config, a second hit points there (``Hit(document=...)``).
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Optional

from .. import training_options as st
from ..catalog import ERROR, LYCORIS, TRAINING, WARNING, Hit, rule
from ..documents import BUNDLED_EXAMPLES_PREFIX, Document, find_named_file, resolve_lycoris_config
from ..training_options import Setting, effective, effective_text, passes_value, settings, uses_lycoris
from ..jsonpos import join_pointer
from ..schemas import did_you_mean

# -- the training config as SimpleTuner reads it ----------------------------------------------------


def _places_text(places: list[Path]) -> str:
    return ", ".join(str(place) for place in places)


# -- LYC301 - LYC303: LyCORIS wiring ----------------------------------------------------------------


@rule(
    "LYC301",
    "lycoris-config-not-found",
    ERROR,
    applies_to=TRAINING,
    summary=(
        "Reports a training config with `lora_type: lycoris` whose LyCORIS config file cannot be found. "
        "lyco looks relative to the training config's folder, then to the current directory, and says "
        "where it looked. Without `lycoris_config` SimpleTuner's default `config/lycoris_config.json` is "
        "used. A `config/examples/...` path is resolved inside SimpleTuner's installed package, which "
        "lint cannot see: that case is a warning."
    ),
    why=(
        "SimpleTuner stops with \"Could not find the JSON configuration file\" at start-up, and lint "
        "cannot check the LyCORIS config in the training config's context."
    ),
    example='{"model_type": "lora", "lora_type": "lycoris", "lycoris_config": "config/lycoris_confg.json"}',
    fixed='{"model_type": "lora", "lora_type": "lycoris", "lycoris_config": "config/lycoris_config.json"}',
)
def lycoris_config_not_found(document: Document) -> Iterator[Hit]:
    if not uses_lycoris(document):
        return
    found, places, reference = resolve_lycoris_config(document)
    if found is not None or "{env:" in reference:
        return
    configured = effective(document, "lycoris_config")
    setting = configured or effective(document, "lora_type")
    where = f"looked in {_places_text(places)}"
    if reference.startswith(BUNDLED_EXAMPLES_PREFIX):
        yield Hit(
            setting.pointer,
            f"LyCORIS config '{reference}' is resolved by SimpleTuner inside its installed package "
            f"(simpletuner/examples/...), which lint cannot see ({where}); it was not checked. Copy it next "
            "to this config and point lycoris_config at the copy to have it linted.",
            severity=WARNING,
        )
        return
    default = "" if configured else " (SimpleTuner's default, since lycoris_config is not set)"
    yield Hit(
        setting.pointer,
        f"lora_type is lycoris but the LyCORIS config '{reference}'{default} does not exist; {where}. "
        "Fix the path (relative to this file or to the folder SimpleTuner runs in) or create the file.",
    )


@rule(
    "LYC302",
    "lycoris-config-unused",
    WARNING,
    applies_to=TRAINING,
    summary=(
        "Reports `lycoris_config` set while `lora_type` is not `lycoris` (PEFT LoRA is trained instead), "
        "or while `model_type` is `full` (no adapter is trained at all)."
    ),
    why="The LyCORIS config is silently ignored, so the run trains something else than its author planned.",
    example='{"model_type": "lora", "lora_type": "standard", "lycoris_config": "config/lycoris_config.json"}',
    fixed='{"model_type": "lora", "lora_type": "lycoris", "lycoris_config": "config/lycoris_config.json"}',
)
def lycoris_config_unused(document: Document) -> Iterator[Hit]:
    setting = effective(document, "lycoris_config")
    if setting is None:
        return
    lora_type = effective_text(document, "lora_type") or "standard"
    if lora_type != "lycoris":
        yield Hit(
            setting.pointer,
            f"lycoris_config is set but lora_type is '{lora_type}', so SimpleTuner trains a PEFT LoRA and never "
            "reads the LyCORIS config; set \"lora_type\": \"lycoris\" or remove lycoris_config.",
        )
    elif effective_text(document, "model_type") == "full":
        yield Hit(
            setting.pointer,
            "model_type is 'full', so no adapter is trained and the LyCORIS config is only validated, never used; "
            "set \"model_type\": \"lora\" to train it.",
        )


# PEFT-only options and what to write in the LyCORIS config instead.
PEFT_ONLY_OPTIONS = {
    "lora_rank": "set linear_dim in the LyCORIS config",
    "lora_alpha": "set linear_alpha in the LyCORIS config",
    "lora_dropout": "set dropout in the LyCORIS config",
    "lora_init_type": "LyCORIS initialises its own modules",
    "peft_lora_mode": "choose the algorithm with algo in the LyCORIS config",
    "peft_lora_target_modules": "list targets in apply_preset.target_module / target_name of the LyCORIS config",
    "use_dora": "set dora_wd in the LyCORIS config",
    "lora_format": "LyCORIS files are always saved with LyCORIS keys",
    "flux_lora_target": "list targets in apply_preset.target_module of the LyCORIS config",
    "slider_lora_target": "list targets in apply_preset of the LyCORIS config",
    "acestep_lora_target": "list targets in apply_preset of the LyCORIS config",
    "singlora_ramp_up_steps": "SingLoRA is a PEFT mode",
}


@rule(
    "LYC303",
    "peft-option-ignored",
    WARNING,
    applies_to=TRAINING,
    summary=(
        "Reports PEFT-only options (`lora_rank`, `lora_alpha`, `lora_dropout`, `use_dora`, "
        "`peft_lora_target_modules`, `flux_lora_target`, `lora_format`, ...) set together with "
        "`lora_type: lycoris`. A PEFT checkbox set to JSON `false` is not reported: nothing is lost."
    ),
    why=(
        "SimpleTuner ignores them for LyCORIS without a word: the rank, alpha, DoRA and targets come from the "
        "LyCORIS config, so the value in config.json only misleads the reader (bghira/SimpleTuner#3163)."
    ),
    example='{"model_type": "lora", "lora_type": "lycoris", "lora_rank": 64, "use_dora": true}',
    fixed='{"model_type": "lora", "lora_type": "lycoris"}',
)
def peft_option_ignored(document: Document) -> Iterator[Hit]:
    if not uses_lycoris(document):
        return
    for setting in settings(document):
        instead = PEFT_ONLY_OPTIONS.get(setting.option or "")
        if instead is None or not setting.reaches_argparse or setting.value is False:
            continue
        yield Hit(
            setting.pointer,
            f"{setting.option} is a PEFT LoRA option; with lora_type lycoris SimpleTuner ignores it ({instead}). "
            "Remove it.",
            at="key",
        )


# -- LYC304 / LYC305 / LYC306: SDXL FeedForward and SageAttention ----------------------------------

# Where SDXL's UNet keeps its diffusers FeedForward layers: (block path, block class, number of
# Transformer2DModel in the block, BasicTransformerBlocks in each). Kolors has the same layout.
# tests/test_rules_training.py checks this against a UNet2DConditionModel built on the meta device.
SDXL_ATTENTION_BLOCKS = (
    ("down_blocks.1", "CrossAttnDownBlock2D", 2, 2),
    ("down_blocks.2", "CrossAttnDownBlock2D", 2, 10),
    ("mid_block", "UNetMidBlock2DCrossAttn", 1, 10),
    ("up_blocks.0", "CrossAttnUpBlock2D", 3, 10),
    ("up_blocks.1", "CrossAttnUpBlock2D", 3, 2),
)
# LyCORIS' class defaults when no preset (or one without target_module) is applied.
LYCORIS_DEFAULT_TARGETS = ("Linear", "Conv1d", "Conv2d", "Conv3d", "GroupNorm", "LayerNorm")


@lru_cache(maxsize=4)
def sdxl_feedforward_tree(root_class: str) -> tuple[tuple[str, str], ...]:
    """(module path, class name) of every FeedForward Linear of the SDXL UNet and of all its ancestors."""
    nodes = {"": root_class}
    for block, block_class, transformers, depth in SDXL_ATTENTION_BLOCKS:
        if "." in block:
            nodes[block.split(".")[0]] = "ModuleList"
        nodes[block] = block_class
        nodes[f"{block}.attentions"] = "ModuleList"
        for index in range(transformers):
            transformer = f"{block}.attentions.{index}"
            nodes[transformer] = "Transformer2DModel"
            nodes[f"{transformer}.transformer_blocks"] = "ModuleList"
            for depth_index in range(depth):
                basic = f"{transformer}.transformer_blocks.{depth_index}"
                nodes[basic] = "BasicTransformerBlock"
                nodes[f"{basic}.ff"] = "FeedForward"
                nodes[f"{basic}.ff.net"] = "ModuleList"
                nodes[f"{basic}.ff.net.0"] = "GEGLU"
                nodes[f"{basic}.ff.net.0.proj"] = "Linear"
                nodes[f"{basic}.ff.net.2"] = "Linear"
    return tuple(nodes.items())


@dataclass(frozen=True)
class FeedForwardCause:
    """A target of the LyCORIS config that makes LyCORIS adapt SDXL FeedForward layers."""

    pointer: str
    at: str
    label: str
    example: str  # one FeedForward Linear it adapts
    count: int
    default_targets: bool = False  # no target_module: LyCORIS' own default list is in force


def _preset_targets(config: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The targeting state LyCORIS ends up in for this config, as SimpleTuner applies it.

    Like LyCORIS, the target lists are splatted into sets (a string target becomes its characters,
    which match no class), and map keys join the targets.
    """
    preset = config.get("apply_preset")
    if preset is None or preset == {}:
        preset = {}  # SimpleTuner skips apply_preset; the class defaults stay
    if not isinstance(preset, dict):
        return None
    modules = preset.get("target_module", list(LYCORIS_DEFAULT_TARGETS))
    module_map = preset.get("module_algo_map") or {}
    names = preset.get("target_name") or []
    name_map = preset.get("name_algo_map") or {}
    exclude = preset.get("exclude_name") or []
    if not isinstance(module_map, dict) or not isinstance(name_map, dict):
        return None  # LyCORIS itself fails on these (LYC2xx reports them)
    if not all(isinstance(value, (list, str)) for value in (modules, names, exclude)):
        return None
    return {
        "modules": {item for item in modules if isinstance(item, str)} | {key for key in module_map},
        "module_map": module_map,
        "names": [item for item in [*names, *name_map] if isinstance(item, str)],
        "fnmatch": bool(preset.get("use_fnmatch")),  # LyCORIS tests its truthiness
        "exclude": [item for item in exclude if isinstance(item, str)],
        "has_preset": "apply_preset" in config,
        "explicit_modules": "target_module" in preset,
    }


def _matcher(use_fnmatch: bool):
    def matches(pattern: str, name: str) -> bool:
        if use_fnmatch:
            return fnmatch.fnmatch(name, pattern)
        try:
            return re.match(pattern, name) is not None
        except re.error:
            return False

    return matches


def feedforward_causes(config: Any, family_name: Optional[str]) -> list[FeedForwardCause]:
    """The targets through which LyCORIS would adapt FeedForward Linears of an SDXL-UNet family."""
    entry = st.family(family_name)
    if entry is None or not isinstance(config, dict):
        return []
    state = _preset_targets(config)
    adaptations = feedforward_adaptations(config, entry.get("model_class") or "UNet2DConditionModel")
    return [_cause(config, state, kind, target, paths) for (kind, target), paths in adaptations.items()]


def feedforward_adaptations(config: Any, root_class: str) -> dict[tuple[str, str], list[str]]:
    """FeedForward Linears of the SDXL UNet that LyCORIS would adapt, keyed by the target responsible.

    Replays lycoris-lora 4.1.3's ``create_modules`` on the FeedForward part of the UNet (whose root
    module has class ``root_class``): class targets (``target_module`` ∪ ``module_algo_map`` keys)
    adapt every Linear below the matched module unless a name pattern also matches it; name targets
    (``target_name`` ∪ ``name_algo_map`` keys) adapt only the module they match; ``exclude_name``
    paths are skipped. Keys are ``("class", name)`` or ``("name", pattern)``.
    """
    state = _preset_targets(config) if isinstance(config, dict) else None
    if state is None:
        return {}
    tree = sdxl_feedforward_tree(root_class)
    matches = _matcher(state["fnmatch"])
    exclude = state["exclude"]

    def excluded(path: str) -> bool:
        return bool(path) and (path in exclude or any(matches(pattern, path) for pattern in exclude))

    linears = [path for path, cls in tree if cls == "Linear"]
    adapted: dict[tuple[str, str], list[str]] = {}
    for path, cls in tree:
        if excluded(path):
            continue
        name_hits = [pattern for pattern in state["names"] if path == pattern or matches(pattern, path)]
        if cls in state["modules"] and not name_hits:
            below = [
                linear
                for linear in linears
                if (not path or linear == path or linear.startswith(path + ".")) and not excluded(linear)
            ]
            if below:
                adapted.setdefault(("class", cls), []).extend(below)
        elif name_hits and cls == "Linear":
            adapted.setdefault(("name", name_hits[0]), []).append(path)
    return {key: sorted(set(paths)) for key, paths in adapted.items()}


def _cause(config: dict[str, Any], state: dict[str, Any], kind: str, target: str, paths: list[str]) -> FeedForwardCause:
    preset = config.get("apply_preset") if isinstance(config.get("apply_preset"), dict) else {}
    example, count = paths[0], len(paths)
    if kind == "class":
        modules = preset.get("target_module")
        if not state["explicit_modules"] and target in LYCORIS_DEFAULT_TARGETS and target not in state["module_map"]:
            where = "/apply_preset" if state["has_preset"] else ""
            label = (
                "apply_preset has no target_module, so LyCORIS keeps its default targets and adapts every Linear "
                "and Conv layer"
                if state["has_preset"]
                else "there is no apply_preset, so LyCORIS adapts every Linear and Conv layer"
            )
            return FeedForwardCause(where, "key" if where else "whole", label, example, count, default_targets=True)
        if isinstance(modules, list) and target in modules:
            pointer = join_pointer("/apply_preset/target_module", modules.index(target))
            return FeedForwardCause(pointer, "value", f"target_module '{target}'", example, count)
        if target in state["module_map"]:
            pointer = join_pointer("/apply_preset/module_algo_map", target)
            label = f"module_algo_map key '{target}' (map keys are targets too)"
            return FeedForwardCause(pointer, "key", label, example, count)
        return FeedForwardCause("/apply_preset/target_module", "key", f"target_module '{target}'", example, count)
    names = preset.get("target_name")
    if isinstance(names, list) and target in names:
        pointer = join_pointer("/apply_preset/target_name", names.index(target))
        return FeedForwardCause(pointer, "value", f"target_name '{target}'", example, count)
    pointer = join_pointer("/apply_preset/name_algo_map", target)
    return FeedForwardCause(pointer, "key", f"name_algo_map key '{target}'", example, count)


def _adapts_text(cause: FeedForwardCause) -> str:
    """"target_module 'X' adapts FeedForward layers (N Linear layers, e.g. path)", as one clause."""
    verb = ", FeedForward included" if cause.default_targets else " adapts FeedForward layers"
    return f"{cause.label}{verb} ({cause.count} Linear layers, e.g. {cause.example})"


def _feedforward_message(cause: FeedForwardCause, family_name: str) -> str:
    return (
        f"on {family_name} ({_sdxl_name(family_name)} UNet) {_adapts_text(cause)}; training FeedForward on the "
        "SDXL UNet can drive the loss to NaN. Target Attention only: "
        "\"apply_preset\": {\"target_module\": [\"Attention\"]}."
    )


def _sdxl_name(family_name: str) -> str:
    return "the SDXL" if family_name == "sdxl" else "an SDXL-style"


SAGE_TRAINING_USAGES = ("training", "training+inference")


def sage_in_training(training: Optional[Document]) -> Optional[Setting]:
    """The sageattention_usage setting that puts a SageAttention kernel into training, if any."""
    if training is None:
        return None
    mechanism = effective_text(training, "attention_mechanism") or ""
    usage = effective(training, "sageattention_usage")
    if mechanism.startswith("sageattention") and usage is not None and usage.text in SAGE_TRAINING_USAGES:
        return usage
    return None


@rule(
    "LYC304",
    "sdxl-feedforward-nan",
    WARNING,
    applies_to=LYCORIS,
    summary=(
        "Reports a LyCORIS config that adapts FeedForward layers of an SDXL-UNet family (sdxl, kolors): "
        "directly (`FeedForward`, `GEGLU`, `Linear`), through a container that holds them "
        "(`BasicTransformerBlock`, `Transformer2DModel`, the cross-attention blocks), through name patterns "
        "that match `...ff.net...`, or because there is no `apply_preset`/`target_module` and LyCORIS "
        "falls back to every Linear. The family comes from the training config that points at the file, "
        "or from `lyco lint --family sdxl`."
    ),
    why=(
        "SimpleTuner's LyCORIS guide warns that training FeedForward modules on SDXL can drive the loss to "
        "NaN (almost certainly so with SageAttention in training, LYC305); nothing in SimpleTuner checks it. "
        "Its own SDXL example targets Attention only."
    ),
    example=(
        '{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1,\n'
        ' "apply_preset": {"target_module": ["Attention", "FeedForward"]}}'
    ),
    fixed=(
        '{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1,\n'
        ' "apply_preset": {"target_module": ["Attention"]}}'
    ),
)
def sdxl_feedforward_nan(document: Document) -> Iterator[Hit]:
    family_name = document.context.family
    if not st.is_sdxl_unet_family(family_name):
        return
    for cause in feedforward_causes(document.value, family_name):
        yield Hit(cause.pointer, _feedforward_message(cause, family_name), at=cause.at)


@rule(
    "LYC305",
    "sdxl-feedforward-sageattention",
    ERROR,
    applies_to=LYCORIS,
    summary=(
        "Reports LYC304's condition (FeedForward adapted on an SDXL-UNet family) when the training config "
        "also uses a SageAttention `attention_mechanism` with `sageattention_usage` `training` or "
        "`training+inference`. It is reported twice: at the target in the LyCORIS config and at "
        "`sageattention_usage` in the training config."
    ),
    why=(
        "SimpleTuner's documentation says this combination makes NaN losses almost certain: SageAttention "
        "kernels give no gradients, so the FeedForward adapters carry all the update."
    ),
    example=(
        '{"config.json": {"model_family": "sdxl", "lora_type": "lycoris", "attention_mechanism": "sageattention",\n'
        '                 "sageattention_usage": "training"},\n'
        ' "lycoris_config.json": {"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1,\n'
        '                         "apply_preset": {"target_module": ["Attention", "FeedForward"]}}}'
    ),
    fixed=(
        '{"config.json": {"model_family": "sdxl", "lora_type": "lycoris", "attention_mechanism": "sageattention",\n'
        '                 "sageattention_usage": "inference"},\n'
        ' "lycoris_config.json": {"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1,\n'
        '                         "apply_preset": {"target_module": ["Attention"]}}}'
    ),
)
def sdxl_feedforward_sageattention(document: Document) -> Iterator[Hit]:
    family_name = document.context.family
    training = document.context.training
    usage = sage_in_training(training)
    if usage is None or not st.is_sdxl_unet_family(family_name):
        return
    causes = feedforward_causes(document.value, family_name)
    mechanism = effective_text(training, "attention_mechanism")
    for cause in causes:
        yield Hit(
            cause.pointer,
            f"on {family_name} {_adapts_text(cause)} while {training.display_path} trains with {mechanism} "
            f"(sageattention_usage '{usage.text}'): NaN losses are almost certain. Target Attention only, or set "
            "sageattention_usage to inference.",
            at=cause.at,
        )
    if causes:
        yield Hit(
            usage.pointer,
            f"sageattention_usage '{usage.text}' with {mechanism} while the LyCORIS config {document.display_path} "
            f"adapts FeedForward layers of the {family_name} UNet: NaN losses are almost certain. Set "
            "\"sageattention_usage\": \"inference\", or target Attention only in the LyCORIS config.",
            document=training,
        )


@rule(
    "LYC306",
    "sageattention-training",
    WARNING,
    applies_to=TRAINING,
    summary=(
        "Reports a SageAttention `attention_mechanism` used in training (`sageattention_usage` `training` or "
        "`training+inference`), for any model family."
    ),
    why=(
        "SageAttention kernels have no backward pass: the attention projections, the usual LyCORIS targets, "
        "get no useful gradient and stay effectively untrained. SimpleTuner only logs an error and goes on."
    ),
    example='{"model_family": "flux2", "attention_mechanism": "sageattention", "sageattention_usage": "training+inference"}',
    fixed='{"model_family": "flux2", "attention_mechanism": "sageattention", "sageattention_usage": "inference"}',
)
def sageattention_training(document: Document) -> Iterator[Hit]:
    usage = sage_in_training(document)
    if usage is None:
        return
    yield Hit(
        usage.pointer,
        f"sageattention_usage '{usage.text}' runs {effective_text(document, 'attention_mechanism')} in training, "
        "but SageAttention kernels do not propagate gradients, so attention layers are effectively not "
        "trained; set \"sageattention_usage\": \"inference\".",
    )


# -- LYC307 - LYC309 ------------------------------------------------------------------------------


@rule(
    "LYC307",
    "tlora-video",
    WARNING,
    applies_to=LYCORIS,
    summary="Reports `algo: tlora` used with a video model family (wan, ltxvideo, hunyuanvideo, ...).",
    why=(
        "T-LoRA masks ranks by diffusion timestep; video VAEs compress frames in time, mixing frames across "
        "timestep boundaries, and SimpleTuner itself warns that results may be poor. T-LoRA is meant for "
        "image customisation."
    ),
    example=(
        '{"config.json": {"model_family": "wan", "lora_type": "lycoris"},\n'
        ' "lycoris_config.json": {"algo": "tlora", "multiplier": 1.0, "linear_dim": 64, "linear_alpha": 32}}'
    ),
    fixed=(
        '{"config.json": {"model_family": "wan", "lora_type": "lycoris"},\n'
        ' "lycoris_config.json": {"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1,\n'
        '                         "factor": 8}}'
    ),
)
def tlora_video(document: Document) -> Iterator[Hit]:
    algo = document.value.get("algo") if isinstance(document.value, dict) else None
    family_name = document.context.family
    if not isinstance(algo, str) or algo.lower() != "tlora" or not st.is_video_family(family_name):
        return
    yield Hit(
        "/algo",
        f"T-LoRA on the video family '{family_name}': its per-timestep rank mask does not fit video latents "
        "that mix frames across timesteps; use lora or lokr for video, or train an image family.",
    )


@rule(
    "LYC308",
    "invalid-strength",
    ERROR,
    applies_to=TRAINING,
    summary=(
        "Reports a `validation_lycoris_strength` that is not a finite number (error), or that lies below 0 or "
        "above 2 (warning). This rule owns the option: LYC314 does not report it again."
    ),
    why=(
        "SimpleTuner calls `set_multiplier(float(strength))` on the LyCORIS network before every validation: "
        "a value that is not a number stops the run, NaN/infinity wreck every validation image, and strengths "
        "outside 0..2 show an adapter very different from the one being trained."
    ),
    example='{"lora_type": "lycoris", "validation_lycoris_strength": "full"}',
    fixed='{"lora_type": "lycoris", "validation_lycoris_strength": 1.0}',
)
def invalid_strength(document: Document) -> Iterator[Hit]:
    setting = effective(document, "validation_lycoris_strength")
    if setting is None or setting.output.placeholder:
        return
    argument = setting.output.values[-1]
    if argument is st.FLAG:
        yield Hit(setting.pointer, "validation_lycoris_strength needs a number (such as 1.0), not true.")
        return
    try:
        strength = float(argument)
    except ValueError:
        yield Hit(setting.pointer, f"validation_lycoris_strength '{argument}' is not a number; write one such as 1.0.")
        return
    if not math.isfinite(strength):
        yield Hit(
            setting.pointer, f"validation_lycoris_strength is {argument}, not a finite number; write one such as 1.0."
        )
    elif strength < 0 or strength > 2:
        yield Hit(
            setting.pointer,
            f"validation_lycoris_strength {argument} is outside 0..2: validation would show the adapter "
            f"{'inverted' if strength < 0 else 'exaggerated'}, not as trained (multiplier 1.0); use a value "
            "between 0 and 2.",
            severity=WARNING,
        )


# base_model_precision schemes whose quantised Linear LyCORIS does not recognise (so it does not force
# bypass mode and the rebuild path does arithmetic on the quantised weight): torchao keeps the class
# nn.Linear and swaps in a tensor subclass (bghira/SimpleTuner#2612); nf4-bnb is loaded by diffusers'
# BitsAndBytesConfig as bnb Linear4bit, the base class LyCORIS does not list (it lists LinearNF4,
# LinearFP4, Linear8bitLt). quanto (QLinear) is detected and forced to bypass. sdnq, fp8-native and
# fp8-transformerengine replace Linear by modules that are not nn.Linear at all: bypass does not help
# there, so they are not this rule's business.
UNDETECTED_QUANTISATION_SUFFIXES = ("-torchao", "-bnb")


def quantised_without_detection(precision: Optional[str]) -> bool:
    if not precision or precision not in ((st.option("base_model_precision") or {}).get("choices") or ()):
        return False
    return precision.endswith(UNDETECTED_QUANTISATION_SUFFIXES)


def bypass_enabled(config: dict[str, Any]) -> bool:
    """``bypass_mode`` as create_lycoris reads it: ``str(v).lower() != "false"``, False when absent."""
    return "bypass_mode" in config and str(config["bypass_mode"]).lower() != "false"


@rule(
    "LYC309",
    "quantized-base-without-bypass",
    WARNING,
    applies_to=LYCORIS,
    summary=(
        "Reports a LyCORIS config without `bypass_mode: true` used by a training config whose "
        "`base_model_precision` quantises the base with a scheme LyCORIS does not detect by itself: torchao "
        "(`int8-torchao`, `fp8-torchao`, ...) and `nf4-bnb`. quanto schemes are detected and forced to bypass. "
        "Reported in the LyCORIS config and at `base_model_precision`. With `init_lora` SimpleTuner builds the "
        "network from the weights file and `bypass_mode` is dropped: a torchao base is then reported at "
        "`init_lora` whatever the LyCORIS config says."
    ),
    why=(
        "Without bypass LyCORIS rebuilds W + ΔW on every forward, doing arithmetic on the quantised weight: "
        "torchao weights fail with NotImplementedError (bghira/SimpleTuner#2612) and precision is lost. Bypass "
        "mode adds the adapter's output instead and never touches the base weight."
    ),
    example=(
        '{"config.json": {"lora_type": "lycoris", "base_model_precision": "int8-torchao"},\n'
        ' "lycoris_config.json": {"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1}}'
    ),
    fixed=(
        '{"config.json": {"lora_type": "lycoris", "base_model_precision": "int8-torchao"},\n'
        ' "lycoris_config.json": {"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1,\n'
        '                         "bypass_mode": true}}'
    ),
)
def quantized_base_without_bypass(document: Document) -> Iterator[Hit]:
    training = document.context.training
    config = document.value
    if training is None or not isinstance(config, dict):
        return
    precision = effective(training, "base_model_precision")
    if precision is None or not quantised_without_detection(precision.text):
        return
    if str(config.get("algo", "")).lower() == "full":
        return  # the full algo cannot run in bypass mode; quantised bases do not suit it at all
    init_lora = effective(training, "init_lora")
    if init_lora is not None and precision.text.endswith("-torchao"):
        # create_lycoris_from_weights drops bypass_mode (compat §4.7); torchao layers keep the class
        # Linear, so LyCORIS' automatic bypass for Linear subclasses does not rescue them either.
        yield Hit(
            init_lora.pointer,
            f"with init_lora SimpleTuner builds the LyCORIS network from the weights file, which ignores bypass_mode, "
            f"so on a {precision.text} base every forward rebuilds W + ΔW on quantised weights and can fail "
            "(NotImplementedError); drop init_lora or use a quanto base_model_precision.",
            document=training,
        )
        return
    if init_lora is not None or bypass_enabled(config):
        return  # nf4-bnb layers are Linear subclasses: LyCORIS bypasses them by itself when bypass_mode is unset
    where = "/bypass_mode" if "bypass_mode" in config else ""
    yield Hit(
        where,
        f"the base model is quantised with {precision.text} ({training.display_path}), which LyCORIS does not detect, "
        "so without bypass mode it rebuilds W + ΔW on the quantised weights on every forward and can fail "
        "(NotImplementedError with torchao); add \"bypass_mode\": true.",
        at="value" if where else "whole",
    )
    yield Hit(
        precision.pointer,
        f"base_model_precision {precision.text}: the LyCORIS config {document.display_path} does not set "
        "\"bypass_mode\": true, which LyCORIS needs on a base quantised this way; add it there.",
        document=training,
    )


# -- LYC310 - LYC316: what SimpleTuner's loader and argparse make of the file ------------------------

ALLOW_ABBREV_NOTE = (
    "SimpleTuner's parser keeps argparse's allow_abbrev: a unique prefix of an option name is silently "
    "expanded. lyco accepts such a key (SimpleTuner runs with it) but reports it as a warning, because "
    "the next SimpleTuner release may add an option that makes the prefix ambiguous, and a prefix shared "
    "by several options is an error."
)


@rule(
    "LYC310",
    "unknown-training-option",
    ERROR,
    applies_to=TRAINING,
    summary=(
        "Reports a training config key SimpleTuner does not accept, after stripping leading dashes and "
        "applying its legacy renames (`validation_steps`, `checkpointing_steps`, `save_total_limit`, ...); "
        "keys its loader ignores (`repeats`, `aspect_ratio_bucketing`, ...) are fine. The closest option is "
        "suggested. " + ALLOW_ABBREV_NOTE + " An unknown key whose value the loader drops anyway (`null`, "
        "`\"\"`, `\"false\"`, an object) is only a warning."
    ),
    why=(
        "Unknown keys are fatal, but only at start-up: argparse stops with \"unrecognized arguments\" after the "
        "environment and config were loaded, often on a rented GPU."
    ),
    example='{"model_type": "lora", "lora_ranks": 16}',
    fixed='{"model_type": "lora", "lora_rank": 16}',
)
def unknown_training_option(document: Document) -> Iterator[Hit]:
    for setting in settings(document):
        resolution = setting.resolution
        if resolution.accepted and resolution.how != "abbreviation":
            continue
        name = resolution.name
        if resolution.how == "abbreviation":
            yield Hit(
                setting.pointer,
                f"'{name}' is an abbreviation of {resolution.option}: SimpleTuner accepts it only because argparse "
                f"expands unique prefixes, and a future option can make it ambiguous; write \"{resolution.option}\".",
                at="key",
                severity=WARNING,
            )
            continue
        what, fix = _unknown_key_text(resolution)
        if setting.output.dropped is None:
            yield Hit(setting.pointer, f"{what}, so argparse stops at start-up with {fix}", at="key")
        else:
            yield Hit(
                setting.pointer,
                f"{what}; SimpleTuner's loader drops it today only because its value is "
                f"{_dropped_text(setting.output.dropped)}, and any other value stops argparse at start-up with {fix}",
                at="key",
                severity=WARNING,
            )


def _unknown_key_text(resolution: st.KeyResolution) -> tuple[str, str]:
    """(what is wrong with the key, argparse's error and the fix) for LYC310's messages."""
    name = resolution.name
    if resolution.how == "ambiguous":
        shown = ", ".join(resolution.candidates[:6]) + (", ..." if len(resolution.candidates) > 6 else "")
        return (
            f"'{name}' is not an option but a prefix of several ({shown})",
            "'ambiguous option'; write the full option name.",
        )
    if resolution.how == "not_accepted":
        return (
            f"'{name}' is a SimpleTuner WebUI setting that the trainer does not accept",
            "'unrecognized arguments'; remove it from config.json.",
        )
    # SimpleTuner's 555 options share long prefixes (validation_, lora_, ...): a loose match suggests an
    # unrelated option for a removed one (validation_torch_compile -> validation_prompt)
    suggestion = did_you_mean(name, st.option_names(), cutoff=0.75)
    hint = (
        f"did you mean '{suggestion}'?"
        if suggestion
        else f"no {st.simpletuner_version()} option is close; if it was removed from SimpleTuner, delete it."
    )
    return f"'{name}' is not a SimpleTuner option", f"'unrecognized arguments'; {hint}"


def _dropped_text(reason: str) -> str:
    return {
        "null": "null",
        "empty": "\"\"",
        "string-false": "\"false\"",
        "object": "(an object)",
        "empty-list": "[]",
    }.get(reason, reason)


def _loader_handles(resolution: st.KeyResolution) -> bool:
    """Keys the loader consumes itself before its generic value conversion (legacy handlers, ignored keys)."""
    if resolution.how == "ignored":
        return True
    legacy = st.data()["legacy_renames"].get(resolution.name)
    return bool(legacy and legacy["stage"] == "json_loader" and resolution.how == "legacy")


@rule(
    "LYC311",
    "string-false",
    WARNING,
    applies_to=TRAINING,
    summary='Reports the string `"false"` (any case) as a value in a training config.',
    why=(
        "SimpleTuner's loader drops the string \"false\" instead of passing it on, so it cannot turn off an "
        "option whose default is on (`gradient_checkpointing`, ...); only JSON `false` can. Where the default is "
        "off it does nothing but mislead."
    ),
    example='{"model_family": "flux2", "gradient_checkpointing": "false"}',
    fixed='{"model_family": "flux2", "gradient_checkpointing": false}',
)
def string_false(document: Document) -> Iterator[Hit]:
    for setting in settings(document):
        if setting.output.dropped != "string-false" or _loader_handles(setting.resolution):
            continue
        if not setting.resolution.accepted:
            continue  # LYC310 reports the key itself
        spec = st.option(setting.option or "") or {}
        default = spec.get("default")
        if default is True:
            effect = f"so {setting.option} stays on (its default is true)"
        elif setting.option and "default" in spec:
            effect = f"so {setting.option} keeps its default {st.default_text(spec)}"
        else:
            effect = "so the value has no effect"
        yield Hit(
            setting.pointer,
            f"SimpleTuner drops the string \"false\", {effect}; write JSON false (without quotes).",
        )


@rule(
    "LYC312",
    "unknown-model-family",
    ERROR,
    applies_to=TRAINING,
    summary=(
        "Reports a `model_family` that is not a SimpleTuner family (compared after stripping and lower-casing, "
        "as SimpleTuner does; dashes are not underscores) and a `model_flavour` that is not one of the "
        "family's flavours. The closest name is suggested."
    ),
    why=(
        "argparse refuses an unknown family at start-up; an unknown flavour is only noticed when the model is "
        "looked up. Registry names such as `kandinsky5-image` or `pixart_sigma` look right but are not "
        "accepted values."
    ),
    example='{"model_family": "kandinsky5-image", "model_flavour": "t2i-lite"}',
    fixed='{"model_family": "kandinsky5_image", "model_flavour": "t2i-lite-sft"}',
)
def unknown_model_family(document: Document) -> Iterator[Hit]:
    setting = effective(document, "model_family")
    if setting is None or setting.text is None or setting.output.placeholder:
        return
    family_name = setting.text.strip().lower()
    if st.family(family_name) is None:
        alias = st.data()["family_aliases"].get(family_name)
        suggestion = alias or did_you_mean(family_name, st.family_names())
        hint = f"did you mean '{suggestion}'?" if suggestion else "run `lyco explain model_family`"
        yield Hit(
            setting.pointer,
            f"'{setting.text}' is not a SimpleTuner model family (argparse refuses it at start-up); {hint}",
        )
        return
    flavour = effective(document, "model_flavour")
    if flavour is None or flavour.text is None or flavour.output.placeholder:
        return
    known = st.flavours(family_name)
    if known and flavour.text not in known:
        suggestion = did_you_mean(flavour.text, known)
        hint = f"did you mean '{suggestion}'? " if suggestion else ""
        yield Hit(
            flavour.pointer,
            f"'{flavour.text}' is not a flavour of {family_name}; {hint}its flavours are {', '.join(known)}.",
        )


def _choices_text(choices: list[Any], limit: int = 10) -> str:
    shown = ", ".join(str(choice) for choice in choices[:limit])
    return shown + (f", ... ({len(choices)} choices)" if len(choices) > limit else "")


@rule(
    "LYC313",
    "invalid-choice",
    ERROR,
    applies_to=TRAINING,
    summary=(
        "Reports a value that is not among the option's choices (`lora_type: \"LyCORIS\"`, "
        "`mixed_precision: \"bf17\"`). Choices are case-sensitive; only `model_family` is lower-cased by "
        "SimpleTuner (LYC312) and `lr_scheduler: cosine_with_warmup` is rewritten to `cosine`."
    ),
    why="argparse stops at start-up with \"invalid choice\".",
    example='{"lora_type": "LyCORIS"}',
    fixed='{"lora_type": "lycoris"}',
)
def invalid_choice(document: Document) -> Iterator[Hit]:
    for setting in settings(document):
        name = setting.option
        spec = st.option(name or "")
        if not spec or "choices" not in spec or name == "model_family" or setting.resolution.how == "legacy":
            continue
        if setting.output.placeholder or setting.output.serialised:
            continue
        for argument in setting.output.values:
            if argument is st.FLAG or st.parse_problem(name, argument) or not st.choice_problem(name, argument):
                continue
            choices = spec["choices"]
            suggestion = did_you_mean(str(argument), [str(choice) for choice in choices])
            hint = f"did you mean '{suggestion}'? " if suggestion else ""
            yield Hit(
                setting.pointer,
                f"'{argument}' is not a choice of {name} (argparse stops with 'invalid choice'); {hint}"
                f"choices: {_choices_text(choices)}.",
            )


@rule(
    "LYC314",
    "training-option-wrong-type",
    ERROR,
    applies_to=TRAINING,
    summary=(
        "Reports a value SimpleTuner cannot parse for its option, replaying its loader and argparse: "
        "`learning_rate: \"fast\"` (float() fails), `lora_rank: 16.0` (passed as the text \"16.0\", which "
        "int() rejects), `true` for an option that needs a value, a boolean word SimpleTuner does not know, "
        "an array for an option that takes one value (argparse keeps only the last element), and (as a "
        "warning) an object for an option whose objects the loader drops. Numbers written as strings that "
        "Python parses "
        "(`\"1e-4\"`, `\"16\"`) are fine, and so are objects and arrays for JSON-valued options "
        "(`tread_config`, `peft_lora_target_modules`, ...)."
    ),
    why=(
        "A value argparse cannot parse stops the run at start-up; a truncated array or a dropped object is "
        "worse: the run goes on with a different setting than the file shows."
    ),
    example='{"learning_rate": "fast", "lora_rank": 16.0, "validation_guidance_skip_layers": [7, 8, 9]}',
    fixed='{"learning_rate": 1e-4, "lora_rank": 16, "validation_guidance_skip_layers": "[7, 8, 9]"}',
)
def training_option_wrong_type(document: Document) -> Iterator[Hit]:
    for setting in settings(document):
        name = setting.option
        if name is None or setting.resolution.how == "ignored" or setting.output.placeholder:
            continue
        if not passes_value(setting):
            continue  # inverted booleans: the loader takes any truthy/falsy value
        yield from _wrong_type_hits(setting, name)


def _wrong_type_hits(setting: Setting, name: str) -> Iterator[Hit]:
    output = setting.output
    if output.dropped == "object":
        # A warning, not an error: SimpleTuner starts, and the object may yet be read from the loader's
        # leftovers by a code path lint cannot see; by SimpleTuner 4.8.0's loader it is simply dropped.
        yield Hit(
            setting.pointer,
            f"SimpleTuner's loader drops objects for {name} (only some JSON-valued options are passed inline), "
            f"so this setting is silently lost; give {name} as a path to a JSON file or as a JSON string.",
            severity=WARNING,
        )
        return
    if output.serialised:
        return
    items = setting.value if isinstance(setting.value, list) else None
    if items is not None and len(output.values) > 1:
        yield Hit(
            setting.pointer,
            f"{name} takes one value, but SimpleTuner passes one --{name} per array element and argparse keeps only "
            f"the last ('{output.values[-1]}'); {_one_value_hint(name)}",
            at="key",
        )
    if name == "validation_lycoris_strength":
        return  # LYC308 reports its values
    for index, argument in enumerate(output.values):
        problem = st.parse_problem(name, argument)
        if problem is None:
            continue
        pointer = setting.pointer
        if items is not None:
            pointer = join_pointer(setting.pointer, _item_index(items, index))
        shown = "true" if argument is st.FLAG else f"'{argument}'"
        yield Hit(pointer, f"{name}: {shown} {problem}; {_type_hint(name, argument)}")


def _item_index(items: list[Any], emitted_index: int) -> int:
    """The array index of the n-th item the loader passes on (it skips empty items)."""
    seen = -1
    for index, item in enumerate(items):
        if str(item).strip():
            seen += 1
            if seen == emitted_index:
                return index
    return len(items) - 1


def _one_value_hint(name: str) -> str:
    shape = (st.option(name) or {}).get("shape", "")
    if "csv" in shape:
        return "write the items as one comma-separated string."
    if shape:
        return "write the array as one JSON string, such as \"[7, 8, 9]\"."
    return "write a single value."


def _type_hint(name: str, argument: Any) -> str:
    kind = (st.option(name) or {}).get("type")
    if kind == "int" and argument is not st.FLAG:
        try:
            number = float(argument)
            if number.is_integer():
                return f"write {int(number)} (an integer, without a decimal point)."
        except ValueError:
            pass
        return "write an integer."
    if kind == "float":
        return "write a number such as 1e-4."
    if kind == "bool":
        return "write JSON true or false."
    if kind == "choice":
        return f"write one of {_choices_text((st.option(name) or {}).get('choices', []))}."
    return f"write a {st.type_text(name)}."


@rule(
    "LYC315",
    "missing-required-training-option",
    ERROR,
    applies_to=TRAINING,
    summary=(
        "Reports a training config without `model_type`, `model_family`, `output_dir`, `data_backend_config` "
        "or `optimizer`, or with one of them set to a value SimpleTuner's loader drops (`null`, `\"\"`, "
        "`\"false\"`)."
    ),
    why="argparse marks these five required and stops at start-up with \"the following arguments are required\".",
    example='{"model_type": "lora", "model_family": "flux2", "output_dir": "output/flux2"}',
    fixed=(
        '{"model_type": "lora", "model_family": "flux2", "output_dir": "output/flux2",\n'
        ' "data_backend_config": "config/multidatabackend.json", "optimizer": "adamw_bf16"}'
    ),
)
def missing_required_training_option(document: Document) -> Iterator[Hit]:
    all_settings = settings(document)
    for name in st.data()["required"]:
        if effective(document, name) is not None:
            continue
        present = [s for s in all_settings if s.option == name]
        if present:
            setting = present[-1]
            dropped = _dropped_text(setting.output.dropped or "")
            yield Hit(
                setting.pointer,
                f"{name} is required, and SimpleTuner's loader drops the value {dropped}, "
                f"so argparse stops with 'the following arguments are required: --{name}'; give it a value.",
            )
        else:
            yield Hit(
                "",
                f"{name} is required: without it argparse stops at start-up with 'the following arguments are "
                f"required: --{name}'; add \"{name}\": {_required_example(name)}.",
                at="whole",
            )


def _required_example(name: str) -> str:
    return {
        "model_type": '"lora"',
        "model_family": '"flux2"',
        "output_dir": '"output/my-run"',
        "data_backend_config": '"config/multidatabackend.json"',
        "optimizer": '"adamw_bf16"',
    }.get(name, "...")


@rule(
    "LYC316",
    "data-backend-config-not-found",
    WARNING,
    applies_to=TRAINING,
    summary=(
        "Reports a `data_backend_config` file that cannot be found relative to the training config's folder "
        "or to the current directory (the same places lyco tries for the LyCORIS config)."
    ),
    why=(
        "SimpleTuner fails to load its datasets only after the models are loaded. It is a warning because the "
        "path may be meant for the machine that runs the training."
    ),
    example='{"data_backend_config": "config/multidatabackend.jsn"}',
    fixed='{"data_backend_config": "config/multidatabackend.json"}',
)
def data_backend_config_not_found(document: Document) -> Iterator[Hit]:
    setting = effective(document, "data_backend_config")
    if setting is None or setting.text is None or setting.output.placeholder:
        return
    found, places = find_named_file(document.path, setting.text)
    if found is not None:
        return
    bundled = setting.text.startswith(BUNDLED_EXAMPLES_PREFIX)
    note = " (SimpleTuner resolves config/examples/... inside its installed package)" if bundled else ""
    yield Hit(
        setting.pointer,
        f"data_backend_config '{setting.text}' was not found{note}; looked in {_places_text(places)}. Fix the path "
        "or create the multidatabackend file.",
    )
