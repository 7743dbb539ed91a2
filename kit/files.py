"""The one safe writer: a temp file beside the target, fsync, then a rename.

Readers see the old file or the whole new one, never half of it; a crash leaves at most a
hidden ``.kit-*.tmp`` file, which only the kit's own clean-up removes. New files get the
usual modes (0644 less the umask), so others sharing a gallery can read them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import KitError

TEMP_PREFIX = ".kit-"
TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path, data: bytes | Callable, *, exist: str = "replace", mode: int = 0o644) -> Path:
    """Write `data` (bytes, or a function given the open binary file) to `path` atomically.

    exist: what to do when `path` is already there: "replace" it, raise ("error"), or write
    beside it as ``name-1.ext``, ``name-2.ext`` ... ("number"). Returns the path written.
    """
    if exist not in ("replace", "error", "number"):
        raise ValueError(f"exist must be 'replace', 'error' or 'number', got {exist!r}")
    path = Path(path).expanduser()
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=TEMP_SUFFIX)
    except OSError as err:
        raise KitError(f"cannot write in the folder {str(folder)!r}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb") as file:
            if callable(data):
                data(file)
            else:
                file.write(data)
            file.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(file.fileno(), mode & ~_umask())
            os.fsync(file.fileno())
        path = _put(temp, path, exist)
    except OSError as err:
        raise KitError(f"cannot write {str(path)!r}: {err.strerror or err}") from None
    finally:
        Path(temp).unlink(missing_ok=True)
    fsync_folder(folder)
    return path


def _put(temp: str, path: Path, exist: str) -> Path:
    """Move the finished temp file to `path` as `exist` says; never overwrites unless told to."""
    if exist == "replace":
        os.replace(temp, path)
        return path
    tries = 1 if exist == "error" else 10_000
    for n in range(tries):
        target = path if n == 0 else path.with_name(f"{path.stem}-{n}{path.suffix}")
        try:
            os.link(temp, target)  # fails if the name is taken, even by another process meanwhile
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links: reserve the name, then rename onto it
            try:
                os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                continue
            os.replace(temp, target)
        return target
    if exist == "error":
        raise KitError(f"{str(path)!r} already exists: choose another name or remove it first")
    raise KitError(f"too many files named {path.stem!r} in {str(path.parent)!r}")


def clean_temp_files(folder) -> list[Path]:
    """Remove the temp files that crashed writers of the kit left in `folder`; returns what was removed.

    Only files named like this module names them (``.kit-<pid>-*.tmp``) and only when the
    process that wrote them is gone: another process's write in progress is never touched.
    """
    removed = []
    for temp in Path(folder).glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        pid = temp.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)) or not temp.is_file() or temp.is_symlink():
            continue
        temp.unlink(missing_ok=True)
        removed.append(temp)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def fsync_folder(folder) -> None:
    """Make a rename in `folder` durable (best effort: not every platform allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
