"""Which SimpleTuner options ``lyco train`` reads, with SimpleTuner's defaults, and which it may ignore.

Three kinds of option (names as in SimpleTuner's ``config.json``, without ``--``):

* implemented: the fields of :class:`TrainingOptions`, each with its type and SimpleTuner 4.8.0's default
  (``tests/test_train_config.py`` pins them against ``lyco_lint``'s copy of SimpleTuner's option table);
  ``IMPLEMENTED`` is the same table as ``name -> (kind, default)`` for the config reader.
* ``COSMETIC``: do not change the trained weights nor what lyco shows (hub publishing off, options SimpleTuner
  itself ignores for LyCORIS runs, performance knobs): one note line lists them. Validation and tracker options
  are implemented (they change what a run shows, so a value lyco cannot honour is an error, not a note).
* every other SimpleTuner option: a note when it is at SimpleTuner's default (nothing changes), a clear
  error when it is set to anything else — lyco train would silently train something different.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, fields
from typing import Literal, Optional, Union, get_args, get_origin, get_type_hints


@dataclass(frozen=True)
class TrainingOptions:
    """Every SimpleTuner option lyco train reads, typed, at SimpleTuner's default unless config.json sets it."""

    model_family: Optional[str] = None
    model_flavour: Optional[str] = None
    pretrained_model_name_or_path: Optional[str] = None
    pretrained_transformer_model_name_or_path: Optional[str] = None
    pretrained_transformer_subfolder: Optional[str] = "transformer"
    revision: Optional[str] = None
    variant: Optional[str] = None
    model_type: Literal["full", "lora"] = "full"
    lora_type: Literal["standard", "lycoris"] = "standard"
    lycoris_config: str = "config/lycoris_config.json"
    output_dir: str = "simpletuner-results"
    data_backend_config: Optional[str] = None
    train_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    learning_rate: float = 4e-07
    lr_scale: bool = False
    lr_scheduler: Literal["linear", "sine", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"] = "constant_with_warmup"
    lr_warmup_steps: int = 0
    lr_num_cycles: int = 1
    lr_power: float = 0.8
    lr_end: float = 4e-07
    max_train_steps: Optional[int] = None
    num_train_epochs: int = 1
    optimizer: str = "adamw_bf16"
    optimizer_config: Optional[str] = None
    optimizer_beta1: Optional[float] = None
    optimizer_beta2: Optional[float] = None
    mixed_precision: Literal["no", "fp16", "bf16", "fp8"] = "bf16"
    gradient_checkpointing: bool = True
    seed: Optional[int] = None
    checkpoint_step_interval: int = 500
    checkpoints_total_limit: int = 5
    resume_from_checkpoint: str = "latest"
    max_grad_norm: float = 2.0
    grad_clip_method: Literal["value", "norm"] = "value"
    flow_schedule_shift: float = 3.0
    flow_schedule_auto_shift: bool = False
    flow_sigmoid_scale: float = 1.0
    flow_use_uniform_schedule: bool = False
    flux_guidance_mode: Literal["constant", "random-range"] = "constant"
    flux_guidance_value: float = 1.0
    flux_guidance_min: float = 0.0
    flux_guidance_max: float = 4.0
    caption_dropout_probability: float = 0.1
    # validation images (validation.py) and lyco sample: SimpleTuner's options, read as the values say
    validation_disable: bool = False
    validation_prompt: Optional[str] = None
    user_prompt_library: Optional[str] = None
    validation_disable_unconditional: bool = False
    validation_step_interval: Optional[int] = 100
    validation_on_startup: bool = False
    validate_after_step: Optional[int] = None
    num_validation_images: int = 1
    validation_num_inference_steps: int = 30
    validation_resolution: str = "256"
    validation_guidance: Optional[float] = 7.5
    validation_guidance_real: float = 1.0
    validation_no_cfg_until_timestep: int = 2
    validation_guidance_rescale: float = 0.0
    validation_negative_prompt: Optional[str] = "blurry, cropped, ugly"
    validation_seed: Optional[int] = None
    validation_seed_source: Literal["cpu", "gpu"] = "cpu"
    validation_randomize: bool = False
    validation_noise_scheduler: Optional[Literal["ddim", "ddpm", "euler", "euler-a", "unipc", "dpm++", "perflow"]] = None
    inference_scheduler_timestep_spacing: Literal["leading", "linspace", "trailing"] = "trailing"
    validation_image_format: Literal["png", "webp", "jpeg"] = "png"
    validation_image_quality: int = 90
    validation_lycoris_strength: float = 1.0
    # trackers (trackers.py, through accelerate's tracker classes)
    report_to: Literal["simpletuner", "tensorboard", "wandb", "swanlab", "comet_ml", "custom-tracker", "all", "none"] = "none"
    tracker_project_name: str = "simpletuner"
    tracker_run_name: str = "simpletuner-testing"
    logging_dir: str = "logs"
    resolution: float = 1024
    resolution_type: Literal["pixel", "area", "pixel_area"] = "pixel_area"
    aspect_bucket_alignment: Literal["8", "16", "24", "32", "64"] = "64"
    caption_strategy: Literal["filename", "textfile", "instance_prompt", "parquet"] = "filename"
    instance_prompt: Optional[str] = None
    cache_dir_text: str = "cache"
    cache_dir_vae: str = ""
    tokenizer_max_length: Optional[int] = None
    vae_dtype: Literal["default", "fp32", "fp16", "bf16"] = "bf16"
    # the DDPM objective (SDXL); SimpleTuner ignores these for flow-matching families, and so does lyco train
    prediction_type: Optional[Literal["epsilon", "v_prediction", "sample", "flow_matching"]] = None
    snr_gamma: Optional[int] = None
    offset_noise: bool = False
    noise_offset: float = 0.1
    noise_offset_probability: float = 0.25
    rescale_betas_zero_snr: bool = False
    training_scheduler_timestep_spacing: Literal["leading", "linspace", "trailing"] = "trailing"
    disable_segmented_timestep_sampling: bool = False
    timestep_bias_strategy: Optional[Literal["earlier", "later", "range", "none"]] = None
    timestep_bias_multiplier: float = 1.0
    timestep_bias_portion: float = 0.25
    timestep_bias_begin: int = 0
    timestep_bias_end: int = 1000
    # FLUX.1 schnell
    flux_fast_schedule: bool = False
    disable_assistant_lora: bool = False
    # the frozen base's weights (quantize.py; lyco trains the torchao schemes in bypass mode, the rest are refused)
    base_model_precision: Literal[
        "no_change", "int8-quanto", "int4-quanto", "int2-quanto", "int8-torchao", "int8dq-torchao", "int8dq-int4-torchao",
        "int8-sdnq", "uint8-sdnq", "int16-sdnq", "uint16-sdnq", "fp16-sdnq", "fp8-sdnq", "int6-sdnq", "int5-sdnq", "uint5-sdnq",
        "uint4-sdnq", "uint3-sdnq", "uint2-sdnq", "nf4-bnb", "int4-torchao", "fp8-quanto", "fp8uz-quanto", "fp8-native",
        "fp8-torchao", "fp8wo-torchao", "fp8-int4-torchao", "fp8-transformerengine",
    ] = "no_change"
    quantize_via: Literal["cpu", "accelerator", "pipeline"] = "accelerator"
    # compiled blocks (compile.py): torch.compile of the denoiser or its repeated blocks, LyCORIS modules inside
    dynamo_backend: Literal[
        "no", "inductor", "eager", "aot_eager", "aot_ts_nvfuser", "nvprims_nvfuser", "cudagraphs", "ofi", "fx2trt", "onnxrt",
        "tensorrt", "ipex", "tvm", "hpu_backend",
    ] = "no"
    dynamo_mode: Literal["", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = ""
    dynamo_use_regional_compilation: bool = False
    dynamo_fullgraph: bool = False
    dynamo_dynamic: bool = False

    @property
    def weight_dtype_name(self) -> str:
        """The dtype the frozen base model and the text encoders run in: ``bf16`` under ``mixed_precision: bf16``,
        else ``fp32`` (the adapter itself is always float32). The one home of this rule."""
        return "bf16" if self.mixed_precision == "bf16" else "fp32"

    @property
    def vae_dtype_name(self) -> str:
        """The VAE's dtype: ``vae_dtype``, where ``default`` means bf16 as in SimpleTuner (helpers/models/common.py)."""
        return "bf16" if self.vae_dtype == "default" else self.vae_dtype


def torch_dtype(name: str):
    """``bf16``/``fp16``/``fp32`` as a torch dtype (torch is imported here, not when options are read)."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def _kind(hint: object) -> object:
    """A field's type as the config reader parses it: str, int, float, bool, or the tuple of a Literal's
    allowed strings (``Optional`` only says that SimpleTuner's default is None)."""
    if get_origin(hint) is Literal:
        return get_args(hint)
    if get_origin(hint) in (Union, types.UnionType):
        return _kind(next(arg for arg in get_args(hint) if arg is not type(None)))
    return hint


_HINTS = get_type_hints(TrainingOptions)
# name -> (kind, SimpleTuner default), derived from TrainingOptions.
IMPLEMENTED: dict[str, tuple[object, object]] = {
    option.name: (_kind(_HINTS[option.name]), option.default) for option in fields(TrainingOptions)
}

# Options that never change the trained weights of a LyCORIS run in lyco train.
COSMETIC: frozenset[str] = frozenset(
    {
        # tracker layout, model cards, notifications
        "tracker_image_layout", "model_card_note", "model_card_safe_for_work", "webhook_config", "webhook_reporting_interval",
        "hub_model_id", "push_to_hub", "push_checkpoints_to_hub", "modelspec_comment",
        # validation: how fast, not what (lyco renders on the main process and shows no previews, no CLIP scores
        # and no separate base-model benchmark)
        "validation_torch_compile", "validation_multigpu", "validation_preview", "validation_preview_steps",
        "evaluation_type", "disable_benchmark",
        # SimpleTuner ignores these for lora_type lycoris (the LyCORIS config decides)
        "lora_rank", "lora_alpha", "lora_dropout", "lora_init_type", "use_dora", "lora_format", "peft_lora_mode",
        "peft_lora_target_modules", "flux_lora_target",
        # used by SimpleTuner only with DeepSpeed
        "adam_beta1", "adam_beta2", "adam_weight_decay", "adam_epsilon",
        # speed, memory and cache bookkeeping only
        "vae_batch_size", "write_batch_size", "text_encoder_batch_size", "torch_num_threads", "dataloader_prefetch",
        "dataloader_prefetch_qlen", "offload_during_startup", "metadata_update_interval", "compress_disk_cache",
        "seed_for_each_device", "allow_tf32", "vae_enable_tiling", "vae_enable_slicing",
        "delete_problematic_images", "delete_unwanted_images", "local_files_only", "attention_mechanism",
        "base_model_default_dtype", "max_workers", "read_batch_size", "image_processing_batch_size",
    }
)

# Cosmetic options that must still have a particular value, with the reason.
COSMETIC_REQUIRED: dict[str, tuple[object, str]] = {
    "push_to_hub": (False, "lyco train does not publish to a hub; set push_to_hub to false"),
    "push_checkpoints_to_hub": (False, "lyco train does not publish to a hub; set push_checkpoints_to_hub to false"),
    "attention_mechanism": ("diffusers", "lyco train uses diffusers' default attention; remove attention_mechanism or set it to \"diffusers\""),
}

# SimpleTuner's loader facts come from lyco_lint's copy of its option table (one source for lint and train).


def _simpletuner_data() -> dict:
    from lyco_lint.knowledge.simpletuner import data

    return data()


def legacy_renames() -> dict[str, str]:
    """Old key -> option, for the renames that keep the value (inverted booleans are not implemented)."""
    renames = _simpletuner_data()["legacy_renames"]
    return {old: rename["new"] for old, rename in renames.items() if rename["transform"] == "identity"}


def loader_ignored() -> frozenset[str]:
    """Keys SimpleTuner's JSON loader drops without a word."""
    return frozenset(_simpletuner_data()["ignored_keys"])


def simpletuner_required() -> tuple[str, ...]:
    """Options SimpleTuner's argparse marks required (``required=True`` in SimpleTuner's cmd_args.py)."""
    return tuple(_simpletuner_data()["required"])


def simpletuner_option(name: str):
    """SimpleTuner's spec of an option (``type``, ``default``, ...) from lyco_lint's data, or None."""
    from lyco_lint.knowledge.simpletuner import option

    return option(name)
