"""`kit doctor` and `kit download`: what this machine will do, and fetching a preset onto it.

`doctor()` reports the device and dtype the kit picks, library versions, whether the Hugging
Face Hub answers, which presets are cached, the backend, the toy world behind `tiny`, and what
`Studio()` will load. `download()` fetches a preset's files into the Hugging Face cache.

Both only read what kit.presets knows (the table, device and dtype choice, the cache checks).
They live apart from it because the doctor also asks kit.core.openvino_backend and kit.tiny, which
import kit.presets themselves: here nothing imports this module back. (Not named ``doctor.py``:
importing a submodule ``kit.doctor`` would replace the function ``kit.doctor`` on the package.)

torch, huggingface_hub and the backends are imported inside the functions that use them.
"""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path

from ..errors import KitError
from . import presets

# ---------------------------------------------------------------- download


def download(name: str | None = None, inpaint: bool = False, device: str | None = None, dtype=None) -> dict[str, str]:
    """Fetch a preset into the standard Hugging Face cache; returns where each part went.

    Only what a Studio on `device` (default: this machine's) in `dtype` (default: its choice there)
    loads: the fp16 weight files where it loads the preset's fp16 variant (float16, on CUDA), the
    full-precision files otherwise (see `presets.download_patterns`). The inpainting pipeline (for
    restoration lessons) is large: only with `inpaint=True`.
    """
    from huggingface_hub import hf_hub_download, snapshot_download

    preset = presets.get(name)
    if preset.offline:
        return {"tiny": "built from code: nothing to download"}
    if presets.hub_offline():
        raise KitError("HF_HUB_OFFLINE is set: unset it to download")
    variant = presets.load_variant(preset, device, dtype)  # as Studio._load chooses
    out = {}
    try:
        if not Path(preset.model).is_dir():
            out["pipeline"] = snapshot_download(
                preset.model, allow_patterns=presets.download_patterns("pipeline", variant)
            )
        if preset.preview:
            out["preview"] = snapshot_download(preset.preview, allow_patterns=presets.download_patterns("preview"))
        if inpaint and preset.inpaint:
            out["inpaint"] = snapshot_download(
                preset.inpaint, allow_patterns=presets.download_patterns("inpaint", variant)
            )
        clip = presets.clip_source(preset)
        if clip:
            out["clip"] = hf_hub_download(*clip)
    except Exception as err:  # the Hub's many network and HTTP errors: one short message, the cause kept
        error = KitError(
            f"could not download {preset.name} from the Hugging Face Hub ({type(err).__name__}). "
            "Check the network (kit doctor says whether the Hub answers), or use `--preset tiny` offline."
        )
        error.cause = err
        raise error from None
    return out


# ---------------------------------------------------------------- doctor


class DoctorReport(dict):
    """The doctor's findings: a dict, shown as a table in a notebook and as text in a terminal."""

    def __str__(self):
        width = max(map(len, self))
        return "\n".join(f"{key:<{width}}  {_plain(value)}" for key, value in self.items())

    def _repr_html_(self):
        from html import escape

        rows = "".join(
            f"<tr><th style='text-align:left'>{escape(k)}</th><td style='text-align:left'>{escape(_plain(v))}</td></tr>"
            for k, v in self.items()
        )
        return f"<table>{rows}</table>"


def _plain(value) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _readiness(parts: dict[str, bool]) -> str:
    if not all(ok for part, ok in parts.items() if part != "inpaint"):
        return "not cached"
    return "ready" if parts.get("inpaint", True) else "ready (restoration needs `kit download --inpaint`)"


def _toy_world() -> str:
    """One line on what the offline tiny preset is: trained on the toy world, and on what."""
    from . import tiny

    try:
        card = tiny.card()
    except (OSError, ValueError) as err:
        return f"its trained weights are missing or unreadable ({err}): reinstall the kit"
    words = card["vocabulary"]
    megabytes = sum(w["bytes"] for w in card["weights"].values()) / 1e6
    return (
        f"models trained offline on the toy world (kit.toyworld): 64 px figures in {len(words['backgrounds'])} "
        f"background and {len(words['clothing'])} clothing colours, with or without a hat, "
        f"{len(words['renderings'])} renderings; skews planted on purpose by role "
        f"({', '.join(s['name'] for s in card['skews'])}; kit.tiny.card()); {megabytes:.1f} MB of weights"
    )


def doctor() -> DoctorReport:
    """What this machine will do: device, versions, which presets are cached, the default's plan."""
    import torch
    from huggingface_hub.constants import HF_HUB_CACHE

    from .. import __version__

    device = presets.pick_device()
    report = DoctorReport(
        kit=__version__,
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
        torch=torch.__version__,
        diffusers=_version("diffusers"),
        transformers=_version("transformers"),
        open_clip=_version("open_clip_torch"),
        device=device + (f" ({torch.cuda.get_device_name(0)})" if device.startswith("cuda") else ""),
        dtype="{}: {}".format(*presets.dtype_choice(device)).replace("torch.", ""),
        threads=torch.get_num_threads(),
        hub=presets.hub_reachable()[1],
        cache=HF_HUB_CACHE,
    )
    report["presets"] = {name: _readiness(presets.cached(p)) for name, p in presets.PRESETS.items()}
    report["tiny"] = _toy_world()
    from . import openvino_backend

    report["backend"] = openvino_backend.describe(device)
    try:
        default = presets.get()
        parts = {k: v for k, v in presets.cached(default).items() if k != "inpaint"}
        if all(parts.values()):
            plan = f"Studio() loads {default.name} on {device} ({default.description or default.model})"
        else:
            missing = ", ".join(k for k, ok in parts.items() if not ok)
            plan = (
                f"Studio() wants {default.name}, whose {missing} is not cached: "
                f"run `kit download {default.name}` or set KIT_PRESET=tiny"
            )
    except KitError as err:
        plan = str(err)
    report["default"] = plan
    return report
