"""GPU benchmark: sd-turbo architecture (random weights), 512 px, 1 step, on CUDA in float16.

Latency per image (median of 20 after warm-up) and batched images/s, with and
without `compile=True`, decoding with the full VAE and with TAESD.

    python bench/bench_gpu.py [--batch 8] [--repeat 20] [--no-compile]

Runs unchanged on any CUDA machine; on a machine without one it says so and exits.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(__file__))

from common import sd_turbo_architecture, table  # noqa: E402


def timed(fn, repeat: int, warmup: int) -> float:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here; run it on a machine with an NVIDIA GPU")
        return
    import kit
    from kit import presets

    root = sd_turbo_architecture()
    # a local-folder preset with a preview decoder, so preview=True uses the TAESD-shaped model
    preset = presets.Preset(name="sd-turbo-arch", model=str(root / "pipeline"), steps=1, guidance=0.0, size=512,
                            min_size=256, max_size=768, preview=str(root / "taesd"))
    rows = []
    for compiled in ([False] if args.no_compile else [False, True]):
        studio = kit.Studio(preset=preset, device="cuda", compile=compiled, batch_size=args.batch)
        studio.progress_bar = False
        for preview in (False, True):
            def one():
                studio.generate("portrait of an elder", seed=1, preview=preview)

            def batch():
                studio.generate("portrait of an elder", seed=1, n=args.batch, preview=preview)

            latency = timed(one, args.repeat, warmup=3)
            per_batch = timed(batch, max(args.repeat // 4, 3), warmup=2)
            rows.append((f"compile={compiled}", "TAESD" if preview else "full VAE",
                         f"{latency * 1000:.1f} ms", f"{args.batch / per_batch:.1f}"))
    print(torch.cuda.get_device_name(0), f"torch {torch.__version__}")
    print(table(rows, ("unet", "decoder", "latency / image (median)", f"images/s (batch {args.batch})")))


if __name__ == "__main__":
    main()
