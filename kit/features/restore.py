"""Disclosed restoration: inpaint the damaged part of an artwork and show which pixels a model made.

    damaged, mask = damage(photo, kind="scratches", seed=1)     # practice on known damage
    art = studio.restore(damaged, mask, seed=0)                  # -> Restoration (an Artwork)
    art.overlay                                                  # AI-made pixels tinted and outlined
    compare(photo, art, mask)                                    # PSNR / SSIM inside vs outside the mask

The mask is white (255) where the image is damaged and the model may paint, black (0)
elsewhere. Only masked pixels change: the original pixels are composited back after decoding,
so everything outside the mask is the source, bit for bit. The record (kind "restore") keeps
the mask itself (a 1-bit PNG), its hash and area and the source image's hash, so any saved
restoration can show its overlay again (`disclose(art)`) and be replayed from its source.

Light at import: torch and diffusers are loaded only when a restoration runs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import checks
from ..errors import KitError
from ..files import check_image, check_path, is_file, read_image
from ..kinds import Kind, register
from ..limits import MAX_RECORD_SIDE
from ..provenance.artwork import Artwork, pixel_hash
from ..provenance.record import Record, check_person, credit, seed_action
from ..runs import Stopped

TINT = (255, 0, 255)  # magenta: rare in paintings and photographs, easy to see
TINT_ALPHA = 0.35
# The Hub inpainting models are not distilled like sd-turbo: they need more steps and guidance.
HUB_STEPS = 25
HUB_GUIDANCE = 7.5


@dataclass(eq=False, repr=False)
class Restoration(Artwork):
    """An Artwork partly painted by a model.

    ``overlay`` is the restored image with the AI-made pixels tinted magenta and outlined;
    ``mask`` (mode L, 255 = painted by the model) and ``source`` (the damaged input) come with it.
    """

    overlay: Image.Image | None = None
    mask: Image.Image | None = None
    source: Image.Image | None = None

    def _repr_html_(self) -> str:
        cells = []
        for image, caption in ((self.image, "restored"), (self.overlay, "AI-made pixels in magenta")):
            if image is None:
                continue
            small = image.copy()
            small.thumbnail((256, 256))
            buffer = io.BytesIO()
            small.save(buffer, format="PNG")
            data = base64.b64encode(buffer.getvalue()).decode("ascii")
            cells.append(
                f'<figure style="display:inline-block;margin:4px"><img src="data:image/png;base64,{data}">'
                f'<figcaption style="font-size:small">{caption}</figcaption></figure>'
            )
        area = (self.record.restore or {}).get("mask_area", 0.0)
        return (
            "".join(cells) + f"<div style='font-size:small'>{area:.1%} of the pixels were made by the model "
            f"(seed {self.record.seed})</div>"
        )


# ---------------------------------------------------------------- checking inputs


def check_mask(mask, size: tuple[int, int], field: str = "mask") -> np.ndarray:
    """The mask as a bool (height, width) array: True where the model may paint.

    Accepts a PIL image (mode "1", or any mode whose greyscale is only 0 and 255), a file path,
    or an array of bools, of 0/1 or of 0/255. Refuses masks of another size, empty or full masks
    and masks with grey values.
    """
    if isinstance(mask, (str, os.PathLike)):
        mask = read_image(mask, field=field)  # the one reader: regular files only, capped
    if isinstance(mask, Image.Image):
        if mask.mode == "1":
            values = np.asarray(mask, dtype=bool)
        else:
            try:
                values = np.asarray(mask.convert("L"))
            except (ValueError, OSError) as err:
                raise KitError(f"{field}: colour mode {mask.mode} cannot be read as black and white") from err
    else:
        try:
            values = np.asarray(mask)
        except Exception as err:  # ragged lists and other things numpy cannot hold
            raise KitError(f"{field} must be an image or an array, got {type(mask).__name__}") from err
        if values.ndim == 3 and values.shape[2] == 1:
            values = values[:, :, 0]
    if values.ndim != 2:
        raise KitError(f"{field} must be one channel (height x width), got an array of shape {values.shape}")
    height, width = values.shape
    if (width, height) != tuple(size):
        raise KitError(f"{field} is {width}x{height} px but the image is {size[0]}x{size[1]}: they must match")
    if values.dtype != bool:
        if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
            raise KitError(f"{field} must hold numbers or bools, got {values.dtype}")
        found = np.unique(values)
        if set(found.tolist()) <= {0, 1}:
            values = values == 1
        elif set(found.tolist()) <= {0, 255}:
            values = values == 255
        else:
            odd = ", ".join(str(v) for v in found[(found != 0) & (found != 255)][:4].tolist())
            raise KitError(
                f"{field} must be binary: 0 (keep) and 255 (restore) only, found {odd}; threshold it "
                "first, e.g. mask.point(lambda v: 255 if v >= 128 else 0)"
            )
    if not values.any():
        raise KitError(f"{field} is empty: paint the damaged pixels white (255); nothing would be restored")
    if values.all():
        raise KitError(
            f"{field} covers the whole image: a restoration needs undamaged pixels to work from "
            "(to make a new image use studio.generate)"
        )
    return np.ascontiguousarray(values)


def mask_image(region: np.ndarray) -> Image.Image:
    """A bool mask as a mode-L image, 255 where True."""
    return Image.fromarray(np.where(region, 255, 0).astype(np.uint8), mode="L")


def mask_hash(region: np.ndarray) -> str:
    """sha256 over the mask's size and its packed bits (1 = restored), like `pixel_hash` for images."""
    height, width = region.shape
    digest = hashlib.sha256(f"{width}x{height}\n".encode())
    digest.update(np.packbits(region.astype(bool), axis=None).tobytes())
    return digest.hexdigest()


