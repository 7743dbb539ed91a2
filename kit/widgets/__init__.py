"""The kit's JupyterLab widgets: thin ipywidgets UIs over the engine.

Each panel is an ipywidgets container (a VBox: it can sit in an HBox, a Tab or an
Accordion), holds its state in typed traits (tests read them without a browser, other
widgets observe them) and shows errors in its own output area.
"""

from importlib import import_module

_WIDGETS = {
    "PromptStudio": "kit.widgets.prompt_studio",
    "WalkExplorer": "kit.widgets.walk_explorer",
    "FusionMixer": "kit.widgets.fusion_mixer",
    "StyleMap": "kit.widgets.style_map",
    "AuditView": "kit.widgets.audit_view",
    "GalleryBrowser": "kit.widgets.gallery_browser",
    "Sketchpad": "kit.widgets.sketchpad",
}

__all__ = list(_WIDGETS)


def __getattr__(name):
    if name not in _WIDGETS:
        raise AttributeError(f"module 'kit.widgets' has no attribute {name!r}")
    value = getattr(import_module(_WIDGETS[name]), name)
    globals()[name] = value
    return value
