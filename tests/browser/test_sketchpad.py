"""The Sketchpad in a real JupyterLab: strokes drawn with the mouse reach the kernel and a render appears
beside the drawing; a mask painted by hand is restored and its overlay shown; light and dark theme."""

from __future__ import annotations

import re

import pytest

from .lab import ARTIFACTS, SCREENSHOTS, cell_errors, open_notebook, run_all, set_theme
from .test_lab import write_notebook
from .test_widgets_look import _PANEL_PROBLEMS_JS

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

CELLS = [
    """\
import numpy as np
import kit
from kit import toyworld

studio = kit.Studio()              # KIT_PRESET=tiny
studio.progress_bar = False""",
    """\
ui = kit.widgets.Sketchpad(studio, prompt="portrait of a weaver")
ui.debounce = 0.3
ui""",
    """\
damaged = toyworld.draw(toyworld.sample(np.random.default_rng(11), rendering="outline"))
pad = kit.widgets.Sketchpad(studio, image=damaged, mode="mask", prompt="a portrait")
pad""",
]


def _stroke(page, canvas, points):
    """Press, drag through `points` (fractions of the canvas) and lift, as a person draws."""
    box = canvas.bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def _shoot(panel, name: str, theme: str) -> None:
    panel.page.mouse.move(0, 0)
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=str(SCREENSHOTS / f"widget-{name}-{theme}.png"))


def test_drawing_with_the_mouse_renders_and_a_painted_mask_restores(page, lab_server):
    relpath = write_notebook(ARTIFACTS / "browser-nb" / "sketchpad.ipynb", CELLS)
    open_notebook(page, lab_server, relpath)
    run_all(page)
    assert cell_errors(page) == []
    pads = page.locator(".kit-Sketchpad")
    expect(pads).to_have_count(2)
    draw, mask = pads.nth(0), pads.nth(1)

    # Two strokes with the mouse: the kernel counts them, and the live render appears beside the drawing.
    canvas = draw.locator("canvas.kit-canvas-strokes")
    canvas.scroll_into_view_if_needed()
    expect(draw).to_contain_text("0 strokes")
    _stroke(page, canvas, [(0.2, 0.2), (0.5, 0.6), (0.8, 0.3)])
    expect(draw).to_contain_text("1 stroke")
    _stroke(page, canvas, [(0.3, 0.8), (0.7, 0.85)])
    expect(draw).to_contain_text("2 strokes")
    result = draw.locator("img.widget-image")
    expect(result).to_be_visible(timeout=120_000)
    expect(result).to_have_attribute("src", re.compile("."))
    expect(draw).to_contain_text(re.compile(r"fast TAESD preview in|rendered in"), timeout=120_000)
    # what the canvas drew in the browser is not blank
    inked = canvas.evaluate("""c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                                     let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }""")
    assert inked > 100

    # Paint the damaged area of the picture by hand, press Restore: the restoration and its overlay appear.
    canvas = mask.locator("canvas.kit-canvas-strokes")
    canvas.scroll_into_view_if_needed()
    _stroke(page, canvas, [(0.15, 0.62), (0.8, 0.62)])
    expect(mask).to_contain_text("1 stroke")
    mask.locator(".widget-button", has_text="Restore").click()
    expect(mask.locator("img.widget-image")).to_have_count(2)
    for image in mask.locator("img.widget-image").all():
        expect(image).to_be_visible(timeout=120_000)
    expect(mask).to_contain_text("AI-made pixels in magenta", timeout=120_000)
    assert cell_errors(page) == []

    for theme in ("light", "dark"):
        set_theme(page, theme)
        _shoot(draw, "Sketchpad", theme)
        _shoot(mask, "Sketchpad-mask", theme)
        assert draw.evaluate(_PANEL_PROBLEMS_JS) == []
        assert mask.evaluate(_PANEL_PROBLEMS_JS) == []
