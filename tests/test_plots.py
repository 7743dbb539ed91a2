"""Every plotly figure of the engine shares one look (no background of its own, grey text) and escapes
user text: a prompt or file name with HTML in it is shown as text, never rendered."""

import numpy as np

from kit import plots
from kit.maps.collections.mapping import CollectionMap

HOSTILE = "<b>bold</b><a href='x'>link</a>"


def assert_themed(fig):
    assert fig.layout.paper_bgcolor == plots.CLEAR and fig.layout.plot_bgcolor == plots.CLEAR
    assert fig.layout.font.color == plots.TEXT


def test_the_collection_map_escapes_paths_and_values():
    n = 6
    columns = {
        "id": np.array([f"id{i}" for i in range(n)], dtype=object),
        "path": np.array([f"/museum/{HOSTILE}{i}.png" for i in range(n)], dtype=object),
        "school": np.array([HOSTILE, "plain"] * 3, dtype=object),
    }
    cmap = CollectionMap(
        np.random.default_rng(0).standard_normal((n, 2)).astype(np.float32), columns, np.ones(n, bool), atlas=None
    )
    fig = cmap.figure(color_by="school")
    assert_themed(fig)
    shown = [trace.name for trace in fig.data] + [t for trace in fig.data for t in trace.hovertext]
    assert not any("<b>" in text or "<a " in text for text in shown)
    assert any("&lt;b&gt;bold&lt;/b&gt;" in text for text in shown)


def test_escape_leaves_plain_text_alone():
    assert plots.escape("Tā moko & Đông Hồ") == "Tā moko &amp; Đông Hồ"
    assert plots.escape(None) == ""
