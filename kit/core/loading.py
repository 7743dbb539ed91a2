"""Loading a preset's parts: the text-to-image pipeline, the TAESD preview decoder, the inpainting pipeline.

`Loader` is the part of the Studio that loads (a mixin: `kit.studio.Studio` is one). Parts load lazily,
once, under a lock, from the Hugging Face cache, a folder, or the tiny preset's saved build, always through
``from_pretrained`` and safetensors only (a folder of pickle weights is refused: unpickling can run code).
On a CPU the UNet and VAE use channels_last (measured faster, bench/bench_cpu.py); with the OpenVINO
backend the heavy modules are swapped for OpenVINO stand-ins after loading.

The state it uses is the Studio's: ``preset``, ``device``, ``dtype``, ``backend``, ``compile``,
``_weights_dtype``, ``_parts``, ``_revisions`` and the ``_loading`` lock.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import KitError
from . import openvino_backend, presets
from .libraries import dtype_argument, quiet_loading

# the parts a preset can have, and where the tiny preset keeps each
PARTS = {"pipeline": "pipeline", "preview": "taesd", "inpaint": "inpaint"}


class Loader:
    """Load a preset's parts on first use and keep them (see the module docstring)."""

    def _source(self, part: str) -> str:
        """Where `part` ("pipeline", "preview", "inpaint") is loaded from."""
        if self.preset.offline:
            from . import tiny

            return str(tiny.ensure_saved(preset=self.preset.name) / PARTS[part])
        return {"pipeline": self.preset.model, "preview": self.preset.preview, "inpaint": self.preset.inpaint}[part]

    def has(self, part: str) -> bool:
        """True when the preset has `part` ("pipeline", "preview" or "inpaint")."""
        if part not in PARTS:
            raise KitError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
        return self.preset.offline or part == "pipeline" or bool(self._source(part))

    def load(self, part: str = "pipeline"):
        """A part of the preset, loaded on first use and kept: the text-to-image pipeline, the TAESD
        "preview" decoder or the "inpaint" pipeline. Thread-safe: a part is loaded once."""
        if not self.has(part):
            raise KitError(f"preset {self.preset.name!r} has no {part} model")
        with self._loading:
            if part not in self._parts:
                self._parts[part] = self._load(part)
                self._revisions[part] = self._weights_revision(part)
            return self._parts[part]

    @property
    def loaded(self) -> tuple[str, ...]:
        """The parts loaded so far (nothing is loaded until an image is asked for)."""
        return tuple(self._parts)

    def revision(self, part: str = "pipeline") -> str | None:
        """The commit (or tiny build) a loaded part's weights come from, when known."""
        return self._revisions.get(part)

    def _load(self, part: str):
        from diffusers import AutoencoderTiny, DiffusionPipeline

        presets.require(self.preset, {"preview": "preview", "inpaint": "inpaint"}.get(part, "pipeline"))
        source = self._source(part)
        folder = Path(source).expanduser()
        if folder.is_dir():
            _refuse_pickles(folder)
        kwargs = {dtype_argument(): self._weights_dtype, "use_safetensors": True}  # weights are data, never code
        if presets.hub_offline():  # also when HF_HUB_OFFLINE was set after huggingface_hub was imported
            kwargs["local_files_only"] = True
        if self.preset.variant and self.dtype == torch.float16 and part != "preview":
            kwargs["variant"] = self.preset.variant
        cls = AutoencoderTiny if part == "preview" else DiffusionPipeline
        try:
            with quiet_loading():
                model = cls.from_pretrained(source, **kwargs)
        except OSError as err:
            if folder.is_dir():  # a folder on this machine: say what is wrong with it, not with the Hub
                first = (str(err).strip().splitlines() or [""])[0][:300]
                raise KitError(f"cannot load the {part} from the folder {str(folder)!r}: {first}") from None
            raise presets.not_available(self.preset, part, err) from None
        if part != "preview":
            model.set_progress_bar_config(disable=True)
        model.to(self.device)
        if self.device == "cpu":  # measured at 512 px (bench/bench_cpu.py): channels_last speeds up CPU convolutions
            for module in (model,) if part == "preview" else (model.unet, model.vae):
                module.to(memory_format=torch.channels_last)
        if part == "pipeline" and self.compile:
            model.unet = torch.compile(model.unet, mode="reduce-overhead", fullgraph=True)
        if self.backend == "openvino":
            model = openvino_backend.substitute(model, part, source, self._weights_revision(part), self.dtype)
        return model

    @property
    def pipe(self):
        """The text-to-image pipeline, loaded on first use."""
        return self.load("pipeline")

    @property
    def preview_vae(self):
        """The TAESD preview decoder, or None when the preset has none."""
        return self.load("preview") if self.has("preview") else None

    def _weights_revision(self, part: str) -> str | None:
        """The commit (or tiny build) the part's weights come from, when known."""
        source = Path(self._source(part))
        if source.is_dir():
            return source.parent.name if self.preset.offline else None
        cached = presets._cached_file(str(self._source(part)), "model_index.json")
        return Path(cached).parent.name if cached else None


_PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")


def _refuse_pickles(folder: Path) -> None:
    """A model folder whose weights are only pickle files is refused: loading one can run code."""
    weights = [p for p in folder.rglob("*") if p.is_file() and p.suffix in (*_PICKLE_SUFFIXES, ".safetensors")]
    pickles = [p for p in weights if p.suffix in _PICKLE_SUFFIXES]
    if pickles and not any(p.suffix == ".safetensors" for p in weights):
        raise KitError(
            f"the model folder {str(folder)!r} has only pickle weights ({pickles[0].name}, ...): the kit "
            "loads safetensors only, since unpickling a file can run code. Save the model with "
            "save_pretrained(..., safe_serialization=True) or convert it to .safetensors"
        )
