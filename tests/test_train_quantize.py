"""A quantized base (`base_model_precision`), for real with torchao: int8 and float8 weight-only train a tiny
FLUX.2 on the CPU in bypass mode and the adapter loads onto the unquantized base; fp8-torchao needs a GPU;
every other choice is refused naming the supported ones; the dry run reports the base's memory, and its
estimate is what the quantized model really holds."""

import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("lycoris")
pytest.importorskip("torchao")

from safetensors.torch import load_file  # noqa: E402

from train_fixtures import FLUX2_LOKR, FLUX2_TLORA, one_thread, pipeline, write_setup  # noqa: E402,F401 (fixtures)

from lyco_train import run  # noqa: E402
from lyco_train.config import ConfigError  # noqa: E402
from lyco_train.quantize import SCHEMES, estimated_bytes, quantize_base, storage_bytes  # noqa: E402

CUDA_FP8 = torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9)
BF16 = {"mixed_precision": "bf16", "vae_dtype": "bf16"}


def transformer(pipeline, dtype=torch.bfloat16):
    from diffusers import Flux2Transformer2DModel

    return Flux2Transformer2DModel.from_pretrained(pipeline, subfolder="transformer", torch_dtype=dtype)


def fixed_batch_losses(root, pipeline, precision: str, steps: int = 10) -> list[float]:
    """The loss of one fixed micro-batch (same noise each time) over a few optimizer steps on a base quantized
    with ``precision``: a model that learns lowers it."""
    from lyco_train.loop import prepare, train_step
    from lyco_train.run import prepare_run

    config = write_setup(root, pipeline, options={**BF16, "base_model_precision": precision, "learning_rate": 5e-2, "lr_warmup_steps": 0,
                                                  "optimizer": "adamw_bf16", "caption_dropout_probability": 0.0})
    plan = prepare_run(config, print)
    parts, _generator = prepare(plan, print)
    if precision != "no_change":  # a quantized base always runs in bypass (an unquantized one takes the faster path)
        assert all(getattr(module, "bypass_mode", False) for module in parts.adapter.network.loras)
    return [train_step(parts, [[0]], torch.Generator().manual_seed(1)).loss for _ in range(steps)]


def test_int8_torchao_trains_a_tiny_flux2_and_its_adapter_loads_onto_the_bf16_base(tmp_path, pipeline, capsys):
    config = write_setup(tmp_path, pipeline, options={**BF16, "base_model_precision": "int8-torchao", "quantize_via": "cpu", "max_train_steps": 3})
    assert run(config) == 0
    out = capsys.readouterr().out
    assert "base model: int8-torchao, 23 of 23 Linear layers quantized" in out
    weights = tmp_path / "output" / "pytorch_lora_weights.safetensors"
    trained = load_file(str(weights))
    assert {tensor.dtype for tensor in trained.values()} == {torch.float32}
    assert any(tensor.abs().sum() > 0 for key, tensor in trained.items() if key.endswith("lokr_w2"))  # w2 starts at zero

    # the adapter is an ordinary LyCORIS file: it loads onto the unquantized bf16 base and changes its output
    from lycoris import create_lycoris_from_weights

    from lyco_train.families import get_family
    from lyco_train.options import TrainingOptions

    base, adapted = transformer(pipeline), transformer(pipeline)
    network, _ = create_lycoris_from_weights(1.0, str(weights), adapted)
    network.apply_to()
    assert len(network.loras) == 14
    generator = torch.Generator().manual_seed(0)
    latents, embeds = torch.randn(1, 16, 4, 6, generator=generator), torch.randn(1, 8, 48, generator=generator)
    flux2 = get_family("flux2")
    with torch.no_grad():
        outputs = [
            flux2.predict(model.eval(), latents.bfloat16(), {"prompt_embeds": embeds.bfloat16()}, {}, torch.tensor([0.5]), TrainingOptions(), None)
            for model in (base, adapted)
        ]
    assert torch.isfinite(outputs[1]).all() and not torch.allclose(outputs[0], outputs[1])


