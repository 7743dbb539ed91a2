"""The strongest CPU peers side by side: one interleaved run on this machine.

sd-turbo architecture with random weights (same compute as the trained model), 1 step, prompt to
PIL image, at each size in `--sizes`; medians of `--repeat` runs, taken in alternation:

0. the kit's default (`Studio.generate` with `on_preview`, as PromptStudio calls it on a CPU): the
   seconds to its first picture (the TAESD preview) and to the full image;
1. plain diffusers `StableDiffusionPipeline`, float32, full VAE (what a user gets by default);
   the same with TAESD, which is also the reference picture of the TAESD rows;
2. torch bfloat16 with channels_last on the UNet and VAE, full VAE and TAESD;
3. OpenVINO through optimum-intel (the FastSD CPU recipe): the pipeline exported once to OpenVINO IR
   (cached in the temp folder), image size made static, in OpenVINO's own default inference
   precision on this CPU (printed); TAESD is AutoencoderTiny's decoder converted with
   `openvino.convert_model` and put in place of the VAE decoder;
4. the kit's own OpenVINO backend (`Studio(..., backend="openvino")`, kit/openvino_backend.py), full
   VAE and TAESD, and preview first (the full image after a TAESD preview, as PromptStudio shows it
   on a CPU: the seconds to each): its exports are made (once, cached in $KIT_CACHE/openvino, here
   the temp folder's kit-bench-cache) before measuring, as the peer's are; it prints whether every
   run gave the same pixels, and its speed-ups over the torch rows and over the peer.

Every row of a size is held in memory at once: all ten at 512 px take more than 24 GB, so on a smaller
machine run one size per process (`--sizes 256`, then `--sizes 512`) and fewer rows (`--rows`).

Each row shows its median, its speed-up over plain float32, its first picture (load, for OpenVINO
also reshape and compile, plus the first call; the torch TAESD rows reuse the pipeline the row
above loaded) and its agreement with float32 (PSNR of the picture from the same prompt and
latents against the float32 picture with the same decoder).

OpenVINO and optimum-intel stay out of the project's venv: this script runs in its own, made with

    /work/main/.venv/bin/python -m venv /tmp/ovenv
    /tmp/ovenv/bin/pip install "torch==2.14.1" "optimum-intel[openvino,diffusers]==2.2.0" open_clip_torch
    nice -n 19 /tmp/ovenv/bin/python bench/bench_cpu.py [--sizes 256,512] [--repeat 5]

optimum-intel 2.2.0 (the newest) needs transformers < 5.6 and huggingface-hub < 1.22, so pip picks
transformers 5.5.4 and diffusers 0.39.0 there; the torch rows run on those too (same torch build).
A CLIPTextModel saved by transformers 5.24 comes back random under 5.5.4, so the random-weight
folder is built per transformers version and its text encoder is checked after loading.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import logging
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from functools import cache
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the kit, for its tokenizer

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import interleaved, sd_turbo_architecture, table  # noqa: E402

PROMPT = "portrait of an elder, ukiyo-e woodblock print"
FP32 = "diffusers float32, full VAE"
FP32_TAESD = "diffusers float32, TAESD"
KIT = "the kit's default, preview first: full image"
KIT_PREVIEW = "the kit's default, preview first: first picture (TAESD)"
KIT_OV = "the kit, backend='openvino', full VAE"
KIT_OV_TAESD = "the kit, backend='openvino', TAESD"
KIT_OV_FIRST = "the kit, backend='openvino', preview first: full image"
KIT_OV_PREVIEW = "the kit, backend='openvino', preview first: first picture (TAESD)"
PREVIEW_ROWS = (KIT_PREVIEW, KIT_OV_PREVIEW)  # rows derived from a preview-first row's previews
PEER = "OpenVINO (optimum-intel), full VAE"
PEER_TAESD = "OpenVINO (optimum-intel), TAESD"
TORCH_BEST = "torch bf16 + channels_last, full VAE"
TORCH_BEST_TAESD = "torch bf16 + channels_last, TAESD"


# ---------------------------------------------------------------- the random-weight models


def random_weights() -> Path:
    """The sd-turbo-shaped folder, built by (and for) this environment's transformers."""
    import transformers

    folder = Path(tempfile.gettempdir()) / f"kit-bench-sd-turbo-arch-transformers-{transformers.__version__}"
    return sd_turbo_architecture(folder)


