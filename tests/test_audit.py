"""Representation audits: the statistics on synthetic vectors, input checks, and one tiny audit end to end."""

import importlib
import math

import numpy as np
import pytest

import kit
from kit.errors import KitError

A = importlib.import_module("kit.features.auditing")  # the module behind kit.audit and kit.AuditReport
S = importlib.import_module("kit.features.audit_stats")  # the measures, the bootstrap and the intervals
D = importlib.import_module("kit.features.audit_display")  # the words, chart and table of a report

PROBES = {"attire": ["traditional dress", "western suit"], "age": ["young", "old", "middle-aged"]}


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _synthetic(n_terms=3, n_seeds=8, dim=16, seed=0, spread=0.3):
    """Paired embeddings: each seed shares a direction across terms, each term adds its own offset."""
    rng = np.random.default_rng(seed)
    per_seed = rng.normal(size=(1, n_seeds, dim))
    per_term = rng.normal(size=(n_terms, 1, dim))
    vectors = _unit(per_seed + per_term + spread * rng.normal(size=(n_terms, n_seeds, dim)))
    prompts = _unit(rng.normal(size=(n_terms, dim)))
    # labels close to each other, so that at CLIP's temperature the probabilities are not all 0 or 1
    labels = _unit(vectors.mean(axis=(0, 1)) + 0.02 * rng.normal(size=(3, dim)))
    probes = {"group": (["a", "b", "c"], labels)}
    return vectors, prompts, probes


# ---------------------------------------------------------------- statistics (no models)


def test_pairwise_distance_known_values():
    assert S.pairwise_distance(np.eye(4)) == pytest.approx(1.0)
    same = np.tile(_unit(np.ones((1, 4))), (5, 1))
    assert S.pairwise_distance(same) == pytest.approx(0.0)
    # resamples leave out pairs of an image with itself: orthonormal rows stay at distance 1
    indices = S.bootstrap_indices(4, rounds=200)
    values = S.pairwise_distance(np.eye(4), indices)
    drew_one = (indices == indices[:, :1]).all(axis=1)
    assert np.allclose(values[~drew_one], 1.0) and np.isnan(values[drew_one]).all()


def test_intervals_contain_the_estimate_and_narrow_with_more_seeds():
    widths = {}
    everything, prompts, probes = _synthetic(n_seeds=64)
    for n_seeds in (8, 64):
        vectors = everything[:, :n_seeds]  # the first 8 seeds, then all 64
        estimates, replicates, _ = S.measure(vectors, prompts, probes, rounds=300)
        for (t, name), value in estimates.items():
            low, high = S.interval(replicates[t, name])
            assert low <= value + 1e-12 and value <= high + 1e-12, (n_seeds, t, name)
        widths[n_seeds] = {
            name: np.mean([np.subtract(*S.interval(replicates[t, name])[::-1]) for t in range(3)])
            for name in ("diversity", "prompt_distance", "group: a")
        }
    for name in widths[8]:
        assert widths[64][name] < widths[8][name] / 1.5, name


def test_bootstrap_is_reproducible_and_shared_by_terms():
    vectors, prompts, probes = _synthetic()
    _, first, labels = S.measure(vectors, prompts, probes, rounds=300)
    _, second, _ = S.measure(vectors, prompts, probes, rounds=300, labels=labels)
    for key in first:
        assert np.array_equal(first[key], second[key], equal_nan=True)
    # identical terms get identical replicates (same resamples), so their paired difference is exactly 0
    twins = np.stack([vectors[0], vectors[0]])
    _, replicates, _ = S.measure(twins, np.stack([prompts[0], prompts[0]]), rounds=300)
    assert np.array_equal(replicates[0, "prompt_distance"], replicates[1, "prompt_distance"])


