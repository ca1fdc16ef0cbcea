"""``lyco inspect``: what an adapter file holds, whether it is healthy, whether it fits the model and where it
loads, as a summary (grouped like ``lyco plan``'s table) or as JSON with the same facts, every module listed.

Works on a :class:`lyco_lint.weights.inspection.Inspection` the lint run has already checked; the findings are
those of ``lyco lint FILE.safetensors``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Optional

from .units import human_bytes, human_count, table_cell
from .weights.adapter import Module, kind_of
from .weights.inspection import Inspection

_BLOCK = re.compile(r"^(.*?)_\d+_")
_GROUP_SETTINGS = ("algo", "rank", "factor", "alpha", "scale", "full_matrix", "dora")
LINE_LIMIT = 10_000  # characters of one summary line (a metadata line of many keys is long, but not endless)


def _number(value: Optional[float]) -> Optional[float]:
    return None if value is None else float(value)


def _module_row(inspection: Inspection, module: Module) -> dict[str, Any]:
    health = inspection.health.modules.get(module.name) if inspection.health and inspection.health.available else None
    comfy = inspection.comfyui
    fit = inspection.fit
    row = {
        "name": module.name,
        "algo": module.algo,
        "rank": module.rank,
        "factor": module.factor,
        "alpha": _number(module.alpha),
        "scale": _number(module.lycoris_scale),
        "comfyui_scale": _number(module.comfyui_scale),
        "merge_to_scale": _number(module.merge_scale),
        "full_matrix": module.full_matrix,
        "dora": module.dora,
        "tucker": module.tucker,
        "weight_shape": list(module.weight_shape) if module.weight_shape else None,
        "params": module.params,
        "dtypes": sorted({info.dtype for info in module.tensors.values()}),
        "tensors": {suffix: list(info.shape) for suffix, info in sorted(module.tensors.items())},
        "unknown_tensors": module.unknown_suffixes,
        "dead": health.dead if health else None,
        "delta_norm": health.norm if health else None,
        "delta_rms": health.rms if health else None,
    }
    if comfy is not None:
        ignored = [entry for entry in comfy.not_loaded if entry.name == module.name]
        loaded = module.name in comfy.loaded or module.name in comfy.split
        row["comfyui"] = {"loaded": loaded, "ignored_tensors": list(ignored[0].suffixes) if ignored else [],
                          "reason": ignored[0].reason if ignored else None}
    if fit is not None:
        row["model_path"] = fit.paths.get(module.name)
    return row


def _group_label(inspection: Inspection, module: Module) -> str:
    fit = inspection.fit
    path = inspection.adapter.path_of(module.name)
    if fit is not None and module.name in fit.paths:
        return fit.block_classes.get(module.name, "?")
    match = _BLOCK.match(path)
    return match.group(1) if match else kind_of(path)


def groups(inspection: Inspection) -> list[dict[str, Any]]:
    """Modules grouped by where they sit (the block class with --model, else the block list) and their settings."""
    found: dict[tuple, dict[str, Any]] = {}
    for module in inspection.adapter.modules.values():
        settings = {
            "algo": module.algo, "rank": module.rank, "factor": module.factor, "alpha": _number(module.alpha),
            "scale": _number(module.lycoris_scale), "full_matrix": module.full_matrix, "dora": module.dora,
        }
        label = _group_label(inspection, module)
        key = (label, *(settings[name] for name in _GROUP_SETTINGS))
        group = found.get(key)
        if group is None:
            group = found[key] = {"where": label, **settings, "modules": 0, "params": 0, "example": module.name}
        group["modules"] += 1
        group["params"] += module.params
    return list(found.values())


def inspect_as_dict(inspection: Inspection, findings: list) -> dict[str, Any]:
    """Everything ``lyco inspect`` knows about the file (``--format json``)."""
    facts: dict[str, Any] = {"file": inspection.display_path}
    if inspection.header is not None:
        facts["size_bytes"] = inspection.header.file_size
        facts["header_bytes"] = inspection.header.data_start
    facts["findings"] = [finding.as_dict() for finding in findings]
    if inspection.read_error is not None or inspection.adapter is None:
        facts["readable"] = False
        return facts
    adapter, family = inspection.adapter, inspection.family
    facts.update(
        readable=True,
        family={"name": family.name, "candidates": list(family.candidates), "from": family.how},
        metadata=inspection.metadata_groups(),
        lycoris_config=inspection.lycoris_config,
        prefix=adapter.prefix,
        tensors=len(inspection.header.tensors),
        parameters=adapter.params,
        dtypes=dict(adapter.dtypes),
        algorithms=dict(adapter.algo_counts),
        groups=groups(inspection),
        modules=[_module_row(inspection, module) for module in adapter.modules.values()],
        loose_keys=adapter.loose_keys,
        health=_health_dict(inspection),
        comfyui=_comfy_dict(inspection),
        diffusers=_diffusers_dict(inspection),
        model=_model_dict(inspection),
    )
    return facts


def _health_dict(inspection: Inspection) -> dict[str, Any]:
    health = inspection.health
    if not health.available:
        return {"checked": False, "reason": health.reason}
    return {
        "checked": True,
        "nonfinite_tensors": {tensor.key: tensor.nonfinite for tensor in health.nonfinite},
        "dead_modules": [module.name for module in health.dead],
        "largest_deltas": [{"module": m.name, "rms": m.rms, "norm": m.norm} for m in health.largest()],
        "outliers": [{"module": m.name, "ratio_to_median": ratio, "rms": m.rms} for m, ratio in health.outliers()],
    }


def _comfy_dict(inspection: Inspection) -> Optional[dict[str, Any]]:
    verdict = inspection.comfyui
    if verdict is None:
        return None
    return {
        "version": verdict.version,
        "family": " or ".join(inspection.family.candidates),
        "loaded_modules": len(verdict.loaded) + len(verdict.split),
        "split_fused_qkv": list(verdict.split),
        "ignored_keys": verdict.ignored_keys,
        "not_loaded": [{"module": entry.name, "reason": entry.reason, "tensors": list(entry.suffixes)} for entry in verdict.not_loaded],
    }


def _diffusers_dict(inspection: Inspection) -> Optional[dict[str, Any]]:
    verdict = inspection.diffusers
    if verdict is None:
        return None
    return {"version": verdict.version, "pipeline": verdict.pipeline, "outcome": verdict.outcome, "modules": verdict.modules,
            "message": verdict.message, "dropped_keys": list(verdict.dropped)}


def _model_dict(inspection: Inspection) -> Optional[dict[str, Any]]:
    fit = inspection.fit
    if fit is None:
        return None
    load = fit.lycoris
    return {
        "class": fit.model_class,
        "origin": fit.origin,
        "matched_modules": len(fit.paths),
        "mismatches": [{"module": m.name, "kind": m.kind, "problem": m.problem} for m in fit.mismatches],
        "adapted": [{"block_class": block, "layer_class": layer, "layers": count} for (block, layer), count in sorted(fit.classes.items())],
        "create_lycoris_from_weights": None if load is None else {
            "modules": load.modules, "algo_table": load.algo_table, "error": load.error, "prefix": load.prefix,
        },
    }


# -- text ----------------------------------------------------------------------------------------------------


def render_inspection(inspection: Inspection, console) -> None:
    """The summary: the file, its modules grouped as in ``lyco plan``, health, fit and where it loads."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from .reporters import printable

    # no markup from file data, and its text escaped: metadata, names and paths may hold control characters or
    # lone surrogates (a JSON "\udc00" in the header), which a terminal would act on or UTF-8 cannot encode
    say = lambda text, style=None: console.print(Text(printable(text, LINE_LIMIT), style=style))  # noqa: E731
    header, adapter = inspection.header, inspection.adapter
    if header is None or adapter is None:
        return
    say(f"{inspection.display_path}: {human_bytes(header.file_size)}, {len(header.tensors)} tensors, "
        f"{human_count(adapter.params)} parameters ({adapter.params:,}; "
        + ", ".join(f"{dtype} {human_count(count)}" for dtype, count in adapter.dtypes.most_common()) + ")", "bold")
    family = inspection.family
    say(f"Modules: {len(adapter.modules)} under the prefix '{adapter.prefix}'; family: "
        f"{family.name or ' or '.join(family.candidates) or 'unknown'} (from {family.how})")
    for writer, values in inspection.metadata_groups().items():
        shown = ", ".join(f"{key}={value if len(value) <= 60 else value[:57] + '...'}" for key, value in values.items())
        say(f"Metadata ({writer}): {shown}", "dim")
    if inspection.lycoris_config is not None:
        config = inspection.lycoris_config
        settings = ", ".join(f"{key}={config[key]}" for key in ("algo", "linear_dim", "linear_alpha", "factor", "multiplier") if key in config)
        say(f"Trained with LyCORIS config: {settings or 'no algo settings'}"
            + ("" if "linear_dim" in config else " (multiplier, linear_dim and linear_alpha missing: SimpleTuner's final save drops them)"), "dim")
    table = Table(title="Adapter modules", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("Where", overflow="fold", min_width=16)
    for name in ("Layers", "Algo", "Rank", "Factor", "Alpha", "Scale", "Params"):
        table.add_column(name, justify="right", no_wrap=True)
    for group in groups(inspection):
        algo = (group["algo"] or "unknown") + ("+DoRA" if group["dora"] else "")
        table.add_row(
            printable(group["where"]), str(group["modules"]), algo, "full" if group["full_matrix"] else table_cell(group["rank"]),
            table_cell(group["factor"]), table_cell(group["alpha"]), table_cell(group["scale"]), human_count(group["params"]),
        )
    table.add_section()
    table.add_row("Total", str(len(adapter.modules)), "", "", "", "", "", human_count(adapter.params))
    console.print(table)
    _render_health(inspection, say)
    _render_loaders(inspection, say)


def _render_health(inspection: Inspection, say) -> None:
    health = inspection.health
    if not health.available:
        say(f"Health: not checked: {health.reason}", "yellow")
        return
    bad, dead = health.nonfinite, health.dead
    say(f"Health: {len(bad)} tensors with NaN/inf, {len(dead)} dead modules (delta exactly zero)",
        "bold red" if bad else ("yellow" if dead else "green"))
    largest = health.largest(3)
    if largest:
        say("Largest deltas (RMS per weight element): " + ", ".join(f"{m.name} {m.rms:.3g}" for m in largest), "dim")
    scales = defaultdict(int)
    for module in inspection.adapter.modules.values():
        if module.lycoris_scale is not None:
            scales[(module.lycoris_scale, module.merge_scale)] += 1
    if scales:
        say("Scales (alpha / rank, as LyCORIS loads them): " + ", ".join(
            f"{scale:g} x{count}" + (f" (merge_to: {merged:g})" if merged is not None and abs(merged - scale) > 1e-9 else "")
            for (scale, merged), count in sorted(scales.items())), "dim")


def _render_loaders(inspection: Inspection, say) -> None:
    comfy, verdict, fit = inspection.comfyui, inspection.diffusers, inspection.fit
    total = len(inspection.adapter.modules)
    if comfy is not None:
        loaded = len(comfy.loaded) + len(comfy.split)
        say(f"ComfyUI {comfy.version}: loads {loaded} of {total} modules"
            + (f"; ignores {comfy.ignored_keys} keys ('lora key not loaded')" if comfy.ignored_keys else ""),
            "green" if not comfy.not_loaded else "yellow")
    else:
        say("ComfyUI: no key map for this family (lyco carries flux2, flux, sdxl; pass --family)", "dim")
    if verdict is not None:
        say(f"diffusers {verdict.version} ({verdict.pipeline}.load_lora_weights): {verdict.outcome}"
            + (f" {verdict.modules} modules" if verdict.modules else "") + f": {verdict.message}",
            "green" if verdict.outcome == "loads" else "yellow")
    if inspection.tlora_modules:
        say("T-LoRA: loads with LyCORIS only; apply_to() and a timestep mask per denoising step", "yellow")
    if fit is not None:
        load = fit.lycoris
        adapted = ", ".join(f"{count} {layer} in {block}" for (block, layer), count in sorted(fit.classes.items()))
        say(f"Model {fit.model_class} ({fit.origin}): {len(fit.paths)} of {total} modules name a layer"
            + (f" ({adapted})" if adapted else "") + (f"; {len(fit.mismatches)} do not fit" if fit.mismatches else ""),
            "green" if not fit.mismatches else "bold red")
        if load is not None:
            say(f"create_lycoris_from_weights on the meta model: "
                + (f"fails: {load.error}" if load.error else f"{load.modules} modules {dict(load.algo_table)}"),
                "green" if load.modules and not load.error else "bold red")
