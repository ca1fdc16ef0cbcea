"""The LyCORIS network: build it from the LyCORIS config the way SimpleTuner does, T-LoRA masks, save, load.

The network is built by ``lyco_lint.meta_model.network.build_network``, the function ``lyco plan`` uses
(``apply_preset`` then ``create_lycoris``, with ``LycorisNetwork``'s class-level preset state reset first,
since it leaks between networks in one process). Then: refuse zero adapted modules → ``apply_to`` →
adapter parameters in float32 (the base model may be bf16; autocast does the compute).

T-LoRA (lycoris-lora 4.1.3, ``lycoris/modules/tlora.py``) takes one ``(1, rank)`` mask per forward — a
``(batch, rank)`` mask crashes on token inputs — which would cost one forward per sample when a batch holds
several timesteps. lyco's T-LoRA forward (``layer_paths.tlora_forward``, installed on every T-LoRA Linear by
``layer_paths.install``) applies a per-sample mask (:func:`sample_masks`, ``(batch, rank)``, broadcast over the
tokens) inside one batched forward: sample ``b``'s output is T-LoRA's bypass output with sample ``b``'s mask,
so the gradients are those of the per-sample loop (``tests/test_train_paths.py`` checks them against it).
Without a per-sample mask it is LyCORIS's forward (LyCORIS's own mask, :func:`timestep_mask`). A mask stays
set until the backward is done: with gradient checkpointing the backward recomputes the forward, and it must
see the same ranks.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from lyco_lint.atomic import atomic_path

from .config import ConfigError
from .layer_paths import batches_masks, install_configured

TLORA_BUFFERS = ("base_q", "base_p", "base_lambda")  # recomputed when the network is built, never saved
TARGET_WORDS = ("Attention", "FeedForward", "Block")  # the kinds of class LyCORIS presets usually target
WEIGHTS_NAME = "pytorch_lora_weights.safetensors"


@dataclass(frozen=True)
class TloraSchedule:
    max_rank: int
    min_rank: int
    alpha: float
    max_timestep: int
    group_ids: tuple[int, ...]


@dataclass
class Adapter:
    network: Any  # lycoris.LycorisNetwork
    config: dict[str, Any]  # the complete LyCORIS config (multiplier, linear_dim, linear_alpha filled in)
    tlora: Optional[TloraSchedule]
    batched_masks: bool = True  # T-LoRA: per-sample masks in one batched forward (see can_batch_masks)
    path_choice: Any = None  # layer_paths.Choice: the forward path of each adapted layer

    @property
    def device(self):
        return next(iter(self.network.parameters())).device

    def parameters(self) -> list:
        return [p for p in self.network.parameters() if p.requires_grad]


def build_adapter(denoiser, lycoris_config: dict[str, Any], *, seed: int, device, max_timestep: int, quantized: Optional[str] = None) -> Adapter:
    """The LyCORIS network on ``denoiser``, built by the function ``lyco plan`` uses (so the plan is what
    trains), applied, with float32 trainable parameters on ``device``. On a base quantized with ``quantized``
    (a ``base_model_precision``) every LyCORIS module must run in bypass mode: checked on what LyCORIS built."""
    import torch

    from lyco_lint.knowledge.lycoris import NetworkArgumentError, network_arguments
    from lyco_lint.meta_model.network import build_network

    try:
        arguments = network_arguments(lycoris_config)
    except NetworkArgumentError as error:
        raise ConfigError(f"LyCORIS config: {error}") from None
    denoiser.requires_grad_(False)
    torch.manual_seed(seed)  # adapter initialisation (and T-LoRA's random init) is part of the run's seed
    try:
        built = build_network(denoiser, arguments)
    except (NotImplementedError, RuntimeError) as error:
        if quantized is None:
            raise
        raise ConfigError(
            f"LyCORIS cannot build {lycoris_config.get('algo', 'lora')} on a {quantized} base ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200]}): it computes with the base weights (T-LoRA's SVD, DoRA's weight norms); "
            "train it on an unquantized base (base_model_precision no_change) or choose lora, lokr or loha"
        ) from None
    network = built.network
    if quantized is not None:
        rebuilt = sorted({type(module).__name__ for module in network.loras if not getattr(module, "bypass_mode", False)})
        if rebuilt:
            raise ConfigError(
                f"on a {quantized} base every LyCORIS module must run in bypass mode, but {', '.join(rebuilt)} modules do not "
                "(a module_algo_map or name_algo_map entry turning bypass_mode off?): set \"bypass_mode\": true for all of them"
            )
    if not network.loras:
        targets = (arguments.preset or {}).get("target_module", "every Linear/Conv (no apply_preset)")
        raise ConfigError(
            f"the LyCORIS config adapts no module of the {type(denoiser).__name__} (target_module {targets}); "
            f"this model's classes include {', '.join(target_candidates(denoiser))} — run `lyco lint` on the config"
        )
    network.apply_to()
    network.to(device, dtype=torch.float32)
    network.requires_grad_(True)
    network.train()
    install_configured(network)  # lyco's forwards, on the config's paths until layer_paths.choose picks
    schedule = None
    if arguments.is_tlora:
        groups = sorted({getattr(module, "mask_group_id", 0) for module in network.loras})
        schedule = TloraSchedule(arguments.linear_dim, arguments.tlora_min_rank, arguments.tlora_alpha, max_timestep, tuple(groups))
    return Adapter(network, arguments.complete_config(), schedule, batched_masks=batches_masks(network))


def training_memory_line(analysis, base_bytes: int, element_bytes: int, options) -> str:
    """The dry run's memory estimate per process, from the model built on the meta device: the frozen base, the
    adapter's training state (float32 weights, gradients and AdamW's two moments), and the rebuilt weights the
    rebuild path keeps for the backward (one base-dtype copy per layer; the paths are measured at start, so
    this is a range). Activations come on top: they depend on tokens, batch and gradient checkpointing, and
    a CUDA run writes each step's peak to metrics.jsonl (peak_memory_gib)."""
    from lyco_lint.units import TRAINING_BYTES_PER_PARAM, human_bytes

    adapter = analysis.trainable_params * TRAINING_BYTES_PER_PARAM
    quantized = options.base_model_precision != "no_change"
    rebuilt = 0 if quantized else sum(math.prod(module.weight_shape) * element_bytes for module in analysis.modules if not module.dora)
    text = f"memory estimate per process: base {human_bytes(base_bytes)} + adapter training state {human_bytes(adapter)} = {human_bytes(base_bytes + adapter)}"
    if rebuilt:
        text += f", up to {human_bytes(base_bytes + adapter + rebuilt)} when every adapted layer takes the rebuild path (a rebuilt weight each, kept for the backward)"
    checkpointing = "on: blocks recompute their activations in the backward" if options.gradient_checkpointing else "off"
    return text + f"; activations come on top (gradient_checkpointing {checkpointing}); a CUDA run writes each step's peak to metrics.jsonl (peak_memory_gib)"


