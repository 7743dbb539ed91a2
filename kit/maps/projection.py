"""The one placer of new points on a fitted map (StyleAtlas.place and CollectionMap.place).

A new point goes where its nearest fitted neighbours are: the k nearest fitted rows by
exact cosine distance in the fitted space, averaged with inverse-square-distance weights
(Shepard's interpolation). What that promises, for every version of umap and numpy:

- deterministic: the same rows give the same coordinates, in any process, on any engine;
- a copy of a fitted point lands on that point (its weight dominates as the distance -> 0);
- a new point lands inside the convex hull of its k nearest neighbours' map positions;
- the fitted map never moves, and nothing shared is changed (safe from several threads).

umap's own `transform` would run a second, randomised optimisation whose result depends on
umap's and numba's versions and on thread timing; the fitted map is what a reader sees, so
new points are placed relative to it.
"""

from __future__ import annotations

import numpy as np

from ..errors import KitError

# distances below this count as "the same point": a float32 copy's cosine distance is ~1e-7
_SAME = 1e-6
_BLOCK_BYTES = 80_000_000  # distances computed per block: bounded memory for any number of points


def unit_rows(rows) -> np.ndarray:
    """Rows scaled to unit length, float32 (all-zero rows stay zero). Lengths are taken in float64:
    in float32 the squared length of a row of 3e38s overflows, and the row would scale to zero."""
    rows = np.asarray(rows, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.maximum(norms, 1e-12)).astype(np.float32)


def directions(vectors, what: str) -> np.ndarray:
    """The one check of vectors given to a map: unit float32 rows of a 2D array of numbers, or a
    KitError naming the first row that has no direction (NaN, infinite or all zeros)."""
    try:
        rows = np.asarray(vectors, dtype=np.float64)
    except (TypeError, ValueError):
        raise KitError(f"{what} must be an array of numbers") from None
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    if rows.ndim != 2 or rows.shape[1] == 0:
        raise KitError(f"{what} must be a 2D array (rows, dim), got shape {rows.shape}")
    bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
    if len(bad):
        raise KitError(f"{what} row {bad[0]} holds NaN or infinite values ({len(bad)} such rows)")
    zero = np.flatnonzero(~rows.any(axis=1))
    if len(zero):
        raise KitError(f"{what} row {zero[0]} is all-zero, which has no direction to compare ({len(zero)} such rows)")
    return unit_rows(rows)


class Placer:
    """A fitted map reduced to what placing new vectors needs (small enough for Ray's object store).

    fitted_rows: the unit rows the map was fitted on (after the PCA, when there is one);
    coords: their (n, dim) map positions; k: neighbours per new point; pca: the fitted PCA or None.
    """

    def __init__(self, fitted_rows: np.ndarray, coords: np.ndarray, k: int = 15, pca=None):
        fitted_rows = unit_rows(fitted_rows)
        coords = np.asarray(coords, dtype=np.float64)
        if len(fitted_rows) != len(coords) or len(coords) == 0:
            raise KitError(
                f"a placer needs one map position per fitted row, got {len(fitted_rows)} rows "
                f"and {len(coords)} positions"
            )
        self.fitted_rows, self.coords, self.pca = fitted_rows, coords, pca
        self.k = max(1, min(int(k), len(coords)))

    @property
    def dim(self) -> int:
        return self.coords.shape[1]

    def prepare(self, vectors) -> np.ndarray:
        """Vectors as the fitted space holds them: unit rows, reduced by the PCA when there is one."""
        data = directions(vectors, "vectors")
        return data if self.pca is None else unit_rows(self.pca.transform(data))

    def transform(self, data: np.ndarray) -> np.ndarray:
        """Map positions of prepared rows, (n, dim) float32."""
        data = unit_rows(data)
        step = max(1, _BLOCK_BYTES // (4 * len(self.fitted_rows)))
        out = [self._place_block(data[start : start + step]) for start in range(0, len(data), step)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)

    def _place_block(self, block: np.ndarray) -> np.ndarray:
        distance = np.clip(1.0 - block @ self.fitted_rows.T, 0.0, 2.0).astype(np.float64)
        k = self.k
        near = (
            np.argpartition(distance, k - 1, axis=1)[:, :k]
            if k < distance.shape[1]
            else np.broadcast_to(np.arange(distance.shape[1]), distance.shape)
        )
        d = np.take_along_axis(distance, near, axis=1)
        weights = 1.0 / np.maximum(d, _SAME) ** 2
        weights /= weights.sum(axis=1, keepdims=True)
        return np.einsum("nk,nkd->nd", weights, self.coords[near]).astype(np.float32)

    def place(self, vectors) -> np.ndarray:
        """prepare + transform: map positions of raw embedding vectors."""
        return self.transform(self.prepare(vectors))
