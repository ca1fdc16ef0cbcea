"""The adapter: LyCORIS network building, T-LoRA masks per timestep, saved weights that reproduce the
trained network, and the training step as a function."""

import copy
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")
lycoris = pytest.importorskip("lycoris")

from safetensors import safe_open  # noqa: E402

from train_fixtures import FLUX2_LOKR, FLUX2_TLORA, one_thread, pipeline, write_setup  # noqa: E402,F401 (fixtures)

from lyco_lint.meta_model.patches import no_tlora_gc  # noqa: E402
from lyco_train.adapter import active_ranks, build_adapter, save_adapter, timestep_mask  # noqa: E402
from lyco_train.config import ConfigError  # noqa: E402
from lyco_train.data import BatchStream  # noqa: E402
from lyco_train.families import get_family  # noqa: E402
from lyco_train.loop import prepare, train_step  # noqa: E402
from lyco_train.options import TrainingOptions  # noqa: E402
from lyco_train.run import prepare_run  # noqa: E402

flux2 = get_family("flux2")


def denoiser(pipeline):
    from diffusers import Flux2Transformer2DModel

    return Flux2Transformer2DModel.from_pretrained(pipeline, subfolder="transformer")


def inputs(seed=0, batch=1):
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(batch, 16, 4, 6, generator=generator)
    embeds = torch.randn(batch, 8, 48, generator=generator)
    return latents, embeds


def forward(model, latents, embeds, sigma=0.5):
    return flux2.predict(model, latents, {"prompt_embeds": embeds}, {}, torch.full((latents.shape[0],), sigma), TrainingOptions(), None)


def build(pipeline, lycoris_config, seed=0):
    model = denoiser(pipeline)
    adapter = build_adapter(model, lycoris_config, seed=seed, device=torch.device("cpu"), max_timestep=1000)
    return model, adapter


