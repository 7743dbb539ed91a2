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

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


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
    arts = studio.generate("a portrait of a farmer, blue background, flat colour areas, bold black outlines",
                           seed=40, n=6)
    assert all(toyworld.background_of(a.image) == "blue" for a in arts)
    pixels = [np.asarray(a.image, dtype=np.float64) for a in arts]
    differences = [np.abs(p - q).mean() for i, p in enumerate(pixels) for q in pixels[i + 1:]]
    assert min(differences) > 3  # no two seeds draw the same picture


# ---------------------------------------------------------------- walks and fusion


def clip_steps(embedder, walk) -> np.ndarray:
    vectors = unit_rows(embedder.images(images_of(walk)))
    return np.linalg.norm(vectors[1:] - vectors[:-1], axis=1), np.linalg.norm(vectors[-1] - vectors[0])


def test_a_walk_between_two_prompts_changes_gradually(studio, embedder):
    """Farmer to scholar (the same seed): the figure changes step by step, and even pacing evens the steps.
    (A walk between two discrete attributes, such as a red and a blue background, jumps instead:
    the toy model learnt four colours, not the colours between them; lesson 2 shows it.)"""
    template = "a portrait of a {}, red background, flat colour areas, bold black outlines"
    keys = [(template.format("farmer"), 5), (template.format("scholar"), 5)]
    walk = studio.walk(keys, frames=9)
    steps, whole = clip_steps(embedder, walk)
    assert whole > 0.2  # the two ends differ
    assert steps.max() < 0.5 * whole  # no single step makes most of the change

    even, _ = clip_steps(embedder, studio.walk(keys, frames=9, even=True, reuse=walk))
    assert even.max() / even.min() < 2.0


def test_a_walk_between_two_seeds_keeps_the_prompt_and_moves_gradually(studio, embedder):
    prompt = "a portrait of a baker, wearing white clothes, bareheaded, red background, flat colour areas, bold black outlines"
    walk = studio.walk([(prompt, 11), (prompt, 12)], frames=9)
    assert all(toyworld.background_of(a.image) == "red" for a in walk)
    even, _ = clip_steps(embedder, studio.walk([(prompt, 11), (prompt, 12)], frames=9, even=True, reuse=walk))
    assert even.max() / even.min() < 3.0


FUSION_PAIRS = [("watercolour wash, soft edges", "flat colour areas, bold black outlines"),
                ("mosaic tiles", "floral border, flowers"), ("gold halo, gold frame", "dot painting, white dots"),
                ("stripes, geometric pattern", "mosaic tiles")]


@pytest.mark.parametrize("a, b", FUSION_PAIRS, ids=["watercolour-outline", "mosaic-floral", "gold-dots", "stripes-mosaic"])
def test_a_fusion_lies_between_its_styles_and_moves_with_its_weight(studio, embedder, a, b):
    """Each fusion's CLIP vector projected on the line from style a's picture to style b's (0 at a, 1 at b),
    averaged over 8 seeds. One seed's picture switches from one rendering to the other at some weight rather
    than mixing them (the toy model learnt seven renderings, not the space between them); where it switches
    depends on the seed, so on average the picture moves with the weight. Measured on the shipped weights:
    watercolour-outline 0, .07, .64, .96, 1; mosaic-floral 0, .05, .37, 1, 1; gold-dots 0, .10, .52, 1, 1;
    stripes-mosaic 0, .01, .21, .99, 1."""
    projections = []
    for seed in range(1, 9):
        arts = [studio.fuse({a: 1 - w, b: w}, subject="a portrait of an elder", seed=seed)
                for w in (0.0, 0.25, 0.5, 0.75, 1.0)]
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
        atlas.add_images([Image.fromarray(i) for i, l in zip(images[train], labels[train]) if l == rendering],
                         label=rendering)
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
        mask[y:y + 20, x:x + 24] = True
        damaged = np.asarray(original).copy()
        damaged[mask] = 0
        art = studio.restore(Image.fromarray(damaged), Image.fromarray(mask.astype(np.uint8) * 255),
                             prompt=toyworld.caption(portrait), seed=k)
        ring = np.zeros_like(mask)
        ring[max(0, y - 1):y + 21, max(0, x - 1):x + 25] = True
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


@pytest.mark.xfail(strict=True, reason="not yet: the model under-learns the skews (scholar hat 0.34 for a planted 0.2, "
                   "baker black 0.28 for 0.1): the audit finds their direction, not their size (issue 13 stays open)")
@pytest.mark.parametrize("name", ["headwear", "clothing"])
def test_the_audit_recovers_each_planted_skew(studio, embedder, skews, name):
    skew = next(s for s in skews if s["name"] == name)
    report = kit.audit(studio, skew["template"], skew["terms"], seeds=range(48), probes=skew["probes"],
                       embedder=embedder, rounds=400)
    (group, labels), = skew["probes"].items()
    for term in skew["terms"]:
        for label in labels:
            value = report.value(term, f"{group}: {label}")
            true = skew["shares"][term][label]
            inside = value["low"] <= true <= value["high"]
            assert inside or abs(value["value"] - true) <= 0.1, (term, label, value, true)
    control = skew["control"]
    for label in labels:  # the control term is not flagged: its interval holds its true share
        value = report.value(control, f"{group}: {label}")
        assert value["low"] <= skew["shares"][control][label] <= value["high"], (label, value)
