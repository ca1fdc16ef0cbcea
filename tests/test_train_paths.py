"""The adapter path of each layer (lyco_train.layer_paths): bypass and the rebuilt weight compute the same
function wherever lyco switches between them (checked against LyCORIS's own forwards, per algo), the layers
where they differ keep the config's path, the choice is measured once and cached, pinned with --adapter-path,
and training on either path saves the same weights; T-LoRA's per-sample masks in one batched forward give the
per-sample loop's gradients."""

import copy
import json
import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
lycoris = pytest.importorskip("lycoris")

from safetensors import safe_open  # noqa: E402

from train_fixtures import FLUX2_LOKR, FLUX2_TLORA, one_thread, pipeline, write_setup  # noqa: E402,F401 (fixtures)

from lyco_train import layer_paths  # noqa: E402
from lyco_train.adapter import build_adapter, sample_masks, save_adapter, timestep_mask  # noqa: E402
from lyco_train.data import BatchStream  # noqa: E402
from lyco_train.families import get_family  # noqa: E402
from lyco_train.loop import forward_groups, prepare, probe_forward, train_step  # noqa: E402
from lyco_train.options import TrainingOptions  # noqa: E402
from lyco_train.run import prepare_run  # noqa: E402

logging.getLogger("lycoris").setLevel(logging.ERROR)

# algo -> create_lycoris arguments; every one of them switches between the paths on a layer without a bias
SWITCHABLE = {
    "lora": dict(algo="lora", linear_dim=4, linear_alpha=2, conv_dim=4, conv_alpha=2),
    "lora-tucker": dict(algo="lora", linear_dim=4, linear_alpha=2, conv_dim=4, conv_alpha=2, use_tucker=True),
    "lora-scalar": dict(algo="lora", linear_dim=4, linear_alpha=2, use_scalar=True),
    "loha": dict(algo="loha", linear_dim=4, linear_alpha=2, conv_dim=4, conv_alpha=2),
    "lokr-full": dict(algo="lokr", linear_dim=10000, linear_alpha=1, factor=4, full_matrix=True),
    "lokr-low-rank": dict(algo="lokr", linear_dim=2, linear_alpha=1, factor=2, decompose_both=True, conv_dim=2, conv_alpha=1),
    "ia3": dict(algo="ia3", linear_dim=1, linear_alpha=1),
    "diag-oft": dict(algo="diag-oft", linear_dim=8, linear_alpha=1),
    "diag-oft-constrained": dict(algo="diag-oft", linear_dim=8, linear_alpha=1, constraint=0.1, rescaled=True),
    "boft": dict(algo="boft", linear_dim=4, linear_alpha=1),
    "glora": dict(algo="glora", linear_dim=4, linear_alpha=1),
    "tlora": dict(algo="tlora", linear_dim=4, linear_alpha=4),
}
# algo -> (arguments, bias, what fixed_reason says): the two paths are different functions there
DIFFERENT = {
    "lokr-dora": (dict(algo="lokr", linear_dim=10000, linear_alpha=1, factor=4, full_matrix=True, dora_wd=True), False, "DoRA"),
    "lora-dora": (dict(algo="lora", linear_dim=4, linear_alpha=2, dora_wd=True), False, "DoRA"),
    "diag-oft-bias": (dict(algo="diag-oft", linear_dim=8, linear_alpha=1), True, "bias"),
    "boft-bias": (dict(algo="boft", linear_dim=4, linear_alpha=1), True, "bias"),
    "ia3-bias": (dict(algo="ia3", linear_dim=1, linear_alpha=1), True, "bias"),
}


