#!/usr/bin/env bash
# Test the lowest versions the kit admits (constraints/lowest.txt = pyproject.toml's floors).
# The pure-Python pins go into an overlay folder put first on PYTHONPATH (pip --target --no-deps),
# so the main venv (its torch above all) is reused and nothing in it changes. Then a subset of the
# tests that runs the real paths with the tiny preset: tokenizer ids, save/load through
# from_pretrained, pinned pixels, generate, walk, fuse, restore, replay, the style map's embeddings,
# long and weighted prompts (SD and SDXL, compared with the pipelines' own encoding), tiny-sdxl.
# Usage: bash scripts/test-lowest.sh [extra pytest arguments]   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
overlay=${KIT_LOWEST_DIR:-build/lowest}
pins=constraints/lowest.txt
stamp="$overlay/.pins"
if ! cmp -s "$pins" "$stamp" 2>/dev/null; then
    rm -rf "$overlay"
    "$python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$overlay" -r "$pins"
    cp "$pins" "$stamp"
fi
export PYTHONPATH="$(realpath "$overlay")${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 KIT_PRESET=tiny
# Say what is being tested, and fail if the overlay is not what is imported or its pins' own
# requirements are not met by what else is installed (--no-deps checks nothing).
"$python" - "$pins" <<'PY'
import sys
from importlib.metadata import distribution, version
from packaging.requirements import Requirement

pins = [Requirement(line.strip()) for line in open(sys.argv[1]) if line.strip() and not line.startswith("#")]
problems = []
for pin in pins:
    got = version(pin.name)
    print(f"lowest: {pin.name}=={got}")
    if got not in pin.specifier:
        problems.append(f"{pin.name} {got} is imported, not the pinned {pin.specifier}")
    for need in distribution(pin.name).requires or []:
        need = Requirement(need)
        if need.marker and not need.marker.evaluate({"extra": ""}):
            continue
        try:
            have = version(need.name)
        except Exception:
            problems.append(f"{pin.name} {got} needs {need}, not installed")
            continue
        if have not in need.specifier:
            problems.append(f"{pin.name} {got} needs {need}, found {have}")
import torch
print(f"with torch {torch.__version__} (the main venv's)")
if problems:
    sys.exit("the lowest versions do not install together:\n  " + "\n  ".join(problems))
PY
exec "$python" -m pytest -p no:cacheprovider -q -o addopts="-ra --strict-markers" \
    tests/test_floors.py tests/test_tiny.py tests/test_pinned.py tests/test_embed.py tests/test_atlas.py \
    tests/test_style_map.py tests/test_prompts.py tests/test_tiny_sdxl.py \
    "tests/test_studio.py::test_replay_reproduces_the_saved_image" \
    "tests/test_studio.py::test_local_folder_preset_loads_through_from_pretrained" \
    "tests/test_walks.py::test_a_middle_frame_replays_exactly_from_its_png" \
    "tests/test_fusion.py::test_record_and_replay_from_the_saved_png" \
    "tests/test_restore.py::test_saved_restoration_loads_replays_and_shows_its_overlay" \
    "$@"
