"""Rendering as trained: a T-LoRA render masks every denoiser call of the diffusers pipeline (the conditional and
the negative-prompt pass of each step) with the rank mask of that call's timestep, so each call's output is
the trained network's output at that timestep (``Family.predict`` under the training step's mask); the
strength is applied and restored; the global random state is left as it was."""

import random

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("lycoris")

from dataclasses import replace  # noqa: E402

from family_fixtures import SDXL_ATTENTION_TLORA, tiny_sdxl_pipeline  # noqa: E402
from train_fixtures import FLUX2_TLORA, one_thread, pipeline  # noqa: E402,F401 (fixtures)

from lyco_train import sampling  # noqa: E402
from lyco_train.adapter import active_ranks, build_adapter, timestep_mask  # noqa: E402
from lyco_train.families import get_family  # noqa: E402
from lyco_train.options import TrainingOptions  # noqa: E402


def trained_looking(adapter):
    """Every rank of the T-LoRA changes the output (a fresh one changes nothing)."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for module in adapter.network.loras:
            module.lambda_layer.add_(0.5 + 0.1 * torch.randn(module.lambda_layer.shape, generator=generator))


class Calls:
    """Every denoiser call: its arguments, its output and the active T-LoRA ranks during it."""

    def __init__(self, denoiser):
        from lycoris.modules.tlora import get_timestep_mask

        self.calls = []

        def record(_module, args, kwargs, output):
            mask = get_timestep_mask()
            ranks = None if mask is None else int(mask.sum())
            self.calls.append((args, dict(kwargs), output[0] if isinstance(output, tuple) else output.sample, ranks))

        self.handle = denoiser.register_forward_hook(record, with_kwargs=True)


def flux2_setup(pipeline_folder):
    from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel

    family = get_family("flux2")
    options = TrainingOptions(
        model_family="flux2", model_flavour="klein-4b", pretrained_model_name_or_path=str(pipeline_folder), mixed_precision="no",
        validation_guidance=3.0, validation_no_cfg_until_timestep=1,
    )
    denoiser = Flux2Transformer2DModel.from_pretrained(pipeline_folder, subfolder="transformer")
    adapter = build_adapter(denoiser, FLUX2_TLORA, seed=0, device=torch.device("cpu"), max_timestep=family.num_train_timesteps)
    trained_looking(adapter)
    vae = AutoencoderKLFlux2.from_pretrained(pipeline_folder, subfolder="vae")
    return family, options, denoiser, adapter, family.pipeline(options, denoiser, vae)


def embeddings(seed, length=8, width=48):
    generator = torch.Generator().manual_seed(seed)
    return {"prompt_embeds": torch.randn(length, width, generator=generator)}


def test_masked_tlora_sampling_equals_the_trained_networks_per_step_outputs(pipeline):
    family, options, denoiser, adapter, pipe = flux2_setup(pipeline)
    calls = Calls(denoiser)
    with sampling.inference(denoiser, adapter.network):
        images = sampling.render(family, options, pipe, embeddings(1), embeddings(2), width=32, height=32, count=2, steps=8, seed=5,
                                 device=torch.device("cpu"), dtype=torch.float32, adapter=adapter)
    calls.handle.remove()
    assert len(images) == 2 and images[0].size == (32, 32)
    # 8 steps; the negative-prompt pass from step 1 on (validation_no_cfg_until_timestep 1): 8 + 7 calls
    assert len(calls.calls) == 15
    ranks_seen = []
    with torch.no_grad():
        for args, kwargs, output, ranks in calls.calls:
            sigma = kwargs["timestep"]
            timestep = float(family.timesteps(sigma)[0])
            assert ranks == active_ranks(adapter, timestep)  # the mask of the call's own timestep was set
            ranks_seen.append(ranks)
            tokens = kwargs["hidden_states"]  # (B, H·W, C) of an 8×8 latent grid
            latents = tokens.permute(0, 2, 1).reshape(tokens.shape[0], tokens.shape[2], 8, 8)
            with timestep_mask(adapter, timestep):  # the training step's mask for this timestep
                trained = family.predict(denoiser, latents, {"prompt_embeds": kwargs["encoder_hidden_states"]}, {}, sigma, options, None)
            torch.testing.assert_close(trained.reshape(tokens.shape[0], tokens.shape[2], 64).permute(0, 2, 1), output, rtol=1e-5, atol=1e-6)
    assert ranks_seen[0] < 4 and ranks_seen == sorted(ranks_seen) and len(set(ranks_seen)) > 1  # noisy steps use fewer ranks

    # without a mask (every rank at every step, as merged weights or a plain apply_to would run) the first step differs
    args, kwargs, output, _ranks = calls.calls[0]
    with torch.no_grad(), sampling.inference(denoiser, adapter.network):
        unmasked = denoiser(*args, **kwargs)[0]
        with sampling.adapter_strength(adapter.network, 0.0):
            base = denoiser(*args, **kwargs)[0]
    effect = (output - base).norm()
    assert effect > 0 and (unmasked - output).norm() > 0.5 * effect  # here: all 4 ranks instead of 1


def test_sdxl_classifier_free_guidance_batch_gets_one_mask_per_call(tmp_path_factory):
    """SDXL's pipeline runs the negative and the conditional pass as one batch of two: one timestep, one mask;
    each call's output is the network's output under that timestep's training mask."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    folder = tiny_sdxl_pipeline(tmp_path_factory)
    family = get_family("sdxl")
    options = TrainingOptions(model_family="sdxl", pretrained_model_name_or_path=str(folder), mixed_precision="no", validation_guidance=4.0)
    denoiser = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    adapter = build_adapter(denoiser, SDXL_ATTENTION_TLORA, seed=0, device=torch.device("cpu"), max_timestep=family.num_train_timesteps)
    trained_looking(adapter)
    pipe = family.pipeline(options, denoiser, AutoencoderKL.from_pretrained(folder, subfolder="vae"))
    assert type(pipe.scheduler).__name__ == "DDIMScheduler" and pipe.scheduler.config.timestep_spacing == "trailing"
    prompt = {"prompt_embeds": torch.randn(77, 32), "pooled_prompt_embeds": torch.randn(16)}
    negative = {"prompt_embeds": torch.randn(77, 32), "pooled_prompt_embeds": torch.randn(16)}
    calls = Calls(denoiser)
    with sampling.inference(denoiser, adapter.network):
        sampling.render(family, options, pipe, prompt, negative, width=64, height=64, count=1, steps=3, seed=0,
                        device=torch.device("cpu"), dtype=torch.float32, adapter=adapter)
        calls.handle.remove()
        assert len(calls.calls) == 3
        for args, kwargs, output, ranks in calls.calls:
            timestep = float(args[1])
            assert args[0].shape[0] == 2 and ranks == active_ranks(adapter, timestep)
            with timestep_mask(adapter, timestep):
                again = denoiser(*args, **kwargs)[0]
            torch.testing.assert_close(again, output)
    assert [float(args[1]) for args, *_ in calls.calls] == [999.0, 666.0, 332.0]


