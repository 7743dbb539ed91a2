"""Galleries, records and marks as a hostile or broken file writes them.

By class, not by example: every field of a record forged in type, size, depth and encoding; every file
the gallery reads truncated, replaced, made a folder, a FIFO or a symlink; every write on a full disk or
cut short. Each case asserts what a user sees (a KitError naming the field, or the right answer) and that
nothing the kit did not write is touched. FIFO cases run in a child process with a hang guard (never a
speed assertion).
"""

import datetime
import json
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from disks import on_a_small_disk
from PIL import Image, PngImagePlugin

import kit
from kit.errors import KitError
from kit.provenance.artwork import Artwork, pixel_hash
from kit.provenance.gallery import Gallery
from kit.provenance.record import Record

ROOT = Path(__file__).resolve().parent.parent
GUARD = 120  # seconds: a hang guard for child processes


def noise(seed=0, side=16):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8))


def artwork(seed=0, **fields):
    return Artwork(noise(seed), Record(prompt=f"hostile {seed}", seed=seed, width=16, height=16, **fields))


def forged_png(path: Path, data, image=None) -> Path:
    """A PNG whose kit chunk holds `data` (a dict dumped as JSON, or text as it is), as a forger writes it."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt("kit", data if isinstance(data, str) else json.dumps(data))
    (image or noise()).save(path, pnginfo=info)
    return path


def everything_below(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# -- a record's fields name files: data never chooses a path -------------------------------------

TRAVERSALS = [
    "/../../escaped",
    "../../escaped",
    "a/b/c",
    "..",
    "abc\x00def",
    "../" * 30 + "x" * 40,
    "C:\\\\escaped",
    "0" * 63 + "/",
    "g" * 64,
]


@pytest.mark.parametrize("sha", TRAVERSALS)
def test_a_forged_hash_never_writes_outside_the_gallery(tmp_path, sha):
    gallery_folder = tmp_path / "deep" / "er" / "gallery"
    gallery = Gallery(gallery_folder)
    before = everything_below(tmp_path)
    with pytest.raises(KitError, match="sha256"):
        gallery.add(Artwork(noise(), Record(prompt="forged", sha256=sha)))
    with pytest.raises(KitError, match="sha256"):
        Record.from_dict({"prompt": "forged", "sha256": sha})
    assert everything_below(tmp_path) == before  # no file, no folder, inside or out


def test_a_forged_hash_in_a_png_is_refused_when_read_and_the_gallery_still_opens(tmp_path):
    folder = tmp_path / "gallery"
    Gallery(folder).add(artwork(1))
    forged_png(folder / "forged.png", {"prompt": "x", "sha256": "/../../escaped"})
    with pytest.raises(KitError, match="Record.sha256"):
        kit.load(folder / "forged.png")
    with pytest.warns(UserWarning, match="forged.png"):
        gallery = Gallery(folder)
    assert len(gallery) == len(list(gallery)) == 1
    assert everything_below(tmp_path) == {"gallery", *(f"gallery/{p.name}" for p in folder.iterdir())}


def test_an_upper_case_hash_is_the_same_hash(tmp_path):
    art = artwork(2)
    art.record.sha256 = pixel_hash(art.image).upper()
    art = Artwork(art.image, Record.from_dict(art.record.to_dict()))
    path = Gallery(tmp_path).add(art)
    assert kit.load(path).verified is True


def test_a_picture_changed_after_it_was_made_is_not_saved_under_its_old_hash(tmp_path):
    art = artwork(3)
    art.save(tmp_path / "first")  # the record now holds the pixels' hash
    art.image = art.image.rotate(90)
    with pytest.raises(KitError, match="Artwork.image is not the picture its record describes"):
        art.save(tmp_path / "second")
    assert not (tmp_path / "second").exists() or not any((tmp_path / "second").iterdir())
    fresh = Artwork(art.image, Record(kind="imported", prompt="rotated"))  # what the error says to do
    assert kit.load(fresh.save(tmp_path / "second")).verified is True


# -- every field forged in type, size, depth and encoding ------------------------------------------


def nested(depth):
    value = "bottom"
    for _ in range(depth):
        value = {"down": value}
    return value


FIELD_FORGERIES = [
    ({"extra": {"note": "\ud800"}}, "Record.extra['note'] holds a character that is not text"),
    ({"extra": {"\udc80": 1}}, "key holds a character that is not text"),
    ({"prompt": "a \udfff b"}, "Record.prompt holds a character that is not text"),
    ({"style": "\ud83d"}, "Record.style holds a character that is not text"),
    ({"walk": nested(200)}, "nests deeper than"),
    ({"extra": {"deep": nested(40)}}, "nests deeper than"),
    ({"extra": [1, 2]}, "Record.extra must be a dict"),
    ({"restyle": "a path"}, "Record.restyle must be a dict"),
    ({"seed": "²"}, "Record.seed must be an integer"),
    ({"seed": [1]}, "Record.seed must be an integer"),
    ({"steps": 1e400}, "Record.steps must be an integer"),
    ({"guidance": "x"}, "Record.guidance must be a number"),
    ({"authorship": {"person": [{"action": "\ud800"}]}}, "not text"),
    ({"authorship": {"person": "typed"}}, "authorship"),
    ({"prompt": {"text": "x"}}, "Record.prompt must be a string"),
]


@pytest.mark.parametrize("fields, message", FIELD_FORGERIES)
def test_every_forged_field_is_a_kit_error_naming_it(tmp_path, fields, message):
    with pytest.raises(KitError, match=message.replace("[", r"\[").replace("(", r"\(")):
        Record.from_dict({"prompt": "x", **fields})
    if "\ud800" in json.dumps(fields) or any(isinstance(v, float) for v in fields.values()):
        return  # not writable as a PNG chunk by PIL, or not JSON: the dict case above is the file's case
    path = forged_png(tmp_path / "forged.png", {"prompt": "x", **fields})
    with pytest.raises(KitError, match="record in"):
        kit.load(path)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000])
def test_a_record_nested_100000_deep_is_a_kit_error_not_a_recursion_error(tmp_path, text):
    with pytest.raises(KitError, match="Record JSON"):
        Record.from_json(text)
    with pytest.raises(KitError, match="record in"):
        kit.load(forged_png(tmp_path / "deep.png", text))


def test_a_lone_surrogate_in_a_credit_names_the_field(tmp_path):
    gallery = Gallery(tmp_path)
    path = gallery.add(artwork(4))
    sha = kit.load(path).record.sha256
    with pytest.raises(KitError, match="action.*not text"):
        gallery.credit(sha, {"action": "picked", "note": "\ud800"})
    assert gallery.credits(sha) == []  # nothing half-noted


# -- names and folders with NUL bytes or too long: the error names the field -------------------------


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda tmp: Gallery(tmp / "a\x00b"), "folder"),
        (lambda tmp: artwork(5).save(tmp, name="por\x00trait"), "name"),
        (lambda tmp: artwork(5).save(tmp / "x\x00y"), "folder"),
        (lambda tmp: artwork(5).save(tmp, name="n" * 300), "name"),
        (lambda tmp: artwork(5).save(tmp / ("d" * 300)), "folder"),
        (lambda tmp: kit.load(tmp / "a\x00.png"), "path"),
        (lambda tmp: kit.load("p" * 5000), "path"),
        (lambda tmp: artwork(5).save(tmp, name=7), "name"),
    ],
)
def test_nul_bytes_and_overlong_names_are_kit_errors_naming_the_field(tmp_path, call, field):
    with pytest.raises(KitError, match=field):
        call(tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- the marks log: one reader that skips and reports what is not a mark ---------------------------


def test_marks_that_are_not_marks_are_skipped_and_reported(tmp_path):
    gallery = Gallery(tmp_path)
    sha = kit.load(gallery.add(artwork(6))).record.sha256
    gallery.credit(sha, {"action": "picked", "of": 4})
    good = {"sha256": sha, "mark": "hidden", "at": "2026-01-01T00:00:00+00:00"}
    bad = [
        {"sha256": sha, "mark": "person"},  # no action
        {"sha256": sha, "mark": "person", "action": "picked"},  # the action is text, not an object
        {"sha256": sha, "mark": "person", "action": {"of": 4}},  # an action without its name
        {"sha256": "../../x", "mark": "hidden"},
        {"sha256": sha, "mark": 7},
        [sha, "hidden"],
    ]
    with open(gallery.marks_file, "ab") as log:
        for mark in bad:
            log.write(json.dumps(mark).encode() + b"\n")
        log.write(
            json.dumps({"sha256": sha, "mark": "person", "action": {"action": "élève"}}, ensure_ascii=False).encode()[
                :-4
            ]
            + b"\n"
        )  # cut inside the UTF-8 of è
        log.write(b"[" * 50_000 + b"\n")
        log.write(b"\xff\xfe not utf-8\n")
        log.write(json.dumps(good).encode() + b"\n")
    with pytest.warns(UserWarning, match="skipped 9 line"):
        reopened = Gallery(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert reopened.credits(sha) == [{"action": "picked", "of": 4}]
        assert "The person picked this image out of 4 candidates." in reopened.authorship(sha)
        assert reopened.hidden() == {sha}  # the good line after the bad ones still counts


def test_a_mark_written_after_a_cut_line_is_kept(tmp_path):
    """A write cut short (a full disk, a kill) leaves a line without its newline: the next mark must not
    be glued onto it, or a hide reported as done would be lost."""
    gallery = Gallery(tmp_path)
    sha = kit.load(gallery.add(artwork(7))).record.sha256
    with open(gallery.marks_file, "ab") as log:
        log.write(b'{"sha256": "' + sha.encode() + b'", "mark": "pers')  # the cut credit
    with pytest.warns(UserWarning, match="skipped 1 line"):  # the cut line, reported when the log is read
        gallery.hide(sha)
    assert Gallery(tmp_path).hidden() == {sha}
    assert sha not in {a.record.sha256 for a in Gallery(tmp_path).find()}
    (tmp_path / "gallery.sqlite").unlink()  # a rebuilt index reads the log again: the hide is still there
    with pytest.warns(UserWarning, match="skipped 1 line"):
        assert Gallery(tmp_path).hidden() == {sha}


FULL_DISK_MARKS = textwrap.dedent("""
    import json, os, sys, warnings
    import numpy as np
    from PIL import Image
    from kit.provenance.artwork import Artwork
    from kit.errors import KitError
    from kit.provenance.gallery import Gallery
    from kit.provenance.record import Record

    warnings.simplefilter("ignore")
    folder = sys.argv[1]
    gallery = Gallery(folder)
    path = gallery.add(Artwork(Image.new("RGB", (8, 8)), Record(prompt="full")))
    sha = gallery.find()[0].record.sha256
    gallery.credit(sha, {"action": "picked", "of": 2})  # the log's last page part full: the next write is cut
    ballast = os.path.join(folder, "ballast")
    with open(ballast, "wb", buffering=0) as out:  # fill the disk to the last byte
        try:
            while True:
                out.write(b"x" * 4096)
                out.flush()
        except OSError:
            pass
        try:
            while True:
                out.write(b"x")
                out.flush()
        except OSError:
            pass
    errors = []
    for note in range(3):
        try:
            gallery.credit(sha, {"action": "picked", "of": 4, "note": "n" * 3000})
        except KitError as err:
            errors.append(str(err))
    os.unlink(ballast)
    gallery.hide(sha)  # with room again: must be kept
    print(json.dumps({"errors": errors, "hidden": sorted(Gallery(folder).hidden()), "sha": sha,
                      "credits": len(Gallery(folder).credits(sha))}))
