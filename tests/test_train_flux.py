"""`lyco train` end to end on a tiny real FLUX.1 pipeline (CPU): T5 + CLIP prompt embeddings as FluxPipeline
builds them, packed latents, flow matching with SimpleTuner's shift options and the guidance input, exact
resume, weights that LyCORIS loads onto a fresh transformer, the Attention/FluxAttention trap at the lint gate,
and learning measured outside the trainer."""

import json
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")
pytest.importorskip("lycoris")

from safetensors.torch import load_file  # noqa: E402

from family_fixtures import (  # noqa: E402
    FLUX_LOKR, FLUX_LORA, FLUX_TLORA, SIMPLETUNER_FLUX_LOKR, tiny_flux_pipeline, validation_loss, write_family_setup,
)
from train_fixtures import assert_halves_trained_as_straight, metrics, one_thread, train_in_halves  # noqa: E402,F401 (fixture)

from lyco_lint.meta_model.patches import no_tlora_gc  # noqa: E402
from lyco_train import run  # noqa: E402
from lyco_train.adapter import save_adapter, timestep_mask  # noqa: E402
from lyco_train.config import ConfigError  # noqa: E402
from lyco_train.data import BatchStream  # noqa: E402
from lyco_train.families import get_family  # noqa: E402
from lyco_train.families.flux import HUB_IDS  # noqa: E402
from lyco_train.loop import prepare, train_step  # noqa: E402
from lyco_train.options import TrainingOptions  # noqa: E402
from lyco_train.run import prepare_run  # noqa: E402

flux = get_family("flux")
ALGOS = {"lokr": FLUX_LOKR, "lora": FLUX_LORA, "tlora": FLUX_TLORA}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return tiny_flux_pipeline(tmp_path_factory)


def transformer(pipeline):
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel.from_pretrained(pipeline, subfolder="transformer").eval()


def inputs(seed=5):
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, 4, 8, 8, generator=generator)
    return latents, {"prompt_embeds": torch.randn(1, 512, 32, generator=generator), "pooled_prompt_embeds": torch.randn(1, 16, generator=generator)}


def test_flux_run_resumes_exactly_and_its_weights_load_onto_diffusers_transformer(tmp_path, pipeline):
    from lycoris import create_lycoris_from_weights

    straight = write_family_setup(tmp_path, pipeline, "flux", lycoris=FLUX_LOKR, options={"output_dir": str(tmp_path / "straight"), "flow_schedule_auto_shift": True})
    assert run(straight) == 0
    prompt = load_file(str(next((tmp_path / "cache" / "text").glob("*.safetensors"))))
    assert prompt["prompt_embeds"].shape == (512, 32)  # T5, SimpleTuner's 512 tokens for dev
    assert prompt["pooled_prompt_embeds"].shape == (16,)  # CLIP's pooled output
    assert load_file(str(next((tmp_path / "cache" / "vae").glob("*.safetensors"))))["latents"].shape == (4, 8, 8)
    train_in_halves(straight)
    assert_halves_trained_as_straight(tmp_path)
    assert all(math.isfinite(row["loss"]) for row in metrics(tmp_path / "straight"))
    network, _ = create_lycoris_from_weights(1.0, str(tmp_path / "straight" / "pytorch_lora_weights.safetensors"), transformer(pipeline))
    assert len(network.loras) == 15  # the FluxAttention and FeedForward projections of one double and one single block


def test_prompt_embeddings_and_latents_are_what_the_pipeline_builds(pipeline):
    from diffusers import FluxPipeline

    options = TrainingOptions(model_family="flux", model_flavour="dev", pretrained_model_name_or_path=str(pipeline), mixed_precision="no")
    ours = flux.encode_prompts(flux.load_text_encoder(options, torch.device("cpu")), ["a red circle", ""], options)
    reference = FluxPipeline.from_pretrained(pipeline)
    embeds, pooled, _ids = reference.encode_prompt(["a red circle", ""], prompt_2=None, device="cpu", max_sequence_length=512)
    torch.testing.assert_close(ours["prompt_embeds"], embeds, rtol=1e-4, atol=1e-4)  # same math; kernels may differ
    torch.testing.assert_close(ours["pooled_prompt_embeds"], pooled, rtol=1e-4, atol=1e-4)
    pixels = torch.rand(1, 3, 64, 64) * 2 - 1
    vae = flux.load_vae(TrainingOptions(pretrained_model_name_or_path=str(pipeline), vae_dtype="fp32"), torch.device("cpu"))
    with torch.no_grad():
        expected = (reference.vae.encode(pixels).latent_dist.mode() - reference.vae.config.shift_factor) * reference.vae.config.scaling_factor
        torch.testing.assert_close(flux.encode_images(vae, pixels), expected)
    # the schnell flavour uses SimpleTuner's 256 T5 tokens
    schnell = TrainingOptions(model_flavour="schnell", pretrained_model_name_or_path=str(pipeline), mixed_precision="no")
    assert flux.encode_prompts(flux.load_text_encoder(schnell, torch.device("cpu")), ["a cat"], schnell)["prompt_embeds"].shape[1] == 256


