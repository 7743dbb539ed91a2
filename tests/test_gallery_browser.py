"""GalleryBrowser without a browser, on the tiny preset: filters narrow the thumbnails, opening shows the
record and who did what, the lineage tree links a restyle to its source, "continue in" fills a panel
with the record's settings, and hiding never deletes."""

import datetime
import os

import pytest
from PIL import Image

import kit
from kit.provenance.artwork import Artwork
from kit.provenance.gallery import Gallery
from kit.provenance.record import Record
from kit.widgets.fusion_mixer import FusionMixer
from kit.widgets.gallery_browser import GalleryBrowser
from kit.widgets.prompt_studio import PromptStudio

SIZE = 64


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A gallery holding a generate, a restyle of it, a restyle of that, and a fusion."""
    folder = tmp_path_factory.mktemp("gallery")
    studio = kit.Studio(preset="tiny", gallery=folder)
    studio.progress_bar = False
    (source,) = studio.generate("portrait of an elder", style="ukiyo-e", seed=7, size=SIZE)
    source = kit.load(studio.gallery.find(seed=7)[0].path)  # the saved copy: a restyle names its path
    child = studio.restyle(source, "portrait of an elder in a hat", seed=8, strength=0.5)
    grandchild = studio.restyle(child.image, "a hat", seed=9, strength=0.5)
    fused = studio.fuse({"ukiyo-e": 0.7, "art-deco": 0.3}, "portrait of a child", seed=10, size=SIZE)
    return studio, folder, {"source": source, "child": child, "grandchild": grandchild, "fused": fused}


def _index(ui, art):
    return [a.record.sha256 for a in ui.artworks].index(art.record.sha256)


def test_filters_narrow_the_thumbnails(made):
    _studio, folder, arts = made
    ui = GalleryBrowser(folder)
    assert ui.total == 4 and len(ui.thumbnails.children) == 4
    assert ui.artworks[0].record.sha256 == arts["fused"].record.sha256  # newest first
    ui.kind.value = "restyle"
    assert {a.record.seed for a in ui.artworks} == {8, 9}
    ui.prompt.value = "HAT"  # case-insensitive
    assert {a.record.seed for a in ui.artworks} == {8, 9}
    ui.seed.value = "9"
    assert [a.record.seed for a in ui.artworks] == [9]
    ui.kind.value, ui.seed.value, ui.prompt.value = "", "", ""
    ui.style.value = "ukiyo-e"
    assert [a.record.seed for a in ui.artworks] == [7]
    ui.style.value = ""
    tomorrow = datetime.date.today() + datetime.timedelta(days=2)
    ui.since.value = tomorrow.isoformat()
    assert ui.artworks == [] and ui.total == 0
    ui.since.value = "2000-01-01"
    ui.until.value = "2000-12-31"
    assert ui.artworks == []
    ui.until.value = tomorrow.isoformat()
    assert ui.total == 4 and ui.error == ""


def test_the_kind_dropdown_lists_the_gallerys_kinds_and_keeps_the_choice(tmp_path):
    """The kinds offered are Gallery.kinds(), renewed on refresh: one saved since by another writer appears,
    and the kind chosen stays chosen."""
    gallery = Gallery(tmp_path)
    gallery.add(Artwork(Image.new("RGB", (8, 8), "red"), Record(prompt="red", seed=1)))
    ui = GalleryBrowser(tmp_path)
    assert [value for _, value in ui.kind.options] == ["", *gallery.kinds()]
    ui.kind.value = "generate"
    Gallery(tmp_path).add(Artwork(Image.new("RGB", (8, 8), "blue"), Record(prompt="blue", kind="a-new-kind")))
    ui.refresh()
    assert "a-new-kind" in [value for _, value in ui.kind.options]
    assert ui.kind.value == "generate" and [a.record.prompt for a in ui.artworks] == ["red"]
    ui.kind.value = "a-new-kind"
    assert [a.record.prompt for a in ui.artworks] == ["blue"] and ui.error == ""


def test_bad_filters_are_shown_and_the_browser_stays_usable(made):
    _studio, folder, _arts = made
    ui = GalleryBrowser(folder)
    before = list(ui.artworks)
    ui.seed.value = "seven"
    assert "seed" in ui.error and ui.artworks == before  # the last good view is kept
    ui.seed.value = ""
    assert ui.error == ""
    ui.since.value = "last week"
    assert "since" in ui.error
    ui.since.value = "2030-01-01"
    ui.until.value = "2020-01-01"
    assert "before" in ui.error
    ui.since.value = ui.until.value = ""
    assert ui.error == "" and ui.total == 4


def test_open_shows_the_record_and_who_did_what(made):
    _studio, folder, arts = made
    ui = GalleryBrowser(folder)
    ui.open_record(_index(ui, arts["child"]))
    assert ui.opened.record.sha256 == arts["child"].record.sha256
    assert "Seed: 8" in ui.details.value
    assert "The person gave the source image" in ui.authorship[0]
    assert "The person set the strength to 0.5." in ui.authorship
    assert ui.authorship[-1].startswith("The model (kit-tiny")
    ui.open_record(99)
    assert "thumbnail" in ui.error and ui.opened.record.sha256 == arts["child"].record.sha256


def test_lineage_tree_lists_ancestors_and_descendants(made):
    _studio, folder, arts = made
    source, child, grandchild = (arts[k].record.sha256 for k in ("source", "child", "grandchild"))
    ui = GalleryBrowser(folder)
    ui.open_record(_index(ui, arts["child"]))
    made_from, made_into = ui.lineage_html.split("Made into:")
    assert source[:12] in made_from and grandchild[:12] not in made_from
    assert grandchild[:12] in made_into and source[:12] not in made_into
    ui.open_record(_index(ui, arts["source"]))
    made_from, made_into = ui.lineage_html.split("Made into:")
    assert "made from text" in made_from
    # the grandchild is a descendant of the child, nested below it
    assert made_into.index(child[:12]) < made_into.index(grandchild[:12])
    assert made_into.count("<ul>") == 2
    lineage = Gallery(folder).lineage(source)
    assert lineage.tree("descendants")["next"][0]["next"][0]["sha256"] == grandchild
    assert "made into:" in lineage.text()


def test_continue_in_fills_the_panels(made):
    studio, folder, arts = made
    ui = GalleryBrowser(folder, studio=studio)
    ui.open_record(_index(ui, arts["source"]))
    panel = ui.continue_in("PromptStudio")
    assert isinstance(panel, PromptStudio) and ui.continued is panel and ui.continue_area.children == (panel,)
    assert panel.prompt.value == "portrait of an elder"  # what was typed, not the style's template
    assert panel.style.value == "ukiyo-e" and panel.seed.value == 7 and panel.size.value == SIZE
    assert panel.request()["seed"] == 7 and type(panel.request()["seed"]) is kit.record.Drawn  # carried over

    ui.open_record(_index(ui, arts["fused"]))
    mixer = ui.continue_in("FusionMixer")
    assert isinstance(mixer, FusionMixer)
    assert mixer.weights() == {"ukiyo-e": 0.7, "art-deco": 0.3}
    assert mixer.subject.value == "portrait of a child" and mixer.seed.value == 10

    sketchpad_class = getattr(kit.widgets, "Sketchpad", None)
    if sketchpad_class is not None:
        ui.open_record(_index(ui, arts["child"]))
        pad = ui.continue_in("Sketchpad")
        assert isinstance(pad, sketchpad_class), ui.error
        assert pad.prompt.value == "portrait of an elder in a hat" and pad.seed.value == 8
    assert ui.continue_in("Photoshop") is None and "continue in one of" in ui.error


def test_hiding_keeps_the_file_and_show_hidden_lists_it(made, tmp_path):
    _studio, folder, arts = made
    ui = GalleryBrowser(folder)
    target = arts["fused"]
    path = Gallery(folder).find(seed=10)[0].path
    ui.open_record(_index(ui, target))
    ui.toggle_hidden()
    shown = [a.record.sha256 for a in ui.artworks]
    assert target.record.sha256 not in shown and ui.total == 3
    assert os.path.isfile(path)  # hiding never deletes
    ui.show_hidden.value = True
    assert target.record.sha256 in [a.record.sha256 for a in ui.artworks]
    assert any("(hidden)" in box.children[1].description for box in ui.thumbnails.children)

    os.remove(Gallery(folder).index)  # the index is rebuilt from the PNGs; the marks log keeps the hiding
    again = GalleryBrowser(folder)
    assert again.total == 3 and target.record.sha256 in again.gallery.hidden()
    ui.open_record(_index(ui, target))
    assert ui.hide_button.description == "Unhide"
    ui.toggle_hidden()
    ui.show_hidden.value = False
    assert ui.total == 4


def test_a_pick_out_of_several_is_credited(made):
    studio, folder, _arts = made
    panel = PromptStudio(studio)
    panel.prompt.value = "portrait of a child"
    panel.count.value = 2
    panel.size.value = SIZE
    panel.run()
    panel.wait()
    assert len(panel.artworks) == 2, panel.error
    assert "chose the seed" not in [a["action"] for a in panel.artworks[0].record.authorship["person"]]
    panel.select(0, picked=True)  # a thumbnail clicked
    assert "picked this image out of 2 candidates" in panel.details.value
    browser = GalleryBrowser(folder)
    browser.open_record(_index(browser, panel.artworks[0]))
    assert "The person picked this image out of 2 candidates." in browser.authorship
    browser.open_record(_index(browser, panel.artworks[1]))  # the other one was not picked
    assert not any("picked" in line for line in browser.authorship)
