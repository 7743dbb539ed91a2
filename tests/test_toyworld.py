"""The toy world the tiny preset is trained on: deterministic pictures, honest captions, the planted
skews, and the card shipped with the weights."""

import dataclasses
import hashlib
import itertools
import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from kit import tiny, toyworld

TINY_DATA = tiny.WEIGHTS
WEIGHT_NAMES = {"clip", "vae", "taesd", "text_encoder", "unet", "inpaint_unet"}


def with_(portrait, **changes):
    return dataclasses.replace(portrait, **changes)


def words(text):
    return set(re.findall(r"[a-z]+", text.lower()))


# ---------------------------------------------------------------- pictures


def test_dataset_is_deterministic_per_seed():
    images, portraits = toyworld.dataset(12, seed=3)
    again, portraits_again = toyworld.dataset(12, seed=3)
    other, other_portraits = toyworld.dataset(12, seed=4)
    assert images.shape == (12, 64, 64, 3) and images.dtype == np.uint8
    assert np.array_equal(images, again) and portraits == portraits_again
    assert not np.array_equal(images, other) and portraits != other_portraits


def test_dataset_keeps_fixed_attributes():
    _, portraits = toyworld.dataset(20, seed=5, role="baker", rendering="gold")
    assert {p.role for p in portraits} == {"baker"} and {p.rendering for p in portraits} == {"gold"}
    assert len({p.background for p in portraits}) > 1  # the rest still varies


def test_draw_gives_a_64_px_rgb_picture():
    image = toyworld.draw(toyworld.sample(np.random.default_rng(0)))
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (64, 64)
    assert np.asarray(image).std() > 10  # a picture, not a flat frame


def test_layout_varies_with_the_seed_while_the_caption_holds():
    rng = np.random.default_rng(1)
    a = toyworld.sample(rng, role="farmer", background="red", clothing="white", hat=True, rendering="outline")
    b = toyworld.sample(rng, role="farmer", background="red", clothing="white", hat=True, rendering="outline")
    assert toyworld.caption(a) == toyworld.caption(b)
    assert np.abs(np.asarray(toyworld.draw(a), float) - np.asarray(toyworld.draw(b), float)).mean() > 2


def test_every_rendering_draws_differently():
    rng = np.random.default_rng(7)
    for _ in range(6):
        portrait = toyworld.sample(rng)
        pictures = {
            r: np.asarray(toyworld.draw(with_(portrait, rendering=r)), dtype=np.float32) for r in toyworld.RENDERINGS
        }
        for a, b in itertools.combinations(pictures, 2):
            difference = np.abs(pictures[a] - pictures[b]).mean()
            assert difference > 10, (a, b, difference, portrait)


def test_attributes_change_the_picture():
    portrait = toyworld.sample(np.random.default_rng(2), hat=False, clothing="black", background="blue")
    base = np.asarray(toyworld.draw(portrait), dtype=np.float32)
    for change in ({"hat": True}, {"clothing": "white"}, {"background": "yellow"}):
        changed = np.asarray(toyworld.draw(with_(portrait, **change)), dtype=np.float32)
        assert np.abs(changed - base).mean() > 2, change


@pytest.mark.parametrize("rendering", toyworld.RENDERINGS)
def test_background_of_reads_drawn_pictures(rendering):
    images, portraits = toyworld.dataset(300, seed=11, rendering=rendering)
    assert len({p.background for p in portraits}) == len(toyworld.BACKGROUNDS)
    right = np.mean([toyworld.background_of(image) == p.background for image, p in zip(images, portraits)])
    assert right >= 0.95, right


def test_background_of_takes_pil_images_too():
    portrait = toyworld.sample(np.random.default_rng(3), background="green", rendering="outline")
    assert toyworld.background_of(toyworld.draw(portrait)) == "green"
    assert toyworld.background_of(toyworld.draw(with_(portrait, background="blue"))) == "blue"


# ---------------------------------------------------------------- planted skews


def share_within_band(hits, n, p):
    """|observed - p| within 4 binomial standard deviations."""
    return abs(hits / n - p) <= 4 * math.sqrt(p * (1 - p) / n)


def sampled(role, n=4000, seed=0):
    rng = np.random.default_rng(seed)
    return [toyworld.sample(rng, role=role) for _ in range(n)]


@pytest.mark.parametrize("role, share", [("farmer", 0.8), ("scholar", 0.2), ("teacher", 0.5), ("elder", 0.5)])
def test_hat_skew_holds_in_the_data(role, share):
    portraits = sampled(role)
    hats = sum(p.hat for p in portraits)
    assert share_within_band(hats, len(portraits), share), hats / len(portraits)
    assert toyworld.hat_share(role) == share


