"""Studio on the tiny preset: reproducible pixels, records, bad input before any model work."""

import numpy as np
import pytest

import kit
from kit import presets
from kit.errors import KitError


def pixels(art):
    return np.asarray(art.image)


def test_same_seed_same_pixels_and_a_complete_record(studio):
    (a,) = studio.generate("portrait of an elder", seed=11)
    (b,) = studio.generate("portrait of an elder", seed=11)
    assert np.array_equal(pixels(a), pixels(b))
    r = a.record
    assert (r.kind, r.prompt, r.seed, r.preset) == ("generate", "portrait of an elder", 11, "tiny")
    assert (r.steps, r.guidance, r.width, r.height) == (studio.preset.steps, studio.preset.guidance, 64, 64)
    assert r.scheduler == type(studio.pipe.scheduler).__name__ and r.sampler
    assert r.decoder == "vae" and r.device == "cpu" and r.dtype == "float32"
    assert r.revision and r.revision.startswith("tiny-")
    assert len(r.sha256) == 64


def test_other_seed_other_pixels(studio):
    (a,) = studio.generate("portrait of an elder", seed=1)
    (b,) = studio.generate("portrait of an elder", seed=2)
    assert not np.array_equal(pixels(a), pixels(b))


def test_batch_uses_consecutive_seeds_and_each_image_replays_exactly(studio, tmp_path):
    arts = studio.generate("a weaver at her loom", seed=40, n=3)
    assert [a.record.seed for a in arts] == [40, 41, 42]
    batch = arts[1].record.extra["batch"]
    assert batch["index"] == 1 and [m["seed"] for m in batch["members"]] == [40, 41, 42]
    loaded = kit.load(arts[1].save(tmp_path))
    again = studio.render(loaded.record)
    assert np.array_equal(pixels(again), pixels(arts[1]))
    (alone,) = studio.generate("a weaver at her loom", seed=41)
    assert "batch" not in alone.record.extra
    # alone or in a batch, the picture is the same up to the last bit of arithmetic
    assert np.abs(pixels(alone).astype(int) - pixels(arts[1])).max() <= 2


def test_seed_none_draws_and_records_a_seed(studio):
    (a,) = studio.generate("a drummer", seed=None)
    (again,) = studio.generate("a drummer", seed=a.record.seed)
    assert np.array_equal(pixels(a), pixels(again))


def test_style_composes_the_prompt_from_the_catalogue(studio):
    (art,) = studio.generate("portrait of an elder", style="ukiyo-e", seed=5)
    style = kit.styles.get("ukiyo-e")
    assert art.record.style == "ukiyo-e"
    assert art.record.subject == "portrait of an elder"
    assert art.record.prompt == style.compose("portrait of an elder")
    (plain,) = studio.generate("portrait of an elder", seed=5)
    assert not np.array_equal(pixels(art), pixels(plain))


def test_preview_decodes_with_taesd_and_says_so(studio):
    (full,) = studio.generate("a potter", seed=3)
    (fast,) = studio.generate("a potter", seed=3, preview=True)
    assert fast.record.decoder == "taesd" and full.record.decoder == "vae"
    assert fast.image.size == full.image.size
    assert not np.array_equal(pixels(full), pixels(fast))


def test_on_preview_shows_the_taesd_pictures_first_then_returns_the_full_images(studio):
    shown, order = [], []
    arts = studio.generate(
        "a potter",
        seed=3,
        n=2,
        on_step=lambda done, total: order.append("step"),
        on_preview=lambda images: (shown.extend(images), order.append("preview")),
    )
    fast = studio.generate("a potter", seed=3, n=2, preview=True)
    full = studio.generate("a potter", seed=3, n=2)
    assert order[-1] == "preview" and order.count("preview") == 1  # once per batch, after the last step
    assert [np.asarray(i).tolist() for i in shown] == [pixels(a).tolist() for a in fast]  # the same latents, TAESD
    assert [a.record.decoder for a in arts] == ["vae", "vae"]
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(arts, full))  # the preview changes nothing


def test_a_stop_pressed_while_the_preview_shows_keeps_that_batch_and_ends_the_run(tmp_path):
    s = kit.Studio(preset="tiny", gallery=tmp_path / "g", batch_size=2)
    s.progress_bar = False
    run = kit.Run()
    with pytest.raises(kit.Stopped) as caught:
        s.generate("a potter", seed=3, n=4, run=run, on_preview=lambda images: run.stop())
    done = caught.value.done
    assert [a.record.seed for a in done] == [3, 4] and {a.record.decoder for a in done} == {"vae"}
    assert len(kit.Gallery(tmp_path / "g")) == 2  # its diffusion had ended: decoded and kept, never the next batch


