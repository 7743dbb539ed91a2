"""Collections at scale: embed_collection locally and on Ray, and maps fitted on a sample.

    python bench/bench_collection.py --quick              # 200 images; 20,000 vectors, sample 2,000
    python bench/bench_collection.py                      # 2,000 images; 200,000 x 512, sample 20,000
    python bench/bench_collection.py --skip-embed --full  # the map part, plus a full UMAP fit of every vector

1. Embedding: the same image files (256 px noise JPEGs) through open_clip ViT-B-32 with random
   weights, saved with safetensors and loaded as a local-file preset (the kit's real loading
   path; the same compute as laion2b_s34b_b79k), with the local engine and on a local Ray with
   1 and 2 workers. Each figure is the wall time of a whole run (model load, actor start-up,
   decoding, Parquet writes); Ray's own start-up is timed apart. The engines' vectors are compared.
2. Maps: clustered unit vectors (512-d); UMAP fitted on a random sample with StyleAtlas.fit's
   recipe, the rest placed in chunks of 5,000, in-process and as Ray tasks (2 workers).
   Trustworthiness (k=10, cosine) on a random 5,000-point subsample. --full also fits UMAP on
   every vector, for comparison (many minutes at 200,000 on two cores).

Configurations run in turns and the best of `--repeats` runs is kept, so that each sees the
same background load; the machine's load average is printed, since on a shared machine every
figure is slower than on an idle one, and Ray's start-up (process launches, imports) suffers most.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def write_images(folder: Path, n: int, size: int) -> None:
    """n noise JPEGs in 10 sub-folders (incompressible, so decoding costs what a photo does)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = folder / f"room{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(sub / f"img{i:05d}.jpg", quality=90)


def vit_b_32_preset(folder: Path):
    """A preset whose CLIP is ViT-B-32 with random weights, loaded from a safetensors file."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    from kit import presets

    path = folder / "vit-b-32-random.safetensors"
    if not path.is_file():
        torch.manual_seed(0)
        model, _, _ = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return presets.Preset(name="vit-b-32-file", model=None, clip_model="ViT-B-32", clip_pretrained=str(path))


def clustered(n: int, dim: int, clusters: int, spread: float, seed: int = 0) -> np.ndarray:
    """Unit vectors scattered around `clusters` random unit directions."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, dim)) / np.sqrt(dim)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def embed_part(args, work: Path, ray) -> None:
    import pyarrow.parquet as pq

    from kit.maps.collections.collection import embed_collection

    images = work / "images"
    write_images(images, args.images, args.size)
    preset = vit_b_32_preset(work)
    print(
        f"\n1. embed_collection: {args.images} JPEGs of {args.size} px, ViT-B-32 (random weights), "
        f"batch {args.batch_size}, shards of {args.shard_size}, best of {args.repeats}; {load()}"
    )
    from kit import presets

    default = str(presets.pick_dtype("cpu", None, presets.get(preset))).replace("torch.", "")
    # the kit's default dtype on this CPU (bfloat16 where it is native) beside float32, the "before"
    runs = [("local", None, "float32"), ("local", None, default), ("ray", 1, default), ("ray", 2, default)]
    runs = list(dict.fromkeys(runs))
    seconds, vectors = {run: float("inf") for run in runs}, {}
    for _ in range(args.repeats):  # in turns, best of: each configuration sees the same background load
        for engine, workers, dtype in runs:
            out = work / f"dataset-{engine}-{workers}-{dtype}"
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            summary = embed_collection(
                images,
                out,
                engine=engine,
                workers=workers,
                preset=preset,
                batch_size=args.batch_size,
                shard_size=args.shard_size,
                device="cpu",
                progress=False,
                dtype=dtype,
            )
            seconds[engine, workers, dtype] = min(seconds[engine, workers, dtype], time.perf_counter() - start)
            assert summary.ok and summary.done == args.images, summary
            table = pq.read_table(out)
            vectors[engine, workers, dtype] = np.stack(
                table.sort_by("id").column("embedding").to_numpy(zero_copy_only=False)
            )
    before = seconds["local", None, "float32"]
    print(f"{'engine':<8} {'workers':>7} {'dtype':>9} {'seconds':>8} {'images/s':>9} {'vs local float32':>17}")
    for (engine, workers, dtype), wall in seconds.items():
        print(
            f"{engine:<8} {workers or '-':>7} {dtype:>9} {wall:8.1f} {args.images / wall:9.1f} {before / wall:16.2f}x"
        )
    local = seconds["local", None, default]
    print(
        f"Ray overhead at 1 worker: {seconds['ray', 1, default] / local - 1:+.0%} of the local wall time "
        f"({seconds['ray', 1, default] - local:+.1f} s)"
    )
    reference = vectors["local", None, "float32"]
    for key in runs[1:]:
        cosine = np.sum(vectors[key] * reference, axis=1)
        print(
            f"{key[0]}({key[1] or '-'}) {key[2]} vs local float32: lowest cosine {cosine.min():.4f}, "
            f"max |difference| {np.abs(vectors[key] - reference).max():.2e}"
        )
    print(load())


