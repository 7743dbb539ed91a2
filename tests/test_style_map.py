"""StyleMap's state, without a browser: the figure, cards, sending styles on, lasso fusion, placing images."""

import ipywidgets as W
import numpy as np
import pytest
from PIL import Image

import kit
from kit.core.blend import MAX_STYLES
from kit.widgets import FusionMixer, PromptStudio, StyleMap

STYLES = [
    "ukiyo-e",
    "art-deco",
    "mughal-miniature",
    "byzantine-icon",
    "madhubani",
    "cubism",
    "fayum-portraits",
    "thangka",
    "mexican-muralism",
    "impressionism",
    "gongbi",
    "tingatinga",
    "ta-moko",
    "dong-ho-painting",
    "iznik-pottery",
]


@pytest.fixture(scope="module")
def atlas():
    atlas = kit.StyleAtlas(kit.Embedder(preset="tiny", cache=False), seed=1)
    atlas.add_styles(STYLES)
    atlas.fit()
    return atlas


@pytest.fixture
def ui(atlas, studio, tmp_path):
    ps = PromptStudio(studio, gallery=tmp_path / "g")
    mixer = FusionMixer(studio, gallery=tmp_path / "g")
    return StyleMap(atlas, studio=studio, prompt_studio=ps, fusion_mixer=mixer)


def test_the_figure_shows_every_point_with_ids(ui, atlas):
    assert ui.point_count == len(atlas)
    ids = {i for trace in ui.figure.data for i in trace.customdata}
    assert ids == set(atlas.ids)


def test_recolouring_keeps_every_point(ui, atlas):
    ui.color_by.value = "continent"
    assert ui.point_count == len(atlas)
    names = {trace.name for trace in ui.figure.data}
    assert names <= {"Africa", "Asia", "Europe", "North America", "South America", "Oceania"}
    assert ui.figure.layout.legend.title.text == "continent"


def test_clicking_a_style_shows_its_card_and_sends_it_on(ui):
    ui.select("thangka")
    style = kit.styles.get("thangka")
    assert style.name in ui.card.value and "Please read first" in ui.card.value
    assert not ui.to_studio.disabled and not ui.to_mixer.disabled
    ui.to_studio.click()
    assert ui.prompt_studio.style.value == "thangka"
    ui.to_mixer.click()
    assert "thangka" in ui.fusion_mixer.styles.value


def test_a_lasso_of_styles_becomes_a_fusion_placed_on_the_map(ui, atlas):
    before = len(atlas)
    ui.lasso(["ukiyo-e", "art-deco"])
    assert not ui.fuse_button.disabled
    ui.fuse_button.click()
    ui.wait()
    assert ui.error == ""
    assert ui.result.value
    assert len(atlas) == before + 1 and atlas.points[-1]["kind"] == "generated"
    assert "ukiyo-e" in atlas.points[-1]["label"] and ui.point_count == len(atlas)


def test_images_made_in_the_watched_studio_appear_on_the_map(ui, atlas):
    before = len(atlas)
    ui.prompt_studio.prompt.value = "portrait of a weaver"
    ui.prompt_studio.run()
    ui.prompt_studio.wait()
    assert len(atlas) == before + 1 and ui.point_count == len(atlas)
    new = atlas.points[-1]
    assert new["label"] == "portrait of a weaver" and np.all(np.isfinite(new["xy"]))
    ui.select(new["id"])
    assert ui.to_studio.disabled  # only styles can be sent to the studio
    assert ui.thumbnail.value


def test_one_style_cannot_be_fused(ui):
    ui.lasso(["ukiyo-e"])
    assert ui.fuse_button.disabled


def test_a_container_whose_map_takes_the_width_it_is_given(ui):
    assert isinstance(ui, W.VBox) and W.HBox(children=[ui]).children == (ui,)
    layout = ui.figure.layout
    assert layout.width is None and layout.height  # the width follows the panel
    assert layout.legend.orientation == "h"  # a long legend goes under the map
    assert layout.paper_bgcolor == "rgba(0,0,0,0)" and layout.plot_bgcolor == "rgba(0,0,0,0)"
    assert not layout.title.text and "Style atlas" in ui.title.value  # the title is clear of the toolbar
    ui.figure._view_count = 1  # a browser shows the figure: plotly is asked to measure its space
    assert layout.autosize is True and layout.width is None
    for button in (ui.to_studio, ui.to_mixer, ui.fuse_button):
        assert button.layout.width == "auto"  # never cut off
    assert ui.thumbnail.layout.display == "none" and ui.result.layout.display == "none"


def test_cards_show_names_in_every_script(ui):
    for style_id in ("ta-moko", "dong-ho-painting", "iznik-pottery"):
        ui.select(style_id)
        assert ui.selected == style_id and kit.styles.get(style_id).name in ui.card.value


def test_the_map_observes_the_studios_artworks_trait(ui, atlas):
    before = len(atlas)
    art = kit.Artwork(Image.new("RGB", (64, 64), "teal"), kit.Record(prompt="a teal square", seed=5))
    ui.prompt_studio.artworks = [*ui.prompt_studio.artworks, art]  # any change of the trait, not only Generate
    assert len(atlas) == before + 1 and ui.point_count == len(atlas)
    assert atlas.points[-1]["label"] == "a teal square"


def test_a_lasso_of_many_styles_fuses_as_many_as_the_engine_allows(ui, studio, monkeypatch):
    asked = []
    made = kit.Artwork(Image.new("RGB", (64, 64), "teal"), kit.Record(prompt="a fusion", seed=5))
    monkeypatch.setattr(studio, "fuse", lambda weights, subject, **options: asked.append(weights) or made)
    ui.lasso(STYLES[: MAX_STYLES + 2])
    assert ui.lassoed == STYLES[: MAX_STYLES + 2] and not ui.fuse_button.disabled
    ui.fuse_button.click()
    ui.wait()
    assert list(asked[0]) == STYLES[:MAX_STYLES]
    assert f"fused {', '.join(STYLES[:MAX_STYLES])}" in ui.status.value
