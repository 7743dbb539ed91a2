"""Image to image: re-render a picture (a photo, a sketch, an Artwork) with a prompt and/or a style.

    art = studio.restyle("sketch.png", "portrait of an elder", style="ukiyo-e", strength=0.6, seed=3)
    art = studio.restyle(photo, "portrait of an elder", style={"ukiyo-e": 0.6, "madhubani": 0.4})
    kit.replay(art.save("out"), studio)          # the same pixels again, given the source

The source is encoded by the preset's VAE, noised `strength` of the way towards pure noise and
denoised with the prompt's conditioning (SDEdit): strength near 0 keeps the source, 1 ignores
it. The image-to-image pipeline is built from the components the Studio already loaded
(`AutoPipelineForImage2Image.from_pipe`), so no second copy of any weights is read; the tiny
preset gets one built the same way.

The model runs `int(steps * strength)` steps, which must be at least 1. sd-turbo makes a picture
in 1 step, so when `steps` is not given it is raised to the fewest that give one step at this
strength (2 at 0.6, as sd-turbo's own image-to-image example does); the record keeps it.

`style` is a catalogue id (its template wraps the prompt) or a dict of fusion weights, encoded by
`kit.blend.conditioning` exactly as `studio.fuse` encodes them. With a style and no prompt the
subject is DEFAULT_SUBJECT; with neither, the picture is re-rendered from the empty prompt.

The record (kind "restyle") names the source by pixel hash (`restyle["source_sha256"]`, also
read by `Record.parents()`), by path when it was a file or a saved Artwork, keeps the strength
and says how the source was fitted to the model's size (`restyle["resize"]`). A replay finds
the source at that path or, by its hash, in the studio's gallery, and says clearly when
neither has it.

Light at import: torch and diffusers are loaded only when a picture is made.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path

from PIL import Image

from .. import checks, styles
from ..core import blend
from ..errors import KitError
from ..files import RESAMPLE, check_image, check_path, is_file
from ..kinds import Kind, register
from ..limits import MAX_STEPS
from ..provenance.artwork import Artwork, pixel_hash
from ..provenance.record import Record, check_person, credit, seed_action
from ..runs import Stopped

DEFAULT_STRENGTH = 0.6
DEFAULT_SUBJECT = "a picture"  # what a style's template wraps when no prompt is given


# ---------------------------------------------------------------- checking inputs


def check_strength(strength, field: str = "strength") -> float:
    """`strength` as a float above 0 and at most 1 (NaN and bools refused)."""
    return checks.number(strength, field, 0, 1, low_open=True)


def pick_steps(steps, strength: float, preset, field: str = "steps") -> int:
    """The sampler's steps: `steps` as given, or the preset's raised until `int(steps * strength) >= 1`.

    The pipeline runs `int(steps * strength)` of them; zero would return the source's own latents.
    """
    if steps is None:
        steps = preset.steps
        while int(steps * strength) < 1 and steps < MAX_STEPS:
            steps += 1
        if int(steps * strength) < 1:
            raise KitError(
                f"strength {strength} is too small: even {MAX_STEPS} steps would run no step "
                f"(the model runs int(steps x strength)); use a strength of at least {1 / MAX_STEPS}"
            )
        return steps
    steps = checks.whole(steps, field, 1, MAX_STEPS)
    if int(steps * strength) < 1:
        need = math.ceil(1 / strength)
        while int(need * strength) < 1:
            need += 1
        raise KitError(
            f"{field} x strength must be at least 1 (the model runs int(steps x strength) steps), got "
            f"{steps} x {strength}: use steps={need} or more, or leave steps out"
        )
    return steps


def fit(source_size: tuple[int, int], preset, size=None) -> tuple[tuple[int, int], list[int] | None, str]:
    """How a source of `source_size` becomes the model's input: ((width, height), crop box or None, note).

    size None: the longer side becomes the preset's native size, the aspect kept (sides rounded
    to multiples of 8, the shorter side raised to the preset's smallest when needed); a source
    too narrow for the preset's range is centre-cropped to the widest aspect it allows.
    size given (already checked): the source is scaled to cover it and centre-cropped.
    The crop box is (left, top, right, bottom) in source pixels.
    """
    width, height = source_size
    if size is None:
        low, high = preset.min_size, preset.max_size
        widest = high / low
        box = None
        if max(width, height) / min(width, height) > widest:  # too narrow: keep the centre
            if width > height:
                keep = max(1, int(height * widest))
                box = [(width - keep) // 2, 0, (width - keep) // 2 + keep, height]
            else:
                keep = max(1, int(width * widest))
                box = [0, (height - keep) // 2, width, (height - keep) // 2 + keep]
            width, height = box[2] - box[0], box[3] - box[1]
        scale = preset.size / max(width, height)
        if min(width, height) * scale < low:
            scale = low / min(width, height)

        def side(value):
            return min(high, max(low, int(round(value * scale / 8)) * 8))

        target = (side(width), side(height))
    else:
        target = tuple(size)
        scale = max(target[0] / width, target[1] / height)
        keep_w = max(1, min(width, round(target[0] / scale)))
        keep_h = max(1, min(height, round(target[1] / scale)))
        box = None
        if (keep_w, keep_h) != (width, height):
            left, top = (width - keep_w) // 2, (height - keep_h) // 2
            box = [left, top, left + keep_w, top + keep_h]
    w, h = source_size
    if box is None and target == (w, h):
        note = f"none: the source is {w}x{h} px, the model's size"
    elif box is None:
        note = f"resized from {w}x{h} to {target[0]}x{target[1]} px ({RESAMPLE})"
    else:
        note = (
            f"centre-cropped from {w}x{h} to {box[2] - box[0]}x{box[3] - box[1]} px at ({box[0]}, {box[1]}), "
            f"then resized to {target[0]}x{target[1]} px ({RESAMPLE})"
        )
    return target, box, note


def work_image(source: Image.Image, size: tuple[int, int], box) -> Image.Image:
    """The model's input: the source cropped to `box` (when given) and resized to `size`."""
    image = source.crop(tuple(box)) if box else source
    return image if image.size == tuple(size) else image.resize(tuple(size), Image.LANCZOS)


