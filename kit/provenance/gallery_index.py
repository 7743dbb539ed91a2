"""The gallery's SQLite index (``gallery.sqlite``): its tables, the row of a PNG, and how it is opened.

The PNGs are the truth; the index only makes listing and searching fast and is rebuilt from them
whenever it lags. What `Gallery` needs to write and read it is here: the schema (with the columns
added since the first release, which an older index gets on open), the row a record becomes, one
connection per operation, one write transaction, and whether an error means a full disk (which the
gallery reports as such, not as damage).
"""

from __future__ import annotations

import errno
import sqlite3
import unicodedata
from contextlib import contextmanager

from ..errors import KitError
from .record import Record

SCHEMA = """
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
);
CREATE TABLE IF NOT EXISTS unindexed (  -- PNGs left out, with why: looked at again only when they change
    file TEXT PRIMARY KEY,
    size INTEGER,
    mtime_ns INTEGER,
    reason TEXT
);
CREATE TABLE IF NOT EXISTS hidden (  -- images hidden from the default view (the marks file is the truth)
    sha256 TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS marks_read (  -- the marks file's (size, mtime_ns) when the hidden table was last filled
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER,
    mtime_ns INTEGER
);
"""
TABLES = {"artworks", "unindexed", "hidden", "marks_read"}
# Columns added after the first release: an older index gets them on open.
ADDED = {"size": "INTEGER", "mtime_ns": "INTEGER", "parents": "TEXT"}

# The artworks table as the kit writes it: `row` gives a PNG's values in this order.
COLUMNS = (
    "file",
    "created",
    "kind",
    "prompt",
    "style",
    "seed",
    "preset",
    "sha256",
    "record_json",
    "size",
    "mtime_ns",
    "parents",
)
INSERT = f"INSERT OR IGNORE INTO artworks ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
UPDATE = f"UPDATE artworks SET {', '.join(c + ' = ?' for c in COLUMNS[1:])} WHERE file = ?"


def connect(index) -> sqlite3.Connection:
    """A connection to the index file `index`, with ``kit_fold`` (the prompt filter's case folding) defined.

    One short-lived connection per operation: safe across threads, kernels and processes. Autocommit;
    writes take the lock up front (BEGIN IMMEDIATE, `transaction`), so two writers never deadlock.
    """
    db = sqlite3.connect(index, timeout=30, isolation_level=None)
    db.create_function("kit_fold", 1, fold, deterministic=True)
    return db


@contextmanager
def transaction(db):
    """One write transaction, its lock taken up front (BEGIN IMMEDIATE); rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def row(file: str, record: Record, stamp: tuple[int, int]) -> tuple:
    """The index row of a PNG: values in `COLUMNS` order. stamp: (size, mtime_ns) of the file."""
    seed = record.seed if -(2**63) <= record.seed < 2**63 else None  # sqlite integers are 64-bit
    return (
        file,
        record.created,
        record.kind,
        record.prompt,
        record.style,
        seed,
        record.preset,
        record.sha256,
        record.to_json(),
        *stamp,
        " ".join(record.parents()),
    )


def fill_parents(db) -> None:
    """Fill the parents column of rows an older index wrote without it (inside the caller's transaction)."""
    update = []
    for row_id, text in db.execute("SELECT id, record_json FROM artworks WHERE parents IS NULL").fetchall():
        try:
            parents = Record.from_json(text).parents()
        except (KitError, TypeError):
            parents = []
        update.append((" ".join(parents), row_id))
    db.executemany("UPDATE artworks SET parents = ? WHERE id = ?", update)


def is_disk_full(err: BaseException | None) -> bool:
    """Whether `err` (or an error it was raised from) says the disk or the quota is full."""
    seen = 0
    while err is not None and seen < 8:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            return True
        if isinstance(err, sqlite3.Error) and (
            getattr(err, "sqlite_errorname", "") == "SQLITE_FULL" or "disk is full" in str(err)
        ):
            return True
        err = err.__cause__ or err.__context__
        seen += 1
    return False


def fold(text):
    """Text as the prompt filter compares it: Unicode case folding, composed (É and E + U+0301 alike)."""
    return unicodedata.normalize("NFC", text).casefold() if isinstance(text, str) else text
