"""SDXL: ``UNet2DConditionModel`` denoiser, ``AutoencoderKL`` latents, two CLIP text encoders, DDPM training.

Prompts go through diffusers' own ``StableDiffusionXLPipeline.encode_prompt`` (a pipeline holding only the
tokenizers and text encoders): the penultimate hidden states of CLIP-L and CLIP-G concatenated
(``prompt_embeds``, 77 tokens) and CLIP-G's pooled, projected output (``pooled_prompt_embeds``). The UNet's
added conditioning is built per sample by diffusers' ``_get_add_time_ids`` from the sample's original size
(the image file's height and width), the top-left corner of its real crop and its training size, as in the
SDXL paper and diffusers' ``train_text_to_image_sdxl.py`` (SimpleTuner passes its intermediary size as the
original size instead).

The objective is diffusers' ``DDPMScheduler`` (from the pipeline's ``scheduler/`` config, with SimpleTuner's
``rescale_betas_zero_snr`` and ``training_scheduler_timestep_spacing``): ``add_noise``, the target ε
(``epsilon``) or ``get_velocity`` (``v_prediction``), the prediction type from ``prediction_type`` or else the
scheduler config. Timesteps are drawn as SimpleTuner draws them (helpers/models/common.py and
helpers/training/custom_schedule.py): integer timesteps with weights from ``timestep_bias_*`` (uniform by
default), one from each of ``batch`` equal segments of the schedule when the batch holds several samples
(unless ``disable_segmented_timestep_sampling``). ``offset_noise`` adds ``noise_offset`` · N(0, 1) per
sample and channel to the noise, in a fraction ``noise_offset_probability`` of the batches; ``snr_gamma``
weights each sample's loss by min-SNR (diffusers' ``compute_snr``; ``min(snr, γ)/snr``, or ``/(snr + 1)``
for v-prediction), as SimpleTuner and diffusers' SDXL script do.

The VAE runs in ``vae_dtype`` (SimpleTuner's default bf16); the SDXL VAE overflows in fp16, so with
``vae_dtype: fp16`` a VAE whose config says ``force_upcast`` encodes in fp32, as diffusers' pipelines do.
Latents are the VAE's mode times ``scaling_factor``.

Rendering uses diffusers' ``StableDiffusionXLPipeline`` with the prompt embeddings and SimpleTuner's validation
scheduler (helpers/training/validation.py ``setup_scheduler``): ``validation_noise_scheduler``, by default
DDIM, built from the pipeline's scheduler config with ``inference_scheduler_timestep_spacing`` (trailing), the
training ``prediction_type`` and ``rescale_betas_zero_snr``; classifier-free guidance at
``validation_guidance`` against the negative prompt, with ``validation_guidance_rescale`` (which lyco passes as
written; SimpleTuner passes it only with skip-layer guidance, never for SDXL).

Flavours and the default are SimpleTuner's; the refiners are not trained (they condition on an aesthetic
score and a shortened schedule, SimpleTuner's ``refiner_training_*``).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Sequence

from ..config import ConfigError
from ..options import TrainingOptions, torch_dtype
from . import components
from .base import Guidance
from .mixins import PipelinePaths

HUB_IDS = {  # SimpleTuner's SDXL.HUGGINGFACE_PATHS
    "base-1.0": "stabilityai/stable-diffusion-xl-base-1.0",
    "refiner-1.0": "stabilityai/stable-diffusion-xl-refiner-1.0",
    "base-0.9": "stabilityai/stable-diffusion-xl-base-0.9",
    "refiner-0.9": "stabilityai/stable-diffusion-xl-refiner-0.9",
}
TOKENS = 77  # CLIP's length; SimpleTuner ignores tokenizer_max_length for SDXL
ALIGNMENT = 64  # SimpleTuner overrides aspect_bucket_alignment to 64 for SDXL
COMPONENTS = {
    "unet": "UNet2DConditionModel",
    "vae": "AutoencoderKL",
    "text_encoder": "CLIPTextModel",
    "text_encoder_2": "CLIPTextModelWithProjection",
    "tokenizer": None,
    "tokenizer_2": None,
}
HAZARD = "FeedForward on the SDXL UNet: the known NaN hazard; train Attention only"


class SDXL(PipelinePaths):
    """Stable Diffusion XL (base 1.0 and 0.9); implements :class:`~.base.Family` (flavour, model_root and
    latent_identity from :class:`~.mixins.PipelinePaths`)."""

    name = "sdxl"
    hub_ids = HUB_IDS
    num_train_timesteps = 1000

    def __init__(self) -> None:
        self._schedulers: dict[tuple, Any] = {}

    # -- identity, checks (no torch) -------------------------------------------------------------------------

    def check(self, options: TrainingOptions) -> None:
        flavour = self.flavour(options)
        components.check_flavour(self.name, flavour)
        if flavour.startswith("refiner"):
            raise ConfigError(
                f"model_flavour '{flavour}': lyco train does not train the SDXL refiner (SimpleTuner conditions it on an "
                "aesthetic score and a shortened schedule, refiner_training_*); train base-1.0 or base-0.9"
            )
        if options.prediction_type not in (None, "epsilon", "v_prediction"):
            raise ConfigError(
                f"prediction_type '{options.prediction_type}' is not an SDXL training objective in SimpleTuner "
                "(its loss takes epsilon or v_prediction); use one of those, or remove it to use the scheduler's"
            )
        if options.pretrained_transformer_model_name_or_path:
            raise ConfigError(
                "pretrained_transformer_model_name_or_path: SDXL trains a UNet, and SimpleTuner reads "
                "pretrained_unet_model_name_or_path for it, which lyco train does not implement; remove it"
            )
        components.check_text_length(self.name, flavour, options, TOKENS)
        check_timestep_bias(options)
        if not 0.0 <= options.noise_offset_probability <= 1.0:
            raise ConfigError(f"noise_offset_probability must be between 0 and 1, got {options.noise_offset_probability}")
        components.check_model_folder(self.name, options, self.model_root(options), COMPONENTS)

    def pixel_multiple(self, options: TrainingOptions) -> int:
        """64 (SimpleTuner's SDXL alignment), or more if the VAE's downscale times the UNet's cannot divide it."""
        root = self.model_root(options)
        vae = components.local_json(root, "vae", "config.json") or {}
        unet = components.local_json(root, "unet", "config.json") or {}
        vae_scale = 2 ** (len(vae.get("block_out_channels", (0,) * 4)) - 1)
        unet_scale = 2 ** (len(unet.get("down_block_types", (0,) * 3)) - 1)
        return math.lcm(ALIGNMENT, vae_scale * unet_scale)

    def text_identity(self, options: TrainingOptions) -> str:
        parts = ["sdxl-clip-penultimate+pooled", f"tokens={TOKENS}", f"dtype={options.weight_dtype_name}"]
        parts += [self._component_identity(options, folder) for folder in ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")]
        return "|".join(parts)

    def nan_hazards(self, lycoris_config: dict[str, Any], adapted: Sequence[str]) -> list[str]:
        """SimpleTuner's LyCORIS guide: FeedForward on the SDXL UNet can drive the loss to NaN (LYC304)."""
        feedforward = [path for path in adapted if ".ff." in f".{path}." or "_ff_" in path]
        if not feedforward:
            return []
        preset = lycoris_config.get("apply_preset") if isinstance(lycoris_config.get("apply_preset"), dict) else {}
        if "target_module" in preset or "target_name" in preset:
            targets = f"target_module {preset.get('target_module', [])}" + (f", target_name {preset['target_name']}" if preset.get("target_name") else "")
        else:
            targets = "no apply_preset target_module, so LyCORIS adapts every Linear and Conv layer"
        return [
            f"{HAZARD}. This LyCORIS config has {targets}, which adapts {len(feedforward)} FeedForward layer(s) "
            f"(e.g. {feedforward[0]}); set \"apply_preset\": {{\"target_module\": [\"Attention\"]}}"
        ]

    # -- loading (torch from here on) ----------------------------------------------------------------------

    @components.loads_model
    def load_denoiser(self, options: TrainingOptions, dtype, device):
        from diffusers import UNet2DConditionModel

        return UNet2DConditionModel.from_pretrained(
            self.model_root(options), subfolder="unet", torch_dtype=dtype, revision=options.revision, variant=options.variant
        ).to(device)

    @components.loads_model
    def load_vae(self, options: TrainingOptions, device):
        from diffusers import AutoencoderKL

        root = self.model_root(options)
        name = options.vae_dtype_name
        if name == "fp16" and AutoencoderKL.load_config(root, subfolder="vae", revision=options.revision).get("force_upcast", True):
            name = "fp32"  # the SDXL VAE overflows in fp16: upcast, as diffusers' pipelines do for force_upcast
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae", torch_dtype=torch_dtype(name), revision=options.revision, variant=options.variant)
        return vae.requires_grad_(False).eval().to(device)

    @components.loads_model
    def load_text_encoder(self, options: TrainingOptions, device):
        """A StableDiffusionXLPipeline holding only the two tokenizers and CLIP encoders (training dtype)."""
        from diffusers import StableDiffusionXLPipeline
        from transformers import AutoTokenizer, CLIPTextModel, CLIPTextModelWithProjection

        root, revision = self.model_root(options), options.revision
        dtype = torch_dtype(options.weight_dtype_name)
        common = {"revision": revision, "variant": options.variant, "dtype": dtype}
        text_encoder = CLIPTextModel.from_pretrained(root, subfolder="text_encoder", **common)
        text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(root, subfolder="text_encoder_2", **common)
        pipeline = StableDiffusionXLPipeline(
            vae=None, unet=None, scheduler=None, add_watermarker=False,
            tokenizer=AutoTokenizer.from_pretrained(root, subfolder="tokenizer", revision=revision),
            tokenizer_2=AutoTokenizer.from_pretrained(root, subfolder="tokenizer_2", revision=revision),
            text_encoder=text_encoder.requires_grad_(False).eval().to(device),
            text_encoder_2=text_encoder_2.requires_grad_(False).eval().to(device),
        )
        return pipeline

    # -- encoding ------------------------------------------------------------------------------------------

    def encode_images(self, vae, pixels):
        """Pixels (B, 3, H, W) in [-1, 1] -> the VAE's mode × scaling_factor (B, 4, H/8, W/8), float32."""
        latents = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
        return latents.float() * vae.config.scaling_factor

    def encode_prompts(self, text_encoder, prompts: list[str], options: TrainingOptions):
        """{"prompt_embeds": (B, 77, 768 + 1280), "pooled_prompt_embeds": (B, 1280)} from diffusers' encode_prompt."""
        import torch

        with torch.no_grad():
            embeds, _negative, pooled, _negative_pooled = text_encoder.encode_prompt(
                prompts, device=text_encoder.text_encoder_2.device, num_images_per_prompt=1, do_classifier_free_guidance=False
            )
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}

    def sample_conditioning(self, samples: Sequence[Any], options: TrainingOptions):
        """{"add_time_ids": (B, 6)}: original (height, width), crop (top, left), target (height, width) per sample."""
        import torch

        rows = [
            (s.original_size[1], s.original_size[0], s.crop_top_left[0], s.crop_top_left[1], s.size[1], s.size[0]) for s in samples
        ]
        return {"add_time_ids": torch.tensor(rows, dtype=torch.float32)}

    # -- the objective: DDPM ----------------------------------------------------------------------------------

    @components.loads_model
    def scheduler(self, options: TrainingOptions):
        """The training DDPMScheduler (cached per model and schedule options)."""
        key = (self.model_root(options), options.revision, options.rescale_betas_zero_snr, options.training_scheduler_timestep_spacing, options.prediction_type)
        if key not in self._schedulers:
            from diffusers import DDPMScheduler

            extra = {"prediction_type": options.prediction_type} if options.prediction_type else {}
            self._schedulers[key] = DDPMScheduler.from_pretrained(
                key[0], subfolder="scheduler", revision=options.revision, rescale_betas_zero_snr=options.rescale_betas_zero_snr,
                timestep_spacing=options.training_scheduler_timestep_spacing, **extra,
            )
        return self._schedulers[key]

    def sample_noise_levels(self, options: TrainingOptions, latents, generator):
        """Integer timesteps, one per sample (SimpleTuner's weights and segmented selection)."""
        import torch

        count = latents.shape[0]
        total = self.scheduler(options).config.num_train_timesteps
        weights = timestep_weights(options, total)
        if count == 1 or options.disable_segmented_timestep_sampling:
            return torch.multinomial(weights, count, replacement=True, generator=generator)
        segment = max(total // count, 1)
        picks = []
        for index in range(count):  # segment i covers [end, start], from the noisy end down
            start = total - 1 - index * segment
            end = max(start - segment, 0) if index != count - 1 else 0
            chosen = torch.multinomial(weights[end : start + 1], 1, generator=generator)
            picks.append(end + int(chosen))
        return torch.tensor(picks, dtype=torch.long)

    def sample_noise(self, options: TrainingOptions, latents, generator):
        import torch

        noise = torch.randn(latents.shape, generator=generator)
        if options.offset_noise:
            probability = options.noise_offset_probability
            if probability == 1.0 or float(torch.rand(1, generator=generator)) < probability:
                noise = noise + options.noise_offset * torch.randn(latents.shape[0], latents.shape[1], 1, 1, generator=generator)
        return noise

    def noisy_input(self, options: TrainingOptions, latents, noise, levels):
        return self.scheduler(options).add_noise(latents.float(), noise.float(), levels.long())

    def target(self, options: TrainingOptions, latents, noise, levels):
        scheduler = self.scheduler(options)
        if scheduler.config.prediction_type == "v_prediction":
            return scheduler.get_velocity(latents.float(), noise.float(), levels.long())
        return noise

    def loss_weights(self, options: TrainingOptions, levels):
        """Min-SNR weights (diffusers' compute_snr) when snr_gamma is set; None otherwise."""
        if not options.snr_gamma:
            return None
        import torch
        from diffusers.training_utils import compute_snr

        scheduler = self.scheduler(options)
        snr = compute_snr(scheduler, levels.long().cpu()).to(levels.device)
        clipped = torch.minimum(snr, torch.full_like(snr, float(options.snr_gamma)))
        return clipped / (snr + 1) if scheduler.config.prediction_type == "v_prediction" else clipped / snr

    def timesteps(self, levels):
        return levels.float()

    def predict(self, denoiser, noisy_latents, prompt_embeds, conditioning, levels, options: TrainingOptions, generator):
        """The UNet's ε or v for latents (B, 4, H, W), with add_time_ids from diffusers' _get_add_time_ids."""
        import torch
        from diffusers import StableDiffusionXLPipeline

        pooled = prompt_embeds["pooled_prompt_embeds"]
        owner = SimpleNamespace(unet=denoiser)  # _get_add_time_ids reads only the UNet (and checks its sizes)
        time_ids = torch.cat(
            [
                StableDiffusionXLPipeline._get_add_time_ids(
                    owner, tuple(row[0:2]), tuple(row[2:4]), tuple(row[4:6]), dtype=pooled.dtype, text_encoder_projection_dim=pooled.shape[-1]
                )
                for row in conditioning["add_time_ids"].tolist()
            ]
        ).to(noisy_latents.device)
        return denoiser(
            noisy_latents,
            levels.to(noisy_latents.device),
            encoder_hidden_states=prompt_embeds["prompt_embeds"],
            added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids},
            return_dict=False,
        )[0]


    # -- rendering ------------------------------------------------------------------------------------------

    def guidance(self, options: TrainingOptions) -> Guidance:
        if options.validation_noise_scheduler not in (None, *VALIDATION_SCHEDULERS):
            raise ConfigError(
                f"validation_noise_scheduler '{options.validation_noise_scheduler}' is not an SDXL scheduler lyco renders with; "
                f"choose one of {', '.join(VALIDATION_SCHEDULERS)} (or remove it for SimpleTuner's default, ddim)"
            )
        if options.validation_guidance_real != 1.0:
            raise ConfigError(
                f"validation_guidance_real {options.validation_guidance_real:g} is FLUX's real CFG; SDXL's classifier-free "
                "guidance is validation_guidance: remove validation_guidance_real"
            )
        scale = components.validation_guidance(options)
        if scale <= 1:
            return Guidance(False, "no CFG")
        rescale = f", rescaled {options.validation_guidance_rescale:g}" if options.validation_guidance_rescale else ""
        return Guidance(True, f"CFG {scale:g} against the negative prompt{rescale}")

    def validation_scheduler(self, options: TrainingOptions):
        """``validation_noise_scheduler`` (default ddim) from the pipeline's scheduler config, as SimpleTuner builds it."""
        import diffusers

        root = self.model_root(options)
        config = diffusers.DDIMScheduler.load_config(root, subfolder="scheduler", revision=options.revision)
        extra = {"prediction_type": options.prediction_type} if options.prediction_type else {}
        if options.rescale_betas_zero_snr:
            extra["rescale_betas_zero_snr"] = True
        kind = getattr(diffusers, VALIDATION_SCHEDULERS[options.validation_noise_scheduler or "ddim"])
        return kind.from_config(config, timestep_spacing=options.inference_scheduler_timestep_spacing, **extra)

    @components.loads_model
    def pipeline(self, options: TrainingOptions, denoiser, vae):
        from diffusers import StableDiffusionXLPipeline

        return StableDiffusionXLPipeline(
            vae=vae, text_encoder=None, text_encoder_2=None, tokenizer=None, tokenizer_2=None, unet=denoiser,
            scheduler=self.validation_scheduler(options), add_watermarker=False,
        )

    def pipeline_inputs(self, options: TrainingOptions, prompt_embeds, negative_embeds):
        inputs = {
            "prompt_embeds": prompt_embeds["prompt_embeds"], "pooled_prompt_embeds": prompt_embeds["pooled_prompt_embeds"],
            "guidance_scale": components.validation_guidance(options), "guidance_rescale": options.validation_guidance_rescale,
        }
        if self.guidance(options).negative_prompt:
            inputs.update(
                negative_prompt_embeds=negative_embeds["prompt_embeds"], negative_pooled_prompt_embeds=negative_embeds["pooled_prompt_embeds"]
            )
        return inputs


# -- helpers ------------------------------------------------------------------------------------------------

# SimpleTuner's validation_noise_scheduler choices for SDXL and diffusers' class of each (perflow has none).
VALIDATION_SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler-a": "EulerAncestralDiscreteScheduler",
    "unipc": "UniPCMultistepScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
}


