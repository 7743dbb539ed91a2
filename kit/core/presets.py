"""Model presets, device and dtype choice, and cache checks with errors that name the fix.

A preset names everything a Studio loads: the diffusers pipeline, the TAESD
preview decoder, the inpainting pipeline and the open_clip model, plus the
defaults that suit them. The named presets are data (``kit/data/presets.json``,
checked on load by `load`). `tiny` is built from code and works offline; the
others come from the Hugging Face Hub (or its local cache).

`kit doctor` and `kit download` (the report and the fetch) are in kit.core.readiness, which reads
this module; this one imports neither kit.core.openvino_backend nor kit.tiny (both import it).

This module imports torch only inside the functions that need it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .. import checks
from ..data_tables import DATA, data_error, read_json
from ..errors import KitError

DEFAULT_PRESET = "sd-turbo"
DEFAULT_MODEL = "stabilityai/sd-turbo"
MAX_STEPS = 150  # diffusion steps a request (or a preset's default) may ask for
MAX_GUIDANCE = 30.0  # classifier-free guidance scale, likewise


@dataclass(frozen=True)
class Preset:
    """What a Studio loads, and the defaults that suit it."""

    name: str
    model: str | None  # diffusers repo id or local folder; None: built from code (tiny)
    family: str = "sd"  # "sd" (SD 1.x/2.x UNet) or "sdxl" (two text encoders, pooled embeddings)
    steps: int = 25
    guidance: float = 7.0
    size: int = 512
    min_size: int = 256
    max_size: int = 1024
    preview: str | None = None  # TAESD repo for fast preview decoding
    inpaint: str | None = None  # inpainting pipeline repo
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "laion2b_s34b_b79k"
    variant: str | None = None  # weights variant to load on CUDA ("fp16")
    cpu_dtype: str | None = None  # the dtype on a CPU, when it must not follow the CPU's (see dtype_choice)
    description: str = ""

    @property
    def offline(self) -> bool:
        """True when nothing needs to be downloaded or read from the Hub cache."""
        return self.model is None


PRESETS_PATH = DATA / "presets.json"
_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_FAMILIES = ("sd", "sdxl")


def load(path: str | Path = PRESETS_PATH) -> dict[str, Preset]:
    """Read and check a preset table (JSON like ``kit/data/presets.json``): name -> Preset, in file order.

    Each preset is an object with the fields of `Preset`; ``name`` and ``model`` are required (model
    null: built from code), the others default as in `Preset`. Raises one KitError listing every problem.
    """
    data = read_json(path, "preset table", {"about": False, "presets": True})
    rows = data["presets"]
    errors: list[str] = []
    if not isinstance(rows, list) or not rows:
        errors.append("field 'presets': must be a non-empty list of presets")
        rows = []
    table: dict[str, Preset] = {}
    for number, row in enumerate(rows):
        preset = _parse_preset(row, f"presets[{number}]", errors)
        if preset is not None and preset.name in table:
            errors.append(f"presets[{number}]: the name {preset.name!r} is used twice; names must be unique")
        elif preset is not None:
            table[preset.name] = preset
    if errors:
        raise data_error(path, "preset table", errors)
    return table


def _parse_preset(row, where: str, errors: list[str]) -> Preset | None:
    """One preset of the table as a Preset, or None with its problems appended to `errors`."""
    fields = [f.name for f in dataclasses.fields(Preset)]
    if not isinstance(row, dict):
        errors.append(f"{where}: must be an object with the fields {', '.join(fields)}")
        return None
    where = f"{where} ({row['name']})" if isinstance(row.get("name"), str) else where
    problems = [f"{where}: unknown field {key!r}; allowed: {', '.join(fields)}" for key in row if key not in fields]
    problems += [f"{where}: field {key!r} is missing" for key in ("name", "model") if key not in row]
    values = {}
    for key, value in row.items():
        if key in _FIELD_CHECKS:
            try:
                values[key] = _FIELD_CHECKS[key](value, f"{where} field {key!r}")
            except KitError as err:
                problems.append(str(err))
    preset = None if problems else Preset(**values)
    if preset is not None and not preset.min_size <= preset.size <= preset.max_size:
        problems.append(
            f"{where}: the sizes must satisfy min_size <= size <= max_size, got "
            f"{preset.min_size} <= {preset.size} <= {preset.max_size}"
        )
    errors += problems
    return None if problems else preset


def _must(ok: bool, field: str, allowed: str, value):
    """`value` when ok, else the KitError that says what `field` allows."""
    if not ok:
        raise KitError(f"{field} must be {allowed}, got {value!r}")
    return value


def _size(value, field: str) -> int:
    value = checks.whole(value, field, 8, 8192)
    return _must(value % 8 == 0, field, "a multiple of 8 pixels", value)


_FIELD_CHECKS = {  # field -> check(value, field name) returning the value, or raising KitError
    "name": lambda v, f: _must(
        isinstance(v, str) and _NAME.fullmatch(v),
        f,
        "a lowercase kebab-case name (letters a-z, digits and single hyphens)",
        v,
    ),
    "family": lambda v, f: _must(v in _FAMILIES, f, f"one of {', '.join(_FAMILIES)}", v),
    "steps": lambda v, f: checks.whole(v, f, 1, MAX_STEPS),
    "guidance": lambda v, f: checks.number(v, f, 0, MAX_GUIDANCE),
    "description": lambda v, f: _must(isinstance(v, str), f, "text", v),
    "cpu_dtype": lambda v, f: _must(v in (None, "float32", "bfloat16"), f, "float32, bfloat16 or null", v),
    **dict.fromkeys(("size", "min_size", "max_size"), _size),
    **dict.fromkeys(
        ("model", "preview", "inpaint", "variant"),
        lambda v, f: _must(v is None or isinstance(v, str) and v.strip(), f, "text or null", v),
    ),
    **dict.fromkeys(
        ("clip_model", "clip_pretrained"), lambda v, f: _must(isinstance(v, str) and v.strip(), f, "non-empty text", v)
    ),
}

PRESETS = load()

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def get(name: str | None = None) -> Preset:
    """The preset called `name`, else `$KIT_PRESET`, else sd-turbo.

    Besides the named presets, any diffusers repo id ("org/name") or a local
    folder holding a saved pipeline (model_index.json) works.
    """
    if isinstance(name, Preset):
        return name
    if name is not None and not isinstance(name, (str, os.PathLike)):
        raise KitError(f"preset must be a name such as 'tiny' or 'sd-turbo', a repo id or a folder, got {name!r}")
    name = (str(name) if name else os.environ.get("KIT_PRESET") or DEFAULT_PRESET).strip()
    if name in PRESETS:
        return PRESETS[name]
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "model_index.json").is_file():
            raise KitError(
                f"preset folder {folder} has no model_index.json: save a pipeline there with save_pretrained()"
            )
        return Preset(
            name=str(folder),
            model=str(folder),
            family=_family(folder / "model_index.json"),
            **model_sizes(folder / "unet" / "config.json", folder / "vae" / "config.json"),
        )
    if _REPO_ID.match(name):
        return Preset(
            name=name,
            model=name,
            family=_family(_cached_file(name, "model_index.json")),
            **model_sizes(_cached_file(name, "unet/config.json"), _cached_file(name, "vae/config.json")),
        )
    raise KitError(
        f"unknown preset {name!r}: use one of {', '.join(PRESETS)}, "
        "a Hugging Face repo id like 'org/model', or a local folder with a saved pipeline"
    )


def _family(model_index: str | Path | None) -> str:
    """'sdxl' when a pipeline's model_index.json names an SDXL pipeline class."""
    if model_index and Path(model_index).is_file():
        text = Path(model_index).read_text(encoding="utf-8")
        return "sdxl" if "StableDiffusionXL" in text else "sd"
    return "sd"


