"""Fault drills for the gallery and the embedding cache: nothing lost, nothing hangs.

Each drill breaks something the way it breaks in a classroom (a damaged index, a kill -9 in the
middle of a save, a full disk, two kernels saving at once, a damaged cache) and asserts three
things: a KitError that names the problem or the recovery, nothing already made is lost (every
listed image's pixel hash verifies), and the drill ends (subprocess timeouts are hang guards
only; no test measures wall-clock time).
"""

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from disks import on_a_small_disk
from PIL import Image

import kit.files
from kit.errors import KitError
from kit.maps.embed_cache import VectorCache
from kit.provenance.artwork import Artwork, pixel_hash
from kit.provenance.gallery import Gallery
from kit.provenance.record import Record

ROOT = Path(__file__).resolve().parent.parent
GUARD = 120  # seconds: a hang guard for subprocesses, never an assertion on speed


def noise_image(seed=0, side=32):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))


def make_artwork(seed=0, side=32, **changes):
    return Artwork(
        noise_image(seed, side), Record(prompt=f"drill {seed}", seed=seed, width=side, height=side, **changes)
    )


def pngs(folder: Path) -> dict[str, bytes]:
    """The complete PNGs in a folder (temp files are hidden and end in .tmp), by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png")) if not p.name.startswith(".")}


def assert_listed_and_verified(gallery: Gallery) -> list[str]:
    """Every listed image loads and its pixels match the hash its record and the index hold; the names."""
    with sqlite3.connect(gallery.index) as db:
        indexed = dict(db.execute("SELECT file, sha256 FROM artworks").fetchall())
    db.close()
    arts = list(gallery)
    assert len(arts) == len(gallery), "len() and iteration disagree"
    for art in arts:
        assert art.verified is True, f"{art.path.name} does not verify"
        assert pixel_hash(art.image) == art.record.sha256 == indexed[art.path.name]
    return [art.path.name for art in arts]


# A child process that saves artworks into a gallery and prints each file name once it is listed.
#   argv: folder, first seed, count (-1: until killed), side in pixels, stage
#   stage "write": after `count` saves, one more hangs with its PNG fully written but not renamed
#   stage "index": after `count` saves, one more is killed (SIGKILL) between the rename and the index
CHILD = textwrap.dedent("""
    import os, signal, sys, time
    import numpy as np
    from PIL import Image
    import kit.files
    from kit.provenance.artwork import Artwork
    from kit.provenance.gallery import Gallery
    from kit.provenance.record import Record

    folder, first, count, side, stage = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    gallery = Gallery(folder)
    print("open", flush=True)
    seed = first
    while count < 0 or seed < first + count:
        image = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8))
        path = gallery.add(Artwork(image, Record(prompt=f"drill {seed}", seed=seed, width=side, height=side)))
        print(path.name, flush=True)
        seed += 1
    if stage == "write":
        def hang(fd):
            print("hanging", flush=True)
            time.sleep(600)
        kit.files.os.fsync = hang
    elif stage == "index":
        Gallery._write = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
    if stage != "none":
        image = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8))
        gallery.add(Artwork(image, Record(prompt=f"drill {seed}", seed=seed, width=side, height=side)))
