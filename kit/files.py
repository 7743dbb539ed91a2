"""The one safe writer: a temp file beside the target, fsync, then a rename.

Readers see the old file or the whole new one, never half of it; a crash leaves at most a
hidden ``.kit-*.tmp`` file, which only the kit's own clean-up removes. New files get the
usual modes (0644 less the umask), so others sharing a gallery can read them.

Also the one image reader, `read_image`: regular files only, size caps, EXIF orientation,
transparency on one background, palette, CMYK and 16-bit images scaled to 8-bit RGB.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import stat
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from . import checks
from .errors import KitError

TEMP_PREFIX = ".kit-"
TEMP_SUFFIX = ".tmp"
# The whole name write_atomic gives a temp file: .kit-<pid>@<host>-<mkstemp's 8 random characters>.tmp.
# Only a file whose name matches all of it can be the kit's: a user's ".kit-1-notes.tmp" is never touched.
_TEMP_NAME = re.compile(r"\.kit-(\d+)@([A-Za-z0-9_.]+)-[a-z0-9_]{8}\.tmp")
NAME_MAX = 255  # bytes in one file name, as Linux, macOS and Windows file systems allow
PATH_MAX = 4096  # bytes in a whole path


def _host() -> str:
    """This machine's name as it goes into temp file names (no '-' or '@', which delimit them)."""
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:64] or "host"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_path(value, field: str) -> Path:
    """`value` (text or a path) as a Path, or KitError naming `field`: the one rule for every path the kit is
    given, typed or read from a file. Refused before any file system call: NUL bytes, lone surrogates,
    names longer than the file system allows."""
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise KitError(f"{field} must be a file or folder path (text), got {type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str) or not text:
        raise KitError(f"{field} must be a file or folder path (text), got {value!r}")
    if "\x00" in text:
        raise KitError(f"{field} holds a NUL byte, which no path can: {text[:80]!r}")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise KitError(f"{field} holds a character that is not text (a lone surrogate): {text[:80]!r}") from None
    if size > PATH_MAX:
        raise KitError(f"{field} is {size:,} bytes long; a path may have at most {PATH_MAX:,}")
    long = next((part for part in text.split(os.sep) if len(part.encode("utf-8")) > NAME_MAX), None)
    if long is not None:
        raise KitError(
            f"{field} has a name of {len(long.encode('utf-8')):,} bytes ({long[:40]!r}...); "
            f"a file or folder name may have at most {NAME_MAX}"
        )
    return Path(text).expanduser()


def name_part(value, field: str, *, limit: int = 64) -> str:
    """Text from data (a record's hash, a seed, a user's name) made safe as part of a file name: letters,
    digits, '-', '_' and '.' kept, anything else (a '/', '..', a NUL) refused with a KitError naming `field`.
    The one rule for every file name the kit derives from data, so data never chooses a folder."""
    text = str(value)
    if not re.fullmatch(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*", text) or ".." in text or len(text) > limit:
        raise KitError(
            f"{field} cannot be part of a file name (letters, digits, '-', '_' and '.', at most "
            f"{limit}), got {text[:80]!r}"
        )
    return text


def is_file(path) -> bool:
    """Whether `path` is a regular file now; False for anything that is not, or cannot be, one (a path too
    long, with a NUL byte, of the wrong type), never an error: a record's path is data, and may be any text."""
    try:
        return stat.S_ISREG(os.stat(check_path(path, "path")).st_mode)
    except (KitError, OSError, ValueError):
        return False


def write_atomic(path, data: bytes | Callable, *, exist: str = "replace", mode: int = 0o644) -> Path:
    """Write `data` (bytes, or a function given the open binary file) to `path` atomically.

    exist: what to do when `path` is already there: "replace" it, raise ("error"), or write
    beside it as ``name-1.ext``, ``name-2.ext`` ... ("number"). Returns the path written.
    """
    if exist not in ("replace", "error", "number"):
        raise KitError(f"exist must be 'error', 'replace' or 'number', got {exist!r}")
    path = check_path(path, "path")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # .kit-<pid>@<host>-<random>.tmp: a cleaner can tell whose it is (see clean_temp_files)
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f"{TEMP_PREFIX}{os.getpid()}@{_host()}-", suffix=TEMP_SUFFIX)
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


def append_line(path, line: str, *, mode: int = 0o644) -> Path:
    """Append one line of text to `path` (created if missing), fsynced: for append-only logs.

    A log is never rewritten, so there is nothing to rename into place: a line is written
    whole by one write() to a file opened O_APPEND (writers on one machine never interleave
    within a line), then fsynced. A write cut short (a full disk, a kill) leaves a last line
    without its newline: the next line starts on a line of its own, so the cut one can never
    swallow it, and readers skip the cut one. A write that fails raises a KitError; nothing
    is reported done that is not on disk.
    """
    if "\n" in line:
        raise KitError("append_line writes one line: the text must not hold a newline")
    try:
        data = (line + "\n").encode("utf-8")
    except UnicodeEncodeError:
        raise KitError(f"the line for {str(path)!r} holds a character that is not text (a lone surrogate)") from None
    path = check_path(path, "path")
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), mode)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            if info.st_size and os.pread(fd, 1, info.st_size - 1) != b"\n":
                data = b"\n" + data  # the last line was cut short: keep it apart from this one
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, f"only {written} of {len(data)} bytes were written")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as err:
        raise KitError(f"cannot write {str(path)!r}: {err.strerror or err}") from err
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

    Only regular files whose whole name is one `write_atomic` gives (``.kit-<pid>@<host>-<8 random>.tmp``),
    written on this machine, and only when the process that wrote them is gone: a user's file named
    alike is never touched, nor another process's write in progress, nor another machine's on a shared folder.
    """
    removed = []
    for temp in Path(folder).glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        name = _TEMP_NAME.fullmatch(temp.name)
        if name is None or name[2] != _host() or _alive(int(name[1])):
            continue
        if not temp.is_file() or temp.is_symlink():
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


def sqlite_damaged(err: Exception) -> bool:
    """Whether an sqlite3 error says the database file is damaged or is not a database at all."""
    name = getattr(err, "sqlite_errorname", "")
    return (
        name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in str(err) or "not a database" in str(err)
    )


def set_aside(path, tag: str = "damaged") -> Path:
    """Rename a file the kit wrote (an SQLite index, say) out of the way, with its -journal/-wal/-shm
    companions: ``name.<tag>-<time>``. Nothing is deleted. Returns the new path of the main file."""
    path = Path(path)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    aside = path.with_name(f"{path.name}.{tag}-{stamp}")
    for suffix in ("-journal", "-wal", "-shm", ""):  # the main file last: its companions go with it
        source = path.with_name(path.name + suffix)
        if source.exists():
            os.replace(source, aside.with_name(aside.name + suffix))
    fsync_folder(path.parent)
    return aside


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


# ---------------------------------------------------------------- the one image reader
#
# Every image the kit reads from a user comes through `read_image`, so the embedder, the
# collections, restoration, the atlas's thumbnails and saved artworks see the same pixels.

MAX_PIXELS = 64_000_000  # an 8000 x 8000 image; more is refused as a possible decompression bomb
MAX_BYTES = 512 * 2**20  # 512 MiB: larger files are refused before a byte is read
MIN_SIDE = 8  # pixels: the smallest side of an image a model is given (one latent pixel)
RESAMPLE = "Lanczos"  # how the kit resizes a picture to the model's size (PIL's LANCZOS filter), as records say
BACKGROUND = (255, 255, 255)  # the one colour transparent pixels are composited onto
# Formats an image may be in; others (EPS runs Ghostscript, WMF, FITS ...) are refused unread.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "TIFF", "BMP", "DIB", "PPM", "JPEG2000", "AVIF", "HEIF", "QOI")
_HIGH_BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")


class ReadError(KitError):
    """A file or image that cannot be read. ``reason`` is why, in a few words (what error rows
    store); the message names the field and where it came from."""

    def __init__(self, field: str, where: str, reason: str):
        self.field, self.where, self.reason = field, where, reason
        super().__init__(f"{field}: cannot read an image from {where}: {reason}")

    def __reduce__(self):  # survives pickling between processes (Ray workers)
        return type(self), (self.field, self.where, self.reason)


def read_file(path, *, field: str = "file", max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file, at most `max_bytes` of them; ReadError otherwise.

    A folder, a device (``/dev/zero``), a FIFO or a socket, or a symlink to one, is refused by
    its type (``os.stat``) before it is opened, so nothing waits on a pipe or reads forever.
    """
    try:
        path = check_path(path, field)
    except KitError as err:
        raise ReadError(field, repr(str(path))[:120], str(err).removeprefix(f"{field} ")) from None
    where = repr(str(path))
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise ReadError(field, where, "no such file") from None
    except OSError as err:
        raise ReadError(field, where, f"cannot open the file ({err.strerror or err})") from None
    _check_regular(info.st_mode, field, where)
    if info.st_size > max_bytes:
        raise ReadError(field, where, f"too large: {info.st_size:,} bytes is over the limit of {max_bytes:,}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)  # O_NONBLOCK: a file swapped for a FIFO since the stat still cannot block
    except OSError as err:
        raise ReadError(field, where, f"cannot open the file ({err.strerror or err})") from None
    try:
        _check_regular(os.fstat(fd).st_mode, field, where)
        chunks, total, want = [], 0, min(info.st_size, max_bytes) + 1
        while chunk := os.read(fd, want):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise ReadError(field, where, f"too large: over the limit of {max_bytes:,} bytes")
            want = 1 << 20  # the file grew since the stat: read on in steps, still capped
    except OSError as err:
        raise ReadError(field, where, f"cannot read the file ({err.strerror or err})") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def _check_regular(mode: int, field: str, where: str) -> None:
    if not stat.S_ISREG(mode):
        raise ReadError(field, where, f"{describe_mode(mode)}, not a regular file")


def describe_mode(mode: int) -> str:
    """What a file system entry is, in words, from its ``st_mode`` (an ``lstat``'s names a symbolic link)."""
    for test, words in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return words
    return "not a file"


def kits_file(path, what: str) -> bool:
    """Whether the file the kit keeps at `path` (an index, a manifest, a shard) is there: False when missing.
    The kit writes its files as regular files, renamed into place: a folder, FIFO, device or link in its place
    is not one it wrote, so it is refused (KitError naming `what`) and left alone, never read nor waited on."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as err:
        raise KitError(f"{what} {str(path)!r} cannot be read ({err.strerror or err})") from None
    if not stat.S_ISREG(mode):
        raise KitError(
            f"{what} {str(path)!r} is {describe_mode(mode)}, not a file the kit wrote: move it away and run again"
        )
    return True


def read_image(
    source,
    *,
    field: str = "image",
    alpha: bool = False,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
    draft: tuple[int, int] | None = None,
):
    """The one image reader: a new 8-bit RGB PIL image (RGBA with ``alpha=True``), upright.

    source: a file path, bytes, a binary file object, a PIL image, a numpy array, or an
    object with an ``.image`` (an Artwork). The rules, the same for every source:

    - files: regular files only (see `read_file`), at most `max_bytes`, in one of
      `IMAGE_FORMATS`; an empty, forged (a text file named .png) or truncated file is refused;
    - at most `max_pixels` pixels, checked from the header before decoding; PIL's own
      decompression-bomb limit applies too;
    - EXIF orientation is applied (``ImageOps.exif_transpose``);
    - animated images (GIF, APNG, WebP, multi-page TIFF): the first frame only;
    - colours as `to_rgb` converts them: transparency composited onto `BACKGROUND` (white),
      16-bit and float greys scaled to 8 bits, never clipped.

    draft: (width, height) for JPEG files, decode at a reduced scale no smaller than this
    (fast thumbnails); other formats ignore it.
    Anything unreadable raises `ReadError` (a KitError) naming `field` and where the image came from.
    """
    import numpy as np
    from PIL import Image

    max_pixels, max_bytes = checks.whole(max_pixels, "max_pixels", 1), checks.whole(max_bytes, "max_bytes", 1)
    if (
        not isinstance(source, (str, bytes, bytearray, memoryview, os.PathLike, np.ndarray, Image.Image))
        and not hasattr(source, "read")
        and isinstance(getattr(source, "image", None), Image.Image)
    ):
        source = source.image  # an Artwork, or anything else that carries its image
    if isinstance(source, np.ndarray):
        try:
            source = Image.fromarray(source)
        except (TypeError, ValueError):
            raise KitError(
                f"{field}: a {source.dtype} array of shape {source.shape} is not an image "
                "(use H x W x 3 uint8, H x W uint8/uint16, or H x W float in 0..1)"
            ) from None
    if isinstance(source, Image.Image):
        where = "the PIL image given"
        _check_pixels(source.size, max_pixels, field, where)
        image = _first_frame(source, field, where)
    else:
        if isinstance(source, (str, os.PathLike)):
            where = repr(str(Path(os.fspath(source)).expanduser()))
            data = read_file(source, field=field, max_bytes=max_bytes)
        elif isinstance(source, (bytes, bytearray, memoryview)):
            where, data = "the bytes given", bytes(source)
            if len(data) > max_bytes:
                raise ReadError(field, where, f"too large: {len(data):,} bytes is over the limit of {max_bytes:,}")
        elif hasattr(source, "read"):
            where = repr(str(getattr(source, "name", "the file object given")))
            data = _read_stream(source, field, where, max_bytes)
        else:
            raise KitError(
                f"{field} must be a PIL image, an Artwork, a numpy array, bytes, a file object or "
                f"a file path, got {type(source).__name__}"
            )
        image = _decode(data, field, where, max_pixels, draft)
    return to_rgb(_upright(image), alpha=alpha, field=field, where=where)


def check_image(image, field: str = "image"):
    """An RGB copy of `image` (PIL image, Artwork, numpy array, bytes or file path); KitError otherwise.

    Read by `read_image`, the kit's one reader: upright, transparency on white, 16-bit scaled to 8 bits,
    files capped in size; each side at least MIN_SIDE pixels, as every model input must be.
    """
    rgb = read_image(image, field=field)
    if min(rgb.size) < MIN_SIDE:
        raise KitError(f"{field} is {rgb.width}x{rgb.height} px: each side must be at least {MIN_SIDE} px")
    return rgb


def _check_pixels(size, max_pixels: int, field: str, where: str) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ReadError(field, where, f"too large: {width} x {height} pixels is over the limit of {max_pixels:,}")


def _read_stream(file, field: str, where: str, max_bytes: int) -> bytes:
    chunks, total = [], 0
    try:
        while chunk := file.read(min(1 << 20, max_bytes + 1 - total)):
            if isinstance(chunk, str):
                raise KitError(f"{field}: the file {where} is open in text mode: open it with 'rb'")
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise ReadError(field, where, f"too large: over the limit of {max_bytes:,} bytes")
    except OSError as err:
        raise ReadError(field, where, f"cannot read the file ({err.strerror or err})") from None
    return b"".join(chunks)


def _formats() -> list[str]:
    from PIL import Image

    Image.init()  # registers the plugins, including ones a package added (pillow-heif)
    return [name for name in IMAGE_FORMATS if name in Image.OPEN]


def _decode(data: bytes, field: str, where: str, max_pixels: int, draft):
    """The first frame of the image in `data`, loaded; ReadError with the reason otherwise."""
    import io
    import warnings

    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ReadError(field, where, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=_formats())
            _check_pixels(image.size, max_pixels, field, where)
            if draft:
                image.draft(None, tuple(draft))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
            image.load()  # the first frame: open() leaves an animation there
    except ReadError:
        raise
    except UnidentifiedImageError:
        known = ", ".join(_formats())
        raise ReadError(field, where, f"not an image file in a format the kit reads ({known})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ReadError(field, where, f"too large: a possible decompression bomb ({err})") from None
    except Exception as err:  # PIL's errors for truncated, corrupt or forged data are many kinds
        raise ReadError(field, where, f"truncated or corrupt image ({type(err).__name__}: {err})") from None
    return image


def _first_frame(image, field: str, where: str):
    """A loaded copy of a PIL image's first frame; the caller's image keeps its frame."""
    frame = image.tell() if getattr(image, "n_frames", 1) > 1 else 0
    try:
        if frame:
            image.seek(0)
        try:
            return image.copy()
        finally:
            if frame:
                image.seek(frame)
    except Exception as err:  # a lazily opened file that turns out truncated
        raise ReadError(field, where, f"truncated or corrupt image ({type(err).__name__}: {err})") from None


def _upright(image):
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block: keep the pixels as stored
        return image


def has_alpha(image) -> bool:
    """Whether a PIL image has transparency: an alpha band, an alpha palette or a transparent colour."""
    if image.mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        return True
    if image.mode in _HIGH_BIT_MODES or image.mode == "F":
        return False  # their transparency key is not used: they are scaled to 8 bits first
    if "transparency" in image.info:
        return True
    return image.mode == "P" and image.palette is not None and image.palette.mode == "RGBA"


def to_rgb(image, *, alpha: bool = False, field: str = "image", where: str = "the PIL image given"):
    """A new 8-bit RGB image of `image` (RGBA with ``alpha=True``), whatever its mode.

    - transparency (alpha bands, transparent palette entries and colours) is composited onto
      `BACKGROUND` (white); with ``alpha=True`` it is kept as an alpha band instead;
    - 16- and 32-bit integer greys ("I;16", "I;16B", "I") are 0..65535 and are scaled:
      v / 257, rounded (32768 -> 128); float greys ("F") are 0..1 and become v * 255, rounded;
      values outside those ranges are clipped;
    - palette, CMYK, grey, 1-bit and YCbCr images are converted by PIL.
    """
    import numpy as np
    from PIL import Image

    mode, rgba = image.mode, None
    if mode in _HIGH_BIT_MODES or mode == "F":
        values = np.asarray(image).astype(np.float64)
        values = np.nan_to_num(values * 255.0 if mode == "F" else values / 257.0)
        rgb = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8)).convert("RGB")
    else:
        try:
            if has_alpha(image):
                rgba = (image.convert("LA") if mode == "La" else image).convert("RGBA")  # PIL: no La -> RGBA
            else:
                rgb = image.convert("RGB")  # a new image, even from RGB
        except (ValueError, OSError) as err:
            raise ReadError(field, where, f"colour mode {mode} cannot be converted to RGB ({err})") from None
    if alpha:
        return rgba if rgba is not None else rgb.convert("RGBA")
    if rgba is None:
        return rgb
    background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")
