"""The gallery's marks log, ``gallery-marks.jsonl``: what was noted about an image after it was saved.

One JSON line per mark, appended and never rewritten: "hidden" and "shown" (hiding never deletes a
PNG) and "person" (something a person did, such as picking the image out of several candidates).
The log is the truth; the index's ``hidden`` table is a cache of it that a rebuilt index fills again.
Here are its one writer (`append`) and its one reader (`read`), which skips a damaged line instead of
failing, so a crash or a full disk in the middle of a line costs that line only.
"""

from __future__ import annotations

import json
import re
import warnings
from datetime import datetime, timezone
from pathlib import Path

from ..errors import KitError
from ..files import ReadError, append_line, read_file
from .record import check_person

MAX_BYTES = 64 * 2**20  # the marks log: about half a million marks
MARKS = ("hidden", "shown", "person")


def append(path: Path, sha256: str, mark: str, **data) -> None:
    """Append one mark about the image `sha256` to the log at `path`, stamped with the time (UTC)."""
    line = json.dumps(
        {"sha256": sha256, "mark": mark, **data, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        ensure_ascii=False,
    )
    append_line(path, line)


def read(path: Path) -> list[dict]:
    """The marks log at `path`, oldest first ([] when there is none yet).

    A line that is not a well-formed mark (cut short by a crash or a full disk, not UTF-8, not JSON,
    a mark without its action, written by hand) is skipped and reported in one warning, never an error:
    the lines around it still count. A marks file that is not a regular file is a KitError naming it.
    """
    try:
        data = read_file(path, field=path.name, max_bytes=MAX_BYTES)
    except ReadError as err:
        if err.reason == "no such file":
            return []
        raise KitError(
            f"cannot read the gallery's marks {str(path)!r}: {err.reason}. Move it "
            "aside: hidden marks and credits are read from it"
        ) from None
    marks, bad = [], []
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        mark = mark_from(line)
        if mark is None:
            bad.append(number)
        else:
            marks.append(mark)
    if bad:
        lines = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        warnings.warn(f"{path.name}: skipped {len(bad)} line(s) that are not marks (line {lines})", stacklevel=3)
    return marks


def hidden(marks: list[dict]) -> set[str]:
    """The pixel hashes hidden by `marks` (oldest first): an image's last hidden/shown mark counts."""
    state: dict[str, bool] = {}
    for mark in marks:
        if mark["mark"] in ("hidden", "shown"):
            state[mark["sha256"]] = mark["mark"] == "hidden"
    return {sha for sha, on in state.items() if on}


def mark_from(line: bytes) -> dict | None:
    """One line of the marks log as a mark, or None when it is not a well-formed one."""
    try:
        mark = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if (
        not isinstance(mark, dict)
        or mark.get("mark") not in MARKS
        or not isinstance(mark.get("sha256"), str)
        or not re.fullmatch(r"[0-9a-f]{64}", mark["sha256"])
    ):
        return None
    if mark["mark"] == "person":
        try:
            (mark["action"],) = check_person([mark.get("action")], "action")
        except KitError:
            return None
    return mark
