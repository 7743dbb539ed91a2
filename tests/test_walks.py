"""Latent walks on the tiny preset: exact keyframes, exact replays, caching, even pacing, export."""

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import kit
from kit import latents, walks
from kit.core import pacing
from kit.errors import KitError
from kit.provenance.record import Record

ELDER = "portrait of an elder"
KEYFRAMES = [(ELDER, 1), (ELDER, 2, "ukiyo-e")]


@pytest.fixture(scope="module")
def five(studio):
    """A five-frame slerp walk from a plain keyframe to a styled one."""
    return studio.walk(KEYFRAMES, frames=5)


def pixels(art):
    return np.asarray(art.image)


def test_end_frames_are_exactly_the_generated_keyframes(studio, five):
    (start,) = studio.generate(ELDER, seed=1)
    (end,) = studio.generate(ELDER, style="ukiyo-e", seed=2)
    assert len(five) == 5 and isinstance(five, list)
    assert np.array_equal(pixels(five[0]), pixels(start))
    assert np.array_equal(pixels(five[-1]), pixels(end))
    # the frames in between move away from both ends
    for art in five[1:-1]:
        assert not np.array_equal(pixels(art), pixels(start))
        assert not np.array_equal(pixels(art), pixels(end))


def test_frame_records_describe_the_walk(five):
    styled = kit.styles.get("ukiyo-e").compose(ELDER)
    records = five.records
    assert [r.kind for r in records] == ["walk"] * 5
    assert [r.walk["t"] for r in records] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [r.walk["frame"] for r in records] == [0, 1, 2, 3, 4]
    assert {r.walk["frames"] for r in records} == {5}
    assert [r.seed for r in records] == [1, 1, 1, 1, 2]  # start seed; the end keyframe's at t = 1
    assert [r.prompt for r in records] == [ELDER] * 4 + [styled]
    assert records[-1].style == "ukiyo-e" and records[0].style is None
    w = records[2].walk
    assert w["keyframes"] == [[ELDER, 1, None], [ELDER, 2, "ukiyo-e"]]
    assert w["prompts"] == [ELDER, styled]
    assert (w["method"], w["loop"], w["segment"]) == ("slerp", False, 0)
    # keyframe frames went alone, the others in one batch that the records name
    assert "batch" not in records[0].extra and "batch" not in records[-1].extra
    assert [m["walk"]["t"] for m in records[2].extra["batch"]["members"]] == [0.25, 0.5, 0.75]
    assert five.keys == [(0, 0.0), (0, 0.25), (0, 0.5), (0, 0.75), (0, 1.0)]
    assert np.allclose(five.positions, [0, 0.25, 0.5, 0.75, 1])


def test_a_middle_frame_replays_exactly_from_its_png(studio, five, tmp_path):
    path = five[2].save(tmp_path)
    loaded = kit.load(path)
    assert loaded.verified and loaded.record.walk["t"] == 0.5
    result = kit.replay(path, studio)
    assert result.match and result.max_abs_diff == 0


def test_lerp_and_slerp_share_the_ends_but_not_the_middle(studio, five):
    straight = studio.walk(KEYFRAMES, frames=3, method="lerp")
    assert np.array_equal(pixels(straight[0]), pixels(five[0]))
    assert np.array_equal(pixels(straight[-1]), pixels(five[-1]))
    assert not np.array_equal(pixels(straight[1]), pixels(five[2]))
    assert straight[1].record.walk["method"] == "lerp"


