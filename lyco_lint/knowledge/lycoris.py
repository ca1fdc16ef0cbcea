"""What lycoris-lora 4.1.3 does with a LyCORIS config, and how SimpleTuner hands the config to it.

Plain data and pure functions, no torch and no lycoris import: the linter reads these facts on its fast
path, and ``lyco lint --model``, ``lyco plan`` and ``lyco train`` build their networks from the same
:func:`network_arguments`, so the plan printed before training is the network that trains.

Which options an algorithm honours is not written here: it is read from the ``x-lyco-algos`` annotations of
the schemas (``schemas/lycoris-config.schema.json`` for top-level keys, ``module-options.schema.json`` for
``module_algo_map``/``name_algo_map`` entries), so that LYC101, ``lyco explain ALGO`` and
``lyco explain FIELD`` can never disagree.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Optional

from ..schemas import LYCORIS_CONFIG_ID, MODULE_OPTIONS_ID, did_you_mean, schema

# -- LycorisNetwork's class-level preset state --------------------------------------------------------

# ``LycorisNetwork.apply_preset`` sets these class attributes, and they persist between networks built in
# one process: a preset key left out keeps the previous network's value. Everything that builds a network
# starts from these defaults (``meta_model.patches.preset_state``).
PRESET_DEFAULTS: dict[str, Any] = {
    "ENABLE_CONV": True,
    "TARGET_REPLACE_MODULE": ["Linear", "Conv1d", "Conv2d", "Conv3d", "GroupNorm", "LayerNorm"],
    "TARGET_REPLACE_NAME": [],
    "LORA_PREFIX": "lycoris",
    "MODULE_ALGO_MAP": {},
    "NAME_ALGO_MAP": {},
    "USE_FNMATCH": False,
    "TARGET_EXCLUDE_NAME": [],
}
# The classes LyCORIS adapts when no preset (or one without target_module) is applied: torch classes that
# a model may simply not contain (no Conv3d in an image transformer).
DEFAULT_TARGET_CLASSES: tuple[str, ...] = tuple(PRESET_DEFAULTS["TARGET_REPLACE_MODULE"])

# apply_preset key -> the class attribute it sets (LycorisNetwork.apply_preset); the other valid keys
# (unet_*, text_encoder_*) are accepted and ignored.
PRESET_KEY_ATTRIBUTES = {
    "enable_conv": "ENABLE_CONV",
    "target_module": "TARGET_REPLACE_MODULE",
    "target_name": "TARGET_REPLACE_NAME",
    "module_algo_map": "MODULE_ALGO_MAP",
    "name_algo_map": "NAME_ALGO_MAP",
    "lora_prefix": "LORA_PREFIX",
    "use_fnmatch": "USE_FNMATCH",
    "exclude_name": "TARGET_EXCLUDE_NAME",
}

# Built-in presets (`preset`) and the enable_conv value create_lycoris applies with them, after apply_preset:
# through create_lycoris a built-in preset sets nothing else (its unet_* lists are ignored keys).
BUILTIN_PRESET_ENABLE_CONV = {
    "full": True,
    "full-lin": False,
    "attn-mlp": False,
    "attn-only": False,
    "unet-only": True,
    "unet-transformer-only": False,
    "unet-convblock-only": True,
    "ia3": False,
}


def default_preset_state() -> dict[str, Any]:
    return copy.deepcopy(PRESET_DEFAULTS)


def preset_state(config: dict[str, Any]) -> dict[str, Any]:
    """The class-level state LyCORIS builds a network with, for ``config`` as SimpleTuner applies it:
    LyCORIS's defaults, then ``apply_preset`` when it is a non-empty object, then create_lycoris's
    ``preset`` (default ``full``), which only sets ``enable_conv``. Values are kept as written (a string
    ``target_module`` is what LyCORIS gets, and it iterates it character by character)."""
    state = default_preset_state()
    preset = config.get("apply_preset")
    if isinstance(preset, dict):
        for key, attribute in PRESET_KEY_ATTRIBUTES.items():
            if key in preset:
                state[attribute] = preset[key]
    builtin = config.get("preset", "full")
    if isinstance(builtin, str) and builtin in BUILTIN_PRESET_ENABLE_CONV:
        state["ENABLE_CONV"] = BUILTIN_PRESET_ENABLE_CONV[builtin]
    return state


# -- values as LyCORIS reads them ----------------------------------------------------------------------


def str_bool(value: Any) -> bool:
    """``lycoris.utils.str_bool``, how create_lycoris reads top-level flags: every value except ``false``
    and the string "false" (any case) is true, ``0``, ``"no"`` and ``null`` included."""
    return str(value).lower() != "false"


# create_lycoris copies each deprecated key's value to its new name, in the order the keys are written.
DEPRECATED_KEYS = {"disable_conv_cp": "use_tucker", "use_cp": "use_tucker", "use_conv_cp": "use_tucker", "constrain": "constraint"}


def tucker_enabled(config: dict[str, Any]) -> bool:
    """``use_tucker`` as create_lycoris computes it from the key and its deprecated aliases (lycoris-lora 4.1.3
    wrapper.py): any ``disable_conv_cp`` but the string "false" turns it on."""
    kwargs = dict(config)
    for key, value in config.items():
        if key in DEPRECATED_KEYS:
            kwargs[DEPRECATED_KEYS[key]] = value
    return str_bool(
        not kwargs.get("disable_conv_cp", True)
        or kwargs.get("use_conv_cp", False)
        or kwargs.get("use_cp", False)
        or kwargs.get("use_tucker", False)
    )


def bypass_enabled(config: dict[str, Any]) -> bool:
    """``bypass_mode`` as create_lycoris reads it: false when absent, else :func:`str_bool`."""
    return "bypass_mode" in config and str_bool(config["bypass_mode"])


# -- algorithms ----------------------------------------------------------------------------------------


def algo_names() -> list[str]:
    """The algorithm names LyCORIS knows (exact, lower-case), in the schema's order."""
    return list(schema(LYCORIS_CONFIG_ID)["properties"]["algo"]["x-lyco-choices"])