def _source_path(image) -> str | None:
    """Where the source lives on disk (a file path, or a saved or gallery Artwork's path), absolute."""
    path = getattr(image, "path", None) if isinstance(image, Artwork) else image
    if isinstance(path, (str, os.PathLike)):
        return str(Path(path).expanduser().resolve())
    return None


def _mode_note(image) -> str | None:
    """How a PIL image of another mode was read (a file's mode is not known after reading)."""
    image = image.image if isinstance(image, Artwork) else image
    if isinstance(image, Image.Image) and image.mode != "RGB":
        return f"converted from mode {image.mode} to 8-bit RGB by the kit's image reader (transparency on white)"
    return None


def _text(studio, prompt, style) -> dict:
    """The record's text fields for a prompt and a style (an id, a dict of fusion weights or None)."""
    subject = studio.check_prompt(prompt, allow_empty=True)
    if isinstance(style, dict):
        try:
            components = blend.check_weights(style)
        except KitError as err:
            raise KitError(f"style (fusion weights): {err}") from None
        subject = subject or DEFAULT_SUBJECT
        for c in components:
            studio.check_prompt(c.prompt(subject), f"style[{c.key!r}] prompt")
        return {
            "prompt": f"{blend.describe(style)}: {subject}",
            "subject": subject,
            "style": None,
            "fusion": {c.key: c.weight for c in components},
        }
    if style is not None and style != "":
        try:
            found = styles.get(style)
        except KitError as err:
            raise KitError(f"style: {err}") from None
        subject = subject or DEFAULT_SUBJECT
        text = studio.check_prompt(found.compose(subject), "style prompt")
        return {"prompt": text, "subject": subject, "style": found.id, "fusion": None}
    return {"prompt": subject, "subject": None, "style": None, "fusion": None}


# ---------------------------------------------------------------- restyling


def plan(
    studio,
    image,
    prompt=None,
    *,
    style=None,
    strength=DEFAULT_STRENGTH,
    seed=None,
    negative=None,
    steps=None,
    guidance=None,
    size=None,
    preview=False,
    person=None,
) -> tuple[Record, Image.Image]:
    """Check a restyle request: (record, RGB source), without touching a model.

    person: what the person did that the arguments cannot show, added to the record's authorship
    (a drawing widget: [{"action": "drew", "strokes": 12}]).
    """
    from ..core import latents

    added = check_person(person)
    chosen = seed_action(seed)
    strength = check_strength(strength)
    source = check_image(image)  # the one reader: files capped in bytes and pixels, anything not an image refused
    text = _text(studio, prompt, style)
    negative = studio.check_prompt(negative, "negative", allow_empty=True)
    seed = latents.random_seed() if seed is None else latents.check_seed(seed)
    steps = pick_steps(steps, strength, studio.preset)
    steps, guidance = studio.check_settings(steps, guidance)
    preview = checks.flag(preview, "preview")
    (width, height), box, note = fit(source.size, studio.preset, None if size is None else studio.check_size(size))
    decoder = "taesd" if preview and studio.has("preview") else "vae"
    record = studio.record(
        **text,
        negative=negative,
        seed=seed,
        steps=steps,
        guidance=guidance,
        width=width,
        height=height,
        decoder=decoder,
    )
    record.kind = "restyle"
    record.restyle = {
        "source_sha256": pixel_hash(source),
        "source_size": list(source.size),
        "strength": strength,
        "crop": box,
        "resize": note,
    }
    mode = _mode_note(image)
    if mode:
        record.restyle["mode"] = mode
    path = _source_path(image)
    if path:  # a file or a saved Artwork: a replay can find the source again
        record.restyle["source_path"] = path
    typed = isinstance(prompt, str) and prompt.strip()
    person = [
        {"action": "gave the source image", "sha256": record.restyle["source_sha256"]},
        *([{"action": "typed the prompt", "prompt": text["subject"] or text["prompt"]}] if typed else []),
        *([{"action": "chose the style", "style": text["style"]}] if text["style"] else []),
        *([{"action": "set the fusion weights", "weights": text["fusion"]}] if text["fusion"] else []),
        *([{"action": "typed the negative prompt"}] if negative else []),
        {"action": "set the strength", "strength": strength},
        *chosen,
        *added,
    ]
    credit(record, person)
    record.authorship["model"].update(strength=strength, steps_run=int(steps * strength))  # img2img runs these
    return record, source


