"""Maps at scale: UMAP fitted on a sample of many vectors, the rest placed on it, thinned for display.

    cmap = map_vectors(vectors, rows, sample=20_000)        # or kit.collection.map_collection(dataset)
    cmap.export_coordinates("museum-map.parquet")            # id, x, y + metadata
    cmap.figure(color_by="folder", max_points=20_000)        # a stratified sample keeps every value

The fit is StyleAtlas.fit's recipe; the rest are placed in chunks by the atlas's placer
(`kit.projection.Placer`) on either engine (`kit.maps.collections.engines`), with the same result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ... import checks, plots
from ...errors import KitError
from ...files import write_atomic
from ..projection import directions
from .engines import check_engine, place_chunks
from .store import require_pyarrow

__all__ = ["map_vectors", "CollectionMap", "thin", "indices_of"]


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
        return f"CollectionMap({len(self):,} points in {self.coords.shape[1]}D, fitted on {int(self.fitted.sum()):,})"

    def select(self, column: str, value) -> np.ndarray:
        """Indices of every row whose `column` equals `value` (all rows, not a thinned subset)."""
        return indices_of(self._column(column), value)

    def thin(self, by: str | None = None, max_points: int = 20_000, seed: int = 0) -> np.ndarray:
        """Indices of at most `max_points` rows that keep every value of column `by` (or every map region)."""
        return thin(self.coords, None if by is None else self._column(by), max_points=max_points, seed=seed)

    def place(
        self,
        vectors,
        *,
        engine: str = "local",
        address: str | None = None,
        workers: int | None = None,
        chunk_size: int = 5_000,
        progress: bool = True,
    ) -> np.ndarray:
        """Coordinates of new vectors on this map (the map itself does not change).

        Chunks of `chunk_size` rows go through the atlas's placer (`kit.projection`), in this process
        (engine="local") or as Ray tasks sharing one copy of the model (engine="ray", at most
        `workers` at a time, default every CPU). Same chunks, same coordinates, either way.
        """
        check_engine(engine)
        chunk_size = checks.whole(chunk_size, "chunk_size", 1)
        vectors = np.asarray(vectors, dtype=np.float32)
        dim = len(self.atlas.points[0]["vector"])
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise KitError(f"vectors must be an (n, {dim}) array like the map's embeddings, got shape {vectors.shape}")
        placer = self.atlas.placer
        data = placer.prepare(vectors)
        chunks = [data[start : start + chunk_size] for start in range(0, len(data), chunk_size)]
        if not chunks:
            return np.zeros((0, self.coords.shape[1]), dtype=np.float32)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(data), desc="placing points", unit="pt")
        try:
            placed = place_chunks(placer, chunks, engine, address, workers, bar)
        finally:
            if bar is not None:
                bar.close()
        return np.concatenate(placed)

    def export_coordinates(self, path, *, exist: str = "error") -> Path:
        """Write id, x, y (and z), fitted, and the metadata columns to a Parquet file (atomically).

        The map's own columns always win: a metadata column named x, y, z or fitted is kept as
        ``source_x`` (``source_x_1`` ... when that name is taken too), so no coordinate is ever
        replaced by the source's values.
        exist: when the file is there: "error" (the default), "replace" it, or "number" (``name-1.parquet``).
        """
        pa = require_pyarrow()
        path = Path(path).expanduser()
        columns = {"id": pa.array(self.columns["id"], pa.string())}
        for axis, values in zip("xyz", self.coords.T):
            columns[axis] = pa.array(values, pa.float32())
        columns["fitted"] = pa.array(self.fitted)
        taken = set(columns) | set(self.columns) | set(OWN_COLUMNS)
        for name, values in self.columns.items():
            if name == "id":
                continue
            if name in OWN_COLUMNS:
                name = _free_name(f"source_{name}", taken)
                taken.add(name)
            columns[name] = pa.array(values)
        table = pa.table(columns)
        return write_atomic(path, lambda file: pa.parquet.write_table(table, file), exist=exist)

    def figure(self, color_by: str | None = None, max_points: int = 20_000, seed: int = 0):
        """A plotly scatter of at most `max_points` points, every value of `color_by` kept
        (a stratified sample); one legend entry per value. Each marker's customdata is its id."""
        import plotly.graph_objects as go

        keep = self.thin(color_by, max_points=max_points, seed=seed)
        labels = (
            np.full(len(self), "all", dtype=object)
            if color_by is None
            else np.array([_label(v) for v in self._column(color_by)], dtype=object)
        )
        paths = self.columns.get("path", self.columns["id"])
        fig = go.Figure()
        for value in sorted(set(labels[keep])):
            rows = keep[labels[keep] == value]
            points = {"x": self.coords[rows, 0], "y": self.coords[rows, 1]}
            common = {
                "name": plots.escape(value),
                "mode": "markers",
                "customdata": self.columns["id"][rows],
                "hovertext": [plots.escape(p) for p in paths[rows]],
                "hoverinfo": "text",
                "marker": {"size": 3},
            }
            if self.coords.shape[1] == 3:
                fig.add_trace(go.Scatter3d(**points, z=self.coords[rows, 2], **common))
            else:
                fig.add_trace(go.Scattergl(**points, **common))
        shown = f"{len(keep):,} of {len(self):,} points" if len(keep) < len(self) else f"{len(self):,} points"
        fig.update_layout(title=f"Collection map: {shown}", legend_title_text=plots.escape(color_by))
        return plots.theme(fig)

    def _column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise KitError(f"no column {name!r}; the map's columns are {', '.join(self.columns)}")
        return self.columns[name]


