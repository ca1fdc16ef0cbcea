"""FLUX.2: ``Flux2Transformer2DModel`` denoiser, ``AutoencoderKLFlux2`` latents; Qwen3 prompts for [klein],
Mistral 3 prompts for [dev].

The math follows diffusers' ``Flux2KleinPipeline`` and ``Flux2Pipeline``. [klein]: prompts go through the
chat template with thinking off and are padded to 512 tokens; the prompt embedding is Qwen3's hidden states
9, 18 and 27 stacked on the feature axis. [dev]: diffusers' own ``_get_mistral_3_small_prompt_embeds``
(FLUX.2's system message, hidden states 10, 20 and 30 of Mistral 3, 512 tokens). Both: latents are the VAE mode, pixel-shuffled 2×2 (C → 4C, H/2, W/2) and normalised with the
VAE's batch-norm statistics; the transformer sees them packed as tokens (B, H·W, 4C) with position ids
(t, y, x, l) = (0, y, x, 0) for the image and (0, 0, 0, i) for the text, and the timestep σ in [0, 1].
Klein has no guidance embedding; a transformer that has one (dev) gets ``flux_guidance_*``.

Torch, diffusers and transformers are imported inside the functions that need them, so the data plan
stays light.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..config import ConfigError, TrainConfig

NAME = "flux2"
FLAVOURS = {
    "klein-4b": "black-forest-labs/FLUX.2-klein-base-4B",
    "klein-9b": "black-forest-labs/FLUX.2-klein-base-9B",
    "dev": "black-forest-labs/FLUX.2-dev",
}
DEFAULT_FLAVOUR = "klein-9b"  # SimpleTuner's default flux2 flavour
TARGET_CLASSES = ("Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention", "Flux2TransformerBlock", "Flux2SingleTransformerBlock")
TEXT_ENCODER_LAYERS = (9, 18, 27)  # Flux2KleinPipeline.encode_prompt(text_encoder_out_layers=...)
DEV_TEXT_ENCODER_LAYERS = (10, 20, 30)  # Flux2Pipeline.encode_prompt(text_encoder_out_layers=...)
MAX_SEQUENCE_LENGTH = 512  # Flux2KleinPipeline.tokenizer_max_length
NUM_TRAIN_TIMESTEPS = 1000
DEFAULT_PIXEL_MULTIPLE = 16  # VAE 8x and the 2x2 pixel shuffle


# -- paths, identity, checks (no torch) ----------------------------------------------------------


def flavour(config: TrainConfig) -> str:
    return config.model_flavour or DEFAULT_FLAVOUR


def model_root(config: TrainConfig) -> str:
    return config.pretrained_model_name_or_path or FLAVOURS[flavour(config)]


def check(config: TrainConfig) -> None:
    name = flavour(config)
    if name not in FLAVOURS:
        raise ConfigError(f"model_flavour '{name}' is not a flux2 flavour; choose one of {', '.join(FLAVOURS)}")
    if config.flow_schedule_auto_shift:
        raise ConfigError("flow_schedule_auto_shift is not implemented for flux2; remove it and set flow_schedule_shift (SimpleTuner's default is 3.0)")
    if config.tokenizer_max_length is not None and config.tokenizer_max_length < 1:
        raise ConfigError(f"tokenizer_max_length must be positive, got {config.tokenizer_max_length}")


def pixel_multiple(config: TrainConfig) -> int:
    """Image sides must be multiples of this: the VAE's downscale × 2 (pixel shuffle)."""
    vae_config = _local_json(config, "vae", "config.json")
    if vae_config is None:
        return DEFAULT_PIXEL_MULTIPLE
    return 2 ** (len(vae_config.get("block_out_channels", (0, 0, 0, 0))) - 1) * 2


def latent_identity(config: TrainConfig) -> str:
    return f"flux2-latents|{_component_identity(config, 'vae')}|dtype={vae_dtype_name(config)}"


def uses_mistral(config: TrainConfig) -> bool:
    """FLUX.2 [dev] encodes prompts with Mistral 3; the [klein] flavours with Qwen3."""
    return flavour(config) == "dev"


