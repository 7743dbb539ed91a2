"""Drive a real JupyterLab in headless Chromium: the server, and helpers for notebook pages.

The fixtures in conftest.py use `start_lab`/`stop_lab` and the Chromium settings below; tests
use the page helpers:

    open_notebook(page, lab, "notebooks/01-prompting.ipynb")   # opens it, waits for an idle kernel
    run_all(page)                                            # Run > Run All Cells, waits for the end
    assert cell_errors(page) == []                           # tracebacks and broken widgets
    screenshot(page, "01-prompting")                         # artifacts/screenshots/01-prompting.png
    set_theme(page, "dark")                                  # JupyterLab Dark, in place
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = "scripts/install-browser.sh"

# Chromium runs as root here (needs --no-sandbox) on a machine with a closed network: every
# flag after --disable-gpu stops a background connection that would be refused and logged.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}

SERVER_START_TIMEOUT_S = 120
OPEN_TIMEOUT_MS = 120_000  # page load + kernel start (the kernel imports the kit)
RUN_TIMEOUT_MS = 420_000  # a whole notebook on the tiny preset, 2 CPU cores


# ---------------------------------------------------------------------------- the server


@dataclass
class Lab:
    """A running JupyterLab server (see `start_lab`)."""

    base_url: str  # http://127.0.0.1:PORT/
    token: str
    root: Path  # the server's root_dir; notebook paths are relative to it
    process: subprocess.Popen
    log_path: Path
    home: Path  # temporary config/settings/workspaces/runtime folders

    def url(self, path: str = "lab", **query: str) -> str:
        """Browser URL for `path` (e.g. "lab/tree/notebooks/x.ipynb"), carrying the token."""
        query = {**query, "token": self.token}
        return f"{self.base_url}{path}?{urllib.parse.urlencode(query)}"

    def api(self, path: str, method: str = "GET"):
        """Call the REST API (e.g. "api/kernels"); returns the decoded JSON or None."""
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Stop every session and kernel the tests started (frees the 2 cores between tests)."""
        for session in self.api("api/sessions"):
            self.api(f"api/sessions/{session['id']}", method="DELETE")
        for kernel in self.api("api/kernels"):
            self.api(f"api/kernels/{kernel['id']}", method="DELETE")

    def log(self, last_chars: int = 6000) -> str:
        """The end of the server's log (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")[-last_chars:]
        except OSError:
            return "(no server log)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def _die_with_parent() -> None:
    """In the server process, before it starts: get SIGTERM when the test process dies, even
    when killed (CI timeouts), so no server outlives the tests; its kernels follow it."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_lab(root: Path, home: Path, env: dict | None = None) -> Lab:
    """Start `python -m jupyter lab` on a free loopback port and wait until it answers.

    Every folder JupyterLab, the kernels and the kit read or write (config, user settings,
    workspaces, runtime, checkpoints, IPython profile, the kit's gallery and cache) lives under
    `home`, so the user's own settings never leak in and nothing is written to the home
    directory or beside the notebooks. News and update checks are off (no toast covers the
    page) and so is autosave (a run's outputs never land in a committed notebook).
    """
    home.mkdir(parents=True, exist_ok=True)
    dirs = {
        name: home / name
        for name in (
            "config",
            "data",
            "runtime",
            "settings",
            "workspaces",
            "ipython",
            "checkpoints",
            "kit-gallery",
            "kit-cache",
        )  # fmt: skip
    }
    for folder in dirs.values():
        folder.mkdir(exist_ok=True)

    _write_json(
        dirs["config"] / "jupyter_server_config.json",
        {
            "LabApp": {
                "news_url": None,
                "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate",
            }
        },
    )
    user_settings = dirs["settings"] / "@jupyterlab"
    _write_json(
        user_settings / "apputils-extension" / "notification.jupyterlab-settings",
        {"fetchNews": "false", "checkForUpdates": False},
    )
    # Never write a run's outputs back into a notebook of the repository.
    _write_json(user_settings / "docmanager-extension" / "plugin.jupyterlab-settings", {"autosave": False})

    server_env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
        "IPYTHONDIR": str(dirs["ipython"]),
        "KIT_GALLERY": str(dirs["kit-gallery"]),
        "KIT_CACHE": str(dirs["kit-cache"]),
        "KIT_PRESET": "tiny",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **(env or {}),
    }
    port = _free_port()
    token = secrets.token_hex(24)
    command = [
        sys.executable, "-m", "jupyter", "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        # Checkpoints (written when a notebook opens) go to `home`, not next to the notebook.
        f"--FileCheckpoints.checkpoint_dir={dirs['checkpoints']}",
        "--LabApp.extension_manager=readonly",  # no package-index queries from the lab
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: tests run commands (set_theme)
    ]  # fmt: skip
    if os.geteuid() == 0:  # CI containers run as root
        command.append("--allow-root")
    log_path = home / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=server_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop_lab signals the whole group
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    lab = Lab(f"http://127.0.0.1:{port}/", token, Path(root), process, log_path, home)

    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"JupyterLab exited with code {process.returncode} while starting.\nServer log:\n{lab.log()}"
            )
        try:
            lab.api("api/status")
            return lab
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            stop_lab(lab)
            raise RuntimeError(
                f"JupyterLab did not answer on {lab.base_url}api/status within "
                f"{SERVER_START_TIMEOUT_S} s.\nServer log:\n{lab.log()}"
            )
        time.sleep(0.5)


