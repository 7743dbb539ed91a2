"""Representation audits: one prompt template, several terms, the same seeds for every term.

    report = kit.audit(studio, "a portrait of a {term} elder", ["Yoruba", "Sami", "Quechua"],
                       seeds=range(8), probes={"attire": ["traditional dress", "western suit"]})
    report.table()                 # term, measure, value, low, high (95% bootstrap CI)
    report.figure("diversity")     # plotly bars with error bars
    report.contact_sheet("Sami")   # what the numbers are about

Paired design: term A and term B are drawn from the same seeds, so they start from the same
noise and a difference between them is not seed luck. Every image is embedded with the
preset's CLIP and measured:

- ``diversity``: mean pairwise cosine distance between a term's images (0 = all alike).
- ``prompt_distance``: mean of 1 - cosine between each image and its filled prompt's text
  embedding ("a portrait of a Sami elder"). The full prompt, not the bare term, because it is
  what the model was asked to draw and a lone word is a weak CLIP query: a larger distance
  means the model followed that term's prompt less closely.
- ``"<group>: <label>"``: zero-shot CLIP probe shares. For each image, a softmax over its
  similarities to a probe group's label texts (temperature 100, as CLIP does); a share is the
  mean probability over the term's images, so a group's shares sum to 1 for each term.
- ``cluster_entropy``: k-means (k = number of terms) over all images together; the entropy in
  bits of how a term's images spread over the clusters (0 = all in one cluster, at most
  log2(k)). Low entropy for one term and high for others hints that the model draws that term
  in one look.

Confidence intervals: 95% percentile bootstrap over seeds. Each round resamples the seed
indices with replacement, the same resample for every term (paired), with a fixed RNG seed, so
a report is reproducible. `AuditReport.difference` gives the paired interval of a difference.
"""

from __future__ import annotations

import csv
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import KitError

ROUNDS = 1000  # bootstrap rounds
BOOTSTRAP_SEED = 0
KMEANS_SEED = 0
TEMPERATURE = 100.0  # CLIP's logit scale
LEVEL = 0.95
MAX_IMAGES = 4096

MEASURES = {  # measure -> what its number means (axis titles and the report)
    "diversity": "mean pairwise cosine distance between the term's images",
    "prompt_distance": "mean 1 - cosine(image, its prompt's text)",
    "cluster_entropy": "entropy (bits) of the term's images over the k-means clusters",
}

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

TINY_NOTE = ("This report used the tiny preset: random weights for both the image model and CLIP, "
             "so every number here is noise and means nothing about any term.")


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
    from .latents import check_seed

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
        raise KitError("probes must be None or a non-empty dict of groups, e.g. "
                       "{'attire': ['traditional dress', 'western suit']}")
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


# ---------------------------------------------------------------- statistics (numpy only)


def bootstrap_indices(n: int, rounds: int = ROUNDS, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(rounds, n) seed indices drawn with replacement: row r is resample r, shared by all terms."""
    return np.random.default_rng(seed).integers(0, n, size=(rounds, n))


def interval(replicates, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (NaN replicates are ignored)."""
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(np.asarray(replicates, dtype=np.float64), [tail, 100 - tail])
    return float(low), float(high)


def pairwise_distance(vectors: np.ndarray, indices: np.ndarray | None = None):
    """Mean cosine distance over pairs of different images.

    With `indices` ((rounds, n) resamples) one value per resample: pairs that are the same
    image drawn twice are left out, so a resample does not look less diverse than it is
    (NaN when a resample drew a single image n times).
    """
    distance = 1.0 - vectors @ vectors.T
    if indices is None:
        n = len(vectors)
        return float(distance[~np.eye(n, dtype=bool)].mean())
    pairs = distance[indices[:, :, None], indices[:, None, :]]
    different = indices[:, :, None] != indices[:, None, :]
    counts = different.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, (pairs * different).sum(axis=(1, 2)) / np.maximum(counts, 1), np.nan)


