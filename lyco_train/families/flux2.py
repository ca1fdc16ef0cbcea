"""FLUX.2: ``Flux2Transformer2DModel`` denoiser, ``AutoencoderKLFlux2`` latents; Qwen3 prompts for [klein],
Mistral 3 prompts for [dev].

The math follows diffusers' ``Flux2KleinPipeline`` and ``Flux2Pipeline``. [klein]: prompts go through the
chat template with thinking off and are padded to 512 tokens; the prompt embedding is Qwen3's hidden states
9, 18 and 27 stacked on the feature axis. [dev]: diffusers' own ``_get_mistral_3_small_prompt_embeds``
(FLUX.2's system message, hidden states 10, 20 and 30 of Mistral 3, 512 tokens). Both: latents are the
VAE mode, pixel-shuffled 2×2 (C → 4C, H/2, W/2) and normalised with the VAE's batch-norm statistics;
the transformer sees them packed as tokens (B, H·W, 4C) with position ids (t, y, x, l) = (0, y, x, 0) for
the image and (0, 0, 0, i) for the text, and the timestep σ in [0, 1].
Klein has no guidance embedding; a transformer that has one (dev) gets ``flux_guidance_*``.

Rendering (validation, ``lyco sample``) uses diffusers' ``Flux2KleinPipeline`` / ``Flux2Pipeline`` with the
prompt embeddings. [klein] is guided as SimpleTuner guides it (helpers/models/flux2/model.py): with
``validation_guidance_real`` at 1.0, ``validation_guidance`` (7.5) becomes the real CFG scale against the
negative prompt, from step ``validation_no_cfg_until_timestep`` (2) on; a step-distilled [klein] folder
(``is_distilled``) takes no CFG. [dev] is guided by its guidance embedding (``validation_guidance``); its
pipeline has no negative prompt.

The flavour names and the default flavour are SimpleTuner's (``lyco_lint.knowledge.families``); the hub
id of each flavour is this module's. Torch, diffusers and transformers are imported inside the methods that
need them, so the data plan stays light.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

from ..config import ConfigError
from ..options import TrainingOptions, torch_dtype
from . import components
from .base import Guidance
from .mixins import PipelinePaths, RectifiedFlow

HUB_IDS = {
    "klein-4b": "black-forest-labs/FLUX.2-klein-base-4B",
    "klein-9b": "black-forest-labs/FLUX.2-klein-base-9B",
    "dev": "black-forest-labs/FLUX.2-dev",
}
KLEIN_TEXT_ENCODER_LAYERS = (9, 18, 27)  # Flux2KleinPipeline.encode_prompt(text_encoder_out_layers=...)
DEV_TEXT_ENCODER_LAYERS = (10, 20, 30)  # Flux2Pipeline.encode_prompt(text_encoder_out_layers=...)
MAX_SEQUENCE_LENGTH = 512  # Flux2KleinPipeline.tokenizer_max_length
DEFAULT_PIXEL_MULTIPLE = 16  # VAE 8x and the 2x2 pixel shuffle


class Flux2(PipelinePaths, RectifiedFlow):
    """The FLUX.2 family ([klein] 4B and 9B, [dev]); implements :class:`~.base.Family` (flavour, model_root and
    latent_identity from :class:`~.mixins.PipelinePaths`, the flow objective's noise, target, weights and
    timesteps from :class:`~.mixins.RectifiedFlow`)."""

    name = "flux2"
    hub_ids = HUB_IDS

    # -- identity, checks (no torch) -------------------------------------------------------------------------

    def check(self, options: TrainingOptions) -> None:
        components.check_flavour(self.name, self.flavour(options))
        if options.flow_schedule_auto_shift:
            raise ConfigError("flow_schedule_auto_shift is not implemented for flux2; remove it and set flow_schedule_shift (SimpleTuner's default is 3.0)")
        components.check_flow_prediction_type(self.name, options)
        if options.tokenizer_max_length is not None and options.tokenizer_max_length < 1:
            raise ConfigError(f"tokenizer_max_length must be positive, got {options.tokenizer_max_length}")
        folder = {"transformer": components.denoiser_class(self.name), "vae": "AutoencoderKLFlux2", "text_encoder": None, "tokenizer": None}
        components.check_pipeline_folders(self.name, options, self.model_root(options), folder)

    def pixel_multiple(self, options: TrainingOptions) -> int:
        """The VAE's downscale × 2 (the pixel shuffle)."""
        vae_config = components.local_json(self.model_root(options), "vae", "config.json")
        if vae_config is None:
            return DEFAULT_PIXEL_MULTIPLE
        return 2 ** (len(vae_config.get("block_out_channels", (0, 0, 0, 0))) - 1) * 2

    def text_identity(self, options: TrainingOptions) -> str:
        parts = (
            "flux2-dev-mistral3" if self._uses_mistral(options) else "flux2-klein-qwen3",
            self._component_identity(options, "text_encoder"),
            self._component_identity(options, "tokenizer"),
            f"layers={','.join(map(str, self._text_encoder_layers(options)))}",
            f"max_length={max_sequence_length(options)}",
            f"dtype={options.weight_dtype_name}",
        )
        return "|".join(parts)

    def nan_hazards(self, lycoris_config: dict[str, Any], adapted: Sequence[str]) -> list[str]:
        return []

    def _uses_mistral(self, options: TrainingOptions) -> bool:
        """FLUX.2 [dev] encodes prompts with Mistral 3; the [klein] flavours with Qwen3."""
        return self.flavour(options) == "dev"

    def _text_encoder_layers(self, options: TrainingOptions) -> tuple[int, ...]:
        return DEV_TEXT_ENCODER_LAYERS if self._uses_mistral(options) else KLEIN_TEXT_ENCODER_LAYERS

    # -- loading (torch from here on) ----------------------------------------------------------------------

    @components.loads_model
    def load_denoiser(self, options: TrainingOptions, dtype, device):
        from diffusers import Flux2Transformer2DModel

        root = options.pretrained_transformer_model_name_or_path or self.model_root(options)
        subfolder = components.transformer_subfolder(options)
        return Flux2Transformer2DModel.from_pretrained(
            root, subfolder=subfolder, torch_dtype=dtype, revision=options.revision, variant=options.variant
        ).to(device)

    @components.loads_model
    def load_vae(self, options: TrainingOptions, device):
        from diffusers import AutoencoderKLFlux2

        dtype = torch_dtype(options.vae_dtype_name)
        vae = AutoencoderKLFlux2.from_pretrained(
            self.model_root(options), subfolder="vae", torch_dtype=dtype, revision=options.revision, variant=options.variant
        )
        return vae.requires_grad_(False).eval().to(device)

    @components.loads_model
    def load_text_encoder(self, options: TrainingOptions, device):
        """(tokenizer or processor, text model) in the training dtype: Qwen3 for [klein], Mistral 3 for [dev]."""
        root, revision = self.model_root(options), options.revision
        dtype = torch_dtype(options.weight_dtype_name)
        common = {"subfolder": "text_encoder", "revision": revision, "variant": options.variant, "dtype": dtype}
        if self._uses_mistral(options):
            from transformers import AutoProcessor, Mistral3ForConditionalGeneration

            tokenizer = AutoProcessor.from_pretrained(root, subfolder="tokenizer", revision=revision)
            model = Mistral3ForConditionalGeneration.from_pretrained(root, **common)
            layers = model.config.text_config.num_hidden_layers
        else:
            from transformers import AutoTokenizer, Qwen3ForCausalLM

            tokenizer = AutoTokenizer.from_pretrained(root, subfolder="tokenizer", revision=revision)
            model = Qwen3ForCausalLM.from_pretrained(root, **common)
            layers = model.config.num_hidden_layers
        wanted = self._text_encoder_layers(options)
        if layers < max(wanted):
            flavour = self.flavour(options)
            raise ConfigError(
                f"the text encoder has {layers} layers but FLUX.2 {flavour} reads hidden states "
                f"{wanted}; does pretrained_model_name_or_path hold a {flavour} model?"
            )
        return tokenizer, model.requires_grad_(False).eval().to(device)

    # -- encoding ------------------------------------------------------------------------------------------

    def encode_images(self, vae, pixels):
        """Pixels (B, 3, H, W) in [-1, 1] -> normalised, pixel-shuffled latents (B, 4C, H/16, W/16), float32."""
        latents = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
        latents = patchify(latents)
        mean = vae.bn.running_mean.view(1, -1, 1, 1).to(latents)
        std = (vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps).sqrt().to(latents)
        return ((latents - mean) / std).float()

    def encode_prompts(self, text_encoder, prompts: list[str], options: TrainingOptions):
        """Prompts -> {"prompt_embeds": (B, L, 3·hidden)}, as the FLUX.2 pipelines compute them."""
        import torch

        tokenizer, model = text_encoder
        if self._uses_mistral(options):
            from diffusers.pipelines.flux2.pipeline_flux2 import Flux2Pipeline
            from diffusers.pipelines.flux2.system_messages import SYSTEM_MESSAGE

            with torch.no_grad():
                embeds = Flux2Pipeline._get_mistral_3_small_prompt_embeds(
                    model, tokenizer, prompts, dtype=model.dtype, device=model.device,
                    max_sequence_length=max_sequence_length(options), system_message=SYSTEM_MESSAGE,
                    hidden_states_layers=DEV_TEXT_ENCODER_LAYERS,
                )
            return {"prompt_embeds": embeds}
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True, enable_thinking=False
            )
            for prompt in prompts
        ]
        inputs = tokenizer(texts, return_tensors="pt", padding="max_length", truncation=True, max_length=max_sequence_length(options))
        with torch.no_grad():
            output = model(
                input_ids=inputs["input_ids"].to(model.device),
                attention_mask=inputs["attention_mask"].to(model.device),
                output_hidden_states=True,
                use_cache=False,
            )
        stacked = torch.stack([output.hidden_states[k] for k in KLEIN_TEXT_ENCODER_LAYERS], dim=1)  # (B, 3, L, D)
        batch, layers, length, hidden = stacked.shape
        return {"prompt_embeds": stacked.permute(0, 2, 1, 3).reshape(batch, length, layers * hidden)}

    def sample_conditioning(self, samples: Sequence[Any], options: TrainingOptions) -> dict:
        return {}  # FLUX.2 takes no per-sample conditioning: sizes come from the latents' shape

    # -- the objective: rectified flow (flow.py; the rest is RectifiedFlow's) -----------------------------

    def sample_noise_levels(self, options: TrainingOptions, latents, generator):
        from .. import flow

        return flow.sample_sigmas(options, latents.shape[0], generator)

    def predict(self, denoiser, noisy_latents, prompt_embeds, conditioning, levels, options: TrainingOptions, generator):
        """The transformer's velocity for latents (B, C, H, W); returns the same shape."""
        import torch

        from ..flow import guidance

        embeds = prompt_embeds["prompt_embeds"]
        batch, channels, height, width = noisy_latents.shape
        tokens = noisy_latents.reshape(batch, channels, height * width).permute(0, 2, 1)
        device = noisy_latents.device
        img_ids = torch.cartesian_prod(torch.arange(1), torch.arange(height), torch.arange(width), torch.arange(1)).to(device)
        txt_ids = torch.cartesian_prod(torch.arange(1), torch.arange(1), torch.arange(1), torch.arange(embeds.shape[1])).to(device)
        output = denoiser(
            hidden_states=tokens,
            encoder_hidden_states=embeds,
            timestep=levels.to(device),
            img_ids=img_ids.unsqueeze(0).expand(batch, -1, -1),
            txt_ids=txt_ids.unsqueeze(0).expand(batch, -1, -1),
            guidance=guidance(denoiser, options, batch, generator),
            return_dict=False,
        )[0]
        return output.permute(0, 2, 1).reshape(batch, channels, height, width)


    # -- rendering ------------------------------------------------------------------------------------------

    def guidance(self, options: TrainingOptions) -> Guidance:
        components.check_flow_rendering(self.name, options)
        if self._uses_mistral(options):
            if options.validation_guidance_real > 1:
                raise ConfigError(
                    f"validation_guidance_real {options.validation_guidance_real:g}: diffusers' Flux2Pipeline (FLUX.2 [dev]) has no "
                    "negative prompt, so no real CFG; FLUX.2 [dev] is guided by its guidance embedding (validation_guidance): "
                    "remove validation_guidance_real"
                )
            return Guidance(False, f"guidance embedding {components.validation_guidance(options):g}")
        scale = klein_cfg_scale(options)
        if self._distilled(options) or scale <= 1:
            return Guidance(False, "no CFG (a step-distilled [klein] model)" if scale > 1 else "no CFG")
        start = max(0, options.validation_no_cfg_until_timestep)
        return Guidance(True, f"CFG {scale:g} against the negative prompt" + (f" from step {start}" if start else ""))

    def _distilled(self, options: TrainingOptions) -> bool:
        index = components.local_json(self.model_root(options), "", "model_index.json") or {}
        return bool(index.get("is_distilled", False))

    @components.loads_model
    def pipeline(self, options: TrainingOptions, denoiser, vae):
        scheduler = components.flow_scheduler(options, self.model_root(options))
        if self._uses_mistral(options):
            from diffusers import Flux2Pipeline

            return Flux2Pipeline(scheduler=scheduler, vae=vae, text_encoder=None, tokenizer=None, transformer=denoiser)
        pipeline = klein_pipeline_class()(
            scheduler=scheduler, vae=vae, text_encoder=None, tokenizer=None, transformer=denoiser, is_distilled=self._distilled(options)
        )
        pipeline.cfg_from_step = max(0, options.validation_no_cfg_until_timestep)
        return pipeline

    def pipeline_inputs(self, options: TrainingOptions, prompt_embeds, negative_embeds):
        if self._uses_mistral(options):
            return {"prompt_embeds": prompt_embeds["prompt_embeds"], "guidance_scale": components.validation_guidance(options)}
        inputs = {"prompt_embeds": prompt_embeds["prompt_embeds"], "guidance_scale": klein_cfg_scale(options)}
        if self.guidance(options).negative_prompt:
            inputs["negative_prompt_embeds"] = negative_embeds["prompt_embeds"]
        else:
            inputs["guidance_scale"] = 1.0
        return inputs


