"""Prompts as the web UIs write them: emphasis syntax and prompts past the text encoder's window (kit.prompts)."""

import numpy as np
import pytest
import torch

import kit
from kit import blend, prompts
from kit.errors import KitError
from kit.provenance.record import Record

FILLER = "portrait of " + "a lantern and " * 40  # 80 tokens on its own: past the first chunk of 75


def pixels(art):
    return np.asarray(art.image)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a (red:1.5) hat", [("a ", 1.0), ("red", 1.5), (" hat", 1.0)]),
        ("a (cat:1.0) sat", [("a cat sat", 1.0)]),
        ("((x)) y", [("x", 1.1 * 1.1), (" y", 1.0)]),
        ("[x] y", [("x", 1 / 1.1), (" y", 1.0)]),
        ("[a (b:2) c]", [("a ", 1 / 1.1), ("b", 2 / 1.1), (" c", 1 / 1.1)]),
        (r"\(literal\) \[too\]", [("(literal) [too]", 1.0)]),
        ("un(closed", [("un", 1.0), ("closed", 1.1)]),
        ("stray) ] z", [("stray) ] z", 1.0)]),
        ("x:1.2) q", [("x:1.2) q", 1.0)]),
        ("a BREAK b", [("a", 1.0), ("BREAK", None), ("b", 1.0)]),
        ("BREAKFAST", [("BREAKFAST", 1.0)]),
        ("", [("", 1.0)]),
    ],
)
def test_emphasis_is_read_as_the_web_uis_read_it(text, expected):
    got = prompts.parse(text)
    assert [t for t, _ in got] == [t for t, _ in expected]
    for (_, weight), (_, want) in zip(got, expected):
        assert weight == (None if want is None else pytest.approx(want))


def test_chunks_cut_at_the_window_and_at_break():
    def words(text):  # a tokenizer of one id per word
        return [len(w) for w in text.split()]

    assert prompts.chunks(words, "a bb ccc dddd e", 2) == [([1, 2], [1.0] * 2), ([3, 4], [1.0] * 2), ([1], [1.0])]
    assert prompts.chunks(words, "a BREAK bb", 75) == [([1], [1.0]), ([2], [1.0])]
    assert prompts.chunks(words, "(a:2) bb", 75) == [([1, 2], [2.0, 1.0])]
    assert prompts.chunks(words, "", 75) == [([], [])]
    # the encoding of records written before: the text as typed, one chunk
    assert prompts.chunks(words, "(a:2) bb ccc", 2, prompts.TRUNCATE) == [([5, 2], [1.0, 1.0])]


def test_a_short_plain_prompt_encodes_exactly_as_the_diffusers_pipeline(studio):
    pipe = studio.pipe
    for prompt, negative in [("a portrait of an elder", ""), ("a cat!", "blurry, dark")]:
        ours = studio.encode([prompt], negative, guidance=3.0)
        with torch.inference_mode():
            theirs, negatives = pipe.encode_prompt([prompt], "cpu", 1, True, negative_prompt=[negative])
        assert torch.equal(ours["prompt_embeds"], theirs)
        assert torch.equal(ours["negative_prompt_embeds"], negatives)
        pair = studio.encode([prompt, "a heron"], negative, guidance=3.0)  # the same in a batch as alone
        assert torch.equal(pair["prompt_embeds"][:1], theirs)


def test_words_past_the_first_75_tokens_change_the_image(studio):
    assert len(studio.count_tokens(FILLER + "a heron")) == 2
    (heron,) = studio.generate(FILLER + "a heron", seed=3)
    (fox,) = studio.generate(FILLER + "a red fox", seed=3)
    assert heron.record.encoding == "webui"
    assert not np.array_equal(pixels(heron), pixels(fox))
    cond = studio.encode([FILLER + "a heron"])
    assert cond["prompt_embeds"].shape[1] == 2 * 77  # two chunks side by side


