"""Tests for records (kit.record), PNG metadata and load/replay (kit.artwork), and kit.provenance's re-exports.

The gallery's tests are in test_gallery.py and test_gallery_faults.py.
"""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

import kit
from kit.errors import KitError
from kit.provenance.artwork import Artwork, ReplayResult, load, pixel_hash, replay
from kit.provenance.gallery import Gallery
from kit.provenance.record import Record, parse_parameters


def noise_image(seed=0, size=(32, 24)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def make_record(**changes):
    values = dict(
        prompt="portrait of an elder, ukiyo-e woodblock print",
        negative="blurry",
        subject="portrait of an elder",
        style="ukiyo-e",
        seed=42,
        steps=4,
        guidance=1.5,
        width=32,
        height=24,
        preset="sd-turbo",
        model="stabilityai/sd-turbo",
        scheduler="EulerAncestralDiscreteScheduler",
        sampler="Euler a",
    )
    values.update(changes)
    return Record(**values)


def make_artwork(seed=42, **changes):
    return Artwork(noise_image(seed), make_record(seed=seed, **changes))


class FakeStudio:
    """Draws a deterministic image from the record's seed; ``poke`` changes one pixel."""

    def __init__(self, poke=0):
        self.poke = poke
        self.calls = []

    def render(self, record):
        self.calls.append(record)
        image = noise_image(record.seed, (record.width, record.height))
        pixels = np.array(image)
        pixels[0, 0] = (10 + self.poke, 10, 10)
        return Artwork(Image.fromarray(pixels), record)


# -- Record ------------------------------------------------------------------


def test_record_json_round_trip_and_defaults():
    record = make_record(
        fusion={"ukiyo-e": 0.6, "art-deco": 0.4},
        walk={"keyframes": [("a fox", 1), ("a crane", 2)], "method": "slerp", "t": 0.25},
    )
    assert record.walk["keyframes"] == [["a fox", 1], ["a crane", 2]]  # tuples stored as JSON lists
    again = Record.from_json(record.to_json())
    assert again == record
    assert Record.from_dict(record.to_dict()) == record

    old = Record.from_json('{"prompt": "a fox", "seed": 7}')  # a file written before most fields existed
    assert (old.prompt, old.seed, old.steps, old.decoder, old.extra) == ("a fox", 7, 1, "vae", {})
    assert old.kit_version == kit.__version__ and old.created.endswith("+00:00")


def test_record_keeps_unknown_keys_in_extra():
    record = Record.from_json('{"seed": 3, "future_field": [1, 2], "extra": {"note": "hi"}}')
    assert record.seed == 3
    assert record.extra == {"note": "hi", "future_field": [1, 2]}
    assert "future_field" not in record.to_dict()
    assert Record.from_json(record.to_json()) == record


@pytest.mark.parametrize(
    "text, field",
    [
        ('{"seed": "forty-two"}', "seed"),
        ('{"steps": 2.5}', "steps"),
        ('{"guidance": "high"}', "guidance"),
        ('{"prompt": ["a", "b"]}', "prompt"),
        ('{"fusion": [1, 2]}', "fusion"),
        ('{"style": 3}', "style"),
    ],
)
def test_record_rejects_wrong_types_naming_the_field(text, field):
    with pytest.raises(KitError, match=f"Record.{field}"):
        Record.from_json(text)


def test_record_rejects_non_objects_and_broken_json():
    with pytest.raises(KitError, match="dict"):
        Record.from_json("[1, 2]")
    with pytest.raises(KitError, match="JSON"):
        Record.from_json('{"seed": 1')
    with pytest.raises(KitError):
        Record.from_dict("seed=1")


def test_record_coerces_loose_numbers():
    record = Record(seed=np.int64(5), steps="3", width=64.0, guidance=np.float32(1.5))
    assert (record.seed, record.steps, record.width, record.guidance) == (5, 3, 64, 1.5)
    assert type(record.seed) is int and type(record.guidance) is float
    json.loads(record.to_json())  # numpy types are gone, so it serialises


def test_record_parents_names_the_images_it_was_made_from():
    a, b, c = "a" * 64, "B" * 64, "c" * 64
    record = make_record(
        kind="restore",
        restore={"source_sha256": a, "strength": 0.5},
        extra={"parents": [b.lower(), a, "not a hash", 7], "restyle": {"source_sha256": c}},
    )
    assert record.parents() == [a, b.lower(), c]  # in the order found, lower case, no repeats
    assert make_record().parents() == []
    assert make_record(extra={"parents": "a" * 64}).parents() == []  # only a list of hashes names parents
    assert make_record(restore={"source_sha256": "a" * 63}).parents() == []


# -- the web-UI parameters text ------------------------------------------------


def test_parameters_format_matches_the_web_ui_layout():
    text = make_record().parameters()
    assert text.split("\n") == [
        "portrait of an elder, ukiyo-e woodblock print",
        "Negative prompt: blurry",
        f"Steps: 4, Sampler: Euler a, CFG scale: 1.5, Seed: 42, Size: 32x24, Model: sd-turbo, "
        f"Style: ukiyo-e, Version: kit {kit.__version__}",
    ]
    # With no sampler name given, the scheduler class gives it; with neither, "Sampler" is left out.
    assert "Sampler: Euler a," in make_record(sampler="").parameters()
    assert "Sampler" not in make_record(sampler="", scheduler="MyScheduler").parameters()
    no_negative = make_record(negative="", style=None).parameters()
    assert "Negative prompt" not in no_negative
    assert no_negative.split("\n")[1].startswith("Steps: 4, Sampler: Euler a, CFG scale: 1.5, Seed: 42")


def test_parameters_parse_back_to_the_record_values():
    record = make_record(prompt="a fox\nin snow, (detailed:1.2)", negative="lowres\nwatermark")
    parsed = parse_parameters(record.parameters())
    assert parsed["Prompt"] == record.prompt
    assert parsed["Negative prompt"] == record.negative
    # "Size: 32x24" reads as Size-1 / Size-2, as the web UI's own reader gives it
    assert (parsed["Steps"], parsed["CFG scale"], parsed["Seed"]) == ("4", "1.5", "42")
    assert (parsed["Size-1"], parsed["Size-2"]) == ("32", "24") and "Size" not in parsed
    assert parsed["Sampler"] == "Euler a"
    imported = Record.from_parameters(record.parameters())
    assert (
        imported.prompt,
        imported.negative,
        imported.seed,
        imported.steps,
        imported.guidance,
        imported.width,
        imported.height,
        imported.sampler,
    ) == (record.prompt, record.negative, 42, 4, 1.5, 32, 24, "Euler a")
    assert imported.kind == "imported" and imported.kit_version == kit.__version__


def test_parameters_quote_values_with_commas_and_colons():
    record = make_record(preset="", model='C:\\models\\mine, v2 "final"', style="ukiyo-e, late")
    line = record.parameters().split("\n")[-1]
    assert 'Model: "C:\\\\models\\\\mine, v2 \\"final\\"", ' in line
    assert 'Style: "ukiyo-e, late", ' in line
    parsed = parse_parameters(record.parameters())
    assert parsed["Model"] == 'C:\\models\\mine, v2 "final"'
    assert parsed["Style"] == "ukiyo-e, late"
    assert parsed["Seed"] == "42" and parsed["Version"] == f"kit {kit.__version__}"


def test_parse_hand_written_web_ui_strings():
    a1111 = (
        "masterpiece, portrait of a weaver, (oil painting:1.2), <lora:detail:0.6>\n"
        "Negative prompt: lowres, bad anatomy,\n"
        "text, watermark\n"
        "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 965400086, "
        "Size: 512x768, Model hash: 45dee52b, Model: v1-5-pruned-emaonly, "
        'Lora hashes: "detail: 1a2b3c4d5e6f", Version: v1.10.1'
    )
    parsed = parse_parameters(a1111)
    assert parsed["Prompt"] == "masterpiece, portrait of a weaver, (oil painting:1.2), <lora:detail:0.6>"
    assert parsed["Negative prompt"] == "lowres, bad anatomy,\ntext, watermark"
    assert parsed["Steps"] == "20" and parsed["Schedule type"] == "Karras"
    assert parsed["Lora hashes"] == "detail: 1a2b3c4d5e6f"
    assert parsed["Model hash"] == "45dee52b" and parsed["Version"] == "v1.10.1"
    record = Record.from_parameters(a1111)
    assert (record.seed, record.steps, record.guidance, record.width, record.height) == (965400086, 20, 7.0, 512, 768)
    assert (record.sampler, record.model, record.kit_version) == ("DPM++ 2M", "v1-5-pruned-emaonly", "")
    assert record.extra["parameters"]["Model hash"] == "45dee52b"

    forge = (
        "a lighthouse at dusk\nSteps: 8, Sampler: Euler, CFG scale: 1, Seed: 7, Size: 1024x1024, "
        "Distilled CFG Scale: 3.5"
    )
    parsed = parse_parameters(forge)
    assert parsed["Prompt"] == "a lighthouse at dusk" and parsed["Negative prompt"] == ""
    assert parsed["Distilled CFG Scale"] == "3.5"

    # No settings line: everything is prompt, even a line with a couple of "key: value" bits.
    parsed = parse_parameters("a portrait\nstyle: ukiyo-e, mood: calm")
    assert parsed == {"Prompt": "a portrait\nstyle: ukiyo-e, mood: calm", "Negative prompt": ""}


# -- save / load ---------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    art = make_artwork()
    assert art.record.sha256 == ""
    path = art.save(tmp_path)
    assert path.parent == tmp_path and path.suffix == ".png" and art.path == path
    assert art.record.sha256 == pixel_hash(art.image)
    assert "seed42" in path.name and art.record.sha256[:8] in path.name
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind

    back = load(path)
    assert back.record == art.record
    assert np.array_equal(np.asarray(back.image), np.asarray(art.image))
    assert back.verified is True and back.path == path

    with Image.open(path) as png:
        parsed = parse_parameters(png.text["parameters"])
    assert (parsed["Prompt"], parsed["Negative prompt"]) == (art.record.prompt, art.record.negative)
    assert (parsed["Seed"], parsed["Steps"], parsed["CFG scale"]) == ("42", "4", "1.5")
    assert (parsed["Size-1"], parsed["Size-2"]) == ("32", "24")


def test_unicode_prompts_survive(tmp_path):
    prompt = "浮世絵の肖像 — grand-mère «portrait», ᏣᎳᎩ 🎨"
    art = make_artwork(prompt=prompt, negative="тёмный, размытый", subject="祖母")
    path = art.save(tmp_path)
    back = load(path)
    assert (back.record.prompt, back.record.negative, back.record.subject) == (prompt, "тёмный, размытый", "祖母")
    raw = path.read_bytes()
    assert b"iTXtkit\x00" in raw  # the record is an iTXt chunk
    with Image.open(path) as png:
        assert parse_parameters(png.text["parameters"])["Prompt"] == prompt


def test_tampered_pixels_are_not_verified(tmp_path):
    path = make_artwork().save(tmp_path)
    with Image.open(path) as png:
        png.load()
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", png.text["parameters"])
        info.add_itxt("kit", png.text["kit"])
        tampered = png.copy()
    r, g, b = tampered.getpixel((5, 5))
    tampered.putpixel((5, 5), ((r + 1) % 256, g, b))
    tampered.save(tmp_path / "tampered.png", pnginfo=info)

    back = load(tmp_path / "tampered.png")
    assert back.record.seed == 42
    assert back.verified is False
    assert load(path).verified is True


def test_two_saves_never_overwrite(tmp_path):
    art = make_artwork()
    first, second = art.save(tmp_path), art.save(tmp_path)
    assert first != second and first.exists() and second.exists()
    other = make_artwork(seed=43)
    named = [other.save(tmp_path, name="fox"), other.save(tmp_path, name="fox.png")]
    assert [p.name for p in named] == ["fox.png", "fox-1.png"]
    assert load(first).record == load(second).record
    assert len(list(tmp_path.glob("*.png"))) == 4
    with pytest.raises(KitError, match="name"):
        art.save(tmp_path, name="../escape")


@pytest.mark.parametrize("damage", ["not-png", "jpeg", "truncated", "flipped-byte", "bad-crc", "missing", "folder"])
def test_unreadable_files_raise_kit_error_naming_the_path(tmp_path, damage):
    good = make_artwork().save(tmp_path / "good")
    data = good.read_bytes()
    bad = tmp_path / "bad.png"
    if damage == "not-png":
        bad.write_text("this is not an image")
    elif damage == "jpeg":
        noise_image().save(bad, format="JPEG")
    elif damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "flipped-byte":
        at = data.index(b"IDAT") + 20
        bad.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :])
    elif damage == "bad-crc":  # pixels decode fine, but the chunk checksum is wrong
        idat = data.index(b"IDAT")
        at = idat + 4 + int.from_bytes(data[idat - 4 : idat], "big")  # first byte of the IDAT checksum
        bad.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :])
    elif damage == "folder":
        bad.mkdir()
    with pytest.raises(KitError) as caught:
        load(bad)
    assert str(bad) in str(caught.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_load_refuses_a_fifo_without_waiting_on_it(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(KitError, match="FIFO") as caught:
        load(fifo)  # read through kit.files: refused by its type, so nothing waits for a writer
    assert str(fifo) in str(caught.value)


def test_folder_under_a_regular_file_fails_before_writing(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    art = make_artwork()
    with pytest.raises(KitError) as caught:
        art.save(blocker / "gallery")
    assert str(blocker / "gallery") in str(caught.value)
    assert art.record.sha256 == "" and art.path is None  # no work was done
    assert blocker.read_text() == "a file" and [p.name for p in tmp_path.iterdir()] == ["not-a-folder"]
    with pytest.raises(KitError, match="is a file, not a folder"):
        art.save(blocker)
    with pytest.raises(KitError, match="not-a-folder"):
        Gallery(blocker / "gallery")


def test_read_only_folder_fails_before_writing(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root (or on a file system that ignores modes): chmod does not block writes")
        art = make_artwork()
        with pytest.raises(KitError) as caught:
            art.save(folder)
        assert str(folder) in str(caught.value)
        assert list(folder.iterdir()) == [] and art.record.sha256 == ""
    finally:
        folder.chmod(0o700)


def test_refused_temp_file_is_a_clear_error_and_writes_nothing(tmp_path, monkeypatch):
    # The same refusal as a read-only folder, simulated so it also runs as root.
    def refuse(**kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("kit.files.tempfile.mkstemp", refuse)
    art = make_artwork()
    with pytest.raises(KitError, match="cannot write in the folder") as caught:
        art.save(tmp_path)
    assert str(tmp_path) in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_png_with_only_web_ui_parameters_loads_as_imported(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        "a heron in rain\nNegative prompt: text\n"
        "Steps: 25, Sampler: Euler a, CFG scale: 6.5, Seed: 1234, Size: 32x24, Model: sd15",
    )
    noise_image().save(tmp_path / "webui.png", pnginfo=info)
    noise_image().save(tmp_path / "plain.png")

    art = load(tmp_path / "webui.png")
    assert art.record.kind == "imported"
    assert (art.record.prompt, art.record.negative, art.record.seed, art.record.steps) == (
        "a heron in rain",
        "text",
        1234,
        25,
    )
    assert (art.record.guidance, art.record.sampler, art.record.model) == (6.5, "Euler a", "sd15")
    assert art.verified is False  # nothing stored to verify against
    plain = load(tmp_path / "plain.png")
    assert plain.record.kind == "imported" and plain.record.prompt == "" and plain.verified is False


def test_notebook_helpers():
    art = make_artwork(prompt="<b>portrait</b> & friends")
    assert max(art.thumbnail(16).size) == 16 and art.thumbnail((8, 100)).size == (8, 6)
    assert art._repr_png_().startswith(b"\x89PNG")
    html = art._repr_html_()
    assert (
        "data:image/png;base64," in html and "&lt;b&gt;portrait&lt;/b&gt; &amp; friends" in html and "seed 42" in html
    )
    assert "seed=42" in repr(art)


# -- replay ---------------------------------------------------------------------


def test_replay_matches_with_a_deterministic_studio(tmp_path):
    studio = FakeStudio()
    original = studio.render(make_record(seed=9))
    path = original.save(tmp_path)

    result = replay(path, studio)
    assert isinstance(result, ReplayResult)
    assert result.match is True and result.max_abs_diff == 0
    assert studio.calls[-1].seed == 9 and result.original.path == path
    assert "pixels match" in repr(result)
    assert replay(load(path), studio).match is True


def test_replay_reports_a_changed_pixel(tmp_path):
    path = FakeStudio().render(make_record(seed=9)).save(tmp_path)
    result = replay(path, FakeStudio(poke=3))
    assert result.match is False and result.max_abs_diff == 3
    assert "max abs diff 3" in repr(result)

    resized = FakeStudio()
    resized.render = lambda record: Artwork(noise_image(record.seed, (8, 8)), record)
    assert replay(path, resized).max_abs_diff == 255
    with pytest.raises(KitError, match="render"):
        replay(path, object())


# -- the module layout --------------------------------------------------------------


def test_public_names_and_light_import():
    assert kit.Record is Record and kit.load is load and kit.Gallery is Gallery and kit.replay is replay
    assert dataclasses.is_dataclass(Record)
    code = (
        "import sys, kit.provenance.record, kit.provenance.artwork, kit.provenance.gallery; "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'open_clip') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
