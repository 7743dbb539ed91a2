"""`Studio`: owns the diffusion pipeline (loaded lazily) and makes Artworks.

Every image goes through one path: validate the request into Records (before
any model work), encode the prompts into a conditioning (a dict of the
pipeline's embedding arguments), draw each seed's noise on the CPU, run the
pipeline to latents, decode them with the full VAE or the TAESD preview
decoder, and wrap pixels and Record into an Artwork.
"""

from __future__ import annotations

import numbers
import threading
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace as _replace
from functools import partial
from pathlib import Path

import torch

from . import checks, openvino_backend, presets, styles
from . import latents as latent_math
from . import prompts as prompt_text
from .artwork import Artwork, pixel_hash
from .artwork import load as load_artwork
from .errors import KitError
from .gallery import Gallery
from .record import Record, credit, sampler_name, seed_action
from .runs import Run, Stopped, as_run

MAX_PROMPT_CHARS = 5000
MAX_STEPS = presets.MAX_STEPS  # one limit for requests and for the preset table
MAX_BATCH = 64
MAX_GUIDANCE = presets.MAX_GUIDANCE

# What features register when imported (see `_import_features`):
# record kind -> function(studio, records) -> (conditioning, initial latents), for kinds the text-to-image path renders
INPUTS: dict[str, Callable] = {}
# record kind -> function(studio, record, run) -> Artwork, for kinds with a pipeline of their own (restore)
RENDERERS: dict[str, Callable] = {}
# record kind -> function(studio, record) that checks the kind's own fields (raises KitError), before model work
CHECKS: dict[str, Callable] = {}
MAX_RECORD_SIDE = 8192  # a restoration record keeps its source's size; the image reader caps what it reads
# the parts a preset can have, and where the tiny preset keeps each
PARTS = {"pipeline": "pipeline", "preview": "taesd", "inpaint": "inpaint"}
# the record fields that may differ between the images of one batch
BATCH_FIELDS = ("seed", "prompt", "subject", "walk", "fusion")


def _member(record: Record) -> dict:
    return {name: getattr(record, name) for name in BATCH_FIELDS}


