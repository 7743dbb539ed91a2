"""What the tiny preset's trained models can show, measured on the shipped weights.

The toy world (kit.toyworld) has a known truth: the colour a caption names, the hat it mentions,
the skews planted by role. Each test asks a lesson's question of the trained models and checks
the answer against that truth, with margins measured on the shipped weights (see the closing
note of the issue that trained them) and far from chance. Seeds are fixed: same pixels on every
run on the same machine; the margins leave room for other CPUs and library versions.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import kit
from kit import tiny, toyworld

pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning"), pytest.mark.slow]  # audits of many seeds


@pytest.fixture(scope="module")
def studio():
    studio = kit.Studio(preset="tiny", gallery=None)
    studio.progress_bar = False
    return studio


@pytest.fixture(scope="module")
def embedder():
    return kit.Embedder(preset="tiny", cache=False)


def unit_rows(vectors) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def zero_shot(embedder, images, labels) -> list[str]:
    """The label whose text is nearest (cosine) to each image in the tiny CLIP's space."""
    image_vectors = unit_rows(embedder.images(images))
    label_vectors = unit_rows(embedder.texts(labels))
    return [labels[i] for i in (image_vectors @ label_vectors.T).argmax(axis=1)]


def images_of(arts) -> list[Image.Image]:
    return [a.image for a in arts]


# ---------------------------------------------------------------- prompts steer


def test_the_named_background_colour_shows_in_the_pixels(studio):
    hits, total = 0, 0
    for colour in toyworld.BACKGROUNDS:
        arts = studio.generate(f"a portrait of a teacher, {colour} background", seed=100, n=8)
        hits += sum(toyworld.background_of(a.image) == colour for a in arts)
        total += len(arts)
    assert hits / total >= 0.85  # chance: 0.25


def recognised(studio, embedder, role: str, labels: list[str], seed: int, n: int) -> float:
    """Share of `n` pictures per label ("a portrait of a <role>, <label>") that CLIP gives their own label."""
    truth, images = [], []
    for label in labels:
        images += images_of(studio.generate(f"a portrait of a {role}, {label}", seed=seed, n=n))
        truth += [label] * n
    return float(np.mean([a == b for a, b in zip(zero_shot(embedder, images, labels), truth)]))


def test_clothing_colour_and_headwear_are_recognisable(studio, embedder):
    clothing = recognised(studio, embedder, "weaver", [f"wearing {c} clothes" for c in toyworld.CLOTHING], 200, 6)
    assert clothing >= 0.7  # chance: 0.25
    headwear = recognised(studio, embedder, "sailor", [toyworld.HAT, toyworld.NO_HAT], 300, 12)
    assert headwear >= 0.8  # chance: 0.5


def test_catalogue_prompts_give_visibly_different_pictures(studio):
    """Real catalogue templates steer the toy model through the words they share with it."""
    arts = [studio.generate("portrait of an elder", style=s, seed=5)[0] for s in ("ukiyo-e", "byzantine-icon")]
    a, b = (np.asarray(art.image, dtype=np.float64) for art in arts)
    assert np.abs(a - b).mean() > 12


def test_seeds_vary_the_composition_while_the_prompt_holds(studio):
    arts = studio.generate(
        "a portrait of a farmer, blue background, flat colour areas, bold black outlines", seed=40, n=6
    )
    assert all(toyworld.background_of(a.image) == "blue" for a in arts)
    pixels = [np.asarray(a.image, dtype=np.float64) for a in arts]
    differences = [np.abs(p - q).mean() for i, p in enumerate(pixels) for q in pixels[i + 1 :]]
    assert min(differences) > 3  # no two seeds draw the same picture


# ---------------------------------------------------------------- walks and fusion


def clip_steps(embedder, walk) -> np.ndarray:
    vectors = unit_rows(embedder.images(images_of(walk)))
    return np.linalg.norm(vectors[1:] - vectors[:-1], axis=1), np.linalg.norm(vectors[-1] - vectors[0])


