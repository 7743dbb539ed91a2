"""FusionMixer state without a browser: sliders follow the styles, one preview per burst, errors stay visible."""

import ipywidgets as W
import pytest

import kit
from kit import fusion
from kit.widgets import FusionMixer
from kit.widgets.common import SEED_MAX


@pytest.fixture
def fuse_calls(studio, monkeypatch):
    """Every studio.fuse call's keyword arguments, in order."""
    calls = []
    real = studio.fuse

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(studio, "fuse", counting)
    return calls


@pytest.fixture
def ui(studio, tmp_path):
    mixer = FusionMixer(studio, gallery=tmp_path / "gallery")
    yield mixer
    mixer.live.value = False
    mixer.wait()


def test_choosing_styles_builds_one_slider_each_and_shows_sensitive_notes(ui):
    ui.live.value = False
    ui.styles.value = ["ukiyo-e", "art-deco"]
    assert list(ui.sliders) == ["ukiyo-e", "art-deco"]
    rows = ui.slider_box.children  # one row per style: its whole name, then its slider
    assert [row.children[1] for row in rows] == list(ui.sliders.values())
    assert kit.styles.get("ukiyo-e").name in rows[0].children[0].value
    ui.sliders["ukiyo-e"].value = 0.9
    ui.add("thangka")
    assert list(ui.sliders) == ["ukiyo-e", "art-deco", "thangka"]
    assert ui.sliders["ukiyo-e"].value == 0.9  # kept across the rebuild
    assert kit.styles.get("thangka").note in ui.notes.value
    ui.styles.value = ["art-deco", "thangka"]
    assert list(ui.sliders) == ["art-deco", "thangka"] and len(ui.slider_box.children) == 2
    assert "Please read first" in ui.notes.value
    ui.styles.value = ["art-deco", "ukiyo-e"]
    assert ui.notes.value == ""
    ui.sliders["art-deco"].value = 0.25
    ui.sliders["ukiyo-e"].value = 0.75
    assert "0.25 art-deco + 0.75 ukiyo-e" in ui.mix.value
    assert ui.weights() == {"art-deco": 0.25, "ukiyo-e": 0.75}


def test_a_burst_of_slider_changes_renders_one_preview(ui, studio, fuse_calls):
    ui.debounce = 1.0  # a margin for a busy test machine; the default is 0.4 s
    ui.styles.value = ["ukiyo-e", "art-deco"]
    for value in (0.1, 0.2, 0.3, 0.4, 0.6, 0.8):
        ui.sliders["art-deco"].value = value
    ui.wait()
    assert len(fuse_calls) == 1
    assert fuse_calls[0]["preview"] is True and fuse_calls[0]["size"] == studio.preset.min_size
    assert ui.error == ""
    assert ui.artwork.record.fusion == {"ukiyo-e": 0.5, "art-deco": 0.8}  # the settled values
    assert ui.artwork.record.decoder == "taesd" and ui.image.value
    assert ui.artworks == [] and len(ui.gallery) == 0  # previews are not saved
    ui.seed.value = 12
    ui.wait()
    assert len(fuse_calls) == 2 and ui.artwork.record.seed == 12


def test_render_makes_a_full_size_image_and_saves_it(ui, studio, fuse_calls):
    ui.live.value = False
    ui.styles.value = ["ukiyo-e", "art-deco"]
    shown = []
    ui.image.observe(lambda change: shown.append(change["new"]), names="value")
    ui.render_button.click()
    ui.wait()
    assert ui.error == "" and len(fuse_calls) == 1
    art = ui.artwork
    assert art.record.decoder == "vae" and art.image.size == (studio.preset.size, studio.preset.size)
    assert ui.artworks == [art] and len(ui.gallery) == 1
    assert callable(fuse_calls[0]["on_preview"])  # on a CPU: the TAESD picture first, then the full one
    assert len(shown) == 2 and shown[0] != shown[1] and shown[1] == ui.image.value


