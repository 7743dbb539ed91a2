"""The offline tiny preset: real tokenizer ids, the shipped trained weights, seeded random builds,
save/load round trips."""

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from kit import tiny

# ---------------------------------------------------------------- prompts

HAND_WRITTEN = [
    "Portrait of an elder, Ukiyo-e style",
    "portrait of an elder in the style of ukiyo-e",
    "Café au lait, crème brûlée, naïve façade",
    "ÉCOLE DE PARIS — Ångström, Øresund, Łódź",
    "葛飾北斎の浮世絵、富士山と波",
    "水墨画 portrait 山水画 in ink",
    "한국 민화 호랑이와 까치",
    "🎨🖼️ portrait 👩🏽‍🎨 art ✨🇯🇵",
    "मधुबनी चित्रकला, भारत की लोक कला",
    "خط عربي، فن إسلامي، زخرفة",
    "Ὀδυσσεύς ΣΟΦΙΑ σοφίας ΟΔΟΣ",  # word-final capital sigma lowercases to "ς"
    "Straße GROẞ İstanbul ışık",
    "  lots   of\twhitespace\n\nhere  ",
    "“curly quotes” and ‘single’ quotes",
    "ﬁne ﬂowers, ﬀ ligatures",
    "ＦＵＬＬＷＩＤＴＨ　ｔｅｘｔ！ｶﾀｶﾅ",
    "tom &amp; jerry &lt;3, &amp;amp; twice",
    "Ã©tÃ© mojibake",
    "a\u00a0b\u2003c\u200bd\u2028e",
    "control\x07bell and \ufeffbom and soft\u00adhyphen",
    "don't it's we're I'VE THEY'LL you'd",
    "Hello! World!!! ?! ...",
    "numbers 12345 and 3.14 and 1/2 ½ ²",
    "email@example.com #hashtag @user",
    "C++ <html> [brackets] {braces} (parens)",
    "",
    "   ",
    "a" * 200,
    "🙂" * 40,
    "e\u0301 combining accent",
    "Ⅻ roman, ㎏ ㍻, ǅ titlecase",
    "Ελληνική τέχνη, русский авангард, עברית",
    "ศิลปะไทย, tiếng Việt, ქართული",
    "portrait,style,no spaces,between,commas",
    "MiXeD CaSe PoRtRaIt Of A qUeEn",
]

SUBJECTS = ["portrait of an elder", "a young dancer", "a fisherman", "Queen", "self-portrait", "a child reading"]
STYLES = ["ukiyo-e", "Art Deco", "Madhubani", "Aboriginal dot painting", "Benin bronze", "Persian miniature"]
EXTRAS = [
    "é",
    "ñ",
    "ü",
    "ç",
    "ß",
    "北斎",
    "🎨",
    "👩🏾",
    "क",
    "ع",
    "Σ",
    "!",
    "?",
    "&amp;",
    "“",
    "’",
    "ﬁ",
    "Ａ",
    "\t",
    "  ",
]


