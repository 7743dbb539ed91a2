"""Fusion, restoration and image to image on a CPU: the kit's float32 path (its former default)
against its default now (bfloat16 where the CPU computes it natively, channels_last), measured
side by side in one run, and the time to the first picture when a TAESD preview comes first.

    python bench/bench_features.py [--size 512] [--repeat 3]

sd-turbo architecture with random weights (the same compute as the real model; nothing is
downloaded), saved and loaded as local folders through from_pretrained: the text-to-image
pipeline, TAESD, and an SD 2 inpainting pipeline of the same shape (9-channel UNet). Each row
is the median wall time of a whole call (prompt to PIL image); the calls run interleaved, so
the machine's noise hits every row alike. Pixel agreement with the float32 result is given
as PSNR (the same seed and inputs).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
from common import interleaved, sd_turbo_architecture, table  # noqa: E402


def inpaint_architecture(root: Path) -> Path:
    """An SD 2 inpainting pipeline of sd-turbo's shape (9 input channels), random weights, beside `root`."""
    import torch
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline, UNet2DConditionModel

    folder = root / "inpaint"
    if (folder / "model_index.json").is_file():
        return folder
    base = StableDiffusionPipeline.from_pretrained(root / "pipeline")
    torch.manual_seed(1)
    unet = UNet2DConditionModel(**{**dict(base.unet.config), "in_channels": 9})
    StableDiffusionInpaintPipeline(
        unet=unet,
        vae=base.vae,
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        scheduler=base.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    ).save_pretrained(folder, safe_serialization=True)
    return folder


def psnr(a, b) -> float:
    a, b = (np.asarray(getattr(x, "image", x), dtype=np.float64) for x in (a, b))
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import kit
    from kit import presets
    from kit.features.damage import damage

    root = sd_turbo_architecture()
    preset = presets.Preset(
        name="sd-turbo-arch",
        model=str(root / "pipeline"),
        preview=str(root / "taesd"),
        inpaint=str(inpaint_architecture(root)),
        steps=1,
        guidance=0.0,
        size=args.size,
    )
    before = kit.Studio(preset=preset, dtype="float32")
    after = kit.Studio(preset=preset)
    for studio in (before, after):
        studio.progress_bar = False
    print(
        f"{args.size} px, 1 step, median of {args.repeat}; the kit's default here: {after.dtype} "
        f"({presets.dtype_choice(after.device, preset)[1]})"
    )

    weights, subject = {"ukiyo-e": 0.6, "art-deco": 0.4}, "portrait of an elder"
    picture = before.generate(subject, seed=5)[0].image
    damaged, mask = damage(picture, "holes", seed=3, amount=0.08)

    fuse = lambda studio, **kw: studio.fuse(weights, subject, seed=1, **kw)  # noqa: E731
    heal = lambda studio, **kw: studio.restore(damaged, mask, prompt=subject, seed=1)  # noqa: E731
    restyle = lambda studio, **kw: studio.restyle(picture, subject, style="ukiyo-e", strength=0.6, seed=1, **kw)  # noqa: E731
    rows = []
    for name, call in (("fusion", fuse), ("restyle", restyle), ("restoration", heal)):
        results = {"float32": call(before), "default": call(after)}
        times = interleaved(
            {"float32": lambda c=call: c(before), "default": lambda c=call: c(after)}, args.repeat, warmup=0
        )
        # restoration shows no preview first: what it paints is disclosed on the finished image
        first_picture = None if name == "restoration" else first_picture_time(after, call, args.repeat)
        print(f"  {name}: float32 {times['float32']:.2f} s, default {times['default']:.2f} s", flush=True)
        rows.append(
            (
                name,
                f"{times['float32']:.2f} s",
                f"{times['default']:.2f} s",
                f"{times['float32'] / times['default']:.2f}x",
                "-" if first_picture is None else f"{first_picture:.2f} s ({times['float32'] / first_picture:.2f}x)",
                f"{psnr(results['default'], results['float32']):.1f} dB",
            )
        )
    print(
        table(
            rows,
            ("feature", "float32 (before)", "default now", "speed-up", "first picture (vs before)", "PSNR vs float32"),
        )
    )


def first_picture_time(studio, call, repeat: int) -> float:
    """Median seconds from the call to its first picture on screen (the TAESD preview)."""
    import statistics

    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        seen = []
        call(studio, on_preview=lambda images, seen=seen, start=start: seen.append(time.perf_counter() - start))
        times.append(seen[0] if seen else time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    main()
