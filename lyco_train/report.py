"""What a run shows and leaves behind: the progress bar, ``metrics.jsonl`` and ``loss_curve.png``.

``metrics.jsonl`` grows by one appended line per step; a resumed run rewrites it (atomically) without the
rows after its checkpoint. The loss curve is replaced atomically each time it is drawn. In a run of several
processes only the main one writes and shows anything (``enabled``); the others keep no rows.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from lyco_lint.atomic import atomic_path, write_text

METRICS_NAME = "metrics.jsonl"
CURVE_NAME = "loss_curve.png"
SMOOTHING = 0.9  # exponential moving average of the loss shown on the bar and drawn on the curve


class SpeedColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} it/s" if speed else "-- it/s")


class TrainingLog:
    """Appends one JSON line per optimizer step and drives the progress bar."""

    def __init__(self, output_dir: Path, total_steps: int, start_step: int, console: Console, enabled: bool = True):
        self.path = output_dir / METRICS_NAME
        self.enabled = enabled
        self.rows = keep_rows_until(self.path, start_step) if enabled else []
        self.smoothed: Optional[float] = self.rows[-1]["smoothed_loss"] if self.rows else None
        self.progress = Progress(
            TextColumn("step {task.completed}/{task.total}"),
            BarColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("lr {task.fields[lr]}"),
            SpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = self.progress.add_task("train", total=total_steps, completed=start_step, loss="--", lr="--")
        self.started = time.perf_counter()

    def __enter__(self) -> "TrainingLog":
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.progress.stop()

    def record(self, step: int, **values) -> None:
        if not self.enabled:
            return
        loss = values["loss"]
        self.smoothed = loss if self.smoothed is None else SMOOTHING * self.smoothed + (1 - SMOOTHING) * loss
        row = {"step": step, **values, "smoothed_loss": self.smoothed, "time": round(time.perf_counter() - self.started, 4)}
        self.rows.append(row)
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(row) + "\n")
        self.progress.update(self.task, completed=step, loss=f"{self.smoothed:.4f}", lr=f"{values['lr']:.2e}")

    def record_failure(self, step: int, message: str) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps({"step": step, "loss": None, "error": message}) + "\n")


def keep_rows_until(path: Path, step: int) -> list[dict]:
    """Rows of an earlier run up to ``step`` (a resumed run rewrites what came after its checkpoint)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step and row.get("loss") is not None:
            rows.append(row)
    write_text(path, "".join(json.dumps(row) + "\n" for row in rows))
    return rows


def draw_loss_curve(rows: list[dict], path: Path, size: tuple[int, int] = (800, 400)) -> None:
    """Loss (grey) and smoothed loss (blue) against step, drawn with Pillow."""
    from PIL import Image, ImageDraw

    width, height = size
    left, right, top, bottom = 70, 20, 20, 40
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    points = [(row["step"], row["loss"], row["smoothed_loss"]) for row in rows if _finite(row.get("loss"))]
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    if points:
        steps = [p[0] for p in points]
        values = [v for p in points for v in p[1:]]
        low, high = min(values), max(values)
        if high - low < 1e-12:
            low, high = low - 0.5, high + 0.5
        first, last = min(steps), max(max(steps), min(steps) + 1)

        def xy(step: float, value: float) -> tuple[float, float]:
            x = left + (step - first) / (last - first) * (width - left - right)
            y = height - bottom - (value - low) / (high - low) * (height - top - bottom)
            return x, y

        for index, colour in ((1, (170, 170, 170)), (2, (30, 90, 200))):
            line = [xy(p[0], p[index]) for p in points]
            if len(line) > 1:
                draw.line(line, fill=colour, width=2)
            else:
                x, y = line[0]
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        draw.text((5, top), f"{high:.4g}", fill="black")
        draw.text((5, height - bottom - 10), f"{low:.4g}", fill="black")
        draw.text((left, height - bottom + 8), f"step {first}", fill="black")
        draw.text((width - right - 80, height - bottom + 8), f"step {last}", fill="black")
    draw.text((left + 10, top + 5), "loss (grey), smoothed (blue)", fill="black")
    with atomic_path(path, durable=False) as temporary:  # a picture, redrawn at the next checkpoint: no fsync
        image.save(temporary, format="PNG")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