def probe_probabilities(vectors: np.ndarray, label_vectors: np.ndarray, temperature: float = TEMPERATURE):
    """(images, labels) softmax over each image's cosine similarities to the labels."""
    logits = temperature * (vectors @ label_vectors.T)
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def entropy_bits(counts) -> np.ndarray:
    """Shannon entropy in bits of count vectors (the last axis), 0 log 0 = 0."""
    counts = np.asarray(counts, dtype=np.float64)
    p = counts / counts.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(np.where(p > 0, p, 1)), 0.0)
    return terms.sum(axis=-1)


def cluster(vectors: np.ndarray, k: int, seed: int = KMEANS_SEED) -> np.ndarray:
    """k-means cluster labels of the rows (sklearn, fixed seed)."""
    import warnings

    from sklearn.cluster import KMeans

    with warnings.catch_warnings():
        # near-identical vectors (the tiny preset's) give fewer distinct clusters than k: not an error
        warnings.simplefilter("ignore")
        return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(vectors.astype(np.float64))


def measure(vectors: np.ndarray, prompt_vectors: np.ndarray, probes: dict | None = None,
            rounds: int = ROUNDS, seed: int = BOOTSTRAP_SEED, labels: np.ndarray | None = None):
    """Every measure with its bootstrap replicates, from embeddings alone.

    vectors: (terms, seeds, dim) unit image embeddings, the same seed order for every term.
    prompt_vectors: (terms, dim) text embeddings of each term's prompt.
    probes: {group: (labels, (len(labels), dim) label vectors)}.
    labels: (terms, seeds) cluster labels; k-means is run when None.
    Returns (estimates, replicates, labels): {(term index, measure): value} and
    {(term index, measure): (rounds,) array}.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    n_terms, n_seeds, _ = vectors.shape
    indices = bootstrap_indices(n_seeds, rounds, seed)
    if labels is None:
        labels = cluster(vectors.reshape(n_terms * n_seeds, -1), n_terms).reshape(n_terms, n_seeds)
    estimates, replicates = {}, {}

    for t in range(n_terms):
        images = vectors[t]
        estimates[t, "diversity"] = pairwise_distance(images)
        replicates[t, "diversity"] = pairwise_distance(images, indices)

        distance = 1.0 - images @ np.asarray(prompt_vectors[t], dtype=np.float64)
        estimates[t, "prompt_distance"] = float(distance.mean())
        replicates[t, "prompt_distance"] = distance[indices].mean(axis=1)

        for group, (names, label_vectors) in (probes or {}).items():
            p = probe_probabilities(images, np.asarray(label_vectors, dtype=np.float64))
            for j, name in enumerate(names):
                estimates[t, f"{group}: {name}"] = float(p[:, j].mean())
                replicates[t, f"{group}: {name}"] = p[indices, j].mean(axis=1)

        one_hot = labels[t][:, None] == np.arange(n_terms)
        estimates[t, "cluster_entropy"] = float(entropy_bits(one_hot.sum(axis=0)))
        replicates[t, "cluster_entropy"] = entropy_bits(one_hot[indices].sum(axis=1))
    return estimates, replicates, labels


# ---------------------------------------------------------------- the audit


def audit(studio, template, terms, seeds=range(8), probes=None, embedder=None, *, rounds: int = ROUNDS,
          **options) -> AuditReport:
    """Generate `template` filled with each term, with the same seeds for every term, and measure.

    probes: optional {group: [labels]} for zero-shot CLIP probes, e.g.
    {"attire": ["traditional dress", "western suit"]}. embedder: a `kit.Embedder`
    (default: the studio preset's CLIP). options: generate settings for every image
    (style, negative, steps, guidance, size, preview). All input is checked before any model work.
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
        raise KitError(f"{len(terms)} terms x {len(seeds)} seeds is {len(terms) * len(seeds)} images; "
                       f"at most {MAX_IMAGES} per audit")
    records = []
    for term in terms:
        for seed in seeds:
            record, = studio.plan(template.replace("{term}", term), seed=seed, **options)
            record.extra["audit"] = {"term": term, "template": template}
            records.append(record)

    if embedder is None:
        from .embed import Embedder

        embedder = Embedder(preset=studio.preset, device=studio.device)
    artworks = studio.render_many(records)
    if len(artworks) != len(records):
        raise KitError(f"the audit was stopped: {len(artworks)} of {len(records)} images were made")
    vectors = np.asarray(embedder.images([art.image for art in artworks]), dtype=np.float32)
    if len(vectors) != len(records):
        raise KitError(f"CLIP could embed only {len(vectors)} of {len(records)} images")
    # the text each term's images were made from (a style, when given, wraps the filled template)
    prompts = {term: records[i * len(seeds)].prompt for i, term in enumerate(terms)}
    prompt_vectors = np.asarray(embedder.texts([prompts[term] for term in terms]))
    probe_vectors = {group: (labels, np.asarray(embedder.texts(labels))) for group, labels in probes.items()}
    vectors = vectors.reshape(len(terms), len(seeds), -1)
    estimates, replicates, labels = measure(vectors, prompt_vectors, probe_vectors, rounds=rounds)

    first = records[0]
    settings = {
        "template": template, "terms": terms, "seeds": seeds, "probes": probes,
        "preset": studio.preset.name, "model": first.model, "clip": getattr(embedder, "model_id", ""),
        "steps": first.steps, "guidance": first.guidance, "size": [first.width, first.height],
        "style": first.style, "negative": first.negative, "decoder": first.decoder,
        "rounds": rounds, "bootstrap_seed": BOOTSTRAP_SEED, "kmeans_seed": KMEANS_SEED,
        "temperature": TEMPERATURE, "level": LEVEL, "kit_version": first.kit_version,
    }
    by_term = {term: artworks[i * len(seeds):(i + 1) * len(seeds)] for i, term in enumerate(terms)}
    return AuditReport(settings=settings, prompts=prompts, artworks=by_term, vectors=vectors,
                       estimates={(terms[t], name): value for (t, name), value in estimates.items()},
                       replicates={(terms[t], name): value for (t, name), value in replicates.items()},
                       clusters={term: labels[i].tolist() for i, term in enumerate(terms)})


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
        if self.settings.get("preset") == "tiny" and TINY_NOTE not in self.caveats:
            self.caveats = f"{TINY_NOTE}\n{self.caveats}"

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

    def value(self, term: str, measure: str) -> dict:
        """{"value", "low", "high"} for one term and measure."""
        self._check(measure, term)
        low, high = interval(self.replicates[term, measure], self.settings["level"])
        return {"value": self.estimates[term, measure], "low": low, "high": high}

    def difference(self, measure: str, a: str, b: str) -> dict:
        """Term `a` minus term `b` on `measure`, with its paired bootstrap interval.

        Both terms' replicates come from the same seed resamples, so their difference per
        round is a paired difference; an interval that excludes 0 is a difference these seeds
        support (for this model and template).
        """
        self._check(measure, a)
        self._check(term=b)
        rounds = self.replicates[a, measure] - self.replicates[b, measure]
        low, high = interval(rounds, self.settings["level"])
        return {"value": self.estimates[a, measure] - self.estimates[b, measure], "low": low, "high": high}

    def rows(self) -> list[dict]:
        """One dict per term and measure: term, measure, value, low, high."""
        return [{"term": term, "measure": name, **self.value(term, name)}
                for term in self.terms for name in self.measures]

    def table(self):
        """The rows as a pandas DataFrame when pandas is installed, else a list of dicts."""
        try:
            import pandas as pd
        except ImportError:
            return self.rows()
        return pd.DataFrame(self.rows(), columns=["term", "measure", "value", "low", "high"])

    def to_csv(self, path) -> Path:
        """Write the table as CSV; returns the path."""
        path = Path(path).expanduser()
        with open(path, "w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=["term", "measure", "value", "low", "high"])
            writer.writeheader()
            writer.writerows(self.rows())
        return path

    def figure(self, measure: str = "diversity"):
        """A plotly figure: one bar per term with its 95% interval (a probe group: bars per label)."""
        import plotly.graph_objects as go

        if measure in self.probes:
            labels = self.probes[measure]
            fig = go.Figure([self._bars(f"{measure}: {label}", name=label) for label in labels])
            fig.update_layout(barmode="group", yaxis_title=f"mean CLIP probability ({measure})",
                              yaxis_range=[0, 1], legend_title_text=measure)
        else:
            self._check(measure)
            fig = go.Figure([self._bars(measure, name=measure)])
            fig.update_layout(yaxis_title=MEASURES.get(measure, f"mean CLIP probability ({measure})"),
                              showlegend=False)
        seeds = len(self.seeds)
        fig.update_layout(title=f"{measure}: '{self.settings['template']}', {seeds} paired seeds, "
                                f"{self.settings['level']:.0%} bootstrap intervals",
                          xaxis_title="term", template="plotly_white", height=420)
        return fig

    def _bars(self, measure, name):
        import plotly.graph_objects as go

        values = [self.value(term, measure) for term in self.terms]
        return go.Bar(x=self.terms, y=[v["value"] for v in values], name=name,
                      error_y=dict(type="data", symmetric=False,
                                   array=[v["high"] - v["value"] for v in values],
                                   arrayminus=[v["value"] - v["low"] for v in values]),
                      hovertemplate="%{x}: %{y:.3f}<extra>" + html.escape(name) + "</extra>")

    def contact_sheet(self, term: str, cell: int = 128):
        """The term's images in seed order, labelled with their seeds and k-means clusters."""
        from PIL import Image

        from .sheet import contact_sheet

        self._check(term=term)
        arts = self.artworks[term]
        labels = [f"seed {a.record.seed} · c{c}" for a, c in zip(arts, self.clusters.get(term, [""] * len(arts)))]
        side = cell - 4
        images = [a.image if max(a.image.size) >= side else a.image.resize((side, side), Image.NEAREST)
                  for a in arts]  # small images (the tiny preset's 64 px) are enlarged, pixels kept sharp
        return contact_sheet(images, labels=labels, columns=min(len(arts), 8), cell=cell, title=self.prompts[term])

    def __repr__(self):
        s = self.settings
        return (f"AuditReport({s['template']!r}, {len(self.terms)} terms x {len(self.seeds)} seeds, "
                f"preset={s['preset']!r}, {len(self.measures)} measures)")

    def _repr_html_(self) -> str:
        s = self.settings
        head = "".join(f"<th>{html.escape(name)}</th>" for name in self.measures)
        body = []
        for term in self.terms:
            cells = []
            for name in self.measures:
                v = self.value(term, name)
                cells.append(f"<td>{v['value']:.3f}<br><small>[{v['low']:.3f}, {v['high']:.3f}]</small></td>")
            body.append(f"<tr><th>{html.escape(term)}</th>{''.join(cells)}</tr>")
        settings = (f"preset <code>{html.escape(s['preset'])}</code>, CLIP <code>{html.escape(s['clip'])}</code>, "
                    f"{len(self.seeds)} paired seeds, {s['steps']} steps, {s['size'][0]}x{s['size'][1]} px, "
                    f"{s['rounds']} bootstrap rounds")
        return (f"<div><b>Audit</b> of <code>{html.escape(s['template'])}</code>: {settings}"
                f"<table style='font-size:small'><tr><th>term</th>{head}</tr>{''.join(body)}</table>"
                f"<small>value [{s['level']:.0%} interval]</small>"
                f"<details><summary>Caveats</summary><pre>{html.escape(self.caveats)}</pre></details></div>")
