"""Trackers: SimpleTuner's ``report_to`` through accelerate's tracker classes (``accelerate.tracking``).

* ``tensorboard`` — event files in ``output_dir/logging_dir/tracker_project_name`` (SimpleTuner's
  ``logging_dir`` is relative to ``output_dir``); works offline; needs the ``tensorboard`` package
  (``pip install 'lyco[trackers]'``).
* ``wandb`` — project ``tracker_project_name``, run ``tracker_run_name``, files under
  ``output_dir/logging_dir``; offline with ``WANDB_MODE=offline``.
* ``none`` (SimpleTuner's default) — nothing. The other SimpleTuner values (``simpletuner``, ``swanlab``,
  ``comet_ml``, ``custom-tracker``, ``all``) are refused with the choices lyco has.

Each optimizer step logs ``loss``, ``lr`` and ``grad_norm`` (the names of ``metrics.jsonl``), each
validation its images (``validation/<prompt>-<W>x<H>``). Only the main process reports. A tracker whose
package is missing is an error before any work starts (:func:`check_trackers`, torch-free).
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path
from typing import Any, Iterator

from .config import ConfigError

PACKAGES = {"tensorboard": ("tensorboard", "pip install 'lyco[trackers]' (or pip install tensorboard)"), "wandb": ("wandb", "pip install 'lyco[trackers]' (or pip install wandb)")}


def check_trackers(options) -> None:
    """A clear error, before any work, for a ``report_to`` lyco cannot report to here."""
    choice = options.report_to
    if choice == "none":
        return
    if choice not in PACKAGES:
        raise ConfigError(
            f"report_to '{choice}' is not implemented by lyco train; choose tensorboard, wandb or none "
            "(metrics.jsonl, loss_curve.png and the validation images are written either way)"
        )
    package, install = PACKAGES[choice]
    if importlib.util.find_spec(package) is None:
        raise ConfigError(f"report_to {choice}: the {package} package is not installed; {install}, or set \"report_to\": \"none\"")


class Trackers:
    """The run's trackers (none when ``report_to`` is none or on the processes that are not the main one)."""

    def __init__(self, trackers: list):
        self.trackers = trackers

    def log(self, step: int, **values: float) -> None:
        for tracker in self.trackers:
            tracker.log(values, step=step)

    def log_images(self, images: dict[str, list], step: int) -> None:
        """``name -> PIL images of one size``."""
        for tracker in self.trackers:
            if tracker.name == "tensorboard":
                import numpy

                tracker.log_images({name: numpy.stack([numpy.asarray(image.convert("RGB")) for image in shown]) for name, shown in images.items()},
                                   step=step, dataformats="NHWC")
                tracker.writer.flush()
            else:
                tracker.log_images(images, step=step)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []


def run_settings(run) -> dict[str, Any]:
    """What a tracker records about the run (wandb's config)."""
    options = run.config.options
    return {
        "model_family": run.family.name, "model_flavour": run.family.flavour(options), "algo": str(run.config.lycoris.get("algo", "lora")),
        "learning_rate": options.learning_rate, "lr_scheduler": options.lr_scheduler, "train_batch_size": options.train_batch_size,
        "gradient_accumulation_steps": options.gradient_accumulation_steps, "max_train_steps": run.steps.total_steps, "seed": run.seed,
        "mixed_precision": options.mixed_precision,
    }


@contextlib.contextmanager
def open_trackers(run, *, enabled: bool) -> Iterator[Trackers]:
    """The trackers of the run's ``report_to``, started with its settings, closed at the end."""
    options, output_dir = run.config.options, run.config.output_dir
    trackers = Trackers([])
    if enabled and options.report_to != "none":
        from accelerate.tracking import TensorBoardTracker, WandBTracker

        logging_dir = output_dir / options.logging_dir
        if options.report_to == "tensorboard":
            tracker = TensorBoardTracker(options.tracker_project_name, logging_dir)
        else:
            logging_dir.mkdir(parents=True, exist_ok=True)
            tracker = WandBTracker(options.tracker_project_name, name=options.tracker_run_name, dir=str(logging_dir))
        tracker.start()
        if options.report_to == "wandb":
            tracker.store_init_configuration(run_settings(run))
        trackers.trackers.append(tracker)
    try:
        yield trackers
    finally:
        trackers.close()
