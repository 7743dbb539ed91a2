"""Fixtures shared by the test modules."""

import pytest

import kit


@pytest.fixture(scope="module")
def studio():
    """A tiny-preset studio for one test module, without progress bars."""
    s = kit.Studio(preset="tiny")
    s.progress_bar = False
    return s
