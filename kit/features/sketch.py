"""Drawings and hand-painted masks from strokes: what a person drew, as the pixels a model sees.

    strokes = [{"points": [[10, 10], [40, 12]], "size": 6, "color": "#1d3557", "erase": False}]
    picture = sketch.draw(strokes, (256, 256))                 # an RGB drawing on white paper
    picture = sketch.draw(strokes, (256, 256), background=photo_fitted)   # drawn over a photo
    painted = sketch.mask(strokes, (64, 64))                   # mode L: 255 where painted, for restore

A stroke is a dict: `points` ([x, y] pairs in the drawing's pixels, 0,0 the top-left corner;
one point is a dot), `size` (the brush's width in pixels), `color` ("#rrggbb") and `erase`
(True: the stroke rubs out what was drawn before it and shows the paper or the photo again).
Strokes are painted in order with round ends and joins and without anti-aliasing, so the
pixels are the same on every machine and a mask is black and white only.

The strokes come from a browser (`kit.widgets.Sketchpad`), so they are checked like any input:
`check_strokes` refuses what is not a stroke, and caps their number and points.

Light: PIL and numpy only.
"""

from __future__ import annotations

import math
import numbers
import re

import numpy as np
from PIL import Image, ImageDraw

from .. import checks
from ..errors import KitError
from ..files import RESAMPLE, read_image
from ..kinds import Kind, register
from ..provenance.artwork import Artwork
from ..provenance.record import Record

PAPER = (255, 255, 255)  # the colour of an empty drawing
MAX_STROKES = 5_000
MAX_POINTS = 200_000  # over all strokes
MAX_BRUSH = 256  # px
MIN_SIDE, MAX_SIDE = 8, 2048  # a drawing's sides, px (8: the smallest picture restore takes)
MAX_UPLOAD_BYTES = 64 * 2**20  # a photo sent from the browser: larger files are refused before decoding
MAX_UPLOAD_PIXELS = 40_000_000  # ... and larger images before they are decoded
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_KEYS = {"points", "size", "color", "erase"}


# ---------------------------------------------------------------- checking


def check_size(size, field: str = "size") -> tuple[int, int]:
    """A drawing's (width, height), each from MIN_SIDE to MAX_SIDE px."""
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise KitError(f"{field} must be (width, height) in pixels, got {size!r}")
    return tuple(checks.whole(v, f"{field} {name}", MIN_SIDE, MAX_SIDE) for v, name in zip(size, ("width", "height")))


def check_strokes(strokes, field: str = "strokes") -> list[dict]:
    """The strokes as clean dicts (points as float pairs, size as float, color lower case, erase a bool).

    KitError naming the stroke and the field for anything else: a drawing is input like any other.
    """
    if not isinstance(strokes, (list, tuple)):
        raise KitError(f"{field} must be a list of strokes, got {type(strokes).__name__}")
    if len(strokes) > MAX_STROKES:
        raise KitError(f"{field}: {len(strokes)} strokes is more than {MAX_STROKES}; clear the drawing or undo some")
    clean, total = [], 0
    for i, stroke in enumerate(strokes):
        where = f"{field}[{i}]"
        if not isinstance(stroke, dict) or "points" not in stroke or not set(stroke) <= _KEYS:
            raise KitError(
                f"{where} must be a dict with points and optionally size, color and erase, got {stroke!r:.80}"
            )
        points = stroke["points"]
        if not isinstance(points, (list, tuple)) or not points:
            raise KitError(f"{where}.points must be a non-empty list of [x, y] pairs")
        total += len(points)
        if total > MAX_POINTS:
            raise KitError(f"{field}: more than {MAX_POINTS} points in all; clear the drawing or undo some strokes")
        pairs = []
        for point in points:
            ok = (
                isinstance(point, (list, tuple))
                and len(point) == 2
                and all(
                    isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and abs(v) < 1e6
                    for v in point
                )
            )
            if not ok:
                raise KitError(f"{where}.points must hold [x, y] pairs of finite numbers, found {point!r:.40}")
            pairs.append((float(point[0]), float(point[1])))
        size = checks.number(stroke.get("size", 8), f"{where}.size", 1, MAX_BRUSH)
        color = stroke.get("color", "#000000")
        if not isinstance(color, str) or not _COLOR.fullmatch(color):
            raise KitError(f"{where}.color must be '#rrggbb', got {color!r:.40}")
        erase = checks.flag(stroke.get("erase", False), f"{where}.erase")
        clean.append({"points": pairs, "size": size, "color": color.lower(), "erase": erase})
    return clean


# ---------------------------------------------------------------- painting


def _paint(canvas: ImageDraw.ImageDraw, stroke: dict, fill) -> None:
    """One stroke with round ends and joins: a polyline of its width and a disc on every point."""
    points, radius = stroke["points"], stroke["size"] / 2
    if len(points) > 1:
        canvas.line(points, fill=fill, width=max(1, round(stroke["size"])))
    for x, y in points:
        canvas.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)


