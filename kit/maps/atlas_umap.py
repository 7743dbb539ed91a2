"""The UMAP recipe of `StyleAtlas.fit`: its defaults, the options a caller may change, and umap imported fast.

The atlas (kit.atlas) keeps the table of points; this module holds what turns its matrix of
unit vectors into a map and is independent of the table: how many epochs, which options are
allowed and checked, the distinct rows UMAP is fitted on, a fixed layout for fewer than four
distinct points, and umap imported with numba's on-disk cache on.

How `fit` is made fast (measured on 10,000 x 512 clustered vectors, 2 CPU cores; see
bench/bench_umap.py): about 0.3 of the time of ``umap.UMAP()`` with its defaults, with the
same trustworthiness (k=10) within 0.001.

- PCA to 50 dimensions first (0.4 s). The nearest-neighbour search then works on 10x
  shorter vectors, and trustworthiness is unchanged or slightly better (PCA drops noise).
- Fewer optimisation epochs for large maps: about 1,000,000 / n, between 100 and 500, so
  the optimisation costs about the same (~2.5 s of CPU here) for any map above 2,000 points.
  UMAP itself runs 500 epochs up to 10,000 points; 100 gave the same trustworthiness.
- Spectral initialisation is kept (0.2-0.5 s at 10,000 points; PCA init would save about
  0.2 s): it gives the map its global arrangement. Maps under 10 points use PCA init: a
  spectrum of a handful of points is not worth having and fails for 4 points in 3D.
- numba's on-disk cache is switched on for umap and pynndescent, which otherwise compile
  their code again in every new Python process: 15-30 s of CPU before the first small fit,
  about a minute more for the large-map path, a fraction of a second once cached.
- `place` puts new points where their nearest fitted neighbours are (`kit.projection.Placer`):
  deterministic, exact cosine distances, no second optimisation, the fitted map never moves.

Determinism: with a seed (default 42) umap optimises on one thread and the same points give
the same map every time. ``seed=None`` lets umap use every core, and the map then differs a
little from run to run; on two cores it measured no faster (umap's parallel optimisation
spent twice the CPU of the single-threaded one), so the seed costs nothing there.

Only numpy and the standard library are imported here; umap and numba where they are used.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from .. import checks
from ..errors import KitError


def epochs(n: int) -> int:
    """Optimisation epochs for a map of n points: ~1,000,000 / n, between 100 and 500."""
    return int(np.clip(1_000_000 // n, 100, 500))


_CACHING_ON = False


def import_umap():
    """Import umap with numba's on-disk cache switched on for its compiled functions.

    umap and pynndescent mark few of their numba functions ``cache=True``, so each new
    Python process compiles them again: 15-30 s of CPU before its first small fit here,
    about a minute more before its first fit of over 4,096 points (NN-descent).
    With the cache on, later processes load the compiled code from ``__pycache__``
    (or numba's per-user cache folder when that is read-only). Set KIT_NUMBA_CACHE=0
    to leave umap as it is.

    numba names a cache entry after the Python function and its argument types, not its
    compile options, so two compilations of one function (umap's serial and parallel
    optimisation epoch) would share, and swap, their entries. Only one of them, the serial
    one a seeded fit uses, gets the cache; the others compile in each process as before.
    """
    global _CACHING_ON
    import umap

    if not _CACHING_ON and os.environ.get("KIT_NUMBA_CACHE", "1") != "0":
        from numba.core.dispatcher import Dispatcher

        by_function: dict[int, dict[int, Dispatcher]] = {}
        for name, module in list(sys.modules.items()):
            if module is None or not name.startswith(("umap", "pynndescent")):
                continue
            for value in list(vars(module).values()):
                if isinstance(value, Dispatcher):
                    by_function.setdefault(id(value.py_func), {})[id(value)] = value
        for dispatchers in by_function.values():
            serial = [d for d in dispatchers.values() if not d.targetoptions.get("parallel")]
            for dispatcher in list(dispatchers.values()) if len(dispatchers) == 1 else serial[:1]:
                try:
                    dispatcher.enable_caching()
                except Exception:  # no writable cache folder: the function compiles as before
                    pass
        _CACHING_ON = True
    return umap


# UMAP options a map may change, and their checks; the rest are the kit's recipe (see the module notes)
UMAP_METRICS = ("cosine", "euclidean", "manhattan", "correlation", "chebyshev", "minkowski", "hellinger")


def check_umap_options(options: dict, n: int) -> dict:
    """The UMAP options of fit(), checked with the kit's errors (umap's own are raised deep in its code)."""
    options = dict(options)
    if "n_neighbors" in options:
        options["n_neighbors"] = checks.whole(options["n_neighbors"], "n_neighbors", 2, max(2, n - 1))
    if "spread" in options:
        options["spread"] = checks.number(options["spread"], "spread", 0, 100, low_open=True)
    if "min_dist" in options:
        options["min_dist"] = checks.number(options["min_dist"], "min_dist", 0, options.get("spread", 1.0))
    if "n_epochs" in options:
        options["n_epochs"] = checks.whole(options["n_epochs"], "n_epochs", 1, 10_000)
    if "metric" in options and options["metric"] not in UMAP_METRICS:
        raise KitError(f"metric must be one of {', '.join(UMAP_METRICS)}, got {options['metric']!r}")
    return options


def distinct_rows(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct rows in table order, the index of each row among them). UMAP is fitted on distinct
    rows only: copies at distance zero break its neighbour graph (four identical points gave NaN)."""
    _, first, inverse = np.unique(data, axis=0, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return data[np.sort(first)], rank[inverse.reshape(-1)]


def few_points(count: int, dim: int) -> np.ndarray:
    """A fixed layout of 1 to 3 distinct points: the origin, or the corners of a regular polygon."""
    angles = 2 * np.pi * np.arange(count) / count
    coords = np.zeros((count, dim), dtype=np.float32)
    if count > 1:
        coords[:, 0], coords[:, 1] = np.cos(angles), np.sin(angles)
    return coords
