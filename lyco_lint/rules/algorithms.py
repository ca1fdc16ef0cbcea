"""LYC1xx: algorithm options — options the chosen algo ignores, options dropped at the top level, and the
algorithm-specific traps of lycoris-lora 4.1.3.

Every rule looks at the top level and at each ``module_algo_map`` / ``name_algo_map`` entry (a "scope").
An entry's options override the top-level ones for the layers it matches; what it does not set, it inherits
(create_lycoris passes its keyword arguments to every module, and a map entry without ``algo`` uses the
top-level algo). A problem an entry only inherits is reported once, at the top level; an entry is reported
when it sets one of the options involved itself, or when its own ``algo`` creates the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from ..catalog import ERROR, INFO, LYCORIS, WARNING, Fix, Hit, replace_value, rule
from ..documents import Document
from ..jsonpos import join_pointer
from ..knowledge.lycoris import (
    BUILTIN_PRESET_ENABLE_CONV,
    MERGE_TO_SQUARES_SCALE,
    algo_names,
    algos_honouring,
    dora_algos,
    lokr_is_all_full,
    map_only_options,
    normalize_top_level_algo,
    preset_state,
    str_bool,
    unknown_algo_hint,
)
from ..schemas import LYCORIS_CONFIG_ID, MODULE_OPTIONS_ID, schema
from .structure import schema_hits

MAP_NAMES = ("module_algo_map", "name_algo_map")
# A map entry spells some options differently from the top level (LyCORIS passes the top-level value
# under the map name to every module).
TOP_LEVEL_NAME = {"dim": "linear_dim", "alpha": "linear_alpha", "weight_decompose": "dora_wd", "wd_on_out": "wd_on_output"}
FORBIDDEN_IN_MAP = ("dropout", "rank_dropout", "module_dropout", "multiplier")


# -- values as LyCORIS reads them ---------------------------------------------------------------------


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_default(value: Any, default: Any) -> bool:
    if isinstance(value, bool) or isinstance(default, bool):
        return value is default
    return value == default


def show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) >= 1 else str(value)
    return str(value) if not isinstance(value, str) else f'"{value}"'


# -- scopes: the top level and every map entry ---------------------------------------------------------


@dataclass
class Scope:
    pointer: str  # "" for the top level, /apply_preset/<map>/<key> for an entry
    own: dict[str, Any]  # the options this scope writes itself
    algo: Optional[str]  # the algo its layers use; None when LyCORIS would not know it
    top: Optional["Scope"] = None  # for an entry: the top-level scope it inherits from
    map_name: str = ""
    key: str = ""

    @property
    def is_top(self) -> bool:
        return self.top is None

    @property
    def where(self) -> str:
        return "at the top level" if self.is_top else f"in the {self.map_name} entry '{self.key}'"

    def name(self, option: str) -> str:
        """How this scope spells a module option (``dim`` in an entry is ``linear_dim`` at the top)."""
        return TOP_LEVEL_NAME.get(option, option) if self.is_top else option

    def sets(self, *options: str) -> bool:
        return any(self.name(option) in self.own for option in options)

    def pointer_of(self, option: str) -> str:
        return join_pointer(self.pointer, self.name(option))

    def value(self, option: str, default: Any = None) -> Any:
        """The value LyCORIS uses for ``option`` (map spelling) in this scope's layers."""
        name = self.name(option)
        if self.is_top:
            return self.own.get(name, default)
        if option in ("dim", "alpha"):
            # a falsy dim/alpha in an entry falls back to the top-level value
            return self.own.get(option) or self.top.value(option, default)
        if option in self.own:
            return self.own[option]
        return self.top.value(option, default)

    def flag(self, option: str, default: bool = False) -> bool:
        name = self.name(option)
        if self.is_top:
            return str_bool(self.own[name]) if name in self.own else default
        if option in self.own:
            return bool(self.own[option])  # map entries are not coerced: Python truthiness
        return self.top.flag(option, default)

    def blame(self, *options: str) -> tuple[str, str]:
        """Where to point for a problem made of ``options``: the first one this scope writes, else (for an
        entry that only inherits them) its ``algo`` value, else its key."""
        for option in options:
            if self.sets(option):
                return self.pointer_of(option), "value"
        if self.is_top:
            return join_pointer("", self.name(options[0])), "key"
        if "algo" in self.own:
            return join_pointer(self.pointer, "algo"), "value"
        return self.pointer, "key"

    def source(self, option: str) -> str:
        """`linear_dim 16` or `dim 16` with where it comes from, for messages."""
        value = self.value(option)
        if self.is_top or self.sets(option):
            return f"{self.name(option)} {show(value)}"
        return f"the top-level {TOP_LEVEL_NAME.get(option, option)} {show(value)}"


def top_scope(document: Document) -> Scope:
    config = document.value
    return Scope("", config, normalize_top_level_algo(config.get("algo")))


def map_entries(document: Document) -> Iterator[tuple[str, str, Any]]:
    """(map name, key, entry) for every entry of module_algo_map and name_algo_map."""
    preset = document.value.get("apply_preset")
    if not isinstance(preset, dict):
        return
    for map_name in MAP_NAMES:
        entries = preset.get(map_name)
        if isinstance(entries, dict):
            for key, entry in entries.items():
                yield map_name, key, entry


