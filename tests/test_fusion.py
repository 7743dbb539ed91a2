"""Style fusion on the tiny preset: exact pixels, the weight rule, records, replay, grids, bad input."""

import numpy as np
import pytest
import torch

import kit
from kit import blend, fusion
from kit.errors import KitError

SUBJECT = "portrait of an elder"


def pixels(art):
    return np.asarray(art.image)


def same(a, b):
    return np.array_equal(pixels(a), pixels(b))


def test_one_style_at_weight_one_is_exactly_generate(studio):
    (plain,) = studio.generate(SUBJECT, style="ukiyo-e", seed=3)
    assert same(studio.fuse({"ukiyo-e": 1}, SUBJECT, seed=3), plain)
    assert same(studio.fuse({"ukiyo-e": 2.5}, SUBJECT, seed=3), plain)  # normalised to 1
    assert same(studio.fuse({"art-deco": 0, "ukiyo-e": 1.0}, SUBJECT, seed=3), plain)  # a zero weight adds nothing


def test_a_free_prompt_is_subject_in_the_style_of_text(studio):
    (plain,) = studio.generate(f"{SUBJECT}, in the style of watercolour", seed=4)
    art = studio.fuse({"watercolour": 1}, SUBJECT, seed=4)
    assert same(art, plain)
    assert art.record.fusion == {"watercolour": 1.0}


def test_half_and_half_is_a_new_image_and_weights_are_normalised(studio):
    half = studio.fuse({"ukiyo-e": 0.5, "art-deco": 0.5}, SUBJECT, seed=3)
    ones = studio.fuse({"ukiyo-e": 1, "art-deco": 1}, SUBJECT, seed=3)
    swapped = studio.fuse({"art-deco": 0.5, "ukiyo-e": 0.5}, SUBJECT, seed=3)
    assert same(half, ones) and same(half, swapped)
    assert not same(half, studio.fuse({"ukiyo-e": 1}, SUBJECT, seed=3))
    assert not same(half, studio.fuse({"art-deco": 1}, SUBJECT, seed=3))


def test_key_order_never_changes_a_pixel(studio):
    weights = {"ukiyo-e": 0.2, "art-deco": 0.3, "madhubani": 0.5, "stained glass": -0.1}
    forward = studio.fuse(weights, SUBJECT, seed=8)
    backward = studio.fuse(dict(reversed(weights.items())), SUBJECT, seed=8)
    assert same(forward, backward)


def encoded(studio, style_id, negative="", guidance=0.0):
    return studio.encode([kit.styles.get(style_id).compose(SUBJECT)], negative, guidance)


def test_the_blend_is_the_weighted_sum_of_the_components(studio):
    x, y = encoded(studio, "ukiyo-e")["prompt_embeds"], encoded(studio, "art-deco")["prompt_embeds"]
    blended = blend.conditioning(studio, {"ukiyo-e": 1, "art-deco": 3}, SUBJECT)["prompt_embeds"]
    expected = (0.25 * x.double() + 0.75 * y.double()).float()
    assert torch.equal(blended, expected)
    assert not torch.equal(blended, x) and not torch.equal(blended, y)
    # a negative weight extrapolates: {X: 1, Y: -0.5} -> {X: 2, Y: -1} = X + (X - Y)
    away = blend.conditioning(studio, {"ukiyo-e": 1, "art-deco": -0.5}, SUBJECT)["prompt_embeds"]
    assert torch.allclose(away, 2 * x - y, atol=1e-6)
    assert torch.allclose(away - x, x - y, atol=1e-6)


def test_every_conditioning_tensor_is_blended_and_a_shared_one_kept(studio):
    cond = blend.conditioning(studio, {"ukiyo-e": 0.5, "art-deco": 0.5}, SUBJECT, negative="blurry", guidance=3.0)
    x = encoded(studio, "ukiyo-e", "blurry", 3.0)
    assert set(cond) == set(x) == {"prompt_embeds", "negative_prompt_embeds"}
    assert torch.equal(cond["negative_prompt_embeds"], x["negative_prompt_embeds"])  # same in both: unchanged


