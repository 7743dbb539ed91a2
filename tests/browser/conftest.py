"""Fixtures for the real-browser tests: one JupyterLab server and one headless Chromium per session.

    lab_server  session  a running JupyterLab (lab.Lab) rooted at the repository, KIT_PRESET=tiny
    browser     session  Playwright's Chromium (Debian's /usr/bin/chromium, headless)
    page        test     a fresh browser context + page at 1400x1000; console errors collected;
                         closed afterwards, and the kernels it started are shut down

Needs /usr/bin/chromium (scripts/install-browser.sh). Without it the tests are skipped, or fail
when $CI is set, so CI cannot go green without running them.
"""

from __future__ import annotations

import os

import pytest

from . import lab as lablib

BROWSER_DIR = os.path.dirname(__file__)


@pytest.hookimpl(tryfirst=True)  # before `-m browser` selects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.path).startswith(BROWSER_DIR + os.sep):
            item.add_marker(pytest.mark.browser)


def _require_chromium() -> None:
    if lablib.CHROMIUM.exists():
        return
    message = (
        f"{lablib.CHROMIUM} is missing: run `sudo {lablib.INSTALL_HINT}` to install Debian's "
        "Chromium for the browser tests"
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory):
    _require_chromium()
    lab = lablib.start_lab(root=lablib.REPO_ROOT, home=tmp_path_factory.mktemp("jupyter-home"))
    try:
        yield lab
    finally:
        lablib.stop_lab(lab)


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    _require_chromium()
    (lablib.SCREENSHOTS / "console.log").unlink(missing_ok=True)  # the log of this session only
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # widgets answer through a busy 2-core kernel

    # A non-persistent launch gives Chromium a fresh temporary profile (--user-data-dir) and
    # deletes it on close; crash reports and GTK's cache would still go to ~/.config and
    # ~/.cache, so the browser gets a home of its own.
    home = tmp_path_factory.mktemp("chromium-home")
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache")}  # fmt: skip
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(lablib.CHROMIUM),
            headless=True,
            args=lablib.CHROMIUM_ARGS,
            env=env,
            timeout=60_000,
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(request, browser, lab_server):
    context = browser.new_context(viewport=lablib.VIEWPORT)
    context.set_default_timeout(60_000)  # every Playwright wait gives up; nothing hangs forever
    page = context.new_page()
    console = lablib.watch_console(page)
    try:
        yield page
    finally:
        lablib.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        with open(lablib.SCREENSHOTS / "console.log", "a") as log:
            log.write(f"== {request.node.nodeid}\n")
            log.writelines(line + "\n" for line in console.lines)
        context.close()
        lab_server.shutdown_kernels()
