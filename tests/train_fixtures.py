"""A tiny but real FLUX.2 [klein] pipeline, images and configs for the ``lyco train`` tests.

The pipeline has the real classes with tiny sizes, saved with ``save_pretrained`` (about 600 kB):

* text encoder: ``Qwen3ForCausalLM``, width 16 and 28 layers — Flux2KleinPipeline reads hidden states
  9, 18 and 27, so 28 layers keep all three intermediate (un-normed) states, as in the real 36-layer model;
* tokenizer: a word-level ``tokenizers`` model with Qwen's chat tokens and a chat template that honours
  ``enable_thinking=False`` as Qwen3's does;
* VAE: ``AutoencoderKLFlux2`` with two blocks (downscale 2, so images need sides divisible by 4) and 4 latent
  channels (16 after the 2×2 pixel shuffle), batch-norm statistics set to non-trivial values;
* transformer: ``Flux2Transformer2DModel`` with one double and one single block, 2 heads of 8, text width 48
  (3 × 16, the three stacked hidden states), no guidance embedding (Klein).

``build_tiny_flux2_dev`` builds the FLUX.2 [dev] counterpart: a ``Mistral3ForConditionalGeneration`` text
encoder (30 text layers of width 16, since Flux2Pipeline reads hidden states 10, 20 and 30; a one-layer
Pixtral vision tower it never uses), a word-level tokenizer with Mistral's system/instruction tokens and a
chat template over content lists, and a transformer with a guidance embedding, as [dev] has.

Nothing is downloaded. Built once per test session (``tiny_pipeline``) and reused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

WORDS = (
    "a photo of red green blue yellow cat dog square circle stripe on white black background small large "
    "picture the and with"
).split()
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|> {{ message['role'] }} {{ message['content'] }} <|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant "
    "{% if enable_thinking is defined and enable_thinking is false %}<think> </think> {% endif %}{% endif %}"
)
FLUX2_LOKR = {
    "algo": "lokr",
    "multiplier": 1.0,
    "linear_dim": 10000,
    "linear_alpha": 1,
    "factor": 4,
    "full_matrix": True,
    "bypass_mode": True,
    "apply_preset": {
        "target_module": ["Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention"],
        "module_algo_map": {"Flux2FeedForward": {"factor": 4}, "Flux2Attention": {"factor": 2}, "Flux2ParallelSelfAttention": {"factor": 2}},
    },
}
FLUX2_TLORA = {
    "algo": "tlora",
    "multiplier": 1.0,
    "linear_dim": 4,
    "linear_alpha": 4,
    "tlora_min_rank": 1,
    "tlora_alpha": 1.0,
    "apply_preset": {"target_module": ["Flux2Attention", "Flux2ParallelSelfAttention"]},
}

_BUILT: dict[str, Path] = {}


# Fixtures the train test modules import (pytest picks up fixtures imported into a test module).
@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return tiny_pipeline(tmp_path_factory)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tiny model is faster on one thread, and two threads fight badly when the CPU is shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def built_once(name: str, build: Callable[[Path], Path], tmp_path_factory) -> Path:
    """The folder ``build`` writes into a fresh temporary folder ``name``, built on first use in this test
    session and reused after."""
    if name not in _BUILT:
        _BUILT[name] = build(tmp_path_factory.mktemp(name))
    return _BUILT[name]


def tiny_pipeline(tmp_path_factory) -> Path:
    """The tiny FLUX.2 [klein] pipeline folder."""
    return built_once("tiny-flux2-klein", build_tiny_flux2_klein, tmp_path_factory)


def tiny_dev_pipeline(tmp_path_factory) -> Path:
    """The tiny FLUX.2 [dev] pipeline folder."""
    return built_once("tiny-flux2-dev", build_tiny_flux2_dev, tmp_path_factory)


MISTRAL_SPECIAL = ["<s>", "</s>", "<pad>", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[INST]", "[/INST]", "[IMG]"]
MISTRAL_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}[SYSTEM_PROMPT] "
    "{% for part in message['content'] %}{{ part['text'] }}{% endfor %} [/SYSTEM_PROMPT] {% else %}[INST] "
    "{% for part in message['content'] %}{{ part['text'] }}{% endfor %} [/INST] {% endif %}{% endfor %}"
)


def _tiny_vae_and_transformer(guidance_embeds: bool):
    import torch
    from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel

    torch.manual_seed(0)
    vae = AutoencoderKLFlux2(
        block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=32, mid_block_add_attention=False,
    )
    with torch.no_grad():
        vae.bn.running_mean.uniform_(-0.1, 0.1)
        vae.bn.running_var.uniform_(0.5, 2.0)
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=48, timestep_guidance_channels=16, axes_dims_rope=(2, 2, 2, 2), guidance_embeds=guidance_embeds,
    )
    return vae, transformer


def _word_level_tokenizer(special: list[str], **tokens: str):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(special + ["[UNK]", "user", "assistant"] + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens(special)
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", **tokens), len(vocab)


def build_tiny_flux2_dev(folder: Path) -> Path:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2Pipeline
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration, MistralConfig, PixtralVisionConfig

    tokenizer, vocab_size = _word_level_tokenizer(MISTRAL_SPECIAL, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    tokenizer.chat_template = MISTRAL_CHAT_TEMPLATE
    torch.manual_seed(0)
    text_encoder = Mistral3ForConditionalGeneration(
        Mistral3Config(
            vision_config=PixtralVisionConfig(
                hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, head_dim=8,
                image_size=32, patch_size=16,
            ),
            text_config=MistralConfig(
                vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=30, num_attention_heads=2,
                num_key_value_heads=1, head_dim=8, max_position_embeddings=128,
            ),
            image_token_index=MISTRAL_SPECIAL.index("[IMG]"),
            spatial_merge_size=1,
        )
    )
    vae, transformer = _tiny_vae_and_transformer(guidance_embeds=True)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    Flux2Pipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer).save_pretrained(folder)
    return folder


def build_tiny_flux2_klein(folder: Path) -> Path:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer, vocab_size = _word_level_tokenizer(SPECIAL, pad_token="<|endoftext|>", eos_token="<|im_end|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    text_encoder = Qwen3ForCausalLM(
        Qwen3Config(
            vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=28, num_attention_heads=2,
            num_key_value_heads=1, head_dim=8, max_position_embeddings=128, tie_word_embeddings=True,
        )
    )
    vae, transformer = _tiny_vae_and_transformer(guidance_embeds=False)
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096
    )
    pipeline = Flux2KleinPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer)
    pipeline.save_pretrained(folder)
    return folder


def write_images(folder: Path, items: list[tuple[str, tuple[int, int], tuple[int, int, int], str | None]]) -> Path:
    """Images with shapes drawn on them: (name, (width, height), colour, caption or None for no .txt)."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    for name, size, colour, caption in items:
        image = Image.new("RGB", size, (245, 245, 245))
        draw = ImageDraw.Draw(image)
        draw.ellipse([size[0] // 5, size[1] // 5, size[0] * 4 // 5, size[1] * 4 // 5], fill=colour)
        image.save(folder / name)
        if caption is not None:
            (folder / name).with_suffix(".txt").write_text(caption, encoding="utf-8")
    return folder


DEFAULT_IMAGES = [
    ("red.png", (40, 24), (220, 30, 30), "a red circle on white background"),
    ("green.jpg", (40, 24), (30, 200, 30), "a green circle on white background\na small green circle"),
    ("blue.webp", (32, 32), (30, 30, 220), "a blue circle on white background"),
]


def write_setup(
    root: Path,
    pipeline: Path,
    *,
    lycoris: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    dataset: dict[str, Any] | None = None,
    images: list | None = None,
) -> Path:
    """A complete training setup under ``root``: images, multidatabackend.json, LyCORIS config, config.json."""
    config = {
        "model_type": "lora",
        "model_family": "flux2",
        "model_flavour": "klein-4b",
        "pretrained_model_name_or_path": str(pipeline),
        "lora_type": "lycoris",
        "lycoris_config": "lycoris.json",
        "output_dir": str(root / "output"),
        "data_backend_config": "multidatabackend.json",
        "optimizer": "torch-adamw",
        "learning_rate": 1e-3,
        "lr_scheduler": "constant_with_warmup",
        "lr_warmup_steps": 2,
        "train_batch_size": 2,
        "max_train_steps": 4,
        "checkpoint_step_interval": 2,
        "mixed_precision": "no",
        "vae_dtype": "fp32",
        "aspect_bucket_alignment": 8,
        "tokenizer_max_length": 24,
        "seed": 7,
        **(options or {}),
    }
    return write_training_files(
        root, images=DEFAULT_IMAGES if images is None else images, resolution=32, dataset=dataset, lycoris=lycoris or FLUX2_LOKR, config=config
    )


def write_training_files(
    root: Path, *, images: list, resolution: int, dataset: dict[str, Any] | None, lycoris: dict[str, Any], config: dict[str, Any]
) -> Path:
    """The files of a training setup under ``root``: ``images`` (see write_images) in images/, multidatabackend.json
    (those images at ``resolution`` px area with ``dataset``'s keys on top, and the text-embeds cache),
    lycoris.json (``lycoris``) and config.json (``config``, which names them). Returns config.json's path."""
    write_images(root / "images", images)
    backends = [
        {
            "id": "shapes",
            "type": "local",
            "instance_data_dir": str(root / "images"),
            "caption_strategy": "textfile",
            "resolution": resolution,
            "resolution_type": "pixel_area",
            "cache_dir_vae": str(root / "cache" / "vae"),
            **(dataset or {}),
        },
        {"id": "text-embeds", "dataset_type": "text_embeds", "default": True, "type": "local", "cache_dir": str(root / "cache" / "text")},
    ]
    (root / "multidatabackend.json").write_text(json.dumps(backends, indent=2), encoding="utf-8")
    (root / "lycoris.json").write_text(json.dumps(lycoris, indent=2), encoding="utf-8")
    path = root / "config.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


# -- a run's outputs and configs --------------------------------------------------------------------------------


def metrics(output: Path) -> list[dict]:
    """The rows of ``output``/metrics.jsonl, one a step."""
    return [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]


def with_options(path: Path, **options) -> Path:
    """The training config at ``path`` with ``options`` set, written back in place."""
    data = json.loads(path.read_text())
    data.update(options)
    path.write_text(json.dumps(data, indent=2))
    return path


def train_in_halves(straight: Path) -> Path:
    """A copy of the 4-step config ``straight`` (its output_dir ``root/straight``) that writes to ``root/halves``:
    run for 2 steps, then again to 4, resuming from checkpoint-2. Returns the copy."""
    import shutil

    from lyco_train import run

    root = straight.parent
    halves = with_options(Path(shutil.copy(straight, root / "halves.json")), output_dir=str(root / "halves"), max_train_steps=2)
    assert run(halves) == 0
    assert run(with_options(halves, max_train_steps=4)) == 0
    return halves


def assert_halves_trained_as_straight(root: Path) -> None:
    """``root/halves`` (2 steps, then resumed to 4) ends where ``root/straight`` (4 steps in one run) ended: the
    same weights and losses (float tolerance), and steps 3-4 did train (the weights moved after checkpoint-2)."""
    import torch
    from safetensors.torch import load_file

    a = load_file(str(root / "straight" / "pytorch_lora_weights.safetensors"))
    b = load_file(str(root / "halves" / "pytorch_lora_weights.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-7, msg=key)
    reference = load_file(str(root / "straight" / "checkpoint-2" / "pytorch_lora_weights.safetensors"))
    assert any(not torch.equal(a[key], reference[key]) for key in a if not key.endswith(".alpha"))  # steps 3-4 did train
    losses = lambda name: [row["loss"] for row in metrics(root / name)]  # noqa: E731
    assert losses("halves") == pytest.approx(losses("straight"), rel=1e-5)
