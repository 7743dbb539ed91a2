"""The `kit` command: `kit lab`, `kit doctor`, `kit download`."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from .errors import KitError


def notebooks_folder(folder: str | None = None) -> Path:
    """The curated notebooks: the folder given, ./notebooks, or the ones beside the kit's source checkout."""
    candidates = [Path(folder)] if folder else [Path.cwd() / "notebooks", Path(__file__).resolve().parent.parent / "notebooks"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    raise KitError(f"no notebooks folder at {', '.join(map(str, candidates))}: pass one, e.g. `kit lab path/to/notebooks`")


def lab(args) -> int:
    folder = notebooks_folder(args.folder)
    env = dict(os.environ)
    if args.preset:
        env["KIT_PRESET"] = args.preset
    command = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={folder}", *args.lab_args]
    print(f"JupyterLab on {folder} (preset: {env.get('KIT_PRESET', 'sd-turbo')})", flush=True)
    return subprocess.call(command, env=env)


def doctor(args) -> int:
    from .presets import doctor as run_doctor

    print(run_doctor())
    return 0


def download(args) -> int:
    from .presets import download as fetch

    for part, where in fetch(args.preset, inpaint=args.inpaint).items():
        print(f"{part}: {where}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="kit", description="Explore AI portraits and the world's art styles.")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("lab", help="open JupyterLab on the curated notebooks")
    p.add_argument("folder", nargs="?", help="notebooks folder (default: ./notebooks)")
    p.add_argument("--preset", help="model preset for the notebooks (sets KIT_PRESET), e.g. tiny")
    p.add_argument("lab_args", nargs=argparse.REMAINDER, help="further arguments for jupyter lab, after --")
    p.set_defaults(run=lab)

    p = commands.add_parser("doctor", help="device, versions, cached presets, what the default will do")
    p.set_defaults(run=doctor)

    p = commands.add_parser("download", help="fetch a preset's weights into the Hugging Face cache")
    p.add_argument("preset", nargs="?", default=None, help="preset name or repo id (default: $KIT_PRESET or sd-turbo)")
    p.add_argument("--inpaint", action="store_true", help="also fetch the inpainting pipeline (restoration lessons)")
    p.set_defaults(run=download)

    args = parser.parse_args(argv)
    if getattr(args, "lab_args", None) and args.lab_args[0] == "--":
        args.lab_args = args.lab_args[1:]
    try:
        return args.run(args)
    except KitError as err:
        print(f"kit: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
