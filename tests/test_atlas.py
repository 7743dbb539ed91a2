"""StyleAtlas: the UMAP map of style space, placing new points, neighbours and the plotly figure.

A fake embedder keeps these tests fast and independent of open_clip: texts and images map to
deterministic vectors around one centre per cluster (region). The first UMAP fit in a fresh
process compiles umap's numba code (20-30 s on two cores); kit.atlas switches numba's on-disk
cache on, so later runs load it in well under a second.
"""

import hashlib
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import kit.styles
from kit.errors import KitError
from kit.maps.atlas import ERA_BINS, StyleAtlas, era_bin, medium_family, style_texts

DIM = 64  # above the atlas's 50 PCA dimensions, so fits with > 50 points go through PCA
SUBJECT = "a portrait"
STYLE_IDS = ["ukiyo-e", "gongbi", "shan-shui", "nianhua"]  # all Eastern Asia


def _rng(key: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def cluster_vector(cluster: str, key: str, noise: float = 0.35) -> np.ndarray:
    """A unit vector near the centre of `cluster`, its offset fixed by `key`."""
    centre = _unit(_rng("centre:" + cluster).standard_normal(DIM))
    return _unit(centre + noise * _unit(_rng("noise:" + key).standard_normal(DIM))).astype(np.float32)


class FakeEmbedder:
    """Deterministic stand-in for kit.Embedder: texts and images -> vectors clustered by a label.

    texts: `groups` maps a text to its cluster (other texts get their own direction).
    images: the cluster is the image's dominant colour channel ("red", "green", "blue");
    files that PIL cannot read are reported as errors, as the real embedder does.
    """

    model_id = "fake-clip"
    dim = DIM

    def __init__(self, groups=None):
        self.groups = dict(groups or {})
        self.calls = []

    def texts(self, texts):
        self.calls.append(list(texts))
        return np.stack([cluster_vector(self.groups.get(t, "text:" + t), t) for t in texts])

    def embed_images(self, items):
        vectors, kept, errors = [], [], []
        for item in items:
            try:
                image = item if isinstance(item, Image.Image) else Image.open(item)
                pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
            except OSError as err:
                errors.append((item, f"unreadable ({err})"))
                continue
            colour = ("red", "green", "blue")[int(pixels.mean(axis=(0, 1)).argmax())]
            vectors.append(cluster_vector(colour, hashlib.sha256(pixels.tobytes()).hexdigest()))
            kept.append(item)
        return SimpleNamespace(vectors=np.array(vectors, dtype=np.float32).reshape(-1, DIM), items=kept, errors=errors)


def clustered(regions, per_cluster, prefix="p"):
    """(vectors, meta): `per_cluster` points around each region's centre."""
    vectors, meta = [], []
    for region in regions:
        for i in range(per_cluster):
            vectors.append(cluster_vector(region, f"{prefix}-{region}-{i}"))
            meta.append(
                {
                    "id": f"{prefix}-{region}-{i}",
                    "name": f"{region} {i}",
                    "region": region,
                    "era_start": 1500 + 100 * i,
                    "medium": "oil on canvas",
                }
            )
    return np.stack(vectors), meta


REGIONS = ["Western Africa", "Polynesia", "Southern Europe", "Eastern Asia"]


def make_atlas(seed=42, per_cluster=12):
    """Synthetic clusters in four regions plus four real catalogue styles placed in Eastern Asia's."""
    styles = [kit.styles.get(i) for i in STYLE_IDS]
    groups = {text: s.region for s in styles for text in style_texts(s, SUBJECT)}
    atlas = StyleAtlas(FakeEmbedder(groups), seed=seed)
    vectors, meta = clustered(REGIONS, per_cluster)
    atlas.add_vectors(vectors, meta)
    atlas.add_styles(styles, subject=SUBJECT)
    return atlas


@pytest.fixture(scope="module")
def fitted():
    atlas = make_atlas()
    atlas.fit()
    return atlas


def nn_distance(coords, k=5):
    """Median distance from a point to its k-th nearest neighbour in a layout."""
    d = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    return float(np.median(np.sort(d, axis=1)[:, k]))


# ------------------------------------------------------------------ the table


def test_add_styles_averages_phrasings_and_keeps_catalogue_fields():
    style = kit.styles.get("ukiyo-e")
    embedder = FakeEmbedder()
    atlas = StyleAtlas(embedder)
    assert atlas.add_styles([style.id]) == ["ukiyo-e"]
    assert embedder.calls == [style_texts(style, SUBJECT)]
    expected = _unit(np.mean([cluster_vector("text:" + t, t) for t in style_texts(style, SUBJECT)], axis=0))
    point = atlas.point("ukiyo-e")
    np.testing.assert_allclose(point["vector"], expected, atol=1e-6)
    assert (point["kind"], point["name"], point["region"]) == ("style", style.name, style.region)
    assert (point["era_start"], point["medium"], point["sensitive"]) == (style.era_start, style.medium, style.sensitive)
    with pytest.raises(KitError, match="already on the atlas"):
        atlas.add_styles(["ukiyo-e"])
    with pytest.raises(KitError, match="unknown style id"):
        atlas.add_styles(["no-such-style"])


def test_add_styles_defaults_to_the_whole_catalogue():
    atlas = StyleAtlas(FakeEmbedder())
    atlas.add_styles()
    assert atlas.ids == kit.styles.ids()
    assert all(np.isclose(np.linalg.norm(p["vector"]), 1.0, atol=1e-5) for p in atlas.points)


def test_add_vectors_normalises_makes_ids_unique_and_validates():
    atlas = StyleAtlas(None)
    ids = atlas.add_vectors(np.array([[3.0, 4.0], [0.0, 2.0]]), {"id": "a", "region": "Polynesia"})
    assert ids == ["a", "a-2"]
    np.testing.assert_allclose(atlas.point("a")["vector"], [0.6, 0.8])
    assert atlas.point("a-2")["continent"] == "Oceania" and atlas.point("a")["kind"] == "image"
    with pytest.raises(KitError, match="dimensions"):
        atlas.add_vectors(np.ones((1, 3)))
    with pytest.raises(KitError, match="NaN"):
        atlas.add_vectors(np.array([[np.nan, 1.0]]))
    with pytest.raises(KitError, match="all-zero"):
        atlas.add_vectors(np.zeros((1, 2)))
    with pytest.raises(KitError, match="kind"):
        atlas.add_vectors(np.ones((1, 2)), {"kind": "sketch"})
    with pytest.raises(KitError, match="list of 2 dicts"):
        atlas.add_vectors(np.ones((2, 2)), [{}])
    assert len(atlas) == 2


def test_add_images_makes_thumbnails_and_lists_skipped_files(tmp_path):
    Image.new("RGB", (40, 30), (220, 10, 10)).save(tmp_path / "red.png")
    Image.new("RGB", (30, 40), (10, 10, 230)).save(tmp_path / "blue.png")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    atlas = StyleAtlas(FakeEmbedder())
    ids = atlas.add_images(
        [tmp_path / "red.png", tmp_path / "broken.png", tmp_path / "blue.png"],
        label="class <2025>",
        region="Western Europe",
    )
    assert ids == ["red", "blue"]
    assert [str(item) for item, _ in atlas.skipped] == [str(tmp_path / "broken.png")]
    red = atlas.point("red")
    assert red["kind"] == "image" and red["path"] == str(tmp_path / "red.png")
    assert red["label"] == "class <2025>" and red["continent"] == "Europe"
    assert red["thumbnail"].startswith("data:image/png;base64,")
    ids = atlas.add_images(Image.new("RGB", (8, 8), (0, 200, 0)))
    assert atlas.point(ids[0])["thumbnail"].startswith("data:image/png;base64,")


# ------------------------------------------------------------------ fitting


def test_fit_gives_finite_coordinates_for_every_point(fitted):
    coords = fitted.layout
    assert coords.shape == (len(fitted), 2) == (4 * 12 + len(STYLE_IDS), 2)
    assert np.isfinite(coords).all()
    assert fitted.pca is not None and fitted.pca.n_components == 50  # 52 points of 64 dims: PCA first
    assert fitted.model.n_neighbors == 15 and fitted.model.metric == "cosine"


def test_same_seed_same_map_and_clusters_stay_together(fitted):
    again = make_atlas(seed=42)
    np.testing.assert_allclose(again.fit(), fitted.layout, atol=1e-5)

    coords, regions = fitted.layout, np.array([p["region"] for p in fitted.points])
    d = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    same = regions[:, None] == regions[None]
    np.fill_diagonal(same, False)
    other = regions[:, None] != regions[None]
    assert d[same].mean() < 0.5 * d[other].mean()
    # the real styles sit with their (Eastern Asia) cluster: their nearest synthetic point is Eastern Asian
    for style_id in STYLE_IDS:
        i = fitted.ids.index(style_id)
        nearest = [j for j in np.argsort(d[i]) if fitted.points[j]["kind"] == "image"][0]
        assert regions[nearest] == "Eastern Asia"


def test_fit_3d_and_tiny_maps():
    atlas = make_atlas(per_cluster=3)
    coords = atlas.fit(dim=3)
    assert coords.shape == (len(atlas), 3) and np.isfinite(coords).all()
    assert atlas.pca is None  # 16 points: no PCA

    tiny = StyleAtlas(None)
    vectors, meta = clustered(REGIONS, 1)
    tiny.add_vectors(vectors, meta)  # 4 points: the smallest map
    for dim in (2, 3):
        coords = tiny.fit(dim=dim)
        assert coords.shape == (4, dim) and np.isfinite(coords).all()
        assert tiny.model.n_neighbors == 3


def test_fit_errors():
    atlas = StyleAtlas(None)
    atlas.add_vectors(clustered(REGIONS[:3], 1)[0])
    with pytest.raises(KitError, match="at least 4 points"):
        atlas.fit()
    atlas.add_vectors(clustered(REGIONS[:1], 2, prefix="q")[0])
    with pytest.raises(KitError, match="dim must be 2 or 3"):
        atlas.fit(dim=4)
    with pytest.raises(KitError, match="unknown UMAP option"):
        atlas.fit(colour="red")
    with pytest.raises(KitError, match="seed"):
        StyleAtlas(None, seed="42")


# ------------------------------------------------------------------ placing and neighbours


def test_place_before_fit_is_an_error():
    atlas = make_atlas(per_cluster=2)
    with pytest.raises(KitError, match="fit"):
        atlas.place(np.ones((1, DIM)))
    with pytest.raises(KitError, match="fit"):
        atlas.figure()


def test_place_a_copy_lands_on_the_original_and_moves_nothing():
    atlas = make_atlas()
    before = atlas.fit().copy()
    original = atlas.ids.index("p-Polynesia-3")
    coords = atlas.place(atlas.points[original]["vector"][None], meta=[{"name": "copy"}])
    assert coords.shape == (1, 2) and np.isfinite(coords).all()
    np.testing.assert_array_equal(atlas.layout[: len(before)], before)
    # the placer's promise, for every umap version: a copy lands on its original
    assert np.linalg.norm(coords[0] - before[original]) <= 1e-3 * nn_distance(before)
    new = atlas.points[-1]
    assert (new["kind"], new["name"]) == ("generated", "copy") and len(atlas) == len(before) + 1
    np.testing.assert_array_equal(new["xy"], coords[0])
    # a fresh point near Western Africa's centre lands inside the hull of its neighbours: among Western Africa's points
    coords = atlas.place(cluster_vector("Western Africa", "new one"))
    d = np.linalg.norm(before - coords[0], axis=1)
    assert atlas.points[int(np.argmin(d))]["region"] == "Western Africa"
    region = np.array([p["region"] == "Western Africa" for p in atlas.points[: len(before)]])
    assert (before[region].min(axis=0) <= coords[0]).all() and (coords[0] <= before[region].max(axis=0)).all()
    # placing is deterministic: the same vectors, the same coordinates
    np.testing.assert_array_equal(atlas.place(cluster_vector("Western Africa", "new one")), coords)
    with pytest.raises(KitError, match="dimensions"):
        atlas.place(np.ones((1, 3)))


def test_placer_weights_neighbours_by_inverse_square_distance():
    from kit.maps.projection import Placer

    rows = np.eye(3, dtype=np.float32)
    coords = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    placer = Placer(rows, coords, k=2)
    # equally far from rows 0 and 1 (and farther from row 2): halfway between their positions
    np.testing.assert_allclose(placer.place(np.array([[1.0, 1.0, 0.0]])), [[5.0, 0.0]], atol=1e-5)
    # closer to row 0: cosine distances 1 - 0.8 and 1 - 0.6 give weights 1/0.04 and 1/0.16, i.e. 0.8 and 0.2
    np.testing.assert_allclose(placer.place(np.array([[0.8, 0.6, 0.0]])), [[2.0, 0.0]], atol=1e-4)
    np.testing.assert_allclose(placer.place(rows), coords, atol=1e-4)
    with pytest.raises(KitError, match="one map position per fitted row"):
        Placer(rows, coords[:2])


def test_place_images(tmp_path):
    atlas = make_atlas(per_cluster=4)
    red, red2, blue = atlas.add_images([Image.new("RGB", (8, 8), c) for c in [(250, 0, 0), (240, 5, 5), (0, 0, 250)]])
    atlas.fit()
    Image.new("RGB", (8, 8), (245, 3, 3)).save(tmp_path / "gen.png")
    coords = atlas.place([tmp_path / "gen.png", tmp_path / "missing.png"])
    assert coords.shape == (1, 2)
    assert atlas.points[-1]["id"] == "gen" and atlas.points[-1]["kind"] == "generated"
    assert atlas.skipped[-1][0] == tmp_path / "missing.png"
    found = atlas.neighbours(tmp_path / "gen.png", k=3)  # by image: the red images, then itself
    assert {point_id for point_id, _, _ in found} == {red, red2, "gen"}
    with pytest.raises(KitError, match="cannot read the image"):
        atlas.neighbours(tmp_path / "missing.png")


def test_neighbours_by_id_vector_text_and_image(fitted):
    found = fitted.neighbours("p-Polynesia-0", k=4)
    assert len(found) == 4 and "p-Polynesia-0" not in [i for i, _, _ in found]
    assert all(fitted.point(i)["region"] == "Polynesia" for i, _, _ in found)
    sims = [s for _, _, s in found]
    assert sims == sorted(sims, reverse=True) and all(-1 <= s <= 1 for s in sims)

    found = fitted.neighbours(fitted.point("p-Eastern Asia-2")["vector"], k=1)
    assert found[0][0] == "p-Eastern Asia-2" and found[0][2] == pytest.approx(1.0, abs=1e-5)

    text = style_texts(kit.styles.get("gongbi"), SUBJECT)[0]
    found = fitted.neighbours(text, k=3)
    assert found[0][0] == "gongbi"
    assert len(fitted.neighbours("p-Polynesia-0", k=10_000)) == len(fitted) - 1
    with pytest.raises(KitError, match="k must be"):
        fitted.neighbours("gongbi", k=0)


# ------------------------------------------------------------------ the figure


def _all(fig, attribute):
    return [value for trace in fig.data for value in getattr(trace, attribute)]


def test_figure_one_trace_per_region_with_ids_and_escaped_text():
    atlas = make_atlas(per_cluster=5)
    atlas.add_vectors(
        cluster_vector("Polynesia", "evil")[None],
        {
            "id": "evil",
            "name": "<script>alert(1)</script>",
            "region": "<b>Nowhere</b>",
            "description": "a <i>caption</i> & more",
            "kind": "generated",
        },
    )
    atlas.fit()
    fig = atlas.figure(color_by="region")
    regions = {p["region"] for p in atlas.points}
    assert len(fig.data) == len(regions) == 5
    assert sum(len(trace.x) for trace in fig.data) == len(atlas)
    assert sorted(_all(fig, "customdata")) == sorted(atlas.ids)
    for trace in fig.data:  # each marker's id maps back to its point and coordinates
        for x, y, point_id in zip(trace.x, trace.y, trace.customdata):
            np.testing.assert_allclose((x, y), atlas.point(point_id)["xy"], atol=1e-6)
    names = [trace.name for trace in fig.data]
    assert names[:4] == ["Western Africa", "Eastern Asia", "Southern Europe", "Polynesia"]  # catalogue order
    assert "&lt;b&gt;Nowhere&lt;/b&gt;" in names and "<b>Nowhere</b>" not in names
    hover = "".join(_all(fig, "hovertext"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hover and "<script>" not in hover
    assert "a &lt;i&gt;caption&lt;/i&gt; &amp; more" in hover
    evil = [t for t in fig.data if "Nowhere" in t.name][0]
    assert list(evil.marker.symbol) == ["star"]
    styles = [t for t in fig.data if t.name == "Eastern Asia"][0]
    symbol = dict(zip(styles.customdata, styles.marker.symbol))
    assert symbol["ukiyo-e"] == "circle" and symbol["p-Eastern Asia-0"] == "square"
    assert "Ukiyo-e" in "".join(styles.hovertext)


def test_figure_colourings_3d_and_errors():
    atlas = make_atlas(per_cluster=3)
    atlas.fit(dim=3)
    fig = atlas.figure(color_by="era", dim=3)
    assert {t.type for t in fig.data} == {"scatter3d"}
    assert {t.name for t in fig.data} <= {label for _, label in ERA_BINS}
    assert sum(len(t.z) for t in fig.data) == len(atlas)
    assert sorted(_all(fig, "customdata")) == sorted(atlas.ids)
    assert [t.name for t in atlas.figure(color_by="kind").data] == ["style", "image"]
    assert [t.name for t in atlas.figure(color_by="continent").data] == ["Africa", "Asia", "Europe", "Oceania"]
    assert "painting &amp; drawing" in [t.name for t in atlas.figure(color_by="medium").data]
    with pytest.raises(KitError, match="color_by must be one of"):
        atlas.figure(color_by="colour")
    with pytest.raises(KitError, match="fit\\(dim=2\\)"):
        atlas.figure(dim=2)


def test_coordinates_and_frame(fitted):
    records = fitted.coordinates()
    assert len(records) == len(fitted) and {"x", "y", "id", "region"} <= set(records[0])
    assert "vector" not in records[0] and "z" not in records[0]
    assert records[0]["x"] == pytest.approx(float(fitted.layout[0, 0]))
    pd = pytest.importorskip("pandas")
    frame = fitted.to_frame()
    assert isinstance(frame, pd.DataFrame) and list(frame["id"]) == fitted.ids


# ------------------------------------------------------------------ helpers and imports


def test_era_bins_and_medium_families():
    assert [era_bin(y) for y in (-25000, 499, 500, 1499, 1500, 1944, 1945, 2020)] == [
        "before 500 CE",
        "before 500 CE",
        "500–1499",
        "500–1499",
        "1500–1799",
        "1800–1944",
        "1945–today",
        "1945–today",
    ]
    assert era_bin(None) == "unlabelled"
    assert medium_family("oil on canvas") == "painting & drawing"
    assert medium_family("woodblock print, often hand-coloured") == "print"
    assert medium_family("carved and painted wood") == "carving & sculpture"
    assert medium_family("mineral pigments on cotton") == "painting & drawing"
    assert medium_family("hand-knotted wool pile") == "textile & beadwork"
    assert medium_family("hand-tapped tattoo with bone combs") == "tattoo & body art"
    assert medium_family("pink soil") == "other"  # keywords match at word starts only
    assert medium_family(None) == "unlabelled"


def test_import_is_light():
    code = (
        "import sys, kit.maps.atlas; heavy = [m for m in ('umap', 'plotly', 'sklearn', 'numba', 'torch', 'PIL') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