def stop_lab(lab: Lab, grace_s: float = 15) -> None:
    """Stop the server and every kernel it started: ask, then terminate, then kill."""
    # Kernels run in sessions of their own (jupyter_client starts them so), so remember them
    # before the server goes: they are killed below if the server's own clean-up missed any.
    try:
        children = psutil.Process(lab.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    try:
        if lab.process.poll() is None:
            lab.shutdown_kernels()
    except Exception:  # the server may be broken; the signals below still stop it
        pass

    for sig in (signal.SIGTERM, signal.SIGKILL):
        if lab.process.poll() is not None:
            break
        try:
            os.killpg(lab.process.pid, sig)
        except ProcessLookupError:
            break
        try:
            lab.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
    try:  # anything left in the server's process group (the leader has exited)
        os.killpg(lab.process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass

    alive = [child for child in children if child.is_running()]
    for child in alive:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(alive, timeout=5)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


# ---------------------------------------------------------------------------- console log


@dataclass
class ConsoleLog:
    """Browser console errors/warnings and uncaught page errors of one page."""

    lines: list[str] = field(default_factory=list)

    def attach(self, page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.lines.append(f"[pageerror] {error}"))

    def _on_console(self, message) -> None:
        if message.type in ("error", "warning"):
            where = message.location.get("url", "") if message.location else ""
            self.lines.append(f"[{message.type}] {message.text}  ({where})")

    def errors(self) -> list[str]:
        return [line for line in self.lines if not line.startswith("[warning]")]


_console_logs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # page -> ConsoleLog


def watch_console(page) -> ConsoleLog:
    """Start collecting the page's console errors; `screenshot` saves them next to the image."""
    log = ConsoleLog()
    log.attach(page)
    _console_logs[page] = log
    return log


def console_log(page) -> ConsoleLog:
    """What `watch_console` collected for this page so far."""
    return _console_logs.setdefault(page, ConsoleLog())


# ---------------------------------------------------------------------------- page helpers

# The notebook in the current (visible) main-area tab.
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"
STDERR = "application/vnd.jupyter.stderr"  # the mime type of stderr text and of tracebacks
# (The toolbar's .jp-Notebook-ExecutionIndicator carries the kernel status in data-status:
# idle, busy, initializing, connecting, unknown, ...)

_ERROR_TEXT = re.compile(
    r"Traceback \(most recent call last\)|^\s*\w*(Error|Exception|KeyboardInterrupt)\b",
    re.MULTILINE,
)


def open_notebook(page, lab: Lab, relpath: str, timeout_ms: int = OPEN_TIMEOUT_MS) -> None:
    """Open `relpath` (relative to the lab root) in a fresh workspace; wait until it is ready.

    Ready means: every cell of the file is on the page, the server has a kernel for it that is
    idle, and the toolbar says idle too. (The toolbar shows "idle" for a moment before any
    kernel exists; a Run All clicked then runs nothing.) A "Select Kernel" dialog, shown for a
    notebook without kernel metadata, is accepted with its default.
    """
    path = urllib.parse.quote(relpath)
    cells = len(lab.api(f"api/contents/{path}")["content"]["cells"]) or 1  # empty shows one
    page.goto(lab.url(f"lab/tree/{path}", reset=""), timeout=timeout_ms)

    dialog_accept = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
    deadline = time.monotonic() + timeout_ms / 1000
    ready_since = None
    while True:
        if dialog_accept.count():
            dialog_accept.first.click()
        state = notebook_state(page)
        ready = (
            state["kernel"] == "idle"
            and len(state["prompts"]) + state["other_cells"] == cells
            and _server_kernel_state(lab, relpath) == "idle"
        )
        if not ready:
            ready_since = None
        elif ready_since is None:
            ready_since = time.monotonic()
        elif time.monotonic() - ready_since > 0.5:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{relpath}: not ready after {timeout_ms / 1000:.0f} s: {state}, server kernel "
                f"{_server_kernel_state(lab, relpath)}, {cells} cells in the file\n"
                f"Server log:\n{lab.log()}"
            )
        page.wait_for_timeout(200)


def _server_kernel_state(lab: Lab, relpath: str) -> str | None:
    for session in lab.api("api/sessions"):
        if session["path"] == relpath and session.get("kernel"):
            return session["kernel"]["execution_state"]
    return None


def notebook_state(page) -> dict:
    """The current notebook as the page shows it: kernel status, code cells' prompts, and how
    many other cells there are, e.g. {"kernel": "idle", "prompts": ["[1]:"], "other_cells": 2}."""
    return page.evaluate(
        """(notebook) => {
          const panel = document.querySelector(notebook);
          if (!panel) return {kernel: 'no notebook open', prompts: [], other_cells: 0};
          const status = panel.querySelector('.jp-Notebook-ExecutionIndicator');
          return {
            kernel: status ? status.dataset.status : 'no status',
            prompts: [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
                .map(p => p.textContent.trim()),
            other_cells: panel.querySelectorAll('.jp-Cell:not(.jp-CodeCell)').length,
          };
        }""",
        NOTEBOOK,
    )


def click_menu(page, menu: str, item: str) -> None:
    """Click a main-menu entry by its labels, e.g. click_menu(page, "Run", "Run All Cells")."""
    page.locator(".lm-MenuBar-itemLabel", has_text=_exactly(menu)).click()
    page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=_exactly(item)).click()
    page.locator(".lm-Menu").first.wait_for(state="hidden")