def generated_prompts(count=300, seed=0):
    """Varied prompts: case, punctuation, whitespace and unicode mixed into ordinary phrases."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        words = f"{rng.choice(SUBJECTS)}, {rng.choice(STYLES)} style".split(" ")
        for _ in range(rng.randint(0, 4)):
            words.insert(rng.randint(0, len(words)), rng.choice(EXTRAS))
        text = rng.choice([" ", "  ", "\n"]).join(words)
        case = rng.random()
        text = text.upper() if case < 0.2 else text.title() if case < 0.4 else text
        prompts.append(text * rng.choice([1, 1, 1, 8]))  # some longer than 77 tokens
    return prompts


PROMPTS = HAND_WRITTEN + generated_prompts()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models are all small ops: one thread is faster and steadier on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def open_clip_ids():
    import open_clip

    tokenize = open_clip.get_tokenizer("ViT-B-32")

    def ids(text):
        row = tokenize([text])[0].tolist()
        return row[: row.index(49407) + 1]  # up to the end token; open_clip pads with 0

    return ids


def kit_ids(tokenizer, text):
    return tokenizer(tiny.clean_text(text), truncation=True, max_length=77).input_ids


def mismatches(tokenizer, reference):
    return [
        (text, reference(text), kit_ids(tokenizer, text))
        for text in PROMPTS
        if reference(text) != kit_ids(tokenizer, text)
    ]


# ---------------------------------------------------------------- tokenizer


def test_vocabulary_is_open_clips():
    from open_clip.tokenizer import SimpleTokenizer

    vocab, merges = tiny._clip_bpe()
    theirs = SimpleTokenizer().encoder
    renamed = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    assert len(vocab) == 49408 and len(merges) == 48894
    assert vocab == {renamed.get(token, token): i for token, i in theirs.items()}
    assert vocab["!"] == 0 and vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407


def test_token_ids_equal_open_clip(open_clip_ids):
    tokenizer = tiny.clip_tokenizer()
    assert len(PROMPTS) > 300
    bad = mismatches(tokenizer, open_clip_ids)
    assert not bad, f"{len(bad)} prompts differ, first: {[text for text, *_ in bad[:3]]}"
    long_prompt = max(PROMPTS, key=len)
    assert len(kit_ids(tokenizer, long_prompt)) == 77  # truncated, still ends with the end token


def test_clean_text_is_needed(open_clip_ids):
    """Without clean_text, ftfy/HTML/lowercasing differences show up: the helper is doing real work."""
    tokenizer = tiny.clip_tokenizer()
    for text in ["“curly”", "ﬁne", "&amp;", "ΟΔΟΣ", "ＡＢＣ"]:
        raw = tokenizer(text).input_ids
        assert raw != open_clip_ids(text)
        assert kit_ids(tokenizer, text) == open_clip_ids(text)
    assert tiny.clean_text("  “Hi”\t&amp;  ΟΔΟΣ ﬁ ") == '"hi" & οδος fi'


def test_padding_and_length():
    tokenizer = tiny.clip_tokenizer()
    assert tokenizer.model_max_length == 77 and tokenizer.pad_token_id == 49407
    ids = tokenizer("a portrait", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[:4] == [49406, 320, 5352, 49407]


def test_literal_special_tokens(open_clip_ids):
    """The one documented difference: a literal "<|endoftext|>" is one token unless split is asked for."""
    tokenizer = tiny.clip_tokenizer()
    text = "a <|endoftext|> b"
    assert kit_ids(tokenizer, text) != open_clip_ids(text)
    tokenizer.split_special_tokens = True
    assert kit_ids(tokenizer, text) == open_clip_ids(text)


# Ids the tiny preset's shipped weights were trained on (recorded with the tokenizer as built before it was
# read from open_clip's own tokenizer data and loaded through from_pretrained). Raw prompts, no clean_text:
# what the pipeline sees. "!" is id 0 and "!</w>" 256; the tiny preset pads with the end token, not "!".
PINNED_IDS = {
    "!": [49406, 256, 49407],
    "a portrait!": [49406, 320, 5352, 256, 49407],
    "wow!!! red hair, blue eyes!": [49406, 2781, 995, 736, 2225, 267, 1746, 3095, 256, 49407],
    "a ! b !! c!!!": [49406, 320, 256, 321, 748, 322, 995, 49407],
    "Hello, WORLD! it's 3:45pm": [49406, 3306, 267, 1002, 256, 585, 568, 274, 281, 275, 276, 990, 49407],
    "portrait of an elder, ukiyo-e style": [49406, 5352, 539, 550, 14416, 267, 37435, 3497, 268, 324, 1844, 49407],
    "café naïve “quoted” &amp; more": [
        49406,
        15304,
        1097,
        35689,
        563,
        728,
        506,
        27706,
        728,
        507,
        261,
        6259,
        282,
        750,
        49407,
    ],
}


def test_token_ids_are_the_ones_the_weights_learned():
    tokenizer = tiny.clip_tokenizer()
    assert {text: tokenizer(text).input_ids for text in PINNED_IDS} == PINNED_IDS
    padded = tokenizer("hi!", padding="max_length", max_length=77).input_ids
    assert padded[:4] == [49406, 1883, 256, 49407] and padded[4:] == [49407] * 73


def test_written_tokenizer_files_load(tmp_path, open_clip_ids):
    from transformers import CLIPTokenizerFast  # transformers 5's CLIPTokenizer is 4.x's fast one

    folder = tiny.write_clip_tokenizer(tmp_path / "tok")
    assert {p.name for p in folder.iterdir()} >= {"vocab.json", "merges.txt", "tokenizer_config.json"}
    loaded = CLIPTokenizerFast.from_pretrained(folder)
    assert loaded.model_max_length == 77 and len(loaded) == 49408
    assert not mismatches(loaded, open_clip_ids)
    assert {text: loaded(text).input_ids for text in PINNED_IDS} == PINNED_IDS


# ---------------------------------------------------------------- building


def state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# pipeline attribute or builder -> the shipped file it loads
COMPONENTS = {"unet": "unet", "vae": "vae", "text_encoder": "text_encoder"}


def shipped(name):
    from safetensors.torch import load_file

    return load_file(str(tiny.weights_file(name)))


def equals_file(module, weights):
    """The module's weights are the file's (saved as float16, loaded into float32 parameters). The text
    encoder's file was written by transformers 5, whose CLIPTextModel has no "text_model." level; 4.x's has."""
    ours = {k.removeprefix("text_model."): v for k, v in module.state_dict().items()}
    return ours.keys() == weights.keys() and all(torch.equal(ours[k], weights[k].to(ours[k].dtype)) for k in ours)


def test_trained_builds_are_the_shipped_weights_whatever_the_seed():
    pipe, other = tiny.build_pipeline(seed=0), tiny.build_pipeline(seed=1)
    for name, file in COMPONENTS.items():
        assert equals_file(getattr(pipe, name), shipped(file)), name
        assert same_weights(state(getattr(pipe, name)), state(getattr(other, name))), name
    inpaint = tiny.build_unet(seed=2, inpaint=True)
    assert equals_file(inpaint, shipped("inpaint_unet")) and equals_file(tiny.build_unet(seed=3), shipped("unet"))
    assert equals_file(tiny.build_preview_vae(0), shipped("taesd"))
    assert equals_file(tiny.build_preview_vae(4), shipped("taesd"))
    assert tiny.weights_file("preview_vae") == tiny.weights_file("taesd")


def test_random_builds_are_deterministic_per_seed():
    pipe = tiny.build_pipeline(seed=0, trained=False)
    again = tiny.build_pipeline(seed=0, trained=False)
    other = tiny.build_pipeline(seed=1, trained=False)
    for name, file in COMPONENTS.items():
        assert same_weights(state(getattr(pipe, name)), state(getattr(again, name))), name
        assert not same_weights(state(getattr(pipe, name)), state(getattr(other, name))), name
        assert not equals_file(getattr(pipe, name), shipped(file)), name  # random, not the shipped weights
    random_preview = state(tiny.build_preview_vae(0, trained=False))
    assert same_weights(random_preview, state(tiny.build_preview_vae(0, trained=False)))
    assert not same_weights(random_preview, state(tiny.build_preview_vae(1, trained=False)))
    assert not equals_file(tiny.build_preview_vae(0, trained=False), shipped("taesd"))
    random_inpaint = state(tiny.build_unet(0, trained=False, inpaint=True))
    assert same_weights(random_inpaint, state(tiny.build_unet(0, trained=False, inpaint=True)))
    assert not same_weights(random_inpaint, state(tiny.build_unet(1, trained=False, inpaint=True)))


def test_vae_scaling_factor_comes_from_the_card():
    trained, random_vae = tiny.build_vae(), tiny.build_vae(trained=False)
    assert trained.config.scaling_factor == tiny.card()["vae_scaling_factor"]
    assert random_vae.config.scaling_factor == 0.18215
    assert tiny.build_pipeline().vae.config.scaling_factor == tiny.card()["vae_scaling_factor"]
    assert tiny.VAE["scaling_factor"] == 0.18215  # the config table is left alone


def test_missing_weights_and_card_name_the_training_script(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="train_tiny"):
        tiny.weights_file("no-such-part")
    monkeypatch.setattr(tiny, "WEIGHTS", tmp_path)
    tiny.card.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="train_tiny"):
            tiny.card()
        with pytest.raises(FileNotFoundError, match="train_tiny"):
            tiny.build_unet()
        assert tiny.build_unet(trained=False).config.in_channels == 4  # random builds need no files
    finally:
        tiny.card.cache_clear()


def test_build_leaves_callers_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    tiny.build_preview_vae(seed=5)
    assert torch.equal(torch.rand(4), expected)


def test_pipeline_shape():
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    pipe = tiny.build_pipeline()
    assert isinstance(pipe, StableDiffusionPipeline)
    assert pipe.vae_scale_factor == 4  # three VAE levels: a 64 px picture has 16 x 16 latents
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 64
    assert pipe.safety_checker is None and pipe.feature_extractor is None
    assert isinstance(pipe.scheduler, EulerDiscreteScheduler)
    assert pipe.scheduler.config.timestep_spacing == "trailing"
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size == 32
    assert pipe.text_encoder.config.vocab_size == len(pipe.tokenizer) == 49408
    assert pipe.vae.config.latent_channels == pipe.unet.config.in_channels == 4


def test_inpaint_shares_text_encoder_and_vae():
    from diffusers import StableDiffusionInpaintPipeline

    for trained in (True, False):
        pipe, inpaint = tiny.build_pipeline(trained=trained), tiny.build_pipeline(inpaint=True, trained=trained)
        assert isinstance(inpaint, StableDiffusionInpaintPipeline) and inpaint.unet.config.in_channels == 9
        assert same_weights(state(pipe.text_encoder), state(inpaint.text_encoder)), trained
        assert same_weights(state(pipe.vae), state(inpaint.vae)), trained
        assert inpaint.vae.config.scaling_factor == pipe.vae.config.scaling_factor
    assert equals_file(tiny.build_pipeline(inpaint=True).unet, shipped("inpaint_unet"))


def quiet(pipe):
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_one_step_generation():
    pipe = quiet(tiny.build_pipeline())
    generator = torch.Generator().manual_seed(0)
    out = pipe("a portrait", num_inference_steps=1, guidance_scale=0.0, height=64, width=96, generator=generator)
    image = out.images[0]
    assert isinstance(image, Image.Image) and image.size == (96, 64)
    assert np.asarray(image).std() > 0  # not a blank frame


def test_preview_vae_decodes_pipeline_latents():
    pipe = quiet(tiny.build_pipeline())
    latents = pipe("x", num_inference_steps=1, guidance_scale=0.0, height=64, width=64, output_type="latent").images
    assert latents.shape == (1, 4, 16, 16)
    for trained in (True, False):
        with torch.no_grad():
            pixels = tiny.build_preview_vae(trained=trained).decode(latents).sample
        assert pixels.shape == (1, 3, 64, 64) and torch.isfinite(pixels).all()


def test_inpaint_runs():
    pipe = quiet(tiny.build_pipeline(inpaint=True))
    image = Image.new("RGB", (64, 64), (200, 120, 40))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    generator = torch.Generator().manual_seed(0)
    out = pipe(
        "restore",
        image=image,
        mask_image=mask,
        num_inference_steps=1,
        strength=1.0,
        guidance_scale=0.0,
        height=64,
        width=64,
        generator=generator,
    ).images[0]
    assert isinstance(out, Image.Image) and out.size == (64, 64)


# ---------------------------------------------------------------- on disk


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return tiny.ensure_saved(tmp_path_factory.mktemp("cache"))


def test_save_round_trip(saved):
    from diffusers import AutoencoderTiny, DiffusionPipeline, StableDiffusionInpaintPipeline

    built = quiet(tiny.build_pipeline())
    loaded = quiet(DiffusionPipeline.from_pretrained(saved / "pipeline"))
    assert type(loaded) is type(built)
    for name, file in COMPONENTS.items():
        assert same_weights(state(getattr(built, name)), state(getattr(loaded, name))), name
        assert equals_file(getattr(loaded, name), shipped(file)), name  # the trained weights, none left random
    assert loaded.vae.config.scaling_factor == tiny.card()["vae_scaling_factor"]
    assert loaded.tokenizer("Portrait! 北斎").input_ids == built.tokenizer("Portrait! 北斎").input_ids
    assert loaded.tokenizer.model_max_length == 77
    assert loaded.scheduler.config.timestep_spacing == "trailing"

    def render(pipe):
        generator = torch.Generator().manual_seed(7)
        return pipe(
            "ukiyo-e portrait",
            num_inference_steps=2,
            guidance_scale=2.0,
            height=64,
            width=64,
            generator=generator,
            output_type="np",
        ).images

    assert np.array_equal(render(built), render(loaded))

    preview = AutoencoderTiny.from_pretrained(saved / "taesd")
    assert same_weights(state(preview), state(tiny.build_preview_vae()))
    assert equals_file(preview, shipped("taesd"))
    inpaint = DiffusionPipeline.from_pretrained(saved / "inpaint")
    assert isinstance(inpaint, StableDiffusionInpaintPipeline) and inpaint.unet.config.in_channels == 9
    assert same_weights(state(inpaint.unet), state(tiny.build_pipeline(inpaint=True).unet))
    assert equals_file(inpaint.unet, shipped("inpaint_unet"))
    assert same_weights(state(inpaint.text_encoder), state(loaded.text_encoder))
    assert same_weights(state(inpaint.vae), state(loaded.vae))


def test_only_safetensors_written(saved):
    files = [p for p in saved.rglob("*") if p.is_file()]
    suffixes = {p.suffix for p in files}
    assert suffixes <= {".json", ".safetensors", ".txt"}, suffixes  # .txt: merges.txt, as transformers 4 saves
    assert sum(p.suffix == ".safetensors" for p in files) == 7  # 3 + 3 pipeline models, 1 preview VAE


def test_ensure_saved_reuses_folder(saved, monkeypatch):
    assert saved.name == f"tiny-{tiny.fingerprint()}"
    before = (saved / "pipeline" / "model_index.json").stat().st_mtime_ns

    def no_rebuild(folder):
        raise AssertionError("ensure_saved rebuilt an existing preset")

    monkeypatch.setattr(tiny, "save", no_rebuild)
    assert tiny.ensure_saved(saved.parent) == saved
    assert (saved / "pipeline" / "model_index.json").stat().st_mtime_ns == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temp folders left


def fake_save(folder):
    (folder / "pipeline").mkdir()
    (folder / "pipeline" / "model_index.json").write_text("{}")
    return folder


def test_ensure_saved_default_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tiny, "save", fake_save)
    folder = tiny.ensure_saved()
    assert folder.parent == tmp_path / "cache" and (folder / "pipeline" / "model_index.json").exists()


def test_ensure_saved_loses_race_gracefully(tmp_path, monkeypatch):
    target = tmp_path / f"tiny-{tiny.fingerprint()}"

    def racing_save(folder):
        fake_save(folder)
        target.mkdir()  # meanwhile another process renames its finished copy into place
        (target / "winner").write_text("first")
        return folder

    monkeypatch.setattr(tiny, "save", racing_save)
    assert tiny.ensure_saved(tmp_path) == target
    assert (target / "winner").read_text() == "first"  # the winner's folder is kept, ours discarded
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_fingerprint_follows_configs(monkeypatch):
    before = tiny.fingerprint()
    monkeypatch.setitem(tiny.UNET, "layers_per_block", 2)
    assert tiny.fingerprint() != before


def test_fingerprint_follows_the_shipped_weights(monkeypatch):
    """New trained weights (a new card) get a new folder: a cached preset is never stale."""
    before = tiny.fingerprint()
    card = json.loads(json.dumps(tiny.card()))
    card["weights"]["unet"]["sha256"] = "0" * 64
    monkeypatch.setattr(tiny, "card", lambda: card)
    assert tiny.fingerprint() != before
