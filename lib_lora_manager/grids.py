"""Labelled comparison grids for strength sweeps and A/B runs: one row of cells, each image with
its label (e.g. "weight 0.5", "without detail_tweaker") written above it."""

from __future__ import annotations

import math


def labelled_grid(cells: list[tuple[str, str]], columns: int | None = None, max_cell: int = 512):
    """A PIL image of ``(label, image path)`` cells; unreadable images become grey cells that say so."""
    from PIL import Image, ImageDraw, ImageFont

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
    width = min(max_cell, max((im.width for _, im in images if im is not None), default=256))
    height = min(max_cell, max((im.height for _, im in images if im is not None), default=256))
    columns = columns or min(len(images), 6)
    rows = math.ceil(len(images) / columns)
    font = ImageFont.load_default()
    band = 22  # label strip above each cell
    grid = Image.new("RGB", (columns * width, rows * (height + band)), "white")
    draw = ImageDraw.Draw(grid)
    for n, (label, image) in enumerate(images):
        x, y = (n % columns) * width, (n // columns) * (height + band)
        draw.text((x + 4, y + 4), _fit(draw, label, font, width - 8), fill="black", font=font)
        if image is None:
            draw.rectangle([x, y + band, x + width - 1, y + band + height - 1], fill=(200, 200, 200))
            continue
        image.thumbnail((width, height))
        grid.paste(image, (x + (width - image.width) // 2, y + band + (height - image.height) // 2))
    return grid


def _fit(draw, text: str, font, width: int) -> str:
    """The label, shortened with an ellipsis to fit the cell."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"
