"""Representation audits: the statistics on synthetic vectors, input checks, and one tiny audit end to end."""

import importlib
import math

import numpy as np
import pytest

import kit
from kit.errors import KitError

A = importlib.import_module("kit.auditing")  # the module behind kit.audit and kit.AuditReport

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
    assert A.pairwise_distance(np.eye(4)) == pytest.approx(1.0)
    same = np.tile(_unit(np.ones((1, 4))), (5, 1))
    assert A.pairwise_distance(same) == pytest.approx(0.0)
    # resamples leave out pairs of an image with itself: orthonormal rows stay at distance 1
    indices = A.bootstrap_indices(4, rounds=200)
    values = A.pairwise_distance(np.eye(4), indices)
    drew_one = (indices == indices[:, :1]).all(axis=1)
    assert np.allclose(values[~drew_one], 1.0) and np.isnan(values[drew_one]).all()


def test_intervals_contain_the_estimate_and_narrow_with_more_seeds():
    widths = {}
    everything, prompts, probes = _synthetic(n_seeds=64)
    for n_seeds in (8, 64):
        vectors = everything[:, :n_seeds]  # the first 8 seeds, then all 64
        estimates, replicates, _ = A.measure(vectors, prompts, probes, rounds=300)
        for (t, name), value in estimates.items():
            low, high = A.interval(replicates[t, name])
            assert low <= value + 1e-12 and value <= high + 1e-12, (n_seeds, t, name)
        widths[n_seeds] = {name: np.mean([np.subtract(*A.interval(replicates[t, name])[::-1]) for t in range(3)])
                           for name in ("diversity", "prompt_distance", "group: a")}
    for name in widths[8]:
        assert widths[64][name] < widths[8][name] / 1.5, name


def test_bootstrap_is_reproducible_and_shared_by_terms():
    vectors, prompts, probes = _synthetic()
    _, first, labels = A.measure(vectors, prompts, probes, rounds=300)
    _, second, _ = A.measure(vectors, prompts, probes, rounds=300, labels=labels)
    for key in first:
        assert np.array_equal(first[key], second[key], equal_nan=True)
    # identical terms get identical replicates (same resamples), so their paired difference is exactly 0
    twins = np.stack([vectors[0], vectors[0]])
    _, replicates, _ = A.measure(twins, np.stack([prompts[0], prompts[0]]), rounds=300)
    assert np.array_equal(replicates[0, "prompt_distance"], replicates[1, "prompt_distance"])


def test_paired_difference_is_narrower_than_the_separate_intervals():
    vectors, prompts, probes = _synthetic(n_seeds=12, spread=0.1)
    _, replicates, _ = A.measure(vectors, np.stack([prompts[0]] * 3), rounds=1000)
    a, b = replicates[0, "prompt_distance"], replicates[1, "prompt_distance"]
    low, high = A.interval(a - b)
    separate = np.subtract(*A.interval(a)[::-1]) + np.subtract(*A.interval(b)[::-1])
    assert high - low < separate / 2


def test_probe_shares_sum_to_one_per_group():
    vectors, prompts, probes = _synthetic()
    estimates, replicates, _ = A.measure(vectors, prompts, probes, rounds=200)
    for t in range(3):
        assert sum(estimates[t, f"group: {x}"] for x in "abc") == pytest.approx(1.0)
        total = sum(replicates[t, f"group: {x}"] for x in "abc")
        assert np.allclose(total, 1.0)
    p = A.probe_probabilities(vectors[0], probes["group"][1])
    assert p.shape == (8, 3) and np.allclose(p.sum(axis=1), 1.0) and (p >= 0).all()


def test_temperature_sharpens_probe_probabilities():
    images = _unit(np.array([[1.0, 0.2], [0.9, 0.4]]))
    labels = _unit(np.array([[1.0, 0.0], [0.0, 1.0]]))
    soft = A.probe_probabilities(images, labels, temperature=1)
    sharp = A.probe_probabilities(images, labels, temperature=100)
    assert (sharp[:, 0] > soft[:, 0]).all() and sharp[0, 0] > 0.99