def test_paired_difference_is_narrower_than_the_separate_intervals():
    vectors, prompts, probes = _synthetic(n_seeds=12, spread=0.1)
    _, replicates, _ = S.measure(vectors, np.stack([prompts[0]] * 3), rounds=1000)
    a, b = replicates[0, "prompt_distance"], replicates[1, "prompt_distance"]
    low, high = S.interval(a - b)
    separate = np.subtract(*S.interval(a)[::-1]) + np.subtract(*S.interval(b)[::-1])
    assert high - low < separate / 2


def binomial_coverage(interval_of, n: int, share: float) -> float:
    """How often `interval_of(k, n)` holds `share` when k of n images show the label (exact)."""
    return sum(
        math.comb(n, k) * share**k * (1 - share) ** (n - k)
        for k in range(n + 1)
        if interval_of(k, n)[0] <= share <= interval_of(k, n)[1]
    )


def test_share_interval_is_wilsons_and_holds_the_share_as_often_as_it_says():
    # none of 24 images: 0 to z^2 / (n + z^2), not "0 to 0"; symmetric in share and 1 - share
    assert S.share_interval(0, 24) == (0.0, pytest.approx(1.959964**2 / (24 + 1.959964**2), rel=1e-6))
    low, high = S.share_interval(0.3, 24)
    assert (1 - high, 1 - low) == pytest.approx(S.share_interval(0.7, 24))
    assert low < 0.3 < high and S.share_interval(0.3, 96)[1] - S.share_interval(0.3, 96)[0] < (high - low) / 1.8
    assert S.share_interval(0.3, 24, 0.99)[0] < low
    shares = np.arange(0.05, 0.96, 0.05)
    for n in (8, 24, 48):
        wilson = [binomial_coverage(lambda k, n: S.share_interval(k / n, n), n, p) for p in shares]
        assert 0.94 <= np.mean(wilson) <= 0.97 and min(wilson) >= 0.92, (n, wilson)
    # the percentile bootstrap of the same yes/no answers falls short at small shares
    indices = S.bootstrap_indices(24, 1000)

    def bootstrap(k, n):
        return S.interval((indices < k).mean(axis=1))  # images 0 .. k-1 show the label

    assert (
        binomial_coverage(bootstrap, 24, 0.1)
        < 0.92
        < binomial_coverage(lambda k, n: S.share_interval(k / n, n), 24, 0.1)
    )


def test_probe_shares_sum_to_one_per_group():
    vectors, prompts, probes = _synthetic()
    estimates, replicates, _ = S.measure(vectors, prompts, probes, rounds=200)
    for t in range(3):
        assert sum(estimates[t, f"group: {x}"] for x in "abc") == pytest.approx(1.0)
        total = sum(replicates[t, f"group: {x}"] for x in "abc")
        assert np.allclose(total, 1.0)
    p = S.probe_probabilities(vectors[0], probes["group"][1])
    assert p.shape == (8, 3) and np.allclose(p.sum(axis=1), 1.0) and (p >= 0).all()


def test_temperature_sharpens_probe_probabilities():
    images = _unit(np.array([[1.0, 0.2], [0.9, 0.4]]))
    labels = _unit(np.array([[1.0, 0.0], [0.0, 1.0]]))
    soft = S.probe_probabilities(images, labels, temperature=1)
    sharp = S.probe_probabilities(images, labels, temperature=100)
    assert (sharp[:, 0] > soft[:, 0]).all() and sharp[0, 0] > 0.99


def test_entropy_bounds():
    assert S.entropy_bits([5, 0, 0]) == 0
    assert S.entropy_bits([2, 2, 2, 2]) == pytest.approx(2.0)
    vectors, prompts, _ = _synthetic(n_terms=4)
    estimates, replicates, labels = S.measure(vectors, prompts, rounds=200)
    assert labels.shape == (4, 8) and set(np.unique(labels)) <= set(range(4))
    for t in range(4):
        assert 0 <= estimates[t, "cluster_entropy"] <= math.log2(4) + 1e-9
        assert (replicates[t, "cluster_entropy"] >= 0).all()
        assert (replicates[t, "cluster_entropy"] <= math.log2(4) + 1e-9).all()


