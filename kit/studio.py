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

import torch

from . import checks, kinds, styles
from . import prompts as prompt_text
from .core import latents as latent_math
from .core import openvino_backend, presets
from .core.encoding import PromptEncoder
from .core.loading import Loader
from .errors import KitError
from .features import fusion, restore, restyle, walks
from .kinds import Kind
from .limits import MAX_BATCH, MAX_GUIDANCE, MAX_PROMPT_CHARS, MAX_RECORD_SIDE, MAX_STEPS
from .provenance.artwork import Artwork, pixel_hash
from .provenance.artwork import load as load_artwork
from .provenance.gallery import Gallery
from .provenance.record import Record, credit, sampler_name, seed_action
from .runs import Run, Stopped, as_run

__all__ = ["Studio", "MAX_BATCH", "MAX_GUIDANCE", "MAX_PROMPT_CHARS", "MAX_STEPS"]

# the record fields that may differ between the images of one batch
BATCH_FIELDS = ("seed", "prompt", "subject", "walk", "fusion")


def _member(record: Record) -> dict:
    return {name: getattr(record, name) for name in BATCH_FIELDS}


class Studio(Loader, PromptEncoder):
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
        # "torch", or "openvino" (kit.core.openvino_backend: the CPU's fastest here; $KIT_BACKEND picks the default)
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
        self._held: dict = {}  # what features keep with this studio (see held)
        self._held_lock = threading.Lock()

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

    def held(self, name: str, make: Callable[[], object]):
        """What a feature keeps with this studio, made by ``make()`` the first time and the same object after:
        fusion's recent prompt encodings, the image-to-image pipeline built on the loaded components, the
        walk's CLIP embedder. State that belongs to a studio lives and dies with it, never in a module."""
        with self._held_lock:
            if name not in self._held:
                self._held[name] = make()
            return self._held[name]

    # ------------------------------------------------------------ checking requests

    def check_prompt(self, prompt, field="prompt", allow_empty=False, encoding=prompt_text.WEBUI) -> str:
        """One line of text of at most MAX_PROMPT_CHARS, whitespace runs made single spaces; read as the web UIs
        read it (the "webui" encoding), its emphasis weights must be finite and at most `prompts.MAX_WEIGHT`."""
        text = checks.text(prompt, field, limit=MAX_PROMPT_CHARS, allow_empty=allow_empty)
        if encoding != prompt_text.WEBUI:
            return text  # an older record's text, read as typed: no emphasis to weigh
        try:
            prompt_text.parse(text)
        except KitError as err:
            raise KitError(f"{field}{str(err).removeprefix('prompt')}") from None
        return text

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
        kind = kinds.get(record.kind)
        renderable = [k for k in kinds.names() if kinds.get(k).inputs or kinds.get(k).renderer]
        if kind is None or kind.name not in renderable:
            raise KitError(f"record.kind {record.kind!r} cannot be rendered: this kit renders {', '.join(renderable)}")
        own_pipeline = kind.renderer is not None
        self.check_prompt(record.prompt, "record.prompt", allow_empty=own_pipeline, encoding=record.encoding)
        self.check_prompt(record.negative, "record.negative", allow_empty=True, encoding=record.encoding)
        _check_field("record.seed", latent_math.check_seed, record.seed)
        _check_field("record", self.check_settings, record.steps, record.guidance)
        if own_pipeline:
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
                self.check_prompt(
                    member.prompt, "record.extra.batch prompt", allow_empty=own_pipeline, encoding=record.encoding
                )
                _check_field("record.extra.batch seed", latent_math.check_seed, member.seed)
                if member.subject is not None:
                    self.check_prompt(member.subject, "record.extra.batch subject")
        if kind.check is not None:
            for member in members:
                kind.check(self, member)
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
        renderer = kinds.get(record.kind).renderer
        mine = self.record()  # the image is made by this studio: its record says so (replay compares)
        record = _replace(
            record,
            preset=mine.preset,
            device=mine.device,
            dtype=mine.dtype,
            backend=mine.backend,
            model=record.model if renderer else mine.model,
        )
        if renderer is not None:
            with self.running(run) as run:
                return renderer(self, record, run)
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
                    record.extra = {k: v for k, v in (record.extra or {}).items() if k != "batch"}
                    if len(batch) > 1:
                        record.extra["batch"] = {"index": i, "members": members}
                    done.append(self.finish(Artwork(image, record), save=save))
        return done

    def finish(self, art: Artwork, part: str = "pipeline", *, save: bool = True) -> Artwork:
        """The one end of every render: the record's last fields (the part's scheduler and its web-UI sampler
        name, the weights' revision, the pixel hash), then the image is saved to the studio's gallery, when it
        has one, unless `save` is False (a passing preview). Returns `art`."""
        record = art.record
        record.scheduler = type(self.load(part).scheduler).__name__
        record.sampler = sampler_name(record.scheduler)
        record.revision = self.revision(part)
        record.sha256 = pixel_hash(art.image)
        if save:
            self.keep(art)
        return art

    def keep(self, art: Artwork, gallery=None):
        """Save an image this studio made to `gallery` (a folder or a `kit.Gallery`; by default the studio's
        own), unless it is saved there already: the one place a made image is saved, for the Studio's own
        calls and for a widget keeping what it shows. Returns the PNG's path; None when there is no gallery."""
        gallery = self.gallery if gallery is None else gallery
        if gallery is None:
            return None
        gallery = gallery if isinstance(gallery, Gallery) else Gallery(gallery)
        if art.path is not None and art.path.parent.resolve() == gallery.folder.resolve():
            return art.path  # kept already (a studio with a gallery saves what it makes)
        return gallery.add(art)

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
        kind = kinds.get(records[0].kind)
        if kind is None or kind.inputs is None:
            raise KitError(f"this studio cannot render records of kind {records[0].kind!r}")
        return kind.inputs(self, records)

    def walk(self, keyframes, frames: int = 24, method: str = "slerp", loop: bool = False, **options):
        """A latent walk through `keyframes` ((prompt, seed) pairs): see `kit.walks.walk`."""
        return walks.walk(self, keyframes, frames=frames, method=method, loop=loop, **options)

    def fuse(self, weights: dict, subject: str, *, seed=None, **options) -> Artwork:
        """One image of `subject` in a weighted blend of styles: see `kit.fusion.fuse`."""
        return fusion.fuse(self, weights, subject=subject, seed=seed, **options)

    def fusion_grid(self, styles, subject: str, *, seed=None, points: int = 5, **options):
        """A contact sheet of fusions between 2 or 3 styles, `points` per edge: see `kit.fusion.fusion_grid`."""
        return fusion.fusion_grid(self, styles, subject, seed=seed, points=points, **options)

    def restore(self, image, mask, prompt=None, seed=None, **options) -> Artwork:
        """Inpaint the masked region of a damaged image, disclosing it: see `kit.restore.restore`."""
        return restore.restore(self, image, mask, prompt=prompt, seed=seed, **options)

    def restyle(self, image, prompt=None, *, style=None, strength: float = 0.6, seed=None, **options) -> Artwork:
        """Re-render an image with a prompt and/or a style (image to image): see `kit.restyle.restyle`."""
        return restyle.restyle(self, image, prompt, style=style, strength=strength, seed=seed, **options)

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


def _prompt_inputs(studio: Studio, records: list[Record]) -> tuple[dict, torch.Tensor]:
    """(conditioning, initial latents) for a batch of text-to-image records: their prompts and their seeds' noise."""
    first = records[0]
    cond = studio.encode([r.prompt for r in records], first.negative, first.guidance, encoding=first.encoding)
    return cond, studio.noise([r.seed for r in records], first.width, first.height)


kinds.register(
    Kind("generate", did="generated the image from seeded noise, guided by the prompt", inputs=_prompt_inputs)
)
