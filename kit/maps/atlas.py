"""StyleAtlas: a UMAP map of style space and new images placed on it (its plotly figure: kit.maps.atlas_figure).

    atlas = StyleAtlas(Embedder())
    atlas.add_styles()                     # every style of the catalogue, as text
    atlas.add_images("my_portraits/", label="class of 2025")
    atlas.fit()                            # 2D (or fit(dim=3))
    atlas.place(["new_portrait.png"])      # onto the fitted map, without refitting
    atlas.neighbours("ukiyo-e")            # nearest points by cosine similarity
    atlas.figure(color_by="region")        # a plotly Figure, one legend entry per region

Every point lives in one table (`atlas.points`, a list of dicts) with its metadata, its
unit-length embedding (``vector``) and, once mapped, its coordinates (``xy``).

How `fit` is made fast, and when it is deterministic: kit.maps.atlas_umap, the recipe it follows.

Only numpy and the standard library are imported here; umap, sklearn, plotly and PIL are
imported where they are used. How the map groups styles into a legend (era bins, medium
families) is data: kit/data/classification.json, read by `kit.data_tables.classification()`.
"""

from __future__ import annotations

import base64
import io
import os
import warnings
from pathlib import Path

import numpy as np

from .. import checks
from .. import styles as kit_styles
from ..data_tables import classification
from ..errors import KitError
from . import atlas_figure, atlas_umap
from .atlas_figure import KINDS
from .projection import Placer, directions

__all__ = [
    "StyleAtlas",
    "KINDS",
    "COLOR_BY",
    "ERA_BINS",
    "MEDIUM_FAMILIES",
    "style_texts",
    "era_bin",
    "medium_family",
    "thumbnail_uri",
]

COLOR_BY = ("region", "continent", "era", "medium", "kind")
MIN_POINTS = 4  # UMAP needs a neighbourhood of at least 3 other points
THUMBNAIL_SIZE = 64  # pixels, longest side
PCA_DIMS = 50

# How the map groups the catalogue's free text (era bins, medium families): data in
# kit/data/classification.json, read and checked by kit.data_tables.classification().
ERA_BINS = classification().era_bins
MEDIUM_FAMILIES = classification().medium_families


# ------------------------------------------------------------------ small pure helpers


def style_texts(style, subject: str = "a portrait") -> list[str]:
    """The phrasings whose embeddings are averaged to place a style on the atlas.

    The composed prompt is what the generator sees, so generated images of the style
    should land near it; "name: description" anchors it in what the tradition is.
    Averaging two phrasings (CLIP's own zero-shot recipe averages many) makes the
    position depend less on the wording of one sentence. CLIP reads 77 tokens, so a
    long description is cut, keeping its start.
    """
    return [style.compose(subject), f"{style.name}: {style.description}"]


def era_bin(year) -> str:
    """The era bin of a start year (negative = BCE); UNLABELLED for None."""
    return classification().era_bin(year)


def medium_family(medium) -> str:
    """The family of a free-text medium ("oil on canvas" -> "painting & drawing")."""
    return classification().medium_family(medium)


def thumbnail_uri(item, size: int = THUMBNAIL_SIZE) -> str | None:
    """A small PNG of an image (PIL image or file path) as a ``data:`` URI; None if unreadable.

    Read by `kit.files.read_image`, like the pixels that are embedded: upright, transparency
    on white, files capped in size (JPEGs decoded at a reduced scale, much faster).
    """
    from ..files import read_image

    try:
        image = read_image(item, field="thumbnail", draft=(size, size))
    except KitError:
        return None  # a thumbnail is a nicety; the point stays on the map without one
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ------------------------------------------------------------------ the atlas