def test_a_walk_between_two_prompts_changes_gradually_with_even_pacing(studio, embedder):
    """Farmer to scholar at seeds 1 to 6 (same seed at both ends). The role decides the hat (80% and
    20% of farmers and scholars wear one), so where the two ends differ in it, equal steps in t
    show the hat appear in one or two frames: the change is steep there, not sudden. Even pacing
    with refinement finds the frames inside the steep part, and the steps come out small and near
    equal. Measured on the shipped weights: the largest raw step is .35 to .96 of the whole
    change; even-paced (refine=4), .13 to .30, largest over smallest 1.07 to 2.86."""
    template = "a portrait of a {}, red background, flat colour areas, bold black outlines"
    jumps = 0
    for seed in range(1, 7):
        keys = [(template.format("farmer"), seed), (template.format("scholar"), seed)]
        walk = studio.walk(keys, frames=9)
        raw, whole = clip_steps(embedder, walk)
        even, _ = clip_steps(embedder, studio.walk(keys, frames=9, even=True, refine=4, reuse=walk))
        jumps += raw.max() > 0.5 * whole
        assert even.max() < 0.4 * whole, seed  # no step makes much of the change
        assert even.max() / even.min() < 4.0, seed
    assert jumps >= 2  # the raw walks this test evens out are steep somewhere


def test_a_walk_between_two_seeds_keeps_the_prompt_and_moves_gradually(studio, embedder):
    prompt = (
        "a portrait of a baker, wearing white clothes, bareheaded, red background, flat colour areas, "
        "bold black outlines"
    )
    walk = studio.walk([(prompt, 11), (prompt, 12)], frames=9)
    assert all(toyworld.background_of(a.image) == "red" for a in walk)
    even, _ = clip_steps(embedder, studio.walk([(prompt, 11), (prompt, 12)], frames=9, even=True, reuse=walk))
    assert even.max() / even.min() < 3.0


FUSION_PAIRS = [
    ("watercolour wash, soft edges", "flat colour areas, bold black outlines"),
    ("mosaic tiles", "floral border, flowers"),
    ("gold halo, gold frame", "dot painting, white dots"),
    ("stripes, geometric pattern", "mosaic tiles"),
]


@pytest.mark.parametrize(
    "a, b", FUSION_PAIRS, ids=["watercolour-outline", "mosaic-floral", "gold-dots", "stripes-mosaic"]
)
def test_a_fusion_lies_between_its_styles_and_moves_with_its_weight(studio, embedder, a, b):
    """Each fusion's CLIP vector projected on the line from style a's picture to style b's (0 at a, 1 at b),
    averaged over 16 seeds. One seed's picture switches from one rendering to the other at some weight rather
    than mixing them (the toy model learnt seven renderings, not the space between them); where it switches
    depends on the seed, so on average the picture moves with the weight. Measured on the shipped weights:
    watercolour-outline 0, .04, .41, .90, 1; mosaic-floral 0, .06, .14, .95, 1; gold-dots 0, .04, .62, 1, 1;
    stripes-mosaic 0, .02, .79, .89, 1 (mosaic holds on longest: half of each leaves most seeds' pictures mosaic)."""
    projections = []
    for seed in range(1, 17):
        arts = [
            studio.fuse({a: 1 - w, b: w}, subject="a portrait of an elder", seed=seed)
            for w in (0.0, 0.25, 0.5, 0.75, 1.0)
        ]
        vectors = unit_rows(embedder.images(images_of(arts)))
        axis = vectors[-1] - vectors[0]
        projections.append((vectors - vectors[0]) @ axis / (axis @ axis))
    mean = np.mean(projections, axis=0)
    assert np.all(np.diff(mean) > -0.03), mean  # more weight on b never moves it back towards a
    assert mean[1] < mean[2] < mean[3], mean  # and through the middle of the range it moves
    assert 0.1 < mean[2] < 0.9, mean  # the even blend lies between the two styles