def restyle(
    studio,
    image,
    prompt=None,
    *,
    style=None,
    strength=DEFAULT_STRENGTH,
    seed=None,
    negative=None,
    steps=None,
    guidance=None,
    size=None,
    preview=False,
    person=None,
    on_step=None,
    on_preview=None,
    run=None,
    save=True,
) -> Artwork:
    """Re-render `image` (a path, PIL image, array or Artwork) with `prompt` and/or `style`.

    strength: how far from the source, above 0 and at most 1 (default 0.6). style: a catalogue
    id or fusion weights such as {"ukiyo-e": 0.6, "madhubani": 0.4}. size: the output's
    (width, height) (the source is scaled to cover it and centre-cropped); by default the
    preset's native size on the longer side, aspect kept. preview=True decodes with TAESD;
    `on_preview(images)` gets the TAESD picture before the full decode. A stopped `run`
    raises `kit.Stopped`; `save=False` keeps the result out of the studio's gallery.
    person: actions the arguments cannot show, for the record's authorship (see `plan`).
    The same source, settings and seed give the same pixels.
    """
    record, source = plan(
        studio,
        image,
        prompt,
        style=style,
        strength=strength,
        seed=seed,
        negative=negative,
        steps=steps,
        guidance=guidance,
        size=size,
        preview=preview,
        person=person,
    )
    checks.callback(on_preview, "on_preview", "the preview images")
    with studio.running(run, on_step) as run:
        return _paint(studio, record, source, run, on_preview=on_preview, save=save)


def find_source(studio, record: Record) -> Image.Image:
    """The source image a "restyle" record names: the file at its path, else the image with its hash in
    the studio's gallery; KitError saying which source is missing and how to give it."""
    info = record.restyle or {}
    wanted = info["source_sha256"]
    tried = []
    path = info.get("source_path")
    if path:
        if is_file(path):
            try:
                source = check_image(path, "record.restyle.source_path")
            except KitError as err:
                tried.append(f"the file {path!r} cannot be read ({err})")
            else:
                if pixel_hash(source) == wanted:
                    return source
                tried.append(f"the file {path!r} has other pixels now")
        else:
            tried.append(f"the file {path!r} is gone")
    if studio.gallery is not None:
        try:
            found = studio.gallery.lineage(wanted).artworks
        except KitError:
            found = []
        for art in found:
            source = check_image(art, "the gallery's copy of the source")
            if pixel_hash(source) == wanted:
                return source
        tried.append(f"the gallery {str(studio.gallery.folder)!r} does not have it")
    else:
        tried.append("the studio has no gallery to look in")
    raise KitError(
        f"the source image of this restyle (sha256 {wanted[:12]}...) is not available: "
        f"{'; '.join(tried)}. Give it: kit.restyle.render(studio, record, image=source)"
    )


def render(studio, record: Record, run=None, image=None) -> Artwork:
    """Redo the restyle a record describes (what a replay of a "restyle" record runs).

    `image` is the source; by default it is found by `find_source`. Its pixels must match the
    recorded hash.
    """
    info = record.restyle or {}
    if record.kind != "restyle" or "source_sha256" not in info:
        raise KitError(f"not a restyle record (kind {record.kind!r})")
    if image is None:
        source = find_source(studio, record)
    else:
        source = check_image(image)
        if pixel_hash(source) != info["source_sha256"]:
            raise KitError("image is not the source this restyle was made from (its pixel hash differs)")
    again = Record.from_dict(record.to_dict())
    with studio.running(run) as run:
        return _paint(studio, again, source, run)


