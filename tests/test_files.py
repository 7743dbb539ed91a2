"""The one safe writer: atomic, usual file modes, never overwrites unless told, cleans only its own temp files."""

import os
import stat
import subprocess
import sys

import pytest

import kit.files
from kit import KitError
from kit.files import clean_temp_files, write_atomic


def test_write_replace_error_and_number(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    assert write_atomic(path, b"one") == path and path.read_bytes() == b"one"  # the folder is made
    write_atomic(path, lambda f: f.write(b"two"))
    assert path.read_bytes() == b"two"
    with pytest.raises(KitError, match="already exists"):
        write_atomic(path, b"three", exist="error")
    assert path.read_bytes() == b"two"
    assert write_atomic(path, b"three", exist="number") == tmp_path / "sub" / "a-1.txt"
    assert write_atomic(path, b"four", exist="number") == tmp_path / "sub" / "a-2.txt"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a-1.txt", "a-2.txt", "a.txt"]  # no temp left


def test_new_files_get_the_usual_modes(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_atomic(tmp_path / "shared.png", b"x", exist="number")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by others sharing a gallery


def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "a.txt"
    write_atomic(path, b"old")

    def broken(file):
        file.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(KitError, match="No space left"):
        write_atomic(path, broken)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_only_temp_files_of_dead_kit_writers_are_cleaned(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    host = kit.files._host()
    leftovers = tmp_path / f".kit-{dead_pid}@{host}-abc_1234.tmp"  # write_atomic's whole name
    mine = tmp_path / f".kit-{os.getpid()}@{host}-def_1234.tmp"  # a write in progress in a live process
    theirs = tmp_path / ".other-123.tmp"  # not the kit's name
    elsewhere = tmp_path / f".kit-{dead_pid}@another_machine-xyz.tmp"  # a shared folder: not ours to judge
    for path in (leftovers, mine, theirs, elsewhere):
        path.write_bytes(b"x")
    assert clean_temp_files(tmp_path) == [leftovers]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, theirs.name, elsewhere.name])


def test_the_writers_temp_files_name_their_process_and_machine(tmp_path, monkeypatch):
    import kit.files as files

    seen = []
    write_atomic(tmp_path / "a.txt", lambda f: seen.extend(p.name for p in tmp_path.iterdir()))
    assert len(seen) == 1 and seen[0].startswith(f".kit-{os.getpid()}@{files._host()}-")
    leftover = tmp_path / seen[0]
    leftover.write_bytes(b"x")  # as if this writer had been killed ...
    monkeypatch.setattr(files, "_alive", lambda pid: False)
    assert clean_temp_files(tmp_path) == [leftover]  # ... it is cleaned on this machine


# ---------------------------------------------------------------- the one reader's file access


def test_read_file_reads_regular_files_only(tmp_path):
    from kit.files import ReadError, read_file

    (tmp_path / "a.bin").write_bytes(b"abc")
    assert read_file(tmp_path / "a.bin") == b"abc"
    os.symlink(tmp_path / "a.bin", tmp_path / "link.bin")
    assert read_file(tmp_path / "link.bin") == b"abc"  # a symlink to a regular file is fine
    os.mkfifo(tmp_path / "pipe")  # no writer: opening it would block; it is refused by its type
    for path, reason in [
        (tmp_path, "a folder"),
        (tmp_path / "pipe", "a FIFO"),
        ("/dev/null", "a device"),
        (tmp_path / "nope", "no such file"),
        (tmp_path / "a.bin" / "x", "no such file"),
    ]:
        with pytest.raises(ReadError, match=f"^list: cannot read an image from .*: {reason}") as caught:
            read_file(path, field="list")
        assert caught.value.__cause__ is None
    with pytest.raises(ReadError, match="too large: 3 bytes is over the limit of 2"):
        read_file(tmp_path / "a.bin", max_bytes=2)