# ---------------------------------------------------------------- what a reader sees (no models)


def _report(terms=("Sami", "<b>Yoruba</b>"), probes=None, preset="sd-turbo", values=None, spread=0.01):
    """An AuditReport built from chosen numbers: values[(term, measure)] -> estimate; its
    bootstrap replicates scatter around it by `spread` (shares by a tenth of their size)."""
    probes = (
        {"attire": ["dress", "suit"], "<i>setting</i>": ["field", "street", "studio"]} if probes is None else probes
    )
    settings = {
        "template": "a portrait of a {term} <u>elder</u>",
        "terms": list(terms),
        "seeds": [0, 1, 2, 3],
        "probes": probes,
        "preset": preset,
        "clip": "ViT-B-32",
        "steps": 1,
        "size": [512, 512],
        "rounds": 200,
        "level": 0.95,
    }
    measures = ["diversity", "prompt_distance", "cluster_entropy"]
    measures += [f"{group}: {label}" for group, labels in probes.items() for label in labels]
    rng = np.random.default_rng(0)
    estimates, replicates = {}, {}
    for t, term in enumerate(terms):
        for m, name in enumerate(measures):
            value = (values or {}).get((term, name), 0.1 + 0.05 * m + 0.01 * t)
            scale = value / 10 if name not in D.MEASURES else spread
            estimates[term, name] = value
            replicates[term, name] = value + scale * rng.normal(size=200)
    return A.AuditReport(
        settings=settings,
        prompts={t: settings["template"].replace("{term}", t) for t in terms},
        artworks={t: [] for t in terms},
        vectors=np.zeros((len(terms), 4, 8)),
        estimates=estimates,
        replicates=replicates,
    )


SMALL = {
    ("Sami", "attire: dress"): 1.380418e-04,
    ("Sami", "attire: suit"): 1 - 1.380418e-04,
    ("Sami", "diversity"): 0.01087933,
    ("Sami", "<i>setting</i>: field"): 7.69295e-07,
    ("Sami", "<i>setting</i>: street"): 0.5407026,
    ("Sami", "<i>setting</i>: studio"): 0.4592966,
}


def test_report_html_is_rounded_labelled_and_escaped():
    report = _report(values=SMALL)
    html = report._repr_html_()
    assert "e-0" not in html and "e+0" not in html  # no scientific notation anywhere
    assert "<b>Yoruba" not in html and "&lt;b&gt;Yoruba&lt;/b&gt;" in html  # a term is text, not markup
    assert "<i>setting" not in html and "&lt;i&gt;setting" in html
    assert "<u>elder" not in html and "&lt;u&gt;elder" in html
    # probe shares as whole percentages; a share too small to round up is "<1%", never 0.000138
    assert ">54%<" in html and ">46%<" in html and "&lt;1%" in html and "&gt;99%" in html
    assert "0.000138" not in html and "0.5407" not in html
    assert "0.011<" in html and "0.01087" not in html  # other measures: three decimals
    assert html.count("<tr>") == 2 + len(report.terms)  # two header rows (groups, labels), one row per term
    assert "colspan='3'" in html and "95%" in html and "Caveats" in html
    assert D.TINY_NOTE not in html
    assert D.TINY_NOTE in _report(preset="tiny")._repr_html_()


def test_number_formats():
    assert D.decimal(1.5e-07) == "0.000" and D.decimal(-1e-9) == "0.000" and D.decimal(-0.0123) == "-0.012"
    assert D.decimal(float("nan")) == "-" and D.percent(float("nan")) == "-"
    assert D.percent(0.5407) == "54%" and D.percent(0.0) == "0%" and D.percent(1.0) == "100%"
    assert D.percent(3e-6) == "&lt;1%" and D.percent(0.99999) == "&gt;99%"


