"""Whole collections: embeddings of many images as Parquet shards, and maps of them at scale.

    summary = embed_collection("museum/", "museum-emb/")                  # one machine, no Ray
    summary = embed_collection("museum.csv", "museum-emb/", engine="ray", address="auto")
    vectors, rows = load_embeddings("museum-emb/")                       # error rows left out
    cmap = map_collection("museum-emb/", sample=20_000)                  # fit on a sample, place the rest
    cmap.export_coordinates("museum-map.parquet")                        # id, x, y + metadata
    cmap.figure(color_by="folder", max_points=20_000)                    # thinned for display

The source is a folder tree (its image files, recursively; a ``folder`` column holds each
image's sub-folder) or a CSV/Parquet list with a ``path`` column (relative paths are read
from the list's folder; the list's other columns are kept as metadata).

The dataset is a folder of Parquet shards and a manifest::

    DATASET/_manifest.json          model id, shard size, source, total, the shards and their hashes
    DATASET/shard-00000.parquet     id, path, embedding, model_id, pretrained, width, height, error, metadata...

The sorted list of paths is cut into shards of `shard_size`, so the same source gives the
same shards. ``id`` is the sha1 of the path (relative to the source), ``embedding`` a unit
float32 vector (null when the image could not be read), ``error`` the reason (null when
fine). Each shard is written whole (temp file + rename) and carries its own path-list hash
and row count, so a rerun keeps the shards that are complete and embeds only the rest: an
interrupted run loses at most the shards it was working on.

Both engines run the same `ImageEncoder` on the same batches of files: ``engine="local"``
in this process (Ray is never imported), ``engine="ray"`` as a pool of Ray Data actors,
one model per actor, on GPUs where the cluster has them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import presets
from .embed import IMAGE_SUFFIXES, expand, model_id as clip_model_id
from .errors import KitError
from .files import MAX_PIXELS, ReadError, clean_temp_files, read_image, write_atomic

__all__ = ["embed_collection", "Summary", "ImageEncoder", "load_embeddings", "load_errors",
           "map_collection", "map_vectors", "CollectionMap", "thin", "indices_of"]

FORMAT = "kit-embeddings/1"
MANIFEST = "_manifest.json"
COLUMNS = ("id", "path", "embedding", "model_id", "pretrained", "width", "height", "error")
ENGINES = ("local", "ray")


def _shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401 - the submodule is used as pyarrow.parquet
    except ImportError:
        raise KitError("collections are stored as Parquet and need pyarrow: pip install pyarrow (or 'kit-portraits[ray]')") from None
    return pyarrow


# ---------------------------------------------------------------- the source: which images


@dataclass
class _Source:
    """The images of a collection: sorted keys (paths relative to `root`) and their metadata."""

    description: str
    root: Path
    keys: list[str]
    meta: object  # a pyarrow Table, one row per key, in key order


def read_source(source) -> _Source:
    """The sorted image paths of a folder tree, or of a CSV/Parquet list with a ``path`` column."""
    pa = _pyarrow()
    path = Path(source).expanduser()
    if path.is_dir():
        root = path.resolve()
        files = expand(root)
        keys = [file.relative_to(root).as_posix() for file in files]  # expand() sorts them
        if not keys:
            raise KitError(f"no image files in {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, recursively)")
        folders = [key.rpartition("/")[0] for key in keys]
        return _Source(str(root), root, keys, pa.table({"folder": pa.array(folders, pa.string())}))
    if not path.is_file():
        raise KitError(f"source {source} does not exist: give a folder of images or a .csv/.parquet list of paths")
    table = _read_list(path)
    if "path" not in table.column_names:
        raise KitError(f"{path} has no 'path' column (its columns: {', '.join(table.column_names)})")
    clash = [name for name in table.column_names if name in COLUMNS and name != "path"]
    if clash:
        raise KitError(f"{path} has columns named {', '.join(clash)}, which the dataset uses itself: "
                       f"rename them (e.g. {clash[0]!r} -> 'source_{clash[0]}')")
    keys = table.column("path").to_pylist()
    for row, key in enumerate(keys):
        if key is None or not str(key).strip():
            raise KitError(f"{path}: row {row + 1} has an empty path")
    keys = [Path(str(key).strip()).as_posix() for key in keys]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    keys = [keys[i] for i in order]
    for before, after in zip(keys, keys[1:]):
        if before == after:
            raise KitError(f"{path} lists {before!r} more than once: each image once, please")
    if not keys:
        raise KitError(f"{path} lists no images")
    meta = table.drop_columns(["path"]).take(pa.array(order, pa.int64()))
    return _Source(str(path.resolve()), path.resolve().parent, keys, meta)


def _read_list(path: Path):
    pa = _pyarrow()
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            from pyarrow import csv

            return csv.read_csv(path, convert_options=csv.ConvertOptions(column_types={"path": pa.string()}))
        if suffix in (".parquet", ".pq"):
            return pa.parquet.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise KitError(f"cannot read the list {path}: {err}") from None
    raise KitError(f"source {path} must be a folder, a .csv or a .parquet file, not {suffix or 'a file without suffix'}")


def image_id(key: str) -> str:
    """The stable id of an image: the sha1 of its path relative to the source."""
    return hashlib.sha1(key.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- shards and the manifest


@dataclass
class _Shard:
    index: int
    start: int
    stop: int
    hash: str

    @property
    def file(self) -> str:
        return _shard_name(self.index)

    @property
    def size(self) -> int:
        return self.stop - self.start


def plan_shards(keys: list[str], shard_size: int) -> list[_Shard]:
    """The sorted keys cut into shards of `shard_size`, each with the sha1 of its path list."""
    shards = []
    for index, start in enumerate(range(0, len(keys), shard_size)):
        stop = min(start + shard_size, len(keys))
        digest = hashlib.sha1("\n".join(keys[start:stop]).encode("utf-8")).hexdigest()
        shards.append(_Shard(index, start, stop, digest))
    return shards


def _read_manifest(dataset: Path) -> dict | None:
    path = dataset / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise KitError(f"{path} is not readable ({err}): delete it and run again (complete shards are kept)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise KitError(f"{path} is not a kit embeddings manifest ({FORMAT}): use another output folder")
    return manifest


def _shard_info(path: Path) -> dict | None:
    """The kit metadata and row count of a shard file; None when missing or unreadable."""
    pa = _pyarrow()
    try:
        metadata = pa.parquet.read_metadata(path)
        info = json.loads(metadata.schema.to_arrow_schema().metadata[b"kit"])
        info["rows_in_file"] = metadata.num_rows
        return info
    except (OSError, pa.ArrowException, KeyError, TypeError, ValueError):
        return None


def _shard_complete(dataset: Path, shard: _Shard, model: str) -> bool:
    """True when the shard file holds exactly this shard's paths, embedded by `model`."""
    info = _shard_info(dataset / shard.file)
    if info is None:
        return False
    if info.get("model_id") != model:
        raise KitError(f"{dataset / shard.file} holds embeddings of {info.get('model_id')}, not {model}: "
                       "embeddings of two models don't mix. Use another output folder.")
    return info.get("hash") == shard.hash and info.get("rows") == shard.size == info["rows_in_file"]