OWN_COLUMNS = ("x", "y", "z", "fitted")  # what export_coordinates writes itself, besides id


def _free_name(name: str, taken: set) -> str:
    """`name`, or name_1, name_2 ... : the first that no column has."""
    number, free = 0, name
    while free in taken:
        number += 1
        free = f"{name}_{number}"
    return free


def _label(value) -> str:
    return "unlabelled" if value is None or value == "" else str(value)


def map_vectors(
    vectors,
    columns: dict | None = None,
    *,
    sample: int = 20_000,
    dim: int = 2,
    engine: str = "local",
    seed: int | None = 0,
    address: str | None = None,
    workers: int | None = None,
    chunk_size: int = 5_000,
    progress: bool = True,
) -> CollectionMap:
    """Map many vectors: fit UMAP (StyleAtlas.fit's recipe) on a random sample, place the rest.

    The rest are placed in chunks of `chunk_size` with the fitted model's transform: in this
    process (engine="local") or as Ray tasks sharing one copy of the fitted model (engine="ray").
    Both cut the same chunks, so both give the same coordinates. seed: the sample and the map
    (None: every core, a slightly different map each run).
    """
    from ..atlas import MIN_POINTS, StyleAtlas

    check_engine(engine)
    if dim not in (2, 3):
        raise KitError(f"dim must be 2 or 3, got {dim!r}")
    sample = checks.whole(sample, "sample", 1)
    chunk_size = checks.whole(chunk_size, "chunk_size", 1)
    if sample < MIN_POINTS:
        raise KitError(f"sample must be at least {MIN_POINTS} points to fit a map, got {sample}")
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) < MIN_POINTS:
        raise KitError(f"vectors must be an (n, dim) array with n >= {MIN_POINTS}, got shape {vectors.shape}")
    directions(vectors, "vectors")  # every row, before the sample is drawn: an error names the caller's row
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
    atlas.add_vectors(
        vectors[fit_rows],
        [{"id": str(columns["id"][i]), "name": Path(str(paths[i])).name, "path": str(paths[i])} for i in fit_rows],
    )
    coords = np.zeros((n, dim), dtype=np.float32)
    coords[fit_rows] = atlas.fit(dim=dim)
    seconds = {"fit": time.perf_counter() - started}

    cmap = CollectionMap(coords, columns, fitted, atlas, seconds)
    started = time.perf_counter()
    rest = np.flatnonzero(~fitted)
    if len(rest):
        coords[rest] = cmap.place(
            vectors[rest], engine=engine, address=address, workers=workers, chunk_size=chunk_size, progress=progress
        )
    seconds["place"] = time.perf_counter() - started
    return cmap


# ---------------------------------------------------------------- thinning for display


def thin(
    coords, labels=None, max_points: int = 20_000, seed: int = 0, min_per_label: int = 20, grid: int = 32
) -> np.ndarray:
    """Sorted indices of at most `max_points` points, a stratified sample that keeps every label.

    Each label keeps all its points up to `min_per_label` (less when there are too many labels
    for that), and the rest of the budget is shared in proportion to the labels' sizes. With
    labels=None the strata are the cells of a `grid` x `grid` raster of the map, so sparse
    regions stay visible. Fewer points than `max_points`: all of them.
    """
    coords = np.asarray(coords)
    n = len(coords)
    max_points = checks.whole(max_points, "max_points", 1)
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
        raise KitError(
            f"{len(names)} labels cannot all be shown with max_points={max_points}: "
            "raise max_points or colour by a column with fewer values"
        )
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
    kept = [
        rng.choice(order[start : start + count], size=int(k), replace=False)
        for start, count, k in zip(starts, counts, quota)
    ]
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
