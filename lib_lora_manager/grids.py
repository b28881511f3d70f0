"""Labelled comparison grids for strength sweeps and A/B runs: one row of cells, each image with
its label (e.g. "watercolor 0.5", "without detail_tweaker") written above it.

A label is the point of a sweep (the weight): it is wrapped over as many lines as it needs,
never cut, and small images (a test model's 64 px) are scaled up so the grid reads at a glance."""

from __future__ import annotations

import math
import re

MIN_CELL = 256  # px: smaller images are scaled up to this
LABEL_FONT = 16  # px
_PATH_PART = re.compile(r"[^\s]*[/\\]([^\s/\\]+)")


def short_label(label: str) -> str:
    """A cell's label without the LoRA's folders: "styles/watercolor 0.25" → "watercolor 0.25"
    (the weight is what tells the cells apart; the folder only takes room)."""
    return _PATH_PART.sub(r"\1", label or "")


def labelled_grid(cells: list[tuple[str, str]], columns: int | None = None, max_cell: int = 512,
                  min_cell: int = MIN_CELL):
    """A PIL image of ``(label, image path)`` cells; unreadable images become grey cells that say so."""
    from PIL import Image, ImageDraw

    images = []
    for label, path in cells:
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except (OSError, ValueError) as e:
            image = None
            label = f"{label} (unreadable: {e.__class__.__name__})"
        images.append((label, image))
    if not images:
        raise ValueError("a grid needs at least one image")
    width = min(max_cell, max((im.width for _, im in images if im is not None), default=min_cell))
    height = min(max_cell, max((im.height for _, im in images if im is not None), default=min_cell))
    if width < min_cell and height < min_cell:  # scale the cell up, keeping its shape
        scale = min_cell / max(width, height)
        width, height = round(width * scale), round(height * scale)
    columns = columns or min(len(images), 6)
    rows = math.ceil(len(images) / columns)
    font = _font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = [_wrap(measure, label, font, width - 8) for label, _ in images]
    line = _line_height(font)
    band = max(len(lines) for lines in wrapped) * line + 8  # the label strip above each cell
    grid = Image.new("RGB", (columns * width, rows * (height + band)), "white")
    draw = ImageDraw.Draw(grid)
    for n, ((_, image), lines) in enumerate(zip(images, wrapped)):
        x, y = (n % columns) * width, (n // columns) * (height + band)
        for k, text in enumerate(lines):
            draw.text((x + 4, y + 4 + k * line), text, fill="black", font=font)
        if image is None:
            draw.rectangle([x, y + band, x + width - 1, y + band + height - 1], fill=(200, 200, 200))
            continue
        fit = min(width / image.width, height / image.height)
        image = image.resize((max(1, round(image.width * fit)), max(1, round(image.height * fit))),
                             Image.Resampling.NEAREST if fit > 1 else Image.Resampling.LANCZOS)
        grid.paste(image, (x + (width - image.width) // 2, y + band + (height - image.height) // 2))
    return grid


def _font():
    from PIL import ImageFont

    try:  # Pillow 10.1+: a scalable built-in font
        return ImageFont.load_default(size=LABEL_FONT)
    except TypeError:  # older Pillow: the small bitmap font
        return ImageFont.load_default()


def _line_height(font) -> int:
    box = font.getbbox("Ag")
    return max(12, box[3] - min(0, box[1]) + 4)


def _wrap(draw, text: str, font, width: int) -> list[str]:
    """The label in lines that fit the cell: at spaces where it can, mid-word where a word alone
    is wider than the cell. Nothing is dropped."""
    def fits(s: str) -> bool:
        return draw.textlength(s, font=font) <= width

    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if fits(candidate):
            current = candidate
            continue
        if current:
            lines.append(current)
        while not fits(word) and len(word) > 1:  # a word wider than the cell: break it
            cut = len(word) - 1
            while cut > 1 and not fits(word[:cut]):
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current or not lines:
        lines.append(current)
    return lines
