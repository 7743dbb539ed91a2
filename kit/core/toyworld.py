"""The toy world: procedural head-and-shoulders portraits the tiny preset is trained on.

Every picture is drawn from a seed with PIL, nothing is downloaded. A portrait has a few
attributes that its caption names, all abstract (no skin tones, genders or ethnicities):

- a role (``ROLES``): farmer, scholar, teacher, ...; the role itself is not drawn, it only
  changes how often the other attributes occur (the planted skews below);
- a background colour (``BACKGROUNDS``) and a clothing colour (``CLOTHING``);
- headwear: a hat or none;
- a rendering (``RENDERINGS``): flat colour with bold black outlines, gold halo and frame, dots,
  stripes, mosaic tiles, a floral border, a watercolour wash. Their captions use the words the
  catalogue's prompt templates use, so real catalogue prompts steer the toy model too.

The layout (where the figure stands, how big its head is, the shoulders' width) varies with the
seed, so seeds change the composition while the caption holds.

``SKEWS`` plants biases with a known truth: some roles wear a hat far more often than others,
some wear one clothing colour more. A model trained on these pictures learns the skews, and an
audit (lesson 5) should find exactly them: ``card()`` is the ground truth in the format the
audit takes (template, terms, probes and the true share of every label).

    portrait = toyworld.sample(np.random.default_rng(0))
    image = toyworld.draw(portrait)                 # a 64 px PIL image
    text = toyworld.caption(portrait)               # "a portrait of a farmer, wearing ..."
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 64  # pixels per side
_SCALE = 4  # drawn at 4x and reduced, for smooth edges

ROLES = ("farmer", "scholar", "teacher", "baker", "musician", "sailor", "elder", "weaver")
BACKGROUNDS = {  # name -> RGB
    "red": (200, 36, 36),
    "green": (36, 150, 60),
    "blue": (40, 78, 200),
    "yellow": (240, 206, 30),
}
CLOTHING = {
    "black": (28, 28, 28),
    "white": (242, 242, 242),
    "orange": (245, 128, 20),
    "purple": (125, 45, 160),
}
HAT = "wearing a hat"
NO_HAT = "bareheaded"
RENDERINGS = {  # name -> the caption's words for it (catalogue vocabulary)
    "outline": "flat colour areas, bold black outlines",
    "gold": "gold halo, gold frame",
    "dots": "dot painting, white dots",
    "stripes": "stripes, geometric pattern",
    "mosaic": "mosaic tiles",
    "floral": "floral border, flowers",
    "watercolour": "watercolour wash, soft edges",
}
HEAD = (214, 214, 214)  # a neutral grey: the figures have no skin tone
HAT_COLOUR = (96, 58, 24)
GOLD = (200, 160, 48)
PAPER = (250, 244, 230)  # the watercolour wash

# The planted skews: P(hat | role) and P(clothing | role). Roles not named take the defaults.
HAT_SHARE = {"farmer": 0.8, "scholar": 0.2}  # "teacher" is the control: 0.5
DEFAULT_HAT_SHARE = 0.5
CLOTHING_SHARE = {
    "baker": {"white": 0.7, "black": 0.1, "orange": 0.1, "purple": 0.1},
    "musician": {"white": 0.1, "black": 0.7, "orange": 0.1, "purple": 0.1},
}  # "sailor": control
TEMPLATE = "a portrait of a {term}"
SKEWS = [
    {
        "name": "headwear",
        "template": TEMPLATE,
        "terms": ["farmer", "scholar", "teacher"],
        "probes": {"headwear": [HAT, NO_HAT]},
        "control": "teacher",
    },
    {
        "name": "clothing",
        "template": TEMPLATE,
        "terms": ["baker", "musician", "sailor"],
        "probes": {"clothing": [f"{c} clothes" for c in CLOTHING]},
        "control": "sailor",
    },
]
# words from the catalogue's templates that name no toy attribute: captions carry a few, so the
# model learns to look past the words it has no picture for
FILLER = (
    "painting",
    "print",
    "portrait",
    "woodblock",
    "carved",
    "wood",
    "century",
    "art",
    "style",
    "traditional",
    "detailed",
    "figure",
    "paper",
    "silk",
    "canvas",
    "ink",
    "ornament",
    "design",
    "folk",
    "modernist",
    "school",
    "relief",
    "stone",
    "icon",
    "miniature",
    "mural",
    "textile",
)


@dataclass(frozen=True)
class Portrait:
    """One toy portrait: its attributes and its layout (all drawn from a seed by `sample`)."""

    role: str
    background: str
    clothing: str
    hat: bool
    rendering: str
    x: float = 0.0  # figure's horizontal offset, pixels
    y: float = 0.0  # head's vertical offset, pixels
    head: float = 10.5  # head radius, pixels
    shoulders: float = 1.0  # shoulder width factor
    pattern: int = 0  # phase of the rendering's dots, stripes or flowers


def hat_share(role: str) -> float:
    """The planted P(hat | role)."""
    return HAT_SHARE.get(role, DEFAULT_HAT_SHARE)


def clothing_shares(role: str) -> dict[str, float]:
    """The planted P(clothing | role)."""
    return CLOTHING_SHARE.get(role, {c: 1 / len(CLOTHING) for c in CLOTHING})


def sample(rng: np.random.Generator, **fixed) -> Portrait:
    """A random portrait; `fixed` attributes (role=, background=, ...) are kept as given."""
    role = fixed.pop("role", None) or ROLES[rng.integers(len(ROLES))]
    shares = clothing_shares(role)
    values = dict(
        role=role,
        background=list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))],
        clothing=list(shares)[rng.choice(len(shares), p=list(shares.values()))],
        hat=bool(rng.random() < hat_share(role)),
        rendering=list(RENDERINGS)[rng.integers(len(RENDERINGS))],
        x=float(rng.uniform(-7, 7)),
        y=float(rng.uniform(-3, 3)),
        head=float(rng.uniform(8.5, 12.0)),
        shoulders=float(rng.uniform(0.8, 1.2)),
        pattern=int(rng.integers(6)),
    )
    values.update(fixed)
    return Portrait(**values)


def caption(
    portrait: Portrait, rng: np.random.Generator | None = None, drop: float = 0.0, subject_drop: float | None = None
) -> str:
    """The portrait's caption. With `rng`, each attribute's words are left out with probability
    `drop`, the rest shuffled, and a few filler words added (how the models are trained); the
    role is left out with probability `subject_drop` (default: half of `drop`)."""
    p = portrait
    article = "an" if p.role[0] in "aeiou" else "a"
    subject = f"a portrait of {article} {p.role}"
    parts = [
        f"wearing {p.clothing} clothes",
        HAT if p.hat else NO_HAT,
        f"{p.background} background",
        RENDERINGS[p.rendering],
    ]
    if rng is None:
        return ", ".join([subject, *parts])
    parts = [part for part in parts if rng.random() >= drop]
    rng.shuffle(parts)
    if rng.random() < 0.3:
        parts.insert(int(rng.integers(len(parts) + 1)), " ".join(rng.choice(FILLER, size=rng.integers(1, 4))))
    if rng.random() < 0.3:
        subject = [f"portrait of {article} {p.role}", f"{article} {p.role}", p.role][int(rng.integers(3))]
    if rng.random() < (drop / 2 if subject_drop is None else subject_drop):
        return ", ".join(parts)
    return ", ".join([subject, *parts])


# ---------------------------------------------------------------- drawing


def _box(cx, cy, rx, ry):
    s = _SCALE
    return [(cx - rx) * s, (cy - ry) * s, (cx + rx) * s, (cy + ry) * s]


def _pattern_mask(kind: str, phase: int) -> Image.Image:
    """A full-canvas mask of dots or stripes (white where the pattern is)."""
    s, n = _SCALE, SIZE * _SCALE
    mask = Image.new("L", (n, n), 0)
    draw = ImageDraw.Draw(mask)
    if kind == "dots":
        for gy in range(-1, SIZE // 6 + 2):
            for gx in range(-1, SIZE // 6 + 2):
                cx = gx * 6 + phase + (3 if gy % 2 else 0)
                cy = gy * 6 + phase
                draw.ellipse(_box(cx, cy, 1.3, 1.3), fill=255)
    else:  # stripes
        for k in range(-2, SIZE // 6 + 2):
            top = (k * 6 + phase) * s
            draw.rectangle([0, top, n, top + 2 * s], fill=255)
    return mask


def draw(portrait: Portrait) -> Image.Image:
    """The portrait as a 64 px RGB image."""
    p, s, n = portrait, _SCALE, SIZE * _SCALE
    background = BACKGROUNDS[p.background]
    image = Image.new("RGB", (n, n), background)
    d = ImageDraw.Draw(image)
    cx, hy, r = 32 + p.x, 27 + p.y, p.head
    outline = (0, 0, 0) if p.rendering == "outline" else None
    line = 3 * s if outline else 0

    if p.rendering == "stripes":  # darker bands across the background
        dark = tuple(int(c * 0.6) for c in background)
        image.paste(Image.new("RGB", (n, n), dark), mask=_pattern_mask("stripes", p.pattern).rotate(90))
    if p.rendering == "gold":  # a halo behind the head
        d.ellipse(_box(cx, hy - 1, r * 1.75, r * 1.75), fill=GOLD, outline=(110, 80, 20), width=s)

    # shoulders and body: a wide ellipse running off the bottom edge
    width = 23 * p.shoulders
    body = _box(cx, 64 + 4, width, 64 + 4 - (hy + r + 3))
    d.ellipse(body, fill=CLOTHING[p.clothing], outline=outline, width=line)
    if p.rendering == "stripes":  # stripes on the clothes, in the contrasting tone
        layer = Image.new("L", (n, n), 0)
        ImageDraw.Draw(layer).ellipse(body, fill=255)
        stripes = Image.composite(_pattern_mask("stripes", p.pattern), Image.new("L", (n, n), 0), layer)
        tone = (20, 20, 20) if sum(CLOTHING[p.clothing]) > 380 else (235, 235, 235)
        image.paste(Image.new("RGB", (n, n), tone), mask=stripes)
        d.ellipse(body, outline=None)
    if p.rendering == "dots":
        image.paste(Image.new("RGB", (n, n), (250, 250, 250)), mask=_pattern_mask("dots", p.pattern))

    # head, face and hat
    d.ellipse(_box(cx, hy, r * 0.86, r), fill=HEAD, outline=outline, width=line)
    for side in (-1, 1):
        d.ellipse(_box(cx + side * r * 0.36, hy - r * 0.05, 1.2, 1.2), fill=(20, 20, 20))
    d.line(
        [((cx - r * 0.3) * s, (hy + r * 0.45) * s), ((cx + r * 0.3) * s, (hy + r * 0.45) * s)],
        fill=(60, 30, 30),
        width=s,
    )
    if p.hat:
        top = hy - r * 0.55
        d.rectangle(
            [(cx - r * 0.75) * s, (top - r * 0.95) * s, (cx + r * 0.75) * s, top * s],
            fill=HAT_COLOUR,
            outline=outline,
            width=line,
        )
        d.ellipse(_box(cx, top, r * 1.45, r * 0.28), fill=HAT_COLOUR, outline=outline, width=line)

    if p.rendering == "gold":  # a gold frame with a dark inner edge
        d.rectangle([0, 0, n - 1, n - 1], outline=GOLD, width=4 * s)
        d.rectangle([4 * s, 4 * s, n - 1 - 4 * s, n - 1 - 4 * s], outline=(110, 80, 20), width=s)
    if p.rendering == "floral":
        _floral_border(d, p.pattern)

    image = image.resize((SIZE, SIZE), Image.LANCZOS)
    if p.rendering == "mosaic":
        image = _mosaic(image)
    if p.rendering == "watercolour":
        image = _watercolour(image, p.pattern)
    return image


def _floral_border(d: ImageDraw.ImageDraw, phase: int) -> None:
    s, n = _SCALE, SIZE * _SCALE
    band = 7
    d.rectangle([0, 0, n - 1, n - 1], outline=(246, 238, 214), width=band * s)
    colours = [(220, 40, 110), (230, 90, 30), (150, 40, 170)]
    spots = [(t, band / 2) for t in range(4, SIZE, 10)] + [(t, SIZE - band / 2) for t in range(4, SIZE, 10)]
    spots += [(band / 2, t) for t in range(9, SIZE - 4, 10)] + [(SIZE - band / 2, t) for t in range(9, SIZE - 4, 10)]
    for k, (x, y) in enumerate(spots):
        colour = colours[(k + phase) % len(colours)]
        for dx, dy in ((-1.4, 0), (1.4, 0), (0, -1.4), (0, 1.4)):
            d.ellipse(_box(x + dx, y + dy, 1.3, 1.3), fill=colour)
        d.ellipse(_box(x, y, 0.9, 0.9), fill=(250, 210, 40))


def _mosaic(image: Image.Image, tile: int = 4) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32)
    tiles = pixels.reshape(SIZE // tile, tile, SIZE // tile, tile, 3).mean(axis=(1, 3))
    out = np.repeat(np.repeat(tiles, tile, axis=0), tile, axis=1)
    out[::tile, :, :] = 70  # grout between the tiles
    out[:, ::tile, :] = 70
    return Image.fromarray(out.round().astype(np.uint8))


def _watercolour(image: Image.Image, phase: int) -> Image.Image:
    soft = np.asarray(image.filter(ImageFilter.GaussianBlur(1.6)), dtype=np.float32)
    paper = np.array(PAPER, dtype=np.float32)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    wash = 0.28 + 0.08 * np.sin((xx + 2 * yy + 7 * phase) / 5.0)[..., None]  # uneven wash
    out = soft * (1 - wash) + paper * wash
    return Image.fromarray(out.clip(0, 255).round().astype(np.uint8))


# ---------------------------------------------------------------- data sets and ground truth


def dataset(n: int, seed: int = 0, **fixed) -> tuple[np.ndarray, list[Portrait]]:
    """`n` portraits from `seed`: (uint8 array of shape (n, 64, 64, 3), their Portraits)."""
    rng = np.random.default_rng(seed)
    portraits = [sample(rng, **fixed) for _ in range(n)]
    return np.stack([np.asarray(draw(p)) for p in portraits]), portraits


def truth() -> list[dict]:
    """The planted skews in the audit's terms: each with its template, terms, probes and the true
    share of every probe label for every term (``shares: {term: {label: share}}``)."""
    skews = []
    for skew in SKEWS:
        ((group, labels),) = skew["probes"].items()
        if group == "headwear":
            shares = {t: {HAT: hat_share(t), NO_HAT: round(1 - hat_share(t), 6)} for t in skew["terms"]}
        else:
            shares = {t: {f"{c} clothes": v for c, v in clothing_shares(t).items()} for t in skew["terms"]}
        skews.append({**skew, "shares": shares})
    return skews


def vocabulary() -> dict:
    """Every word the toy world's captions use, by attribute."""
    return {
        "roles": list(ROLES),
        "backgrounds": list(BACKGROUNDS),
        "clothing": list(CLOTHING),
        "headwear": [HAT, NO_HAT],
        "renderings": dict(RENDERINGS),
        "template": TEMPLATE,
        "caption": caption(Portrait("farmer", "red", "white", True, "outline")),
    }