class StyleAtlas:
    """Styles, images and generated images as points of one embedding space, and their UMAP map.

    embedder: a `kit.Embedder` (anything with ``texts(list) -> (N, dim)`` and
    ``embed_images(items) -> .vectors/.items/.errors``); only used when points are added
    from texts or images. seed: makes `fit` reproducible (single-threaded); None lets umap
    use every core (no faster on two) and gives a slightly different map each run.
    """

    def __init__(self, embedder=None, *, seed: int | None = 42):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise KitError(f"seed must be a whole number or None, got {seed!r}")
        self.embedder = embedder
        self.seed = None if seed is None else int(seed)
        self.points: list[dict] = []  # the table: one dict per point, in the order added
        self.skipped: list = []  # (item, reason) for images that could not be read
        self.model = None  # the fitted umap.UMAP (None also when too few distinct points for one)
        self.pca = None  # the fitted sklearn PCA, or None when not used
        self.dim = None  # 2 or 3 once fitted
        self._index: dict[str, int] = {}
        self._matrix_cache = None
        self.placer = None  # kit.projection.Placer for the fitted map

    def __len__(self) -> int:
        return len(self.points)

    def __repr__(self) -> str:
        counts = ", ".join(f"{sum(p['kind'] == kind for p in self.points)} {kind}" for kind in KINDS)
        state = f"fitted {self.dim}D" if self.placer is not None else "not fitted"
        return f"StyleAtlas({len(self)} points: {counts}; {state})"

    @property
    def ids(self) -> list[str]:
        return [p["id"] for p in self.points]

    def point(self, point_id: str) -> dict:
        """The table row of a point id."""
        if point_id not in self._index:
            raise KitError(f"no point with id {point_id!r} on the atlas ({len(self)} points; see atlas.ids)")
        return self.points[self._index[point_id]]

    # -- adding points

    def add_styles(self, styles=None, subject: str = "a portrait") -> list[str]:
        """Add catalogue styles (default: all) as points; returns their ids.

        styles: Style objects or style ids. Each style is placed at the normalised mean
        of the embeddings of `style_texts(style, subject)`.
        """
        chosen = kit_styles.catalogue() if styles is None else [kit_styles.get(s) for s in styles]
        if not chosen:
            raise KitError("add_styles got no styles; leave styles=None for the whole catalogue")
        for style in chosen:
            if style.id in self._index:
                raise KitError(f"style {style.id!r} is already on the atlas")
        texts = [style_texts(style, subject) for style in chosen]
        flat = [text for phrasings in texts for text in phrasings]
        vectors = np.asarray(self._need_embedder().texts(flat), dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(flat):
            raise KitError(f"embedder.texts returned shape {vectors.shape} for {len(flat)} texts")
        start, means = 0, []
        for phrasings in texts:
            means.append(vectors[start : start + len(phrasings)].mean(axis=0))
            start += len(phrasings)
        meta = [
            {
                "kind": "style",
                "id": s.id,
                "name": s.name,
                "region": s.region,
                "continent": s.continent,
                "place": s.place,
                "era_start": s.era_start,
                "era_end": s.era_end,
                "era": s.era,
                "medium": s.medium,
                "description": s.description,
                "sensitive": s.sensitive,
                "note": s.note,
            }
            for s in chosen
        ]
        return self._add(np.stack(means), meta)

    def add_images(self, items, label: str | None = None, region: str | None = None, kind: str = "image") -> list[str]:
        """Embed images (PIL images, files, folders) and add them; returns the new ids.

        Unreadable items are skipped and listed in `atlas.skipped` as (item, reason).
        label: a caption shown for every image of this call; region: their region, if known.
        """
        vectors, meta = self._embed_images(items, label, region, kind)
        return self._add(vectors, meta)

    def add_vectors(self, vectors, meta=None) -> list[str]:
        """Add precomputed embeddings (one per row); returns their ids.

        meta: None, one dict for every row, or a list of dicts (one per row) with any of
        the table's fields: id, kind, name, label, region, continent, era_start, medium,
        description, sensitive, note, path. Rows are L2-normalised.
        """
        vectors = _as_matrix(vectors, "vectors")
        return self._add(vectors, _meta_rows(meta, len(vectors)))

    # -- the map

    def fit(self, dim: int = 2, *, pca: int | None = PCA_DIMS, **umap_kwargs) -> np.ndarray:
        """Fit the UMAP map of every point; returns the (n, dim) coordinates in table order.

        pca: reduce to this many dimensions first (None or 0: don't); umap_kwargs override
        the defaults (metric "cosine", n_neighbors min(15, n-1), epochs ~1e6/n in 100..500,
        spectral init). Points added after a fit appear on the map after the next fit;
        `place` puts points on the current map instead.
        """
        if dim not in (2, 3):
            raise KitError(f"dim must be 2 or 3, got {dim!r}")
        n = len(self.points)
        if n < MIN_POINTS:
            raise KitError(
                f"fit needs at least {MIN_POINTS} points and the atlas has {n}: "
                "add_styles(), add_images() or add_vectors() first"
            )
        if pca is not None and (not isinstance(pca, int) or pca < 0):
            raise KitError(f"pca must be a whole number of dimensions >= 0 or None, got {pca!r}")
        umap = atlas_umap.import_umap()
        data, same = atlas_umap.distinct_rows(self._matrix())
        if len(data) < MIN_POINTS:  # too few distinct points for a neighbourhood: a fixed layout, no UMAP
            coords = atlas_umap.few_points(len(data), dim)[same]
            self.model, self.pca, self.dim = None, None, dim
            self.placer = Placer(data, coords[np.unique(same, return_index=True)[1]], k=1)
            for row, point in zip(coords, self.points):
                point["xy"] = row
            return coords
        n = len(data)
        reducer = None
        if pca and n > pca and data.shape[1] > pca:
            from sklearn.decomposition import PCA

            reducer = PCA(n_components=pca, random_state=0 if self.seed is None else self.seed)
            data = reducer.fit_transform(data).astype(np.float32)
        params = {
            "n_components": dim,
            "metric": "cosine",
            "n_neighbors": min(15, n - 1),
            "n_epochs": atlas_umap.epochs(n),
            "init": "spectral" if n >= 10 else "pca",
            "low_memory": True,
        }
        if self.seed is None:
            params["n_jobs"] = -1
        else:
            params.update(random_state=self.seed, transform_seed=self.seed, n_jobs=1)
        params.update(atlas_umap.check_umap_options(umap_kwargs, n))
        try:
            model = umap.UMAP(**params)
        except TypeError as err:
            raise KitError(f"unknown UMAP option in fit(): {err}") from None
        with warnings.catch_warnings():
            # Separate clusters (regions, say) make a disconnected graph; umap lays the pieces out itself.
            warnings.filterwarnings("ignore", message="Graph is not fully connected")
            try:
                coords = np.asarray(model.fit_transform(data), dtype=np.float32)
            except (ValueError, RuntimeError) as err:  # an option umap refuses only once it runs
                raise KitError(f"UMAP could not fit with the options {umap_kwargs!r}: {err}") from None
        if not np.isfinite(coords).all():
            raise KitError("UMAP gave coordinates that are not finite numbers: the points are too alike to map")
        self.model, self.pca, self.dim = model, reducer, dim
        self.placer = Placer(data, coords, k=model.n_neighbors, pca=reducer)
        coords = coords[same]  # repeated points share the place of their first copy
        for row, point in zip(coords, self.points):
            point["xy"] = row
        return coords

    @property
    def layout(self) -> np.ndarray:
        """Coordinates of every mapped point, (m, dim), in table order."""
        self._need_fit("layout")
        rows = [p["xy"] for p in self.points if p.get("xy") is not None]
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def place(
        self, items, *, kind: str = "generated", label: str | None = None, region: str | None = None, meta=None
    ) -> np.ndarray:
        """Put new images (or vectors) on the fitted map without refitting; returns their coordinates.

        items: images as `add_images` takes them, or an array of embeddings (then `meta`
        as in `add_vectors`). The new points join the table as `kind` ("generated" by
        default) with `label` and `region`; existing coordinates do not move.
        """
        self._need_fit("place()")
        if _is_vector(items) or (isinstance(items, (list, tuple)) and items and all(_is_vector(i) for i in items)):
            vectors = _as_matrix(items, "items")
            rows = _meta_rows(meta, len(vectors))
            for row in rows:
                row.setdefault("kind", kind)
                row.setdefault("label", label)
                row.setdefault("region", region)
        else:
            vectors, rows = self._embed_images(items, label, region, kind)
        if len(vectors) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._check_dim(vectors)
        coords = self.placer.place(_unit_rows(vectors, "items"))
        ids = self._add(vectors, rows)
        for point_id, row in zip(ids, coords):
            self.points[self._index[point_id]]["xy"] = row
        return coords

    def neighbours(self, point, k: int = 5) -> list[tuple[str, str, float]]:
        """The k points nearest to `point` by cosine similarity in the embedding space.

        point: a point id, a vector, a text (embedded), a PIL image or an image path
        (a pathlib.Path, or a string naming an existing file). Returns (id, name, similarity)
        pairs, most similar first; a point id is not its own neighbour.
        """
        k = checks.whole(k, "k", 1)
        if not self.points:
            raise KitError("the atlas has no points yet: add_styles(), add_images() or add_vectors() first")
        exclude = None
        if isinstance(point, str) and point in self._index:
            exclude = self._index[point]
            query = self.points[exclude]["vector"]
        elif _is_vector(point):
            query = _as_matrix(point, "point")
            if len(query) != 1:
                raise KitError(f"point must be one vector, got {len(query)} rows")
            query = query[0]
        elif isinstance(point, str) and not os.path.isfile(point):
            if not point.strip():
                raise KitError("point is an empty text: give a point id, a text, a vector or an image")
            query = np.asarray(self._need_embedder().texts([point]), dtype=np.float32)[0]
        else:
            result = self._need_embedder().embed_images([point])
            if len(result.items) == 0:
                reason = result.errors[0][1] if result.errors else "not readable"
                raise KitError(f"cannot read the image {point!r}: {reason}")
            query = np.asarray(result.vectors, dtype=np.float32)[0]
        self._check_dim(query.reshape(1, -1))
        similarity = np.clip(self._matrix() @ _unit_rows(query.reshape(1, -1), "point")[0], -1.0, 1.0)
        if exclude is not None:
            similarity[exclude] = -np.inf
        order = np.argsort(-similarity, kind="stable")[: min(k, len(self.points) - (exclude is not None))]
        return [(self.points[i]["id"], self.points[i]["name"], float(similarity[i])) for i in order]

    # -- showing and exporting

    def figure(self, color_by: str = "region", dim: int | None = None):
        """A plotly Figure of the map: one trace per colour group, so the legend toggles groups.

        color_by: "region", "continent", "era" (bins of the start year), "medium" (families)
        or "kind". Styles are circles, images squares, generated images stars (diamonds in 3D).
        Each marker's customdata is its point id. Hover text shows name, region, era, medium
        and description, all HTML-escaped. Image thumbnails are in ``atlas.point(id)["thumbnail"]``:
        plotly hover labels are SVG text and cannot show images, so a widget shows them.
        """
        if color_by not in COLOR_BY:
            raise KitError(f"color_by must be one of {', '.join(COLOR_BY)}; got {color_by!r}")
        self._need_fit("figure()")
        if dim is not None and dim != self.dim:
            raise KitError(f"the atlas is fitted in {self.dim}D; call atlas.fit(dim={dim}) first for a {dim}D figure")
        return atlas_figure.figure(self.points, self.dim, color_by, self._model_name())

    def coordinates(self) -> list[dict]:
        """One record per mapped point: its metadata (no vector) and x, y (and z)."""
        self._need_fit("coordinates()")
        axes = ("x", "y", "z")[: self.dim]
        records = []
        for p in self.points:
            if p.get("xy") is None:
                continue
            record = {key: value for key, value in p.items() if key not in ("vector", "xy")}
            record.update({axis: float(value) for axis, value in zip(axes, p["xy"])})
            records.append(record)
        return records

    def to_frame(self):
        """`coordinates()` as a pandas DataFrame, or the list of records when pandas is missing."""
        records = self.coordinates()
        try:
            import pandas as pd
        except ImportError:
            return records
        return pd.DataFrame.from_records(records)

    # -- internals

    def _need_embedder(self):
        if self.embedder is None:
            raise KitError(
                "this atlas has no embedder: StyleAtlas(kit.Embedder()) embeds texts and images; "
                "add_vectors() works without one"
            )
        return self.embedder

    def _need_fit(self, what: str) -> None:
        if self.placer is None:
            raise KitError(f"{what} needs a fitted map: call atlas.fit() first")

    def _model_name(self) -> str:
        return str(getattr(self.embedder, "model_id", None) or "the embeddings")

    def _check_dim(self, vectors: np.ndarray) -> None:
        if self.points and vectors.shape[1] != len(self.points[0]["vector"]):
            raise KitError(
                f"vectors have {vectors.shape[1]} dimensions but the atlas holds "
                f"{len(self.points[0]['vector'])}-dimensional embeddings (one embedder per atlas)"
            )

    def _matrix(self) -> np.ndarray:
        if self._matrix_cache is None or len(self._matrix_cache) != len(self.points):
            self._matrix_cache = np.stack([p["vector"] for p in self.points]).astype(np.float32)
        return self._matrix_cache

    def _embed_images(self, items, label, region, kind):
        """(vectors, metadata rows) of the readable images among `items`; the rest go to `skipped`."""
        embedder = self._need_embedder()
        single = isinstance(items, (str, os.PathLike)) or hasattr(items, "getpixel")  # a path or a PIL image
        result = embedder.embed_images([items] if single else list(items))
        self.skipped.extend(result.errors)
        meta = []
        for number, item in enumerate(result.items):
            is_file = isinstance(item, (str, os.PathLike))
            meta.append(
                {
                    "kind": kind,
                    "id": Path(item).stem if is_file else f"{kind}-{len(self) + number + 1}",
                    "name": Path(item).name if is_file else (label or kind),
                    "label": label,
                    "region": region,
                    "continent": kit_styles.REGIONS.get(region),
                    "path": str(item) if is_file else None,
                    "thumbnail": thumbnail_uri(item),
                }
            )
        vectors = np.asarray(result.vectors, dtype=np.float32).reshape(len(meta), -1)
        return vectors, meta

    def _add(self, vectors: np.ndarray, meta: list[dict]) -> list[str]:
        """Validate and append rows; ids are made unique by a numeric suffix. Returns the ids."""
        if len(vectors) != len(meta):
            raise KitError(f"{len(vectors)} vectors but {len(meta)} metadata rows")
        if len(vectors) == 0:
            return []
        self._check_dim(vectors)
        unit = _unit_rows(vectors, "vectors")
        ids = []
        for number, (vector, row) in enumerate(zip(unit, meta)):
            kind = row.get("kind") or "image"
            if kind not in KINDS:
                raise KitError(f"meta[{number}]['kind'] must be one of {', '.join(KINDS)}, got {kind!r}")
            base = str(row.get("id") or f"{kind}-{len(self) + 1}")
            point_id, suffix = base, 1
            while point_id in self._index:
                suffix += 1
                point_id = f"{base}-{suffix}"
            point = {
                "kind": kind,
                "id": point_id,
                "name": str(row.get("name") or base),
                "label": None,
                "region": None,
                "continent": None,
                "place": None,
                "era_start": None,
                "era_end": None,
                "era": None,
                "medium": None,
                "description": None,
                "sensitive": False,
                "note": None,
                "path": None,
                "thumbnail": None,
            }
            point.update({key: value for key, value in row.items() if key not in ("kind", "id", "name")})
            if point["continent"] is None and point["region"] in kit_styles.REGIONS:
                point["continent"] = kit_styles.REGIONS[point["region"]]
            point.update(vector=vector, xy=None)
            self._index[point_id] = len(self.points)
            self.points.append(point)
            ids.append(point_id)
        return ids


# ------------------------------------------------------------------ table helpers


def _is_vector(value) -> bool:
    """True for a numeric array, or a list or tuple of plain numbers (one embedding)."""
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "fiu"
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in value)
    )


def _as_matrix(vectors, what: str) -> np.ndarray:
    """A finite 2D float32 array (a single vector becomes one row)."""
    try:
        array = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError):
        raise KitError(f"{what} must be an array of numbers") from None
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] == 0:
        raise KitError(f"{what} must be a 2D array (rows, dim), got shape {array.shape}")
    directions(array, what)  # names the first row with NaN, infinite values or no length
    return array


def _unit_rows(vectors: np.ndarray, what: str) -> np.ndarray:
    return directions(vectors, what)  # the maps' one check: a huge row is a direction, a zero one is refused


def _meta_rows(meta, n: int) -> list[dict]:
    if meta is None:
        return [{} for _ in range(n)]
    if isinstance(meta, dict):
        return [dict(meta) for _ in range(n)]
    meta = list(meta)
    if len(meta) != n or not all(isinstance(row, dict) for row in meta):
        raise KitError(f"meta must be None, a dict, or a list of {n} dicts (one per vector)")
    return [dict(row) for row in meta]