def _exactly(text: str) -> re.Pattern:
    return re.compile(f"^{re.escape(text)}$")


# false while Run All is under way; then "done", "stopped at an error", or "dialog: <text>"
# (a dialog such as "Kernel Restarting" means the run cannot finish).
_RUN_FINISHED_JS = """
([notebook, errorPattern]) => {
  const dialog = document.querySelector('.jp-Dialog');
  if (dialog) return 'dialog: ' + dialog.textContent.trim();
  const panel = document.querySelector(notebook);
  if (!panel) return false;
  const status = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  if (!status || status.dataset.status !== 'idle') return false;
  let notRun = 0;
  for (const cell of panel.querySelectorAll('.jp-CodeCell')) {
    const prompt = cell.querySelector('.jp-InputArea-prompt')?.textContent ?? '';
    if (prompt.includes('*')) return false;  // queued or running
    const editor = cell.querySelector('.cm-content');
    const empty = editor !== null && editor.textContent.trim() === '';  // never gets a count
    if (!empty && !/\\[\\d+\\]/.test(prompt)) notRun += 1;
  }
  if (notRun === 0) return 'done';
  // Run All stops at the first error: the cells after it keep an empty prompt.
  const re = new RegExp(errorPattern, 'm');
  const outputs = [...panel.querySelectorAll('.jp-OutputArea-output')];
  return outputs.some(o => re.test(o.textContent)) ? 'stopped at an error' : false;
}
"""


# The output areas of widgets still loading (the text ipywidgets shows until a view renders).
_WIDGETS_LOADING_JS = """
(notebook) => [...document.querySelectorAll(notebook + ' .jp-OutputArea-output')]
    .filter(o => o.textContent.trim() === 'Loading widget...')
"""


