"""The Sketchpad without a browser: strokes are state, the drawing is computed from them, live renders,
Keep, undo, bad input, and masks painted by hand for a restoration."""

import io
import threading
from datetime import datetime, timezone

import numpy as np
import pytest
from PIL import Image

import kit
from kit import restore, toyworld
from kit.errors import KitError
from kit.features import sketch
from kit.provenance import xmp
from kit.provenance.artwork import pixel_hash
from kit.runs import Stopped
from kit.widgets import Sketchpad

RED, WHITE = (255, 0, 0), (255, 255, 255)


def line(points, size=6, color="#ff0000", erase=False):
    return {"points": [list(p) for p in points], "size": size, "color": color, "erase": erase}


@pytest.fixture
def ui(studio, tmp_path):
    return Sketchpad(studio, gallery=tmp_path / "gallery", live=False)


def pixel(image, x, y):
    return image.getpixel((x, y))


# ---------------------------------------------------------------- strokes -> pixels


def test_strokes_set_as_state_are_the_pixels_the_model_gets(ui):
    assert ui.size == (256, 256) and ui.stroke_count == 0
    ui.strokes = [
        line([(20, 30), (100, 30)], size=6),  # a red line
        line([(150, 150)], size=10, color="#0000ff"),  # a blue dot
        line([(60, 10), (60, 50)], size=4, erase=True),
    ]  # rubbed out across the line
    assert ui.canvas.strokes == ui.strokes and ui.stroke_count == 3 and "3 strokes" in ui.count.value
    picture = ui.drawing()
    assert picture.size == (256, 256) and picture.mode == "RGB"
    assert pixel(picture, 40, 30) == RED and pixel(picture, 40, 29) == RED and pixel(picture, 40, 31) == RED
    assert pixel(picture, 40, 36) == WHITE and pixel(picture, 10, 30) == WHITE  # beyond its width and its end
    assert pixel(picture, 60, 30) == WHITE  # the eraser's path
    assert pixel(picture, 150, 150) == (0, 0, 255) and pixel(picture, 150, 158) == WHITE
    # strokes drawn in the browser arrive the same way: through the canvas's trait
    ui.canvas.strokes = [*ui.canvas.strokes, line([(200, 200), (220, 200)], color="#00ff00")]
    assert ui.stroke_count == 4 and pixel(ui.drawing(), 210, 200) == (0, 255, 0)


def test_undo_takes_back_strokes_and_a_clear(ui):
    a, b = line([(10, 10), (50, 50)]), line([(60, 10), (10, 60)], color="#00ff00")
    ui.strokes = [a]
    ui.strokes = [a, b]
    ui.undo()
    assert ui.strokes == [a] and ui.stroke_count == 1
    ui.clear()
    assert ui.strokes == [] and ui.stroke_count == 0 and "Undo brings" in ui.status.value
    ui.undo()
    assert ui.strokes == [a]
    ui.undo()
    ui.undo()
    assert ui.strokes == [] and "nothing to undo" in ui.status.value


def test_a_photo_of_another_size_is_fitted_and_the_eraser_shows_it_again(ui):
    photo = Image.new("RGB", (300, 200), (10, 120, 30))
    ui.load_photo(photo)
    assert ui.error == "" and ui.photo.size == (256, 256)
    assert "centre-cropped from 300x200 to 200x200 px, then resized to 256x256 px" in ui.status.value
    assert ui.canvas.background  # the browser shows it under the strokes
    ui.strokes = [line([(20, 20), (80, 20)], size=8), line([(50, 10), (50, 30)], size=4, erase=True)]
    picture = ui.drawing()
    assert pixel(picture, 30, 20) == RED and pixel(picture, 50, 20) == (10, 120, 30) == pixel(picture, 200, 200)
    # a photo alone is something to render: no empty-canvas error
    ui.strokes = []
    assert ui.drawing().getpixel((5, 5)) == (10, 120, 30)


# ---------------------------------------------------------------- rendering, live mode, Keep


def test_render_restyles_the_drawing_and_keep_saves_it_once(ui, studio):
    ui.strokes = [line([(30, 40), (220, 200)], size=24, color="#1d3557")]
    ui.prompt.value = "portrait of a weaver"
    ui.render()
    ui.wait()
    art = ui.artwork
    assert ui.error == "" and ui.renders == 1 and ui.showing == "full" and ui.result.value
    assert art.record.kind == "restyle" and art.record.decoder == "vae"
    assert art.record.restyle["source_sha256"] == pixel_hash(sketch.draw(ui.strokes, ui.size))
    assert "resized from 256x256 to 64x64" in art.record.restyle["resize"]
    assert {"action": "drew", "strokes": 1} in art.record.authorship["person"]  # what the person did
    assert len(ui.gallery) == 0  # a render is not saved
    ui.keep()
    ui.wait()
    ui.keep()  # twice: saved once
    ui.wait()
    assert ui.kept == [art] and len(ui.gallery) == 2 and "already kept" in ui.status.value  # the drawing, the result
    assert [a.record.kind for a in ui.gallery] == ["drawing", "restyle"]
    assert list(ui.gallery)[1].record.sha256 == art.record.sha256


