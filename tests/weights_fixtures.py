"""Adapter files made with real LyCORIS networks on tiny real diffusers models (random weights), for the
``lyco inspect`` tests: the tiny FLUX.2, FLUX.1 and SDXL models of test_model.py (saved in pipeline folders by
its ``build_models``), and ``LycorisNetwork.save_weights`` files of every algorithm.

``moved`` stands in for training: every parameter of the network gets small random values, so that no delta is
zero (LyCORIS initialises LoKr's w2 and LoRA's up factor to zero). Files trained by ``lyco train`` come from
test_inspect_trained.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Optional

import torch

from test_model import TINY, real_network

FLUX2_TARGETS = ["Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention"]
ALGOS: dict[str, dict[str, Any]] = {
    "lokr": {"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 4, "full_matrix": True},
    "lora": {"algo": "lora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 4},
    "loha": {"algo": "loha", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 4},
    "tlora": {"algo": "tlora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 4},
    "dora": {"algo": "lora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 4, "dora_wd": True},
}
# The user document's Flux 2 LoKr config: module_algo_map gives attention factor 2 and feed-forward factor 4.
SEED_LOKR = {
    "algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 4, "full_matrix": True, "bypass_mode": True,
    "apply_preset": {
        "target_module": FLUX2_TARGETS,
        "module_algo_map": {"Flux2FeedForward": {"factor": 4}, "Flux2Attention": {"factor": 2}, "Flux2ParallelSelfAttention": {"factor": 2}},
    },
}


def with_targets(family: str, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` aimed at the family's attention and MLP blocks (test_model.TINY's targets)."""
    return {**config, "apply_preset": {"target_module": TINY[family][3]}}


def lycoris_file(model, config: dict[str, Any], path: Path, *, moved: bool = True, dtype=torch.float32,
                 metadata: Optional[dict[str, str]] = None, seed: int = 0) -> Path:
    """A LyCORIS network built on (a copy of) ``model`` and saved with its own save_weights."""
    network = real_network(copy.deepcopy(model), config)
    network.apply_to()
    if moved:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for parameter in network.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    network.save_weights(str(path), dtype, {"lycoris_config": json.dumps(config), **(metadata or {})})
    return path


def renamed(source: Path, target: Path, prefix: str) -> Path:
    """The same tensors with the ``lycoris`` prefix replaced (what ``apply_preset.lora_prefix`` writes)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(source), "pt") as handle:
        tensors = {prefix + key[len("lycoris"):]: handle.get_tensor(key) for key in handle.keys()}
        metadata = handle.metadata()
    save_file(tensors, str(target), metadata)
    return target