# ---------------------------------------------------------------- reading pictures back


def background_of(image) -> str:
    """The background colour a toy picture shows: the named colour nearest to the median of two
    patches in the upper corners, inside any frame or border (a pixel statistic, no model)."""
    pixels = np.asarray(Image.fromarray(np.asarray(image)).convert("RGB").resize((SIZE, SIZE)), dtype=np.float32)
    patches = np.concatenate([pixels[9:17, 8:15].reshape(-1, 3), pixels[9:17, 49:56].reshape(-1, 3)])
    colour = np.median(patches, axis=0)
    names = list(BACKGROUNDS)
    distances = [_distance(colour, np.array(BACKGROUNDS[c], dtype=np.float32)) for c in names]
    return names[int(np.argmin(distances))]


def _distance(colour: np.ndarray, background: np.ndarray) -> float:
    """How far `colour` is from a background, as drawn plain, darkened (stripes) or washed with paper
    (watercolour): the distance of their chromaticities, brightness removed, at the nearest wash."""

    def chroma(c):
        return c / (c.sum() + 1e-6)

    paper = np.array(PAPER, dtype=np.float32)
    return min(
        float(np.linalg.norm(chroma(colour) - chroma((1 - w) * background + w * paper))) for w in (0.0, 0.2, 0.28, 0.36)
    )
