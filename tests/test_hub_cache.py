"""The Hub path, proven offline (issue 15, point 5).

No machine of this project reaches the Hugging Face Hub, so these tests lay out a Hub cache the
way huggingface_hub leaves it (``models--org--name/{blobs,snapshots/<commit>,refs/main}``, the
snapshot's files symlinks into blobs/) for the real repo ids of the sd-turbo and sdxl-turbo presets, with the real
repositories' file names (fp16 variants included) but tiny random weights of the real classes.
Then the real presets load from it by name with HF_HUB_OFFLINE=1 and no network, through the same
code a user runs. sdxl-turbo's fake is the tiny-sdxl preset's StableDiffusionXLPipeline (two text encoders)."""

import hashlib
import json
import os
import shutil
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import kit
from kit import presets, tiny
from kit.core import readiness

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_repo(cache: Path, repo: str, files: dict[str, Path | bytes], commit: str = COMMIT) -> Path:
    """Lay out `repo` in the Hub cache as huggingface_hub does; returns the snapshot folder.

    files: path in the repository -> a file to copy, or its bytes. Each lands in blobs/<sha256>,
    linked from snapshots/<commit>/<path>; refs/main names the commit.
    """
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content if isinstance(content, bytes) else Path(content).read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return snapshot


def saved_files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}


