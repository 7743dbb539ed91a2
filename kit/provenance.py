"""Provenance: the record behind every image, PNG metadata, replay, and the gallery.

Every image the kit makes carries a ``Record`` (prompt, seed, model, sampler, ...).
``Artwork.save`` writes it into the PNG twice: as a ``parameters`` text chunk in the
format the popular Stable Diffusion web UIs write and read, and as the full Record JSON
in an iTXt chunk called ``kit``. ``load`` reads both back and checks the pixels against
the stored hash; ``replay`` regenerates an image from its record and compares pixels.
``Gallery`` is an append-only folder of such PNGs with a small sqlite index.

Light on purpose: stdlib, PIL and numpy only (no torch, no diffusers).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import io
import json
import operator
import os
import re
import sqlite3
import warnings
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from . import __version__
from .errors import KitError
from .files import has_alpha, to_rgb, write_atomic

__all__ = [
    "Record", "Artwork", "ReplayResult", "Gallery",
    "load", "replay", "pixel_hash", "parse_parameters", "sampler_name", "default_folder",
]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# ---------------------------------------------------------------------------
# Record
# ---------------------------------------------------------------------------

# Field groups for the loose type checks in Record.__post_init__.
_STR = ("kind", "prompt", "negative", "preset", "model", "scheduler", "sampler",
        "device", "dtype", "decoder", "kit_version", "created", "sha256")
_OPTIONAL_STR = ("subject", "style", "revision")
_INT = ("seed", "steps", "width", "height")
_FLOAT = ("guidance",)
_OPTIONAL_DICT = ("fusion", "walk", "restore")


@dataclass
class Record:
    """Everything needed to explain and regenerate one image.

    JSON-serialisable. Every field has a default so records written by older
    versions still load; keys this version does not know end up in ``extra``.
    """

    kind: str = "generate"  # "generate" | "walk" | "fuse" | "restore" ("imported" for foreign PNGs)
    prompt: str = ""  # as sent to the text encoder, after the style template
    negative: str = ""
    subject: str | None = None  # the user's text before a style template was applied
    style: str | None = None  # style id
    seed: int = 0
    steps: int = 1
    guidance: float = 0.0
    width: int = 512
    height: int = 512
    preset: str = ""
    model: str = ""  # repo id or local folder
    revision: str | None = None  # weights commit hash when known
    scheduler: str = ""  # diffusers class name
    sampler: str = ""  # web-UI sampler name, e.g. "Euler a"
    device: str = "cpu"
    dtype: str = "float32"
    decoder: str = "vae"  # "vae" (full VAE) | "taesd" (preview)
    fusion: dict[str, float] | None = None  # style id or free prompt -> weight, as the user gave them
    walk: dict | None = None  # keyframes, method, segment, t, frame, frames
    restore: dict | None = None  # mask_sha256, mask_area, mask_png, source_sha256, source_path, strength, work_size
    kit_version: str = __version__
    created: str = field(default_factory=_now)
    sha256: str = ""  # pixel_hash() of the image
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        # Loose checks: accept what JSON and numpy hand us, refuse what cannot be meant.
        for name in _STR:
            value = getattr(self, name)
            if value is None:
                value = ""
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            elif not isinstance(value, str):
                raise KitError(f"Record.{name} must be a string, got {value!r}")
            setattr(self, name, value)
        for name in _OPTIONAL_STR:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise KitError(f"Record.{name} must be a string or None, got {value!r}")
        for name in _INT:
            setattr(self, name, _as_int(name, getattr(self, name)))
        for name in _FLOAT:
            setattr(self, name, _as_float(name, getattr(self, name)))
        for name in _OPTIONAL_DICT:
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, dict):
                    raise KitError(f"Record.{name} must be a dict or None, got {value!r}")
                setattr(self, name, _json_copy(name, value))
        if self.fusion is not None:
            self.fusion = {str(k): _as_float(f"fusion[{k!r}]", v) for k, v in self.fusion.items()}
        if not isinstance(self.extra, dict):
            raise KitError(f"Record.extra must be a dict, got {self.extra!r}")
        self.extra = _json_copy("extra", self.extra)

    # -- JSON ---------------------------------------------------------------

    def to_dict(self) -> dict:
        """A plain dict of JSON types."""
        return dataclasses.asdict(self)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        """Build a Record from a dict; unknown keys are kept in ``extra``."""
        if not isinstance(data, dict):
            raise KitError(f"a Record needs a dict (JSON object), got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names and k != "extra"}
        extra = data.get("extra") or {}
        if not isinstance(extra, dict):
            raise KitError(f"Record.extra must be a dict, got {extra!r}")
        extra = {**extra, **{k: v for k, v in data.items() if k not in names}}
        return cls(**known, extra=extra)

    @classmethod
    def from_json(cls, text: str | bytes) -> Record:
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as err:
            raise KitError(f"not a valid Record JSON: {err}") from err
        return cls.from_dict(data)

    # -- web-UI text ----------------------------------------------------------

    def parameters(self) -> str:
        """The record in the web-UI ``parameters`` format (see ``parse_parameters``)."""
        settings = {
            "Steps": self.steps,
            "Sampler": self.sampler or sampler_name(self.scheduler),
            "CFG scale": self.guidance,
            "Seed": self.seed,
            "Size": f"{self.width}x{self.height}",
            "Model": self.preset or self.model,
            "Style": self.style,
            "Fusion": "; ".join(f"{k} {v:g}" for k, v in self.fusion.items()) if self.fusion else None,
            "Version": f"kit {self.kit_version}" if self.kit_version else "",
        }
        line = ", ".join(f"{key}: {_quote(value)}" for key, value in settings.items()
                         if value not in (None, ""))
        lines = [self.prompt] if self.prompt else []
        if self.negative:
            lines.append(f"Negative prompt: {self.negative}")
        lines.append(line)
        return "\n".join(lines)

    @classmethod
    def from_parameters(cls, text: str) -> Record:
        """A Record (kind "imported") from a web-UI ``parameters`` text.

        Values that do not convert are left out; everything parsed is kept in
        ``extra["parameters"]``.
        """
        parsed = parse_parameters(text)
        values = {"kind": "imported", "prompt": parsed["Prompt"],
                  "negative": parsed["Negative prompt"], "kit_version": ""}
        for key, name, convert in (("Steps", "steps", int), ("Seed", "seed", int),
                                   ("CFG scale", "guidance", float)):
            try:
                values[name] = convert(parsed[key])
            except (KeyError, ValueError):
                pass
        size = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", parsed.get("Size", ""))
        if size:
            values["width"], values["height"] = int(size[1]), int(size[2])
        values["sampler"] = parsed.get("Sampler", "")
        values["model"] = parsed.get("Model", "")
        values["style"] = parsed.get("Style")
        version = parsed.get("Version", "")
        if version.startswith("kit "):
            values["kit_version"] = version[4:]
        return cls(**values, extra={"parameters": parsed})


def _as_int(name, value) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, str):
            return int(value.strip())
        if isinstance(value, (float, np.floating)):
            if not float(value).is_integer():
                raise ValueError
            return int(value)
        return operator.index(value)  # int and numpy integers
    except (TypeError, ValueError, OverflowError):
        raise KitError(f"Record.{name} must be an integer, got {value!r}") from None


def _as_float(name, value) -> float:
    if isinstance(value, bool):
        raise KitError(f"Record.{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise KitError(f"Record.{name} must be a number, got {value!r}") from None


def _json_copy(name, value):
    """A deep copy through JSON: tuples become lists, so a saved record equals its load."""
    try:
        return json.loads(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError) as err:
        raise KitError(f"Record.{name} must hold only JSON values: {err}") from None


# ---------------------------------------------------------------------------
# The web-UI "parameters" text
# ---------------------------------------------------------------------------
#
#   <prompt>
#   Negative prompt: <negative>            (line left out when empty)
#   Steps: 1, Sampler: Euler a, CFG scale: 0.0, Seed: 42, Size: 512x512, Model: sd-turbo, Version: kit 0.1.0
#
# The last line is "Key: value" pairs joined by ", ". A value holding a comma, a colon
# or a newline is written as a JSON string in double quotes, as those web UIs do.

_PAIR = re.compile(r'\s*(\w[\w \-/]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_NEGATIVE = "Negative prompt:"


# diffusers scheduler class -> the sampler name the web UIs show for the same method.
SAMPLER_NAMES = {
    "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "HeunDiscreteScheduler": "Heun",
    "LMSDiscreteScheduler": "LMS",
    "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a",
    "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DDIMScheduler": "DDIM",
    "PNDMScheduler": "PLMS",
    "UniPCMultistepScheduler": "UniPC",
    "LCMScheduler": "LCM",
}


def sampler_name(scheduler: str) -> str:
    """The web-UI sampler name for a diffusers scheduler class name ("" when there is none)."""
    return SAMPLER_NAMES.get(scheduler, "")


def _quote(value) -> str:
    text = str(value)
    if any(c in text for c in ",:\n"):
        return json.dumps(text, ensure_ascii=False)
    return text


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def _settings_line(line: str) -> dict | None:
    """The key/value pairs of a settings line, or None when the line is prompt text.

    A settings line has at least three pairs and either parses cleanly or carries
    Steps and Seed (a web-UI line with a key shape this parser does not know).
    """
    pairs, junk, pos = {}, 0, 0
    while pos < len(line):
        match = _PAIR.match(line, pos)
        if match:
            pairs[match[1].strip()] = _unquote(match[2].strip())
            pos = match.end()
        else:
            junk += 1
            comma = line.find(",", pos)
            pos = len(line) if comma < 0 else comma + 1
    if len(pairs) >= 3 and (junk == 0 or {"Steps", "Seed"} <= pairs.keys()):
        return pairs
    return None


def parse_parameters(text: str) -> dict:
    """Read a web-UI ``parameters`` text back into a dict of strings.

    Keys: ``"Prompt"``, ``"Negative prompt"`` and every key of the settings line
    (``"Steps"``, ``"Sampler"``, ``"CFG scale"``, ``"Seed"``, ``"Size"``, ...), with
    quoted values unquoted. Values stay strings, as the web UIs give them.
    """
    if not isinstance(text, str):
        raise KitError(f"parameters must be a string, got {type(text).__name__}")
    lines = text.replace("\r\n", "\n").strip("\n").split("\n")
    settings = _settings_line(lines[-1]) if lines else None
    if settings is not None:
        lines = lines[:-1]
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if not in_negative and line.startswith(_NEGATIVE):
            in_negative = True
            line = line[len(_NEGATIVE):].removeprefix(" ")
        (negative if in_negative else prompt).append(line)
    return {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative), **(settings or {})}


# ---------------------------------------------------------------------------
# Artwork: an image with its record
# ---------------------------------------------------------------------------

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
        if not self.record.sha256:
            self.record.sha256 = pixel_hash(image)
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", self.record.parameters())  # tEXt, or iTXt when not latin-1
        info.add_itxt("kit", self.record.to_json())
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
        return (f'<figure style="display:inline-block;margin:4px">'
                f'<img src="data:image/png;base64,{data}" alt="{caption}">'
                f'<figcaption style="max-width:256px;font-size:small">{caption}</figcaption></figure>')

    def __repr__(self) -> str:
        prompt = self.record.prompt if len(self.record.prompt) <= 40 else self.record.prompt[:37] + "..."
        extra = "" if self.verified is None else f", verified={self.verified}"
        return (f"Artwork({self.record.kind}, {self.image.width}x{self.image.height}, "
                f"seed={self.record.seed}, prompt={prompt!r}{extra})")


def _writable_folder(folder) -> Path:
    """The folder as a Path, created if needed; KitError naming it when it cannot be written."""
    folder = Path(folder).expanduser()
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
    stem = str(name).removesuffix(".png").removesuffix(".PNG").strip()
    if not stem or "/" in stem or "\\" in stem or stem.startswith("."):
        raise KitError(f"name must be a plain file name like 'portrait' or 'portrait.png', got {name!r}")
    return stem


def _default_stem(record: Record) -> str:
    try:
        stamp = datetime.fromisoformat(record.created).strftime("%Y%m%d-%H%M%S")
    except ValueError:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-seed{record.seed}-{record.sha256[:8]}"


def load(path) -> Artwork:
    """Read a PNG and its record.

    A PNG written by the kit gives its stored Record; a web-UI PNG with only a
    ``parameters`` chunk gives a Record parsed from it (kind "imported"); a PNG
    with neither gives an empty imported Record. ``artwork.verified`` tells
    whether the stored hash matches the pixels.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise KitError(f"no image file at {str(path)!r}")
    try:
        with Image.open(path) as probe:
            if probe.format != "PNG":
                raise KitError(f"{str(path)!r} is a {probe.format} file, not a PNG")
            probe.verify()  # checks every chunk's CRC and that the file is complete
        with Image.open(path) as image:
            image.load()
    except KitError:
        raise
    except Exception as err:
        raise KitError(f"{str(path)!r} is not a readable PNG (corrupt or truncated): {err}") from err

    text = getattr(image, "text", {}) or {}
    if "kit" in text:
        try:
            record = Record.from_json(text["kit"])
        except KitError as err:
            raise KitError(f"the kit record in {str(path)!r} is unreadable: {err}") from err
    elif "parameters" in text:
        record = Record.from_parameters(text["parameters"])
    else:
        record = Record(kind="imported", kit_version="")
    verified = bool(record.sha256) and record.sha256 == pixel_hash(image)
    return Artwork(image=image, record=record, verified=verified, path=path)