@pytest.mark.parametrize(
    "role, shares",
    [
        ("baker", {"white": 0.7, "black": 0.1, "orange": 0.1, "purple": 0.1}),
        ("musician", {"black": 0.7, "white": 0.1, "orange": 0.1, "purple": 0.1}),
        ("sailor", {"black": 0.25, "white": 0.25, "orange": 0.25, "purple": 0.25}),
    ],
)
def test_clothing_skew_holds_in_the_data(role, shares):
    portraits = sampled(role, seed=1)
    for colour, share in shares.items():
        hits = sum(p.clothing == colour for p in portraits)
        assert share_within_band(hits, len(portraits), share), (colour, hits / len(portraits))
    assert toyworld.clothing_shares(role) == pytest.approx(shares)


def test_unskewed_attributes_are_even():
    portraits = sampled("farmer", seed=2)
    for attribute, values in (("background", toyworld.BACKGROUNDS), ("rendering", toyworld.RENDERINGS)):
        for value in values:
            hits = sum(getattr(p, attribute) == value for p in portraits)
            assert share_within_band(hits, len(portraits), 1 / len(values)), (attribute, value)


def test_truth_matches_the_planted_shares():
    skews = {skew["name"]: skew for skew in toyworld.truth()}
    assert set(skews) == {"headwear", "clothing"}
    headwear, clothing = skews["headwear"], skews["clothing"]
    assert headwear["probes"] == {"headwear": [toyworld.HAT, toyworld.NO_HAT]}
    for term in headwear["terms"]:
        assert headwear["shares"][term][toyworld.HAT] == pytest.approx(toyworld.HAT_SHARE.get(term, 0.5))
        assert headwear["shares"][term][toyworld.NO_HAT] == pytest.approx(1 - toyworld.HAT_SHARE.get(term, 0.5))
    assert headwear["shares"]["farmer"][toyworld.HAT] == 0.8 and headwear["shares"]["scholar"][toyworld.HAT] == 0.2
    assert headwear["control"] == "teacher" and headwear["shares"]["teacher"][toyworld.HAT] == 0.5
    uniform = {colour: 1 / len(toyworld.CLOTHING) for colour in toyworld.CLOTHING}
    for term in clothing["terms"]:
        expected = toyworld.CLOTHING_SHARE.get(term, uniform)
        assert clothing["shares"][term] == pytest.approx({f"{c} clothes": v for c, v in expected.items()})
    assert clothing["control"] == "sailor" and "sailor" not in toyworld.CLOTHING_SHARE
    for skew in skews.values():
        (labels,) = skew["probes"].values()
        assert set(skew["shares"]) == set(skew["terms"]) and set(skew["terms"]) <= set(toyworld.ROLES)
        for term, shares in skew["shares"].items():
            assert set(shares) == set(labels) and sum(shares.values()) == pytest.approx(1), term


def test_every_probe_label_is_caption_text():
    """A probe label appears in a caption exactly when the portrait has that attribute value."""
    rng = np.random.default_rng(4)
    portraits = [toyworld.sample(rng) for _ in range(200)]
    for skew in toyworld.truth():
        (labels,) = skew["probes"].values()
        for label in labels:
            having = [p for p in portraits if label in toyworld.caption(p)]
            assert having, label
            if skew["name"] == "headwear":
                assert all(p.hat == (label == toyworld.HAT) for p in having), label
            else:
                assert all(label == f"{p.clothing} clothes" for p in having), label
        for term in skew["terms"]:  # the audit's prompt is how every training caption for the role starts
            prompt = skew["template"].format(term=term)
            assert toyworld.caption(toyworld.sample(rng, role=term)).startswith(prompt)


# ---------------------------------------------------------------- captions


def attribute_phrases(portrait):
    return [
        portrait.role,
        f"wearing {portrait.clothing} clothes",
        toyworld.HAT if portrait.hat else toyworld.NO_HAT,
        f"{portrait.background} background",
        toyworld.RENDERINGS[portrait.rendering],
    ]


def wrong_phrases(portrait):
    """Every attribute value the portrait does not have, as caption text."""
    return (
        [f"{c} clothes" for c in toyworld.CLOTHING if c != portrait.clothing]
        + [f"{b} background" for b in toyworld.BACKGROUNDS if b != portrait.background]
        + [toyworld.NO_HAT if portrait.hat else toyworld.HAT]
        + [words_ for r, words_ in toyworld.RENDERINGS.items() if r != portrait.rendering]
    )


def test_caption_names_every_attribute():
    rng = np.random.default_rng(5)
    for _ in range(100):
        portrait = toyworld.sample(rng)
        text = toyworld.caption(portrait)
        assert all(phrase in text for phrase in attribute_phrases(portrait)), text
        assert not any(phrase in text for phrase in wrong_phrases(portrait)), text
        assert words(text) & set(toyworld.ROLES) == {portrait.role}


