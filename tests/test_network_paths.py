"""The plan printed before training is the network that trains: ``lyco plan`` (LyCORIS on the model built on
the meta device) and ``lyco train`` (LyCORIS on the loaded model) build one LyCORIS config into the same
modules, with the same dims, alphas, scales, parameter shapes and multiplier, and the same trainable parameter
count. (Alphas: the value each module was built with; LoKr then uses the dim as its alpha where both Kronecker
blocks are full matrices, which its scale shows.)"""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")
pytest.importorskip("lycoris")

from train_fixtures import one_thread, pipeline  # noqa: E402,F401 (fixtures)

from lyco_lint.meta_model.analyse import analyse_spec  # noqa: E402
from lyco_train.adapter import build_adapter  # noqa: E402

# Fractional multiplier and alpha (read as written by both paths), a decomposed LoKr with a map entry that
# changes the algo, dim and alpha of one class, and a name entry.
MIXED = {
    "algo": "lokr",
    "multiplier": 0.5,
    "linear_dim": 4,
    "linear_alpha": 2.5,
    "factor": 4,
    "apply_preset": {
        "target_module": ["Flux2Attention", "Flux2FeedForward", "Flux2ParallelSelfAttention"],
        "module_algo_map": {"Flux2FeedForward": {"algo": "lora", "dim": 8, "alpha": 4}},
    },
}
TLORA = {
    "algo": "tlora", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 2, "tlora_min_rank": 1,
    "apply_preset": {"target_module": ["Flux2Attention"]},
}


def trained_modules(pipeline_folder, config):
    """lora name -> (class, dim, alpha built with, scale, parameter shapes, multiplier), from lyco train's adapter."""
    from diffusers import Flux2Transformer2DModel
    from lyco_lint.meta_model.patches import recorded_constructions

    model = Flux2Transformer2DModel.from_pretrained(pipeline_folder, subfolder="transformer")
    built_with = {}
    with recorded_constructions(built_with):
        adapter = build_adapter(model, config, seed=0, device=torch.device("cpu"), max_timestep=1000)
    found = {}
    for lora in adapter.network.loras:
        shapes = tuple((name, tuple(p.shape)) for name, p in lora.named_parameters())
        found[lora.lora_name] = (
            type(lora).__name__, lora.lora_dim, float(built_with[lora.lora_name].alpha), float(lora.scale), shapes, float(lora.multiplier)
        )
    return found, sum(p.numel() for p in adapter.parameters())


def planned_modules(pipeline_folder, config):
    """The same, from ``lyco plan``'s analysis (no multiplier: it is the network's)."""
    analysis = analyse_spec(str(pipeline_folder), config, family="flux2")
    found = {m.lora_name: (m.module_class, m.dim, float(m.alpha), float(m.scale), m.parameter_shapes) for m in analysis.modules}
    return found, analysis.trainable_params


@pytest.mark.parametrize("config", [MIXED, TLORA], ids=["lokr-and-lora", "tlora"])
def test_plan_and_trainer_build_the_same_network(pipeline, config):
    trained, trained_params = trained_modules(pipeline, config)
    planned, planned_params = planned_modules(pipeline, config)
    assert set(trained) == set(planned) and trained
    for name, (module_class, dim, alpha, scale, shapes, multiplier) in trained.items():
        assert planned[name] == (module_class, dim, alpha, pytest.approx(scale), shapes), name
        assert multiplier == config["multiplier"]
    assert trained_params == planned_params


def test_the_mixed_config_really_mixes(pipeline):
    """The comparison above is only worth something if the config gives layers different settings."""
    planned, _ = planned_modules(pipeline, MIXED)
    classes = {value[0] for value in planned.values()}
    assert classes == {"LokrModule", "LoConModule"}
    assert {value[1:3] for value in planned.values() if value[0] == "LoConModule"} == {(8, 4.0)}
    assert any(value[3] != 1.0 for value in planned.values())
