"""A full disk, for real: a child Python process run on a small tmpfs in a private mount namespace."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUARD = 120  # seconds: a hang guard, never an assertion on speed


def on_a_small_disk(tmp_path: Path, script: str, size: str = "512k") -> dict:
    """Run `script` (Python code, given the mounted folder as argv[1]) on a tmpfs of `size`; return the JSON
    its last line prints. Needs mount rights (root, as in CI, or an unprivileged user namespace): the test is
    skipped where there are none."""
    if shutil.which("unshare") is None or shutil.which("mount") is None or not sys.platform.startswith("linux"):
        pytest.skip("needs Linux with unshare and mount")
    disk = tmp_path / "disk"
    disk.mkdir()
    namespace = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-r", "-m"]
    mount = f'mount -t tmpfs -o size={size} kit-drill "$1" || exit 77; echo mounted; exec "$2" -c "$3" "$1"'
    out = subprocess.run(
        [*namespace, "sh", "-c", mount, "sh", str(disk), sys.executable, script],
        capture_output=True,
        text=True,
        timeout=GUARD,
        cwd=ROOT,
    )
    if not out.stdout.startswith("mounted"):
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()[-300:]}")
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])
