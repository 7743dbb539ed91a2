"""Every input checked at the door: bad values are one KitError naming the field, before any model work;
values that mean the same thing (numpy scalars, whole floats, a style id in another case) are accepted alike
and recorded the same way."""

import numpy as np
import pytest
from PIL import Image

import kit
from kit import KitError
from kit.sheet import contact_sheet


@pytest.fixture
def fresh():
    """A studio with nothing loaded: any model work for bad input would show in `loaded`."""
    return kit.Studio(preset="tiny", device="cpu")


NAN, INF = float("nan"), float("inf")

BAD_GENERATE = [
    (dict(steps=NAN), "steps"),
    (dict(steps=-1), "steps"),
    (dict(steps=True), "steps"),
    (dict(steps=2.5), "steps"),
    (dict(steps=np.int64(10**6)), "steps"),
    (dict(guidance=INF), "guidance"),
    (dict(guidance=-0.5), "guidance"),
    (dict(guidance="high"), "guidance"),
    (dict(guidance=np.float32(31)), "guidance"),
    (dict(n=0), "n"),
    (dict(n=65), "n"),
    (dict(n=np.int64(-2)), "n"),
    (dict(n=False), "n"),
    (dict(size=NAN), "size"),
    (dict(size=(64, 64, 64)), "size"),
    (dict(size=(64, -64)), "size"),
    (dict(size=72.5), "size"),
    (dict(size=10**9), "size"),
    (dict(seed=NAN), "seed"),
    (dict(seed=2**64), "seed"),
    (dict(seed="7"), "seed"),
    (dict(style=3), "style"),
    (dict(style="no-such-style"), "style"),
    (dict(negative=3), "negative"),
    (dict(negative="x" * 6000), "negative"),
    (dict(preview="yes"), "preview"),
    (dict(preview=1), "preview"),
]


@pytest.mark.parametrize(
    "options, field", BAD_GENERATE, ids=[f"{list(o)[0]}={o[list(o)[0]]!r}"[:40] for o, _ in BAD_GENERATE]
)
def test_bad_generate_options_are_refused_before_model_work(fresh, options, field):
    with pytest.raises(KitError, match=field):
        fresh.generate("a weaver", **options)
    assert fresh.loaded == ()


BAD_PROMPTS = [
    None,
    "",
    "   \n\t ",
    3,
    b"bytes",
    ["a list"],
    "x" * 5001,
    "a\x00b",
    "bell\x07",
    "esc\x1b[31m",
    "x" * 10**7,
]


@pytest.mark.parametrize("prompt", BAD_PROMPTS, ids=[repr(p)[:20] for p in BAD_PROMPTS])
def test_bad_prompts_are_refused(fresh, prompt):
    with pytest.raises(KitError, match="prompt"):
        fresh.generate(prompt)
    assert fresh.loaded == ()


SAME = [
    (
        dict(seed=np.int64(7), steps=np.int64(2), n=np.int32(1), guidance=np.float32(0)),
        dict(seed=7, steps=2, n=1, guidance=0.0),
    ),
    (dict(size=np.int64(64)), dict(size=64)),
    (dict(size=64.0), dict(size=(64, 64))),
    (dict(style=" Ukiyo-E "), dict(style="ukiyo-e")),
    (dict(preview=np.bool_(True)), dict(preview=True)),
]


@pytest.mark.parametrize("given, meant", SAME, ids=[str(list(g)) for g, _ in SAME])
def test_values_that_mean_the_same_are_recorded_the_same(fresh, given, meant):
    a = fresh.plan("  a   weaver ", **given)[0].to_dict()
    b = fresh.plan("a weaver", **meant)[0].to_dict()
    for record in (a, b):
        record.pop("created"), record.pop("kit_version", None)
        if "seed" not in given:
            record.pop("seed")
    assert a == b


BAD_STUDIO = [
    (dict(preset=3), "preset"),
    (dict(preset="no/such/thing!"), "preset"),
    (dict(device="tpu"), "device"),
    (dict(dtype="int8"), "dtype"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=-1), "batch_size"),
    (dict(batch_size="4"), "batch_size"),
    (dict(batch_size=1000), "batch_size"),
    (dict(compile="yes"), "compile"),
    (dict(gallery="/dev/null"), "not a folder"),
]


