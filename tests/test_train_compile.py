"""Compiled blocks (lyco_train.compile, SimpleTuner's dynamo_* options): compiled steps train what eager steps
train (inductor on the CPU, regional compilation of the tiny SDXL UNet's transformer blocks with the LyCORIS
modules inside), a LyCORIS kind that breaks tracing runs eagerly inside the compiled blocks with a message, a
compilation that fails in a step falls back to eager, and a backend torch does not have is one clear error."""

import contextlib
from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("lycoris")

import family_fixtures as ff  # noqa: E402

from train_fixtures import FLUX2_LOKR, FLUX2_TLORA, one_thread, pipeline, write_setup  # noqa: E402,F401 (fixtures)

from lyco_train import run  # noqa: E402
from lyco_train.compile import compile_denoiser  # noqa: E402
from lyco_train.config import ConfigError  # noqa: E402
from lyco_train.data import BatchStream  # noqa: E402
from lyco_train.distributed import split_step  # noqa: E402
from lyco_train.loop import prepare, step_gradients, train_step  # noqa: E402
from lyco_train.run import prepare_run  # noqa: E402

SQUARES = [("red.png", (64, 64), (220, 30, 30), "a red circle"), ("blue.png", (64, 64), (30, 30, 220), "a blue circle")]
REGIONAL = {"dynamo_use_regional_compilation": True}
# Diag-OFT with a constraint branches on its data: dynamo cannot trace it in one graph (fullgraph)
CONSTRAINED_OFT = {"algo": "diag-oft", "multiplier": 1.0, "linear_dim": 8, "linear_alpha": 1, "constraint": 0.1, "rescaled": True,
                   "apply_preset": {"target_module": ["Flux2Attention"]}}


def trained(config, steps: int, say=print, options=None, adapter_path="auto"):
    """The first step's gradients, the losses of ``steps`` steps and the final adapter (the options replaced,
    when given, after the config is read)."""
    plan = replace(prepare_run(config, print), adapter_path=adapter_path)
    if options:
        plan = replace(plan, config=replace(plan.config, options=replace(plan.config.options, **options)))
    parts, generator = prepare(plan, say)
    stream = BatchStream(plan.data, plan.seed, plan.config.options.train_batch_size)
    first = stream.next()
    start = generator.get_state()
    step_gradients(parts, [first], split_step([len(first)], 0, 1), generator)
    grads = {name: p.grad.clone() for name, p in parts.adapter.network.named_parameters() if p.grad is not None}
    generator.set_state(start)
    losses = [train_step(parts, [first], generator).loss] + [train_step(parts, [stream.next()], generator).loss for _ in range(steps - 1)]
    return parts, losses, grads, {key: value.detach().clone() for key, value in parts.adapter.network.state_dict().items()}


def assert_same_training(first, second, weights: bool = False):
    """The same losses and first-step gradients (to float tolerance: compiled kernels sum in another order);
    with ``weights``, the same adapter (Adam amplifies those differences where a gradient is near zero)."""
    assert second[1] == pytest.approx(first[1], rel=1e-5)
    assert first[2].keys() == second[2].keys() and first[2]
    for name in first[2]:
        torch.testing.assert_close(second[2][name], first[2][name], rtol=1e-3, atol=1e-6, msg=name)
    for key in first[3] if weights else ():
        torch.testing.assert_close(second[3][key], first[3][key], rtol=1e-5, atol=1e-7, msg=key)


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    return ff.tiny_sdxl_pipeline(tmp_path_factory)


def test_inductor_compiled_blocks_train_what_eager_trains(tmp_path, sdxl, capsys):
    setup = {"learning_rate": 1e-2, "train_batch_size": 2}
    eager = trained(ff.write_family_setup(tmp_path / "eager", sdxl, "sdxl", lycoris=ff.SDXL_ATTENTION_LOKR, options=setup, images=SQUARES), 2)
    compiled = trained(ff.write_family_setup(
        tmp_path / "compiled", sdxl, "sdxl", lycoris=ff.SDXL_ATTENTION_LOKR, images=SQUARES,
        options={**setup, "dynamo_backend": "inductor", **REGIONAL},
    ), 2)
    assert "torch.compile: 4 repeated block(s) (BasicTransformerBlock) with inductor, the LyCORIS layers inside" in capsys.readouterr().out
    assert compiled[0].compiled.active and all(block._compiled_call_impl is not None for block in compiled[0].compiled.modules)
    assert_same_training(eager, compiled)


def test_a_lycoris_kind_that_breaks_tracing_runs_eagerly_inside_the_compiled_blocks(tmp_path, pipeline, capsys):
    options = {"learning_rate": 1e-2, "max_train_steps": 2}
    eager = trained(write_setup(tmp_path / "eager", pipeline, lycoris=CONSTRAINED_OFT, options=options), 2, adapter_path="rebuild")
    compiled = trained(write_setup(tmp_path / "compiled", pipeline, lycoris=CONSTRAINED_OFT, options={
        **options, "dynamo_backend": "aot_eager", "dynamo_fullgraph": True, **REGIONAL}), 2, adapter_path="rebuild")
    out = capsys.readouterr().out
    assert "note: torch.compile cannot trace LyCORIS DiagOFTModule (rebuild) (Unsupported: Data-dependent branching" in out
    assert "KohakuBlueleaf/LyCORIS#287): its layers run eagerly inside the compiled blocks" in out
    assert "note: dynamo_fullgraph turned off" in out
    assert compiled[0].compiled.eager_kinds.keys() == {"DiagOFTModule (rebuild)"} and compiled[0].compiled.active
    assert_same_training(eager, compiled)