def test_table_is_rounded_with_named_columns_and_shares_in_percent():
    report = _report(values=SMALL)
    table = report.table()
    assert table.index.names == ["term", "measure"]  # no meaningless 0, 1, 2 ... column
    table = table.reset_index()
    assert list(table.columns) == ["term", "measure", "value", "95% interval: low", "95% interval: high", "unit"]
    assert "e-0" not in table.to_string() and "e-0" not in table.to_html()
    raw = {(row["term"], row["measure"]): row for row in report.rows()}
    for row in table.to_dict("records"):
        share = row["measure"] not in D.MEASURES
        original = raw[row["term"], row["measure"]]
        if share:
            assert row["unit"] == "% of CLIP probability"
            assert row["value"] == round(100 * original["value"], 1)
        else:
            assert row["unit"] == D.UNITS[row["measure"]]
            assert row["value"] == round(original["value"], 3)
        assert row["95% interval: low"] <= row["value"] <= row["95% interval: high"]
    sami = table[table["term"] == "Sami"].set_index("measure")["value"]
    assert sami["<i>setting</i>: street"] == 54.1 and sami["<i>setting</i>: field"] == 0.0
    assert sami["diversity"] == 0.011


def test_a_share_no_image_shows_still_gets_an_honest_interval():
    report = _report(values=SMALL)  # Sami's "field" share is 7.7e-07, over 4 seeds
    field = report.value("Sami", "<i>setting</i>: field")
    assert field["low"] == pytest.approx(0, abs=1e-6)
    assert field["high"] == S.share_interval(7.69295e-07, 4)[1] and field["high"] > 0.45  # not "0% to 0%"
    assert report.value("Sami", "<i>setting</i>: field", level=0.99)["high"] > field["high"]
    narrow, wide = (report.value("Sami", "diversity", level=level) for level in (0.5, 0.95))
    assert wide["low"] < narrow["low"] <= narrow["high"] < wide["high"]  # other measures: the bootstrap's
    assert report.value("Sami", "diversity", level=np.float32(0.5)) == narrow
    for bad in (95, 1.0, 0.2, True, "0.95", float("nan")):
        with pytest.raises(KitError, match="level"):
            report.value("Sami", "diversity", level=bad)
        with pytest.raises(KitError, match="level"):
            report.difference("diversity", "Sami", "<b>Yoruba</b>", level=bad)


def test_table_without_pandas_is_the_same_rows(monkeypatch):
    import sys

    report = _report()
    expected = report.table().reset_index().to_dict("records")
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    rows = report.table()
    assert isinstance(rows, list) and rows == expected


def test_differences_cover_every_pair_and_say_whether_the_seeds_show_one():
    terms = ["Sami", "Yoruba", "Quechua"]
    values = {("Quechua", "diversity"): 0.5, ("Sami", "diversity"): 0.1, ("Yoruba", "diversity"): 0.1}
    report = _report(terms=terms, values=values, spread=0.001)
    table = report.differences("diversity")
    assert table.index.names == ["term A", "term B"]
    table = table.reset_index()
    assert list(table.columns) == [
        "term A",
        "term B",
        "A - B",
        "95% interval: low",
        "95% interval: high",
        "unit",
        "seeds show a difference",
    ]
    assert [(a, b) for a, b in zip(table["term A"], table["term B"])] == [
        ("Sami", "Yoruba"),
        ("Sami", "Quechua"),
        ("Yoruba", "Quechua"),
    ]
    for row in table.to_dict("records"):
        d = report.difference("diversity", row["term A"], row["term B"])
        assert row["A - B"] == round(d["value"], 3)
        assert row["seeds show a difference"] == (d["low"] > 0 or d["high"] < 0)
    assert table["seeds show a difference"].tolist() == [False, True, True]  # Quechua differs, the others do not
    shares = report.differences("attire: dress").reset_index()
    assert set(shares["unit"]) == {"% points"}
    d = report.difference("attire: dress", "Sami", "Yoruba")
    assert shares["A - B"].iloc[0] == round(100 * d["value"], 1)
    with pytest.raises(KitError, match="measure"):
        report.differences("beauty")


