"""Collections under broken input: every file of a collection damaged in every way, every manifest
field forged, and sources that hold what is not an image. Nothing is trusted, nothing hangs, and
nothing the kit did not write is replaced.
"""

import json
import os
import shutil
import stat

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fifo import bounded
from PIL import Image

from kit import KitError, cli
from kit.maps.collections import store
from kit.maps.collections.collection import MANIFEST, embed_collection, load_embeddings, load_errors, map_vectors

SHARD = 3  # 8 images -> 3 shards


def noise(seed):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))


def embed(source, out, **kwargs):
    return embed_collection(source, out, shard_size=SHARD, batch_size=4, progress=False, **kwargs)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("source")
    for i in range(8):
        (root / "ab"[i % 2]).mkdir(exist_ok=True)
        noise(i).save(root / "ab"[i % 2] / f"img{i}.png")
    return root


@pytest.fixture(scope="module")
def reference(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "dataset"
    embed(source, out)
    return out


@pytest.fixture
def dataset(reference, tmp_path):
    out = tmp_path / "dataset"
    shutil.copytree(reference, out)
    return out


def rows(folder):
    return pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("shard-*.parquet"))]).to_pylist()


def same_rows(got, want):
    a, b = rows(got), rows(want)
    assert [r["path"] for r in a] == [r["path"] for r in b]
    np.testing.assert_allclose([r["embedding"] for r in a], [r["embedding"] for r in b], atol=1e-6)


def replace_with(path, kind, target=None):
    """Put a folder, a FIFO or a symlink where the file `path` was."""
    path.unlink()
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(target)


# ---------------------------------------------------------------- shards


def test_a_shard_damaged_inside_is_remade_never_trusted(dataset, reference, source):
    path = dataset / "shard-00001.parquet"
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(2)  # the embedding column's pages
    assert chunk.path_in_schema.startswith("embedding")
    data = bytearray(path.read_bytes())
    start = chunk.data_page_offset + chunk.total_compressed_size // 2
    data[start : start + 16] = bytes(b ^ 0x5A for b in data[start : start + 16])  # the footer stays intact
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="1 of 3 shards are missing or unfinished"):
        vectors, _ = load_embeddings(dataset)  # never an OSError from the damaged pages
    assert len(vectors) == 5
    with pytest.warns(UserWarning, match="missing or unfinished"):  # `kit map` maps the shards it can trust
        assert cli.main(["map", str(dataset), "--out", str(dataset.parent / "map.parquet"), "--sample", "4"]) == 0
    assert pq.read_table(dataset.parent / "map.parquet").num_rows == 5
    summary = embed(source, dataset)
    assert (summary.shards_written, summary.shards_skipped) == (1, 2)
    same_rows(dataset, reference)


def test_a_shard_holding_forged_vectors_is_remade(dataset, reference, source):
    path = dataset / "shard-00000.parquet"
    table = pq.read_table(path)
    vectors = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    vectors[1] = np.nan
    forged = table.set_column(2, "embedding", pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 64))
    pq.write_table(forged.replace_schema_metadata(table.schema.metadata), path)
    with pytest.warns(UserWarning, match="missing or unfinished"):
        load_embeddings(dataset)
    assert embed(source, dataset).shards_written == 1
    same_rows(dataset, reference)


@pytest.mark.parametrize("kind", ["folder", "fifo", "link"])
def test_a_shard_replaced_by_a_folder_fifo_or_link_is_refused_and_left_alone(dataset, source, kind):
    path = dataset / "shard-00001.parquet"
    replace_with(path, kind, target=dataset / "shard-00002.parquet")
    with pytest.raises(KitError, match="shard-00001.parquet.*not a file the kit wrote"):
        bounded(lambda: load_embeddings(dataset), path)
    with pytest.raises(KitError, match="shard-00001.parquet.*move it away"):
        bounded(lambda: embed(source, dataset), path)
    mode = os.lstat(path).st_mode
    assert {"folder": stat.S_ISDIR, "fifo": stat.S_ISFIFO, "link": stat.S_ISLNK}[kind](mode)


def test_a_fifo_past_the_last_shard_is_never_read_nor_removed(dataset, source):
    os.mkfifo(dataset / "shard-00007.parquet")
    summary = bounded(lambda: embed(source, dataset), dataset / "shard-00007.parquet")
    assert summary.shards_skipped == 3 and (dataset / "shard-00007.parquet").exists()


# ---------------------------------------------------------------- the manifest