def text_identity(config: TrainConfig) -> str:
    parts = (
        "flux2-dev-mistral3" if uses_mistral(config) else "flux2-klein-qwen3",
        _component_identity(config, "text_encoder"),
        _component_identity(config, "tokenizer"),
        f"layers={','.join(map(str, text_encoder_layers(config)))}",
        f"max_length={max_sequence_length(config)}",
        f"dtype={weight_dtype_name(config)}",
    )
    return "|".join(parts)


def text_encoder_layers(config: TrainConfig) -> tuple[int, ...]:
    return DEV_TEXT_ENCODER_LAYERS if uses_mistral(config) else TEXT_ENCODER_LAYERS


def max_sequence_length(config: TrainConfig) -> int:
    return config.tokenizer_max_length or MAX_SEQUENCE_LENGTH


def weight_dtype_name(config: TrainConfig) -> str:
    return "bf16" if config.mixed_precision == "bf16" else "fp32"


def vae_dtype_name(config: TrainConfig) -> str:
    return weight_dtype_name(config) if config.vae_dtype == "default" else config.vae_dtype


def _local_json(config: TrainConfig, subfolder: str, name: str) -> dict[str, Any] | None:
    path = Path(model_root(config)).expanduser() / subfolder / name
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _component_identity(config: TrainConfig, subfolder: str) -> str:
    """Content identity of a component: its config files and weight file sizes (hashing multi-GB weights on
    every start would cost more than it saves); a hub id with its revision when not a local folder."""
    folder = Path(model_root(config)).expanduser() / subfolder
    if not folder.is_dir():
        return f"{model_root(config)}@{config.revision or 'main'}/{subfolder}"
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.suffix in (".json", ".jinja", ".txt", ".model"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        elif path.is_file():
            digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return f"{subfolder}:{digest.hexdigest()[:32]}"


# -- loading (torch from here on) ----------------------------------------------------------------------


def torch_dtype(name: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def load_denoiser(config: TrainConfig, dtype):
    from diffusers import Flux2Transformer2DModel

    root = config.pretrained_transformer_model_name_or_path or model_root(config)
    subfolder = config.pretrained_transformer_subfolder
    subfolder = None if subfolder in (None, "", "none") else subfolder
    return Flux2Transformer2DModel.from_pretrained(
        root, subfolder=subfolder, torch_dtype=dtype, revision=config.revision, variant=config.variant
    )


def load_vae(config: TrainConfig):
    from diffusers import AutoencoderKLFlux2

    dtype = torch_dtype(vae_dtype_name(config))
    vae = AutoencoderKLFlux2.from_pretrained(model_root(config), subfolder="vae", torch_dtype=dtype, revision=config.revision, variant=config.variant)
    return vae.requires_grad_(False).eval()


def load_text_encoder(config: TrainConfig):
    """(tokenizer or processor, text model) in the training dtype: Qwen3 for [klein], Mistral 3 for [dev]."""
    dtype = torch_dtype(weight_dtype_name(config))
    common = {"subfolder": "text_encoder", "revision": config.revision, "variant": config.variant, "dtype": dtype}
    if uses_mistral(config):
        from transformers import AutoProcessor, Mistral3ForConditionalGeneration

        tokenizer = AutoProcessor.from_pretrained(model_root(config), subfolder="tokenizer", revision=config.revision)
        model = Mistral3ForConditionalGeneration.from_pretrained(model_root(config), **common)
        layers = model.config.text_config.num_hidden_layers
    else:
        from transformers import AutoTokenizer, Qwen3ForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(model_root(config), subfolder="tokenizer", revision=config.revision)
        model = Qwen3ForCausalLM.from_pretrained(model_root(config), **common)
        layers = model.config.num_hidden_layers
    if layers < max(text_encoder_layers(config)):
        raise ConfigError(
            f"the text encoder has {layers} layers but FLUX.2 {flavour(config)} reads hidden states "
            f"{text_encoder_layers(config)}; does pretrained_model_name_or_path hold a {flavour(config)} model?"
        )
    return tokenizer, model.requires_grad_(False).eval()


# -- encoding ------------------------------------------------------------------------------------------


def encode_images(vae, pixels):
    """Pixels (B, 3, H, W) in [-1, 1] -> normalised, pixel-shuffled latents (B, 4C, H/16, W/16), float32."""
    latents = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
    latents = patchify(latents)
    mean = vae.bn.running_mean.view(1, -1, 1, 1).to(latents)
    std = (vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps).sqrt().to(latents)
    return ((latents - mean) / std).float()


def patchify(latents):
    b, c, h, w = latents.shape
    latents = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return latents.reshape(b, c * 4, h // 2, w // 2)


def encode_prompts(text_encoder, prompts: list[str], config: TrainConfig):
    """Prompts -> (B, L, 3·hidden) embeddings, as the FLUX.2 pipelines compute them."""
    import torch

    tokenizer, model = text_encoder
    if uses_mistral(config):
        from diffusers.pipelines.flux2.pipeline_flux2 import Flux2Pipeline
        from diffusers.pipelines.flux2.system_messages import SYSTEM_MESSAGE

        with torch.no_grad():
            return Flux2Pipeline._get_mistral_3_small_prompt_embeds(
                model, tokenizer, prompts, dtype=model.dtype, device=model.device,
                max_sequence_length=max_sequence_length(config), system_message=SYSTEM_MESSAGE,
                hidden_states_layers=DEV_TEXT_ENCODER_LAYERS,
            )
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True, enable_thinking=False
        )
        for prompt in prompts
    ]
    inputs = tokenizer(texts, return_tensors="pt", padding="max_length", truncation=True, max_length=max_sequence_length(config))
    with torch.no_grad():
        output = model(
            input_ids=inputs["input_ids"].to(model.device),
            attention_mask=inputs["attention_mask"].to(model.device),
            output_hidden_states=True,
            use_cache=False,
        )
    stacked = torch.stack([output.hidden_states[k] for k in TEXT_ENCODER_LAYERS], dim=1)  # (B, 3, L, D)
    batch, layers, length, hidden = stacked.shape
    return stacked.permute(0, 2, 1, 3).reshape(batch, length, layers * hidden)


# -- the objective ---------------------------------------------------------------------------------------


def sample_sigmas(config: TrainConfig, count: int, generator):
    from .. import flow

    return flow.sample_sigmas(
        count,
        generator,
        shift=config.flow_schedule_shift,
        sigmoid_scale=config.flow_sigmoid_scale,
        uniform=config.flow_use_uniform_schedule,
    )


def noisy_input(latents, noise, sigmas):
    from ..flow import noisy_input

    return noisy_input(latents, noise, sigmas)


def target(latents, noise):
    from ..flow import velocity_target

    return velocity_target(latents, noise)


def timesteps(sigmas):
    """The 0–1000 timestep of each σ (T-LoRA masks and metrics use this scale)."""
    return sigmas * NUM_TRAIN_TIMESTEPS


def predict(denoiser, noisy_latents, prompt_embeds, sigmas, config: TrainConfig, generator):
    """The transformer's velocity for latents (B, C, H, W); returns the same shape."""
    import torch

    batch, channels, height, width = noisy_latents.shape
    tokens = noisy_latents.reshape(batch, channels, height * width).permute(0, 2, 1)
    device = noisy_latents.device
    img_ids = torch.cartesian_prod(torch.arange(1), torch.arange(height), torch.arange(width), torch.arange(1)).to(device)
    txt_ids = torch.cartesian_prod(torch.arange(1), torch.arange(1), torch.arange(1), torch.arange(prompt_embeds.shape[1])).to(device)
    output = denoiser(
        hidden_states=tokens,
        encoder_hidden_states=prompt_embeds,
        timestep=sigmas.to(device),
        img_ids=img_ids.unsqueeze(0).expand(batch, -1, -1),
        txt_ids=txt_ids.unsqueeze(0).expand(batch, -1, -1),
        guidance=guidance(denoiser, config, batch, generator),
        return_dict=False,
    )[0]
    return output.permute(0, 2, 1).reshape(batch, channels, height, width)


def guidance(denoiser, config: TrainConfig, batch: int, generator):
    """The guidance input of guidance-distilled transformers (SimpleTuner's flux_guidance_*); None for Klein."""
    import torch

    if not getattr(denoiser.config, "guidance_embeds", False):
        return None
    if config.flux_guidance_mode == "random-range":
        low, high = config.flux_guidance_min, config.flux_guidance_max
        values = low + (high - low) * torch.rand(batch, generator=generator)
    else:
        values = torch.full((batch,), float(config.flux_guidance_value))
    return values.to(next(denoiser.parameters()).device)
