"""How an audit report reads: the words beside its numbers, its chart and its notebook table.

`kit.auditing` computes an `AuditReport`; this module only shows one: what each measure means and its unit,
the caveats every report carries, the plotly chart of a measure (`figure`), the HTML table a notebook shows
(`html`), and numbers as text (rounded, never "-0.000", shares as whole percents). Kept apart so the audit
reads as numbers and the showing of them can change without touching a statistic.
"""

from __future__ import annotations

import html as markup
import textwrap

import numpy as np

from .. import plots

MEASURES = {  # measure -> what its number means (axis titles and the report)
    "diversity": "mean pairwise cosine distance between the term's images",
    "prompt_distance": "mean 1 - cosine(image, its prompt's text)",
    "cluster_entropy": "entropy (bits) of the term's images over the k-means clusters",
}

AXES = {  # measure -> a short y-axis title (the long meaning goes in the chart's title)
    "diversity": "cosine distance",
    "prompt_distance": "1 - cosine similarity",
    "cluster_entropy": "entropy (bits)",
}
UNITS = {"diversity": "cosine distance", "prompt_distance": "1 - cosine", "cluster_entropy": "bits"}
SHARE_UNIT = "% of CLIP probability"

CAVEATS = """\
What these numbers can and cannot show.
- CLIP probes measure what CLIP associates with the label texts, not what is in the picture.
  CLIP learned from web images and their captions and carries their stereotypes: a probe can
  reflect CLIP's bias as much as the generator's.
- A probe is a forced choice among the labels given: the shares always sum to 1, even when no
  label fits. They change with the wording and with which labels are offered.
- Probes cannot tell anyone's identity, ethnicity, culture or age. The people in these images
  do not exist; a probe only compares how images relate to words.
- What they can show: under the same seeds and labels, whether the model's images for one
  term lean differently from another's, and by how much (with the paired intervals).
- Intervals cover seed-to-seed variation only, for this model, template and settings. Few
  seeds give wide intervals; many measures and terms compared at once will show some
  "differences" by chance. The cluster entropy's interval holds the k-means fit fixed.
- The numbers describe images, not cultures. Look at the contact sheets and ask people from
  the communities named before drawing conclusions.
"""

TINY_NOTE = (
    "This report used the tiny preset: its image model and CLIP were trained on the toy world, "
    "pictures with skews planted on purpose (kit.tiny.card() lists them). The numbers say what this "
    "toy model learnt from those pictures, nothing about any real group of people."
)
TINY_SDXL_NOTE = (
    "This report used the tiny-sdxl preset: its image model has random weights; it shows that the "
    "SDXL code path runs. The numbers describe noise, nothing about any real group of people."
)
NOTES = {"tiny": TINY_NOTE, "tiny-sdxl": TINY_SDXL_NOTE}  # the built-here presets' word at the top of a report


# ---------------------------------------------------------------- the chart


def figure(report, measure: str):
    """A plotly figure of `measure` (checked by the report): one bar per term with its interval (a probe group:
    bars per label), titled with what the measure means, the template and the number of seeds."""
    import plotly.graph_objects as go

    s = report.settings
    if measure in report.probes:
        labels = report.probes[measure]
        fig = go.Figure([bars(report, f"{measure}: {label}", name=label) for label in labels])
        fig.update_layout(barmode="group", legend_title_text=plots.escape(measure))
        fig.update_yaxes(title_text="share of CLIP probability", tickformat=".0%", range=[0, 1.05])
        meaning = "CLIP probe: mean probability of each label (they add up to 100% per term)"
    else:
        fig = go.Figure([bars(report, measure, name=measure)])
        fig.update_layout(showlegend=False)
        fig.update_yaxes(title_text=AXES.get(measure, "share of CLIP probability"), rangemode="tozero")
        meaning = MEASURES.get(measure, "CLIP probe: mean probability of this label")
        if report.is_share(measure):
            fig.update_yaxes(tickformat=".0%")
    # Title lines, then the plot well below them: the title never runs into the axis titles,
    # the legend or the plotly toolbar at the top right.
    # terms are text, not markup: the tick labels show them escaped (plotly renders some HTML tags)
    fig.update_xaxes(
        title_text="term",
        tickmode="array",
        tickvals=report.terms,
        ticktext=[plots.escape(term) for term in report.terms],
    )
    # Plotly does not wrap titles: long user text (a template, a group name) is wrapped here.
    head = [f"<b>{plots.escape(measure)}</b>: {plots.escape(meaning)}"]
    if len(measure) + len(meaning) > 80:
        head = [f"<b>{plots.escape(part)}</b>" for part in textwrap.wrap(measure, 80)]
        head += [f"<sup>{plots.escape(part)}</sup>" for part in textwrap.wrap(meaning, 100)]
    about = f"{s['template']!r}, {len(report.seeds)} paired seeds, bars show {s['level']:.0%} intervals"
    lines = head + [f"<sup>{plots.escape(part)}</sup>" for part in textwrap.wrap(about, 100)]
    if s.get("preset") == "tiny":
        lines.append(
            "<sup>tiny preset: a toy model trained on skewed toy pictures, not a portrait of any real group</sup>"
        )
    fig.update_layout(
        title=dict(
            text="<br>".join(lines),
            x=0,
            xref="paper",
            xanchor="left",
            y=1,
            yref="container",
            yanchor="top",
            pad=dict(t=34),
            font=dict(size=15),
        ),
        margin=dict(t=50 + 22 * len(lines), l=70, r=30, b=60),
        height=400 + 22 * len(lines),
    )
    return plots.theme(fig)  # readable on a light and a dark notebook