# ---------------------------------------------------------------- the style map


def test_the_toy_style_map_separates_the_renderings(embedder):
    """About 100 reference pictures per rendering, 80 held out: each picture is also one of 4 backgrounds x
    4 clothing colours x hat or not, so a neighbour must share the rendering, not only the colours."""
    images, portraits = toyworld.dataset(780, seed=70_000)
    labels = np.array([p.rendering for p in portraits])
    vectors = unit_rows(embedder.images([Image.fromarray(i) for i in images]))
    train, test = slice(0, 700), slice(700, None)
    similarity = vectors[test] @ vectors[train].T
    nearest = np.argsort(-similarity, axis=1)[:, :5]
    votes = [max(set(row), key=list(row).count) for row in labels[train][nearest]]
    assert np.mean(np.array(votes) == labels[test]) >= 0.8  # chance: 1/7

    atlas = kit.StyleAtlas(embedder)
    for rendering in toyworld.RENDERINGS:  # one labelled group per rendering: the map's points come in this order
        pictures = [Image.fromarray(i) for i, label in zip(images[train], labels[train]) if label == rendering]
        atlas.add_images(pictures, label=rendering)
    on_map = np.concatenate([labels[train][labels[train] == rendering] for rendering in toyworld.RENDERINGS])
    fitted = atlas.fit()
    assert len(fitted) == 700
    placed = atlas.place(vectors[test])
    map_train = np.asarray(fitted)
    nearest = np.argsort(((placed[:, None, :] - map_train[None, :, :]) ** 2).sum(-1), axis=1)[:, :5]
    votes = [max(set(row), key=list(row).count) for row in on_map[nearest]]
    assert np.mean(np.array(votes) == labels[test]) >= 0.7


# ---------------------------------------------------------------- restoration


def psnr(a, b) -> float:
    mse = float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-10))


def test_restoring_beats_filling_the_hole_with_its_border_mean(studio):
    wins, ours, baseline = 0, [], []
    rng = np.random.default_rng(5)
    for k in range(6):
        portrait = toyworld.sample(rng)
        original = toyworld.draw(portrait)
        mask = np.zeros((64, 64), dtype=bool)
        y, x = 14 + 4 * (k % 3), 16 + 6 * (k % 2)
        mask[y : y + 20, x : x + 24] = True
        damaged = np.asarray(original).copy()
        damaged[mask] = 0
        art = studio.restore(
            Image.fromarray(damaged),
            Image.fromarray(mask.astype(np.uint8) * 255),
            prompt=toyworld.caption(portrait),
            seed=k,
        )
        ring = np.zeros_like(mask)
        ring[max(0, y - 1) : y + 21, max(0, x - 1) : x + 25] = True
        ring &= ~mask
        filled = np.asarray(original).copy()
        filled[mask] = np.asarray(original)[ring].mean(axis=0)
        ours.append(psnr(np.asarray(art.image)[mask], np.asarray(original)[mask]))
        baseline.append(psnr(filled[mask], np.asarray(original)[mask]))
        wins += ours[-1] > baseline[-1]
    assert np.mean(ours) > np.mean(baseline) + 1.0, (ours, baseline)
    assert wins >= 4


# ---------------------------------------------------------------- the audit finds the planted skews


@pytest.fixture(scope="module")
def skews():
    return tiny.card()["skews"]


def caption_words(label: str) -> str:
    """The caption phrase a probe label stands for ("black clothes" -> "wearing black clothes")."""
    return label if label in (toyworld.HAT, toyworld.NO_HAT) else f"wearing {label}"


