"""`StyleMap`: the interactive map of style space over a fitted `StyleAtlas`.

Click a point to read its card; send a style to a PromptStudio or a
FusionMixer; lasso several styles to fuse them; images made in a watched
PromptStudio appear on the map where they land.
"""

from __future__ import annotations

import base64
from html import escape

import ipywidgets as W
import traitlets as T

from ..core.blend import MAX_STYLES
from ..maps.atlas import COLOR_BY
from ..plots import theme as theme_figure  # the panels' figures share the engine's look
from .common import Panel, fit_to_width, image_slot, png_bytes, preset_note, show_png

MAP_HEIGHT = 640  # px, the figure's height (its width follows the space the panel has)


class StyleMap(Panel):
    """The atlas as a plotly FigureWidget, with a card for the clicked point.

    >>> atlas = kit.StyleAtlas(kit.Embedder()); atlas.add_styles(); atlas.fit()
    >>> kit.widgets.StyleMap(atlas, studio=studio)

    The map takes the width it is given; the card sits beside it when there is room and
    below it when there is not. Traits: `selected` (id of the clicked point), `lassoed`
    (ids of the styles in the last lasso or box selection) and `error`. Images made in a
    watched PromptStudio (its `artworks` trait) are placed on the map as they appear.
    """

    selected = T.Unicode(None, allow_none=True, help="id of the clicked point")
    lassoed = T.List(T.Unicode(), help="ids of the styles in the last lasso/box selection")

    def __init__(
        self, atlas, studio=None, prompt_studio=None, fusion_mixer=None, subject="portrait of an elder", **kwargs
    ):
        import plotly.graph_objects as go

        super().__init__(**kwargs)
        self.atlas = atlas
        self.studio = studio
        self.prompt_studio = prompt_studio
        self.fusion_mixer = fusion_mixer
        self._placed = 0  # how many of the watched PromptStudio's images are on the map

        self.note = preset_note(studio.preset) if studio is not None else W.HTML(layout=W.Layout(display="none"))
        self.color_by = W.Dropdown(
            options=list(COLOR_BY), value="region", description="Colour by", style={"description_width": "initial"}
        )
        self.title = W.HTML()
        self.figure = go.FigureWidget()
        self.figure.update_layout(height=MAP_HEIGHT, dragmode="lasso")
        theme_figure(self.figure)
        fit_to_width(self.figure)
        self.card = W.HTML(value="<i>Click a point to read about it.</i>", layout=W.Layout(width="auto"))
        self.thumbnail = image_slot(width="160px")
        auto = W.Layout(width="auto")
        self.to_studio = W.Button(description="Use in studio", icon="paint-brush", disabled=True, layout=auto)
        self.to_mixer = W.Button(description="Add to mixer", icon="sliders", disabled=True, layout=auto)
        self.subject = W.Text(value=subject, description="Subject", layout=W.Layout(width="auto"))
        self.fuse_button = W.Button(description="Fuse lassoed styles", icon="object-group", disabled=True, layout=auto)
        self.result = image_slot(width="256px")

        self.color_by.observe(lambda change: self.recolour(change["new"]), names="value")
        self.to_studio.on_click(lambda _: self.send_to_studio())
        self.to_mixer.on_click(lambda _: self.send_to_mixer())
        self.fuse_button.on_click(lambda _: self.fuse_lassoed())
        self.recolour("region")
        if prompt_studio is not None:
            self._placed = len(prompt_studio.artworks)
            prompt_studio.observe(lambda _: self.place_new(), names="artworks")

        wrap = W.Layout(flex_flow="row wrap", align_items="center")
        side = W.VBox(
            [
                self.card,
                self.thumbnail,
                W.HBox([self.to_studio, self.to_mixer], layout=wrap),
                self.subject,
                self.fuse_button,
                self.result,
                W.HBox([self.progress, self.status]),
            ],
            layout=W.Layout(flex="1 1 18em", min_width="16em", max_width="36em", margin="0 0 0 12px"),
        )
        plot = W.VBox([self.title, self.figure], layout=W.Layout(flex="3 1 480px", min_width="320px"))
        self.show_parts(
            self.note,
            self.color_by,
            W.HBox([plot, side], layout=W.Layout(flex_flow="row wrap", align_items="flex-start")),
            self.out,
        )

    # ------------------------------------------------------------ the figure

    def _connect(self):
        """Route clicks and selections of every trace to the widget."""
        for trace in self.figure.data:
            trace.on_click(self._on_click)
            trace.on_selection(self._on_selection)

    def recolour(self, color_by: str | None = None):
        """Redraw the map (after a colour change or new points), keeping the view's settings.

        The title is shown above the figure, where the plot's toolbar cannot cover it.
        """
        try:
            fresh = self.atlas.figure(color_by or self.color_by.value)
        except Exception as err:  # shown in the output area; the old map stays
            self.show_error(err)
            return
        with self.figure.batch_update():
            self.figure.data = []
            self.figure.add_traces(list(fresh.data))
            self.figure.layout.legend = fresh.layout.legend
            self.figure.layout.xaxis = fresh.layout.xaxis
            self.figure.layout.yaxis = fresh.layout.yaxis
            self.figure.layout.margin = dict(fresh.layout.margin.to_plotly_json(), t=36)  # room for the toolbar
        self.title.value = f"<b>{fresh.layout.title.text}</b>"  # plotly's title text is HTML already
        self._connect()

    @property
    def point_count(self) -> int:
        return sum(len(trace.x) for trace in self.figure.data)

    def _on_click(self, trace, points, selector):
        if points.point_inds:
            self.select(trace.customdata[points.point_inds[0]])

    def _on_selection(self, trace, points, selector):
        ids = [trace.customdata[i] for i in points.point_inds]
        chosen = [i for i in ids if self.atlas.point(i)["kind"] == "style"]
        # a selection event arrives per trace: gather this trace's styles with the others'
        others = [i for i in self.lassoed if i not in set(trace.customdata)]
        self.lasso(others + chosen)

    # ------------------------------------------------------------ actions

    def select(self, point_id: str):
        """Show the card of a point (what a click does)."""
        p = self.atlas.point(point_id)
        self.selected = point_id
        rows = [f"<h4 style='margin:0 0 4px'>{escape(str(p.get('name') or p.get('label') or point_id))}</h4>"]
        for key in ("region", "place", "era", "medium"):
            if p.get(key):
                rows.append(f"<b>{key}:</b> {escape(str(p[key]))}")
        if p.get("description"):
            rows.append(f"<p>{escape(p['description'])}</p>")
        if p["kind"] == "style":
            from .. import styles

            style = styles.get(point_id)
            rows.append(f"<a href='{escape(style.url)}' target='_blank'>{escape(style.reference)}</a>")
            if style.sensitive:
                rows.append(f"<p class='kit-warn'><b>Please read first:</b> {escape(style.note)}</p>")
        self.card.value = "<div class='kit-text'>" + "<br>".join(rows) + "</div>"
        thumbnail = p.get("thumbnail")  # a data: URI the atlas made for image points
        show_png(self.thumbnail, base64.b64decode(thumbnail.split(",", 1)[1]) if thumbnail else None)
        is_style = p["kind"] == "style"
        self.to_studio.disabled = not (is_style and self.prompt_studio is not None)
        self.to_mixer.disabled = not (is_style and self.fusion_mixer is not None)

    def send_to_studio(self):
        if self.selected and self.prompt_studio is not None:
            self.prompt_studio.style.value = self.selected
            self.say(f"PromptStudio style set to {self.selected}")

    def send_to_mixer(self):
        if self.selected and self.fusion_mixer is not None:
            try:
                self.fusion_mixer.add(self.selected)
            except Exception as err:
                self.show_error(err)
                return
            self.say(f"{self.selected} added to the FusionMixer")

    def lasso(self, style_ids: list[str]):
        """Choose styles to fuse (what a lasso or box selection does)."""
        self.lassoed = list(dict.fromkeys(style_ids))
        self.fuse_button.disabled = self.studio is None or len(self.lassoed) < 2
        self.fuse_button.description = f"Fuse {len(self.lassoed)} lassoed styles"

    def fuse_lassoed(self):
        """Fuse the lassoed styles with equal weights, show the image and place it on the map."""
        weights = {style_id: 1.0 for style_id in self.lassoed[:MAX_STYLES]}
        extra = len(self.lassoed) - len(weights)
        self.say(f"fusing the first {MAX_STYLES} of {len(self.lassoed)} lassoed styles…" if extra else "fusing…")

        def work(run):
            return self.studio.fuse(weights, self.subject.value, run=run)

        def done(art):
            show_png(self.result, png_bytes(art.image, 256))
            self.place([art], label=art.record.prompt)
            self.say(f"fused {', '.join(weights)}: the star on the map shows where it landed")

        return self.run_in_background(work, done=done, buttons=[self.fuse_button])

    def place(self, artworks, label: str | None = None):
        """Put generated images on the map where they land (the map is not refitted)."""
        for art in artworks:
            self.atlas.place([art.image], kind="generated", label=label or art.record.prompt)
        self.recolour()

    def place_new(self):
        """Place the watched PromptStudio's images that are not on the map yet."""
        new = self.prompt_studio.artworks[self._placed :]
        self._placed = len(self.prompt_studio.artworks)
        if new:
            try:
                self.place(new)
            except Exception as err:  # shown, never lost in a callback
                self.show_error(err)