""")


def spawn(folder, first=0, count=3, side=32, stage="none") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder), str(first), str(count), str(side), stage],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def read_until(child: subprocess.Popen, stop, guard=GUARD) -> list[str]:
    """Lines the child prints until `stop(lines)` is true or it exits; the child is killed if it hangs."""
    watchdog = threading.Timer(guard, child.kill)
    watchdog.start()
    lines = []
    try:
        for line in child.stdout:
            lines.append(line.strip())
            if stop(lines):
                break
    finally:
        watchdog.cancel()
    return lines


def kill9(child: subprocess.Popen) -> list[str]:
    """SIGKILL the child, reap it, and return what it had printed but we had not read yet."""
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate(timeout=GUARD)
    return [line for line in rest.splitlines() if line]


def saved(lines: list[str]) -> list[str]:
    return [line for line in lines if line.endswith(".png")]


# -- a damaged index -------------------------------------------------------------------


def damage(index: Path, how: str) -> None:
    data = bytearray(index.read_bytes())
    assert len(data) >= 5 * 4096, "the drill needs an index of several pages"
    if how == "garbage-pages":
        data[2 * 4096 : 4 * 4096] = np.random.default_rng(0).integers(0, 256, 2 * 4096, dtype=np.uint8).tobytes()
    elif how == "zeroed-page":
        data[3 * 4096 : 4 * 4096] = bytes(4096)
    elif how == "header":
        data[:100] = b"x" * 100
    elif how == "truncated":
        del data[len(data) // 2 :]
    index.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["garbage-pages", "zeroed-page", "header", "truncated"])
def test_a_damaged_index_names_the_repair_and_the_repair_loses_no_png(tmp_path, how):
    gallery = Gallery(tmp_path)
    for seed in range(40):
        gallery.add(make_artwork(seed, side=8, negative="n" * 400))  # long records: an index of many pages
    before = pngs(tmp_path)
    damage(gallery.index, how)

    with pytest.raises(KitError, match="is damaged") as caught:
        Gallery(tmp_path)
    assert "Gallery.repair(" in str(caught.value) and str(tmp_path) in str(caught.value)

    with pytest.warns(UserWarning, match="set aside"):
        repaired = Gallery.repair(tmp_path)
    assert pngs(tmp_path) == before  # not one PNG deleted or changed
    assert sorted(assert_listed_and_verified(repaired)) == sorted(before)
    assert [a.record.seed for a in repaired] == list(range(40))  # in the order they were made
    aside = list(tmp_path.glob("gallery.sqlite.damaged-*"))
    assert len(aside) == 1 and aside[0].stat().st_size > 0  # kept, not deleted
    assert len(Gallery(tmp_path)) == 40
    assert len(Gallery.repair(tmp_path)) == 40 and len(list(tmp_path.glob("gallery.sqlite.damaged-*"))) == 1


# -- a crash between the two steps, and temp files -------------------------------------


def test_kill9_between_the_rename_and_the_index_loses_nothing(tmp_path):
    child = spawn(tmp_path, count=3, stage="index")
    out, err = child.communicate(timeout=GUARD)
    assert child.returncode == -signal.SIGKILL, err
    listed = saved(out.splitlines())
    assert len(listed) == 3
    on_disk = pngs(tmp_path)
    assert len(on_disk) == 4  # the fourth PNG was renamed into place, then the process died

    reopened = Gallery(tmp_path)  # the next open finds it without being asked
    names = assert_listed_and_verified(reopened)
    assert set(listed) < set(names) and set(names) == set(on_disk)


def test_kill9_while_writing_leaves_a_temp_file_that_the_next_open_removes(tmp_path):
    child = spawn(tmp_path, count=2, stage="write")
    lines = read_until(child, lambda lines: lines[-1] == "hanging")
    assert lines[-1] == "hanging", child.stderr.read()
    temps = list(tmp_path.glob(f".kit-{child.pid}[@-]*.tmp"))
    assert len(temps) == 1 and temps[0].stat().st_size > 0  # a whole PNG, never renamed
    lines += kill9(child)

    reopened = Gallery(tmp_path)
    assert not temps[0].exists()  # its writer is dead: the kit's clean-up removed it
    assert sorted(assert_listed_and_verified(reopened)) == sorted(saved(lines)) == sorted(pngs(tmp_path))


def test_only_dead_writers_temp_files_are_removed(tmp_path):
    Gallery(tmp_path).add(make_artwork(1))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=GUARD,
    )
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        host, gone = kit.files._host(), dead.stdout.strip()
        files = {  # named as write_atomic names its temp files: .kit-<pid>@<host>-<8 random>.tmp
            "dead": tmp_path / f".kit-{gone}@{host}-abc_1234.tmp",  # a killed save's leftover
            "alive": tmp_path / f".kit-{alive.pid}@{host}-def_1234.tmp",  # another process's save in progress
            "mine": tmp_path / f".kit-{os.getpid()}@{host}-ghi_1234.tmp",  # this process's own
            "other machine": tmp_path / f".kit-{gone}@not-{host}-jkl_1234.tmp",  # a shared folder's other writer
            # a user's own files that only look like the kit's: never removed, whatever their number says
            "user": tmp_path / ".kit-notes.tmp",
            "user with a number": tmp_path / f".kit-{gone}-notes.tmp",
            "user with a host": tmp_path / f".kit-{gone}@{host}-my-notes.tmp",
            "user, long": tmp_path / f".kit-{gone}@{host}-abc_12345.tmp",
        }
        for path in files.values():
            path.write_bytes(b"\x89PNG partial")
        reopened = Gallery(tmp_path)
        assert {name: path.exists() for name, path in files.items()} == {
            "dead": False,
            **{name: True for name in files if name != "dead"},
        }
        assert len(assert_listed_and_verified(reopened)) == 1
    finally:
        alive.kill()
        alive.wait(timeout=GUARD)


def test_kill9_at_a_random_moment_loses_nothing_listed(tmp_path):
    child = spawn(tmp_path, count=-1, side=192)  # saves until killed: the kill lands wherever it lands
    lines = read_until(child, lambda lines: len(saved(lines)) >= 6)
    assert len(saved(lines)) >= 6, child.stderr.read()
    lines += kill9(child)

    reopened = Gallery(tmp_path)
    names = assert_listed_and_verified(reopened)
    assert set(saved(lines)) <= set(names)  # everything it had listed is still there and verifies
    assert set(names) == set(pngs(tmp_path))  # and every complete PNG is listed
    assert not list(tmp_path.glob(f".kit-{child.pid}[@-]*"))


# -- two processes at once ---------------------------------------------------------------


def test_two_processes_saving_into_one_gallery_lose_nothing(tmp_path):
    # The same seeds in both: the same images and the same file names, so every save races for a name.
    children = [spawn(tmp_path, first=0, count=10), spawn(tmp_path, first=0, count=10)]
    outputs = [child.communicate(timeout=GUARD) for child in children]
    for child, (_out, err) in zip(children, outputs):
        assert child.returncode == 0, err
    listed = [name for out, _ in outputs for name in saved(out.splitlines())]
    assert len(listed) == len(set(listed)) == 20  # no name written twice, none overwritten

    gallery = Gallery(tmp_path)
    names = assert_listed_and_verified(gallery)
    assert sorted(names) == sorted(listed) == sorted(pngs(tmp_path))
    assert sorted(a.record.seed for a in gallery) == sorted([*range(10)] * 2)


# -- a full disk ----------------------------------------------------------------------------


class DiskFull:
    """os.fdopen for kit.files' temp files only: from the `fail_at`-th file on, writes fail with ENOSPC."""

    def __init__(self, fail_at: int):
        self.fail_at, self.files, self.real = fail_at, 0, os.fdopen

    def __call__(self, fd, *args, **kwargs):
        file = self.real(fd, *args, **kwargs)
        if sys._getframe(1).f_globals.get("__name__") != "kit.files":
            return file
        self.files += 1
        return _Filling(file) if self.files >= self.fail_at else file


