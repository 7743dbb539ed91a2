"""How fast latent walks are: batched against frame by frame, and scrubbing cached frames.

    python bench/bench_walk.py [--quick] [--frames 16] [--size 256] [--skip-big]

1. Walk throughput: frames per second of one walk rendered in batches (the studio's
   batch size; frames on keyframes always go alone) against the same frames one by one
   (batch_size=1), for the tiny preset (64 px) and for the sd-turbo architecture with
   random weights (the same compute as the real model; nothing is downloaded). The big
   pipeline is built from code, saved with save_pretrained() and loaded as a local-folder
   preset, so the real loading path is used. --quick renders 4 frames of the big model.
2. Scrubbing: the time from setting WalkExplorer's frame slider to the new image bytes,
   median over 50 moves, on 512 px frames (target: under 20 ms).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import kit  # noqa: E402

KEYFRAMES = [("portrait of an elder, soft window light", 1), ("portrait of an elder, soft window light", 2, "ukiyo-e")]


def clock(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def throughput(studio, frames: int, repeat: int, **settings) -> dict:
    """Frames per second of a fresh walk (nothing cached), batched and one by one, best of `repeat`."""
    studio.progress_bar = False
    studio.walk(KEYFRAMES, frames=2, **settings)  # load the pipeline and warm up
    best = {"batched": float("inf"), "one by one": float("inf")}
    for _ in range(repeat):  # take turns, so both see the same background load
        best["batched"] = min(best["batched"], clock(lambda: studio.walk(KEYFRAMES, frames=frames, **settings)))
        best["one by one"] = min(
            best["one by one"], clock(lambda: studio.walk(KEYFRAMES, frames=frames, batch_size=1, **settings))
        )
    return {name: frames / seconds for name, seconds in best.items()}


def build_sd_turbo_like(folder: Path) -> Path:
    """stabilityai/sd-turbo's architecture (SD 2.1) with random weights, saved as a pipeline folder."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import logging as diffusers_logging
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    from transformers.utils import logging as transformers_logging

    from kit import tiny

    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        attention_head_dim=(5, 10, 20, 20),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=1024,
        use_linear_projection=True,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=1024,
            num_hidden_layers=23,
            num_attention_heads=16,
            intermediate_size=4096,
            hidden_act="gelu",
            projection_dim=1024,
            max_position_embeddings=77,
        )
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing", steps_offset=1
    )
    tokenizer = CLIPTokenizer.from_pretrained(tiny.write_clip_tokenizer(folder / "tokenizer-src"))
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    target = folder / "sd-turbo-random"
    pipe.to(torch.float16).save_pretrained(target, safe_serialization=True)  # half the disk; loaded as float32
    return target


def scrubbing(moves: int = 50, size: int = 512, frames: int = 8) -> dict:
    """Median time to show a cached frame after a slider move, and the cost of encoding one PNG."""
    from kit.widgets.common import png_bytes

    studio = kit.Studio(preset="tiny")
    studio.progress_bar = False
    with tempfile.TemporaryDirectory() as folder:
        ui = kit.widgets.WalkExplorer(studio, folder=folder)
        ui.set_keyframes(KEYFRAMES)
        ui.frames.value, ui.size.value = frames, size
        ui.run()
        ui.wait()
        if ui.error:
            raise SystemExit(f"the walk failed: {ui.error}")
        times = []
        for i in range(moves):
            index = (i + 1) % frames  # every move goes to another frame
            start = time.perf_counter()
            ui.slider.value = index + 1  # the slider counts frames from 1, as the caption does
            times.append(time.perf_counter() - start)
            assert ui.image.value == ui.frame_png[index]
        encode = statistics.median(clock(lambda i=i: png_bytes(ui.walk[i % frames].image)) for i in range(10))
        return {
            "median_ms": 1000 * statistics.median(times),
            "max_ms": 1000 * max(times),
            "encode_ms": 1000 * encode,
            "png_kb": len(ui.frame_png[0]) / 1024,
            "size": ui.walk[0].image.size,
        }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 frames of the big model instead of --frames")
    parser.add_argument("--frames", type=int, default=16, help="frames per walk (default 16)")
    parser.add_argument("--size", type=int, default=256, help="image size of the big model in px (default 256)")
    parser.add_argument("--skip-big", action="store_true", help="leave out the sd-turbo architecture")
    args = parser.parse_args(argv)
    big_frames = 4 if args.quick else args.frames

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU", flush=True)
    rows = []
    tiny_studio = kit.Studio(preset="tiny", device="cpu")
    result = throughput(tiny_studio, args.frames, repeat=3, size=64)
    rows.append(("tiny", 64, args.frames, tiny_studio.batch_size, result))
    print(f"tiny done: {result}", flush=True)

    if not args.skip_big:
        with tempfile.TemporaryDirectory() as tmp:
            print("building the sd-turbo architecture with random weights…", flush=True)
            folder = build_sd_turbo_like(Path(tmp))
            gc.collect()
            big = kit.Studio(preset=str(folder), device="cpu")
            # sd-turbo's own settings: one step, no guidance
            result = throughput(big, big_frames, repeat=1, size=args.size, steps=1, guidance=0.0)
            rows.append(("sd-turbo arch (1 step)", args.size, big_frames, big.batch_size, result))
            print(f"sd-turbo done: {result}", flush=True)
            del big
            gc.collect()

    scrub = scrubbing()

    print()
    print("1. Walk throughput, frames/s (s/frame); keyframe frames always render alone")
    print(f"{'model':<24}{'px':>5}{'frames':>8}{'batched':>24}{'one by one':>24}{'ratio':>8}")
    for name, px, frames, batch, result in rows:
        batched, single = result["batched"], result["one by one"]
        print(
            f"{name:<24}{px:>5}{frames:>8}{_rate(batched) + f' bs={batch}':>24}{_rate(single) + ' bs=1':>24}"
            f"{batched / single:>7.2f}x"
        )
    if args.quick and not args.skip_big:
        print(f"(--quick: the big model rendered {big_frames} frames, 2 of them keyframes that go alone)")
    print()
    print(f"2. Scrubbing WalkExplorer, {scrub['size'][0]} px frames, median of 50 slider moves (target < 20 ms)")
    print(f"{'show a cached frame':<34}{scrub['median_ms']:>8.2f} ms   (max {scrub['max_ms']:.2f} ms)")
    print(f"{'encode one PNG (done once/frame)':<34}{scrub['encode_ms']:>8.2f} ms   ({scrub['png_kb']:.0f} KiB)")
    sys.stdout.flush()


def _rate(fps: float) -> str:
    return f"{fps:.3g} ({1 / fps:.3g} s)"


if __name__ == "__main__":
    main()