def _mask_png(region: np.ndarray) -> str:
    """The mask as a base64 1-bit PNG: small enough to live in the record."""
    buffer = io.BytesIO()
    mask_image(region).convert("1").save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def mask_of(record_or_artwork) -> Image.Image:
    """The mask stored in a restoration's record (mode L, 255 = painted by the model)."""
    record = getattr(record_or_artwork, "record", record_or_artwork)
    info = getattr(record, "restore", None) or {}
    if "mask_png" not in info:
        raise KitError("no restoration mask here: pass mask=, or a restored Artwork whose record holds one")
    try:
        with Image.open(io.BytesIO(base64.b64decode(info["mask_png"], validate=True))) as stored:
            if stored.size[0] * stored.size[1] > MAX_RECORD_SIDE**2:
                raise KitError("record.restore.mask_png is larger than any image the kit restores")
            mask = stored.convert("L")
    except KitError:
        raise
    except Exception:  # not base64, not a PNG, truncated: a forged or damaged record
        raise KitError("record.restore.mask_png is not a readable PNG: the record was altered or damaged") from None
    if "mask_sha256" in info and mask_hash(np.asarray(mask) == 255) != info["mask_sha256"]:
        raise KitError("the stored restoration mask does not match its hash: the record was altered")
    return mask


# ---------------------------------------------------------------- disclosure


def disclose(image, mask=None, color=TINT, alpha: float = TINT_ALPHA) -> Image.Image:
    """`image` with the masked pixels tinted (`alpha` of `color`) and their edge drawn in `color`.

    Only masked pixels change: the outline runs along the inside of the mask's edge.
    With an Artwork from `restore` (or loaded from disk), the mask can come from its record.
    """
    alpha = checks.number(alpha, "alpha", 0, 1)
    color = _check_color(color)
    rgb = check_image(image)
    region = check_mask(mask_of(image) if mask is None else mask, rgb.size)
    pixels = np.asarray(rgb, dtype=np.float64)
    tinted = pixels * (1 - alpha) + np.asarray(color, dtype=np.float64) * alpha
    out = np.where(region[:, :, None], tinted, pixels)
    out[_edge(region)] = color
    return Image.fromarray(np.rint(out).astype(np.uint8), mode="RGB")


def _check_color(color) -> tuple[int, int, int]:
    """An (r, g, b) colour of whole numbers 0..255, or a colour name or #hex that PIL knows."""
    if isinstance(color, str):
        from PIL import ImageColor

        try:
            return ImageColor.getrgb(color)[:3]
        except ValueError:
            raise KitError(
                f"color must be a colour such as 'magenta', '#ff00ff' or (255, 0, 255), got {color!r}"
            ) from None
    try:
        r, g, b = color
    except (TypeError, ValueError):
        raise KitError(f"color must be an (r, g, b) triple or a colour name, got {color!r}") from None
    return tuple(checks.whole(v, "color", 0, 255) for v in (r, g, b))


