"""`PromptStudio`: prompt, style and seed controls, Generate/Stop, and a thumbnail gallery."""

from __future__ import annotations

import json
import time
from html import escape

import ipywidgets as W
import traitlets as T

from ..core.latents import random_seed
from ..errors import KitError
from ..limits import MAX_BATCH, MAX_GUIDANCE, MAX_STEPS
from ..provenance.record import Drawn
from .common import (
    Panel,
    gallery_for,
    image_slot,
    png_bytes,
    preset_note,
    seed_field,
    show_png,
    size_dropdown,
    style_dropdown,
    style_note,
)

THUMB = 128  # px, a thumbnail's side
LARGE = 384  # px, the enlarged image's width


class PromptStudio(Panel):
    """Text-to-image for a class: every image is saved to the gallery as it is shown.

    >>> ui = kit.widgets.PromptStudio(studio); ui

    Traits: `artworks` (every image shown, oldest first; replaced, never appended to, so
    observers see each change), `selected` (index of the enlarged one), `showing` and `error`.

    On a CPU the full VAE decode takes longer than a one-step diffusion, so each batch's fast
    TAESD preview is shown as soon as its latents exist and replaced by the full image when
    that is decoded (`showing` says which is on screen).
    """

    artworks = T.List(help="the Artworks this widget has shown, oldest first")
    selected = T.Int(None, allow_none=True, help="index into artworks of the enlarged image")
    showing = T.Unicode("", help="what the enlarged image is: 'preview' (TAESD, the full decode is coming) or 'full'")
    tokens = T.List(help="the prompt's tokens per chunk of the text encoder's window, counted as it is typed")

    def __init__(self, studio, gallery=None, **kwargs):
        super().__init__(**kwargs)
        self.studio = studio
        self.gallery = gallery_for(studio, gallery)
        self._started = time.perf_counter()  # when the last Generate was pressed
        self._drawn = 0  # the seed field's value the person did not choose (its default, the dice's last roll)
        self._group: list[int] = []  # for each artwork: how many candidates its Generate made
        preset = studio.preset
        narrow = {"description_width": "initial"}

        self.note = preset_note(preset)
        self.prompt = W.Textarea(
            placeholder="portrait of an elder, soft window light",
            description="Prompt",
            layout=W.Layout(width="auto", height="4em"),
        )
        self.negative = W.Text(
            placeholder="what to avoid (works when guidance > 1)", description="Negative", layout=W.Layout(width="auto")
        )
        self.style = style_dropdown(description="Style", layout=W.Layout(width="24em"))
        self.style_note = W.HTML()
        self.token_count = W.HTML()
        self.seed = seed_field(description="Seed")
        self.dice = W.Button(description="", icon="dice", tooltip="a new random seed", layout=W.Layout(width="3em"))
        self.steps = W.BoundedIntText(
            value=preset.steps, min=1, max=MAX_STEPS, description="Steps", style=narrow, layout=W.Layout(width="9em")
        )
        self.guidance = W.BoundedFloatText(
            value=preset.guidance,
            min=0,
            max=MAX_GUIDANCE,
            step=0.5,
            description="Guidance",
            style=narrow,
            layout=W.Layout(width="11em"),
        )
        self.size = size_dropdown(preset)
        self.count = W.BoundedIntText(
            value=1, min=1, max=MAX_BATCH, description="Images", style=narrow, layout=W.Layout(width="9em")
        )
        self.preview = W.Checkbox(value=False, description="fast preview (TAESD)", indent=False)
        self.generate_button = W.Button(description="Generate", button_style="primary", icon="paint-brush")
        self.stop_button = W.Button(description="Stop", button_style="warning", icon="stop")
        self.thumbnails = W.HBox(layout=W.Layout(flex_flow="row wrap"))
        self.large = image_slot(width=f"{LARGE}px")
        self.details = W.HTML(layout=W.Layout(flex="1 1 20em", min_width="16em", margin="0 0 0 12px"))

        self.dice.on_click(lambda _: self.roll_seed())
        self.generate_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.style.observe(lambda change: setattr(self.style_note, "value", style_note(change["new"])), names="value")
        self.prompt.observe(lambda change: self.count_tokens(), names="value")

        wrap = W.Layout(flex_flow="row wrap", align_items="center")
        self.show_parts(
            self.note,
            self.prompt,
            self.token_count,
            self.negative,
            self.style,
            self.style_note,
            W.HBox([self.seed, self.dice, self.steps, self.guidance, self.size, self.count, self.preview], layout=wrap),
            W.HBox([self.generate_button, self.stop_button, self.progress, self.status], layout=wrap),
            self.thumbnails,
            W.HBox([self.large, self.details], layout=W.Layout(flex_flow="row wrap", align_items="flex-start")),
            self.out,
        )

    # ------------------------------------------------------------ actions

    def count_tokens(self):
        """Count the prompt's tokens as it is typed; say when they take more than one chunk of the encoder's window."""
        try:
            self.tokens = self.studio.count_tokens(self.prompt.value)
        except KitError:  # no model here yet, or a prompt too long to be one: Generate says why
            self.tokens, self.token_count.value = [], ""
            return
        total = sum(self.tokens)
        text = f"{total} token{'s' * (total != 1)}"
        if len(self.tokens) > 1:
            text += (
                f" in {len(self.tokens)} chunks ({' + '.join(map(str, self.tokens))}), "
                f"each read by the text encoder on its own"
            )
        self.token_count.value = f"<span class='kit-status'>{escape(text)}</span>"

    def roll_seed(self):
        self.set_seed(random_seed())

    def set_seed(self, seed: int, chosen: bool = False):
        """Put `seed` in the seed field. Unless `chosen`, images made with it do not say the person chose
        it (a dice roll, a seed carried over from an earlier image); a seed typed in the field is chosen."""
        self.seed.value = seed
        self._drawn = None if chosen else seed

    def request(self) -> dict:
        """The generate arguments the controls describe."""
        seed = self.seed.value  # a seed the person left as it was is not credited to them (kit.record.Drawn)
        return dict(
            style=self.style.value or None,
            negative=self.negative.value,
            seed=Drawn(seed) if seed == self._drawn else seed,
            n=self.count.value,
            steps=self.steps.value,
            guidance=self.guidance.value,
            size=self.size.value,
            preview=self.preview.value,
        )

    def run(self):
        """Generate from the controls in the background; bad input is shown and nothing is lost."""
        prompt, request = self.prompt.value, self.request()
        self.say("generating…")

        early = self._show_preview if self.previews_first(request) else None
        self._started = time.perf_counter()

        def work(run):  # generate checks the request before any model work
            return self.studio.generate(prompt, **request, on_preview=early, run=run)

        return self.run_in_background(work, done=self._show_new, partial=self._show_new, buttons=[self.generate_button])

    def previews_first(self, request: dict) -> bool:
        """Show a TAESD preview before the full decode: where the studio says so, when the full VAE is asked for."""
        return self.studio.previews_first and not request["preview"]

    def _show_preview(self, images):
        show_png(self.large, png_bytes(images[-1]))
        self.say(f"a fast preview (TAESD) after {time.perf_counter() - self._started:.1f} s; the full image follows…")
        self.showing = "preview"

    def _show_new(self, artworks):
        for art in artworks:
            self.studio.keep(art, self.gallery)  # saved once: a studio with a gallery has saved it already
        first = len(self.artworks)
        self.thumbnails.children = (
            *self.thumbnails.children,
            *(self._thumbnail(first + i, art) for i, art in enumerate(artworks)),
        )
        self._group += [len(artworks)] * len(artworks)
        self.artworks = [*self.artworks, *artworks]
        if artworks:
            self.select(len(self.artworks) - 1)
        self.say(
            f"{len(artworks)} image(s) made in {time.perf_counter() - self._started:.1f} s, "
            f"saved to {self.gallery.folder}"
        )

    def _thumbnail(self, index, art):
        image = W.Image(
            value=png_bytes(art.image, THUMB),
            format="png",
            layout=W.Layout(width=f"{THUMB}px", height=f"{THUMB}px", object_fit="contain"),
        )
        button = W.Button(
            description=f"seed {art.record.seed}",
            tooltip=art.record.prompt,
            layout=W.Layout(width="auto", min_width=f"{THUMB}px"),
        )
        button.on_click(lambda _: self.select(index, picked=True))
        return W.VBox([image, button], layout=W.Layout(margin="0 6px 6px 0", align_items="center"))

    def select(self, index, picked: bool = False):
        """Enlarge one image and show its record and who did what. `picked`: the person chose it (clicked
        its thumbnail); out of several candidates, the gallery notes the pick (`Gallery.credit`)."""
        art = self.artworks[index]
        self.selected = index
        show_png(self.large, png_bytes(art.image))
        self.showing = "full"
        candidates = self._group[index] if index < len(self._group) else 1
        try:
            if picked and candidates > 1:
                self.gallery.credit(art.record.sha256, {"action": "picked", "of": candidates})
            credits = self.gallery.credits(art.record.sha256)
        except KitError as err:  # not in the gallery (its save failed): the record alone
            self.show_error(err)
            credits = []
        who = "".join(f"<li>{escape(line)}</li>" for line in art.record.describe_authorship(credits))
        record = json.dumps(art.record.to_dict(), indent=1, ensure_ascii=False)
        self.details.value = (
            f"<div class='kit-text'><pre>{escape(art.record.parameters())}</pre>"
            f"<details><summary>who did what</summary><ul>{who}</ul></details>"
            f"<details><summary>full record</summary><pre style='max-height:24em;overflow:auto'>"
            f"{escape(record)}</pre></details></div>"
        )