def test_keep_saves_the_drawing_as_the_persons_work_and_the_result_traces_and_replays_from_it(ui, studio):
    ui.strokes = [line([(30, 40), (220, 200)], size=24, color="#1d3557"), line([(10, 10), (60, 90)], size=9)]
    ui.prompt.value = "portrait of a weaver"
    ui.render()
    ui.wait()
    ui.keep()
    ui.wait()
    drawing, result = list(ui.gallery)
    assert drawing.record.kind == "drawing" and drawing.verified is True
    assert drawing.record.sha256 == result.record.restyle["source_sha256"] == pixel_hash(ui.drawing())
    assert drawing.record.describe_authorship() == ["The person drew 2 strokes."]  # and no model
    assert xmp.packet(drawing.record) is None  # no AI metadata on a person's drawing
    lineage = ui.gallery.lineage(result.record.sha256)
    assert [a.record.kind for a in lineage.ancestors] == ["drawing"] and lineage.unknown == []
    replaying = kit.Studio(preset="tiny", gallery=ui.gallery)  # the source is found in the gallery, not a file
    replaying.progress_bar = False
    assert kit.replay(result, replaying).match
    with pytest.raises(KitError, match="cannot be rendered"):
        replaying.render(drawing.record)  # a drawing is a person's, not a model's to make again


def test_live_mode_renders_once_after_quick_strokes_and_keep_decodes_the_preview_in_full(studio, tmp_path):
    ui = Sketchpad(studio, gallery=tmp_path / "g", live=True)
    ui.debounce = 1.0  # the strokes below come far quicker than this
    ui.strokes = [line([(20, 20), (120, 120)])]
    ui.strokes = [*ui.strokes, line([(120, 20), (20, 120)], color="#0000ff")]
    ui.strokes = [*ui.strokes, line([(70, 10), (70, 200)], size=12, color="#00aa00")]
    ui.wait()
    assert ui.error == "" and ui.renders == 1
    preview = ui.artwork
    assert preview.record.restyle["source_sha256"] == pixel_hash(sketch.draw(ui.strokes, ui.size))  # the last drawing
    assert studio.previews_first and preview.record.decoder == "taesd" and ui.showing == "preview"
    ui.keep()
    ui.wait()
    (kept,) = ui.kept
    assert kept.record.decoder == "vae" and ui.artwork is kept and ui.showing == "full"
    assert kept.record.seed == preview.record.seed and kept.record.restyle == preview.record.restyle
    assert len(ui.gallery) == 2 and ui.renders == 1  # the drawing and the result; Keep is not a new live render
    ui.live.value = False


def test_a_new_stroke_stops_the_render_still_running(studio, tmp_path, monkeypatch):
    ui = Sketchpad(studio, gallery=tmp_path / "g", live=False)
    started, runs = threading.Event(), []

    def slow_restyle(picture, *, run, **request):
        runs.append(run)
        started.set()
        if len(runs) == 1:  # the first render waits until it is stopped, as a long model step would
            while not run.stopped:
                run._stop.wait(0.05)
            raise Stopped("the restyle", [], 1)
        return kit.Artwork(picture, kit.Record(kind="restyle", decoder="taesd", restyle={"strength": 0.6}))

    monkeypatch.setattr(studio, "restyle", slow_restyle)
    ui.strokes = [line([(20, 20), (120, 120)])]
    ui.render(live=True)
    assert started.wait(60)
    ui.debounce = 0.01
    ui.live.value = True  # starts the live timer, as a new stroke does; it finds the older render running
    ui.wait()
    assert runs[0].stopped and len(runs) == 2 and ui.renders == 1 and ui.error == ""


# ---------------------------------------------------------------- bad input: shown, nothing lost


def test_an_empty_canvas_is_refused_before_any_model_work_and_the_pad_stays_usable(ui, studio, monkeypatch):
    called = []
    monkeypatch.setattr(studio, "restyle", lambda *a, **k: called.append(1))
    ui.strokes = [line([(20, 20), (60, 60)]), line([(20, 20), (60, 60)], size=12, erase=True)]  # drawn, then rubbed out
    ui.render()
    ui.wait()
    assert "the canvas is empty" in ui.error and "⚠" in ui.status.value and called == []
    assert ui.stroke_count == 2
    monkeypatch.undo()
    ui.strokes = [*ui.strokes, line([(100, 100), (150, 150)])]
    ui.render()
    ui.wait()
    assert ui.error == "" and ui.artwork is not None


