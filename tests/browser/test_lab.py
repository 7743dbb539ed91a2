"""JupyterLab in headless Chromium: widgets render and respond; curated notebooks run clean."""

from __future__ import annotations

import re

import nbformat
import pytest

from .lab import (
    ARTIFACTS,
    REPO_ROOT,
    cell_errors,
    notebook_state,
    open_notebook,
    run_all,
    screenshot,
)

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

CURATED = sorted(REPO_ROOT.glob("notebooks/*.ipynb"))

# A throwaway notebook with the widget kinds the kit's UIs are built from.
SMOKE_CELLS = [
    """\
import ipywidgets as widgets
from IPython.display import display

out = widgets.Output()
button = widgets.Button(description="Say hello")

def on_click(_):
    with out:
        print("hello from the button")

button.on_click(on_click)
display(button, out)""",
    """\
import plotly.graph_objects as go

fig = go.FigureWidget(go.Scatter(x=list(range(7)), y=[1, 3, 2, 5, 4, 6, 5], mode="markers"))
fig.update_layout(title_text="seven points", width=700, height=400)
fig""",
    """\
slider = widgets.IntSlider(value=3, min=0, max=10, description="Size")
echo = widgets.Label()

def show(change):
    echo.value = f"slider is at {change['new']}"
    fig.layout.title.text = f"marker size {change['new'] * 3}"
    fig.data[0].marker.size = change["new"] * 3

slider.observe(show, names="value")
show({"new": slider.value})
display(slider, echo)""",
]


def write_notebook(path, sources: list[str]) -> str:
    """Write code cells (no outputs) as a python3 notebook; return its path relative to the repo."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path.relative_to(REPO_ROOT).as_posix()


def test_widgets_render_and_respond(page, lab_server):
    relpath = write_notebook(ARTIFACTS / "browser-nb" / "widgets-smoke.ipynb", SMOKE_CELLS)
    open_notebook(page, lab_server, relpath)
    run_all(page)
    try:
        assert cell_errors(page) == []

        # Button -> callback -> Output widget, through the kernel and back.
        button = page.locator(".widget-button", has_text="Say hello")
        expect(button).to_be_visible()
        button.click()
        expect(page.locator(".widget-output", has_text="hello from the button")).to_be_visible()

        # Plotly FigureWidget (an anywidget in plotly 6+): 7 markers drawn.
        points = page.locator(".js-plotly-plot .scatterlayer path.point")
        expect(points).to_have_count(7)
        expect(page.locator(".js-plotly-plot .gtitle")).to_have_text("marker size 9")

        # Slider moved from the keyboard -> observer in the kernel -> label and figure update.
        echo = page.locator(".widget-label", has_text="slider is at")
        expect(echo).to_have_text("slider is at 3")
        handle = page.locator(".widget-slider .noUi-handle").first
        handle.focus()
        handle.press("ArrowRight")
        handle.press("ArrowRight")
        expect(echo).to_have_text("slider is at 5")
        expect(page.locator(".js-plotly-plot .gtitle")).to_have_text("marker size 15")
        assert cell_errors(page) == []
    finally:
        screenshot(page, "widgets-smoke")


def test_errors_are_reported(page, lab_server):
    """The harness itself: Run All stops at a failing cell and cell_errors returns its traceback."""
    sources = [
        'print("first")',
        'raise ValueError("size must be between 64 and 1024")',
        'print("never runs")',
    ]
    relpath = write_notebook(ARTIFACTS / "browser-nb" / "error-smoke.ipynb", sources)
    open_notebook(page, lab_server, relpath)
    run_all(page, timeout_ms=120_000)
    errors = cell_errors(page)
    assert len(errors) == 1
    assert "ValueError: size must be between 64 and 1024" in errors[0]
    assert notebook_state(page)["prompts"] == ["[1]:", "[2]:", "[ ]:"]


def check_prompt_studio(page):
    """01: the PromptStudio rendered; pressing Generate adds a thumbnail to its gallery."""
    thumbnails = page.locator(".widget-button", has_text=re.compile(r"^seed \d+$"))
    expect(thumbnails.first).to_be_visible()
    before = thumbnails.count()
    page.locator(".widget-button", has_text="Generate").last.click()
    expect(thumbnails).to_have_count(before + 1, timeout=120_000)


def check_walk_explorer(page):
    """02: moving the WalkExplorer's frame slider shows another frame."""
    slider = page.locator(".widget-slider", has_text="Frame").last
    viewer = page.locator(".widget-vbox", has=slider).last
    image = viewer.locator("img").first
    expect(image).to_have_attribute("src", re.compile("."))
    before = image.get_attribute("src")
    handle = slider.locator(".noUi-handle")
    handle.focus()
    handle.press("ArrowRight")
    expect(image).not_to_have_attribute("src", before)


def check_style_map(page):
    """04: the StyleMap shows every atlas point; an image made in the studio lands on it."""
    import kit

    expected = len(kit.styles.catalogue()) + 6  # the catalogue, 3 placed images, a folder of 3
    style_map = page.locator(".js-plotly-plot").last
    points = style_map.locator(".scatterlayer path.point")
    expect(points).to_have_count(expected)
    page.locator(".widget-button", has_text="Generate").last.click()
    expect(points).to_have_count(expected + 1, timeout=120_000)


WIDGET_CHECKS = {
    "01_prompting": check_prompt_studio,
    "02_latent_walks": check_walk_explorer,
    "04_style_map": check_style_map,
}


@pytest.mark.parametrize("notebook", CURATED, ids=[path.stem for path in CURATED])
def test_curated_notebook_runs_clean(page, lab_server, notebook):
    relpath = notebook.relative_to(REPO_ROOT).as_posix()
    open_notebook(page, lab_server, relpath)
    try:
        run_all(page)
        assert cell_errors(page) == [], f"{relpath} shows errors in the browser"
        check = WIDGET_CHECKS.get(notebook.stem)
        if check is not None:
            check(page)
            assert cell_errors(page) == [], f"{relpath}: the widgets showed errors"
    finally:
        screenshot(page, notebook.stem)
