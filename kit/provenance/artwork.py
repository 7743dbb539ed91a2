"""An image with its record: save it as a PNG, load it back, replay it.

``Artwork.save`` writes the record into the PNG twice: as a ``parameters`` text chunk in
the web-UI format (``kit.record``) and as the full Record JSON in an iTXt chunk called
``kit``; and it says how the image was made in XMP (``kit.provenance.xmp``), which ExifTool and Adobe
read. It goes through the one safe writer (temp file, fsync, rename), so a crash leaves
the whole PNG or none of it. ``load`` reads a PNG through the one image reader and checks
its pixels against the stored hash (``pixel_hash``); ``replay`` regenerates an image from
its record and compares pixels.

Light on purpose: stdlib, PIL and numpy only (no torch, no diffusers).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import io
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from ..errors import KitError
from ..files import ReadError, check_path, has_alpha, name_part, read_file, read_image, to_rgb, write_atomic
from . import xmp
from .record import Record

__all__ = ["Artwork", "ReplayResult", "load", "replay", "pixel_hash"]


def pixel_hash(image: Image.Image) -> str:
    """sha256 over the image's size and its RGB pixel bytes (any mode is converted to RGB)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}\n".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


# Modes a PNG stores as they are; anything else is saved as 8-bit RGB (RGBA if it has alpha).
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA"}


@dataclass(eq=False)
class Artwork:
    """An image and the record that explains it.

    ``verified`` is set by ``load``: True when the stored hash matches the pixels,
    False when it does not (or no hash was stored), None for a fresh image.
    ``path`` is where it was last saved or loaded from. Content credentials (C2PA)
    are read on request only: ``kit.credentials.status(art.path)``.
    """

    image: Image.Image
    record: Record = field(default_factory=Record)
    verified: bool | None = None
    path: Path | None = None

    def save(self, folder, name: str | None = None) -> Path:
        """Write the image and its record as a PNG in ``folder``; returns the path.

        Atomic: the PNG is written to a temp file in the same folder and renamed
        into place. An existing file is never overwritten (a ``-1``, ``-2`` ...
        suffix is added instead).
        """
        if not isinstance(self.image, Image.Image):
            raise KitError(f"Artwork.image must be a PIL image, got {type(self.image).__name__}")
        folder = _writable_folder(folder)
        stem = _file_stem(name) if name is not None else None
        image = self.image
        if image.mode not in _PNG_MODES:  # 16-bit and float greys scaled, not clipped; alpha kept
            image = to_rgb(image, alpha=has_alpha(image), field="Artwork.image")
        made = xmp.packet(self.record)  # a record XMP cannot carry is refused here, before anything is written
        pixels = pixel_hash(image)
        if self.record.sha256 and self.record.sha256 != pixels:
            raise KitError(
                f"Artwork.image is not the picture its record describes (record.sha256 {self.record.sha256[:12]}..., "
                f"the pixels' {pixels[:12]}...): it was changed after it was made. A record must not lie about "
                "its pixels: save the changed picture with a record of its own, e.g. "
                "kit.Artwork(image, kit.Record(kind='imported', prompt=...)), or keep the original as it was."
            )
        self.record.sha256 = pixels
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", self.record.parameters())  # tEXt, or iTXt when not latin-1
        info.add_itxt("kit", self.record.to_json())
        if made is not None:  # None for a foreign PNG's record: the kit cannot say how that image was made
            info.add_itxt(xmp.KEYWORD, made)
        target = folder / f"{stem or _default_stem(self.record)}.png"
        path = write_atomic(target, lambda out: image.save(out, format="PNG", pnginfo=info), exist="number")
        self.path = path
        return path

    def thumbnail(self, size: int | tuple[int, int] = 256) -> Image.Image:
        """A copy no bigger than ``size`` (one number for a square box), aspect kept."""
        box = (size, size) if isinstance(size, int) else tuple(size)
        small = self.image.copy()
        small.thumbnail(box)
        return small

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.thumbnail(256).save(buffer, format="PNG")
        return buffer.getvalue()

    def _repr_html_(self) -> str:
        data = base64.b64encode(self._repr_png_()).decode("ascii")
        caption = html.escape(f"{self.record.prompt or '(no prompt)'} · seed {self.record.seed}")
        return (
            f'<figure style="display:inline-block;margin:4px">'
            f'<img src="data:image/png;base64,{data}" alt="{caption}">'
            f'<figcaption style="max-width:256px;font-size:small">{caption}</figcaption></figure>'
        )

    def __repr__(self) -> str:
        prompt = self.record.prompt if len(self.record.prompt) <= 40 else self.record.prompt[:37] + "..."
        extra = "" if self.verified is None else f", verified={self.verified}"
        return (
            f"Artwork({self.record.kind}, {self.image.width}x{self.image.height}, "
            f"seed={self.record.seed}, prompt={prompt!r}{extra})"
        )


