"""Test set-up: offline, tiny preset, throwaway folders for the gallery, the cache and the lessons.

Set before anything imports the kit's heavy modules; notebook kernels started
by nbval inherit this environment too. The folders made here are removed when
the test session ends (only those: a folder named in the environment is left alone).
"""

import os
import shutil
import tempfile

_MADE: list[str] = []


def _folder(name: str, prefix: str) -> None:
    if not os.environ.get(name):
        os.environ[name] = tempfile.mkdtemp(prefix=prefix)
        _MADE.append(os.environ[name])


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("KIT_PRESET", "tiny")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
_folder("KIT_GALLERY", "kit-test-gallery-")
_folder("KIT_CACHE", "kit-test-cache-")  # the tiny preset's saved models, the embedding cache: never ~/.cache/kit
_folder("KIT_LESSONS", "kit-test-lessons-")


def pytest_unconfigure(config):
    for folder in _MADE:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """The lessons under nbval and the browser tests are slow (each starts a kernel or JupyterLab): marked so,
    `pytest -m "not slow"` is the quick run a developer makes between changes; CI runs everything."""
    import pytest

    for item in items:
        if item.get_closest_marker("browser") or str(item.fspath).endswith(".ipynb"):
            item.add_marker(pytest.mark.slow)
