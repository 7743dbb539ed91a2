"""A collection on disk: its source (which images), its shards and manifest, and reading it back.

The source is a folder tree (its image files, recursively; a ``folder`` column holds each
image's sub-folder) or a CSV/Parquet list with a ``path`` column (relative paths are read
from the list's folder; the list's other columns are kept as metadata).

The dataset is a folder of Parquet shards and a manifest::

    DATASET/_manifest.json          model id, shard size, source, total, the shards and their hashes
    DATASET/shard-00000.parquet     id, path, embedding, model_id, pretrained, width, height, error, metadata...

The sorted list of paths is cut into shards of `shard_size`, so the same source gives the
same shards. ``id`` is the sha1 of the path (relative to the source), ``embedding`` a unit
float32 vector (null when the image could not be read), ``error`` the reason (null when
fine). Each shard is written whole (temp file + rename) with a CRC on every page and carries
its own path-list hash and row count, so a rerun keeps the shards that are complete and embeds
only the rest.

Nothing on disk is trusted: every file is read with the kit's one reader (regular files only,
bounded), the manifest is checked field by field (`check_manifest`), and a shard counts as
complete only when all of it reads back and holds exactly its paths (`read_shard`); a damaged
one is made again. A folder, FIFO or link in the place of the kit's file is not the kit's to
replace: it is refused with a KitError and left as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import checks
from ...errors import KitError
from ...files import MAX_BYTES, ReadError, clean_temp_files, kits_file, read_file, write_atomic
from ..embed import IMAGE_SUFFIXES, expand

__all__ = ["load_embeddings", "load_errors", "read_source", "plan_shards", "image_id", "MANIFEST"]

FORMAT = "kit-embeddings/1"
MANIFEST = "_manifest.json"
COLUMNS = ("id", "path", "embedding", "model_id", "pretrained", "width", "height", "error")
MAX_MANIFEST_BYTES = 256 * 2**20  # ~2 million shards' entries
MAX_SHARD_BYTES = 4 * 2**30
MAX_DIM = 1 << 16
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def require_pyarrow():
    """The pyarrow module (with pyarrow.parquet loaded), or a KitError saying how to install it."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401 - the submodule is used as pyarrow.parquet
    except ImportError:
        raise KitError(
            "collections are stored as Parquet and need pyarrow: pip install pyarrow (or 'kit-portraits[ray]')"
        ) from None
    return pyarrow


# ---------------------------------------------------------------- the source: which images


@dataclass
class Source:
    """The images of a collection: sorted keys (paths relative to `root`) and their metadata."""

    description: str
    root: Path
    keys: list[str]
    meta: object  # a pyarrow Table, one row per key, in key order


def read_source(source) -> Source:
    """The sorted image paths of a folder tree, or of a CSV/Parquet list with a ``path`` column."""
    pa = require_pyarrow()
    path = Path(source).expanduser()
    if path.is_dir():
        root = path.resolve()
        files = expand(root)
        keys = [file.relative_to(root).as_posix() for file in files]  # expand() sorts them
        if not keys:
            raise KitError(f"no image files in {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, recursively)")
        folders = [key.rpartition("/")[0] for key in keys]
        return Source(str(root), root, keys, pa.table({"folder": pa.array(folders, pa.string())}))
    if not path.exists() and not path.is_symlink():
        raise KitError(f"source {source} does not exist: give a folder of images or a .csv/.parquet list of paths")
    table = _read_list(path)
    if "path" not in table.column_names:
        raise KitError(f"{path} has no 'path' column (its columns: {', '.join(table.column_names)})")
    clash = [name for name in table.column_names if name in COLUMNS and name != "path"]
    if clash:
        raise KitError(
            f"{path} has columns named {', '.join(clash)}, which the dataset uses itself: "
            f"rename them (e.g. {clash[0]!r} -> 'source_{clash[0]}')"
        )
    keys = [_check_key(key, path, row) for row, key in enumerate(table.column("path").to_pylist())]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    keys = [keys[i] for i in order]
    for before, after in zip(keys, keys[1:]):
        if before == after:
            raise KitError(f"{path} lists {before!r} more than once: each image once, please")
    if not keys:
        raise KitError(f"{path} lists no images")
    meta = table.drop_columns(["path"]).take(pa.array(order, pa.int64()))
    return Source(str(path.resolve()), path.resolve().parent, keys, meta)


