"""The kit's panels as a student sees them, in JupyterLab's light and dark theme.

One notebook shows every panel with pictures in it (tiny preset). For each theme the test
takes a screenshot of each panel (artifacts/screenshots/widget-<Panel>-<theme>.png) and checks
what a person would notice: blank dropdowns, broken-image icons, stretched pictures, cut-off
buttons and fields, frame numbers that disagree, a map squeezed by its legend, text that
vanishes on a dark page.
"""

from __future__ import annotations

import pytest

from . import lab as lablib
from .lab import ARTIFACTS, SCREENSHOTS, cell_errors, open_notebook, run_all, set_theme
from .test_lab import write_notebook

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

PANELS = ["PromptStudio", "WalkExplorer", "FusionMixer", "StyleMap", "AuditView", "GalleryBrowser"]
NAMES = ["Tā moko", "Đông Hồ", "İznik", "浮世絵", "मधुबनी", "نگارگری", "Ελληνικά", "Кириллица"]

CELLS = [
    """\
import kit
from kit.sheet import contact_sheet
from PIL import Image

studio = kit.Studio()              # KIT_PRESET=tiny
studio.progress_bar = False""",
    """\
ps = kit.widgets.PromptStudio(studio)
ps.prompt.value = "portrait of a weaver"
ps.seed.value = 4294967295         # the largest random seed: every digit must show
ps.count.value = 2
ps.run(); ps.wait()
ps""",
    """\
walk = kit.widgets.WalkExplorer(studio)
walk.set_keyframes([("portrait of an elder", 1), ("portrait of an elder", 4294967295, "dong-ho-painting")])
walk.frames.value = 4
walk.run(); walk.wait()
walk""",
    """\
mixer = kit.widgets.FusionMixer(studio, seed=3)
mixer.live.value = False
mixer.styles.value = ["ukiyo-e", "ta-moko"]
mixer.grid_steps.value = 3
mixer.grid(); mixer.wait()
mixer""",
    """\
atlas = kit.StyleAtlas(kit.Embedder(preset="tiny", cache=False), seed=1)
atlas.add_styles()                 # the whole catalogue: a legend of every region
atlas.fit()
style_map = kit.widgets.StyleMap(atlas, studio=studio, prompt_studio=ps, fusion_mixer=mixer)
style_map.select("ta-moko")
style_map""",
    """\
report = kit.audit(studio, "a portrait of a {term} elder", ["Sámi", "Māori"], seeds=range(3))
view = kit.widgets.AuditView(report)
view""",
    """\
gallery_browser = kit.widgets.GalleryBrowser(studio=studio)   # the gallery PromptStudio saved to
gallery_browser.open_record(0)     # the newest image: its record, who did what and its lineage
gallery_browser""",
    f"""\
contact_sheet([Image.new("RGB", (64, 64), c) for c in ["teal", "tan", "plum", "gold"] * 2],
              labels={NAMES!r}, columns=4, title="Names in every script")""",
]

