"""Contact sheets: many images in one labelled grid (lessons, fusion grids, audits)."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw, ImageFont

from .errors import KitError


def contact_sheet(images, labels=None, columns: int | None = None, cell: int = 160, title: str | None = None):
    """One PIL image with `images` (PIL images or Artworks) in a grid, each with its label under it.

    `None` entries leave a blank cell, so a grid keeps its shape (e.g. a fusion triangle).
    """
    images = [getattr(im, "image", im) for im in images]
    if not images:
        raise KitError("contact_sheet needs at least one image")
    labels = list(labels) if labels is not None else [""] * len(images)
    if len(labels) != len(images):
        raise KitError(f"contact_sheet got {len(images)} images but {len(labels)} labels")
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    font = ImageFont.load_default()
    label_h = 16 if any(labels) else 0
    top = 22 if title else 0
    sheet = Image.new("RGB", (columns * cell, top + rows * (cell + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((6, 4), title, fill="black", font=font)
    for i, (image, label) in enumerate(zip(images, labels)):
        x, y = (i % columns) * cell, top + (i // columns) * (cell + label_h)
        if image is not None:
            thumb = image.convert("RGB")
            thumb.thumbnail((cell - 4, cell - 4))
            sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
        if label:
            draw.text((x + 4, y + cell + 1), _fit(draw, str(label), cell - 8, font), fill="black", font=font)
    return sheet


def _fit(draw, text, width, font) -> str:
    """`text`, cut with an ellipsis to fit `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"
