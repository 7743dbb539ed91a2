"""PromptStudio's state, without a browser: generate, thumbnails, errors, stop, the gallery."""

import threading

import pytest

import kit
from kit.widgets import PromptStudio


@pytest.fixture
def ui(tmp_path):
    studio = kit.Studio(preset="tiny")
    studio.progress_bar = False
    return PromptStudio(studio, gallery=tmp_path / "gallery")


def test_generate_adds_thumbnails_saves_to_the_gallery_and_enlarges_the_newest(ui):
    ui.prompt.value = "portrait of a weaver"
    ui.seed.value = 21
    ui.count.value = 2
    ui.run()
    ui.wait()
    assert ui.error == ""
    assert len(ui.artworks) == 2 and len(ui.thumbnails.children) == 2
    assert [a.record.seed for a in ui.artworks] == [21, 22]
    assert len(ui.gallery) == 2
    assert ui.selected == 1 and ui.large.value  # the newest is enlarged
    assert "portrait of a weaver" in ui.details.value
    # clicking the first thumbnail's button shows that image's record
    ui.thumbnails.children[0].children[1].click()
    assert ui.selected == 0 and "Seed: 21," in ui.details.value


def test_request_follows_the_controls(ui):
    ui.style.value = "ukiyo-e"
    ui.negative.value = "blurry"
    ui.steps.value = 1
    ui.guidance.value = 2.0
    ui.preview.value = True
    req = ui.request()
    assert req["style"] == "ukiyo-e" and req["negative"] == "blurry"
    assert (req["steps"], req["guidance"], req["preview"]) == (1, 2.0, True)


def test_bad_input_is_shown_and_the_widget_stays_usable(ui):
    ui.prompt.value = "   "
    ui.run()
    ui.wait()
    assert "prompt is empty" in ui.error
    assert "prompt is empty" in ui.status.value
    assert any("prompt is empty" in o.get("text", "") for o in ui.out.outputs)
    assert not ui.generate_button.disabled
    assert ui.artworks == [] and len(ui.gallery) == 0
    ui.prompt.value = "a fisherman"
    ui.run()
    ui.wait()
    assert ui.error == "" and len(ui.artworks) == 1


def test_a_failed_run_keeps_the_images_already_made(ui):
    ui.prompt.value = "a fisherman"
    ui.run()
    ui.wait()
    ui.style.value = None
    ui.prompt.value = "x" * 6000
    ui.run()
    ui.wait()
    assert "characters" in ui.error
    assert len(ui.artworks) == 1 and len(ui.thumbnails.children) == 1 and len(ui.gallery) == 1


def test_sensitive_style_shows_its_note_before_generating(ui):
    sensitive = next(s for s in kit.styles.catalogue() if s.sensitive)
    ui.style.value = sensitive.id
    assert "Please read first" in ui.style_note.value
    assert sensitive.note[:30].replace("'", "&#x27;") in ui.style_note.value


def test_dice_rolls_a_new_seed(ui):
    seen = set()
    for _ in range(5):
        ui.dice.click()
        seen.add(ui.seed.value)
    assert len(seen) > 1 and all(0 <= s < 2**32 for s in seen)


def test_stop_interrupts_and_the_widget_stays_usable(ui):
    studio = ui.studio
    started = threading.Event()
    studio.batch_size = 1

    original = ui.on_step

    def slow_step(done, total):
        original(done, total)
        started.set()

    ui.on_step = slow_step
    ui.prompt.value = "a dancer"
    ui.count.value = 8
    ui.run()
    assert started.wait(120), ui.error
    ui.stop_button.click()
    ui.wait()
    ui.on_step = original
    assert len(ui.artworks) < 8
    assert any("stopped" in o.get("text", "") for o in ui.out.outputs)
    assert not ui.generate_button.disabled
    ui.count.value = 1
    ui.run()
    ui.wait()
    assert ui.error == "" and ui.artworks[-1].record.prompt == "a dancer"
