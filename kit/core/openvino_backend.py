"""The OpenVINO backend: the same diffusers pipeline, its heavy parts run by OpenVINO on the CPU.

`kit.Studio(preset, backend="openvino")` loads the pipeline as the torch backend does, then puts
small torch modules in place of its text encoder, UNet and VAE decoder (and TAESD's decoder) that
run OpenVINO models. The kit's one path (encode, noise, denoise, decode) stays the one path:
diffusers calls the stand-ins as it calls the torch modules.

Each stand-in exports its torch module with `openvino.convert_model` the first time it sees an
image size, saves the model to ``$KIT_CACHE/openvino/`` (``~/.cache/kit/openvino/``) keyed by the
weights' identity, the component and the image size, and reads it from there from then on: a
second studio with the same weights and size exports nothing. The saved model keeps the weights
in float32; the precision it runs in is the studio's dtype (``float32``, or ``bfloat16`` on a CPU
that computes it natively), given to OpenVINO as its inference precision when compiling. The
batch and the prompt's length stay free in the saved model and are fixed at compile time, one
compiled model per shape, kept while the studio lives.

Measured on a 2-core AVX-512-BF16 CPU (bench/bench_cpu.py, sd-turbo's architecture, 1 step, prompt
to picture): at 512 px 3.9 s with the full VAE and 1.2 s with TAESD, against 5.8 s and 2.2 s for the
torch default (bfloat16, channels_last) and 4.0 s and 1.2 s for optimum-intel's pipeline, the same
OpenVINO, beside it. The record says ``backend: "openvino"``, and `Studio.for_record` replays such a
record with this backend.

The `openvino` package is an extra: ``pip install "kit-portraits[openvino]"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import warnings
from pathlib import Path

import torch

from ..errors import KitError

BACKENDS = ("torch", "openvino")
INSTALL = 'pip install "kit-portraits[openvino]"'
RECIPE = 1  # the export recipe's version: part of every cache key
# precision names: the studio's dtype -> OpenVINO's INFERENCE_PRECISION_HINT
PRECISIONS = {torch.float32: "f32", torch.bfloat16: "bf16"}
exports = 0  # models exported by this process (the tests count them: a cached model is never exported again)


def require():
    """The `openvino` module, or a KitError saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise KitError(f'backend "openvino" needs the openvino package, which is not installed: {INSTALL}') from None
    return openvino


def pick(backend, device: str, dtype, preset) -> str:
    """The backend asked for (None: $KIT_BACKEND, else "torch"), checked against the studio's
    device, dtype and preset before any model work."""
    if backend is None:
        backend = os.environ.get("KIT_BACKEND") or "torch"
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise KitError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "torch":
        return backend
    if device != "cpu":
        raise KitError(
            f"backend 'openvino' runs on the CPU, got device {device!r}: use device='cpu' or backend='torch'"
        )
    if preset.family != "sd":
        raise KitError(
            f"backend 'openvino' runs the sd family (tiny, sd-turbo); preset {preset.name!r} is "
            f"{preset.family}: use backend='torch'"
        )
    if dtype not in PRECISIONS:
        raise KitError(f"backend 'openvino' runs in float32 or bfloat16, got dtype {str(dtype)[6:]}")
    require()
    if dtype == torch.bfloat16 and "BF16" not in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        raise KitError(
            "backend 'openvino' with dtype bfloat16 needs a CPU that computes bfloat16 (AVX-512 BF16 or "
            "AMX); this one does not: use dtype='float32'"
        )
    return backend


def describe(device: str) -> str:
    """`kit doctor`'s line: the default backend and whether OpenVINO can be had here."""
    from importlib.metadata import PackageNotFoundError, version

    default = os.environ.get("KIT_BACKEND") or "torch"
    try:
        installed = f"openvino {version('openvino')} installed"
    except PackageNotFoundError:
        return (
            f"{default}; openvino is not installed ({INSTALL}): on a 2-core AVX-512-BF16 CPU it measured "
            "1.25-1.8x faster than torch bfloat16 (bench/bench_cpu.py)"
        )
    if device != "cpu":
        return f"{default}; {installed}, but it runs on the CPU and this machine computes on {device}"
    return (
        f"{default}; {installed}: Studio(backend='openvino') or KIT_BACKEND=openvino runs the models with it "
        "(exported once per image size into the cache)"
    )


