"""Tiny but real SDXL and FLUX.1 pipelines for the ``lyco train`` tests, built and saved with
``save_pretrained`` in the test session (random weights, nothing downloaded).

* SDXL: ``UNet2DConditionModel`` with the SDXL layout in miniature (a plain and a cross-attention down block,
  ``text_time`` added conditioning, linear projections), ``AutoencoderKL`` with four blocks (8× downscale, as
  the real one, and ``force_upcast``), ``CLIPTextModel`` + ``CLIPTextModelWithProjection`` of width 16 (so the
  cross-attention width is 32 and the pooled width 16), two word-level CLIP-style tokenizers (start and end
  tokens, 77 tokens), and SDXL's own scheduler config (an ``EulerDiscreteScheduler`` with scaled-linear betas;
  training reads it as a ``DDPMScheduler``, as SimpleTuner does).
* FLUX.1: ``FluxTransformer2DModel`` with one double and one single block and a guidance embedding (dev/krea),
  ``AutoencoderKL`` with FLUX's ``shift_factor`` and no quant convs, ``CLIPTextModel`` (pooled width 16) and a
  ``T5EncoderModel`` of width 32 with a word-level T5-style tokenizer (end token, pad id 0), and FLUX's
  ``FlowMatchEulerDiscreteScheduler`` config (dynamic shifting, base/max shift).

Images of 64 px train at 8×8 latents, as 512 px images do on the real models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from train_fixtures import WORDS, built_once, write_training_files

SDXL_ATTENTION_LOKR = {
    "algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 4,
    "apply_preset": {"target_module": ["Attention"]},
}
SDXL_ATTENTION_LORA = {
    "algo": "lora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 4,
    "apply_preset": {"target_module": ["Attention"]},
}
SDXL_ATTENTION_TLORA = {
    "algo": "tlora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 4, "tlora_min_rank": 1, "tlora_alpha": 1.0,
    "apply_preset": {"target_module": ["Attention"]},
}
SDXL_FEEDFORWARD_LORA = {
    "algo": "lora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 4,
    "apply_preset": {"target_module": ["Attention", "FeedForward"]},
}
FLUX_TARGETS = ["FluxAttention", "FeedForward"]
FLUX_LOKR = {
    "algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 4,
    "apply_preset": {"target_module": FLUX_TARGETS},
}
FLUX_LORA = {"algo": "lora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 4, "apply_preset": {"target_module": FLUX_TARGETS}}
FLUX_TLORA = {
    "algo": "tlora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 4, "tlora_min_rank": 1, "tlora_alpha": 1.0,
    "apply_preset": {"target_module": ["FluxAttention"]},
}
# What a SimpleTuner FLUX.1 LyCORIS config targets: its own transformer copy builds the generic Attention.
SIMPLETUNER_FLUX_LOKR = {
    "algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 16,
    "apply_preset": {"target_module": ["Attention", "FeedForward"]},
}

IMAGES = [
    ("red.png", (96, 64), (220, 30, 30), "a red circle on white background"),
    ("green.jpg", (64, 80), (30, 200, 30), "a green circle on white background\na small green circle"),
    ("blue.webp", (64, 64), (30, 30, 220), "a blue square on white background"),
]


def tiny_sdxl_pipeline(tmp_path_factory) -> Path:
    return built_once("tiny-sdxl", build_tiny_sdxl, tmp_path_factory)


def tiny_flux_pipeline(tmp_path_factory) -> Path:
    return built_once("tiny-flux", build_tiny_flux, tmp_path_factory)


def _tokenizer(special: list[str], template: str, **tokens: str):
    """A word-level fast tokenizer with the given special tokens and post-processing template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(special + ["[UNK]"] + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens(special)
    backend.post_processor = processors.TemplateProcessing(single=template, special_tokens=[(t, vocab[t]) for t in special if t in template])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", **tokens), len(vocab)


def clip_tokenizer():
    """CLIP-style: <|startoftext|> words <|endoftext|>, padded with <|endoftext|> to 77 (the pooled token is the
    first end token, as CLIPTextModel reads it)."""
    return _tokenizer(
        ["<|startoftext|>", "<|endoftext|>"], "<|startoftext|> $A <|endoftext|>",
        bos_token="<|startoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=77,
    )


def t5_tokenizer():
    """T5-style: words </s>, padded with <pad> (id 0)."""
    return _tokenizer(["<pad>", "</s>"], "$A </s>", eos_token="</s>", pad_token="<pad>", model_max_length=512)


def _clip(vocab_size: int, projection: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=3, num_attention_heads=2,
        max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=16, hidden_act="gelu",
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _vae(**extra: Any):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 8, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=64, **extra,
    )


def build_tiny_sdxl(folder: Path) -> Path:
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    torch.manual_seed(0)
    tokenizer, vocab_size = clip_tokenizer()
    tokenizer_2, _ = clip_tokenizer()
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=6 * 8 + 16, cross_attention_dim=32,
        norm_num_groups=8,
    )
    vae = _vae(scaling_factor=0.13025, force_upcast=True)
    scheduler = EulerDiscreteScheduler(  # SDXL base 1.0's scheduler_config.json
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, prediction_type="epsilon",
        steps_offset=1, timestep_spacing="leading", interpolation_type="linear", use_karras_sigmas=False,
    )
    StableDiffusionXLPipeline(
        vae=vae, text_encoder=_clip(vocab_size, False), text_encoder_2=_clip(vocab_size, True), tokenizer=tokenizer,
        tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler, add_watermarker=False,
    ).save_pretrained(folder)
    return folder


