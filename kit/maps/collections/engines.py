"""The engines a collection runs on: this process ("local") or Ray ("ray").

Both embed with the same `ImageEncoder` on the same batches of files, and both place new
points with the same placer on the same chunks, so both give the same rows:

- ``engine="local"`` runs in this process and never imports Ray;
- ``engine="ray"`` embeds with a pool of Ray Data actors, one model per actor (on GPUs where
  the cluster has them), and places points as Ray tasks sharing one copy of the fitted map.

An embedding engine hands each encoded batch to ``run.add(batch)`` (a batch is a dict of
columns: ``shard``, ``key``, ``embedding``, ``width``, ``height``, ``error``), in any order.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ...errors import KitError
from ...files import MAX_PIXELS, ReadError, read_image

__all__ = ["ImageEncoder", "ray_session", "ENGINES"]

ENGINES = ("local", "ray")

KIT_PACKAGE = Path(__file__).resolve().parents[2]  # kit/: what Ray ships to its workers


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise KitError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")


# ---------------------------------------------------------------- the encoder (one per worker)


class ImageEncoder:
    """Image files -> embedding rows with the preset's open_clip model; loads the model once.

    Ray Data runs one per actor; the local engine runs one in-process. Called on a batch
    ``{"file": [...], ...}`` it returns the batch's other columns plus ``embedding``
    (zeros where unreadable), ``width``, ``height`` and ``error`` ("" when fine): a bad
    image becomes an error row, never a failed batch.
    """

    def __init__(
        self,
        preset,
        device: str = "cpu",
        threads: int | None = None,
        max_pixels: int = MAX_PIXELS,
        dtype: str = "float32",
    ):
        import torch

        from ...core.presets import pick_dtype
        from ..embed import load_clip

        if threads:
            torch.set_num_threads(threads)
        self.device = device
        self.max_pixels = max_pixels
        self.dtype = pick_dtype(device, dtype)  # a name, so that Ray can send it to its actors
        self.model, self.preprocess, _ = load_clip(preset, device, self.dtype)
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
                vectors = self.model.encode_image(torch.stack(tensors).to(self.device, self.dtype), normalize=True)
            embedding[readable] = vectors.float().cpu().numpy()
        out = {key: np.asarray(value) for key, value in batch.items() if key != "file"}
        out.update(embedding=embedding, width=width, height=height, error=np.array(errors, dtype=object))
        return out


# ---------------------------------------------------------------- embedding


def _records(src, shard) -> list[dict]:
    return [
        {"shard": shard.index, "key": key, "file": str(src.root / key)} for key in src.keys[shard.start : shard.stop]
    ]


def embed_local(run, src, pending, preset, device, batch_size, max_pixels, dtype) -> None:
    encoder = ImageEncoder(preset, device=device, max_pixels=max_pixels, dtype=dtype)
    for shard in pending:
        records = _records(src, shard)
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            run.add(encoder({name: [r[name] for r in chunk] for name in ("shard", "key", "file")}))


def embed_ray(run, src, pending, preset, device, address, workers, batch_size, max_pixels, dtype) -> None:
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
            ImageEncoder,
            fn_constructor_kwargs={"preset": preset, "max_pixels": max_pixels, "dtype": dtype, **kwargs},
            compute=ray.data.ActorPoolStrategy(size=workers),
            batch_size=batch_size,
            batch_format="numpy",
            **actor,
        )
        context = ray.data.DataContext.get_current()
        bars, context.enable_progress_bars = context.enable_progress_bars, False  # our own bar counts images
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                run.add(batch)
        finally:
            context.enable_progress_bars = bars


# ---------------------------------------------------------------- placing points on a fitted map


def place_chunks(placer, chunks: list, engine: str, address, workers, bar) -> list:
    """`placer.transform` of each chunk, in order: in this process, or as Ray tasks."""
    if engine == "ray":
        return _place_ray(placer, chunks, address, workers, bar)
    placed = []
    for chunk in chunks:
        placed.append(placer.transform(chunk))
        if bar is not None:
            bar.update(len(chunk))
    return placed


def _place_chunk(placer, data: np.ndarray) -> np.ndarray:
    return placer.transform(data)


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


# ---------------------------------------------------------------- Ray itself


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
            ray.init(address=address, runtime_env={"py_modules": [str(KIT_PACKAGE)]})
        else:
            ray.init(num_cpus=max(workers or 1, os.cpu_count() or 1), include_dashboard=False)
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
