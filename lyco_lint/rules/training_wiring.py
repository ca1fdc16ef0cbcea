"""LYC301-LYC303, LYC316: how a training config wires in its LyCORIS config and names its files.

SimpleTuner only notices these at start-up (a missing file) or never (a PEFT option or a LyCORIS config it
silently ignores). Files are looked for where ``knowledge.training_view.find_named_file`` looks, as the
trainer does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..catalog import ERROR, TRAINING, WARNING, Hit, rule
from ..documents import Document
from ..knowledge.simpletuner import FLAG
from ..knowledge.training_view import (
    BUNDLED_EXAMPLES_PREFIX,
    effective,
    effective_text,
    find_named_file,
    resolve_lycoris_config,
    settings,
    uses_lycoris,
)


def _same_file(path: Path, other: Path) -> bool:
    try:
        return path.resolve() == other.resolve()
    except (OSError, RuntimeError):
        return False


def _places_text(places: list[Path]) -> str:
    return ", ".join(str(place) for place in places)


@rule(
    "LYC301",
    "lycoris-config-not-found",
    ERROR,
    applies_to=TRAINING,
    summary=(
        "Reports a training config with `lora_type: lycoris` whose LyCORIS config file cannot be found, or is "
        "the training config itself. "
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
    configured = effective(document, "lycoris_config")
    setting = configured or effective(document, "lora_type")
    if found is not None and _same_file(found, document.path):
        yield Hit(
            setting.pointer,
            f"lycoris_config '{reference}' is this training config itself, not a LyCORIS config; point it at the "
            "LyCORIS config (the JSON with algo, multiplier, linear_dim, linear_alpha and apply_preset).",
        )
        return
    if found is not None or "{env:" in reference:
        return
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



@rule(
    "LYC316",
    "data-backend-config-not-found",
    WARNING,
    applies_to=TRAINING,
    summary=(
        "Reports a `data_backend_config` file that cannot be found relative to the training config's folder "
        "or to the current directory (the same places lyco tries for the LyCORIS config), and (as an error) one "
        "that names the training config itself. A dataset config that is found is linted too (LYC5xx)."
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
    if found is not None and _same_file(found, document.path):
        yield Hit(
            setting.pointer,
            f"data_backend_config '{setting.text}' is this training config itself, not a dataset config; point it at "
            "the multidatabackend.json (a JSON array of datasets: [{\"id\": ..., \"type\": \"local\", ...}]).",
            severity=ERROR,
        )
        return
    if found is not None:
        return
    bundled = setting.text.startswith(BUNDLED_EXAMPLES_PREFIX)
    note = " (SimpleTuner resolves config/examples/... inside its installed package)" if bundled else ""
    yield Hit(
        setting.pointer,
        f"data_backend_config '{setting.text}' was not found{note}; looked in {_places_text(places)}. Fix the path "
        "or create the multidatabackend file.",
    )


# -- LYC320 ------------------------------------------------------------------------------------------------


@rule(
    "LYC320",
    "fused-qkv-with-lycoris",
    WARNING,
    applies_to=TRAINING,
    summary=(
        "Reports `fuse_qkv_projections: true` (or its legacy name `fused_qkv_projections`) with `lora_type: lycoris`: "
        "the attention then runs through fused `to_qkv`/`to_added_qkv` layers, and those are what the adapter trains."
    ),
    why=(
        "ComfyUI's key map has the unfused `to_q`/`to_k`/`to_v` only: ComfyUI 0.38.1 splits a fused `to_qkv` adapter "
        "back, but not `to_added_qkv`, and older releases load neither ('lora key not loaded', "
        "bghira/SimpleTuner#3222); the unfused projections LyCORIS also wraps are never called and stay untrained."
    ),
    example='{"model_family": "flux", "lora_type": "lycoris", "fuse_qkv_projections": true}',
    fixed='{"model_family": "flux", "lora_type": "lycoris"}',
)
def fused_qkv_with_lycoris(document: Document) -> Iterator[Hit]:
    setting = effective(document, "fuse_qkv_projections")
    if setting is None or not setting.output.values or setting.output.values[-1] is not FLAG or not uses_lycoris(document):
        return
    yield Hit(
        setting.pointer,
        f"'{setting.member.key}' with lora_type lycoris trains the fused attn.to_qkv and to_added_qkv layers: ComfyUI's "
        "LoRA key map has only the unfused to_q/to_k/to_v (ComfyUI 0.38.1 splits a fused to_qkv adapter, not "
        "to_added_qkv; older releases neither: 'lora key not loaded'), and the unfused layers LyCORIS also wraps "
        "stay untrained; turn it off for LyCORIS",
        at="key",
    )
