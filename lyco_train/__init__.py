"""lyco's trainer: ``lyco train config.json`` trains a LyCORIS adapter from a SimpleTuner-style config.json.

``run.py`` tells a run's story top to bottom and calls the rest in this order: ``lint_gate.py`` (``lyco
lint`` first) → ``config.py`` with ``options.py`` (config.json, LyCORIS config, multidatabackend.json) →
``families/`` (the :class:`~.families.base.Family` contract, one class per model family) → ``data.py``
(images, captions, sizes, batch order) → ``plan.py`` (steps, resume point, the printed plan) → ``loop.py``
(the loop and ``train_step``) with ``caching.py``, ``adapter.py``, ``optim.py``, ``flow.py``,
``checkpoint.py``, ``report.py``, ``distributed.py`` (several processes on accelerate) and ``quantize.py``
(a torchao-quantized base). ``bench.py`` times ``train_step``.

Entry points: :func:`run` (what the ``lyco train`` command calls) and :func:`main` (``python -m lyco_train``).
"""

from __future__ import annotations

from .run import main, run

__all__ = ["run", "main"]
