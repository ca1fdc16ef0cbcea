"""LYC207, LYC208, LYC210, LYC211, LYC4xx: checks against the real model (``lyco lint --model``).

They report only when the engine attached a :class:`lyco_lint.meta_model.analysis.Analysis` (LyCORIS run on
the model built on the meta device) to the document's context as ``document.context.model``; without
``--model`` they stay silent. LYC210 and LYC211 are emitted by the engine when the model cannot be read or
LyCORIS refuses the config. This module never imports torch: it only reads the analysis.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

from ..catalog import ERROR, INFO, LYCORIS, WARNING, Hit, engine_rule, rule
from ..documents import Document
from ..jsonpos import join_pointer
from ..knowledge.families import simpletuner_model_may_differ
from ..knowledge.training_view import options as training_options
from ..units import TRAINING_BYTES_PER_PARAM, human_bytes, human_count
from .presets import apply_preset, closest_classes

# LYC402: an adapter above this share of the base model's parameters is close to a full fine-tune.
LARGE_ADAPTER_SHARE = 0.10


def model_analysis(document: Document) -> Optional[Any]:
    return getattr(document.context, "model", None)


def _quoted(names, limit: int = 6) -> str:
    names = list(names)
    shown = ", ".join(f"'{name}'" for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _model_words(analysis: Any) -> str:
    return f"{analysis.model_class} ({analysis.origin})"


def _simpletuner_caveat(document: Document, analysis: Any) -> Optional[str]:
    """For a family whose SimpleTuner model is its own copy, why a class-name finding is not certain."""
    family = document.context.family
    if document.context.trained_as_built or not simpletuner_model_may_differ(family):
        return None  # certain: the model built is the one that trains (lyco train), or SimpleTuner's is the same
    return (
        f"lyco built diffusers' {analysis.model_class}; SimpleTuner trains its own copy of the {family} model, "
        "which may name its classes differently"
    )


MODEL_UNAVAILABLE = engine_rule(
    "LYC210",
    "model-unavailable",
    ERROR,
    summary=(
        "With `--model`: reports that the model could not be read: the folder has no diffusers `config.json`, the "
        "hub id is not in the local cache and the hub cannot be reached, `--model auto` without a training config "
        "naming `pretrained_model_name_or_path`, or a model class diffusers does not have."
    ),
    why="Without the model's structure none of the model checks (LYC205 from the model, LYC207, LYC208, LYC401, LYC402) can run.",
    example="lyco lint --model black-forest-labs/FLUX.2-klein-base-4B lycoris.json   # offline, nothing cached",
    fixed="lyco lint --model ./FLUX.2-klein-base-4B lycoris.json   # a local folder (only config.json is read)",
)

LYCORIS_BUILD_FAILED = engine_rule(
    "LYC211",
    "lycoris-build-failed",
    ERROR,
    summary=(
        "With `--model`: reports that LyCORIS itself refused to build this config on the model (an exception while "
        "creating the network on the meta device), with LyCORIS's message."
    ),
    why="The same exception would stop SimpleTuner after the model has been loaded onto the GPU.",
    example='{"algo": "dylora", "multiplier": 1.0, "linear_dim": 10, "linear_alpha": 1}',
    fixed='{"algo": "dylora", "multiplier": 1.0, "linear_dim": 12, "linear_alpha": 1}',
)


# -- LYC207 ------------------------------------------------------------------------------------------------------


def _no_modules_reason(document: Document, analysis: Any) -> tuple[str, str]:
    """Why nothing was adapted, and the pointer to blame."""
    preset = apply_preset(document)
    classes = sorted(analysis.classes)
    nothing_matched = set(analysis.target_classes) <= set(analysis.unmatched_classes) and set(
        analysis.target_names
    ) <= set(analysis.unmatched_names)
    if nothing_matched and (analysis.target_classes or analysis.target_names):
        reasons = []
        if analysis.target_classes:
            guesses = [guess for name in analysis.target_classes for guess in closest_classes(name, classes)]
            hint = f"did you mean {_quoted(dict.fromkeys(guesses))}?" if guesses else f"its classes include {_quoted(classes, 10)}"
            reasons.append(
                f"none of the target classes ({_quoted(analysis.target_classes)}) occurs in the model, and LyCORIS "
                f"matches exact class names: {hint}"
            )
        if analysis.target_names:
            how = (
                "fnmatch patterns must match the whole path"
                if preset.get("use_fnmatch") is True
                else "patterns are matched with re.match, from the start of the path: write '.*to_q' to match anywhere"
            )
            reasons.append(f"no module path matches the target names ({_quoted(analysis.target_names)}; {how})")
        keys = ("target_module", "module_algo_map") if analysis.target_classes else ("target_name", "name_algo_map")
        key = next((k for k in keys if k in preset), None)
        return "; ".join(reasons), join_pointer("", "apply_preset", key) if key else ""
    dim = document.value.get("linear_dim") if isinstance(document.value, dict) else None
    if isinstance(dim, (int, float)) and not isinstance(dim, bool) and dim < 1:
        return "linear_dim below 1 disables every Linear layer; set linear_dim to a rank such as 16", "/linear_dim"
    return (
        "the targets matched, but the matched modules hold no layer LyCORIS can adapt with these settings (only "
        "Linear and Conv layers get adapters; check exclude_name, linear_dim and conv_dim)",
        join_pointer("", "apply_preset") if preset else "",
    )


@rule(
    "LYC207",
    "no-modules-adapted",
    ERROR,
    applies_to=LYCORIS,
    summary=(
        "With `--model`: reports a config that adapts no layer at all of the real model, as LyCORIS itself builds "
        "it on the model (on the meta device, no weights read), and says why. Only a warning for a model family "
        "whose SimpleTuner model is its own copy of the diffusers class (all but flux2 and the UNet families), "
        "since lyco builds diffusers' class."
    ),
    why=(
        "LyCORIS only logs warnings when nothing matches and returns an empty network; SimpleTuner then stops with "
        "`optimizer got an empty parameter list` after the model has been loaded (bghira/SimpleTuner#843, #2435). "
        "Class names that exist in another architecture (`Attention`, `FeedForward` on Flux 2) are the usual cause."
    ),
    example=(
        '{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 4,\n'
        ' "apply_preset": {"target_module": ["Attention", "FeedForward"]}}'
    ),
    fixed=(
        '{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 4,\n'
        ' "apply_preset": {"target_module": ["Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention"]}}'
    ),
)
def no_modules_adapted(document: Document) -> Iterator[Hit]:
    analysis = model_analysis(document)
    if analysis is None or analysis.adapted_count:
        return
    reason, pointer = _no_modules_reason(document, analysis)
    caveat = _simpletuner_caveat(document, analysis)
    yield Hit(
        pointer,
        f"this config adapts no layer of {_model_words(analysis)}, so training would stop with 'optimizer got an "
        f"empty parameter list': {reason}" + (f" ({caveat})" if caveat else ""),
        at="key" if pointer else "whole",
        severity=WARNING if caveat else None,
    )


# -- LYC208 ------------------------------------------------------------------------------------------------------


@rule(
    "LYC208",
    "name-map-shadowed",
    WARNING,
    applies_to=LYCORIS,
    summary=(
        "With `--model`: reports a `name_algo_map` entry whose pattern matches layers that LyCORIS reaches through a "
        "`target_module` class: those layers get the class's options, never the entry's."
    ),
    why=(
        "LyCORIS reads `name_algo_map` only for modules it reaches by name. A layer inside a targeted class is "
        "adapted while the class's subtree is walked, with the global or `module_algo_map` options, and the name "
        "entry is silently ignored for it: a rank or algo meant for a few layers never applies."
    ),
    example=(
        '{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8,\n'
        ' "apply_preset": {"target_module": ["Flux2Attention"],\n'
        '                  "name_algo_map": {"transformer_blocks.0.attn.to_q": {"algo": "lora", "dim": 64}}}}'
    ),
    fixed=(
        '{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8,\n'
        ' "apply_preset": {"target_module": [], "target_name": [".*\\\\.attn\\\\.(to_q|to_k|to_v|to_out\\\\.0)$"],\n'
        '                  "name_algo_map": {"transformer_blocks.0.attn.to_q": {"algo": "lora", "dim": 64}}}}'
    ),
)
def name_map_shadowed(document: Document) -> Iterator[Hit]:
    analysis = model_analysis(document)
    if analysis is None:
        return
    for entry in analysis.shadowed:
        count = len(entry.shadowed_paths)
        layers, they = ("layer", "it gets") if count == 1 else ("layers", "they get")
        examples = _quoted(entry.shadowed_paths, 2)
        also = (
            f"; it does apply to {entry.applied} layer{'s' if entry.applied != 1 else ''} reached by name"
            if entry.applied
            else ""
        )
        yield Hit(
            join_pointer("", "apply_preset", "name_algo_map", entry.key),
            f"name_algo_map entry '{entry.key}' matches {count} {layers} inside {_quoted(entry.winning_classes)} "
            f"(target_module), e.g. {examples}: LyCORIS ignores name_algo_map there, so {they} the class's options"
            f"{also}. To apply it, remove the class from target_module and reach its layers with target_name "
            f"patterns, or move the options to module_algo_map",
            at="key",
        )


# -- LYC401 ------------------------------------------------------------------------------------------------------


def _quantized_base(document: Document) -> Optional[str]:
    """The training config's base_model_precision when it quantizes the base model."""
    training = document.context.training
    precision = training_options(training).get("base_model_precision") if training is not None else None
    if isinstance(precision, str) and precision.strip() and precision.strip().lower() != "no_change":
        return precision
    return None


