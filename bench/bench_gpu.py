"""GPU benchmark: every setting that matters on a GPU, through the kit and through plain diffusers, in one run.

Models (random weights: the same compute as the trained ones):

- ``sd``: the sd-turbo architecture at 512 px, 1 step, with a TAESD-shaped preview decoder (built
  once into the temp folder: about 5 GB of float32 safetensors).
- ``sdxl``: a small SDXL-shaped pipeline at 256 px (two text encoders, pooled embeddings) whose VAE
  config says ``force_upcast=True``, as the real SDXL VAE's does.
- ``sdxl-overflow``: the same, with the VAE decoder's first convolution scaled up so its
  activations pass float16's range (65504) as the trained SDXL VAE's do. GroupNorm normalises
  them away in float32; in float16 they become inf, then NaN, then a black picture, unless the
  VAE is upcast to float32 for the decode (what diffusers' SDXL pipeline does).

The matrix (`matrix`): the kit (``Studio.generate``, a `Preset` on the saved folder) on ``sd`` in
float16 / bfloat16 / float32, contiguous or channels_last (UNet, VAE and TAESD), full VAE or TAESD,
batch 1 / 4 / 8 (``Studio(batch_size=8)``, ``generate(n=...)``); plain diffusers beside it
(contiguous, the smallest and largest batch); the kit with ``compile=True`` in float16 (each layout
and batch size is a compile of its own); and the float16 VAE check on ``sdxl`` and
``sdxl-overflow`` through both paths.

Each row: median latency of one call (prompt to PIL images, a batch of `batch`), images/s, the
PSNR of its first image against the kit's float32 image of the same seed (contiguous, no compile,
batch 1, same decoder), and whether the decoder's output was finite and the picture not black.

    python bench/bench_gpu.py [--repeat 10] [--batches 1 4 8] [--no-compile]
    python bench/bench_gpu.py --dry-run    # the matrix on the CPU at 32 px in seconds (CI runs it)

Without ``--dry-run`` on a machine without CUDA it says so and exits. The dry run uses the tiny
preset's saved folder for ``sd``, one thread, one timed call per row, and traces the first
compile row only, with Dynamo alone (the graph is still captured with ``fullgraph=True``, so a
graph break fails) instead of Inductor, which takes minutes on a CPU.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(__file__))

from common import sd_turbo_architecture, table  # noqa: E402

PROMPT = "portrait of an elder, ukiyo-e woodblock print"
SEED = 1
DTYPES = ("float16", "bfloat16", "float32")
LAYOUTS = ("contiguous", "channels_last")
DECODERS = ("vae", "taesd")
PATHS = ("kit", "diffusers")
OVERFLOW = 1e5  # scale of the planted VAE decoder activations: far past float16's 65504, easy for float32
HEADER = (
    "model",
    "path",
    "dtype",
    "layout",
    "compile",
    "batch",
    "decoder",
    "latency (median)",
    "images/s",
    "PSNR vs fp32 (dB)",
    "decoder output",
    "note",
)


@dataclass(frozen=True)
class Config:
    """One row of the matrix."""

    model: str  # "sd", "sdxl" or "sdxl-overflow"
    path: str  # "kit" (Studio.generate) or "diffusers" (the pipeline called directly)
    dtype: str
    layout: str  # "contiguous" or "channels_last"
    compile: bool
    batch: int
    decoder: str  # "vae" (full) or "taesd"

    def cells(self) -> tuple:
        return (
            self.model,
            self.path,
            self.dtype,
            self.layout,
            "on" if self.compile else "off",
            str(self.batch),
            self.decoder,
        )

    @property
    def reference(self) -> Config:
        """The row whose first image this one should match: the kit in float32, as plain as it gets."""
        return replace(self, path="kit", dtype="float32", layout="contiguous", compile=False, batch=1)


def matrix(batches=(1, 4, 8), compile: bool = True) -> list[Config]:
    """The configurations to measure, grouped so each loaded pipeline serves consecutive rows."""
    batches = sorted(set(batches))
    ends = sorted({batches[0], batches[-1]})
    rows = [
        Config("sd", "kit", dtype, layout, False, batch, decoder)
        for dtype in DTYPES
        for layout in LAYOUTS
        for decoder in DECODERS
        for batch in batches
    ]
    rows += [
        Config("sd", "diffusers", dtype, "contiguous", False, batch, decoder)
        for dtype in DTYPES
        for decoder in DECODERS
        for batch in ends
    ]
    if compile:  # the UNet only; every layout and batch size is a compile of its own
        rows += [Config("sd", "kit", "float16", layout, True, batch, "vae") for layout in LAYOUTS for batch in ends]
    rows += [
        Config(model, path, dtype, "contiguous", False, 1, "vae")
        for model in ("sdxl", "sdxl-overflow")
        for path in PATHS
        for dtype in DTYPES
    ]
    return rows


# ---------------------------------------------------------------- the models


def sd_preset(dry_run: bool):
    """The ``sd`` model as a kit Preset: the sd-turbo architecture (512 px), or the tiny preset's folder (32 px)."""
    from kit import presets, tiny

    if dry_run:
        root, size = tiny.ensure_saved(), 32
    else:
        print("building the sd-turbo architecture with random weights (cached in the temp folder)…", flush=True)
        root, size = sd_turbo_architecture(), 512
    return presets.Preset(
        name="sd-bench",
        model=str(root / "pipeline"),
        preview=str(root / "taesd"),
        steps=1,
        guidance=0.0,
        size=size,
        min_size=32,
        max_size=max(size, 512),
    )


