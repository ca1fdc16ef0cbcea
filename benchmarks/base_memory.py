"""The frozen base's weight memory in bf16 and quantized (``base_model_precision``), on FLUX.2-shaped models
built on the meta device from the transformer configs in ``tools/family_configs/flux2.json`` (no weights).

``python benchmarks/base_memory.py`` prints one line per flavour: what ``lyco train --dry-run`` reports for it.
The estimate counts what torchao 0.18 stores (1 byte per weight, float32 scales and int8 zero points per row
for int8; ``tests/test_train_quantize.py`` checks it against a real quantized model byte for byte).
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    import torch
    from diffusers import Flux2Transformer2DModel

    from lyco_lint.units import human_bytes
    from lyco_train.quantize import estimated_bytes, quantizable

    configs = json.loads((ROOT / "tools" / "family_configs" / "flux2.json").read_text())["configs"]
    for flavour, config in configs.items():
        with torch.device("meta"):
            model = Flux2Transformer2DModel.from_config(config)
        parameters = sum(p.numel() for p in model.parameters())
        bf16 = estimated_bytes(model, "no_change", 2)
        int8 = estimated_bytes(model, "int8-torchao", 2)
        fp8 = estimated_bytes(model, "fp8wo-torchao", 2)
        layers = sum(1 for module in model.modules() if quantizable(module))
        print(
            f"flux2 {flavour}: {parameters / 1e9:.2f} B parameters; bf16 {human_bytes(bf16)}, int8-torchao {human_bytes(int8)} "
            f"({int8 / bf16:.1%}), fp8wo-torchao {human_bytes(fp8)} ({fp8 / bf16:.1%}); {layers} Linear layers quantized"
        )


if __name__ == "__main__":
    main()
