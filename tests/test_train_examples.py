"""The shipped training examples (examples/train/, one per family): each lints without errors as shipped and,
pointed at its family's tiny real pipeline, passes the lint gate against the model and plans a run; the README
names the target classes the models really have."""

import json
import re
import shutil
from pathlib import Path

import pytest

from lyco_lint.engine import exit_status, lint_paths
from lyco_lint.knowledge.families import module_classes

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "train"
CONFIGS = {"flux2": EXAMPLES / "config.json", "sdxl": EXAMPLES / "sdxl" / "config.json", "flux": EXAMPLES / "flux" / "config.json"}
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_training_example_is_listed():
    assert set(EXAMPLES.rglob("config.json")) == set(CONFIGS.values())


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_each_example_lints_without_errors(family):
    config = CONFIGS[family]
    assert json.loads(config.read_text())["model_family"] == family
    result = lint_paths([str(config)])
    assert [f"{f.code} {f.message}" for f in result.findings if f.severity.value == "error"] == []
    assert exit_status(result.findings) == 0
    assert {Path(document.path).name for document in result.documents} == {"config.json", "lycoris_config.json", "multidatabackend.json"}


def tiny(family: str, tmp_path_factory) -> Path:
    from family_fixtures import tiny_flux_pipeline, tiny_sdxl_pipeline
    from train_fixtures import tiny_pipeline

    return {"flux2": tiny_pipeline, "sdxl": tiny_sdxl_pipeline, "flux": tiny_flux_pipeline}[family](tmp_path_factory)


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_each_example_plans_a_run_on_its_familys_pipeline(tmp_path, tmp_path_factory, family, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from train_fixtures import write_images

    from lyco_train import run

    source = CONFIGS[family].parent
    for name in ("config.json", "lycoris_config.json", "multidatabackend.json"):
        shutil.copy(source / name, tmp_path / name)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(pretrained_model_name_or_path=str(tiny(family, tmp_path_factory)), output_dir=str(tmp_path / "output"))
    (tmp_path / "config.json").write_text(json.dumps(config))
    backends = json.loads((tmp_path / "multidatabackend.json").read_text())
    for entry in backends:
        if entry.get("dataset_type", "image") == "image":
            entry.update(instance_data_dir=str(write_images(tmp_path / "images", [("a.png", (96, 64), (200, 0, 0), "a red circle")])))
            entry["cache_dir_vae"] = str(tmp_path / "cache" / "vae")
        else:
            entry["cache_dir"] = str(tmp_path / "cache" / "text")
    (tmp_path / "multidatabackend.json").write_text(json.dumps(backends))

    assert run(tmp_path / "config.json", dry_run=True) == 0
    out = capsys.readouterr().out
    targets = json.loads((source / "lycoris_config.json").read_text())["apply_preset"]["target_module"]
    # each target adapts layers (the plan table wraps names longer than its column)
    assert all(re.search(rf"^ {re.escape(target[:18])}\w* +\d+ ", out, re.MULTILINE) for target in targets), out
    assert "dry run: nothing loaded, nothing written." in out and not (tmp_path / "output").exists()


def section(title: str) -> str:
    start = README.index(f"### {title}\n")
    end = README.find("\n## ", start)
    following = README.find("\n### ", start + 4)
    return README[start : min(position for position in (end, following) if position > 0)]


@pytest.mark.parametrize("title, family, named", [
    ("Train FLUX.1", "flux", ["FluxAttention", "FeedForward", "FluxTransformerBlock", "FluxSingleTransformerBlock", "Linear"]),
    ("Train SDXL", "sdxl", ["Attention", "FeedForward", "GEGLU", "BasicTransformerBlock", "Transformer2DModel", "ResnetBlock2D", "Linear", "Conv2d"]),
])
def test_the_readme_names_the_classes_the_model_has(title, family, named):
    text = section(title)
    classes = module_classes(family).classes
    for name in named:
        assert f"`{name}`" in text and name in classes, name
    if family == "flux":  # the trap: SimpleTuner's copy builds the generic Attention, diffusers' class does not
        assert "Attention" not in classes and re.search(r"generic\s+`Attention`", text)
