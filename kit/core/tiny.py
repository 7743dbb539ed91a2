"""The offline ``tiny`` preset: real architectures at tiny size, trained on the toy world.

Every component is the class a Hub model uses (the sd-turbo family: Stable Diffusion 2.x
``UNet2DConditionModel``, ``AutoencoderKL``, ``CLIPTextModel``, ``EulerDiscreteScheduler``,
a TAESD-shaped ``AutoencoderTiny`` and the inpainting UNet), sized for 64 px pictures and
trained by ``scripts/train_tiny.py`` on `kit.toyworld`'s procedural portraits. The weights ship
with the kit (``kit/data/tiny/``, float16 safetensors, under 25 MB) with their card (`card()`:
vocabulary, planted skews, hashes, training summary). ``trained=False`` builds the same
architectures with random weights from a seed (what training starts from).

``ensure_saved()`` writes the preset to disk once, so the rest of the kit loads it with the same
``DiffusionPipeline.from_pretrained(folder)`` call that loads a Hub model.

The tokenizer is the real CLIP BPE tokenizer, rebuilt from open_clip's own tokenizer (its vocabulary and merges).
Its ids equal open_clip's for any text passed through ``clean_text()`` first (see there).
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from ..data_tables import DATA
from ..errors import KitError

# Tiny component configs. They are hashed into the on-disk folder name: change one and
# `ensure_saved()` builds a fresh folder. Sized for the toy world: 64 px pictures, 16 x 16 latents.
UNET = dict(
    sample_size=16,  # 16 latents * 4 = 64 px by default
    in_channels=4,
    out_channels=4,
    block_out_channels=(32, 64, 64),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=32,
    attention_head_dim=(2, 4, 4),
    use_linear_projection=True,  # SD 2.x style
    norm_num_groups=32,
    # the prompt also reaches every block through the time embedding (attention-pooled tokens), as in
    # diffusers' text-conditioned UNets: at this size, cross-attention alone learns the picture-wide
    # words (background colour, rendering) too slowly
    addition_embed_type="text",
    addition_embed_type_num_heads=4,
)
INPAINT_UNET = dict(UNET, in_channels=9)  # noisy latents 4 + mask 1 + masked-image latents 4
VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(16, 32, 64),  # three levels: 4x downsampling, so a 64 px picture has 16 x 16 latents
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=16,
    sample_size=64,
    scaling_factor=0.18215,  # the random builder's; the trained VAE's comes from the card
)
PREVIEW_VAE = dict(  # TAESD layout for the same 4x latents: three levels instead of four
    encoder_block_out_channels=(32, 32, 32),
    decoder_block_out_channels=(32, 32, 32),
    num_encoder_blocks=(1, 1, 1),
    num_decoder_blocks=(1, 2, 1),
    latent_channels=4,
)
TEXT_ENCODER = dict(
    vocab_size=49408,
    max_position_embeddings=77,
    hidden_size=32,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    projection_dim=32,
    hidden_act="gelu",
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=0,
)
SCHEDULER = dict(  # sd-turbo's scheduler settings, but v-prediction (as SD 2.x at 768 px): at the
    # noisiest steps it asks the model for the picture itself, where epsilon-prediction learns the
    # prompt's colours very slowly
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="v_prediction",
    timestep_spacing="trailing",
    steps_offset=1,
    # Zero terminal SNR (Lin et al. 2024, "Common diffusion noise schedules and sample steps are
    # flawed"): sd-turbo's schedule leaves a little of the picture in the noisiest step, so a model
    # trained on it reads the starting noise's coarse colours as the picture's. Trained that way,
    # the tiny model drew from the seed what the prompt should decide (a baker's clothes came out
    # white 35% of the time where the toy world has 70%); with no signal left at the last step the
    # prompt decides. The training script adds noise on this same schedule.
    rescale_betas_zero_snr=True,
)
# sd-turbo's own tokenizer pads with "!" (id 0, as open_clip does), but transformers then also
# reads every "!" in a prompt as the pad token (diffusers issue #4153), so its ids differ from
# open_clip's. The tiny preset pads with "<|endoftext|>" like SD 1.x and keeps "!" a normal token.
TOKENIZER = dict(
    model_max_length=77,
    bos_token="<|startoftext|>",
    eos_token="<|endoftext|>",
    unk_token="<|endoftext|>",
    pad_token="<|endoftext|>",
)

# fixed offsets so each component has its own random stream, whatever else gets built
_STREAMS = {"unet": 0, "vae": 1, "text_encoder": 2, "inpaint_unet": 3, "preview_vae": 4}

# The tiny-sdxl preset: the SDXL code path offline, built as diffusers' own SDXL tests build theirs
# (get_dummy_components): two text encoders, the second with a projection (the pooled embedding), and a
# UNet that reads the pooled text and six size numbers (the time ids: original size, crop corner, target
# size) through its "text_time" addition embedding. Random weights from a seed: it proves the code path,
# its pictures are noise. Sized like `tiny`: 64 px pictures, 16 x 16 latents.
SDXL_UNET = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    block_out_channels=(32, 64),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=(2, 4),
    use_linear_projection=True,
    cross_attention_dim=2 * TEXT_ENCODER["hidden_size"],  # the two encoders' hidden states side by side
    addition_embed_type="text_time",
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=6 * 8 + TEXT_ENCODER["projection_dim"],  # six size numbers + pooled text
    norm_num_groups=32,
)
SDXL_INPAINT_UNET = dict(SDXL_UNET, in_channels=9)
# SDXL's latent scale, and its VAE's known flaw reproduced: the trained SDXL VAE's decoder activations pass
# float16's range (65504), so its config asks for float32 decoding (force_upcast) and a float16 decode
# without it gives NaN, shown as black pictures. The tiny decoder's first convolution is scaled by
# SDXL_OVERFLOW to do the same; the GroupNorm after it normalises the scale away in float32.
SDXL_VAE = dict(VAE, scaling_factor=0.13025, force_upcast=True)
SDXL_OVERFLOW = 1e5
SDXL_SCHEDULER = dict(
    SCHEDULER, prediction_type="epsilon", rescale_betas_zero_snr=False
)  # sdxl-turbo's: epsilon, trailing steps
_SDXL_STREAMS = {"unet": 0, "inpaint_unet": 1, "vae": 2, "text_encoder": 3, "text_encoder_2": 4, "preview_vae": 5}
_SDXL_SEEDS = 1_000_003  # tiny-sdxl's random streams start here, apart from tiny's
_PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"}


# ---------------------------------------------------------------- tokenizer


@lru_cache(maxsize=1)
def _clip_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, merges) of CLIP's BPE, as open_clip's own tokenizer holds them.

    Read from ``open_clip.tokenizer.SimpleTokenizer`` (which loads the vocabulary bundled with
    open_clip, ``default_bpe()``), not from a file path: the ids are open_clip's by construction.
    Only the two special tokens are renamed to the spelling transformers' ``CLIPTokenizer`` uses.
    """
    from open_clip.tokenizer import SimpleTokenizer

    theirs = SimpleTokenizer()
    renamed = {"<start_of_text>": TOKENIZER["bos_token"], "<end_of_text>": TOKENIZER["eos_token"]}
    vocab = {renamed.get(token, token): i for token, i in theirs.encoder.items()}
    merges = sorted(theirs.bpe_ranks, key=theirs.bpe_ranks.get)  # rank order is merge order
    # 256 bytes, 256 word-final bytes, 48894 merges and the two special tokens
    if len(vocab) != 49408 or len(merges) != 48894 or vocab[TOKENIZER["eos_token"]] != 49407:
        raise RuntimeError(
            f"open_clip's CLIP tokenizer changed shape ({len(vocab)} ids, {len(merges)} merges): "
            "the tiny preset's weights expect CLIP's 49,408 ids"
        )
    return vocab, merges


