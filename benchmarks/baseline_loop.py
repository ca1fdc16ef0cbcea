"""The baseline lyco train is measured against: a plain diffusers + LyCORIS training step, as a user writes it
from the libraries' own documentation.

The denoiser is a diffusers model with frozen bf16 weights; the LyCORIS network comes from the LyCORIS config
(``LycorisNetwork.apply_preset`` then ``create_lycoris``, ``apply_to``), AdamW trains its parameters, the step
runs the model under bf16 autocast and takes the mean squared error against a random target (the velocity
of flow matching for FLUX, the noise for SDXL: the same cost). No data loading, no checks. This is lyco's own
copy of the GPU anchor scripts whose H200 numbers the README quotes (FLUX.2 Klein-4B document LoKr: bypass
0.690 s/step, rebuild 0.481, rebuild + ``compile_repeated_blocks`` 0.308, frozen base alone 0.199; SDXL
generic LoKr: bypass 0.934, rebuild 1.368, base 0.127), written to take the same model, config, batch and
dtype as lyco's step in ``bench_train.py``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import torch


@dataclass
class Baseline:
    model: torch.nn.Module
    network: Any
    optimizer: torch.optim.Optimizer
    inputs: dict
    target: torch.Tensor
    device: torch.device
    compiled: bool = False

    def step(self) -> None:
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
            out = self.model(**self.inputs, return_dict=False)[0]
        loss = torch.nn.functional.mse_loss(out.float(), self.target.float())
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def lycoris_network(model: torch.nn.Module, lycoris_config: dict):
    """The LyCORIS network from a LyCORIS config, applied to ``model``, as LyCORIS's README builds it."""
    from lycoris import LycorisNetwork, create_lycoris

    config = copy.deepcopy(lycoris_config)
    preset = config.pop("apply_preset", None)
    saved = {name: copy.copy(getattr(LycorisNetwork, name)) for name in vars(LycorisNetwork) if name.isupper()}
    try:
        if preset:
            LycorisNetwork.apply_preset(preset)
        network = create_lycoris(
            model, config.pop("multiplier"), linear_dim=config.pop("linear_dim"), linear_alpha=config.pop("linear_alpha"),
            algo=config.pop("algo"), **config,
        )
    finally:
        for name, value in saved.items():  # the class-level preset leaks into the next network otherwise
            setattr(LycorisNetwork, name, value)
    network.apply_to()
    return network


def build(make_model: Callable[[], torch.nn.Module], lycoris_config: dict, inputs: Callable[[torch.device], tuple[dict, torch.Tensor]],
          device: torch.device, compile_blocks: bool = False) -> Baseline:
    """Model (bf16, frozen) → LyCORIS network → AdamW; ``compile_blocks``: diffusers' ``compile_repeated_blocks()``."""
    torch.manual_seed(0)
    with torch.device(device):
        model = make_model().to(torch.bfloat16)
    model.requires_grad_(False)
    network = lycoris_network(model, lycoris_config)
    network.to(device)
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], lr=1e-4)
    if compile_blocks:
        model.compile_repeated_blocks()
    kwargs, target = inputs(device)
    return Baseline(model, network, optimizer, kwargs, target, device, compile_blocks)


# -- the model inputs, as each family's pipeline passes them ------------------------------------------------


def flux2_inputs(config: dict, batch: int, image_tokens: int, text_tokens: int):
    def make(device):
        side = int(image_tokens ** 0.5)
        bf16 = torch.bfloat16
        hidden = torch.randn(batch, image_tokens, config["in_channels"], device=device, dtype=bf16)
        img_ids = torch.cartesian_prod(torch.arange(1), torch.arange(side), torch.arange(side), torch.arange(1)).to(device)
        txt_ids = torch.cartesian_prod(torch.arange(1), torch.arange(1), torch.arange(1), torch.arange(text_tokens)).to(device)
        inputs = dict(
            hidden_states=hidden, encoder_hidden_states=torch.randn(batch, text_tokens, config["joint_attention_dim"], device=device, dtype=bf16),
            timestep=torch.rand(batch, device=device), img_ids=img_ids.unsqueeze(0).expand(batch, -1, -1),
            txt_ids=txt_ids.unsqueeze(0).expand(batch, -1, -1), guidance=None,
        )
        return inputs, torch.randn_like(hidden)

    return make


def flux_inputs(config: dict, batch: int, image_tokens: int, text_tokens: int):
    def make(device):
        side = int(image_tokens ** 0.5)
        bf16 = torch.bfloat16
        hidden = torch.randn(batch, image_tokens, config["in_channels"], device=device, dtype=bf16)
        img_ids = torch.zeros(side, side, 3, device=device)
        img_ids[..., 1] = torch.arange(side, device=device)[:, None]
        img_ids[..., 2] = torch.arange(side, device=device)[None, :]
        inputs = dict(
            hidden_states=hidden, encoder_hidden_states=torch.randn(batch, text_tokens, config["joint_attention_dim"], device=device, dtype=bf16),
            pooled_projections=torch.randn(batch, config["pooled_projection_dim"], device=device, dtype=bf16),
            timestep=torch.rand(batch, device=device), img_ids=img_ids.reshape(-1, 3), txt_ids=torch.zeros(text_tokens, 3, device=device),
            guidance=torch.full((batch,), 3.5, device=device) if config.get("guidance_embeds") else None,
        )
        return inputs, torch.randn_like(hidden)

    return make


def sdxl_inputs(config: dict, batch: int, side: int):
    def make(device):
        bf16 = torch.bfloat16
        pooled = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
        sample = torch.randn(batch, 4, side, side, device=device, dtype=bf16)
        inputs = dict(
            sample=sample, timestep=torch.randint(0, 1000, (batch,), device=device),
            encoder_hidden_states=torch.randn(batch, 77, config["cross_attention_dim"], device=device, dtype=bf16),
            added_cond_kwargs=dict(text_embeds=torch.randn(batch, pooled, device=device, dtype=bf16),
                                   time_ids=torch.tensor([[side * 8, side * 8, 0, 0, side * 8, side * 8]] * batch, device=device, dtype=bf16)),
        )
        return inputs, torch.randn_like(sample)

    return make
