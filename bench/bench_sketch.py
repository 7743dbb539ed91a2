"""How long the Sketchpad's live mode takes from the end of a stroke to the image, against a full re-render.

    python bench/bench_sketch.py [--repeat 3] [--sizes 256 512]

The sd-turbo architecture with random weights (the same compute as the trained model; nothing
is downloaded), saved and loaded back as a local-folder preset with its TAESD, in the dtype the
kit picks for this CPU. For each size:

- live: a stroke is added to `Sketchpad.strokes` (what the canvas sends when the pen lifts) and
  the clock runs until the widget has shown the new result (`ui.wait()`): the drawing is
  rasterised, encoded by the VAE, denoised (sd-turbo at strength 0.6: 1 of 2 steps) and decoded
  by TAESD. The debounce is set to 0 here: in use, the widget's pause (`Sketchpad.debounce`,
  0.8 s) comes on top.
- full: `studio.restyle` of the same kind of drawing decoded by the full VAE, as Render or Keep do.

Each live render gets a drawing it has not seen (one more stroke), and the two are measured in
alternation so machine noise hits both alike; medians of `--repeat` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).parent))
from common import interleaved, sd_turbo_architecture, table  # noqa: E402

PROMPT = "portrait of an elder, ukiyo-e woodblock print"


def studio_for(size: int):
    import transformers

    import kit
    from kit import presets

    root = sd_turbo_architecture(
        Path(tempfile.gettempdir()) / f"kit-bench-sd-turbo-arch-transformers-{transformers.__version__}"
    )
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
    return studio


def measure(size: int, repeat: int) -> dict:
    from kit.widgets import Sketchpad

    studio = studio_for(size)
    ui = Sketchpad(studio, gallery=tempfile.mkdtemp(prefix="bench-sketch-"), prompt=PROMPT, live=True)
    ui.debounce = 0.0
    n = [0]

    def stroke():
        n[0] += 1
        k = n[0]
        return {
            "points": [[size * (0.1 + 0.03 * (k % 20)), size * 0.2], [size * 0.5, size * (0.3 + 0.02 * (k % 30))]],
            "size": size / 40,
            "color": "#%02x3050" % (40 * k % 256),
            "erase": False,
        }

    def live():
        ui.strokes = [*ui.strokes, stroke()]
        ui.wait()
        assert ui.error == "", ui.error
        assert ui.artwork.record.decoder == ("taesd" if studio.previews_first else "vae")

    def full():
        art = studio.restyle(ui.drawing(), PROMPT, strength=ui.strength.value, seed=0, save=False)
        assert art.record.decoder == "vae"

    start = time.perf_counter()
    times = interleaved({"live": live, "full": full}, repeat=repeat)
    print(f"  {size} px: {studio.dtype} on {studio.device}, {time.perf_counter() - start:.0f} s in all", flush=True)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    args = parser.parse_args(argv)
    rows = []
    for size in args.sizes:
        t = measure(size, args.repeat)
        rows.append((f"{size} px", f"{t['live']:.2f} s", f"{t['full']:.2f} s", f"{t['full'] / t['live']:.2f}x"))
    print(table(rows, ("size", "live (end of stroke -> TAESD image)", "full re-render (full VAE)", "full / live")))


if __name__ == "__main__":
    main()
