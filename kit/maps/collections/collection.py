"""Whole collections: embeddings of many images as Parquet shards, and maps of them at scale.

    summary = embed_collection("museum/", "museum-emb/")                  # one machine, no Ray
    summary = embed_collection("museum.csv", "museum-emb/", engine="ray", address="auto")
    vectors, rows = load_embeddings("museum-emb/")                       # error rows left out
    cmap = map_collection("museum-emb/", sample=20_000)                  # fit on a sample, place the rest
    cmap.export_coordinates("museum-map.parquet")                        # id, x, y + metadata
    cmap.figure(color_by="folder", max_points=20_000)                    # thinned for display

This file is the entry points and the bookkeeping of a run; the rest lives in three files:

- `kit.maps.collections.store`: the source (a folder tree or a CSV/Parquet list of paths), the
  dataset's Parquet shards and manifest (the format is described there), reading it back;
- `kit.maps.collections.engines`: the local and Ray engines and the `ImageEncoder` both run;
- `kit.maps.collections.mapping`: `CollectionMap`, `map_vectors`, thinning for display.

A run cuts the sorted paths into shards, keeps the shards already complete, and writes each
other shard whole as soon as all its rows are in: an interrupted run loses at most the
shards it was working on, and running it again finishes the rest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ... import checks
from ...core import presets
from ...errors import KitError
from ...files import MAX_PIXELS
from ...runs import Stopped, as_run
from ..embed import model_id as clip_model_id
from .engines import ImageEncoder, check_engine, embed_local, embed_ray
from .mapping import CollectionMap, indices_of, map_vectors, thin
from .store import (
    MANIFEST,
    Shard,
    Source,
    load_embeddings,
    load_errors,
    new_manifest,
    open_dataset,
    plan_shards,
    read_shard,
    read_source,
    remove_stale,
    write_manifest,
    write_shard,
)

__all__ = [
    "embed_collection",
    "Summary",
    "ImageEncoder",
    "load_embeddings",
    "load_errors",
    "map_collection",
    "map_vectors",
    "CollectionMap",
    "thin",
    "indices_of",
    "MANIFEST",
]


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
    reason: str | None = None  # why, when some are unfinished
    errors: list = field(default_factory=list)  # (path, reason) of the images that failed now
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every shard of the collection is written (unreadable images included, as error rows)."""
        return not self.unfinished

    def __str__(self) -> str:
        rate = (self.done + self.failed) / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"{self.total:,} images in {self.shards} shards of {self.dataset} ({self.model_id}, {self.engine} engine)",
            f"  done {self.done:,}  failed {self.failed:,}  skipped {self.skipped:,} "
            f"(shards: {self.shards_written} written, {self.shards_skipped} already complete)",
            f"  {self.seconds:.1f} s, {rate:.1f} images/s",
        ]
        for path, reason in self.errors[:5]:
            lines.append(f"  unreadable: {path}: {reason}")
        if len(self.errors) > 5:
            lines.append(f"  ... and {len(self.errors) - 5} more (load_errors() lists them all)")
        if self.unfinished:
            lines.append(
                f"  {len(self.unfinished)} shards unfinished ({self.reason}): run the same command again to resume"
            )
        return "\n".join(lines)


