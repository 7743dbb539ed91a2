"""The audit's bootstrap in memory linear in the number of images, with the numbers it always gave.

`measure` used to index a (rounds, seeds, seeds) float64 array per term (2 terms x 256 seeds
peaked at 2.2 GB; the admitted maximum would have needed about 70 GB). It now works on resample
counts in blocks. `old_measure` below is that former formulation, kept only here (bench/bench_audit.py
imports it) as the reference the new one must equal.
"""

import importlib
import itertools
import tracemalloc

import numpy as np
import pytest

A = importlib.import_module("kit.features.auditing")
S = importlib.import_module("kit.features.audit_stats")

MB = 1 << 20
BOUND = 64 * MB  # the bootstrap's working memory, at n=1024 seeds and at the audit's largest admitted size


# ---------------------------------------------------------------- the former formulation (reference only)


def old_pairwise_distance(vectors, indices=None):
    """REFERENCE ONLY: the former (rounds, n, n) formulation of `pairwise_distance`."""
    distance = 1.0 - vectors @ vectors.T
    if indices is None:
        n = len(vectors)
        return float(distance[~np.eye(n, dtype=bool)].mean())
    pairs = distance[indices[:, :, None], indices[:, None, :]]
    different = indices[:, :, None] != indices[:, None, :]
    counts = different.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, (pairs * different).sum(axis=(1, 2)) / np.maximum(counts, 1), np.nan)


def old_measure(vectors, prompt_vectors, probes=None, rounds=S.ROUNDS, seed=S.BOOTSTRAP_SEED, labels=None):
    """REFERENCE ONLY: the former `measure`, all resamples as (rounds, n) indices at once."""
    vectors = np.asarray(vectors, dtype=np.float64)
    n_terms, n_seeds, _ = vectors.shape
    indices = S.bootstrap_indices(n_seeds, rounds, seed)
    if labels is None:
        labels = S.cluster(vectors.reshape(n_terms * n_seeds, -1), n_terms).reshape(n_terms, n_seeds)
    estimates, replicates = {}, {}
    for t in range(n_terms):
        images = vectors[t]
        estimates[t, "diversity"] = old_pairwise_distance(images)
        replicates[t, "diversity"] = old_pairwise_distance(images, indices)
        distance = 1.0 - images @ np.asarray(prompt_vectors[t], dtype=np.float64)
        estimates[t, "prompt_distance"] = float(distance.mean())
        replicates[t, "prompt_distance"] = distance[indices].mean(axis=1)
        for group, (names, label_vectors) in (probes or {}).items():
            p = S.probe_probabilities(images, np.asarray(label_vectors, dtype=np.float64))
            for j, name in enumerate(names):
                estimates[t, f"{group}: {name}"] = float(p[:, j].mean())
                replicates[t, f"{group}: {name}"] = p[indices, j].mean(axis=1)
        one_hot = labels[t][:, None] == np.arange(n_terms)
        estimates[t, "cluster_entropy"] = float(S.entropy_bits(one_hot.sum(axis=0)))
        replicates[t, "cluster_entropy"] = S.entropy_bits(one_hot[indices].sum(axis=1))
    return estimates, replicates, labels


# ---------------------------------------------------------------- inputs


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _vectors(n_terms, n_seeds, dim, seed=0, spread=0.3, dtype=np.float32):
    """Fixed random paired embeddings (float32, as CLIP gives them), prompts and two probe groups."""
    rng = np.random.default_rng(seed)
    vectors = _unit(
        rng.normal(size=(1, n_seeds, dim))
        + rng.normal(size=(n_terms, 1, dim))
        + spread * rng.normal(size=(n_terms, n_seeds, dim))
    ).astype(dtype)
    prompts = _unit(rng.normal(size=(n_terms, dim))).astype(dtype)
    centre = vectors.mean(axis=(0, 1))
    probes = {
        "attire": (["dress", "suit"], _unit(centre + 0.02 * rng.normal(size=(2, dim)))),
        "age": (["young", "old", "middle-aged"], _unit(centre + 0.02 * rng.normal(size=(3, dim)))),
    }
    return vectors, prompts, probes


# ---------------------------------------------------------------- (1) the same numbers as before


@pytest.mark.parametrize(
    "n_terms,n_seeds,dim",
    [
        (3, 8, 16),  # seeds <= dim: the pairwise form keeps the similarity matrix
        (2, 40, 8),  # seeds > dim: it keeps the vectors instead
        (4, 5, 64),  # few seeds: some resamples draw few images, entropy over several clusters
        (2, 2, 4),  # the fewest seeds an audit admits: some resamples draw one image twice (NaN diversity)
    ],
)
def test_measure_equals_the_former_formulation(n_terms, n_seeds, dim):
    vectors, prompts, probes = _vectors(n_terms, n_seeds, dim, seed=n_seeds)
    estimates, replicates, labels = S.measure(vectors, prompts, probes, rounds=500, seed=3)
    old_estimates, old_replicates, _ = old_measure(vectors, prompts, probes, rounds=500, seed=3, labels=labels)
    assert list(estimates) == list(old_estimates) and list(replicates) == list(old_replicates)
    for key in old_estimates:
        assert estimates[key] == pytest.approx(old_estimates[key], abs=1e-12, rel=0), key
        new, old = replicates[key], old_replicates[key]
        assert new.shape == old.shape == (500,)
        assert np.array_equal(np.isnan(new), np.isnan(old)), key
        assert np.allclose(new, old, rtol=0, atol=1e-12, equal_nan=True), (key, np.nanmax(np.abs(new - old)))
        for level in (0.95, 0.9):  # the interval bounds the report shows
            assert np.allclose(S.interval(new, level), S.interval(old, level), rtol=0, atol=1e-12), key
    if n_seeds == 2:  # the NaN case really occurred
        assert np.isnan(replicates[0, "diversity"]).any()
    # paired differences (AuditReport.difference) come out the same too
    for name in ("diversity", "prompt_distance", "attire: dress", "cluster_entropy"):
        new = S.interval(replicates[0, name] - replicates[1, name])
        old = S.interval(old_replicates[0, name] - old_replicates[1, name])
        assert np.allclose(new, old, rtol=0, atol=1e-12), name