@rule(
    "LYC401",
    "bypass-costlier",
    INFO,
    applies_to=LYCORIS,
    summary=(
        "With `--model`: reports `bypass_mode: true` on an unquantized base model when LyCORIS's bypass forward costs "
        "more than its rebuild forward for most adapted parameters, with both FLOP counts (counted by running each "
        "adapted Linear's LyCORIS forward on the meta device at 4096 tokens). It is a FLOP estimate, not a timing: "
        "`lyco train` times both paths per layer on its own device and takes the faster one (`--adapter-path auto`)."
    ),
    why=(
        "Bypass runs the adapter's factors on every token; rebuild materialises ΔW once per forward and adds one "
        "full matmul per token. Bypass is needed for quantized base models (rebuild cannot do arithmetic on "
        "quantized weights) and is usually the cheaper path anyway, but not when the factors are as large as the "
        "layer: a LoRA-style rank above the layer width (`linear_dim: 10000` copied from a full-matrix LoKr "
        "config) costs more in bypass. Measured with LyCORIS 4.1.3 on Flux 2 Klein 4B at 4096 tokens: full-matrix "
        "LoKr factor 2 costs 3.7 GFLOP per token in bypass vs 7.4 in rebuild, factor 1 costs the same on both "
        "paths, LoRA rank 10000 costs 30.1 in bypass vs 25.3 in rebuild. FLOPs are not time: on one H200 the "
        "document's FLUX.2 LoKr does fewer FLOPs in bypass (118.5 vs 163.7 TFLOP per step) yet runs 1.44x slower "
        "(0.690 vs 0.481 s per step), its small Kronecker matmuls reaching half the throughput, while SDXL's generic "
        "LoKr is faster in bypass. So this rule is silent there, and lyco train does not rely on it: it measures."
    ),
    example='{"algo": "lora", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "bypass_mode": true}',
    fixed='{"algo": "lora", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1}',
)
def bypass_costlier(document: Document) -> Iterator[Hit]:
    analysis = model_analysis(document)
    estimate = getattr(analysis, "estimate", None)
    if estimate is None or not estimate.rebuild_cheaper or _quantized_base(document):
        return
    pointer = "/bypass_mode" if isinstance(document.value, dict) and "bypass_mode" in document.value else ""
    yield Hit(
        pointer,
        f"FLOP estimate: bypass_mode costs {estimate.bypass_flops / 1e9:.3g} GFLOP of extra forward compute per token over the "
        f"frozen layers of {analysis.model_class}, the rebuild path {estimate.rebuild_flops / 1e9:.3g} GFLOP "
        f"(LyCORIS's own forward counted at {estimate.tokens} tokens per forward); rebuild is cheaper for "
        f"{estimate.rebuild_cheaper_share:.0%} of the adapted parameters. For a trainer that runs bypass_mode as written "
        f"(SimpleTuner), on an unquantized base model drop it (keep it if you quantize the base model: rebuild cannot work "
        f"on quantized weights); FLOPs are not time, and lyco train times both paths per layer and takes the faster one",
        at="key" if pointer else "whole",
    )