def model_sizes(unet_config: str | Path | None, vae_config: str | Path | None) -> dict[str, int]:
    """The image sizes a saved pipeline can paint, read from its ``unet/config.json`` and
    ``vae/config.json`` (no weights are read, so a request is checked before any model work).

    The native size is the UNet's ``sample_size`` (in latents) times the VAE's scale factor (2 per
    VAE level after the first, as diffusers computes it). Allowed: multiples of 8 (what the
    diffusers pipelines require; the SD VAEs scale by 8, the tiny one by 4) from half the native
    size to twice it; the default is the native size. Returns ``size``, ``min_size`` and
    ``max_size``; ``{}`` when either file is missing (the Preset's defaults apply; loading the
    pipeline will then say what is wrong with it).
    """
    if not (unet_config and vae_config and Path(unet_config).is_file() and Path(vae_config).is_file()):
        return {}
    unet, vae = _read_config(unet_config), _read_config(vae_config)
    sample = unet.get("sample_size")
    if isinstance(sample, (list, tuple)) and sample:
        sample = max(sample)  # (height, width) in latents: the longer side sets the native size
    _must(
        isinstance(sample, int) and not isinstance(sample, bool) and sample > 0,
        f"{unet_config} field 'sample_size'",
        "a positive whole number of latents",
        sample,
    )
    levels = vae.get("block_out_channels")
    _must(isinstance(levels, list) and levels, f"{vae_config} field 'block_out_channels'", "a non-empty list", levels)
    native = sample * 2 ** (len(levels) - 1)

    def multiple_of_8(pixels: float, round_up: bool = False) -> int:
        eighths = math.ceil(pixels / 8) if round_up else math.floor(pixels / 8)
        return max(8, 8 * eighths)

    return {
        "size": multiple_of_8(native),
        "min_size": multiple_of_8(native / 2, round_up=True),
        "max_size": multiple_of_8(2 * native),
    }


