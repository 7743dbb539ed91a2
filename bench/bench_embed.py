"""How fast the embedder is: batched vs one by one, and cached vs first pass.

    python bench/bench_embed.py [--quick] [--images 64] [--cache-images 1000] [--size 256]
                                [--repeat 3] [--threads N]

1. open_clip ViT-B-32 with random weights (the real architecture, so the same compute as
   laion2b_s34b_b79k; nothing is downloaded), on the same images batched (32) and one by
   one: the forward pass alone, and Embedder.images() on files end to end (cache off); then
   the dtype the Embedder picks for this CPU (bfloat16 where the CPU computes it) against float32.
2. The tiny preset on N image files: the first pass (decode, preprocess, model, cache write)
   against the second (hash the file bytes, read the cache).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def write_images(folder: Path, n: int, size: int) -> list[Path]:
    """n noise JPEGs of size x size pixels (incompressible, so decoding costs what a photo does)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"img{i:05d}.jpg"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def clock(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed(fns, repeat: int = 1) -> list[float]:
    """The best of `repeat` wall-clock timings of each function, run in turns.

    Taking turns shows each the same background load; the best run is the one
    least slowed by other work on the machine.
    """
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], clock(fn))
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images: a smoke run")
    parser.add_argument("--images", type=int, help="images for the ViT-B-32 runs (default 64, quick 32)")
    parser.add_argument("--cache-images", type=int, help="images for the cache run (default 1000, quick 200)")
    parser.add_argument("--size", type=int, default=256, help="side of the test images in pixels")
    parser.add_argument("--repeat", type=int, help="timings per figure, the best is kept (default 3, quick 1)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    n_vit = args.images or (32 if args.quick else 64)
    n_cache = args.cache_images or (200 if args.quick else 1000)
    repeat = args.repeat or (1 if args.quick else 3)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from kit import presets
    from kit.maps.embed import Embedder

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu, "
        f"{args.size} px JPEGs, best of {repeat}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = write_images(tmp / "vit", n_vit, args.size)
        vit = presets.Preset(name="vit-b-32-random", model=None, clip_model="ViT-B-32", clip_pretrained="random")

        # the forward pass alone, on tensors preprocessed beforehand
        emb = Embedder(vit, device="cpu", cache=False, batch_size=32)
        images = torch.stack([emb.preprocess(Image.open(p).convert("RGB")) for p in paths]).to(emb.dtype)
        with torch.inference_mode():
            emb.model.encode_image(images[:2])  # warm-up
            batched, single = timed(
                [
                    lambda: [emb.model.encode_image(images[i : i + 32]) for i in range(0, n_vit, 32)],
                    lambda: [emb.model.encode_image(images[i : i + 1]) for i in range(n_vit)],
                ],
                repeat,
            )
        rows.append((f"ViT-B-32 encode_image, forward, {str(emb.dtype)[6:]}", n_vit / batched, n_vit / single))

        # end to end on files: read, decode, preprocess, forward
        one_by_one = Embedder(vit, device="cpu", cache=False, batch_size=1)
        one_by_one._clip = emb._clip  # the same loaded model
        batched, single = timed([lambda: emb.images(paths), lambda: one_by_one.images(paths)], repeat)
        rows.append(("ViT-B-32 Embedder.images(files)", n_vit / batched, n_vit / single))

        print(f"\n{f'{n_vit} images':<38} {'batched (32)':>14} {'one by one':>12} {'ratio':>7}")
        for name, fast, slow in rows:
            print(f"{name:<38} {fast:8.1f} img/s {slow:6.1f} img/s {fast / slow:6.2f}x")

        # the dtype the Embedder picks for this CPU against float32, end to end on files
        full = Embedder(vit, device="cpu", cache=False, batch_size=32, dtype="float32")
        picked, plain = timed([lambda: emb.images(paths), lambda: full.images(paths)], repeat)
        cosine = float((emb.images(paths) * full.images(paths)).sum(axis=1).min())
        print(f"\n{'Embedder.images(files), batched':<38} {str(emb.dtype)[6:] + ' (its pick)':>14} {'float32':>12}")
        print(
            f"{'ViT-B-32':<38} {n_vit / picked:8.1f} img/s {n_vit / plain:6.1f} img/s {plain / picked:6.2f}x"
            f"   (lowest cosine to float32: {cosine:.5f})"
        )

        # the cache, with the tiny preset
        paths = write_images(tmp / "cache", n_cache, args.size)
        tiny = Embedder("tiny", device="cpu", cache=tmp / "embeddings.sqlite")
        tiny.texts(["warm-up"])  # load the model outside the timing
        first = second = float("inf")
        for _ in range(repeat):
            tiny.cache.clear()  # the first pass starts from an empty cache
            first = min(first, clock(lambda: tiny.images(paths)))
            second = min(second, clock(lambda: tiny.images(paths)))
        print(f"\n{f'tiny preset, {n_cache} images':<38} {'first pass':>14} {'second (cached)':>16} {'speed-up':>9}")
        print(
            f"{'Embedder.images(files)':<38} {first:12.2f} s {second:14.3f} s {first / second:8.1f}x"
            f"   ({1e6 * second / n_cache:.0f} us per cached image)"
        )


if __name__ == "__main__":
    sys.exit(main())