def clean_text(text: str) -> str:
    """Normalise a prompt the way open_clip's tokenizer does before BPE.

    transformers' ``CLIPTokenizer`` only applies NFC, collapses whitespace and lowercases per
    character. open_clip also runs ftfy (curly quotes, ligatures, full-width forms, mojibake,
    control characters), unescapes HTML entities twice and lowercases with Python's ``str.lower``
    (which turns a word-final capital sigma into "ς"). Passing text through this function first
    makes the two tokenizers give the same ids. Remaining differences, all rare: literal
    special-token strings ("<|endoftext|>" is one token here unless
    ``tokenizer.split_special_tokens = True``; open_clip instead reads "<start_of_text>" and
    "<end_of_text>" as special); text whose cleaned form is not in Unicode NFC ("İ" before a
    combining mark, HTML-escaped combining marks), which ``CLIPTokenizer`` recomposes and
    open_clip does not; and an apostrophe before a long s ("'ſ"), which open_clip's
    case-insensitive pattern reads as the contraction "'s".
    """
    import ftfy

    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    return " ".join(text.split()).lower()


def clip_tokenizer():
    """The CLIP BPE tokenizer as a ``transformers.CLIPTokenizer`` (49,408 ids, 77 tokens).

    Built by writing its files and loading them with ``from_pretrained``: the one constructor that
    transformers 4.x (``vocab_file``/``merges_file``) and 5.x (in-memory ``vocab``/``merges``) share.
    The fast class, because 5.x's ``CLIPTokenizer`` is 4.x's ``CLIPTokenizerFast`` (5.x keeps the old
    name as an alias): 4.x's slow ``CLIPTokenizer`` runs ftfy itself and gives other ids for some text
    (curly quotes, "&amp;") than the ones the tiny weights were trained on.
    """
    from transformers import CLIPTokenizerFast

    with tempfile.TemporaryDirectory(prefix="kit-tokenizer-") as folder:
        return CLIPTokenizerFast.from_pretrained(write_clip_tokenizer(folder))