# -- helpers ------------------------------------------------------------------------------------------------


def klein_cfg_scale(options: TrainingOptions) -> float:
    """[klein]'s real CFG scale: ``validation_guidance_real`` when above 1, else ``validation_guidance`` (SimpleTuner
    moves it there, since [klein] has no guidance embedding)."""
    return options.validation_guidance_real if options.validation_guidance_real > 1 else components.validation_guidance(options)


@functools.lru_cache(maxsize=1)
def klein_pipeline_class():
    """diffusers' Flux2KleinPipeline with SimpleTuner's ``validation_no_cfg_until_timestep``: no negative-prompt
    pass before step ``cfg_from_step`` (the scheduler's step index; the negative prompt is still prepared before
    the loop). Used to render only, never saved."""
    from diffusers import Flux2KleinPipeline

    class KleinPipeline(Flux2KleinPipeline):
        cfg_from_step = 0

        @property
        def do_classifier_free_guidance(self) -> bool:
            if not super().do_classifier_free_guidance:
                return False
            if self._current_timestep is None:  # before the denoising loop: prepare the negative prompt
                return True
            return (self.scheduler.step_index or 0) >= self.cfg_from_step

    return KleinPipeline



def max_sequence_length(options: TrainingOptions) -> int:
    return options.tokenizer_max_length or MAX_SEQUENCE_LENGTH


def patchify(latents):
    """The 2×2 pixel shuffle: (B, C, H, W) -> (B, 4C, H/2, W/2)."""
    b, c, h, w = latents.shape
    latents = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return latents.reshape(b, c * 4, h // 2, w // 2)