def damage(path, how):
    text = path.read_bytes()
    if how == "truncated":
        path.write_bytes(text[: len(text) // 2])
    elif how == "corrupted":
        path.write_bytes(text[:40] + b"\xff\xfe\x00garbage" + text[50:])
    elif how == "replaced":
        path.write_text('["someone else\'s list"]')
    else:
        replace_with(path, how, target=path.parent / "elsewhere.json")
        if how == "link":
            (path.parent / "elsewhere.json").write_bytes(text)


@pytest.mark.parametrize("how", ["truncated", "corrupted", "replaced", "folder", "fifo", "link"])
def test_a_damaged_manifest_is_a_clear_error_and_left_as_it_is(dataset, source, how):
    path = dataset / MANIFEST
    damage(path, how)
    before = os.lstat(path).st_mode
    with pytest.raises(KitError, match=MANIFEST):
        bounded(lambda: load_embeddings(dataset), path)
    with pytest.raises(KitError, match=MANIFEST):
        bounded(lambda: embed(source, dataset), path)
    assert os.lstat(path).st_mode == before and len(list(dataset.glob("shard-*"))) == 3


def forge(manifest, change):
    field, value = change
    if field == "-shards":
        del manifest["shards"]
    elif field.startswith("shards[0]."):
        manifest["shards"][0][field[len("shards[0].") :]] = value
    else:
        manifest[field] = value
    return manifest


FORGED = {
    "no shards": ("-shards", None),
    "shards not a list": ("shards", {"0": 1}),
    "an index as text": ("shards[0].index", "zero"),
    "an index not whole": ("shards[0].index", 0.5),
    "an index out of order": ("shards[0].index", 2),
    "paths as text": ("shards[0].paths", "three"),
    "paths negative": ("shards[0].paths", -3),
    "a hash not a hash": ("shards[0].hash", 7),
    "a file elsewhere": ("shards[0].file", "../../elsewhere.parquet"),
    "a dim as text": ("dim", "sixty-four"),
    "a dim as a flag": ("dim", True),
    "a dim too large": ("dim", 10**30),
    "a shard size of zero": ("shard_size", 0),
    "a total that is not the sum": ("total", 9),
    "complete as text": ("complete", "yes"),
    "a model id not text": ("model_id", ["a", "b"]),
    "a source not text": ("source", 17),
}


@pytest.mark.parametrize("change", FORGED.values(), ids=FORGED.keys())
def test_each_forged_manifest_field_is_a_kit_error_naming_it(dataset, source, change):
    path = dataset / MANIFEST
    path.write_text(json.dumps(forge(json.loads(path.read_text()), change)))
    field = change[0].lstrip("-").split(".")[-1].replace("[0]", "")
    with pytest.raises(KitError, match=field):
        load_embeddings(dataset)
    with pytest.raises(KitError, match=field):
        embed(source, dataset)


def test_a_manifest_nested_thousands_deep_or_too_large_is_a_kit_error(dataset, source, monkeypatch):
    path = dataset / MANIFEST
    path.write_text('{"format": "kit-embeddings/1", "shards": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(KitError, match=MANIFEST):
        load_embeddings(dataset)
    with pytest.raises(KitError, match=MANIFEST):
        embed(source, dataset)
    path.write_text(json.dumps({"format": "kit-embeddings/1", "padding": "x" * 5000}))
    monkeypatch.setattr(store, "MAX_MANIFEST_BYTES", 4096)
    with pytest.raises(KitError, match="too large"):
        load_embeddings(dataset)


# ---------------------------------------------------------------- sources


def test_a_folders_broken_link_device_link_and_fifo_become_error_rows(source, tmp_path):
    folder = tmp_path / "odd"
    shutil.copytree(source, folder)
    (folder / "a" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (folder / "a" / "device.png").symlink_to("/dev/null")
    os.mkfifo(folder / "b" / "pipe.png")
    summary = bounded(lambda: embed(folder, tmp_path / "out"), folder / "b" / "pipe.png")
    assert (summary.total, summary.done, summary.failed) == (11, 8, 3)
    assert dict(load_errors(tmp_path / "out")) == {
        "a/device.png": "a device, not a regular file",
        "a/gone.png": "no such file",
        "b/pipe.png": "a FIFO (named pipe), not a regular file",
    }


@pytest.mark.parametrize("path", ["http://example.com/a.png", "s3://bucket/a.png", "file:///tmp/a.png"])
def test_a_list_naming_a_url_is_refused_not_mangled(source, tmp_path, path):
    (tmp_path / "list.csv").write_text(f"path\na/img0.png\n{path}\n")
    with pytest.raises(KitError, match="row 2.*URL"):
        embed(tmp_path / "list.csv", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_list_that_is_a_fifo_damaged_or_not_a_list_is_a_kit_error(source, tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(KitError, match="FIFO"):
        bounded(lambda: embed(tmp_path / "pipe.csv", tmp_path / "out"), tmp_path / "pipe.csv")
    pq.write_table(pa.table({"path": [str(source / "a" / "img0.png")] * 1}), tmp_path / "list.parquet")
    data = (tmp_path / "list.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(KitError, match="cannot read the list"):
        embed(tmp_path / "cut.parquet", tmp_path / "out")
    (tmp_path / "nul.csv").write_text("path\na/img0\x00.png\n")
    with pytest.raises(KitError, match="row 1"):
        embed(tmp_path / "nul.csv", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- the map's own columns


def test_the_maps_own_columns_win_and_the_sources_are_kept_beside_them(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(12, 8)).astype(np.float32)
    theirs = {
        "id": [f"p{i}" for i in range(12)],
        "x": ["their x"] * 12,
        "y": list(range(100, 112)),
        "fitted": ["their fit"] * 12,
        "source_x": ["taken"] * 12,
    }
    cmap = map_vectors(vectors, theirs, sample=8, seed=0, progress=False)
    table = pq.read_table(cmap.export_coordinates(tmp_path / "map.parquet"))
    assert table.column_names[:4] == ["id", "x", "y", "fitted"]
    np.testing.assert_array_equal(table.column("x").to_numpy(), cmap.coords[:, 0])
    np.testing.assert_array_equal(table.column("y").to_numpy(), cmap.coords[:, 1])
    assert table.column("fitted").to_pylist() == cmap.fitted.tolist()
    assert table.column("source_x").to_pylist() == ["taken"] * 12  # already the source's own name
    assert table.column("source_x_1").to_pylist() == ["their x"] * 12
    assert table.column("source_y").to_pylist() == list(range(100, 112))
    assert table.column("source_fitted").to_pylist() == ["their fit"] * 12