# Problems any person would see in a panel, found in the page.
_PANEL_PROBLEMS_JS = """
(panel) => {
  const problems = [];
  const shown = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const canvas = document.createElement('canvas').getContext('2d');
  const textWidth = (el, text) => { canvas.font = getComputedStyle(el).font; return canvas.measureText(text).width; };
  const padding = el => { const s = getComputedStyle(el); return parseFloat(s.paddingLeft) + parseFloat(s.paddingRight); };
  for (const img of panel.querySelectorAll('img')) {
    if (!shown(img)) continue;
    if (!img.getAttribute('src') || !img.complete || img.naturalWidth === 0) {
      problems.push('a broken image is shown');
      continue;
    }
    const box = img.clientWidth / img.clientHeight, picture = img.naturalWidth / img.naturalHeight;
    if (Math.abs(box - picture) > 0.03 * picture)
      problems.push(`a ${img.naturalWidth}x${img.naturalHeight} picture is shown ${img.clientWidth}x${img.clientHeight}`);
  }
  for (const button of panel.querySelectorAll('button')) {
    if (shown(button) && button.scrollWidth > button.clientWidth + 1)
      problems.push(`button cut off: ${button.textContent.trim()}`);
  }
  for (const input of panel.querySelectorAll('input[type=number], input[type=text]')) {
    const spin = input.type === 'number' ? 16 : 0;
    if (shown(input) && textWidth(input, input.value) + padding(input) + spin > input.clientWidth + 1)
      problems.push(`field too narrow for its value: ${input.value}`);
  }
  for (const select of panel.querySelectorAll('select')) {
    if (!shown(select)) continue;
    if (select.selectedIndex < 0) { problems.push('a dropdown shows a blank'); continue; }
    const text = select.options[select.selectedIndex].text;
    if (textWidth(select, text) + padding(select) > select.clientWidth)
      problems.push(`dropdown too narrow for its choice: ${text}`);
  }
  for (const plot of panel.querySelectorAll('.js-plotly-plot')) {
    const svg = plot.querySelector('.main-svg');
    if (shown(plot) && svg.getBoundingClientRect().width > plot.getBoundingClientRect().width + 1)
      problems.push(`a figure is ${svg.getBoundingClientRect().width}px wide in ${plot.getBoundingClientRect().width}px: cut off`);
  }
  const edge = panel.getBoundingClientRect().right;
  for (const el of panel.querySelectorAll('.widget-html-content, .widget-button, input, select')) {
    if (shown(el) && el.getBoundingClientRect().right > edge + 1)
      problems.push(`sticks out of the panel: ${el.textContent.trim().slice(0, 40) || el.value}`);
  }
  for (const label of panel.querySelectorAll('.widget-label, .widget-readout')) {
    if (shown(label) && label.scrollWidth > label.clientWidth + 1)
      problems.push(`label cut off: ${label.textContent.trim()}`);
  }
  return problems;
}
"""

# The relative luminance (0 dark .. 1 light) of an element's computed text colour or SVG fill.
_LUMINANCE_JS = """
(el, property) => {
  const [r, g, b] = getComputedStyle(el)[property].match(/[\\d.]+/g).slice(0, 3).map(Number)
      .map(v => v / 255).map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
"""

# The alpha (0..255) of a picture's top-left pixel, read back through a canvas.
_CORNER_ALPHA_JS = """
(img) => {
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(img, 0, 0);
  return context.getImageData(1, 1, 1, 1).data[3];
}
"""


@pytest.fixture(scope="module")
def panels_page(browser, lab_server):
    """The notebook of every panel, run once; its page is shared by the theme tests."""
    relpath = write_notebook(ARTIFACTS / "browser-nb" / "widgets-look.ipynb", CELLS)
    context = browser.new_context(viewport={"width": 1400, "height": 1200})
    context.set_default_timeout(60_000)
    page = context.new_page()
    console = lablib.watch_console(page)
    try:
        open_notebook(page, lab_server, relpath)
        run_all(page)
        for name in PANELS:
            expect(page.locator(f".kit-{name}")).to_have_count(1)
        yield page
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        with open(SCREENSHOTS / "console.log", "a") as log:
            log.write("== widgets-look\n")
            log.writelines(line + "\n" for line in console.lines)
        context.close()
        lab_server.shutdown_kernels()


def _panel(page, name: str):
    panel = page.locator(f".kit-{name}")
    panel.scroll_into_view_if_needed()
    return panel