def draw(strokes, size, background: Image.Image | None = None) -> Image.Image:
    """The drawing as an RGB image of `size`: the strokes on white paper, or over `background`
    (an RGB image of exactly `size`, e.g. from `photo`); an eraser shows the paper or the photo again."""
    strokes, size = check_strokes(strokes), check_size(size)
    if background is not None and (background.size != size or background.mode != "RGB"):
        raise KitError(
            f"background must be an RGB image of {size[0]}x{size[1]} px, "
            f"got {background.mode} {background.width}x{background.height}: fit it with sketch.photo"
        )
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    canvas = ImageDraw.Draw(layer)  # writes the fill as given: an eraser's transparent fill clears
    for stroke in strokes:
        rgb = tuple(int(stroke["color"][i : i + 2], 16) for i in (1, 3, 5))
        _paint(canvas, stroke, (0, 0, 0, 0) if stroke["erase"] else (*rgb, 255))
    paper = Image.new("RGBA", size, (*PAPER, 255)) if background is None else background.convert("RGBA")
    return Image.alpha_composite(paper, layer).convert("RGB")


def mask(strokes, size) -> Image.Image:
    """The painted pixels as a mode-L mask of `size`: 255 where a stroke painted (and no later eraser
    rubbed it out), 0 elsewhere; what `studio.restore` takes. Colours are ignored."""
    strokes, size = check_strokes(strokes), check_size(size)
    painted = Image.new("L", size, 0)
    canvas = ImageDraw.Draw(painted)
    for stroke in strokes:
        _paint(canvas, stroke, 0 if stroke["erase"] else 255)
    return painted


def check_drawing(strokes, size, background: Image.Image | None = None) -> Image.Image:
    """The drawing a model may be given; KitError for an empty canvas (nothing drawn, no photo)."""
    picture = draw(strokes, size, background)
    if background is None and not np.any(np.asarray(picture) != np.asarray(PAPER, dtype=np.uint8)):
        raise KitError("the canvas is empty: draw something or upload a photo first")
    return picture


def check_mask(strokes, size) -> Image.Image:
    """The hand-painted mask `studio.restore` takes; KitError when nothing is painted."""
    painted = mask(strokes, size)
    if not np.any(np.asarray(painted)):
        raise KitError("nothing is painted: paint the damaged area on the picture first")
    return painted


# ---------------------------------------------------------------- photos


def photo(source, size, field: str = "photo") -> tuple[Image.Image, str]:
    """A photo (path, bytes, PIL image, Artwork) fitted to a drawing of `size`: (RGB image, how it was fitted).

    Read by the kit's one image reader (EXIF orientation, transparency on white, 16-bit to 8-bit),
    with an upload's caps on bytes and pixels; scaled to cover the drawing and centre-cropped,
    as `studio.restyle` fits a source of another shape.
    """

    size = check_size(size)
    rgb = read_image(source, field=field, max_bytes=MAX_UPLOAD_BYTES, max_pixels=MAX_UPLOAD_PIXELS)
    width, height = rgb.size
    scale = max(size[0] / width, size[1] / height)
    keep = (max(1, min(width, round(size[0] / scale))), max(1, min(height, round(size[1] / scale))))
    left, top = (width - keep[0]) // 2, (height - keep[1]) // 2
    fitted = rgb.crop((left, top, left + keep[0], top + keep[1]))
    if fitted.size != size:
        fitted = fitted.resize(size, Image.LANCZOS)
    if rgb.size == size:
        note = f"the photo is {width}x{height} px, the drawing's size"
    elif keep == (width, height):
        note = f"the photo was resized from {width}x{height} to {size[0]}x{size[1]} px ({RESAMPLE})"
    else:
        note = (
            f"the photo was centre-cropped from {width}x{height} to {keep[0]}x{keep[1]} px, "
            f"then resized to {size[0]}x{size[1]} px ({RESAMPLE})"
        )
    return fitted, note


# ---------------------------------------------------------------- a drawing kept


def as_artwork(picture: Image.Image, strokes: int, over_photo: bool = False) -> Artwork:
    """A person's drawing as an Artwork to keep beside what a model made of it. Its record (kind "drawing")
    says the person drew it and no model did, so a gallery shows where a restyle came from and can give it
    back to a replay."""
    person = [{"action": "drew", "strokes": checks.whole(strokes, "strokes", 0)}]
    if over_photo:
        person.insert(0, {"action": "gave the photo"})
    record = Record(kind="drawing", width=picture.width, height=picture.height, steps=0, authorship={"person": person})
    return Artwork(picture, record)


register(Kind("drawing", did="made nothing: a person drew it", model=False))