def test_normalise_and_describe():
    assert blend.normalise({"ukiyo-e": 3, "Art-Deco ": 1}) == {"ukiyo-e": 0.75, "art-deco": 0.25}
    assert blend.normalise({"ukiyo-e": 1, "art-deco": -0.5}) == {"ukiyo-e": 2.0, "art-deco": -1.0}
    assert blend.describe({"ukiyo-e": 0.6, "art-deco": 0.4}) == "0.6 ukiyo-e + 0.4 art-deco"
    assert blend.describe({"ukiyo-e": 1, "watercolour": -0.5, "art-deco": 0}) == '2 ukiyo-e - 1 "watercolour"'


def test_record_and_replay_from_the_saved_png(studio, tmp_path):
    art = studio.fuse({"ukiyo-e": 0.6, "art-deco": 0.4}, SUBJECT, seed=3, negative="blurry", guidance=2.0)
    r = art.record
    assert (r.kind, r.subject, r.style, r.seed) == ("fuse", SUBJECT, None, 3)
    assert r.fusion == {"ukiyo-e": 0.6, "art-deco": 0.4}
    assert r.prompt == "0.6 ukiyo-e + 0.4 art-deco: portrait of an elder"
    assert (r.negative, r.guidance) == ("blurry", 2.0)
    assert r.prompt in r.parameters()
    assert "Fusion: ukiyo-e 0.6; art-deco 0.4," in r.parameters()
    loaded = kit.load(art.save(tmp_path))
    assert loaded.verified and loaded.record.fusion == r.fusion
    result = kit.replay(loaded.path, studio)
    assert result.match and result.max_abs_diff == 0


def test_preview_decodes_with_taesd(studio):
    fast = studio.fuse({"ukiyo-e": 0.5, "art-deco": 0.5}, SUBJECT, seed=3, preview=True)
    assert fast.record.decoder == "taesd"


def test_grid_cells_sweep_and_triangle():
    cells, columns = fusion.grid_cells(["a", "b"], 5)
    assert columns == 5 and [c["b"] for c in cells] == [0, 0.25, 0.5, 0.75, 1]
    assert all(c["a"] + c["b"] == 1 for c in cells)
    cells, columns = fusion.grid_cells(["a", "b", "c"], 4)
    points = [c for c in cells if c is not None]
    assert (columns, len(cells), len(points)) == (4, 16, 10)
    assert all(abs(sum(c.values()) - 1) < 1e-12 for c in points)
    assert cells[0] == {"a": 1, "b": 0, "c": 0}  # top: all A
    assert cells[12] == {"a": 0, "b": 1, "c": 0}  # bottom left: all B
    assert cells[15] == {"a": 0, "b": 0, "c": 1}  # bottom right: all C
    assert cells[1] is None and cells[3] is None  # blanks keep the triangle
    assert fusion.label({"a": 0.5, "b": 0.25, "c": 0.25}) == "0.5 : 0.25 : 0.25"


def test_two_style_grid_is_a_sweep(studio, tmp_path):
    sheet, arts = studio.fusion_grid(["ukiyo-e", "art-deco"], SUBJECT, seed=2, points=3, cell=80)
    assert [a.record.fusion for a in arts] == [
        {"ukiyo-e": 1, "art-deco": 0},
        {"ukiyo-e": 0.5, "art-deco": 0.5},
        {"ukiyo-e": 0, "art-deco": 1},
    ]
    assert {a.record.seed for a in arts} == {2}
    assert sheet.size == (3 * 80, 22 + 80 + 16)  # title, one row of cells, labels
    assert not same(arts[0], arts[2])
    # an image made in a batch replays exactly from its file
    assert kit.replay(arts[1].save(tmp_path), studio).match


