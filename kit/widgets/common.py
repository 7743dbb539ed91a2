"""What every kit panel shares: the container, its traits, background work, and repeated controls.

A panel is an ipywidgets `VBox`, so it can sit in an HBox, a Tab or an Accordion. Its state is
in typed traits (`error`, and each panel's own: `artworks`, `selected`, ...) that tests read
without a browser and other widgets can `observe`.

Widgets only hold state and call the engine. Long work runs in a worker thread so the Stop
button's click reaches the kernel while a model runs; its errors, warnings and messages go
into the panel's one `Output` area (a bare print from a thread or callback would be lost in
JupyterLab).
"""

from __future__ import annotations

import io
import threading
import traceback
import warnings
from html import escape
from pathlib import Path

import ipywidgets as W
import traitlets as T

from .. import styles
from ..core.latents import SEED_LIMIT
from ..errors import KitError
from ..provenance.gallery import Gallery, default_folder
from ..runs import Run, Stopped

NO_STYLE = ""  # the style dropdowns' value for "(no style)": a None value would show a blank dropdown
# Seed fields hold whole seeds; a browser keeps integers exact only below 2**53.
SEED_MAX = min(SEED_LIMIT, 2**53) - 1

# Colours from JupyterLab's theme variables, so a panel reads well in the light and the dark theme.
# Plotly draws its text with inline colours: inside a panel they follow the theme too.
THEME_CSS = """<style>
.kit-panel .kit-error { color: var(--jp-error-color1, #b00020); }
.kit-panel .kit-warn { color: var(--jp-warn-color1, #8a4b00); }
.kit-panel .kit-note { color: var(--jp-ui-font-color1); background: var(--jp-layout-color2);
  border-left: 4px solid var(--jp-warn-color1, #e0a000); padding: 4px 10px; margin: 2px 0;
  line-height: 1.4; white-space: normal; }
.kit-panel .kit-text { white-space: normal; overflow-wrap: break-word; word-break: normal;
  line-height: 1.4; }
.kit-panel .kit-text pre { white-space: pre-wrap; overflow-wrap: break-word; word-break: normal;
  font-size: 12px; margin: 0; }
.kit-panel .kit-text a { color: var(--jp-content-link-color, #1976d2); }
.kit-panel .js-plotly-plot .infolayer text,
.kit-panel .js-plotly-plot .xaxislayer-above text,
.kit-panel .js-plotly-plot .yaxislayer-above text { fill: var(--jp-ui-font-color1) !important; }
</style>"""