def _check_key(key, path: Path, row: int) -> str:
    """One path of a list, as the dataset keys it: a local file path, never a URL (which a path would mangle)."""
    key = "" if key is None else str(key).strip()
    if not key:
        raise KitError(f"{path}: row {row + 1} has an empty path")
    if _URL.match(key):
        raise KitError(
            f"{path}: row {row + 1} names a URL ({key[:100]!r}); the kit embeds local files: "
            "download the images and list their paths"
        )
    if "\x00" in key:
        raise KitError(f"{path}: row {row + 1} has a NUL character in its path, which no file system takes")
    return Path(key).as_posix()


def _read_list(path: Path):
    """The table of a .csv or .parquet list, read with the kit's one reader (regular files only, bounded)."""
    pa = require_pyarrow()
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise KitError(
            f"source {path} must be a folder, a .csv or a .parquet file, not {suffix or 'a file without suffix'}"
        )
    try:
        data = pa.BufferReader(read_file(path, field="source", max_bytes=MAX_BYTES))
        if suffix == ".csv":
            from pyarrow import csv

            return csv.read_csv(data, convert_options=csv.ConvertOptions(column_types={"path": pa.string()}))
        return pa.parquet.read_table(data)
    except ReadError as err:
        raise KitError(f"cannot read the list {path}: {err.reason}") from None
    except (pa.ArrowException, OSError) as err:
        raise KitError(f"cannot read the list {path}: {err}") from None