# ---------------------------------------------------------------------------
# Replay
# ---------------------------------------------------------------------------

@dataclass(eq=False)
class ReplayResult:
    """A regenerated artwork next to the original, and whether their pixels agree.

    `differences` names what differs between the record's model and the studio's (preset,
    model, weights revision, device, dtype): pixels made by another model confirm nothing,
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


# what must agree for a replay to confirm a record (device and dtype change the last bits, not the model)
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
    differences = {name: (getattr(original.record, name), getattr(artwork.record, name))
                   for name in (*_SAME_MODEL, "device", "dtype")
                   if getattr(original.record, name) != getattr(artwork.record, name)}
    diff = _max_abs_diff(original.image, artwork.image)
    same_model = not set(differences) & set(_SAME_MODEL)
    return ReplayResult(artwork=artwork, original=original, match=diff == 0 and same_model, max_abs_diff=diff,
                        differences=differences)


def _max_abs_diff(a: Image.Image, b: Image.Image) -> int:
    if a.size != b.size:
        return 255
    x = np.asarray(a.convert("RGB"), dtype=np.int16)
    y = np.asarray(b.convert("RGB"), dtype=np.int16)
    return int(np.abs(x - y).max(initial=0))


# ---------------------------------------------------------------------------
# Gallery
# ---------------------------------------------------------------------------

def default_folder() -> Path:
    """``$KIT_GALLERY`` if set, else ``~/kit-gallery``."""
    return Path(os.environ.get("KIT_GALLERY") or "~/kit-gallery").expanduser()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS artworks (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL UNIQUE,
    created TEXT,
    kind TEXT,
    prompt TEXT,
    style TEXT,
    seed INTEGER,
    preset TEXT,
    sha256 TEXT,
    record_json TEXT
)
"""


