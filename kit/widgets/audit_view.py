"""`AuditView`: browse an audit report: a measure's chart with its intervals, a term's contact sheet."""

from __future__ import annotations

from html import escape

import ipywidgets as W

from .common import Panel, fit_to_width, image_slot, png_bytes, show_png


class AuditView(Panel):
    """Pick a measure to see its chart, pick a term to see its images.

    >>> report = kit.audit(studio, "a portrait of a {term} elder", ["Yoruba", "Sami"])
    >>> kit.widgets.AuditView(report)
    """

    def __init__(self, report, **kwargs):
        super().__init__(**kwargs)
        self.report = report
        wide = {"description_width": "initial"}
        self.measure = W.Dropdown(
            options=report.figure_names, value=report.figure_names[0], description="Measure", style=wide
        )
        self.term = W.Dropdown(options=report.terms, value=report.terms[0], description="Term", style=wide)
        self.figure = None  # the plotly FigureWidget on show
        self.plot = W.VBox()
        self.sheet = image_slot(max_width="100%")
        self.caveats = W.HTML(
            f"<details class='kit-text'><summary>What these numbers can and cannot show</summary>"
            f"<pre>{escape(report.caveats)}</pre></details>"
        )

        self.measure.observe(lambda change: self.show_measure(change["new"]), names="value")
        self.term.observe(lambda change: self.show_term(change["new"]), names="value")
        self.show_measure(self.measure.value)
        self.show_term(self.term.value)
        self.show_parts(
            W.HBox([self.measure, self.status], layout=W.Layout(flex_flow="row wrap")),
            self.plot,
            self.term,
            self.sheet,
            self.caveats,
            self.out,
        )

    def show_measure(self, name: str):
        """Draw one measure (or probe group) for every term."""
        import plotly.graph_objects as go

        try:
            self.figure = go.FigureWidget(self.report.figure(name))  # themed by the engine (kit.plots)
        except Exception as err:  # shown in the widget, which stays usable
            self.show_error(err)
            return
        fit_to_width(self.figure)
        self.plot.children = (self.figure,)
        self.say(f"{name}: {len(self.report.seeds)} paired seeds per term")

    def show_term(self, term: str):
        """Show the term's images, one per seed."""
        try:
            sheet = self.report.contact_sheet(term)
        except Exception as err:
            self.show_error(err)
            return
        self.sheet.layout.width = f"{sheet.width}px"
        show_png(self.sheet, png_bytes(sheet))
