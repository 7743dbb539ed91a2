"""The `kit` command: `kit lab`, `kit doctor`, `kit download`, `kit embed`, `kit map`."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from .errors import KitError


def lab(args) -> int:
    """Copy the lessons into the user's folder, say whether the preset can run, serve the folder."""
    from . import lessons
    from .core import presets

    preset = presets.get(args.preset)
    report = lessons.install(args.folder, reset=args.reset)
    folder = lessons.user_folder(args.folder)
    print(f"kit: lessons in {folder} ({_lesson_summary(report)})", flush=True)
    if report["kept"]:
        print(
            f"kit: kept your edited {', '.join(report['kept'])}; `kit lab --reset` puts the shipped "
            "version back and keeps yours as a .bak file",
            flush=True,
        )
    if report["blocked"]:
        print(
            f"kit: left alone {', '.join(report['blocked'])} in {folder}: not files (a folder, a FIFO or a link); "
            "move them away to get those lessons",
            flush=True,
        )
    problem = presets.startup_problem(preset)
    if problem:
        print(f"kit: {problem}", file=sys.stderr, flush=True)
    env = dict(os.environ, KIT_PRESET=preset.name)
    command = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={folder}"]
    if args.port is not None:
        command.append(f"--ServerApp.port={args.port}")
    if args.no_browser:
        command.append("--no-browser")
    command += args.lab_args
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in command:
        command.append("--allow-root")  # containers and cloud notebooks often run as root
    print(f"kit: JupyterLab with preset {preset.name}; press Ctrl-C to stop it and its kernels", flush=True)
    return _run_until_stopped(command, env)


def _lesson_summary(report: dict) -> str:
    parts = [f"{len(names)} {action}" for action, names in report.items() if names]
    return ", ".join(parts) or "none shipped"


def _run_until_stopped(command: list[str], env: dict) -> int:
    """Run JupyterLab; Ctrl-C, SIGTERM or SIGHUP shut it down with its kernels, and it dies with us.

    The server runs in its own session, so a Ctrl-C in the terminal reaches only this process
    (JupyterLab would otherwise stop to ask "Shutdown this Jupyter server?"); this process then
    sends the server SIGTERM, which makes it shut its kernels down and free the port.
    """
    server = subprocess.Popen(
        command,
        env=env,
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )

    def stop(signum, frame):
        raise _Stop(signum)

    previous = {sig: signal.signal(sig, stop) for sig in _STOP_SIGNALS}
    try:
        return server.wait()
    except _Stop:
        print("\nkit: stopping JupyterLab and its kernels ...", file=sys.stderr, flush=True)
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Stop(Exception):
    pass


_STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])