def check_text_encoder(model, folder: Path):
    """Fail loudly when the text encoder loaded back with weights other than the saved ones."""
    from safetensors.torch import load_file

    saved = {k.removeprefix("text_model."): v for k, v in load_file(folder / "model.safetensors").items()}
    loaded = {k.removeprefix("text_model."): v for k, v in model.state_dict().items()}
    wrong = [k for k, v in saved.items() if k not in loaded or not torch.equal(v.to(loaded[k].dtype), loaded[k])]
    if wrong:
        raise RuntimeError(f"text encoder in {folder} loaded with {len(wrong)} tensors not as saved, e.g. {wrong[0]}")


# ---------------------------------------------------------------- torch paths


def picture(pipe, latents):
    size = latents.shape[-1] * 8
    return pipe(
        PROMPT, latents=latents, num_inference_steps=1, guidance_scale=0.0, height=size, width=size, output_type="pil"
    ).images[0]


@cache  # one pipeline per dtype, shared by its full-VAE and TAESD rows
def torch_pipeline(root: Path, dtype):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(root / "pipeline", torch_dtype=dtype)
    check_text_encoder(pipe.text_encoder, root / "pipeline" / "text_encoder")
    return pipe


def torch_path(root: Path, dtype, taesd=False, channels_last=False):
    from diffusers import AutoencoderTiny, StableDiffusionPipeline

    pipe = torch_pipeline(root, dtype)
    if taesd:
        vae = AutoencoderTiny.from_pretrained(root / "taesd", torch_dtype=dtype)
        pipe = StableDiffusionPipeline(**{**pipe.components, "vae": vae}, requires_safety_checker=False)
    if channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    pipe.set_progress_bar_config(disable=True)
    return lambda latents: picture(pipe, latents.to(dtype))


def kit_path(root: Path, size: int, seed: int, previews: list):
    """The kit as a user gets it: `Studio.generate` on the folder with its TAESD, in the dtype and memory
    format it picks for this CPU, with `on_preview` (what PromptStudio passes on a CPU). The seconds to
    each preview go to `previews`."""
    import kit
    from kit import presets

    preset = presets.Preset(
        name="sd-turbo-arch",
        model=str(root / "pipeline"),
        preview=str(root / "taesd"),
        steps=1,
        guidance=0.0,
        size=size,
    )
    studio = kit.Studio(preset=preset)
    studio.progress_bar = False
    print(f"  the kit picked {studio.dtype} on {studio.device}: {presets.dtype_choice(studio.device, preset)[1]}")

    def generate(latents):
        assert torch.equal(studio.noise([seed], size, size), latents), "the kit draws its latents from the seed"
        start = time.perf_counter()
        (art,) = studio.generate(
            PROMPT, seed=seed, size=size, on_preview=lambda images: previews.append(time.perf_counter() - start)
        )
        return art.image

    return generate


def sd_turbo_arch(root: Path, size: int):
    from kit import presets

    return presets.Preset(
        name="sd-turbo-arch",
        model=str(root / "pipeline"),
        preview=str(root / "taesd"),
        steps=1,
        guidance=0.0,
        size=size,
    )


@cache  # one studio for the full-VAE and TAESD rows of a size
def kit_openvino_studio(root: Path, size: int):
    import kit

    studio = kit.Studio(preset=sd_turbo_arch(root, size), backend="openvino")
    studio.progress_bar = False
    print(f"  the kit's openvino backend runs in {studio.dtype} (OpenVINO's inference precision)")
    return studio


def kit_openvino_export(root: Path, sizes: list[int]):
    """The kit's own exports (in $KIT_CACHE/openvino), made once before measuring, as the peer's are."""
    from kit.core import openvino_backend

    start = time.perf_counter()
    for size in sizes:
        studio = kit_openvino_studio(root, size)
        for preview in (False, True):
            studio.generate(PROMPT, seed=0, size=size, preview=preview)
    kit_openvino_studio.cache_clear()
    gc.collect()
    if openvino_backend.exports:
        print(
            f"the kit's openvino backend exported {openvino_backend.exports} models in "
            f"{time.perf_counter() - start:.0f} s (once; cached in {openvino_backend.cache_root()})",
            flush=True,
        )