class Small(torch.nn.Module):
    """Two Linear layers and a 3x3 convolution on tokens, like a block of a denoiser."""

    def __init__(self, bias: bool, conv: bool):
        super().__init__()
        self.a = torch.nn.Linear(32, 64, bias=bias)
        self.b = torch.nn.Linear(64, 32, bias=bias)
        self.c = torch.nn.Conv2d(32, 32, 3, padding=1, bias=bias) if conv else None

    def forward(self, x):
        y = self.b(torch.nn.functional.gelu(self.a(x)))
        if self.c is not None:
            batch, tokens, channels = y.shape
            y = self.c(y.transpose(1, 2).reshape(batch, channels, 4, tokens // 4)).reshape(batch, channels, tokens).transpose(1, 2)
        return y


def network_on(arguments: dict, bias: bool, conv: bool):
    from lycoris import LycorisNetwork, create_lycoris

    from lyco_lint.meta_model.patches import preset_state

    torch.manual_seed(0)
    model = Small(bias, conv)
    arguments = dict(arguments)
    with preset_state(LycorisNetwork):  # LyCORIS's class-level preset, reset (earlier networks leave theirs)
        network = create_lycoris(model, 1.0, linear_dim=arguments.pop("linear_dim"), linear_alpha=arguments.pop("linear_alpha"), algo=arguments.pop("algo"), **arguments)
    assert len(network.loras) == (3 if conv else 2)
    network.apply_to()
    torch.manual_seed(1)
    with torch.no_grad():  # a trained-looking adapter: LoKr's w2 and LoRA's up start at zero
        for parameter in network.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return model, network


def outputs_and_grads(model, network, forward_of):
    """The model's output and every gradient with each layer run by ``forward_of(lora)``."""
    for lora in network.loras:
        lora.org_module[0].forward = forward_of(lora)
    network.zero_grad(set_to_none=True)
    torch.manual_seed(3)
    x = torch.randn(2, 8, 32, requires_grad=True)
    y = model(x)
    y.square().sum().backward()
    return y.detach(), x.grad, {name: p.grad.clone() for name, p in network.named_parameters() if p.grad is not None}


def lycoris_path(bypass: bool):
    def forward_of(lora):
        lora.bypass_mode = bypass
        return lora.forward

    return forward_of


def assert_same(first, second):
    torch.testing.assert_close(second[0], first[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(second[1], first[1], rtol=1e-4, atol=1e-5)
    assert first[2].keys() == second[2].keys() and first[2]
    for name in first[2]:
        torch.testing.assert_close(second[2][name], first[2][name], rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.parametrize("conv", [False, True], ids=["linear", "linear+conv"])
@pytest.mark.parametrize("algo", list(SWITCHABLE))
def test_lycos_rebuilt_weight_computes_lycoris_bypass_and_rebuild(algo, conv):
    if algo == "tlora" and conv:
        pytest.skip("T-LoRA on a 3x3 convolution fails in LyCORIS 4.1.3 on both paths; lyco keeps it as configured")
    model, network = network_on(SWITCHABLE[algo], bias=algo not in ("ia3", "diag-oft", "diag-oft-constrained", "boft"), conv=conv)
    assert all(layer_paths.fixed_reason(lora) is None for lora in network.loras)
    bypass = outputs_and_grads(model, network, lycoris_path(True))
    rebuild = outputs_and_grads(model, network, lycoris_path(False))
    lyco = outputs_and_grads(model, network, lambda lora: lambda x: layer_paths.rebuild_forward(lora, x))
    assert_same(bypass, rebuild)  # LyCORIS's own two paths agree ...
    assert_same(bypass, lyco)  # ... and so does lyco's one-matmul rebuilt weight


@pytest.mark.parametrize("algo", list(DIFFERENT))
def test_layers_whose_paths_differ_keep_the_configs_path(algo):
    arguments, bias, reason = DIFFERENT[algo]
    model, network = network_on(arguments, bias=bias, conv=False)
    assert all(reason in layer_paths.fixed_reason(lora) for lora in network.loras)
    bypass = outputs_and_grads(model, network, lycoris_path(True))
    rebuild = outputs_and_grads(model, network, lycoris_path(False))
    assert not torch.allclose(bypass[0], rebuild[0], atol=1e-4)  # why: they are different functions


def test_dropout_keeps_the_configs_path():
    _model, network = network_on(dict(algo="lokr", linear_dim=10000, linear_alpha=1, factor=4, full_matrix=True, rank_dropout=0.1), bias=False, conv=False)
    assert all("dropout" in layer_paths.fixed_reason(lora) for lora in network.loras)


# -- on the tiny FLUX.2 transformer ------------------------------------------------------------------

flux2 = get_family("flux2")


def transformer(pipeline):
    from diffusers import Flux2Transformer2DModel

    return Flux2Transformer2DModel.from_pretrained(pipeline, subfolder="transformer")


def predict(model, latents, embeds, sigmas):
    return flux2.predict(model, latents, {"prompt_embeds": embeds}, {}, sigmas, TrainingOptions(), None)


@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "gradient-checkpointing"])
def test_tlora_per_sample_masks_in_one_forward_give_the_per_sample_loops_gradients(pipeline, checkpointing):
    model = transformer(pipeline)
    adapter = build_adapter(model, FLUX2_TLORA, seed=0, device=torch.device("cpu"), max_timestep=1000)
    assert adapter.batched_masks
    with torch.no_grad():  # a trained-looking adapter, so every rank matters
        for module in adapter.network.loras:
            module.lambda_layer.add_(0.3)
    if checkpointing:
        model.enable_gradient_checkpointing()
    generator = torch.Generator().manual_seed(0)
    latents, embeds = torch.randn(3, 16, 4, 6, generator=generator), torch.randn(3, 8, 48, generator=generator)
    timesteps = [0.0, 500.0, 999.0]  # 4, 2 and 1 active ranks
    sigmas = torch.tensor(timesteps) / 1000

    def grads():
        result = {name: p.grad.clone() for name, p in adapter.network.named_parameters() if p.grad is not None}
        adapter.network.zero_grad(set_to_none=True)
        return result

    outputs = []
    for row, timestep in enumerate(timesteps):  # the per-sample loop: LyCORIS's own mask, one forward each
        with timestep_mask(adapter, timestep):
            out = predict(model, latents[row : row + 1], embeds[row : row + 1], sigmas[row : row + 1])
            out.square().mean().backward()
        outputs.append(out.detach())
    loop = grads()
    with sample_masks(adapter, timesteps):  # one forward, one mask row per sample
        out = predict(model, latents, embeds, sigmas)
        (out.square().mean(dim=(1, 2, 3))).sum().backward()
    batched = grads()
    torch.testing.assert_close(out.detach(), torch.cat(outputs), rtol=1e-5, atol=1e-6)
    assert loop.keys() == batched.keys() and len(loop) == 3 * len(adapter.network.loras)
    for name in loop:
        torch.testing.assert_close(batched[name], loop[name], rtol=1e-4, atol=1e-7, msg=name)
    lam = next(name for name in loop if name.endswith("lambda_layer"))
    assert torch.count_nonzero(loop[lam]) > 0


def setup_parts(root, pipeline, lycoris_config, adapter_path="auto", **options):
    run = prepare_run(write_setup(root, pipeline, lycoris=lycoris_config, options=options), print)
    parts, generator = prepare(replace(run, adapter_path=adapter_path), print)
    return parts, generator, BatchStream(run.data, run.seed, run.config.options.train_batch_size)


def test_both_paths_train_the_same_weights_in_the_same_format(tmp_path, pipeline):
    saved = {}
    for path in ("bypass", "rebuild"):
        parts, generator, stream = setup_parts(tmp_path / path, pipeline, FLUX2_LOKR, path, learning_rate=1e-2, lr_warmup_steps=0)
        assert {layer_paths.path_of(lora) for lora in parts.adapter.network.loras} == {path}
        for _ in range(3):
            train_step(parts, [stream.next()], generator)
        save_adapter(parts.adapter, tmp_path / f"{path}.safetensors", {"test": "1"})
        with safe_open(str(tmp_path / f"{path}.safetensors"), "pt") as handle:
            saved[path] = (handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()})
    (bypass_meta, bypass), (rebuild_meta, rebuild) = saved["bypass"], saved["rebuild"]
    assert bypass_meta == rebuild_meta and json.loads(bypass_meta["lycoris_config"])["bypass_mode"] is True
    assert bypass.keys() == rebuild.keys()
    moved = 0
    for key in bypass:
        assert bypass[key].dtype == rebuild[key].dtype == torch.float32 and bypass[key].shape == rebuild[key].shape
        torch.testing.assert_close(rebuild[key], bypass[key], rtol=1e-4, atol=1e-6, msg=key)
        moved += key.endswith("lokr_w2") and bool(bypass[key].abs().sum() > 0)
    assert moved == 14  # every LoKr w2 (zero at the start) was trained


def test_auto_measures_each_layer_shape_once_and_reads_the_cache_next_time(tmp_path, pipeline, monkeypatch, capsys):
    monkeypatch.setenv("LYCO_CACHE_DIR", str(tmp_path / "cache"))
    parts, _generator, _stream = setup_parts(tmp_path / "first", pipeline, FLUX2_LOKR)
    first = parts.adapter.path_choice
    shapes = {layer_paths.layer_key(lora, *parts_shape(parts, index)) for index, lora in enumerate(parts.adapter.network.loras)}
    assert first.measured == len(shapes) > 1 and len(first.timings) == 14
    assert all(path in ("bypass", "rebuild") for path in first.paths)
    cached = json.loads(next((tmp_path / "cache" / "adapter-paths").glob("*.json")).read_text())
    assert len(cached["layers"]) == len(shapes) and cached["device"].startswith("cpu")

    timed = []
    monkeypatch.setattr(layer_paths, "time_layer", lambda *args, **kwargs: timed.append(args) or (1.0, 1.0))
    parts, _generator, _stream = setup_parts(tmp_path / "second", pipeline, FLUX2_LOKR)
    assert timed == [] and parts.adapter.path_choice.measured == 0  # every shape came from the cache
    assert parts.adapter.path_choice.paths == first.paths
    out = capsys.readouterr().out
    assert "adapter path (auto, measured on cpu" in out and f"0 layer shape(s) timed now, {len(shapes)} read from the cache" in out


def parts_shape(parts, index):
    """The (shape, dtype, autocast dtype) the run measured layer ``index`` at (from its probe forward)."""
    seen = layer_paths.input_shapes(parts.denoiser, parts.adapter.network.loras, lambda: probe_forward(parts))
    shape, dtype = seen[index]
    return shape, dtype, layer_paths.autocast_dtype(parts.accelerator.autocast)


def test_the_faster_measured_path_wins_and_the_gain_is_printed(tmp_path, pipeline, monkeypatch):
    monkeypatch.setenv("LYCO_CACHE_DIR", str(tmp_path / "cache"))
    # measured: bypass 3 ms, rebuild 1 ms for the feed-forward layers, the other way round elsewhere
    monkeypatch.setattr(layer_paths, "time_layer", lambda lora, shape, *rest: (3e-3, 1e-3) if "ff" in lora.lora_name else (1e-3, 3e-3))
    parts, _generator, _stream = setup_parts(tmp_path, pipeline, FLUX2_LOKR)
    loras = parts.adapter.network.loras
    assert [path for lora, path in zip(loras, parts.adapter.path_choice.paths) if "ff" in lora.lora_name] == ["rebuild"] * 4
    assert {layer_paths.path_of(lora) for lora in loras if "ff" not in lora.lora_name} == {"bypass"}
    text = parts.adapter.path_choice.describe()
    assert "4 layer(s) rebuild, 10 bypass" in text and "the config's bypass_mode 22 ms (expected +8 ms saved, 1.57×)" in text


def test_quantized_base_runs_every_layer_in_bypass_and_refuses_a_pinned_rebuild(tmp_path, pipeline):
    pytest.importorskip("torchao")
    from lyco_train.config import ConfigError

    parts, _generator, _stream = setup_parts(tmp_path / "q", pipeline, FLUX2_LOKR, base_model_precision="int8-torchao")
    assert {layer_paths.path_of(lora) for lora in parts.adapter.network.loras} == {"config"}
    assert all(lora.bypass_mode for lora in parts.adapter.network.loras)
    assert "14 as the config says (a quantized base)" in parts.adapter.path_choice.describe()
    with pytest.raises(ConfigError, match="--adapter-path rebuild: a int8-torchao base runs every LyCORIS module in bypass"):
        setup_parts(tmp_path / "r", pipeline, FLUX2_LOKR, "rebuild", base_model_precision="int8-torchao")


def test_tlora_conv_and_dropout_fall_back_to_one_forward_per_sample(tmp_path, pipeline):
    config = copy.deepcopy(FLUX2_TLORA)
    config["dropout"] = 0.1
    parts, _generator, _stream = setup_parts(tmp_path, pipeline, config)
    assert not parts.adapter.batched_masks
    groups = forward_groups(parts.adapter, [0.0, 999.0])
    assert [rows for rows, _mask in groups] == [[0], [1]]


def test_adapter_path_flag_through_the_console_script(tmp_path, pipeline):
    config = write_setup(tmp_path, pipeline, options={"max_train_steps": 1})
    lyco = str(Path(sys.executable).parent / "lyco")
    bad = subprocess.run([lyco, "train", str(config), "--adapter-path", "fast"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "error: --adapter-path 'fast': choose one of auto, bypass, rebuild" in bad.stdout
    done = subprocess.run([lyco, "train", str(config), "--adapter-path", "rebuild"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "adapter path (rebuild, pinned): 14 layer(s) rebuild, 0 bypass" in done.stdout