class _Filling:
    def __init__(self, file):
        self._file, self._written = file, 0

    def write(self, data):
        if self._written + len(data) > 100:  # a few bytes fit, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._written += len(data)
        return self._file.write(data)

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._file.__exit__(*exc)


def test_a_full_disk_mid_batch_keeps_what_was_made(tmp_path, monkeypatch, studio):
    gallery = Gallery(tmp_path)
    monkeypatch.setattr(kit.files.os, "fdopen", DiskFull(fail_at=3))
    monkeypatch.setattr(studio, "gallery", gallery)
    with pytest.raises(KitError, match="is full") as caught:
        studio.generate("portrait of a weaver", seed=7, n=4)  # one batch, saved image by image
    message = str(caught.value)
    assert str(tmp_path) in message and "saved before it are kept" in message
    monkeypatch.undo()

    reopened = Gallery(tmp_path)  # the index still opens
    names = assert_listed_and_verified(reopened)
    assert len(names) == 2 and sorted(names) == sorted(pngs(tmp_path))
    assert [a.record.seed for a in reopened] == [7, 8]
    assert not list(tmp_path.glob(".kit-*"))  # the half-written third image left nothing behind


def test_a_full_disk_while_indexing_keeps_the_png_and_the_next_open_indexes_it(tmp_path, monkeypatch):
    gallery = Gallery(tmp_path)
    gallery.add(make_artwork(1))
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorname = "SQLITE_FULL"

    def refuse(*args):
        raise full

    monkeypatch.setattr(Gallery, "_write", refuse)
    with pytest.raises(KitError, match="could not index it .the disk is full.*next time the gallery is opened"):
        gallery.add(make_artwork(2))
    with pytest.warns(UserWarning, match="not indexed yet"):
        still_full = Gallery(tmp_path)  # opens on a full disk; what it cannot index waits
    assert len(still_full) == 1
    monkeypatch.undo()
    assert sorted(assert_listed_and_verified(Gallery(tmp_path))) == sorted(pngs(tmp_path))
    assert len(pngs(tmp_path)) == 2


