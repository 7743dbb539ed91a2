"""Foundation benchmarks, measured side by side in one run (CPU):

1. `import kit` against `import torch` (fresh interpreters).
2. `Studio.generate` against a bare diffusers pipeline call on the same components and latents,
   sd-turbo architecture with random weights, 256 px, 1 step.
3. TAESD preview decode against the full VAE decode at 512 px.

    python bench/bench_generate.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(__file__))

from common import interleaved, sd_turbo_architecture, table  # noqa: E402


def import_times(repeat: int) -> dict:
    """Median seconds to import each module, timed inside fresh interpreters."""
    code = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"

    def fresh(module):
        out = subprocess.run([sys.executable, "-c", code.format(module)], check=True, capture_output=True, text=True)
        return float(out.stdout)

    return {module: statistics.median(fresh(module) for _ in range(repeat)) for module in ("kit", "torch")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    imports = import_times(max(args.repeat, 5))
    print(
        table(
            [(m, f"{t * 1000:.0f} ms") for m, t in imports.items()]
            + [("kit / torch", f"{imports['kit'] / imports['torch']:.3f}")],
            ("import", "time"),
        )
    )
    print()

    import torch
    from diffusers import AutoencoderTiny

    import kit

    print("building the sd-turbo architecture with random weights (cached in the temp folder)…", flush=True)
    root = sd_turbo_architecture()
    studio = kit.Studio(preset=str(root / "pipeline"), device="cpu")
    studio.progress_bar = False
    pipe = studio.pipe
    prompt, seed = "portrait of an elder, ukiyo-e woodblock print", 1
    latents = studio.noise([seed], 256, 256)

    def bare():
        with torch.inference_mode():
            pipe(
                prompt,
                latents=latents.clone(),
                num_inference_steps=1,
                guidance_scale=0.0,
                height=256,
                width=256,
                output_type="pil",
            )

    def ours():
        studio.generate(prompt, seed=seed, steps=1, guidance=0.0, size=256)

    times = interleaved({"bare diffusers call": bare, "Studio.generate": ours}, repeat=args.repeat)
    overhead = times["Studio.generate"] / times["bare diffusers call"] - 1
    print(
        table(
            [(k, f"{v:.2f} s") for k, v in times.items()] + [("overhead", f"{overhead:+.1%}")],
            ("sd-turbo arch, 256 px, 1 step, CPU", "median"),
        )
    )
    print()

    taesd = AutoencoderTiny.from_pretrained(root / "taesd")
    big = torch.randn(1, 4, 64, 64)

    def full_vae():
        with torch.inference_mode():
            pipe.vae.decode(big / pipe.vae.config.scaling_factor)

    def preview():
        with torch.inference_mode():
            taesd.decode(big)

    times = interleaved({"full VAE": full_vae, "TAESD": preview}, repeat=args.repeat)
    print(
        table(
            [(k, f"{v:.2f} s") for k, v in times.items()]
            + [("TAESD speed-up", f"{times['full VAE'] / times['TAESD']:.1f}x")],
            ("decode 512 px, CPU", "median"),
        )
    )


if __name__ == "__main__":
    main()