def target_candidates(denoiser) -> list[str]:
    """The denoiser's own module classes that a preset's target_module would name (attention, feed-forward,
    blocks), for error messages; every non-torch class when none of them looks like that."""
    own = sorted({type(module).__name__ for module in denoiser.modules() if not type(module).__module__.startswith("torch.")})
    return [name for name in own if any(word in name for word in TARGET_WORDS)] or own


@contextlib.contextmanager
def timestep_mask(adapter: Adapter, timestep: float) -> Iterator[None]:
    """Set the T-LoRA rank mask of one timestep (0–max_timestep scale) for a forward and its backward."""
    if adapter.tlora is None:
        yield
        return
    from lycoris.modules.tlora import clear_timestep_mask, compute_timestep_mask, set_timestep_mask

    schedule = adapter.tlora
    mask = compute_timestep_mask(int(timestep), schedule.max_timestep, schedule.max_rank, schedule.min_rank, schedule.alpha)
    for group in schedule.group_ids:
        set_timestep_mask(mask, group)
    try:
        yield
    finally:
        for group in schedule.group_ids:
            clear_timestep_mask(group)


def can_batch_masks(adapter: Adapter) -> bool:
    """Every T-LoRA module runs lyco's forward (Linear layers, no dropout): one batched forward can carry
    per-sample masks. Set False for the run when a layer's input turns out not to lead with the batch."""
    return adapter.tlora is not None and adapter.batched_masks