def test_predict_packs_as_the_pipeline_and_passes_the_guidance(pipeline):
    from diffusers import FluxPipeline

    model = transformer(pipeline)
    latents, embeds = inputs()
    sigma = torch.tensor([0.4])
    options = TrainingOptions(flux_guidance_value=3.5)
    with torch.no_grad():
        ours = flux.predict(model, latents, embeds, {}, sigma, options, None)
        packed = FluxPipeline._pack_latents(latents, 1, 4, 8, 8)
        ids = FluxPipeline._prepare_latent_image_ids(1, 4, 4, "cpu", packed.dtype)
        output = model(hidden_states=packed, timestep=sigma, guidance=torch.full([1], 3.5), pooled_projections=embeds["pooled_prompt_embeds"],
                       encoder_hidden_states=embeds["prompt_embeds"], txt_ids=torch.zeros(512, 3), img_ids=ids).sample
        torch.testing.assert_close(ours, FluxPipeline._unpack_latents(output, 64, 64, 8))
        other = flux.predict(model, latents, embeds, {}, sigma, TrainingOptions(flux_guidance_value=1.0), None)
    assert ours.shape == latents.shape and not torch.allclose(ours, other)  # the guidance input reaches the model


def test_shift_options_follow_simpletuner(pipeline):
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    latents = torch.zeros(256, 4, 64, 64)  # 1024 px: 32 x 32 = 1024 packed tokens
    uniform = dict(flow_use_uniform_schedule=True, pretrained_model_name_or_path=str(pipeline))
    raw = torch.rand(256, generator=torch.Generator().manual_seed(1))
    static = flux.sample_noise_levels(TrainingOptions(**uniform, flow_schedule_shift=3.0), latents, torch.Generator().manual_seed(1))
    torch.testing.assert_close(static, 3.0 * raw / (1 + 2.0 * raw))
    shift = math.exp(calculate_shift(1024, 256, 4096, 0.5, 1.15))  # the scheduler config's base/max shift
    auto = flux.sample_noise_levels(TrainingOptions(**uniform, flow_schedule_auto_shift=True), latents, torch.Generator().manual_seed(1))
    torch.testing.assert_close(auto, shift * raw / (1 + (shift - 1) * raw))  # the auto shift wins over flow_schedule_shift
    fast = flux.sample_noise_levels(TrainingOptions(flux_fast_schedule=True), latents, torch.Generator().manual_seed(1))
    assert set(fast.tolist()) <= {1.0, 0.75, 0.5, 0.25} and (fast == 1.0).float().mean() > 0.55


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_saved_weights_reproduce_the_trained_transformer(tmp_path, pipeline, algo):
    from lycoris import create_lycoris_from_weights

    config = write_family_setup(tmp_path, pipeline, "flux", lycoris=ALGOS[algo], options={"learning_rate": 1e-2})
    plan = prepare_run(config, print)
    parts, generator = prepare(plan, print)
    stream = BatchStream(plan.data, plan.seed, 2)
    for _ in range(3):
        assert train_step(parts, [stream.next()], generator).loss > 0
    path = tmp_path / "trained.safetensors"
    save_adapter(parts.adapter, path, {})
    fresh = transformer(pipeline)
    with no_tlora_gc():
        loaded, _ = create_lycoris_from_weights(1.0, str(path), fresh)
    loaded.apply_to()
    options = plan.config.options
    latents, embeds = inputs()
    parts.denoiser.eval()
    with torch.no_grad():
        base = flux.predict(transformer(pipeline), latents, embeds, {}, torch.tensor([0.3]), options, None)
        for sigma in (0.0, 0.3, 0.7):
            with timestep_mask(parts.adapter, sigma * 1000):
                expected = flux.predict(parts.denoiser, latents, embeds, {}, torch.tensor([sigma]), options, None)
                got = flux.predict(fresh, latents, embeds, {}, torch.tensor([sigma]), options, None)
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        with timestep_mask(parts.adapter, 300):
            trained = flux.predict(parts.denoiser, latents, embeds, {}, torch.tensor([0.3]), options, None)
        assert not torch.allclose(trained, base, atol=1e-5)