def entry_algo(entry: dict, top: Scope) -> Optional[str]:
    if "algo" not in entry:
        return top.algo
    algo = entry["algo"]
    return algo if isinstance(algo, str) and algo in algo_names() else None  # case-sensitive (LYC114)


def scopes(document: Document) -> list[Scope]:
    """The top level and every map entry (computed once per document: every LYC1xx rule walks them)."""
    return document.derive("lycoris_scopes", _scopes)


def _scopes(document: Document) -> list[Scope]:
    top = top_scope(document)
    found = [top]
    for map_name, key, entry in map_entries(document):
        if isinstance(entry, dict):
            pointer = join_pointer("", "apply_preset", map_name, key)
            found.append(Scope(pointer, entry, entry_algo(entry, top), top, map_name, key))
    return found


Problem = Callable[[Scope], bool]


def affected_scopes(document: Document, has_problem: Problem, *options: str) -> Iterator[Scope]:
    """The scopes with the problem, each reported once: an entry that only inherits a problem the top level
    already has is left out (the top-level finding covers it)."""
    all_scopes = scopes(document)
    top_has_it = has_problem(all_scopes[0])
    for scope in all_scopes:
        if not has_problem(scope):
            continue
        if scope.is_top or not top_has_it or scope.sets(*options):
            yield scope


def map_example(document: Document, option: str, value: Any) -> str:
    """A map entry setting ``option``, keyed by the config's first target class when it has one."""
    targets = document.value.get("apply_preset", {})
    targets = targets.get("target_module") if isinstance(targets, dict) else None
    key = targets[0] if isinstance(targets, list) and targets and isinstance(targets[0], str) else "<ClassName>"
    return f'"apply_preset": {{"module_algo_map": {{"{key}": {{"{option}": {json.dumps(value, ensure_ascii=False)}}}}}}}'


# -- LYC101 ---------------------------------------------------------------------------------------------


@rule(
    "LYC101",
    "option-not-for-algo",
    WARNING,
    applies_to=LYCORIS,
    summary=(
        "Reports an option that the chosen algo ignores (`factor` with loha, `constraint` with lokr, `use_tucker` "
        "with tlora, ...), at the top level and in map entries (with the entry's own algo). The table of which algo "
        "honours which option is `lyco explain ALGO`. Options left at their default value are not reported."
    ),
    why=(
        "Each LyCORIS module class absorbs the keyword arguments it does not use without a word: the option looks "
        "set, but the run trains exactly as without it, and the algo that would honour it is one word away."
    ),
    example='{"algo": "loha", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8, "factor": 8}',
    fixed='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8, "factor": 8}',
)
def option_not_for_algo(document: Document) -> Iterator[Hit]:
    map_only = set(map_only_options())
    all_scopes = scopes(document)
    for scope in all_scopes:
        if scope.algo is None:
            continue  # LYC015 / LYC114
        properties = schema(LYCORIS_CONFIG_ID if scope.is_top else MODULE_OPTIONS_ID)["properties"]
        for option, value in scope.own.items():
            if scope.is_top and option in map_only:
                continue  # dropped whatever the algo: LYC102
            algos = algos_honouring(option, in_map_entry=not scope.is_top)
            if algos is None:
                continue
            users = _algos_reading(option, scope, all_scopes)
            if any(algo in algos for algo in users):
                continue
            if "default" in properties.get(option, {}) and is_default(value, properties[option]["default"]):
                continue  # nothing is lost
            readers = [a for a in algos if a != "locon"]  # locon is lora
            used = f"algo '{users[0]}'" if len(users) == 1 else f"the algos it reaches ({', '.join(users)})"
            yield Hit(
                join_pointer(scope.pointer, option),
                f"'{option}' {scope.where} has no effect with {used}: only {', '.join(readers)} "
                f"read{'s' if len(readers) == 1 else ''} it, and LyCORIS drops it without a word; delete it, or "
                f"switch to an algo that uses it (`lyco explain {users[0]}` lists what {users[0]} reads)",
                at="key",
            )


def _algos_reading(option: str, scope: Scope, all_scopes: list[Scope]) -> list[str]:
    """The algos of the layers that receive ``option`` from ``scope``: a top-level option reaches every map
    entry that does not set it itself (create_lycoris passes it to every module)."""
    users = [scope.algo]
    if scope.is_top:
        for entry in all_scopes[1:]:
            if entry.algo is not None and not entry.sets(option) and entry.algo not in users:
                users.append(entry.algo)
    return users


# -- LYC102 ---------------------------------------------------------------------------------------------

_TOP_LEVEL_SWITCH = {"weight_decompose": "dora_wd", "wd_on_out": "wd_on_output"}