# -- LYC402 ------------------------------------------------------------------------------------------------------


def _size_hint(analysis: Any) -> str:
    modules = analysis.modules
    if any(module.algo == "lokr" and module.full_matrix for module in modules):
        return (
            "for LoKr, a larger factor shrinks the adapter (the big Kronecker block is about (width/factor)², "
            "factor 8 or 16 instead of 2 or 4), or give linear_dim a rank instead of full matrices"
        )
    return "lower linear_dim (or the map entries' dim), or target fewer classes"


@rule(
    "LYC402",
    "large-adapter",
    INFO,
    applies_to=LYCORIS,
    summary=(
        "With `--model`: reports an adapter whose trainable parameters exceed 10 % of the base model's, with both "
        "counts and the training state they need (16 bytes per parameter: fp32 weights, gradients, AdamW states)."
    ),
    why=(
        "A full-matrix LoKr with a small factor or a LoRA with a very high rank is close to a full fine-tune: "
        "much more optimizer memory and slower steps than a typical adapter, and often more than the author "
        "expected (`factor` works the other way round from rank: bigger factor, smaller adapter; "
        "KohakuBlueleaf/LyCORIS#138, bghira/SimpleTuner#1758)."
    ),
    example=(
        '{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 2, "full_matrix": true,\n'
        ' "apply_preset": {"target_module": ["Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention"]}}'
    ),
    fixed=(
        '{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 16, "full_matrix": true,\n'
        ' "apply_preset": {"target_module": ["Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention"]}}'
    ),
)
def large_adapter(document: Document) -> Iterator[Hit]:
    analysis = model_analysis(document)
    if analysis is None or not analysis.base_params:
        return
    trainable, base = analysis.trainable_params, analysis.base_params
    if trainable <= LARGE_ADAPTER_SHARE * base:
        return
    value = document.value if isinstance(document.value, dict) else {}
    pointer = next((f"/{key}" for key in ("factor", "linear_dim", "full_matrix", "algo") if key in value), "")
    yield Hit(
        pointer,
        f"the adapter trains {human_count(trainable)} parameters ({trainable:,}), {trainable / base:.1%} of the "
        f"{human_count(base)} ({base:,}) of {_model_words(analysis)}: {human_bytes(trainable * TRAINING_BYTES_PER_PARAM)} of "
        f"fp32 weights, gradients and AdamW states. If you did not mean a near full fine-tune, {_size_hint(analysis)}",
        at="value" if pointer else "whole",
    )


