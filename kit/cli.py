"""The `kit` command: `kit lab`, `kit doctor`, `kit download`, `kit embed`, `kit map`."""

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
    raise KitError(f"no notebooks folder at {', '.join(map(str, candidates))}: pass one, e.g. `kit lab --notebooks DIR`")


def lab(args) -> int:
    folder = notebooks_folder(args.folder)
    env = dict(os.environ)
    if args.preset:
        env["KIT_PRESET"] = args.preset
    command = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={folder}", *args.lab_args]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and cloud notebooks often run as root
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


def embed(args) -> int:
    from .collection import embed_collection

    summary = embed_collection(args.source, args.out, engine=args.engine, address=args.address, workers=args.workers,
                               preset=args.preset, batch_size=args.batch_size, shard_size=args.shard_size,
                               device=args.device)
    print(summary)
    return 0 if summary.ok else 1


def map_(args) -> int:
    from .collection import map_collection

    cmap = map_collection(args.dataset, sample=args.sample, dim=args.dim, engine=args.engine, seed=args.seed,
                          address=args.address, workers=args.workers, chunk_size=args.chunk_size)
    path = cmap.export_coordinates(args.out)
    print(f"mapped {len(cmap):,} images in {args.dim}D: UMAP fitted on {int(cmap.fitted.sum()):,} "
          f"in {cmap.seconds['fit']:.1f} s, the rest placed in {cmap.seconds['place']:.1f} s -> {path}")
    return 0


def _engine_options(p) -> None:
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process, no Ray; ray: a Ray cluster (--address) or a local Ray")
    p.add_argument("--address", help="Ray cluster to join, e.g. auto (with --engine ray)")
    p.add_argument("--workers", type=int, help="Ray workers (default: one per GPU, else one for embed; every CPU for map)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="kit", description="Explore AI portraits and the world's art styles.")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("lab", help="open JupyterLab on the curated notebooks (other options go to jupyter lab)")
    p.add_argument("--notebooks", dest="folder", metavar="DIR", help="notebooks folder (default: ./notebooks)")
    p.add_argument("--preset", help="model preset for the notebooks (sets KIT_PRESET), e.g. tiny")
    p.set_defaults(run=lab)

    p = commands.add_parser("doctor", help="device, versions, cached presets, what the default will do")
    p.set_defaults(run=doctor)

    p = commands.add_parser("download", help="fetch a preset's weights into the Hugging Face cache")
    p.add_argument("preset", nargs="?", default=None, help="preset name or repo id (default: $KIT_PRESET or sd-turbo)")
    p.add_argument("--inpaint", action="store_true", help="also fetch the inpainting pipeline (restoration lessons)")
    p.set_defaults(run=download)

    p = commands.add_parser("embed", help="embed a whole collection of images into resumable Parquet shards")
    p.add_argument("source", help="folder of images (searched recursively) or a .csv/.parquet list with a 'path' column")
    p.add_argument("--out", required=True, metavar="DATASET", help="folder for the shards and their manifest")
    _engine_options(p)
    p.add_argument("--preset", help="preset whose open_clip model embeds (default: $KIT_PRESET or sd-turbo)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--shard-size", type=int, default=1000, help="images per Parquet shard (default 1000)")
    p.add_argument("--device", help="cpu or cuda (default: the best there is)")
    p.set_defaults(run=embed)

    p = commands.add_parser("map", help="UMAP coordinates of an embedded collection, exported to Parquet")
    p.add_argument("dataset", help="folder written by `kit embed`")
    p.add_argument("--out", required=True, metavar="FILE", help="Parquet file for id, x, y (, z) and metadata")
    _engine_options(p)
    p.add_argument("--sample", type=int, default=20_000, help="points the map is fitted on (default 20,000)")
    p.add_argument("--dim", type=int, choices=[2, 3], default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-size", type=int, default=5_000, help="points placed per task (default 5,000)")
    p.set_defaults(run=map_)

    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "lab":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.lab_args = extra  # e.g. `kit lab --port 8899 --no-browser`
    try:
        return args.run(args)
    except KitError as err:
        print(f"kit: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
