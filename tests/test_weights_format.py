"""Reading adapter files without torch or the safetensors library: the header checks of LYC601 on broken files
(truncated, not safetensors, corrupt offsets), the tensor checks of LYC602 on NaN and infinity in every float
dtype, and what happens without numpy. The files are real: LyCORIS networks saved with save_weights, then cut,
overwritten or re-saved with the safetensors library."""

from __future__ import annotations

import json
import math
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("lycoris")
np = pytest.importorskip("numpy")
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from conftest import main_in_a_fresh_python  # noqa: E402
from test_model import build_models  # noqa: E402
from weights_fixtures import ALGOS, lycoris_file, with_targets  # noqa: E402

from lyco_lint.engine import Options, lint_paths  # noqa: E402
from lyco_lint.weights.health import _float8_table, measure  # noqa: E402
from lyco_lint.weights.inspection import Inspection  # noqa: E402
from lyco_lint.weights.reader import TensorData, WeightsError, read_header  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    models = build_models(root / "models")
    model = models["flux2"][1]
    return {
        algo: lycoris_file(model, with_targets("flux2", config), root / f"{algo}.safetensors")
        for algo, config in ALGOS.items()
    }


def findings(path, **options):
    return [finding.as_dict() for finding in lint_paths([str(path)], Options(**options)).findings]


def codes(found):
    return [finding["code"] for finding in found]


# -- the header ---------------------------------------------------------------------------------------------


def test_the_header_reads_as_the_safetensors_library_reads_it(files):
    header = read_header(files["lokr"])
    with safe_open(str(files["lokr"]), "pt") as handle:
        assert set(header.tensors) == set(handle.keys())
        assert header.metadata == handle.metadata()
        for key in handle.keys():
            tensor = handle.get_tensor(key)
            info = header.tensors[key]
            assert info.shape == tuple(tensor.shape) and info.dtype == "F32"
            assert np.array_equal(np.frombuffer(TensorData(header).buffer(info), dtype="<f4").reshape(info.shape), tensor.numpy())


def test_alpha_scalars_are_read_in_every_dtype(tmp_path):
    for dtype, name in ((torch.float32, "F32"), (torch.float16, "F16"), (torch.bfloat16, "BF16"), (torch.float64, "F64")):
        path = tmp_path / f"{name}.safetensors"
        save_file({"lycoris_x.alpha": torch.tensor(8.0, dtype=dtype), "lycoris_x.lokr_w1": torch.ones(2, 2, dtype=dtype)}, str(path))
        header = read_header(path)
        assert TensorData(header).scalar(header.tensors["lycoris_x.alpha"]) == 8.0
        assert header.tensors["lycoris_x.alpha"].dtype == name


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda raw: raw[: len(raw) * 2 // 3], ["truncated", "interrupted download"]),
        (lambda raw: raw[:5], ["5 bytes long"]),
        (lambda raw: raw[:20], ["header is cut off"]),
        (lambda raw: raw + b"\0" * 10, ["10 bytes follow the last tensor"]),
        (lambda raw: struct.pack("<Q", 7) + b"{nope}}" + raw[15:], ["not JSON"]),
        (lambda raw: b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12345\n", ["Git LFS pointer", "git lfs pull"]),
        (lambda raw: b"PK\x03\x04" + b"\0" * 100, ["zip archive", "torch.save"]),
    ],
    ids=["truncated", "tiny", "header-cut", "trailing-bytes", "bad-json", "git-lfs", "zip"],
)
def test_broken_files_are_one_clear_lyc601(files, tmp_path, damage, words):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(damage(files["lokr"].read_bytes()))
    found = findings(path)
    assert codes(found) == ["LYC601"], found
    assert found[0]["severity"] == "error" and found[0]["line"] is None
    assert all(word in found[0]["message"] for word in words), found[0]["message"]
    with pytest.raises(Exception):  # the safetensors library refuses the same file
        load_file(str(path))


def test_a_truncated_file_points_at_the_first_tensor_cut_off(files, tmp_path):
    raw = files["lokr"].read_bytes()
    header = read_header(files["lokr"])
    last = max(header.tensors.values(), key=lambda info: info.end)
    path = tmp_path / "cut.safetensors"
    path.write_bytes(raw[:-4])
    with pytest.raises(WeightsError) as caught:
        read_header(path)
    assert caught.value.key == last.key
    assert findings(path)[0]["tensor"] == last.key


def test_corrupt_offsets_and_dtypes_are_named(files, tmp_path):
    raw = files["lokr"].read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    key = next(k for k in header if k != "__metadata__")
    for change, words in (({"dtype": "F33"}, "unknown dtype"), ({"shape": [9999]}, "needs"), ({"data_offsets": [5, 1]}, "begin <= end")):
        broken = dict(header, **{key: {**header[key], **change}})
        text = json.dumps(broken).encode()
        path = tmp_path / "offsets.safetensors"
        path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length :])
        found = findings(path)
        assert codes(found) == ["LYC601"] and words in found[0]["message"] and found[0]["tensor"] == key


def test_a_pickle_checkpoint_is_named(tmp_path):
    path = tmp_path / "adapter.safetensors"
    torch.save({"lycoris_x.lokr_w1": torch.ones(2, 2)}, str(path), _use_new_zipfile_serialization=False)
    found = findings(path)
    assert codes(found) == ["LYC601"] and "pickle" in found[0]["message"]


