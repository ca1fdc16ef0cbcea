"""Rendered images on disk: one file per prompt and image, and a grid of them all, written atomically.

Used by validation during training (``output_dir/validation/step-NNNNNN/``) and by ``lyco sample``. A file's
name says which render it is: ``<prompt shortname>-<image number>-<width>x<height>.<png|webp|jpg>``. The grid
has one row per prompt and size, one column per image, and the prompt's shortname and text on the left of
its row; images under 128 pixels are enlarged (nearest neighbour) so that a tiny render stays visible.
Pillow only, no torch.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lyco_lint.atomic import publish_directory, write_bytes

SUFFIXES = {"png": "png", "webp": "webp", "jpeg": "jpg"}
GRID_NAME = "grid"
LABEL_WIDTH = 220
MIN_CELL = 128
GAP = 4


@dataclass
class Render:
    """The images of one prompt at one size."""

    shortname: str
    prompt: str
    width: int
    height: int
    images: list  # PIL images

    def file_names(self, suffix: str) -> list[str]:
        return [f"{self.shortname}-{index}-{self.width}x{self.height}.{suffix}" for index in range(1, len(self.images) + 1)]


def encoded(image, image_format: str, quality: int) -> bytes:
    """The image as PNG, WebP or JPEG bytes (SimpleTuner's validation_image_format and _quality)."""
    buffer = io.BytesIO()
    if image_format == "png":
        image.save(buffer, format="PNG")
    else:
        image.convert("RGB").save(buffer, format=image_format.upper(), quality=quality)
    return buffer.getvalue()


def write_renders(renders: Sequence[Render], folder: Path, image_format: str = "png", quality: int = 90, *, replace: bool) -> list[Path]:
    """Every image and the grid into ``folder``. With ``replace`` the folder is written next to its place and
    renamed into it once complete (validation: a step's folder is whole or absent); without, the files are
    added to ``folder`` one by one, each atomically (``lyco sample``). Returns the image paths, grid last."""
    suffix = SUFFIXES[image_format]
    target = folder.parent / f".{folder.name}.tmp" if replace else folder
    if replace and target.exists():
        shutil.rmtree(target)  # left by a run that stopped while writing this folder
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for render in renders:
        for name, image in zip(render.file_names(suffix), render.images):
            write_bytes(target / name, encoded(image, image_format, quality), durable=False)
            written.append(folder / name)
    grid_name = f"{GRID_NAME}.{suffix}"
    write_bytes(target / grid_name, encoded(grid(renders), image_format, quality), durable=False)
    written.append(folder / grid_name)
    if replace:
        publish_directory(target, folder)
    return written


def grid(renders: Sequence[Render]):
    """One row per render (prompt and size), one column per image, the prompt on the left."""
    from PIL import Image, ImageDraw

    columns = max((len(render.images) for render in renders), default=1)
    scale = [max(1, -(-MIN_CELL // max(1, min(render.width, render.height)))) for render in renders]
    cell_width = max((render.width * factor for render, factor in zip(renders, scale)), default=MIN_CELL)
    cell_height = max((render.height * factor for render, factor in zip(renders, scale)), default=MIN_CELL)
    width = LABEL_WIDTH + columns * (cell_width + GAP) + GAP
    height = max(1, len(renders)) * (cell_height + GAP) + GAP
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for row, (render, factor) in enumerate(zip(renders, scale)):
        top = GAP + row * (cell_height + GAP)
        draw.text((6, top + 4), drawable(f"{render.shortname} ({render.width}x{render.height})"), fill="black")
        for line, text in enumerate(wrapped(render.prompt or "(empty prompt)", 34, 6)):
            draw.text((6, top + 22 + 14 * line), drawable(text), fill=(90, 90, 90))
        for column, image in enumerate(render.images):
            shown = image.convert("RGB").resize((render.width * factor, render.height * factor), Image.NEAREST)
            left = LABEL_WIDTH + GAP + column * (cell_width + GAP)
            sheet.paste(shown, (left + (cell_width - shown.width) // 2, top + (cell_height - shown.height) // 2))
    return sheet


def wrapped(text: str, width: int, lines: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, at most ``lines`` of them (the last one cut with ...)."""
    rows: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            rows.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        rows.append(current)
    if len(rows) > lines:
        rows = rows[:lines]
        rows[-1] = rows[-1][: width - 3] + "..."
    return [row[:width] for row in rows]


def drawable(text: str) -> str:
    """``text`` in the characters Pillow's built-in font can draw (others become ``?``)."""
    return text.encode("latin-1", "replace").decode("latin-1")