_CORE = []


def _core():
    """The one OpenVINO runtime of this process."""
    if not _CORE:
        _CORE.append(require().Core())
    return _CORE[0]


def cache_root() -> Path:
    """Where exported models are kept: ``$KIT_CACHE/openvino`` (``~/.cache/kit/openvino``)."""
    from .tiny import _default_root

    return _default_root() / "openvino"


# ---------------------------------------------------------------- putting the stand-ins in place


def substitute(model, part: str, source: str, revision: str | None, dtype):
    """Put OpenVINO stand-ins in place of a loaded part's heavy modules; returns the part.

    `source` is the folder or repo id the part was loaded from and `revision` its commit (when
    known): with the component's name they say which weights a saved export holds."""
    precision = PRECISIONS[dtype]
    if part == "preview":  # AutoencoderTiny: its decoder
        model.decoder = Stand(
            model.decoder,
            "taesd_decoder",
            _identity(source, revision, ""),
            precision,
            _image_shape,
            reload=_reloader(type(model), source, None, "decoder"),
        )
        return model
    model.text_encoder = TextEncoder(
        model.text_encoder,
        _identity(source, revision, "text_encoder"),
        precision,
        reload=_reloader(type(model.text_encoder), source, "text_encoder"),
    )
    model.unet = UNet(
        model.unet, _identity(source, revision, "unet"), precision, reload=_reloader(type(model.unet), source, "unet")
    )
    model.vae.decoder = Stand(
        model.vae.decoder,
        "vae_decoder",
        _identity(source, revision, "vae"),
        precision,
        _image_shape,
        reload=_reloader(type(model.vae), source, "vae", "decoder"),
    )
    return model


def _reloader(cls, source: str, subfolder: str | None, attribute: str | None = None):
    """A function that reads a component's torch weights again (float32), for an export at a new size:
    a stand-in keeps no torch weights once it has its model, so a studio holds one copy of the weights."""

    def load():
        from . import presets
        from .libraries import quiet_loading

        kwargs = {"use_safetensors": True, **({"subfolder": subfolder} if subfolder else {})}
        if presets.hub_offline() or Path(source).expanduser().is_dir():
            kwargs["local_files_only"] = True
        with quiet_loading():
            module = cls.from_pretrained(source, **kwargs)
        return (getattr(module, attribute) if attribute else module).float().eval()

    return load