def test_without_a_loadable_preview_decoder_the_full_image_comes_as_always(tmp_path):
    from kit import tiny

    folder = tiny.ensure_saved(tmp_path) / "pipeline"
    preset = presets.Preset(name="no-taesd", model=str(folder), preview="nobody/missing-taesd", min_size=64)
    s = kit.Studio(preset=preset, dtype="float32")
    s.progress_bar = False
    shown = []
    with pytest.warns(UserWarning, match="no fast preview first"):
        (art,) = s.generate("a potter", seed=3, size=64, on_preview=shown.append)
    assert shown == [] and art.record.decoder == "vae"


def test_on_preview_must_be_a_function(studio):
    with pytest.raises(KitError, match="on_preview"):
        studio.generate("a potter", on_preview="yes")


def test_on_a_cpu_the_convolutions_run_channels_last(studio):
    import torch

    studio.generate("a potter", seed=3, preview=True)  # loads the pipeline and the preview decoder
    for module in (studio.pipe.unet, studio.pipe.vae, studio.preview_vae):
        weight = next(p for p in module.parameters() if p.dim() == 4)
        assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def test_bfloat16_is_the_cpu_default_only_where_the_cpu_computes_it(tmp_path):
    flags = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f {}\n"
    cpuinfo = tmp_path / "cpuinfo"
    for extra, expected in (("avx512_bf16", "avx512_bf16"), ("amx_bf16 amx_tile", "amx_bf16"), ("", None)):
        cpuinfo.write_text(flags.format(extra))
        assert presets.native_bf16(cpuinfo) == expected
    assert presets.native_bf16(tmp_path / "missing") is None
    import torch

    dtype, reason = presets.dtype_choice("cpu")
    assert dtype == (torch.bfloat16 if presets.native_bf16() else torch.float32)
    assert reason and (presets.native_bf16() or "float32") in reason
    assert presets.dtype_choice("cuda")[0] == torch.float16


def test_size_and_guidance_are_used(studio):
    (art,) = studio.generate("a potter", seed=3, size=(96, 64), guidance=3.0, negative="blurry", steps=1)
    assert art.image.size == (96, 64)
    assert (art.record.width, art.record.height, art.record.guidance, art.record.negative) == (96, 64, 3.0, "blurry")


def test_replay_reproduces_the_saved_image(studio, tmp_path):
    (art,) = studio.generate("portrait of a fisherman", seed=9, n=1)
    path = art.save(tmp_path)
    result = kit.replay(path, studio)
    assert result.match and result.max_abs_diff == 0


def test_a_record_is_replayed_in_its_own_dtype(tmp_path):
    fast = kit.Studio(preset="tiny", dtype="bfloat16")
    fast.progress_bar = False
    path = fast.generate("portrait of a fisherman", seed=9)[0].save(tmp_path)
    assert kit.load(path).record.dtype == "bfloat16"
    other = kit.replay(path, kit.Studio(preset="tiny", dtype="float32"))
    assert "dtype" in other.differences  # another dtype: said so, whatever the pixels
    studio = kit.Studio.for_record(path)
    assert (studio.preset.name, str(studio.dtype), studio.device) == ("tiny", "torch.bfloat16", "cpu")
    assert kit.replay(path, studio).match


def test_gallery_studio_saves_every_image(tmp_path):
    s = kit.Studio(preset="tiny", gallery=tmp_path / "g")
    s.progress_bar = False
    arts = s.generate("a singer", seed=1, n=2)
    gallery = kit.Gallery(tmp_path / "g")
    assert len(gallery) == 2
    assert [a.record.sha256 for a in gallery] == [a.record.sha256 for a in arts]


def test_a_stopped_run_raises_stopped_with_what_is_finished_and_the_studio_stays_usable(studio):
    run = kit.Run(on_step=lambda done, total: run.stop() if done > studio.preset.steps else None)  # in batch 2
    with pytest.raises(kit.Stopped) as caught:
        studio.generate("a dancer", seed=1, n=studio.batch_size * 2, run=run)
    arts = caught.value.done
    assert len(arts) == studio.batch_size and caught.value.total == studio.batch_size * 2
    again = studio.render(arts[0].record)
    assert np.array_equal(pixels(again), pixels(arts[0]))


