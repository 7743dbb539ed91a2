"""The SDXL code path, offline (issue 15, point 4): the tiny-sdxl preset is built from code as diffusers'
own SDXL tests build theirs (two text encoders, the pooled text embedding and the size "time ids" read by
the UNet), saved and loaded back through ``from_pretrained``, and runs everything the kit does: generate,
preview, walk, fuse, restore, audit and replay. Its weights are random, so the tests check the plumbing
(what reaches the UNet, what is recorded, what replays bit for bit), not what the pictures show."""

import numpy as np
import pytest
import torch
from PIL import Image

import kit
from kit import presets, tiny

PROMPT = "portrait of an elder"


@pytest.fixture(scope="module")
def studio():
    s = kit.Studio(preset="tiny-sdxl", device="cpu")
    s.progress_bar = False
    return s


def pixels(art):
    return np.asarray(art.image)


def same(a, b):
    return np.array_equal(pixels(a), pixels(b))


def test_the_preset_is_an_sdxl_pipeline_loaded_from_its_saved_folder(studio):
    from diffusers import StableDiffusionXLInpaintPipeline, StableDiffusionXLPipeline
    from transformers import CLIPTextModelWithProjection

    preset = presets.get("tiny-sdxl")
    assert preset.family == "sdxl" and preset.offline and "tiny-sdxl" in kit.doctor()["presets"]
    pipe = studio.pipe
    folder = tiny.ensure_saved(preset="tiny-sdxl")
    assert type(pipe) is StableDiffusionXLPipeline and isinstance(pipe.text_encoder_2, CLIPTextModelWithProjection)
    assert studio.revision("pipeline") == folder.name == f"tiny-sdxl-{tiny.fingerprint('tiny-sdxl')}"
    assert presets.get(str(folder / "pipeline")).family == "sdxl"  # the saved folder reads as SDXL by itself
    assert not [p for p in folder.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl")]
    # the weights came back from the files (a loader that left them random would pass every shape check)
    built = tiny.build_sdxl_pipeline()
    for name in ("text_encoder", "text_encoder_2", "unet", "vae"):
        loaded, fresh = getattr(pipe, name).state_dict(), getattr(built, name).state_dict()
        assert loaded.keys() == fresh.keys()
        assert all(torch.equal(loaded[key], fresh[key]) for key in fresh), name
    assert type(studio.load("inpaint")) is StableDiffusionXLInpaintPipeline
    assert studio.pipe.vae.config.force_upcast and studio.pipe.vae.config.scaling_factor == 0.13025


@pytest.mark.slow
def test_the_pooled_text_and_the_time_ids_reach_the_unet(studio):
    """SDXL's UNet reads the second encoder's pooled embedding and six size numbers besides the token
    states: change either alone, with the same token states and noise, and the latents change."""
    cond = studio.encode(["a red hat", "a blue coat"])
    assert set(cond) == {"prompt_embeds", "pooled_prompt_embeds"}
    assert cond["prompt_embeds"].shape == (2, 77, 64) and cond["pooled_prompt_embeds"].shape == (2, 32)
    assert not torch.equal(cond["pooled_prompt_embeds"][0], cond["pooled_prompt_embeds"][1])
    red = {name: value[:1] for name, value in cond.items()}
    noise = studio.noise([1], 64, 64)

    def latents(**changes):
        call = dict(
            red,
            latents=noise.clone(),
            num_inference_steps=2,
            guidance_scale=0.0,
            height=64,
            width=64,
            output_type="latent",
            **changes,
        )
        with torch.inference_mode():
            return studio.pipe(**call).images

    plain = latents()
    assert torch.equal(plain, latents())  # same inputs, same latents: the differences below are the inputs'
    assert not torch.equal(plain, latents(pooled_prompt_embeds=cond["pooled_prompt_embeds"][1:]))
    assert not torch.equal(plain, latents(original_size=(32, 32)))
    assert not torch.equal(plain, latents(crops_coords_top_left=(8, 8)))


def test_generate_records_the_preset_and_replays_to_the_same_pixels(studio, tmp_path):
    (art,) = studio.generate(PROMPT, seed=7)
    r = art.record
    assert (r.preset, r.model, r.kind, r.seed) == ("tiny-sdxl", "kit-tiny-sdxl", "generate", 7)
    assert r.revision == studio.revision("pipeline") and art.image.size == (64, 64)
    assert pixels(art).std() > 1  # a picture, not a flat or black square
    (other,) = studio.generate("a fisherman in a blue coat", seed=7)
    assert not same(art, other)  # the prompt reaches the picture
    result = kit.replay(art.save(tmp_path), studio)
    assert result.match and result.max_abs_diff == 0


def test_a_fresh_studio_for_the_record_replays_it(studio, tmp_path):
    """A saved picture names its preset: a studio made for the record loads tiny-sdxl again, bit for bit."""
    (art,) = studio.generate(PROMPT, seed=3, n=2)[1:]  # made in a batch of two: replayed with its batch-mate
    path = art.save(tmp_path)
    fresh = kit.Studio.for_record(path)
    fresh.progress_bar = False
    assert fresh.preset.name == "tiny-sdxl"
    result = kit.replay(path, fresh)
    assert result.match and result.max_abs_diff == 0


def test_preview_decodes_with_the_tiny_taesd(studio):
    (full,) = studio.generate(PROMPT, seed=5)
    (fast,) = studio.generate(PROMPT, seed=5, preview=True)
    assert fast.record.decoder == "taesd" and "preview" in studio.loaded
    assert fast.image.size == full.image.size and not same(fast, full)


def test_walk_blends_the_pooled_embeddings_too_and_ends_on_the_keyframes(studio):
    frames = studio.walk([("a red hat", 1), ("a blue coat", 2)], frames=3)
    (first,) = studio.generate("a red hat", seed=1)
    (last,) = studio.generate("a blue coat", seed=2)
    assert same(frames[0], first) and same(frames[-1], last)
    assert not same(frames[1], first) and not same(frames[1], last)
    assert {f.record.preset for f in frames} == {"tiny-sdxl"} and frames[1].record.walk is not None


def test_fuse_blends_both_encoders_and_replays(studio, tmp_path):
    (plain,) = studio.generate(PROMPT, style="ukiyo-e", seed=3)
    assert same(studio.fuse({"ukiyo-e": 1, "art-deco": 0}, PROMPT, seed=3), plain)  # a zero weight adds nothing
    from kit import blend

    cond = blend.conditioning(studio, {"ukiyo-e": 0.5, "art-deco": 0.5}, PROMPT)
    x = studio.encode([kit.styles.get("ukiyo-e").compose(PROMPT)])
    y = studio.encode([kit.styles.get("art-deco").compose(PROMPT)])
    pooled = (0.5 * x["pooled_prompt_embeds"].double() + 0.5 * y["pooled_prompt_embeds"].double()).float()
    assert torch.allclose(cond["pooled_prompt_embeds"], pooled, atol=1e-6)
    art = studio.fuse({"ukiyo-e": 0.5, "art-deco": 0.5}, PROMPT, seed=3)
    assert not same(art, plain) and art.record.fusion == {"ukiyo-e": 0.5, "art-deco": 0.5}
    result = kit.replay(art.save(tmp_path), studio)
    assert result.match and result.max_abs_diff == 0


def test_restore_repaints_only_the_mask_with_the_sdxl_inpainting_pipeline(studio, tmp_path):
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    picture.save(tmp_path / "damaged.png")  # from a file: the record keeps its path, so a replay finds it
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 40, 40))
    art = studio.restore(tmp_path / "damaged.png", mask, prompt="a face", seed=1)
    region = np.asarray(mask) == 255
    before, after = np.asarray(picture), pixels(art)
    assert np.array_equal(after[~region], before[~region])
    assert (after[region] != before[region]).any(axis=1).mean() > 0.9
    assert (art.record.kind, art.record.model, art.record.preset) == ("restore", "kit-tiny-sdxl-inpaint", "tiny-sdxl")
    result = kit.replay(art.save(tmp_path / "out"), studio)
    assert result.match and result.max_abs_diff == 0