def test_records_written_before_replay_as_before_cut_after_75_tokens(studio):
    (heron,) = studio.generate(FILLER + "a heron", seed=3)
    old = {**heron.record.to_dict(), "extra": {}}
    del old["encoding"]  # a record written before the field existed
    old = Record.from_dict(old)
    assert old.encoding == "truncate"
    with pytest.warns(UserWarning, match="dropped: .*heron"):
        then = studio.render(old)
    fox = studio.render(Record(**{**old.to_dict(), "prompt": FILLER + "a red fox"}))
    assert np.array_equal(pixels(then), pixels(fox))  # the words past 75 tokens were never read
    assert not np.array_equal(pixels(then), pixels(heron))


def test_a_long_negative_prompt_is_encoded_in_chunks_too(studio):
    cond = studio.encode(["a heron"], FILLER + "blurry", guidance=3.0)
    assert cond["prompt_embeds"].shape == cond["negative_prompt_embeds"].shape
    assert cond["prompt_embeds"].shape[1] == 2 * 77  # the prompt is padded to the negative's length
    (art,) = studio.generate("a heron", negative=FILLER + "blurry", guidance=3.0, seed=2)
    (other,) = studio.generate("a heron", negative=FILLER + "sharp", guidance=3.0, seed=2)
    assert not np.array_equal(pixels(art), pixels(other))


def test_emphasis_of_one_is_the_plain_word_and_other_weights_change_the_image(studio):
    plain = studio.encode(["a portrait of a smiling elder"])["prompt_embeds"]
    assert torch.equal(studio.encode(["a portrait of a (smiling:1.0) elder"])["prompt_embeds"], plain)
    strong = studio.encode(["a portrait of a (smiling:1.5) elder"])["prompt_embeds"]
    assert not torch.equal(strong, plain)
    assert strong.mean().item() == pytest.approx(plain.mean().item(), abs=1e-5)  # the mean is restored
    (one,) = studio.generate("a portrait of a (smiling:1.0) elder", seed=4)
    (same,) = studio.generate("a portrait of a smiling elder", seed=4)
    (more,) = studio.generate("a portrait of a (smiling:1.6) elder", seed=4)
    assert np.array_equal(pixels(one), pixels(same))
    assert not np.array_equal(pixels(more), pixels(same))
    assert more.record.prompt == "a portrait of a (smiling:1.6) elder"  # the text as typed
    assert "(smiling:1.6)" in more.record.parameters()


def test_counting_reads_emphasis_and_break(studio):
    assert studio.count_tokens("(a cat:1.2)") == studio.count_tokens("a cat") == [2]
    assert studio.count_tokens("a cat BREAK a dog") == [2, 2]
    assert studio.count_tokens("[a cat!]") == [3]


def test_a_prompt_renders_the_same_alone_as_beside_a_longer_one(studio):
    short, long_ = studio.plan("a heron", seed=5)[0], studio.plan(FILLER + "a heron", seed=5)[0]
    together = studio.render_many([short, long_], batch_size=2, save=False)
    alone = studio.render_many([studio.plan("a heron", seed=5)[0]], save=False)
    assert np.array_equal(pixels(together[0]), pixels(alone[0]))
    assert "batch" not in together[0].record.extra  # different lengths in chunks are not batched together


def test_walks_and_fusion_blend_prompts_of_different_lengths(studio):
    frames = studio.walk([("a heron", 1), (FILLER + "a (heron:1.3)", 2)], frames=3)
    assert len(frames) == 3 and all(f.record.encoding == "webui" for f in frames)
    again = studio.render(frames[1].record)
    assert np.array_equal(pixels(again), pixels(frames[1]))
    cond = blend.conditioning(studio, {"ukiyo-e": 1, FILLER + "a (heron:1.2)": 1}, "a heron")
    assert cond["prompt_embeds"].shape[1] == 2 * 77
    art = studio.fuse({"ukiyo-e": 0.5, "[watercolour] wash": 0.5}, subject="a (heron:1.2)", seed=1)
    assert np.array_equal(pixels(studio.render(art.record)), pixels(art))


