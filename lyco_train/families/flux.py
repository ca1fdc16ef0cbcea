"""FLUX.1: diffusers' ``FluxTransformer2DModel``, ``AutoencoderKL`` latents, CLIP-L (pooled) and T5 (sequence).

The math follows diffusers' ``FluxPipeline``: prompts go through its own ``encode_prompt`` (a pipeline
holding only the tokenizers and text encoders): T5's last hidden states padded to ``max_sequence_length``
tokens (``prompt_embeds``) and CLIP's pooled output (``pooled_prompt_embeds``). T5's length is SimpleTuner's:
512 tokens, 256 for schnell (SimpleTuner ignores ``tokenizer_max_length`` for FLUX.1). Latents are the VAE's
mode, shifted and scaled (``(z − shift_factor) · scaling_factor``); the transformer sees them packed 2×2 by
``FluxPipeline._pack_latents``, with the pipeline's ``_prepare_latent_image_ids`` and zero text ids, and the
timestep σ in [0, 1].

The objective is rectified flow (``flow.py``) with ``flow_schedule_shift``, or the resolution-dependent
shift of ``flow_schedule_auto_shift`` (the scheduler config's base/max shift over the image's token count),
or schnell's ``flux_fast_schedule``. Guidance-distilled transformers (dev, krea) get the guidance input from
``flux_guidance_*``; schnell has no guidance embedding.

The trap: SimpleTuner trains its own copy of this transformer, which builds diffusers' generic ``Attention``;
diffusers' ``FluxTransformer2DModel`` (what lyco train trains) builds ``FluxAttention``, ``FeedForward``,
``FluxTransformerBlock`` and ``FluxSingleTransformerBlock``. A SimpleTuner FLUX.1 LyCORIS config that targets
``Attention`` matches nothing here; the lint gate says so (LYC205/LYC207) before anything is loaded.

Flavours and the default (krea) are SimpleTuner's. kontext (an edit model that needs conditioning images)
and libreflux (attention-masked training) are refused; schnell needs ``flux_fast_schedule`` as in SimpleTuner
and ``disable_assistant_lora`` (SimpleTuner would load ostris' schnell training adapter, lyco train does not);
fluxbooru needs SimpleTuner's forced ``flux_guidance_value`` 3.5.

Rendering uses diffusers' ``FluxPipeline`` with the prompt embeddings: ``validation_guidance`` is the guidance
embedding's value (schnell has none), ``validation_guidance_real`` above 1 is the pipeline's true CFG
(``true_cfg_scale``) against the negative prompt. diffusers applies true CFG from the first step, so it takes
``validation_no_cfg_until_timestep`` 0 only.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from ..config import ConfigError
from ..options import TrainingOptions, torch_dtype
from . import components
from .base import Guidance
from .mixins import PipelinePaths, RectifiedFlow

HUB_IDS = {  # SimpleTuner's Flux.HUGGINGFACE_PATHS
    "dev": "black-forest-labs/flux.1-dev",
    "krea": "black-forest-labs/flux.1-krea-dev",
    "schnell": "black-forest-labs/flux.1-schnell",
    "kontext": "black-forest-labs/flux.1-kontext-dev",
    "fluxbooru": "terminusresearch/fluxbooru-v0.3",
    "libreflux": "jimmycarter/LibreFlux-SimpleTuner",
}
T5_TOKENS = {"schnell": 256}  # SimpleTuner's check_user_config: 512, schnell 256
DEFAULT_T5_TOKENS = 512
ALIGNMENT = 64  # SimpleTuner overrides aspect_bucket_alignment to 64 for FLUX.1
COMPONENTS = {
    "transformer": "FluxTransformer2DModel",
    "vae": "AutoencoderKL",
    "text_encoder": "CLIPTextModel",
    "text_encoder_2": "T5EncoderModel",
    "tokenizer": None,
    "tokenizer_2": None,
}
REFUSED = {
    "kontext": "kontext is an edit model: it trains on conditioning (reference) images, which lyco train does not read",
    "libreflux": "libreflux needs attention-masked training (SimpleTuner turns on flux_attention_masked_training), which lyco train does not implement",
}


class Flux(PipelinePaths, RectifiedFlow):
    """FLUX.1 (krea, dev, schnell, fluxbooru); implements :class:`~.base.Family` (flavour, model_root and
    latent_identity from :class:`~.mixins.PipelinePaths`, the flow objective's noise, target, weights and
    timesteps from :class:`~.mixins.RectifiedFlow`)."""

    name = "flux"
    hub_ids = HUB_IDS

    def __init__(self) -> None:
        self._scheduler_configs: dict[tuple, dict] = {}

    # -- identity, checks (no torch) -------------------------------------------------------------------------

    def check(self, options: TrainingOptions) -> None:
        flavour = self.flavour(options)
        components.check_flavour(self.name, flavour)
        if flavour in REFUSED:
            raise ConfigError(f"model_flavour '{flavour}': {REFUSED[flavour]}; train dev, krea, schnell or fluxbooru")
        if flavour == "schnell" and not options.flux_fast_schedule:
            raise ConfigError("model_flavour schnell: SimpleTuner requires \"flux_fast_schedule\": true for schnell (it exits otherwise); set it")
        if flavour == "schnell" and not options.disable_assistant_lora:
            raise ConfigError(
                "model_flavour schnell: SimpleTuner trains schnell LoRAs on top of ostris/FLUX.1-schnell-training-adapter "
                "(its assistant LoRA), which lyco train does not load; set \"disable_assistant_lora\": true to train without it"
            )
        if flavour == "fluxbooru" and options.flux_guidance_value != 3.5:
            raise ConfigError(
                f"model_flavour fluxbooru: SimpleTuner forces flux_guidance_value 3.5 for it (you set {options.flux_guidance_value:g}); "
                "set \"flux_guidance_value\": 3.5"
            )
        components.check_flow_prediction_type(self.name, options)
        components.check_text_length(self.name, flavour, options, t5_tokens(flavour))
        components.check_pipeline_folders(self.name, options, self.model_root(options), COMPONENTS)

    def pixel_multiple(self, options: TrainingOptions) -> int:
        """64 (SimpleTuner's FLUX.1 alignment), or more if the VAE's downscale × 2 (the packing) cannot divide it."""
        vae = components.local_json(self.model_root(options), "vae", "config.json") or {}
        return math.lcm(ALIGNMENT, 2 ** (len(vae.get("block_out_channels", (0,) * 4)) - 1) * 2)

    def text_identity(self, options: TrainingOptions) -> str:
        parts = ["flux-t5+clip-pooled", f"t5_tokens={t5_tokens(self.flavour(options))}", f"dtype={options.weight_dtype_name}"]
        parts += [self._component_identity(options, folder) for folder in ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")]
        return "|".join(parts)

    def nan_hazards(self, lycoris_config: dict[str, Any], adapted: Sequence[str]) -> list[str]:
        return []

    # -- loading (torch from here on) ----------------------------------------------------------------------

    @components.loads_model
    def load_denoiser(self, options: TrainingOptions, dtype, device):
        from diffusers import FluxTransformer2DModel

        root = options.pretrained_transformer_model_name_or_path or self.model_root(options)
        return FluxTransformer2DModel.from_pretrained(
            root, subfolder=components.transformer_subfolder(options), torch_dtype=dtype, revision=options.revision, variant=options.variant
        ).to(device)

    @components.loads_model
    def load_vae(self, options: TrainingOptions, device):
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(
            self.model_root(options), subfolder="vae", torch_dtype=torch_dtype(options.vae_dtype_name), revision=options.revision, variant=options.variant
        )
        return vae.requires_grad_(False).eval().to(device)

    @components.loads_model
    def load_text_encoder(self, options: TrainingOptions, device):
        """A FluxPipeline holding only the two tokenizers, CLIP-L and T5 (training dtype)."""
        from diffusers import FluxPipeline
        from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

        root, revision = self.model_root(options), options.revision
        common = {"revision": revision, "variant": options.variant, "dtype": torch_dtype(options.weight_dtype_name)}
        clip = CLIPTextModel.from_pretrained(root, subfolder="text_encoder", **common)
        t5 = T5EncoderModel.from_pretrained(root, subfolder="text_encoder_2", **common)
        return FluxPipeline(
            scheduler=None, vae=None, transformer=None,
            tokenizer=AutoTokenizer.from_pretrained(root, subfolder="tokenizer", revision=revision),
            tokenizer_2=AutoTokenizer.from_pretrained(root, subfolder="tokenizer_2", revision=revision),
            text_encoder=clip.requires_grad_(False).eval().to(device),
            text_encoder_2=t5.requires_grad_(False).eval().to(device),
        )

    # -- encoding ------------------------------------------------------------------------------------------

    def encode_images(self, vae, pixels):
        """Pixels (B, 3, H, W) in [-1, 1] -> (mode − shift_factor) × scaling_factor (B, C, H/8, W/8), float32."""
        latents = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode().float()
        return (latents - vae.config.shift_factor) * vae.config.scaling_factor

    def encode_prompts(self, text_encoder, prompts: list[str], options: TrainingOptions):
        """{"prompt_embeds": (B, T5 tokens, T5 width), "pooled_prompt_embeds": (B, CLIP width)} from encode_prompt."""
        import torch

        with torch.no_grad():
            embeds, pooled, _text_ids = text_encoder.encode_prompt(
                prompt=prompts, prompt_2=prompts, device=text_encoder.text_encoder_2.device,
                max_sequence_length=t5_tokens(self.flavour(options)),
            )
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}

    def sample_conditioning(self, samples: Sequence[Any], options: TrainingOptions):
        return {}  # FLUX.1 takes no per-sample conditioning: positions come from the latents' shape

    # -- the objective: rectified flow (flow.py; the rest is RectifiedFlow's) -----------------------------

    def sample_noise_levels(self, options: TrainingOptions, latents, generator):
        from .. import flow

        auto_shift = None
        if options.flow_schedule_auto_shift:
            tokens = (latents.shape[-2] // 2) * (latents.shape[-1] // 2)
            auto_shift = flow.resolution_shift(self.scheduler_config(options), tokens)
        return flow.sample_sigmas(options, latents.shape[0], generator, auto_shift=auto_shift)

    def scheduler_config(self, options: TrainingOptions) -> dict:
        """The pipeline's flow-matching scheduler config (its base/max shift for the auto shift)."""
        key = (self.model_root(options), options.revision)
        if key not in self._scheduler_configs:
            from diffusers import FlowMatchEulerDiscreteScheduler

            self._scheduler_configs[key] = dict(FlowMatchEulerDiscreteScheduler.load_config(key[0], subfolder="scheduler", revision=key[1]))
        return self._scheduler_configs[key]

    def predict(self, denoiser, noisy_latents, prompt_embeds, conditioning, levels, options: TrainingOptions, generator):
        """The transformer's velocity for latents (B, C, H, W), packed and unpacked as FluxPipeline does."""
        import torch
        from diffusers import FluxPipeline

        from ..flow import guidance

        embeds = prompt_embeds["prompt_embeds"]
        batch, channels, height, width = noisy_latents.shape
        device = noisy_latents.device
        packed = FluxPipeline._pack_latents(noisy_latents, batch, channels, height, width)
        img_ids = FluxPipeline._prepare_latent_image_ids(batch, height // 2, width // 2, device, packed.dtype)
        txt_ids = torch.zeros(embeds.shape[1], 3, device=device, dtype=packed.dtype)
        output = denoiser(
            hidden_states=packed,
            timestep=levels.to(device),
            guidance=guidance(denoiser, options, batch, generator),
            pooled_projections=prompt_embeds["pooled_prompt_embeds"],
            encoder_hidden_states=embeds,
            txt_ids=txt_ids,
            img_ids=img_ids,
            return_dict=False,
        )[0]
        return FluxPipeline._unpack_latents(output, height, width, vae_scale_factor=1)  # latent sides, so factor 1

    # -- rendering ------------------------------------------------------------------------------------------

    def guidance(self, options: TrainingOptions) -> Guidance:
        components.check_flow_rendering(self.name, options)
        embedded = "no guidance embedding (schnell)" if self.flavour(options) == "schnell" else f"guidance embedding {components.validation_guidance(options):g}"
        real = options.validation_guidance_real
        if real <= 1:
            return Guidance(False, embedded)
        if options.validation_no_cfg_until_timestep > 0:
            raise ConfigError(
                f"validation_guidance_real {real:g} turns on true CFG, which diffusers' FluxPipeline applies from the first step, "
                f"but validation_no_cfg_until_timestep is {options.validation_no_cfg_until_timestep} (SimpleTuner's default 2 skips "
                "CFG for the first steps): set \"validation_no_cfg_until_timestep\": 0, or remove validation_guidance_real"
            )
        return Guidance(True, f"{embedded}, true CFG {real:g} against the negative prompt")

    @components.loads_model
    def pipeline(self, options: TrainingOptions, denoiser, vae):
        from diffusers import FluxPipeline

        scheduler = components.flow_scheduler(options, self.model_root(options))
        return FluxPipeline(
            scheduler=scheduler, vae=vae, text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None, transformer=denoiser
        )

    def pipeline_inputs(self, options: TrainingOptions, prompt_embeds, negative_embeds):
        inputs = {
            "prompt_embeds": prompt_embeds["prompt_embeds"], "pooled_prompt_embeds": prompt_embeds["pooled_prompt_embeds"],
            "guidance_scale": components.validation_guidance(options),
        }
        if self.guidance(options).negative_prompt:
            inputs.update(
                true_cfg_scale=options.validation_guidance_real, negative_prompt_embeds=negative_embeds["prompt_embeds"],
                negative_pooled_prompt_embeds=negative_embeds["pooled_prompt_embeds"],
            )
        return inputs


def t5_tokens(flavour: str) -> int:
    return T5_TOKENS.get(flavour, DEFAULT_T5_TOKENS)