def test_three_style_grid_is_a_triangle(studio):
    sheet, arts = studio.fusion_grid(["ukiyo-e", "art-deco", "madhubani"], SUBJECT, seed=2, points=3, cell=80)
    assert len(arts) == 6
    assert sheet.size == (3 * 80, 22 + 3 * (80 + 16))
    assert arts[0].record.fusion == {"ukiyo-e": 1, "art-deco": 0, "madhubani": 0}
    assert arts[-1].record.fusion == {"ukiyo-e": 0, "art-deco": 0, "madhubani": 1}
    # a blank cell stays empty: the sheet's background (transparent, or white on an opaque sheet)
    blank = sheet.convert("RGBA").getpixel((80 + 40, 22 + 40))
    assert blank[3] == 0 or blank == (255, 255, 255, 255)


@pytest.mark.parametrize(
    "weights, subject, options, field",
    [
        ({}, SUBJECT, {}, "weights is empty"),
        (["ukiyo-e"], SUBJECT, {}, "weights must be a dict"),
        ({"ukiyo-e": 0, "art-deco": 0}, SUBJECT, {}, "weights need at least one positive"),
        ({"ukiyo-e": -1}, SUBJECT, {}, "weights need at least one positive"),
        ({"ukiyo-e": 1, "art-deco": -0.8}, SUBJECT, {}, "negative weights add up to 0.8"),
        ({"ukiyo-e": float("nan")}, SUBJECT, {}, r"weights\['ukiyo-e'\] must be a finite number from -100 to 100"),
        ({"ukiyo-e": float("inf")}, SUBJECT, {}, r"weights\['ukiyo-e'\] must be a finite"),
        ({"ukiyo-e": 1e9}, SUBJECT, {}, r"weights\['ukiyo-e'\] must be a finite"),
        ({"ukiyo-e": "a lot"}, SUBJECT, {}, r"weights\['ukiyo-e'\] must be a number"),
        ({"ukiyo-e": None}, SUBJECT, {}, r"weights\['ukiyo-e'\] must be a number"),
        ({"ukiyo-e": True}, SUBJECT, {}, r"weights\['ukiyo-e'\] must be a number"),
        ({"ukiyo-ee": 1}, SUBJECT, {}, "weights: unknown style id 'ukiyo-ee'; did you mean 'ukiyo-e'"),
        ({3: 1}, SUBJECT, {}, "weights: keys must be style ids or text"),
        ({"  ": 1}, SUBJECT, {}, "weights: a key is empty"),
        ({"ukiyo-e": 1, "Ukiyo-E": 1}, SUBJECT, {}, "weights names 'ukiyo-e' twice"),
        (
            dict.fromkeys(["ukiyo-e", "art-deco", "madhubani", "warli", "gongbi", "thangka"], 1),
            SUBJECT,
            {},
            "weights has 6 entries",
        ),
        ({"ukiyo-e": 1}, "", {}, "subject is empty"),
        ({"ukiyo-e": 1}, None, {}, "subject must be text"),
        ({"ukiyo-e": 1}, SUBJECT, {"seed": -1}, "seed"),
        ({"ukiyo-e": 1}, SUBJECT, {"size": 100}, "size"),
        ({"ukiyo-e": 1}, SUBJECT, {"steps": 0}, "steps"),
    ],
)
def test_bad_fuse_input_is_refused_before_any_model_work(weights, subject, options, field):
    s = kit.Studio(preset="tiny")
    with pytest.raises(KitError, match=field):
        s.fuse(weights, subject, seed=options.pop("seed", 1), **options)
    assert s.loaded == ()