def test_tokens_are_counted_per_chunk_of_the_encoders_window_without_loading_the_model():
    s = kit.Studio(preset="tiny")
    assert s.count_tokens("a cat") == [2] and s.count_tokens("a cat!") == [3] and s.count_tokens("") == [0]
    assert s.count_tokens("a " * 100) == [75, 25]
    assert s.count_tokens(" ".join(["!"] * 80)) == [75, 5]  # "!" is a word here, whatever pads the tokenizer
    assert s.loaded == ()  # the tokenizer alone: no weights were read
    with pytest.raises(KitError, match="prompt"):
        s.count_tokens(["not", "text"])


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(prompt=""), "prompt"),
        (dict(prompt="   \n"), "prompt"),
        (dict(prompt=None), "prompt"),
        (dict(prompt="x" * 6000), "prompt"),
        (dict(size=100), "size"),
        (dict(size=4096), "size"),
        (dict(size=(64, 0)), "size"),
        (dict(size="big"), "size"),
        (dict(steps=0), "steps"),
        (dict(steps=10_000), "steps"),
        (dict(steps=2.5), "steps"),
        (dict(n=-1), "n"),
        (dict(n=0), "n"),
        (dict(seed=-5), "seed"),
        (dict(seed=1.5), "seed"),
        (dict(seed=2**64), "seed"),
        (dict(guidance=float("nan")), "guidance"),
        (dict(guidance=-1), "guidance"),
        (dict(style="no-such-style"), "no-such-style"),
    ],
)
def test_bad_input_is_refused_before_any_model_work(kwargs, field):
    s = kit.Studio(preset="tiny")
    args = {"prompt": "portrait", **kwargs}
    with pytest.raises(KitError, match=field):
        s.generate(args.pop("prompt"), **args)
    assert s.loaded == ()  # nothing was loaded


def test_unknown_preset_and_device_are_clear_errors():
    with pytest.raises(KitError, match="unknown preset 'nope'.*tiny"):
        kit.Studio(preset="nope")
    with pytest.raises(KitError, match="device"):
        kit.Studio(preset="tiny", device="tpu")


def test_real_preset_offline_and_uncached_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    s = kit.Studio(preset="sd-turbo")
    with pytest.raises(KitError) as err:
        s.generate("portrait", seed=1)
    assert "kit download sd-turbo" in str(err.value) and "KIT_PRESET=tiny" in str(err.value)


def test_local_folder_preset_loads_through_from_pretrained(tmp_path):
    from kit import tiny

    folder = tiny.ensure_saved(tmp_path) / "pipeline"
    preset = presets.get(str(folder))
    assert preset.model == str(folder) and preset.family == "sd"
    s = kit.Studio(preset=str(folder))
    s.progress_bar = False
    (art,) = s.generate("portrait", seed=4, size=128, steps=1, guidance=0)
    ref = kit.Studio(preset="tiny", dtype=s.dtype)  # a folder follows the CPU's dtype choice; tiny keeps float32
    ref.progress_bar = False
    (same,) = ref.generate("portrait", seed=4, size=128, steps=1, guidance=0)
    assert np.array_equal(pixels(art), pixels(same))


def test_a_preset_of_local_folders_restores_offline_with_its_inpainting_folder(tmp_path, monkeypatch):
    from kit import tiny
    from kit.features.damage import damage

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = tiny.ensure_saved(tmp_path)
    preset = presets.Preset(
        name="folders",
        model=str(root / "pipeline"),
        preview=str(root / "taesd"),
        inpaint=str(root / "inpaint"),
        size=64,
        min_size=32,
        max_size=128,
        steps=2,
    )
    assert presets.cached(preset) == {"pipeline": True, "preview": True, "inpaint": True, "clip": False}
    s = kit.Studio(preset=preset, dtype="float32")
    s.progress_bar = False
    (art,) = s.generate("portrait", seed=4)
    damaged, mask = damage(art.image, "holes", seed=1, amount=0.1)
    restored = s.restore(damaged, mask, prompt="portrait", seed=0)
    assert restored.record.kind == "restore" and s.loaded == ("pipeline", "inpaint")


def test_a_model_folder_with_only_pickle_weights_is_refused(tmp_path):
    """Weights are data only: a folder whose weights are .bin pickles is refused, naming safetensors,
    and the error talks about the folder, never about the Hugging Face cache."""
    import shutil

    from kit import tiny

    folder = tmp_path / "pickled"
    shutil.copytree(tiny.ensure_saved(tmp_path / "saved") / "pipeline", folder)
    for weights in folder.rglob("*.safetensors"):
        weights.rename(weights.with_name("diffusion_pytorch_model.bin"))
    s = kit.Studio(preset=str(folder))
    with pytest.raises(KitError, match="only pickle weights.*safetensors") as caught:
        s.generate("portrait", seed=1)
    assert "Hugging Face" not in str(caught.value) and "kit download" not in str(caught.value)
    assert s.loaded == ()


def test_a_broken_model_folder_is_named_in_the_error(tmp_path):
    from kit import tiny

    folder = tmp_path / "broken"
    import shutil

    shutil.copytree(tiny.ensure_saved(tmp_path / "saved") / "pipeline", folder)
    shutil.rmtree(folder / "unet")
    s = kit.Studio(preset=str(folder))
    with pytest.raises(KitError, match="cannot load the pipeline from the folder") as caught:
        s.generate("portrait", seed=1)
    assert "kit download" not in str(caught.value)
