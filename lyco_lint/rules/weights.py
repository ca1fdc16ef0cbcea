"""LYC6xx: adapter weights files (``lyco inspect FILE.safetensors``, ``lyco lint FILE.safetensors``).

Each check receives a :class:`lyco_lint.weights.inspection.Inspection` and points at a tensor key. Modules
with one problem of one cause (a hundred dead modules, every module at the same alpha and rank) come as one
finding that counts and names them, pointing at the first, so that the report stays readable; ``lyco inspect
--format json`` lists every module. This module never imports torch or numpy: it reads what the inspection
computed.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Callable, Hashable, Iterable, Iterator, Optional

from ..catalog import ERROR, INFO, WARNING, WEIGHTS, Hit, rule

if TYPE_CHECKING:  # the weights modules load when a weights file is linted, not with every config lint
    from ..weights.inspection import Inspection

# LYC608: scales outside these bounds (alpha / rank) are extreme.
EXTREME_SCALE_HIGH = 16.0
EXTREME_SCALE_LOW = 1 / 1024


def _adapter_ready(inspection: Inspection) -> bool:
    return inspection.read_error is None and inspection.adapter is not None


def _names(names: Iterable[str], limit: int = 3) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _grouped(items: Iterable[tuple[str, str]], cause: Callable[[str], Hashable] = lambda name: None) -> list[list[tuple[str, str]]]:
    """(module name, tensor key) pairs grouped by ``cause(name)``, in order of first appearance."""
    groups: dict[Hashable, list[tuple[str, str]]] = defaultdict(list)
    for name, key in items:
        groups[cause(name)].append((name, key))
    return list(groups.values())


def _grouped_hits(items: Iterable[tuple[str, str]], message: Callable[[list[str]], str],
                  cause: Callable[[str], Hashable] = lambda name: None) -> Iterator[Hit]:
    for members in _grouped(items, cause):
        yield Hit(members[0][1], message([name for name, _key in members]), at="tensor")


def _key(inspection: Inspection, name: str, *preferred: str) -> str:
    tensors = inspection.adapter.modules[name].tensors
    suffix = next((s for s in preferred if s in tensors), sorted(tensors)[0])
    return f"{name}.{suffix}"


def _count(names: list[str], one: str, many: Optional[str] = None) -> str:
    return f"{len(names)} {one if len(names) == 1 else (many or one + 's')}"


# -- LYC601 ---------------------------------------------------------------------------------------------------


@rule(
    "LYC601",
    "weights-unreadable",
    ERROR,
    applies_to=WEIGHTS,
    summary=(
        "Reports a `.safetensors` file that is not one: too short for a header, a header length beyond "
        "safetensors' 100 MB limit (a PyTorch pickle or zip, a Git LFS pointer), a header that is not UTF-8 JSON, "
        "unknown dtypes, offsets that do not match the shapes or overlap, or tensor data cut off by a truncated "
        "download."
    ),
    why=(
        "Every loader (LyCORIS, ComfyUI, diffusers) refuses the file, usually with a Rust error that does not say "
        "what is wrong; a truncated copy of a large adapter is the common case."
    ),
    example="$ lyco inspect adapter.safetensors   # a download interrupted at 60 %",
    fixed="$ lyco inspect adapter.safetensors   # the complete file",
)
def weights_unreadable(inspection: Inspection) -> Iterator[Hit]:
    error = inspection.read_error
    if error is not None:
        yield Hit(error.key, str(error), at="tensor")


# -- LYC602 ---------------------------------------------------------------------------------------------------


@rule(
    "LYC602",
    "weights-non-finite",
    ERROR,
    applies_to=WEIGHTS,
    summary=(
        "Reports tensors holding NaN or infinite values (every floating-point tensor is read through a memory map). "
        "Without numpy the values cannot be read: the finding is then an info saying so."
    ),
    why=(
        "One NaN in an adapter factor makes the layer's delta NaN, so every image comes out black or as noise; "
        "training that diverged late still saves such a file without a word."
    ),
    example="$ lyco inspect pytorch_lora_weights.safetensors   # saved after the loss went NaN",
    fixed="$ lyco inspect checkpoint-400/pytorch_lora_weights.safetensors   # the last checkpoint before it",
)
def weights_non_finite(inspection: Inspection) -> Iterator[Hit]:
    if not _adapter_ready(inspection):
        return
    health = inspection.health
    if not health.available:
        yield Hit("", f"tensor values were not checked (non-finite values, dead modules, delta norms): {health.reason}",
                  at="tensor", severity=INFO)
        return
    bad = {tensor.key: tensor for tensor in health.nonfinite}
    items = [(key.split(".", 1)[0], key) for key in bad]

    def message(names: list[str]) -> str:
        keys = [key for name, key in items if name in names]
        values = sum(bad[key].nonfinite for key in keys)
        return (f"{_count(keys, 'tensor')} of {_count(names, 'module')} hold NaN or infinite values ({values:,} values in "
                f"{_names(keys)}): the adapter makes these layers produce NaN; use an earlier checkpoint")

    yield from _grouped_hits(items, message)


# -- LYC603 ---------------------------------------------------------------------------------------------------


@rule(
    "LYC603",
    "dead-module",
    WARNING,
    applies_to=WEIGHTS,
    summary=(
        "Reports modules whose delta is exactly zero: a factor that LyCORIS initialises to zero (LoKr's `lokr_w2`, "
        "LoRA's `lora_up`) was never changed, so the module was never trained. T-LoRA modules are not checked "
        "(their delta depends on base factors LyCORIS recomputes from the model)."
    ),
    why=(
        "The layer exists in the file but does nothing: the usual cause is a layer the forward pass never uses "
        "(the unfused `to_q`/`to_k`/`to_v` next to a fused `to_qkv`), or a learning rate or step count of zero."
    ),
    example="$ lyco inspect output/pytorch_lora_weights.safetensors   # trained with fuse_qkv_projections",
    fixed="$ lyco inspect output/pytorch_lora_weights.safetensors   # trained without it",
)
def dead_module(inspection: Inspection) -> Iterator[Hit]:
    if not _adapter_ready(inspection) or not inspection.health.available:
        return
    dead = [module.name for module in inspection.health.dead]
    items = [(name, _key(inspection, name, "lokr_w2", "lokr_w2_b", "lora_up.weight", "hada_w2_b", "hada_w1_b")) for name in dead]
    total = len(inspection.adapter.modules)
    yield from _grouped_hits(
        items,
        lambda names: f"{_count(names, 'module')} ({_names(names)}) of the file's {total} {'has' if len(names) == 1 else 'have'} "
                      "a delta of exactly zero: never trained, they change nothing",
    )


# -- LYC604 ---------------------------------------------------------------------------------------------------


@rule(
    "LYC604",
    "weights-model-mismatch",
    ERROR,
    applies_to=WEIGHTS,
    summary=(
        "With `--model`: reports module names that name no layer of the model, and modules whose delta does not "
        "have the layer's weight shape (the model built on the meta device; no weights read). Also reports when "
        "LyCORIS's `create_lycoris_from_weights`, run on the meta model, loads none of the file's modules or fails."
    ),
    why=(
        "LyCORIS's loader silently skips names it does not find and ComfyUI logs them only as 'lora key not loaded': "
        "an adapter for another model (FLUX.1 weights on FLUX.2, a Klein 4B adapter on Klein 9B) loads nothing or "
        "stops with a size mismatch."
    ),
    example="$ lyco inspect flux1-lokr.safetensors --model ./FLUX.2-klein-4B",
    fixed="$ lyco inspect flux1-lokr.safetensors --model ./FLUX.1-dev",
)
def weights_model_mismatch(inspection: Inspection) -> Iterator[Hit]:
    fit = inspection.fit
    if fit is None or not _adapter_ready(inspection):
        return
    problems = {mismatch.name: mismatch for mismatch in fit.mismatches}
    for members in _grouped([(m.name, m.key) for m in fit.mismatches], lambda name: problems[name].kind):
        first = problems[members[0][0]]
        more = f"; {len(members) - 1} more like it: {_names([name for name, _ in members[1:]])}" if len(members) > 1 else ""
        yield Hit(first.key, f"{first.problem}{more}", at="tensor")
    load = fit.lycoris
    if load is None:
        return
    if load.error:
        yield Hit("", f"LyCORIS's create_lycoris_from_weights fails on {fit.model_class}: {load.error}", at="tensor")
    elif load.modules == 0 and inspection.adapter.modules:
        prefix = inspection.adapter.prefix
        why = (
            f"its modules are named '{prefix}_...', and LyCORIS looks for '{load.prefix}_...' unless "
            f"LycorisNetwork.apply_preset({{'lora_prefix': '{prefix}'}}) is called first"
            if prefix != load.prefix and fit.paths else "none of its module names is a layer of the model"
        )
        yield Hit("", f"LyCORIS's create_lycoris_from_weights loads none of the {len(inspection.adapter.modules)} modules "
                      f"into {fit.model_class}: {why}", at="tensor")


# -- LYC605 ---------------------------------------------------------------------------------------------------

_COMFY_REASONS = {
    "unmapped": "ComfyUI's LoRA key map for {family} has no such module name",
    "tensors": "ComfyUI has no weight adapter for these tensors",
    "dropped": "ComfyUI drops them when it splits the fused to_qkv adapter next to them (their deltas are not applied)",
}


@rule(
    "LYC605",
    "keys-not-loaded-by-comfyui",
    WARNING,
    applies_to=WEIGHTS,
    summary=(
        "Reports adapter keys ComfyUI would not load, for the families whose LoRA key map lyco carries (flux2, "
        "flux, sdxl; read from ComfyUI's own source, version in `lyco inspect`): modules outside the map (FLUX.2's "
        "time/guidance embedders and modulation layers, a `lora_prefix` ComfyUI does not know, a fused "
        "`to_added_qkv`), and tensors no ComfyUI adapter reads (T-LoRA's `q_layer`, `p_layer`, `lambda_layer`). "
        "The family comes from `--family`, the file's metadata, or its keys."
    ),
    why=(
        "ComfyUI logs 'lora key not loaded' and renders with the rest; when nothing maps, images come out as the "
        "base model (Comfy-Org/ComfyUI#4476, #12084, bghira/SimpleTuner#2439, #3222)."
    ),
    example="$ lyco inspect flux2-lokr-all-linears.safetensors   # no apply_preset: every Linear adapted",
    fixed="$ lyco inspect flux2-lokr.safetensors   # target_module: Flux2Attention, Flux2FeedForward, Flux2ParallelSelfAttention",
)
def keys_not_loaded_by_comfyui(inspection: Inspection) -> Iterator[Hit]:
    if not _adapter_ready(inspection) or inspection.comfyui is None:
        return
    verdict = inspection.comfyui
    family = " or ".join(inspection.family.candidates)
    for reason in ("unmapped", "tensors", "dropped"):
        entries = {entry.name: entry for entry in verdict.not_loaded if entry.reason == reason}
        items = [(name, f"{name}.{entry.suffixes[0]}") for name, entry in entries.items()]

        def message(names: list[str], reason=reason, entries=entries) -> str:
            keys = sum(len(entries[name].suffixes) for name in names)
            return (f"ComfyUI {verdict.version} does not load {keys} key{'s' if keys != 1 else ''} of "
                    f"{_count(names, 'module')} ({_names(names)}): {_COMFY_REASONS[reason].format(family=family)}")

        yield from _grouped_hits(items, message)


# -- LYC606 ---------------------------------------------------------------------------------------------------


@rule(
    "LYC606",
    "tlora-weights-need-masks",
    INFO,
    applies_to=WEIGHTS,
    summary=(
        "Reports a T-LoRA adapter: it loads only with LyCORIS (`create_lycoris_from_weights` on the same base model "
        "weights), and only renders as trained with `apply_to()` and a timestep mask set at every denoising step."
    ),
    why=(
        "ComfyUI and diffusers have no T-LoRA loader (KohakuBlueleaf/LyCORIS PR #280); LyCORIS recomputes the base "
        "factors from the model's weights, and `merge_to()` bakes the all-ranks delta, which no timestep sees in "
        "training."
    ),
    example="$ lyco inspect tlora.safetensors",
    fixed="$ lyco inspect tlora.safetensors   # and load it with LyCORIS + set_timestep_mask per step",
)
def tlora_weights_need_masks(inspection: Inspection) -> Iterator[Hit]:
    names = inspection.tlora_modules if _adapter_ready(inspection) else []
    if names:
        yield Hit(
            _key(inspection, names[0], "lambda_layer"),
            f"{_count(names, 'T-LoRA module')}: only LyCORIS loads them (ComfyUI and diffusers have no T-LoRA loader), from "
            "the same base model weights (the base factors are recomputed from them, not saved); render with "
            "create_lycoris_from_weights + apply_to() and set_timestep_mask(compute_timestep_mask(t, ...)) at every "
            "step: merge_to() bakes the all-ranks delta",
            at="tensor",
        )


# -- LYC607 / LYC608 ------------------------------------------------------------------------------------------


def _scaled(inspection: Inspection, test) -> list[tuple[str, str]]:
    return [
        (module.name, _key(inspection, module.name, "alpha"))
        for module in inspection.adapter.modules.values()
        if module.lycoris_scale is not None and test(module)
    ]


@rule(
    "LYC607",
    "merge-scale-squared",
    WARNING,
    applies_to=WEIGHTS,
    summary=(
        "Reports LoKr and LoHa modules whose scale (alpha / rank) is not 1: lycoris-lora 4.1.3's `merge_to()` "
        "applies their scale twice, so a merged adapter renders at scale² (a LoKr with alpha 8 at rank 2: 16 instead "
        "of 4). `apply_to()`, ComfyUI and diffusers apply the scale once."
    ),
    why=(
        "SimpleTuner's LyCORIS guide loads adapters with `create_lycoris_from_weights(...)` then `merge_to()`: with "
        "alpha ≠ rank the result is many times too strong or too weak, with no error."
    ),
    example='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 2, "linear_alpha": 8, "factor": 4}',
    fixed='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 2, "linear_alpha": 2, "factor": 4}',
)
def merge_scale_squared(inspection: Inspection) -> Iterator[Hit]:
    if not _adapter_ready(inspection):
        return
    items = _scaled(inspection, lambda m: m.merge_scale is not None and abs(m.merge_scale - m.lycoris_scale) > 1e-6 * max(1.0, m.lycoris_scale))
    modules = inspection.adapter.modules

    def message(names: list[str]) -> str:
        first = modules[names[0]]
        return (f"{_count(names, first.algo + ' module')} ({_names(names)}) with alpha {first.alpha:g} at rank {first.rank}: "
                f"scale {first.lycoris_scale:g}, but LyCORIS 4.1.3's merge_to() bakes {first.merge_scale:g} (the scale "
                "applied twice); load with apply_to(), or retrain with linear_alpha equal to the rank")

    yield from _grouped_hits(items, message, lambda name: (modules[name].algo, modules[name].alpha, modules[name].rank))


@rule(
    "LYC608",
    "extreme-scale",
    WARNING,
    applies_to=WEIGHTS,
    summary=(
        f"Reports modules whose scale alpha / rank is at least {EXTREME_SCALE_HIGH:g} or at most 1/{1 / EXTREME_SCALE_LOW:g}, "
        "as LyCORIS's loader computes it from the stored alpha and the factors' rank."
    ),
    why=(
        "A scale far from 1 multiplies every difference between loaders and every rounding error: a LoRA with "
        "`linear_dim: 10000` (copied from a full-matrix LoKr config) and `linear_alpha: 1` trains at scale 0.0001 and "
        "barely changes the model; alpha far above the rank makes the delta explode at the first steps."
    ),
    example='{"algo": "lora", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1}',
    fixed='{"algo": "lora", "multiplier": 1.0, "linear_dim": 32, "linear_alpha": 16}',
)
def extreme_scale(inspection: Inspection) -> Iterator[Hit]:
    if not _adapter_ready(inspection):
        return
    items = _scaled(inspection, lambda m: m.lycoris_scale >= EXTREME_SCALE_HIGH or m.lycoris_scale <= EXTREME_SCALE_LOW)
    modules = inspection.adapter.modules
    yield from _grouped_hits(
        items,
        lambda names: f"{_count(names, 'module')} ({_names(names)}) run at scale {modules[names[0]].lycoris_scale:g} "
                      f"(alpha {modules[names[0]].alpha:g} / rank {modules[names[0]].rank}): set linear_alpha near the rank",
        lambda name: (modules[name].alpha, modules[name].rank),
    )


# -- LYC609 / LYC610 ------------------------------------------------------------------------------------------


@rule(
    "LYC609",
    "delta-norm-outlier",
    INFO,
    applies_to=WEIGHTS,
    summary=(
        "Reports the modules (up to 5) whose scaled delta is at least 10 times larger than the median module's, "
        "measured as the RMS of ΔW per weight element, from the factors (no full matrix is built where algebra allows)."
    ),
    why=(
        "One layer that moved far more than the rest usually dominates the adapter's effect (over-fitting, a "
        "learning rate meant for another algorithm, a layer with a rank or alpha of its own)."
    ),
    example="$ lyco inspect adapter.safetensors",
    fixed="$ lyco inspect adapter.safetensors   # after lowering that layer's rank or the learning rate",
)
def delta_norm_outlier(inspection: Inspection) -> Iterator[Hit]:
    if not _adapter_ready(inspection) or not inspection.health.available:
        return
    for module, ratio in inspection.health.outliers():
        yield Hit(
            _key(inspection, module.name, "lokr_w2", "lokr_w2_b", "lora_up.weight", "hada_w1_a", "diff"),
            f"{module.name}'s delta is {ratio:.0f}x the median module's (RMS {module.rms:.3g} per weight element)",
            at="tensor",
        )


@rule(
    "LYC610",
    "diffusers-cannot-load",
    INFO,
    applies_to=WEIGHTS,
    summary=(
        "Reports an adapter diffusers' `load_lora_weights` refuses or loads nothing from (flux2, flux, sdxl; "
        "diffusers 0.42.1's loaders, checked against the real ones in lyco's tests), with what diffusers says."
    ),
    why=(
        "diffusers loads FLUX.2 LoKr files only when one decompose_factor fits every layer (huggingface/diffusers#13261); "
        "it loads nothing from a LyCORIS LoRA on FLUX.2 without an error, and refuses LyCORIS files on FLUX.1 and SDXL."
    ),
    example="$ lyco inspect flux2-lokr.safetensors   # module_algo_map factors 4 and 2",
    fixed="$ lyco inspect flux2-lokr.safetensors   # one factor for every class, or load it with LyCORIS",
)
def diffusers_cannot_load(inspection: Inspection) -> Iterator[Hit]:
    verdict = inspection.diffusers if _adapter_ready(inspection) else None
    if verdict is None or verdict.outcome == "loads":
        return
    yield Hit("", f"diffusers {verdict.version} {verdict.pipeline}.load_lora_weights {verdict.outcome}: {verdict.message}",
              at="tensor")



# -- LYC611 ---------------------------------------------------------------------------------------------------


@rule(
    "LYC611",
    "incomplete-module",
    ERROR,
    applies_to=WEIGHTS,
    summary=(
        "Reports modules LyCORIS's loader cannot rebuild: tensors without any algorithm's marker (an `alpha` alone, "
        "keys of a format LyCORIS does not write), or an algorithm's factor missing (`lora_up` without `lora_down`)."
    ),
    why=(
        "create_lycoris_from_weights stops on the first such module with an AttributeError ('NoneType' object has no "
        "attribute ...), so the whole adapter fails to load; a file edited or merged by hand is the usual cause."
    ),
    example="$ lyco inspect merged.safetensors   # one module lost its lora_down",
    fixed="$ lyco inspect adapter.safetensors   # the file as LyCORIS saved it",
)
def incomplete_module(inspection: Inspection) -> Iterator[Hit]:
    if not _adapter_ready(inspection):
        return
    modules = inspection.adapter.modules.values()
    items = [(m.name, _key(inspection, m.name)) for m in modules if m.algorithm is None or m.missing]
    by_name = inspection.adapter.modules

    def message(names: list[str]) -> str:
        first = by_name[names[0]]
        what = (f"has no tensor that names a LyCORIS algorithm (only {', '.join(sorted(first.tensors))})" if first.algorithm is None
                else f"is a {first.algo} module without {', '.join(first.missing)}")
        more = f" ({len(names) - 1} more like it: {_names(names[1:])})" if len(names) > 1 else ""
        return f"{names[0]} {what}{more}: LyCORIS's create_lycoris_from_weights stops on it with an AttributeError"

    yield from _grouped_hits(items, message, lambda name: (by_name[name].algo, tuple(by_name[name].missing)))
