"""`WalkExplorer`: keyframes in, a latent walk out; scrub it, play it, see its pacing, export it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import ipywidgets as W
import traitlets as T

from ..core.pacing import MAX_FRAMES
from ..errors import KitError
from ..features.animation import MAX_FPS
from ..features.walks import METHODS
from ..plots import theme as theme_figure  # the panels' figures share the engine's look
from ..provenance.gallery import default_folder
from .common import (
    Panel,
    image_slot,
    png_bytes,
    preset_note,
    seed_field,
    show_png,
    size_dropdown,
    style_dropdown,
)

FPS = 12
VIEW = 320  # px, the side of the frame viewer


class KeyframeRow:
    """One keyframe's controls: its number (from 1), prompt, style, seed and a remove button."""

    def __init__(self, prompt: str = "", seed: int = 0, style: str | None = None):
        self.label = W.HTML(layout=W.Layout(width="6.5em"))
        self.prompt = W.Text(value=prompt, placeholder="portrait of an elder", layout=W.Layout(width="22em"))
        self.style = style_dropdown(style, layout=W.Layout(width="16em"))
        self.seed = seed_field(seed, description="seed")
        self.remove = W.Button(icon="trash", tooltip="remove this keyframe", layout=W.Layout(width="3em"))
        self.box = W.HBox(
            [self.label, self.prompt, self.style, self.seed, self.remove],
            layout=W.Layout(flex_flow="row wrap", align_items="center"),
        )

    def number(self, n: int):
        self.label.value = f"<b>Keyframe {n}</b>"

    @property
    def value(self) -> tuple:
        return self.prompt.value, self.seed.value, self.style.value or None