def _read_config(path: str | Path) -> dict:
    """A model's config.json as a dict, or a KitError naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise KitError(f"cannot read the model config {path}: {err}") from None
    _must(isinstance(data, dict), f"the model config {path}", "one JSON object", type(data).__name__)
    return data


# ---------------------------------------------------------------- device and dtype


def pick_device(device: str | None = None) -> str:
    """The torch device to use: as asked, else `$KIT_DEVICE`, else cuda, mps or cpu."""
    import torch

    device = device or os.environ.get("KIT_DEVICE") or None
    if device is None:
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    device = str(device)
    kind = device.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise KitError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise KitError(f"device {device!r} asked for, but torch sees no CUDA GPU here: use device='cpu'")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise KitError(f"device {device!r} asked for, but this machine has no Apple GPU: use device='cpu'")
    return device


BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # CPU features that compute bfloat16 natively (Linux's names)


def native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> str | None:
    """The feature that makes bfloat16 fast on this CPU (`amx_bf16` or `avx512_bf16`), or None.

    Without one, torch emulates bfloat16 and it runs slower than float32. Read from Linux's
    /proc/cpuinfo; elsewhere None (float32, the safe choice)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return next((flag for flag in BF16_FLAGS if flag in flags), None)


def dtype_choice(device: str, preset: Preset | None = None) -> tuple:
    """The default dtype for `device` (and `preset`) and the reason for it (shown by `kit doctor`).

    CUDA: float16. CPU: the preset's `cpu_dtype` when it has one, else bfloat16 where the CPU
    computes it natively (measured on AVX-512 BF16: about 2x faster than float32 for the UNet and
    VAE; images agree to about 50 dB PSNR), else float32. MPS: float32 (fp16 VAEs can overflow there)."""
    import torch

    if device.startswith("cuda"):
        return torch.float16, "CUDA GPU: float16"
    if device.startswith("mps"):
        return torch.float32, "Apple GPU: float32 (float16 VAEs can overflow there)"
    if preset is not None and preset.cpu_dtype:
        return getattr(torch, preset.cpu_dtype), f"the {preset.name} preset runs in {preset.cpu_dtype} on a CPU"
    flag = native_bf16()
    if flag:
        return torch.bfloat16, f"this CPU computes bfloat16 natively ({flag}): about 2x faster than float32"
    return torch.float32, "this CPU has no native bfloat16 (AVX-512 BF16 or AMX), where float32 is faster"


def pick_dtype(device: str, dtype=None, preset: Preset | None = None):
    """The dtype asked for (a torch dtype or a name such as "bf16"), else `dtype_choice`'s."""
    import torch

    if dtype is None:
        return dtype_choice(device, preset)[0]
    if isinstance(dtype, str):
        names = {
            "float16": torch.float16,
            "fp16": torch.float16,
            "half": torch.float16,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
            "float32": torch.float32,
            "fp32": torch.float32,
            "float": torch.float32,
        }
        if dtype not in names:
            raise KitError(f"dtype must be one of {', '.join(names)}, got {dtype!r}")
        dtype = names[dtype]
    if dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise KitError(f"dtype must be float16, bfloat16 or float32, got {dtype}")
    return dtype