def _identity(source: str, revision: str | None, subfolder: str) -> str | None:
    """Which weights a component has: a repo id at its commit, or a folder's files (path, size and
    modification time of each). None when unknown: then nothing is saved."""
    folder = Path(source).expanduser() / subfolder
    if folder.is_dir():
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        stats = [(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
        return json.dumps([str(folder.resolve()), stats])
    return f"{source}@{revision}/{subfolder}" if revision else None


def _image_shape(args) -> tuple:
    """The shape an exported decoder keeps fixed: the latents' height and width (the batch stays free)."""
    return tuple(args[0].shape[2:])


class Stand(torch.nn.Module):
    """A torch module's stand-in that runs it with OpenVINO: exported on the first call with a new
    fixed shape (or read from the cache), compiled once per input shape, called with tensors."""

    def __init__(
        self, module, component: str, identity: str | None, precision: str, fixed=lambda args: (), reload=None
    ):
        super().__init__()
        self._torch = [module.eval()]  # kept out of the module tree, until the first model is had
        self.reload = reload  # reads the torch weights again for a later export (None: keep them)
        self.config = getattr(module, "config", None)
        self.component, self.identity, self.precision, self.fixed = component, identity, precision, fixed
        self._exported: dict = {}  # fixed shape -> openvino.Model
        self._compiled: dict = {}  # input shapes -> compiled model
        self._lock = threading.Lock()

    @property
    def dtype(self):
        return torch.float32  # what goes in and comes out; the precision inside is OpenVINO's

    @property
    def device(self):
        return torch.device("cpu")

    def run(self, *args: torch.Tensor) -> list[torch.Tensor]:
        """The exported model's outputs for `args` (tensors, in the export's input order)."""
        shapes = tuple(tuple(a.shape) for a in args)
        arrays = [a.detach().cpu().contiguous().numpy() for a in args]
        with self._lock:  # one call at a time: a compiled model's request is not shared across threads
            compiled = self._compiled.get(shapes)
            if compiled is None:
                compiled = self._compiled[shapes] = self._compile(args, shapes)
            outputs = compiled(arrays)
            return [torch.from_numpy(outputs[i].copy()) for i in range(len(compiled.outputs))]

    def _compile(self, args, shapes):
        ov = require()
        model = self._model(args).clone()
        model.reshape({i: ov.PartialShape(list(s)) for i, s in enumerate(shapes)})
        return _core().compile_model(
            model,
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": self.precision,
                "PERFORMANCE_HINT": "LATENCY",  # one image as soon as possible (one stream, all cores)
            },
        )

    def _model(self, args):
        """The exported model for `args`' fixed shape: from the cache, else exported (and saved)."""
        fixed = self.fixed(args)
        if fixed not in self._exported:
            self._exported[fixed] = self._read_or_export(args, fixed)
            if self.reload is not None:
                self._torch.clear()  # the torch weights go: OpenVINO's model is what runs
        return self._exported[fixed]

    def _read_or_export(self, args, fixed):
        folder = self.cache_folder(fixed)
        if folder is not None and _written_for(folder, self._key(fixed)):
            return _core().read_model(folder / "model.xml")
        model = self._export(args)
        if folder is not None:
            _save(model, folder, self._key(fixed))
        return model

    def _key(self, fixed) -> dict:
        return {
            "recipe": RECIPE,
            "openvino": require().__version__,
            "component": self.component,
            "weights": self.identity,
            "fixed_shape": list(fixed),
        }

    def cache_folder(self, fixed) -> Path | None:
        """The folder of this component's export for a fixed shape (None: the weights are unknown, nothing is saved)."""
        if self.identity is None:
            return None
        digest = hashlib.sha256(json.dumps(self._key(fixed), sort_keys=True).encode()).hexdigest()[:16]
        return cache_root() / f"{self.component}-{'x'.join(map(str, fixed)) or 'any'}-{digest}"

    def _export(self, args):
        """convert_model on the torch module, traced at `args`; all but the first input's fixed
        dimensions (the latents' channels and size) stay free: the batch, a prompt's length."""
        global exports
        ov = require()
        first = [-1, *args[0].shape[1:]] if self.fixed(args) else [-1] * args[0].ndim
        shapes = [first, *([-1] * a.ndim for a in args[1:])]
        from transformers.utils import logging as transformers_logging

        level = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()  # a traced CLIPTextModel's notice about its config
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore"
                )  # the tracer's notes on shape-dependent branches: the export fixes those
                module = _Traced(self._torch[0] if self._torch else self.reload(), self.trace)
                try:
                    model = ov.convert_model(
                        module, example_input=tuple(args), input=[ov.PartialShape(s) for s in shapes]
                    )
                except Exception:  # e.g. transformers 5.5's causal mask cannot be traced by TorchScript
                    model = ov.convert_model(_exported_program(module, args, shapes))
        except Exception as err:  # convert_model raises RuntimeError or the traced library's own errors
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            raise NotConverted(f"the {self.component} did not convert to OpenVINO: {first}") from err
        finally:
            transformers_logging.set_verbosity(level)
        exports += 1
        return model

    def trace(self, module, *args):
        """What is exported: the module called with the inputs (the stand-ins below say how)."""
        return module(*args)

    def forward(self, sample, *rest):
        if rest and any(r is not None for r in rest):
            raise KitError(f"the OpenVINO {self.component} takes only its input, got {len(rest)} more")
        return self.run(sample.float())[0]


class NotConverted(KitError):
    """A component that OpenVINO's converter could not trace (with this torch and transformers)."""