def _die_with_parent():
    """Linux: the server gets SIGTERM if this process dies without cleaning up (kill -9)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def doctor(args) -> int:
    from .core.readiness import doctor as run_doctor

    print(run_doctor())
    return 0


def download(args) -> int:
    from .core.readiness import download as fetch

    for part, where in fetch(args.preset, inpaint=args.inpaint, dtype=args.dtype).items():
        print(f"{part}: {where}")
    return 0


def embed(args) -> int:
    from .maps.collections.collection import embed_collection

    summary = embed_collection(
        args.source,
        args.out,
        engine=args.engine,
        address=args.address,
        workers=args.workers,
        preset=args.preset,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        device=args.device,
        new_source=args.new_source,
    )
    print(summary)
    return 0 if summary.ok else 1


def map_(args) -> int:
    from .maps.collections.collection import map_collection

    cmap = map_collection(
        args.dataset,
        sample=args.sample,
        dim=args.dim,
        engine=args.engine,
        seed=args.seed,
        address=args.address,
        workers=args.workers,
        chunk_size=args.chunk_size,
    )
    path = cmap.export_coordinates(args.out, exist="replace" if args.overwrite else "error")
    print(
        f"mapped {len(cmap):,} images in {args.dim}D: UMAP fitted on {int(cmap.fitted.sum()):,} "
        f"in {cmap.seconds['fit']:.1f} s, the rest placed in {cmap.seconds['place']:.1f} s -> {path}"
    )
    return 0


def _engine_options(p) -> None:
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process, no Ray; ray: a Ray cluster (--address) or a local Ray",
    )
    p.add_argument("--address", help="Ray cluster to join, e.g. auto (with --engine ray)")
    p.add_argument(
        "--workers", type=int, help="Ray workers (default: one per GPU, else one for embed; every CPU for map)"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="kit",
        description="Explore AI portraits and the world's art styles.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser(
        "lab",
        help="open JupyterLab on your copy of the lessons",
        description="Copy the shipped lessons into your lessons folder (once; your edits are kept) and open "
        "JupyterLab there. JupyterLab's own options go after --, e.g. `kit lab -- --ServerApp.ip=0.0.0.0`.",
        epilog=_presets_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--preset",
        help="model preset for the lessons (sets KIT_PRESET): "
        "tiny (offline), sd-turbo (default), sdxl-turbo, tiny-sdxl (offline), a repo id or a folder",
    )
    p.add_argument(
        "--lessons",
        "--notebooks",
        dest="folder",
        metavar="DIR",
        help="your lessons folder (default: $KIT_LESSONS or ~/kit-lessons)",
    )
    p.add_argument(
        "--reset", action="store_true", help="put the shipped lessons back; your edited copies are kept as .bak files"
    )
    p.add_argument("--port", type=_port, help="port for JupyterLab (default: its own choice, 8888 or the next free)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    p.set_defaults(run=lab)

    p = commands.add_parser("doctor", help="device, versions, cached presets, what the default will do")
    p.set_defaults(run=doctor)

    p = commands.add_parser("download", help="fetch a preset's weights into the Hugging Face cache")
    p.add_argument("preset", nargs="?", default=None, help="preset name or repo id (default: $KIT_PRESET or sd-turbo)")
    p.add_argument("--inpaint", action="store_true", help="also fetch the inpainting pipeline (restoration lessons)")
    p.add_argument(
        "--dtype",
        choices=("float16", "float32", "bfloat16"),
        default=None,
        help="the precision whose weight files to fetch: float16 takes the fp16 files a CUDA GPU loads, "
        "the others the full-precision files (default: what a Studio on this machine uses)",
    )
    p.set_defaults(run=download)

    p = commands.add_parser("embed", help="embed a whole collection of images into resumable Parquet shards")
    p.add_argument(
        "source", help="folder of images (searched recursively) or a .csv/.parquet list with a 'path' column"
    )
    p.add_argument("--out", required=True, metavar="DATASET", help="folder for the shards and their manifest")
    _engine_options(p)
    p.add_argument("--preset", help="preset whose open_clip model embeds (default: $KIT_PRESET or sd-turbo)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--shard-size", type=int, default=1000, help="images per Parquet shard (default 1000)")
    p.add_argument("--device", help="cpu or cuda (default: the best there is)")
    p.add_argument(
        "--new-source",
        action="store_true",
        help="the dataset in --out was made from another source folder or list: update it from this one",
    )
    p.set_defaults(run=embed)

    p = commands.add_parser("map", help="UMAP coordinates of an embedded collection, exported to Parquet")
    p.add_argument("dataset", help="folder written by `kit embed`")
    p.add_argument("--out", required=True, metavar="FILE", help="Parquet file for id, x, y (, z) and metadata")
    _engine_options(p)
    p.add_argument("--sample", type=int, default=20_000, help="points the map is fitted on (default 20,000)")
    p.add_argument("--dim", type=int, choices=[2, 3], default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-size", type=int, default=5_000, help="points placed per task (default 5,000)")
    p.add_argument("--overwrite", action="store_true", help="replace the --out file if it exists")
    p.set_defaults(run=map_)

    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:  # JupyterLab's own options, for `kit lab` only
        argv, extra = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    args = parser.parse_args(argv)
    if extra and args.command != "lab":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.lab_args = extra
    try:
        return args.run(args)
    except KitError as err:
        print(f"kit: {err}", file=sys.stderr)
        return 2


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 1 to 65535, got {text!r}")
    return port


def _presets_help() -> str:
    from .core.presets import PRESETS

    lines = [f"  {name:<11} {preset.description}" for name, preset in PRESETS.items()]
    return (
        "presets:\n"
        + "\n".join(lines)
        + "\n  org/model   any diffusers text-to-image repo on the Hub, or a local folder"
    )


if __name__ == "__main__":
    sys.exit(main())
