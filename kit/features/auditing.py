"""Representation audits: one prompt template, several terms, the same seeds for every term.

    report = kit.audit(studio, "a portrait of a {term} elder", ["Yoruba", "Sami", "Quechua"],
                       seeds=range(8), probes={"attire": ["traditional dress", "western suit"]})
    report                         # in a notebook: one rounded table, value and 95% interval per cell
    report.table()                 # rounded, one row per term and measure (probe shares in %)
    report.differences("diversity")  # every pair of terms: paired difference and its interval
    report.rows()                  # the raw numbers (also what to_csv writes)
    report.figure("diversity")     # plotly bars with error bars
    report.contact_sheet("Sami")   # what the numbers are about

Paired design: term A and term B are drawn from the same seeds, so they start from the same
noise and a difference between them is not seed luck. Every image is embedded with the
preset's CLIP and measured: diversity, prompt distance, CLIP probe shares and cluster entropy,
each with a 95% interval over seeds (`AuditReport.difference` gives the paired interval of a
difference between two terms).

Here: the inputs checked at the door, `audit` (make the images, embed them, measure), and the
`AuditReport` that holds the numbers. What each measure is and how its interval is drawn is in
`kit.features.audit_stats` (numpy only); how a report is shown (chart, notebook table, caveats) in
`kit.features.audit_display`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import checks
from ..errors import KitError
from ..files import write_atomic
from . import audit_display, audit_stats
from .audit_display import CAVEATS, MEASURES, NOTES, SHARE_UNIT, UNITS, frame, rounded
from .audit_stats import BOOTSTRAP_SEED, KMEANS_SEED, LEVEL, ROUNDS, TEMPERATURE, interval, share_interval

MAX_IMAGES = 4096  # terms x seeds: what one audit may make, and what bounds its bootstrap's memory


# ---------------------------------------------------------------- checking inputs


def check_template(template) -> str:
    """The template text; it must hold {term} and no other braces."""
    if not isinstance(template, str):
        raise KitError(f"template must be text with a {{term}} placeholder, got {type(template).__name__}")
    template = " ".join(template.split())
    if "{term}" not in template:
        raise KitError(f"template must contain {{term}}, e.g. 'a portrait of a {{term}} elder', got {template!r}")
    rest = template.replace("{term}", "")
    if "{" in rest or "}" in rest:
        raise KitError(f"template may hold no braces besides {{term}}, got {template!r}")
    return template


def check_terms(terms) -> list[str]:
    """At least two distinct, non-empty terms (whitespace tidied; duplicates compared ignoring case)."""
    if isinstance(terms, str) or not hasattr(terms, "__iter__"):
        raise KitError(f"terms must be a list of words or phrases, got {type(terms).__name__}")
    clean, seen = [], set()
    for index, term in enumerate(terms):
        if not isinstance(term, str) or not term.strip():
            raise KitError(f"terms[{index}] must be a non-empty word or phrase, got {term!r}")
        term = " ".join(term.split())
        if term.casefold() in seen:
            raise KitError(f"terms has {term!r} twice: each term is audited once")
        seen.add(term.casefold())
        clean.append(term)
    if len(clean) < 2:
        raise KitError(f"terms needs at least two terms to compare, got {len(clean)}")
    return clean


def check_seeds(seeds) -> list[int]:
    """At least two distinct seeds."""
    from ..core.latents import check_seed

    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise KitError(f"seeds must be a list or range of integers, got {type(seeds).__name__}")
    seeds = [check_seed(seed) for seed in seeds]
    if len(seeds) < 2:
        raise KitError(f"seeds needs at least two seeds for an interval, got {len(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise KitError("seeds has repeats: each seed once, or the pairs would count twice")
    return seeds


def check_probes(probes) -> dict[str, list[str]]:
    """{group: [at least two distinct labels]}; None means no probes."""
    if probes is None:
        return {}
    if not isinstance(probes, dict) or not probes:
        raise KitError(
            "probes must be None or a non-empty dict of groups, e.g. {'attire': ['traditional dress', 'western suit']}"
        )
    clean = {}
    for group, labels in probes.items():
        if not isinstance(group, str) or not group.strip():
            raise KitError(f"probes: group names must be non-empty text, got {group!r}")
        if isinstance(labels, str) or not hasattr(labels, "__iter__"):
            raise KitError(f"probes[{group!r}] must be a list of labels, got {type(labels).__name__}")
        labels = [" ".join(label.split()) if isinstance(label, str) else label for label in labels]
        if any(not isinstance(label, str) or not label for label in labels):
            raise KitError(f"probes[{group!r}] labels must be non-empty text, got {labels!r}")
        if len(set(labels)) < 2 or len(set(labels)) != len(labels):
            raise KitError(f"probes[{group!r}] needs at least two different labels (no repeats), got {labels!r}")
        clean[group.strip()] = labels
    return clean


# ---------------------------------------------------------------- the audit


def audit(
    studio,
    template,
    terms,
    seeds=range(8),
    probes=None,
    embedder=None,
    *,
    rounds: int = ROUNDS,
    run=None,
    on_step=None,
    **options,
) -> AuditReport:
    """Generate `template` filled with each term, with the same seeds for every term, and measure.

    probes: optional {group: [labels]} for zero-shot CLIP probes, e.g.
    {"attire": ["traditional dress", "western suit"]}. embedder: a `kit.Embedder`
    (default: the studio preset's CLIP). options: generate settings for every image
    (style, negative, steps, guidance, size, preview). All input is checked before any model work.
    run / on_step: a `kit.Run` that can stop the audit (it then raises `kit.Stopped` with the
    images made), or a progress callback.
    """
    template = check_template(template)
    terms = check_terms(terms)
    seeds = check_seeds(seeds)
    probes = check_probes(probes)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 100 <= rounds <= 100_000:
        raise KitError(f"rounds (bootstrap) must be a whole number from 100 to 100000, got {rounds!r}")
    if "n" in options or "seed" in options:
        raise KitError("seeds sets which images are made: give seeds=..., not n or seed")
    if len(terms) * len(seeds) > MAX_IMAGES:
        raise KitError(
            f"{len(terms)} terms x {len(seeds)} seeds is {len(terms) * len(seeds)} images; "
            f"at most {MAX_IMAGES} per audit"
        )
    records = []
    for term in terms:
        for seed in seeds:
            (record,) = studio.plan(template.replace("{term}", term), seed=seed, **options)
            record.extra["audit"] = {"term": term, "template": template}
            records.append(record)

    if embedder is None:
        from ..maps.embed import Embedder

        embedder = Embedder(preset=studio.preset, device=studio.device)
    artworks = studio.render_many(records, on_step=on_step, run=run)
    vectors = np.asarray(embedder.images([art.image for art in artworks]), dtype=np.float32)
    if len(vectors) != len(records):
        raise KitError(f"CLIP could embed only {len(vectors)} of {len(records)} images")
    # the text each term's images were made from (a style, when given, wraps the filled template)
    prompts = {term: records[i * len(seeds)].prompt for i, term in enumerate(terms)}
    prompt_vectors = np.asarray(embedder.texts([prompts[term] for term in terms]))
    probe_vectors = {group: (labels, np.asarray(embedder.texts(labels))) for group, labels in probes.items()}
    vectors = vectors.reshape(len(terms), len(seeds), -1)
    estimates, replicates, labels = audit_stats.measure(vectors, prompt_vectors, probe_vectors, rounds=rounds)

    first = records[0]
    settings = {
        "template": template,
        "terms": terms,
        "seeds": seeds,
        "probes": probes,
        "preset": studio.preset.name,
        "model": first.model,
        "clip": getattr(embedder, "model_id", ""),
        "steps": first.steps,
        "guidance": first.guidance,
        "size": [first.width, first.height],
        "style": first.style,
        "negative": first.negative,
        "decoder": first.decoder,
        "rounds": rounds,
        "bootstrap_seed": BOOTSTRAP_SEED,
        "kmeans_seed": KMEANS_SEED,
        "temperature": TEMPERATURE,
        "level": LEVEL,
        "kit_version": first.kit_version,
    }
    by_term = {term: artworks[i * len(seeds) : (i + 1) * len(seeds)] for i, term in enumerate(terms)}
    return AuditReport(
        settings=settings,
        prompts=prompts,
        artworks=by_term,
        vectors=vectors,
        estimates={(terms[t], name): value for (t, name), value in estimates.items()},
        replicates={(terms[t], name): value for (t, name), value in replicates.items()},
        clusters={term: labels[i].tolist() for i, term in enumerate(terms)},
    )


# ---------------------------------------------------------------- the report


@dataclass(eq=False)
class AuditReport:
    """The outcome of `kit.audit`: settings, images, embeddings and every measure with its interval."""

    settings: dict
    prompts: dict  # term -> the prompt its images were made from (after any style template)
    artworks: dict  # term -> list of Artworks, in seed order
    vectors: np.ndarray  # (terms, seeds, dim) CLIP image embeddings
    estimates: dict  # (term, measure) -> value
    replicates: dict = field(repr=False, default_factory=dict)  # (term, measure) -> bootstrap values
    clusters: dict = field(default_factory=dict)  # term -> k-means cluster of each seed's image
    caveats: str = CAVEATS

    def __post_init__(self):
        note = NOTES.get(self.settings.get("preset"))
        if note and note not in self.caveats:
            self.caveats = f"{note}\n{self.caveats}"

    @property
    def terms(self) -> list[str]:
        return list(self.settings["terms"])

    @property
    def seeds(self) -> list[int]:
        return list(self.settings["seeds"])

    @property
    def probes(self) -> dict:
        return dict(self.settings.get("probes") or {})

    @property
    def measures(self) -> list[str]:
        """Measure names, in table order."""
        names = ["diversity", "prompt_distance", "cluster_entropy"]
        names += [f"{group}: {label}" for group, labels in self.probes.items() for label in labels]
        return names

    @property
    def figure_names(self) -> list[str]:
        """What `figure` draws: each plain measure, and each probe group as one grouped chart."""
        return ["diversity", "prompt_distance", "cluster_entropy", *self.probes]

    def _check(self, measure=None, term=None):
        if measure is not None and measure not in self.measures:
            raise KitError(f"measure must be one of {', '.join(self.measures)}, got {measure!r}")
        if term is not None and term not in self.terms:
            raise KitError(f"term must be one of {', '.join(self.terms)}, got {term!r}")

    def value(self, term: str, measure: str, level: float | None = None) -> dict:
        """{"value", "low", "high"} for one term and measure; the interval at `level` (default:
        the report's, 95%). A probe share's interval is `share_interval` over the seeds, any
        other's the percentile bootstrap."""
        self._check(measure, term)
        level = self._level(level)
        value = self.estimates[term, measure]
        if self.is_share(measure):
            low, high = share_interval(value, len(self.seeds), level)
        else:
            low, high = interval(self.replicates[term, measure], level)
        return {"value": value, "low": low, "high": high}

    def _level(self, level) -> float:
        if level is None:
            return self.settings["level"]
        return checks.number(level, "level (0.95 for 95%)", 0.5, 0.9999)

    def difference(self, measure: str, a: str, b: str, level: float | None = None) -> dict:
        """Term `a` minus term `b` on `measure`, with its paired bootstrap interval (at `level`,
        default the report's).

        Both terms' replicates come from the same seed resamples, so their difference per
        round is a paired difference; an interval that excludes 0 is a difference these seeds
        support (for this model and template).
        """
        self._check(measure, a)
        self._check(term=b)
        rounds = self.replicates[a, measure] - self.replicates[b, measure]
        low, high = interval(rounds, self._level(level))
        return {"value": self.estimates[a, measure] - self.estimates[b, measure], "low": low, "high": high}

    def rows(self) -> list[dict]:
        """One dict per term and measure: term, measure, value, low, high."""
        return [
            {"term": term, "measure": name, **self.value(term, name)} for term in self.terms for name in self.measures
        ]

    def is_share(self, measure: str) -> bool:
        """Whether `measure` is a probe share (a probability from 0 to 1, shown in %)."""
        return measure not in MEASURES

    def _interval_name(self, end: str) -> str:
        return f"{self.settings['level']:.0%} interval: {end}"

    def table(self, digits: int = 3):
        """A table to read: one row per term and measure, numbers rounded.

        Columns: term, measure (the DataFrame's index), value, "95% interval: low",
        "95% interval: high", unit. Probe shares are in percent (one decimal), the other
        measures rounded to `digits` decimals. A pandas DataFrame when pandas is installed,
        else a list of dicts with the same keys. The raw numbers are in `rows()` and `to_csv`.
        """
        low, high = self._interval_name("low"), self._interval_name("high")
        rows = []
        for row in self.rows():
            share = self.is_share(row["measure"])
            scale, places = (100.0, 1) if share else (1.0, digits)
            rows.append(
                {
                    "term": row["term"],
                    "measure": row["measure"],
                    "value": rounded(row["value"] * scale, places),
                    low: rounded(row["low"] * scale, places),
                    high: rounded(row["high"] * scale, places),
                    "unit": SHARE_UNIT if share else UNITS[row["measure"]],
                }
            )
        return frame(rows, ["term", "measure", "value", low, high, "unit"], index=["term", "measure"])

    def differences(self, measure: str, digits: int = 3):
        """Every pair of terms on `measure`: the paired difference A - B and its interval, rounded.

        Columns: term A, term B (the DataFrame's index), "A - B", "95% interval: low", "95% interval: high", unit,
        "seeds show a difference" (True when the interval excludes 0). Probe shares are in
        percentage points. A DataFrame when pandas is installed, else a list of dicts.
        """
        self._check(measure)
        share = self.is_share(measure)
        scale, places = (100.0, 1) if share else (1.0, digits)
        low, high = self._interval_name("low"), self._interval_name("high")
        rows = []
        for i, a in enumerate(self.terms):
            for b in self.terms[i + 1 :]:
                d = self.difference(measure, a, b)
                rows.append(
                    {
                        "term A": a,
                        "term B": b,
                        "A - B": rounded(d["value"] * scale, places),
                        low: rounded(d["low"] * scale, places),
                        high: rounded(d["high"] * scale, places),
                        "unit": "% points" if share else UNITS[measure],
                        "seeds show a difference": bool(d["low"] > 0 or d["high"] < 0),
                    }
                )
        return frame(
            rows,
            ["term A", "term B", "A - B", low, high, "unit", "seeds show a difference"],
            index=["term A", "term B"],
        )

    def to_csv(self, path, *, exist: str = "error") -> Path:
        """Write the table as CSV (atomically); returns the path written.

        exist: when the file is there: "error" (the default), "replace" it, or "number" (``name-1.csv``).
        """
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=["term", "measure", "value", "low", "high"])
        writer.writeheader()
        writer.writerows(self.rows())
        return write_atomic(Path(path).expanduser(), text.getvalue().encode("utf-8"), exist=exist)

    def figure(self, measure: str = "diversity"):
        """A plotly figure: one bar per term with its 95% interval (a probe group: bars per label)."""
        if measure not in self.probes:
            self._check(measure)
        return audit_display.figure(self, measure)

    def contact_sheet(self, term: str, cell: int = 128):
        """The term's images in seed order, labelled with their seeds and k-means clusters."""
        from PIL import Image

        from ..sheet import contact_sheet

        self._check(term=term)
        arts = self.artworks[term]
        labels = [f"seed {a.record.seed} · c{c}" for a, c in zip(arts, self.clusters.get(term, [""] * len(arts)))]
        side = cell - 4
        images = [
            a.image if max(a.image.size) >= side else a.image.resize((side, side), Image.NEAREST) for a in arts
        ]  # small images (the tiny preset's 64 px) are enlarged, pixels kept sharp
        return contact_sheet(images, labels=labels, columns=min(len(arts), 8), cell=cell, title=self.prompts[term])

    def __repr__(self):
        s = self.settings
        return (
            f"AuditReport({s['template']!r}, {len(self.terms)} terms x {len(self.seeds)} seeds, "
            f"preset={s['preset']!r}, {len(self.measures)} measures)"
        )

    def _repr_html_(self) -> str:
        """One table to read: a row per term, a column per measure, each cell the value and its interval."""
        return audit_display.html(self)