# Run inside a fresh mount namespace on a tiny tmpfs: fill it, then reopen.
FULL_DISK = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np
    from PIL import Image
    from kit.provenance.artwork import Artwork, pixel_hash
    from kit.errors import KitError
    from kit.provenance.gallery import Gallery
    from kit.provenance.record import Record
    import warnings
    warnings.simplefilter("ignore")

    disk = Path(sys.argv[1])
    ballast = disk / "ballast"  # the drill's own file: freed at the end to make room again
    ballast.write_bytes(b"b" * 96 * 1024)
    folder = disk / "gallery"
    gallery = Gallery(folder)
    made, error = [], None
    try:
        for seed in range(10_000):
            image = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (48, 48, 3), dtype=np.uint8))
            made.append(gallery.add(Artwork(image, Record(seed=seed, width=48, height=48))).name)
    except KitError as err:
        error = str(err)

    def listing(gallery):
        arts = list(gallery)
        return {"len": len(gallery), "names": [a.path.name for a in arts],
                "verified": all(a.verified and pixel_hash(a.image) == a.record.sha256 for a in arts)}

    full = listing(Gallery(folder))  # reopened while the disk is still full
    temps = [p.name for p in folder.glob(".kit-*")]
    ballast.unlink()
    freed = listing(Gallery(folder))
    on_disk = sorted(p.name for p in folder.glob("*.png"))
    print(json.dumps({"made": made, "error": error, "full": full, "temps": temps, "freed": freed,
                      "pngs": on_disk}))