SDXL_UNET = dict(  # SDXL's layout (text_time embedding, two-level transformer depth) at toy width
    sample_size=32,
    in_channels=4,
    out_channels=4,
    layers_per_block=1,
    norm_num_groups=32,
    block_out_channels=(32, 64),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2),
    attention_head_dim=(2, 4),
    use_linear_projection=True,
    cross_attention_dim=64,  # 32 + 32: both encoders
    addition_embed_type="text_time",
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=80,  # 6 size/crop numbers x 8 + the pooled text (32)
)
SDXL_VAE = dict(  # 8x, like SDXL's, with its scaling factor and force_upcast=True
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    layers_per_block=1,
    norm_num_groups=32,
    block_out_channels=(32, 64, 64, 64),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    sample_size=256,
    scaling_factor=0.13025,
    force_upcast=True,
)
SDXL_TEXT = dict(
    vocab_size=49408,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=77,
    projection_dim=32,
    hidden_act="gelu",
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=49407,
)


def sdxl_folders() -> dict[str, Path]:
    """Save the small SDXL-shaped pipeline and its overflowing twin; {model name: folder}.

    Built once per configuration (its hash names the folder), into a scratch folder renamed into
    place, so a run never reads half a model while another writes it."""
    spec = json.dumps([SDXL_UNET, SDXL_VAE, SDXL_TEXT, OVERFLOW], sort_keys=True).encode()
    root = Path(tempfile.gettempdir()) / f"kit-bench-sdxl-small-{hashlib.sha256(spec).hexdigest()[:10]}"
    folders = {"sdxl": root / "pipeline", "sdxl-overflow": root / "pipeline-overflow"}
    if not root.is_dir():
        scratch = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
        try:
            save_sdxl(scratch / "pipeline", scratch / "pipeline-overflow")
            os.rename(scratch, root)
        except OSError:
            if not root.is_dir():  # not a lost race with another run
                raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return folders


def save_sdxl(folder: Path, overflow_folder: Path) -> None:
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from kit import tiny

    torch.manual_seed(0)
    pipe = StableDiffusionXLPipeline(
        vae=AutoencoderKL(**SDXL_VAE),
        unet=UNet2DConditionModel(**SDXL_UNET),
        text_encoder=CLIPTextModel(CLIPTextConfig(**SDXL_TEXT)),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**SDXL_TEXT)),
        tokenizer=tiny.clip_tokenizer(),
        tokenizer_2=tiny.clip_tokenizer(),
        scheduler=EulerDiscreteScheduler(
            beta_schedule="scaled_linear",
            beta_start=0.00085,
            beta_end=0.012,
            timestep_spacing="trailing",
            steps_offset=1,
        ),
        add_watermarker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    with torch.no_grad():
        conv = pipe.vae.decoder.conv_in
        conv.weight.mul_(OVERFLOW), conv.bias.mul_(OVERFLOW)
    pipe.save_pretrained(overflow_folder, safe_serialization=True)


def presets_for(dry_run: bool) -> dict:
    """{model name: kit Preset} for every model of the matrix."""
    from kit import presets

    size = 32 if dry_run else 256
    found = {"sd": sd_preset(dry_run)}
    for name, folder in sdxl_folders().items():
        found[name] = presets.Preset(
            name=name, model=str(folder), family="sdxl", steps=1, guidance=0.0, size=size, min_size=32, max_size=512
        )
    return found