def test_zero_adapted_modules_is_a_clear_error(pipeline):
    nothing = {"algo": "lora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 1, "apply_preset": {"target_module": [], "target_name": ["no_such_layer"]}}
    with pytest.raises(ConfigError, match="adapts no module.*Flux2Attention"):
        build(pipeline, nothing)


def test_class_level_preset_state_from_an_earlier_network_is_reset(pipeline):
    from lycoris import LycorisNetwork

    LycorisNetwork.TARGET_EXCLUDE_NAME = [".*"]  # what a previous network's preset could leave behind
    LycorisNetwork.MODULE_ALGO_MAP = {"Flux2FeedForward": {"algo": "loha"}}
    _model, adapter = build(pipeline, FLUX2_LOKR)
    assert len(adapter.network.loras) == 14
    assert {type(module).__name__ for module in adapter.network.loras} == {"LokrModule"}


def test_adapter_parameters_are_float32_and_the_base_model_is_frozen(pipeline):
    model, adapter = build(pipeline, FLUX2_LOKR)
    assert all(p.dtype == torch.float32 and p.requires_grad for p in adapter.parameters())
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("timestep, ranks", [(0, 4), (250, 3), (500, 2), (999, 1)])
def test_tlora_mask_sets_the_active_ranks_of_each_timestep(pipeline, timestep, ranks):
    from lycoris.modules.tlora import get_timestep_mask

    model, adapter = build(pipeline, FLUX2_TLORA)
    assert active_ranks(adapter, timestep) == ranks
    latents, embeds = inputs()
    with timestep_mask(adapter, timestep):
        assert get_timestep_mask().tolist() == [[1.0] * ranks + [0.0] * (4 - ranks)]
        forward(model, latents, embeds).square().mean().backward()
    assert get_timestep_mask() is None  # cleared: nothing leaks into the next forward
    # Only the active ranks learn: the masked ranks of every lambda get no gradient.
    for module in adapter.network.loras:
        grad = module.lambda_layer.grad[0]
        assert torch.count_nonzero(grad[ranks:]) == 0
        assert torch.count_nonzero(grad[:ranks]) > 0


def test_tlora_mask_stays_set_through_a_checkpointed_backward(pipeline):
    """With gradient checkpointing, backward re-runs the forward; the mask must still be set then."""
    model, adapter = build(pipeline, FLUX2_TLORA)
    with torch.no_grad():  # a trained-looking adapter, so every rank matters
        for module in adapter.network.loras:
            module.lambda_layer.add_(0.3)

    def grads(checkpointing, clear_first):
        adapter.network.zero_grad(set_to_none=True)
        model.enable_gradient_checkpointing() if checkpointing else model.disable_gradient_checkpointing()
        latents, embeds = inputs()
        latents.requires_grad_(True)
        with timestep_mask(adapter, 900):
            loss = forward(model, latents, embeds).square().mean()
            if not clear_first:
                loss.backward()
        if clear_first:
            loss.backward()
        return [module.lambda_layer.grad.clone() for module in adapter.network.loras]

    plain = grads(checkpointing=False, clear_first=False)
    kept = grads(checkpointing=True, clear_first=False)
    cleared = grads(checkpointing=True, clear_first=True)
    for a, b in zip(plain, kept):
        torch.testing.assert_close(b, a)
    assert any(not torch.allclose(a, c) for a, c in zip(plain, cleared))  # the hazard this ordering avoids


def setup_parts(tmp_path, pipeline, lycoris_config, **options):
    run = prepare_run(write_setup(tmp_path, pipeline, lycoris=lycoris_config, options=options), print)
    parts, generator = prepare(run, print)
    return parts, generator, BatchStream(run.data, run.seed, run.config.options.train_batch_size)


@pytest.mark.parametrize("lycoris_config", [FLUX2_LOKR, FLUX2_TLORA], ids=["lokr", "tlora"])
def test_saved_weights_reproduce_the_trained_network(tmp_path, pipeline, lycoris_config):
    from lycoris import create_lycoris_from_weights

    parts, generator, stream = setup_parts(tmp_path, pipeline, lycoris_config, learning_rate=1e-2, lr_warmup_steps=0)
    for _ in range(3):
        result = train_step(parts, [stream.next()], generator)  # the step as a benchmark calls it
        assert result.loss > 0
    path = tmp_path / "trained.safetensors"
    save_adapter(parts.adapter, path, {"test": "1"})
    with safe_open(str(path), "pt") as handle:
        assert json.loads(handle.metadata()["lycoris_config"])["algo"] == lycoris_config["algo"]

    fresh = denoiser(pipeline)
    with no_tlora_gc():  # LyCORIS' T-LoRA init runs gc.collect() per module: slow, not wrong
        loaded, _ = create_lycoris_from_weights(1.0, str(path), fresh)
    loaded.apply_to()
    trained = parts.denoiser.eval()
    fresh.eval()
    latents, embeds = inputs(seed=3, batch=1)
    with torch.no_grad():
        base = forward(denoiser(pipeline).eval(), latents, embeds)
        for timestep in (0, 700):  # all ranks, and a T-LoRA mask (a no-op for LoKr)
            with timestep_mask(parts.adapter, timestep):
                expected = forward(trained, latents, embeds)
                got = forward(fresh, latents, embeds)
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(expected, base, atol=1e-4)  # the adapter does change the output


def test_tlora_batch_of_two_runs_one_forward_with_per_sample_masks(tmp_path, pipeline, monkeypatch):
    from lyco_train.layer_paths import SAMPLE_MASKS

    parts, generator, stream = setup_parts(tmp_path, pipeline, copy.deepcopy(FLUX2_TLORA), train_batch_size=2)
    calls = []
    original = flux2.predict

    def counting(denoiser_, noisy, *args):
        calls.append((noisy.shape[0], tuple(SAMPLE_MASKS[0].shape)))
        return original(denoiser_, noisy, *args)

    monkeypatch.setattr(flux2, "predict", counting)
    batch = next(b for b in iter(stream.next, None) if len(b) == 2)
    result = train_step(parts, [batch], generator)
    assert len({active_ranks(parts.adapter, t) for t in result.timesteps}) == 2  # two different rank masks
    assert calls == [(2, (2, 4))]  # one forward of both samples, one mask row each
    assert SAMPLE_MASKS == {}  # cleared after the backward


@pytest.mark.parametrize("name", ["linear", "sine", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"])
def test_every_lr_scheduler_builds_steps_and_round_trips_through_json(tmp_path, name):
    from lyco_train.optim import build_optimizer, build_scheduler

    config = TrainingOptions(
        optimizer="adamw_bf16", learning_rate=1e-3, train_batch_size=1, lr_scheduler=name, lr_warmup_steps=3,
        lr_num_cycles=2, lr_power=0.8, lr_end=1e-5,
    )
    params = [torch.nn.Parameter(torch.ones(2))]
    optimizer = build_optimizer(params, config)
    scheduler = build_scheduler(optimizer, config, 20)
    lrs = []
    for _ in range(8):
        params[0].grad = torch.ones(2)
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    again = build_scheduler(build_optimizer([torch.nn.Parameter(torch.ones(2))], config), config, 20)
    again.load_state_dict(json.loads(json.dumps(scheduler.state_dict())))
    assert again.get_last_lr() == scheduler.get_last_lr()
    if name not in ("constant",):
        assert len(set(lrs)) > 1


def test_adamw_bf16_follows_simpletuners_update_rule():
    from lyco_train.optim import AdamWBF16Float32

    param = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = AdamWBF16Float32([param], lr=0.1, betas=(0.9, 0.999), eps=1e-6, weight_decay=1e-2)
    param.grad = torch.tensor([0.5, -1.0])
    optimizer.step()
    # no first-moment bias correction: m = 0.1·g, v = 0.001·g², step = lr·sqrt(1 − β2)·m/(sqrt(v)+eps)
    g = torch.tensor([0.5, -1.0])
    expected = torch.tensor([1.0, -2.0]) * (1 - 0.1 * 1e-2) - 0.1 * (0.001 ** 0.5) * (0.1 * g) / ((0.001 * g * g).sqrt() + 1e-6)
    torch.testing.assert_close(param.detach(), expected)
