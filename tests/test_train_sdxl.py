"""`lyco train` end to end on a tiny real SDXL pipeline (CPU): prompt embeddings and add_time_ids as diffusers
builds them, real crop coordinates, the DDPM objective with SimpleTuner's options, exact resume, weights that
LyCORIS loads onto a fresh UNet, the FeedForward NaN stop, and learning measured outside the trainer."""

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")
pytest.importorskip("lycoris")

from safetensors.torch import load_file  # noqa: E402

from family_fixtures import (  # noqa: E402
    SDXL_ATTENTION_LOKR, SDXL_ATTENTION_LORA, SDXL_ATTENTION_TLORA, SDXL_FEEDFORWARD_LORA, tiny_sdxl_pipeline, validation_loss,
    write_family_setup,
)
from train_fixtures import assert_halves_trained_as_straight, metrics, one_thread, train_in_halves, write_images  # noqa: E402,F401 (fixtures)

from lyco_lint.meta_model.patches import no_tlora_gc  # noqa: E402
from lyco_train import run  # noqa: E402
from lyco_train.adapter import save_adapter, timestep_mask  # noqa: E402
from lyco_train.caching import load_pixels  # noqa: E402
from lyco_train.data import BatchStream  # noqa: E402
from lyco_train.families import get_family  # noqa: E402
from lyco_train.loop import prepare, train_step  # noqa: E402
from lyco_train.options import TrainingOptions  # noqa: E402
from lyco_train.run import prepare_run  # noqa: E402

sdxl = get_family("sdxl")
ALGOS = {"lokr": SDXL_ATTENTION_LOKR, "lora": SDXL_ATTENTION_LORA, "tlora": SDXL_ATTENTION_TLORA}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return tiny_sdxl_pipeline(tmp_path_factory)


def unet(pipeline):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(pipeline, subfolder="unet").eval()


def test_sdxl_run_caches_both_clip_encoders_and_trains_loadable_weights(tmp_path, pipeline, capsys):
    config = write_family_setup(tmp_path, pipeline, "sdxl", lycoris=SDXL_ATTENTION_LOKR, options={"snr_gamma": 5, "offset_noise": True})
    assert run(config) == 0
    assert "done: 4 steps" in capsys.readouterr().out
    rows = metrics(tmp_path / "output")
    assert [row["step"] for row in rows] == [1, 2, 3, 4] and all(math.isfinite(row["loss"]) for row in rows)
    assert all(float(row["timestep"] * 2).is_integer() for row in rows)  # DDPM: integer timesteps (a mean of 2)
    prompt_file = next((tmp_path / "cache" / "text").glob("*.safetensors"))
    embeds = load_file(str(prompt_file))
    assert embeds["prompt_embeds"].shape == (77, 32)  # CLIP-L 16 + CLIP-G 16, penultimate layers
    assert embeds["pooled_prompt_embeds"].shape == (16,)  # CLIP-G's projection
    latents = load_file(str(next((tmp_path / "cache" / "vae").glob("*.safetensors"))))["latents"]
    assert latents.shape == (4, 8, 8)  # 64 px, the VAE's 8x downscale

    from lycoris import create_lycoris_from_weights

    network, _ = create_lycoris_from_weights(1.0, str(tmp_path / "output" / "pytorch_lora_weights.safetensors"), unet(pipeline))
    assert len(network.loras) == 32  # every attention projection of the tiny UNet, no FeedForward