def learns_like_the_bf16_base(tmp_path, pipeline, precision: str) -> None:
    plain = fixed_batch_losses(tmp_path / "bf16", pipeline, "no_change")
    quantized = fixed_batch_losses(tmp_path / precision, pipeline, precision)
    assert quantized[0] == pytest.approx(plain[0], rel=0.02)  # the 8-bit base computes what the bf16 base computes
    assert plain[0] - plain[-1] > 0.01  # the tiny model learns this batch (slowly: it is random)
    assert quantized[0] - quantized[-1] == pytest.approx(plain[0] - plain[-1], rel=0.25), (plain, quantized)


@pytest.mark.parametrize("precision", ["int8-torchao", "fp8wo-torchao"])
def test_a_quantized_base_learns_like_the_bf16_base(tmp_path, pipeline, precision):
    learns_like_the_bf16_base(tmp_path, pipeline, precision)


@pytest.mark.skipif(not CUDA_FP8, reason="fp8-torchao needs a CUDA GPU of compute capability 8.9 or newer")
def test_fp8_torchao_learns_on_a_gpu(tmp_path, pipeline):
    learns_like_the_bf16_base(tmp_path, pipeline, "fp8-torchao")


@pytest.mark.skipif(CUDA_FP8, reason="this machine can run fp8-torchao")
def test_fp8_torchao_without_a_capable_gpu_is_a_clear_error(tmp_path, pipeline, capsys):
    config = write_setup(tmp_path, pipeline, options={**BF16, "base_model_precision": "fp8-torchao", "max_train_steps": 1})
    assert run(config) == 1
    out = capsys.readouterr().out
    assert "fp8-torchao" in out and "compute capability 8.9" in out and "int8-torchao" in out
    assert not (tmp_path / "output" / "pytorch_lora_weights.safetensors").exists()


@pytest.mark.parametrize(
    "precision, reason",
    [
        ("int8-quanto", "torchao only"), ("fp8-quanto", "torchao only"), ("nf4-bnb", "torchao only"), ("int8-sdnq", "torchao only"),
        ("fp8-native", "torchao only"), ("fp8-transformerengine", "torchao only"),
        ("int8dq-torchao", "no gradient to its input"), ("int4-torchao", "unquantized on the CPU"),
    ],
)
def test_unsupported_precisions_are_refused_naming_the_choices(tmp_path, pipeline, capsys, precision, reason):
    config = write_setup(tmp_path, pipeline, options={"base_model_precision": precision})
    assert run(config, dry_run=True) == 1
    out = capsys.readouterr().out
    assert f"base_model_precision {precision}" in out and reason in out
    assert "choose one of int8-torchao, fp8wo-torchao, fp8-torchao, or no_change" in out


def test_dynamic_activation_schemes_really_lose_the_input_gradient():
    """Why int8dq-torchao is refused, measured on the installed torchao (and the check that would catch it)."""
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    from lyco_train.quantize import check_input_gradient

    layer = torch.nn.Linear(32, 32)
    quantize_(layer, Int8DynamicActivationInt8WeightConfig())
    with pytest.raises(ConfigError, match="pass no gradient to their input"):
        check_input_gradient(layer, "int8dq-torchao")


@pytest.mark.parametrize(
    "lycoris, message",
    [
        ({**FLUX2_LOKR, "bypass_mode": False}, 'add "bypass_mode": true'),
        ({key: value for key, value in FLUX2_LOKR.items() if key != "bypass_mode"}, 'add "bypass_mode": true'),
        ({"algo": "full", "multiplier": 1.0, "linear_dim": 1, "linear_alpha": 1}, "full algo"),
    ],
    ids=["bypass-false", "bypass-absent", "full"],
)
def test_a_quantized_base_needs_bypass_mode(tmp_path, pipeline, capsys, lycoris, message):
    config = write_setup(tmp_path, pipeline, lycoris=lycoris, options={"base_model_precision": "int8-torchao"})
    assert run(config, dry_run=True) == 1
    assert message in capsys.readouterr().out