def bars(report, measure: str, name: str):
    """One plotly bar trace: `measure` for every term, with its interval as error bars."""
    import plotly.graph_objects as go

    values = [report.value(term, measure) for term in report.terms]
    number = "%{y:.0%}" if report.is_share(measure) else "%{y:.3f}"
    return go.Bar(
        x=report.terms,
        y=[v["value"] for v in values],
        name=plots.escape(name),
        error_y=dict(
            type="data",
            symmetric=False,
            array=[v["high"] - v["value"] for v in values],
            arrayminus=[v["value"] - v["low"] for v in values],
        ),
        customdata=[plots.escape(term) for term in report.terms],
        hovertemplate="%{customdata}: " + number + "<extra>" + plots.escape(name) + "</extra>",
    )


# ---------------------------------------------------------------- the notebook table


def html(report) -> str:
    """One table to read: a row per term, a column per measure, each cell the value and its interval."""
    s, esc = report.settings, markup.escape
    plain = [name for name in report.measures if not report.is_share(name)]
    two_rows = bool(report.probes)
    span = " rowspan='2'" if two_rows else ""
    head = [f"<th{span} style='text-align:left'>term</th>"]
    head += [f"<th{span}>{esc(name)}<br><small>{esc(UNITS[name])}</small></th>" for name in plain]
    head += [
        f"<th colspan='{len(labels)}' style='text-align:center'>{esc(group)}<br><small>{esc(SHARE_UNIT)}</small></th>"
        for group, labels in report.probes.items()
    ]
    header = f"<tr>{''.join(head)}</tr>"
    if two_rows:
        header += (
            "<tr>"
            + "".join(f"<th>{esc(label)}</th>" for labels in report.probes.values() for label in labels)
            + "</tr>"
        )
    body = []
    for term in report.terms:
        cells = []
        for name in report.measures:
            v = report.value(term, name)
            show = percent if report.is_share(name) else decimal
            cells.append(
                f"<td style='text-align:right;white-space:nowrap'>{show(v['value'])}<br>"
                f"<small>{show(v['low'])} &ndash; {show(v['high'])}</small></td>"
            )
        body.append(f"<tr><th style='text-align:left'>{esc(term)}</th>{''.join(cells)}</tr>")
    settings = (
        f"preset <code>{esc(str(s['preset']))}</code>, CLIP <code>{esc(str(s['clip']))}</code>, "
        f"{len(report.seeds)} paired seeds, {s['steps']} steps, {s['size'][0]}x{s['size'][1]} px, "
        f"{s['rounds']} bootstrap rounds"
    )
    note = ""
    if s.get("preset") in NOTES:
        note = f"<p style='border-left:4px solid #e0a000;padding:4px 8px;margin:4px 0'>{esc(NOTES[s['preset']])}</p>"
    return (
        f"<div class='kit-audit'>{note}<p><b>Audit</b> of <code>{esc(s['template'])}</code>: {settings}</p>"
        f"<table><thead>{header}</thead><tbody>{''.join(body)}</tbody></table>"
        f"<p><small>Each cell: the value for the term's images, and below it its {s['level']:.0%} "
        f"bootstrap interval over seeds. Probe shares add up to 100% within a group for each "
        f"term.</small></p>"
        f"<details><summary>Caveats: what these numbers can and cannot show</summary>"
        f"<pre style='white-space:pre-wrap'>{esc(report.caveats)}</pre></details></div>"
    )


# ---------------------------------------------------------------- showing numbers


def _finite(x) -> bool:
    return x is not None and bool(np.isfinite(x))


def rounded(x, places: int):
    """x rounded for a table (NaN stays NaN; never -0.0)."""
    if not _finite(x):
        return float("nan")
    return round(float(x), places) + 0.0


def decimal(x, places: int = 3) -> str:
    """'0.541'; '-' for a missing number; never scientific notation or '-0.000'."""
    if not _finite(x):
        return "-"
    text = f"{float(x):.{places}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def percent(x) -> str:
    """A share as a whole percent: 0.5407 -> '54%'; '<1%' for a share that rounds to 0 but is not 0."""
    if not _finite(x):
        return "-"
    value = 100 * float(x)
    if 0 < value < 0.5:
        return "&lt;1%"
    if 99.5 <= value < 100:
        return "&gt;99%"
    return f"{value:.0f}%"


def frame(rows: list[dict], columns: list[str], index: list[str]):
    """A pandas DataFrame of the rows, indexed by `index` (so no 0, 1, 2 ... column shows), when
    pandas is installed; else the rows themselves."""
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows, columns=columns).set_index(index)