def test_prompt_embeddings_are_what_encode_prompt_builds(pipeline):
    from diffusers import StableDiffusionXLPipeline

    options = TrainingOptions(model_family="sdxl", pretrained_model_name_or_path=str(pipeline), mixed_precision="no")
    ours = sdxl.encode_prompts(sdxl.load_text_encoder(options, torch.device("cpu")), ["a red circle", ""], options)
    reference = StableDiffusionXLPipeline.from_pretrained(pipeline, add_watermarker=False)
    embeds, _n, pooled, _np = reference.encode_prompt(["a red circle", ""], device="cpu", do_classifier_free_guidance=False)
    torch.testing.assert_close(ours["prompt_embeds"], embeds)
    torch.testing.assert_close(ours["pooled_prompt_embeds"], pooled)
    text_encoder_2 = reference.text_encoder_2
    ids = reference.tokenizer_2(["a red circle"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    output = text_encoder_2(ids, output_hidden_states=True)
    torch.testing.assert_close(ours["pooled_prompt_embeds"][:1], output.text_embeds)  # CLIP-G's projected pooled output
    assert ours["prompt_embeds"].shape[-1] == reference.text_encoder.config.hidden_size + text_encoder_2.config.hidden_size


def test_add_time_ids_carry_each_samples_real_random_crop(tmp_path, pipeline):
    images = [("wide.png", (160, 64), (200, 40, 40), "a red circle"), ("tall.png", (64, 128), (40, 40, 200), "a blue circle")]
    config = write_family_setup(tmp_path, pipeline, "sdxl", lycoris=SDXL_ATTENTION_LORA, dataset={"crop": True}, images=images)
    plan = prepare_run(config, print).data
    again = prepare_run(config, print).data
    by_name = {sample.path.name: sample for sample in plan.samples}
    wide, tall = by_name["wide.png"], by_name["tall.png"]
    assert wide.size == tall.size == (64, 64)
    assert wide.resized == (160, 64) and tall.resized == (64, 128)
    assert wide.crop_top_left[0] == 0 and 0 < wide.crop_top_left[1] <= 96  # random (SimpleTuner's default crop_style)
    assert tall.crop_top_left[1] == 0 and 0 < tall.crop_top_left[0] <= 64
    assert [s.crop_top_left for s in again.samples] == [s.crop_top_left for s in plan.samples]  # reproducible
    # the pixels are cut where the time ids say
    from PIL import Image

    top, left = wide.crop_top_left
    with Image.open(wide.path) as image:
        expected = image.convert("RGB").crop((left, top, left + 64, top + 64))
    import numpy as np

    assert torch.equal(load_pixels(wide), torch.from_numpy(np.asarray(expected, dtype=np.float32).copy()).permute(2, 0, 1) / 127.5 - 1.0)
    ids = sdxl.sample_conditioning([wide, tall], TrainingOptions())["add_time_ids"]
    assert ids.tolist() == [[64, 160, top, left, 64, 64], [128, 64, *tall.crop_top_left, 64, 64]]
    # the UNet sees them: a different crop corner changes its prediction
    model = unet(pipeline)
    latents, embeds = torch.randn(1, 4, 8, 8), {"prompt_embeds": torch.randn(1, 77, 32), "pooled_prompt_embeds": torch.randn(1, 16)}
    options = TrainingOptions(pretrained_model_name_or_path=str(pipeline))
    with torch.no_grad():
        one = sdxl.predict(model, latents, embeds, {"add_time_ids": ids[:1]}, torch.tensor([500]), options, None)
        moved = ids[:1].clone()
        moved[0, 3] += 16
        two = sdxl.predict(model, latents, embeds, {"add_time_ids": moved}, torch.tensor([500]), options, None)
    assert not torch.allclose(one, two)


def test_the_objective_is_diffusers_ddpm_with_simpletuners_options(pipeline):
    from diffusers import DDPMScheduler
    from diffusers.training_utils import compute_snr

    base = TrainingOptions(pretrained_model_name_or_path=str(pipeline))
    scheduler = DDPMScheduler.from_pretrained(pipeline, subfolder="scheduler")
    latents, noise, levels = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8), torch.tensor([10, 900])
    torch.testing.assert_close(sdxl.noisy_input(base, latents, noise, levels), scheduler.add_noise(latents, noise, levels))
    assert torch.equal(sdxl.target(base, latents, noise, levels), noise)  # the scheduler config says epsilon
    v = TrainingOptions(pretrained_model_name_or_path=str(pipeline), prediction_type="v_prediction", snr_gamma=5)
    torch.testing.assert_close(sdxl.target(v, latents, noise, levels), scheduler.get_velocity(latents, noise, levels))
    snr = compute_snr(scheduler, levels)
    torch.testing.assert_close(sdxl.loss_weights(v, levels), torch.minimum(snr, torch.full_like(snr, 5.0)) / (snr + 1))
    eps = TrainingOptions(pretrained_model_name_or_path=str(pipeline), snr_gamma=5)
    torch.testing.assert_close(sdxl.loss_weights(eps, levels), torch.minimum(snr, torch.full_like(snr, 5.0)) / snr)
    assert sdxl.loss_weights(base, levels) is None
    zero_snr = TrainingOptions(pretrained_model_name_or_path=str(pipeline), rescale_betas_zero_snr=True)
    assert float(sdxl.scheduler(zero_snr).alphas_cumprod[-1]) < 1e-6 < float(scheduler.alphas_cumprod[-1])  # SNR 0 at t = 999
    # SimpleTuner's segmented selection: a batch of 4 takes one timestep from each quarter, noisiest first
    picks = sdxl.sample_noise_levels(base, torch.zeros(4, 4, 8, 8), torch.Generator().manual_seed(0)).tolist()
    assert [750 <= picks[0] <= 999, 500 <= picks[1] <= 750, 250 <= picks[2] <= 500, 0 <= picks[3] <= 250] == [True] * 4
    later = TrainingOptions(pretrained_model_name_or_path=str(pipeline), timestep_bias_strategy="later", timestep_bias_multiplier=50.0,
                            timestep_bias_portion=0.1, disable_segmented_timestep_sampling=True)
    drawn = sdxl.sample_noise_levels(later, torch.zeros(400, 4, 1, 1), torch.Generator().manual_seed(0))
    assert (drawn >= 900).float().mean() > 0.8  # 50x weight on the last 10 %: 50/(50+9) of the draws
    # offset noise: the same per-(sample, channel) constant added to every pixel
    offset = TrainingOptions(offset_noise=True, noise_offset=0.5, noise_offset_probability=1.0)
    plain = sdxl.sample_noise(base, latents, torch.Generator().manual_seed(3))
    shifted = sdxl.sample_noise(offset, latents, torch.Generator().manual_seed(3))
    difference = shifted - plain
    assert torch.allclose(difference, difference[:, :, :1, :1].expand_as(difference)) and difference.abs().max() > 0


@pytest.mark.parametrize("algo", ["lokr", "tlora"])
def test_resume_continues_exactly(tmp_path, pipeline, algo):
    straight = write_family_setup(tmp_path, pipeline, "sdxl", lycoris=ALGOS[algo], options={"output_dir": str(tmp_path / "straight"), "snr_gamma": 5})
    assert run(straight) == 0
    train_in_halves(straight)
    assert_halves_trained_as_straight(tmp_path)


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_saved_weights_reproduce_the_trained_unet(tmp_path, pipeline, algo):
    from lycoris import create_lycoris_from_weights

    config = write_family_setup(tmp_path, pipeline, "sdxl", lycoris=ALGOS[algo], options={"learning_rate": 1e-2})
    plan = prepare_run(config, print)
    parts, generator = prepare(plan, print)
    stream = BatchStream(plan.data, plan.seed, 2)
    for _ in range(3):
        assert train_step(parts, [stream.next()], generator).loss > 0  # the step as a benchmark calls it
    path = tmp_path / "trained.safetensors"
    save_adapter(parts.adapter, path, {})
    fresh = unet(pipeline)
    with no_tlora_gc():  # LyCORIS' T-LoRA init runs gc.collect() per module: slow, not wrong
        loaded, _ = create_lycoris_from_weights(1.0, str(path), fresh)
    loaded.apply_to()
    options = plan.config.options
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    embeds = {"prompt_embeds": torch.randn(1, 77, 32), "pooled_prompt_embeds": torch.randn(1, 16)}
    conditioning = sdxl.sample_conditioning(plan.data.samples[:1], options)
    parts.denoiser.eval()
    with torch.no_grad():
        base = sdxl.predict(unet(pipeline), latents, embeds, conditioning, torch.tensor([300]), options, None)
        for timestep in (0, 300, 700):  # all ranks, and T-LoRA masks (no-ops for LoKr and LoRA)
            with timestep_mask(parts.adapter, timestep):
                expected = sdxl.predict(parts.denoiser, latents, embeds, conditioning, torch.tensor([timestep]), options, None)
                got = sdxl.predict(fresh, latents, embeds, conditioning, torch.tensor([timestep]), options, None)
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        with timestep_mask(parts.adapter, 300):
            trained = sdxl.predict(parts.denoiser, latents, embeds, conditioning, torch.tensor([300]), options, None)
        assert not torch.allclose(trained, base, atol=1e-5)  # the adapter does change the output


def test_feedforward_targets_that_go_nan_are_named_first_with_the_configs_targets(tmp_path, pipeline, capsys):
    # An honest way to NaN: a learning rate far too high blows the FeedForward adapters up within two steps.
    config = write_family_setup(
        tmp_path, pipeline, "sdxl", lycoris=SDXL_FEEDFORWARD_LORA,
        options={"learning_rate": 1e12, "max_train_steps": 6, "checkpoint_step_interval": 0, "train_batch_size": 1},
    )
    assert run(config) == 1
    out = capsys.readouterr().out
    assert "LYC304" in out  # the lint gate warned, and lyco train went on
    stop = out[out.index("error: training stopped"):]
    found = [line.strip() for line in stop.splitlines() if line.strip().startswith("found:")]
    assert found[0].startswith("found: FeedForward on the SDXL UNet: the known NaN hazard; train Attention only.")
    assert "target_module ['Attention', 'FeedForward']" in found[0] and "ff.net" in found[0]


def test_a_gradient_that_overflows_with_a_finite_loss_names_the_hazard_too(tmp_path, pipeline):
    """The loss is finite, the gradient of one FeedForward adapter overflows (a hook stands in for the fp16
    overflow that does it in practice): the stop names the family's hazard first, as for a NaN loss."""
    from lyco_train.loop import NonFiniteLoss

    config = write_family_setup(tmp_path, pipeline, "sdxl", lycoris=SDXL_FEEDFORWARD_LORA, options={"train_batch_size": 1})
    plan = prepare_run(config, print)
    parts, generator = prepare(plan, print)
    feedforward = next(lora for lora in parts.adapter.network.loras if "_ff_" in lora.lora_name)
    next(feedforward.parameters()).register_hook(lambda grad: grad + math.inf)
    with pytest.raises(NonFiniteLoss) as stopped:
        train_step(parts, [BatchStream(plan.data, plan.seed, 1).next()], generator)
    assert stopped.value.what == "gradient norm is inf"
    assert stopped.value.evidence[0].startswith("FeedForward on the SDXL UNet: the known NaN hazard")
    assert stopped.value.evidence[-1] == "the loss was finite but its gradient overflowed"


def test_attention_only_names_no_hazard(tmp_path, pipeline):
    assert sdxl.nan_hazards(SDXL_ATTENTION_LORA, ["down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"]) == []
    no_preset = sdxl.nan_hazards({"algo": "lora"}, ["mid_block.attentions.0.transformer_blocks.0.ff.net.2"])
    assert "no apply_preset target_module" in no_preset[0]


def test_learning_lowers_a_validation_loss_measured_as_the_pipeline_encodes(tmp_path, pipeline):
    """40 steps on 3 images; the fixed-noise validation loss (diffusers' own encoders, scheduler and time ids, the
    weights loaded by LyCORIS onto a fresh UNet) must drop (by about 11 %; 5 % is checked). benchmarks/learning.py
    measures 300 steps."""
    images = [
        ("red.png", (64, 64), (220, 30, 30), "a red circle on white background"),
        ("blue.png", (64, 64), (30, 30, 220), "a blue circle on white background"),
        ("green.png", (64, 64), (30, 200, 30), "a green circle on black background"),
    ]
    options = {"max_train_steps": 40, "checkpoint_step_interval": 0, "learning_rate": 1e-2, "caption_dropout_probability": 0.0}
    config = write_family_setup(tmp_path, pipeline, "sdxl", lycoris=SDXL_ATTENTION_LORA, options=options, images=images)
    items = [(tmp_path / "images" / name, caption) for name, _size, _colour, caption in images]
    before = validation_loss("sdxl", pipeline, items)
    assert run(config) == 0
    after = validation_loss("sdxl", pipeline, items, tmp_path / "output" / "pytorch_lora_weights.safetensors")
    assert after < 0.95 * before, (before, after)


def test_sdxl_options_lyco_cannot_honour_are_refused_with_the_fix(tmp_path, pipeline):
    from lyco_train.config import ConfigError, load_config

    local = dict(pretrained_model_name_or_path=str(pipeline))
    assert sdxl.flavour(TrainingOptions()) == "base-1.0"
    sdxl.check(TrainingOptions(**local, prediction_type="v_prediction", tokenizer_max_length=77))
    cases = [
        (dict(model_flavour="refiner-1.0"), "does not train the SDXL refiner"),
        (dict(prediction_type="sample"), "not an SDXL training objective"),
        (dict(prediction_type="flow_matching"), "not an SDXL training objective"),
        (dict(tokenizer_max_length=225), "SimpleTuner ignores it for SDXL base-1.0 and uses 77 tokens"),
        (dict(timestep_bias_strategy="later", timestep_bias_multiplier=0.0), "timestep_bias_multiplier must be above 0"),
        (dict(timestep_bias_strategy="range", timestep_bias_begin=500, timestep_bias_end=100), "begin < end"),
        (dict(pretrained_transformer_model_name_or_path="/x"), "pretrained_unet_model_name_or_path"),
    ]
    for options, message in cases:
        with pytest.raises(ConfigError, match=message):
            sdxl.check(TrainingOptions(**local, **options))
    # an SDXL option lyco train does not implement stays a clear error when set
    config = write_family_setup(tmp_path, pipeline, "sdxl", lycoris=SDXL_ATTENTION_LORA, options={"input_perturbation": 0.1})
    with pytest.raises(ConfigError, match="'input_perturbation' is set to 0.1 but lyco train does not implement input_perturbation"):
        load_config(config)


def test_the_sdxl_vae_encodes_in_fp32_when_fp16_would_overflow(pipeline):
    vae = sdxl.load_vae(TrainingOptions(pretrained_model_name_or_path=str(pipeline), vae_dtype="fp16"), torch.device("cpu"))
    assert vae.config.force_upcast and vae.dtype == torch.float32  # diffusers' force_upcast rule
    assert sdxl.load_vae(TrainingOptions(pretrained_model_name_or_path=str(pipeline)), torch.device("cpu")).dtype == torch.bfloat16