# ---------------------------------------------------------------- the two paths


@dataclass
class Loaded:
    """A loaded pipeline: `make(n, decoder) -> PIL images` of seeds SEED.., and its modules."""

    make: object
    unet: object
    decoders: dict  # "vae" / "taesd" -> the decoder module


def load_kit(preset, device: str, dtype: str, compile: bool, batch_size: int) -> Loaded:
    import kit

    studio = kit.Studio(preset=preset, device=device, dtype=dtype, compile=compile, batch_size=batch_size)
    studio.progress_bar = False
    pipe = studio.pipe

    def make(n, decoder):
        return [art.image for art in studio.generate(PROMPT, seed=SEED, n=n, preview=decoder == "taesd")]

    decoders = {"vae": pipe.vae, "taesd": studio.preview_vae} if preset.preview else {"vae": pipe.vae}
    return Loaded(make, pipe.unet, decoders)


def load_diffusers(preset, device: str, dtype: str) -> Loaded:
    """The pipeline as a user writes it: from_pretrained, .to(device), TAESD swapped in as `pipe.vae`."""
    import torch
    from diffusers import AutoencoderTiny, DiffusionPipeline

    from kit.core.latents import noise
    from kit.core.libraries import dtype_argument, quiet_loading

    dtype = getattr(torch, dtype)
    as_dtype = {dtype_argument(): dtype, "use_safetensors": True}  # diffusers renamed torch_dtype to dtype
    with quiet_loading():  # no loading bars
        pipe = DiffusionPipeline.from_pretrained(preset.model, **as_dtype).to(device)
        decoders = {"vae": pipe.vae}
        if preset.preview:
            decoders["taesd"] = AutoencoderTiny.from_pretrained(preset.preview, **as_dtype).to(device)
    pipe.set_progress_bar_config(disable=True)
    side = preset.size // pipe.vae_scale_factor
    shape = (pipe.unet.config.in_channels, side, side)

    def make(n, decoder):
        pipe.vae = decoders[decoder]
        latents = torch.stack([noise(SEED + i, shape) for i in range(n)]).to(device, dtype)  # the kit's noise
        return pipe(
            [PROMPT] * n,
            num_inference_steps=preset.steps,
            guidance_scale=preset.guidance,
            height=preset.size,
            width=preset.size,
            latents=latents,
        ).images

    return Loaded(make, pipe.unet, decoders)


def set_layout(loaded: Loaded, layout: str) -> None:
    """Put the UNet and both decoders in `layout` (the kit picks channels_last on a CPU only)."""
    import torch

    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    for module in (loaded.unet, *loaded.decoders.values()):
        module.to(memory_format=fmt)


def watch_outputs(loaded: Loaded) -> list:
    """A list that gets, for every decoder call, whether its output was all finite."""
    import torch

    seen = []
    for decoder in loaded.decoders.values():
        decoder.decoder.register_forward_hook(lambda module, args, out: seen.append(bool(torch.isfinite(out).all())))
    return seen


def trace_only_compile() -> None:
    """For the dry run: torch.compile captures the graph with Dynamo (fullgraph errors still show)
    but runs it eagerly, skipping Inductor's code generation, which takes minutes on a CPU."""
    import torch

    compile = torch.compile

    def traced(model, **options):
        options.pop("mode", None)
        return compile(model, backend="eager", **options)

    torch.compile = traced


def quiet_libraries() -> None:
    """Errors only from diffusers and transformers (not the notice that float16 may fail on a CPU: the table says)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()


# ---------------------------------------------------------------- measuring


@dataclass
class Result:
    seconds: float | None = None
    image: object = None  # the first image of the last call
    finite: bool | None = None
    note: str = ""


def clock(fn, repeat: int, warmup: int, sync):
    """(median seconds of `fn()`, its last output)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def failure(err: Exception) -> str:
    first = (str(err).strip().splitlines() or [""])[0]
    return f"failed: {type(err).__name__}: {first[:90]}"