# ---------------------------------------------------------------- the Hub cache


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 3.0) -> tuple[bool, str]:
    """(reachable, why): whether the Hugging Face Hub answers now, asked once with a short timeout.

    Any HTTP answer counts as reachable; HF_HUB_OFFLINE=1 means "not reachable" without asking.
    """
    if hub_offline():
        return False, "offline (HF_HUB_OFFLINE is set)"
    import urllib.error
    import urllib.request

    from huggingface_hub.constants import ENDPOINT

    try:
        with urllib.request.urlopen(
            urllib.request.Request(f"{ENDPOINT}/api/models/{DEFAULT_MODEL}", method="HEAD"), timeout=timeout
        ):
            pass
    except urllib.error.HTTPError:
        pass  # the Hub answered, if only to say no
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        return False, f"not reachable at {ENDPOINT} ({reason})"
    return True, f"reachable at {ENDPOINT}"


def startup_problem(preset: Preset, reachable=None) -> str | None:
    """What will stop the lessons' first image with `preset`, in words a teacher can act on; None if nothing."""
    if preset.offline or cached(preset)["pipeline"]:
        return None
    ok, why = hub_reachable() if reachable is None else reachable
    if ok:
        return None
    return (
        f"preset {preset.name!r} is not on this machine and the Hugging Face Hub is {why}, so the lessons "
        "cannot make images with it. Stop with Ctrl-C and restart with `kit lab --preset tiny` (works offline), "
        f"or run `kit download {preset.name}` once on a machine with internet access."
    )


def _cached_file(repo: str, filename: str) -> str | None:
    """Path of `filename` of `repo` in the local Hugging Face cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    if not _REPO_ID.match(repo):
        return None
    found = try_to_load_from_cache(repo, filename)
    return found if isinstance(found, str) else None


def clip_source(preset: Preset) -> tuple[str, str] | None:
    """(repo id, file) of the preset's open_clip weights on the Hub, when open_clip says so."""
    if preset.offline or Path(preset.clip_pretrained).is_file():
        return None
    import open_clip

    cfg = open_clip.get_pretrained_cfg(preset.clip_model, preset.clip_pretrained) or {}
    repo = (cfg.get("hf_hub") or "").strip("/")
    if not repo:
        return None
    return repo, "open_clip_model.safetensors"


_WEIGHTS = ("diffusion_pytorch_model", "model")  # diffusers' and transformers' weight file stems
_PREVIEW_FILES = ("config.json", "diffusion_pytorch_model.safetensors")  # TAESD: one model, no components
_CONFIGS = ("config.json", "scheduler_config.json", "tokenizer_config.json", "preprocessor_config.json")


def _pipeline_cached(repo: str, variant: str | None) -> bool:
    """True when the Hub cache holds a pipeline whole: model_index.json, and for each component it
    names, its config, and for a model (one with a config.json) its safetensors weights: the
    `variant` files (e.g. *.fp16.safetensors) when given, else the full-precision ones (sharded
    weights: their index). Reads no weights."""
    index = _cached_file(repo, "model_index.json")
    if index is None:
        return False
    try:
        entries = _read_config(index)
    except KitError:  # a broken file: not a whole pipeline (loading it says what is wrong)
        return False
    components = [
        name for name, value in entries.items() if isinstance(value, list) and len(value) == 2 and all(value)
    ]  # [library, class]; nulls unused
    names = [
        _variant_name(stem + ending, variant)
        for stem in _WEIGHTS
        for ending in (".safetensors", ".safetensors.index.json")
    ]
    for component in components:
        configs = [name for name in _CONFIGS if _cached_file(repo, f"{component}/{name}")]
        if not configs:
            return False
        if "config.json" in configs and not any(_cached_file(repo, f"{component}/{name}") for name in names):
            return False
    return True


def _variant_name(filename: str, variant: str | None) -> str:
    """A weights file's name in `variant`, by diffusers' and transformers' rule: the variant goes
    before the last extension (model.fp16.safetensors, model.safetensors.index.fp16.json)."""
    if not variant:
        return filename
    stem, extension = filename.rsplit(".", 1)
    return f"{stem}.{variant}.{extension}"