class Panel(W.VBox):
    """Base of the kit's panels: `.out`, `.status`, `.progress`, the `error` trait and `run_in_background`."""

    error = T.Unicode("", help="the last error shown; empty once something succeeds")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_class("kit-panel")
        self.add_class(f"kit-{type(self).__name__}")  # e.g. kit-PromptStudio: for styles and browser tests
        self.out = W.Output(layout=W.Layout(max_height="12em", overflow="auto"))
        self.status = W.HTML(value="")
        self.progress = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="14em", display="none"))
        self._theme = W.HTML(THEME_CSS, layout=W.Layout(display="none"))
        self._worker: threading.Thread | None = None
        self.run_: Run | None = None  # the run of the last piece of work started here

    def show_parts(self, *parts):
        """Lay the panel out: its parts top to bottom."""
        self.children = (self._theme, *parts)

    # ------------------------------------------------------------ messages

    def say(self, text: str):
        self.status.value = f"<span class='kit-status'>{escape(text)}</span>"

    def show_error(self, err: BaseException):
        """Show an error in the status line and the output area; the widget stays usable."""
        if isinstance(err, KitError):
            message = str(err)
            self.out.append_stderr(f"{message}\n")
        else:
            message = f"{type(err).__name__}: {err}"
            self.out.append_stderr("".join(traceback.format_exception(err)))
        self.error = message
        self.status.value = f"<span class='kit-error'>⚠ {escape(message)}</span>"

    def show_warning(self, category: type[Warning], message) -> None:
        if issubclass(category, (DeprecationWarning, FutureWarning)):
            return  # the libraries' notices to developers, not to the class
        self.out.append_stderr(f"{category.__name__}: {message}\n")

    # ------------------------------------------------------------ background work

    @property
    def busy(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def run_in_background(self, work, *, done=None, partial=None, buttons=()):
        """Run `work(run)` in a thread with a new `kit.Run` of this panel; `done(result)` afterwards;
        `buttons` are disabled meanwhile.

        Stop (`stop()`) stops this panel's run only; a stopped run shows "stopped" and hands what
        was finished to `partial(done)`. Errors (bad input included) are shown, never raised into
        the void; warnings raised in the thread are shown in this panel's output area.
        """
        if self.busy:
            self.say("still working: press Stop or wait")
            return None
        self.error = ""
        for button in buttons:
            button.disabled = True
        _route_warnings()
        run = self.run_ = Run(on_step=self.on_step)  # made before the thread: a Stop from now on is kept

        def target():
            _panels[threading.get_ident()] = self
            try:
                result = work(run)
                if done is not None:
                    done(result)
            except Stopped as stopped:
                if partial is not None and stopped.done:
                    partial(stopped.done)
                self.say(f"stopped: {len(stopped.done)} of {stopped.total} finished" if stopped.total else "stopped")
            except Exception as err:  # shown to the user, who can fix the input and try again
                self.show_error(err)
            finally:
                _panels.pop(threading.get_ident(), None)
                self.progress.layout.display = "none"
                for button in buttons:
                    button.disabled = False

        self._worker = threading.Thread(target=target, daemon=True)
        self._worker.start()
        return self._worker

    def stop(self):
        """Stop this panel's run after its current step (another panel's run on the same studio goes on)."""
        if self.run_ is not None:
            self.run_.stop()

    def wait(self, timeout: float | None = 600):
        """Block until background work ends (tests and notebooks use this)."""
        if self._worker is not None:
            self._worker.join(timeout)
        return self

    def on_step(self, done: int, total: int):
        """A progress callback for the engine."""
        self.progress.max = max(total, 1)
        self.progress.value = done
        self.progress.layout.display = ""


class LivePanel(Panel):
    """A panel that redraws live: many quick changes give one `_fire()`, `debounce` seconds after
    the last (`_arm()` (re)starts the timer); `wait` and `stop` include a pending redraw."""

    debounce = 0.5  # seconds the controls must rest
    _timer: threading.Timer | None = None

    def _arm(self):
        self._cancel_timer()
        self._timer = threading.Timer(self.debounce, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _cancel_timer(self):
        if self._timer is not None:
            self._timer.cancel()

    def _fire(self):
        raise NotImplementedError

    def wait(self, timeout: float | None = 600):
        """Block until a pending redraw and any background work have finished."""
        while True:
            timer = self._timer
            if timer is not None:
                timer.join(timeout)
            super().wait(timeout)
            if self._timer is timer and not self.busy:
                return self

    def stop(self):
        """Drop a pending redraw and stop the running one."""
        self._cancel_timer()
        super().stop()


# ---------------------------------------------------------------- warnings from worker threads

_panels: dict[int, Panel] = {}  # worker thread id -> the panel it works for


def _route_warnings():
    """Send warnings raised in a panel's worker thread to that panel; others go on as before.

    `warnings.catch_warnings` swaps process-wide state and is not thread-safe, so a worker
    cannot use it. Instead `warnings.showwarning` (the hook Python provides for this) is
    wrapped once; it is checked before each run because a `catch_warnings` block elsewhere
    (pytest wraps every test in one) restores the hook it found when it ends.
    """
    if getattr(warnings.showwarning, "kit_route", False):
        return
    previous = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        panel = _panels.get(threading.get_ident())
        if panel is None:
            return previous(message, category, filename, lineno, file, line)
        panel.show_warning(category, message)

    showwarning.kit_route = True
    warnings.showwarning = showwarning


# ---------------------------------------------------------------- shared controls


def gallery_for(studio, gallery=None) -> Gallery:
    """The gallery a panel saves to: the studio's when it has one (the studio saves every image
    there itself), else `gallery` (a folder or a Gallery), else the default."""
    if studio.gallery is not None:
        if (
            gallery is not None
            and Path(getattr(gallery, "folder", gallery)).expanduser().resolve()
            != Path(studio.gallery.folder).resolve()
        ):
            raise KitError(
                f"this studio saves every image to its gallery {str(studio.gallery.folder)!r}: "
                "give the panel no gallery, or make the studio without one"
            )
        return studio.gallery
    gallery = default_folder() if gallery is None else gallery
    return gallery if isinstance(gallery, Gallery) else Gallery(gallery)


def style_dropdown(value: str | None = None, *, none: str | None = "(no style)", **kwargs) -> W.Dropdown:
    """The catalogue's styles by name, after an explicit `none` entry (value NO_STYLE) unless `none=None`.

    `.value or None` is the chosen style id.
    """
    by_name = sorted(styles.catalogue(), key=lambda s: styles._fold(s.name))
    options = ([(none, NO_STYLE)] if none else []) + [(s.name, s.id) for s in by_name]
    return W.Dropdown(options=options, value=value or options[0][1], **kwargs)


def style_note(style_id: str | None, describe: bool = True) -> str:
    """HTML about a style: its care note when it is sensitive, else (when `describe`) its description."""
    if not style_id:
        return ""
    style = styles.get(style_id)
    if style.sensitive:
        return (
            f"<div class='kit-text kit-warn'><b>Please read first ({escape(style.name)}):</b> "
            f"{escape(style.note)}</div>"
        )
    return f"<div class='kit-text'><i>{escape(style.description)}</i></div>" if describe else ""


def seed_field(value: int = 0, **kwargs) -> W.BoundedIntText:
    """A seed field wide enough for every seed it accepts."""
    kwargs.setdefault("layout", W.Layout(width="19em"))
    kwargs.setdefault("style", {"description_width": "initial"})
    return W.BoundedIntText(value=value, min=0, max=SEED_MAX, **kwargs)


def size_dropdown(preset, **kwargs) -> W.Dropdown:
    """The image sizes a preset allows (64 px steps, 32 for a narrow range) and its default, which is chosen."""
    step = 32 if preset.max_size - preset.min_size < 256 else 64
    sizes = sorted({*range(preset.min_size, preset.max_size + 1, step), preset.size})
    value = preset.size
    kwargs.setdefault("layout", W.Layout(width="10em"))
    kwargs.setdefault("style", {"description_width": "initial"})
    return W.Dropdown(options=sizes, value=value, description="Size", **kwargs)


def preset_note(preset) -> W.HTML:
    """A plain word on the offline `tiny` preset: what its images are. Hidden for real models."""
    if preset.name != "tiny":
        return W.HTML("", layout=W.Layout(display="none"))
    return W.HTML(
        f"<div class='kit-note'><b>Practice models (preset <code>tiny</code>):</b> "
        f"{escape(preset.description)}. Its figures, colours, hats and pattern styles are all it knows: "
        f"it shows what the controls do, not what a real model draws. For real portraits run "
        f'<code>kit download</code> and use <code>kit.Studio(preset="sd-turbo")</code>.</div>'
    )


def image_slot(**layout) -> W.Image:
    """An Image widget hidden until it has a picture (an empty one shows a broken-image icon).

    Pictures keep their aspect ratio (`object_fit: contain`) whatever size the slot is given.
    """
    layout.setdefault("object_fit", "contain")
    layout.setdefault("height", "auto")
    return W.Image(format="png", layout=W.Layout(display="none", **layout))


def show_png(slot: W.Image, data: bytes | None) -> None:
    """Put PNG bytes into an image slot; no bytes hide it."""
    slot.value = data or b""
    slot.layout.display = "" if data else "none"


def png_bytes(image, size: int | None = None) -> bytes:
    """PNG bytes of a PIL image, optionally shrunk to fit `size` px."""
    if size is not None:
        image = image.copy()
        image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def fit_to_width(figure) -> None:
    """Make a plotly FigureWidget (without a fixed width) take the width of the space it is shown in.

    The browser draws the figure before it is placed on the page, so plotly cannot measure its
    container then and falls back to 700 px. Each time a view of it appears (its `_view_count`
    grows) plotly is asked to measure again: autosize off, then on, sends the change it acts on.
    `responsive` makes it measure again when the window is resized too.
    """

    def on_views(change):
        if (change["new"] or 0) > (change["old"] or 0):
            figure.layout.autosize = False
            figure.layout.autosize = True

    figure.observe(on_views, names="_view_count")
    figure._config = {**figure._config, "responsive": True}  # FigureWidget has no public config yet
