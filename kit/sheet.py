"""Contact sheets: many images in one labelled grid (lessons, fusion grids, audits).

Labels name the world's traditions (Tā moko, Đông Hồ, İznik, 浮世絵, मधुबनी, نگارگری), so they
are drawn with fonts found on this computer that cover Latin, Greek, Cyrillic, Arabic,
Devanagari, CJK and more (Noto Sans, which Debian ships as fonts-noto-core and
fonts-noto-cjk; DejaVu Sans; the system fonts of macOS and Windows). Pillow has no font
fallback of its own, so each stretch of a label is drawn with the first font that has its
characters. Without them Pillow's built-in font is used, which draws only basic Latin letters:
a label character that no font here can draw makes a warning that names the fonts to install.

A sheet has a transparent background and its labels sit on light plates, so it reads the same
on a light and on a dark notebook.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import unicodedata
import warnings
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from . import checks
from .errors import KitError

MAX_CELL = 1024  # pixels per image on a sheet
MAX_CELLS = 1024  # images on one sheet

# Tried in this order for each character: the first font that has a glyph for it draws it.
FONT_FILES = (
    "NotoSans-Regular.ttf",  # Latin, Greek, Cyrillic
    "NotoSansDevanagari-Regular.ttf",
    "NotoSansArabic-Regular.ttf",
    "NotoSansHebrew-Regular.ttf",
    "NotoSansBengali-Regular.ttf",
    "NotoSansTamil-Regular.ttf",
    "NotoSansThai-Regular.ttf",
    "NotoSansEthiopic-Regular.ttf",
    "NotoSansArmenian-Regular.ttf",
    "NotoSansGeorgian-Regular.ttf",
    "NotoSansCJK-Regular.ttc",  # Chinese, Japanese, Korean
    "DejaVuSans.ttf",
    "Arial Unicode.ttf",
    "arialuni.ttf",  # macOS, older Office
    "segoeui.ttf",
    "Nirmala.ttf",
    "msyh.ttc",
    "arial.ttf",  # Windows
    "Kohinoor.ttc",
    "GeezaPro.ttc",
    "PingFang.ttc",
    "Helvetica.ttc",  # macOS
)
FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    os.path.join(sys.prefix, "fonts"),
    os.path.join(sys.prefix, "share", "fonts"),  # conda
    "/Library/Fonts",
    "/System/Library/Fonts",
    "~/Library/Fonts",
    os.path.join(os.environ.get("WINDIR", "C:/Windows"), "Fonts"),
)
INSTALL_HINT = (
    "install the Noto Sans fonts (Debian, Ubuntu: `apt-get install fonts-noto-core fonts-noto-cjk`; "
    "elsewhere from the system's font manager) and restart the kernel"
)
LABEL_FONT_PX, TITLE_FONT_PX = 12, 14
_NOT_A_CHARACTER = "\U000ffffd"  # no font maps it: every font draws its "missing glyph" box for it
INK, PLATE = (17, 17, 17, 255), (242, 242, 242, 235)


def contact_sheet(images, labels=None, columns: int | None = None, cell: int = 160, title: str | None = None):
    """One RGBA image with `images` (PIL images or Artworks) in a grid, each with its label under it.

    `None` entries leave an empty (transparent) cell, so a grid keeps its shape (e.g. a fusion triangle).
    """
    images = [getattr(im, "image", im) for im in images]
    if not images:
        raise KitError("contact_sheet needs at least one image")
    labels = list(labels) if labels is not None else [""] * len(images)
    if len(labels) != len(images):
        raise KitError(f"contact_sheet got {len(images)} images but {len(labels)} labels")
    if len(images) > MAX_CELLS:
        raise KitError(f"contact_sheet takes at most {MAX_CELLS} images, got {len(images)}")
    cell = checks.whole(cell, "cell (pixels per image)", 16, MAX_CELL)
    columns = math.ceil(math.sqrt(len(images))) if columns is None else checks.whole(columns, "columns", 1, len(images))
    rows = math.ceil(len(images) / columns)
    label_h = 16 if any(labels) else 0
    top = 22 if title else 0
    sheet = Image.new("RGBA", (columns * cell, top + rows * (cell + label_h)), (0, 0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    missing: set[str] = set()
    if title:
        _label(draw, str(title), (2, 2), sheet.width - 4, top - 4, TITLE_FONT_PX, missing)
    for i, (image, label) in enumerate(zip(images, labels)):
        x, y = (i % columns) * cell, top + (i // columns) * (cell + label_h)
        if image is not None:  # fitted to the cell; images enlarged 2x or more keep sharp pixels
            small = 2 * max(image.size) <= cell - 4
            thumb = ImageOps.contain(
                image.convert("RGB"),
                (cell - 4, cell - 4),
                Image.Resampling.NEAREST if small else Image.Resampling.LANCZOS,
            )
            sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
        if label:
            _label(draw, str(label), (x + 2, y + cell), cell - 4, label_h - 1, LABEL_FONT_PX, missing)
    if missing:
        shown = " ".join(sorted(missing)[:12])
        warnings.warn(
            f"no font on this computer draws these label characters, so they show as boxes: {shown}; {INSTALL_HINT}",
            stacklevel=2,
        )
    return sheet


# ---------------------------------------------------------------- drawing text in any script


def _label(draw, text: str, corner: tuple[int, int], width: int, height: int, size: int, missing: set):
    """Draw `text` on a light plate at `corner`, cut with an ellipsis to fit `width` pixels."""
    runs = _fit(text, width - 8, size)
    missing.update(ch for run, font in runs if font is None for ch in run if not ch.isspace())
    used = sum(_length(run, font, size) for run, font in runs)
    x, y = corner
    draw.rounded_rectangle((x, y, x + used + 8, y + height), radius=3, fill=PLATE)
    baseline = y + round(height * 0.78)
    x += 4
    for run, font in runs:
        draw.text((x, baseline), run, font=font or _fallback_font(size), fill=INK, anchor="ls")
        x += _length(run, font, size)


def _fit(text: str, width: int, size: int) -> list[tuple[str, object]]:
    """The runs of `text` (cut with an ellipsis where needed) that fit `width` pixels."""

    def fits(candidate: str) -> list | None:
        runs = font_runs(candidate, size)
        return runs if sum(_length(run, font, size) for run, font in runs) <= width else None

    runs = fits(text)
    if runs is not None:
        return runs
    # the longest prefix that fits with an ellipsis: a binary search, not one character at a time
    low, high, best = 0, len(text) - 1, []
    while low <= high:
        middle = (low + high) // 2
        runs = fits(text[:middle].rstrip() + "…")
        if runs is not None:
            best, low = runs, middle + 1
        else:
            high = middle - 1
    return best


def font_runs(text: str, size: int = LABEL_FONT_PX) -> list[tuple[str, object]]:
    """`text` split into (run, font) pieces, each drawn with the first font that has its characters.

    Spaces and combining marks (accents, Devanagari vowel signs and virama) stay with the
    character before them. A run no font can draw has the font None.
    """
    runs: list[list] = []
    for ch in text:
        joins = runs and (ch.isspace() or unicodedata.category(ch) in ("Mn", "Mc", "Me", "Cf"))
        font = runs[-1][1] if joins else _font_for(ch, size)
        if runs and runs[-1][1] is font:
            runs[-1][0] += ch
        else:
            runs.append([ch, font])
    return [(run, font) for run, font in runs]


def _length(run: str, font, size: int) -> float:
    return (font or _fallback_font(size)).getlength(run)


@functools.lru_cache(maxsize=4096)
def _font_for(ch: str, size: int):
    """The first font (of `fonts(size)`, then Pillow's own) that has a glyph for `ch`; None when none has."""
    choices = (*fonts(size), _fallback_font(size))
    if ch.isspace():
        return choices[0]
    for font in choices:
        if _draws(font, ch):
            return font
    return None


def _draws(font, ch: str) -> bool:
    """Whether `font` has a glyph for `ch` (a missing one is drawn as the font's "missing glyph" box)."""
    mask, box = font.getmask(ch), font.getmask(_NOT_A_CHARACTER)
    return (mask.size, bytes(mask)) != (box.size, bytes(box))


@functools.lru_cache(maxsize=8)
def fonts(size: int = LABEL_FONT_PX) -> tuple:
    """The system fonts labels are drawn with, in order of preference; empty when none is installed."""
    loaded = []
    for path in font_paths():
        try:
            loaded.append(ImageFont.truetype(str(path), size))
        except OSError:
            continue  # unreadable or not a font after all: the next one will do
    return tuple(loaded)


@functools.lru_cache(maxsize=1)
def font_paths() -> tuple[Path, ...]:
    """The files of FONT_FILES found under FONT_DIRS, in FONT_FILES order."""
    found: dict[str, Path] = {}
    wanted = {name.lower() for name in FONT_FILES}
    for folder in FONT_DIRS:
        root = Path(folder).expanduser()
        if not root.is_dir():
            continue
        for dirpath, _, filenames in os.walk(root):
            for filename in filenames:
                if filename.lower() in wanted:
                    found.setdefault(filename.lower(), Path(dirpath) / filename)
    return tuple(found[name.lower()] for name in FONT_FILES if name.lower() in found)


@functools.lru_cache(maxsize=8)
def _fallback_font(size: int):
    return ImageFont.load_default(size)
