"""Benchmark the audit's bootstrap (kit.audit_stats.measure) against its former formulation.

    python bench/bench_audit.py                              # 2 terms x 256 and 1,024 seeds, 1,000 rounds
    python bench/bench_audit.py --seeds 256 1024 2048 --old-max-gb 2

Data: fixed random paired unit vectors (float32, as CLIP gives them) of `--dim` dimensions,
2 terms, two probe groups (5 labels), cluster labels from k-means computed before timing.
Each method and size runs once in a fresh Python process, so its peak is its own: the time
(wall and CPU), the peak that tracemalloc saw numpy allocate during the call, and the rise of
the process's peak resident memory (ru_maxrss) during the call. Wall time is noisy on a
shared machine; memory is not.

"old" is the FORMER formulation, kept here only as a reference: one (rounds, seeds, seeds)
float64 array of pairs per term (plus its mask and their product). It needs about
17 x rounds x seeds^2 bytes, so where that does not fit in `--old-max-gb` (default: 3 GB,
and at most half the memory now available) it runs at fewer rounds and the table shows its
figures scaled to the full rounds, marked "x": both its memory and its time are linear in
rounds. Its replicates are compared with the new ones for the same resamples (the first
rounds of the new run): the largest difference is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kit.features import audit_stats as A  # noqa: E402

# the former formulation lives with the test that holds the new one equal to it
from tests.test_audit_memory import old_measure  # noqa: E402

MB = 1 << 20
TERMS = 2


def old_bytes(seeds: int, rounds: int) -> int:
    """About what the former formulation holds at its peak: pairs (float64), their mask and product."""
    return rounds * seeds * seeds * (8 + 1 + 8) + rounds * seeds * 8 * 2


# ---------------------------------------------------------------- one run, in its own process


def data(seeds: int, dim: int):
    rng = np.random.default_rng(seeds)

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    vectors = unit(
        rng.normal(size=(1, seeds, dim)) + rng.normal(size=(TERMS, 1, dim)) + 0.3 * rng.normal(size=(TERMS, seeds, dim))
    ).astype(np.float32)
    prompts = unit(rng.normal(size=(TERMS, dim))).astype(np.float32)
    centre = vectors.mean(axis=(0, 1))
    probes = {
        "attire": (["dress", "suit"], unit(centre + 0.02 * rng.normal(size=(2, dim)))),
        "age": (["young", "old", "middle-aged"], unit(centre + 0.02 * rng.normal(size=(3, dim)))),
    }
    return vectors, prompts, probes


def one(method: str, seeds: int, rounds: int, dim: int, out: str) -> None:
    vectors, prompts, probes = data(seeds, dim)
    labels = A.cluster(vectors.reshape(TERMS * seeds, -1), TERMS).reshape(TERMS, seeds)
    function = old_measure if method == "old" else A.measure
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    wall, cpu = time.perf_counter(), time.process_time()
    _, replicates, _ = function(vectors, prompts, probes, rounds=rounds, labels=labels)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) * 1024  # Linux: KiB
    np.savez(out, **{f"{t}|{name}": value for (t, name), value in replicates.items()})
    print(json.dumps({"wall": wall, "cpu": cpu, "traced": traced, "rss": rss}))


def run(method: str, seeds: int, rounds: int, dim: int, out: str) -> dict:
    command = [sys.executable, __file__, "--one", method, str(seeds), str(rounds), str(dim), out]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def available_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


# ---------------------------------------------------------------- the table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[256, 1024], help="seeds per term")
    parser.add_argument("--rounds", type=int, default=A.ROUNDS, help="bootstrap rounds (default 1,000)")
    parser.add_argument("--dim", type=int, default=512, help="embedding width (CLIP ViT-B-32: 512)")
    parser.add_argument(
        "--old-max-gb",
        type=float,
        default=3.0,
        help="most memory the former formulation may take; it runs fewer rounds beyond that",
    )
    parser.add_argument("--one", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        method, seeds, rounds, dim, out = args.one
        return one(method, int(seeds), int(rounds), int(dim), out)

    cap = min(args.old_max_gb * (1 << 30), available_bytes() / 2)
    print(
        f"measure(): {TERMS} terms, {args.rounds:,} bootstrap rounds, dim {args.dim}, 5 probe labels; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}; "
        f"former formulation capped at {cap / (1 << 30):.1f} GB"
    )
    head = (
        f"{'seeds':>6} | {'old: wall':>10} {'cpu':>8} {'traced':>10} {'RSS rise':>10} {'rounds':>7} | "
        f"{'new: wall':>10} {'cpu':>8} {'traced':>10} {'RSS rise':>10} {'bound':>9} | {'max |new - old|':>15}"
    )
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as folder:
        for seeds in args.seeds:
            old_rounds = args.rounds
            while old_rounds > 10 and old_bytes(seeds, old_rounds) > cap:
                old_rounds = max(10, old_rounds // 2 if old_rounds > 100 else old_rounds - 10)
            scale = args.rounds / old_rounds
            mark = "x" if old_rounds < args.rounds else " "
            new = run("new", seeds, args.rounds, args.dim, f"{folder}/new.npz")
            old = run("old", seeds, old_rounds, args.dim, f"{folder}/old.npz")
            with np.load(f"{folder}/new.npz") as a, np.load(f"{folder}/old.npz") as b:
                diff = max(float(np.nanmax(np.abs(a[key][:old_rounds] - b[key]), initial=0.0)) for key in b.files)
            bound = A.bootstrap_memory(TERMS, seeds, args.dim, labels=5, rounds=args.rounds)
            print(
                f"{seeds:>6} | {old['wall'] * scale:>9.2f}s{mark}{old['cpu'] * scale:>7.2f}s{mark}"
                f"{old['traced'] * scale / MB:>8.0f}MB{mark}{old['rss'] * scale / MB:>8.0f}MB{mark}{old_rounds:>7} | "
                f"{new['wall']:>9.2f}s {new['cpu']:>7.2f}s {new['traced'] / MB:>8.1f}MB {new['rss'] / MB:>8.1f}MB "
                f"{sum(bound.values()) / MB:>7.1f}MB | {diff:>15.1e}"
            )
    print(
        "x: the former formulation ran `rounds` rounds; its figures are scaled to the full rounds "
        "(memory and time linear in rounds). traced: peak of tracemalloc during the call; RSS rise: "
        "increase of the process's peak resident memory; bound: kit.audit_stats.bootstrap_memory "
        "(working + returned replicates)."
    )


if __name__ == "__main__":
    main()