def test_an_audit_runs_on_the_sdxl_path_and_says_the_weights_are_random(studio):
    embedder = kit.Embedder(preset="tiny-sdxl", cache=False)
    report = kit.audit(
        studio, "a portrait of a {term}", ["potter", "weaver"], seeds=[1, 2], embedder=embedder, rounds=100
    )
    assert report.settings["preset"] == "tiny-sdxl" and report.settings["model"] == "kit-tiny-sdxl"
    assert report.vectors.shape == (2, 2, 64) and np.isfinite(report.vectors).all()
    made = report.artworks["weaver"][1]
    assert made.record.preset == "tiny-sdxl" and same(studio.render(made.record), made)  # replayed bit for bit
    assert "random weights" in report.caveats


def test_float16_decodes_in_float32_where_the_vae_asks_and_gives_a_picture(studio):
    """The known SDXL failure: in float16 the VAE's activations overflow (its config says force_upcast) and
    the picture comes out NaN, shown black. The kit's own decode upcasts, so a float16 studio's picture
    matches the float32 one; the same latents decoded by the float16 VAE as loaded are not finite."""
    half = kit.Studio(preset="tiny-sdxl", device="cpu", dtype="float16")
    half.progress_bar = False
    (art,) = half.generate(PROMPT, seed=7)
    (reference,) = studio.generate(PROMPT, seed=7)
    assert half.pipe.vae.dtype == torch.float16 and half.pipe.vae.config.force_upcast
    assert pixels(art).std() > 1 and np.abs(pixels(art).astype(int) - pixels(reference)).max() <= 4
    cond = half.encode([PROMPT])
    with torch.inference_mode():
        latents = half.pipe(
            **cond,
            latents=half.noise([7], 64, 64).half(),
            num_inference_steps=2,
            guidance_scale=0.0,
            height=64,
            width=64,
            output_type="latent",
        ).images
        assert torch.isfinite(latents).all()
        unsafe = half.pipe.vae.decode(latents / half.pipe.vae.config.scaling_factor).sample  # no upcast
    assert not torch.isfinite(unsafe).all()
    assert np.array_equal(pixels(art), np.asarray(half.decode(latents)[0]))  # the kit's decode, same latents
    assert half.pipe.vae.dtype == torch.float16  # the VAE is left as loaded
