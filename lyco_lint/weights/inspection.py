"""One adapter file, inspected: everything the weights rules and ``lyco inspect`` report, each fact computed once.

An :class:`Inspection` stands where a :class:`lyco_lint.documents.Document` stands for a config: the engine runs
the rules that apply to ``kind == "weights"`` on it, and findings are located by tensor key instead of a line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

from ..knowledge import comfyui
from ..knowledge.diffusers_lora import DiffusersVerdict, diffusers_load
from .adapter import Adapter, read_adapter
from .health import Health, measure
from .reader import Header, TensorData, WeightsError, read_header

WEIGHTS = "weights"
SUFFIXES = (".safetensors",)

# Key markers of the families lyco knows, on module paths with the prefix removed.
_FAMILY_MARKERS = {
    "flux2": re.compile(r"single_transformer_blocks_\d+_attn_to_qkv_mlp_proj|transformer_blocks_\d+_ff(_context)?_linear_(in|out)|"
                        r"double_stream_modulation_(img|txt)_linear|single_stream_modulation_linear|time_guidance_embed_.*"),
    "flux": re.compile(r"transformer_blocks_\d+_(ff(_context)?_net_(0_proj|2)|norm1(_context)?_linear)|"
                       r"single_transformer_blocks_\d+_(proj_mlp|proj_out|attn_to_[qkv]|norm_linear)|time_text_embed_.*"),
    "sdxl": re.compile(r"(down_blocks|up_blocks|mid_block)_.*(attentions|resnets)_.*|add_embedding_.*|time_embedding_.*"),
}
_FLUX_ATTENTION = re.compile(r"^(single_)?transformer_blocks_\d+_attn_")
_CLASS_HINTS = {"Flux2": "flux2", "Flux": "flux", "Transformer2DModel": "sdxl", "ResnetBlock2D": "sdxl", "BasicTransformerBlock": "sdxl"}
LYCO_METADATA = ("lyco_version", "lycoris_version", "model_family", "model_flavour", "base_model", "global_step", "validation_lycoris_strength")


@dataclass
class FamilyGuess:
    name: Optional[str]  # one family, or None
    candidates: tuple[str, ...]  # every family the file may be for
    how: str  # where it came from, for the report


@dataclass
class Inspection:
    path: Path
    display_path: str
    family_option: Optional[str] = None  # --family
    read_error: Optional[WeightsError] = None
    header: Optional[Header] = None
    data: Optional[TensorData] = None
    engine_hits: list = field(default_factory=list)  # (Rule, Hit) the engine adds (LYC210 for --model)
    fit: Any = None  # a weights.fit.Fit with --model

    kind = WEIGHTS

    @classmethod
    def open(cls, path: Path, display_path: str, family: Optional[str] = None) -> "Inspection":
        inspection = cls(path, display_path, family.strip().lower() if family else None)
        try:
            inspection.header = read_header(path)
        except WeightsError as error:
            inspection.read_error = error
        else:
            inspection.data = TensorData(inspection.header)
        return inspection

    def close(self) -> None:
        if self.data is not None:
            self.data.close()

    # -- what it holds --------------------------------------------------------------------------------
    @cached_property
    def adapter(self) -> Optional[Adapter]:
        return read_adapter(self.header, self.data) if self.header is not None else None

    @property
    def is_adapter(self) -> bool:
        """Whether the file holds LyCORIS (or LoRA) modules at all, rather than a model checkpoint."""
        return bool(self.adapter and any(module.algorithm for module in self.adapter.modules.values()))

    @property
    def metadata(self) -> dict[str, str]:
        return self.header.metadata if self.header else {}

    @cached_property
    def lycoris_config(self) -> Optional[dict[str, Any]]:
        """The LyCORIS config the file was trained with (``lycoris_config`` metadata: lyco and SimpleTuner)."""
        try:
            value = json.loads(self.metadata.get("lycoris_config", ""))
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def metadata_groups(self) -> dict[str, dict[str, str]]:
        """Metadata by writer: lyco's, SimpleTuner's modelspec, kohya/sd-scripts' ss_*, the rest."""
        groups: dict[str, dict[str, str]] = {"lyco": {}, "simpletuner": {}, "kohya": {}, "other": {}}
        for key, value in sorted(self.metadata.items()):
            if key == "lycoris_config":
                continue
            if key in LYCO_METADATA and "lyco_version" in self.metadata:
                groups["lyco"][key] = value
            elif key.startswith("modelspec.") or key in ("global_step", "trained_words"):
                groups["simpletuner"][key] = value
            elif key.startswith("ss_"):
                groups["kohya"][key] = value
            else:
                groups["other"][key] = value
        return {name: values for name, values in groups.items() if values}

    @cached_property
    def health(self) -> Optional[Health]:
        return measure(self.adapter, self.data) if self.adapter is not None else None

    # -- where it loads ---------------------------------------------------------------------------------
    @cached_property
    def family(self) -> FamilyGuess:
        if self.family_option:
            return FamilyGuess(self.family_option, (self.family_option,), "--family")
        written = self.metadata.get("model_family", "").strip().lower()
        if written:
            return FamilyGuess(written, (written,), "the file's model_family metadata")
        from_config = self._family_from_config()
        if from_config:
            return FamilyGuess(from_config, (from_config,), "the target classes of its lycoris_config metadata")
        return self._family_from_keys()

    def _family_from_config(self) -> Optional[str]:
        preset = (self.lycoris_config or {}).get("apply_preset")
        targets = preset.get("target_module") if isinstance(preset, dict) else None
        if not isinstance(targets, list):
            return None
        found = {next((family for hint, family in _CLASS_HINTS.items() if str(name).startswith(hint)), None) for name in targets}
        found.discard(None)
        return found.pop() if len(found) == 1 else None

    def _family_from_keys(self) -> FamilyGuess:
        adapter = self.adapter
        paths = [adapter.path_of(name) for name in adapter.modules] if adapter else []
        hits = [family for family, marker in _FAMILY_MARKERS.items() if any(marker.fullmatch(path) for path in paths)]
        if len(hits) == 1:
            how = "its keys (a UNet: sdxl, or sd1x with the same ComfyUI map)" if hits[0] == "sdxl" else "its keys"
            return FamilyGuess(hits[0], (hits[0],), how)
        if not hits and paths and all(_FLUX_ATTENTION.match(path) for path in paths):
            return FamilyGuess(None, ("flux2", "flux"), "its keys (attention layers of flux2 or flux; pass --family)")
        return FamilyGuess(None, tuple(hits), "unknown (pass --family flux2, flux or sdxl)")

    def _shapes(self) -> dict[str, dict[str, tuple[int, ...]]]:
        return {module.name: {suffix: info.shape for suffix, info in module.tensors.items()} for module in self.adapter.modules.values()}

    @cached_property
    def comfyui(self) -> Optional[comfyui.ComfyVerdict]:
        """ComfyUI's verdict, when the family (or every candidate family, sharing one key map) is known to it."""
        if self.adapter is None:
            return None
        candidates = [family for family in self.family.candidates if family in comfyui.families()]
        if not candidates or len(candidates) != len(self.family.candidates):
            return None
        verdicts = [comfyui.comfyui_load(family, self._shapes()) for family in candidates]
        first = verdicts[0]
        same = all((v.loaded, v.split, v.not_loaded) == (first.loaded, first.split, first.not_loaded) for v in verdicts)
        return first if same else None

    @cached_property
    def diffusers(self) -> Optional[DiffusersVerdict]:
        if self.adapter is None or self.family.name is None:
            return None
        return diffusers_load(self.family.name, self._shapes())

    @property
    def tlora_modules(self) -> list[str]:
        return [module.name for module in self.adapter.modules.values() if module.algo == "tlora"] if self.adapter else []