def image_id(key: str) -> str:
    """The stable id of an image: the sha1 of its path relative to the source."""
    return hashlib.sha1(key.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- shards


@dataclass
class Shard:
    index: int
    start: int
    stop: int
    hash: str

    @property
    def file(self) -> str:
        return f"shard-{self.index:05d}.parquet"

    @property
    def size(self) -> int:
        return self.stop - self.start


def plan_shards(keys: list[str], shard_size: int) -> list[Shard]:
    """The sorted keys cut into shards of `shard_size`, each with the sha1 of its path list."""
    shards = []
    for index, start in enumerate(range(0, len(keys), shard_size)):
        stop = min(start + shard_size, len(keys))
        digest = hashlib.sha1("\n".join(keys[start:stop]).encode("utf-8")).hexdigest()
        shards.append(Shard(index, start, stop, digest))
    return shards


# ---------------------------------------------------------------- the manifest


def open_dataset(out, src: Source, model: str, shard_size: int, new_source: bool) -> Path:
    """The dataset folder `out`, made if new; a KitError when it holds someone else's files, or
    embeddings of another source (unless `new_source`), another model or another shard size."""
    dataset = Path(out).expanduser()
    if dataset.exists() and not dataset.is_dir():
        raise KitError(f"out {dataset} is a file: give a folder for the dataset")
    old = _read_manifest(dataset) if dataset.is_dir() else None
    if old is None and dataset.is_dir() and any(dataset.iterdir()):
        example = sorted(p.name for p in dataset.iterdir())[0]
        raise KitError(
            f"out {dataset} already holds files that are not a kit embeddings dataset (e.g. {example!r}) "
            "and the kit never writes into someone else's folder: give a new or empty folder"
        )
    if old is not None and not new_source and (old.get("source"), old.get("root")) != (src.description, str(src.root)):
        raise KitError(
            f"{dataset} holds the embeddings of {old.get('source')!r}, and this run embeds "
            f"{src.description!r}: give another output folder, or, if the collection moved there, "
            "pass new_source=True (`kit embed --new-source`)"
        )
    if old is not None and old.get("model_id") != model:
        raise KitError(
            f"{dataset} holds embeddings of {old.get('model_id')}, and this run uses {model}: "
            "embeddings of two models don't mix. Use another output folder, or delete this one."
        )
    if old is not None and old.get("shard_size") != shard_size:
        raise KitError(
            f"{dataset} was written with shard_size={old.get('shard_size')}, this run asks for "
            f"{shard_size}: run with shard_size={old.get('shard_size')} (--shard-size) to resume, "
            "or use another output folder"
        )
    dataset.mkdir(parents=True, exist_ok=True)
    return dataset


def new_manifest(
    src: Source, shards: list[Shard], *, model: str, clip_model: str, pretrained: str, dim: int, shard_size: int
) -> dict:
    """The manifest of a run that has not finished yet (``complete`` False)."""
    return {
        "format": FORMAT,
        "model_id": model,
        "clip_model": clip_model,
        "pretrained": pretrained,
        "dim": dim,
        "shard_size": shard_size,
        "source": src.description,
        "root": str(src.root),
        "total": len(src.keys),
        "complete": False,
        "shards": [{"index": s.index, "file": s.file, "paths": s.size, "hash": s.hash} for s in shards],
    }


def write_manifest(dataset: Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=1).encode("utf-8")
    write_atomic(dataset / MANIFEST, text)


def _read_manifest(dataset: Path) -> dict | None:
    """The dataset's manifest, checked field by field; None when there is none."""
    path = dataset / MANIFEST
    if not kits_file(path, "the manifest"):
        return None
    try:
        manifest = json.loads(read_file(path, field=MANIFEST, max_bytes=MAX_MANIFEST_BYTES).decode("utf-8"))
    except (ValueError, RecursionError) as err:  # a ReadError, not UTF-8 or JSON, or nested past what a parser follows
        reason = getattr(err, "reason", None) or ("nested too deep" if isinstance(err, RecursionError) else err)
        raise KitError(
            f"{path} is not readable ({reason}): delete it and run again (complete shards are kept)"
        ) from None
    return check_manifest(manifest, path)


def check_manifest(manifest, path: Path) -> dict:
    """`manifest` when every field the kit reads is of its type and in its range; KitError naming the field."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise KitError(f"{path} is not a kit embeddings manifest ({FORMAT}): use another output folder")

    def field(name, check, *args):
        if name not in manifest:
            raise KitError(f"{path}: the field {name!r} is missing: delete the manifest and run `kit embed` again")
        return check(manifest[name], f"{path}: {name}", *args)

    for name in ("model_id", "clip_model", "pretrained", "source", "root"):
        field(name, _text)
    field("dim", checks.whole, 1, MAX_DIM)
    shard_size = field("shard_size", checks.whole, 1)
    total = field("total", checks.whole, 0)
    field("complete", checks.flag)
    shards = field("shards", _entries)
    for index, entry in enumerate(shards):
        where = f"{path}: shards[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"index", "file", "paths", "hash"}:
            raise KitError(f"{where} must hold index, file, paths and hash")
        if checks.whole(entry["index"], f"{where}.index", index, index) != index:
            raise KitError(f"{where}.index must be {index}")
        if entry["file"] != Shard(index, 0, 0, "").file:
            raise KitError(f"{where}.file must be {Shard(index, 0, 0, '').file!r}, got {str(entry['file'])[:100]!r}")
        checks.whole(entry["paths"], f"{where}.paths", 1, shard_size)
        if not isinstance(entry["hash"], str) or not re.fullmatch(r"[0-9a-f]{40}", entry["hash"]):
            raise KitError(f"{where}.hash must be the sha1 of the shard's paths (40 hex digits)")
    if sum(entry["paths"] for entry in shards) != total:
        raise KitError(f"{path}: total is {total}, but the shards hold {sum(e['paths'] for e in shards)} paths")
    return manifest


def _text(value, field: str) -> str:
    if not isinstance(value, str) or len(value) > 100_000:
        raise KitError(f"{field} must be text, got {type(value).__name__}")
    return value


def _entries(value, field: str) -> list:
    if not isinstance(value, list):
        raise KitError(f"{field} must be a list of shard entries, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------- shard files


def read_shard(dataset: Path, shard: Shard, model: str, dim: int):
    """The shard's pyarrow Table when its file reads back whole and holds exactly this shard; else None.

    Every page is read and its CRC checked, the paths are hashed again, and every readable row
    must have a finite vector: a damaged shard is made again, never trusted. A shard of another
    model is a KitError (two models never mix), and so is a folder, FIFO or link in its place.
    """
    pa = require_pyarrow()
    path = dataset / shard.file
    if not kits_file(path, "the shard"):
        return None
    try:
        data = pa.BufferReader(read_file(path, field="shard", max_bytes=MAX_SHARD_BYTES))
        table = pa.parquet.read_table(data, page_checksum_verification=True)
        info = json.loads(table.schema.metadata[b"kit"])
    except (ReadError, pa.ArrowException, OSError, KeyError, TypeError, ValueError, RecursionError):
        return None
    if not isinstance(info, dict):
        return None
    if info.get("model_id") != model:
        raise KitError(
            f"{path} holds embeddings of {str(info.get('model_id'))[:100]}, not {model}: "
            "embeddings of two models don't mix. Use another output folder."
        )
    return table if _holds(table, info, shard, dim) else None


def _holds(table, info: dict, shard: Shard, dim: int) -> bool:
    """Whether a shard's table is exactly `shard`: its paths, their ids, one finite vector per readable row."""
    pa = require_pyarrow()
    if info.get("hash") != shard.hash or info.get("rows") != shard.size or table.num_rows != shard.size:
        return False
    types = {"id": pa.string(), "path": pa.string(), "embedding": pa.list_(pa.float32(), dim), "error": pa.string()}
    if any(name not in table.column_names or table.schema.field(name).type != kind for name, kind in types.items()):
        return False
    paths = table.column("path").to_pylist()
    if (
        None in paths
        or hashlib.sha1("\n".join(paths).encode("utf-8")).hexdigest() != shard.hash
        or table.column("id").to_pylist() != [image_id(key) for key in paths]
    ):
        return False
    failed = np.array([error is not None for error in table.column("error").to_pylist()], dtype=bool)
    embedding = table.column("embedding").combine_chunks()
    if not np.array_equal(embedding.is_null().to_numpy(zero_copy_only=False), failed):
        return False
    vectors = embedding.filter(pa.array(~failed)).flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return bool(np.isfinite(vectors).all() and (np.abs(vectors).max(axis=1) > 0).all())


def _shard_info(path: Path) -> dict | None:
    """The kit metadata of a regular shard file; None when it is not one the kit wrote."""
    pa = require_pyarrow()
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        data = pa.BufferReader(read_file(path, field="shard", max_bytes=MAX_SHARD_BYTES))
        info = json.loads(pa.parquet.read_metadata(data).schema.to_arrow_schema().metadata[b"kit"])
        return info if isinstance(info, dict) else None
    except (ReadError, OSError, pa.ArrowException, KeyError, TypeError, ValueError, RecursionError):
        return None


def write_shard(
    dataset: Path, src: Source, shard: Shard, rows: dict, model: str, pretrained: str, dim: int
) -> list[tuple[str, str]]:
    """Write one shard whole (temp file + rename); returns (path, reason) of its unreadable images.

    rows: key -> (embedding, width, height, error or None), one for each of the shard's keys.
    """
    pa = require_pyarrow()
    keys = src.keys[shard.start : shard.stop]
    ordered = [rows[key] for key in keys]
    failed = np.array([row[3] is not None for row in ordered])
    embedding = np.stack([row[0] for row in ordered]).astype(np.float32)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(embedding.ravel()), dim, mask=pa.array(failed))
    columns = {
        "id": pa.array([image_id(key) for key in keys], pa.string()),
        "path": pa.array(keys, pa.string()),
        "embedding": vectors,
        "model_id": pa.array([model] * len(keys), pa.string()),
        "pretrained": pa.array([pretrained] * len(keys), pa.string()),
        "width": pa.array([None if bad else row[1] for row, bad in zip(ordered, failed)], pa.int32()),
        "height": pa.array([None if bad else row[2] for row, bad in zip(ordered, failed)], pa.int32()),
        "error": pa.array([row[3] for row in ordered], pa.string()),
    }
    meta = src.meta.slice(shard.start, shard.size)
    for name in meta.column_names:
        columns[name] = meta.column(name)
    info = {"format": FORMAT, "model_id": model, "shard": shard.index, "hash": shard.hash, "rows": shard.size}
    table = pa.table(columns).replace_schema_metadata({"kit": json.dumps(info)})
    write_atomic(dataset / shard.file, lambda file: pa.parquet.write_table(table, file, write_page_checksum=True))
    return [(key, row[3]) for key, row in zip(keys, ordered) if row[3] is not None]