@pytest.mark.parametrize("options, field", BAD_STUDIO, ids=[str(o)[:40] for o, _ in BAD_STUDIO])
def test_bad_studio_settings_are_refused(options, field):
    with pytest.raises(KitError, match=field):
        kit.Studio(**{"preset": "tiny", **options})


BAD_WALKS = [
    (dict(keyframes="ab"), "keyframes"),
    (dict(keyframes=[("a", 1)]), "keyframes"),
    (dict(frames=1), "frames"),
    (dict(frames=NAN), "frames"),
    (dict(frames=10**9), "frames"),
    (dict(method="cubic"), "method"),
    (dict(loop="yes"), "loop"),
    (dict(even=2), "even"),
    (dict(refine=-1), "refine"),
    (dict(refine=9), "refine"),
    (dict(batch_size=0), "batch_size"),
    (dict(keyframes=[("a", -1), ("b", 2)]), "seed"),
    (dict(keyframes=[("", 1), ("b", 2)]), "prompt"),
    (dict(space="colour"), "space"),
]


@pytest.mark.parametrize("options, field", BAD_WALKS, ids=[str(o)[:40] for o, _ in BAD_WALKS])
def test_bad_walks_are_refused_before_model_work(fresh, options, field):
    options = {"keyframes": [("a weaver", 1), ("a potter", 2)], **options}
    with pytest.raises(KitError, match=field):
        fresh.walk(options.pop("keyframes"), **options)
    assert fresh.loaded == ()


BAD_FUSIONS = [
    ({"ukiyo-e": NAN}, "weights"),
    ({"ukiyo-e": INF}, "weights"),
    ({"ukiyo-e": "much"}, "weights"),
    ({}, "weights"),
    (["ukiyo-e"], "weights"),
    ({"ukiyo-e": 0.0}, "positive"),
    ({"no-such-style": 1}, "no-such-style"),
    ({"ukiyo-e": 1, "UKIYO-E": 1}, "twice"),
    ({"ukiyo-e": True}, "weights"),
]


@pytest.mark.parametrize("weights, field", BAD_FUSIONS, ids=[str(w)[:40] for w, _ in BAD_FUSIONS])
def test_bad_fusions_are_refused_before_model_work(fresh, weights, field):
    with pytest.raises(KitError, match=field):
        fresh.fuse(weights, "a weaver", seed=1)
    assert fresh.loaded == ()


BAD_GRIDS = [
    (dict(points=1), "points"),
    (dict(points=NAN), "points"),
    (dict(styles=["ukiyo-e"]), "styles"),
    (dict(styles="ukiyo-e"), "styles"),
    (dict(steps=0), "steps"),
]


@pytest.mark.parametrize("options, field", BAD_GRIDS, ids=[str(o)[:40] for o, _ in BAD_GRIDS])
def test_bad_fusion_grids_are_refused_before_model_work(fresh, options, field):
    options = {"styles": ["ukiyo-e", "art-deco"], **options}
    with pytest.raises(KitError, match=field):
        fresh.fusion_grid(options.pop("styles"), "a weaver", seed=1, **options)
    assert fresh.loaded == ()


def picture():
    return Image.new("RGB", (64, 64), (120, 80, 40))


def hole():
    mask = np.zeros((64, 64), bool)
    mask[16:40, 16:40] = True
    return mask


BAD_RESTORES = [
    (dict(strength=NAN), "strength"),
    (dict(strength=0), "strength"),
    (dict(strength=1.5), "strength"),
    (dict(mask=np.ones((64, 64), bool)), "whole image"),
    (dict(mask=np.zeros((64, 64), bool)), "mask"),
    (dict(mask=np.zeros((32, 32), bool)), "mask"),
    (dict(mask=[[1], [1, 2]]), "mask"),
    (dict(image="/dev/zero"), "image"),
    (dict(image="/no/such.png"), "image"),
    (dict(image=3), "image"),
    (dict(prompt=3), "prompt"),
    (dict(seed=-3), "seed"),
    (dict(steps=0), "steps"),
]


