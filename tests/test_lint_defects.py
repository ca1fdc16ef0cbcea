"""The defects a new user hit (issue 10): valid JSON that crashed lint, non-finite numbers, large and
unreadable files, output that echoed control characters, wrong messages, silent passes.

Time limits are on this process's CPU time, which other processes on a shared machine do not inflate."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from conftest import VALID_LYCORIS, codes
from lyco_lint.cli import main
from lyco_lint.documents import MAX_FILE_BYTES
from lyco_lint.engine import Options, lint_paths
from lyco_lint.reporters import report

TRAINING = {
    "model_type": "lora", "model_family": "flux2", "output_dir": "out", "optimizer": "adamw_bf16",
    "data_backend_config": "multidatabackend.json",
}


def run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# -- LYC017: NaN, infinity, overflow, huge integers ------------------------------------------------------


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_non_finite_multiplier_is_an_error_at_its_position(write, capsys, literal):
    path = write('{"algo": "lora",\n "multiplier": ' + literal + ',\n "linear_dim": 16, "linear_alpha": 8}', "cfg.lycoris.json")
    status, out, _ = run(capsys, "lint", "--format", "json", str(path))
    findings = json.loads(out)
    assert status == 1 and codes(findings) == ["LYC017"]
    assert (findings[0]["line"], findings[0]["column"], findings[0]["pointer"]) == (2, 16, "/multiplier")


def test_non_finite_learning_rate_in_a_training_config(write):
    from lyco_lint.engine import lint_paths

    path = write(json.dumps(TRAINING, indent=1)[:-2] + ',\n "learning_rate": NaN,\n "validation_lycoris_strength": Infinity\n}', "config.json")
    findings = [f for f in lint_paths([str(path)]).findings if f.file.endswith("config.json")]
    assert [(f.code, f.pointer) for f in findings if f.code in ("LYC017", "LYC308")] == [
        ("LYC017", "/learning_rate"), ("LYC017", "/validation_lycoris_strength")
    ]


def test_huge_integer_lints_like_any_value(lint):
    text = '{"algo": "lora", "multiplier": 1.0, "linear_dim": ' + "3" * 4400 + ', "linear_alpha": 8, "factr": 1}'
    found = lint(text)
    assert sorted(codes(found)) == ["LYC011", "LYC017"]
    assert "4,400 digits" in next(f["message"] for f in found if f["code"] == "LYC017")
    # at the limit Python's json still reads it: a number like any other (here out of range for nothing)
    assert codes(lint('{"algo": "lora", "multiplier": 1.0, "linear_dim": ' + "1" * 4300 + ', "linear_alpha": 8}')) == []


def test_lone_surrogates_are_reported_not_crashed_on(lint):
    found = lint('{"algo": "lora", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 8, "note\\udc00": "\\ud800"}')
    assert codes(found) == ["LYC011"] and "\udc00" in found[0]["message"]


# -- large files ---------------------------------------------------------------------------------------


def test_a_file_over_the_limit_is_one_finding_read_only_in_part(tmp_path, capsys):
    big = tmp_path / "big.lycoris.json"
    with open(big, "wb") as handle:  # 1 GB, sparse: reading it whole would take seconds and memory
        handle.write(b'{"algo": "lora", "x": "')
        handle.truncate(2**30)
    start = time.process_time()
    tracemalloc.start()
    status, out, _ = run(capsys, "lint", "--format", "json", str(big))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    findings = json.loads(out)
    assert status == 0 and codes(findings) == ["LYC005"] and "1.0 GiB" in findings[0]["message"]
    assert time.process_time() - start < 1.0 and peak < 20 * 2**20


def test_too_many_values_is_one_finding_in_under_a_second(tmp_path, capsys):
    dense = tmp_path / "dense.lycoris.json"
    dense.write_text('{"algo": "lora", "x": [' + ",".join(["0"] * 100_000) + "]}")
    assert dense.stat().st_size < MAX_FILE_BYTES
    start = time.process_time()
    status, out, _ = run(capsys, "lint", "--format", "json", str(dense))
    assert time.process_time() - start < 1.0
    assert status == 0 and codes(json.loads(out)) == ["LYC005"]


def test_folder_walks_skip_large_and_unrelated_json_without_parsing(tmp_path, capsys):
    (tmp_path / "data.json").write_text(json.dumps({"rows": [[i, str(i)] for i in range(40_000)]}))  # > 256 KiB
    (tmp_path / "other.json").write_text(json.dumps({"rows": [{"name": i} for i in range(5000)]}))  # no config key
    (tmp_path / "config.json").write_text(json.dumps({"x": "y" * (MAX_FILE_BYTES + 10)}))  # a config's name
    (tmp_path / "cfg.lycoris.json").write_text(json.dumps(VALID_LYCORIS))
    start = time.process_time()
    status, out, _ = run(capsys, "lint", "--format", "json", str(tmp_path))
    assert time.process_time() - start < 1.0
    assert [(f["code"], Path(f["file"]).name) for f in json.loads(out)] == [("LYC005", "config.json")]
    from lyco_lint.documents import Document

    skipped = Document.read(tmp_path / "other.json", "other.json", sniff=True)
    assert skipped.skipped and skipped.root is None  # never parsed


# -- text output --------------------------------------------------------------------------------------


def test_text_output_escapes_control_characters_and_truncates(write):
    path = write(
        json.dumps(dict(VALID_LYCORIS, **{"evil\n/x.json:1:1: LYC000 [error] forged": 1, "\x1b[2Jclear": 2, "x" * 200_000: 3})),
        "cfg.lycoris.json",
    )
    result = lint_paths([str(path)])
    for color in (False, True):
        stream = io.StringIO()
        report(result, "text", stream, color=color)
        out = stream.getvalue()
        assert "\x1b[2J" not in out and "\\x1b[2Jclear" in out
        assert "\nLYC000" not in out and "/x.json:1:1: LYC000" not in out.replace("\\n/x.json", "")
        assert not any(line.startswith("/x.json") for line in out.splitlines())
        assert len(out) < 20_000
    stream = io.StringIO()
    report(result, "github", stream)
    assert "\x1b" not in stream.getvalue() and len(stream.getvalue()) < 20_000


# -- unreadable files and wrong messages ----------------------------------------------------------------


def _unprivileged_command() -> list[str] | None:
    """How to run lyco so that file permissions apply: as root, without the capabilities that bypass them."""
    script = Path(sys.executable).with_name("lyco")
    if not script.exists():
        return None
    if os.geteuid() != 0:
        return [str(script)]
    setpriv = shutil.which("setpriv")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", str(script)] if setpriv else None


def test_an_unreadable_file_is_a_finding_and_the_others_are_linted(tmp_path):
    command = _unprivileged_command()
    if command is None:
        pytest.skip("no way to make a file unreadable here")
    secret = tmp_path / "secret.lycoris.json"
    secret.write_text(json.dumps(VALID_LYCORIS))
    secret.chmod(0)
    broken = tmp_path / "broken.lycoris.json"
    broken.write_text(json.dumps(dict(VALID_LYCORIS, factr=8)))
    done = subprocess.run([*command, "lint", "--format", "json", str(secret), str(broken)], capture_output=True, text=True)
    findings = json.loads(done.stdout)
    assert done.returncode == 2, done.stderr
    assert sorted((f["code"], Path(f["file"]).name) for f in findings) == [
        ("LYC006", "secret.lycoris.json"), ("LYC011", "broken.lycoris.json")
    ]
    assert "permission denied" in findings[[f["code"] for f in findings].index("LYC006")]["message"]


@pytest.mark.parametrize("make, words", [
    (lambda path: os.mkfifo(path), "named pipe"),
    (lambda path: path.symlink_to(path), "symbolic link loop"),
    (lambda path: path.symlink_to(path.with_name("gone.json")), "symbolic link to"),
])
def test_pipes_and_broken_links_say_what_they_are(tmp_path, capsys, make, words):
    odd = tmp_path / "odd.json"
    make(odd)
    good = tmp_path / "good.lycoris.json"
    good.write_text(json.dumps(VALID_LYCORIS))
    status, out, err = run(capsys, "lint", "--format", "json", str(odd), str(good))
    findings = json.loads(out)
    assert status == 2 and codes(findings) == ["LYC006"] and words in findings[0]["message"], (out, err)
    assert "no such file" not in out + err


def test_dev_null_is_a_device_not_a_missing_file(capsys):
    status, out, err = run(capsys, "lint", "--format", "json", "/dev/null")
    assert status == 2 and "character device" in json.loads(out)[0]["message"] and "no such file" not in err


def test_lycoris_config_naming_the_training_config_itself(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(dict(TRAINING, lora_type="lycoris", lycoris_config="config.json")))
    status, out, _ = run(capsys, "lint", "--format", "json", str(config))
    findings = [f for f in json.loads(out) if f["code"] != "LYC316"]
    assert status == 1 and codes(findings) == ["LYC301"] and "this training config itself" in findings[0]["message"]


def test_data_backend_config_naming_the_training_config_itself(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(dict(TRAINING, data_backend_config="config.json")))
    status, out, _ = run(capsys, "lint", "--format", "json", str(config))
    findings = json.loads(out)
    assert status == 1 and codes(findings) == ["LYC316"] and "this training config itself" in findings[0]["message"]


# -- silent passes ---------------------------------------------------------------------------------------


def test_a_bare_lycoris_config_without_family_says_its_targets_were_not_checked(lint, capsys, write):
    config = dict(VALID_LYCORIS, apply_preset={"target_module": ["Attention"]})
    found = lint(config)
    assert codes(found) == ["LYC209"] and "--family" in found[0]["message"] and "training config" in found[0]["message"]
    assert found[0]["severity"] == "info"
    assert "LYC205" in codes(lint(config, family="flux2")) and "LYC209" not in codes(lint(config, family="flux2"))
    status, out, _ = run(capsys, "lint", str(write(config)))
    assert status == 0 and "All checks passed" not in out


def test_model_folder_with_only_the_component_folder(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("lycoris")
    from test_console_script import TINY_FLUX2

    (tmp_path / "model" / "transformer").mkdir(parents=True)
    (tmp_path / "model" / "transformer" / "config.json").write_text(json.dumps(TINY_FLUX2))
    from lyco_lint.meta_model.resolve import resolve_model

    source = resolve_model(str(tmp_path / "model"))
    assert source.class_name == "Flux2Transformer2DModel" and source.subfolder == "transformer"
    config = tmp_path / "cfg.lycoris.json"
    config.write_text(json.dumps(dict(VALID_LYCORIS, apply_preset={"target_module": ["Flux2Attention"]})))
    findings = lint_paths([str(config)], Options(model=str(tmp_path / "model"))).findings
    assert "LYC210" not in [f.code for f in findings]


def test_lyco_train_on_a_lint_only_install_names_the_train_extra_alone(tmp_path):
    """Without torch, diffusers and lycoris (simulated: they cannot be imported) the only lint error is that the
    model cannot be built: lyco train says to install the train extra, not to fix the config."""
    from test_console_script import TINY_FLUX2

    (tmp_path / "model" / "transformer").mkdir(parents=True)
    (tmp_path / "model" / "transformer" / "config.json").write_text(json.dumps(TINY_FLUX2))
    (tmp_path / "lycoris.json").write_text(json.dumps(dict(VALID_LYCORIS, apply_preset={"target_module": ["Flux2Attention"]})))
    (tmp_path / "multidatabackend.json").write_text(json.dumps([
        {"id": "photos", "type": "local", "instance_data_dir": str(tmp_path)},
        {"id": "text-embeds", "dataset_type": "text_embeds", "type": "local", "default": True},
    ]))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(dict(TRAINING, model_flavour="klein-9b", pretrained_model_name_or_path=str(tmp_path / "model"),
                                      lora_type="lycoris", lycoris_config="lycoris.json")))
    code = (
        "import sys; sys.modules.update(dict.fromkeys(['torch', 'diffusers', 'lycoris'], None))\n"
        "from lyco_lint.cli import main\n"
        f"sys.exit(main(['train', {str(config)!r}, '--dry-run']))\n"
    )
    environment = dict(os.environ, LYCO_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 1 and "pip install 'lyco[train]'" in output, output
    assert "fix them" not in output and "LYC210" not in output


@pytest.mark.parametrize("kind", ["training", "lycoris", "dataset"])
def test_thousands_of_unknown_keys_stay_linear(tmp_path, kind):
    """A file within the limits full of unknown keys (no config, but a file pre-commit may pass) is judged quickly:
    spelling suggestions have a budget per file and key lookups do not scan every option (was 45 s)."""
    import random
    import string

    rng = random.Random(0)
    keys = {"".join(rng.choice(string.ascii_lowercase) for _ in range(8)): 1 for _ in range(6000)}
    if kind == "training":
        content, name = dict({"model_family": "flux2"}, **keys), "config.json"
    elif kind == "lycoris":
        content, name = dict(VALID_LYCORIS, **keys), "big.lycoris.json"
    else:
        content, name = [dict({"id": f"d{i}", "type": "local", "instance_data_dir": str(tmp_path)}, **dict(list(keys.items())[i * 3:i * 3 + 3])) for i in range(1500)], "multidatabackend.json"
    path = tmp_path / name
    path.write_text(json.dumps(content))
    start = time.process_time()
    findings = lint_paths([str(path)]).findings
    assert time.process_time() - start < 2.0 and len(findings) > 1000


# -- review B: model configs in a walk, --diff on files it cannot diff, SARIF URIs, machine output ---------------

LYCO_SCRIPT = Path(sys.executable).with_name("lyco")
LYCO = str(LYCO_SCRIPT) if LYCO_SCRIPT.exists() else shutil.which("lyco")
needs_script = pytest.mark.skipif(LYCO is None, reason="the lyco console script is not installed")

CLIP_TEXT_CONFIG = {  # what transformers' CLIPTextModel.save_pretrained writes (its model_type is no training key)
    "_name_or_path": "openai/clip-vit-large-patch14", "architectures": ["CLIPTextModel"], "hidden_size": 768,
    "model_type": "clip_text_model", "num_hidden_layers": 12, "torch_dtype": "bfloat16",
    "transformers_version": "4.44.0", "vocab_size": 49408,
}


# a duplicate key: `--fix` deletes the earlier one (a safe fix)
FIXABLE = '{\n  "algo": "lokr",\n  "algo": "lora",\n  "multiplier": 1.0,\n  "linear_dim": 16,\n  "linear_alpha": 8\n}\n'


def lyco_script(*argv, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([LYCO, *argv], capture_output=True, text=True, cwd=cwd, timeout=120)


@needs_script
def test_a_folder_walk_skips_transformers_and_diffusers_model_configs(tmp_path):
    """Defect: every transformers config.json has a `model_type`, so a walk over a pipeline folder linted the text
    encoder's config as a SimpleTuner training config (13 LYC310 errors, exit 1)."""
    models = tmp_path / "proj" / "models"
    (models / "text_encoder").mkdir(parents=True)
    (models / "text_encoder" / "config.json").write_text(json.dumps(CLIP_TEXT_CONFIG, indent=2))
    (models / "transformer").mkdir()
    (models / "transformer" / "config.json").write_text(json.dumps(
        {"_class_name": "FluxTransformer2DModel", "_diffusers_version": "0.42.1", "num_layers": 1}))
    (tmp_path / "proj" / "lycoris.json").write_text(json.dumps(VALID_LYCORIS))
    done = lyco_script("lint", "proj", cwd=tmp_path)
    assert done.returncode == 0 and "LYC310" not in done.stdout and "All checks passed (1 file)." in done.stdout, done.stdout
    # named on the command line it gets a verdict: one "not a config lyco knows", not 13 unknown training options
    done = lyco_script("lint", "--format", "json", "proj/models/text_encoder/config.json", cwd=tmp_path)
    assert done.returncode == 0 and codes(json.loads(done.stdout)) == ["LYC004"], done.stdout
    assert json.loads(done.stdout)[0]["message"].startswith("a transformers or diffusers model config")  # not "expected ... 'model_type'"
    # a training config is still one, and a broken config.json in a walk is still reported
    (models / "config.json").write_text(json.dumps(dict(TRAINING, vocab_sise=1)))
    (models / "text_encoder" / "config.json").write_text('{"architectures": ["CLIPTextModel"],')
    done = lyco_script("lint", "--format", "json", "proj", cwd=tmp_path)
    found = {(finding["file"], finding["code"]) for finding in json.loads(done.stdout)}
    assert ("proj/models/config.json", "LYC310") in found and ("proj/models/text_encoder/config.json", "LYC001") in found


