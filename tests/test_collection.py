"""Whole collections: Parquet shards of embeddings, resumable runs, local vs Ray, maps at scale.

Ray runs locally (2 CPUs), started once for the module and only when a Ray test needs it.
"""

import hashlib
import json
import shutil
import sys
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from kit import KitError, cli
from kit.files import _host
from kit.maps.collections.collection import (
    MANIFEST,
    embed_collection,
    indices_of,
    load_embeddings,
    load_errors,
    map_collection,
    map_vectors,
    thin,
)

FOLDERS = ("a", "b", "c")
GOOD = 240  # 80 per folder
SHARD = 50  # 243 files -> 5 shards, the last one partial
BAD = {"bad/empty.png": "empty file", "bad/text.jpg": "not an image", "bad/truncated.png": "truncated"}


def noise(seed):
    rng = np.random.default_rng(seed)
    width, height = rng.integers(32, 65, 2)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """240 small PNG/JPEG noise images in a/, b/, c/ and three broken files in bad/."""
    root = tmp_path_factory.mktemp("collection")
    for i in range(GOOD):
        folder = root / FOLDERS[i % 3]
        folder.mkdir(exist_ok=True)
        noise(i).save(folder / f"img{i:03d}.{'png' if i % 2 else 'jpg'}")
    (root / "bad").mkdir()
    (root / "bad" / "empty.png").write_bytes(b"")
    (root / "bad" / "text.jpg").write_text("not a picture at all", encoding="utf-8")
    whole = (root / "a" / "img003.png").read_bytes()
    (root / "bad" / "truncated.png").write_bytes(whole[: len(whole) // 2])
    return root


@pytest.fixture(scope="module")
def local(source, tmp_path_factory):
    """(dataset folder, summary) of one uninterrupted local run: the reference."""
    out = tmp_path_factory.mktemp("local") / "dataset"
    summary = embed_collection(source, out, shard_size=SHARD, batch_size=32, progress=False)
    return out, summary


@pytest.fixture(scope="module")
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def shards(folder):
    return sorted(p.name for p in folder.glob("shard-*.parquet"))


def table(folder):
    return pa.concat_tables([pq.read_table(folder / name) for name in shards(folder)])


def assert_same_rows(got, want, atol=1e-6):
    """Same ids, paths and errors in the same order, embeddings equal within atol."""
    got, want = table(got), table(want)
    for name in ("id", "path", "error", "width", "height"):
        assert got.column(name).to_pylist() == want.column(name).to_pylist(), name
    a, b = got.column("embedding").to_pylist(), want.column("embedding").to_pylist()
    assert [v is None for v in a] == [v is None for v in b]
    np.testing.assert_allclose([v for v in a if v], [v for v in b if v], atol=atol)


# ---------------------------------------------------------------- the dataset


def test_a_run_writes_deterministic_shards_a_manifest_and_a_summary(local, source):
    out, summary = local
    assert (summary.total, summary.done, summary.failed, summary.skipped) == (GOOD + 3, GOOD, 3, 0)
    assert (summary.shards, summary.shards_written, summary.shards_skipped, summary.ok) == (5, 5, 0, True)
    assert shards(out) == [f"shard-{i:05d}.parquet" for i in range(5)]
    assert not list(out.glob(".*tmp*"))
    assert "done 240  failed 3  skipped 0" in str(summary) and "bad/empty.png: empty file" in str(summary)

    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["model_id"].startswith("kit-tiny-clip/toy@") and manifest["pretrained"] == "toy"
    assert manifest["shard_size"] == SHARD and manifest["total"] == GOOD + 3 and manifest["complete"] is True
    assert manifest["source"] == str(source.resolve()) and manifest["dim"] == 64
    assert [s["paths"] for s in manifest["shards"]] == [50, 50, 50, 50, 43]

    rows = table(out)
    assert rows.schema.field("embedding").type == pa.list_(pa.float32(), 64)
    assert rows.column_names[:8] == ["id", "path", "embedding", "model_id", "pretrained", "width", "height", "error"]
    paths = rows.column("path").to_pylist()
    assert paths == sorted(paths) and len(set(paths)) == len(paths)
    assert paths[0] == "a/img000.jpg" and "bad/text.jpg" in paths
    assert rows.column("id").to_pylist() == [hashlib.sha1(p.encode()).hexdigest() for p in paths]
    assert set(rows.column("model_id").to_pylist()) == {manifest["model_id"]}
    assert rows.column("folder").to_pylist() == [p.rpartition("/")[0] for p in paths]

    first = rows.slice(0, 1).to_pylist()[0]
    assert (first["width"], first["height"]) == Image.open(source / "a" / "img000.jpg").size
    good = [v for v in rows.column("embedding").to_pylist() if v is not None]
    np.testing.assert_allclose(np.linalg.norm(good, axis=1), 1.0, atol=1e-5)


def test_unreadable_files_are_error_rows_not_dropped(local):
    out, _ = local
    rows = {r["path"]: r for r in table(out).to_pylist() if r["path"].startswith("bad/")}
    assert set(rows) == set(BAD)
    for path, reason in BAD.items():
        assert reason in rows[path]["error"]
        assert rows[path]["embedding"] is None and rows[path]["width"] is None
    assert sorted(p for p, _ in load_errors(out)) == sorted(BAD)
    with pytest.warns(UserWarning, match="left out 3 of 243 images"):
        vectors, meta = load_embeddings(out)
    assert vectors.shape == (GOOD, 64) and vectors.dtype == np.float32
    assert list(meta) == ["id", "path", "width", "height", "folder"] and len(meta["id"]) == GOOD
    assert not any(str(p).startswith("bad/") for p in meta["path"])


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing on the way catches it."""


def test_an_interrupted_run_resumes_where_it_stopped(local, source, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # the local engine must never import Ray
    out = tmp_path / "dataset"

    def crash_after_two(index, path):
        if index == 1:
            raise Crash

    with pytest.raises(Crash):
        embed_collection(source, out, shard_size=SHARD, batch_size=32, progress=False, on_shard=crash_after_two)
    assert shards(out) == ["shard-00000.parquet", "shard-00001.parquet"]
    assert json.loads((out / MANIFEST).read_text())["complete"] is False

    summary = embed_collection(source, out, shard_size=SHARD, batch_size=32, progress=False)
    assert (summary.shards_skipped, summary.shards_written, summary.skipped) == (2, 3, 100)
    assert summary.done + summary.failed == GOOD + 3 - 100 and summary.ok
    assert_same_rows(out, local[0])


def test_damaged_and_missing_shards_are_redone_the_rest_kept(local, source, tmp_path):
    out = tmp_path / "dataset"
    shutil.copytree(local[0], out)
    kept = {name: (out / name).stat().st_mtime_ns for name in ("shard-00000.parquet", "shard-00002.parquet")}
    damaged = (out / "shard-00001.parquet").read_bytes()
    (out / "shard-00001.parquet").write_bytes(damaged[: len(damaged) // 2])
    (out / "shard-00003.parquet").unlink()
    (out / f".kit-999999999@{_host()}-x1y2z3w4.tmp").write_bytes(b"half a shard")  # a killed run's (no such pid)
    shutil.copy(out / "shard-00004.parquet", out / "shard-00009.parquet")  # the kit's, from a larger collection
    (out / "shard-00010.parquet").write_bytes(b"someone else's file")  # not provably the kit's: kept
    (out / ".notes.tmp-1").write_bytes(b"someone else's temp file")

    summary = embed_collection(source, out, shard_size=SHARD, batch_size=32, progress=False)
    assert (summary.shards_written, summary.shards_skipped, summary.skipped) == (2, 3, 143)
    assert shards(out) == [f"shard-{i:05d}.parquet" for i in range(5)] + ["shard-00010.parquet"]
    assert [p.name for p in out.glob(".*tmp*")] == [".notes.tmp-1"]
    (out / "shard-00010.parquet").unlink()  # the test helper below reads every shard file in the folder
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept
    assert_same_rows(out, local[0])


def test_a_new_image_redoes_only_the_shards_whose_paths_changed(local, source, tmp_path):
    copy = tmp_path / "source"
    shutil.copytree(source, copy)
    noise(999).save(copy / "c" / "zzz_new.png")  # sorts after every c/ image: into the last shard
    out = tmp_path / "dataset"
    shutil.copytree(local[0], out)
    with pytest.raises(KitError, match="new_source=True"):  # another source is never mixed in silently
        embed_collection(copy, out, shard_size=SHARD, batch_size=32, progress=False)
    summary = embed_collection(copy, out, shard_size=SHARD, batch_size=32, progress=False, new_source=True)
    assert (summary.total, summary.shards_skipped, summary.shards_written) == (GOOD + 4, 4, 1)
    assert "c/zzz_new.png" in table(out).column("path").to_pylist()


def test_a_different_model_or_shard_size_is_a_clear_error(local, source, tmp_path):
    out, _ = local
    with pytest.raises(KitError, match="shard_size=50"):
        embed_collection(source, out, shard_size=64, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["model_id"] = "ViT-B-32/laion2b_s34b_b79k"
    (other / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(KitError, match="two models don't mix"):
        embed_collection(source, other, shard_size=SHARD, progress=False)
    assert shards(other) == []


def test_bfloat16_embeddings_are_a_model_of_their_own_close_to_float32(local, source, tmp_path):
    out, summary = local
    half = embed_collection(
        source, tmp_path / "bf16", shard_size=SHARD, batch_size=32, progress=False, dtype="bfloat16"
    )
    assert half.model_id == summary.model_id + ":bfloat16" and half.done == summary.done
    got, want = table(tmp_path / "bf16"), table(out)
    assert got.column("id").to_pylist() == want.column("id").to_pylist()
    a = np.array([v for v in got.column("embedding").to_pylist() if v])
    b = np.array([v for v in want.column("embedding").to_pylist() if v])
    assert not np.array_equal(a, b)  # computed in bfloat16 indeed
    assert np.min(np.sum(a * b, axis=1)) > 0.99  # unit vectors: the cosine of each pair
    with pytest.raises(KitError, match="two models don't mix"):  # a float32 rerun into it is refused
        embed_collection(source, tmp_path / "bf16", shard_size=SHARD, progress=False)


def test_lists_of_paths_in_csv_and_parquet(local, source, tmp_path):
    chosen = ["c/img002.jpg", "a/img000.jpg", "b/img004.jpg", "a/missing.png"]
    (source / "list.csv").write_text("path,region\n" + "".join(f"{p},r{i}\n" for i, p in enumerate(chosen)))
    summary = embed_collection(source / "list.csv", tmp_path / "csv", shard_size=SHARD, progress=False)
    (source / "list.csv").unlink()
    rows = table(tmp_path / "csv").to_pylist()
    assert (summary.done, summary.failed) == (3, 1)
    assert [r["path"] for r in rows] == sorted(chosen)
    assert {r["path"]: r["region"] for r in rows} == {p: f"r{i}" for i, p in enumerate(chosen)}
    assert [r["error"] for r in rows if r["path"] == "a/missing.png"] == ["no such file"]
    reference = {r["id"]: r["embedding"] for r in table(local[0]).to_pylist()}
    for r in rows:
        if r["error"] is None:
            np.testing.assert_allclose(r["embedding"], reference[r["id"]], atol=1e-6)

    absolute = [str(source / p) for p in chosen[:2]]
    pq.write_table(pa.table({"path": absolute}), tmp_path / "list.parquet")
    embed_collection(tmp_path / "list.parquet", tmp_path / "pq", progress=False)
    assert table(tmp_path / "pq").column("path").to_pylist() == sorted(absolute)

    (tmp_path / "bad.csv").write_text("file\nx.png\n")
    with pytest.raises(KitError, match="no 'path' column"):
        embed_collection(tmp_path / "bad.csv", tmp_path / "x", progress=False)
    (tmp_path / "twice.csv").write_text("path\na.png\na.png\n")
    with pytest.raises(KitError, match="more than once"):
        embed_collection(tmp_path / "twice.csv", tmp_path / "x", progress=False)
    (tmp_path / "clash.csv").write_text("path,id\na.png,17\n")
    with pytest.raises(KitError, match="rename them"):
        embed_collection(tmp_path / "clash.csv", tmp_path / "x", progress=False)


def test_bad_arguments_fail_before_any_work(source, tmp_path):
    with pytest.raises(KitError, match="engine must be"):
        embed_collection(source, tmp_path / "x", engine="spark")
    with pytest.raises(KitError, match="batch_size"):
        embed_collection(source, tmp_path / "x", batch_size=0)
    with pytest.raises(KitError, match="engine='ray'"):
        embed_collection(source, tmp_path / "x", address="auto")
    with pytest.raises(KitError, match="does not exist"):
        embed_collection(tmp_path / "nowhere", tmp_path / "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(KitError, match="no image files"):
        embed_collection(tmp_path / "empty", tmp_path / "x")
    with pytest.raises(KitError, match="not a kit embeddings dataset"):
        load_embeddings(tmp_path / "empty")
    assert not (tmp_path / "x").exists()


def test_cli_embed_and_map(source, tmp_path, capsys):
    small = tmp_path / "small"
    small.mkdir()
    for path in sorted((source / "b").iterdir())[:30]:
        shutil.copy(path, small)
    assert cli.main(["embed", str(small), "--out", str(tmp_path / "ds"), "--shard-size", "10"]) == 0
    printed = capsys.readouterr().out
    assert "30 images in 3 shards" in printed and "done 30  failed 0  skipped 0" in printed
    assert cli.main(["embed", str(small), "--out", str(tmp_path / "ds"), "--shard-size", "10"]) == 0
    assert "skipped 30" in capsys.readouterr().out

    assert cli.main(["map", str(tmp_path / "ds"), "--out", str(tmp_path / "map.parquet"), "--sample", "15"]) == 0
    assert "mapped 30 images in 2D" in capsys.readouterr().out
    coords = pq.read_table(tmp_path / "map.parquet")
    assert coords.column_names[:4] == ["id", "x", "y", "fitted"] and coords.num_rows == 30
    assert sum(coords.column("fitted").to_pylist()) == 15

    assert cli.main(["embed", str(small), "--out", str(tmp_path / "ds"), "--shard-size", "64"]) == 2
    assert "shard_size=10" in capsys.readouterr().err
    # never destroy what the user did not ask to destroy
    before = (tmp_path / "map.parquet").read_bytes()
    assert cli.main(["map", str(tmp_path / "ds"), "--out", str(tmp_path / "map.parquet"), "--sample", "15"]) == 2
    assert "already exists" in capsys.readouterr().err and (tmp_path / "map.parquet").read_bytes() == before
    assert (
        cli.main(["map", str(tmp_path / "ds"), "--out", str(tmp_path / "map.parquet"), "--sample", "15", "--overwrite"])
        == 0
    )
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "shard-00000.parquet").write_bytes(b"someone's data")
    assert cli.main(["embed", str(small), "--out", str(theirs)]) == 2
    assert "not a kit embeddings dataset" in capsys.readouterr().err
    assert (theirs / "shard-00000.parquet").read_bytes() == b"someone's data"


# ---------------------------------------------------------------- thinning


def test_thin_keeps_every_label_and_selection_sees_all_points():
    rng = np.random.default_rng(0)
    labels = np.array(["big"] * 45_000 + ["mid"] * 4_990 + ["rare"] * 10, dtype=object)
    coords = rng.standard_normal((len(labels), 2))
    keep = thin(coords, labels, max_points=1_000, seed=0)
    assert len(keep) == 1_000 and (np.diff(keep) > 0).all()
    kept = labels[keep]
    assert (kept == "rare").sum() == 10 and (kept == "mid").sum() >= 90 and (kept == "big").sum() >= 800
    assert np.array_equal(keep, thin(coords, labels, max_points=1_000, seed=0))
    assert not np.array_equal(keep, thin(coords, labels, max_points=1_000, seed=1))
    assert len(indices_of(labels, "big")) == 45_000 and np.array_equal(
        indices_of(labels, "rare"), np.arange(49_990, 50_000)
    )
    assert np.array_equal(thin(coords[:500], labels[:500], max_points=1_000), np.arange(500))

    blob = np.vstack([rng.standard_normal((20_000, 2)) * 0.1, [[50, 50], [-50, 40], [45, -60]]])
    keep = thin(blob, None, max_points=300)
    assert len(keep) <= 300 and {20_000, 20_001, 20_002} <= set(keep.tolist())
    with pytest.raises(KitError, match="cannot all be shown"):
        thin(coords, np.arange(len(coords)), max_points=100)


# ---------------------------------------------------------------- Ray


@pytest.mark.slow
def test_ray_engine_gives_the_local_ids_and_vectors(ray_session, local, source, tmp_path):
    out = tmp_path / "dataset"
    summary = embed_collection(source, out, engine="ray", workers=2, shard_size=SHARD, batch_size=32, progress=False)
    assert (summary.engine, summary.done, summary.failed, summary.shards_written, summary.ok) == (
        "ray",
        GOOD,
        3,
        5,
        True,
    )
    assert_same_rows(out, local[0], atol=1e-5)
    manifest, reference = (json.loads((folder / MANIFEST).read_text()) for folder in (out, local[0]))
    assert manifest["shards"] == reference["shards"] and manifest["model_id"] == reference["model_id"]


@pytest.mark.slow
def test_map_collection_fits_a_sample_and_places_the_rest_the_same_on_ray(ray_session, local):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the three unreadable images: tested above
        vectors, rows = load_embeddings(local[0])
        here = map_collection(local[0], sample=120, seed=0, chunk_size=40, progress=False)
        there = map_collection(local[0], sample=120, seed=0, chunk_size=40, engine="ray", workers=2, progress=False)
    assert here.coords.shape == (GOOD, 2) and int(here.fitted.sum()) == 120
    assert np.array_equal(here.columns["id"], rows["id"]) and np.isfinite(here.coords).all()
    np.testing.assert_allclose(there.coords, here.coords, atol=1e-6)
    assert np.array_equal(there.fitted, here.fitted)
    np.testing.assert_allclose(here.coords[here.fitted], here.atlas.layout)

    # The placing recipe is StyleAtlas.place's: the same vectors land in the same spot.
    rest = np.flatnonzero(~here.fitted)[:10]
    np.testing.assert_allclose(here.place(vectors[rest], progress=False), here.atlas.place(vectors[rest]), atol=1e-5)

    a = here.select("folder", "a")
    assert len(a) == 80 and set(here.columns["folder"][a]) == {"a"}
    assert set(here.columns["folder"][here.thin("folder", max_points=30)]) == {"a", "b", "c"}


def test_export_coordinates_and_a_3d_map(tmp_path):
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((60, 16)).astype(np.float32)
    cmap = map_vectors(
        vectors, {"id": [f"p{i}" for i in range(60)], "era": ["x"] * 60}, sample=30, dim=3, progress=False
    )
    path = cmap.export_coordinates(tmp_path / "out" / "map.parquet")
    got = pq.read_table(path)
    assert got.column_names == ["id", "x", "y", "z", "fitted", "era"]
    np.testing.assert_allclose(np.stack([got.column(a).to_numpy() for a in "xyz"], axis=1), cmap.coords)
    assert got.column("id").to_pylist() == [f"p{i}" for i in range(60)]
    fig = cmap.figure(color_by="era", max_points=20)
    assert sum(len(trace.x) for trace in fig.data) == 20 and "20 of 60 points" in fig.layout.title.text
    with pytest.raises(KitError, match="dim must be 2 or 3"):
        map_vectors(vectors, dim=4)
    with pytest.raises(KitError, match="no column 'region'"):
        cmap.select("region", "x")


def test_a_stopped_embedding_keeps_its_complete_shards_and_a_rerun_finishes(source, tmp_path):
    """Collection embedding is a kit.Run like every long piece of work: Stop ends it between batches."""
    from kit import Run, Stopped

    out = tmp_path / "dataset"
    run = Run(on_step=lambda done, total: run.stop() if done >= SHARD else None)  # after the first shard's rows
    with pytest.raises(Stopped, match="the embedding was stopped") as caught:
        embed_collection(source, out, shard_size=SHARD, batch_size=SHARD, progress=False, run=run)
    written = caught.value.done
    assert written and all(path.is_file() for path in written) and shards(out) == [p.name for p in written]
    assert json.loads((out / MANIFEST).read_text())["complete"] is False
    summary = embed_collection(source, out, shard_size=SHARD, batch_size=32, progress=False)
    assert summary.ok and summary.shards_skipped == len(written)


def test_a_stop_before_the_embedding_starts_writes_no_shard(source, tmp_path):
    from kit import Run, Stopped

    run = Run()
    run.stop()
    with pytest.raises(Stopped) as caught:
        embed_collection(source, tmp_path / "dataset", shard_size=SHARD, progress=False, run=run)
    assert caught.value.done == [] and shards(tmp_path / "dataset") == []