def test_training_captions_leave_words_out_but_never_invent():
    rng = np.random.default_rng(6)
    dropped = {phrase: 0 for phrase in ("clothes", "hat", "background", "rendering")}
    for _ in range(600):
        portrait = toyworld.sample(rng)
        text = toyworld.caption(portrait, rng, drop=0.5)
        assert not any(phrase in text for phrase in wrong_phrases(portrait)), (portrait, text)
        assert words(text) & set(toyworld.ROLES) <= {portrait.role}, text
        _, clothes, hat, background, rendering = attribute_phrases(portrait)
        for key, phrase in zip(dropped, (clothes, hat, background, rendering)):
            dropped[key] += phrase not in text
    assert all(100 < count < 500 for count in dropped.values()), dropped  # about half of 600 each


def test_training_captions_without_drop_keep_every_attribute():
    rng = np.random.default_rng(7)
    for _ in range(200):
        portrait = toyworld.sample(rng)
        text = toyworld.caption(portrait, rng, drop=0.0)
        assert all(phrase in text for phrase in attribute_phrases(portrait)), text
    plain = toyworld.caption(portrait)
    assert any(toyworld.caption(portrait, np.random.default_rng(s)) != plain for s in range(20))  # shuffled


def test_subject_drop_sets_how_often_the_role_is_left_out():
    rng = np.random.default_rng(11)
    portraits = [toyworld.sample(rng) for _ in range(400)]
    named = [
        sum(words(toyworld.caption(p, rng, drop=0.6, subject_drop=share)) & {p.role} != set() for p in portraits)
        for share in (0.0, 0.5)
    ]
    assert named[0] == 400  # never left out
    assert 140 < named[1] < 260  # about half


def test_training_captions_are_deterministic_per_rng():
    portrait = toyworld.sample(np.random.default_rng(0))
    first = [toyworld.caption(portrait, np.random.default_rng(9), drop=0.3) for _ in range(3)]
    assert len(set(first)) == 1


SENSITIVE = {
    "skin",
    "skinned",
    "man",
    "men",
    "woman",
    "women",
    "boy",
    "boys",
    "girl",
    "girls",
    "male",
    "female",
    "he",
    "she",
    "his",
    "her",
    "black-skinned",
    "white-skinned",
    "race",
    "ethnic",
    "ethnicity",
}


def test_no_caption_or_vocabulary_names_skin_or_gender():
    rng = np.random.default_rng(8)
    texts = [toyworld.caption(toyworld.sample(rng)) for _ in range(300)]
    texts += [toyworld.caption(toyworld.sample(rng), rng, drop=0.3) for _ in range(300)]
    texts += [json.dumps(toyworld.vocabulary()), json.dumps(toyworld.truth()), " ".join(toyworld.FILLER)]
    for text in texts:
        assert not words(text) & SENSITIVE, text
    assert len(set(toyworld.HEAD)) == 1  # heads are a neutral grey


def test_vocabulary_lists_every_attribute():
    vocabulary = toyworld.vocabulary()
    assert vocabulary["roles"] == list(toyworld.ROLES)
    assert vocabulary["backgrounds"] == list(toyworld.BACKGROUNDS)
    assert vocabulary["clothing"] == list(toyworld.CLOTHING)
    assert vocabulary["headwear"] == [toyworld.HAT, toyworld.NO_HAT]
    assert vocabulary["renderings"] == toyworld.RENDERINGS and vocabulary["template"] == toyworld.TEMPLATE
    assert json.loads(json.dumps(vocabulary)) == vocabulary  # plain JSON, as the card stores it


# ---------------------------------------------------------------- the shipped card


@pytest.fixture(scope="module")
def shipped_card():
    return json.loads((TINY_DATA / "card.json").read_text(encoding="utf-8"))


def test_card_has_the_toy_worlds_vocabulary_and_skews(shipped_card):
    assert shipped_card["vocabulary"] == json.loads(json.dumps(toyworld.vocabulary()))
    assert shipped_card["skews"] == json.loads(json.dumps(toyworld.truth()))


def test_card_hashes_match_the_shipped_weights(shipped_card):
    files = {p.stem: p for p in TINY_DATA.glob("*.safetensors")}
    assert set(files) == set(shipped_card["weights"]) == WEIGHT_NAMES
    for name, path in files.items():
        entry = shipped_card["weights"][name]
        assert entry["file"] == path.name
        assert entry["bytes"] == path.stat().st_size, name
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), name
    assert sum(p.stat().st_size for p in files.values()) <= 25 * 10**6
    assert not [p for p in TINY_DATA.iterdir() if p.suffix not in {".safetensors", ".json"}]  # no pickles


def test_card_summarises_training(shipped_card):
    scaling = shipped_card["vae_scaling_factor"]
    assert isinstance(scaling, float) and math.isfinite(scaling) and scaling > 0
    accuracy = shipped_card["clip_zero_shot_accuracy"]
    assert set(accuracy) == {"background", "clothing", "headwear", "rendering"}
    assert all(0 <= v <= 1 for v in accuracy.values())


def test_kit_tiny_card_reads_the_shipped_card(shipped_card):
    from kit import tiny

    assert tiny.card() == shipped_card