def build_tiny_flux(folder: Path, guidance_embeds: bool = True) -> Path:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    tokenizer, vocab_size = clip_tokenizer()
    tokenizer_2, t5_vocab = t5_tokenizer()
    t5 = T5EncoderModel(
        T5Config(vocab_size=t5_vocab, d_model=32, d_ff=48, d_kv=8, num_layers=2, num_heads=2, relative_attention_num_buckets=8,
                 pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    )
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=32, pooled_projection_dim=16, guidance_embeds=guidance_embeds, axes_dims_rope=(2, 2, 4),
    )
    vae = _vae(scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False)
    scheduler = FlowMatchEulerDiscreteScheduler(  # FLUX.1 [dev]'s scheduler_config.json
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096,
    )
    FluxPipeline(
        scheduler=scheduler, vae=vae, text_encoder=_clip(vocab_size, False), tokenizer=tokenizer, text_encoder_2=t5,
        tokenizer_2=tokenizer_2, transformer=transformer,
    ).save_pretrained(folder)
    return folder


def write_family_setup(
    root: Path,
    pipeline: Path,
    family: str,
    *,
    lycoris: dict[str, Any],
    options: dict[str, Any] | None = None,
    dataset: dict[str, Any] | None = None,
    images: list | None = None,
) -> Path:
    """A complete training setup for ``family`` (sdxl or flux) under ``root``."""
    config = {
        "model_type": "lora", "model_family": family, "model_flavour": "base-1.0" if family == "sdxl" else "dev",
        "pretrained_model_name_or_path": str(pipeline), "lora_type": "lycoris", "lycoris_config": "lycoris.json",
        "output_dir": str(root / "output"), "data_backend_config": "multidatabackend.json", "optimizer": "torch-adamw",
        "learning_rate": 1e-3, "lr_scheduler": "constant", "train_batch_size": 2, "max_train_steps": 4,
        "checkpoint_step_interval": 2, "mixed_precision": "no", "vae_dtype": "fp32", "seed": 7,
        **({"flux_guidance_value": 3.5} if family == "flux" else {}),
        **(options or {}),
    }
    return write_training_files(
        root, images=IMAGES if images is None else images, resolution=64, dataset=dataset, lycoris=lycoris, config=config
    )