""")


def test_a_really_full_disk_keeps_what_was_made(tmp_path):
    """The same on a real file system that fills up: a 512 KiB tmpfs in a private mount namespace."""
    result = on_a_small_disk(tmp_path, FULL_DISK, "512k")

    assert result["error"] and "is full" in result["error"], result["error"]
    assert len(result["made"]) >= 3
    full, freed = result["full"], result["freed"]
    assert full["verified"] and full["len"] == len(full["names"])  # opened on the full disk
    assert set(result["made"]) <= set(full["names"])  # nothing already made is lost
    assert result["temps"] == []
    assert freed["verified"] and sorted(freed["names"]) == result["pngs"]  # with room again, every PNG is listed


# -- the embedding cache ------------------------------------------------------------------

DIM = 16


def unit(seed):
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def tamper(path, key, sql, *args):
    with sqlite3.connect(path) as db:
        db.execute(sql, (*args, key))
    db.close()


ROW_DAMAGE = {
    "short": lambda path, key: tamper(
        path,
        key,
        "UPDATE vectors SET vector = substr(vector, 1, 32), dim = 8, crc = ? WHERE key = ?",
        zlib.crc32(unit(0)[:8].tobytes()),
    ),
    "float64": lambda path, key: tamper(path, key, "UPDATE vectors SET dtype = 'float64' WHERE key = ?"),
    "flipped-bit": lambda path, key: tamper(
        path,
        key,
        "UPDATE vectors SET vector = ? WHERE key = ?",
        (lambda b: b[:5] + bytes([b[5] ^ 1]) + b[6:])(unit(0).tobytes()),
    ),
    "not-unit": lambda path, key: tamper(
        path,
        key,
        "UPDATE vectors SET vector = ?, crc = ? WHERE key = ?",
        (unit(0) * 2).tobytes(),
        zlib.crc32((unit(0) * 2).tobytes()),
    ),
    "nan": lambda path, key: tamper(
        path,
        key,
        "UPDATE vectors SET vector = ?, crc = ? WHERE key = ?",
        np.full(DIM, np.nan, np.float32).tobytes(),
        zlib.crc32(np.full(DIM, np.nan, np.float32).tobytes()),
    ),
    "unchecked": lambda path, key: tamper(
        path, key, "UPDATE vectors SET dim = NULL, dtype = NULL, crc = NULL WHERE key = ?"
    ),  # a row of the first cache version
}


@pytest.mark.parametrize("how", list(ROW_DAMAGE))
def test_a_damaged_cache_row_is_a_miss_never_a_wrong_vector(tmp_path, how):
    path = tmp_path / "cache.sqlite"
    cache = VectorCache(path)
    cache.put("m", {"bad": unit(0), "good": unit(1)})
    ROW_DAMAGE[how](path, "bad")
    fresh = VectorCache(path)
    with pytest.warns(UserWarning, match="computed again"):
        found = fresh.get("m", ["bad", "good"], DIM)
    assert list(found) == ["good"] and np.array_equal(found["good"], unit(1))
    assert fresh.rejected == 1
    fresh.put("m", {"bad": unit(0)})  # recomputed, stored again, and now it reads
    assert np.array_equal(VectorCache(path).get("m", ["bad"], DIM)["bad"], unit(0))


def test_vectors_that_are_not_unit_are_never_cached(tmp_path):
    cache = VectorCache(tmp_path / "cache.sqlite")
    with pytest.warns(UserWarning, match="not finite unit vectors"):
        cache.put("m", {"long": unit(0) * 3, "nan": np.full(DIM, np.nan), "ok": unit(2)})
    assert list(cache.get("m", ["long", "nan", "ok"], DIM)) == ["ok"]
    with pytest.warns(UserWarning, match="of another size"):
        assert cache.get("m", ["ok"], DIM + 1) == {}  # asked for another size: a miss


def test_a_cache_file_with_damaged_pages_is_set_aside_and_rebuilt(tmp_path):
    path = tmp_path / "cache.sqlite"
    VectorCache(path).put("m", {f"k{i}": unit(i) for i in range(400)})
    damage(path, "garbage-pages")
    cache = VectorCache(path)
    with pytest.warns(UserWarning, match="set aside as cache.sqlite.damaged-"):
        found = cache.get("m", [f"k{i}" for i in range(400)], DIM)
    assert found == {}  # every vector a miss, none read from damaged pages
    aside = list(tmp_path.glob("cache.sqlite.damaged-*"))
    assert len(aside) == 1 and aside[0].stat().st_size > 0  # kept, not deleted
    cache.put("m", {"k1": unit(1)})  # the fresh cache works
    assert np.array_equal(VectorCache(path).get("m", ["k1"], DIM)["k1"], unit(1)) and not cache.broken


def test_a_file_that_is_not_a_cache_is_left_alone(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"the user's own file, not a database " * 200)
    before = path.read_bytes()
    cache = VectorCache(path)
    with pytest.warns(UserWarning, match="not usable.*leaves it alone.*cache=False"):
        assert cache.get("m", ["k"], DIM) == {}
    cache.put("m", {"k": unit(0)})  # no error, no write
    assert cache.broken and path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


def test_the_embedder_recomputes_a_damaged_cached_vector(tmp_path):
    from kit.maps.embed import Embedder

    path = tmp_path / "cache.sqlite"
    first = Embedder("tiny", device="cpu", cache=path)
    expected = first.texts(["a weaver", "a potter"])
    with sqlite3.connect(path) as db:
        ((key, blob),) = db.execute("SELECT key, vector FROM vectors LIMIT 1").fetchall()
        db.execute("UPDATE vectors SET vector = ? WHERE key = ?", (blob[:7] + bytes([blob[7] ^ 0x40]) + blob[8:], key))
    db.close()
    again = Embedder("tiny", device="cpu", cache=path)
    again._clip = first._clip  # the same loaded model: no second load
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vectors = again.texts(["a weaver", "a potter"])
    assert any("computed again" in str(w.message) for w in caught)
    # the damaged row was recomputed (alone, so its last bits may differ from a batch of two), not returned
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