def embed_collection(
    source,
    out,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    preset=None,
    batch_size: int = 64,
    shard_size: int = 1000,
    *,
    device: str | None = None,
    max_pixels: int = MAX_PIXELS,
    on_shard=None,
    progress: bool = True,
    new_source: bool = False,
    run=None,
    dtype=None,
) -> Summary:
    """Embed every image of `source` into Parquet shards under `out`; returns a `Summary`.

    source: a folder tree of images, or a .csv/.parquet list with a ``path`` column.
    engine: "local" (this process, no Ray) or "ray" (Ray Data actors: ``address`` of a
    cluster, e.g. "auto", or a local Ray with every core). workers: Ray actors (default: one
    per GPU, else one). device: "cpu"/"cuda" (default: the best there is). dtype: CLIP's
    (default: as a Studio's, bfloat16 on a CPU that computes it natively; the dataset's model id
    says which, e.g. "ViT-B-32/laion2b_s34b_b79k:bfloat16", so one dataset never mixes them). A rerun skips the
    complete shards; a different model or shard size in `out` raises KitError, and so does
    another source unless `new_source` (the collection moved: its shards are kept where the
    paths under the new source are the same).
    on_shard(index, path) is called after each shard is written. run: a `kit.Run` that counts
    images and can stop the work between batches: it then raises `kit.Stopped` whose `done`
    lists the shard files written (they are complete and kept; a rerun goes on from there).
    """
    # 1. Check inputs, before any work.
    started = time.perf_counter()
    check_engine(engine)
    batch_size = checks.whole(batch_size, "batch_size", 1)
    shard_size = checks.whole(shard_size, "shard_size", 1)
    workers = None if workers is None else checks.whole(workers, "workers (or None)", 1)
    if address and engine != "ray":
        raise KitError("address is the address of a Ray cluster: use it with engine='ray'")
    preset = presets.get(preset)
    presets.require(preset, "clip")
    precision = str(presets.pick_dtype(presets.pick_device(device), dtype, preset)).replace("torch.", "")
    model = clip_model_id(preset, precision)
    pretrained = Path(preset.clip_pretrained).name if Path(preset.clip_pretrained).is_file() else preset.clip_pretrained
    dim = _clip_dim(preset)

    # 2. The source, the dataset, and the shards still to write.
    src = read_source(source)
    dataset = open_dataset(out, src, model, shard_size, new_source)
    shards = plan_shards(src.keys, shard_size)
    summary = Summary(str(dataset), model, engine, total=len(src.keys), shards=len(shards))
    pending = []
    for shard in shards:
        if read_shard(dataset, shard, model, dim) is not None:  # read back whole: a damaged shard is made again
            summary.shards_skipped += 1
            summary.skipped += shard.size
        else:
            pending.append(shard)
    remove_stale(dataset, len(shards))
    manifest = new_manifest(
        src, shards, model=model, clip_model=preset.clip_model, pretrained=pretrained, dim=dim, shard_size=shard_size
    )
    write_manifest(dataset, manifest)

    # 3. Embed them on the engine; each shard is written as soon as its rows are in.
    job = as_run(run, progress_bar=progress, description="embedding images", unit="img")
    job.expect(sum(s.size for s in pending))
    writer = _ShardWriter(dataset, src, pending, model, pretrained, dim, summary, on_shard, job)
    stopped = None
    try:
        if job.stopped:  # a Stop pressed before the work began
            raise Stopped()
        if pending and engine == "local":
            embed_local(writer, src, pending, preset, presets.pick_device(device), batch_size, max_pixels, precision)
        elif pending:
            embed_ray(writer, src, pending, preset, device, address, workers, batch_size, max_pixels, precision)
    except Stopped as err:
        stopped, summary.reason = err, "stopped"
    except KitError:
        raise
    except Exception as err:  # a lost cluster, a full disk: keep what is written, say what is not
        summary.reason = f"{type(err).__name__}: {err}"
    finally:
        job.close()

    # 4. Say what is done in the manifest and the summary.
    summary.unfinished = writer.pending
    if summary.unfinished and summary.reason is None:
        summary.reason = "the engine returned without all their rows"
    manifest.update(complete=summary.ok, updated=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    write_manifest(dataset, manifest)
    summary.seconds = time.perf_counter() - started
    if stopped is not None:
        raise Stopped("the embedding", writer.written, len(pending)) from None
    return summary


def _clip_dim(preset) -> int:
    from ..embed import Embedder

    return Embedder(preset, device="cpu", cache=False).dim  # from the model config: loads no weights


class _ShardWriter:
    """The shards of one embedding: rows arrive in batches (any order), complete shards are written.

    Each batch is a step of the `run`; a stopped run raises `kit.Stopped` after the batch's
    complete shards are written.
    """

    def __init__(
        self,
        dataset: Path,
        source: Source,
        shards: list[Shard],
        model: str,
        pretrained: str,
        dim: int,
        summary: Summary,
        on_shard,
        run,
    ):
        self.dataset, self.source, self.model, self.pretrained, self.dim = dataset, source, model, pretrained, dim
        self.summary, self.on_shard, self.run = summary, on_shard, run
        self.shards = {shard.index: shard for shard in shards}
        self.rows: dict[int, dict] = {shard.index: {} for shard in shards}  # shard -> key -> row
        self.written: list[Path] = []

    def add(self, batch: dict) -> None:
        """Take an encoded batch; write every shard it completes."""
        touched = set()
        for i, (shard, key) in enumerate(zip(batch["shard"], batch["key"])):
            shard = int(shard)
            self.rows[shard][str(key)] = (
                batch["embedding"][i],
                int(batch["width"][i]),
                int(batch["height"][i]),
                str(batch["error"][i]) or None,
            )
            touched.add(shard)
        for shard in sorted(touched):
            if len(self.rows[shard]) == self.shards[shard].size:
                self.write(self.shards.pop(shard), self.rows.pop(shard))
        self.run.step(len(batch["key"]))
        if self.run.stopped and self.shards:
            raise Stopped()

    def write(self, shard: Shard, rows: dict) -> None:
        errors = write_shard(self.dataset, self.source, shard, rows, self.model, self.pretrained, self.dim)
        self.summary.shards_written += 1
        self.summary.failed += len(errors)
        self.summary.done += shard.size - len(errors)
        self.summary.errors.extend(errors)
        self.written.append(self.dataset / shard.file)
        if self.on_shard is not None:
            self.on_shard(shard.index, self.dataset / shard.file)

    @property
    def pending(self) -> list[int]:
        return sorted(self.shards)


def map_collection(
    dataset,
    sample: int = 20_000,
    dim: int = 2,
    engine: str = "local",
    seed: int | None = 0,
    *,
    address: str | None = None,
    workers: int | None = None,
    chunk_size: int = 5_000,
    progress: bool = True,
) -> CollectionMap:
    """Map a dataset written by `embed_collection` (unreadable images left out); see `map_vectors`."""
    vectors, rows = load_embeddings(dataset)
    return map_vectors(
        vectors,
        rows,
        sample=sample,
        dim=dim,
        engine=engine,
        seed=seed,
        address=address,
        workers=workers,
        chunk_size=chunk_size,
        progress=progress,
    )