def normalize_top_level_algo(value: Any) -> Optional[str]:
    """The algo create_lycoris uses for a top-level ``algo`` value (it lower-cases), or None if unknown."""
    if value is None:
        return "lora"  # create_lycoris's default
    if not isinstance(value, str):
        return None
    algo = (value or "lora").lower()
    return algo if algo in algo_names() else None


def unknown_algo_hint(algo: str, *, in_map_entry: bool = False) -> str:
    """What to write instead of an algo LyCORIS does not know."""
    names = algo_names()
    lowered = algo.lower()
    if in_map_entry and lowered in names:
        return f"map entries are case-sensitive (only the top-level algo is lower-cased): write '{lowered}'"
    if lowered in ("dora", "doha", "dokr"):
        flag = "weight_decompose" if in_map_entry else "dora_wd"
        return f'DoRA is a flag, not an algo: use "algo": "lora" (or loha/lokr) with "{flag}": true'
    if lowered == "oft":
        return "did you mean 'diag-oft'?"
    guess = did_you_mean(lowered.replace("_", "-"), names)
    return f"did you mean '{guess}'?" if guess else f"known algos: {', '.join(names)}"


@lru_cache(maxsize=None)
def _honouring(schema_id: str) -> dict[str, tuple[str, ...]]:
    return {
        name: tuple(spec["x-lyco-algos"])
        for name, spec in schema(schema_id)["properties"].items()
        if "x-lyco-algos" in spec
    }


def algos_honouring(option: str, *, in_map_entry: bool = False) -> Optional[tuple[str, ...]]:
    """The algorithms that honour ``option`` (None: every algo, or not an algorithm option)."""
    return _honouring(MODULE_OPTIONS_ID if in_map_entry else LYCORIS_CONFIG_ID).get(option)


@lru_cache(maxsize=None)
def map_only_options() -> tuple[str, ...]:
    """Module options create_lycoris drops at the top level (``x-lyco-map-only``)."""
    return tuple(name for name, spec in schema(LYCORIS_CONFIG_ID)["properties"].items() if spec.get("x-lyco-map-only"))


def dora_algos() -> tuple[str, ...]:
    return algos_honouring("dora_wd") or ()


