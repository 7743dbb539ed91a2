"""kit: explore AI portraits and the world's art styles in JupyterLab.

``import kit`` is light: it imports none of torch, diffusers, transformers,
open_clip or umap. Each public name is loaded from its module on first use.
"""

from importlib import import_module

from .errors import KitError

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "doctor": "kit.core.readiness",
    "Studio": "kit.studio",
    "Artwork": "kit.provenance.artwork",
    "Record": "kit.provenance.record",
    "Gallery": "kit.provenance.gallery",
    "load": "kit.provenance.artwork",
    "replay": "kit.provenance.artwork",
    "Style": "kit.styles",
    "Embedder": "kit.maps.embed",
    "StyleAtlas": "kit.maps.atlas",
    "audit": "kit.features.auditing",
    "AuditReport": "kit.features.auditing",
    "Run": "kit.runs",
    "Stopped": "kit.runs",
}
# public short name -> the module it is (kit.restore is kit.features.restore)
_SUBMODULES = {
    "styles": "kit.styles",
    "widgets": "kit.widgets",
    "files": "kit.files",
    "runs": "kit.runs",
    "sheet": "kit.sheet",
    "lessons": "kit.lessons",
    "kinds": "kit.kinds",
    "presets": "kit.core.presets",
    "latents": "kit.core.latents",
    "tiny": "kit.core.tiny",
    "toyworld": "kit.core.toyworld",
    "blend": "kit.core.blend",
    "walks": "kit.features.walks",
    "fusion": "kit.features.fusion",
    "restore": "kit.features.restore",
    "damage": "kit.features.damage",
    "restyle": "kit.features.restyle",
    "auditing": "kit.features.auditing",
    "embed": "kit.maps.embed",
    "atlas": "kit.maps.atlas",
    "projection": "kit.maps.projection",
    "collection": "kit.maps.collections.collection",
    "record": "kit.provenance.record",
    "artwork": "kit.provenance.artwork",
    "gallery": "kit.provenance.gallery",
    "credentials": "kit.provenance.credentials",
    "core": "kit.core",
    "features": "kit.features",
    "maps": "kit.maps",
    "provenance": "kit.provenance",
}

__all__ = ["KitError", "__version__", *_LAZY, *sorted(_SUBMODULES)]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = import_module(_SUBMODULES[name])
    else:
        raise AttributeError(f"module 'kit' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