def check_timestep_bias(options: TrainingOptions) -> None:
    """SimpleTuner's checks in generate_timestep_weights, before anything is loaded."""
    if options.timestep_bias_strategy in (None, "none"):
        return
    if options.timestep_bias_multiplier <= 0:
        raise ConfigError(
            "timestep_bias_multiplier must be above 0 (SimpleTuner refuses it too); to turn the bias off, set "
            "timestep_bias_strategy to \"none\""
        )
    if options.timestep_bias_strategy == "range" and not 0 <= options.timestep_bias_begin < options.timestep_bias_end <= 1000:
        raise ConfigError(
            f"timestep_bias_begin {options.timestep_bias_begin} and timestep_bias_end {options.timestep_bias_end}: the range "
            "strategy needs 0 <= begin < end <= 1000"
        )
    if not 0.0 < options.timestep_bias_portion <= 1.0:
        raise ConfigError(f"timestep_bias_portion must be in (0, 1], got {options.timestep_bias_portion}")


def timestep_weights(options: TrainingOptions, total: int):
    """SimpleTuner's generate_timestep_weights: uniform, or ``timestep_bias_multiplier`` on the earlier, later
    or a range of timesteps."""
    import torch

    weights = torch.ones(total)
    strategy = options.timestep_bias_strategy
    if strategy in (None, "none"):
        return weights
    count = int(options.timestep_bias_portion * total)
    if strategy == "later":
        chosen = slice(total - count, None)
    elif strategy == "earlier":
        chosen = slice(0, count)
    else:
        chosen = slice(options.timestep_bias_begin, options.timestep_bias_end)
    weights[chosen] *= options.timestep_bias_multiplier
    return weights / weights.sum()
