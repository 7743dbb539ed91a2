"""kit: explore AI portraits and the world's art styles in JupyterLab.

``import kit`` is light: it imports none of torch, diffusers, transformers,
open_clip or umap. Each public name is loaded from its module on first use.
"""

from importlib import import_module

from .errors import KitError

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "doctor": "kit.readiness",
    "Studio": "kit.studio",
    "Artwork": "kit.artwork",
    "Record": "kit.record",
    "Gallery": "kit.gallery",
    "load": "kit.artwork",
    "replay": "kit.artwork",
    "Style": "kit.styles",
    "Embedder": "kit.embed",
    "StyleAtlas": "kit.atlas",
    "audit": "kit.auditing",
    "AuditReport": "kit.auditing",
    "Run": "kit.runs",
    "Stopped": "kit.runs",
}
_SUBMODULES = {
    "styles",
    "widgets",
    "presets",
    "latents",
    "walks",
    "fusion",
    "provenance",
    "embed",
    "atlas",
    "auditing",
    "restore",
    "restyle",
    "credentials",
    "sheet",
    "tiny",
    "collection",
    "files",
    "lessons",
    "projection",
    "runs",
    "record",
    "artwork",
    "gallery",
}

__all__ = ["KitError", "__version__", *_LAZY, *sorted(_SUBMODULES)]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = import_module(f"kit.{name}")
    else:
        raise AttributeError(f"module 'kit' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
