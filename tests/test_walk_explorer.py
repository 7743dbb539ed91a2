"""WalkExplorer state without a browser: rows, a background walk, scrubbing, errors, export."""

from io import BytesIO
from pathlib import Path

import ipywidgets as W
import numpy as np
import pytest
from PIL import Image

import kit
from kit.core.pacing import MAX_FRAMES
from kit.features.animation import MAX_FPS
from kit.widgets.common import png_bytes

PROMPT = "portrait of a weaver"


@pytest.fixture(scope="module")
def ui(studio, tmp_path_factory):
    explorer = kit.widgets.WalkExplorer(studio, folder=tmp_path_factory.mktemp("exports"))
    explorer.set_keyframes([(PROMPT, 3), (PROMPT, 4, "ukiyo-e")])
    explorer.frames.value = 4
    explorer.run()
    explorer.wait()
    return explorer


def test_starts_with_two_keyframe_rows_that_can_be_added_and_removed(studio, monkeypatch, tmp_path):
    monkeypatch.setenv("KIT_GALLERY", str(tmp_path))
    explorer = kit.widgets.WalkExplorer(studio)
    assert len(explorer.rows) == 2 and len(explorer.rows_box.children) == 2
    assert explorer.folder.value == str(tmp_path)  # the default gallery folder
    explorer.add_button.click()
    assert len(explorer.rows) == 3 and explorer.rows[2].seed.value == explorer.rows[1].seed.value + 1
    explorer.rows[2].remove.click()
    assert len(explorer.rows) == 2 and len(explorer.rows_box.children) == 2
    assert explorer.slider.disabled and explorer.image.value == b""
    assert explorer.image.layout.display == "none"  # an empty viewer is hidden, not a broken image


def test_keyframes_are_numbered_from_1_and_renumbered_after_a_removal(studio, tmp_path):
    explorer = kit.widgets.WalkExplorer(studio, folder=tmp_path)
    explorer.add_row(PROMPT, 9)
    assert [row.label.value for row in explorer.rows] == ["<b>Keyframe 1</b>", "<b>Keyframe 2</b>", "<b>Keyframe 3</b>"]
    explorer.rows[0].remove.click()
    assert [row.label.value for row in explorer.rows] == ["<b>Keyframe 1</b>", "<b>Keyframe 2</b>"]
    assert explorer.rows[1].seed.value == 9


def test_controls_show_their_values_and_take_the_engines_limits(studio, tmp_path):
    explorer = kit.widgets.WalkExplorer(studio, folder=tmp_path)
    assert isinstance(explorer, W.VBox)
    row = explorer.rows[0]
    assert (row.style.index, row.style.label) == (0, "(no style)") and explorer.keyframes()[0][2] is None
    row.seed.value = 2**32 - 1
    assert explorer.keyframes()[0][1] == 2**32 - 1  # the whole seed: the field is not cut off
    row.seed.value = -4
    assert row.seed.value == 0  # a seed field cannot hold a negative seed
    assert explorer.fps.max == MAX_FPS and explorer.frames.max == MAX_FRAMES
    for field in (explorer.fps, explorer.frames, row.seed):
        assert field.style.description_width == "initial"  # the label takes its width, the value the rest
    assert "tiny" in explorer.note.value


def test_generate_fills_the_slider_and_shows_the_first_frame(ui):
    assert ui.error == "" and ui.walk is not None and ui.walk.complete
    assert len(ui.walk) == 4
    assert (ui.slider.min, ui.slider.max) == (ui.play.min, ui.play.max) == (1, 4)  # frames count from 1
    assert not ui.slider.disabled and ui.slider.value == 1
    assert ui.image.value == ui.frame_png[0] == png_bytes(ui.walk[0].image)  # the full frame replaced the previews
    assert ui.previews == 4  # on a CPU every frame was shown first as a fast TAESD preview
    assert ui.image.layout.display == ""
    assert [k.style for k in ui.walk.keyframes] == [None, "ukiyo-e"]
    assert "frame 1 of 4" in ui.caption.value and "from keyframe 1 (seed 3) to keyframe 2 (seed 4)" in ui.caption.value


def test_moving_the_slider_shows_the_cached_frame_and_the_caption_agrees(ui):
    for number in (3, 4, 2):
        ui.slider.value = number
        assert ui.image.value == ui.frame_png[number - 1]  # the cached bytes: no re-encoding
        assert f"frame {number} of 4" in ui.caption.value  # the slider's number is the caption's
    shown = Image.open(BytesIO(ui.image.value))
    assert np.array_equal(np.asarray(shown.convert("RGB")), np.asarray(ui.walk[1].image.convert("RGB")))


def test_step_size_plot_shows_the_measured_steps(ui):
    after = ui.plot.data[1]
    assert list(after.y) == pytest.approx(ui.walk.step_sizes.tolist())
    assert len(after.y) == 3 and ui.walk.pacing_space in ("clip", "pixels")
    assert ui.walk.pacing_space in ui.plot.layout.title.text


def test_bad_input_shows_an_error_and_the_widget_stays_usable(studio, tmp_path):
    explorer = kit.widgets.WalkExplorer(studio, folder=tmp_path)
    explorer.frames.value = 2
    for keyframes, message in [
        ([(PROMPT, 3)], "at least 2 keyframes"),
        ([(PROMPT, 3), ("", 4)], "keyframe 2 (keyframes[1]) prompt is empty"),
    ]:
        explorer.set_keyframes(keyframes)
        explorer.run()
        explorer.wait()
        assert message in explorer.error and explorer.walk is None
        assert message in explorer.out.outputs[-1]["text"]
        assert not explorer.generate_button.disabled
    explorer.set_keyframes([(PROMPT, 3), (PROMPT, 5)])
    explorer.run()
    explorer.wait()
    assert explorer.error == "" and len(explorer.walk) == 2 and explorer.slider.max == 2


def test_a_second_run_with_more_frames_reuses_frames_and_their_png(ui):
    first_png = ui.frame_png[0]
    old = ui.walk
    ui.frames.value = 7
    ui.run()
    ui.wait()
    assert ui.error == "" and len(ui.walk) == 7 and ui.slider.max == 7
    assert [ui.walk[i].image for i in (0, 2, 4, 6)] == [art.image for art in old]  # t = 0, 1/3, 2/3, 1 shared
    assert ui.frame_png[0] is first_png
    ui.frames.value = 4
    ui.run()
    ui.wait()
    assert ui.slider.max == 4


def test_export_writes_a_gif_with_every_frame(ui):
    path = ui.export("gif")
    assert ui.error == "" and path == ui.exported and path.parent == Path(ui.folder.value)
    with Image.open(path) as gif:
        assert gif.n_frames == len(ui.walk) == 4
    assert path.with_name(path.name + ".json").is_file()
    again = ui.export("gif")
    assert again != path and again.is_file()  # never overwrites an earlier export
    mp4 = ui.export("mp4")
    assert mp4.suffix == ".mp4" and mp4.is_file()


def test_export_before_generate_is_a_shown_error(studio, tmp_path):
    explorer = kit.widgets.WalkExplorer(studio, folder=tmp_path)
    assert explorer.export("gif") is None
    assert "press Generate first" in explorer.error
    assert not list(tmp_path.iterdir())