def _edge(region: np.ndarray) -> np.ndarray:
    """Masked pixels with a 4-neighbour outside the mask (the image border counts as outside)."""
    padded = np.pad(region, 1, constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return region & ~inner


# ---------------------------------------------------------------- restoring


def plan(
    studio,
    image,
    mask,
    prompt=None,
    seed=None,
    *,
    negative=None,
    steps=None,
    guidance=None,
    strength: float = 1.0,
    person=None,
) -> tuple[Record, Image.Image, np.ndarray]:
    """Check a restore request: (record, RGB source, bool mask), without touching a model.

    person: what the person did that the arguments cannot show, added to the record's authorship
    (a widget where the mask was painted by hand: [{"action": "painted the mask", "pixels": n}]).
    """
    from ..core import latents

    added = check_person(person)
    chosen = seed_action(seed)
    source = check_image(image)
    region = check_mask(mask, source.size)
    preset = studio.preset
    if not studio.has("inpaint"):
        raise KitError(
            f"preset {preset.name!r} has no inpainting model: restore with the sd-turbo, "
            "sdxl-turbo, tiny or tiny-sdxl preset"
        )
    text = studio.check_prompt(prompt, allow_empty=True)
    negative = studio.check_prompt(negative, "negative", allow_empty=True)
    seed = latents.random_seed() if seed is None else latents.check_seed(seed)
    if steps is None:
        steps = preset.steps if preset.offline else HUB_STEPS
    if guidance is None:
        guidance = preset.guidance if preset.offline else HUB_GUIDANCE
    steps, guidance = studio.check_settings(steps, guidance)
    strength = checks.number(strength, "strength", 0, 1, low_open=True)
    if int(steps * strength) < 1:
        raise KitError(
            f"steps x strength must be at least 1 (the model runs that many steps), got {steps} x {strength}"
        )
    width, height = work_size(source.size, preset)
    record = studio.record(
        prompt=text,
        negative=negative,
        seed=seed,
        steps=steps,
        guidance=guidance,
        width=source.width,
        height=source.height,
        decoder="vae",
    )
    record.kind = "restore"
    record.model = preset.inpaint or f"kit-{preset.name}-inpaint"
    record.restore = {
        "mask_sha256": mask_hash(region),
        "mask_area": float(region.mean()),
        "mask_png": _mask_png(region),
        "source_sha256": pixel_hash(source),
        "strength": float(strength),
        "work_size": [width, height],
        "overlay": {"color": "#{:02x}{:02x}{:02x}".format(*TINT), "alpha": TINT_ALPHA, "outline_px": 1},
    }
    path = getattr(image, "path", None) if isinstance(image, Artwork) else image
    if isinstance(path, (str, os.PathLike)):  # a file on disk: a replay can find the source again
        record.restore["source_path"] = str(Path(path).expanduser().resolve())
    painted = any(a["action"] == "painted the mask" for a in added)
    credit(
        record,
        [
            {"action": "gave the image to restore", "sha256": record.restore["source_sha256"]},
            *([] if painted else [{"action": "gave the mask", "pixels": int(region.sum())}]),
            *([{"action": "typed the prompt", "prompt": text}] if text else []),
            *([{"action": "typed the negative prompt"}] if negative else []),
            *chosen,
            *added,
        ],
    )
    return record, source, region


def work_size(size: tuple[int, int], preset) -> tuple[int, int]:
    """The size the model paints at: multiples of 8, within the preset's range, aspect kept."""
    width, height = size
    scale = min(1.0, preset.max_size / max(width, height))
    if min(width, height) * scale < preset.min_size:
        scale = min(preset.min_size / min(width, height), preset.max_size / max(width, height))

    def multiple_of_8(value):
        return max(8, int(round(value * scale / 8)) * 8)

    return multiple_of_8(width), multiple_of_8(height)


def restore(
    studio,
    image,
    mask,
    prompt=None,
    seed=None,
    *,
    negative=None,
    steps=None,
    guidance=None,
    strength: float = 1.0,
    person=None,
    on_step=None,
    run=None,
) -> Restoration:
    """Inpaint the masked region of a damaged image; returns a Restoration (an Artwork).

    mask: white (255) / True / 1 where the image is damaged. prompt: what belongs there (may be
    empty: the model then continues what surrounds the hole). strength: 1.0 paints the masked
    region from fresh noise; lower keeps more of what is there. steps and guidance default to
    the preset's for tiny, and to 25 steps at guidance 7.5 for the Hub inpainting models.
    The same seed gives the same pixels. The result's `overlay` shows which pixels the model made.
    person: actions the arguments cannot show, for the record's authorship (see `plan`).
    A stopped `run` raises `kit.Stopped`.
    """
    record, source, region = plan(
        studio,
        image,
        mask,
        prompt,
        seed,
        negative=negative,
        steps=steps,
        guidance=guidance,
        strength=strength,
        person=person,
    )
    with studio.running(run, on_step) as run:
        return _paint(studio, record, source, region, run)


def render(studio, record: Record, run=None, image=None, mask=None) -> Restoration:
    """Redo the restoration a record describes (what a replay of a "restore" record needs).

    `image` is the damaged source; by default the file at `record.restore["source_path"]`.
    Its pixels must match the recorded hash. The mask defaults to the one in the record.
    """
    info = record.restore or {}
    if record.kind != "restore" or "source_sha256" not in info:
        raise KitError(f"not a restoration record (kind {record.kind!r})")
    if image is None:
        if not is_file(info.get("source_path")):
            raise KitError("the source image of this restoration is not on disk: pass it as image=")
        image = info["source_path"]
    source = check_image(image)
    if pixel_hash(source) != info["source_sha256"]:
        raise KitError("image is not the source this restoration was made from (its pixel hash differs)")
    region = check_mask(mask_of(record) if mask is None else mask, source.size)
    if mask_hash(region) != info.get("mask_sha256"):
        raise KitError("mask is not the one this restoration used (its hash differs)")
    again = Record.from_dict(record.to_dict())
    with studio.running(run) as run:
        return _paint(studio, again, source, region, run)


def _paint(studio, record: Record, source: Image.Image, region: np.ndarray, run) -> Restoration:
    """Run the inpainting model at the work size and put the source back outside the mask."""
    import torch

    pipe = studio.load("inpaint")
    width, height = record.restore["work_size"]
    strength = record.restore["strength"]
    work_image, work_mask = source, mask_image(region)
    if (width, height) != source.size:
        work_image = source.resize((width, height), Image.LANCZOS)
        work_mask = work_mask.resize((width, height), Image.NEAREST)
    run.expect(int(record.steps * strength))
    cond = studio.encode([record.prompt], record.negative, record.guidance, encoding=record.encoding, pipe=pipe)
    try:
        (painted,) = studio.denoise(
            pipe,
            run,
            **cond,
            image=work_image,
            mask_image=work_mask,
            width=width,
            height=height,
            strength=strength,
            num_inference_steps=record.steps,
            guidance_scale=record.guidance,
            generator=torch.Generator("cpu").manual_seed(record.seed),
            output_type="pil",
        )
    except Stopped:
        raise Stopped("the restoration", [], 1) from None
    if painted.size != source.size:
        painted = painted.resize(source.size, Image.LANCZOS)
    pixels = np.where(region[:, :, None], np.asarray(painted.convert("RGB")), np.asarray(source))
    restored = Image.fromarray(pixels.astype(np.uint8), mode="RGB")

    art = Restoration(restored, record, overlay=disclose(restored, region), mask=mask_image(region), source=source)
    return studio.finish(art, "inpaint")


def check_record(studio, record) -> None:
    """A "restore" record's own fields, checked before any model work."""
    info = record.restore
    if not isinstance(info, dict) or not isinstance(info.get("source_sha256"), str):
        raise KitError("record.restore must be an object naming the source image (source_sha256)")
    if info.get("source_path") is not None:
        check_path(info["source_path"], "record.restore.source_path")
    size = info.get("work_size")

    def side(v):
        return isinstance(v, int) and not isinstance(v, bool) and 8 <= v <= studio.preset.max_size and v % 8 == 0

    if not (isinstance(size, list) and len(size) == 2 and all(side(v) for v in size)):
        raise KitError(
            f"record.restore.work_size must be [width, height], multiples of 8 up to "
            f"{studio.preset.max_size} px, got {size!r}"
        )
    strength = info.get("strength")
    strength = checks.number(strength, "record.restore.strength", 0, 1, low_open=True)  # the request's own check
    if int(record.steps * strength) < 1:
        raise KitError("record: steps x strength must be at least 1")
    mask_of(record)  # decodes and checks the stored mask


register(
    Kind(
        "restore",
        did="inpainted the masked pixels; every other pixel is the source's",
        field="restore",
        renderer=render,
        check=check_record,
        edit="a restoration",
    )
)