class UNet(Stand):
    """The UNet's stand-in: called as diffusers calls a UNet2DConditionModel; the latents' size is fixed per export."""

    def __init__(self, unet, identity, precision, reload=None):
        super().__init__(unet, "unet", identity, precision, _image_shape, reload=reload)

    def trace(self, unet, sample, timestep, encoder_hidden_states):
        return unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]

    def forward(
        self,
        sample,
        timestep,
        encoder_hidden_states,
        timestep_cond=None,
        attention_mask=None,
        cross_attention_kwargs=None,
        added_cond_kwargs=None,
        return_dict=True,
        **unused,
    ):
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        if timestep_cond is not None or attention_mask is not None or cross_attention_kwargs or added_cond_kwargs:
            raise KitError(
                "the OpenVINO UNet takes latents, a timestep and text states only "
                "(no timestep_cond, attention_mask, cross_attention_kwargs or added_cond_kwargs)"
            )
        timestep = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1).expand(sample.shape[0])
        out = self.run(sample.float(), timestep.contiguous(), encoder_hidden_states.float())[0]
        return UNet2DConditionOutput(sample=out) if return_dict else (out,)


class TextEncoder(Stand):
    """The CLIP text encoder's stand-in: its last hidden states and pooled output."""

    def __init__(self, encoder, identity, precision, reload=None):
        super().__init__(encoder, "text_encoder", identity, precision, reload=reload)
        self.torch_fallback = None  # the torch encoder, where it did not convert (float32, as loaded)

    def trace(self, encoder, input_ids):
        out = encoder(input_ids)
        return out[0], out[1]

    def forward(self, input_ids, attention_mask=None, output_hidden_states=None, return_dict=True, **unused):
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        if output_hidden_states:
            raise KitError("the OpenVINO text encoder returns its last hidden states only (no output_hidden_states)")
        if attention_mask is not None and not bool(attention_mask.all()):
            raise KitError("the OpenVINO text encoder reads whole windows (no attention mask)")
        if self.torch_fallback is None:
            try:
                hidden, pooled = self.run(input_ids.long())
            except NotConverted as err:  # neither TorchScript nor torch.export could take it: torch encodes
                warnings.warn(f"{err}; the text encoder runs in torch, float32", stacklevel=2)
                self.torch_fallback = self._torch[0] if self._torch else self.reload()
        if self.torch_fallback is not None:
            with torch.inference_mode():
                hidden, pooled = self.torch_fallback(input_ids, return_dict=False)[:2]
        out = BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=pooled)
        return out if return_dict else out.to_tuple()


def _exported_program(module, args, shapes):
    """`module` through torch.export, the second way in when TorchScript tracing fails: the
    dimensions `shapes` marks -1 stay free (examples with a batch of 1 are doubled, so that the
    batch is not taken for a constant)."""
    args = tuple(a.repeat(2, *[1] * (a.ndim - 1)) if a.ndim and a.shape[0] == 1 else a for a in args)
    dynamic = tuple({i: torch.export.Dim.AUTO for i, n in enumerate(s) if n == -1} for s in shapes)
    return torch.export.export(module, args, dynamic_shapes=(dynamic,), strict=False)  # (dynamic,): forward(*args)


class _Traced(torch.nn.Module):
    """A module called the way a stand-in says (`trace`), for convert_model to trace."""

    def __init__(self, module, trace):
        super().__init__()
        self.module, self._trace = module, trace

    def forward(self, *args):
        return self._trace(self.module, *args)


def _written_for(folder: Path, key: dict) -> bool:
    """Whether `folder` holds a complete export the kit saved for `key` (its kit.json says so)."""
    try:
        return (folder / "model.xml").is_file() and json.loads((folder / "kit.json").read_text()) == key
    except (OSError, ValueError):
        return False


def _save(model, folder: Path, key: dict):
    """Save an exported model as the cache's `folder`: written beside it and renamed into place, so a
    reader never sees half a model; when two processes race, the first rename wins."""
    ov = require()
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(partial, ignore_errors=True)  # ours: named by this process and thread
    partial.mkdir()
    try:
        ov.save_model(model, partial / "model.xml", compress_to_fp16=False)  # float32 weights, as torch's
        (partial / "kit.json").write_text(json.dumps(key, indent=1, sort_keys=True))
        try:
            partial.rename(folder)
        except OSError:
            if not _written_for(folder, key):
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