def option_table(algo: str) -> dict[str, list[str]]:
    """Which top-level and map-entry options ``algo`` honours and ignores, from ``x-lyco-algos``."""
    top = schema(LYCORIS_CONFIG_ID)["properties"]
    table: dict[str, list[str]] = {"honours": [], "map_only": [], "ignores": [], "map_entry_honours": [], "map_entry_ignores": []}
    for name, algos in _honouring(LYCORIS_CONFIG_ID).items():
        if top[name].get("deprecated"):
            continue
        if algo not in algos:
            table["ignores"].append(name)
        elif top[name].get("x-lyco-map-only"):
            table["map_only"].append(name)
        else:
            table["honours"].append(name)
    for name, algos in _honouring(MODULE_OPTIONS_ID).items():
        table["map_entry_honours" if algo in algos else "map_entry_ignores"].append(name)
    return table


# lycoris-lora 4.1.3's merge_to() applies the scale of these algorithms twice: their get_weight already
# scales ΔW and get_diff_weight scales it again (measured against apply_to(); tests/test_lycoris_behaviour.py).
MERGE_TO_SQUARES_SCALE = ("lokr", "loha")


def merge_to_scale(algo: str, scale: float) -> float:
    """The scale LyCORIS's ``merge_to()`` bakes into the weights of a module trained at ``scale``."""
    return scale * scale if algo in MERGE_TO_SQUARES_SCALE else scale


# LoKr keeps a layer's large Kronecker block w2 (out_k x in_n) as a full matrix when
# dim >= max(out_k, in_n) / 2; the small block w1 is full unless decompose_both. Without layer shapes, lyco
# only calls a LoKr config "full-matrix" (every layer full, linear_alpha ignored) when that is certain for
# the layers of the supported model families:
#   * full_matrix is true, or
#   * dim >= 10000 (the conventional "full dimension" value, covering block sides up to 20000) and the
#     factor is -1 (balanced split: blocks of a few hundred) or >= 4.
# Factors 1-3 can leave the largest fused projections decomposed: Flux 2 dev's 6144 -> 55296 qkv+mlp
# projection split by factor 2 has a 27648-wide block, which needs dim >= 13824. lyco then says nothing
# rather than guess.
LOKR_FULL_MATRIX_DIM = 10000
LOKR_SAFE_MIN_FACTOR = 4


def lokr_is_all_full(dim: Any, factor: Any, full_matrix: bool) -> bool:
    """Whether a LoKr module with these options has full w1 and w2 on every layer (see above)."""
    if full_matrix:
        return True
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < LOKR_FULL_MATRIX_DIM:
        return False
    if isinstance(factor, bool) or not isinstance(factor, int):
        return False
    return factor == -1 or factor >= LOKR_SAFE_MIN_FACTOR


def factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
    """lycoris-lora 4.1.3's ``functional.general.factorization``: ``dimension`` split into LoKr's (small, large)
    Kronecker block sides; a factor that divides ``dimension`` is taken as it is, any other searches."""
    if factor > 0 and dimension % factor == 0:
        return min(factor, dimension // factor), max(factor, dimension // factor)
    return balanced_split(dimension, dimension if factor < 0 else factor)


def balanced_split(dimension: int, limit: int) -> tuple[int, int]:
    """The search LyCORIS's factorization (and peft's copy of it) runs: the most balanced (small, large) pair
    whose product is ``dimension``, stepping the small side up through divisors while it stays within ``limit``."""
    m, n = 1, dimension
    length = m + n
    while m < n:
        new_m = m + 1
        while dimension % new_m != 0:
            new_m += 1
        new_n = dimension // new_m
        if new_m + new_n > length or new_m > limit:
            break
        m, n = new_m, new_n
    return (n, m) if m > n else (m, n)


# -- how SimpleTuner builds the network ------------------------------------------------------------------

# create_lycoris's positional arguments, and the T-LoRA settings SimpleTuner reads from the LyCORIS config itself
# and deletes before the call, with the defaults SimpleTuner reads them with (helpers/training/trainer.py,
# init_trainable_peft_adapter: cfg.get("multiplier", 1), cfg.get("linear_dim", 4), ...).
ARGUMENT_DEFAULTS = {"multiplier": 1, "linear_dim": 4, "linear_alpha": 1, "tlora_min_rank": 1, "tlora_alpha": 1.0}


class NetworkArgumentError(ValueError):
    """A value create_lycoris's arguments cannot be read from; the message names it and the fix."""


@dataclass(frozen=True)
class NetworkArguments:
    """create_lycoris's arguments for a LyCORIS config, in the order SimpleTuner makes the call.

    ``preset`` is ``apply_preset`` when it is a non-empty object (SimpleTuner applies it to
    ``LycorisNetwork`` before the call, and skips ``{}``); ``kwargs`` is everything else create_lycoris gets
    (it reads its own whitelist and drops the rest). SimpleTuner casts ``multiplier`` and ``linear_alpha``
    with ``int()``; lyco reads them as written (0.5 stays 0.5) and reports the truncation SimpleTuner would
    make as LYC317, so that a value lyco trains with is never silently different from the file.
    """

    multiplier: float
    linear_dim: int
    linear_alpha: float
    preset: Optional[dict[str, Any]]
    kwargs: dict[str, Any] = field(default_factory=dict)
    tlora_min_rank: int = 1
    tlora_alpha: float = 1.0

    @property
    def algo(self) -> str:
        return (self.kwargs.get("algo", "lora") or "lora").lower()

    @property
    def is_tlora(self) -> bool:
        return self.algo == "tlora"

    def complete_config(self) -> dict[str, Any]:
        """The LyCORIS config with every value the network is built with filled in (saved in weights metadata)."""
        config = {**copy.deepcopy(self.kwargs), "multiplier": self.multiplier, "linear_dim": self.linear_dim, "linear_alpha": self.linear_alpha}
        if self.preset is not None:
            config["apply_preset"] = copy.deepcopy(self.preset)
        if self.is_tlora:
            config["tlora_min_rank"], config["tlora_alpha"] = self.tlora_min_rank, self.tlora_alpha
        return config


def network_arguments(config: Any) -> NetworkArguments:
    if not isinstance(config, dict):
        raise NetworkArgumentError("the LyCORIS config is not a JSON object")
    rest = copy.deepcopy(config)
    preset = rest.pop("apply_preset", None)
    if preset is not None and not isinstance(preset, dict):
        raise NetworkArgumentError("apply_preset must be a JSON object")
    values = {name: rest.pop(name, default) for name, default in ARGUMENT_DEFAULTS.items()}
    return NetworkArguments(
        multiplier=_number(values, "multiplier"),
        linear_dim=_whole(values, "linear_dim"),
        linear_alpha=_number(values, "linear_alpha"),
        preset=preset or None,
        kwargs=rest,
        tlora_min_rank=_whole(values, "tlora_min_rank"),
        tlora_alpha=_number(values, "tlora_alpha"),
    )


def _number(values: dict[str, Any], key: str) -> float:
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise NetworkArgumentError(f"'{key}' must be a number, not {value!r}")
    try:
        return float(value)
    except ValueError:
        raise NetworkArgumentError(f"'{key}' must be a number, not {value!r}") from None


def _whole(values: dict[str, Any], key: str) -> int:
    number = _number(values, key)
    if not number.is_integer():
        raise NetworkArgumentError(f"'{key}' must be a whole number, not {values[key]!r}")
    return int(number)


# SimpleTuner's trainer reads these with int() before calling create_lycoris (trainer.py,
# init_trainable_peft_adapter); lyco reads multiplier and linear_alpha as written (network_arguments).
SIMPLETUNER_INT_CASTS = ("multiplier", "linear_dim", "linear_alpha", "tlora_min_rank")


@dataclass(frozen=True)
class SimpleTunerCast:
    """A value SimpleTuner's ``int()`` changes: the key, the number as written and the integer SimpleTuner uses."""

    key: str
    written: float
    used: int


def simpletuner_casts(config: dict[str, Any]) -> list[SimpleTunerCast]:
    """The JSON numbers SimpleTuner's ``int()`` truncates (1.5 -> 1, 0.5 -> 0, -0.5 -> 0). Strings, null and
    non-finite numbers are LYC012's and LYC017's: int() raises on most of them."""
    changed = []
    for key in SIMPLETUNER_INT_CASTS:
        value = config.get(key)
        if isinstance(value, float) and math.isfinite(value) and not value.is_integer():
            changed.append(SimpleTunerCast(key, value, int(value)))
    return changed
