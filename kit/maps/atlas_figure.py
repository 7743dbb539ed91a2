"""The plotly figure of a fitted StyleAtlas: one trace per colour group, hover text escaped.

``StyleAtlas.figure(color_by)`` checks its arguments and calls ``figure`` here with the atlas's
table of points. Styles are circles, images squares, generated images stars (diamonds in 3D:
scatter3d has no star). Colours come from plotly's qualitative palettes, keeping only the mid
tones that show on a light and on a dark notebook; points without a value are grey.

The kinds of point (`KINDS`) are named here, beside the symbol each is drawn with, and the atlas
imports them from here: the dependency runs one way, atlas -> atlas_figure.

Plotly is imported inside ``figure``; the rest is plain Python.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from .. import plots
from .. import styles as kit_styles
from ..data_tables import UNLABELLED, classification

KINDS = ("style", "image", "generated")  # the kinds of point on a map, each drawn with a symbol of its own
SYMBOLS_2D = {"style": "circle", "image": "square", "generated": "star"}
SYMBOLS_3D = {"style": "circle", "image": "square", "generated": "diamond"}  # scatter3d has no star
SIZES = {"style": 9, "image": 8, "generated": 13}
WEBGL_ABOVE = 5000  # points: SVG scatter gets sluggish in the browser beyond this
UNLABELLED_COLOUR = "#b0b0b0"


def figure(points: list[dict], dim: int, color_by: str, model_name: str):
    """A plotly Figure of the mapped points (those with ``xy``), one legend entry per group of `color_by`.

    Each marker's customdata is its point id; its hover text shows name, region, era, medium and
    description. The caller has checked `color_by` and `dim` (see ``StyleAtlas.figure``).
    """
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    mapped = [p for p in points if p.get("xy") is not None]
    groups: dict[str, list[dict]] = {}
    for p in mapped:
        groups.setdefault(group(p, color_by), []).append(p)
    names = sorted(groups, key=lambda g: group_order(color_by, g))
    palette = mid_tones(qualitative.Plotly if len(names) <= 10 else qualitative.Dark24 + qualitative.Light24)
    symbols = SYMBOLS_2D if dim == 2 else SYMBOLS_3D
    fig = go.Figure()
    for number, name in enumerate(names):
        members = groups[name]
        xy = np.stack([p["xy"] for p in members])
        colour = UNLABELLED_COLOUR if name == UNLABELLED else palette[number % len(palette)]
        marker = {
            "color": colour,
            "symbol": [symbols[p["kind"]] for p in members],
            "size": [SIZES[p["kind"]] for p in members],
            "line": {"width": 0.5, "color": "white"},
        }
        common = {
            "name": plots.escape(name),
            "legendgroup": name,
            "mode": "markers",
            "customdata": [p["id"] for p in members],
            "hovertext": [hover(p) for p in members],
            "hoverinfo": "text",
        }
        if dim == 3:
            marker["size"] = [s * 0.6 for s in marker["size"]]
            fig.add_trace(go.Scatter3d(x=xy[:, 0], y=xy[:, 1], z=xy[:, 2], marker=marker, **common))
        else:
            scatter = go.Scattergl if len(mapped) > WEBGL_ABOVE else go.Scatter
            fig.add_trace(scatter(x=xy[:, 0], y=xy[:, 1], marker=marker, **common))
    hidden = {"showticklabels": False, "showgrid": False, "zeroline": False, "title": ""}
    # Readable on a light and a dark notebook: no background of its own, grey text. The legend
    # goes under the map (beside it, a long legend squeezes the map into a strip) and scrolls
    # past 30% of the height, so on a narrow page the map keeps most of it.
    plots.theme(fig)
    fig.update_layout(
        hovermode="closest",
        height=640,
        legend={
            "title": {"text": plots.escape(color_by), "side": "top left"},
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": -0.02,
            "yanchor": "top",
            "maxheight": 0.3,
        },
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        title={
            "text": plots.escape(f"Style atlas: {len(mapped)} points, UMAP of {model_name}"),
            "x": 0.01,
            "xanchor": "left",
        },
    )  # left: the toolbar is on the right
    if dim == 3:
        fig.update_layout(scene={"xaxis": hidden, "yaxis": hidden, "zaxis": hidden})
    else:
        fig.update_xaxes(**hidden)
        fig.update_yaxes(**hidden)
    return fig


def group(point: dict, color_by: str) -> str:
    """The legend group of a point: its era bin, medium family or plain value; UNLABELLED when empty."""
    table = classification()
    if color_by == "era":
        return table.era_bin(point.get("era_start"))
    if color_by == "medium":
        return table.medium_family(point.get("medium"))
    value = point.get(color_by)
    return UNLABELLED if value in (None, "") else str(value)


def group_order(color_by: str, name: str):
    """Legend order: the catalogue's own order for known values, then others A-Z, unlabelled last."""
    table = classification()
    known = {
        "region": list(kit_styles.REGIONS),
        "continent": list(kit_styles.CONTINENTS),
        "era": table.era_labels,
        "medium": table.medium_labels,
        "kind": list(KINDS),
    }[color_by]
    if name == UNLABELLED:
        return (2, 0, "")
    if name in known:
        return (0, known.index(name), "")
    return (1, 0, name.lower())


def mid_tones(colours: list[str]) -> list[str]:
    """The colours that show on a white and on a near-black page (relative luminance 0.1 to 0.6)."""

    def luminance(colour: str) -> float:
        r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
        r, g, b = (v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in (r, g, b))
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    return [c for c in colours if 0.1 < luminance(c) < 0.6]


def hover(point: dict) -> str:
    """Hover text of one point: every value from the catalogue or the user escaped."""
    lines = [f"<b>{plots.escape(point['name'])}</b>"]
    if point.get("label"):
        lines.append(f"<i>{plots.escape(point['label'])}</i>")
    where = " · ".join(plots.escape(v) for v in (point.get("region"), point.get("continent")) if v)
    lines.append(f"{plots.escape(point['kind'])}" + (f" · {where}" if where else ""))
    if point.get("era"):
        lines.append(plots.escape(point["era"]))
    elif point.get("era_start") is not None:
        lines.append(plots.escape(classification().era_bin(point["era_start"])))
    if point.get("medium"):
        lines.append(wrapped(point["medium"]))
    if point.get("description"):
        lines.append(wrapped(point["description"]))
    if point.get("sensitive"):
        lines.append("<b>sensitive:</b> " + wrapped(point.get("note") or "use with care"))
    if point.get("path"):
        lines.append(plots.escape(Path(point["path"]).name))
    return "<br>".join(lines)


def wrapped(text, width: int = 60, limit: int = 240) -> str:
    """Escaped text, shortened to `limit` characters and broken into lines with <br>."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return "<br>".join(plots.escape(line) for line in textwrap.wrap(text, width))
