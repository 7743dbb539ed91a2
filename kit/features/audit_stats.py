"""The statistics of an audit, numpy only: the measures, their bootstrap replicates and intervals.

`kit.auditing` makes the images and embeds them; everything here works on the embeddings alone, so
it can be read, tested and timed without a model (tests/test_audit.py, bench/bench_audit.py).

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
`measure` draws the resamples as counts in blocks, so its memory does not grow with the rounds
(`bootstrap_memory` gives the bound).
"""

from __future__ import annotations

import math

import numpy as np

ROUNDS = 1000  # bootstrap rounds
BOOTSTRAP_SEED = 0
KMEANS_SEED = 0
TEMPERATURE = 100.0  # CLIP's logit scale
LEVEL = 0.95
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
