"""`Sketchpad`: draw (or start from a photo) and let the model finish it; or paint a restoration's mask by hand."""

from __future__ import annotations

import time
from html import escape

import ipywidgets as W
import traitlets as T

from ..core.latents import random_seed
from ..errors import KitError
from ..features import sketch
from ..features.restyle import DEFAULT_STRENGTH
from ..files import check_image
from ..provenance.artwork import pixel_hash
from .canvas import SketchCanvas
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

VIEW = 384  # px, how wide the drawing and the result are shown
MASK_VIEW = 288  # px, in mode "mask": the picture, the restoration and its overlay side by side
DRAWING = 256  # px, the smallest drawing made (the tiny preset's 64 px is too small to draw on)
HISTORY = 200  # drawings Undo can go back to
COLOURS = "#1d3557"  # the first brush colour: a dark blue ink


class Sketchpad(LivePanel):
    """Draw with the mouse or a pen, and see the model re-render the drawing beside it.

    >>> ui = kit.widgets.Sketchpad(studio); ui                        # a drawing, restyled live
    >>> ui = kit.widgets.Sketchpad(studio, image=photo)               # drawing over a photo
    >>> ui = kit.widgets.Sketchpad(studio, image=damaged, mode="mask")  # paint what to restore

    mode "draw": brush size, colour, eraser, Undo (Clear too can be undone) and a photo to start
    from. With **live** on, the drawing is re-rendered by `studio.restyle` once the pen has
    rested `debounce` seconds; a new stroke stops a render still running. On a CPU a live render
    is decoded by the fast TAESD decoder. Renders are not saved: **Keep** saves the result shown
    to the gallery (a TAESD preview is decoded with the full VAE first).

    mode "mask": the strokes paint the damaged area of `image` (translucent magenta);
    **Restore** gives exactly those pixels to `studio.restore` as its mask, shows the restoration
    and its disclosure overlay, and saves it to the gallery.

    Traits: `strokes` (the drawing: a list of stroke dicts, see `kit.features.sketch`; set it and the
    canvas redraws), `stroke_count`, `photo` (the photo drawn over, fitted to the drawing),
    `artwork` (the latest result), `showing` ('preview' or 'full'), `renders` (results shown),
    `kept` (artworks saved from here) and `error`. Nothing drawn is lost when a render fails.
    """

    debounce = 0.8  # seconds the pen must rest before a live render
    strokes = T.List(help="the strokes drawn, oldest first (kit.features.sketch's stroke dicts)")
    stroke_count = T.Int(0, help="how many strokes the drawing has: what the person drew")
    photo = T.Any(None, allow_none=True, help="the photo drawn over, fitted to the drawing (PIL), or None")
    artwork = T.Any(None, allow_none=True, help="the latest result: a restyle (draw) or a Restoration (mask)")
    showing = T.Unicode("", help="what the result is: 'preview' (TAESD) or 'full' (the full VAE)")
    renders = T.Int(0, help="how many results have been shown")
    kept = T.List(help="the artworks saved to the gallery from here, oldest first")

    def __init__(
        self,
        studio,
        image=None,
        *,
        mode: str = "draw",
        gallery=None,
        size=None,
        prompt: str = "",
        style: str | None = None,
        strength: float = DEFAULT_STRENGTH,
        seed: int = 0,
        live: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mode not in ("draw", "mask"):
            raise KitError(f"mode must be 'draw' or 'mask', got {mode!r}")
        if mode == "mask" and image is None:
            raise KitError("mode 'mask' paints on a picture: give image= (the artwork to restore)")
        self.studio = studio
        self.mode = mode
        self.gallery = gallery_for(studio, gallery)
        self.image = check_image(image) if mode == "mask" else None  # the picture a mask is painted on
        if self.image is not None:
            width, height = self.image.size
        elif size is not None:
            width, height = sketch.check_size((size, size) if isinstance(size, int) else size)
        else:
            width = height = max(studio.preset.size, DRAWING)
        self.size = (width, height)
        self._history: list[list] = []
        self._undoing = False
        self._made = None  # (artwork, drawing, request, the drawing as kept) of the result shown: Keep saves both
        self._started = time.perf_counter()

        scale = (VIEW if mode == "draw" else MASK_VIEW) / max(width, height)
        brush = max(3, round(max(width, height) / 40))
        self.canvas = SketchCanvas(
            width=width,
            height=height,
            display_width=round(width * scale),
            mode=mode,
            brush_size=brush,
            brush_color=COLOURS,
        )
        if self.image is not None:
            self.canvas.background = png_bytes(self.image)
        narrow = {"description_width": "initial"}
        self.note = preset_note(studio.preset)
        self.brush = W.IntSlider(
            value=brush,
            min=1,
            max=min(sketch.MAX_BRUSH, max(16, max(width, height) // 4)),
            description="Brush",
            style=narrow,
            layout=W.Layout(width="16em"),
        )
        self.colour = W.ColorPicker(
            value=COLOURS, concise=True, description="Colour", style=narrow, layout=W.Layout(width="8em")
        )
        self.eraser = W.ToggleButton(
            description="Eraser", icon="eraser", tooltip="rub out: the next strokes erase", layout=W.Layout(width="7em")
        )
        self.undo_button = W.Button(description="Undo", icon="undo", layout=W.Layout(width="6em"))
        self.clear_button = W.Button(description="Clear", icon="trash", layout=W.Layout(width="6em"))
        self.upload = W.FileUpload(
            accept="image/*",
            multiple=False,
            description="Photo",
            tooltip="start from a photo: it is fitted to the drawing",
        )
        self.count = W.HTML()
        self.prompt = W.Text(
            value=prompt, description="Prompt", placeholder="portrait of an elder", layout=W.Layout(width="28em")
        )
        self.style = style_dropdown(style, description="Style", layout=W.Layout(width="22em"))
        self.style_note = W.HTML(style_note(style))
        self.strength = W.FloatSlider(
            value=strength,
            min=0.05,
            max=1.0,
            step=0.05,
            readout_format=".2f",
            description="Strength",
            style=narrow,
            layout=W.Layout(width="18em"),
            tooltip="how far from the drawing: near 0 keeps it, 1 ignores it",
        )
        self.seed = seed_field(seed, description="Seed")
        self.dice = W.Button(description="", icon="dice", tooltip="a new random seed", layout=W.Layout(width="3em"))
        self.live = W.Checkbox(
            value=live and mode == "draw", description="live", indent=False, layout=W.Layout(width="6em")
        )
        self.render_button = W.Button(description="Render", button_style="primary", icon="paint-brush")
        self.keep_button = W.Button(description="Keep", icon="save", tooltip="save the result to the gallery")
        self.restore_button = W.Button(
            description="Restore", button_style="primary", icon="magic", tooltip="inpaint exactly the painted pixels"
        )
        self.stop_button = W.Button(description="Stop", button_style="warning", icon="stop")
        self.result = image_slot(width=f"{round(width * scale)}px")
        self.overlay = image_slot(width=f"{round(width * scale)}px")
        self.caption = W.HTML()
        made = width if mode == "mask" else studio.preset.size  # the side of the pictures the model makes
        if width * scale >= 2 * made:  # small pictures enlarged: sharp pixels, as the canvas shows them
            self.result.add_class("kit-pixelated")
            self.overlay.add_class("kit-pixelated")

        W.link((self.brush, "value"), (self.canvas, "brush_size"))
        W.link((self.colour, "value"), (self.canvas, "brush_color"))
        W.link((self.eraser, "value"), (self.canvas, "erasing"))
        T.link((self, "strokes"), (self.canvas, "strokes"))
        self.observe(self._on_strokes, names="strokes")
        self.undo_button.on_click(lambda _: self.undo())
        self.clear_button.on_click(lambda _: self.clear())
        self.upload.observe(self._on_upload, names="value")
        self.dice.on_click(lambda _: setattr(self.seed, "value", random_seed()))
        self.render_button.on_click(lambda _: self.render())
        self.keep_button.on_click(lambda _: self.keep())
        self.restore_button.on_click(lambda _: self.restore())
        self.stop_button.on_click(lambda _: self.stop())
        self.style.observe(lambda change: setattr(self.style_note, "value", style_note(change["new"])), names="value")
        for control in (self.prompt, self.style, self.strength, self.seed, self.live):
            control.observe(lambda _: self.schedule(), names="value")
        self._show_count()

        wrap = W.Layout(flex_flow="row wrap", align_items="center")
        side = W.Layout(flex_flow="row wrap", align_items="flex-start")
        if mode == "draw":
            self.show_parts(
                self.note,
                W.HBox(
                    [
                        self.brush,
                        self.colour,
                        self.eraser,
                        self.undo_button,
                        self.clear_button,
                        self.upload,
                        self.count,
                    ],
                    layout=wrap,
                ),
                W.HBox([self.prompt, self.style], layout=wrap),
                self.style_note,
                W.HBox([self.strength, self.seed, self.dice, self.live], layout=wrap),
                W.HBox(
                    [self.render_button, self.keep_button, self.stop_button, self.progress, self.status], layout=wrap
                ),
                W.HBox(
                    [self.canvas, W.VBox([self.result, self.caption], layout=W.Layout(margin="0 0 0 12px"))],
                    layout=side,
                ),
                self.out,
            )
        else:
            self.show_parts(
                self.note,
                W.HTML(
                    "<div class='kit-text'>Paint over the damaged area: the model repaints exactly the "
                    "painted pixels, and the overlay shows them.</div>"
                ),
                W.HBox([self.brush, self.eraser, self.undo_button, self.clear_button, self.count], layout=wrap),
                W.HBox([self.prompt, self.seed, self.dice], layout=wrap),
                W.HBox([self.restore_button, self.stop_button, self.progress, self.status], layout=wrap),
                W.HBox(
                    [self.canvas, self.result, self.overlay],
                    layout=W.Layout(flex_flow="row wrap", align_items="flex-start", grid_gap="12px"),
                ),
                self.caption,
                self.out,
            )
        if image is not None and mode == "draw":
            self.load_photo(image)

    # ------------------------------------------------------------ the drawing

    def _on_strokes(self, change):
        if not self._undoing:
            self._history = [*self._history[-(HISTORY - 1) :], list(change["old"])]
        self.stroke_count = len(change["new"])
        self._show_count()
        self.schedule()

    def _show_count(self):
        n = self.stroke_count
        self.count.value = f"<span class='kit-status'>{n} stroke{'s' * (n != 1)}</span>"

    def undo(self):
        """Go back one change of the drawing: the last stroke, or a Clear."""
        if not self._history:
            self.say("nothing to undo")
            return
        self._undoing = True
        try:
            self.strokes = self._history.pop()
        finally:
            self._undoing = False

    def clear(self):
        """Wipe every stroke (the photo stays); Undo brings them back."""
        if self.strokes:
            self.strokes = []
            self.say("cleared: Undo brings the strokes back")

    def _on_upload(self, change):
        files = change["new"]
        if not files:
            return
        content = files[0]["content"]
        self.upload.value = ()  # the same file can be chosen again
        self.load_photo(bytes(content))

    def load_photo(self, source):
        """Draw over a photo (path, bytes, PIL image, Artwork), fitted to the drawing; says how it was fitted."""
        try:
            fitted, note = sketch.photo(source, self.size)
        except KitError as err:
            self.show_error(err)
            return
        self.error = ""
        self.photo = fitted
        self.canvas.background = png_bytes(fitted)
        self.say(note)
        self.schedule()

    def drawing(self):
        """The drawing as the model is given it (an RGB PIL image); KitError for an empty canvas."""
        return sketch.check_drawing(self.strokes, self.size, self.photo)

    def mask(self):
        """The painted pixels as restore's mask (mode L, 255 = painted); KitError when nothing is painted."""
        return sketch.check_mask(self.strokes, self.size)

    # ------------------------------------------------------------ live mode

    def schedule(self):
        """(Re)start the live timer: many quick strokes give one render, after the last."""
        self._cancel_timer()
        if self.mode != "draw" or not self.live.value or not (self.strokes or self.photo is not None):
            return
        self._arm()

    def _fire(self):
        if self.busy:  # an older drawing is still rendering: stop it, and render this one when it has stopped
            super().stop()
            self.schedule()
            return
        self.render(live=True)

    # ------------------------------------------------------------ rendering

    def request(self) -> dict:
        """The restyle arguments the controls describe."""
        return dict(
            prompt=self.prompt.value, style=self.style.value or None, strength=self.strength.value, seed=self.seed.value
        )

    def render(self, live: bool = False):
        """Re-render the drawing with the prompt and style (not saved: Keep saves it).

        A live render on a CPU is decoded by TAESD alone; an explicit one shows TAESD first, then the full image.
        """
        if self.mode != "draw":
            return self.restore()
        strokes, photo, request = self.strokes, self.photo, self.request()  # this drawing, whatever comes next
        fast = live and self.studio.previews_first
        early = self._show_early if self.studio.previews_first and not fast else None

        def work(run):
            picture = sketch.check_drawing(strokes, self.size, photo)  # an empty canvas stops here, before any model
            drew = [{"action": "drew", "strokes": len(strokes)}] if strokes else None  # the record's authorship
            request.update(person=drew)
            art = self.studio.restyle(picture, **request, preview=fast, on_preview=early, run=run, save=False)
            return art, picture, request, sketch.as_artwork(picture, len(strokes), photo is not None)

        self._started = time.perf_counter()
        self.say("rendering…")
        return self.run_in_background(
            work, done=lambda made: self._show(made, len(strokes)), buttons=[self.render_button, self.keep_button]
        )

    def _show_early(self, images):
        show_png(self.result, png_bytes(images[0]))
        self.showing = "preview"
        self.say(f"a fast preview (TAESD) after {time.perf_counter() - self._started:.1f} s; the full image follows…")

    def _show(self, made, strokes: int):
        art = made[0]
        self._made = made
        show_png(self.result, png_bytes(art.image))
        self.artwork = art
        self.showing = "preview" if art.record.decoder == "taesd" else "full"
        self.renders += 1
        what = "a fast TAESD preview" if self.showing == "preview" else "rendered"
        self.caption.value = (
            f"<div class='kit-text'>{escape(art.record.prompt) or '(no prompt)'}<br>"
            f"{strokes} stroke{'s' * (strokes != 1)}, strength {art.record.restyle['strength']:.2f}, "
            f"seed {art.record.seed}, {art.image.width}×{art.image.height}, "
            f"{art.record.decoder}</div>"
        )
        self.say(f"{what} in {time.perf_counter() - self._started:.1f} s (not saved: Keep saves it)")

    def keep(self):
        """Save the result shown to the gallery; a TAESD preview is decoded with the full VAE first."""
        if self._made is None:
            self.show_error(KitError("nothing to keep yet: draw, then Render (or wait for the live render)"))
            return None
        art, picture, request, _ = self._made
        if any(art is k for k in self.kept):
            self.say(f"already kept in {self.gallery.folder}")
            return None
        if art.record.decoder == "vae":
            return self.run_in_background(lambda run: art, done=self._save, buttons=[self.keep_button])

        def work(run):  # the same drawing, settings and seed: the same latents, decoded in full
            return self.studio.restyle(picture, **request, run=run, save=False)

        self.say("decoding the kept image in full…")
        return self.run_in_background(work, done=self._save, buttons=[self.render_button, self.keep_button])

    def _save(self, art):
        drawing = self._made[3]
        if not self.gallery.has(drawing.record.sha256 or pixel_hash(drawing.image)):
            self.studio.keep(drawing, self.gallery)  # the drawing first: the result's parent, a person's work
        path = self.studio.keep(art, self.gallery)
        if self._made is not None and art is not self._made[0]:  # the full decode of the preview shown
            self._made = (art, *self._made[1:])
            show_png(self.result, png_bytes(art.image))
            self.artwork, self.showing = art, "full"
        self.kept = [*self.kept, art]
        self.say(f"kept: saved to {path}")

    # ------------------------------------------------------------ restoring (mode "mask")

    def restore(self):
        """Restore exactly the painted pixels of the picture; the result and its overlay are shown and saved."""
        strokes, prompt, seed = self.strokes, self.prompt.value, self.seed.value

        def work(run):
            painted = sketch.check_mask(strokes, self.size)  # nothing painted stops here, before any model
            return self.studio.restore(
                self.image,
                painted,
                prompt,
                seed,
                run=run,
                person=[{"action": "painted the mask", "strokes": len(strokes)}],
            )

        self._started = time.perf_counter()
        self.say("restoring…")
        return self.run_in_background(work, done=self._show_restoration, buttons=[self.restore_button])

    def _show_restoration(self, art):
        self.studio.keep(art, self.gallery)  # saved once: a studio with a gallery has saved it already
        self.artwork, self.showing = art, "full"
        self.renders += 1
        self.kept = [*self.kept, art]
        show_png(self.result, png_bytes(art.image))
        show_png(self.overlay, png_bytes(art.overlay))
        area = art.record.restore["mask_area"]
        self.caption.value = (
            f"<div class='kit-text'>the restoration (middle) and the AI-made pixels in magenta (right): "
            f"{area:.1%} of the picture, painted by hand in {self.stroke_count} "
            f"stroke{'s' * (self.stroke_count != 1)}; seed {art.record.seed}</div>"
        )
        self.say(f"restored in {time.perf_counter() - self._started:.1f} s, saved to {self.gallery.folder}")
