"""The look every plotly figure of the kit shares: readable on JupyterLab's light and dark themes.

Plotly draws its own white background and near-black text by default, which vanish on a dark
notebook. The kit's figures have no background of their own (the notebook's shows through),
grey text and grid lines that read on both, and user text escaped (plotly labels render a
subset of HTML). Only plotly's layout is touched: no widget, no IPython.
"""

from __future__ import annotations

import html

TEXT = "#8c8c8c"  # text that reads on a white and on a near-black background
GRID = "rgba(128,128,128,0.3)"
CLEAR = "rgba(0,0,0,0)"


def theme(figure):
    """Let a plotly figure sit on the notebook's own background, light or dark (in place); returns it."""
    figure.update_layout(template="plotly_white", paper_bgcolor=CLEAR, plot_bgcolor=CLEAR, font_color=TEXT)
    figure.update_traces(error_y_color=TEXT, selector={"type": "bar"})  # plotly's default is dark blue
    figure.update_xaxes(gridcolor=GRID, zerolinecolor=GRID, linecolor=GRID)
    figure.update_yaxes(gridcolor=GRID, zerolinecolor=GRID, linecolor=GRID)
    return figure


def escape(text) -> str:
    """User text for plotly titles, legends, axis labels and hover labels."""
    return html.escape("" if text is None else str(text), quote=False)
