"""Adapter weights files (``.safetensors``): what ``lyco inspect`` and ``lyco lint FILE.safetensors`` read.

* ``reader`` — the safetensors header and the bytes of single tensors, memory-mapped, with the standard
  library only (a lint-only install has neither torch nor the safetensors package);
* ``adapter`` — the key inventory: LyCORIS modules, their algorithm (from the key suffixes), ranks, factors,
  alphas and the scale each loader applies;
* ``health`` — numbers read from the tensors (non-finite values, modules whose delta is zero, delta norms),
  with numpy when it is installed;
* ``inspection`` — everything about one file, computed once, for the weights rules and ``lyco inspect``;
* ``fit`` — the file against the real model built on the meta device (``--model``; imports torch).

Only ``fit`` imports torch, diffusers or lycoris, inside its functions.
"""