def map_part(args, ray_ready) -> None:
    from sklearn.manifold import trustworthiness

    from kit.maps.atlas import StyleAtlas
    from kit.maps.collections.collection import map_vectors

    vectors = clustered(args.points, 512, args.clusters, 1.0)
    rng = np.random.default_rng(1)
    subset = np.sort(rng.choice(args.points, min(5_000, args.points), replace=False))
    print(
        f"\n2. maps: {args.points:,} x 512 vectors in {args.clusters} clusters, fit on {args.sample:,}, "
        f"trustworthiness k=10 on {len(subset):,} points; {load()}"
    )

    def trust(coords):
        return trustworthiness(vectors[subset], coords[subset], n_neighbors=10, metric="cosine")

    cmap = map_vectors(vectors, sample=args.sample, seed=0, chunk_size=5_000, progress=False)
    rest = np.flatnonzero(~cmap.fitted)
    print(f"fit on the sample: {cmap.seconds['fit']:.1f} s")
    print(f"trustworthiness, sample fit + placed: {trust(cmap.coords):.4f}")
    engines = ["local", "ray"] if ray_ready() else ["local"]
    seconds = {"local": cmap.seconds["place"], "ray": float("inf")}
    for turn in range(args.repeats):  # map_vectors placed once locally already: Ray goes first in each turn
        for engine in engines[::-1]:
            if engine == "local" and turn == 0:
                continue
            start = time.perf_counter()
            coords = cmap.place(vectors[rest], engine=engine, workers=2, chunk_size=5_000, progress=False)
            seconds[engine] = min(seconds[engine], time.perf_counter() - start)
            assert np.array_equal(coords, cmap.coords[rest]), f"{engine} placed points elsewhere"
    for engine in engines:
        print(
            f"placing {len(rest):,} points, {engine}{' (2 workers)' if engine == 'ray' else ''}: "
            f"{seconds[engine]:.1f} s ({len(rest) / seconds[engine]:.0f} points/s), best of {args.repeats}"
        )
    if "ray" in engines:
        print(f"Ray placing vs local: {seconds['local'] / seconds['ray']:.2f}x; coordinates identical on both")
    if args.full:
        atlas = StyleAtlas(None, seed=0)
        atlas.add_vectors(vectors)
        start = time.perf_counter()
        full = atlas.fit()
        wall = time.perf_counter() - start
        print(f"full fit of all {args.points:,}: {wall:.1f} s; trustworthiness {trust(full):.4f}")
    else:
        print("full fit: not run (--full to attempt it)")
    print(load())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 images, 20,000 vectors with a 2,000 sample")
    parser.add_argument("--images", type=int, help="image files (default 2,000; --quick 200)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--points", type=int, help="vectors to map (default 200,000; --quick 20,000)")
    parser.add_argument("--sample", type=int, help="points the map is fitted on (default 20,000; --quick 2,000)")
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--full", action="store_true", help="also fit UMAP on every vector")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each configuration, in turns (best of)")
    parser.add_argument("--skip-embed", action="store_true")
    parser.add_argument("--skip-map", action="store_true")
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray runs")
    args = parser.parse_args()
    args.images = args.images or (200 if args.quick else 2_000)
    args.points = args.points or (20_000 if args.quick else 200_000)
    args.sample = args.sample or (2_000 if args.quick else 20_000)
    warnings.filterwarnings("ignore")  # umap's notes on n_jobs with a seed; Ray's deprecation notes

    import torch

    print(f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads; {load()}")
    ray = None
    if not args.no_ray:
        import ray

        start = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        print(f"Ray start-up (ray.init, local, {os.cpu_count()} CPUs): {time.perf_counter() - start:.1f} s")
    with tempfile.TemporaryDirectory(prefix="kit-bench-collection-") as folder:
        if not args.skip_embed:
            if ray is None:
                raise SystemExit(
                    "the embedding part compares Ray with the local engine: drop --no-ray or add --skip-embed"
                )
            embed_part(args, Path(folder), ray)
        if not args.skip_map:
            map_part(args, lambda: ray is not None)
    if ray is not None:
        ray.shutdown()


if __name__ == "__main__":
    main()
