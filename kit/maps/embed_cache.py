"""The embeddings' disk cache: unit float32 vectors in SQLite, checked on every read.

Kept apart from `kit.embed` so that the embedder reads as the model and its inputs.
"""

from __future__ import annotations

import os
import sqlite3
import warnings
import zlib
from contextlib import closing
from pathlib import Path

import numpy as np

from ..files import set_aside, sqlite_damaged


def default_cache_path() -> Path:
    """``$KIT_CACHE/embeddings.sqlite``; KIT_CACHE defaults to ~/.cache/kit."""
    return Path(os.environ.get("KIT_CACHE") or "~/.cache/kit").expanduser() / "embeddings.sqlite"


class VectorCache:
    """Unit float32 vectors in one SQLite table, keyed by (model id, content hash).

    Never silently wrong: every row carries its length, dtype and a CRC-32 of its bytes, and
    a row read back is used only when all three agree and it is a finite unit vector of the
    size asked for; anything else is a miss (recomputed and overwritten), with one warning.
    A cache file with damaged pages is set aside as ``<name>.damaged-<time>`` (kept, never
    deleted) and a fresh cache is started, with a warning. A file that is not an SQLite
    database at all is not the kit's to move: it is left alone, with a warning naming the
    fix, and embedding goes on without a cache, as it does on a read-only disk.
    """

    TOLERANCE = 1e-3  # how far from 1 a stored vector's length may be

    def __init__(self, path):
        path = Path(path).expanduser()
        self.path = path / "embeddings.sqlite" if path.is_dir() else path
        self.broken = False
        self.rejected = 0  # rows read back and refused (wrong size, dtype, checksum, not unit)
        self._ready = False  # the table exists
        self._file = None  # (st_dev, st_ino) of the file last opened: only that file is ever set aside
        self._refused = False  # put() was given vectors that are not unit vectors (warned once)

    def _connect(self) -> sqlite3.Connection:
        if not (self._ready and self.path.exists()):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        try:
            info = os.stat(self.path)
            self._file = (info.st_dev, info.st_ino)
            if not self._ready:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS vectors (model TEXT NOT NULL, key TEXT NOT NULL, "
                    "vector BLOB NOT NULL, dim INTEGER, dtype TEXT, crc INTEGER, "
                    "PRIMARY KEY (model, key)) WITHOUT ROWID"
                )
                columns = {row[1] for row in db.execute("PRAGMA table_info(vectors)")}
                for name, kind in (("dim", "INTEGER"), ("dtype", "TEXT"), ("crc", "INTEGER")):
                    if name not in columns:  # a cache written before rows were checked: its rows read as misses
                        db.execute(f"ALTER TABLE vectors ADD COLUMN {name} {kind}")
                db.commit()
                self._ready = True
        except BaseException:
            db.close()
            raise
        return db

    def _run(self, work, default):
        """``work(db)`` on a fresh connection; a damaged file is set aside and `work` runs once more."""
        for attempt in (0, 1):
            if self.broken:
                return default
            try:
                with closing(self._connect()) as db:
                    return work(db)
            except sqlite3.DatabaseError as err:
                if attempt == 0 and sqlite_damaged(err) and self._set_aside(err):
                    continue
                self._failed(err)
            except OSError as err:
                self._failed(err)
        return default

    def _set_aside(self, err: Exception) -> bool:
        """Rename a damaged cache file out of the way (with its journal); True when a fresh one can start."""
        if getattr(err, "sqlite_errorname", "") == "SQLITE_NOTADB" or "not a database" in str(err):
            return False  # no SQLite header: maybe not a file the kit wrote, so it is not moved
        try:
            info = os.stat(self.path)
            if (info.st_dev, info.st_ino) != self._file:
                return True  # another process set it aside already: the file there now is a fresh one
            aside = set_aside(self.path)
        except OSError:
            return False
        self._ready = False
        warnings.warn(
            f"embedding cache {self.path} is not usable ({type(err).__name__}: {err}): set aside as "
            f"{aside.name} and started afresh; its vectors are computed again",
            stacklevel=5,
        )
        return True

    def _failed(self, err: Exception) -> None:
        if not self.broken:
            fix = (
                "; it is not an SQLite file, so the kit leaves it alone: delete it or pass another cache= "
                "path (or cache=False)"
                if sqlite_damaged(err)
                else ""
            )
            warnings.warn(
                f"embedding cache {self.path} is not usable ({type(err).__name__}: {err}); continuing without it{fix}",
                stacklevel=5,
            )
        self.broken = True

    def get(self, model: str, keys: list[str], dim: int) -> dict[str, np.ndarray]:
        """The cached vectors among `keys`, in one query per 500 keys.

        A row counts only when its stored length and dtype are `dim` float32, its bytes
        match their checksum, and it is a finite unit vector: anything else is a miss.
        """
        if self.broken or not keys:
            return {}
        keys = list(dict.fromkeys(keys))

        def work(db):
            found, bad = {}, 0
            for start in range(0, len(keys), 500):  # stays under SQLite's limit on query parameters
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT key, dim, dtype, crc, vector FROM vectors WHERE model = ? AND key IN ({marks})",
                    [model, *chunk],
                )
                for key, stored_dim, dtype, crc, blob in rows:
                    vector = _checked(blob, stored_dim, dtype, crc, dim, self.TOLERANCE)
                    if vector is None:
                        bad += 1
                    else:
                        found[key] = vector
            return found, bad

        found, bad = self._run(work, ({}, 0))
        if bad:
            if not self.rejected:
                warnings.warn(
                    f"embedding cache {self.path}: {bad} cached vector(s) were damaged or of another "
                    "size and are computed again",
                    stacklevel=3,
                )
            self.rejected += bad
        return found

    def put(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        """Store new vectors in one transaction (only finite unit vectors: anything else is not cached)."""
        if self.broken or not vectors:
            return
        rows = []
        for key, vector in vectors.items():
            vector = np.asarray(vector, dtype=np.float32).reshape(-1)
            blob = vector.tobytes()
            if _checked(blob, vector.size, "float32", zlib.crc32(blob), vector.size, self.TOLERANCE) is not None:
                rows.append((model, key, vector.size, "float32", zlib.crc32(blob), blob))
        if len(rows) < len(vectors) and not self._refused:
            self._refused = True
            warnings.warn(
                f"embedding cache {self.path}: {len(vectors) - len(rows)} vector(s) were not finite unit "
                "vectors and were not cached",
                stacklevel=3,
            )

        def work(db):
            with db:
                db.executemany(
                    "INSERT OR REPLACE INTO vectors (model, key, dim, dtype, crc, vector) VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )

        if rows:
            self._run(work, None)

    # sqlite3's own context manager commits but does not close: closing() does that.

    def clear(self, model: str | None = None) -> int:
        """Delete the cached vectors of `model` (all models when None); returns how many went."""
        if not self.path.exists():
            return 0
        with closing(self._connect()) as db, db:
            if model is None:
                return db.execute("DELETE FROM vectors").rowcount
            return db.execute("DELETE FROM vectors WHERE model = ?", [model]).rowcount


def _checked(blob, stored_dim, dtype, crc, dim: int, tolerance: float) -> np.ndarray | None:
    """The vector in `blob` when it is what a row claims and what was asked for, else None."""
    if (
        not isinstance(blob, bytes)
        or dtype != "float32"
        or stored_dim != dim
        or len(blob) != 4 * dim
        or zlib.crc32(blob) != crc
    ):
        return None
    vector = np.frombuffer(blob, dtype=np.float32)
    if not np.isfinite(vector).all() or abs(float(np.dot(vector, vector)) - 1.0) > 2 * tolerance:
        return None
    return vector