def measure(configs: list[Config], models: dict, device: str, repeat: int, warmup: int, skip=()) -> dict:
    """{config: Result}, loading each (model, path, dtype, compile) once for its consecutive rows;
    the rows in `skip` are left out, saying so."""
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    batch_size = max(c.batch for c in configs)
    groups: dict[tuple, list[Config]] = {}
    for config in configs:
        groups.setdefault((config.model, config.path, config.dtype, config.compile), []).append(config)
    results, done = {}, 0
    for (model, path, dtype, compiled), rows in groups.items():
        results.update(
            {config: Result(note="skipped: the dry run traces one compile row") for config in rows if config in skip}
        )
        rows = [config for config in rows if config not in skip]
        if not rows:
            continue
        start = time.perf_counter()
        try:
            loaded = (
                load_kit(models[model], device, dtype, compiled, batch_size)
                if path == "kit"
                else load_diffusers(models[model], device, dtype)
            )
        except Exception as err:  # one broken load fails its rows, not the run
            results.update({config: Result(note=failure(err)) for config in rows})
            continue
        print(
            f"  loaded {model} {path} {dtype}{' compile' if compiled else ''} in {time.perf_counter() - start:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        seen = watch_outputs(loaded)
        for config in rows:
            seen.clear()
            try:
                set_layout(loaded, config.layout)
                warm = warmup + 1 if compiled and warmup else warmup  # compile; record the CUDA graph; replay
                seconds, images = clock(partial(loaded.make, config.batch, config.decoder), repeat, warm, sync)
                results[config] = Result(seconds, images[0], all(seen))
            except Exception as err:  # say so in the table: float16 on a CPU may lack an op
                results[config] = Result(note=failure(err))
            done += 1
            print(
                f"  [{done}/{len(configs) - len(skip)}] {' '.join(config.cells())}: {latency(results[config])}",
                file=sys.stderr,
                flush=True,
            )
        del loaded
        if device.startswith("cuda"):  # free its memory before the next load
            gc.collect()
            torch.cuda.empty_cache()
    return results


def psnr(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def latency(result: Result) -> str:
    return "-" if result.seconds is None else f"{result.seconds * 1000:.1f} ms"


def decoder_output(result: Result) -> str:
    import numpy as np

    if result.image is None:
        return "-"
    black = int(np.asarray(result.image).max()) <= 5
    words = ([] if result.finite else ["NaN/inf"]) + (["black"] if black else [])
    return ", ".join(words) or "ok"


def rows(configs: list[Config], results: dict, dry_run: bool) -> list[tuple]:
    out = []
    for config in configs:
        result, ref = results[config], results.get(config.reference)
        if config == config.reference:
            agreement = "ref"
        elif result.image is None or ref is None or ref.image is None:
            agreement = "-"
        else:
            agreement = f"{psnr(result.image, ref.image):.1f}"
        speed = "-" if result.seconds is None else f"{config.batch / result.seconds:.1f}"
        note = result.note or ("Dynamo only (dry run)" if dry_run and config.compile else "")
        out.append((*config.cells(), latency(result), speed, agreement, decoder_output(result), note))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="timed calls per row (the median is shown)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--no-compile", action="store_true", help="leave out the compile=True rows")
    parser.add_argument("--dry-run", action="store_true", help="the matrix on the CPU at 32 px, one call per row")
    args = parser.parse_args(argv)

    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here; run it on a machine with an NVIDIA GPU (or --dry-run to check the code)")
        return 0
    quiet_libraries()
    warnings.filterwarnings("ignore", message=".*upcast_vae.*")  # diffusers' SDXL pipeline, each float16 decode
    warnings.filterwarnings("ignore", message="invalid value encountered in cast")  # NaN pictures: reported below
    device, repeat, warmup = ("cpu", 1, 0) if args.dry_run else ("cuda", args.repeat, 2)
    if args.dry_run:
        trace_only_compile()
        torch.set_num_threads(1)  # a busy CI machine slows a 2-thread run of tiny models far more than one thread
    configs = matrix(args.batches, compile=not args.no_compile)
    models = presets_for(args.dry_run)
    # the dry run traces one compile row: enough to see that the kit's UNet compiles as one graph
    skip = [c for c in configs if c.compile][1:] if args.dry_run else []
    results = measure(configs, models, device, repeat, warmup, skip)

    import diffusers

    where = "CPU (dry run: timings mean nothing)" if args.dry_run else torch.cuda.get_device_name(0)
    print(
        f"{where}; torch {torch.__version__}, diffusers {diffusers.__version__}; 1 step, guidance 0; "
        f"sd {models['sd'].size} px, sdxl {models['sdxl'].size} px; median of {repeat} after {warmup} warm-up"
    )
    print(table(rows(configs, results, args.dry_run), HEADER))
    return 0


if __name__ == "__main__":
    sys.exit(main())