def test_strength_is_applied_then_restored_and_the_random_state_left_alone(pipeline):
    family, options, denoiser, adapter, pipe = flux2_setup(pipeline)
    network = adapter.network
    network.set_multiplier(0.8)  # a training multiplier other than 1
    denoiser.train()  # as in training (the loop's prepare)
    random.seed(1)
    torch.manual_seed(1)
    expected_python, expected_torch = random.random(), torch.rand(3)
    random.seed(1)
    torch.manual_seed(1)
    renders = {}
    for strength in (0.0, 1.0):
        with sampling.independent_random_state(torch.device("cpu")), sampling.inference(denoiser, network), sampling.adapter_strength(network, strength):
            assert {module.multiplier for module in network.loras} == {strength}
            random.random()
            torch.rand(7)
            renders[strength] = sampling.render(family, replace(options, validation_guidance=1.0), pipe, embeddings(1), None, width=32, height=32,
                                                count=1, steps=2, seed=3, device=torch.device("cpu"), dtype=torch.float32, adapter=adapter)
        assert network.multiplier == 0.8 and {module.multiplier for module in network.loras} == {0.8}
    assert random.random() == expected_python and torch.equal(torch.rand(3), expected_torch)
    assert denoiser.training and all(module.training for module in network.loras)  # the training modes are back
    with sampling.inference(denoiser, None), timestep_mask(adapter, 0):
        network.set_multiplier(0.0)
        base = sampling.render(family, replace(options, validation_guidance=1.0), pipe, embeddings(1), None, width=32, height=32, count=1,
                               steps=2, seed=3, device=torch.device("cpu"), dtype=torch.float32)
    import numpy

    assert numpy.array_equal(numpy.asarray(base[0]), numpy.asarray(renders[0.0][0]))  # strength 0 is the base model
    assert not numpy.array_equal(numpy.asarray(renders[1.0][0]), numpy.asarray(renders[0.0][0]))