def pipeline(studio):
    """The image-to-image pipeline of the studio's preset, sharing the loaded text-to-image components."""
    from diffusers import AutoPipelineForImage2Image

    pipe = studio.load("pipeline")
    held, lock = studio.held("restyle.pipeline", lambda: ({}, threading.Lock()))  # no weights of its own
    with lock:
        if held.get("from") is pipe:
            return held["made"]
        try:
            made = AutoPipelineForImage2Image.from_pipe(pipe)
        except ValueError as err:
            raise KitError(
                f"preset {studio.preset.name!r} has no image-to-image pipeline ({type(pipe).__name__}): {err}"
            ) from None
        made.set_progress_bar_config(disable=True)
        _quiet_vacuous_cast_warning()
        held.update({"from": pipe, "made": made})
        return made


def _quiet_vacuous_cast_warning() -> None:
    """diffusers' SDXL image-to-image casts a force_upcast VAE to float32 to encode and back, and each cast
    warns that modules "should be kept in float32: []": with the list empty nothing is affected, so
    that one warning is dropped (any with modules named still shows)."""
    import logging

    logger = logging.getLogger("diffusers.models.modeling_utils")
    if not any(isinstance(f, _VacuousCast) for f in logger.filters):
        logger.addFilter(_VacuousCast())


class _VacuousCast:
    def filter(self, record) -> bool:
        return "should be kept in float32: []" not in record.getMessage()


def conditioning(studio, record: Record) -> dict:
    """The record's conditioning: fusion weights blended as `studio.fuse` does, else its prompt encoded,
    both the way the record's `encoding` says (long prompts in chunks, web-UI emphasis)."""
    if record.fusion:
        return blend.conditioning(
            studio, record.fusion, record.subject, record.negative, record.guidance, record.encoding
        )
    return studio.encode([record.prompt], record.negative, record.guidance, encoding=record.encoding)


def _paint(studio, record: Record, source: Image.Image, run, on_preview=None, save=True) -> Artwork:
    """Run the image-to-image pipeline on the source fitted to the record's size, and decode."""
    import torch

    info = record.restyle
    pipe = pipeline(studio)
    work = work_image(source, (record.width, record.height), info.get("crop"))
    cond = conditioning(studio, record)
    run.expect(int(record.steps * info["strength"]))
    try:
        latents = studio.denoise(
            pipe,
            run,
            **cond,
            image=work,
            strength=info["strength"],
            num_inference_steps=record.steps,
            guidance_scale=record.guidance,
            generator=torch.Generator("cpu").manual_seed(record.seed),
            output_type="latent",
        )
        if on_preview is not None and record.decoder == "vae" and studio.has("preview"):
            try:
                on_preview(studio.decode(latents, preview=True))
            except KitError:  # no preview decoder here: the full image comes as always
                pass
        (image,) = studio.decode(latents, preview=record.decoder == "taesd")
    except Stopped:
        raise Stopped("the restyle", [], 1) from None
    return studio.finish(Artwork(image, record), save=save)


def check_record(studio, record) -> None:
    """A "restyle" record's own fields, checked with the request's limits before any model work."""
    info = record.restyle
    if not isinstance(info, dict) or not isinstance(info.get("source_sha256"), str) or len(info["source_sha256"]) != 64:
        raise KitError("record.restyle must be an object naming the source image by its sha256 (source_sha256)")
    strength = check_strength(info.get("strength"), "record.restyle.strength")
    pick_steps(record.steps, strength, studio.preset, "record.steps")
    try:
        studio.check_size((record.width, record.height))
    except KitError as err:
        raise KitError(f"record: {err}") from None
    size = info.get("source_size")
    if not (
        isinstance(size, list)
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 2**16 for v in size)
    ):
        raise KitError(f"record.restyle.source_size must be [width, height] in pixels, got {size!r}")
    box = info.get("crop")
    if box is not None:
        ok = (
            isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in box)
        )
        if not ok or not (0 <= box[0] < box[2] <= size[0] and 0 <= box[1] < box[3] <= size[1]):
            raise KitError(
                f"record.restyle.crop must be [left, top, right, bottom] inside the source's "
                f"{size[0]}x{size[1]} px, got {box!r}"
            )
    if info.get("source_path") is not None:
        check_path(info["source_path"], "record.restyle.source_path")
    if record.fusion:
        subject = studio.check_prompt(record.subject, "record.subject")
        for c in blend.check_weights(record.fusion):
            studio.check_prompt(c.prompt(subject), f"record.fusion[{c.key!r}] prompt")


def _model_did(record) -> str:
    strength = (record.restyle or {}).get("strength")
    if not isinstance(strength, (int, float)):
        return "re-rendered the source image with the prompt"
    return f"re-rendered the source image with the prompt, {strength:g} of the way from the source towards fresh noise"


register(Kind("restyle", did=_model_did, field="restyle", renderer=render, check=check_record, edit="a restyled image"))
