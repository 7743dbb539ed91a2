"""`GalleryBrowser`: filter the gallery, open a record, see who did what and its lineage, continue from it."""

from __future__ import annotations

import json
from html import escape

import ipywidgets as W
import traitlets as T

from ..errors import KitError
from ..provenance.gallery import Gallery, default_folder
from .common import NO_STYLE, SEED_MAX, Panel, image_slot, png_bytes, show_png, style_dropdown

THUMB = 112  # px, a thumbnail's side
LARGE = 320  # px, the opened image's width
MAX_SHOWN = 60  # thumbnails shown at once, newest first
ANY = ""  # the dropdowns' value for "any"


class GalleryBrowser(Panel):
    """Browse the append-only gallery and continue from what is in it.

    >>> ui = kit.widgets.GalleryBrowser(gallery); ui            # gallery: a kit.Gallery or a folder

    Filters (prompt text, style, kind, seed, dates from/to, show hidden) narrow the thumbnails,
    newest first; clicking one opens it (`open_record`): the image, its settings, who did what (the record's
    authorship and what was noted since, such as a pick) and its lineage as a tree of ancestors
    and descendants. "Continue in" makes a PromptStudio, a FusionMixer or a Sketchpad (drawing over
    the image) filled with the record's settings (shown below, and returned). "Hide" hides an image
    from the default view: the file stays on disk, the lineage still shows it, "show hidden" lists
    it again.

    Traits: `artworks` (the thumbnails' Artworks, newest first), `total` (how many match),
    `opened` (the opened Artwork or None), `lineage_html`, `authorship` (sentences), `continued`
    (the last panel made by "continue in") and `error`.
    """

    artworks = T.List(help="the Artworks the thumbnails show, newest first")
    total = T.Int(0, help="how many images match the filters (at most MAX_SHOWN are shown)")
    opened = T.Any(None, allow_none=True, help="the opened Artwork")
    authorship = T.List(T.Unicode(), help="who did what for the opened image, in sentences")
    lineage_html = T.Unicode("", help="the opened image's lineage as nested HTML lists")
    continued = T.Any(None, allow_none=True, help="the panel the last 'continue in' made")

    def __init__(self, gallery=None, studio=None, **kwargs):
        super().__init__(**kwargs)
        gallery = default_folder() if gallery is None else gallery
        self.gallery = gallery if isinstance(gallery, Gallery) else Gallery(gallery)
        self.studio = studio  # the studio "continue in" uses; by default one made for the record's preset

        text = {"continuous_update": False}
        short = {"description_width": "initial"}
        self.prompt = W.Text(
            description="Prompt has", placeholder="any text", style=short, layout=W.Layout(width="20em"), **text
        )
        self.style = style_dropdown(none="(any style)", description="Style", layout=W.Layout(width="20em"))
        self.kind = W.Dropdown(
            options=self._kind_options(),
            value=ANY,
            description="Kind",
            layout=W.Layout(width="14em"),
        )
        self.seed = W.Text(description="Seed", placeholder="any", style=short, layout=W.Layout(width="12em"), **text)
        self.since = W.Text(
            description="From", placeholder="YYYY-MM-DD", style=short, layout=W.Layout(width="12em"), **text
        )
        self.until = W.Text(
            description="To", placeholder="YYYY-MM-DD", style=short, layout=W.Layout(width="12em"), **text
        )
        self.show_hidden = W.Checkbox(value=False, description="show hidden", indent=False)
        self.refresh_button = W.Button(description="Refresh", icon="refresh", tooltip="read the gallery again")
        self.thumbnails = W.HBox(layout=W.Layout(flex_flow="row wrap"))
        self.large = image_slot(width=f"{LARGE}px")
        self.details = W.HTML(layout=W.Layout(flex="1 1 22em", min_width="16em", margin="0 0 0 12px"))
        self.lineage_view = W.HTML()
        self.hide_button = W.Button(
            description="Hide", icon="eye-slash", disabled=True, tooltip="hide from this view; the file stays on disk"
        )
        wide = W.Layout(width="auto")  # the buttons' text is long: their width follows it
        self.continue_buttons = {
            "PromptStudio": W.Button(description="Continue in PromptStudio", icon="pencil", disabled=True, layout=wide),
            "FusionMixer": W.Button(description="Continue in FusionMixer", icon="sliders", disabled=True, layout=wide),
            "Sketchpad": W.Button(
                description="Continue in Sketchpad",
                icon="paint-brush",
                disabled=True,
                layout=wide,
                tooltip="draw over this image, with its prompt, style and seed",
            ),
        }
        self.continue_area = W.VBox()

        self._listing_kinds = False  # True while refresh() renews the kind dropdown: no new filter then
        for control in (self.prompt, self.style, self.kind, self.seed, self.since, self.until, self.show_hidden):
            control.observe(lambda _: self._listing_kinds or self.refresh(), names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.hide_button.on_click(lambda _: self.toggle_hidden())
        for name, button in self.continue_buttons.items():
            button.on_click(lambda _, name=name: self.continue_in(name))

        wrap = W.Layout(flex_flow="row wrap", align_items="center")
        self.show_parts(
            W.HBox([self.prompt, self.style, self.kind, self.seed], layout=wrap),
            W.HBox([self.since, self.until, self.show_hidden, self.refresh_button, self.status], layout=wrap),
            self.thumbnails,
            W.HBox([self.large, self.details], layout=W.Layout(flex_flow="row wrap", align_items="flex-start")),
            W.HBox([self.hide_button, *self.continue_buttons.values()], layout=wrap),
            self.lineage_view,
            self.continue_area,
            self.out,
        )
        self.refresh()

    # ------------------------------------------------------------ filtering

    def filters(self) -> dict:
        """The `Gallery.find` arguments the controls describe; KitError naming a bad one."""
        seed = self.seed.value.strip()
        if seed and not (seed.isascii() and seed.isdigit()):  # '²' and '٣' are digits to str.isdigit, not to int()
            raise KitError(f"seed must be a whole number (or empty for any), got {seed!r}")
        return dict(
            prompt=self.prompt.value.strip() or None,
            style=self.style.value or None,
            kind=self.kind.value or None,
            seed=int(seed) if seed else None,
            since=self.since.value.strip() or None,
            until=self.until.value.strip() or None,
            hidden=self.show_hidden.value,
        )

    def _kind_options(self) -> list[tuple[str, str]]:
        """The kind dropdown's (label, value) pairs: any kind, then `Gallery.kinds()`."""
        return [("(any kind)", ANY), *((kind, kind) for kind in self.gallery.kinds())]

    def _list_kinds(self) -> None:
        """Renew the kind dropdown: a kind saved since (by another panel or kernel) or registered since (a feature
        imported) is offered too. The kind chosen stays chosen: setting a Dropdown's options resets its value."""
        options = self._kind_options()
        if [tuple(option) for option in self.kind.options] == options:
            return
        chosen = self.kind.value
        self._listing_kinds = True
        try:
            self.kind.options = options
            self.kind.value = chosen if chosen in [value for _, value in options] else ANY
        finally:
            self._listing_kinds = False

    def refresh(self):
        """Show the images matching the filters, newest first; a bad filter is shown and the view kept."""
        try:
            self._list_kinds()
            found = self.gallery.find(**self.filters())
        except KitError as err:
            self.show_error(err)
            return
        self.error = ""
        shown = found[::-1][:MAX_SHOWN]
        hidden = self.gallery.hidden() if self.show_hidden.value else set()
        self.thumbnails.children = tuple(
            self._thumbnail(i, art, art.record.sha256 in hidden) for i, art in enumerate(shown)
        )
        self.total = len(found)
        self.artworks = shown
        more = f", the newest {len(shown)} shown" if len(found) > len(shown) else ""
        self.say(f"{len(found)} image{'s' * (len(found) != 1)} in {self.gallery.folder}{more}")

    def _thumbnail(self, index, art, hidden):
        image = W.Image(
            value=png_bytes(art.image, THUMB),
            format="png",
            layout=W.Layout(width=f"{THUMB}px", height=f"{THUMB}px", object_fit="contain"),
        )
        label = f"{art.record.kind} · seed {art.record.seed}" + (" (hidden)" if hidden else "")
        button = W.Button(
            description=label, tooltip=art.record.prompt, layout=W.Layout(width="auto", min_width=f"{THUMB}px")
        )
        button.on_click(lambda _: self.open_record(index))
        return W.VBox([image, button], layout=W.Layout(margin="0 6px 6px 0", align_items="center"))

    # ------------------------------------------------------------ one record

    def open_record(self, index):
        """Open a thumbnail's image: the picture, its settings, who did what and its lineage."""
        try:
            art = self.artworks[index]
            sha = art.record.sha256
            lineage = self.gallery.lineage(sha)
            credits = self.gallery.credits(sha)
        except (IndexError, KitError) as err:
            self.show_error(err if isinstance(err, KitError) else KitError(f"no thumbnail {index}"))
            return
        self.opened = art
        show_png(self.large, png_bytes(art.image))
        self.authorship = art.record.describe_authorship(credits)
        record = json.dumps(art.record.to_dict(), indent=1, ensure_ascii=False)
        where = f"<br><small>{escape(str(art.path))}</small>" if art.path else ""
        self.details.value = (
            f"<div class='kit-text'><pre>{escape(art.record.parameters())}</pre>{where}"
            f"<p><b>Who did what</b></p><ul>{''.join(f'<li>{escape(s)}</li>' for s in self.authorship)}</ul>"
            f"<details><summary>full record</summary><pre style='max-height:24em;overflow:auto'>"
            f"{escape(record)}</pre></details></div>"
        )
        self.lineage_html = _lineage_html(lineage, self.gallery.hidden())
        self.lineage_view.value = self.lineage_html
        self.hide_button.disabled = False
        self.hide_button.description = "Unhide" if sha in self.gallery.hidden() else "Hide"
        for button in self.continue_buttons.values():
            button.disabled = False
        self.error = ""

    def toggle_hidden(self):
        """Hide the opened image (or show it again when it is hidden). Nothing is deleted."""
        if self.opened is None:
            return
        sha = self.opened.record.sha256
        try:
            if sha in self.gallery.hidden():
                self.gallery.unhide(sha)
                self.hide_button.description = "Hide"
            else:
                self.gallery.hide(sha)
                self.hide_button.description = "Unhide"
        except KitError as err:
            self.show_error(err)
            return
        self.refresh()

    # ------------------------------------------------------------ continuing

    def continue_in(self, name: str):
        """A new panel (`"PromptStudio"`, `"FusionMixer"` or `"Sketchpad"`, drawing over the image) filled
        with the opened record's settings, shown below and returned; it saves into this gallery."""
        if self.opened is None:
            self.show_error(KitError("open an image first: click a thumbnail"))
            return None
        if name not in self.continue_buttons:
            self.show_error(KitError(f"continue in one of {', '.join(self.continue_buttons)}, got {name!r}"))
            return None
        record = self.opened.record
        if record.seed > SEED_MAX:
            self.show_error(
                KitError(
                    f"seed {record.seed} is larger than a seed field holds exactly ({SEED_MAX}): continue in code, "
                    f"with studio.generate(..., seed={record.seed}), so the seed is not rounded"
                )
            )
            return None
        try:
            studio = self._studio(record)
            panel = _FILL[name](studio, self.gallery if studio.gallery is None else None, self.opened)
        except KitError as err:
            self.show_error(err)
            return None
        self.continued = panel
        self.continue_area.children = (panel,)
        self.say(f"continuing in {name} from seed {record.seed}")
        return panel

    def _studio(self, record):
        if self.studio is not None:
            return self.studio
        from ..studio import Studio  # the engine's heavy part, only when a panel is asked for

        return Studio.for_record(record)


def _prompt_studio(studio, gallery, art):
    from .prompt_studio import PromptStudio

    record = art.record
    ui = PromptStudio(studio, gallery)
    ui.prompt.value = record.subject or record.prompt  # what the person typed, before a style's template
    ui.style.value = record.style if record.style in dict(ui.style.options).values() else NO_STYLE
    ui.negative.value = record.negative
    ui.set_seed(record.seed)  # carried over: credited to the person only once they change it
    ui.steps.value = record.steps
    ui.guidance.value = record.guidance
    if record.width == record.height and record.width in ui.size.options:
        ui.size.value = record.width
    return ui


def _fusion_mixer(studio, gallery, art):
    from .fusion_mixer import FusionMixer

    record = art.record
    ui = FusionMixer(studio, gallery, subject=record.subject or record.prompt, seed=record.seed)
    ui.live.value = False  # filled without a preview render; tick "live preview" or press Render
    weights = record.fusion or ({record.style: 1.0} if record.style else {})
    known = [key for key in weights if key in ui.styles.allowed_tags]
    ui.styles.value = known
    for key in known:
        ui.sliders[key].value = weights[key]
    if len(known) < len(weights):
        ui.say(f"left out of the mix (not catalogue styles): {', '.join(k for k in weights if k not in known)}")
    return ui


def _sketchpad(studio, gallery, art):
    from .sketchpad import Sketchpad

    record = art.record
    strength = (record.restyle or {}).get("strength")
    options = {"strength": strength} if isinstance(strength, float) else {}
    style = record.style if record.style in dict(style_dropdown().options).values() else None
    return Sketchpad(
        studio,
        image=art.image,
        gallery=gallery,
        prompt=record.subject or record.prompt,
        style=style,
        seed=record.seed,
        live=False,
        **options,
    )  # draw over the image; no render until asked


_FILL = {"PromptStudio": _prompt_studio, "FusionMixer": _fusion_mixer, "Sketchpad": _sketchpad}


def _lineage_html(lineage, hidden: set[str]) -> str:
    """The lineage as two nested lists: what the image was made from, and what was made from it."""

    def label(node):
        art, sha = node["artwork"], node["sha256"]
        if art is None:
            text = f"{sha[:12]} (not in the gallery)"
        else:
            r = art.record
            text = f"{sha[:12]} · {r.kind} · seed {r.seed} · {(r.subject or r.prompt)[:60]}"
        text += " (hidden)" if sha in hidden else ""
        text += " (again)" if node.get("seen") else ""
        return escape(text)

    def items(node):
        if not node["next"]:
            return ""
        return "<ul>" + "".join(f"<li>{label(n)}{items(n)}</li>" for n in node["next"]) + "</ul>"

    up, down = lineage.tree("ancestors"), lineage.tree("descendants")
    return (
        f"<div class='kit-text kit-lineage'><b>Lineage of {escape(lineage.sha256[:12])}</b>"
        f"<p>Made from:</p>{items(up) or '<p><i>nothing: made from text</i></p>'}"
        f"<p>Made into:</p>{items(down) or '<p><i>nothing yet</i></p>'}</div>"
    )