def test_a_model_checkpoint_is_not_an_adapter(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"transformer_blocks.0.attn.to_q.weight": torch.ones(4, 4)}, str(path))
    found = findings(path)
    assert codes(found) == ["LYC004"] and "without LyCORIS adapter keys" in found[0]["message"]
    # found by walking a folder, it is skipped like an unrelated JSON file
    assert lint_paths([str(tmp_path)]).findings == []


# -- the tensors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["f32", "f16", "bf16"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_an_injected_non_finite_value_is_lyc602(files, tmp_path, dtype, bad):
    tensors = load_file(str(files["lokr"]))
    key = "lycoris_transformer_blocks_0_attn_to_k.lokr_w2"
    tensors = {k: v.to(dtype) for k, v in tensors.items()}
    tensors[key] = tensors[key].clone()
    tensors[key][3, 1] = bad
    path = tmp_path / "nan.safetensors"
    save_file(tensors, str(path))
    found = [f for f in findings(path) if f["code"] == "LYC602"]
    assert len(found) == 1 and found[0]["severity"] == "error" and found[0]["tensor"] == key
    assert "1 tensor of 1 module" in found[0]["message"] and "(1 values" in found[0]["message"]


def test_float32_values_too_large_to_square_are_finite(files, tmp_path):
    tensors = load_file(str(files["lora"]))
    key = next(k for k in tensors if k.endswith("lora_up.weight"))
    tensors[key] = torch.full_like(tensors[key], 3e38)  # squares overflow float32, values do not
    path = tmp_path / "huge.safetensors"
    save_file(tensors, str(path))
    header = read_header(path)
    inspection = Inspection.open(path, "huge")
    health = measure(inspection.adapter, TensorData(header))
    assert health.tensors[key].nonfinite == 0
    assert math.isclose(health.tensors[key].sum_squares, tensors[key].double().pow(2).sum().item(), rel_tol=1e-6)


@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e5m2"])
def test_float8_values_decode_as_torch_decodes_them(dtype):
    raw = torch.arange(256, dtype=torch.uint8)
    expected = raw.view(getattr(torch, dtype)).float().numpy()
    table = _float8_table("F8_E4M3" if dtype.endswith("fn") else "F8_E5M2")
    both_nan = np.isnan(expected) & np.isnan(table)
    assert np.array_equal(expected[~both_nan], table[~both_nan]) and np.array_equal(np.isnan(expected), np.isnan(table))


def test_without_numpy_header_checks_run_and_tensor_checks_say_so(files, tmp_path):
    tensors = load_file(str(files["lokr"]))
    tensors["lycoris_transformer_blocks_0_attn_to_k.lokr_w2"][0, 0] = math.nan
    path = tmp_path / "nan.safetensors"
    save_file(tensors, str(path), {"model_family": "flux2"})
    code = (
        "import sys; sys.modules.update(dict.fromkeys(['numpy', 'torch', 'safetensors'], None))\n"
        "from lyco_lint.cli import main\n"
        f"status = main(['lint', '--format', 'json', {str(path)!r}])\n"
        "print('STATUS', status)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    found = json.loads(out[: out.rindex("STATUS")])
    nan = [f for f in found if f["code"] == "LYC602"]
    assert nan and nan[0]["severity"] == "info" and "numpy is not installed" in nan[0]["message"]
    assert "STATUS 0" in out and "Traceback" not in done.stderr


def test_model_checks_on_a_lint_only_install_and_without_a_base_model_are_lyc210(files):
    code = (
        "import sys; sys.modules.update(dict.fromkeys(['torch', 'diffusers', 'lycoris'], None))\n"
        "from lyco_lint.cli import main\n"
        f"status = main(['inspect', '--format', 'json', '--model', {str(files['lokr'].parent / 'models' / 'flux2')!r}, {str(files['lokr'])!r}])\n"
        "print('STATUS', status)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    facts = json.loads(out[: out.rindex("STATUS")])
    unavailable = [f for f in facts["findings"] if f["code"] == "LYC210"]
    assert unavailable and "pip install 'lyco[train]'" in unavailable[0]["message"] and "STATUS 1" in out
    found = findings(files["lokr"], model="auto")  # LyCORIS's own save_weights writes no base_model
    assert any(f["code"] == "LYC210" and "base_model" in f["message"] for f in found)


@pytest.mark.parametrize("command", [["lint", "--quiet"], ["inspect"], ["inspect", "--format", "json"]])
def test_lint_and_inspect_read_weights_without_torch_or_the_safetensors_library(files, command):
    assert main_in_a_fresh_python([*command, str(files["tlora"])]) == (0, [])


def test_the_pre_commit_hook_for_adapters_runs_lint_on_them(files, tmp_path):
    yaml = pytest.importorskip("yaml")
    from conftest import ROOT

    hook = next(h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text()) if h["id"] == "lyco-lint-adapters")
    assert re.search(hook["files"], "out/pytorch_lora_weights.safetensors") and not re.search(hook["files"], "config.json")
    tensors = load_file(str(files["lokr"]))
    tensors["lycoris_transformer_blocks_0_attn_to_q.lokr_w1"][0, 0] = math.nan
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad))
    command = [sys.executable, "-m", "lyco_lint", *hook["entry"].split()[1:]]
    assert subprocess.run([*command, str(files["lokr"])], capture_output=True).returncode == 0
    failed = subprocess.run([*command, str(files["lokr"]), str(bad)], capture_output=True, text=True)
    assert failed.returncode == 1 and "bad.safetensors::lycoris_transformer_blocks_0_attn_to_q.lokr_w1: LYC602" in failed.stdout