def _shot(page, name: str, theme: str) -> None:
    page.mouse.move(0, 0)  # no hover effects in the picture
    _panel(page, name).screenshot(path=str(SCREENSHOTS / f"widget-{name}-{theme}.png"))


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_panels_look_finished(panels_page, theme):
    page = panels_page
    set_theme(page, theme)
    assert cell_errors(page) == []
    problems = {}
    for name in PANELS:
        _shot(page, name, theme)
        found = page.locator(f".kit-{name}").evaluate(_PANEL_PROBLEMS_JS)
        if found:
            problems[name] = found
    page.locator(".jp-OutputArea-output img").last.screenshot(path=str(SCREENSHOTS / f"contact-sheet-{theme}.png"))
    assert problems == {}

    # The style dropdown names its empty choice; the tiny preset says what its pictures are.
    studio = page.locator(".kit-PromptStudio")
    shown = studio.locator("select").first.evaluate("s => s.options[s.selectedIndex].text")
    assert shown.replace("\xa0", " ") == "(no style)"  # ipywidgets writes spaces as no-break spaces
    for name in ("PromptStudio", "WalkExplorer", "FusionMixer", "StyleMap"):
        expect(page.locator(f".kit-{name} .kit-note")).to_contain_text("preset tiny")
    expect(studio.locator(".widget-button", has_text="seed 4294967295")).to_be_visible()
    record = studio.locator(".kit-text pre").first  # the record wraps at spaces, not inside words
    assert record.evaluate("p => [getComputedStyle(p).whiteSpace, getComputedStyle(p).wordBreak]") == [
        "pre-wrap",
        "normal",
    ]

    # Text follows the theme: light on the dark page, dark on the light one.
    dark = theme == "dark"
    note = page.locator(".kit-PromptStudio .kit-note")
    assert (note.evaluate(_LUMINANCE_JS, "color") > 0.4) == dark
    legend = page.locator(".kit-StyleMap .legendtext").first
    assert (legend.evaluate(_LUMINANCE_JS, "fill") > 0.4) == dark

    # Contact sheets and figures have no white background of their own.
    sheet = page.locator(".kit-AuditView img").first
    assert sheet.evaluate(_CORNER_ALPHA_JS) == 0
    paper = page.locator(".kit-StyleMap .main-svg").first
    assert paper.evaluate("svg => getComputedStyle(svg).backgroundColor") == "rgba(0, 0, 0, 0)"
    assert page.locator(".jp-OutputArea-output img").last.evaluate(_CORNER_ALPHA_JS) == 0


def test_walk_slider_and_caption_count_frames_from_1(panels_page):
    page = panels_page
    panel = _panel(page, "WalkExplorer")
    readout = panel.locator(".widget-slider .widget-readout")
    caption = panel.locator(".kit-text", has_text="frame ")
    expect(readout).to_have_text("1")
    expect(caption).to_contain_text("frame 1 of 4")
    expect(panel.locator("b", has_text="Keyframe 2")).to_be_visible()
    handle = panel.locator(".widget-slider .noUi-handle")
    handle.focus()
    handle.press("ArrowRight")
    expect(readout).to_have_text("2")
    expect(caption).to_contain_text("frame 2 of 4")
    handle.press("End")
    expect(readout).to_have_text("4")
    expect(caption).to_contain_text("frame 4 of 4")


@pytest.mark.parametrize("width", [1400, 820])
def test_style_map_takes_the_width_it_has(panels_page, width):
    page = panels_page
    page.set_viewport_size({"width": width, "height": 1200})
    try:
        page.wait_for_timeout(1000)  # plotly re-lays the figure out after a resize
        panel = _panel(page, "StyleMap")
        plot = panel.locator(".js-plotly-plot")
        plot.hover()  # the toolbar shows while the pointer is over the plot
        sizes = panel.evaluate("""(panel) => {
          const box = el => el ? el.getBoundingClientRect() : null;
          const area = box(panel.querySelector('.js-plotly-plot .nsewdrag'));
          const title = box([...panel.querySelectorAll('.widget-html')].find(h => h.textContent.includes('Style atlas')));
          const toolbar = box(panel.querySelector('.modebar'));
          return {panel: box(panel).width, area: [area.width, area.height],
                  overlap: !!toolbar && toolbar.width > 0 && !(toolbar.bottom <= title.top || toolbar.top >= title.bottom
                            || toolbar.right <= title.left || toolbar.left >= title.right)};
        }""")
        panel.screenshot(path=str(SCREENSHOTS / f"widget-StyleMap-{width}px.png"))
        assert sizes["area"][0] > sizes["panel"] / 2, sizes  # the legend does not squeeze the map
        assert sizes["area"][1] > 300, sizes
        assert not sizes["overlap"], sizes  # the toolbar does not cover the title
        assert panel.evaluate(_PANEL_PROBLEMS_JS) == []
    finally:
        page.set_viewport_size({"width": 1400, "height": 1200})