def test_grid_button_draws_a_sweep_and_keeps_every_image(ui):
    ui.live.value = False
    ui.styles.value = ["ukiyo-e", "art-deco"]
    ui.grid_steps.value = 3
    ui.grid_button.click()
    ui.wait()
    assert ui.error == ""
    assert ui.sheet is not None and len(ui.artworks) == 3 and len(ui.gallery) == 3


def test_bad_input_is_shown_and_the_mixer_stays_usable(ui, fuse_calls):
    ui.live.value = False
    ui.styles.value = ["ukiyo-e"]
    ui.render_button.click()
    ui.wait()
    assert "styles: choose 2 to 5 styles, got 1" in ui.error

    ui.styles.value = ["ukiyo-e", "art-deco", "madhubani", "warli", "gongbi", "thangka"]
    assert "styles" in ui.error and "5" in ui.error
    assert len(ui.sliders) == 5 and len(ui.styles.value) == 5

    ui.grid_button.click()
    ui.wait()
    assert "choose 2 or 3 styles, got 5" in ui.error

    ui.styles.value = ["ukiyo-e", "art-deco"]
    for slider in ui.sliders.values():
        slider.value = 0
    assert "positive" in ui.mix.value
    ui.render_button.click()
    ui.wait()
    assert "weights need at least one positive weight" in ui.error

    ui.sliders["ukiyo-e"].value = 1
    ui.subject.value = "  "
    ui.render_button.click()
    ui.wait()
    assert "subject is empty" in ui.error
    assert fuse_calls and ui.artworks == []  # refused before any image was made

    ui.subject.value = "portrait of a weaver"
    ui.render_button.click()
    ui.wait()
    assert ui.error == "" and len(ui.artworks) == 1
    assert ui.artwork.record.subject == "portrait of a weaver"
    assert not ui.render_button.disabled and not ui.busy


def test_a_container_with_observable_traits_and_the_engines_limits(ui):
    assert isinstance(ui, W.VBox) and W.Accordion(children=[ui]).children == (ui,)
    assert ui.seed.max == SEED_MAX and ui.grid_steps.max == fusion.MAX_GRID_STEPS
    assert "(no style)" not in [label for label, _ in ui.picker.options]  # the picker adds a style
    assert ui.image.layout.display == "none" and ui.image.value == b""  # no broken-image icon yet
    assert "tiny" in ui.note.value
    kept = []
    ui.observe(lambda change: kept.append(len(change["new"])), names="artworks")
    ui.live.value = False
    ui.styles.value = ["ukiyo-e", "art-deco"]
    ui.render_button.click()
    ui.wait()
    assert ui.error == "" and kept == [1]
    assert ui.image.layout.display == "" and ui.image.layout.object_fit == "contain"


def test_previews_never_reach_a_studios_gallery(tmp_path):
    """A studio with a gallery saves what it makes, but a mixer's passing previews are not kept."""
    studio = kit.Studio(preset="tiny", gallery=tmp_path / "gallery")
    studio.progress_bar = False
    mixer = FusionMixer(studio)
    mixer.live.value = False
    mixer.styles.value = ["ukiyo-e", "art-deco"]
    assert mixer.gallery is studio.gallery
    mixer.preview()
    mixer.wait()
    assert mixer.error == "" and mixer.artwork is not None and len(studio.gallery) == 0
    mixer.render()
    mixer.wait()
    assert len(studio.gallery) == 1  # the full render is kept, once


def test_a_panel_cannot_claim_another_gallery_than_its_studios(tmp_path):
    studio = kit.Studio(preset="tiny", gallery=tmp_path / "gallery")
    with pytest.raises(kit.KitError, match="saves every image to its gallery"):
        FusionMixer(studio, gallery=tmp_path / "other")  # images would go to one folder, the message name another
    assert FusionMixer(studio, gallery=tmp_path / "gallery").gallery is studio.gallery