def test_a_compilation_that_fails_in_a_step_trains_eagerly_with_a_message(tmp_path, pipeline):
    import torch._dynamo

    @torch._dynamo.register_backend(name="lyco_test_failing_backend")
    def failing(graph, example_inputs):
        raise RuntimeError("this backend cannot compile anything")

    notes = []
    config = write_setup(tmp_path / "eager", pipeline, options={"max_train_steps": 3})
    eager = trained(config, 3)
    failed = trained(write_setup(tmp_path / "failing", pipeline, options={"max_train_steps": 3}), 3, notes.append,
                     options={"dynamo_backend": "lyco_test_failing_backend", **REGIONAL})
    assert not failed[0].compiled.active
    assert any(note.startswith("note: torch.compile failed (BackendCompilerFailed") and "training eagerly from here on" in note for note in notes)
    assert_same_training(eager, failed, weights=True)  # the failed step was redone eagerly from the same random state


def test_a_backend_torch_does_not_have_is_one_clear_error(tmp_path, pipeline, capsys):
    """Was: --dry-run passed, and the run refused the backend only after building the caches."""
    config = write_setup(tmp_path, pipeline, options={"dynamo_backend": "onnxrt", "max_train_steps": 1})
    for dry_run in (True, False):
        assert run(config, dry_run=dry_run) == 1
        out = capsys.readouterr().out
        assert "error: dynamo_backend 'onnxrt': this torch" in out and "has no such backend; choose one of" in out and "inductor" in out
        assert "Traceback" not in out and "caches:" not in out


def test_regional_compilation_of_a_model_without_repeated_blocks_is_refused():
    class Plain(torch.nn.Module):
        def forward(self, x):
            return x

    options = replace(ff_options(), dynamo_backend="eager", dynamo_use_regional_compilation=True)
    with pytest.raises(ConfigError, match="names no repeated blocks"):
        compile_denoiser(Plain(), type("Network", (), {"loras": []})(), options, contextlib.nullcontext, print)


def ff_options():
    from lyco_train.options import TrainingOptions

    return TrainingOptions()


@pytest.mark.parametrize("lycoris_config, path", [
    (FLUX2_LOKR, "rebuild"), (FLUX2_TLORA, "auto"), (CONSTRAINED_OFT, "rebuild"),
], ids=["lokr-rebuild", "tlora", "eager-kind"])
def test_each_block_class_compiles_once_not_once_per_block(lycoris_config, path):
    """lyco's layer forwards are bound methods of the LyCORIS modules (one function for every layer), so the
    blocks of a class share their compiled code: 2 or 4 blocks of each class compile the same frames (a
    forward object per layer made dynamo recompile per block, until its recompile limit turned it off)."""
    frames = [compiled_frames(lycoris_config, path, blocks) for blocks in (2, 4)]
    assert frames[0] == frames[1] and 2 <= frames[0] <= 8, frames


def compiled_frames(lycoris_config, path: str, blocks: int) -> int:
    """Frames dynamo compiles for two training forwards of a FLUX.2 transformer with ``blocks`` double and single
    blocks, compiled regionally with lyco's LyCORIS forwards inside."""
    import torch._dynamo
    from diffusers import Flux2Transformer2DModel
    from torch._dynamo.testing import CompileCounter

    from lyco_train import layer_paths
    from lyco_train.adapter import build_adapter, sample_masks
    from lyco_train.options import TrainingOptions

    torch.manual_seed(0)
    model = Flux2Transformer2DModel(
        patch_size=1, in_channels=16, num_layers=blocks, num_single_layers=blocks, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=48, axes_dims_rope=(2, 2, 2, 2), guidance_embeds=False,
    )
    adapter = build_adapter(model, lycoris_config, seed=0, device=torch.device("cpu"), max_timestep=1000)
    if path != "auto":
        for lora in adapter.network.loras:
            layer_paths.install(lora, path)
    counter = CompileCounter()
    COUNTERS.append(counter)
    if "lyco_test_counting" not in torch._dynamo.list_backends(exclude_tags=()):
        torch._dynamo.register_backend(lambda graph, inputs: COUNTERS[-1](graph, inputs), name="lyco_test_counting")
    options = replace(TrainingOptions(), dynamo_backend="lyco_test_counting", dynamo_fullgraph=lycoris_config is CONSTRAINED_OFT, **REGIONAL)
    compiled = compile_denoiser(model, adapter.network, options, contextlib.nullcontext, print)
    assert len(compiled.modules) == 2 * blocks and bool(compiled.eager_kinds) == (lycoris_config is CONSTRAINED_OFT)
    for _ in range(2):
        with sample_masks(adapter, [0.0, 999.0]) if adapter.tlora else contextlib.nullcontext():
            flux2_forward(model, batch=2).square().mean().backward()
    torch._dynamo.reset()
    return counter.frame_count


COUNTERS: list = []


def flux2_forward(model, batch: int):
    generator = torch.Generator().manual_seed(0)
    latents, embeds = torch.randn(batch, 16, 4, 6, generator=generator), torch.randn(batch, 8, 48, generator=generator)
    from lyco_train.families import get_family
    from lyco_train.options import TrainingOptions

    return get_family("flux2").predict(model, latents, {"prompt_embeds": embeds}, {}, torch.full((batch,), 0.5), TrainingOptions(), None)
