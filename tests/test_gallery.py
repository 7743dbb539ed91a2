"""Tests for kit.gallery: the append-only gallery, finding PNGs it missed, repair, and lineage.

The fault drills (a damaged index, a full disk, kill -9, two processes) are in test_gallery_faults.py.
"""

import os
import sqlite3
import threading

import numpy as np
import pytest
from PIL import Image

import kit
from kit import kinds
from kit.errors import KitError
from kit.provenance.artwork import Artwork, load, pixel_hash
from kit.provenance.gallery import Gallery, default_folder
from kit.provenance.lineage import Lineage
from kit.provenance.record import Record


def noise_image(seed=0, size=(32, 24)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def make_artwork(seed=42, **changes):
    values = dict(
        prompt="portrait of an elder, ukiyo-e woodblock print",
        style="ukiyo-e",
        seed=seed,
        width=32,
        height=24,
        preset="sd-turbo",
    )
    values.update(changes)
    return Artwork(noise_image(seed), Record(**values))


def assert_all_verify(gallery):
    """Every listed image loads, its pixels match its stored hash, and the index agrees."""
    rows = dict(sqlite3.connect(gallery.index).execute("SELECT file, sha256 FROM artworks").fetchall())
    arts = list(gallery)
    assert len(arts) == len(gallery)
    for art in arts:
        assert art.verified is True and pixel_hash(art.image) == art.record.sha256 == rows[art.path.name]
    return arts


# -- the gallery ------------------------------------------------------------------


def test_gallery_survives_reopening(tmp_path):
    gallery = Gallery(tmp_path / "g")
    styles = ["ukiyo-e", "art-deco", "ukiyo-e"]
    paths = [gallery.add(make_artwork(seed=i, style=s, prompt=f"portrait {i} in {s}")) for i, s in enumerate(styles)]
    assert all(p.parent == tmp_path / "g" for p in paths)
    assert (tmp_path / "g" / "gallery.sqlite").exists()

    reopened = Gallery(tmp_path / "g")
    assert len(reopened) == 3
    arts = assert_all_verify(reopened)
    assert [a.record.seed for a in arts] == [0, 1, 2]
    assert [a.record.seed for a in reopened.latest(2)] == [2, 1]
    assert [a.record.seed for a in reopened.find(style="ukiyo-e")] == [0, 2]
    assert [a.record.seed for a in reopened.find(prompt="PORTRAIT 1")] == [1]
    assert [a.record.seed for a in reopened.find(seed=2, kind="generate")] == [2]
    assert reopened.find(kind="imported") == []  # a registered kind (kit.kinds registers it) none of them is
    assert "3 artworks" in repr(reopened)
    with pytest.raises(KitError, match="n must be"):
        reopened.latest(-1)


def test_kinds_are_the_indexs_and_the_registered_ones(tmp_path):
    """find(kind=...) takes a kind this gallery holds (even one no feature of this session registered: a newer
    kit's) or a registered one; anything else is a KitError that lists them."""
    gallery = Gallery(tmp_path)
    gallery.add(make_artwork(seed=1))
    gallery.add(make_artwork(seed=2, kind="from-a-newer-kit"))
    assert gallery.kinds() == sorted({"generate", "from-a-newer-kit", *kinds.names()})
    assert "imported" in gallery.kinds() and gallery.find(kind="imported") == []
    assert [a.record.seed for a in gallery.find(kind="from-a-newer-kit")] == [2]
    with pytest.raises(KitError, match=r"kind must be one of .*from-a-newer-kit, .*generate.*got 'walkk'"):
        gallery.find(kind="walkk")
    with pytest.raises(KitError, match="kind must be text of at most 64 characters, got 65 characters"):
        gallery.find(kind="k" * 65)
    with pytest.raises(KitError, match="kind must be text .*got int"):
        gallery.find(kind=3)


def test_two_gallery_objects_share_one_folder(tmp_path):
    first, second = Gallery(tmp_path), Gallery(tmp_path)

    def add_many(gallery, seeds):
        for seed in seeds:
            gallery.add(make_artwork(seed=seed))

    threads = [
        threading.Thread(target=add_many, args=(first, range(0, 6))),
        threading.Thread(target=add_many, args=(second, range(100, 106))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(first) == len(second) == 12
    assert sorted(a.record.seed for a in assert_all_verify(second)) == [*range(0, 6), *range(100, 106)]


def test_opening_finds_a_png_that_was_saved_but_not_indexed(tmp_path):
    gallery = Gallery(tmp_path)
    gallery.add(make_artwork(seed=1))
    gallery.add(make_artwork(seed=2))
    orphan = make_artwork(seed=3).save(tmp_path)  # a crash between the rename and the index insert
    (tmp_path / ".kit-half.png.tmp").write_bytes(b"\x89PNG half written")  # not a PNG the gallery lists
    assert len(gallery) == 2  # this object has not looked since

    reopened = Gallery(tmp_path)  # no rebuild_index() needed: opening compares folder and index
    assert [a.record.seed for a in assert_all_verify(reopened)] == [1, 2, 3]
    assert reopened.find(seed=3)[0].path == orphan
    assert gallery.rebuild_index() == 0 and Gallery(tmp_path).rebuild_index() == 0  # idempotent
    assert len(gallery) == 3


def test_a_lost_index_is_rebuilt_from_the_pngs_and_a_bad_file_is_warned_about_once(tmp_path):
    gallery = Gallery(tmp_path)
    for seed in (1, 2, 3):
        gallery.add(make_artwork(seed=seed))
    (tmp_path / "gallery.sqlite").unlink()  # a lost index: the PNGs are the truth
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    with pytest.warns(UserWarning, match="broken.png"):
        fresh = Gallery(tmp_path)
    assert sorted(a.record.seed for a in assert_all_verify(fresh)) == [1, 2, 3]

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the unchanged bad file is remembered, not read and warned about again
        assert len(Gallery(tmp_path)) == 3
    noise_image(9).save(tmp_path / "broken.png")  # it changed: looked at again, and now it reads
    assert len(Gallery(tmp_path)) == 4


def test_a_png_changed_in_place_stays_listed_with_its_row_refreshed(tmp_path):
    gallery = Gallery(tmp_path)
    path = gallery.add(make_artwork(seed=1, prompt="before"))
    changed = make_artwork(seed=1, prompt="after")  # the same pixels, a new record (content credentials do this)
    changed.save(tmp_path, name="x")
    os.replace(tmp_path / "x.png", path)
    reopened = Gallery(tmp_path)
    assert len(reopened) == 1 and reopened.find(prompt="after")[0].path == path
    assert reopened.find(prompt="before") == []


def test_a_deleted_png_leaves_len_and_iteration_agreeing(tmp_path):
    gallery = Gallery(tmp_path)
    paths = [gallery.add(make_artwork(seed=seed)) for seed in range(4)]
    paths[1].unlink()  # deleted by hand while the gallery is open
    assert len(gallery) == len(list(gallery)) == 3
    assert [a.record.seed for a in gallery] == [0, 2, 3]
    assert [a.record.seed for a in gallery.latest(8)] == [3, 2, 0]
    assert [a.record.seed for a in gallery.find(seed=1)] == []
    reopened = Gallery(tmp_path)
    assert len(reopened) == len(list(reopened)) == 3 and "3 artworks" in repr(reopened)


def test_an_index_from_before_the_split_is_upgraded(tmp_path):
    """An index written by the first release (WAL journal, no size/mtime/parents columns) still opens."""
    paths = [make_artwork(seed=seed).save(tmp_path) for seed in (1, 2)]
    with sqlite3.connect(tmp_path / "gallery.sqlite") as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE artworks (id INTEGER PRIMARY KEY, file TEXT NOT NULL UNIQUE, created TEXT, kind TEXT,"
            " prompt TEXT, style TEXT, seed INTEGER, preset TEXT, sha256 TEXT, record_json TEXT)"
        )
        for path in paths:
            art = load(path)
            db.execute(
                "INSERT INTO artworks (file, created, kind, prompt, style, seed, preset, sha256, record_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    path.name,
                    art.record.created,
                    art.record.kind,
                    art.record.prompt,
                    art.record.style,
                    art.record.seed,
                    art.record.preset,
                    art.record.sha256,
                    art.record.to_json(),
                ),
            )
    db.close()
    gallery = Gallery(tmp_path)
    assert [a.record.seed for a in assert_all_verify(gallery)] == [1, 2]
    with sqlite3.connect(gallery.index) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # readable on a full disk
        assert db.execute("SELECT COUNT(*) FROM artworks WHERE size IS NULL OR parents IS NULL").fetchone()[0] == 0
    db.close()


def test_default_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("KIT_GALLERY", str(tmp_path / "mine"))
    assert default_folder() == tmp_path / "mine"
    assert Gallery().folder == tmp_path / "mine"
    monkeypatch.delenv("KIT_GALLERY")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_folder() == tmp_path / "kit-gallery"


def test_public_names():
    assert kit.Gallery is Gallery and kit.gallery.Gallery is Gallery
    assert kit.provenance.gallery.Gallery is Gallery


# -- lineage ----------------------------------------------------------------------


def child_of(parent: Artwork, seed: int, *more_parents) -> Artwork:
    """An artwork whose record names `parent` (and more) as made from, the way a restoration does."""
    art = make_artwork(seed=seed, kind="restore")
    art.record.restore = {"source_sha256": parent.record.sha256}
    if more_parents:
        art.record.extra["parents"] = [p.record.sha256 for p in more_parents]
    return art


def test_lineage_follows_parent_hashes_both_ways(tmp_path):
    gallery = Gallery(tmp_path)
    outside = make_artwork(seed=99)
    outside.record.sha256 = pixel_hash(outside.image)  # a source image that was never saved to the gallery
    root = make_artwork(seed=1)
    gallery.add(root)
    child = child_of(root, 2)
    gallery.add(child)
    other = make_artwork(seed=3)
    gallery.add(other)
    grandchild = child_of(child, 4, other, outside)  # restored from `child`, mixing in two more images
    gallery.add(grandchild)
    unrelated = make_artwork(seed=5)
    gallery.add(unrelated)

    family = gallery.lineage(grandchild.record.sha256)
    assert isinstance(family, Lineage) and family.sha256 == grandchild.record.sha256
    assert [a.record.seed for a in family.artworks] == [4]
    assert family.ancestor_hashes == [
        child.record.sha256,
        other.record.sha256,
        outside.record.sha256,
        root.record.sha256,
    ]  # nearest first
    assert [a.record.seed for a in family.ancestors] == [2, 3, 1]
    assert family.unknown == [outside.record.sha256] and family.descendants == []

    down = gallery.lineage(root.record.sha256[:10])  # a unique prefix will do, as in the file names
    assert [a.record.seed for a in down.descendants] == [2, 4] and down.ancestors == []
    assert gallery.lineage(root).descendant_hashes == down.descendant_hashes  # an Artwork will do too
    assert gallery.lineage(outside.record.sha256).descendant_hashes == [grandchild.record.sha256]
    assert gallery.lineage(unrelated.record.sha256).ancestor_hashes == []
    assert "4 ancestor(s)" in repr(family)

    child.path.unlink()  # a deleted PNG: its record still links the family, its image is gone
    family = Gallery(tmp_path).lineage(grandchild.record.sha256)
    assert family.ancestor_hashes[0] == child.record.sha256
    assert [a.record.seed for a in family.ancestors] == [3, 1]


def test_lineage_refuses_what_it_cannot_name(tmp_path):
    gallery = Gallery(tmp_path)
    gallery.add(make_artwork(seed=1))
    with pytest.raises(KitError, match="no image with sha256"):
        gallery.lineage("0" * 64)
    with pytest.raises(KitError, match="8 to 64 hex digits"):
        gallery.lineage("abc")
    with pytest.raises(KitError, match="8 to 64 hex digits"):
        gallery.lineage(42)


def test_a_cycle_of_forged_parents_ends(tmp_path):
    gallery = Gallery(tmp_path)
    a, b = make_artwork(seed=1), make_artwork(seed=2)
    a.record.sha256, b.record.sha256 = pixel_hash(a.image), pixel_hash(b.image)
    a.record.extra["parents"] = [b.record.sha256]  # a record is data: a forged loop must not hang
    b.record.extra["parents"] = [a.record.sha256, "not a hash"]
    gallery.add(a)
    gallery.add(b)
    family = gallery.lineage(a.record.sha256)
    assert family.ancestor_hashes == [b.record.sha256] and family.descendant_hashes == [b.record.sha256]