def test_the_lint_gate_names_fluxattention_for_a_simpletuner_attention_config(tmp_path, pipeline, capsys):
    """SimpleTuner's FLUX.1 copy builds diffusers' generic Attention; lyco train trains diffusers'
    FluxTransformer2DModel, whose attention class is FluxAttention: the gate refuses, naming both."""
    config = write_family_setup(tmp_path, pipeline, "flux", lycoris=SIMPLETUNER_FLUX_LOKR)
    assert run(config, dry_run=True) == 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "LYC205" in line)
    assert "[error]" in line and "target_module 'Attention' is not a module class of the model FluxTransformer2DModel" in line
    assert "did you mean 'FluxAttention'?" in line and "lyco train trains diffusers' FluxTransformer2DModel" in line
    assert "not starting" in out and not (tmp_path / "cache").exists()
    # Attention alone adapts nothing: LYC207 is an error at the gate too
    (tmp_path / "lycoris.json").write_text(json.dumps(dict(SIMPLETUNER_FLUX_LOKR, apply_preset={"target_module": ["Attention"]})))
    assert run(config, dry_run=True) == 1
    out = capsys.readouterr().out
    assert any("LYC207 [error]" in line and "'FluxAttention'" in line for line in out.splitlines())
    # `lyco lint --model auto` for SimpleTuner keeps it a warning: SimpleTuner's own copy does build Attention
    from lyco_lint.engine import Options, lint_paths

    findings = {finding.code: finding for finding in lint_paths([str(config)], Options(model="auto")).findings}
    assert findings["LYC207"].severity.value == "warning" and "SimpleTuner trains its own copy of the flux model" in findings["LYC207"].message


def test_flux_flavours_are_simpletuners_and_the_refused_ones_say_why(pipeline):
    assert flux.flavour(TrainingOptions()) == "krea" and flux.model_root(TrainingOptions()) == HUB_IDS["krea"]
    local = dict(pretrained_model_name_or_path=str(pipeline))
    flux.check(TrainingOptions(model_flavour="dev", **local))
    cases = [
        (dict(model_flavour="kontext"), "kontext is an edit model"),
        (dict(model_flavour="libreflux"), "attention-masked training"),
        (dict(model_flavour="schnell"), "flux_fast_schedule"),
        (dict(model_flavour="schnell", flux_fast_schedule=True), "disable_assistant_lora"),
        (dict(model_flavour="fluxbooru"), "flux_guidance_value 3.5"),
        (dict(model_flavour="dev", tokenizer_max_length=77), "SimpleTuner ignores it for FLUX.1 dev and uses 512 tokens"),
        (dict(model_flavour="dev", prediction_type="epsilon"), "flow matching"),
        (dict(model_flavour="pro"), "not a flux flavour"),
    ]
    for options, message in cases:
        with pytest.raises(ConfigError, match=message):
            flux.check(TrainingOptions(**local, **options))
    flux.check(TrainingOptions(model_flavour="schnell", flux_fast_schedule=True, disable_assistant_lora=True, tokenizer_max_length=256, **local))
    flux.check(TrainingOptions(model_flavour="fluxbooru", flux_guidance_value=3.5, **local))


def test_learning_lowers_a_validation_loss_measured_as_the_pipeline_encodes(tmp_path, pipeline):
    """40 steps on 3 images; the fixed-noise validation loss (FluxPipeline's own encoders, packing and position
    ids, the weights loaded by LyCORIS onto a fresh transformer) must drop (about 10 %; 5 % is checked).
    benchmarks/learning.py measures 300 steps."""
    images = [
        ("red.png", (64, 64), (220, 30, 30), "a red circle on white background"),
        ("blue.png", (64, 64), (30, 30, 220), "a blue circle on white background"),
        ("green.png", (64, 64), (30, 200, 30), "a green circle on black background"),
    ]
    options = {"max_train_steps": 40, "checkpoint_step_interval": 0, "learning_rate": 3e-3, "caption_dropout_probability": 0.0}
    config = write_family_setup(tmp_path, pipeline, "flux", lycoris=FLUX_LORA, options=options, images=images)
    items = [(tmp_path / "images" / name, caption) for name, _size, _colour, caption in images]
    before = validation_loss("flux", pipeline, items)
    assert run(config) == 0
    after = validation_loss("flux", pipeline, items, tmp_path / "output" / "pytorch_lora_weights.safetensors")
    assert after < 0.95 * before, (before, after)