# ---------------------------------------------------------------- the encoder (one per worker)


class ImageEncoder:
    """Image files -> embedding rows with the preset's open_clip model; loads the model once.

    Ray Data runs one per actor; the local engine runs one in-process. Called on a batch
    ``{"file": [...], ...}`` it returns the batch's other columns plus ``embedding``
    (zeros where unreadable), ``width``, ``height`` and ``error`` ("" when fine): a bad
    image becomes an error row, never a failed batch.
    """

    def __init__(self, preset, device: str = "cpu", threads: int | None = None, max_pixels: int = MAX_PIXELS):
        import torch

        from .embed import load_clip

        if threads:
            torch.set_num_threads(threads)
        self.device = device
        self.max_pixels = max_pixels
        self.model, self.preprocess, _ = load_clip(preset, device)
        self.dim = int(self.model.visual.output_dim)

    def __call__(self, batch: dict) -> dict:
        import torch

        files = list(batch["file"])
        n = len(files)
        width = np.zeros(n, dtype=np.int32)
        height = np.zeros(n, dtype=np.int32)
        errors = [""] * n
        tensors, readable = [], []
        for i, file in enumerate(files):
            try:
                image = read_image(file, max_pixels=self.max_pixels)  # the kit's one reader
                tensors.append(self.preprocess(image))
            except ReadError as err:
                errors[i] = err.reason
                continue
            except Exception as err:  # a decoder or transform bug on one odd file: record it, go on
                errors[i] = f"cannot prepare the image ({type(err).__name__}: {err})"
                continue
            width[i], height[i] = image.size
            readable.append(i)
        embedding = np.zeros((n, self.dim), dtype=np.float32)
        if tensors:
            with torch.inference_mode():
                vectors = self.model.encode_image(torch.stack(tensors).to(self.device), normalize=True)
            embedding[readable] = vectors.float().cpu().numpy()
        out = {key: np.asarray(value) for key, value in batch.items() if key != "file"}
        out.update(embedding=embedding, width=width, height=height, error=np.array(errors, dtype=object))
        return out


# ---------------------------------------------------------------- a run: collecting rows, writing shards


