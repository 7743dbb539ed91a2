"""A walk shown: its frames as a table in a notebook, and as GIF and MP4 files with every frame's record.

The sidecar is written first and each file atomically (`kit.files.write_atomic`), so an animation never
appears without its records; a name that is taken is an error unless `exist` says to replace it or to
number the new files.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np

from .. import checks
from ..errors import KitError
from ..files import write_atomic

MAX_FPS = 60  # frames per second an MP4 may ask for (a GIF: 50, its delays are hundredths of a second)


def save_gif(walk, path, fps: float = 12, loop: bool = True, *, exist: str = "error") -> Path:
    """Write the frames as an animated GIF (``loop``: repeat forever) and ``<path>.json`` with every record.

    exist: when a file of either name is there: "error" (the default), "replace" it, or write
    beside it as ``name-1``, ``name-2`` ... ("number"). Returns the path written.
    """
    fps = checks.number(fps, "fps", 1, 50)  # GIF frame delays are whole hundredths of a second
    loop = checks.flag(loop, "loop")
    path = _target(walk, path, ".gif", exist)

    def write(tmp):
        import imageio.v3 as iio

        extra = {"loop": 0} if loop else {}
        iio.imwrite(tmp, _pixels(walk), extension=".gif", duration=1000 / fps, **extra)

    return _export(walk, path, write, {"format": "gif", "fps": fps, "loop": loop}, exist)


def save_mp4(walk, path, fps: float = 24, *, exist: str = "error") -> Path:
    """Write the frames as an H.264 MP4 (needs ffmpeg, from imageio-ffmpeg) and ``<path>.json``.

    exist: when a file of either name is there: "error" (the default), "replace" it, or write
    beside it as ``name-1``, ``name-2`` ... ("number"). Returns the path written.
    """
    fps = checks.number(fps, "fps", 1, MAX_FPS)
    path = _target(walk, path, ".mp4", exist)
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as err:
        raise KitError(
            f"MP4 export needs ffmpeg, which was not found ({err}): "
            "run `pip install imageio-ffmpeg`, or save a GIF with walk.save_gif()"
        ) from None

    def write(tmp):
        import imageio.v2 as iio2

        writer = iio2.get_writer(
            tmp,
            format="FFMPEG",
            mode="I",
            fps=fps,
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=8,
            ffmpeg_log_level="error",
        )
        try:
            for frame in _pixels(walk):
                writer.append_data(frame)
        finally:
            writer.close()

    return _export(walk, path, write, {"format": "mp4", "fps": fps}, exist)


def _target(walk, path, suffix, exist: str) -> Path:
    if len(walk) == 0:
        raise KitError("this walk has no frames to save (it was stopped before the first frame)")
    if exist not in ("error", "replace", "number"):
        raise KitError(f"exist must be 'error', 'replace' or 'number', got {exist!r}")
    path = Path(path).expanduser()
    if path.suffix.lower() != suffix:
        path = path.with_name(path.name + suffix)
    if path.is_dir():
        raise KitError(f"{str(path)!r} is a folder: give a file name such as 'walk{suffix}'")
    for existing in (path, _sidecar(path)):
        if existing.exists() and exist == "error":
            raise KitError(
                f"{str(existing)!r} already exists: choose another name, or pass exist='number' (or 'replace')"
            )
    return path


def _pixels(walk) -> list[np.ndarray]:
    return [np.asarray(art.image.convert("RGB")) for art in walk]


def _export(walk, path: Path, write, animation: dict, exist: str) -> Path:
    """Write the animation and its JSON sidecar, each atomically (`kit.files.write_atomic`)."""
    info = {
        "animation": {"file": path.name, "frames": len(walk), **animation},
        "walk": {
            "keyframes": [list(k) for k in walk.keyframes],
            "method": walk.method,
            "loop": walk.loop,
            "even": walk.even,
            "complete": walk.complete,
            "positions": walk.positions.tolist(),
        },
        "records": [art.record.to_dict() for art in walk],
    }
    if walk._steps is not None:
        info["walk"].update(pacing_space=walk._space_used, step_sizes=walk._steps.tolist())
    with tempfile.TemporaryDirectory(prefix="kit-export-") as scratch:
        animation_file = Path(scratch) / f"walk{path.suffix}"  # the encoders write to a named file
        try:
            write(animation_file)
            data = animation_file.read_bytes()
        except OSError as err:
            raise KitError(f"cannot write {str(path)!r}: {err.strerror or err}") from None
    for n in range(10_000 if exist == "number" else 1):  # the first name free for both files
        target = path if n == 0 else path.with_name(f"{path.stem}-{n}{path.suffix}")
        if exist == "number" and target.exists():
            continue
        info["animation"]["file"] = target.name
        text = json.dumps(info, ensure_ascii=False, indent=1).encode("utf-8")
        try:  # the sidecar first: an animation never appears without its records
            write_atomic(_sidecar(target), text, exist="replace" if exist == "replace" else "error")
        except KitError:
            if exist != "number" or not _sidecar(target).exists():
                raise
            continue
        return write_atomic(target, data, exist="replace" if exist == "replace" else "error")
    raise KitError(f"too many files named {path.stem!r} in {str(path.parent)!r}")


def _sidecar(path: Path) -> Path:
    """The JSON file beside an animation that holds its frames' records."""
    return path.with_name(path.name + ".json")


def html(walk) -> str:
    """A walk's keyframes and its frames as a small HTML table, as a notebook shows it."""
    from html import escape

    flags = [
        name
        for name, on in (("loop", walk.loop), ("even pacing", walk.even), ("stopped early", not walk.complete))
        if on
    ]
    keyframes = "".join(
        f"<li>{escape(k.prompt)} <small>(seed {k.seed}{', style ' + escape(k.style) if k.style else ''})</small></li>"
        for k in walk.keyframes
    )
    rows, columns = walk._rows()

    def cell(value, column):
        if isinstance(value, float):  # fixed decimals, never scientific notation
            return "&ndash;" if math.isnan(value) else f"{value:.4f}" if column.startswith("step") else f"{value:.3f}"
        return escape(str(value))

    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:right'>{cell(row[c], c)}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return (
        f"<div class='kit-walk'><p><b>Walk</b>: {len(walk)} frames, {escape(walk.method)}"
        f"{''.join(', ' + f for f in flags)}, through {len(walk.keyframes)} keyframes:</p>"
        f"<ol>{keyframes}</ol><details><summary>Frames</summary>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></details></div>"
    )