def write_clip_tokenizer(folder) -> Path:
    """Write ``vocab.json``, ``merges.txt`` and ``tokenizer_config.json`` for ``CLIPTokenizer``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = _clip_bpe()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [" ".join(m) for m in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {"tokenizer_class": "CLIPTokenizer", **TOKENIZER}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder


# ---------------------------------------------------------------- models


def _seeded(seed: int, stream: str, build, sdxl: bool = False):
    """Call ``build()`` with torch's RNG seeded for this component (of tiny, or of tiny-sdxl when
    `sdxl`), leaving the caller's RNG alone."""
    import torch

    if sdxl:
        number = _SDXL_SEEDS + seed * len(_SDXL_STREAMS) + _SDXL_STREAMS[stream]
    else:
        number = seed * len(_STREAMS) + _STREAMS[stream]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(number)
        return build()


WEIGHTS = DATA / "tiny"  # the trained weights, their card and report
_FILES = {"preview_vae": "taesd"}  # component -> file stem, where they differ


@lru_cache(maxsize=1)
def card() -> dict:
    """The toy world's card: vocabulary, planted skews (the audit's ground truth: template, terms,
    probes and the true share of every label), the shipped weights' hashes and the training
    summary. Written by ``scripts/train_tiny.py``; shipped as ``kit/data/tiny/card.json``."""
    path = WEIGHTS / "card.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run scripts/train_tiny.py to train the tiny preset")
    return json.loads(path.read_text(encoding="utf-8"))


def weights_file(name: str) -> Path:
    """The shipped safetensors file of a tiny component ("unet", "vae", "clip", ...)."""
    path = WEIGHTS / f"{_FILES.get(name, name)}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run scripts/train_tiny.py to train the tiny preset")
    return path


def _build(seed: int, stream: str, trained: bool, make):
    """A component: seeded random weights, then the shipped trained weights on top when `trained`."""
    module = _seeded(seed, stream, make)
    if trained:
        from safetensors.torch import load_file

        weights = load_file(str(weights_file(stream)))
        # The text encoder's weights were saved by transformers 5, whose CLIPTextModel holds them at the top
        # level; transformers 4 holds the same tensors under "text_model.". Same tensors, strict load either way.
        expected = module.state_dict().keys()
        weights = {
            f"text_model.{key}" if key not in expected and f"text_model.{key}" in expected else key: value
            for key, value in weights.items()
        }
        module.load_state_dict(weights)
    return module.eval()