def load_variant(preset: Preset, device: str | None = None, dtype=None) -> str | None:
    """The weights variant a Studio on `device` in `dtype` (defaults: this machine's choice) loads:
    the preset's ("fp16") in float16, as on CUDA; None (the full-precision files) otherwise."""
    if not preset.variant:
        return None
    import torch

    return preset.variant if pick_dtype(pick_device(device), dtype, preset) == torch.float16 else None


def cached(preset: Preset, device: str | None = None, dtype=None) -> dict[str, bool]:
    """Which of the preset's parts are on this machine already, whole, in the precision a Studio on
    `device` in `dtype` (defaults: this machine's choice) loads."""
    return _cached_parts(preset, load_variant(preset, device, dtype))


def _cached_parts(preset: Preset, variant: str | None) -> dict[str, bool]:
    """`cached` for the weights `variant` (None: full precision)."""
    if preset.offline:
        return {"pipeline": True, "preview": True, "inpaint": True, "clip": True}
    parts = {}
    model = Path(preset.model)
    parts["pipeline"] = model.is_dir() or _pipeline_cached(preset.model, variant)
    if preset.preview:
        parts["preview"] = Path(preset.preview).is_dir() or all(
            _cached_file(preset.preview, name) for name in _PREVIEW_FILES
        )
    if preset.inpaint:
        parts["inpaint"] = Path(preset.inpaint).is_dir() or _pipeline_cached(preset.inpaint, variant)
    clip = clip_source(preset)
    parts["clip"] = Path(preset.clip_pretrained).is_file() or (clip is not None and _cached_file(*clip) is not None)
    return parts


def not_available(preset: Preset, part: str = "pipeline", cause: Exception | None = None) -> KitError:
    """The one error for a real preset that is neither cached nor downloadable (the cause kept as `.cause`)."""
    why = ""
    if cause is not None:  # one line of the cause, the rest kept in .cause for whoever digs
        first = (str(cause).strip().splitlines() or [""])[0]
        why = f" ({type(cause).__name__}: {first[:200]})"
    error = KitError(
        f"the {part} of preset {preset.name!r} is not on this machine and cannot be downloaded now{why}. "
        f"In JupyterLab: stop `kit lab` and restart it with `kit lab --preset tiny` (works offline); in code: "
        f"kit.Studio(preset='tiny') or KIT_PRESET=tiny. To use {preset.name}, run `kit download {preset.name}` "
        "once with internet access."
    )
    error.cause = cause
    return error


def require(preset: Preset, part: str = "pipeline") -> None:
    """Raise the clear error before any loading when `part` can't be had."""
    if preset.offline or not hub_offline():
        return
    # whole in either precision: the caller's dtype is not known here, and a part in the other
    # precision fails in loading with this same error
    if not any(_cached_parts(preset, variant).get(part, True) for variant in {None, preset.variant}):
        raise not_available(preset, part)


def download_patterns(part: str, variant: str | None = None) -> list[str]:
    """The files of a preset's `part` that its Studio loads, as `snapshot_download` allow patterns.

    A pipeline ("pipeline", "inpaint"): model_index.json, each component's configs and tokenizer
    files, and each component's safetensors weights in one precision only: the `variant` files
    (``*.fp16.safetensors``) when the Studio loads that variant (float16 on CUDA), else the
    full-precision ones. Never a root checkpoint (``sd_turbo.safetensors``, ``*.ckpt``), never
    pickles. The "preview" decoder (TAESD) is one folder: its config and full-precision weights.
    In these patterns ``*`` also matches ``/``, so ``*/model.safetensors`` is any component's
    ``model.safetensors`` and never a file at the root.
    """
    if part == "preview":
        return list(_PREVIEW_FILES)
    if variant:  # diffusers names shards of a variant "<stem>.<variant>-00001-of-00002.safetensors"
        weights = [f"*/{stem}.{variant}{shard}.safetensors" for stem in _WEIGHTS for shard in ("", "-*")]
    else:
        weights = [f"*/{stem}{shard}.safetensors" for stem in _WEIGHTS for shard in ("", "-*")]
    return ["model_index.json", "*/*.json", "*/*.txt", *weights]
