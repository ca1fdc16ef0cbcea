"""Regenerate ``lyco_lint/data/family_modules.json``, the shipped family module index.

LyCORIS selects the modules it wraps by *class name* (``target_module`` entries such as
``"Attention"`` or ``"FeedForward"``).  A class name that never occurs in the model silently
matches nothing, so the run trains an empty adapter.  The linter has to know which class names
each model family really contains, but it must stay light: it may not import torch or diffusers,
let alone build a multi-billion-parameter model.  This tool does the heavy part once, offline:
for every SimpleTuner model family whose model class exists in diffusers, it builds the model
on the meta device from the ``config.json`` of released checkpoints (no weights, no memory,
no network), collects ``type(module).__name__`` over ``model.named_modules()`` and writes the
sorted sets to a JSON file that ships with the linter.

Run it whenever the pinned diffusers version changes::

    python -m lyco_lint.tools.build_family_index [--family NAME ...] [--output PATH]

Family names are exactly SimpleTuner's ``--model_family`` choices (the keys of
``shared/reference/simpletuner_model_families.json``).  Families whose model class has no
counterpart in diffusers are absent from the index on purpose; the linter reports them as
"not covered" instead of guessing.  Families absent for that reason at diffusers 0.42.1:
ace_step (diffusers only has the differently built ``AceStepTransformer1DModel``), anima,
boogu_image, heartmula, ideogram (diffusers' ``Ideogram4Transformer2DModel`` is not the class
SimpleTuner trains), infinitetalk, longcat_video, mageflow, wan_s2v, z_image_omni and zlab_i1.

SimpleTuner trains its own copy or subclass of every covered class (``vendored: true`` in the
reference file); the index describes the same-named diffusers class, i.e. the model a diffusers
user of the family builds.  The UNet families (sd1x, sdxl, kolors, deepfloyd) train
``FlowMapUNet2DConditionModel``, a SimpleTuner subclass of ``UNet2DConditionModel`` whose optional
flow-map conditioning only adds a second ``TimestepEmbedding``, so for them the index differs
from SimpleTuner's model only in the root class name.  Vendored transformer bodies can differ
more: SimpleTuner's Flux copy, for one, still builds diffusers' generic ``Attention`` where
diffusers now has ``FluxAttention``, and holds its blocks in its own ``MutableModuleList``.

This module lives under ``lyco_lint`` only so that ``python -m`` finds it; the linter itself
never imports it, and torch/diffusers are imported inside functions so that importing this
module (for ``FAMILY_CONFIGS``) stays cheap.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

GENERATED_BY = "python -m lyco_lint.tools.build_family_index"
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "data" / "family_modules.json"

# Shared by Flux, Chroma and LongCat-Image style double/single-stream MMDiTs.
_FLUX_ROPE = [16, 56, 56]

# HiDream-I1 feeds one Llama hidden state to each of its 16 double + 32 single blocks.
_HIDREAM_LLAMA_LAYERS = list(range(32)) + [31] * 16

# Phi-3 "su" rope factors of OmniGen-v1 (as passed by diffusers' convert_omnigen_to_diffusers.py).
_OMNIGEN_ROPE_SCALING = {
    "long_factor": [
        1.0299999713897705, 1.0499999523162842, 1.0499999523162842, 1.0799999237060547,
        1.2299998998641968, 1.2299998998641968, 1.2999999523162842, 1.4499999284744263,
        1.5999999046325684, 1.6499998569488525, 1.8999998569488525, 2.859999895095825,
        3.68999981880188, 5.419999599456787, 5.489999771118164, 5.489999771118164,
        9.09000015258789, 11.579999923706055, 15.65999984741211, 15.769999504089355,
        15.789999961853027, 18.360000610351562, 21.989999771118164, 23.079999923706055,
        30.009998321533203, 32.35000228881836, 32.590003967285156, 35.56000518798828,
        39.95000457763672, 53.840003967285156, 56.20000457763672, 57.95000457763672,
        59.29000473022461, 59.77000427246094, 59.920005798339844, 61.190006256103516,
        61.96000671386719, 62.50000762939453, 63.3700065612793, 63.48000717163086,
        63.48000717163086, 63.66000747680664, 63.850006103515625, 64.08000946044922,
        64.760009765625, 64.80001068115234, 64.81001281738281, 64.81001281738281,
    ],
    "short_factor": [
        1.05, 1.05, 1.05, 1.1, 1.1, 1.1, 1.2500000000000002, 1.2500000000000002,
        1.4000000000000004, 1.4500000000000004, 1.5500000000000005, 1.8500000000000008,
        1.9000000000000008, 2.000000000000001, 2.000000000000001, 2.000000000000001,
        2.000000000000001, 2.000000000000001, 2.000000000000001, 2.000000000000001,
        2.000000000000001, 2.000000000000001, 2.000000000000001, 2.000000000000001,
        2.000000000000001, 2.000000000000001, 2.000000000000001, 2.000000000000001,
        2.000000000000001, 2.000000000000001, 2.000000000000001, 2.000000000000001,
        2.1000000000000005, 2.1000000000000005, 2.2, 2.3499999999999996,
        2.3499999999999996, 2.3499999999999996, 2.3499999999999996, 2.3999999999999995,
        2.3999999999999995, 2.6499999999999986, 2.6999999999999984, 2.8999999999999977,
        2.9499999999999975, 3.049999999999997, 3.049999999999997, 3.049999999999997,
    ],
    "type": "su",
}

# LTX-2.x share everything but the attention gating / prompt-conditioning switches
# (values from diffusers' scripts/convert_ltx2_to_diffusers.py).
_LTX2_COMMON = {
    "in_channels": 128, "out_channels": 128, "patch_size": 1, "patch_size_t": 1,
    "num_attention_heads": 32, "attention_head_dim": 128, "cross_attention_dim": 4096,
    "vae_scale_factors": [8, 32, 32], "pos_embed_max_pos": 20,
    "base_height": 2048, "base_width": 2048,
    "audio_in_channels": 128, "audio_out_channels": 128, "audio_patch_size": 1,
    "audio_patch_size_t": 1, "audio_num_attention_heads": 32, "audio_attention_head_dim": 64,
    "audio_cross_attention_dim": 2048, "audio_scale_factor": 4, "audio_pos_embed_max_pos": 20,
    "audio_sampling_rate": 16000, "audio_hop_length": 160,
    "num_layers": 48, "activation_fn": "gelu-approximate", "qk_norm": "rms_norm_across_heads",
    "norm_elementwise_affine": False, "norm_eps": 1e-6, "caption_channels": 3840,
    "attention_bias": True, "attention_out_bias": True, "rope_theta": 10000.0,
    "rope_double_precision": True, "causal_offset": 1, "timestep_scale_multiplier": 1000,
    "cross_attn_timestep_scale_multiplier": 1000, "rope_type": "split",
}
_LTX2_GATED = {
    "gated_attn": True, "cross_attn_mod": True, "audio_gated_attn": True,
    "audio_cross_attn_mod": True, "use_prompt_embeddings": False, "perturbed_attn": True,
}

# Family -> diffusers model class and representative released configs, keyed by the SimpleTuner
# flavour they stand for.  Flavours that only swap weights (fine-tunes, distillations, edit
# variants with the same config) are not repeated; each distinct released architecture is, so
# that the union covers every structural switch (guidance embedding, image branch, QK norm,
# gated attention, ...) a family's releases turn on.  Widths and depths do not change the class
# set, but the values are still the released config.json ones (or those of the diffusers
# conversion script that wrote them) so that each entry stays checkable against its source.
FAMILY_CONFIGS: dict[str, dict] = {
    "auraflow": {
        "model_class": "AuraFlowTransformer2DModel",
        "configs": {
            "v0.3": {
                "sample_size": 64, "patch_size": 2, "in_channels": 4, "out_channels": 4,
                "num_mmdit_layers": 4, "num_single_dit_layers": 32, "attention_head_dim": 256,
                "num_attention_heads": 12, "joint_attention_dim": 2048,
                "caption_projection_dim": 3072, "pos_embed_max_size": 9216,
            },
        },
    },
    "chroma": {
        "model_class": "ChromaTransformer2DModel",
        "configs": {
            "base": {
                "patch_size": 1, "in_channels": 64, "out_channels": None, "num_layers": 19,
                "num_single_layers": 38, "attention_head_dim": 128, "num_attention_heads": 24,
                "joint_attention_dim": 4096, "axes_dims_rope": _FLUX_ROPE,
                "approximator_num_channels": 64, "approximator_hidden_dim": 5120,
                "approximator_layers": 5,
            },
        },
    },
    "cosmos": {
        # Cosmos-Predict2 Text2Image (diffusers' scripts/convert_cosmos_to_diffusers.py).
        "model_class": "CosmosTransformer3DModel",
        "configs": {
            "2b": {
                "in_channels": 16, "out_channels": 16, "num_attention_heads": 16,
                "attention_head_dim": 128, "num_layers": 28, "mlp_ratio": 4.0,
                "text_embed_dim": 1024, "adaln_lora_dim": 256, "max_size": [128, 240, 240],
                "patch_size": [1, 2, 2], "rope_scale": [1.0, 4.0, 4.0],
                "concat_padding_mask": True, "extra_pos_embed_type": None,
            },
            "14b": {
                "in_channels": 16, "out_channels": 16, "num_attention_heads": 40,
                "attention_head_dim": 128, "num_layers": 36, "mlp_ratio": 4.0,
                "text_embed_dim": 1024, "adaln_lora_dim": 256, "max_size": [128, 240, 240],
                "patch_size": [1, 2, 2], "rope_scale": [1.0, 4.0, 4.0],
                "concat_padding_mask": True, "extra_pos_embed_type": None,
            },
        },
    },
    "cosmos3": {
        # Cosmos3-Nano as diffusers' defaults describe it (36 silu layers, matching SimpleTuner's
        # block-swap presets); Edge/Super were not available offline to check.
        "model_class": "Cosmos3OmniTransformer",
        "configs": {
            "nano": {
                "attention_bias": False, "attention_dropout": 0.0, "head_dim": 128,
                "hidden_size": 4096, "intermediate_size": 12288, "base_fps": 24,
                "enable_fps_modulation": True, "latent_channel": 48,
                "unified_3d_mrope_reset_spatial_ids": True,
                "unified_3d_mrope_temporal_modality_margin": 15000, "latent_patch_size": 2,
                "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8,
                "patch_latent_dim": 192, "rms_norm_eps": 1e-6, "rope_scaling": None,
                "rope_theta": 5000000.0, "action_dim": None, "action_gen": False,
                "num_embodiment_domains": 32, "sound_dim": None, "sound_gen": False,
                "sound_latent_fps": 25.0, "timestep_scale": 0.001, "vocab_size": 151936,
                "hidden_act": "silu", "qk_norm_for_text": True, "use_und_k_norm_for_gen": False,
            },
        },
    },
    "deepfloyd": {
        # IF-I-XL, laid out as diffusers' scripts/convert_if.py builds it; the stage II
        # upscalers use the same block types.
        "model_class": "UNet2DConditionModel",
        "configs": {
            "i-xlarge-4.3b": {
                "sample_size": 64, "in_channels": 3, "out_channels": 6,
                "down_block_types": [
                    "ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D",
                    "SimpleCrossAttnDownBlock2D", "SimpleCrossAttnDownBlock2D",
                ],
                "mid_block_type": "UNetMidBlock2DSimpleCrossAttn",
                "up_block_types": [
                    "SimpleCrossAttnUpBlock2D", "SimpleCrossAttnUpBlock2D",
                    "SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D",
                ],
                "block_out_channels": [512, 1024, 1536, 2048], "layers_per_block": 3,
                "attention_head_dim": 64, "cross_attention_dim": 2048,
                "cross_attention_norm": "group_norm", "encoder_hid_dim": 4096,
                "encoder_hid_dim_type": "text_proj", "addition_embed_type": "text",
                "addition_embed_type_num_heads": 64, "act_fn": "gelu",
                "resnet_time_scale_shift": "scale_shift", "class_embed_type": None,
                "use_linear_projection": False, "upcast_attention": False,
            },
        },
    },
    "ernie": {
        # ERNIE-Image as diffusers' defaults describe it (released config.json not checked offline).
        "model_class": "ErnieImageTransformer2DModel",
        "configs": {
            "base": {
                "hidden_size": 3072, "num_attention_heads": 24, "num_layers": 24,
                "ffn_hidden_size": 8192, "in_channels": 128, "out_channels": 128,
                "patch_size": 1, "text_in_dim": 2560, "rope_theta": 256,
                "rope_axes_dim": [32, 48, 48], "eps": 1e-6, "qk_layernorm": True,
            },
        },
    },
    "flux": {
        "model_class": "FluxTransformer2DModel",
        "configs": {
            "dev": {
                "patch_size": 1, "in_channels": 64, "out_channels": None, "num_layers": 19,
                "num_single_layers": 38, "attention_head_dim": 128, "num_attention_heads": 24,
                "joint_attention_dim": 4096, "pooled_projection_dim": 768,
                "guidance_embeds": True, "axes_dims_rope": _FLUX_ROPE,
            },
            "schnell": {
                "patch_size": 1, "in_channels": 64, "out_channels": None, "num_layers": 19,
                "num_single_layers": 38, "attention_head_dim": 128, "num_attention_heads": 24,
                "joint_attention_dim": 4096, "pooled_projection_dim": 768,
                "guidance_embeds": False, "axes_dims_rope": _FLUX_ROPE,
            },
        },
    },
    "flux2": {
        # diffusers' scripts/convert_flux2_to_diffusers.py (FLUX.2-dev, FLUX.2-klein 4B/9B).
        "model_class": "Flux2Transformer2DModel",
        "configs": {
            "klein-4b": {
                "patch_size": 1, "in_channels": 128, "num_layers": 5, "num_single_layers": 20,
                "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 7680,
                "timestep_guidance_channels": 256, "mlp_ratio": 3.0,
                "axes_dims_rope": [32, 32, 32, 32], "rope_theta": 2000, "eps": 1e-6,
                "guidance_embeds": False,
            },
            "klein-9b": {
                "patch_size": 1, "in_channels": 128, "num_layers": 8, "num_single_layers": 24,
                "attention_head_dim": 128, "num_attention_heads": 32, "joint_attention_dim": 12288,
                "timestep_guidance_channels": 256, "mlp_ratio": 3.0,
                "axes_dims_rope": [32, 32, 32, 32], "rope_theta": 2000, "eps": 1e-6,
                "guidance_embeds": False,
            },
            "dev": {
                "patch_size": 1, "in_channels": 128, "num_layers": 8, "num_single_layers": 48,
                "attention_head_dim": 128, "num_attention_heads": 48, "joint_attention_dim": 15360,
                "timestep_guidance_channels": 256, "mlp_ratio": 3.0,
                "axes_dims_rope": [32, 32, 32, 32], "rope_theta": 2000, "eps": 1e-6,
                "guidance_embeds": True,
            },
        },
    },
    "hidream": {
        # HiDream-I1 Full; Dev and Fast are distillations with the same config.
        "model_class": "HiDreamImageTransformer2DModel",
        "configs": {
            "full": {
                "patch_size": 2, "in_channels": 16, "out_channels": 16, "num_layers": 16,
                "num_single_layers": 32, "attention_head_dim": 128, "num_attention_heads": 20,
                "caption_channels": [4096, 4096], "text_emb_dim": 2048,
                "num_routed_experts": 4, "num_activated_experts": 2,
                "axes_dims_rope": [64, 32, 32], "max_resolution": [128, 128],
                "llama_layers": _HIDREAM_LLAMA_LAYERS,
            },
        },
    },
    "hunyuanvideo": {
        # SimpleTuner's "hunyuanvideo" family is HunyuanVideo 1.5 (480p target_size 640).
        "model_class": "HunyuanVideo15Transformer3DModel",
        "configs": {
            "t2v-480p": {
                "in_channels": 65, "out_channels": 32, "num_attention_heads": 16,
                "attention_head_dim": 128, "num_layers": 54, "num_refiner_layers": 2,
                "mlp_ratio": 4.0, "patch_size": 1, "patch_size_t": 1, "qk_norm": "rms_norm",
                "text_embed_dim": 3584, "text_embed_2_dim": 1472, "image_embed_dim": 1152,
                "rope_theta": 256.0, "rope_axes_dim": [16, 56, 56], "target_size": 640,
                "task_type": "t2v", "use_meanflow": False,
            },
            "i2v-480p": {
                "in_channels": 65, "out_channels": 32, "num_attention_heads": 16,
                "attention_head_dim": 128, "num_layers": 54, "num_refiner_layers": 2,
                "mlp_ratio": 4.0, "patch_size": 1, "patch_size_t": 1, "qk_norm": "rms_norm",
                "text_embed_dim": 3584, "text_embed_2_dim": 1472, "image_embed_dim": 1152,
                "rope_theta": 256.0, "rope_axes_dim": [16, 56, 56], "target_size": 640,
                "task_type": "i2v", "use_meanflow": False,
            },
        },
    },
    "kandinsky5_image": {
        # Kandinsky 5.0 Image Lite (sizes recalled, not checked offline): the video Lite blocks
        # without visual conditioning.
        "model_class": "Kandinsky5Transformer3DModel",
        "configs": {
            "t2i-lite-sft": {
                "in_visual_dim": 16, "out_visual_dim": 16, "in_text_dim": 3584,
                "in_text_dim2": 768, "time_dim": 512, "patch_size": [1, 2, 2],
                "model_dim": 2560, "ff_dim": 10240, "num_text_blocks": 2,
                "num_visual_blocks": 50, "axes_dims": [32, 48, 48], "visual_cond": False,
                "attention_type": "regular",
            },
        },
    },
    "kandinsky5_video": {
        # Kandinsky-5.0-T2V-Lite (5 s: full attention; 10 s: NABLA sparse attention).
        "model_class": "Kandinsky5Transformer3DModel",
        "configs": {
            "t2v-lite-sft-5s": {
                "in_visual_dim": 16, "out_visual_dim": 16, "in_text_dim": 3584,
                "in_text_dim2": 768, "time_dim": 512, "patch_size": [1, 2, 2],
                "model_dim": 1792, "ff_dim": 7168, "num_text_blocks": 2,
                "num_visual_blocks": 32, "axes_dims": [16, 24, 24], "visual_cond": True,
                "attention_type": "regular",
            },
            "t2v-lite-sft-10s": {
                "in_visual_dim": 16, "out_visual_dim": 16, "in_text_dim": 3584,
                "in_text_dim2": 768, "time_dim": 512, "patch_size": [1, 2, 2],
                "model_dim": 1792, "ff_dim": 7168, "num_text_blocks": 2,
                "num_visual_blocks": 32, "axes_dims": [16, 24, 24], "visual_cond": True,
                "attention_type": "nabla", "attention_causal": False,
                "attention_local": False, "attention_glob": False, "attention_window": 3,
                "attention_P": 0.9, "attention_wT": 11, "attention_wW": 3, "attention_wH": 3,
                "attention_add_sta": True, "attention_method": "topcdf",
            },
        },
    },
    "kolors": {
        # SDXL layout with a ChatGLM3 text projection (encoder_hid_dim) and a wider add-embedding.
        "model_class": "UNet2DConditionModel",
        "configs": {
            "1.0": {
                "sample_size": 128, "in_channels": 4, "out_channels": 4,
                "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                "block_out_channels": [320, 640, 1280], "layers_per_block": 2,
                "transformer_layers_per_block": [1, 2, 10], "attention_head_dim": [5, 10, 20],
                "cross_attention_dim": 2048, "use_linear_projection": True,
                "addition_embed_type": "text_time", "addition_time_embed_dim": 256,
                "projection_class_embeddings_input_dim": 5632, "encoder_hid_dim": 4096,
                "encoder_hid_dim_type": "text_proj", "act_fn": "silu", "norm_num_groups": 32,
                "flip_sin_to_cos": True, "freq_shift": 0,
            },
        },
    },
    "krea2": {
        # Krea 2 as diffusers' defaults describe it (no hub release to check against yet).
        "model_class": "Krea2Transformer2DModel",
        "configs": {
            "raw": {
                "in_channels": 64, "num_layers": 28, "attention_head_dim": 128,
                "num_attention_heads": 48, "num_key_value_heads": 12, "intermediate_size": 16384,
                "timestep_embed_dim": 256, "text_hidden_dim": 2560, "num_text_layers": 12,
                "text_num_attention_heads": 20, "text_num_key_value_heads": 20,
                "text_intermediate_size": 6912, "num_layerwise_text_blocks": 2,
                "num_refiner_text_blocks": 2, "axes_dims_rope": [32, 48, 48],
                "rope_theta": 1000.0, "norm_eps": 1e-5,
            },
        },
    },
    "longcat_image": {
        # LongCat-Image as diffusers' defaults describe it (released config.json not checked offline).
        "model_class": "LongCatImageTransformer2DModel",
        "configs": {
            "final": {
                "patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38,
                "attention_head_dim": 128, "num_attention_heads": 24,
                "joint_attention_dim": 3584, "pooled_projection_dim": 3584,
                "axes_dims_rope": _FLUX_ROPE,
            },
        },
    },
    "ltxvideo": {
        # LTX-Video 0.9.x 2B (0.9.0 and 0.9.5 share the transformer config).
        "model_class": "LTXVideoTransformer3DModel",
        "configs": {
            "0.9.5": {
                "in_channels": 128, "out_channels": 128, "patch_size": 1, "patch_size_t": 1,
                "num_attention_heads": 32, "attention_head_dim": 64, "cross_attention_dim": 2048,
                "num_layers": 28, "activation_fn": "gelu-approximate",
                "qk_norm": "rms_norm_across_heads", "norm_elementwise_affine": False,
                "norm_eps": 1e-6, "caption_channels": 4096, "attention_bias": True,
                "attention_out_bias": True,
            },
        },
    },
    "ltxvideo2": {
        "model_class": "LTX2VideoTransformer3DModel",
        "configs": {
            "dev": {
                **_LTX2_COMMON,
                "gated_attn": False, "cross_attn_mod": False, "audio_gated_attn": False,
                "audio_cross_attn_mod": False, "use_prompt_embeddings": True,
                "perturbed_attn": False,
            },
            "2.3-dev": {**_LTX2_COMMON, **_LTX2_GATED},
            "2.5-dev": {
                **_LTX2_COMMON, **_LTX2_GATED,
                "ff_bias": False, "use_keyframes_abs_pos_embedding": True,
            },
        },
    },
    "lumina2": {
        # Lumina-Image-2.0; Neta-Lumina is a fine-tune with the same config.
        "model_class": "Lumina2Transformer2DModel",
        "configs": {
            "2.0": {
                "sample_size": 128, "patch_size": 2, "in_channels": 16, "out_channels": None,
                "hidden_size": 2304, "num_layers": 26, "num_refiner_layers": 2,
                "num_attention_heads": 24, "num_kv_heads": 8, "multiple_of": 256,
                "ffn_dim_multiplier": None, "norm_eps": 1e-5, "scaling_factor": 1.0,
                "axes_dim_rope": [32, 32, 32], "axes_lens": [300, 512, 512],
                "cap_feat_dim": 2304,
            },
        },
    },
    "minimaxh3": {
        # MiniMax H3 as diffusers' defaults describe it (released config.json not checked offline).
        "model_class": "MiniMaxH3Transformer3DModel",
        "configs": {
            "fl2va": {
                "num_attention_heads": 56, "attention_head_dim": 128, "hidden_size": 5376,
                "num_layers": 50, "num_refiner_layers": 2, "ffn_dim": 14336, "in_channels": 24,
                "audio_in_channels": 32, "patch_size": [1, 2, 2], "text_dim": 5120,
                "freq_dim": 256, "time_embed_hidden_dim": 5376, "time_embed_dim": 2688,
                "rope_freq_dim": 16, "rope_theta": 10000.0, "norm_eps": 1e-5,
                "qk_norm_eps": 1e-5, "final_norm_eps": 1e-5,
            },
        },
    },
    "minimaxmusic": {
        # MiniMax Music 3 flow DiT; the conversion script builds it with the diffusers defaults.
        "model_class": "MiniMaxMusic3Transformer1DModel",
        "configs": {
            "music3": {
                "in_channels": 128, "condition_dim": 2048, "num_layers": 36,
                "num_attention_heads": 32, "attention_head_dim": 64, "ff_inner_dim": 8192,
                "rotary_dim": 32, "fourier_embedding_dim": 256,
            },
        },
    },
    "omnigen": {
        "model_class": "OmniGenTransformer2DModel",
        "configs": {
            "v1": {
                "in_channels": 4, "patch_size": 2, "hidden_size": 3072, "rms_norm_eps": 1e-5,
                "num_attention_heads": 32, "num_key_value_heads": 32, "intermediate_size": 8192,
                "num_layers": 32, "pad_token_id": 32000, "vocab_size": 32064,
                "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
                "rope_base": 10000, "rope_scaling": _OMNIGEN_ROPE_SCALING,
                "pos_embed_max_size": 192, "time_step_dim": 256, "flip_sin_to_cos": True,
                "downscale_freq_shift": 0, "timestep_activation_fn": "silu",
            },
        },
    },
    "pixart": {
        # PixArt-Sigma XL 1024 (600M) and the 42-layer 900M expansion SimpleTuner defaults to.
        "model_class": "PixArtTransformer2DModel",
        "configs": {
            "600M-1024": {
                "num_attention_heads": 16, "attention_head_dim": 72, "in_channels": 4,
                "out_channels": 8, "num_layers": 28, "dropout": 0.0, "norm_num_groups": 32,
                "cross_attention_dim": 1152, "attention_bias": True, "sample_size": 128,
                "patch_size": 2, "activation_fn": "gelu-approximate", "num_embeds_ada_norm": 1000,
                "upcast_attention": False, "norm_type": "ada_norm_single",
                "norm_elementwise_affine": False, "norm_eps": 1e-6, "interpolation_scale": None,
                "use_additional_conditions": False, "caption_channels": 4096,
                "attention_type": "default",
            },
            "900M-1024-v0.6": {
                "num_attention_heads": 16, "attention_head_dim": 72, "in_channels": 4,
                "out_channels": 8, "num_layers": 42, "dropout": 0.0, "norm_num_groups": 32,
                "cross_attention_dim": 1152, "attention_bias": True, "sample_size": 128,
                "patch_size": 2, "activation_fn": "gelu-approximate", "num_embeds_ada_norm": 1000,
                "upcast_attention": False, "norm_type": "ada_norm_single",
                "norm_elementwise_affine": False, "norm_eps": 1e-6, "interpolation_scale": None,
                "use_additional_conditions": False, "caption_channels": 4096,
                "attention_type": "default",
            },
        },
    },
    "qwen_image": {
        # Qwen-Image; the 2512 and Edit releases share this transformer config.
        "model_class": "QwenImageTransformer2DModel",
        "configs": {
            "v1.0": {
                "patch_size": 2, "in_channels": 64, "out_channels": 16, "num_layers": 60,
                "attention_head_dim": 128, "num_attention_heads": 24,
                "joint_attention_dim": 3584, "guidance_embeds": False,
                "axes_dims_rope": [16, 56, 56],
            },
        },
    },
    "sana": {
        # Sana 1.0 and Sana 1.5 (which adds RMS QK norm).
        "model_class": "SanaTransformer2DModel",
        "configs": {
            "sana1.0-1.6b-1024": {
                "in_channels": 32, "out_channels": 32, "num_attention_heads": 70,
                "attention_head_dim": 32, "num_layers": 20, "num_cross_attention_heads": 20,
                "cross_attention_head_dim": 112, "cross_attention_dim": 2240,
                "caption_channels": 2304, "mlp_ratio": 2.5, "dropout": 0.0,
                "attention_bias": False, "sample_size": 32, "patch_size": 1,
                "norm_elementwise_affine": False, "norm_eps": 1e-6, "interpolation_scale": None,
            },
            "sana1.0-600m-1024": {
                "in_channels": 32, "out_channels": 32, "num_attention_heads": 36,
                "attention_head_dim": 32, "num_layers": 28, "num_cross_attention_heads": 16,
                "cross_attention_head_dim": 72, "cross_attention_dim": 1152,
                "caption_channels": 2304, "mlp_ratio": 2.5, "dropout": 0.0,
                "attention_bias": False, "sample_size": 32, "patch_size": 1,
                "norm_elementwise_affine": False, "norm_eps": 1e-6, "interpolation_scale": None,
            },
            "sana1.5-4.8b-1024": {
                "in_channels": 32, "out_channels": 32, "num_attention_heads": 70,
                "attention_head_dim": 32, "num_layers": 60, "num_cross_attention_heads": 20,
                "cross_attention_head_dim": 112, "cross_attention_dim": 2240,
                "caption_channels": 2304, "mlp_ratio": 2.5, "dropout": 0.0,
                "attention_bias": False, "sample_size": 32, "patch_size": 1,
                "norm_elementwise_affine": False, "norm_eps": 1e-6, "interpolation_scale": None,
                "qk_norm": "rms_norm_across_heads",
            },
        },
    },
    "sanavideo": {
        # SANA-Video 2B 480p as diffusers' defaults describe it.
        "model_class": "SanaVideoTransformer3DModel",
        "configs": {
            "2b-480p": {
                "in_channels": 16, "out_channels": 16, "num_attention_heads": 20,
                "attention_head_dim": 112, "num_layers": 20, "num_cross_attention_heads": 20,
                "cross_attention_head_dim": 112, "cross_attention_dim": 2240,
                "caption_channels": 2304, "mlp_ratio": 2.5, "dropout": 0.0,
                "attention_bias": False, "sample_size": 30, "patch_size": [1, 2, 2],
                "norm_elementwise_affine": False, "norm_eps": 1e-6, "interpolation_scale": None,
                "guidance_embeds": False, "qk_norm": "rms_norm_across_heads",
                "rope_max_seq_len": 1024,
            },
        },
    },
    "sd1x": {
        # Stable Diffusion 1.5 (1.4, DreamShaper and RealVis are fine-tunes of the same UNet).
        # SD 2.x is not a --model_family choice (SimpleTuner registers "sd2x" outside them).
        "model_class": "UNet2DConditionModel",
        "configs": {
            "1.5": {
                "sample_size": 64, "in_channels": 4, "out_channels": 4,
                "down_block_types": [
                    "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                    "DownBlock2D",
                ],
                "up_block_types": [
                    "UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                ],
                "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
                "attention_head_dim": 8, "cross_attention_dim": 768, "act_fn": "silu",
                "norm_num_groups": 32, "norm_eps": 1e-5, "center_input_sample": False,
                "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0,
                "mid_block_scale_factor": 1,
            },
        },
    },
    "sd3": {
        # SimpleTuner's flavours are SD 3.5; "medium" adds MMDiT-X dual attention layers.
        "model_class": "SD3Transformer2DModel",
        "configs": {
            "medium": {
                "sample_size": 128, "patch_size": 2, "in_channels": 16, "out_channels": 16,
                "num_layers": 24, "attention_head_dim": 64, "num_attention_heads": 24,
                "joint_attention_dim": 4096, "caption_projection_dim": 1536,
                "pooled_projection_dim": 2048, "pos_embed_max_size": 384,
                "qk_norm": "rms_norm",
                "dual_attention_layers": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
            },
            "large": {
                "sample_size": 128, "patch_size": 2, "in_channels": 16, "out_channels": 16,
                "num_layers": 38, "attention_head_dim": 64, "num_attention_heads": 38,
                "joint_attention_dim": 4096, "caption_projection_dim": 2432,
                "pooled_projection_dim": 2048, "pos_embed_max_size": 192,
                "qk_norm": "rms_norm", "dual_attention_layers": [],
            },
        },
    },
    "sdxl": {
        "model_class": "UNet2DConditionModel",
        "configs": {
            "base-1.0": {
                "sample_size": 128, "in_channels": 4, "out_channels": 4,
                "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                "block_out_channels": [320, 640, 1280], "layers_per_block": 2,
                "transformer_layers_per_block": [1, 2, 10], "attention_head_dim": [5, 10, 20],
                "cross_attention_dim": 2048, "use_linear_projection": True,
                "addition_embed_type": "text_time", "addition_time_embed_dim": 256,
                "projection_class_embeddings_input_dim": 2816, "act_fn": "silu",
                "norm_num_groups": 32, "flip_sin_to_cos": True, "freq_shift": 0,
            },
            "refiner-1.0": {
                "sample_size": 128, "in_channels": 4, "out_channels": 4,
                "down_block_types": [
                    "DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D",
                ],
                "up_block_types": [
                    "UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D",
                ],
                "block_out_channels": [384, 768, 1536, 1536], "layers_per_block": 2,
                "transformer_layers_per_block": 4, "attention_head_dim": [6, 12, 12, 12],
                "cross_attention_dim": 1280, "use_linear_projection": True,
                "addition_embed_type": "text_time", "addition_time_embed_dim": 256,
                "projection_class_embeddings_input_dim": 2560, "act_fn": "silu",
                "norm_num_groups": 32, "flip_sin_to_cos": True, "freq_shift": 0,
            },
        },
    },
    "stable_cascade": {
        "model_class": "StableCascadeUNet",
        "configs": {
            "stage-c": {
                "in_channels": 16, "out_channels": 16, "timestep_ratio_embedding_dim": 64,
                "patch_size": 1, "conditioning_dim": 2048, "block_out_channels": [2048, 2048],
                "num_attention_heads": [32, 32], "down_num_layers_per_block": [8, 24],
                "up_num_layers_per_block": [24, 8], "down_blocks_repeat_mappers": [1, 1],
                "up_blocks_repeat_mappers": [1, 1],
                "block_types_per_layer": [
                    ["SDCascadeResBlock", "SDCascadeTimestepBlock", "SDCascadeAttnBlock"],
                    ["SDCascadeResBlock", "SDCascadeTimestepBlock", "SDCascadeAttnBlock"],
                ],
                "clip_text_in_channels": 1280, "clip_text_pooled_in_channels": 1280,
                "clip_image_in_channels": 768, "clip_seq": 4, "effnet_in_channels": None,
                "pixel_mapper_in_channels": None, "kernel_size": 3, "dropout": [0.1, 0.1],
                "self_attn": True, "timestep_conditioning_type": ["sca", "crp"],
                "switch_level": [False],
            },
        },
    },
    "wan": {
        # Wan 2.1 T2V, I2V (CLIP image branch), FLF2V (image position embedding) and Wan 2.2 TI2V.
        "model_class": "WanTransformer3DModel",
        "configs": {
            "t2v-480p-1.3b-2.1": {
                "patch_size": [1, 2, 2], "num_attention_heads": 12, "attention_head_dim": 128,
                "in_channels": 16, "out_channels": 16, "text_dim": 4096, "freq_dim": 256,
                "ffn_dim": 8960, "num_layers": 30, "cross_attn_norm": True,
                "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "image_dim": None,
                "added_kv_proj_dim": None, "rope_max_seq_len": 1024,
            },
            "i2v-14b-2.1": {
                "patch_size": [1, 2, 2], "num_attention_heads": 40, "attention_head_dim": 128,
                "in_channels": 36, "out_channels": 16, "text_dim": 4096, "freq_dim": 256,
                "ffn_dim": 13824, "num_layers": 40, "cross_attn_norm": True,
                "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "image_dim": 1280,
                "added_kv_proj_dim": 5120, "rope_max_seq_len": 1024,
            },
            "flf2v-14b-2.1": {
                "patch_size": [1, 2, 2], "num_attention_heads": 40, "attention_head_dim": 128,
                "in_channels": 36, "out_channels": 16, "text_dim": 4096, "freq_dim": 256,
                "ffn_dim": 13824, "num_layers": 40, "cross_attn_norm": True,
                "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "image_dim": 1280,
                "added_kv_proj_dim": 5120, "rope_max_seq_len": 1024, "pos_embed_seq_len": 514,
            },
            "ti2v-5b-2.2": {
                "patch_size": [1, 2, 2], "num_attention_heads": 24, "attention_head_dim": 128,
                "in_channels": 48, "out_channels": 48, "text_dim": 4096, "freq_dim": 256,
                "ffn_dim": 14336, "num_layers": 30, "cross_attn_norm": True,
                "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "image_dim": None,
                "added_kv_proj_dim": None, "rope_max_seq_len": 1024,
            },
        },
    },
    "z_image": {
        # Z-Image (Turbo and Base share the transformer config).
        "model_class": "ZImageTransformer2DModel",
        "configs": {
            "turbo": {
                "all_patch_size": [2], "all_f_patch_size": [1], "in_channels": 16, "dim": 3840,
                "n_layers": 30, "n_refiner_layers": 2, "n_heads": 30, "n_kv_heads": 30,
                "norm_eps": 1e-5, "qk_norm": True, "cap_feat_dim": 2560, "rope_theta": 256.0,
                "t_scale": 1000.0, "axes_dims": [32, 48, 48], "axes_lens": [1536, 512, 512],
            },
        },
    },
}


@functools.cache
def _quiet_diffusers():
    """Import diffusers with its config and deprecation chatter silenced, once per process.

    ``from_config`` logs every config key a class does not know and several classes warn about
    deprecated defaults; none of that is actionable here and it would bury the tool's output.
    """
    import diffusers
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", module=r"diffusers(\..*)?")
    return diffusers


def module_class_names(model_class: str, config: dict) -> set[str]:
    """Build ``model_class`` from ``config`` on the meta device and return its module class names.

    The meta device gives every parameter and buffer a shape but no storage, so even the
    largest configs (HiDream, LTX-2, FLUX.2-dev) build in about a second and allocate nothing.
    """
    import torch

    cls = getattr(_quiet_diffusers(), model_class)
    # from_config drops keys the class does not take, with only a (silenced) log line; a key
    # renamed in diffusers would then quietly build the default architecture instead.
    unknown = set(config) - set(inspect.signature(cls.__init__).parameters)
    if unknown:
        raise ValueError(f"{model_class} does not take config keys {sorted(unknown)}")
    with torch.device("meta"):
        model = cls.from_config(config)
    return {type(module).__name__ for _, module in model.named_modules()}


# Families whose model, as SimpleTuner trains it, has the same module classes as the diffusers class
# the index is built from (checked, with the reason). For the others SimpleTuner trains its own copy
# of the class body, which may build other module classes (its Flux copy builds the generic
# ``Attention``), so the linter reports an unknown class there as a warning, not an error.
SIMPLETUNER_VERIFIED = {
    "flux2": "vendored Flux2 transformer defines the same class names (reference simpletuner-compat.md §8.1)",
    "sd1x": "FlowMapUNet2DConditionModel subclasses diffusers' UNet2DConditionModel",
    "sdxl": "FlowMapUNet2DConditionModel subclasses diffusers' UNet2DConditionModel",
    "kolors": "FlowMapUNet2DConditionModel subclasses diffusers' UNet2DConditionModel",
    "deepfloyd": "FlowMapUNet2DConditionModel subclasses diffusers' UNet2DConditionModel",
}


def build_family(name: str) -> dict:
    """Return the index entry of family ``name``: its model class, config names and class names.

    The class set is the union over the family's configs, because a LyCORIS config written for
    a family should be judged against every module class any of its flavours can contain.
    """
    spec = FAMILY_CONFIGS[name]
    classes: set[str] = set()
    for config in spec["configs"].values():
        classes |= module_class_names(spec["model_class"], config)
    return {
        "model_class": spec["model_class"],
        "configs": list(spec["configs"]),
        "classes": sorted(classes),
        "simpletuner_verified": name in SIMPLETUNER_VERIFIED,
    }


def _versions() -> tuple[str, str]:
    import diffusers
    import torch

    return diffusers.__version__, torch.__version__


def _render(index: dict) -> str:
    """Serialise deterministically so that regenerating an unchanged index leaves no diff."""
    return json.dumps(index, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step, so readers never see a half-written index."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file owner-only; the index is a shipped, world-readable data file.
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        os.unlink(tmp_name)
        raise


def _starting_families(output: Path, partial: bool, diffusers_version: str) -> dict:
    """Entries kept from the current index when only some families are rebuilt.

    A partial rebuild may only patch an index made with the same diffusers version; mixing
    versions would make the file's ``diffusers_version`` header lie about some entries.
    """
    if not partial or not output.exists():
        return {}
    current = json.loads(output.read_text(encoding="utf-8"))
    if current.get("diffusers_version") != diffusers_version:
        raise SystemExit(
            f"{output} was generated with diffusers {current.get('diffusers_version')}, "
            f"but {diffusers_version} is installed: rebuild all families (omit --family)."
        )
    return dict(current.get("families", {}))


def main(argv: list[str] | None = None) -> int:
    """Rebuild the requested families (all by default) and write the index atomically."""
    parser = argparse.ArgumentParser(
        prog=GENERATED_BY.removeprefix("python -m "),
        description="Regenerate the family module index shipped with lyco_lint.",
    )
    parser.add_argument(
        "--family",
        action="extend",
        nargs="+",
        choices=sorted(FAMILY_CONFIGS),
        metavar="NAME",
        help="rebuild only these families; the other entries of the index are kept",
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help=f"index to write (default: {DEFAULT_OUTPUT})"
    )
    args = parser.parse_args(argv)

    diffusers_version, torch_version = _versions()
    names = sorted(set(args.family)) if args.family else sorted(FAMILY_CONFIGS)
    families = _starting_families(args.output, bool(args.family), diffusers_version)
    for name in names:
        started = time.perf_counter()
        families[name] = build_family(name)
        print(
            f"{name}: {len(families[name]['classes'])} classes "
            f"({time.perf_counter() - started:.1f}s)",
            file=sys.stderr,
        )

    index = {
        "generated_by": GENERATED_BY,
        "diffusers_version": diffusers_version,
        "torch_version": torch_version,
        "families": families,
    }
    _write_atomically(args.output, _render(index))
    print(f"wrote {args.output} ({len(families)} families)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
