"""The gallery: an append-only folder of the kit's PNGs with a small SQLite index.

The PNGs are the truth; the index (``gallery.sqlite``) only makes listing and searching
fast, and can always be rebuilt from them. Recoverable by design:

- a PNG is renamed into place whole (the one safe writer), then indexed. A crash between
  the two steps leaves a PNG the index does not know: opening the gallery compares the
  folder with the index by name, size and mtime (one directory listing) and indexes it;
- temp files of killed writers are removed on open, never another process's file in progress;
- a full disk ends a save with a KitError that says so; what was saved before stays saved
  and indexed, and the index (rollback journal, not WAL) can still be read on a full disk;
- a damaged index is a KitError that names ``Gallery.repair(folder)``, which sets the
  damaged file aside and rebuilds the index from the PNGs (no PNG is ever deleted);
- a PNG deleted by hand is left out of ``len()`` and iteration alike; its row stays in the
  index, so ``lineage`` still knows how its descendants were made.

Hiding an image (``hide``) never deletes it: the mark is a line appended to ``gallery-marks.jsonl``
(the truth, which a rebuilt index reads again) and a row in the index's ``hidden`` table (what
``find`` filters by). The same log keeps what a person did after an image was saved (``credit``:
picked it out of several candidates), which ``authorship`` adds to the record's own section.

Here is `Gallery`, what it promises and how it keeps those promises; beside it, each readable on its own:
`kit.provenance.gallery_index` (the index's tables and rows, one connection and one transaction),
`kit.provenance.gallery_marks` (the marks log's one reader and one writer) and `kit.provenance.lineage` (the
family walk).

Light on purpose: stdlib, PIL and numpy only (no torch, no diffusers).
"""

from __future__ import annotations

import os
import re
import sqlite3
import warnings
from contextlib import closing
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from ..errors import KitError
from ..files import clean_temp_files, kits_file, set_aside, sqlite_damaged
from ..kinds import names as registered_kinds
from . import gallery_marks
from .artwork import Artwork, _writable_folder, load
from .gallery_index import ADDED, INSERT, SCHEMA, TABLES, UPDATE, connect, fill_parents, is_disk_full, transaction
from .gallery_index import row as index_row
from .lineage import Lineage, trace
from .record import Record, check_person

__all__ = ["Gallery", "default_folder"]

MAX_KIND = 64  # characters: a kind is a short name ("restyle"); a longer filter is refused before any reading


def default_folder() -> Path:
    """``$KIT_GALLERY`` if set, else ``~/kit-gallery``."""
    return Path(os.environ.get("KIT_GALLERY") or "~/kit-gallery").expanduser()


_SHA256 = re.compile(r"[0-9a-f]{8,64}")


def _pixel_hash(value) -> str:
    """`value` as a pixel hash or a prefix of one (8 to 64 hex digits), from text or an Artwork; else a KitError."""
    if isinstance(value, Artwork):
        value = value.record.sha256
    if not isinstance(value, str) or not _SHA256.fullmatch(value.lower()):
        raise KitError(f"sha256 must be an image's pixel hash (8 to 64 hex digits), got {value!r}")
    return value


