"""`PromptStudio`: prompt, style and seed controls, Generate/Stop, and a thumbnail gallery."""

from __future__ import annotations

import json
from html import escape

import ipywidgets as W

from .. import styles
from ..latents import random_seed
from ..provenance import Gallery, default_folder
from .common import Panel, png_bytes

THUMB = 112


class PromptStudio(Panel):
    """Text-to-image for a class: every image is saved to the gallery as it is shown.

    >>> ui = kit.widgets.PromptStudio(studio); ui
    """

    def __init__(self, studio, gallery=None):
        super().__init__()
        self.studio = studio
        if gallery is None:
            gallery = studio.gallery if studio.gallery is not None else default_folder()
        self.gallery = gallery if isinstance(gallery, Gallery) else Gallery(gallery)
        self.artworks = []  # what this widget has shown, oldest first
        preset = studio.preset

        self.prompt = W.Textarea(placeholder="portrait of an elder, soft window light", description="Prompt",
                                 layout=W.Layout(width="100%", height="4em"))
        self.negative = W.Text(placeholder="what to avoid (works when guidance > 1)", description="Negative",
                               layout=W.Layout(width="100%"))
        self.style = W.Dropdown(options=[("(no style)", None)] + sorted((s.name, s.id) for s in styles.catalogue()),
                                value=None, description="Style")
        self.style_note = W.HTML()
        self.seed = W.BoundedIntText(value=0, min=0, max=2**32 - 1, description="Seed", layout=W.Layout(width="14em"))
        self.dice = W.Button(description="", icon="dice", tooltip="a new random seed", layout=W.Layout(width="3em"))
        self.steps = W.BoundedIntText(value=preset.steps, min=1, max=50, description="Steps", layout=W.Layout(width="10em"))
        self.guidance = W.BoundedFloatText(value=preset.guidance, min=0, max=20, step=0.5, description="Guidance",
                                           layout=W.Layout(width="11em"))
        sizes = list(range(preset.min_size, preset.max_size + 1, 64))
        self.size = W.Dropdown(options=sizes, value=preset.size if preset.size in sizes else sizes[0],
                               description="Size", layout=W.Layout(width="12em"))
        self.count = W.BoundedIntText(value=1, min=1, max=8, description="Images", layout=W.Layout(width="10em"))
        self.preview = W.Checkbox(value=False, description="fast preview (TAESD)", indent=False)
        self.generate_button = W.Button(description="Generate", button_style="primary", icon="paint-brush")
        self.stop_button = W.Button(description="Stop", button_style="warning", icon="stop")
        self.thumbnails = W.HBox(layout=W.Layout(flex_flow="row wrap"))
        self.large = W.Image(format="png", layout=W.Layout(max_width="512px"))
        self.details = W.HTML()
        self.selected = None  # index into self.artworks of the enlarged image

        self.dice.on_click(lambda _: self.roll_seed())
        self.generate_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.studio.stop())
        self.style.observe(self._on_style, names="value")

        controls = W.VBox([
            self.prompt, self.negative,
            W.HBox([self.style, self.style_note]),
            W.HBox([self.seed, self.dice, self.steps, self.guidance]),
            W.HBox([self.size, self.count, self.preview]),
            W.HBox([self.generate_button, self.stop_button, self.progress, self.status]),
        ])
        self.widget = W.VBox([controls, self.thumbnails, W.HBox([self.large, self.details]), self.out])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    # ------------------------------------------------------------ actions

    def roll_seed(self):
        self.seed.value = random_seed()

    def _on_style(self, change):
        style = styles.get(change["new"]) if change["new"] else None
        if style is not None and style.sensitive:
            self.style_note.value = f"<b>Please read first:</b> {escape(style.note)}"
        elif style is not None:
            self.style_note.value = f"<i>{escape(style.description)}</i>"
        else:
            self.style_note.value = ""

    def request(self) -> dict:
        """The generate arguments the controls describe."""
        return dict(style=self.style.value, negative=self.negative.value, seed=self.seed.value, n=self.count.value,
                    steps=self.steps.value, guidance=self.guidance.value, size=self.size.value,
                    preview=self.preview.value)

    def run(self):
        """Generate from the controls in the background; bad input is shown and nothing is lost."""
        prompt, request = self.prompt.value, self.request()
        self.say("generating…")

        def work():
            self.studio.plan(prompt, **request)  # bad input fails here, before any model work
            return self.studio.generate(prompt, **request, on_step=self.on_step)

        return self.run_in_background(work, done=self._show_new, buttons=[self.generate_button])

    def _show_new(self, artworks):
        for art in artworks:
            if self.studio.gallery is None:  # a studio with its own gallery has saved it already
                self.gallery.add(art)
            self.artworks.append(art)
            self.thumbnails.children = (*self.thumbnails.children, self._thumbnail(len(self.artworks) - 1))
        if artworks:
            self.select(len(self.artworks) - 1)
        self.say(f"{len(artworks)} image(s) made, saved to {self.gallery.folder}")

    def _thumbnail(self, index):
        art = self.artworks[index]
        image = W.Image(value=png_bytes(art.image, THUMB), format="png", layout=W.Layout(width=f"{THUMB}px"))
        button = W.Button(description=f"seed {art.record.seed}", tooltip=art.record.prompt,
                          layout=W.Layout(width=f"{THUMB}px"))
        button.on_click(lambda _: self.select(index))
        return W.VBox([image, button])

    def select(self, index):
        """Enlarge one image and show its record."""
        art = self.artworks[index]
        self.selected = index
        self.large.value = png_bytes(art.image)
        record = json.dumps(art.record.to_dict(), indent=1, ensure_ascii=False)
        self.details.value = (
            f"<pre style='white-space:pre-wrap;max-width:40em'>{escape(art.record.parameters())}</pre>"
            f"<details><summary>full record</summary><pre style='font-size:11px;max-height:24em;overflow:auto'>"
            f"{escape(record)}</pre></details>"
        )