@pytest.fixture(scope="module")
def probe_error(studio, embedder, skews) -> dict:
    """The probe's own error on the generator's pictures, per label: 1 - the share the audit gives a
    label over 24 pictures whose prompt names it ("a portrait of a <control role>, <label's words>")."""
    error = {}
    for skew in skews:
        ((group, labels),) = skew["probes"].items()
        words = [caption_words(label) for label in labels]
        report = kit.audit(
            studio,
            f"a portrait of a {skew['control']}, {{term}}",
            words,
            seeds=range(900, 924),
            probes=skew["probes"],
            embedder=embedder,
            rounds=100,
        )
        error.update(
            {
                (group, label): 1 - report.value(asked, f"{group}: {label}")["value"]
                for asked, label in zip(words, labels)
            }
        )
    return error


def test_the_probe_reads_the_labels_in_generated_pictures(probe_error):
    """Measured on the shipped weights: at most 0.04 (one picture in 24 asked to be bareheaded, and one
    asked for black clothes, read otherwise)."""
    assert max(probe_error.values()) <= 0.12, probe_error


def audit_rows(studio, embedder, skew, seeds) -> tuple[kit.AuditReport, list[dict]]:
    """One planted skew audited on `seeds`: the report, and for every (term, label) the estimate,
    its 95% interval and the true share."""
    report = kit.audit(
        studio, skew["template"], skew["terms"], seeds=seeds, probes=skew["probes"], embedder=embedder, rounds=400
    )
    ((group, labels),) = skew["probes"].items()
    return report, [
        {
            "term": term,
            "group": group,
            "label": label,
            "true": skew["shares"][term][label],
            **report.value(term, f"{group}: {label}"),
        }
        for term in skew["terms"]
        for label in labels
    ]


@pytest.fixture(scope="module")
def audits(studio, embedder, skews) -> dict:
    """Each planted skew audited on 48 seeds per role: {skew name: (report, rows)}."""
    return {skew["name"]: audit_rows(studio, embedder, skew, range(48)) for skew in skews}


@pytest.mark.parametrize("name", ["headwear", "clothing"])
def test_the_audit_finds_each_planted_skew_and_invents_none(skews, audits, name):
    """The paired difference between the two skewed roles, on the label the skew sets apart, excludes 0
    and points the planted way; the control role is not flagged; and every estimate is near its true
    share (measured on the shipped weights: at most 0.12 away). Not flagged: read together, the control's
    intervals hold its true shares at 95% (each of its k labels' intervals at 1 - 0.05/k, so that a
    faithful model fails this one time in twenty, not one in five with four labels)."""
    skew = next(s for s in skews if s["name"] == name)
    report, rows = audits[name]
    ((group, labels),) = skew["probes"].items()
    a, b = (term for term in skew["terms"] if term != skew["control"])
    label = max(labels, key=lambda label: skew["shares"][a][label] - skew["shares"][b][label])
    difference = report.difference(f"{group}: {label}", a, b)
    assert difference["low"] > 0, (a, b, label, difference)
    for row in rows:
        assert abs(row["value"] - row["true"]) <= 0.15, row
    for label in labels:
        held = report.value(skew["control"], f"{group}: {label}", level=1 - 0.05 / len(labels))
        assert held["low"] <= skew["shares"][skew["control"]][label] <= held["high"], (label, held)


def test_every_true_share_lies_inside_its_interval(skews, audits, probe_error):
    """Each true share inside its interval or, only where the probe's own error is larger than the
    interval's half-width, within 0.1 of the estimate; "each" read at 95% for all 18 intervals at
    once (each at 1 - 0.05/18). Read one at a time, 95% intervals of 48 seeds all hold the truth in
    only about 45% of audits of a model that draws exactly the planted shares (next test), so that
    test would fail a faithful model about half the time; this one about one time in twenty.
    Measured on the shipped weights: all 18 hold together; one at a time, 15 of 18 hold (the
    scholar's hat, 0.08 on these seeds and 0.17 over 192 others, with its complement; the baker's
    purple, 0.21 for 0.10). A faithful model has 3 or more such misses in about 1 audit in 10."""
    level = 1 - 0.05 / sum(len(audits[skew["name"]][1]) for skew in skews)
    for skew in skews:
        report, rows = audits[skew["name"]]
        for row in rows:
            held = report.value(row["term"], f"{row['group']}: {row['label']}", level=level)
            inside = held["low"] <= row["true"] <= held["high"]
            excused = probe_error[row["group"], row["label"]] > (held["high"] - held["low"]) / 2
            assert inside or (excused and abs(row["value"] - row["true"]) <= 0.1), (row, held)