class Gallery:
    """An append-only folder of PNGs with an sqlite index (``gallery.sqlite``).

    Opening a gallery recovers what a crash can leave: PNGs saved but not indexed are
    indexed, temp files of dead writers are removed. Several Gallery objects (several
    kernels, several processes) can share one folder.
    """

    INDEX = "gallery.sqlite"
    MARKS = "gallery-marks.jsonl"  # append-only: hidden/shown marks and person actions noted after saving

    def __init__(self, folder=None):
        self.folder = _writable_folder(default_folder() if folder is None else folder)
        self.index = self.folder / self.INDEX
        self.marks_file = self.folder / self.MARKS
        try:
            clean_temp_files(self.folder)  # only files of dead kit writers
        except OSError as err:
            warnings.warn(f"could not clean temp files in {str(self.folder)!r}: {err}", stacklevel=2)
        self._open()
        self.rebuild_index()

    # -- the index ----------------------------------------------------------------

    def _open(self) -> None:
        """Check the index, create or upgrade its tables; KitError naming the fix when it is damaged."""
        # sqlite would open a FIFO and wait on it for ever, or write through a link to another file
        kits_file(self.index, "the gallery index (the PNGs rebuild it)")
        try:
            with closing(connect(self.index)) as db:
                problems = [row[0] for row in db.execute("PRAGMA quick_check")]
                if problems != ["ok"]:
                    raise self._damaged("; ".join(problems[:3]))
                if db.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                    # A rollback journal, not WAL: it can be read on a full disk and in network folders.
                    # An index another process holds open stays in WAL until it is free: no waiting here.
                    db.execute("PRAGMA busy_timeout = 100")
                    try:
                        db.execute("PRAGMA journal_mode = DELETE")
                    except sqlite3.OperationalError:
                        pass
                    db.execute("PRAGMA busy_timeout = 30000")
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                columns = {row[1] for row in db.execute("PRAGMA table_info(artworks)")}
                if TABLES <= tables and set(ADDED) <= columns:
                    return
                with transaction(db):
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    columns = {row[1] for row in db.execute("PRAGMA table_info(artworks)")}
                    for name, kind in ADDED.items():
                        if name not in columns:
                            db.execute(f"ALTER TABLE artworks ADD COLUMN {name} {kind}")
                    fill_parents(db)
        except sqlite3.Error as err:
            raise self._error(err, "open") from err

    def _damaged(self, detail) -> KitError:
        return KitError(
            f"the gallery index {str(self.index)!r} is damaged ({detail}). The PNGs are the truth and are "
            f"untouched: kit.Gallery.repair({str(self.folder)!r}) sets the damaged index aside and rebuilds "
            f"it from them (no image is deleted)."
        )

    def _error(self, err: sqlite3.Error, doing: str) -> KitError:
        """A KitError for an sqlite error: a damaged index names the repair, a full disk says so."""
        if sqlite_damaged(err):
            return self._damaged(err)
        if is_disk_full(err):
            return KitError(
                f"the disk holding {str(self.folder)!r} is full: could not {doing} the gallery index "
                f"({err}). Free some space and try again; no image was lost."
            )
        return KitError(f"cannot {doing} the gallery index {str(self.index)!r}: {err}")

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            with closing(connect(self.index)) as db:
                return db.execute(sql, args).fetchall()
        except sqlite3.Error as err:
            raise self._error(err, "read") from err

    def _write(self, db, sql: str, rows: list[tuple]) -> None:
        with transaction(db):
            db.executemany(sql, rows)

    # -- adding ----------------------------------------------------------------------

    def add(self, artwork: Artwork) -> Path:
        """Save the artwork into the gallery folder and index it; returns the PNG path.

        On a full disk: a KitError that says so. Nothing half-written is left, and every
        image saved before stays saved and indexed (a PNG saved but not indexed is picked
        up the next time the gallery is opened).
        """
        try:
            path = artwork.save(self.folder)
        except KitError as err:
            if is_disk_full(err):
                raise KitError(
                    f"the disk holding {str(self.folder)!r} is full: this image was not saved "
                    "(nothing half-written is left). The images saved before it are kept and "
                    "indexed; free some space and make it again."
                ) from err
            raise
        try:
            stat = path.stat()
            row = index_row(path.name, artwork.record, (stat.st_size, stat.st_mtime_ns))
            with closing(connect(self.index)) as db:
                self._write(db, INSERT, [row])
        except (sqlite3.Error, OSError) as err:
            why = "the disk is full" if is_disk_full(err) else str(err)
            raise KitError(
                f"saved {str(path)!r} but could not index it ({why}); it is indexed the next "
                "time the gallery is opened, or now by Gallery.rebuild_index()"
            ) from err
        return path

    # -- recovering ------------------------------------------------------------------

    def _on_disk(self) -> dict[str, tuple[int, int]]:
        """{file name: (size, mtime_ns)} of the folder's PNGs, from one directory listing."""
        found = {}
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.name.lower().endswith(".png"):
                    continue
                try:
                    if entry.is_file():
                        stat = entry.stat()
                        found[entry.name] = (stat.st_size, stat.st_mtime_ns)
                except OSError:  # gone since the listing
                    continue
        return found

    def rebuild_index(self) -> int:
        """Index every PNG in the folder the index is missing; returns how many were added.

        Cheap: the folder is compared with the index by name, size and mtime (one directory
        listing), and only new or changed files are read. Runs on every open, so a PNG saved
        but not indexed (a crash between the two steps) is found again without asking.
        Nothing is removed: entries keep their place and id; a PNG changed in place (signed
        with content credentials, say) has its row refreshed. A file that cannot be read is
        warned about once and looked at again only when it changes. On a full disk the new
        rows wait for the next open, with a warning. The hidden marks are read again from
        ``gallery-marks.jsonl`` whenever it changed, so a rebuilt index hides what was hidden.
        """
        disk = self._on_disk()
        # a row without a pixel hash (a foreign PNG indexed by an older version) is read again once, to get one
        indexed = {
            file: (size, mtime) if sha else (-1, -1)
            for file, size, mtime, sha in self._read("SELECT file, size, mtime_ns, sha256 FROM artworks")
        }
        left_out = {
            file: (size, mtime) for file, size, mtime in self._read("SELECT file, size, mtime_ns FROM unindexed")
        }
        new, changed, skipped, fill = [], [], [], []
        for file, stamp in disk.items():
            before = indexed.get(file)
            if before == stamp or left_out.get(file) == stamp:
                continue
            if before == (None, None):  # a row of an older index: note the file as it is now
                fill.append((*stamp, file))
                continue
            try:
                artwork = load(self.folder / file)
            except KitError as err:
                warnings.warn(f"not indexing {file}: {err}", stacklevel=3)
                skipped.append((file, *stamp, str(err)))
                continue
            row = index_row(file, artwork.record, stamp)
            if before is None:
                new.append(row)
            else:
                changed.append((*row[1:], file))
        new.sort(key=lambda row: (row[1], row[0]))  # oldest first, as they would have been added
        try:
            with closing(connect(self.index)) as db:
                for sql, rows in (
                    (INSERT, new),
                    (UPDATE, changed),
                    ("INSERT OR REPLACE INTO unindexed (file, size, mtime_ns, reason) VALUES (?, ?, ?, ?)", skipped),
                    ("UPDATE artworks SET size = ?, mtime_ns = ? WHERE file = ?", fill),
                ):
                    if rows:
                        self._write(db, sql, rows)
        except sqlite3.Error as err:
            if not is_disk_full(err):
                raise self._error(err, "update") from err
            warnings.warn(
                f"the disk holding {str(self.folder)!r} is full: {len(new)} PNG(s) are not indexed "
                "yet; they will be when the gallery is next opened with some space free",
                stacklevel=3,
            )
            return 0
        self._sync_marks()
        return len(new)

    @classmethod
    def repair(cls, folder=None) -> Gallery:
        """Open the gallery in `folder`, rebuilding a damaged index from the PNGs.

        The damaged index is renamed to ``gallery.sqlite.damaged-<time>`` (kept, not deleted,
        so nothing is lost if it held more than the PNGs do); no PNG is touched.
        An index that is not damaged is kept as it is.
        """
        folder = _writable_folder(default_folder() if folder is None else folder)
        try:
            return cls(folder)
        except KitError as err:
            if "is damaged" not in str(err):
                raise
        index = folder / cls.INDEX
        try:
            aside = set_aside(index)
        except OSError as err:
            raise KitError(f"cannot set the damaged gallery index {str(index)!r} aside: {err.strerror or err}") from err
        warnings.warn(
            f"the damaged gallery index was set aside as {aside.name}; rebuilding it from the PNGs", stacklevel=2
        )
        return cls(folder)

    # -- reading ---------------------------------------------------------------------

    def _listed(self, where: str = "", args: tuple = (), newest_first: bool = False) -> list[str]:
        """Names of the indexed PNGs that are in the folder now, in index order.

        ``len()``, iteration, ``latest`` and ``find`` all list through here, so a PNG deleted
        by hand is left out of every one of them alike (its row stays, for ``lineage``).
        """
        order = "id DESC" if newest_first else "id"
        query = f"SELECT file, size, mtime_ns FROM artworks {where} ORDER BY {order}"
        rows, disk = self._read(query, args), self._on_disk()
        if any(file in disk and disk[file] != (size, mtime) for file, size, mtime in rows):
            self.rebuild_index()  # a PNG changed or was replaced since it was indexed: look at it again
            rows, disk = self._read(query, args), self._on_disk()
        # a file listed is the file indexed (same size and mtime): one replaced by something the kit cannot
        # read keeps its old row and is left out, of len() and iteration alike
        return [file for file, size, mtime in rows if disk.get(file) == (size, mtime)]

    def _load_all(self, files):
        for name in files:
            try:
                yield load(self.folder / name)
            except KitError as err:
                warnings.warn(f"skipping a gallery entry: {err}", stacklevel=3)

    def __len__(self) -> int:
        return len(self._listed())

    def __iter__(self):
        """Artworks in the order they were added, each loaded when reached."""
        return self._load_all(self._listed())

    def latest(self, n: int = 8) -> list[Artwork]:
        """The ``n`` most recently added artworks, newest first."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise KitError(f"n must be a whole number >= 0, got {n!r}")
        return list(self._load_all(self._listed(newest_first=True)[:n]))

    def kinds(self) -> list[str]:
        """The kinds of record `find` filters by, sorted: those of the images in this gallery's index and the
        registered ones (`kit.kinds`, filled by each feature as it is imported). The index's own kinds count
        so that images from a feature not imported in this session, or from a newer kit, can still be found."""
        present = {kind for (kind,) in self._read("SELECT DISTINCT kind FROM artworks WHERE typeof(kind) = 'text'")}
        return sorted(present | set(registered_kinds()))

    def find(
        self,
        prompt: str | None = None,
        style: str | None = None,
        seed: int | None = None,
        kind: str | None = None,
        *,
        since=None,
        until=None,
        hidden: bool = False,
    ) -> list[Artwork]:
        """Artworks matching every given filter, oldest first.

        prompt: a case-insensitive substring of the prompt; style: a style id; seed: a whole
        number; kind: one of `kinds()` ("generate", "restyle" ...); since /
        until: a date or time (a ``date``, ``datetime`` or ISO text such as "2025-06-01"; a
        date as `until` takes in the whole day). hidden: False leaves hidden images out, True
        lists them too. Bad values are a KitError naming the filter.
        """
        clauses, args = [], []
        if prompt is not None:
            if not isinstance(prompt, str):
                raise KitError(f"prompt must be text, got {prompt!r}")
            clauses.append("instr(kit_fold(prompt), kit_fold(?)) > 0")  # ÉLÈVE finds élève: sqlite's lower() is ASCII
            args.append(prompt)
        if style is not None and not isinstance(style, str):
            raise KitError(f"style must be a style id (text), got {style!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
            raise KitError(f"seed must be a whole number from 0 to 2**63-1, got {seed!r}")
        if kind is not None:
            if not isinstance(kind, str) or len(kind) > MAX_KIND:
                got = f"{len(kind)} characters" if isinstance(kind, str) else type(kind).__name__
                raise KitError(f"kind must be text of at most {MAX_KIND} characters, got {got}")
            known = self.kinds()
            if kind not in known:
                raise KitError(f"kind must be one of {', '.join(known)}, got {kind!r}")
        for column, value in (("style", style), ("seed", seed), ("kind", kind)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        start, end = _moment(since, "since"), _moment(until, "until", end=True)
        if start is not None and end is not None and start >= end:
            raise KitError(f"since ({since}) must come before until ({until})")
        if not isinstance(hidden, bool):
            raise KitError(f"hidden must be True or False, got {hidden!r}")
        where = "WHERE " + " AND ".join(clauses) if clauses else ""
        if not hidden:
            where = f"{where} {'AND' if where else 'WHERE'} coalesce(sha256, '') NOT IN (SELECT sha256 FROM hidden)"
        left_out = set() if hidden or self._sync_marks() else self._hidden_in_log()  # the index lags on a full disk
        found = [art for art in self._load_all(self._listed(where, tuple(args))) if art.record.sha256 not in left_out]
        if start is None and end is None:
            return found
        # times compared as instants (records from other machines carry other offsets)
        return [art for art in found if _in_range(art.record.created, start, end)]

    # -- hiding, and what a person did after saving ----------------------------------

    def hide(self, sha256) -> None:
        """Hide an image from `find`'s default view (and the GalleryBrowser's). Nothing is deleted: the PNG
        stays, `lineage` still shows it, `find(hidden=True)` lists it, and `unhide` shows it again."""
        self._mark(self._known(sha256), "hidden")

    def unhide(self, sha256) -> None:
        """Show a hidden image again."""
        self._mark(self._known(sha256), "shown")

    def has(self, sha256) -> bool:
        """Whether the gallery holds an image with this pixel hash (64 hex digits), in a PNG on disk now."""
        sha = _pixel_hash(sha256).lower()
        files = [file for (file,) in self._read("SELECT file FROM artworks WHERE sha256 = ?", (sha,))]
        return bool(set(files) & set(self._listed()))

    def hidden(self) -> set[str]:
        """The pixel hashes of the hidden images."""
        if not self._sync_marks():
            return self._hidden_in_log()
        return {sha for (sha,) in self._read("SELECT sha256 FROM hidden")}

    def credit(self, sha256, action: dict) -> None:
        """Note something a person did with an image after it was saved, such as picking it out of several
        candidates ({"action": "picked", "of": 4}). Appended to the marks log; `authorship` adds it to the
        record's own section. The PNG is never rewritten (a signed file would lose its credentials)."""
        (action,) = check_person([action], "action")
        self._mark(self._known(sha256), "person", action=action)

    def authorship(self, sha256) -> list[str]:
        """Who did what for an image, in sentences: its record's section and the actions noted since."""
        sha256 = self._known(sha256)
        record = self._record(sha256)
        return record.describe_authorship(self.credits(sha256))

    def credits(self, sha256) -> list[dict]:
        """The person actions noted for an image after it was saved (`credit`), oldest first."""
        sha256 = self._known(sha256)
        return [
            m["action"]
            for m in gallery_marks.read(self.marks_file)
            if m.get("sha256") == sha256 and m.get("mark") == "person"
        ]

    def _known(self, sha256) -> str:
        """The full pixel hash of an indexed image, from a hash, a unique prefix (8+ digits) or an Artwork."""
        sha256 = _pixel_hash(sha256)
        rows = self._read("SELECT DISTINCT sha256 FROM artworks WHERE sha256 LIKE ?", (sha256.lower() + "%",))
        if not rows:
            raise KitError(f"no image with sha256 {sha256!r} in the gallery {str(self.folder)!r}")
        if len(rows) > 1:
            raise KitError(f"sha256 {sha256!r} matches {len(rows)} images: give more of its digits")
        return rows[0][0]

    def _record(self, sha256: str) -> Record:
        row = self._read("SELECT record_json FROM artworks WHERE sha256 = ? ORDER BY id LIMIT 1", (sha256,))
        return Record.from_json(row[0][0])

    def _mark(self, sha256: str, mark: str, **data) -> None:
        """Append a mark to the log (the truth), then bring the index's hidden table up to date."""
        gallery_marks.append(self.marks_file, sha256, mark, **data)
        self._sync_marks()

    def _sync_marks(self) -> bool:
        """Fill the hidden table from the marks log when the log changed since it was last read.

        The table is a cache of the log: on a full disk it cannot be written, which is said in a warning and
        is no error (the mark itself is in the log); returns False then, and the next call tries again.
        """
        try:
            info = self.marks_file.stat()
            stamp = (info.st_size, info.st_mtime_ns)
        except FileNotFoundError:
            stamp = (0, 0)
        if self._read("SELECT size, mtime_ns FROM marks_read") == [stamp]:
            return True
        hidden = self._hidden_in_log()
        try:
            with closing(connect(self.index)) as db:
                with transaction(db):
                    db.execute("DELETE FROM hidden")  # a cache of the log, filled again from it
                    db.executemany("INSERT INTO hidden (sha256) VALUES (?)", [(sha,) for sha in hidden])
                    db.execute("INSERT OR REPLACE INTO marks_read (id, size, mtime_ns) VALUES (1, ?, ?)", stamp)
        except sqlite3.Error as err:
            if not is_disk_full(err):
                raise self._error(err, "update") from err
            warnings.warn(
                f"the disk holding {str(self.folder)!r} is full: the marks are noted in {self.MARKS}, "
                "and the index catches up when there is room",
                stacklevel=3,
            )
            return False
        return True

    def _hidden_in_log(self) -> set[str]:
        """The hidden images as the marks log says, for when the index's table lags behind it (a full disk)."""
        return gallery_marks.hidden(gallery_marks.read(self.marks_file))

    # -- lineage ---------------------------------------------------------------------

    def lineage(self, sha256) -> Lineage:
        """Ancestors and descendants of an image, by the parent hashes in the records.

        sha256: an image's pixel hash (``art.record.sha256``; a unique prefix of 8 or more
        hex digits will do), or an Artwork. Ancestors are nearest first (parent, then
        grandparent ...), descendants likewise. Parents named by a record but not in the
        gallery are listed in ``unknown``; images whose PNG was deleted still count
        through the records the index keeps, but are not loaded.
        """
        wanted = _pixel_hash(sha256).lower()
        rows = self._read("SELECT file, sha256, parents FROM artworks ORDER BY id")
        return trace(wanted, rows, self._on_disk(), self._load_all, str(self.folder))

    def __repr__(self) -> str:
        return f"Gallery({str(self.folder)!r}, {len(self)} artworks)"