def kit_openvino_path(root: Path, size: int, seed: int, preview: bool, hashes: set, previews: list | None = None):
    """`Studio(..., backend="openvino").generate`; each picture's pixel hash goes to `hashes` (one
    hash: the same pixels every run, as a replay needs). With `previews`, the full image comes
    after a TAESD preview, as PromptStudio shows it on a CPU, and the seconds to each preview go there."""
    studio = kit_openvino_studio(root, size)

    def generate(latents):
        assert torch.equal(studio.noise([seed], size, size), latents), "the kit draws its latents from the seed"
        start = time.perf_counter()
        shown = None if previews is None else lambda images: previews.append(time.perf_counter() - start)
        (art,) = studio.generate(PROMPT, seed=seed, size=size, preview=preview, on_preview=shown)
        hashes.add(art.record.sha256)
        return art.image

    return generate


# ---------------------------------------------------------------- OpenVINO paths


def openvino_export(root: Path) -> Path:
    """OpenVINO IR folders `full/` (the exported pipeline) and `taesd/` (the same, TAESD decoder), built once."""
    from importlib.metadata import version

    stamp = f"{root.resolve()}|{(root / 'pipeline' / 'model_index.json').stat().st_mtime}|{version('optimum-intel')}"
    cache = Path(tempfile.gettempdir()) / f"kit-bench-openvino-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}"
    if cache.is_dir():
        return cache
    print(f"exporting the pipeline to OpenVINO IR (once; cached in {cache})…", flush=True)
    start = time.perf_counter()
    partial = cache.with_name(cache.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    export_pipeline(root / "pipeline", partial / "full")
    export_taesd(root / "taesd", partial / "full", partial / "taesd")
    partial.rename(cache)
    print(f"exported in {time.perf_counter() - start:.0f} s", flush=True)
    return cache


def export_pipeline(folder: Path, out: Path):
    from optimum.intel import OVStableDiffusionPipeline

    pipe = OVStableDiffusionPipeline.from_pretrained(folder, export=True, compile=False)
    pipe.save_pretrained(out)
    del pipe
    gc.collect()


class TaesdDecoder(torch.nn.Module):
    """AutoencoderTiny's decode as a module with the input name optimum-intel's VAE decoder expects."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latent_sample):
        return self.vae.decode(latent_sample).sample


def export_taesd(folder: Path, full: Path, out: Path):
    """An IR pipeline folder that shares `full`'s parts and has TAESD as its VAE decoder."""
    import openvino as ov
    from diffusers import AutoencoderTiny

    vae = AutoencoderTiny.from_pretrained(folder).eval()
    with torch.no_grad():
        model = ov.convert_model(TaesdDecoder(vae), example_input=torch.randn(1, 4, 64, 64))
    model.outputs[0].get_tensor().set_names({"sample"})  # optimum-intel reads outputs by name
    (out / "vae_decoder").mkdir(parents=True)
    ov.save_model(model, out / "vae_decoder" / "openvino_model.xml", compress_to_fp16=False)  # as the pipeline: float32
    shutil.copy(folder / "config.json", out / "vae_decoder" / "config.json")  # its scaling factor is 1.0
    for part in ("model_index.json", "scheduler", "tokenizer", "text_encoder", "unet"):
        (out / part).symlink_to(Path("..") / full.name / part)  # relative: the folder is renamed when done


def openvino_path(folder: Path, size: int):
    from optimum.intel import OVStableDiffusionPipeline

    pipe = OVStableDiffusionPipeline.from_pretrained(folder, compile=False)
    # static image size; the batch stays dynamic, as optimum-intel's static batch assumes
    # classifier-free guidance (twice the batch) and sd-turbo runs without it
    pipe.reshape(batch_size=-1, height=size, width=size, num_images_per_prompt=1)
    pipe.compile()
    pipe.set_progress_bar_config(disable=True)
    precision = pipe.unet.request.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    print(f"  OpenVINO compiled the UNet with inference precision {precision}")
    return lambda latents: picture(pipe, latents)


# ---------------------------------------------------------------- the run


# `--rows` names: short name -> row
ROWS = {
    "kit-ov": KIT_OV,
    "kit-ov-taesd": KIT_OV_TAESD,
    "kit-ov-first": KIT_OV_FIRST,
    "kit": KIT,
    "fp32": FP32,
    "fp32-taesd": FP32_TAESD,
    "torch-bf16": TORCH_BEST,
    "torch-bf16-taesd": TORCH_BEST_TAESD,
    "peer": PEER,
    "peer-taesd": PEER_TAESD,
}


def paths(root: Path, ir: Path, size: int, seed: int, previews: dict, hashes: dict, rows: list[str]) -> dict:
    """name -> (loader returning `generate(latents) -> PIL image`, row whose picture it should match),
    for the rows asked for."""
    bf16 = torch.bfloat16
    every = {
        KIT_OV: (lambda: kit_openvino_path(root, size, seed, False, hashes[KIT_OV]), FP32),
        KIT_OV_TAESD: (lambda: kit_openvino_path(root, size, seed, True, hashes[KIT_OV_TAESD]), FP32_TAESD),
        KIT_OV_FIRST: (
            lambda: kit_openvino_path(root, size, seed, False, hashes[KIT_OV_FIRST], previews[KIT_OV_PREVIEW]),
            FP32,
        ),
        KIT: (lambda: kit_path(root, size, seed, previews[KIT_PREVIEW]), FP32),
        FP32: (lambda: torch_path(root, torch.float32), FP32),
        FP32_TAESD: (lambda: torch_path(root, torch.float32, taesd=True), FP32_TAESD),
        TORCH_BEST: (lambda: torch_path(root, bf16, channels_last=True), FP32),
        TORCH_BEST_TAESD: (lambda: torch_path(root, bf16, taesd=True, channels_last=True), FP32_TAESD),
        PEER: (lambda: openvino_path(ir / "full", size), FP32),
        PEER_TAESD: (lambda: openvino_path(ir / "taesd", size), FP32_TAESD),
    }
    return {name: every[name] for name in every if name in rows}


def psnr(a, b) -> float:
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def measure(root: Path, ir: Path, size: int, seed: int, repeat: int, rows: list[str]) -> dict:
    """{name: (median s, first picture s, PSNR dB or None)} for one size."""
    latents = torch.randn((1, 4, size // 8, size // 8), generator=torch.Generator().manual_seed(seed))
    generators, first, images, references = {}, {}, {}, {}
    previews = {name: [] for name in PREVIEW_ROWS}  # seconds to each preview of the preview-first rows
    hashes = {KIT_OV: set(), KIT_OV_TAESD: set(), KIT_OV_FIRST: set()}
    for name, (load, reference) in paths(root, ir, size, seed, previews, hashes, rows).items():
        print(f"{size} px: loading {name}…", flush=True)
        start = time.perf_counter()
        generate = load()
        images[name] = generate(latents.clone())
        first[name] = time.perf_counter() - start
        generators[name] = lambda generate=generate: generate(latents.clone())
        references[name] = reference
    times = interleaved(generators, repeat=repeat, warmup=0)  # the first picture was the warm-up
    torch_pipeline.cache_clear()
    kit_openvino_studio.cache_clear()
    for name, seen in hashes.items():
        if seen:  # the row ran
            same = "the same pixels in every run" if len(seen) == 1 else f"{len(seen)} different pictures"
            print(f"  {name}: {same}")
    agreement = {
        name: None if ref == name else psnr(images[name], images[ref]) if ref in images else math.nan
        for name, ref in references.items()
    }  # nan: its reference row was not run
    measured = {name: (times[name], first[name], agreement[name]) for name in times}
    for name, seen in previews.items():
        if seen:
            measured[name] = (statistics.median(seen[1:]), None, None)  # the first came with the loading
    return measured


def versions() -> str:
    from importlib.metadata import version

    packages = ("torch", "diffusers", "transformers", "openvino", "optimum-intel")
    return ", ".join(f"{p} {version(p)}" for p in packages)


def cpu_flags() -> str:
    flags = open("/proc/cpuinfo").read().split()
    wanted = ("avx512f", "avx512_bf16", "amx_bf16")
    return ", ".join(f for f in wanted if f in flags) or f"none of {', '.join(wanted)}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--rows",
        default=",".join(ROWS),
        help=f"the rows to run, of {', '.join(ROWS)} (fp32 always runs: the ratios are to it); "
        "fewer rows need less memory at 512 px",
    )
    args = parser.parse_args()
    unknown = set(args.rows.split(",")) - set(ROWS)
    if unknown:
        parser.error(f"--rows: unknown {', '.join(sorted(unknown))}; known: {', '.join(ROWS)}")
    rows = [ROWS[r] for r in ROWS if r in args.rows.split(",") or r == "fp32"]
    # the kit's openvino exports go beside the peer's, in the temp folder (delete kit-bench-cache when done)
    os.environ.setdefault("KIT_CACHE", str(Path(tempfile.gettempdir()) / "kit-bench-cache"))
    sizes = [int(s) for s in args.sizes.split(",")]

    import openvino as ov
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()
    # optimum-intel warns that it cannot tell whether a local folder holds IR, and then does the asked thing
    logging.getLogger("optimum").setLevel(logging.ERROR)
    print(versions())
    precision = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    print(
        f"CPU: {os.cpu_count()} cores, {cpu_flags()}; torch threads {torch.get_num_threads()}; "
        f"OpenVINO's default inference precision here: {precision}"
    )
    print("building the sd-turbo architecture with random weights (cached in the temp folder)…", flush=True)
    root = random_weights()
    ir = openvino_export(root) if {PEER, PEER_TAESD} & set(rows) else None
    if {KIT_OV, KIT_OV_TAESD, KIT_OV_FIRST} & set(rows):
        kit_openvino_export(root, sizes)

    results = {}
    for size in sizes:
        results[size] = measure(root, ir, size, args.seed, args.repeat, rows)
        gc.collect()  # let one size's models go before the next size loads its own
    for size, measured in results.items():
        base = measured[FP32][0]
        print(f"\nsd-turbo arch (random weights), {size} px, 1 step, prompt to PIL, median of {args.repeat}")
        print(
            table(
                [
                    (
                        name,
                        f"{t:.2f} s",
                        f"{base / t:.2f}x",
                        "" if f is None else f"{f:.1f} s",
                        "reference"
                        if p is None and name not in PREVIEW_ROWS
                        else ""
                        if p is None
                        else "(reference not run)"
                        if math.isnan(p)
                        else f"{p:.1f} dB",
                    )
                    for name, (t, f, p) in measured.items()
                ],
                ("path", "median", "vs float32", "first picture", "PSNR vs float32"),
            )
        )
    print()
    print(
        table(
            [(name, *(f"{results[s][name][0]:.2f} s" for s in sizes)) for name in results[sizes[0]]],
            ("path", *(f"{s} px" for s in sizes)),
        )
    )
    print("\nthe kit's openvino backend: speed-up over (time of the other path / the kit's openvino time)")
    pairs = [
        (KIT_OV, TORCH_BEST),
        (KIT_OV, PEER),
        (KIT_OV_TAESD, TORCH_BEST_TAESD),
        (KIT_OV_TAESD, PEER_TAESD),
        (KIT_OV_FIRST, PEER),
        (KIT_OV_PREVIEW, PEER_TAESD),
        (KIT_OV_FIRST, KIT),
        (KIT_OV_PREVIEW, KIT_PREVIEW),
    ]
    print(
        table(
            [
                (f"{ours} vs {other}", *(f"{results[s][other][0] / results[s][ours][0]:.2f}x" for s in sizes))
                for ours, other in pairs
                if {ours, other} <= set(results[sizes[0]])
            ],
            ("pair", *(f"{s} px" for s in sizes)),
        )
    )


if __name__ == "__main__":
    main()