# -- LYC213 ------------------------------------------------------------------------------------------------------

# The ComfyUI map family of a model class, when neither the training config nor --family names one.
_COMFY_FAMILY_OF_CLASS = {"Flux2Transformer2DModel": "flux2", "FluxTransformer2DModel": "flux", "UNet2DConditionModel": "sdxl"}


@rule(
    "LYC213",
    "adapted-layers-not-portable",
    WARNING,
    applies_to=LYCORIS,
    summary=(
        "With `--model`: reports the layers this config adapts on the real model whose keys ComfyUI's LoRA key map "
        "for the family (flux2, flux, sdxl; carried from ComfyUI's source) does not cover. Without `apply_preset`, "
        "LyCORIS adapts every Linear of FLUX.2, including the time/guidance embedders and the modulation layers, "
        "which ComfyUI drops."
    ),
    why=(
        "Those layers train and then do nothing in ComfyUI ('lora key not loaded'): images differ from the "
        "validation images SimpleTuner rendered with LyCORIS itself, without an error."
    ),
    example="lyco lint --model ./FLUX.2-klein-4B lycoris.json   # no apply_preset: every Linear",
    fixed="lyco lint --model ./FLUX.2-klein-4B lycoris.json   # target_module: Flux2Attention, Flux2FeedForward, Flux2ParallelSelfAttention",
)
def adapted_layers_not_portable(document: Document) -> Iterator[Hit]:
    analysis = model_analysis(document)
    if analysis is None or not analysis.modules:
        return
    from ..knowledge import comfyui  # only with --model

    family = document.context.family or _COMFY_FAMILY_OF_CLASS.get(analysis.model_class)
    if family not in comfyui.families():
        return
    dropped = [module.path for module in analysis.modules if not comfyui.loads_path(family, module.path)]
    if not dropped:
        return
    preset = apply_preset(document)
    pointer = join_pointer("", "apply_preset", "target_module") if "target_module" in preset else ("/apply_preset" if preset else "")
    yield Hit(
        pointer,
        f"{len(dropped)} of the {analysis.adapted_count} layers this config adapts on {_model_words(analysis)} are outside "
        f"ComfyUI {comfyui.version()}'s LoRA key map for {family}: {_quoted(dropped, 4)}; ComfyUI ignores their keys "
        "('lora key not loaded'), so they train for nothing there. Target the transformer blocks' classes instead "
        "(or exclude_name these layers)",
        at="key" if pointer else "whole",
    )