@rule(
    "LYC102",
    "option-dropped-at-top-level",
    ERROR,
    applies_to=LYCORIS,
    summary=(
        "Reports a real module option at the top level that `create_lycoris` never passes on: `rs_lora`, "
        "`weight_decompose`, `wd_on_out`, `rank_dropout_scale`, `train_on_input`, `sig_type`, `use_data_init`, "
        "`mask_group_id`. They only work inside a `module_algo_map`/`name_algo_map` entry; the top-level DoRA "
        "switches are `dora_wd` and `wd_on_output`. A value equal to the option's default is reported as a warning."
    ),
    why=(
        "create_lycoris reads a fixed list of keyword arguments and drops the rest silently: `rs_lora: true` or "
        "`weight_decompose: true` at the top level trains plain LoRA scaling / no DoRA, with no message."
    ),
    example='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8, "weight_decompose": true}',
    fixed='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8, "dora_wd": true}',
)
def option_dropped_at_top_level(document: Document) -> Iterator[Hit]:
    properties = schema(LYCORIS_CONFIG_ID)["properties"]
    for option in map_only_options():
        if option not in document.value:
            continue
        value = document.value[option]
        if option in _TOP_LEVEL_SWITCH:
            switch = _TOP_LEVEL_SWITCH[option]
            fix = f'the top-level switch is "{switch}": write "{switch}": {show(value)}'
        else:
            fix = f"move it into a map entry for the layers it is meant for, e.g. {map_example(document, option, value)}"
        harmless = "default" in properties[option] and is_default(value, properties[option]["default"])
        yield Hit(
            join_pointer("", option),
            f"'{option}' at the top level is dropped by create_lycoris without a word (it only works inside a "
            f"module_algo_map / name_algo_map entry); {fix}",
            at="key",
            severity=WARNING if harmless else None,
        )


# -- LYC103 ---------------------------------------------------------------------------------------------


def _lokr_all_full(scope: Scope) -> bool:
    return scope.algo == "lokr" and lokr_is_all_full(scope.value("dim", 4), scope.value("factor", -1), scope.flag("full_matrix"))


def _full_at(scope: Scope, dim: Any) -> bool:
    return scope.algo == "lokr" and lokr_is_all_full(dim, scope.value("factor", -1), scope.flag("full_matrix"))


def _conv_dim(document: Document) -> Any:
    """The conv_lora_dim LyCORIS builds with: create_lycoris's ``int(conv_dim or linear_dim)`` (linear_dim None is
    4), and 0 when the preset keeps convolutions off (LycorisNetwork: ``if not ENABLE_CONV: conv_lora_dim = 0``)."""
    if not preset_state(document.value)["ENABLE_CONV"]:
        return 0
    linear_dim = document.value.get("linear_dim")
    return document.value.get("conv_dim") or (4 if linear_dim is None else linear_dim)


def _other_alpha_readers(scope: Scope, document: Document) -> list[str]:
    """The layers outside full-matrix LoKr that read this scope's alpha (lycoris-lora 4.1.3): a convolution with
    a kernel larger than 1 gets ``alpha or conv_alpha`` with ``dim or conv_lora_dim``, and create_lycoris's
    conv_alpha is ``conv_alpha or linear_alpha``; a map entry without its own alpha gets the top-level one."""
    readers = []
    conv_dim = _conv_dim(document)
    if not scope.is_top:
        dim = scope.own.get("dim") or conv_dim
        if dim and not _full_at(scope, dim):
            readers.append(f"this entry's convolution layers (it sets no dim, so they use conv_dim {show(dim)}, which keeps them decomposed)")
        return readers
    conv_alpha_is_linear = not document.value.get("conv_alpha")
    if conv_alpha_is_linear and conv_dim and not _full_at(scope, conv_dim):
        readers.append(
            f"the convolution layers (conv_alpha is not written, so create_lycoris gives them linear_alpha, and conv_dim "
            f"{show(conv_dim)} keeps them decomposed: scale {show(scope.value('alpha'))}/{show(conv_dim)})"
        )
    for entry in scopes(document)[1:]:
        if entry.own.get("alpha") or entry.algo is None:
            continue  # its own alpha (or an algo LyCORIS does not know: LYC114)
        linear = not _full_at(entry, entry.value("dim"))
        conv = conv_alpha_is_linear and bool(entry.own.get("dim") or conv_dim) and not _full_at(entry, entry.own.get("dim") or conv_dim)
        if linear or conv:
            readers.append(f"the layers of the {entry.map_name} entry '{entry.key}' (algo {entry.algo}, no alpha of its own)")
    return readers


def _alpha_ignored(scope: Scope) -> bool:
    alpha, dim = scope.value("alpha"), scope.value("dim")
    # Without a written dim (full_matrix lets SimpleTuner omit it) there is no alpha/dim ratio to misread, and
    # SimpleTuner still insists on a linear_alpha: nothing useful to say.
    return _lokr_all_full(scope) and dim is not None and is_number(alpha) and alpha != 0 and alpha != dim