def remove_stale(dataset: Path, count: int) -> None:
    """Delete the kit's own shard files past the planned count (a source that shrank) and temp files of crashed runs.

    A file is removed only when it proves the kit wrote it: a shard carries the kit's metadata.
    """
    for path in dataset.glob("shard-*.parquet"):
        number = path.name[len("shard-") : -len(".parquet")]
        if number.isdigit() and int(number) >= count and (_shard_info(path) or {}).get("format") == FORMAT:
            path.unlink()
    clean_temp_files(dataset)


# ---------------------------------------------------------------- reading a dataset back


def _dataset_tables(dataset):
    """(manifest, [pyarrow Table of each complete shard]); warns about shards missing."""
    dataset = Path(dataset).expanduser()
    manifest = _read_manifest(dataset) if dataset.is_dir() else None
    if manifest is None:
        raise KitError(f"{dataset} is not a kit embeddings dataset (no {MANIFEST}): make one with `kit embed`")
    tables, missing = [], []
    for entry in manifest["shards"]:
        shard = Shard(entry["index"], 0, entry["paths"], entry["hash"])
        table = read_shard(dataset, shard, manifest["model_id"], manifest["dim"])
        if table is None:
            missing.append(entry["file"])
        else:
            tables.append(table)
    if missing:
        warnings.warn(
            f"{dataset} is incomplete: {len(missing)} of {len(manifest['shards'])} shards are missing "
            f"or unfinished (first: {missing[0]}); run `kit embed` again to finish it",
            stacklevel=3,
        )
    return manifest, tables