def test_figure_titles_leave_room_and_escape_user_text():
    for preset in ("sd-turbo", "tiny"):
        report = _report(preset=preset)
        for name in report.figure_names:
            fig = report.figure(name)
            layout = fig.layout
            lines = layout.title.text.count("<br>") + 1
            # the title hangs from the top, below the toolbar, and the plot starts below its last line
            assert layout.title.yref == "container" and layout.title.yanchor == "top"
            assert layout.margin.t >= layout.title.pad.t + 18 * lines
            # the y-axis title fits along the plot, so it cannot run up into the chart title
            plot_height = layout.height - layout.margin.t - layout.margin.b
            assert len(layout.yaxis.title.text) * 8 < plot_height, (name, layout.yaxis.title.text)
            assert "<u>" not in layout.title.text and "&lt;u&gt;elder" in layout.title.text
            assert ("toy model" in layout.title.text) == (preset == "tiny")
    assert report.figure("attire").layout.yaxis.tickformat == ".0%"
    assert "<i>" not in report.figure("<i>setting</i>").layout.title.text
    bars = report.figure("diversity")
    assert list(bars.data[0].x) == report.terms  # the data keep the terms as given ...
    assert list(bars.layout.xaxis.ticktext) == ["Sami", "&lt;b&gt;Yoruba&lt;/b&gt;"]  # ... shown as text
    assert list(bars.data[0].customdata) == ["Sami", "&lt;b&gt;Yoruba&lt;/b&gt;"]
    # plotly does not wrap titles: a long template is broken into lines, and the plot moves down for them
    long = _report()
    long.settings["template"] = "a formal studio portrait of a {term} elder " + "in soft north light, " * 8
    fig, short = long.figure("diversity"), report.figure("diversity")
    lines = fig.layout.title.text.split("<br>")
    assert len(lines) > 3 and all(len(line) < 130 for line in lines)
    assert fig.layout.margin.t > short.layout.margin.t


# ---------------------------------------------------------------- bad input, before any model work


@pytest.fixture
def no_models(monkeypatch):
    studio = kit.Studio(preset="tiny")

    def fail(*args, **kwargs):
        pytest.fail("a model was loaded for bad input")

    monkeypatch.setattr(studio, "_load", fail)
    monkeypatch.setattr(studio, "render_many", fail)
    return studio


class _NoEmbedder:
    def images(self, *args):
        pytest.fail("CLIP was used for bad input")

    texts = images


@pytest.mark.parametrize(
    "arguments, field",
    [
        (dict(terms=["Sami"]), "terms"),
        (dict(terms="Sami, Yoruba"), "terms"),
        (dict(terms=["Sami", " sami "]), "terms"),
        (dict(terms=["Sami", ""]), "terms"),
        (dict(seeds=[3]), "seeds"),
        (dict(seeds=[3, 3]), "seeds"),
        (dict(seeds=[1, -2]), "seed"),
        (dict(template="a portrait of an elder"), "template"),
        (dict(template="a {term} elder in {style}"), "template"),
        (dict(template="a {term} elder {"), "template"),
        (dict(template=None), "template"),
        (dict(probes={}), "probes"),
        (dict(probes={"attire": ["dress"]}), "probes"),
        (dict(probes={"attire": ["dress", "dress"]}), "probes"),
        (dict(probes={"attire": "dress"}), "probes"),
        (dict(rounds=5), "rounds"),
        (dict(n=4), "seeds"),
        (dict(steps=0), "steps"),
        (dict(size=65), "size"),
    ],
)
def test_bad_input_is_refused_before_any_model_work(no_models, arguments, field):
    call = dict(template="a portrait of a {term} elder", terms=["Sami", "Yoruba"], seeds=range(2))
    call.update(arguments)
    with pytest.raises(KitError, match=field):
        kit.audit(no_models, embedder=_NoEmbedder(), **call)


def test_kit_audit_is_the_function_even_after_importing_its_module(no_models):
    assert kit.audit is A.audit and kit.AuditReport is A.AuditReport
    with pytest.raises(KitError, match="terms"):
        kit.audit(no_models, "a {term}", ["one"], embedder=_NoEmbedder())