@pytest.mark.parametrize(
    "styles, options, field",
    [
        (["ukiyo-e"], {}, "styles: choose 2 or 3 styles, got 1"),
        (["ukiyo-e", "art-deco", "madhubani", "warli"], {}, "styles: choose 2 or 3 styles, got 4"),
        (["ukiyo-e", "art-deco", "madhubani", "warli", "gongbi", "thangka"], {}, "got 6"),
        ("ukiyo-e", {}, "styles must be a list"),
        (["ukiyo-e", "UKIYO-E"], {}, "styles names 'ukiyo-e' twice"),
        (["ukiyo-e", "art-decoo"], {}, "unknown style id 'art-decoo'"),
        (["ukiyo-e", "art-deco"], {"points": 1}, "points .* from 2 to 11"),
        (["ukiyo-e", "art-deco"], {"points": 50}, "points .* from 2 to 11"),
        (["ukiyo-e", "art-deco"], {"steps": 0}, "steps must be a whole number from 1"),
        (["ukiyo-e", "art-deco"], {"subject": " "}, "subject is empty"),
        (["ukiyo-e", "art-deco"], {"seed": "seven"}, "seed"),
    ],
)
def test_bad_grid_input_is_refused_before_any_model_work(styles, options, field):
    s = kit.Studio(preset="tiny")
    with pytest.raises(KitError, match=field):
        s.fusion_grid(styles, options.pop("subject", SUBJECT), **options)
    assert s.loaded == ()


def test_the_old_grid_arguments_still_work_with_a_warning(studio):
    with pytest.warns(FutureWarning, match="use points=N"):
        sheet, arts = fusion.fusion_grid(studio, ["ukiyo-e", "art-deco"], SUBJECT, seed=2, steps=3, cell=80)
    assert len(arts) == 3 and {a.record.steps for a in arts} == {studio.preset.steps}
    with pytest.warns(FutureWarning, match="now steps=N"):
        _, arts = fusion.fusion_grid(studio, ["ukiyo-e", "art-deco"], SUBJECT, seed=2, points=2, diffusion_steps=1)
    assert len(arts) == 2 and {a.record.steps for a in arts} == {1}


def test_a_tampered_record_is_refused_before_any_model_work(studio):
    record = fusion.plan(studio, {"ukiyo-e": 1}, SUBJECT, seed=1)
    record.fusion = {"ukiyo-e": 0.0}
    s = kit.Studio(preset="tiny")
    with pytest.raises(KitError, match="positive"):
        s.render(record)
    assert s.loaded == ()


# ---------------------------------------------------------------- tables a reader can read (no models)


def test_weights_table_shows_each_blend_in_percent(studio, monkeypatch):
    from types import SimpleNamespace

    blends = [
        {"ukiyo-e": 1, "art-deco": 0},
        {"ukiyo-e": 2, "art-deco": 1},
        {"ukiyo-e": 1, "art-deco": -0.5},
        {"madhubani": 1, "ukiyo-e": 3},
    ]
    arts = [SimpleNamespace(record=fusion.plan(studio, w, SUBJECT, seed=2)) for w in blends]  # no model work
    table = fusion.weights_table(arts)
    assert table.index.name == "image"
    table = table.reset_index()
    assert list(table.columns) == ["image", "ukiyo-e (%)", "art-deco (%)", "madhubani (%)", "seed"]
    assert table["image"].tolist() == [1, 2, 3, 4] and set(table["seed"]) == {2}
    assert table[["ukiyo-e (%)", "art-deco (%)", "madhubani (%)"]].values.tolist() == [
        [100.0, 0.0, 0.0],
        [66.7, 33.3, 0.0],
        [200.0, -100.0, 0.0],
        [75.0, 0.0, 25.0],
    ]
    assert "e+0" not in table.to_string() and "e-0" not in table.to_string()
    one = fusion.weights_table(arts[1])  # a single artwork is a one-row table
    assert len(one) == 1 and one["art-deco (%)"].tolist() == [33.3]
    plain = SimpleNamespace(record=studio.plan(SUBJECT, seed=2)[0])
    with pytest.raises(KitError, match=r"artworks\[1\] is not a fused image"):
        fusion.weights_table([arts[0], plain])
    import sys

    monkeypatch.setitem(sys.modules, "pandas", None)  # without pandas: the same rows as dicts
    assert fusion.weights_table(arts) == table.to_dict("records")