def test_audits_accept_weighted_prompts(studio):
    report = kit.audit(studio, "a (portrait:1.2) of a {term}", ["farmer", "[teacher]"], seeds=[1, 2])
    assert report.prompts == {"farmer": "a (portrait:1.2) of a farmer", "[teacher]": "a (portrait:1.2) of a [teacher]"}
    made = [art for arts in report.artworks.values() for art in arts]
    assert len(made) == 4 and all(art.record.encoding == "webui" for art in made)


def test_an_unknown_encoding_is_refused_naming_the_field(studio):
    (art,) = studio.generate("a heron", seed=1)
    forged = Record(**{**art.record.to_dict(), "encoding": "compel"})
    with pytest.raises(KitError, match="record.encoding must be one of 'webui', 'truncate'"):
        studio.render(forged)
    with pytest.raises(KitError, match="encoding must be one of"):
        studio.encode(["a heron"], encoding="nope")


@pytest.mark.parametrize(
    "prompt",
    ["a (heron:" + "9" * 400 + ")", "a (heron:123456)", "(" * 80 + "heron", "a (heron:-12345)"],
)
def test_a_weight_that_is_not_finite_or_too_large_is_refused_before_any_model_work(prompt):
    fresh = kit.Studio(preset="tiny")  # nothing loaded: any model work would show in fresh.loaded
    with pytest.raises(KitError, match="prompt: the weight of 'heron' comes to"):
        fresh.generate(prompt, seed=1)
    with pytest.raises(KitError, match="a weight must be a finite number of at most 1000"):
        prompts.parse(prompt)
    assert fresh.loaded == ()


def test_a_forged_record_weight_is_refused_and_an_older_records_text_is_read_as_typed(studio):
    (art,) = studio.generate("a heron", seed=1)
    forged = Record(**{**art.record.to_dict(), "prompt": "a (heron:" + "9" * 400 + ")"})
    with pytest.raises(KitError, match="record.prompt: the weight of 'heron'"):
        studio.render(forged)
    older = Record(**{**forged.to_dict(), "encoding": "truncate"})  # brackets were text then, not weights
    assert studio.check_record(older) is older
    assert max(prompts.parse("(heron:1000)")[0][1], 0) == 1000.0  # the limit itself is a weight like any


@pytest.fixture(scope="module")
def sdxl():
    s = kit.Studio(preset="tiny-sdxl")
    s.progress_bar = False
    return s


def test_sdxl_short_prompts_encode_as_its_pipeline_and_long_ones_in_chunks(sdxl):
    pipe = sdxl.pipe
    ours = sdxl.encode(["a portrait of an elder"], "blurry", guidance=3.0)
    with torch.inference_mode():
        theirs = pipe.encode_prompt(
            ["a portrait of an elder"],
            device="cpu",
            num_images_per_prompt=1,
            do_classifier_free_guidance=True,
            negative_prompt=["blurry"],
        )
    names = ["prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"]
    for name, tensor in zip(names, theirs):
        assert torch.equal(ours[name], tensor), name
    pair = sdxl.encode(["a portrait of an elder", "a heron"], "blurry", guidance=3.0)
    for name in names:  # each text is encoded on its own: the same in a batch as alone
        assert torch.equal(pair[name][:1], ours[name]), name
    long_ = sdxl.encode([FILLER + "a heron"], FILLER + "blurry", guidance=3.0)
    assert long_["prompt_embeds"].shape[1] == long_["negative_prompt_embeds"].shape[1] == 2 * 77
    assert long_["pooled_prompt_embeds"].shape == ours["pooled_prompt_embeds"][:1].shape  # of the first chunk
    (heron,) = sdxl.generate(FILLER + "a heron", seed=3)
    (fox,) = sdxl.generate(FILLER + "a red fox", seed=3)
    assert not np.array_equal(pixels(heron), pixels(fox))
    (weighted,) = sdxl.generate("a portrait of an (elder:1.5)", seed=3)
    (plain,) = sdxl.generate("a portrait of an (elder:1.0)", seed=3)
    assert np.array_equal(pixels(plain), pixels(sdxl.generate("a portrait of an elder", seed=3)[0]))
    assert not np.array_equal(pixels(weighted), pixels(plain))