def _writable_folder(folder) -> Path:
    """The folder as a Path, created if needed; KitError naming it when it cannot be written."""
    folder = check_path(folder, "folder")
    if folder.exists() and not folder.is_dir():
        raise KitError(f"{str(folder)!r} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise KitError(f"cannot create the folder {str(folder)!r}: {err.strerror or err}") from err
    if not os.access(folder, os.W_OK | os.X_OK):
        raise KitError(f"the folder {str(folder)!r} is not writable")
    return folder


def _file_stem(name: str) -> str:
    if not isinstance(name, str):
        raise KitError(f"name must be a plain file name like 'portrait' or 'portrait.png', got {name!r}")
    stem = name.removesuffix(".png").removesuffix(".PNG").strip()
    if not stem or "/" in stem or "\\" in stem or stem.startswith("."):
        raise KitError(f"name must be a plain file name like 'portrait' or 'portrait.png', got {name!r}")
    check_path(stem + "-10000.png", "name")  # NUL bytes, lone surrogates, too long with the number save may add
    return stem


def _default_stem(record: Record) -> str:
    """A file name from the record's time, seed and hash: each part passes the one name rule, so a forged
    record cannot choose where its file goes."""
    try:
        stamp = datetime.fromisoformat(record.created).strftime("%Y%m%d-%H%M%S")
    except (ValueError, TypeError):
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-seed{name_part(record.seed, 'record.seed')}-{name_part(record.sha256[:8], 'record.sha256')}"


def load(path) -> Artwork:
    """Read a PNG and its record.

    A PNG written by the kit gives its stored Record; a web-UI PNG with only a
    ``parameters`` chunk gives a Record parsed from it (kind "imported"); a PNG
    with neither gives an empty imported Record. ``artwork.verified`` tells
    whether the stored hash matches the pixels.

    The bytes come through ``kit.files.read_file`` (regular files only, size cap) and the
    pixels through ``kit.files.read_image`` (8-bit RGB, or RGBA when the PNG has alpha);
    every chunk's checksum is checked, so a truncated or damaged file is a KitError.
    """
    path = Path(path).expanduser()
    data = read_file(path, field="path")  # ReadError (a KitError) naming the path: missing, a folder, a FIFO ...
    where = repr(str(path))
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format != "PNG":
                raise KitError(f"{where} is a {probe.format} file, not a PNG")
            probe.verify()  # checks every chunk's CRC and that the file is complete
        with Image.open(io.BytesIO(data)) as png:
            png.load()
            text = dict(getattr(png, "text", {}) or {})
            image = read_image(png, field="path", alpha=has_alpha(png))
    except ReadError as err:  # from read_image: too many pixels, a colour mode it cannot convert
        raise KitError(f"{where} is not a readable PNG: {err.reason}") from None
    except KitError:
        raise
    except Exception as err:
        raise KitError(f"{where} is not a readable PNG (corrupt or truncated): {err}") from err

    if "kit" in text:
        try:
            record = Record.from_json(text["kit"])
        except KitError as err:
            raise KitError(f"the kit record in {where} is unreadable: {err}") from err
    elif "parameters" in text:
        record = Record.from_parameters(text["parameters"])
    else:
        record = Record(kind="imported", kit_version="")
    pixels = pixel_hash(image)
    verified = bool(record.sha256) and record.sha256 == pixels
    if not record.sha256 and record.kind == "imported":
        record.sha256 = pixels  # a foreign PNG's hash as read: a gallery can name, hide and trace it (unverified)
    return Artwork(image=image, record=record, verified=verified, path=path)


# ---------------------------------------------------------------------------
# Replay
# ---------------------------------------------------------------------------


@dataclass(eq=False)
class ReplayResult:
    """A regenerated artwork next to the original, and whether their pixels agree.

    `differences` names what differs between the record's model and the studio's (preset,
    model, weights revision, device, dtype, backend): pixels made by another model confirm nothing,
    so `match` is False whenever the model differs.
    """

    artwork: Artwork
    original: Artwork
    match: bool
    max_abs_diff: int  # largest per-channel difference, 0..255 (255 when sizes differ)
    differences: dict = field(default_factory=dict)  # field -> (recorded, this studio's)

    def __repr__(self) -> str:
        verdict = "pixels match" if self.match else f"pixels differ (max abs diff {self.max_abs_diff})"
        if self.differences:
            verdict += "; made with another " + ", ".join(self.differences)
        return f"ReplayResult({verdict}, seed={self.original.record.seed}, prompt={self.original.record.prompt!r})"


# what must agree for a replay to confirm a record (device, dtype and backend change the last bits, not the model)
_SAME_MODEL = ("preset", "model", "revision")


def replay(path_or_artwork, studio) -> ReplayResult:
    """Regenerate an image from its record with ``studio.render(record)`` and compare pixels.

    The record is checked like a typed request before any model work; a record made with
    another preset, model or weights revision is rendered but never reported as a match.
    """
    original = path_or_artwork if isinstance(path_or_artwork, Artwork) else load(path_or_artwork)
    if not callable(getattr(studio, "render", None)):
        raise KitError(f"studio must have a render(record) method, got {type(studio).__name__}")
    artwork = studio.render(dataclasses.replace(original.record))
    if not isinstance(getattr(artwork, "image", None), Image.Image):
        raise KitError("studio.render(record) must return an Artwork")
    differences = {
        name: (getattr(original.record, name), getattr(artwork.record, name))
        for name in (*_SAME_MODEL, "device", "dtype", "backend")
        if getattr(original.record, name) != getattr(artwork.record, name)
    }
    diff = _max_abs_diff(original.image, artwork.image)
    same_model = not set(differences) & set(_SAME_MODEL)
    return ReplayResult(
        artwork=artwork, original=original, match=diff == 0 and same_model, max_abs_diff=diff, differences=differences
    )


def _max_abs_diff(a: Image.Image, b: Image.Image) -> int:
    if a.size != b.size:
        return 255
    x = np.asarray(a.convert("RGB"), dtype=np.int16)
    y = np.asarray(b.convert("RGB"), dtype=np.int16)
    return int(np.abs(x - y).max(initial=0))
