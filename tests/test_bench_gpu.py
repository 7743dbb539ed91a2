"""bench/bench_gpu.py runs its whole matrix on the CPU (--dry-run), so the GPU benchmark cannot rot unseen."""

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # about 30 s on a 2-core CPU

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_gpu.py"
DTYPES = ("float16", "bfloat16", "float32")
LAYOUTS = ("contiguous", "channels_last")
DECODERS = ("vae", "taesd")


def bench(*args, **env):
    env = dict(os.environ, HF_HUB_OFFLINE="1", KIT_PRESET="tiny", **env)
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=600, env=env)


def table_rows(text: str) -> list[dict]:
    """The printed table as dicts keyed by its header (columns are separated by two or more spaces)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("model "))
    header = re.split(r"\s{2,}", lines[start].strip())
    rows = []
    for line in itertools.takewhile(str.strip, lines[start + 2 :]):
        rows.append(dict(zip(header, re.split(r"\s{2,}", line.strip()))))
    return rows


def expected_configs() -> list[tuple]:
    """(model, path, dtype, layout, compile, batch, decoder) of every row the benchmark promises."""
    sd_kit = itertools.product(["sd"], ["kit"], DTYPES, LAYOUTS, ["off"], ["1", "4", "8"], DECODERS)
    sd_diffusers = itertools.product(["sd"], ["diffusers"], DTYPES, ["contiguous"], ["off"], ["1", "8"], DECODERS)
    compiled = itertools.product(["sd"], ["kit"], ["float16"], LAYOUTS, ["on"], ["1", "8"], ["vae"])
    sdxl = itertools.product(
        ["sdxl", "sdxl-overflow"], ["kit", "diffusers"], DTYPES, ["contiguous"], ["off"], ["1"], ["vae"]
    )
    return [*sd_kit, *sd_diffusers, *compiled, *sdxl]


@pytest.fixture(scope="module")
def dry_run():
    done = bench("--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    return table_rows(done.stdout)


def test_dry_run_prints_a_row_for_every_configuration(dry_run):
    keys = ("model", "path", "dtype", "layout", "compile", "batch", "decoder")
    found = [tuple(row[k] for k in keys) for row in dry_run]
    assert sorted(found) == sorted(expected_configs())


def test_every_row_has_a_time_or_says_why_not(dry_run):
    for row in dry_run:
        timed = row["latency (median)"].endswith(" ms") and float(row["images/s"]) > 0
        assert timed or row.get("note", "").startswith(("failed:", "skipped:")), row


def test_the_agreement_column_compares_like_with_like(dry_run):
    by_key = {
        (r["model"], r["path"], r["dtype"], r["layout"], r["compile"], r["batch"], r["decoder"]): r for r in dry_run
    }
    for model, decoder in (("sd", "vae"), ("sd", "taesd"), ("sdxl", "vae")):
        assert by_key[(model, "kit", "float32", "contiguous", "off", "1", decoder)]["PSNR vs fp32 (dB)"] == "ref"
        # plain diffusers on the same noise makes the kit's picture
        psnr = by_key[(model, "diffusers", "float32", "contiguous", "off", "1", decoder)]["PSNR vs fp32 (dB)"]
        assert psnr == "inf" or float(psnr) > 40, (model, decoder, psnr)
    # the planted overflow is harmless in float32 and in bfloat16's range
    for path, dtype in itertools.product(("kit", "diffusers"), ("float32", "bfloat16")):
        assert by_key[("sdxl-overflow", path, dtype, "contiguous", "off", "1", "vae")]["decoder output"] == "ok"


def test_without_a_gpu_it_says_so_and_exits_cleanly():
    done = bench(CUDA_VISIBLE_DEVICES="")
    assert done.returncode == 0, done.stderr
    assert "no CUDA device" in done.stdout
