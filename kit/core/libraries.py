"""What the kit must know about the installed diffusers and transformers: the name of from_pretrained's dtype
argument in this version, and how to load quietly (the libraries' own bars and notices off; the kit reports
what matters itself). Used by the Studio's loading and by the OpenVINO export alike.
"""

from __future__ import annotations

from contextlib import contextmanager


def dtype_argument() -> str:
    """diffusers renamed from_pretrained's `torch_dtype` to `dtype`; use the name this version reads."""
    try:
        from diffusers.utils import _resolve_dtype  # noqa: F401  (present where `dtype` is the name)
    except ImportError:
        return "torch_dtype"
    return "dtype"


@contextmanager
def quiet_loading():
    """Silence the libraries' loading bars and notices; the kit reports what matters itself."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    levels = dlog.get_verbosity(), tlog.get_verbosity()
    dlog.set_verbosity_error(), tlog.set_verbosity_error()
    dlog.disable_progress_bar(), tlog.disable_progress_bar()
    try:
        yield
    finally:
        dlog.set_verbosity(levels[0]), tlog.set_verbosity(levels[1])
        dlog.enable_progress_bar(), tlog.enable_progress_bar()