@contextlib.contextmanager
def sample_masks(adapter: Adapter, timesteps) -> Iterator[None]:
    """Per-sample T-LoRA rank masks (one row per sample, 0–max_timestep scale) for one batched forward and its
    backward."""
    import torch
    from lycoris.modules.tlora import compute_timestep_mask

    from .layer_paths import SAMPLE_MASKS

    schedule = adapter.tlora
    rows = [compute_timestep_mask(int(t), schedule.max_timestep, schedule.max_rank, schedule.min_rank, schedule.alpha) for t in timesteps]
    mask = torch.cat(rows).to(adapter.device)
    for group in schedule.group_ids:
        SAMPLE_MASKS[group] = mask
    try:
        yield
    finally:
        for group in schedule.group_ids:
            SAMPLE_MASKS.pop(group, None)


def active_ranks(adapter: Adapter, timestep: float) -> int:
    """How many ranks a T-LoRA forward at this timestep trains (for metrics and tests)."""
    from lycoris.modules.tlora import compute_timestep_mask

    schedule = adapter.tlora
    mask = compute_timestep_mask(int(timestep), schedule.max_timestep, schedule.max_rank, schedule.min_rank, schedule.alpha)
    return int(mask.sum().item())


def save_adapter(adapter: Adapter, path: Path, metadata: dict[str, str]) -> None:
    """Write the adapter to ``path`` atomically and durably (``lyco_lint.atomic``)."""
    with atomic_path(path) as temporary:
        write_adapter(adapter, temporary, metadata)


def write_adapter(adapter: Adapter, path: Path, metadata: dict[str, str]) -> None:
    """The adapter's weights in float32 with the complete LyCORIS config in the metadata, as LyCORIS'
    ``save_weights(path, torch.float32, metadata)`` writes them. Called directly, not through save_weights:
    save_weights picks safetensors or pickle from the file name's extension, and a temporary name does
    not end in ``.safetensors``."""
    import torch
    from safetensors.torch import save_file

    tensors = {key: value.detach().to("cpu", torch.float32).contiguous() for key, value in adapter.network.state_dict().items()}
    save_file(tensors, str(path), {"lycoris_config": json.dumps(adapter.config), **metadata})


def load_adapter_weights(adapter: Adapter, path: Path) -> None:
    """Load saved weights into the built network; any key that does not fit is an error, except T-LoRA's base
    buffers, which LyCORIS does not save and which were recomputed identically from the same base weights."""
    result = adapter.network.load_weights(str(path))
    adapter.network.weights_sd = None  # load_weights keeps the dict; the values are in the modules now
    missing = list(result.get("missing keys", []))
    if adapter.tlora is not None:
        missing = [key for key in missing if key.rsplit(".", 1)[-1] not in TLORA_BUFFERS]
    unexpected = list(result.get("unexpected keys", []))
    if missing or unexpected:
        detail = "; ".join(
            part for part in (f"missing {', '.join(missing[:5])}" if missing else "", f"unexpected {', '.join(unexpected[:5])}" if unexpected else "") if part
        )
        raise ConfigError(
            f"{path} does not match the network built from the LyCORIS config ({detail}); "
            "resume with the LyCORIS config and model the checkpoint was trained with"
        )