class Studio:
    """Text-to-image with a preset's diffusers pipeline.

    >>> studio = kit.Studio()                       # $KIT_PRESET, else sd-turbo
    >>> art, = studio.generate("portrait of an elder", style="ukiyo-e", seed=7)

    Nothing is loaded until the first image is asked for. `gallery` (a folder
    or a `kit.Gallery`) makes every image this studio returns be saved there
    first, with its record.
    """

    def __init__(
        self, preset=None, device=None, dtype=None, *, gallery=None, compile=False, batch_size=None, backend=None
    ):
        self.preset = presets.get(preset)
        self.device = presets.pick_device(device)
        self.dtype = presets.pick_dtype(self.device, dtype, self.preset)
        # "torch", or "openvino" (kit.openvino_backend: the CPU's fastest here; $KIT_BACKEND picks the default)
        self.backend = openvino_backend.pick(backend, self.device, self.dtype, self.preset)
        # the torch weights' dtype: OpenVINO exports float32 weights and computes in self.dtype
        self._weights_dtype = torch.float32 if self.backend == "openvino" else self.dtype
        self.compile = checks.flag(compile, "compile")
        if self.compile and self.backend != "torch":
            raise KitError("compile=True compiles torch modules: it needs backend='torch'")
        default = 8 if self.device.startswith("cuda") else 4
        self.batch_size = default if batch_size is None else checks.whole(batch_size, "batch_size", 1, MAX_BATCH)
        self.gallery = gallery if isinstance(gallery, Gallery) or gallery is None else Gallery(gallery)
        self.progress_bar = True
        self._parts: dict = {}  # loaded parts by name: "pipeline", "preview", "inpaint"
        self._revisions: dict = {}  # the commit (or tiny build) each loaded part comes from
        self._loading = threading.Lock()  # parts load once, even when two widgets ask at the same time
        self._lock = threading.Lock()  # one pipeline call (and prompt encoding) at a time
        self._runs: set[Run] = set()  # runs in progress, for stop()
        self._runs_lock = threading.Lock()
        self._unavailable: set[str] = set()  # optional parts that failed to load (said once)
        self._tokenizer = None  # the tokenizer alone, before the pipeline is loaded

    @property
    def previews_first(self) -> bool:
        """Whether a widget should show the fast TAESD preview before the full image: on a CPU, where
        the full VAE decode takes longer than a one-step diffusion (bench/bench_cpu.py)."""
        return self.device == "cpu"

    @classmethod
    def for_record(cls, record, **kwargs) -> Studio:
        """A studio that renders the way `record` (a Record, Artwork or saved image's path) was made:
        its preset, dtype and backend, on its device when this machine has one (`kit.replay(path,
        Studio.for_record(path))` reproduces the pixels made on the same kind of device)."""
        if not isinstance(record, Record):
            record = record.record if isinstance(record, Artwork) else load_artwork(record).record
        device = "cpu" if record.device == "cpu" else None  # a GPU's record: this machine's GPU, if it has one
        return cls(preset=record.preset, device=device, dtype=record.dtype, backend=record.backend, **kwargs)

    def __repr__(self):
        loaded = "loaded" if "pipeline" in self._parts else "not loaded yet"
        return f"Studio(preset={self.preset.name!r}, device={self.device!r}, dtype={str(self.dtype)[6:]}, {loaded})"

    # ------------------------------------------------------------ loading

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
        kwargs = {_dtype_argument(): self._weights_dtype, "use_safetensors": True}  # weights are data, never code
        if presets.hub_offline():  # also when HF_HUB_OFFLINE was set after huggingface_hub was imported
            kwargs["local_files_only"] = True
        if self.preset.variant and self.dtype == torch.float16 and part != "preview":
            kwargs["variant"] = self.preset.variant
        cls = AutoencoderTiny if part == "preview" else DiffusionPipeline
        try:
            with _quiet_loading():
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

    # ------------------------------------------------------------ checking requests

    def check_prompt(self, prompt, field="prompt", allow_empty=False) -> str:
        """One line of text of at most MAX_PROMPT_CHARS, whitespace runs made single spaces."""
        return checks.text(prompt, field, limit=MAX_PROMPT_CHARS, allow_empty=allow_empty)

    def check_size(self, size) -> tuple[int, int]:
        """(width, height) in whole pixels, multiples of 8 within the preset's range (one number: a square).

        The range is the named preset's (presets.json), or for a folder or repo id what its model's
        own configs allow (`presets.model_sizes`), so a size is checked before any model work."""
        p = self.preset
        if size is None:
            return p.size, p.size
        if isinstance(size, numbers.Real) and not isinstance(size, bool):
            size = (size, size)
        try:
            width, height = size
        except (TypeError, ValueError):
            raise KitError(f"size must be a number of pixels or a (width, height) pair, got {size!r}") from None
        sides = []
        for value in (width, height):
            value = checks.whole(value, "size", 1, 2**16)
            if not p.min_size <= value <= p.max_size or value % 8:
                raise KitError(
                    f"size {value} is not allowed for preset {p.name!r}: "
                    f"use a multiple of 8 from {p.min_size} to {p.max_size} px (default {p.size} px)"
                )
            sides.append(value)
        return sides[0], sides[1]

    def check_settings(self, steps, guidance) -> tuple[int, float]:
        """(steps, guidance), the preset's defaults for None."""
        steps = self.preset.steps if steps is None else steps
        guidance = self.preset.guidance if guidance is None else guidance
        return checks.whole(steps, "steps", 1, MAX_STEPS), checks.number(guidance, "guidance", 0, MAX_GUIDANCE)

    def plan(
        self, prompt, *, style=None, negative=None, seed=None, n=1, steps=None, guidance=None, size=None, preview=False
    ) -> list[Record]:
        """Check a generate request and return one Record per image, without touching a model."""
        subject = self.check_prompt(prompt)
        negative = self.check_prompt(negative, "negative", allow_empty=True)
        style = styles.get(style).id if style is not None and style != "" else None  # the catalogue's id
        text = styles.get(style).compose(subject) if style else subject
        n = checks.whole(n, "n (images)", 1, MAX_BATCH)
        preview = checks.flag(preview, "preview")
        person = [
            {"action": "typed the prompt", "prompt": subject},
            *([{"action": "chose the style", "style": style}] if style else []),
            *([{"action": "typed the negative prompt"}] if negative else []),
            *seed_action(seed),
        ]
        seed = latent_math.random_seed() if seed is None else latent_math.check_seed(seed)
        latent_math.check_seed(seed + n - 1)
        steps, guidance = self.check_settings(steps, guidance)
        width, height = self.check_size(size)
        decoder = "taesd" if preview and self.has("preview") else "vae"
        if preview and decoder == "vae":
            warnings.warn(
                f"preset {self.preset.name!r} has no preview decoder: decoding with the full VAE", stacklevel=3
            )
        if negative and guidance <= 1:
            warnings.warn(
                "the negative prompt has no effect when guidance <= 1 (sd-turbo's default is 0)", stacklevel=3
            )
        return [
            credit(
                self.record(
                    prompt=text,
                    subject=subject if style else None,
                    style=style,
                    negative=negative,
                    seed=seed + i,
                    steps=steps,
                    guidance=guidance,
                    width=width,
                    height=height,
                    decoder=decoder,
                ),
                person,
            )
            for i in range(n)
        ]

    def check_record(self, record: Record) -> Record:
        """Check a record (read from a file, say) with the same limits as a typed request, before any
        model work: a file is data, never a command. Returns the record; raises KitError naming the field."""
        if not isinstance(record, Record):
            raise KitError(f"record must be a kit.Record, got {type(record).__name__}")
        _import_features()
        kind = record.kind
        if kind != "generate" and kind not in INPUTS and kind not in RENDERERS:
            raise KitError(
                f"record.kind {kind!r} cannot be rendered: this kit renders "
                f"{', '.join(['generate', *INPUTS, *RENDERERS])}"
            )
        self.check_prompt(record.prompt, "record.prompt", allow_empty=kind in RENDERERS)
        self.check_prompt(record.negative, "record.negative", allow_empty=True)
        _check_field("record.seed", latent_math.check_seed, record.seed)
        _check_field("record", self.check_settings, record.steps, record.guidance)
        if kind in RENDERERS:
            for name in ("width", "height"):
                value = getattr(record, name)
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RECORD_SIDE:
                    raise KitError(
                        f"record.{name} must be a whole number of pixels from 1 to {MAX_RECORD_SIDE}, got {value!r}"
                    )
        else:
            _check_field("record", self.check_size, (record.width, record.height))
        if record.decoder not in ("vae", "taesd"):
            raise KitError(f"record.decoder must be 'vae' or 'taesd', got {record.decoder!r}")
        prompt_text.check_encoding(record.encoding, "record.encoding")
        if record.backend not in openvino_backend.BACKENDS:
            raise KitError(
                f"record.backend must be one of {', '.join(openvino_backend.BACKENDS)}, got {record.backend!r}"
            )
        if not isinstance(record.extra, dict):
            raise KitError(f"record.extra must be a JSON object, got {type(record.extra).__name__}")
        members = [record]
        batch = record.extra.get("batch")
        if batch is not None:
            members = [_check_field("record.extra.batch", _replace, record, **member) for member in _check_batch(batch)]
            for member in members:
                self.check_prompt(member.prompt, "record.extra.batch prompt", allow_empty=kind in RENDERERS)
                _check_field("record.extra.batch seed", latent_math.check_seed, member.seed)
                if member.subject is not None:
                    self.check_prompt(member.subject, "record.extra.batch subject")
        if kind in CHECKS:
            for member in members:
                CHECKS[kind](self, member)
        return record

    def record(self, **fields) -> Record:
        """A Record of this studio's preset, model, device and dtype, with `fields` filled in."""
        return Record(
            preset=self.preset.name,
            model=self.preset.model or f"kit-{self.preset.name}",
            device=self.device,
            dtype=str(self.dtype).replace("torch.", ""),
            backend=self.backend,
            encoding=prompt_text.WEBUI,
            **fields,
        )

    # ------------------------------------------------------------ making images

    def generate(
        self,
        prompt,
        *,
        style=None,
        negative=None,
        seed=None,
        n=1,
        steps=None,
        guidance=None,
        size=None,
        preview=False,
        on_step: Callable[[int, int], None] | None = None,
        on_preview: Callable[[list], None] | None = None,
        run: Run | None = None,
    ) -> list[Artwork]:
        """Make `n` images of `prompt` (seeds seed, seed+1, ...); `preview=True` decodes with TAESD.

        `style` is a catalogue id (see `kit.styles.catalogue()`); its template wraps the prompt.
        `on_step(done, total)` is called after every diffusion step. `on_preview(images)` gets
        each batch's fast TAESD pictures as soon as its latents exist, before the full VAE decode
        (in a notebook, `on_preview=display` shows a picture early; on a CPU the full decode takes
        longer than the diffusion itself). A `kit.Run` passed as `run` can stop the work from
        another thread: it then raises `kit.Stopped`, whose `done` holds the images already finished.
        """
        records = self.plan(
            prompt,
            style=style,
            negative=negative,
            seed=seed,
            n=n,
            steps=steps,
            guidance=guidance,
            size=size,
            preview=preview,
        )
        checks.callback(on_preview, "on_preview", "the preview images")
        if "pipeline" not in self._parts:
            presets.require(self.preset)  # a missing model: one short error here, not from deep inside loading
        return self.render_many(records, on_step=on_step, on_preview=on_preview, run=run)

    def _preview_ready(self) -> bool:
        """Whether the TAESD preview decoder can be used; says why not, once, when it cannot."""
        if not self.has("preview"):
            return False
        try:
            self.load("preview")
        except KitError as err:
            if "preview" not in self._unavailable:
                self._unavailable.add("preview")
                warnings.warn(f"no fast preview first: {err}", stacklevel=3)
            return False
        return True

    def render(self, record: Record, *, run: Run | None = None) -> Artwork:
        """Make the image a Record describes (what `kit.replay` calls).

        A record made in a batch names its batch-mates; they are rendered
        together again, because a batch's arithmetic can differ from a single
        image's in the last bit, and a replay must give the same pixels.
        """
        record = self.check_record(record)
        mine = self.record()  # the image is made by this studio: its record says so (replay compares)
        record = _replace(
            record,
            preset=mine.preset,
            device=mine.device,
            dtype=mine.dtype,
            backend=mine.backend,
            model=record.model if record.kind in RENDERERS else mine.model,
        )
        if record.kind in RENDERERS:
            with self.running(run) as run:
                return RENDERERS[record.kind](self, record, run)
        batch = (record.extra or {}).get("batch")
        if not batch:
            return self.render_many([record], run=run)[0]
        mates = [_replace(record, **member) for member in batch["members"]]
        return self.render_many(mates, batch_size=len(mates), run=run)[batch["index"]]

    def render_many(
        self,
        records: list[Record],
        on_step=None,
        batch_size: int | None = None,
        *,
        run: Run | None = None,
        save: bool = True,
        on_preview=None,
    ) -> list[Artwork]:
        """Render records of the same kind and settings in batches: the work of every public method.

        Each image is saved to the studio's gallery, when it has one, unless `save` is False (a
        passing preview). `on_preview(images)`, when given, gets each batch's TAESD pictures
        before the full VAE decode. Raises `kit.Stopped` (with the finished images as `done`)
        when stopped; a batch whose diffusion has ended is decoded and kept first.
        """
        batch_size = batch_size or self.batch_size
        done: list[Artwork] = []
        steps = records[0].steps
        if on_preview is not None and (records[0].decoder != "vae" or not self._preview_ready()):
            on_preview = None  # no early picture; the full image comes as always
        with self.running(run, on_step) as run:
            batches = self._batches(records, batch_size)
            run.expect(len(batches) * steps)
            for batch in batches:
                try:
                    cond, latents = self.inputs(batch)
                    latents = self.denoise(self.pipe, run, **self._call(cond, latents, batch))
                    if on_preview is not None:
                        on_preview(self.decode(latents, preview=True))  # a Stop from here on ends the run
                    images = self.decode(latents, preview=batch[0].decoder == "taesd")
                except Stopped:
                    raise Stopped("the run", done, len(records)) from None
                members = [_member(r) for r in batch]
                for i, (image, record) in enumerate(zip(images, batch)):
                    record.scheduler = type(self.pipe.scheduler).__name__
                    record.sampler = sampler_name(record.scheduler)
                    record.revision = self.revision("pipeline")
                    record.extra = {k: v for k, v in (record.extra or {}).items() if k != "batch"}
                    if len(batch) > 1:
                        record.extra["batch"] = {"index": i, "members": members}
                    record.sha256 = pixel_hash(image)
                    art = Artwork(image, record)
                    if save and self.gallery is not None:
                        self.gallery.add(art)
                    done.append(art)
        return done

    def _batches(self, records: list[Record], size: int) -> list[list[Record]]:
        """Consecutive records in batches of at most `size`. Prompts of different lengths in chunks
        are never batched together: padding a short prompt to a long one's length would change its image."""
        batches, last = [], None
        for record in records:
            key = self.chunk_count([record.prompt], record.encoding) if record.kind == "generate" else None
            if batches and len(batches[-1]) < size and key == last:
                batches[-1].append(record)
            else:
                batches.append([record])
            last = key
        return batches

    def inputs(self, records: list[Record]) -> tuple[dict, torch.Tensor]:
        """(conditioning, initial latents) for a batch, by the records' kind."""
        kind = records[0].kind
        if kind == "generate":
            first = records[0]
            cond = self.encode([r.prompt for r in records], first.negative, first.guidance, encoding=first.encoding)
            return cond, self.noise([r.seed for r in records], records[0].width, records[0].height)
        _import_features()
        if kind in INPUTS:
            return INPUTS[kind](self, records)
        raise KitError(f"this studio cannot render records of kind {kind!r}")

    def walk(self, keyframes, frames: int = 24, method: str = "slerp", loop: bool = False, **options):
        """A latent walk through `keyframes` ((prompt, seed) pairs): see `kit.walks.walk`."""
        from .walks import walk

        return walk(self, keyframes, frames=frames, method=method, loop=loop, **options)

    def fuse(self, weights: dict, subject: str, *, seed=None, **options) -> Artwork:
        """One image of `subject` in a weighted blend of styles: see `kit.fusion.fuse`."""
        from .fusion import fuse

        return fuse(self, weights, subject=subject, seed=seed, **options)

    def fusion_grid(self, styles, subject: str, *, seed=None, points: int = 5, **options):
        """A contact sheet of fusions between 2 or 3 styles, `points` per edge: see `kit.fusion.fusion_grid`."""
        from .fusion import fusion_grid

        return fusion_grid(self, styles, subject, seed=seed, points=points, **options)

    def restore(self, image, mask, prompt=None, seed=None, **options) -> Artwork:
        """Inpaint the masked region of a damaged image, disclosing it: see `kit.restore.restore`."""
        from .restore import restore

        return restore(self, image, mask, prompt=prompt, seed=seed, **options)

    def restyle(self, image, prompt=None, *, style=None, strength: float = 0.6, seed=None, **options) -> Artwork:
        """Re-render an image with a prompt and/or a style (image to image): see `kit.restyle.restyle`."""
        from .restyle import restyle

        return restyle(self, image, prompt, style=style, strength=strength, seed=seed, **options)

    # ------------------------------------------------------------ runs

    @contextmanager
    def running(self, run: Run | None = None, on_step=None):
        """The run for a piece of work (the one given, else a new one), known to `stop()` while it lasts."""
        run = as_run(run, on_step, progress_bar=self.progress_bar, description=self.preset.name)
        with self._runs_lock:
            nested = run in self._runs
            self._runs.add(run)
        try:
            yield run
        finally:
            if not nested:
                with self._runs_lock:
                    self._runs.discard(run)
                run.close()

    def stop(self):
        """Stop every run in progress on this studio after its current step (a widget's Stop stops only its own)."""
        with self._runs_lock:
            for run in self._runs:
                run.stop()

    # ------------------------------------------------------------ the pipeline

    def encode(
        self,
        prompts: list[str],
        negative: str = "",
        guidance: float = 0.0,
        *,
        encoding: str = prompt_text.WEBUI,
        chunks: int = 1,
        pipe=None,
    ) -> dict[str, torch.Tensor]:
        """The conditioning for prompts: the pipeline's embedding arguments, one row per prompt.

        Under the "webui" encoding (see `kit.prompts`) each prompt's emphasis is read and its
        tokens are encoded in chunks of the text encoder's window, laid side by side; every row
        (and the negative prompt's, when guidance > 1 uses it) is padded with empty chunks to the
        longest, and to at least `chunks`, so prompts of different lengths can be blended. Each
        text is encoded on its own, so a prompt encodes the same alone or in a batch. A prompt
        that fits one chunk, with no emphasis, encodes exactly as the diffusers pipeline would.
        `pipe` is another pipeline of this studio (`load("inpaint")`); the text-to-image one by default.
        """
        pipe = self.pipe if pipe is None else pipe
        prompt_text.check_encoding(encoding)
        cfg = guidance > 1
        if encoding == prompt_text.TRUNCATE:
            self._warn_if_truncated(prompts)
        texts = list(dict.fromkeys([*prompts, *([negative] if cfg else [])]))
        sdxl = self.preset.family == "sdxl"
        encoders = [(pipe.tokenizer, pipe.text_encoder)] + ([(pipe.tokenizer_2, pipe.text_encoder_2)] if sdxl else [])
        with self._lock, torch.inference_mode():
            encoded = {text: self._encode_text(encoders, text, encoding, sdxl) for text in texts}
            length = pipe.tokenizer.model_max_length  # of one chunk, in tokens
            longest = max([chunks * length, *(hidden.shape[1] for hidden, _ in encoded.values())])
            empty = None  # an empty prompt's chunk pads the shorter texts
            for text, (hidden, pooled) in encoded.items():
                if hidden.shape[1] < longest:
                    if empty is None:
                        empty = self._encode_text(encoders, "", prompt_text.TRUNCATE, sdxl)[0]
                    encoded[text] = (
                        torch.cat([hidden, *[empty] * ((longest - hidden.shape[1]) // length)], dim=1),
                        pooled,
                    )
        dtype = (pipe.text_encoder_2 if sdxl else pipe.text_encoder).dtype

        def rows(names, which):
            hidden = torch.cat([encoded[t][0] for t in which]).to(self.device, dtype)
            out = {names[0]: hidden}
            if sdxl:
                out[names[1]] = torch.cat([encoded[t][1] for t in which]).to(self.device, dtype)
            return out

        cond = rows(("prompt_embeds", "pooled_prompt_embeds"), prompts)
        if cfg:
            cond.update(rows(("negative_prompt_embeds", "negative_pooled_prompt_embeds"), [negative] * len(prompts)))
        return cond

    def _encode_text(self, encoders, text: str, encoding: str, sdxl: bool):
        """One text's hidden states (1, 77 x chunks, width) and, for SDXL, its pooled embedding (of
        the first chunk). Emphasis scales each token's embedding, then the chunk's mean is restored."""
        per_encoder, pooled = [], None
        for tokenizer, encoder in encoders:
            window = tokenizer.model_max_length - 2
            pieces = prompt_text.chunks(partial(_tokenize, tokenizer), text, window, encoding)
            hidden = []
            for ids, _ in pieces:
                pad = [tokenizer.pad_token_id] * (window - len(ids))
                row = torch.tensor(
                    [[tokenizer.bos_token_id, *ids, tokenizer.eos_token_id, *pad]], device=encoder.device
                )
                if sdxl:  # as the SDXL pipeline: the penultimate layer, and the second encoder's pooled output
                    out = encoder(row, output_hidden_states=True)
                    if pooled is None and out[0].ndim == 2:
                        pooled = out[0]
                    hidden.append(out.hidden_states[-2])
                else:
                    mask = None
                    if getattr(encoder.config, "use_attention_mask", False):
                        mask = torch.tensor([[1] * (len(ids) + 2) + [0] * len(pad)], device=encoder.device)
                    hidden.append(encoder(row, attention_mask=mask)[0])
            per_encoder.append(hidden)
        chunks = []
        for (_, weights), *parts in zip(pieces, *per_encoder):
            chunk = torch.cat(parts, dim=-1)  # SDXL: the two encoders' states side by side
            if any(w != 1.0 for w in weights):
                scale = torch.ones(chunk.shape[1], dtype=torch.float32, device=chunk.device)
                scale[1 : 1 + len(weights)] = torch.tensor(weights)
                before = chunk.float().mean()
                weighed = chunk.float() * scale[None, :, None]
                after = weighed.mean()
                chunk = (weighed * (before / after) if after != 0 else weighed).to(chunk.dtype)
            chunks.append(chunk)
        return torch.cat(chunks, dim=1), pooled

    @property
    def tokenizer(self):
        """The pipeline's prompt tokenizer; before the pipeline is loaded, the tokenizer alone (no
        weights, and only from files on this machine: counting never downloads), so a widget can
        count tokens as a prompt is typed."""
        if "pipeline" in self._parts:
            return self.pipe.tokenizer
        with self._loading:
            if self._tokenizer is None:
                from transformers import CLIPTokenizer

                try:
                    self._tokenizer = CLIPTokenizer.from_pretrained(
                        self._source("pipeline"), subfolder="tokenizer", local_files_only=True
                    )
                except OSError as err:
                    raise presets.not_available(self.preset, "pipeline", err) from None
            return self._tokenizer

    def _token_ids(self, prompt: str) -> tuple[list[int], int]:
        """The prompt's token ids (no start and end tokens) and the text encoder's window (75 for CLIP)."""
        tokenizer = self.tokenizer
        return _tokenize(tokenizer, prompt), tokenizer.model_max_length - 2

    def count_tokens(self, prompt) -> list[int]:
        """The prompt's tokens per chunk of the text encoder's window (75 for CLIP), as `encode` cuts
        them: "a cat" -> [2], an 80-token prompt -> [75, 5], "a BREAK b" -> [1, 1]. Emphasis brackets
        and weights are not tokens: "(a cat:1.2)" -> [2]."""
        prompt = self.check_prompt(prompt, allow_empty=True)
        tokenizer = self.tokenizer
        pieces = prompt_text.chunks(partial(_tokenize, tokenizer), prompt, tokenizer.model_max_length - 2)
        return [len(ids) for ids, _ in pieces]

    def chunk_count(self, prompts, encoding: str = prompt_text.WEBUI) -> int:
        """How many chunks the longest of `prompts` takes (what `encode(..., chunks=)` pads to, so
        that prompts of different lengths blend in a walk or a fusion)."""
        if encoding == prompt_text.TRUNCATE:
            return 1
        return max(len(self.count_tokens(prompt)) for prompt in prompts)

    def _warn_if_truncated(self, prompts):
        """Under the "truncate" encoding (older records), say what the text encoder does not read."""
        for prompt in dict.fromkeys(prompts):
            ids, window = self._token_ids(prompt)
            if len(ids) > window:
                dropped = self.tokenizer.decode(ids[window:])
                warnings.warn(
                    f"the prompt is {len(ids)} tokens; the text encoder reads {window}, so this part is dropped: "
                    f"{dropped!r}",
                    stacklevel=4,
                )

    def noise(self, seeds: list[int], width: int, height: int) -> torch.Tensor:
        """Initial latents for seeds, drawn on the CPU (same seed, same noise on any device)."""
        pipe = self.pipe
        shape = (pipe.unet.config.in_channels, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
        return torch.stack([latent_math.noise(seed, shape) for seed in seeds])

    def _call(self, cond: dict, latents: torch.Tensor, batch: list[Record]) -> dict:
        """The text-to-image pipeline's arguments for a batch, to latents."""
        settings = batch[0]
        return dict(
            **cond,
            latents=latents.to(self.device, self._weights_dtype),
            generator=[torch.Generator("cpu").manual_seed(r.seed) for r in batch],
            num_inference_steps=settings.steps,
            guidance_scale=settings.guidance,
            height=settings.height,
            width=settings.width,
            output_type="latent",
        )

    def denoise(self, pipe, run: Run, **call):
        """Call a pipeline of this studio (`load(...)`) under its lock, one `run.step()` per diffusion
        step; returns the output's images (latents or pictures, as `output_type` asks).

        Raises `kit.Stopped` when the run is stopped, before or during the call.
        """
        interrupted = []

        def step_end(pipe_, i, t, kwargs):
            run.step()
            last = i + 1 >= getattr(pipe_, "num_timesteps", i + 2)
            if run.stopped and not last:  # a Stop at the last step lets the finished images through
                pipe_._interrupt = True
                interrupted.append(i)
            return kwargs

        if run.stopped:
            raise Stopped()
        with self._lock, torch.inference_mode():
            out = pipe(**call, callback_on_step_end=step_end).images
        if interrupted:
            raise Stopped()
        return out

    def decode(self, latents: torch.Tensor, preview: bool = False) -> list:
        """Latents to PIL images with the full VAE, or with TAESD when `preview`.

        An SDXL VAE in float16 whose config asks for it (`force_upcast`, as the SDXL VAE's does:
        its activations overflow float16, giving NaN and black pictures) decodes in float32, as
        diffusers' SDXL pipelines do; the VAE is shared, so one such decode runs at a time."""
        pipe = self.pipe
        vae = self.preview_vae if preview else None
        with torch.inference_mode():
            if vae is not None:
                pixels = vae.decode(latents.to(vae.dtype)).sample
            elif self._upcasts(pipe.vae):
                with self._lock:
                    pipe.vae.to(torch.float32)
                    try:
                        pixels = pipe.vae.decode(latents.float() / pipe.vae.config.scaling_factor).sample
                    finally:
                        pipe.vae.to(torch.float16)
            else:
                pixels = pipe.vae.decode(latents.to(pipe.vae.dtype) / pipe.vae.config.scaling_factor).sample
        return pipe.image_processor.postprocess(pixels, output_type="pil")

    def _upcasts(self, vae) -> bool:
        return self.preset.family == "sdxl" and vae.dtype == torch.float16 and bool(vae.config.get("force_upcast"))


def _tokenize(tokenizer, text: str) -> list[int]:
    """A text's token ids, without the start and end tokens."""
    return tokenizer(text, add_special_tokens=False, verbose=False).input_ids


def _check_field(field: str, check, *values, **named):
    """Run a check and name the record's field in its error."""
    try:
        return check(*values, **named)
    except KitError as err:
        raise KitError(f"{field}: {err}") from None


def _check_batch(batch) -> list[dict]:
    """The members of a record's batch, checked: at most MAX_BATCH dicts of the batch fields, a valid index."""
    if not isinstance(batch, dict) or not isinstance(batch.get("members"), list):
        raise KitError("record.extra.batch must be an object with a list of members")
    members, index = batch["members"], batch.get("index")
    if not 1 <= len(members) <= MAX_BATCH:
        raise KitError(f"record.extra.batch has {len(members)} members; a batch has 1 to {MAX_BATCH}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(members):
        raise KitError(f"record.extra.batch.index must be a whole number from 0 to {len(members) - 1}, got {index!r}")
    for member in members:
        if not isinstance(member, dict) or not set(member) <= set(BATCH_FIELDS):
            raise KitError(f"record.extra.batch members must be objects with the fields {', '.join(BATCH_FIELDS)}")
    return members


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


def _import_features() -> None:
    """The features register their record kinds (INPUTS, RENDERERS) when imported."""
    from . import fusion, restore, restyle, walks  # noqa: F401


def _dtype_argument() -> str:
    """diffusers renamed from_pretrained's `torch_dtype` to `dtype`; use the name this version reads."""
    try:
        from diffusers.utils import _resolve_dtype  # noqa: F401  (present where `dtype` is the name)
    except ImportError:
        return "torch_dtype"
    return "dtype"


@contextmanager
def _quiet_loading():
    """Silence the libraries' loading bars and notices; the kit reports what matters itself."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    levels = dlog.get_verbosity(), tlog.get_verbosity()
    dlog.set_verbosity_error(), tlog.set_verbosity_error()
    dlog.disable_progress_bar(), tlog.disable_progress_bar()
    try:
        yield
    finally:
        dlog.set_verbosity(levels[0]), tlog.set_verbosity(levels[1])
        dlog.enable_progress_bar(), tlog.enable_progress_bar()