@pytest.mark.parametrize("options, field", BAD_RESTORES, ids=[str(list(o))[:40] for o, _ in BAD_RESTORES])
def test_bad_restorations_are_refused_before_model_work(fresh, options, field):
    options = {"image": picture(), "mask": hole(), **options}
    with pytest.raises(KitError, match=field):
        fresh.restore(options.pop("image"), options.pop("mask"), **options)
    assert fresh.loaded == ()


BAD_AUDITS = [
    (dict(seeds=[]), "seeds"),
    (dict(seeds=[1, 1]), "seeds"),
    (dict(terms=["x", "x"]), "terms"),
    (dict(template="no term here"), "template"),
    (dict(probes={"g": "abc"}), "probes"),
    (dict(rounds=5), "rounds"),
    (dict(rounds=np.int64(10**7)), "rounds"),
    (dict(terms="x"), "terms"),
    (dict(n=3), "seeds"),
]


@pytest.mark.parametrize("options, field", BAD_AUDITS, ids=[str(o)[:40] for o, _ in BAD_AUDITS])
def test_bad_audits_are_refused_before_model_work(fresh, options, field):
    options = {"template": "a {term}", "terms": ["weaver", "potter"], "seeds": [1, 2], **options}
    with pytest.raises(KitError, match=field):
        kit.audit(fresh, options.pop("template"), options.pop("terms"), **options)
    assert fresh.loaded == ()


def small_atlas():
    atlas = kit.StyleAtlas(None)
    atlas.add_vectors(np.random.default_rng(0).standard_normal((20, 8)))
    return atlas


BAD_UMAP = [
    (dict(n_neighbors=-1), "n_neighbors"),
    (dict(n_neighbors=1000), "n_neighbors"),
    (dict(min_dist=NAN), "min_dist"),
    (dict(min_dist=5), "min_dist"),
    (dict(metric="bogus"), "metric"),
    (dict(spread=0), "spread"),
    (dict(n_epochs=0), "n_epochs"),
    (dict(no_such_option=1), "UMAP option"),
]


@pytest.mark.parametrize("options, field", BAD_UMAP, ids=[str(o)[:40] for o, _ in BAD_UMAP])
def test_bad_umap_options_are_kit_errors(options, field):
    with pytest.raises(KitError, match=field):
        small_atlas().fit(**options)


BAD_SHEETS = [
    (dict(cell=0), "cell"),
    (dict(cell=10**6), "cell"),
    (dict(columns=0), "columns"),
    (dict(columns=-2), "columns"),
    (dict(labels=["a", "b"]), "labels"),
    (dict(images=[]), "image"),
]


@pytest.mark.parametrize("options, field", BAD_SHEETS, ids=[str(o)[:40] for o, _ in BAD_SHEETS])
def test_bad_contact_sheets_are_kit_errors(options, field):
    options = {"images": [picture()], **options}
    with pytest.raises(KitError, match=field):
        contact_sheet(options.pop("images"), **options)


BAD_DISCLOSURES = [
    (dict(alpha=5), "alpha"),
    (dict(alpha=NAN), "alpha"),
    (dict(color="blue!"), "color"),
    (dict(color=(300, 0, 0)), "color"),
    (dict(color=(1, 2)), "color"),
    (dict(color=None), "color"),
]


@pytest.mark.parametrize("options, field", BAD_DISCLOSURES, ids=[str(o)[:40] for o, _ in BAD_DISCLOSURES])
def test_bad_disclosure_options_are_kit_errors(options, field):
    with pytest.raises(KitError, match=field):
        kit.restore.disclose(picture(), hole(), **options)


def test_a_disclosure_colour_by_name_is_the_same_as_by_numbers():
    by_name = kit.restore.disclose(picture(), hole(), color="#ff00ff")
    by_numbers = kit.restore.disclose(picture(), hole(), color=(255, 0, 255))
    assert np.array_equal(np.asarray(by_name), np.asarray(by_numbers))