def load_embeddings(dataset) -> tuple[np.ndarray, dict]:
    """(vectors, rows) of a dataset's readable images: an (n, dim) float32 array and a dict of
    columns (id, path, width, height and the metadata columns; numpy arrays of n values).

    Rows of unreadable images are left out, with a warning saying how many; `load_errors`
    lists them.
    """
    pa = require_pyarrow()
    import pyarrow.compute as pc

    manifest, tables = _dataset_tables(dataset)
    dim = manifest["dim"]
    if not tables:
        return np.zeros((0, dim), dtype=np.float32), {name: np.array([], dtype=object) for name in ("id", "path")}
    table = pa.concat_tables(tables, promote_options="default")
    fine = table.filter(pc.is_null(table.column("error")))
    skipped = len(table) - len(fine)
    if skipped:
        first = table.filter(pc.invert(pc.is_null(table.column("error")))).slice(0, 1).to_pylist()[0]
        warnings.warn(
            f"left out {skipped} of {len(table)} images that could not be read "
            f"(first: {first['path']}: {first['error']}); load_errors() lists them",
            stacklevel=2,
        )
    vectors = fine.column("embedding").combine_chunks().flatten().to_numpy().reshape(-1, dim)
    rows = {
        name: fine.column(name).to_numpy(zero_copy_only=False)
        for name in fine.column_names
        if name not in ("embedding", "model_id", "pretrained", "error")
    }
    return vectors.astype(np.float32, copy=False), rows


def load_errors(dataset) -> list[tuple[str, str]]:
    """(path, reason) of every image of a dataset that could not be read."""
    import pyarrow.compute as pc

    _, tables = _dataset_tables(dataset)
    errors = []
    for table in tables:
        bad = table.filter(pc.invert(pc.is_null(table.column("error")))).select(["path", "error"])
        errors.extend((row["path"], row["error"]) for row in bad.to_pylist())
    return errors