_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
_LATEST = datetime.max.replace(tzinfo=timezone.utc)


def _moment(value, field: str, end: bool = False) -> datetime | None:
    """A filter's date or time as an aware datetime (UTC when none is given); a date as `end` means the day's end."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise KitError(
                f"{field} must be a date or time such as '2025-06-01' or '2025-06-01T14:30', got {value!r}"
            ) from None
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        step = timedelta(microseconds=1)  # an `until` time is included
    elif isinstance(value, date):
        value, step = datetime.combine(value, time(), tzinfo=timezone.utc), timedelta(days=1)
    else:
        raise KitError(f"{field} must be a date, a datetime or ISO text, got {type(value).__name__}")
    try:
        value = value.astimezone(timezone.utc)
        return value + step if end else value
    except OverflowError:  # 9999-12-31 or datetime.max as `until`, datetime.min in another zone as `since`
        return _LATEST if end else _EARLIEST


def _in_range(created: str, start: datetime | None, end: datetime | None) -> bool:
    try:
        moment = datetime.fromisoformat(created)
    except (TypeError, ValueError):
        return False  # a record without a readable time matches no date filter
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        moment = moment.astimezone(timezone.utc)
    except OverflowError:
        moment = _EARLIEST if moment.year == 1 else _LATEST
    return (start is None or moment >= start) and (end is None or moment < end)
