"""What lyco says about the training options that matter for LyCORIS runs (``lyco explain OPTION``), in our
own words, with the rules that look at each. Type, default and choices come from SimpleTuner's option table
(:mod:`.simpletuner`), never from here."""

from __future__ import annotations

# The options that matter for LyCORIS training, each described in our own words, with the rules
# that look at it. Type, default and choices come from the data file.
OPTION_DOCS: dict[str, tuple[str, tuple[str, ...]]] = {
    "model_type": (
        "Train the whole model (full) or an adapter (lora); LyCORIS needs lora.",
        ("LYC302", "LYC313", "LYC315"),
    ),
    "model_family": (
        "Which architecture is trained (flux2, sdxl, wan, ...); lower-cased by SimpleTuner, dashes are not "
        "underscores.",
        ("LYC312", "LYC315", "LYC205"),
    ),
    "model_flavour": (
        "Which release of the family (klein-9b, base-1.0, ...); must be one of the family's flavours.",
        ("LYC312",),
    ),
    "pretrained_model_name_or_path": (
        "Hub id or local folder of the base model; overrides the flavour's default checkpoint.",
        (),
    ),
    "output_dir": ("Where checkpoints, the final adapter and caches are written.", ("LYC315",)),
    "data_backend_config": (
        "Path of the multidatabackend.json that lists the datasets and text-embed caches.",
        ("LYC315", "LYC316"),
    ),
    "lora_type": (
        "Adapter implementation: standard (PEFT LoRA) or lycoris (a LyCORIS config file decides the algorithm).",
        ("LYC301", "LYC302", "LYC303", "LYC313"),
    ),
    "lycoris_config": (
        "Path of the LyCORIS JSON (algo, dims, apply_preset); read only when lora_type is lycoris.",
        ("LYC301", "LYC302"),
    ),
    "validation_lycoris_strength": (
        "Multiplier applied to the LyCORIS adapter while validation images are generated.",
        ("LYC308",),
    ),
    "init_lokr_norm": (
        "Start LoKr from a perturbed non-zero weight of this relative scale (a config.json option, not a LyCORIS key).",
        (),
    ),
    "init_lora": ("Existing adapter file to start from; with LyCORIS the network is rebuilt from its weights.", ()),
    "lora_rank": (
        "PEFT LoRA rank; ignored with lora_type lycoris (linear_dim in the LyCORIS config counts).",
        ("LYC303",),
    ),
    "lora_alpha": (
        "PEFT LoRA alpha; ignored with lora_type lycoris (linear_alpha in the LyCORIS config counts).",
        ("LYC303",),
    ),
    "lora_dropout": (
        "PEFT LoRA dropout; ignored with lora_type lycoris (use dropout in the LyCORIS config).",
        ("LYC303",),
    ),
    "lora_init_type": (
        "How PEFT initialises the LoRA matrices (default, gaussian, loftq, olora, pissa); PEFT only.",
        ("LYC303", "LYC313"),
    ),
    "peft_lora_mode": ("PEFT LoRA variant (standard or singlora); PEFT only.", ("LYC303", "LYC313")),
    "peft_lora_target_modules": ("Module names PEFT wraps, as a JSON list or a file; PEFT only.", ("LYC303",)),
    "use_dora": ("Weight-decomposed PEFT LoRA; PEFT only (LyCORIS uses dora_wd in its own config).", ("LYC303",)),
    "lora_format": (
        "Key layout of saved PEFT LoRA files (diffusers or comfyui); not applied to LyCORIS files.",
        ("LYC303", "LYC313"),
    ),
    "flux_lora_target": (
        "Preset of Flux layers PEFT wraps; PEFT only (LyCORIS uses apply_preset).",
        ("LYC303", "LYC313"),
    ),
    "slider_lora_target": ("Restrict a PEFT slider LoRA to a preset set of layers; PEFT only.", ("LYC303",)),
    "attention_mechanism": (
        "Attention kernel used by the model (diffusers SDPA, xformers, flash-attn, sageattention*, ...).",
        ("LYC305", "LYC306", "LYC313"),
    ),
    "sageattention_usage": (
        "When a SageAttention kernel is used: inference only, training, or both; its kernels give no gradients.",
        ("LYC305", "LYC306", "LYC313"),
    ),
    "base_model_precision": (
        "Quantisation of the frozen base weights (no_change, int8-torchao, int8-quanto, nf4-bnb, ...).",
        ("LYC309", "LYC313"),
    ),
    "mixed_precision": ("Autocast precision of training (bf16, fp16, no, ...).", ("LYC313",)),
    "quantize_via": ("Device that performs the base-model quantisation (cpu, accelerator, ...).", ("LYC313",)),
    "text_encoder_1_precision": ("Quantisation of the first text encoder, like base_model_precision.", ("LYC313",)),
    "gradient_precision": ("Precision of gradients for the optimizer step.", ("LYC313",)),
    "train_text_encoder": ("Train the text encoder too; refused together with lora_type lycoris.", ()),
    "optimizer": ("Optimizer name (adamw_bf16, optimi-lion, prodigy, ...).", ("LYC315",)),
    "learning_rate": ("Peak learning rate; a number, or a string float() can read (\"1e-4\").", ("LYC314",)),
    "lr_scheduler": ("Learning-rate schedule; cosine_with_warmup is accepted as cosine.", ("LYC313",)),
    "lr_warmup_steps": ("Steps of linear learning-rate warm-up; an integer.", ("LYC314",)),
    "train_batch_size": ("Samples per micro-batch per GPU; T-LoRA in lycoris-lora 4.1.3 needs 1.", ("LYC314",)),
    "gradient_accumulation_steps": ("Micro-batches summed before each optimizer step.", ("LYC314",)),
    "max_train_steps": ("Stop after this many optimizer steps (0: use num_train_epochs).", ("LYC314",)),
    "num_train_epochs": ("Stop after this many epochs (0: use max_train_steps).", ("LYC314",)),
    "gradient_checkpointing": (
        "Recompute activations in the backward pass to save memory; on by default.",
        ("LYC311",),
    ),
    "checkpoint_step_interval": (
        "Save a resumable checkpoint every N steps (legacy key: checkpointing_steps).",
        ("LYC314",),
    ),
    "checkpoints_total_limit": ("How many checkpoints to keep (legacy key: save_total_limit).", ("LYC314",)),
    "resume_from_checkpoint": ("Checkpoint to resume from (latest, a folder name, or empty for none).", ()),
    "seed": ("Random seed of the run.", ("LYC314",)),
    "resolution": ("Training resolution (its unit is set by resolution_type).", ("LYC314",)),
    "validation_step_interval": (
        "Generate validation images every N steps (legacy key: validation_steps).",
        ("LYC314",),
    ),
    "validation_prompt": ("Prompt of the validation images.", ()),
    "validation_resolution": ("Size of validation images, such as 1024x1024 or a comma-separated list.", ()),
    "validation_guidance": ("Classifier-free guidance scale used for validation images.", ("LYC314",)),
    "validation_num_inference_steps": ("Denoising steps per validation image.", ("LYC314",)),
    "validation_seed": ("Seed of the validation images.", ("LYC314",)),
    "validation_guidance_skip_layers": (
        "Layers skipped for skip-layer guidance in validation; give a JSON string, not an array.",
        ("LYC314",),
    ),
}
