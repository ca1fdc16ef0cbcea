"""The on-disk cache of --model analyses: a warm run gives the same findings as the cold one, imports neither
torch, diffusers nor LyCORIS, and any changed input (model config, LyCORIS config, a library version) misses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("lycoris")

from conftest import EXAMPLES  # noqa: E402
from test_console_script import TINY_FLUX2  # noqa: E402

from lyco_lint.meta_model import cache  # noqa: E402

WARM_RUN = r"""
import json, sys
from lyco_lint.cli import main
status = main(["lint", "--format", "json", "--family", "flux2", "--model", sys.argv[1], sys.argv[2]])
heavy = [name for name in ("torch", "diffusers", "lycoris") if name in sys.modules]
print(json.dumps({"status": status, "heavy": heavy}))
"""


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("LYCO_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps(TINY_FLUX2))
    config = tmp_path / "lokr.lycoris.json"
    # LYC208 (a name_algo_map key shadowed), LYC401 (bypass costs more) and LYC115 (scale) come from the analysis
    config.write_text((EXAMPLES / "flux2-lokr.lycoris.json").read_text())
    return tmp_path / "model", config


def run(model, config, env=None):
    done = subprocess.run([sys.executable, "-c", WARM_RUN, str(model), str(config)], capture_output=True, text=True, env=env)
    lines = done.stdout.strip().splitlines()
    return json.loads("\n".join(lines[:-1])), json.loads(lines[-1])


def test_warm_run_has_the_cold_findings_without_importing_torch(setup):
    model, config = setup
    cold, cold_state = run(model, config)
    assert cold_state["heavy"] and len(list((cache.cache_dir() / "model-analysis").glob("*.json"))) == 1
    warm, warm_state = run(model, config)
    assert warm == cold and warm_state == {"status": cold_state["status"], "heavy": []}


def test_the_cached_analysis_is_the_analysis(setup):
    from lyco_lint.meta_model.analyse import analyse
    from lyco_lint.meta_model.analysis import REFERENCE_TOKENS
    from lyco_lint.meta_model.build import build_meta_model
    from lyco_lint.meta_model.resolve import resolve_model

    model, config = setup
    source = resolve_model(str(model), "flux2")
    analysis = analyse(build_meta_model(source), json.loads(config.read_text()), source=source)
    assert cache.analysis_from_json(json.loads(json.dumps(cache.analysis_to_json(analysis))), source) == analysis
    assert cache.load(source, json.loads(config.read_text()), REFERENCE_TOKENS) is None
    cache.store(source, json.loads(config.read_text()), REFERENCE_TOKENS, analysis)
    assert cache.load(source, json.loads(config.read_text()), REFERENCE_TOKENS) == analysis


def test_changed_inputs_miss(setup, monkeypatch):
    from lyco_lint.meta_model.resolve import resolve_model

    model, config = setup
    lycoris_config = json.loads(config.read_text())
    source = resolve_model(str(model), "flux2")
    key = cache.cache_key(source, lycoris_config, 4096)
    assert cache.cache_key(source, dict(lycoris_config, linear_dim=8), 4096) != key
    (model / "config.json").write_text(json.dumps(dict(TINY_FLUX2, num_layers=2)))
    assert cache.cache_key(resolve_model(str(model), "flux2"), lycoris_config, 4096) != key
    real = cache.versions()
    monkeypatch.setattr(cache, "versions", lambda: dict(real, diffusers="0.0.1"))
    assert cache.cache_key(source, lycoris_config, 4096) != key
    assert "torch" not in sys.modules or real["torch"] is not None  # read from metadata, not by importing


def test_an_unreadable_entry_is_a_miss_and_the_folder_follows_the_environment(setup, monkeypatch, tmp_path):
    from lyco_lint.meta_model.resolve import resolve_model

    model, config = setup
    source = resolve_model(str(model), "flux2")
    path = cache.entry_path(cache.cache_key(source, json.loads(config.read_text()), 4096))
    path.parent.mkdir(parents=True)
    path.write_text("{half")
    assert cache.load(source, json.loads(config.read_text()), 4096) is None
    monkeypatch.delenv("LYCO_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "lyco"


def test_versions_are_what_importlib_metadata_says():
    from importlib import metadata

    found = cache.versions()
    for name in cache.DISTRIBUTIONS:
        assert found[name] == metadata.version(name)