def test_a_failed_render_keeps_every_stroke(ui, studio, monkeypatch):
    drawn = [line([(20, 20), (200, 60)]), line([(50, 200)], size=20, color="#00ff00")]
    ui.strokes = list(drawn)

    def broken(*args, **kwargs):
        raise RuntimeError("the model fell over")

    monkeypatch.setattr(studio, "restyle", broken)
    ui.render()
    ui.wait()
    assert "the model fell over" in ui.error and ui.strokes == drawn and ui.artwork is None
    monkeypatch.undo()
    ui.render()
    ui.wait()
    assert ui.error == "" and ui.strokes == drawn
    assert ui.artwork.record.restyle["source_sha256"] == pixel_hash(sketch.draw(drawn, ui.size))


def test_strokes_that_are_not_strokes_are_named(ui):
    ui.strokes = [line([(10, 10)]), {"points": [[1, float("nan")]]}]
    ui.render()
    ui.wait()
    assert "strokes[1].points" in ui.error
    ui.strokes = [line([(10, 10)], color="red")]
    ui.render()
    ui.wait()
    assert "strokes[0].color must be '#rrggbb'" in ui.error


@pytest.mark.parametrize(
    "source, says",
    [
        (b"this is not a picture", "photo"),
        ("huge", "too large"),
    ],
)
def test_a_bad_or_huge_upload_is_shown_and_the_drawing_stays(ui, source, says):
    if source == "huge":  # 48 million pixels in a small file: refused from its header
        buffer = io.BytesIO()
        Image.new("1", (8000, 6000)).save(buffer, format="PNG")
        source = buffer.getvalue()
    ui.strokes = [line([(10, 10), (90, 90)])]
    ui.upload.value = (
        {
            "name": "upload.png",
            "type": "image/png",
            "size": len(source),
            "content": memoryview(source),
            "last_modified": datetime.now(timezone.utc),
        },
    )
    assert says in ui.error and ui.photo is None and ui.stroke_count == 1
    assert ui.upload.value == ()  # ready for the next file
    ui.load_photo(Image.new("RGBA", (64, 64), (0, 0, 0, 0)))  # transparent: on white, as the one reader does
    assert ui.error == "" and ui.photo.getpixel((0, 0)) == WHITE


def test_bad_settings_are_refused_when_the_pad_is_made(studio):
    with pytest.raises(kit.KitError, match="mode must be 'draw' or 'mask'"):
        Sketchpad(studio, mode="paint")
    with pytest.raises(kit.KitError, match="give image="):
        Sketchpad(studio, mode="mask")
    with pytest.raises(kit.KitError, match="size width must be a whole number from 8 to 2048"):
        Sketchpad(studio, size=5000)


# ---------------------------------------------------------------- masks painted by hand


@pytest.fixture
def damaged():
    return toyworld.draw(toyworld.sample(np.random.default_rng(11), rendering="outline"))  # 64 px


def test_a_painted_mask_is_exactly_what_restore_records_and_the_overlay_shows(studio, tmp_path, damaged):
    ui = Sketchpad(studio, image=damaged, mode="mask", gallery=tmp_path / "g")
    assert ui.size == damaged.size and ui.canvas.mode == "mask" and ui.canvas.background
    ui.strokes = [line([(10, 40), (50, 40)], size=6), line([(30, 8)], size=8)]
    ui.prompt.value = "a portrait"
    ui.restore()
    ui.wait()
    art = ui.artwork
    assert ui.error == "" and isinstance(art, restore.Restoration) and ui.result.value and ui.overlay.value
    painted = np.asarray(sketch.mask(ui.strokes, ui.size)) == 255
    # the painted pixels, checked without the rasteriser: inside the line's width and the dot, and not beyond
    assert painted[40, 12:49].all() and painted[38:43, 30].all() and painted[8, 27:34].all()
    assert not painted[45:, :].any() and not painted[:, :5].any() and not painted[20:30, :].any()
    assert np.array_equal(np.asarray(restore.mask_of(art)) == 255, painted)  # the record keeps exactly them
    changed = np.any(np.asarray(art.overlay) != np.asarray(art.image), axis=2)
    assert np.array_equal(changed, painted)  # and the overlay shows exactly them
    kept_outside = np.asarray(art.image)[~painted] == np.asarray(damaged)[~painted]
    assert kept_outside.all() and len(ui.gallery) == 1 and ui.kept == [art]
    assert f"{ui.stroke_count} strokes" in ui.caption.value
    assert {"action": "painted the mask", "strokes": 2} in art.record.authorship["person"]


def test_nothing_painted_is_refused_before_the_model(studio, tmp_path, damaged, monkeypatch):
    ui = Sketchpad(studio, image=damaged, mode="mask", gallery=tmp_path / "g")
    monkeypatch.setattr(studio, "restore", lambda *a, **k: pytest.fail("the model was called"))
    ui.restore()
    ui.wait()
    assert "nothing is painted" in ui.error
    ui.strokes = [line([(10, 10), (20, 10)]), line([(10, 10), (20, 10)], size=10, erase=True)]
    ui.render()  # Render in a mask pad restores
    ui.wait()
    assert "nothing is painted" in ui.error and ui.stroke_count == 2