class Gallery:
    """An append-only folder of PNGs with an sqlite index (``gallery.sqlite``).

    The PNG is the source of truth: it is renamed into place first, then indexed.
    If a crash falls between the two, ``rebuild_index()`` picks the PNG up again.
    Several Gallery objects (several kernels) can share one folder.
    """

    INDEX = "gallery.sqlite"

    def __init__(self, folder=None):
        self.folder = _writable_folder(default_folder() if folder is None else folder)
        self.index = self.folder / self.INDEX
        fresh = not self.index.exists()
        try:
            with closing(self._connect()) as db:
                db.execute("PRAGMA journal_mode=WAL")
                with db:
                    db.execute(_SCHEMA)
        except sqlite3.Error as err:
            raise KitError(f"cannot open the gallery index {str(self.index)!r}: {err}") from err
        if fresh:
            self.rebuild_index()  # a folder of PNGs without an index: index what is there

    def _connect(self) -> sqlite3.Connection:
        # One short-lived connection per operation: safe across threads and kernels.
        return sqlite3.connect(self.index, timeout=30)

    def _insert(self, db, path: Path, record: Record):
        seed = record.seed if -2**63 <= record.seed < 2**63 else None  # sqlite integers are 64-bit
        db.execute(
            "INSERT OR IGNORE INTO artworks (file, created, kind, prompt, style, seed, preset, sha256, record_json)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (path.name, record.created, record.kind, record.prompt, record.style, seed,
             record.preset, record.sha256, record.to_json()),
        )

    def add(self, artwork: Artwork) -> Path:
        """Save the artwork into the gallery folder and index it; returns the PNG path."""
        path = artwork.save(self.folder)
        try:
            with closing(self._connect()) as db, db:
                self._insert(db, path, artwork.record)
        except sqlite3.Error as err:
            raise KitError(f"saved {str(path)!r} but could not index it ({err}); "
                           "run Gallery.rebuild_index() to add it") from err
        return path

    def _files(self, where: str = "", args: tuple = (), newest_first: bool = False, limit: int = -1) -> list[str]:
        order = "id DESC" if newest_first else "id"
        with closing(self._connect()) as db:
            rows = db.execute(f"SELECT file FROM artworks {where} ORDER BY {order} LIMIT ?",
                              (*args, limit)).fetchall()
        return [row[0] for row in rows]

    def _load_all(self, files):
        for name in files:
            try:
                yield load(self.folder / name)
            except KitError as err:
                warnings.warn(f"skipping a gallery entry: {err}", stacklevel=3)

    def __len__(self) -> int:
        with closing(self._connect()) as db:
            return db.execute("SELECT COUNT(*) FROM artworks").fetchone()[0]

    def __iter__(self):
        """Artworks in the order they were added, each loaded when reached."""
        return self._load_all(self._files())

    def latest(self, n: int = 8) -> list[Artwork]:
        """The ``n`` most recently added artworks, newest first."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise KitError(f"n must be a whole number >= 0, got {n!r}")
        return list(self._load_all(self._files(newest_first=True, limit=n)))

    def find(self, prompt: str | None = None, style: str | None = None,
             seed: int | None = None, kind: str | None = None) -> list[Artwork]:
        """Artworks matching every given filter (``prompt``: case-insensitive substring)."""
        clauses, args = [], []
        if prompt is not None:
            clauses.append("instr(lower(prompt), lower(?)) > 0")
            args.append(prompt)
        for column, value in (("style", style), ("seed", seed), ("kind", kind)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        where = "WHERE " + " AND ".join(clauses) if clauses else ""
        return list(self._load_all(self._files(where, tuple(args))))

    def rebuild_index(self) -> int:
        """Index every PNG in the folder that the index is missing; returns how many were added.

        Nothing is removed: entries already indexed keep their place and id.
        """
        known = set(self._files())
        found = []
        for path in self.folder.glob("*.png"):
            if path.name in known or path.name.startswith("."):
                continue
            try:
                artwork = load(path)
            except KitError as err:
                warnings.warn(f"not indexing {path.name}: {err}", stacklevel=2)
                continue
            found.append((artwork.record.created, path.name, path, artwork.record))
        found.sort(key=lambda item: item[:2])  # oldest first, as they would have been added
        with closing(self._connect()) as db, db:
            for _, _, path, record in found:
                self._insert(db, path, record)
        return len(found)

    def __repr__(self) -> str:
        return f"Gallery({str(self.folder)!r}, {len(self)} artworks)"
