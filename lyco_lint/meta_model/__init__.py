"""The real model, built on the meta device: ``lyco lint --model``, ``lyco plan``, and the LyCORIS
plumbing the trainer shares.

* ``resolve`` — find the trained component's ``config.json`` (folder, hub id, ``auto``);
* ``build`` — build its diffusers class on the meta device (no weights read, nothing allocated);
* ``analysis`` — the result types (importable without torch);
* ``analyse`` — run LyCORIS on the meta model and record what it adapted;
* ``network`` and ``patches`` — build a LyCORIS network as SimpleTuner does, shared with ``lyco train``;
* ``cost`` — the bypass/rebuild FLOP model.

Only ``analysis`` may be imported on the lint path; the others import torch, diffusers or lycoris inside
their functions.
"""
