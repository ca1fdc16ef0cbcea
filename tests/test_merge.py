"""lyco merge: each module's merged weight is what its forward computes under apply_to() (every mergeable algo,
at full and partial strength), where lycoris-lora 4.1.3's merge_to() applies the LoKr/LoHa scale twice; T-LoRA
is refused; `lyco merge` writes a pipeline folder that DiffusionPipeline.from_pretrained loads and that
reproduces `lyco sample` at the same seed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("lycoris")

from family_fixtures import tiny_sdxl_pipeline  # noqa: E402
from train_fixtures import FLUX2_TLORA, one_thread, pipeline, write_setup  # noqa: E402,F401 (fixtures)

from lyco_lint.cli import main  # noqa: E402
from lyco_lint.knowledge.lycoris import network_arguments  # noqa: E402
from lyco_lint.meta_model.network import build_network  # noqa: E402
from lyco_train.config import ConfigError  # noqa: E402
from lyco_train.merge import TLORA_REFUSAL, merge_into  # noqa: E402

BIN = Path(sys.executable).parent
TARGETS = {"target_module": ["Attention", "ResnetBlock2D"]}  # linear and conv layers of the SDXL UNet
ALGOS = {
    "lora": {"algo": "lora", "linear_dim": 4, "linear_alpha": 2},
    "locon-conv": {"algo": "locon", "linear_dim": 4, "linear_alpha": 2, "conv_dim": 4, "conv_alpha": 1},
    "loha-scale-0.5": {"algo": "loha", "linear_dim": 4, "linear_alpha": 2},
    "lokr-full-scale-1": {"algo": "lokr", "linear_dim": 10000, "linear_alpha": 1, "factor": 4, "full_matrix": True},
    "lokr-w2-decomposed-scale-0.5": {"algo": "lokr", "linear_dim": 2, "linear_alpha": 1, "factor": 4},
    "lokr-w1-w2-decomposed-scale-0.5": {"algo": "lokr", "linear_dim": 2, "linear_alpha": 1, "factor": 4, "decompose_both": True},
    "full": {"algo": "full"},
    "dora": {"algo": "lora", "linear_dim": 4, "linear_alpha": 2, "dora_wd": True},
    "lokr-dora": {"algo": "lokr", "linear_dim": 2, "linear_alpha": 1, "factor": 4, "dora_wd": True},
    "ia3": {"algo": "ia3"},
    "glora": {"algo": "glora", "linear_dim": 4, "linear_alpha": 2},
    "boft": {"algo": "boft", "linear_dim": 4},
    "diag-oft": {"algo": "diag-oft", "linear_dim": 4},
}


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    return tiny_sdxl_pipeline(tmp_path_factory)


def unet(folder):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval()


def unet_inputs():
    generator = torch.Generator().manual_seed(1)
    return {
        "sample": torch.randn(1, 4, 8, 8, generator=generator), "timestep": torch.tensor([500]),
        "encoder_hidden_states": torch.randn(1, 77, 32, generator=generator),
        "added_cond_kwargs": {"text_embeds": torch.randn(1, 16, generator=generator), "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])},
    }


def trained_looking(model, config, seed=0):
    """The LyCORIS network lyco trains, with every factor moved off its initial value (so each matters)."""
    torch.manual_seed(seed)
    network = build_network(model, network_arguments({"multiplier": 1.0, **config, "apply_preset": TARGETS})).network
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in network.loras:
            for parameter in module.parameters():
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return network


def output(model):
    with torch.no_grad():
        return model(**unet_inputs()).sample


@pytest.mark.parametrize("name", sorted(ALGOS))
def test_merged_equals_applied(sdxl, name):
    """At full strength and at 0.6 (DoRA's decomposition and LoKr/LoHa's scale both meet the multiplier)."""
    base = output(unet(sdxl))
    applied_model = unet(sdxl)
    applied = trained_looking(applied_model, ALGOS[name])
    applied.apply_to()
    applied.eval()
    for strength in (1.0, 0.6):
        applied.set_multiplier(strength)
        expected = output(applied_model)
        merged_model = unet(sdxl)
        network = trained_looking(merged_model, ALGOS[name])
        assert merge_into(network, strength) == len(network.loras) > 10
        got = output(merged_model)
        effect = (expected - base).norm()
        assert effect > 0.05  # the adapter changes the output
        assert (got - expected).norm() / effect < 1e-4, (name, strength)


def test_lycoris_merge_to_applies_the_lokr_and_loha_scale_twice_as_lint_says(sdxl, tmp_path):
    """The bug lyco merge avoids, pinned on lycoris-lora 4.1.3 and tied to lint's fact (Module.merge_scale):
    merge_to() changes each layer by merge_scale / lycoris_scale times the change apply_to() makes."""
    from lyco_lint.weights.adapter import read_adapter
    from lyco_lint.weights.reader import TensorData, read_header

    for name in ("lokr-w2-decomposed-scale-0.5", "loha-scale-0.5", "lokr-full-scale-1", "lora"):
        model = unet(sdxl)
        network = trained_looking(model, ALGOS[name])
        path = tmp_path / f"{name}.safetensors"
        network.apply_to()  # registers the modules, so that the network's state dict holds them
        network.save_weights(str(path), torch.float32, {})
        network.restore()
        modules = read_adapter(read_header(path), TensorData(read_header(path))).modules
        before = {module.lora_name: module.org_module[0].weight.detach().clone() for module in network.loras}
        ours = unet(sdxl)
        merge_into(trained_looking(ours, ALGOS[name]), 1.0)
        ours_weights = dict(ours.named_parameters())
        network.merge_to(1.0)
        names = {id(layer): path for path, layer in model.named_modules()}
        for module in network.loras:
            layer_path = names[id(module.org_module[0])]
            lycoris_change = module.org_module[0].weight.detach() - before[module.lora_name]
            our_change = ours_weights[f"{layer_path}.weight"].detach() - before[module.lora_name]
            fact = modules[module.lora_name]
            ratio = fact.merge_scale / fact.lycoris_scale
            torch.testing.assert_close(lycoris_change, ratio * our_change, rtol=1e-4, atol=1e-6)
        expect_twice = name.endswith("scale-0.5")
        assert any(abs(m.merge_scale - m.lycoris_scale) > 1e-9 for m in modules.values()) == expect_twice, name


def test_tlora_is_refused_with_the_reason_and_what_to_use(pipeline):
    from diffusers import Flux2Transformer2DModel

    model = Flux2Transformer2DModel.from_pretrained(pipeline, subfolder="transformer")
    network = build_network(model, network_arguments(FLUX2_TLORA)).network
    with pytest.raises(ConfigError) as refused:
        merge_into(network, 1.0)
    assert str(refused.value) == TLORA_REFUSAL
    assert "depends on the timestep" in TLORA_REFUSAL and "lyco sample" in TLORA_REFUSAL


# -- the command ------------------------------------------------------------------------------------------------

SCALED_LOKR = {  # w2 decomposed (factor 2 leaves 8x8 blocks, rank 2 < 4) and alpha 1 / dim 2: scale 0.5
    "algo": "lokr", "multiplier": 1.0, "linear_dim": 2, "linear_alpha": 1, "factor": 2,
    "apply_preset": {"target_module": ["Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention"]},
}
SAMPLE_OPTIONS = {
    "max_train_steps": 3, "learning_rate": 3e-2, "lr_warmup_steps": 0, "validation_disable": True, "validation_resolution": "32",
    "validation_num_inference_steps": 3, "validation_guidance": 3.0, "validation_no_cfg_until_timestep": 0, "num_validation_images": 2,
}


def lyco(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lyco"), *arguments], capture_output=True, text=True, timeout=600, env=quiet_env())


def quiet_env() -> dict:
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def test_lyco_merge_reloads_and_reproduces_lyco_sample(tmp_path, pipeline, capsys):
    """A LoKr of scale 0.5 (where merge_to would bake in 0.25): the merged folder loads with
    DiffusionPipeline.from_pretrained and its own text encoder and pipeline call render what `lyco sample`
    renders (the adapter applied at the same seed)."""
    import numpy
    from diffusers import DiffusionPipeline
    from PIL import Image

    from lyco_train import run

    config = write_setup(tmp_path, pipeline, lycoris=SCALED_LOKR, options={**SAMPLE_OPTIONS, "validation_prompt": "a red circle"})
    assert run(config) == 0
    assert main(["sample", str(config), "--dtype", "bf16", "--output", str(tmp_path / "applied")]) == 0
    assert "applied (bf16)" in capsys.readouterr().out
    exact = lyco("sample", str(config), "--output", str(tmp_path / "samples"))
    assert exact.returncode == 0, exact.stdout + exact.stderr
    assert "merged into the float32 weights" in exact.stdout and "wrote" in exact.stdout
    merged = lyco("merge", str(config), "--output", str(tmp_path / "merged"))
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert "merge_to() would apply the scale of" in merged.stdout and "(0.5 → 0.25)" in merged.stdout
    assert main(["merge", str(config), "--output", str(tmp_path / "merged")]) == 2
    assert "never overwrites" in capsys.readouterr().out

    pipe = DiffusionPipeline.from_pretrained(tmp_path / "merged")
    assert type(pipe).__name__ == "Flux2KleinPipeline"
    negative, _ = pipe.encode_prompt(prompt="blurry, cropped, ugly", max_sequence_length=24)
    images = pipe(
        prompt="a red circle", negative_prompt_embeds=negative, guidance_scale=3.0, height=32, width=32, num_inference_steps=3,
        num_images_per_prompt=2, generator=torch.Generator().manual_seed(7), max_sequence_length=24,
    ).images
    for index, image in enumerate(images, 1):
        ours = numpy.asarray(Image.open(tmp_path / "samples" / f"validation-{index}-32x32.png"), dtype=numpy.int16)
        assert numpy.abs(numpy.asarray(image, dtype=numpy.int16) - ours).max() <= 1
    # the bf16 applied render is the same picture up to bf16 rounding
    applied = numpy.asarray(Image.open(tmp_path / "applied" / "validation-1-32x32.png"), dtype=numpy.int16)
    assert numpy.abs(applied - numpy.asarray(images[0], dtype=numpy.int16)).mean() < 8


def test_lyco_merge_refuses_tlora_and_bad_input(tmp_path, pipeline, capsys):
    from lyco_train import run

    config = write_setup(tmp_path, pipeline, lycoris=FLUX2_TLORA, options={**SAMPLE_OPTIONS, "max_train_steps": 1})
    assert run(config) == 0
    refused = lyco("merge", str(config), "--output", str(tmp_path / "merged"))
    assert refused.returncode == 2
    assert "T-LoRA cannot be merged" in refused.stdout and "lyco sample" in refused.stdout and "Traceback" not in refused.stderr
    assert not (tmp_path / "merged").exists()
    capsys.readouterr()
    assert main(["merge", str(config), "--weights", str(tmp_path / "nothing.safetensors"), "--output", str(tmp_path / "m")]) == 2
    assert "nothing.safetensors not found" in capsys.readouterr().out
    assert main(["merge", str(config), "--model", str(pipeline), "--output", str(tmp_path / "m")]) == 2
    assert "not both" in capsys.readouterr().out
    assert json.loads((tmp_path / "lycoris.json").read_text())["algo"] == "tlora"