class FakeStudio:
    """encode/noise like a Studio's, with SDXL-style pooled tensors: enough for walks.inputs."""

    def encode(self, prompts, negative="", guidance=0.0, *, encoding="webui", chunks=1):
        g = torch.Generator().manual_seed(len(prompts[0]))
        return {
            "prompt_embeds": torch.randn(1, 77 * chunks, 8, generator=g),
            "pooled_prompt_embeds": torch.randn(1, 16, generator=g),
        }

    def chunk_count(self, prompts, encoding="webui"):
        return 1

    def noise(self, seeds, width, height):
        return torch.stack([latents.noise(s, (4, height // 8, width // 8)) for s in seeds])


def walk_record(t, method="slerp"):
    return Record(
        kind="walk",
        seed=1,
        width=64,
        height=64,
        walk={
            "keyframes": [["a", 1, None], ["a longer prompt", 2, None]],
            "prompts": ["a", "a longer prompt"],
            "method": method,
            "loop": False,
            "segment": 0,
            "t": t,
            "frame": 0,
            "frames": 3,
        },
    )


def test_inputs_blend_every_conditioning_tensor_and_keep_the_ends_exact():
    fake = FakeStudio()
    cond, start = walks.inputs(fake, [walk_record(0.0), walk_record(0.5), walk_record(1.0)])
    a, b = fake.encode(["a"]), fake.encode(["a longer prompt"])
    assert set(cond) == {"prompt_embeds", "pooled_prompt_embeds"}
    for name in cond:
        assert cond[name].shape[0] == 3
        assert torch.equal(cond[name][0], a[name][0]) and torch.equal(cond[name][2], b[name][0])
        assert not torch.equal(cond[name][1], a[name][0]) and not torch.equal(cond[name][1], b[name][0])
    na, nb = fake.noise([1], 64, 64)[0], fake.noise([2], 64, 64)[0]
    assert torch.equal(start[0], na) and torch.equal(start[2], nb)
    # slerp keeps the noise's length half way; lerp shrinks it towards 1/sqrt(2)
    mean = (na.norm() + nb.norm()) / 2
    assert abs(start[1].norm() / mean - 1) < 1e-5
    _, straight = walks.inputs(fake, [walk_record(0.5, "lerp")])
    assert abs(straight[0].norm() / mean - 2**-0.5) < 0.02
    assert torch.allclose(straight[0], (na + nb) / 2, atol=1e-6)


def test_a_damaged_walk_record_is_a_clear_error():
    record = walk_record(0.5)
    record.walk["t"] = 1.5
    with pytest.raises(KitError, match="walk record"):
        walks.inputs(FakeStudio(), [record])


def test_more_frames_reuse_the_frames_already_made(studio, five, monkeypatch):
    rendered = []
    original = studio.render_many

    def counting(records, **kwargs):
        rendered.extend(r.walk["t"] for r in records)
        return original(records, **kwargs)

    monkeypatch.setattr(studio, "render_many", counting)
    nine = studio.walk(KEYFRAMES, frames=9, reuse=five, batch_size=2)
    assert sorted(rendered) == [0.125, 0.375, 0.625, 0.875]  # only the new in-betweens
    assert [art.image for art in nine[::2]] == [art.image for art in five]  # the very same images
    assert nine[4].record.walk["frame"] == 4 and nine[4].record.walk["frames"] == 9
    assert five[2].record.walk["frame"] == 2  # the earlier walk is untouched
    assert all(len(art.record.extra["batch"]["members"]) == 2 for art in nine[1::2])
    # a different method is a different walk: nothing is shared
    rendered.clear()
    studio.walk(KEYFRAMES, frames=2, method="lerp", reuse=five)
    assert rendered == [0.0, 1.0]


def spread(steps):
    return float(np.max(steps) / np.min(steps))


@pytest.mark.slow
def test_even_pacing_makes_steps_more_equal_and_keeps_the_ends(studio, five):
    even = studio.walk(KEYFRAMES, frames=5, even=True, reuse=five)
    assert even.even and even.pacing_space == "clip"
    before_positions, before = even.first_pass
    assert np.allclose(before_positions, [0, 0.25, 0.5, 0.75, 1])
    assert len(even.step_sizes) == 4 and np.all(even.step_sizes > 0)
    assert spread(even.step_sizes) < spread(before)
    assert even.positions[0] == 0 and even.positions[-1] == 1
    assert not np.allclose(even.positions, before_positions)  # it really was re-timed
    assert even[0].image is five[0].image and even[-1].image is five[-1].image
    middle = even[2].record.walk["t"]
    again = studio.render(even[2].record)
    assert np.array_equal(pixels(again), pixels(even[2])) and 0 < middle < 1


@pytest.mark.slow
def test_without_clip_pacing_falls_back_to_pixels_and_says_so(studio, five, monkeypatch):
    def no_clip(_studio):
        raise ImportError("open_clip is not installed")

    monkeypatch.setattr(walks, "_embedder", no_clip)
    walk = studio.walk([("a lantern", 5), ("a heron", 6)], frames=2)
    with pytest.warns(UserWarning, match="pixel distance"):
        steps = walk.step_sizes
    assert walk.pacing_space == "pixels" and len(steps) == 1 and 0 < steps[0] < 1
    with pytest.raises(KitError, match="CLIP"):
        studio.walk([("a lantern", 5), ("a heron", 6)], frames=2, even=True, space="clip", reuse=walk)


def test_identical_keyframes_make_a_still_walk(studio):
    still = studio.walk([("a lantern", 5), ("a lantern", 5)], frames=3, even=True, space="pixels", refine=0)
    assert len(still) == 3 and still.complete
    assert np.all(np.isfinite(still.positions)) and np.all(np.isfinite(still.step_sizes))
    assert np.array_equal(pixels(still[0]), pixels(still[-1]))
    # the middle frame went in a batch: the same picture up to the last bit of arithmetic
    assert np.abs(pixels(still[1]).astype(int) - pixels(still[0])).max() <= 2
    assert still.step_sizes.max() < 0.01


def test_a_loop_returns_to_the_first_keyframe(studio):
    loop = studio.walk([("a lantern", 3), ("a heron", 4)], frames=4, loop=True)
    assert loop.keys == [(0, 0.0), (0, 0.5), (1, 0.0), (1, 0.5)]
    (heron,) = studio.generate("a heron", seed=4)
    assert np.array_equal(pixels(loop[2]), pixels(heron))
    assert loop[3].record.walk["loop"] is True and loop[3].record.seed == 4


@pytest.mark.slow
def test_stop_ends_the_walk_early_and_keeps_the_frames_made(studio):
    def stop_soon(done, total):
        if done >= studio.preset.steps * 3:
            studio.stop()

    with pytest.raises(kit.Stopped, match="the walk was stopped") as caught:
        studio.walk([("a drummer", 8), ("a singer", 9)], frames=8, batch_size=2, on_step=stop_soon)
    cut = caught.value.done
    assert not cut.complete and 2 <= len(cut) < 8
    whole = studio.walk([("a drummer", 8), ("a singer", 9)], frames=3, reuse=cut)  # the studio still works
    assert len(whole) == 3 and whole.complete


def test_export_gif_and_mp4_with_a_json_sidecar(five, tmp_path):
    gif = five.save_gif(tmp_path / "elder", fps=10)
    assert gif.name == "elder.gif"
    with Image.open(gif) as image:
        assert image.n_frames == 5 and image.size == (64, 64) and image.info.get("loop") == 0
    sidecar = json.loads((tmp_path / "elder.gif.json").read_text())
    assert sidecar["animation"] == {"file": "elder.gif", "frames": 5, "format": "gif", "fps": 10.0, "loop": True}
    records = [Record.from_dict(r) for r in sidecar["records"]]
    assert [r.sha256 for r in records] == [a.record.sha256 for a in five]
    mp4 = five.save_mp4(tmp_path / "elder.mp4", fps=24)
    import imageio.v2 as iio2

    with iio2.get_reader(mp4, format="FFMPEG") as reader:
        assert reader.count_frames() == 5
    assert (tmp_path / "elder.mp4.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".kit-")]  # no temp files left
    # an export never overwrites silently
    before = gif.read_bytes()
    with pytest.raises(KitError, match="already exists"):
        five.save_gif(tmp_path / "elder.gif", fps=5)
    assert (
        gif.read_bytes() == before and json.loads((tmp_path / "elder.gif.json").read_text())["animation"]["fps"] == 10
    )
    five.save_gif(tmp_path / "elder.gif", fps=5, exist="replace")
    assert json.loads((tmp_path / "elder.gif.json").read_text())["animation"]["fps"] == 5
    beside = five.save_gif(tmp_path / "elder.gif", fps=7, exist="number")
    assert beside.name == "elder-1.gif" and (tmp_path / "elder.gif").read_bytes() != beside.read_bytes()
    assert json.loads((tmp_path / "elder-1.gif.json").read_text())["animation"] == {
        "file": "elder-1.gif",
        "frames": 5,
        "format": "gif",
        "fps": 7.0,
        "loop": True,
    }


def test_mp4_without_ffmpeg_names_the_fix(five, tmp_path, monkeypatch):
    import imageio_ffmpeg

    def missing():
        raise RuntimeError("No ffmpeg exe could be found")

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", missing)
    with pytest.raises(KitError, match="pip install imageio-ffmpeg"):
        five.save_mp4(tmp_path / "walk.mp4")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("fps", [0, -1, 500, float("nan"), "fast"])
def test_bad_fps_is_refused(five, tmp_path, fps):
    with pytest.raises(KitError, match="fps"):
        five.save_gif(tmp_path / "walk.gif", fps=fps)


@pytest.mark.parametrize(
    "keyframes, options, field",
    [
        ([(ELDER, 1)], {}, "at least 2 keyframes"),
        ([], {}, "at least 2 keyframes"),
        ("portrait", {}, "keyframes must be a list"),
        ([(ELDER, 1), ELDER], {}, r"keyframe 2 \(keyframes\[1\]\) must be a \(prompt, seed\)"),
        ([(ELDER, 1), (ELDER,)], {}, r"keyframe 2 \(keyframes\[1\]\)"),
        ([(ELDER, 1), ("  ", 2)], {}, r"keyframe 2 \(keyframes\[1\]\) prompt is empty"),
        ([(ELDER, 1), (None, 2)], {}, r"keyframe 2 \(keyframes\[1\]\) prompt must be text"),
        ([(ELDER, -1), (ELDER, 2)], {}, r"keyframe 1 \(keyframes\[0\]\): seed"),
        ([(ELDER, 1.5), (ELDER, 2)], {}, r"keyframe 1 \(keyframes\[0\]\): seed"),
        ([(ELDER, 1), (ELDER, 2, "no-such-style")], {}, r"keyframe 2 \(keyframes\[1\]\): unknown style"),
        ([(ELDER, 1), {"prompt": ELDER, "sead": 2}], {}, r"keyframe 2 \(keyframes\[1\]\) must have the keys"),
        (KEYFRAMES, {"frames": 1}, "frames must be a whole number from 2 to 2000"),
        (KEYFRAMES, {"frames": pacing.MAX_FRAMES + 1}, "frames"),
        (KEYFRAMES, {"frames": 2.5}, "frames"),
        (KEYFRAMES, {"method": "cubic"}, "method must be 'slerp' or 'lerp'"),
        (KEYFRAMES, {"loop": "yes"}, "loop"),
        (KEYFRAMES, {"batch_size": 0}, "batch_size"),
        (KEYFRAMES, {"space": "umap"}, "space"),
        (KEYFRAMES, {"size": 100}, "size"),
        (KEYFRAMES, {"steps": 0}, "steps"),
    ],
)
def test_bad_input_is_refused_before_any_model_work(keyframes, options, field):
    s = kit.Studio(preset="tiny")
    with pytest.raises(KitError, match=field):
        s.walk(keyframes, **options)
    assert s.loaded == ()


def test_keyframes_may_be_dicts_with_styles(studio):
    checked = walks.check_keyframes(
        studio, [{"prompt": " a  potter ", "seed": 3, "style": "Ukiyo-E"}, ("a potter", np.int64(4))]
    )
    assert checked == [walks.Keyframe("a potter", 3, "ukiyo-e"), walks.Keyframe("a potter", 4, None)]


def test_reuse_across_settings_is_never_mixed(studio, five):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = walks.Walk(studio, KEYFRAMES, preview=True, reuse=five)
    assert other._cache is not five._cache
    same = walks.Walk(studio, KEYFRAMES, reuse=five)
    assert same._cache is five._cache


# ---------------------------------------------------------------- what a reader sees


def test_walk_table_is_rounded_and_measures_only_when_asked(studio, five):
    walk = studio.walk(KEYFRAMES, frames=3, reuse=five)  # frames already made: nothing rendered
    table = walk.table()
    assert table.index.name == "frame"
    table = table.reset_index()
    assert list(table.columns) == ["frame", "from keyframe", "to keyframe", "t"]
    assert walk._steps is None  # a table does not run CLIP unless asked
    assert table["frame"].tolist() == [1, 2, 3] and table["t"].tolist() == [0.0, 0.5, 1.0]
    assert table["from keyframe"].tolist() == [1, 1, 1] and table["to keyframe"].tolist() == [2, 2, 2]
    measured = walk.table(steps=True)
    column = measured.columns[-1]
    assert column.startswith("step to next") and walk._steps is not None
    assert measured[column].tolist()[:2] == [round(float(x), 4) for x in walk.step_sizes]
    assert np.isnan(measured[column].tolist()[-1])  # the last frame has no next frame


def test_walk_html_names_its_keyframes_escaped_and_rounds_numbers(studio):
    walk = studio.walk([("<b>elder</b> at dusk", 1), (ELDER, 2, "ukiyo-e")], frames=2)
    html = walk._repr_html_()
    assert "<b>elder</b>" not in html and "&lt;b&gt;elder&lt;/b&gt; at dusk" in html
    assert "2 frames" in html and "slerp" in html and "style ukiyo-e" in html and "seed 2" in html
    walk.step_sizes  # noqa: B018  (measured: the step column appears)
    html = walk._repr_html_()
    assert "step to next" in html and "e-0" not in html and "&ndash;" in html
    assert f"{walk.step_sizes[0]:.4f}" in html


@pytest.mark.slow
def test_on_preview_gets_every_frame_from_the_fast_decoder_before_the_full_one(studio):
    previews = []
    walk = studio.walk([("portrait of a weaver", 1), ("portrait of a potter", 2)], frames=3, on_preview=previews.extend)
    assert len(previews) == len(walk) == 3
    assert [p.size for p in previews] == [a.image.size for a in walk]
    assert all(a.record.decoder == "vae" for a in walk)
    assert all(not np.array_equal(np.asarray(p), np.asarray(a.image)) for p, a in zip(previews, walk))
    with pytest.raises(kit.KitError, match="on_preview"):
        studio.walk([("portrait of a weaver", 1), ("portrait of a potter", 2)], frames=3, on_preview="show")