""")


def test_on_a_full_disk_a_credit_says_it_failed_and_a_later_hide_is_kept(tmp_path):
    result = on_a_small_disk(tmp_path, FULL_DISK_MARKS, "256k")
    assert result["errors"] and all("cannot write" in e for e in result["errors"])  # each failure said so
    assert result["hidden"] == [result["sha"]]  # the later success is kept
    assert result["credits"] == 1 + 3 - len(result["errors"])  # what was reported done is there, nothing more


# -- every file the gallery reads, truncated, replaced, a folder, a FIFO, a symlink ---------------------

BROKEN_FILES = textwrap.dedent("""
    import json, os, sys, warnings
    import numpy as np
    from PIL import Image
    from kit.provenance.artwork import Artwork
    from kit.errors import KitError
    from kit.provenance.gallery import Gallery
    from kit.provenance.record import Record

    folder, target, how = sys.argv[1], sys.argv[2], sys.argv[3]
    warnings.simplefilter("ignore")
    gallery = Gallery(folder)
    for seed in range(2):
        image = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8))
        gallery.add(Artwork(image, Record(prompt=f"file {seed}", seed=seed)))
    sha = gallery.find(seed=0)[0].record.sha256
    gallery.hide(sha)
    pngs = sorted(p for p in os.listdir(folder) if p.endswith(".png"))
    path = os.path.join(folder, {"png": pngs[0], "index": "gallery.sqlite", "marks": "gallery-marks.jsonl"}[target])
    outside = os.path.join(os.path.dirname(folder), "outside")
    with open(outside, "wb") as out:
        out.write(b"the user's own file")
    data = open(path, "rb").read()
    for suffix in ("-journal",):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    os.unlink(path)
    if how == "truncated":
        open(path, "wb").write(data[: len(data) // 2])
    elif how == "empty":
        open(path, "wb").close()
    elif how == "folder":
        os.mkdir(path)
    elif how == "fifo":
        os.mkfifo(path)
    elif how == "symlink":
        os.symlink(outside, path)
    elif how == "replaced":
        open(path, "wb").write(b"\\x89PNG\\r\\n\\x1a\\n" + b"junk" * 100)
    result = {}
    try:
        opened = Gallery(folder)
        result["len"] = len(opened)
        result["listed"] = len(list(opened))
        result["found"] = len(opened.find(hidden=True))
        result["hidden"] = len(opened.hidden())
        opened.hide(opened.find(seed=1)[0].record.sha256) if opened.find(seed=1) else None
    except KitError as err:
        result["error"] = str(err)
    result["outside"] = open(outside, "rb").read().decode()
    print(json.dumps(result))
""")


@pytest.mark.parametrize("target", ["png", "index", "marks"])
@pytest.mark.parametrize("how", ["truncated", "empty", "folder", "fifo", "symlink", "replaced"])
def test_every_gallery_file_broken_every_way_is_a_clear_error_or_a_right_answer(tmp_path, target, how):
    folder = tmp_path / "gallery"
    out = subprocess.run(
        [sys.executable, "-c", BROKEN_FILES, str(folder), target, how],
        capture_output=True,
        text=True,
        timeout=GUARD,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["outside"] == "the user's own file"  # nothing outside the gallery written through a link
    if "error" in result:
        name = {"png": ".png", "index": "gallery.sqlite", "marks": "gallery-marks.jsonl"}[target]
        assert name in result["error"], result["error"]
        assert target != "png", "a broken PNG must not stop the gallery"
        return
    assert result["len"] == result["listed"]  # len() and iteration agree
    if target == "png":
        assert result["listed"] == (2 if how == "symlink" and False else 1)
    else:
        assert result["listed"] == 2


def test_a_png_replaced_by_another_file_leaves_len_and_iteration_agreeing(tmp_path):
    gallery = Gallery(tmp_path)
    first, second = gallery.add(artwork(8)), gallery.add(artwork(9))
    first.write_bytes(b"not a png any more")
    with pytest.warns(UserWarning):
        assert len(gallery) == len(list(gallery)) == 1
    other = artwork(10)
    other.save(tmp_path / "elsewhere")
    shutil.copyfile(other.path, second)  # replaced by another readable kit PNG: listed as what it is now
    assert [a.record.seed for a in gallery] == [10] and len(gallery) == 1


# -- filters ---------------------------------------------------------------------------------------


def test_the_prompt_filter_folds_case_beyond_ascii(tmp_path):
    gallery = Gallery(tmp_path)
    gallery.add(Artwork(noise(11), Record(prompt="portrait d'une élève", seed=11)))
    gallery.add(Artwork(noise(12), Record(prompt="ΣΟΦΙΑ in gold", seed=12)))
    assert [a.record.seed for a in gallery.find(prompt="ÉLÈVE")] == [11]
    assert [a.record.seed for a in gallery.find(prompt="e\u0301le\u0300ve")] == [11]  # decomposed accents
    assert [a.record.seed for a in gallery.find(prompt="σοφια")] == [12]


@pytest.mark.parametrize(
    "since, until",
    [
        (None, "9999-12-31"),
        (None, datetime.date.max),
        (None, datetime.datetime.max),
        (datetime.datetime.min, None),
        (datetime.date.min, datetime.date.max),
        (datetime.datetime.min.replace(tzinfo=datetime.timezone(datetime.timedelta(hours=5))), "9999-12-31T23:59"),
    ],
)
def test_the_first_and_last_dates_a_calendar_holds_are_filters_like_any_other(tmp_path, since, until):
    gallery = Gallery(tmp_path)
    gallery.add(artwork(13))
    assert len(gallery.find(since=since, until=until)) == 1


def test_the_gallery_browser_takes_the_last_date_and_refuses_a_superscript_seed(tmp_path):
    from kit.widgets.gallery_browser import GalleryBrowser

    Gallery(tmp_path).add(artwork(14))
    ui = GalleryBrowser(tmp_path)
    ui.until.value = "9999-12-31"
    assert ui.error == "" and ui.total == 1
    ui.seed.value = "²"
    assert "seed must be a whole number" in ui.error and ui.total == 1  # the last view kept
    ui.seed.value = "14"
    assert ui.error == "" and ui.total == 1


def test_continuing_from_a_seed_beyond_a_seed_field_says_so_rather_than_round_it(tmp_path):
    from kit.widgets.gallery_browser import GalleryBrowser

    Gallery(tmp_path).add(artwork(2**60 + 1))
    ui = GalleryBrowser(tmp_path)
    ui.open_record(0)
    assert ui.continue_in("PromptStudio") is None
    assert str(2**60 + 1) in ui.error and "continue in code" in ui.error


def test_an_imported_png_can_be_opened_hidden_and_traced(tmp_path):
    from kit.widgets.gallery_browser import GalleryBrowser

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a pasted portrait\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 16x16")
    noise(15).save(tmp_path / "from-the-web-ui.png", pnginfo=info)
    gallery = Gallery(tmp_path)
    (art,) = gallery.find()
    assert art.record.kind == "imported" and art.record.sha256 == pixel_hash(art.image) and art.verified is False
    ui = GalleryBrowser(tmp_path)
    ui.open_record(0)
    assert ui.error == "" and ui.opened is not None
    ui.toggle_hidden()
    assert ui.error == "" and gallery.hidden() == {art.record.sha256}
    assert gallery.lineage(art.record.sha256).artworks[0].record.prompt == "a pasted portrait"
