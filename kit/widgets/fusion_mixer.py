"""`FusionMixer`: pick 2 to 5 styles, drag their weights, watch a live preview of the blend."""

from __future__ import annotations

from html import escape

import ipywidgets as W
import traitlets as T

from .. import styles
from ..core import blend
from ..core.latents import random_seed
from ..errors import KitError
from ..features import fusion
from ..provenance.record import Drawn
from .common import (
    LivePanel,
    gallery_for,
    image_slot,
    png_bytes,
    preset_note,
    seed_field,
    show_png,
    style_dropdown,
    style_note,
)

VIEW = 384  # px, the width of a rendered image
SHEET_WIDTH = 720  # px, the widest a grid is shown


class FusionMixer(LivePanel):
    """Blend cultural styles by weight (see `kit.fusion` for the weight rule).

    >>> ui = kit.widgets.FusionMixer(studio); ui

    Moving a slider re-renders a small preview (the preset's smallest size,
    TAESD decoding) once the slider has rested for `debounce` seconds.
    **Render** makes the full-size image, **Grid** a sweep (2 styles) or a
    triangle (3 styles); both are saved to the gallery. Previews are not saved:
    press Render to keep one.

    Traits: `artworks` (renders and grid images, oldest first, all saved), `artwork` (the
    image shown last, a preview or a render), `sheet` (the last grid) and `error`.
    """

    debounce = 0.4  # seconds a control must rest before the preview is redrawn
    artworks = T.List(help="full renders and grid images, oldest first (all saved)")
    artwork = T.Any(None, allow_none=True, help="the image shown last (a preview or a render)")
    sheet = T.Any(None, allow_none=True, help="the last grid's contact sheet (a PIL image)")

    def __init__(self, studio, gallery=None, subject="portrait of an elder", seed=0, **kwargs):
        super().__init__(**kwargs)
        self.studio = studio
        self.gallery = gallery_for(studio, gallery)
        self._drawn = seed  # the seed field's value the person did not choose (as given, the dice's last roll)

        self.note = preset_note(studio.preset)
        self.picker = style_dropdown(none=None, description="Style", layout=W.Layout(width="28em"))
        self.add_button = W.Button(description="Add", icon="plus", layout=W.Layout(width="6em"))
        self.styles = W.TagsInput(
            value=[], allowed_tags=styles.ids(), allow_duplicates=False, layout=W.Layout(width="auto")
        )
        self.notes = W.HTML()
        self.sliders: dict[str, W.FloatSlider] = {}
        self.slider_box = W.VBox()
        self.mix = W.HTML()
        self.subject = W.Text(value=subject, description="Subject", layout=W.Layout(width="28em"))
        self.seed = seed_field(seed, description="Seed")
        self.dice = W.Button(description="", icon="dice", tooltip="a new random seed", layout=W.Layout(width="3em"))
        self.live = W.Checkbox(value=True, description="live preview", indent=False)
        self.render_button = W.Button(
            description="Render",
            button_style="primary",
            icon="paint-brush",
            tooltip="the full-size image, saved to the gallery",
        )
        self.grid_button = W.Button(description="Grid", icon="th", tooltip="a sweep (2 styles) or triangle (3)")
        self.grid_steps = W.BoundedIntText(
            value=5,
            min=2,
            max=fusion.MAX_GRID_STEPS,
            description="Grid points",
            style={"description_width": "initial"},
            layout=W.Layout(width="9em"),
        )
        self.stop_button = W.Button(description="Stop", button_style="warning", icon="stop")
        self.image = image_slot(width=f"{VIEW}px")
        self.caption = W.HTML(layout=W.Layout(flex="1 1 14em"))

        self.add_button.on_click(lambda _: self.add(self.picker.value))
        self.dice.on_click(lambda _: self.roll_seed())
        self.render_button.on_click(lambda _: self.render())
        self.grid_button.on_click(lambda _: self.grid())
        self.stop_button.on_click(lambda _: self.stop())
        self.styles.observe(self._on_styles, names="value")
        for control in (self.subject, self.seed, self.live):
            control.observe(lambda _: self.schedule(), names="value")

        wrap = W.Layout(flex_flow="row wrap", align_items="center")
        self.show_parts(
            self.note,
            W.HBox([self.picker, self.add_button], layout=wrap),
            self.styles,
            self.notes,
            self.slider_box,
            self.mix,
            W.HBox([self.subject, self.seed, self.dice, self.live], layout=wrap),
            W.HBox(
                [self.render_button, self.grid_button, self.grid_steps, self.stop_button, self.progress, self.status],
                layout=wrap,
            ),
            W.HBox([self.image, self.caption], layout=W.Layout(flex_flow="row wrap", align_items="flex-start")),
            self.out,
        )

    # ------------------------------------------------------------ choosing styles and weights

    def add(self, style_id):
        """Add a catalogue style to the mix."""
        if style_id in self.styles.value:
            self.say(f"{style_id} is already in the mix")
            return
        self.styles.value = [*self.styles.value, style_id]

    def weights(self) -> dict[str, float]:
        """The weights the sliders show, as `studio.fuse` takes them."""
        return {key: slider.value for key, slider in self.sliders.items()}

    def _on_styles(self, change):
        chosen = list(change["new"])
        if len(chosen) > blend.MAX_STYLES:
            self.show_error(
                KitError(f"styles: choose 2 to {blend.MAX_STYLES} styles; kept the first {blend.MAX_STYLES}")
            )
            self.styles.value = chosen[: blend.MAX_STYLES]  # observed again with the kept ones
            return
        old = self.sliders
        self.sliders = {}
        for key in chosen:
            slider = old.get(key) or W.FloatSlider(
                value=0.5,
                min=-1.0,
                max=1.0,
                step=0.05,
                readout_format=".2f",
                tooltip=key,
                layout=W.Layout(width="22em"),
            )
            if key not in old:
                slider.observe(self._on_weight, names="value")
            self.sliders[key] = slider
        for key, slider in old.items():
            if key not in self.sliders:
                slider.unobserve(self._on_weight, names="value")
        self.slider_box.children = tuple(
            W.HBox(
                [
                    W.HTML(
                        f"<div class='kit-text'>{escape(styles.get(key).name)}</div>", layout=W.Layout(width="16em")
                    ),
                    slider,
                ],
                layout=W.Layout(align_items="center"),
            )
            for key, slider in self.sliders.items()
        )
        self.notes.value = "".join(style_note(key, describe=False) for key in chosen)
        self._show_mix()
        self.schedule()

    def _on_weight(self, change):
        self._show_mix()
        self.schedule()

    def _show_mix(self):
        if len(self.sliders) < 2:
            self.mix.value = f"<i>choose 2 to {blend.MAX_STYLES} styles</i>"
            return
        try:
            self.mix.value = f"mix: <b>{escape(blend.describe(self.weights()))}</b> (weights divided by their sum)"
        except KitError as err:
            self.mix.value = f"<span class='kit-error'>{escape(str(err))}</span>"

    def roll_seed(self):
        self.seed.value = self._drawn = random_seed()

    # ------------------------------------------------------------ the debounced live preview

    def schedule(self):
        """(Re)start the preview timer: many quick changes give one preview, after the last."""
        self._cancel_timer()
        if not self.live.value or not 2 <= len(self.sliders) <= blend.MAX_STYLES:
            return
        try:
            blend.check_weights(self.weights())
        except KitError:
            return  # the mix line already says what is wrong; Render would show it in full
        self._arm()

    def _fire(self):
        if self.busy:  # a render is running: try again when it may have finished
            self.schedule()
            return
        self.preview()

    # ------------------------------------------------------------ actions

    def _request(self) -> tuple[dict, str, int]:
        fusion.check_styles(list(self.sliders))
        return self.weights(), self.subject.value, self._seed()

    def _seed(self):
        """The seed field's value; one the person left as it was is not credited to them (kit.record.Drawn)."""
        return Drawn(self.seed.value) if self.seed.value == self._drawn else self.seed.value

    def preview(self):
        """A small, fast image of the current mix (not saved)."""

        def work(run):
            weights, subject, seed = self._request()  # studio.fuse checks the rest before any model work
            return self.studio.fuse(
                weights, subject, seed=seed, size=self.studio.preset.min_size, preview=True, run=run, save=False
            )  # a passing preview: never in the gallery

        self.say("previewing…")
        return self.run_in_background(work, done=self._show_preview)

    def render(self):
        """The full-size image of the current mix, saved to the gallery."""
        self._cancel_timer()

        early = self._show_early if self.studio.previews_first else None

        def work(run):
            weights, subject, seed = self._request()
            return self.studio.fuse(weights, subject, seed=seed, on_preview=early, run=run)

        self.say("rendering…")
        return self.run_in_background(work, done=self._show_render, buttons=[self.render_button, self.grid_button])

    def grid(self):
        """A fusion grid of the 2 or 3 chosen styles at preview size, saved to the gallery."""
        self._cancel_timer()

        def work(run):
            return self.studio.fusion_grid(
                list(self.sliders),
                self.subject.value,
                seed=self._seed(),
                points=self.grid_steps.value,
                size=self.studio.preset.min_size,
                preview=True,
                run=run,
            )

        self.say("drawing the grid…")
        return self.run_in_background(
            work, done=self._show_grid, partial=self._keep, buttons=[self.render_button, self.grid_button]
        )

    # ------------------------------------------------------------ showing results

    def _show(self, art):
        self.image.layout.width = f"{VIEW}px"
        show_png(self.image, png_bytes(art.image))
        self.caption.value = (
            f"<div class='kit-text'>{escape(art.record.prompt)}<br>seed {art.record.seed}, "
            f"{art.image.width}×{art.image.height}, {art.record.decoder}</div>"
        )
        self.artwork = art

    def _keep(self, arts):
        for art in arts:
            self.studio.keep(art, self.gallery)  # saved once: a studio with a gallery has saved it already
        self.artworks = [*self.artworks, *arts]

    def _show_preview(self, art):
        self._show(art)
        self.say("preview (not saved: press Render to keep it)")

    def _show_early(self, images):
        show_png(self.image, png_bytes(images[0]))
        self.say("a fast preview (TAESD) of the render; the full image follows…")

    def _show_render(self, art):
        self._keep([art])
        self._show(art)
        self.say(f"rendered and saved to {self.gallery.folder}")

    def _show_grid(self, result):
        sheet, arts = result
        self._keep(arts)
        self.image.layout.width = f"{min(sheet.width, SHEET_WIDTH)}px"
        show_png(self.image, png_bytes(sheet))
        self.caption.value = f"<div class='kit-text'>{len(arts)} blends, seed {self.seed.value}</div>"
        self.sheet = sheet
        self.say(f"grid of {len(arts)} images saved to {self.gallery.folder}")