@needs_script
def test_diff_reports_the_files_it_cannot_diff_and_exits_as_lint_does(tmp_path):
    """Defect: `lyco lint --diff` said "nothing to fix" and exited 0 for invalid JSON (lint: 1) and /dev/null
    (lint: 2). They are reported on stderr, so that stdout stays a diff."""
    (tmp_path / "broken.lycoris.json").write_text('{"algo": "lora",')
    (tmp_path / "fixable.lycoris.json").write_text(FIXABLE)
    done = lyco_script("lint", "--diff", "broken.lycoris.json", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == "", done.stdout
    assert "broken.lycoris.json:1:17: LYC001 [error]" in done.stderr
    unreadable = lyco_script("lint", "--diff", "/dev/null", cwd=tmp_path)
    assert unreadable.returncode == 2 and "/dev/null:1:1: LYC006 [error]" in unreadable.stderr
    assert unreadable.returncode == lyco_script("lint", "/dev/null").returncode
    both = lyco_script("lint", "--diff", "broken.lycoris.json", "fixable.lycoris.json", cwd=tmp_path)
    assert both.returncode == 1 and both.stdout.startswith("--- fixable.lycoris.json") and "LYC001" not in both.stdout
    assert "LYC001" in both.stderr and "would fix 1 problem in 1 file" in both.stderr
    assert lyco_script("lint", "--diff", "/dev/null", "fixable.lycoris.json", cwd=tmp_path).returncode == 2
    clean = tmp_path / "clean.lycoris.json"
    clean.write_text(json.dumps(VALID_LYCORIS))
    done = lyco_script("lint", "--diff", str(clean))
    assert done.returncode == 0 and done.stderr == "lyco: nothing to fix\n"


def sarif_uris(log: dict) -> list[str]:
    results = log["runs"][0]["results"]
    located = [result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for result in results]
    fixed = [change["artifactLocation"]["uri"] for result in results for fix in result.get("fixes", []) for change in fix["artifactChanges"]]
    return located + fixed


@needs_script
def test_sarif_artifact_uris_are_uris(tmp_path):
    """Defect: SARIF's artifactLocation.uri was the raw path: "sp ace/x#1.lycoris.json" is no URI (the space is
    invalid, and "#1..." would be read as a fragment)."""
    from urllib.parse import unquote, urlsplit

    folder = tmp_path / "sp ace"
    folder.mkdir()
    (folder / "x#1.lycoris.json").write_text(FIXABLE)  # a finding with a fix: its artifactChanges have URIs too
    done = lyco_script("lint", "--format", "sarif", "sp ace", cwd=tmp_path)
    uris = sarif_uris(json.loads(done.stdout))
    assert len(uris) == 2 and set(uris) == {"sp%20ace/x%231.lycoris.json"}, uris  # the location and the fix
    assert unquote(uris[0]) == "sp ace/x#1.lycoris.json" and urlsplit(uris[0]).fragment == ""
    (tmp_path / "elsewhere").mkdir()
    outside = lyco_script("lint", "--format", "sarif", str(folder / "x#1.lycoris.json"), cwd=tmp_path / "elsewhere")
    uris = sarif_uris(json.loads(outside.stdout))
    assert set(uris) == {(folder / "x#1.lycoris.json").resolve().as_uri()} and uris[0].startswith("file:///"), uris
    assert " " not in uris[0] and "#" not in uris[0]


def test_machine_output_writes_non_finite_numbers_as_null():
    from lyco_lint.reporters import json_text

    text = json_text({"alpha": float("nan"), "scales": [float("inf"), -float("inf"), 0.5], "note": "\udc00x"})
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON output")) == {
        "alpha": None, "scales": [None, None, 0.5], "note": "\udc00x"}
    text.encode("utf-8")  # lone surrogates escaped: UTF-8 output carries them