def test_what_lycoris_built_is_checked_for_bypass_and_tlora_is_refused_on_int8(pipeline):
    from lyco_train.adapter import build_adapter

    denoiser = transformer(pipeline)
    quantize_base(denoiser, "int8-torchao")
    mixed = copy.deepcopy(FLUX2_LOKR)
    mixed["apply_preset"]["module_algo_map"]["Flux2FeedForward"]["bypass_mode"] = False
    with pytest.raises(ConfigError, match="every LyCORIS module must run in bypass mode"):
        build_adapter(denoiser, mixed, seed=0, device=torch.device("cpu"), max_timestep=1000, quantized="int8-torchao")
    with pytest.raises(ConfigError, match="LyCORIS cannot build tlora on a int8-torchao base"):
        build_adapter(transformer_quantized(pipeline), {**FLUX2_TLORA, "bypass_mode": True}, seed=0, device=torch.device("cpu"),
                      max_timestep=1000, quantized="int8-torchao")


def transformer_quantized(pipeline):
    denoiser = transformer(pipeline)
    quantize_base(denoiser, "int8-torchao")
    return denoiser


@pytest.mark.parametrize("precision", ["int8-torchao", "fp8wo-torchao"])
@pytest.mark.parametrize("dtype, element_bytes", [(torch.bfloat16, 2), (torch.float32, 4)], ids=["bf16", "fp32"])
def test_the_memory_estimate_is_what_the_quantized_model_holds(pipeline, precision, dtype, element_bytes):
    from lyco_lint.meta_model.build import build_meta_model
    from lyco_lint.meta_model.resolve import resolve_model

    meta = build_meta_model(resolve_model(str(pipeline), "flux2"))
    real = transformer(pipeline, dtype)
    assert estimated_bytes(meta, "no_change", element_bytes) == storage_bytes(real)
    report = quantize_base(real, precision)
    assert estimated_bytes(meta, precision, element_bytes) == storage_bytes(real) == report.after_bytes
    assert report.after_bytes < (0.7 if dtype == torch.bfloat16 else 0.4) * report.before_bytes  # 8-bit Linear weights
    assert SCHEMES[precision].weight_bytes == 1


def test_the_dry_run_reports_the_base_memory(tmp_path, pipeline, capsys):
    config = write_setup(tmp_path, pipeline, options={**BF16, "base_model_precision": "int8-torchao"})
    assert run(config, dry_run=True) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("base model weights:"))
    assert " in bf16; " in line and "with int8-torchao (23 Linear layers quantized" in line
    assert not (tmp_path / "output").exists()


def test_quantize_via_pipeline_and_fsdp_are_refused():
    from lyco_train.options import TrainingOptions
    from lyco_train.quantize import check_precision

    with pytest.raises(ConfigError, match="quantize_via pipeline"):
        check_precision(TrainingOptions(base_model_precision="int8-torchao", quantize_via="pipeline"), FLUX2_LOKR, sharded=False)
    with pytest.raises(ConfigError, match="with FSDP"):
        check_precision(TrainingOptions(base_model_precision="int8-torchao"), FLUX2_LOKR, sharded=True)
    check_precision(TrainingOptions(base_model_precision="int8-torchao"), FLUX2_LOKR, sharded=False)  # fine


def test_lint_warns_about_the_same_config_the_trainer_refuses(tmp_path, pipeline):
    """LYC309 at lint time and the trainer's refusal agree on what needs bypass_mode."""
    from lyco_lint.engine import Options, lint_paths

    config = write_setup(tmp_path, pipeline, lycoris={**FLUX2_LOKR, "bypass_mode": False}, options={"base_model_precision": "int8-torchao"})
    codes = {finding.code for finding in lint_paths([str(config)], Options()).findings}
    assert "LYC309" in codes
