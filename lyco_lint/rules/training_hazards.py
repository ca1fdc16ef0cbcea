"""LYC304-LYC309: combinations of a training config and its LyCORIS config that train badly or not at all
(the SDXL FeedForward NaN hazard, SageAttention in training, T-LoRA on video, the validation strength, a
quantized base without bypass).

Rules that combine both files run on the LyCORIS config and read the training config from its ``context``;
when a finding is caused by a value in the training config, a second hit points there (``Hit(document=...)``).
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Optional

from ..catalog import ERROR, LYCORIS, TRAINING, WARNING, Hit, rule
from ..documents import Document
from ..knowledge import simpletuner as st
from ..knowledge.families import is_sdxl_unet_family, is_video_family
from ..knowledge.lycoris import bypass_enabled
from ..knowledge.sdxl_unet import FeedForwardCause, feedforward_causes
from ..knowledge.training_view import Setting, effective, effective_text

# -- LYC304 / LYC305 / LYC306: SDXL FeedForward and SageAttention ----------------------------------


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
    if not is_sdxl_unet_family(family_name):
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
    if usage is None or not is_sdxl_unet_family(family_name):
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
    if not isinstance(algo, str) or algo.lower() != "tlora" or not is_video_family(family_name):
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
        "Reports a `validation_lycoris_strength` that is not a finite number (error), that lies below 0 or "
        "above 2 (warning), or that is 0, which SimpleTuner replaces by 1.0 (`strength or 1.0`; warning). This rule "
        "owns the option: LYC314 and LYC319 do not report it again."
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
    if isinstance(setting.value, float) and not math.isfinite(setting.value):
        return  # a JSON NaN or infinity: LYC017 reports it
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
    elif strength == 0:
        yield Hit(
            setting.pointer,
            "validation_lycoris_strength 0 is not honoured: SimpleTuner renders with `float(strength or 1.0)`, so "
            "validation shows the adapter at full strength (1.0), not switched off; write a small strength such as "
            "0.01 to see nearly the base model.",
            severity=WARNING,
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
        # create_lycoris_from_weights drops bypass_mode (SimpleTuner passes it, LyCORIS ignores it); torchao layers keep the class
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


