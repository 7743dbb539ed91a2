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

Confidence intervals, 95%: a term's probe share has a Wilson score interval over its seeds
(`share_interval`); the other measures, and every difference between two terms, a percentile
bootstrap over seeds. Each bootstrap round resamples the seed indices with replacement, the same
resample for every term (paired), with a fixed RNG seed, so a report is reproducible.
`AuditReport.difference` gives the paired interval of a difference.
"""

from __future__ import annotations

import csv
import html
import io
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import checks, plots
from .errors import KitError
from .files import write_atomic

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


# ---------------------------------------------------------------- statistics (numpy only)


BLOCK_BYTES = 1 << 20  # the bootstrap works through its resamples in blocks of about this many bytes


def bootstrap_indices(n: int, rounds: int = ROUNDS, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(rounds, n) seed indices drawn with replacement: row r is resample r, shared by all terms.

    All rounds at once (rounds x n integers): `measure` draws the same resamples in blocks
    with `bootstrap_counts` instead.
    """
    return np.random.default_rng(seed).integers(0, n, size=(rounds, n))


def resample_counts(indices: np.ndarray, n: int) -> np.ndarray:
    """(rows, n) resampled indices -> (rows, n) float64 counts: how often each index was drawn."""
    indices = np.asarray(indices)
    rows = len(indices)
    flat = (indices + n * np.arange(rows)[:, None]).ravel()  # row r's indices moved to r*n ... r*n + n-1
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