@rule(
    "LYC103",
    "lokr-alpha-ignored",
    INFO,
    applies_to=LYCORIS,
    summary=(
        "Reports `linear_alpha` (or a map entry's `alpha`) other than the dim with LoKr in full-matrix mode: "
        "`full_matrix: true`, or `linear_dim` of 10000 or more with `factor` -1 or at least 4. LyCORIS then keeps "
        "both Kronecker blocks as full matrices on every layer and forces alpha to the dim (scale 1). A layer is "
        "full when dim ≥ max(out_k, in_n)/2; with factor 1–3 the largest fused projections (Flux 2: 6144→55296) "
        "can stay decomposed at dim 10000, so lyco says nothing there rather than guess. Nor when `linear_dim` is "
        "omitted (allowed with full_matrix): SimpleTuner requires linear_alpha, and there is no ratio to misread. "
        "When the alpha also reaches layers that are not full-matrix (convolutions with their own `conv_dim` and no "
        "`conv_alpha`: create_lycoris gives them linear_alpha; a map entry without its own `alpha`), the finding "
        "names them and offers no fix."
    ),
    why=(
        "The config reads as if the update were scaled by linear_alpha / linear_dim (1/10000), but it is scaled "
        "by 1. Other tools read the saved alpha differently (Comfy-Org/ComfyUI#15114), and `rs_lora` in a map "
        "entry turns the scale into √dim."
    ),
    example='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 16}',
    fixed='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 10000, "factor": 16}',
    fix=(
        "Safe: the ignored alpha is written as the value LyCORIS uses (the dim); training does not change. Not "
        "offered when another layer (a decomposed convolution, a map entry) reads the same alpha."
    ),
)
def lokr_alpha_ignored(document: Document) -> Iterator[Hit]:
    for scope in affected_scopes(document, _alpha_ignored, "alpha"):
        dim, alpha = scope.value("dim", 4), scope.value("alpha")
        if scope.flag("full_matrix"):
            reason = "full_matrix is true"
        else:
            reason = f"{scope.source('dim')} with factor {show(scope.value('factor', -1))} keeps every layer's blocks full"
        alpha_name = scope.name("alpha") if scope.sets("alpha") or scope.is_top else "linear_alpha"
        others = _other_alpha_readers(scope, document) if scope.sets("alpha") else []
        if others:
            if scope.is_top:
                pins = [f'"conv_alpha": {show(alpha)}' for other in others if other.startswith("the convolution")][:1]
                pins += [f'"alpha": {show(alpha)} in those map entries' for other in others if other.startswith("the layers")][:1]
                advice = f"to say what happens, first give them their own value ({' and '.join(pins)}), then write {alpha_name} {show(dim)}"
            else:
                advice = "leave it as it is"
            message = (
                f"LoKr in full-matrix mode {scope.where} ({reason}): on those layers LyCORIS sets alpha to the dim, so "
                f"their scale is 1 and {alpha_name} {show(alpha)} has no effect there; but it still scales "
                f"{'; and '.join(others)}. Changing {alpha_name} would change their training: {advice}"
            )
        else:
            message = (
                f"LoKr in full-matrix mode {scope.where} ({reason}): LyCORIS sets alpha to the dim, so the scale is 1 "
                f"and {alpha_name} {show(alpha)} has no effect; write {show(dim)} to say what happens"
            )
        if scope.flag("rs_lora") and not scope.is_top and is_number(dim) and dim > 0:
            message += f" (with rs_lora the scale becomes √dim ≈ {dim ** 0.5:.0f}, not 1)"
        pointer, at = scope.blame("alpha", "full_matrix", "dim")
        fix = None
        if scope.sets("alpha") and not others:
            fix = Fix(f"Write {alpha_name} {show(dim)}", (replace_value(scope.pointer_of("alpha"), dim),))
        yield Hit(pointer, message, at=at, fix=fix)


# -- LYC104 ---------------------------------------------------------------------------------------------


def _full_with_bypass(scope: Scope) -> bool:
    return scope.algo == "full" and scope.flag("bypass_mode")


@rule(
    "LYC104",
    "full-with-bypass",
    ERROR,
    applies_to=LYCORIS,
    summary="Reports `algo: full` (top level or a map entry) with `bypass_mode: true`.",
    why=(
        "LyCORIS raises `ValueError: bypass mode is not supported in Full algo.` when it builds the first module, "
        "after the model has been loaded."
    ),
    example='{"algo": "full", "multiplier": 1.0, "linear_dim": 1, "linear_alpha": 1, "bypass_mode": true}',
    fixed='{"algo": "full", "multiplier": 1.0, "linear_dim": 1, "linear_alpha": 1, "bypass_mode": false}',
)
def full_with_bypass(document: Document) -> Iterator[Hit]:
    for scope in affected_scopes(document, _full_with_bypass, "bypass_mode"):
        inherited = "" if scope.sets("bypass_mode") or scope.is_top else " (inherited from the top level)"
        pointer, at = scope.blame("bypass_mode")
        yield Hit(
            pointer,
            f"algo 'full' {scope.where} with bypass_mode true{inherited}: LyCORIS raises \"ValueError: bypass mode is "
            f"not supported in Full algo\" when it builds the first module; set \"bypass_mode\": false for these "
            f"layers, or use another algo (lokr with full_matrix) if you need bypass for quantized weights",
            at=at,
        )


# -- LYC105 ---------------------------------------------------------------------------------------------


def _block_size(scope: Scope) -> Any:
    if not scope.is_top and "block_size" in scope.own:
        return scope.own["block_size"]  # map values are passed as they are
    return (scope.top or scope).own.get("block_size") or 4  # create_lycoris: int(block_size or 4)


def _dylora_misfit(scope: Scope) -> bool:
    dim, block = scope.value("dim", 4), _block_size(scope)
    return scope.algo == "dylora" and is_int(dim) and is_int(block) and block > 0 and dim % block != 0