@dataclass
class Summary:
    """What `embed_collection` did. Image counts: done (embedded now), failed (unreadable,
    recorded with their error now), skipped (in shards already complete)."""

    dataset: str
    model_id: str
    engine: str
    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    shards: int = 0
    shards_written: int = 0
    shards_skipped: int = 0
    unfinished: list = field(default_factory=list)  # shard indices this run could not finish
    reason: str | None = None                       # why, when some are unfinished
    errors: list = field(default_factory=list)      # (path, reason) of the images that failed now
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every shard of the collection is written (unreadable images included, as error rows)."""
        return not self.unfinished

    def __str__(self) -> str:
        rate = (self.done + self.failed) / self.seconds if self.seconds > 0 else 0.0
        lines = [f"{self.total:,} images in {self.shards} shards of {self.dataset} ({self.model_id}, {self.engine} engine)",
                 f"  done {self.done:,}  failed {self.failed:,}  skipped {self.skipped:,} "
                 f"(shards: {self.shards_written} written, {self.shards_skipped} already complete)",
                 f"  {self.seconds:.1f} s, {rate:.1f} images/s"]
        for path, reason in self.errors[:5]:
            lines.append(f"  unreadable: {path}: {reason}")
        if len(self.errors) > 5:
            lines.append(f"  ... and {len(self.errors) - 5} more (load_errors() lists them all)")
        if self.unfinished:
            lines.append(f"  {len(self.unfinished)} shards unfinished ({self.reason}): "
                         "run the same command again to resume")
        return "\n".join(lines)


class _Run:
    """The shards of one run: rows arrive in batches (any order), complete shards are written."""

    def __init__(self, dataset: Path, source: _Source, shards: list[_Shard], model: str, pretrained: str,
                 dim: int, summary: Summary, on_shard=None, bar=None):
        self.dataset, self.source, self.model, self.pretrained, self.dim = dataset, source, model, pretrained, dim
        self.summary, self.on_shard, self.bar = summary, on_shard, bar
        self.shards = {shard.index: shard for shard in shards}
        self.rows: dict[int, dict] = {shard.index: {} for shard in shards}  # shard -> key -> row

    def add(self, batch: dict) -> None:
        """Take an encoded batch; write every shard it completes."""
        touched = set()
        for i, (shard, key) in enumerate(zip(batch["shard"], batch["key"])):
            shard = int(shard)
            self.rows[shard][str(key)] = (batch["embedding"][i], int(batch["width"][i]),
                                          int(batch["height"][i]), str(batch["error"][i]) or None)
            touched.add(shard)
        if self.bar is not None:
            self.bar.update(len(batch["key"]))
        for shard in sorted(touched):
            if len(self.rows[shard]) == self.shards[shard].size:
                self.write(self.shards.pop(shard), self.rows.pop(shard))

    def write(self, shard: _Shard, rows: dict) -> None:
        pa = _pyarrow()
        keys = self.source.keys[shard.start:shard.stop]
        ordered = [rows[key] for key in keys]
        failed = np.array([row[3] is not None for row in ordered])
        embedding = np.stack([row[0] for row in ordered]).astype(np.float32)
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(embedding.ravel()), self.dim, mask=pa.array(failed))
        columns = {
            "id": pa.array([image_id(key) for key in keys], pa.string()),
            "path": pa.array(keys, pa.string()),
            "embedding": vectors,
            "model_id": pa.array([self.model] * len(keys), pa.string()),
            "pretrained": pa.array([self.pretrained] * len(keys), pa.string()),
            "width": pa.array([None if bad else row[1] for row, bad in zip(ordered, failed)], pa.int32()),
            "height": pa.array([None if bad else row[2] for row, bad in zip(ordered, failed)], pa.int32()),
            "error": pa.array([row[3] for row in ordered], pa.string()),
        }
        meta = self.source.meta.slice(shard.start, shard.size)
        for name in meta.column_names:
            columns[name] = meta.column(name)
        info = {"format": FORMAT, "model_id": self.model, "shard": shard.index, "hash": shard.hash, "rows": shard.size}
        table = pa.table(columns).replace_schema_metadata({"kit": json.dumps(info)})
        write_atomic(self.dataset / shard.file, lambda file: pa.parquet.write_table(table, file))
        errors = [(key, row[3]) for key, row in zip(keys, ordered) if row[3] is not None]
        self.summary.shards_written += 1
        self.summary.failed += len(errors)
        self.summary.done += shard.size - len(errors)
        self.summary.errors.extend(errors)
        if self.on_shard is not None:
            self.on_shard(shard.index, self.dataset / shard.file)

    @property
    def pending(self) -> list[int]:
        return sorted(self.shards)


# ---------------------------------------------------------------- embed_collection


def embed_collection(source, out, engine: str = "local", address: str | None = None, workers: int | None = None,
                     preset=None, batch_size: int = 64, shard_size: int = 1000, *, device: str | None = None,
                     max_pixels: int = MAX_PIXELS, on_shard=None, progress: bool = True,
                     new_source: bool = False) -> Summary:
    """Embed every image of `source` into Parquet shards under `out`; returns a `Summary`.

    source: a folder tree of images, or a .csv/.parquet list with a ``path`` column.
    engine: "local" (this process, no Ray) or "ray" (Ray Data actors: ``address`` of a
    cluster, e.g. "auto", or a local Ray with every core). workers: Ray actors (default: one
    per GPU, else one). device: "cpu"/"cuda" (default: the best there is). A rerun skips the
    complete shards; a different model or shard size in `out` raises KitError, and so does
    another source unless `new_source` (the collection moved: its shards are kept where the
    paths under the new source are the same).
    on_shard(index, path) is called after each shard is written.
    """
    started = time.perf_counter()
    if engine not in ENGINES:
        raise KitError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    for name, value in (("batch_size", batch_size), ("shard_size", shard_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise KitError(f"{name} must be a whole number >= 1, got {value!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise KitError(f"workers must be a whole number >= 1 or None, got {workers!r}")
    if address and engine != "ray":
        raise KitError("address is the address of a Ray cluster: use it with engine='ray'")
    preset = presets.get(preset)
    presets.require(preset, "clip")
    model = clip_model_id(preset)
    pretrained = Path(preset.clip_pretrained).name if Path(preset.clip_pretrained).is_file() else preset.clip_pretrained
    dim = _clip_dim(preset)

    src = read_source(source)
    dataset = Path(out).expanduser()
    if dataset.exists() and not dataset.is_dir():
        raise KitError(f"out {dataset} is a file: give a folder for the dataset")
    old = _read_manifest(dataset) if dataset.is_dir() else None
    if old is None and dataset.is_dir() and any(dataset.iterdir()):
        example = sorted(p.name for p in dataset.iterdir())[0]
        raise KitError(f"out {dataset} already holds files that are not a kit embeddings dataset (e.g. {example!r}) "
                       "and the kit never writes into someone else's folder: give a new or empty folder")
    if old is not None and not new_source and (old.get("source"), old.get("root")) != (src.description, str(src.root)):
        raise KitError(f"{dataset} holds the embeddings of {old.get('source')!r}, and this run embeds "
                       f"{src.description!r}: give another output folder, or, if the collection moved there, "
                       "pass new_source=True (`kit embed --new-source`)")
    if old is not None and old.get("model_id") != model:
        raise KitError(f"{dataset} holds embeddings of {old.get('model_id')}, and this run uses {model}: "
                       "embeddings of two models don't mix. Use another output folder, or delete this one.")
    if old is not None and old.get("shard_size") != shard_size:
        raise KitError(f"{dataset} was written with shard_size={old.get('shard_size')}, this run asks for "
                       f"{shard_size}: run with shard_size={old.get('shard_size')} (--shard-size) to resume, "
                       "or use another output folder")
    dataset.mkdir(parents=True, exist_ok=True)

    shards = plan_shards(src.keys, shard_size)
    summary = Summary(str(dataset), model, engine, total=len(src.keys), shards=len(shards))
    pending = []
    for shard in shards:
        if _shard_complete(dataset, shard, model):
            summary.shards_skipped += 1
            summary.skipped += shard.size
        else:
            pending.append(shard)
    _remove_stale(dataset, len(shards))
    manifest = {"format": FORMAT, "model_id": model, "clip_model": preset.clip_model, "pretrained": pretrained,
                "dim": dim, "shard_size": shard_size, "source": src.description, "root": str(src.root),
                "total": len(src.keys), "complete": False,
                "shards": [{"index": s.index, "file": s.file, "paths": s.size, "hash": s.hash} for s in shards]}
    _write_manifest(dataset, manifest)

    bar = None
    if progress and pending:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(s.size for s in pending), desc="embedding images", unit="img")
    run = _Run(dataset, src, pending, model, pretrained, dim, summary, on_shard, bar)
    try:
        if pending and engine == "local":
            _embed_local(run, src, pending, preset, presets.pick_device(device), batch_size, max_pixels)
        elif pending:
            _embed_ray(run, src, pending, preset, device, address, workers, batch_size, max_pixels)
    except KitError:
        raise
    except Exception as err:  # a lost cluster, a full disk: keep what is written, say what is not
        summary.reason = f"{type(err).__name__}: {err}"
    finally:
        if bar is not None:
            bar.close()
    summary.unfinished = run.pending
    if summary.unfinished and summary.reason is None:
        summary.reason = "the engine returned without all their rows"
    manifest.update(complete=summary.ok, updated=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    _write_manifest(dataset, manifest)
    summary.seconds = time.perf_counter() - started
    return summary


def _clip_dim(preset) -> int:
    from .embed import Embedder

    return Embedder(preset, device="cpu", cache=False).dim  # from the model config: loads no weights


def _write_manifest(dataset: Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=1).encode("utf-8")
    write_atomic(dataset / MANIFEST, text)


def _remove_stale(dataset: Path, count: int) -> None:
    """Delete the kit's own shard files past the planned count (a source that shrank) and temp files of crashed runs.

    A file is removed only when it proves the kit wrote it: a shard carries the kit's metadata.
    """
    for path in dataset.glob("shard-*.parquet"):
        number = path.name[len("shard-"):-len(".parquet")]
        if number.isdigit() and int(number) >= count and (_shard_info(path) or {}).get("format") == FORMAT:
            path.unlink()
    clean_temp_files(dataset)


def _records(src: _Source, shard: _Shard) -> list[dict]:
    return [{"shard": shard.index, "key": key, "file": str(src.root / key)}
            for key in src.keys[shard.start:shard.stop]]


def _embed_local(run: _Run, src: _Source, pending, preset, device, batch_size, max_pixels) -> None:
    encoder = ImageEncoder(preset, device=device, max_pixels=max_pixels)
    for shard in pending:
        records = _records(src, shard)
        for start in range(0, len(records), batch_size):
            chunk = records[start:start + batch_size]
            run.add(encoder({name: [r[name] for r in chunk] for name in ("shard", "key", "file")}))


def _embed_ray(run: _Run, src: _Source, pending, preset, device, address, workers, batch_size, max_pixels) -> None:
    with ray_session(address, workers) as ray:
        import ray.data

        gpus = int(ray.cluster_resources().get("GPU", 0))
        if device and device.startswith("cuda") and not gpus:
            raise KitError(f"device {device!r} asked for, but the Ray cluster has no GPUs: use device='cpu'")
        if device != "cpu" and gpus:
            workers = workers or gpus
            actor = {"num_gpus": 1, "num_cpus": 1}
            kwargs = {"device": "cuda", "threads": None}
        else:
            # CPU actors share the cluster's cores among them, each no bigger than the largest node.
            workers = workers or 1
            cpus = int(ray.cluster_resources().get("CPU", 1))
            largest = max(int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node["Alive"])
            threads = max(1, min(largest, cpus // workers))
            actor = {"num_cpus": threads}
            kwargs = {"device": "cpu", "threads": threads}
        records = [record for shard in pending for record in _records(src, shard)]
        blocks = max(1, math.ceil(len(records) / batch_size))
        dataset = ray.data.from_items(records, override_num_blocks=blocks).map_batches(
            ImageEncoder, fn_constructor_kwargs={"preset": preset, "max_pixels": max_pixels, **kwargs},
            compute=ray.data.ActorPoolStrategy(size=workers), batch_size=batch_size, batch_format="numpy",
            **actor)
        context = ray.data.DataContext.get_current()
        bars, context.enable_progress_bars = context.enable_progress_bars, False  # our own bar counts images
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                run.add(batch)
        finally:
            context.enable_progress_bars = bars


@contextmanager
def ray_session(address: str | None = None, workers: int | None = None):
    """Ray, initialised for the work inside: an existing session as it is, the cluster at `address`,
    or a local Ray with every core (and at least `workers` CPUs); shut down after only if started here."""
    try:
        import ray
    except ImportError:
        raise KitError("engine='ray' needs Ray: pip install 'kit-portraits[ray]' (or use engine='local')") from None
    started = False
    if not ray.is_initialized():
        if address:
            # ship this kit's own code to the cluster's workers, so they run the same version as this process
            ray.init(address=address, runtime_env={"py_modules": [str(Path(__file__).resolve().parent)]})
        else:
            ray.init(num_cpus=max(workers or 1, os.cpu_count() or 1), include_dashboard=False)
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


# ---------------------------------------------------------------- reading a dataset back


def _dataset_tables(dataset):
    """(manifest, [pyarrow Table of each complete shard]); warns about shards missing."""
    pa = _pyarrow()
    dataset = Path(dataset).expanduser()
    manifest = _read_manifest(dataset) if dataset.is_dir() else None
    if manifest is None:
        raise KitError(f"{dataset} is not a kit embeddings dataset (no {MANIFEST}): make one with `kit embed`")
    tables, missing = [], []
    for entry in manifest["shards"]:
        shard = _Shard(int(entry["index"]), 0, int(entry["paths"]), entry["hash"])
        if _shard_complete(dataset, shard, manifest["model_id"]):
            tables.append(pa.parquet.read_table(dataset / shard.file))
        else:
            missing.append(entry["file"])
    if missing:
        warnings.warn(f"{dataset} is incomplete: {len(missing)} of {len(manifest['shards'])} shards are missing "
                      f"or unfinished (first: {missing[0]}); run `kit embed` again to finish it", stacklevel=3)
    return manifest, tables


def load_embeddings(dataset) -> tuple[np.ndarray, dict]:
    """(vectors, rows) of a dataset's readable images: an (n, dim) float32 array and a dict of
    columns (id, path, width, height and the metadata columns; numpy arrays of n values).

    Rows of unreadable images are left out, with a warning saying how many; `load_errors`
    lists them.
    """
    pa = _pyarrow()
    import pyarrow.compute as pc

    manifest, tables = _dataset_tables(dataset)
    dim = int(manifest["dim"])
    if not tables:
        return np.zeros((0, dim), dtype=np.float32), {name: np.array([], dtype=object) for name in ("id", "path")}
    table = pa.concat_tables(tables, promote_options="default")
    fine = table.filter(pc.is_null(table.column("error")))
    skipped = len(table) - len(fine)
    if skipped:
        first = table.filter(pc.invert(pc.is_null(table.column("error")))).slice(0, 1).to_pylist()[0]
        warnings.warn(f"left out {skipped} of {len(table)} images that could not be read "
                      f"(first: {first['path']}: {first['error']}); load_errors() lists them", stacklevel=2)
    vectors = fine.column("embedding").combine_chunks().flatten().to_numpy().reshape(-1, dim)
    rows = {name: fine.column(name).to_numpy(zero_copy_only=False)
            for name in fine.column_names if name not in ("embedding", "model_id", "pretrained", "error")}
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


# ---------------------------------------------------------------- maps at scale


def _place_chunk(placer, data: np.ndarray) -> np.ndarray:
    return placer.transform(data)


@dataclass
class CollectionMap:
    """A map of a whole collection: coordinates of every row, fitted on a sample.

    coords: (n, dim) float32, in row order. columns: the rows' metadata (id, path, ...).
    fitted: True for the rows of the fit sample (the rest were placed on the fitted map).
    atlas: the StyleAtlas fitted on the sample. seconds: {"fit": ..., "place": ...}.
    """

    coords: np.ndarray
    columns: dict
    fitted: np.ndarray
    atlas: object
    seconds: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.coords)

    def __repr__(self) -> str:
        return (f"CollectionMap({len(self):,} points in {self.coords.shape[1]}D, "
                f"fitted on {int(self.fitted.sum()):,})")

    def select(self, column: str, value) -> np.ndarray:
        """Indices of every row whose `column` equals `value` (all rows, not a thinned subset)."""
        return indices_of(self._column(column), value)

    def thin(self, by: str | None = None, max_points: int = 20_000, seed: int = 0) -> np.ndarray:
        """Indices of at most `max_points` rows that keep every value of column `by` (or every map region)."""
        return thin(self.coords, None if by is None else self._column(by), max_points=max_points, seed=seed)

    def place(self, vectors, *, engine: str = "local", address: str | None = None, workers: int | None = None,
              chunk_size: int = 5_000, progress: bool = True) -> np.ndarray:
        """Coordinates of new vectors on this map (the map itself does not change).

        Chunks of `chunk_size` rows go through the atlas's placer (`kit.projection`), in this process
        (engine="local") or as Ray tasks sharing one copy of the model (engine="ray", at most
        `workers` at a time, default every CPU). Same chunks, same coordinates, either way.
        """
        if engine not in ENGINES:
            raise KitError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise KitError(f"chunk_size must be a whole number >= 1, got {chunk_size!r}")
        vectors = np.asarray(vectors, dtype=np.float32)
        dim = len(self.atlas.points[0]["vector"])
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise KitError(f"vectors must be an (n, {dim}) array like the map's embeddings, got shape {vectors.shape}")
        placer = self.atlas.placer
        data = placer.prepare(vectors)
        chunks = [data[start:start + chunk_size] for start in range(0, len(data), chunk_size)]
        if not chunks:
            return np.zeros((0, self.coords.shape[1]), dtype=np.float32)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(data), desc="placing points", unit="pt")
        try:
            if engine == "ray":
                placed = _place_ray(placer, chunks, address, workers, bar)
            else:
                placed = []
                for chunk in chunks:
                    placed.append(placer.transform(chunk))
                    if bar is not None:
                        bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
        return np.concatenate(placed)

    def export_coordinates(self, path, *, overwrite: bool = False) -> Path:
        """Write id, x, y (and z), fitted, and the metadata columns to a Parquet file (atomically).

        An existing file is an error unless `overwrite`.
        """
        pa = _pyarrow()
        path = Path(path).expanduser()
        columns = {"id": pa.array(self.columns["id"], pa.string())}
        for axis, values in zip("xyz", self.coords.T):
            columns[axis] = pa.array(values, pa.float32())
        columns["fitted"] = pa.array(self.fitted)
        for name, values in self.columns.items():
            if name != "id":
                columns[name] = pa.array(values)
        table = pa.table(columns)
        return write_atomic(path, lambda file: pa.parquet.write_table(table, file),
                            exist="replace" if overwrite else "error")

    def figure(self, color_by: str | None = None, max_points: int = 20_000, seed: int = 0):
        """A plotly scatter of at most `max_points` points, every value of `color_by` kept
        (a stratified sample); one legend entry per value. Each marker's customdata is its id."""
        import plotly.graph_objects as go

        keep = self.thin(color_by, max_points=max_points, seed=seed)
        labels = (np.full(len(self), "all", dtype=object) if color_by is None
                  else np.array([_label(v) for v in self._column(color_by)], dtype=object))
        paths = self.columns.get("path", self.columns["id"])
        fig = go.Figure()
        for value in sorted(set(labels[keep])):
            rows = keep[labels[keep] == value]
            points = {"x": self.coords[rows, 0], "y": self.coords[rows, 1]}
            common = {"name": str(value), "mode": "markers", "customdata": self.columns["id"][rows],
                      "hovertext": [str(p) for p in paths[rows]], "hoverinfo": "text", "marker": {"size": 3}}
            if self.coords.shape[1] == 3:
                fig.add_trace(go.Scatter3d(**points, z=self.coords[rows, 2], **common))
            else:
                fig.add_trace(go.Scattergl(**points, **common))
        shown = f"{len(keep):,} of {len(self):,} points" if len(keep) < len(self) else f"{len(self):,} points"
        fig.update_layout(template="plotly_white", title=f"Collection map: {shown}", legend_title_text=color_by or "")
        return fig

    def _column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise KitError(f"no column {name!r}; the map's columns are {', '.join(self.columns)}")
        return self.columns[name]


