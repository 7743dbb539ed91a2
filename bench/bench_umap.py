"""Benchmark StyleAtlas.fit against plain umap.UMAP() on clustered embedding-like vectors.

    python bench/bench_umap.py                  # 10,000 x 512, 3 interleaved repeats
    python bench/bench_umap.py --n 3000 --repeats 1

Data: `--clusters` Gaussian clusters around random directions of the unit sphere, every
vector L2-normalised (the shape of CLIP embeddings of a few dozen styles). Both methods run
in this process on the same data, interleaved, after a warm-up on a 5,000-point subset that
compiles umap's numba code for both (the warm-up time is printed: it is what a first fit in
a fresh process pays without numba's on-disk cache). Wall time is noisy on a shared machine,
so CPU time is printed as well; the ratio uses median wall times.

Quality: trustworthiness (k=10, cosine, sklearn.manifold.trustworthiness) of both layouts,
computed on a random subset of `--tw-sample` points (3,000 by default: the full 10,000
would need a 10,000 x 10,000 distance matrix argsorted per row; --tw-sample 0 does it anyway).
Then `place()` latency for 10 new points from the same clusters, median over repeats.

Target: StyleAtlas.fit in at most half the time of umap.UMAP() with trustworthiness at
most 0.01 below it.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings

import numpy as np


def clustered(n: int, dim: int, clusters: int, spread: float, seed: int):
    """(vectors, labels): unit vectors scattered around `clusters` random unit directions."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, clusters, n)
    vectors = centres[labels] + spread * rng.standard_normal((n, dim)) / np.sqrt(dim)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), labels


def timed(function):
    """(result, wall seconds, CPU seconds of this process, all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="points (default 10,000)")
    parser.add_argument("--dim", type=int, default=512, help="embedding dimensions (default 512)")
    parser.add_argument("--clusters", type=int, default=30)
    parser.add_argument(
        "--spread",
        type=float,
        default=1.0,
        help="noise norm relative to the unit centres (1.0: in-cluster cosine ~0.5)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing runs of each method")
    parser.add_argument("--tw-sample", type=int, default=3000, help="points for trustworthiness; 0 = all")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data")
    parser.add_argument("--no-unseeded", action="store_true", help="skip the StyleAtlas(seed=None) row")
    args = parser.parse_args()

    warnings.filterwarnings("ignore")  # umap's notes on disconnected graphs and n_jobs with a seed
    from kit.maps.atlas import StyleAtlas
    from kit.maps.atlas_umap import import_umap

    umap = import_umap()  # the atlas's import: numba's on-disk cache on for both methods
    from sklearn.manifold import trustworthiness

    vectors, labels = clustered(args.n, args.dim, args.clusters, args.spread, args.seed)
    new_points = clustered(10, args.dim, args.clusters, args.spread, args.seed + 1)[0]
    print(
        f"data: {args.n:,} x {args.dim} float32, {args.clusters} clusters, spread {args.spread}; "
        f"{platform.processor() or platform.machine()}, umap {umap.__version__}"
    )

    def atlas_fit(data, seed=42, **kwargs):
        atlas = StyleAtlas(None, seed=seed)
        atlas.add_vectors(data)
        atlas.fit(**kwargs)
        return atlas

    # warm-up: compile (or load from numba's cache) both code paths, NN-descent included (n >= 4096)
    warm_n = min(args.n, 5000)
    _, warm_default, _ = timed(lambda: umap.UMAP(n_epochs=10).fit_transform(vectors[:warm_n]))
    _, warm_atlas, _ = timed(lambda: atlas_fit(vectors[:warm_n], n_epochs=10).place(new_points))
    print(
        f"warm-up on {warm_n:,} points (numba compile or cache load): "
        f"umap.UMAP {warm_default:.1f} s, StyleAtlas fit+place {warm_atlas:.1f} s"
    )

    methods = {
        "umap.UMAP() defaults": lambda: umap.UMAP().fit_transform(vectors),
        "StyleAtlas.fit (seed=42)": lambda: atlas_fit(vectors),
    }
    if not args.no_unseeded:
        methods["StyleAtlas.fit (seed=None)"] = lambda: atlas_fit(vectors, seed=None)
    runs = {name: [] for name in methods}
    results = {}
    for repeat in range(args.repeats):
        for name, method in methods.items():
            results[name], wall, cpu = timed(method)
            runs[name].append((wall, cpu))
            print(f"  run {repeat + 1}: {name:28s} {wall:6.2f} s wall, {cpu:6.2f} s CPU", flush=True)

    if args.tw_sample and args.tw_sample < args.n:
        sample = np.random.default_rng(1).choice(args.n, args.tw_sample, replace=False)
        tw_note = f"on a random {args.tw_sample:,} of {args.n:,} points"
    else:
        sample = np.arange(args.n)
        tw_note = f"on all {args.n:,} points"

    def quality(result):
        coords = result.layout if isinstance(result, StyleAtlas) else result
        return trustworthiness(vectors[sample], coords[sample], n_neighbors=10, metric="cosine")

    baseline = statistics.median(wall for wall, _ in runs["umap.UMAP() defaults"])
    base_tw = quality(results["umap.UMAP() defaults"])
    print(f"\n{'method':28s} {'median wall':>12s} {'median CPU':>11s} {'ratio':>6s} {'trust. k=10':>12s}")
    rows = {}
    for name in methods:
        wall = statistics.median(w for w, _ in runs[name])
        cpu = statistics.median(c for _, c in runs[name])
        tw = base_tw if name.startswith("umap") else quality(results[name])
        rows[name] = (wall / baseline, tw)
        print(f"{name:28s} {wall:10.2f} s {cpu:9.2f} s {wall / baseline:6.2f} {tw:12.4f}")
    print(f"(trustworthiness {tw_note}; ratio = median wall time / umap.UMAP()'s)")

    atlas = results["StyleAtlas.fit (seed=42)"]
    _, first, _ = timed(lambda: atlas.place(new_points))
    times = [timed(lambda: atlas.place(new_points))[1] for _ in range(15)]
    print(
        f"\nplace() of 10 new points: first call {first * 1000:.0f} ms, "
        f"then median {statistics.median(times) * 1000:.0f} ms over {len(times)} calls"
    )

    ratio, tw = rows["StyleAtlas.fit (seed=42)"]
    ok = ratio <= 0.5 and tw >= base_tw - 0.01
    print(
        f"\ntarget (ratio <= 0.50, trustworthiness >= {base_tw - 0.01:.4f}): "
        f"{'met' if ok else 'NOT met'} (ratio {ratio:.2f}, trustworthiness {tw:.4f})"
    )


if __name__ == "__main__":
    main()