@rule(
    "LYC105",
    "dylora-block-size",
    ERROR,
    applies_to=LYCORIS,
    summary="Reports DyLoRA whose `linear_dim` (or map entry `dim`) is not a multiple of `block_size` (default 4).",
    why=(
        "DyLoRA trains the rank in blocks of block_size; LyCORIS stops with `AssertionError: lora_dim must be a "
        "multiple of block_size` when it builds the first module."
    ),
    example='{"algo": "dylora", "multiplier": 1.0, "linear_dim": 10, "linear_alpha": 5}',
    fixed='{"algo": "dylora", "multiplier": 1.0, "linear_dim": 12, "linear_alpha": 6}',
)
def dylora_block_size(document: Document) -> Iterator[Hit]:
    for scope in affected_scopes(document, _dylora_misfit, "dim", "block_size"):
        dim, block = scope.value("dim", 4), _block_size(scope)
        lower, upper = (dim // block) * block, (dim // block + 1) * block
        choices = f"{lower} or {upper}" if lower > 0 else str(upper)
        pointer, at = scope.blame("dim", "block_size")
        yield Hit(
            pointer,
            f"dylora {scope.where}: {scope.source('dim')} is not a multiple of block_size {block}"
            f"{'' if scope.sets('block_size') else ' (the default)'}; LyCORIS stops with \"AssertionError: lora_dim "
            f"must be a multiple of block_size\"; use {choices}",
            at=at,
        )


# -- LYC106 / LYC107: DoRA ------------------------------------------------------------------------------


def _dora(scope: Scope) -> bool:
    return scope.algo in dora_algos() and scope.flag("weight_decompose")


def _dora_in_bypass(scope: Scope) -> bool:
    return _dora(scope) and scope.flag("bypass_mode")


@rule(
    "LYC106",
    "dora-in-bypass",
    ERROR,
    applies_to=LYCORIS,
    summary=(
        "Reports DoRA (`dora_wd`, or `weight_decompose` in a map entry) together with `bypass_mode: true` (at the "
        "top level or in the entry)."
    ),
    why=(
        "LyCORIS's bypass forward ignores the DoRA magnitude: it gets no gradient and a plain adapter is trained, "
        "while merging applies the untrained magnitude, so inference differs from training. Upstream docs claim "
        "DoRA forces bypass off; lycoris-lora 4.1.3 does not."
    ),
    example='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8, "dora_wd": true, "bypass_mode": true}',
    fixed='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8, "dora_wd": true, "bypass_mode": false}',
)
def dora_in_bypass(document: Document) -> Iterator[Hit]:
    for scope in affected_scopes(document, _dora_in_bypass, "weight_decompose", "bypass_mode"):
        switch = scope.name("weight_decompose") if scope.sets("weight_decompose") or scope.is_top else "dora_wd"
        pointer, at = scope.blame("weight_decompose", "bypass_mode")
        yield Hit(
            pointer,
            f"DoRA ({switch}) with bypass_mode true {scope.where}: the bypass forward ignores the DoRA magnitude, so "
            f"DoRA is never trained (and merging applies it untrained); set \"bypass_mode\": false to train DoRA, or "
            f"turn DoRA off if you need bypass (quantized base weights)",
            at=at,
        )


def _dora_on_output(scope: Scope) -> bool:
    return _dora(scope) and scope.algo in ("loha", "lokr") and scope.flag("wd_on_out", True)


@rule(
    "LYC107",
    "dora-wd-on-output",
    WARNING,
    applies_to=LYCORIS,
    summary=(
        "Reports DoRA with loha or lokr while `wd_on_output` (map entries: `wd_on_out`) is true, which is its "
        "default."
    ),
    why=(
        "LoHa/LoKr DoRA files with the magnitude over output rows come out as coloured noise in common inference "
        "tools (KohakuBlueleaf/LyCORIS#246); with `wd_on_output: false` (the pre-3.1 axis) they load everywhere."
    ),
    example='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "dora_wd": true}',
    fixed='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "dora_wd": true, "wd_on_output": false}',
)
def dora_wd_on_output(document: Document) -> Iterator[Hit]:
    for scope in affected_scopes(document, _dora_on_output, "weight_decompose", "wd_on_out"):
        switch = scope.name("wd_on_out")
        state = "is true" if scope.sets("wd_on_out") else ("is not set (default true)" if scope.is_top else "is inherited as true")
        pointer, at = scope.blame("wd_on_out", "weight_decompose")
        yield Hit(
            pointer,
            f"DoRA with {scope.algo} {scope.where} while {switch} {state}: common inference tools load LoHa/LoKr DoRA "
            f"files with this axis as noise (KohakuBlueleaf/LyCORIS#246); set \"{switch}\": false unless your "
            f"inference tool is known to handle it",
            at=at,
        )


# -- LYC108 / LYC109: T-LoRA ------------------------------------------------------------------------------

TLORA_OPTIONS = ("tlora_min_rank", "tlora_alpha")


@rule(
    "LYC108",
    "tlora-range",
    ERROR,
    applies_to=LYCORIS,
    summary=(
        "Reports `tlora_min_rank` that is not an integer between 1 and `linear_dim`, and `tlora_alpha` that is "
        "not above 0."
    ),
    why=(
        "SimpleTuner builds the T-LoRA timestep mask from these values without checking them: a min rank above "
        "linear_dim is clamped, so every timestep trains all ranks and T-LoRA becomes plain LoRA; 0 ranks or a "
        "non-positive alpha break the schedule (a negative base with a fractional alpha raises TypeError)."
    ),
    example='{"algo": "tlora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 16, "tlora_min_rank": 32}',
    fixed='{"algo": "tlora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 16, "tlora_min_rank": 4}',
)
def tlora_range(document: Document) -> Iterator[Hit]:
    yield from schema_hits(document, "LYC108")
    config = document.value
    min_rank, dim = config.get("tlora_min_rank"), config.get("linear_dim")
    if top_scope(document).algo != "tlora" or not (is_int(min_rank) and is_int(dim)) or not 1 <= dim < min_rank:
        return
    yield Hit(
        "/tlora_min_rank",
        f"tlora_min_rank {min_rank} is above linear_dim {dim}: the T-LoRA mask cannot have more ranks than the "
        f"module, so it is clamped to {dim} and every timestep trains all ranks (T-LoRA becomes plain LoRA); use a "
        f"value between 1 and {dim}",
    )


@rule(
    "LYC109",
    "tlora-option-without-tlora",
    WARNING,
    applies_to=LYCORIS,
    summary="Reports `tlora_min_rank` or `tlora_alpha` while `algo` is not tlora.",
    why="SimpleTuner reads the T-LoRA keys only when algo is tlora; with any other algo they do nothing.",
    example='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 16, "tlora_min_rank": 4}',
    fixed='{"algo": "tlora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 16, "tlora_min_rank": 4}',
)
def tlora_option_without_tlora(document: Document) -> Iterator[Hit]:
    algo = top_scope(document).algo
    if algo is None or algo == "tlora":
        return
    for option in TLORA_OPTIONS:
        if option in document.value:
            yield Hit(
                join_pointer("", option),
                f"'{option}' only applies to T-LoRA, but algo is '{algo}': SimpleTuner ignores it; delete it, or set "
                f"\"algo\": \"tlora\" if you meant to train T-LoRA",
                at="key",
            )


# -- LYC110 ---------------------------------------------------------------------------------------------


def _lokr_rank_dropout(scope: Scope) -> bool:
    rank_dropout = (scope.top or scope).own.get("rank_dropout")
    return scope.algo == "lokr" and is_number(rank_dropout) and rank_dropout > 0


@rule(
    "LYC110",
    "lokr-rank-dropout",
    WARNING,
    applies_to=LYCORIS,
    summary="Reports `rank_dropout` above 0 for layers trained with lokr (top-level algo or a map entry's).",
    why=(
        "LoKr's rank dropout builds its mask on the CPU: in the default rebuild path the first training step on a "
        "GPU crashes with a device mismatch (KohakuBlueleaf/LyCORIS#291, open in 4.1.3), and in bypass mode it is "
        "ignored."
    ),
    example='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "rank_dropout": 0.1}',
    fixed='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "module_dropout": 0.1}',
)
def lokr_rank_dropout(document: Document) -> Iterator[Hit]:
    for scope in affected_scopes(document, _lokr_rank_dropout):
        rank_dropout = show((scope.top or scope).own["rank_dropout"])
        if scope.flag("bypass_mode"):
            effect = "is ignored in bypass mode (bypass_mode is true), so it does nothing"
        else:
            effect = "crashes on CUDA in the rebuild path (the mask is built on the CPU, KohakuBlueleaf/LyCORIS#291)"
        if scope.is_top:
            subject = f"rank_dropout {rank_dropout} with lokr {effect}"
        else:
            subject = f"the {scope.map_name} entry '{scope.key}' uses lokr, and the top-level rank_dropout {rank_dropout} {effect} there"
        pointer, at = scope.blame("rank_dropout")
        yield Hit(pointer, f"{subject}; set rank_dropout to 0 and use module_dropout for regularisation", at=at)


# -- LYC111 ---------------------------------------------------------------------------------------------


def _conv_kept_off(document: Document) -> tuple[bool, Optional[bool]]:
    """(apply_preset.enable_conv is false, the top-level preset keeps conv layers off)."""
    preset = document.value.get("apply_preset")
    disabled = isinstance(preset, dict) and preset.get("enable_conv") is False
    return disabled, BUILTIN_PRESET_ENABLE_CONV.get(document.value.get("preset", "full")) is False


@rule(
    "LYC111",
    "conv-dim-zero",
    WARNING,
    applies_to=LYCORIS,
    summary=(
        "Reports `conv_dim: 0`, which does not disable convolution layers. To skip them, set `\"enable_conv\": "
        "false` in `apply_preset` and a top-level `preset` that keeps them off, such as \"full-lin\"."
    ),
    why=(
        "create_lycoris reads `int(conv_dim or linear_dim)`: 0 falls back to linear_dim and every convolution is "
        "still adapted. And create_lycoris applies its `preset` (default \"full\") after apply_preset, which turns "
        "enable_conv back on."
    ),
    example='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8, "conv_dim": 0}',
    fixed=(
        '{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8, "preset": "full-lin",\n'
        ' "apply_preset": {"enable_conv": false}}'
    ),
)
def conv_dim_zero(document: Document) -> Iterator[Hit]:
    conv_dim = document.value.get("conv_dim")
    if not is_int(conv_dim) or conv_dim != 0:
        return
    disabled, preset_keeps_off = _conv_kept_off(document)
    if disabled and preset_keeps_off:
        return  # convolutions are off already; conv_dim 0 is merely redundant
    linear_dim = document.value.get("linear_dim", 4)
    if disabled:
        fix = (
            f"apply_preset.enable_conv is false, but create_lycoris's preset \"{document.value.get('preset', 'full')}\" "
            "turns it back on: add \"preset\": \"full-lin\" and delete conv_dim"
        )
    else:
        fix = (
            "to skip convolutions, set \"enable_conv\": false in apply_preset and \"preset\": \"full-lin\" at the top "
            "level (create_lycoris's default preset \"full\" turns enable_conv back on), then delete conv_dim"
        )
    yield Hit(
        "/conv_dim",
        f"conv_dim 0 does not disable convolution layers: LyCORIS treats 0 as unset and adapts them with linear_dim "
        f"({show(linear_dim)}); {fix}",
    )


# -- LYC112 ---------------------------------------------------------------------------------------------

LOHA_MAX_DIM = 32


def _loha_high_dim(scope: Scope) -> bool:
    dim = scope.value("dim", 4)
    return scope.algo == "loha" and is_int(dim) and dim > LOHA_MAX_DIM


@rule(
    "LYC112",
    "loha-high-dim",
    WARNING,
    applies_to=LYCORIS,
    summary=f"Reports loha with `linear_dim` (or a map entry `dim`, or `conv_dim`) above {LOHA_MAX_DIM}.",
    why=(
        "LoHa multiplies two rank-dim products element-wise, so its effective rank is up to dim²; LyCORIS's "
        "documentation advises dim 32 or less because higher dims risk NaN losses (nothing warns at run time)."
    ),
    example='{"algo": "loha", "multiplier": 1.0, "linear_dim": 64, "linear_alpha": 32}',
    fixed='{"algo": "loha", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8}',
)
def loha_high_dim(document: Document) -> Iterator[Hit]:
    for scope in affected_scopes(document, _loha_high_dim, "dim"):
        dim = scope.value("dim", 4)
        pointer, at = scope.blame("dim")
        yield Hit(
            pointer,
            f"loha {scope.where} with {scope.source('dim')}: each Hadamard factor has rank {dim} (effective rank up to "
            f"{dim * dim}), and LyCORIS advises LoHa dim {LOHA_MAX_DIM} or less because higher dims risk NaN losses; use "
            f"{LOHA_MAX_DIM} or less",
            at=at,
        )
    top = top_scope(document)
    conv_dim = document.value.get("conv_dim")
    if top.algo == "loha" and is_int(conv_dim) and conv_dim > LOHA_MAX_DIM:
        yield Hit(
            "/conv_dim",
            f"loha with conv_dim {conv_dim}: LyCORIS advises LoHa dim {LOHA_MAX_DIM} or less because higher dims risk "
            f"NaN losses; use "
            f"{LOHA_MAX_DIM} or less",
        )


# -- LYC113 / LYC114: map entries ---------------------------------------------------------------------------


@rule(
    "LYC113",
    "map-option-forbidden",
    ERROR,
    applies_to=LYCORIS,
    summary="Reports `dropout`, `rank_dropout`, `module_dropout` or `multiplier` inside a map entry.",
    why=(
        "LyCORIS passes these to every module itself, so a map entry that sets them makes the module constructor "
        "fail with `TypeError: ... got multiple values for argument` when the network is built. Per-module dropout "
        "is not possible in 4.1.3."
    ),
    example='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1,\n "apply_preset": {"module_algo_map": {"Flux2Attention": {"dropout": 0.1}}}}',
    fixed='{"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1, "dropout": 0.1,\n "apply_preset": {"module_algo_map": {"Flux2Attention": {}}}}',
)
def map_option_forbidden(document: Document) -> Iterator[Hit]:
    for map_name, key, entry in map_entries(document):
        if not isinstance(entry, dict):
            continue
        for option in FORBIDDEN_IN_MAP:
            if option in entry:
                what = "per-module dropout is not possible" if "dropout" in option else "the multiplier is global"
                yield Hit(
                    join_pointer("", "apply_preset", map_name, key, option),
                    f"'{option}' in the {map_name} entry '{key}': LyCORIS already passes {option} to every module, so "
                    f"building the network fails with \"TypeError: got multiple values for argument '{option}'\"; "
                    f"{what}: delete it here and set it at the top level (it then applies to every module)",
                    at="key",
                )


@rule(
    "LYC114",
    "map-unknown-algo",
    ERROR,
    applies_to=LYCORIS,
    summary=(
        "Reports an `algo` in a map entry that LyCORIS does not know. Map entries are case-sensitive (only the "
        "top-level algo is lower-cased): \"LoKr\" fails there."
    ),
    why="LyCORIS raises KeyError when it builds the first module of that entry, after the model is loaded.",
    example='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8,\n "apply_preset": {"module_algo_map": {"Flux2FeedForward": {"algo": "LoKr"}}}}',
    fixed='{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8,\n "apply_preset": {"module_algo_map": {"Flux2FeedForward": {"algo": "lokr"}}}}',
)
def map_unknown_algo(document: Document) -> Iterator[Hit]:
    names = algo_names()
    for map_name, key, entry in map_entries(document):
        if not isinstance(entry, dict) or not isinstance(entry.get("algo"), str) or entry["algo"] in names:
            continue
        algo = entry["algo"]
        hint = unknown_algo_hint(algo, in_map_entry=True)
        yield Hit(
            join_pointer("", "apply_preset", map_name, key, "algo"),
            f"unknown algo '{algo}' in the {map_name} entry '{key}': LyCORIS raises KeyError when it builds the first "
            f"module; {hint}",
        )


# -- LYC115 / LYC116: what inference does with the trained adapter ------------------------------------------------


def _lycoris_scale(scope: Scope) -> Optional[float]:
    """The scale LyCORIS gives this scope's LoKr/LoHa modules (alpha / dim; alpha 0 means dim; √dim with rs_lora),
    None when it is 1 on every layer (all-full LoKr) or cannot be known."""
    if scope.algo not in MERGE_TO_SQUARES_SCALE or _lokr_all_full(scope):
        return None
    dim, alpha = scope.value("dim", 4), scope.value("alpha", 1)
    if not is_number(dim) or not is_number(alpha) or dim <= 0:
        return None
    alpha = dim if alpha == 0 else alpha
    rank_factor = dim ** 0.5 if scope.flag("rs_lora") and not scope.is_top else dim
    scale = alpha / rank_factor
    return scale if abs(scale - 1) > 1e-9 else None


def _merge_changes_model(scope: Scope) -> bool:
    return _lycoris_scale(scope) is not None


# How to render a T-LoRA adapter as trained: LyCORIS itself, with the mask of each step's timestep.
TLORA_SAMPLER = (
    "render with `lyco sample`, which sets it at every step as training's validation does, or load the adapter with "
    "LyCORIS (create_lycoris_from_weights + apply_to) and call set_timestep_mask at every step"
)

MERGE_REMEDY = (
    "merge with `lyco merge` (it applies the scale once), or load the adapter with create_lycoris_from_weights(...) + "
    "apply_to() instead of merge_to(); or train with linear_alpha equal to linear_dim (scale 1), where merging is exact"
)


@rule(
    "LYC115",
    "merge-changes-model",
    WARNING,
    applies_to=LYCORIS,
    summary=(
        "Reports LoKr and LoHa whose scale is not 1 (alpha ≠ dim, with w2 or the Hadamard factors decomposed; an "
        "all-full LoKr has scale 1): lycoris-lora 4.1.3's `merge_to()` applies the scale twice. With `--model` only "
        "the layers that really get such a scale count."
    ),
    why=(
        "The usual inference recipe (SimpleTuner's LyCORIS guide: `create_lycoris_from_weights(...)` then "
        "`merge_to()`) bakes scale² · ΔW into the model instead of scale · ΔW: at dim 2 and alpha 1 the merged model "
        "shows half of the trained adapter's effect (measured with lycoris-lora 4.1.3; `apply_to()` matches training, "
        "and `lyco merge` applies the scale once)."
    ),
    example='{"algo": "loha", "multiplier": 1.0, "linear_dim": 8, "linear_alpha": 4}',
    fixed='{"algo": "loha", "multiplier": 1.0, "linear_dim": 8, "linear_alpha": 8}',
)
def merge_changes_model(document: Document) -> Iterator[Hit]:
    analysis = document.context.model
    if analysis is not None:
        scaled = [
            module for module in analysis.modules
            if module.algo in MERGE_TO_SQUARES_SCALE and module.scale is not None and abs(module.scale - 1) > 1e-9
        ]
        if not scaled:
            return
    for scope in affected_scopes(document, _merge_changes_model, "alpha", "dim"):
        scale = _lycoris_scale(scope)
        pointer, at = scope.blame("alpha", "dim")
        layers = ""
        if analysis is not None:
            count = sum(1 for module in scaled if module.algo == scope.algo)
            if not count:
                continue
            layers = f" on {count} layer{'s' if count != 1 else ''} of {analysis.model_class}"
        effect = "half of" if abs(scale - 0.5) < 1e-9 else f"{scale:.3g}×"
        yield Hit(
            pointer,
            f"{scope.algo} {scope.where} has scale {scale:.4g} ({scope.source('alpha')} / {scope.source('dim')}){layers}: "
            f"lycoris-lora 4.1.3's merge_to() applies it twice, so a merged model shows {effect} the trained "
            f"adapter's effect; {MERGE_REMEDY}",
            at=at,
        )


@rule(
    "LYC116",
    "tlora-needs-masks",
    INFO,
    applies_to=LYCORIS,
    summary=(
        "Reports T-LoRA (`algo: tlora` at the top level or in a map entry), once: the adapter reproduces training "
        "only when every denoising step sets its timestep mask."
    ),
    why=(
        "T-LoRA trains each timestep with a different number of ranks. Merged weights, ComfyUI and diffusers' "
        "`load_lora_weights` ignore the mask and apply every rank at every step (KohakuBlueleaf/LyCORIS PR #280), so "
        "their images differ from the validation images of the run. `lyco sample` renders with the masks."
    ),
    example='{"algo": "tlora", "multiplier": 1.0, "linear_dim": 64, "linear_alpha": 32}',
    fixed='{"algo": "lora", "multiplier": 1.0, "linear_dim": 64, "linear_alpha": 32}',
)
def tlora_needs_masks(document: Document) -> Iterator[Hit]:
    for scope in scopes(document):
        if scope.algo != "tlora":
            continue
        pointer = scope.pointer_of("algo") if scope.sets("algo") else ("/algo" if "algo" in document.value else scope.pointer)
        yield Hit(
            pointer,
            f"T-LoRA {scope.where}: the adapter reproduces training only when each denoising step sets its timestep "
            f"mask ({TLORA_SAMPLER}); merged weights, ComfyUI and diffusers' load_lora_weights ignore the mask and apply "
            "every rank at every step",
            at="value" if scope.sets("algo") or "algo" in document.value else "key",
        )
        return
