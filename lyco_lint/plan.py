"""``lyco plan``: what a LyCORIS config will train on a real model, grouped by target, with sizes.

Works on an :class:`lyco_lint.meta_model.analysis.Analysis` (LyCORIS run on the model built on the meta device).
Training memory counts the adapter's own state only: fp32 weights + gradients + AdamW's two moments,
16 bytes per trainable parameter (activations and the frozen base model come on top).
"""

from __future__ import annotations

from typing import Any

from .meta_model.analysis import Analysis
from .units import TRAINING_BYTES_PER_PARAM, human_bytes, human_count, table_cell

_GROUP_SETTINGS = ("algo", "dim", "alpha", "factor", "full_matrix", "bypass", "dora")


def _groups(analysis: Analysis) -> list[dict[str, Any]]:
    """Adapted layers grouped by the target that reached them and the settings they got, in model order."""
    groups: dict[tuple, dict[str, Any]] = {}
    for module in analysis.modules:
        settings = module.settings
        key = (module.target, module.via, module.options_from, *(settings[name] for name in _GROUP_SETTINGS))
        group = groups.get(key)
        if group is None:
            group = groups[key] = {
                "target": module.target,
                "via": module.via,
                "options_from": module.options_from,
                **settings,
                "modules": 0,
                "trainable_params": 0,
                "layer_classes": [],
                "example": module.path,
            }
        group["modules"] += 1
        group["trainable_params"] += module.trainable_params
        if module.layer_class not in group["layer_classes"]:
            group["layer_classes"].append(module.layer_class)
    for group in groups.values():
        group["training_bytes"] = group["trainable_params"] * TRAINING_BYTES_PER_PARAM
    return list(groups.values())


def plan_as_dict(analysis: Analysis) -> dict[str, Any]:
    """The plan as plain data (``lyco plan --format json``)."""
    estimate = analysis.estimate
    return {
        "model": {
            "class": analysis.model_class,
            "origin": analysis.origin,
        },
        "adapted_modules": analysis.adapted_count,
        "trainable_params": analysis.trainable_params,
        "base_params": analysis.base_params,
        "adapter_share": analysis.adapter_share,
        "bytes_per_param": TRAINING_BYTES_PER_PARAM,
        "training_bytes": analysis.training_bytes,
        "groups": _groups(analysis),
        "unmatched_classes": list(analysis.unmatched_classes),
        "unmatched_names": list(analysis.unmatched_names),
        "shadowed_name_algo_map": [
            {"key": entry.key, "layers": list(entry.shadowed_paths), "classes": list(entry.winning_classes), "applied": entry.applied}
            for entry in analysis.shadowed
        ],
        "bypass_estimate": None
        if estimate is None
        else {
            "tokens": estimate.tokens,
            "bypass_flops_per_token": estimate.bypass_flops,
            "rebuild_flops_per_token": estimate.rebuild_flops,
            "rebuild_cheaper_share": estimate.rebuild_cheaper_share,
            "rebuild_cheaper": estimate.rebuild_cheaper,
            "layers_estimated": len(estimate.layers),
            "layers_skipped": len(estimate.skipped),
        },
        "lycoris_messages": list(analysis.messages),
    }


def _target_label(group: dict[str, Any]) -> str:
    label = group["target"] if group["via"] == "class" else f"name: {group['target']}"
    nested = group["options_from"]
    if nested and nested.startswith("module_algo_map.") and nested.split(".", 1)[1] != group["target"]:
        label += f" › {nested.split('.', 1)[1]}"
    return label


def render_plan(analysis: Analysis, console) -> None:
    """Print the plan: one row per group (Params: trainable parameters; Memory: their training state, fp32
    weights + gradients + AdamW states), totals, and the base model's size."""
    from rich.table import Table

    from rich import box

    # Compact enough for an 80-column terminal: "full" in the Dim column says full matrix, and the algo
    # cell carries DoRA and bypass; long targets fold instead of squeezing the numbers.
    table = Table(
        title=f"LyCORIS plan for {analysis.model_class}", title_justify="left", box=box.SIMPLE_HEAD,
        pad_edge=False, collapse_padding=True,
    )
    table.add_column("Target", overflow="fold", min_width=18)
    for header in ("Layers", "Algo", "Dim", "Alpha", "Factor", "Params", "Memory"):
        table.add_column(header, justify="right", no_wrap=True)
    for group in _groups(analysis):
        full = group["full_matrix"]
        algo = group["algo"] + ("+DoRA" if group["dora"] else "") + ("+bypass" if group["bypass"] else "")
        table.add_row(
            _target_label(group),
            str(group["modules"]),
            algo,
            "full" if full else table_cell(group["dim"]),
            "-" if full else table_cell(group["alpha"]),
            table_cell(group["factor"]),
            human_count(group["trainable_params"]),
            human_bytes(group["training_bytes"]),
        )
    table.add_section()
    table.add_row(
        "Total", str(analysis.adapted_count), "", "", "", "",
        human_count(analysis.trainable_params), human_bytes(analysis.training_bytes),
    )
    console.print(table)
    console.print(
        f"Base model: {analysis.model_class}, {human_count(analysis.base_params)} parameters ({analysis.base_params:,}) "
        f"from {analysis.origin}"
    )
    console.print(
        f"Adapter: {analysis.trainable_params:,} trainable parameters = {analysis.adapter_share:.1%} of the base model; "
        f"training state {human_bytes(analysis.training_bytes)} ({TRAINING_BYTES_PER_PARAM} bytes per parameter: "
        "fp32 weights, gradients, AdamW states)"
    )
    if analysis.unmatched_classes:
        console.print(f"Target classes not in the model: {', '.join(analysis.unmatched_classes)}")
    if analysis.unmatched_names:
        console.print(f"Target names that match nothing: {', '.join(analysis.unmatched_names)}")
    for entry in analysis.shadowed:
        console.print(
            f"name_algo_map '{entry.key}' is ignored for {len(entry.shadowed_paths)} layer(s) inside "
            f"{', '.join(entry.winning_classes)} (see LYC208)"
        )
    estimate = analysis.estimate
    if estimate is not None and estimate.layers:
        console.print(
            f"Bypass forward: {estimate.bypass_flops / 1e9:.3g} GFLOP/token extra vs rebuild "
            f"{estimate.rebuild_flops / 1e9:.3g} GFLOP/token (at {estimate.tokens} tokens per forward)"
        )