def test_pairwise_distance_equals_the_former_formulation():
    for n, dim in ((6, 32), (30, 5)):
        vectors = _unit(np.random.default_rng(n).normal(size=(n, dim)))
        indices = S.bootstrap_indices(n, rounds=300, seed=1)
        assert S.pairwise_distance(vectors) == pytest.approx(old_pairwise_distance(vectors), abs=1e-12, rel=0)
        assert np.allclose(
            S.pairwise_distance(vectors, indices),
            old_pairwise_distance(vectors, indices),
            rtol=0,
            atol=1e-12,
            equal_nan=True,
        )


@pytest.mark.parametrize("n", [2, 3, 7, 64, 1000])
def test_blocks_of_counts_are_the_resamples_drawn_at_once(n):
    """Drawn in blocks of any size, the resamples are the ones bootstrap_indices draws at once."""
    indices = S.bootstrap_indices(n, rounds=257, seed=5)
    expected = S.resample_counts(indices, n)
    assert (expected.sum(axis=1) == n).all()
    assert np.array_equal(expected[0], np.bincount(indices[0], minlength=n))
    for rows in (1, 2, 3, 100, 256, 257, 1000, None):
        blocks = list(S.bootstrap_counts(n, rounds=257, seed=5, rows=rows))
        assert np.array_equal(np.concatenate(blocks), expected), rows


# ---------------------------------------------------------------- (2) measured peak memory


def _peak(function, *args, **kwargs):
    """Peak bytes that `function` allocates while it runs (tracemalloc: numpy arrays included)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = function(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1] - before, result
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("n_terms,n_seeds,dim", [(2, 1024, 512), (64, 16, 512), (2, 300, 512), (512, 2, 512)])
def test_bootstrap_memory_stays_under_the_bound(n_terms, n_seeds, dim):
    """1,000 rounds of 2 terms x 1,024 seeds: the former formulation needed about 17 GB per term."""
    vectors, prompts, probes = _vectors(n_terms, n_seeds, dim)
    labels = np.arange(n_terms * n_seeds).reshape(n_terms, n_seeds) % n_terms  # k-means is not the bootstrap
    peak, (_, replicates, _) = _peak(S.measure, vectors, prompts, probes, rounds=1000, labels=labels)
    formula = S.bootstrap_memory(n_terms, n_seeds, dim, labels=5, rounds=1000)
    assert len(replicates) == n_terms * (3 + 5) and replicates[0, "diversity"].shape == (1000,)
    assert peak <= formula["working"] + formula["replicates"], (peak / MB, formula)
    assert peak < BOUND, f"{peak / MB:.1f} MB"


def test_bootstrap_memory_does_not_grow_with_rounds():
    vectors, prompts, probes = _vectors(2, 256, 64)
    labels = np.zeros((2, 256), dtype=int)
    peaks = {}
    for rounds in (1000, 10_000):
        peak, _ = _peak(S.measure, vectors, prompts, probes, rounds=rounds, labels=labels)
        peaks[rounds] = peak - S.bootstrap_memory(2, 256, 64, labels=5, rounds=rounds)["replicates"]
    assert peaks[10_000] < 1.2 * peaks[1000] + MB, peaks


# ---------------------------------------------------------------- (3) the largest audit admitted


def test_the_largest_admitted_audit_fits_the_bound():
    """Every split of at most MAX_IMAGES images into terms x seeds (each at least 2), at the kit's
    CLIP width (ViT-B-32: 512) and with 64 probe labels, by the formula the test above checks.
    The replicates the report keeps are its content and grow with rounds: 8 bytes per term,
    measure and round (2,048 terms x 3 measures x 1,000 rounds = 49 MB)."""
    worst = max(
        (S.bootstrap_memory(terms, A.MAX_IMAGES // terms, dim=512, labels=64)["working"], terms)
        for terms in range(2, A.MAX_IMAGES // 2 + 1)
    )
    assert worst[0] < BOUND, f"{worst[0] / MB:.1f} MB at {worst[1]} terms"
    # the formula grows linearly with the number of images: double them, at most double the bytes
    for terms, seeds in itertools.product((2, 16, 64), (2, 64, 1024)):
        one = S.bootstrap_memory(terms, seeds, 512, labels=8)["working"]
        assert S.bootstrap_memory(terms, 2 * seeds, 512, labels=8)["working"] <= 2 * one + 1
    # the former formulation at the same size, for scale: (rounds, n, n) float64 pairs, their mask and product
    old = S.ROUNDS * 2048 * 2048 * (8 + 1 + 8)
    assert old > 60e9
