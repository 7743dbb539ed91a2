"""What every kit widget shares: one output area, a status line, background work that can be stopped.

Widgets only hold state and call the engine. Long work runs in a worker
thread so the Stop button's click reaches the kernel while a model runs;
its errors and messages go into the widget's one `Output` area (a bare
print from a thread or callback would be lost in JupyterLab).
"""

from __future__ import annotations

import io
import threading
import traceback
import warnings
from html import escape

import ipywidgets as W

from ..errors import KitError


class Panel:
    """Base of the kit's widgets: `.out`, `.status`, `.progress` and `run_in_background`."""

    def __init__(self):
        self.out = W.Output(layout=W.Layout(max_height="12em", overflow="auto"))
        self.status = W.HTML(value="")
        self.progress = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="14em", visibility="hidden"))
        self.error = ""  # the last error message shown, for tests and notebooks
        self._worker: threading.Thread | None = None

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
        self.status.value = f"<span class='kit-error' style='color:#b00020'>⚠ {escape(message)}</span>"

    def _show_warnings(self, caught):
        for warning in caught:
            if issubclass(warning.category, (DeprecationWarning, FutureWarning)):
                continue  # the libraries' notices to developers, not to the class
            self.out.append_stderr(f"{warning.category.__name__}: {warning.message}\n")

    # ------------------------------------------------------------ background work

    @property
    def busy(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def run_in_background(self, work, *, done=None, buttons=()):
        """Run `work()` in a thread; `done(result)` afterwards; `buttons` are disabled meanwhile.

        Errors (bad input included) are shown, never raised into the void.
        """
        if self.busy:
            self.say("still working: press Stop or wait")
            return None
        self.error = ""
        for button in buttons:
            button.disabled = True

        def target():
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    result = work()
                self._show_warnings(caught)
                if done is not None:
                    done(result)
            except Exception as err:  # shown to the user, who can fix the input and try again
                self.show_error(err)
            finally:
                self.progress.layout.visibility = "hidden"
                for button in buttons:
                    button.disabled = False

        self._worker = threading.Thread(target=target, daemon=True)
        self._worker.start()
        return self._worker

    def wait(self, timeout: float | None = 600):
        """Block until background work ends (tests and notebooks use this)."""
        if self._worker is not None:
            self._worker.join(timeout)
        return self

    def on_step(self, done: int, total: int):
        """A progress callback for the engine."""
        self.progress.max = max(total, 1)
        self.progress.value = done
        self.progress.layout.visibility = "visible"


def png_bytes(image, size: int | None = None) -> bytes:
    """PNG bytes of a PIL image, optionally shrunk to fit `size` px."""
    if size is not None:
        image = image.copy()
        image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
