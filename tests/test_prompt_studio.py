"""PromptStudio's state, without a browser: generate, thumbnails, errors, stop, the gallery."""

import threading
import warnings

import ipywidgets as W
import pytest

import kit
from kit import studio as engine
from kit.widgets import PromptStudio
from kit.widgets.common import SEED_MAX


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


def test_on_a_cpu_a_preview_shows_first_and_the_full_image_replaces_it(ui):
    seen = []
    ui.observe(lambda change: seen.append((change["new"], ui.large.value, ui.status.value)), names="showing")
    ui.prompt.value = "portrait of a weaver"
    ui.run()
    ui.wait()
    assert ui.error == "" and ui.previews_first(ui.request())
    assert [what for what, _, _ in seen] == ["preview", "full"]
    (_, preview_png, said), (_, full_png, _) = seen
    assert preview_png and full_png and preview_png != full_png  # the TAESD picture, then the VAE's
    assert "a fast preview (TAESD) after" in said and "made in" in ui.status.value  # the waits a class feels
    assert ui.artworks[-1].record.decoder == "vae"


def test_no_preview_first_when_the_fast_preview_is_the_image_asked_for(ui):
    ui.preview.value = True
    assert not ui.previews_first(ui.request())


def test_the_token_count_follows_the_prompt_as_it_is_typed(ui):
    ui.prompt.value = "portrait of a weaver"
    assert ui.tokens == [4] and "4 tokens" in ui.token_count.value
    ui.prompt.value = "portrait of a weaver, " + "soft light, " * 30
    assert ui.tokens[0] == 75 and len(ui.tokens) == 2
    assert f"in 2 chunks (75 + {ui.tokens[1]})" in ui.token_count.value
    ui.prompt.value = "a (weaver:1.3) BREAK soft light"
    assert ui.tokens == [2, 2] and "4 tokens in 2 chunks" in ui.token_count.value
    ui.prompt.value = ""
    assert ui.tokens == [0] and "0 tokens" in ui.token_count.value


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
    ui.style.value = ""
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
        if done >= total / 8:  # the first of the 8 images has had all its steps
            started.set()

    ui.on_step = slow_step
    ui.prompt.value = "a dancer"
    ui.count.value = 8
    ui.run()
    assert started.wait(120), ui.error
    ui.stop_button.click()
    ui.wait()
    ui.on_step = original
    assert 1 <= len(ui.artworks) < 8  # what was finished before the Stop is shown and kept
    assert "stopped:" in ui.status.value and "of 8 finished" in ui.status.value
    assert not ui.generate_button.disabled
    ui.count.value = 1
    ui.run()
    ui.wait()
    assert ui.error == "" and ui.artworks[-1].record.prompt == "a dancer"


def test_stop_in_one_panel_leaves_another_panels_run_on_the_same_studio_alone(ui):
    other = kit.widgets.PromptStudio(ui.studio)
    release = threading.Event()
    original = other.on_step
    other.on_step = lambda done, total: (original(done, total), release.wait(60))
    other.prompt.value, other.count.value = "a potter", 2
    other.run()
    ui.stop()  # this panel's Stop, while the other panel works
    release.set()
    other.wait()
    assert other.error == "" and "stopped" not in other.status.value
    assert [a.record.prompt for a in other.artworks] == ["a potter", "a potter"]


def test_a_stop_right_after_the_click_is_kept(ui):
    before = len(ui.artworks)
    ui.prompt.value, ui.count.value = "a weaver", 3
    ui.run()
    ui.stop()  # before the worker thread has run a single step
    ui.wait()
    assert ui.run_.stopped and len(ui.artworks) == before and "stopped" in ui.status.value


def test_it_is_a_container_with_observable_traits(ui):
    assert isinstance(ui, W.VBox)
    tabs = W.Tab(children=[ui])  # fits in a Tab (or an HBox, an Accordion) like any container
    assert tabs.children == (ui,)
    seen = []
    ui.observe(lambda change: seen.append(len(change["new"])), names="artworks")
    ui.prompt.value = "a potter"
    ui.run()
    ui.wait()
    assert seen == [1] and ui.selected == 0


def test_the_style_dropdown_says_no_style_instead_of_showing_a_blank(ui):
    assert (ui.style.index, ui.style.label) == (0, "(no style)")
    assert ui.request()["style"] is None
    ui.style.value = "ukiyo-e"
    ui.style.value = ""
    assert ui.style.label == "(no style)" and ui.style_note.value == ""
    names = [label for label, _ in ui.style.options]
    assert {"Tā moko", "İznik pottery", "Đông Hồ painting"} <= set(names)


def test_limits_are_the_engines(ui):
    assert ui.steps.max == engine.MAX_STEPS
    assert ui.guidance.max == engine.MAX_GUIDANCE
    assert ui.count.max == engine.MAX_BATCH
    assert ui.seed.max == SEED_MAX >= 2**32 - 1
    sizes = list(ui.size.options)
    assert sizes[0] == ui.studio.preset.min_size and sizes[-1] <= ui.studio.preset.max_size


def test_empty_image_slots_are_hidden_and_the_whole_seed_is_shown(ui):
    assert ui.large.layout.display == "none" and ui.large.value == b""  # no broken-image icon
    assert ui.large.layout.object_fit == "contain" and ui.large.layout.height == "auto"  # keeps its shape
    ui.prompt.value = "a potter"
    ui.seed.value = 2**32 - 1
    ui.run()
    ui.wait()
    assert ui.error == "" and ui.large.layout.display == "" and ui.large.value
    button = ui.thumbnails.children[0].children[1]
    assert button.description == f"seed {2**32 - 1}"
    assert button.layout.width == "auto"  # grows with its text: never cut off
    assert ui.seed.style.description_width == "initial"  # the label takes only its own width


def test_the_tiny_preset_says_what_its_pictures_are(ui, tmp_path):
    assert "tiny" in ui.note.value and ui.note.layout.display != "none"
    real = PromptStudio(kit.Studio(preset="sd-turbo"), gallery=tmp_path)  # nothing is loaded yet
    assert real.note.value == "" and real.note.layout.display == "none"


def test_warnings_of_a_run_are_shown_without_touching_the_process_warning_state(ui, monkeypatch):
    elsewhere = []  # what the process's own warning display shows
    monkeypatch.setattr(warnings, "showwarning", lambda message, *args, **kwargs: elsewhere.append(str(message)))
    ui.prompt.value = "a potter"
    ui.run()  # a first run imports what the engine needs (some imports add warning filters of their own)
    ui.wait()
    filters_before = list(warnings.filters)
    during = []
    original = ui.on_step

    def step(done, total):
        during.append(list(warnings.filters))
        original(done, total)

    ui.on_step = step
    ui.negative.value = "blurry"  # has no effect at guidance 0: the engine warns
    ui.run()
    ui.wait()
    ui.on_step = original
    assert ui.error == ""
    assert any("negative prompt has no effect" in o.get("text", "") for o in ui.out.outputs)
    assert during and all(filters == filters_before for filters in during)
    assert list(warnings.filters) == filters_before
    assert elsewhere == []  # the run's warning went to the panel only
    warnings.showwarning("a warning of the main thread", UserWarning, __file__, 1)
    assert elsewhere == ["a warning of the main thread"]  # other threads' warnings go on as before