def bootstrap_counts(n: int, rounds: int = ROUNDS, seed: int = BOOTSTRAP_SEED, rows: int | None = None):
    """The resamples of `bootstrap_indices(n, rounds, seed)` as counts, `rows` rounds at a time.

    Yields (rows, n) float64 arrays (the last block may be shorter): counts[r, i] is how often
    seed index i is drawn in resample r. The blocks come from one generator drawn in order, and
    numpy's Generator gives the same numbers drawn at once or in pieces, so together they are
    exactly the rows of `bootstrap_indices` counted (tests/test_audit_memory.py checks this).
    Memory: one block, about BLOCK_BYTES when `rows` is left to its default.
    """
    rng = np.random.default_rng(seed)
    rows = rows or max(1, BLOCK_BYTES // (8 * n))
    for start in range(0, rounds, rows):
        yield resample_counts(rng.integers(0, n, size=(min(rows, rounds - start), n)), n)


def interval(replicates, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (NaN replicates are ignored)."""
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(np.asarray(replicates, dtype=np.float64), [tail, 100 - tail])
    return float(low), float(high)


def share_interval(share: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a share measured on `n` seeds' images.

    The percentile bootstrap cannot do this near 0 or 1: when a label shows in none of 24
    images, every resample has none either, and "0% (0% to 0%)" would claim a certainty that
    24 seeds cannot give; at a true share of 10%, 24 seeds see none 8% of the time. Wilson's
    interval there is 0% to 14%, and it holds the true share about as often as its level says
    at every share (Brown, Cai and DasGupta 2001 recommend it for small samples). A share here
    is a mean of probe probabilities from 0 to 1, whose spread is at most a yes/no answer's at
    the same mean, so the interval is the yes/no one, or a little wider than needed.
    """
    from statistics import NormalDist

    share = min(max(float(share), 0.0), 1.0)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    shrink = 1 + z * z / n
    centre = (share + z * z / (2 * n)) / shrink
    half = z / shrink * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


class PairwiseDistance:
    """Mean cosine distance over pairs of different images, for many resamples at once.

    A resample is given by its counts, c[i] = how often image i was drawn. Two drawn positions
    holding the same image are not a pair (an image is not compared with itself), so a resample
    has sum_{i != j} c_i c_j pairs, and their mean distance is
    1 - sum_{i != j} c_i c_j s_ij / sum_{i != j} c_i c_j, with s = V V^T the cosine similarities.
    It keeps n x min(n, dim) float64: the similarities with a zeroed diagonal when n <= dim,
    else the vectors, since sum_{i != j} c_i c_j s_ij = |V^T c|^2 - sum_i c_i^2 |v_i|^2.
    A call on (rows, n) counts allocates a few (rows, n) arrays.
    """

    def __init__(self, vectors: np.ndarray):
        vectors = np.asarray(vectors, dtype=np.float64)
        n, dim = vectors.shape
        self.similarity = self.vectors = self.squares = None
        if n <= dim:
            self.similarity = vectors @ vectors.T
            np.fill_diagonal(self.similarity, 0.0)
        else:
            self.vectors = vectors
            self.squares = np.einsum("ij,ij->i", vectors, vectors)

    def __call__(self, counts: np.ndarray) -> np.ndarray:
        """(rows, n) counts -> (rows,) mean distances; NaN for a resample of a single image."""
        counts = np.asarray(counts, dtype=np.float64)
        squares = counts * counts
        pairs = counts.sum(axis=1) ** 2 - squares.sum(axis=1)
        if self.similarity is not None:
            similar = np.einsum("ij,ij->i", counts @ self.similarity, counts)
        else:
            sums = counts @ self.vectors
            similar = np.einsum("ij,ij->i", sums, sums) - squares @ self.squares
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pairs > 0, 1.0 - similar / np.maximum(pairs, 1), np.nan)


def pairwise_distance(vectors: np.ndarray, indices: np.ndarray | None = None):
    """Mean cosine distance over pairs of different images.

    With `indices` ((rounds, n) resamples) one value per resample: pairs that are the same
    image drawn twice are left out, so a resample does not look less diverse than it is
    (NaN when a resample drew a single image n times).
    """
    distance = PairwiseDistance(vectors)
    n = len(vectors)
    if indices is None:
        return float(distance(np.ones((1, n)))[0])
    return distance(resample_counts(indices, n))


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


def measure(
    vectors: np.ndarray,
    prompt_vectors: np.ndarray,
    probes: dict | None = None,
    rounds: int = ROUNDS,
    seed: int = BOOTSTRAP_SEED,
    labels: np.ndarray | None = None,
):
    """Every measure with its bootstrap replicates, from embeddings alone.

    vectors: (terms, seeds, dim) unit image embeddings, the same seed order for every term.
    prompt_vectors: (terms, dim) text embeddings of each term's prompt.
    probes: {group: (labels, (len(labels), dim) label vectors)}.
    labels: (terms, seeds) cluster labels; k-means is run when None.
    Returns (estimates, replicates, labels): {(term index, measure): value} and
    {(term index, measure): (rounds,) array}.

    A resample is used as counts (how often each seed is drawn, `bootstrap_counts`), drawn in
    blocks of rounds, the same blocks for every term: a replicate is a weighted mean over the
    term's images (pairs of different images weighted c_i c_j for the diversity), and the
    cluster entropy is that of the counts summed per cluster.

    Memory, one term at a time: its float64 vectors, the pairwise form (seeds x min(seeds, dim)
    float64: the only part above linear, for one term's images), its prompt distances, probe
    shares and cluster indicators, and one block of counts with the products of it (about 14 x
    BLOCK_BYTES), never a rounds x seeds x seeds array; `bootstrap_memory` gives the bound in
    bytes (at most about 31 MB + 48 KB per probe label for any audit `audit` admits, with
    CLIP ViT-B-32; the most at 2 terms x 2,048 seeds). Besides that: the
    replicates it returns, 8 x terms x (3 + probe labels) x rounds bytes, and with labels=None
    a float64 copy of all vectors while k-means runs, before the bootstrap.
    """
    vectors = np.asarray(vectors)
    n_terms, n_seeds, _ = vectors.shape
    if labels is None:
        labels = cluster(vectors.reshape(n_terms * n_seeds, -1), n_terms).reshape(n_terms, n_seeds)
    labels = np.asarray(labels)
    groups = [
        (group, names, np.asarray(label_vectors, dtype=np.float64))
        for group, (names, label_vectors) in (probes or {}).items()
    ]
    shares = [f"{group}: {name}" for group, names, _ in groups for name in names]
    rows = max(1, BLOCK_BYTES // (8 * max(n_seeds, len(shares))))  # rounds per block of counts
    estimates, replicates = {}, {}

    for t in range(n_terms):
        images = np.asarray(vectors[t], dtype=np.float64)
        diversity = PairwiseDistance(images)
        distance = 1.0 - images @ np.asarray(prompt_vectors[t], dtype=np.float64)
        p = np.concatenate(
            [probe_probabilities(images, label_vectors) for _, _, label_vectors in groups] + [np.zeros((n_seeds, 0))],
            axis=1,
        )
        # indicators of the clusters this term's images are in (an empty cluster adds 0 bits)
        used = np.unique(labels[t])
        in_cluster = (labels[t][:, None] == used[(used >= 0) & (used < n_terms)]).astype(np.float64)
        del images

        estimates[t, "diversity"] = float(diversity(np.ones((1, n_seeds)))[0])
        estimates[t, "prompt_distance"] = float(distance.mean())
        for j, name in enumerate(shares):
            estimates[t, name] = float(p[:, j].mean())
        estimates[t, "cluster_entropy"] = float(entropy_bits((labels[t][:, None] == np.arange(n_terms)).sum(axis=0)))
        for name in ("diversity", "prompt_distance", *shares, "cluster_entropy"):
            replicates[t, name] = np.empty(rounds)

        done = 0
        for counts in bootstrap_counts(n_seeds, rounds, seed, rows):  # the same resamples for every term
            block = slice(done, done + len(counts))
            done += len(counts)
            replicates[t, "diversity"][block] = diversity(counts)
            replicates[t, "prompt_distance"][block] = counts @ distance / n_seeds
            drawn = counts @ p / n_seeds
            for j, name in enumerate(shares):
                replicates[t, name][block] = drawn[:, j]
            replicates[t, "cluster_entropy"][block] = entropy_bits(counts @ in_cluster)
    return estimates, replicates, labels


def bootstrap_memory(terms: int, seeds: int, dim: int, labels: int = 0, rounds: int = ROUNDS) -> dict:
    """Upper bounds in bytes on what `measure` (given cluster labels) allocates: {"working", "replicates"}.

    working: what it holds while it runs besides its results, the same for any number of rounds;
    replicates: the (rounds,) float64 arrays it returns, one per term and measure. `labels` is
    the number of probe labels over all groups. tests/test_audit_memory.py checks the sum
    against tracemalloc, and the working part at the largest audit `audit` admits.
    """
    width = max(seeds, labels)
    block = 8 * max(1, BLOCK_BYTES // (8 * width)) * width  # bytes of one block of counts
    one_term = 8 * seeds * (dim + min(seeds, dim) + 3 * labels + 6 + min(seeds, terms)) + seeds * terms
    return {"working": one_term + 14 * block, "replicates": 8 * terms * (3 + labels) * rounds}


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
        from .embed import Embedder

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
    estimates, replicates, labels = measure(vectors, prompt_vectors, probe_vectors, rounds=rounds)

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
                    "value": _rounded(row["value"] * scale, places),
                    low: _rounded(row["low"] * scale, places),
                    high: _rounded(row["high"] * scale, places),
                    "unit": SHARE_UNIT if share else UNITS[row["measure"]],
                }
            )
        return _frame(rows, ["term", "measure", "value", low, high, "unit"], index=["term", "measure"])

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
                        "A - B": _rounded(d["value"] * scale, places),
                        low: _rounded(d["low"] * scale, places),
                        high: _rounded(d["high"] * scale, places),
                        "unit": "% points" if share else UNITS[measure],
                        "seeds show a difference": bool(d["low"] > 0 or d["high"] < 0),
                    }
                )
        return _frame(
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
        import plotly.graph_objects as go

        s = self.settings
        if measure in self.probes:
            labels = self.probes[measure]
            fig = go.Figure([self._bars(f"{measure}: {label}", name=label) for label in labels])
            fig.update_layout(barmode="group", legend_title_text=plots.escape(measure))
            fig.update_yaxes(title_text="share of CLIP probability", tickformat=".0%", range=[0, 1.05])
            meaning = "CLIP probe: mean probability of each label (they add up to 100% per term)"
        else:
            self._check(measure)
            fig = go.Figure([self._bars(measure, name=measure)])
            fig.update_layout(showlegend=False)
            fig.update_yaxes(title_text=AXES.get(measure, "share of CLIP probability"), rangemode="tozero")
            meaning = MEASURES.get(measure, "CLIP probe: mean probability of this label")
            if self.is_share(measure):
                fig.update_yaxes(tickformat=".0%")
        # Title lines, then the plot well below them: the title never runs into the axis titles,
        # the legend or the plotly toolbar at the top right.
        # terms are text, not markup: the tick labels show them escaped (plotly renders some HTML tags)
        fig.update_xaxes(
            title_text="term",
            tickmode="array",
            tickvals=self.terms,
            ticktext=[plots.escape(term) for term in self.terms],
        )
        # Plotly does not wrap titles: long user text (a template, a group name) is wrapped here.
        head = [f"<b>{plots.escape(measure)}</b>: {plots.escape(meaning)}"]
        if len(measure) + len(meaning) > 80:
            head = [f"<b>{plots.escape(part)}</b>" for part in textwrap.wrap(measure, 80)]
            head += [f"<sup>{plots.escape(part)}</sup>" for part in textwrap.wrap(meaning, 100)]
        about = f"{s['template']!r}, {len(self.seeds)} paired seeds, bars show {s['level']:.0%} intervals"
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

    def _bars(self, measure, name):
        import plotly.graph_objects as go

        values = [self.value(term, measure) for term in self.terms]
        number = "%{y:.0%}" if self.is_share(measure) else "%{y:.3f}"
        return go.Bar(
            x=self.terms,
            y=[v["value"] for v in values],
            name=plots.escape(name),
            error_y=dict(
                type="data",
                symmetric=False,
                array=[v["high"] - v["value"] for v in values],
                arrayminus=[v["value"] - v["low"] for v in values],
            ),
            customdata=[plots.escape(term) for term in self.terms],
            hovertemplate="%{customdata}: " + number + "<extra>" + plots.escape(name) + "</extra>",
        )

    def contact_sheet(self, term: str, cell: int = 128):
        """The term's images in seed order, labelled with their seeds and k-means clusters."""
        from PIL import Image

        from .sheet import contact_sheet

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
        s, esc = self.settings, html.escape
        plain = [name for name in self.measures if not self.is_share(name)]
        two_rows = bool(self.probes)
        span = " rowspan='2'" if two_rows else ""
        head = [f"<th{span} style='text-align:left'>term</th>"]
        head += [f"<th{span}>{esc(name)}<br><small>{esc(UNITS[name])}</small></th>" for name in plain]
        head += [
            f"<th colspan='{len(labels)}' style='text-align:center'>{esc(group)}<br>"
            f"<small>{esc(SHARE_UNIT)}</small></th>"
            for group, labels in self.probes.items()
        ]
        header = f"<tr>{''.join(head)}</tr>"
        if two_rows:
            header += (
                "<tr>"
                + "".join(f"<th>{esc(label)}</th>" for labels in self.probes.values() for label in labels)
                + "</tr>"
            )
        body = []
        for term in self.terms:
            cells = []
            for name in self.measures:
                v = self.value(term, name)
                show = _percent if self.is_share(name) else _decimal
                cells.append(
                    f"<td style='text-align:right;white-space:nowrap'>{show(v['value'])}<br>"
                    f"<small>{show(v['low'])} &ndash; {show(v['high'])}</small></td>"
                )
            body.append(f"<tr><th style='text-align:left'>{esc(term)}</th>{''.join(cells)}</tr>")
        settings = (
            f"preset <code>{esc(str(s['preset']))}</code>, CLIP <code>{esc(str(s['clip']))}</code>, "
            f"{len(self.seeds)} paired seeds, {s['steps']} steps, {s['size'][0]}x{s['size'][1]} px, "
            f"{s['rounds']} bootstrap rounds"
        )
        note = ""
        if s.get("preset") in NOTES:
            note = (
                f"<p style='border-left:4px solid #e0a000;padding:4px 8px;margin:4px 0'>{esc(NOTES[s['preset']])}</p>"
            )
        return (
            f"<div class='kit-audit'>{note}<p><b>Audit</b> of <code>{esc(s['template'])}</code>: {settings}</p>"
            f"<table><thead>{header}</thead><tbody>{''.join(body)}</tbody></table>"
            f"<p><small>Each cell: the value for the term's images, and below it its {s['level']:.0%} "
            f"bootstrap interval over seeds. Probe shares add up to 100% within a group for each "
            f"term.</small></p>"
            f"<details><summary>Caveats: what these numbers can and cannot show</summary>"
            f"<pre style='white-space:pre-wrap'>{esc(self.caveats)}</pre></details></div>"
        )


# ---------------------------------------------------------------- showing numbers


def _finite(x) -> bool:
    return x is not None and bool(np.isfinite(x))


def _rounded(x, places: int):
    """x rounded for a table (NaN stays NaN; never -0.0)."""
    if not _finite(x):
        return float("nan")
    return round(float(x), places) + 0.0


def _decimal(x, places: int = 3) -> str:
    """'0.541'; '-' for a missing number; never scientific notation or '-0.000'."""
    if not _finite(x):
        return "-"
    text = f"{float(x):.{places}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _percent(x) -> str:
    """A share as a whole percent: 0.5407 -> '54%'; '<1%' for a share that rounds to 0 but is not 0."""
    if not _finite(x):
        return "-"
    value = 100 * float(x)
    if 0 < value < 0.5:
        return "&lt;1%"
    if 99.5 <= value < 100:
        return "&gt;99%"
    return f"{value:.0f}%"


def _frame(rows: list[dict], columns: list[str], index: list[str]):
    """A pandas DataFrame of the rows, indexed by `index` (so no 0, 1, 2 ... column shows), when
    pandas is installed; else the rows themselves."""
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows, columns=columns).set_index(index)
