"""The curated lessons: shipped with the package, copied once into a folder of the user's own.

JupyterLab saves notebooks as they are worked on, so `kit lab` never serves the shipped
lessons themselves: it copies them into the user's folder (``~/kit-lessons`` by default,
``$KIT_LESSONS`` or ``--lessons DIR``) and serves that. A lesson the user has edited is never
overwritten; one the user left untouched is updated when a newer kit ships a newer version.
``reset`` puts the shipped version back and keeps the user's copy beside it.

What the kit copied is remembered in ``.kit-lessons.json`` (file name -> SHA-256 of the copy),
which is how it knows an untouched lesson from an edited one. The user's folder is read with the
kit's one file reader: a folder, a FIFO or a device where a lesson would go is left alone, never waited on.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from importlib.resources import files
from pathlib import Path

from .errors import KitError
from .files import ReadError, read_file, write_atomic

MANIFEST = ".kit-lessons.json"


def shipped() -> Path:
    """The folder of the lessons this kit ships: inside the installed package, or the checkout's notebooks/."""
    packaged = Path(str(files("kit"))) / "lessons"
    checkout = Path(__file__).resolve().parent.parent / "notebooks"
    for folder in (packaged, checkout):
        if folder.is_dir() and any(folder.glob("*.ipynb")):
            return folder
    raise KitError("this installation of the kit has no lessons: reinstall it (pip install kit-portraits)")


def user_folder(folder=None) -> Path:
    """Where the user's copies live: `folder`, else $KIT_LESSONS, else ~/kit-lessons."""
    return Path(folder or os.environ.get("KIT_LESSONS") or "~/kit-lessons").expanduser().resolve()


def _manifest(folder: Path) -> dict:
    """The record of copies; {} when missing or unreadable. Something that is not a file in its place
    is not the kit's to replace: a KitError says so."""
    path = folder / MANIFEST
    if path.is_symlink() or path.exists() and not path.is_file():
        raise KitError(
            f"{str(path)!r} is not a file (a folder, a FIFO, a device or a link): the kit keeps its "
            "record of copied lessons there; move it away, or pass another folder with --lessons DIR"
        )
    try:
        data = json.loads(read_file(path, field="lessons record").decode("utf-8"))
    except (ReadError, ValueError, RecursionError):
        return {}
    return (
        {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(data, dict) else {}
    )


def install(folder=None, *, reset: bool = False) -> dict[str, list[str]]:
    """Copy the shipped lessons into the user's folder; returns what happened to each file.

    {"copied": new lessons, "updated": untouched copies replaced by a newer shipped version,
     "kept": lessons the user edited (left alone), "reset": edited lessons put back (with
     `reset`, the user's copy kept as NAME.ipynb.TIMESTAMP.bak), "current": already up to date,
     "blocked": names taken by something that is not a file (a folder, a FIFO), left alone}.
    """
    target = user_folder(folder)
    if target.exists() and not target.is_dir():
        raise KitError(f"lessons folder {str(target)!r} is a file: pass another with --lessons DIR")
    source = shipped()
    if source.resolve() == target:
        raise KitError(
            f"{str(target)!r} holds the shipped lessons themselves: choose another folder with --lessons DIR"
        )
    copied = _manifest(target)
    report: dict[str, list[str]] = {"copied": [], "updated": [], "kept": [], "reset": [], "current": [], "blocked": []}
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for lesson in sorted(source.glob("*.ipynb")):
        data = lesson.read_bytes()
        new_hash = hashlib.sha256(data).hexdigest()
        mine = target / lesson.name
        if not mine.exists() and not mine.is_symlink():
            action = "copied"
        elif mine.is_symlink() or not mine.is_file():
            action = "blocked"  # the user's folder, FIFO or link: never read, never replaced
        else:
            mine_data = read_file(mine, field="lesson")
            have = hashlib.sha256(mine_data).hexdigest()
            if have == new_hash:
                action = "current"
            elif have == copied.get(lesson.name):
                action = "updated"  # the user never touched the copy the kit made
            elif reset:
                write_atomic(target / f"{lesson.name}.{stamp}.bak", mine_data, exist="number")
                action = "reset"
            else:
                action = "kept"
        if action in ("copied", "updated", "reset"):
            write_atomic(mine, data)
        if action not in ("kept", "blocked"):
            copied[lesson.name] = new_hash
        report[action].append(lesson.name)
    write_atomic(target / MANIFEST, json.dumps(copied, indent=1, sort_keys=True).encode())
    return report