def chance_all_hold(skews, seeds: int, level: float) -> float:
    """Exactly: the chance that every probe share's interval at `level` holds its planted share, in an
    audit of `seeds` seeds of a model that draws each role's labels with exactly the planted shares."""
    from itertools import product
    from math import factorial, prod

    from kit.features.audit_stats import share_interval

    intervals = [share_interval(k / seeds, seeds, level) for k in range(seeds + 1)]  # k of the seeds show a label

    def chance_for_role(shares: list[float]) -> float:
        total = 0.0
        for counts in product(range(seeds + 1), repeat=len(shares) - 1):  # the last label takes the rest
            counts = (*counts, seeds - sum(counts))
            if counts[-1] >= 0 and all(intervals[k][0] <= share <= intervals[k][1] for k, share in zip(counts, shares)):
                total += factorial(seeds) * prod(share**k / factorial(k) for k, share in zip(counts, shares))
        return total

    return prod(chance_for_role(list(shares.values())) for skew in skews for shares in skew["shares"].values())


def test_one_at_a_time_intervals_would_fail_a_faithful_model_about_half_the_time(skews):
    assert 0.35 <= chance_all_hold(skews, 48, 0.95) <= 0.55
    assert chance_all_hold(skews, 48, 1 - 0.05 / 18) >= 0.95


@pytest.fixture(scope="module")
def repeated(studio, embedder, skews) -> list[dict]:
    """Eight audits of 24 seeds each, on seeds none of them share: every role and label of both skews
    (144 intervals)."""
    rows = []
    for k in range(8):
        seeds = range(2000 + 24 * k, 2000 + 24 * (k + 1))
        for skew in skews:
            rows += audit_rows(studio, embedder, skew, seeds)[1]
    assert len(rows) == 8 * (3 * 2 + 3 * 4)
    return rows


def test_repeated_audits_cover_the_truth_about_as_often_as_they_say(repeated):
    """95% intervals should hold the true share about 95% of the time. Measured on the shipped
    weights: 0.96 of 144 (0.88 with the percentile bootstrap the shares had before, which cannot
    give a label no image shows any interval wider than 0)."""
    coverage = np.mean([row["low"] <= row["true"] <= row["high"] for row in repeated])
    assert 0.9 <= coverage <= 0.99, coverage


def test_the_model_draws_the_planted_shares_and_the_intervals_cover_what_it_draws(repeated):
    """Two things an audit's misses can come from, measured apart on the 8 x 24 seeds above. The
    model: each share over all 192 seeds is near its planted truth (measured: at most 0.074 away, the
    baker's black clothes 0.03 for 0.10). The audit: each 24-seed interval holds what the model
    draws, estimated from the other 7 audits' 168 seeds (whose own chance makes this a little below
    95%, about 0.93 for a calibrated interval; measured: 0.92)."""
    by_label = {}
    for row in repeated:
        by_label.setdefault((row["term"], row["label"]), []).append(row)
    for rows in by_label.values():
        assert abs(np.mean([row["value"] for row in rows]) - rows[0]["true"]) <= 0.12, rows[0]
    held = [
        row["low"] <= np.mean([other["value"] for other in rows if other is not row]) <= row["high"]
        for rows in by_label.values()
        for row in rows
    ]
    assert np.mean(held) >= 0.85, np.mean(held)