# ---------------------------------------------------------------- a tiny audit, end to end


@pytest.fixture(scope="module")
def report():
    studio = kit.Studio(preset="tiny")
    studio.progress_bar = False
    embedder = kit.Embedder(preset="tiny", cache=False)
    return kit.audit(
        studio,
        "a portrait of a {term} elder",
        ["Sami", "Yoruba"],
        seeds=[5, 9, 2],
        probes=PROBES,
        embedder=embedder,
        rounds=200,
    )


def test_every_term_uses_the_same_seeds(report):
    assert report.terms == ["Sami", "Yoruba"] and report.seeds == [5, 9, 2]
    for term in report.terms:
        records = [art.record for art in report.artworks[term]]
        assert [r.seed for r in records] == [5, 9, 2]
        assert {r.prompt for r in records} == {f"a portrait of a {term} elder"}
        assert all(r.extra["audit"]["term"] == term for r in records)
    settings = [
        (r.steps, r.guidance, r.width, r.height) for arts in report.artworks.values() for r in (a.record for a in arts)
    ]
    assert len(set(settings)) == 1
    assert report.vectors.shape[:2] == (2, 3)
    assert np.allclose(np.linalg.norm(report.vectors, axis=-1), 1.0, atol=1e-4)


def test_table_csv_and_settings(report, tmp_path):
    rows = report.rows()
    assert len(rows) == 2 * len(report.measures) == 2 * (3 + 5)
    for row in rows:
        assert row["low"] <= row["high"]
    table = report.table().reset_index()
    assert list(table.columns) == ["term", "measure", "value", "95% interval: low", "95% interval: high", "unit"]
    assert len(table) == len(rows)
    text = report.to_csv(tmp_path / "audit.csv").read_text().splitlines()
    assert text[0] == "term,measure,value,low,high" and len(text) == len(rows) + 1
    assert report.settings["preset"] == "tiny" and report.settings["seeds"] == [5, 9, 2]
    assert report.settings["clip"].startswith("kit-tiny-clip")
    assert "toy world" in report.caveats and "forced choice" in report.caveats
    for term in report.terms:
        shares = [report.value(term, f"age: {label}")["value"] for label in PROBES["age"]]
        assert sum(shares) == pytest.approx(1.0)
    html = report._repr_html_()
    assert "Sami" in html and "Caveats" in html and D.TINY_NOTE in html


def test_figures_and_contact_sheets(report):
    fig = report.figure("diversity")
    (bars,) = fig.data
    assert list(bars.x) == report.terms and bars.error_y.array is not None
    grouped = report.figure("age")
    assert [trace.name for trace in grouped.data] == PROBES["age"]
    with pytest.raises(KitError, match="measure"):
        report.figure("beauty")
    sheet = report.contact_sheet("Yoruba")
    assert sheet.mode in ("RGB", "RGBA") and sheet.width == 3 * 128  # kit.sheet decides the background
    with pytest.raises(KitError, match="term"):
        report.contact_sheet("Inuit")
    diff = report.difference("prompt_distance", "Sami", "Yoruba")
    assert diff["low"] <= diff["high"]


def test_audit_view_state(report):
    from kit.widgets import AuditView
    from kit.widgets.common import png_bytes

    view = AuditView(report)
    assert list(view.measure.options) == report.figure_names
    assert "diversity" in view.figure.layout.title.text
    view.measure.value = "attire"
    assert "attire" in view.figure.layout.title.text and len(view.figure.data) == 2
    assert view.plot.children == (view.figure,)
    view.term.value = "Yoruba"
    assert view.sheet.value == png_bytes(report.contact_sheet("Yoruba"))
    view.show_measure("nonsense")  # shown, not raised; the widget stays usable
    assert "measure must be one of" in view.error
    view.measure.value = "cluster_entropy"
    assert "cluster_entropy" in view.figure.layout.title.text
