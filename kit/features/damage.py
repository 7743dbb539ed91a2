"""Simulated damage, and how close a restoration comes to the original: the restoration lesson's bench.

`damage` makes scratches, holes (losses) or stains in a picture and returns the mask of exactly the pixels
it damaged, so a restoration (`kit.restore`) can be checked against the original it never saw; `compare`
measures the result inside and outside the mask (PSNR, SSIM), against any baseline.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from PIL import Image, ImageDraw

from ..errors import KitError
from ..files import check_image
from .restore import check_mask

DAMAGE_KINDS = ("scratches", "holes", "stains")
MAX_DAMAGE = 0.5  # damage() covers at most half the image
WINDOW_RADIUS = 5  # SSIM's Gaussian window: 11 taps


# ---------------------------------------------------------------- practice damage


def damage(image, kind: str = "scratches", seed: int = 0, amount: float = 0.05) -> tuple[Image.Image, Image.Image]:
    """Simulate damage on a copy of `image`: (damaged image, mask), the mask exactly the damaged pixels.

    kind: "scratches" (thin light lines), "holes" (losses showing the bare ground) or "stains"
    (brown blots over the paint). amount: the fraction of the image to damage, up to 0.5
    (the result covers at least that much). The same seed gives the same damage.
    """
    from ..core.latents import check_seed

    source = check_image(image)
    if kind not in DAMAGE_KINDS:
        raise KitError(f"kind must be one of {', '.join(DAMAGE_KINDS)}, got {kind!r}")
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or not 0 < amount <= MAX_DAMAGE:
        raise KitError(f"amount must be a fraction above 0 and at most {MAX_DAMAGE}, got {amount!r}")
    rng = np.random.default_rng(check_seed(seed))
    width, height = source.size
    mask = Image.new("L", source.size, 0)
    draw = ImageDraw.Draw(mask)
    wanted = amount * width * height
    side = min(width, height)
    for _ in range(10_000):
        if np.count_nonzero(np.asarray(mask)) >= wanted:
            break
        if kind == "scratches":
            _scratch(draw, rng, width, height)
        else:
            _blot(draw, rng, width, height, side * (0.04 if kind == "holes" else 0.08))

    region = np.asarray(mask) == 255
    pixels = np.asarray(source).copy()
    if kind == "scratches":
        pixels[region] = (238, 232, 218)  # the light paper showing through
    elif kind == "holes":
        pixels[region] = (214, 200, 172)  # the bare ground of a loss
    else:
        brown = np.asarray((112, 78, 38), dtype=np.float64)
        pixels[region] = np.rint(0.4 * pixels[region] + 0.6 * brown).astype(np.uint8)
    # a damaged pixel that happens to keep its colour is nudged, so the mask is exactly what changed
    same = region & (pixels == np.asarray(source)).all(axis=2)
    pixels[same, 0] ^= 1
    return Image.fromarray(pixels, mode="RGB"), mask


def _scratch(draw, rng, width, height):
    """A long thin line that wanders a little."""
    x, y = rng.uniform(0, width), rng.uniform(0, height)
    angle = rng.uniform(0, math.pi)
    length = rng.uniform(0.3, 0.9) * max(width, height)
    points = [(x, y)]
    for _ in range(4):
        angle += rng.normal(0, 0.15)
        x += math.cos(angle) * length / 4
        y += math.sin(angle) * length / 4
        points.append((x, y))
    draw.line(points, fill=255, width=int(rng.integers(1, max(2, min(width, height) // 96) + 1)))


def _blot(draw, rng, width, height, radius):
    """An irregular round shape around a random centre."""
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    size = radius * rng.uniform(0.6, 1.6)
    angles = np.linspace(0, 2 * math.pi, 14, endpoint=False)
    radii = size * rng.uniform(0.6, 1.3, len(angles))
    draw.polygon([(cx + r * math.cos(a), cy + r * math.sin(a)) for a, r in zip(angles, radii)], fill=255)


# ---------------------------------------------------------------- measuring


def compare(original, restored, mask) -> dict:
    """How close `restored` is to `original`, inside and outside the mask.

    PSNR (dB, over the RGB channels; inf where the pixels are identical) over the masked pixels
    ("inside") and the rest ("outside"). SSIM (greyscale, 11-tap Gaussian window, sigma 1.5;
    1.0 = identical) averaged over the masked pixels, and outside over the pixels whose window
    does not reach the mask (NaN when there are none), so a window that straddles the edge
    does not blur the two apart.
    """
    a = check_image(original, "original")
    b = check_image(restored, "restored")
    if a.size != b.size:
        raise KitError(f"original is {a.width}x{a.height} px but restored is {b.width}x{b.height}: they must match")
    region = check_mask(mask, a.size)
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    error = ((x - y) ** 2).mean(axis=2)
    ssim_map = ssim(a, b, full=True)
    near = _grow(region, WINDOW_RADIUS)  # pixels whose SSIM window reaches the mask
    return {
        "psnr_inside": _psnr(error[region].mean()),
        "psnr_outside": _psnr(error[~region].mean()),
        "ssim_inside": float(ssim_map[region].mean()),
        "ssim_outside": float(ssim_map[~near].mean()) if (~near).any() else math.nan,
        "mask_area": float(region.mean()),
    }


def _psnr(mse: float) -> float:
    return math.inf if mse == 0 else float(10 * math.log10(255.0**2 / mse))


def ssim(a, b, full: bool = False):
    """Structural similarity of two images' greyscale (Wang et al. 2004, Gaussian window).

    Returns the mean SSIM, or the per-pixel map with `full=True`.
    """
    x = np.asarray(check_image(a, "a").convert("L"), dtype=np.float64)
    y = np.asarray(check_image(b, "b").convert("L"), dtype=np.float64)
    if x.shape != y.shape:
        raise KitError(f"images must be the same size, got {x.shape[::-1]} and {y.shape[::-1]}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _blur(x), _blur(y)
    vx = _blur(x * x) - mx * mx
    vy = _blur(y * y) - my * my
    cov = _blur(x * y) - mx * my
    value = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return value if full else float(value.mean())


def _grow(region: np.ndarray, radius: int) -> np.ndarray:
    """The mask grown by `radius` pixels in every direction (a square neighbourhood)."""
    for axis in (0, 1):
        size = region.shape[axis]
        pad = [(radius, radius) if a == axis else (0, 0) for a in (0, 1)]
        padded = np.pad(region, pad, constant_values=False)
        region = np.logical_or.reduce([np.take(padded, range(i, i + size), axis=axis) for i in range(2 * radius + 1)])
    return region


def _blur(x: np.ndarray, sigma: float = 1.5, radius: int = WINDOW_RADIUS) -> np.ndarray:
    """Separable Gaussian filter with mirrored edges."""
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    height, width = x.shape
    padded = np.pad(x, radius, mode="reflect")
    rows = sum(w * padded[i : i + height, :] for i, w in enumerate(taps))
    return sum(w * rows[:, i : i + width] for i, w in enumerate(taps))