def test_entropy_bounds():
    assert A.entropy_bits([5, 0, 0]) == 0
    assert A.entropy_bits([2, 2, 2, 2]) == pytest.approx(2.0)
    vectors, prompts, _ = _synthetic(n_terms=4)
    estimates, replicates, labels = A.measure(vectors, prompts, rounds=200)
    assert labels.shape == (4, 8) and set(np.unique(labels)) <= set(range(4))
    for t in range(4):
        assert 0 <= estimates[t, "cluster_entropy"] <= math.log2(4) + 1e-9
        assert (replicates[t, "cluster_entropy"] >= 0).all()
        assert (replicates[t, "cluster_entropy"] <= math.log2(4) + 1e-9).all()


# ---------------------------------------------------------------- bad input, before any model work


@pytest.fixture
def no_models(monkeypatch):
    studio = kit.Studio(preset="tiny")

    def fail(*args, **kwargs):
        pytest.fail("a model was loaded for bad input")

    monkeypatch.setattr(studio, "_from_pretrained", fail)
    monkeypatch.setattr(studio, "render_many", fail)
    return studio


class _NoEmbedder:
    def images(self, *args):
        pytest.fail("CLIP was used for bad input")

    texts = images


@pytest.mark.parametrize("arguments, field", [
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
])
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
    return kit.audit(studio, "a portrait of a {term} elder", ["Sami", "Yoruba"], seeds=[5, 9, 2],
                     probes=PROBES, embedder=embedder, rounds=200)


def test_every_term_uses_the_same_seeds(report):
    assert report.terms == ["Sami", "Yoruba"] and report.seeds == [5, 9, 2]
    for term in report.terms:
        records = [art.record for art in report.artworks[term]]
        assert [r.seed for r in records] == [5, 9, 2]
        assert {r.prompt for r in records} == {f"a portrait of a {term} elder"}
        assert all(r.extra["audit"]["term"] == term for r in records)
    settings = [(r.steps, r.guidance, r.width, r.height) for arts in report.artworks.values() for r in
                (a.record for a in arts)]
    assert len(set(settings)) == 1
    assert report.vectors.shape[:2] == (2, 3)
    assert np.allclose(np.linalg.norm(report.vectors, axis=-1), 1.0, atol=1e-4)


def test_table_csv_and_settings(report, tmp_path):
    rows = report.rows()
    assert len(rows) == 2 * len(report.measures) == 2 * (3 + 5)
    for row in rows:
        assert row["low"] <= row["high"]
    table = report.table()
    assert list(table.columns) == ["term", "measure", "value", "low", "high"]
    text = report.to_csv(tmp_path / "audit.csv").read_text().splitlines()
    assert text[0] == "term,measure,value,low,high" and len(text) == len(rows) + 1
    assert report.settings["preset"] == "tiny" and report.settings["seeds"] == [5, 9, 2]
    assert report.settings["clip"].startswith("kit-tiny-clip")
    assert "random weights" in report.caveats and "forced choice" in report.caveats
    for term in report.terms:
        shares = [report.value(term, f"age: {label}")["value"] for label in PROBES["age"]]
        assert sum(shares) == pytest.approx(1.0)
    html = report._repr_html_()
    assert "Sami" in html and "Caveats" in html


def test_figures_and_contact_sheets(report):
    fig = report.figure("diversity")
    bars, = fig.data
    assert list(bars.x) == report.terms and bars.error_y.array is not None
    grouped = report.figure("age")
    assert [trace.name for trace in grouped.data] == PROBES["age"]
    with pytest.raises(KitError, match="measure"):
        report.figure("beauty")
    sheet = report.contact_sheet("Yoruba")
    assert sheet.mode == "RGB" and sheet.width == 3 * 128
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