def pipeline_files(pipe, scratch: Path) -> dict[str, Path]:
    """A pipeline's repository files: full precision, plus the fp16 variant of every weights file."""
    import torch

    pipe.save_pretrained(scratch / "fp32", safe_serialization=True)
    pipe.to(torch.float16).save_pretrained(scratch / "fp16", safe_serialization=True, variant="fp16")
    files = {name: path for name, path in saved_files(scratch / "fp32").items() if not name.startswith("tokenizer")}
    files.update({name: path for name, path in saved_files(scratch / "fp16").items() if ".fp16." in name})
    # the Hub repositories hold the slow tokenizer's files (vocab.json, merges.txt), not a tokenizer.json
    tokenizer = saved_files(tiny.write_clip_tokenizer(scratch / "tokenizer"))
    special = json.dumps({k: v for k, v in tiny.TOKENIZER.items() if k.endswith("_token")}).encode()
    for folder in ("tokenizer", "tokenizer_2") if "tokenizer_2" in pipe.components else ("tokenizer",):
        files.update({f"{folder}/{name}": path for name, path in tokenizer.items()})
        files[f"{folder}/special_tokens_map.json"] = special
    return files


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """A Hub cache holding sd-turbo, TAESD, the SD 2 inpainting pipeline and ViT-B-32 laion2b (random weights)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    work = tmp_path_factory.mktemp("hub")
    cache = work / "hf" / "hub"
    preset = presets.PRESETS["sd-turbo"]
    sd_turbo = pipeline_files(tiny.build_pipeline(trained=False), work / "sd-turbo")
    for name in (
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/model.fp16.safetensors",
        "unet/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
        "tokenizer/vocab.json",
        "scheduler/scheduler_config.json",
    ):
        assert name in sd_turbo, name  # the real repository's file names
    sd_turbo.update({"sd_turbo.safetensors": b"a root checkpoint the kit never loads", "README.md": b"# sd-turbo"})
    hub_repo(cache, preset.model, sd_turbo)

    tiny.build_preview_vae(trained=False).save_pretrained(work / "taesd", safe_serialization=True)
    hub_repo(cache, preset.preview, {**saved_files(work / "taesd"), "taesd_decoder.pth": b"a pickle never read"})

    hub_repo(cache, preset.inpaint, pipeline_files(tiny.build_pipeline(inpaint=True, trained=False), work / "inpaint"))

    sdxl = presets.PRESETS["sdxl-turbo"]
    sdxl_turbo = pipeline_files(tiny.build_sdxl_pipeline(), work / "sdxl-turbo")
    assert "text_encoder_2/model.fp16.safetensors" in sdxl_turbo and "tokenizer_2/vocab.json" in sdxl_turbo
    hub_repo(cache, sdxl.model, {**sdxl_turbo, "sd_xl_turbo_1.0_fp16.safetensors": b"a root checkpoint"})
    hub_repo(cache, sdxl.preview, saved_files(work / "taesd"))  # the tiny VAE's latents, as sd-turbo's fake
    hub_repo(cache, sdxl.inpaint, pipeline_files(tiny.build_sdxl_pipeline(inpaint=True), work / "sdxl-inpaint"))

    repo, filename = presets.clip_source(preset)
    assert (repo, filename) == ("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "open_clip_model.safetensors")
    torch.manual_seed(0)
    clip = open_clip.create_model(preset.clip_model)  # the real ViT-B-32, random weights
    save_file({k: v.to(torch.float16).contiguous() for k, v in clip.state_dict().items()}, str(work / "clip"))
    hub_repo(cache, repo, {filename: work / "clip", "open_clip_config.json": b"{}"})
    return cache


@pytest.fixture
def offline(hub_cache, monkeypatch):
    """HF_HUB_OFFLINE=1 and the cache above, read by huggingface_hub whenever it was imported;
    any attempt to open a network connection is recorded (and fails)."""
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HOME", str(hub_cache.parent))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("KIT_PRESET", raising=False)
    connections = []

    def no_network(sock, address, *args):
        connections.append(address)
        raise OSError(f"test is offline: connection to {address} refused")

    def no_lookup(host, *args, **kwargs):
        connections.append(host)
        raise socket.gaierror(f"test is offline: no name lookup for {host}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    yield connections
    assert connections == [], f"the kit tried the network: {connections}"


def studio():
    s = kit.Studio(preset="sd-turbo", device="cpu", dtype="float32")
    s.progress_bar = False
    return s


def test_cached_reports_every_part(offline):
    assert presets.cached(presets.get("sd-turbo")) == {"pipeline": True, "preview": True, "inpaint": True, "clip": True}
    report = kit.doctor()
    assert presets.cached(presets.get("sdxl-turbo"))["pipeline"] is True
    assert report["presets"]["sd-turbo"] == "ready" and report["presets"]["sdxl-turbo"] == "ready"
    assert report["default"].startswith("Studio() loads sd-turbo on ")


def test_sd_turbo_generates_from_the_cache_by_its_name(offline):
    s = studio()
    (art,) = s.generate("portrait of an elder", seed=3, size=256)  # the preset's own smallest size
    assert art.image.size == (256, 256) and art.record.model == "stabilityai/sd-turbo"
    assert s.revision("pipeline") == COMMIT  # the snapshot's commit, read from the cache
    assert np.asarray(art.image).std() > 0


def test_the_preview_decoder_loads_from_the_cache(offline):
    s = studio()
    (art,) = s.generate("portrait", seed=3, size=256, preview=True)
    assert art.record.decoder == "taesd" and s.loaded == ("pipeline", "preview")


def test_fp16_variant_files_load_by_name(offline):
    """What a CUDA studio asks for (variant="fp16"), checked on the CPU: diffusers finds the
    *.fp16.safetensors files in the snapshot. No local_files_only is passed: with HF_HUB_OFFLINE
    set when huggingface_hub reads it, diffusers resolves the cached snapshot without the network."""
    import torch
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(
        "stabilityai/sd-turbo", variant="fp16", dtype=torch.float16, use_safetensors=True
    )
    assert pipe.unet.dtype == torch.float16


def test_restore_loads_the_inpainting_pipeline_from_the_cache(offline):
    s = studio()
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8))
    mask = Image.new("L", (256, 256), 0)
    mask.paste(255, (96, 96, 160, 160))
    restored = s.restore(picture, mask, prompt="a face", seed=1, steps=1)
    assert restored.image.size == (256, 256) and "inpaint" in s.loaded


def test_sdxl_turbo_generates_previews_and_restores_from_the_cache(offline):
    s = kit.Studio(preset="sdxl-turbo", device="cpu", dtype="float32")
    s.progress_bar = False
    (art,) = s.generate("portrait of an elder", seed=3, size=256, preview=True)  # the preset's smallest size
    assert art.image.size == (256, 256) and art.record.decoder == "taesd" and s.revision("pipeline") == COMMIT
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8))
    mask = Image.new("L", (256, 256), 0)
    mask.paste(255, (96, 96, 160, 160))
    restored = s.restore(picture, mask, prompt="a face", seed=1, steps=1)
    assert restored.image.size == (256, 256) and s.loaded == ("pipeline", "preview", "inpaint")


def test_the_embedder_loads_open_clip_from_the_cache(offline):
    emb = kit.Embedder("sd-turbo", device="cpu", cache=False, dtype="float32")
    vectors = emb.texts(["a cat", "a dog"])
    assert vectors.shape == (2, 512) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)


def test_a_repo_id_preset_reads_its_limits_from_the_cached_configs(hub_cache, offline, tmp_path):
    """A repo id that is no named preset: its sizes come from the cached unet/vae configs, no weights."""
    import huggingface_hub.constants as hc

    snapshot = hub_cache / "models--stabilityai--sd-turbo" / "snapshots" / COMMIT
    small = tmp_path / "hub"
    hub_repo(
        small,
        "someone/small-model",
        {name: snapshot / name for name in ("model_index.json", "unet/config.json", "vae/config.json")},
    )
    hc.HF_HUB_CACHE = str(small)  # restored by the fixture's monkeypatch
    preset = presets.get("someone/small-model")
    assert (preset.size, preset.min_size, preset.max_size) == (64, 32, 128)  # the tiny UNet and VAE's native 64 px
    with pytest.raises(kit.KitError, match="from 32 to 128 px"):
        kit.Studio(preset="someone/small-model").generate("portrait", size=256)


def test_a_partly_downloaded_repo_is_not_reported_cached(offline, tmp_path):
    import huggingface_hub.constants as hc

    shutil.copytree(Path(hc.HF_HUB_CACHE), tmp_path / "hub", symlinks=True)
    hc.HF_HUB_CACHE = str(tmp_path / "hub")
    snapshot = tmp_path / "hub" / "models--stabilityai--sd-turbo" / "snapshots" / COMMIT
    (snapshot / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    sd_turbo = presets.get("sd-turbo")
    parts = presets.cached(sd_turbo, device="cpu", dtype="float32")
    assert parts["pipeline"] is False and parts["preview"] is True and parts["inpaint"] is True
    assert presets.cached(sd_turbo, device="cpu", dtype="float16")["pipeline"] is True  # the fp16 files are there
    presets.require(sd_turbo)  # whole in one precision: loading is tried (and says itself what is missing)
    (snapshot / "unet" / "diffusion_pytorch_model.fp16.safetensors").unlink()
    with pytest.raises(kit.KitError, match="kit download sd-turbo"):
        presets.require(sd_turbo)


def test_sharded_weights_count_by_their_index(offline, tmp_path):
    """Weights too big for one file come in shards named by an index (the variant's: *.index.fp16.json)."""
    import huggingface_hub.constants as hc

    hc.HF_HUB_CACHE = str(tmp_path / "hub")
    index = json.dumps(
        {
            "_class_name": "StableDiffusionPipeline",
            "unet": ["diffusers", "UNet2DConditionModel"],
            "safety_checker": [None, None],
        }
    ).encode()
    hub_repo(
        tmp_path / "hub",
        "someone/sharded",
        {
            "model_index.json": index,
            "unet/config.json": b"{}",
            "unet/diffusion_pytorch_model.safetensors.index.fp16.json": b"{}",
            "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors": b"",
            "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors": b"1",
        },
    )
    preset = presets.Preset(name="sharded", model="someone/sharded", variant="fp16")
    assert presets.cached(preset, device="cpu", dtype="float16")["pipeline"] is True
    assert presets.cached(preset, device="cpu", dtype="float32")["pipeline"] is False  # no full-precision weights


# ---------------------------------------------------------------- kit download


def fake_snapshot_download(monkeypatch):
    import huggingface_hub

    asked = {}

    def snapshot_download(repo_id, allow_patterns=None, **kwargs):
        asked[repo_id] = allow_patterns
        return f"/cache/{repo_id}"

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo, name, **kw: f"/cache/{repo}/{name}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    return asked


def matches(patterns, name):
    from fnmatch import fnmatch

    return any(fnmatch(name, pattern) for pattern in patterns)


SD_TURBO_FILES = [
    "model_index.json",
    "README.md",
    "sd_turbo.safetensors",
    "sd_turbo.ckpt",
    "image.png",
    "scheduler/scheduler_config.json",
    "tokenizer/vocab.json",
    "tokenizer/merges.txt",
    "tokenizer/tokenizer_config.json",
    "tokenizer/special_tokens_map.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/pytorch_model.bin",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.bin",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.fp16.safetensors",
]
CONFIGS = [n for n in SD_TURBO_FILES if n.endswith((".json", ".txt"))]


def test_download_on_a_cpu_asks_for_full_precision_weights_only(monkeypatch):
    asked = fake_snapshot_download(monkeypatch)
    out = readiness.download("sd-turbo", inpaint=True, device="cpu")
    assert set(out) == {"pipeline", "preview", "inpaint", "clip"}
    for repo in ("stabilityai/sd-turbo", "stabilityai/stable-diffusion-2-inpainting"):
        wanted = sorted(n for n in SD_TURBO_FILES if matches(asked[repo], n))
        assert wanted == sorted(
            CONFIGS
            + [
                "text_encoder/model.safetensors",
                "unet/diffusion_pytorch_model.safetensors",
                "vae/diffusion_pytorch_model.safetensors",
            ]
        )
    assert not matches(asked["stabilityai/sd-turbo"], "unet/diffusion_pytorch_model.fp16.safetensors")
    assert not matches(asked["stabilityai/sd-turbo"], "sd_turbo.safetensors")  # no root checkpoint
    taesd = ["config.json", "diffusion_pytorch_model.safetensors", "taesd_decoder.pth", "taesd_decoder.safetensors"]
    assert [n for n in taesd if matches(asked["madebyollin/taesd"], n)] == taesd[:2]


def test_download_for_cuda_float16_asks_for_the_fp16_variant(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    asked = fake_snapshot_download(monkeypatch)
    readiness.download("sd-turbo")  # the inpainting pipeline only when asked
    assert set(asked) == {"stabilityai/sd-turbo", "madebyollin/taesd"}
    wanted = sorted(n for n in SD_TURBO_FILES if matches(asked["stabilityai/sd-turbo"], n))
    assert wanted == sorted(
        CONFIGS
        + [
            "text_encoder/model.fp16.safetensors",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "vae/diffusion_pytorch_model.fp16.safetensors",
        ]
    )


def test_download_asks_for_what_the_studio_loads(monkeypatch):
    """A CUDA machine asked for float32, or a CPU in bfloat16: the full-precision files (no variant)."""
    asked = fake_snapshot_download(monkeypatch)
    readiness.download("sd-turbo", device="cpu", dtype="bfloat16")
    assert matches(asked["stabilityai/sd-turbo"], "unet/diffusion_pytorch_model.safetensors")
    assert not matches(asked["stabilityai/sd-turbo"], "unet/diffusion_pytorch_model.fp16.safetensors")


def test_kit_download_dtype_picks_the_files(monkeypatch, capsys):
    """`kit download --dtype float16` on a CPU: the fp16 files, for a CUDA machine that shares the cache."""
    from kit.cli import main

    asked = fake_snapshot_download(monkeypatch)
    assert main(["download", "sd-turbo", "--dtype", "float16"]) == 0
    assert matches(asked["stabilityai/sd-turbo"], "unet/diffusion_pytorch_model.fp16.safetensors")
    assert not matches(asked["stabilityai/sd-turbo"], "unet/diffusion_pytorch_model.safetensors")
    assert "pipeline: /cache/stabilityai/sd-turbo" in capsys.readouterr().out


@pytest.mark.parametrize("force_upcast", [True, False])
def test_a_float16_sdxl_vae_that_asks_for_it_decodes_in_float32(tmp_path, force_upcast):
    """The kit decodes its own latents (the pipeline stops at them), so it must upcast as diffusers' SDXL
    pipelines do, and only when the VAE's config asks. The tiny-sdxl VAE's activations pass float16's range,
    as the trained SDXL VAE's do (tiny.SDXL_OVERFLOW); GroupNorm normalises them away in float32."""
    import torch

    pipe = tiny.build_sdxl_pipeline()
    pipe.vae.register_to_config(force_upcast=force_upcast)
    pipe.save_pretrained(tmp_path / "sdxl", safe_serialization=True)
    studio = kit.Studio(preset=str(tmp_path / "sdxl"), dtype="float16")
    studio.progress_bar = False
    assert studio.preset.family == "sdxl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the overflow's NaN, cast to pixels
        (art,) = studio.generate("a potter", seed=1, steps=1, guidance=0)
    pixels = np.asarray(art.image)
    assert (pixels.std() > 1) == force_upcast  # upcast: a picture; not asked for: the known black square
    assert studio.pipe.vae.dtype == torch.float16  # the VAE stays as loaded


def test_counting_tokens_reads_the_cached_tokenizer_alone(offline, monkeypatch):
    """Counting as a prompt is typed loads no weights and never downloads: the tokenizer comes from files on
    this machine only, also when the Hub is reachable (huggingface_hub itself may still ask the Hub for its
    agent registry then, outside the kit's hands, so that part is checked on the call's arguments)."""
    from transformers import CLIPTokenizer

    asked = []
    real = CLIPTokenizer.from_pretrained.__func__

    def recording(cls, *args, **kwargs):
        asked.append(kwargs)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(CLIPTokenizer, "from_pretrained", classmethod(recording))
    studio = kit.Studio(preset="sd-turbo")
    assert studio.count_tokens("a portrait of an elder!") == [6] and studio.loaded == ()
    assert [k.get("local_files_only") for k in asked] == [True]