def build_text_encoder(seed: int = 0, *, trained: bool = True):
    """The tiny ``CLIPTextModel``: trained on the toy world's captions, or random (`trained=False`)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return _build(seed, "text_encoder", trained, lambda: CLIPTextModel(CLIPTextConfig(**TEXT_ENCODER)))


def build_vae(seed: int = 0, *, trained: bool = True):
    """The tiny ``AutoencoderKL`` (4x): trained, with the card's latent scaling factor, or random."""
    from diffusers import AutoencoderKL

    config = dict(VAE, scaling_factor=card()["vae_scaling_factor"]) if trained else VAE
    return _build(seed, "vae", trained, lambda: AutoencoderKL(**config))


def build_unet(seed: int = 0, *, trained: bool = True, inpaint: bool = False):
    """The tiny ``UNet2DConditionModel`` (9 input channels for inpainting): trained or random."""
    from diffusers import UNet2DConditionModel

    stream, config = ("inpaint_unet", INPAINT_UNET) if inpaint else ("unet", UNET)
    return _build(seed, stream, trained, lambda: UNet2DConditionModel(**config))


def _scheduler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(**SCHEDULER)


def build_pipeline(seed: int = 0, *, inpaint: bool = False, trained: bool = True):
    """The tiny ``StableDiffusionPipeline`` (sd-turbo layout), trained on the toy world.

    ``inpaint=True``: the tiny ``StableDiffusionInpaintPipeline`` instead, with the same text
    encoder and VAE and a 9-channel UNet. ``trained=False``: the same architectures with random
    weights drawn from `seed` (what the benchmarks and the training script start from).
    """
    import diffusers

    pipeline = diffusers.StableDiffusionInpaintPipeline if inpaint else diffusers.StableDiffusionPipeline
    return pipeline(
        vae=build_vae(seed, trained=trained),
        text_encoder=build_text_encoder(seed, trained=trained),
        tokenizer=clip_tokenizer(),
        unet=build_unet(seed, trained=trained, inpaint=inpaint),
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_preview_vae(seed: int = 0, *, trained: bool = True):
    """The tiny ``AutoencoderTiny`` (TAESD layout) for the tiny VAE's latents: trained or random."""
    from diffusers import AutoencoderTiny

    return _build(seed, "preview_vae", trained, lambda: AutoencoderTiny(**PREVIEW_VAE))


def build_sdxl_pipeline(seed: int = 0, *, inpaint: bool = False):
    """The tiny-sdxl ``StableDiffusionXLPipeline`` (``StableDiffusionXLInpaintPipeline`` with a
    9-channel UNet when `inpaint`), random weights drawn from `seed`: a ``CLIPTextModel`` and a
    ``CLIPTextModelWithProjection`` (the pooled embedding), both with the real CLIP tokenizer, a UNet
    conditioned on the pooled text and the time ids, and the tiny VAE with SDXL's latent scale and
    float16 overflow (see `SDXL_VAE`)."""
    import diffusers
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    def vae():
        model = diffusers.AutoencoderKL(**SDXL_VAE)
        with torch.no_grad():
            model.decoder.conv_in.weight.mul_(SDXL_OVERFLOW)
            model.decoder.conv_in.bias.mul_(SDXL_OVERFLOW)
        return model

    def part(stream, make):
        return _seeded(seed, stream, make, sdxl=True).eval()

    stream, unet = ("inpaint_unet", SDXL_INPAINT_UNET) if inpaint else ("unet", SDXL_UNET)
    pipeline = diffusers.StableDiffusionXLInpaintPipeline if inpaint else diffusers.StableDiffusionXLPipeline
    return pipeline(
        vae=part("vae", vae),
        text_encoder=part("text_encoder", lambda: CLIPTextModel(CLIPTextConfig(**TEXT_ENCODER))),
        text_encoder_2=part("text_encoder_2", lambda: CLIPTextModelWithProjection(CLIPTextConfig(**TEXT_ENCODER))),
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer(),
        unet=part(stream, lambda: diffusers.UNet2DConditionModel(**unet)),
        scheduler=diffusers.EulerDiscreteScheduler(**SDXL_SCHEDULER),
        add_watermarker=False,  # the invisible watermark would change restored pixels where it is installed
    )


def build_sdxl_preview_vae(seed: int = 0):
    """The tiny-sdxl ``AutoencoderTiny`` (TAESDXL's place), random weights drawn from `seed`."""
    from diffusers import AutoencoderTiny

    return _seeded(seed, "preview_vae", lambda: AutoencoderTiny(**PREVIEW_VAE), sdxl=True).eval()


# ---------------------------------------------------------------- on disk


def save(folder) -> Path:
    """Build the trained preset and save it as safetensors: ``pipeline/``, ``taesd/``, ``inpaint/``."""
    folder = Path(folder)
    build_pipeline().save_pretrained(folder / "pipeline", safe_serialization=True)
    build_preview_vae().save_pretrained(folder / "taesd", safe_serialization=True)
    build_pipeline(inpaint=True).save_pretrained(folder / "inpaint", safe_serialization=True)
    return _no_pickles(folder)


def save_sdxl(folder) -> Path:
    """Build the tiny-sdxl preset (random weights, seed 0) and save it as safetensors, laid out as
    `save`'s: ``pipeline/``, ``taesd/``, ``inpaint/``."""
    folder = Path(folder)
    build_sdxl_pipeline().save_pretrained(folder / "pipeline", safe_serialization=True)
    build_sdxl_preview_vae().save_pretrained(folder / "taesd", safe_serialization=True)
    build_sdxl_pipeline(inpaint=True).save_pretrained(folder / "inpaint", safe_serialization=True)
    return _no_pickles(folder)


def _no_pickles(folder: Path) -> Path:
    pickles = [p for p in folder.rglob("*") if p.suffix in _PICKLE_SUFFIXES]
    if pickles:
        raise RuntimeError(f"a tiny preset wrote pickle files: {pickles}")
    return folder


BUILT_HERE = ("tiny", "tiny-sdxl")  # the presets this module builds from code


def _check_preset(preset: str) -> str:
    if preset not in BUILT_HERE:
        raise KitError(f"preset must be one built from code ({', '.join(BUILT_HERE)}), got {preset!r}")
    return preset


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def fingerprint(preset: str = "tiny") -> str:
    """Short hash of a built-here preset's configs and the diffusers/transformers versions that write them."""
    import diffusers
    import transformers

    if _check_preset(preset) == "tiny-sdxl":
        spec = {
            "unet": SDXL_UNET,
            "inpaint_unet": SDXL_INPAINT_UNET,
            "vae": SDXL_VAE,
            "overflow": SDXL_OVERFLOW,
            "preview_vae": PREVIEW_VAE,
            "text_encoder": TEXT_ENCODER,
            "scheduler": SDXL_SCHEDULER,
            "tokenizer": TOKENIZER,
            "streams": [_SDXL_SEEDS, _SDXL_STREAMS],
            "diffusers": _major_minor(diffusers.__version__),
            "transformers": _major_minor(transformers.__version__),
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    spec = {
        "unet": UNET,
        "inpaint_unet": INPAINT_UNET,
        "vae": VAE,
        "preview_vae": PREVIEW_VAE,
        "text_encoder": TEXT_ENCODER,
        "scheduler": SCHEDULER,
        "tokenizer": TOKENIZER,
        "streams": _STREAMS,
        "weights": {name: w["sha256"] for name, w in sorted(card()["weights"].items())},
        "diffusers": _major_minor(diffusers.__version__),
        "transformers": _major_minor(transformers.__version__),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def _default_root() -> Path:
    return Path(os.environ.get("KIT_CACHE") or Path.home() / ".cache" / "kit")


def ensure_saved(root: Path | None = None, preset: str = "tiny") -> Path:
    """A built-here preset (`tiny` or `tiny-sdxl`) on disk, built on first use and reused after:
    ``<root>/<preset>-<fingerprint>``.

    ``root`` defaults to ``$KIT_CACHE`` or ``~/.cache/kit``. The preset is written to a temporary
    folder next to the target and renamed into place, so a reader never sees half a preset;
    when two processes race, the first rename wins and the other copy is discarded.
    """
    write = save_sdxl if _check_preset(preset) == "tiny-sdxl" else save
    root = Path(root) if root is not None else _default_root()
    target = root / f"{preset}-{fingerprint(preset)}"
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    scratch.chmod(0o755)  # mkdtemp makes it private; the preset is an ordinary cache folder
    try:
        write(scratch)
        try:
            os.rename(scratch, target)
        except OSError:
            if not target.is_dir():  # not a lost race: a real error
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