def run_all(page, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """Clear all outputs, then Run > Run All Cells; wait until every cell ran or one failed
    (check with `cell_errors`). Raises if a dialog (e.g. the kernel died) stops the run.

    Clearing first means a count left in a saved notebook cannot pass for a fresh one. The
    menus act on the current notebook, the one `open_notebook` opened.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    click_menu(page, "Edit", "Clear Outputs of All Cells")
    click_menu(page, "Run", "Run All Cells")
    try:
        outcome = page.wait_for_function(
            _RUN_FINISHED_JS,
            arg=[NOTEBOOK, _ERROR_TEXT.pattern],
            timeout=timeout_ms,
            polling=500,
        ).json_value()
    except PlaywrightTimeoutError:
        raise TimeoutError(f"Run All did not finish within {timeout_ms / 1000:.0f} s: {notebook_state(page)}") from None
    if outcome.startswith("dialog"):
        raise RuntimeError(f"Run All was interrupted by a {outcome!r}: {notebook_state(page)}")
    # Widget views render after their cell finished; give them time to leave "Loading widget...".
    # One that never does is reported by cell_errors.
    try:
        page.wait_for_function(_WIDGETS_LOADING_JS + ".length === 0", arg=NOTEBOOK, timeout=30_000, polling=250)
    except PlaywrightTimeoutError:
        pass


def cell_errors(page, ignore: str | None = None) -> list[str]:
    """Texts of error outputs in the current notebook: tracebacks and widgets that failed.

    A traceback is rendered like any stderr text, so stderr outputs count as errors when they
    read like one (warnings do not). `ignore`: a regex for errors a notebook shows on purpose.
    """
    notebook = page.locator(NOTEBOOK)
    errors = [
        text.strip()
        for text in notebook.locator(f".jp-OutputArea-output[data-mime-type='{STDERR}']").all_text_contents()
        if _ERROR_TEXT.search(text)
    ]
    # anywidget and ipywidgets draw an error widget, ipywidgets also writes "Error displaying
    # widget" when a view fails, and a view that never loads keeps "Loading widget...".
    for text in notebook.locator(".jupyter-widgets-error-widget").all_text_contents():
        errors.append(f"widget error: {text.strip()}")
    for text in notebook.locator(".jupyter-widgets").all_text_contents():
        if text.strip().startswith("Error displaying widget"):
            errors.append(f"widget error: {text.strip()}")
    for _ in range(page.evaluate(_WIDGETS_LOADING_JS + ".length", NOTEBOOK)):
        errors.append("widget error: a widget view never rendered (still 'Loading widget...')")
    if ignore:
        errors = [error for error in errors if not re.search(ignore, error)]
    return errors


def cell_stderr(page) -> list[str]:
    """Every stderr output text of the current notebook (warnings included)."""
    stderr = page.locator(f"{NOTEBOOK} .jp-OutputArea-output[data-mime-type='{STDERR}']")
    return [text.strip() for text in stderr.all_text_contents()]


# Scrolls the notebook to its top; returns how much taller than its window the notebook is.
_SCROLL_TO_TOP_JS = """
(notebook) => {
  const scroller = document.querySelector(notebook + ' .jp-WindowedPanel-outer');
  if (!scroller) return 0;
  scroller.scrollTop = 0;
  return scroller.scrollHeight - scroller.clientHeight;
}
"""


def screenshot(page, name: str, whole_notebook: bool = True) -> Path:
    """Save a screenshot to artifacts/screenshots/<name>.png and the console log beside it.

    JupyterLab scrolls inside the notebook, not the page, so a full-page shot shows only the
    window: with `whole_notebook` the window is grown to the notebook's height for the shot.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^\w.-]+", "_", name)
    path = SCREENSHOTS / f"{safe}.png"
    viewport = page.viewport_size
    try:
        if whole_notebook and page.locator(NOTEBOOK).count():
            extra = page.evaluate(_SCROLL_TO_TOP_JS, NOTEBOOK)
            if extra > 0:
                height = min(viewport["height"] + extra + 40, 12_000)
                page.set_viewport_size({"width": viewport["width"], "height": height})
                page.wait_for_timeout(500)  # let the browser lay out the cells now in view
                page.evaluate(_SCROLL_TO_TOP_JS, NOTEBOOK)
        page.screenshot(path=str(path), full_page=True)
    finally:
        if page.viewport_size != viewport:
            page.set_viewport_size(viewport)
    log = console_log(page)
    (SCREENSHOTS / f"{safe}.console.log").write_text("\n".join(log.lines) + "\n")
    return path


THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}


def set_theme(page, theme: str) -> None:
    """Switch JupyterLab to its "light" or "dark" theme in place (outputs and widgets stay)."""
    page.evaluate("name => window.jupyterapp.commands.execute('apputils:change-theme', {theme: name})", THEMES[theme])
    page.wait_for_function(
        "light => document.body.dataset.jpThemeLight === light", arg="true" if theme == "light" else "false"
    )
    page.wait_for_timeout(500)  # the theme's stylesheet is applied and the page repainted