def _label(value) -> str:
    return "unlabelled" if value is None or value == "" else str(value)


def map_vectors(vectors, columns: dict | None = None, *, sample: int = 20_000, dim: int = 2, engine: str = "local",
                seed: int | None = 0, address: str | None = None, workers: int | None = None,
                chunk_size: int = 5_000, progress: bool = True) -> CollectionMap:
    """Map many vectors: fit UMAP (StyleAtlas.fit's recipe) on a random sample, place the rest.

    The rest are placed in chunks of `chunk_size` with the fitted model's transform: in this
    process (engine="local") or as Ray tasks sharing one copy of the fitted model (engine="ray").
    Both cut the same chunks, so both give the same coordinates. seed: the sample and the map
    (None: every core, a slightly different map each run).
    """
    from .atlas import MIN_POINTS, StyleAtlas

    if engine not in ENGINES:
        raise KitError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if dim not in (2, 3):
        raise KitError(f"dim must be 2 or 3, got {dim!r}")
    for name, value in (("sample", sample), ("chunk_size", chunk_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise KitError(f"{name} must be a whole number >= 1, got {value!r}")
    if sample < MIN_POINTS:
        raise KitError(f"sample must be at least {MIN_POINTS} points to fit a map, got {sample}")
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) < MIN_POINTS:
        raise KitError(f"vectors must be an (n, dim) array with n >= {MIN_POINTS}, got shape {vectors.shape}")
    n = len(vectors)
    columns = dict(columns) if columns else {}
    columns.setdefault("id", np.array([f"row-{i}" for i in range(n)], dtype=object))
    for name, values in columns.items():
        if len(values) != n:
            raise KitError(f"columns[{name!r}] has {len(values)} values for {n} vectors")
        columns[name] = np.asarray(values)

    rng = np.random.default_rng(seed)
    fit_rows = np.arange(n) if n <= sample else np.sort(rng.choice(n, sample, replace=False))
    fitted = np.zeros(n, dtype=bool)
    fitted[fit_rows] = True
    started = time.perf_counter()
    atlas = StyleAtlas(None, seed=seed)
    paths = columns.get("path", columns["id"])
    atlas.add_vectors(vectors[fit_rows], [{"id": str(columns["id"][i]), "name": Path(str(paths[i])).name,
                                           "path": str(paths[i])} for i in fit_rows])
    coords = np.zeros((n, dim), dtype=np.float32)
    coords[fit_rows] = atlas.fit(dim=dim)
    seconds = {"fit": time.perf_counter() - started}

    cmap = CollectionMap(coords, columns, fitted, atlas, seconds)
    started = time.perf_counter()
    rest = np.flatnonzero(~fitted)
    if len(rest):
        coords[rest] = cmap.place(vectors[rest], engine=engine, address=address, workers=workers,
                                  chunk_size=chunk_size, progress=progress)
    seconds["place"] = time.perf_counter() - started
    return cmap


def _place_ray(placer, chunks: list, address, workers, bar) -> list:
    """Transform chunks as Ray tasks, at most `workers` (default: the cluster's CPUs) at a time."""
    with ray_session(address, workers) as ray:
        model = ray.put(placer)  # one copy in the object store, shared by every task
        task = ray.remote(num_cpus=1)(_place_chunk)
        limit = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        results: list = [None] * len(chunks)
        running: dict = {}
        submitted = 0
        while submitted < len(chunks) or running:
            while submitted < len(chunks) and len(running) < limit:
                running[task.remote(model, chunks[submitted])] = submitted
                submitted += 1
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                number = running.pop(ref)
                results[number] = ray.get(ref)
                if bar is not None:
                    bar.update(len(chunks[number]))
        return results


def map_collection(dataset, sample: int = 20_000, dim: int = 2, engine: str = "local", seed: int | None = 0,
                   *, address: str | None = None, workers: int | None = None, chunk_size: int = 5_000,
                   progress: bool = True) -> CollectionMap:
    """Map a dataset written by `embed_collection` (unreadable images left out); see `map_vectors`."""
    vectors, rows = load_embeddings(dataset)
    return map_vectors(vectors, rows, sample=sample, dim=dim, engine=engine, seed=seed, address=address,
                       workers=workers, chunk_size=chunk_size, progress=progress)


# ---------------------------------------------------------------- thinning for display


def thin(coords, labels=None, max_points: int = 20_000, seed: int = 0, min_per_label: int = 20,
         grid: int = 32) -> np.ndarray:
    """Sorted indices of at most `max_points` points, a stratified sample that keeps every label.

    Each label keeps all its points up to `min_per_label` (less when there are too many labels
    for that), and the rest of the budget is shared in proportion to the labels' sizes. With
    labels=None the strata are the cells of a `grid` x `grid` raster of the map, so sparse
    regions stay visible. Fewer points than `max_points`: all of them.
    """
    coords = np.asarray(coords)
    n = len(coords)
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
        raise KitError(f"max_points must be a whole number >= 1, got {max_points!r}")
    if labels is None:
        strata = _grid_cells(coords, grid)
    else:
        if len(labels) != n:
            raise KitError(f"labels has {len(labels)} values for {n} points")
        codes: dict = {}
        strata = np.fromiter((codes.setdefault(_label(v), len(codes)) for v in labels), dtype=np.int64, count=n)
    if n <= max_points:
        return np.arange(n)
    order = np.argsort(strata, kind="stable")
    names, starts, counts = np.unique(strata[order], return_index=True, return_counts=True)
    if len(names) > max_points:
        raise KitError(f"{len(names)} labels cannot all be shown with max_points={max_points}: "
                       "raise max_points or colour by a column with fewer values")
    floor = np.minimum(counts, max(1, min(min_per_label, max_points // len(names))))
    budget = max_points - int(floor.sum())
    extra = counts - floor
    share = extra / extra.sum() * budget if extra.sum() else np.zeros(len(names))
    quota = floor + np.floor(share).astype(np.int64)
    leftover = max_points - int(quota.sum())
    if leftover > 0:  # largest remainders first, never more than a label has
        for i in np.argsort(-(share - np.floor(share)), kind="stable")[:leftover]:
            quota[i] += quota[i] < counts[i]
    rng = np.random.default_rng(seed)
    kept = [rng.choice(order[start:start + count], size=int(k), replace=False)
            for start, count, k in zip(starts, counts, quota)]
    return np.sort(np.concatenate(kept))


def _grid_cells(coords: np.ndarray, grid: int) -> np.ndarray:
    """The raster cell of each point, from its first two coordinates."""
    if coords.ndim != 2 or coords.shape[1] < 2:
        raise KitError(f"coords must be an (n, 2) or (n, 3) array, got shape {coords.shape}")
    xy = coords[:, :2].astype(np.float64)
    low, high = xy.min(axis=0), xy.max(axis=0)
    cells = np.floor((xy - low) / np.maximum(high - low, 1e-12) * grid).clip(0, grid - 1).astype(np.int64)
    return cells[:, 0] * grid + cells[:, 1]


def indices_of(labels, label) -> np.ndarray:
    """Indices of every point whose label equals `label`."""
    return np.flatnonzero(np.asarray(labels, dtype=object) == label)