# -- a validation loss measured outside the trainer, as the diffusers pipeline encodes the data -------------------

VALIDATION_TIMESTEPS = (100, 300, 500, 700, 900)  # DDPM timesteps (SDXL); σ = t / 1000 for flow matching (FLUX.1)


def validation_loss(family: str, pipeline_folder: Path, items: list[tuple[Path, str]], weights: Path | None = None, seed: int = 0) -> float:
    """The mean denoising loss over ``items`` (image file, caption) at fixed timesteps and fixed noise, computed
    with the diffusers pipeline's own components and conventions (its image processor, VAE scaling,
    ``encode_prompt``, add_time_ids or latent packing, scheduler), on the base model or, with ``weights``, on a
    fresh denoiser carrying the LyCORIS weights loaded by ``create_lycoris_from_weights``."""
    import torch
    from PIL import Image

    if family == "sdxl":
        from diffusers import DDPMScheduler, StableDiffusionXLPipeline

        pipe = StableDiffusionXLPipeline.from_pretrained(pipeline_folder, add_watermarker=False)
        denoiser = pipe.unet
        scheduler = DDPMScheduler.from_pretrained(pipeline_folder, subfolder="scheduler")
    else:
        from diffusers import FluxPipeline

        pipe = FluxPipeline.from_pretrained(pipeline_folder)
        denoiser = pipe.transformer
    network = None
    if weights is not None:
        from lycoris import create_lycoris_from_weights

        network, _ = create_lycoris_from_weights(1.0, str(weights), denoiser)
        network.apply_to()
    denoiser.eval()
    generator = torch.Generator().manual_seed(seed)
    losses = []
    with torch.no_grad():
        for path, caption in items:
            with Image.open(path) as image:
                pixels = pipe.image_processor.preprocess(image.convert("RGB"), height=64, width=64)
            posterior = pipe.vae.encode(pixels).latent_dist
            for timestep in VALIDATION_TIMESTEPS:
                if family == "sdxl":
                    latents = posterior.mode() * pipe.vae.config.scaling_factor
                    noise = torch.randn(latents.shape, generator=generator)
                    embeds, _n, pooled, _np = pipe.encode_prompt(caption, device="cpu", do_classifier_free_guidance=False)
                    time_ids = pipe._get_add_time_ids((64, 64), (0, 0), (64, 64), dtype=embeds.dtype, text_encoder_projection_dim=pooled.shape[-1])
                    t = torch.tensor([timestep])
                    noisy = scheduler.add_noise(latents, noise, t)
                    prediction = denoiser(noisy, t, encoder_hidden_states=embeds, added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample
                    losses.append(torch.nn.functional.mse_loss(prediction, noise).item())
                else:
                    latents = (posterior.mode() - pipe.vae.config.shift_factor) * pipe.vae.config.scaling_factor
                    noise = torch.randn(latents.shape, generator=generator)
                    embeds, pooled, text_ids = pipe.encode_prompt(caption, prompt_2=caption, device="cpu", max_sequence_length=512)
                    sigma = timestep / 1000
                    noisy = (1 - sigma) * latents + sigma * noise
                    b, c, h, w = latents.shape
                    packed = pipe._pack_latents(noisy, b, c, h, w)
                    image_ids = pipe._prepare_latent_image_ids(b, h // 2, w // 2, "cpu", packed.dtype)
                    guidance = torch.full([1], 3.5) if denoiser.config.guidance_embeds else None
                    output = denoiser(hidden_states=packed, timestep=torch.tensor([sigma]), guidance=guidance, pooled_projections=pooled,
                                      encoder_hidden_states=embeds, txt_ids=text_ids, img_ids=image_ids).sample
                    prediction = pipe._unpack_latents(output, h * pipe.vae_scale_factor, w * pipe.vae_scale_factor, pipe.vae_scale_factor)
                    losses.append(torch.nn.functional.mse_loss(prediction, noise - latents).item())
    return sum(losses) / len(losses)