class WalkExplorer(Panel):
    """Walk between keyframes (prompt, style, seed), then scrub the frames with a slider or play them.

    >>> ui = kit.widgets.WalkExplorer(studio); ui

    Keyframes and frames are numbered from 1, on the slider as in the caption.
    Frames are kept as PNG bytes once made, so moving the slider only swaps the image.
    A new walk over the same keyframes and settings reuses the frames already made.
    Exports (GIF, MP4, each with a JSON sidecar of every frame's record) go to `folder`.

    Traits: `walk` (the kit.walks.Walk shown), `exported` (the last export's path), `error`.
    """

    walk = T.Any(None, allow_none=True, help="the last kit.walks.Walk shown")
    previews = T.Int(0, help="fast TAESD frames shown while the walk was made (on a CPU, before the full decode)")
    exported = T.Any(None, allow_none=True, help="the path of the last export")

    def __init__(self, studio, folder=None, **kwargs):
        super().__init__(**kwargs)
        self.studio = studio
        if folder is None:
            folder = studio.gallery.folder if studio.gallery is not None else default_folder()
        self.frame_png: list[bytes] = []  # PNG bytes of each frame of self.walk
        narrow = {"description_width": "initial"}

        self.note = preset_note(studio.preset)
        self.rows: list[KeyframeRow] = []
        self.rows_box = W.VBox()
        self.add_button = W.Button(description="keyframe", icon="plus", tooltip="add a keyframe")
        self.frames = W.BoundedIntText(
            value=8, min=2, max=MAX_FRAMES, description="Frames", style=narrow, layout=W.Layout(width="10em")
        )
        self.method = W.Dropdown(
            options=list(METHODS), value="slerp", description="Method", style=narrow, layout=W.Layout(width="11em")
        )
        self.loop = W.Checkbox(
            value=False, description="loop back to the first", indent=False, layout=W.Layout(width="auto")
        )
        self.even = W.Checkbox(value=False, description="even pacing", indent=False, layout=W.Layout(width="auto"))
        self.preview = W.Checkbox(
            value=False, description="fast preview (TAESD)", indent=False, layout=W.Layout(width="auto")
        )
        self.size = size_dropdown(studio.preset)
        self.generate_button = W.Button(description="Generate", button_style="primary", icon="film")
        self.stop_button = W.Button(description="Stop", button_style="warning", icon="stop")

        self.slider = W.IntSlider(
            value=1, min=1, max=1, description="Frame", disabled=True, layout=W.Layout(width="24em")
        )
        self.play = W.Play(value=1, min=1, max=1, interval=round(1000 / FPS), disabled=True)
        W.jslink((self.play, "value"), (self.slider, "value"))
        self.image = image_slot(width=f"{VIEW}px")
        self.caption = W.HTML(layout=W.Layout(width=f"{VIEW + 120}px"))

        self.folder = W.Text(
            value=str(folder), description="Folder", layout=W.Layout(flex="1 1 30em", min_width="20em")
        )
        self.fps = W.BoundedIntText(
            value=FPS, min=1, max=MAX_FPS, description="fps", style=narrow, layout=W.Layout(width="7em")
        )
        self.gif_button = W.Button(description="GIF", icon="download", tooltip="save the walk as an animated GIF")
        self.mp4_button = W.Button(description="MP4", icon="download", tooltip="save the walk as an MP4 video")
        self.plot = _step_plot()

        self.add_button.on_click(lambda _: self.add_row())
        self.generate_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.gif_button.on_click(lambda _: self.export("gif"))
        self.mp4_button.on_click(lambda _: self.export("mp4"))
        self.slider.observe(self._on_slider, names="value")
        self.set_keyframes(
            [("portrait of an elder, soft window light", 1), ("portrait of an elder, soft window light", 2)]
        )

        wrap = W.Layout(flex_flow="row wrap", align_items="center")
        viewer = W.VBox([self.image, W.HBox([self.play, self.slider]), self.caption])
        self.show_parts(
            self.note,
            self.rows_box,
            self.add_button,
            W.HBox([self.frames, self.method, self.size, self.loop, self.even, self.preview], layout=wrap),
            W.HBox([self.generate_button, self.stop_button, self.progress, self.status], layout=wrap),
            W.HBox([viewer, self.plot], layout=W.Layout(flex_flow="row wrap", align_items="flex-start")),
            W.HBox([self.folder, self.fps, self.gif_button, self.mp4_button], layout=wrap),
            self.out,
        )

    # ------------------------------------------------------------ keyframes

    def add_row(self, prompt: str = "", seed: int | None = None, style: str | None = None) -> KeyframeRow:
        """Add a keyframe row (the seed defaults to the last row's plus one)."""
        if seed is None:
            seed = self.rows[-1].seed.value + 1 if self.rows else 0
        row = KeyframeRow(prompt, seed, style)
        row.remove.on_click(lambda _: self.remove_row(row))
        self.rows.append(row)
        self._show_rows()
        return row

    def remove_row(self, row: KeyframeRow):
        self.rows.remove(row)
        self._show_rows()

    def _show_rows(self):
        for n, row in enumerate(self.rows, start=1):
            row.number(n)
        self.rows_box.children = [r.box for r in self.rows]

    def set_keyframes(self, keyframes):
        """Replace the rows with (prompt, seed) or (prompt, seed, style) keyframes."""
        self.rows = []
        for keyframe in keyframes:
            self.add_row(*keyframe)

    def keyframes(self) -> list[tuple]:
        """(prompt, seed, style) of each row, as typed (the engine checks them)."""
        return [row.value for row in self.rows]

    # ------------------------------------------------------------ making the walk

    def request(self) -> dict:
        """The walk options the controls describe."""
        return dict(
            frames=self.frames.value,
            method=self.method.value,
            loop=self.loop.value,
            even=self.even.value,
            size=self.size.value,
            preview=self.preview.value,
        )

    def run(self):
        """Make the walk in the background; bad input is shown and the widget stays usable."""
        keyframes, request, previous = self.keyframes(), self.request(), self.walk
        self.say("walking…")
        self.previews = 0
        early = self._show_preview if self.studio.previews_first and not request["preview"] else None

        def work(run):
            walk = self.studio.walk(keyframes, **request, reuse=previous, on_preview=early, run=run)
            walk.step_sizes  # noqa: B018  (measured here, in the background, for the plot)
            return walk, self._encode(walk, previous)

        def partial(walk):  # a stopped walk: show the frames made; the next run reuses them
            self._show_walk((walk, self._encode(walk, previous)))

        return self.run_in_background(work, done=self._show_walk, partial=partial, buttons=[self.generate_button])

    def _show_preview(self, images):
        """A batch's fast TAESD frames, shown as they come while the walk is made (the full frames follow)."""
        show_png(self.image, png_bytes(images[-1]))
        self.previews += len(images)
        self.say(f"walking… {self.previews} frames previewed (TAESD); the full frames follow")

    def _encode(self, walk, previous) -> list[bytes]:
        """PNG bytes of every frame, taken from the previous walk where the pixels are the same."""
        known = {} if previous is None else {a.record.sha256: png for a, png in zip(previous, self.frame_png)}
        return [known.get(art.record.sha256) or png_bytes(art.image) for art in walk]

    def _show_walk(self, result):
        walk, frames_png = result
        self.frame_png = frames_png
        self.walk = walk
        count = max(len(walk), 1)
        self.slider.value = self.play.value = 1
        self.slider.max = self.play.max = count
        self.slider.disabled = self.play.disabled = count == 1
        self.show_frame(1)
        self._plot(walk)
        made = f"{len(walk)} frames" if walk.complete else f"stopped: {len(walk)} of {self.frames.value} frames"
        self.say(f"{made}; drag the slider or press play")

    # ------------------------------------------------------------ viewing

    def _on_slider(self, change):
        try:
            self.show_frame(change["new"])
        except Exception as err:  # shown, never lost
            self.show_error(err)

    def show_frame(self, number: int):
        """Show frame `number` (counted from 1, as on the slider) from the cache: only the image's bytes change."""
        if not self.frame_png:
            return
        index = number - 1
        show_png(self.image, self.frame_png[index])
        w = self.walk[index].record.walk
        kf = self.walk.keyframes
        end = (w["segment"] + 1) % len(kf)
        self.caption.value = (
            f"<div class='kit-text'><b>frame {number} of {len(self.walk)}</b> · "
            f"{w['t']:.2f} of the way from keyframe {w['segment'] + 1} "
            f"(seed {kf[w['segment']].seed}) to keyframe {end + 1} (seed {kf[end].seed})</div>"
        )

    def _plot(self, walk):
        before, after = self.plot.data
        space = walk.pacing_space
        label = "CLIP angle (radians)" if space == "clip" else "RMS pixel change (0..1)"
        with self.plot.batch_update():
            after.x = list(range(1, len(walk.step_sizes) + 1))
            after.y = walk.step_sizes.tolist()
            after.name = "even pacing" if walk.even else "frames"
            before.visible = walk.first_pass is not None
            if walk.first_pass is not None:
                steps = walk.first_pass[1]
                before.x, before.y = list(range(1, len(steps) + 1)), steps.tolist()
            self.plot.layout.yaxis.title.text = label
            self.plot.layout.title.text = f"step sizes, measured in {space} space"

    # ------------------------------------------------------------ export

    def export(self, kind: str = "gif") -> Path | None:
        """Save the walk as a GIF or MP4 (plus its JSON sidecar) in the folder; returns the path."""
        try:
            if kind not in ("gif", "mp4"):
                raise KitError(f"kind must be 'gif' or 'mp4', got {kind!r}")
            if self.walk is None or not len(self.walk):
                raise KitError("there is no walk to save yet: press Generate first")
            folder = Path(self.folder.value.strip() or default_folder()).expanduser()
            path = folder / f"{self._stem()}.{kind}"  # a name taken meanwhile gets -1, -2 ...: nothing overwritten
            if kind == "gif":
                path = self.walk.save_gif(path, fps=self.fps.value, loop=True, exist="number")
            else:
                path = self.walk.save_mp4(path, fps=self.fps.value, exist="number")
        except Exception as err:
            self.show_error(err)
            return None
        self.error = ""
        self.exported = path
        self.say(f"saved {path} (and its records in {path.name}.json)")
        return path

    def _stem(self) -> str:
        seeds = "-".join(str(k.seed) for k in self.walk.keyframes)
        return f"walk-{datetime.now().strftime('%Y%m%d-%H%M%S')}-seeds{seeds}"[:120]


def _step_plot():
    """A small bar chart of step sizes: the first pass (when re-timed) next to the frames shown."""
    import plotly.graph_objects as go

    figure = go.FigureWidget(
        layout=dict(
            height=280,
            width=440,
            margin=dict(l=50, r=10, t=60, b=40),
            barmode="group",
            title=dict(text="step sizes", font=dict(size=13), x=0, xanchor="left", y=0.97, yanchor="top"),
            legend=dict(orientation="h", y=-0.25),
            xaxis=dict(title=dict(text="step (frame i to i + 1)"), dtick=1),
            yaxis=dict(title=dict(text="distance")),
        )
    )
    theme_figure(figure)
    figure.add_bar(name="before re-timing", visible=False, marker_color="#bbbbbb")
    figure.add_bar(name="frames", marker_color="#3f6fb5")
    return figure
