"""Style fusion: one image of a subject in a weighted blend of several styles.

A text encoder turns a prompt into a *prompt embedding*: one vector per token
(77 x 1024 numbers for sd-turbo), plus a pooled vector for SDXL. The UNet reads
only these numbers, so a point between the embeddings of two prompts is a
prompt "between" them. Fusion encodes each component on its own and blends:

    embedding = sum_i  w_i / (sum_j w_j) * embedding_i

Components are the keys of a `weights` dict:

- a catalogue style id ("ukiyo-e"): the prompt is `style.compose(subject)`;
- any other text ("watercolour", "stained glass"): the prompt is
  f"{subject}, in the style of {text}". Text that looks like a style id
  (lowercase words joined by hyphens, no spaces) must be one: a typo such as
  "ukiyo-ee" is an error with a suggestion, not a silent free prompt.

The weight rule, and why:

- Weights are divided by their sum, so they add up to 1 ({A: 1, B: 1} is the
  same image as {A: .5, B: .5}). Weights that add up to 1 make an *affine*
  blend: what every component shares (the subject's tokens, the start token,
  the negative prompt) comes out exactly as it was, whatever the weights;
  only what differs between the styles is mixed.
- A negative weight pushes away from that component: {A: 1, B: -0.5} becomes
  {A: 2, B: -1}, i.e. A + (A - B): start at A and go further along the line
  from B to A. To keep that an extrapolation and not a jump into nowhere, at
  least one weight must be positive and the negative weights may add up to
  at most half of the positive ones (so every normalised weight lies in
  [-1, 2]); in particular all-zero weights and zero sums are refused.
- A component with weight 0 is not encoded at all, and a single component
  with weight 1 passes its tensors through unchanged: {X: 1} gives exactly
  the pixels of `studio.generate(subject, style=X, seed=s)`.
- Components are summed in a fixed order (sorted by key), so the order of the
  dict's keys never changes a pixel.
"""

from __future__ import annotations

import math
import numbers
import re
import threading
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass, replace

import torch

from . import styles as style_catalogue
from .errors import KitError
from .latents import random_seed
from .prompts import WEBUI
from .record import Drawn, credit, seed_action
from .sheet import contact_sheet
from .studio import CHECKS, INPUTS

MAX_STYLES = 5  # components in one blend (and styles in the mixer)
MAX_WEIGHT = 100.0  # |weight| as given, before normalising
MAX_CANCEL = 0.5  # negative weights may add up to at most this share of the positive ones
MAX_GRID_STEPS = 11  # points along each edge of a fusion grid
LOOKS_LIKE_ID = re.compile(r"[a-z0-9]+(-[a-z0-9]+)+")
EXAMPLE = "{'ukiyo-e': 0.6, 'art-deco': 0.4}"


# ---------------------------------------------------------------------------------------------
# Checking weights


@dataclass(frozen=True)
class Component:
    """One term of a blend: a catalogue style or a free prompt, with its weight as given."""

    key: str  # the style id, or the free prompt text
    weight: float
    style: style_catalogue.Style | None  # None for a free prompt

    def prompt(self, subject: str) -> str:
        """The text this component sends to the encoder."""
        if self.style is not None:
            return self.style.compose(subject)
        return f"{subject}, in the style of {self.key}"


def _component_key(key) -> tuple[str, style_catalogue.Style | None]:
    """(canonical key, style or None) for a key of a weights dict."""
    if isinstance(key, style_catalogue.Style):
        return key.id, key
    if not isinstance(key, str):
        raise KitError(f"weights: keys must be style ids or text, got {key!r} ({type(key).__name__})")
    text = " ".join(key.split())
    if not text:
        raise KitError(f"weights: a key is empty; use a style id or a few words, e.g. {EXAMPLE}")
    try:
        style = style_catalogue.get(text)
    except KitError as err:
        if LOOKS_LIKE_ID.fullmatch(text.lower()):
            raise KitError(f"weights: {err}") from None
        return text, None
    return style.id, style


def check_weights(weights) -> list[Component]:
    """The components of a weights dict, in the order given; KitError naming the problem."""
    if not isinstance(weights, dict):
        raise KitError(
            f"weights must be a dict of style ids (or prompts) to numbers, e.g. {EXAMPLE}; got {type(weights).__name__}"
        )
    if not weights:
        raise KitError(f"weights is empty: give 1 to {MAX_STYLES} styles with their weights, e.g. {EXAMPLE}")
    if len(weights) > MAX_STYLES:
        raise KitError(f"weights has {len(weights)} entries; a blend takes 1 to {MAX_STYLES} styles or prompts")
    components, seen = [], set()
    for key, weight in weights.items():
        name, style = _component_key(key)
        if name in seen:
            raise KitError(f"weights names {name!r} twice; give each style once")
        seen.add(name)
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            raise KitError(f"weights[{name!r}] must be a number, got {weight!r} ({type(weight).__name__})")
        weight = float(weight)
        if not math.isfinite(weight) or abs(weight) > MAX_WEIGHT:
            raise KitError(
                f"weights[{name!r}] must be a finite number from {-MAX_WEIGHT:g} to {MAX_WEIGHT:g}, got {weight}"
            )
        components.append(Component(name, weight, style))
    positive = sum(c.weight for c in components if c.weight > 0)
    negative = -sum(c.weight for c in components if c.weight < 0)
    if positive == 0:
        raise KitError(
            f"weights need at least one positive weight (they are divided by their sum), got {_plain(weights)}"
        )
    if negative > MAX_CANCEL * positive:
        raise KitError(
            f"weights: the negative weights add up to {negative:g}, more than half of the positive "
            f"ones ({positive:g}); a negative weight pushes away from a style, but may cancel at most "
            f"half of the blend"
        )
    return components


def _plain(weights) -> dict:
    return {str(getattr(k, "id", k)): v for k, v in weights.items()}


def normalise(weights) -> dict[str, float]:
    """The weights divided by their sum (they add up to 1), keyed by canonical key, in the order given."""
    components = check_weights(weights)
    total = sum(c.weight for c in components)
    return {c.key: c.weight / total for c in components}


def describe(weights) -> str:
    """A readable mix of normalised weights, zero weights left out: '0.6 ukiyo-e + 0.4 "watercolour"'."""
    components = [c for c in check_weights(weights) if c.weight != 0]
    total = sum(c.weight for c in components)
    text = ""
    for c in components:
        weight = c.weight / total
        sign = ("-" if weight < 0 else "") if not text else (" - " if weight < 0 else " + ")
        name = c.key if c.style is not None else f'"{c.key}"'
        text += f"{sign}{abs(weight):.3g} {name}"
    return text


# ---------------------------------------------------------------------------------------------
# Blending


def blend(conditionings: list[dict], weights: list[float]) -> dict:
    """The weighted sum of conditioning dicts, tensor by tensor (weights must add up to 1).

    Summed in float64 on the CPU and cast back, so the result is the same on every
    device. A tensor equal in every component (the negative prompt's) is passed
    through unchanged, and so is a single component's.
    """
    if len(conditionings) != len(weights) or not conditionings:
        raise KitError(f"blend needs one weight per conditioning, got {len(weights)} for {len(conditionings)}")
    if abs(sum(weights) - 1) > 1e-9:
        raise KitError(f"blend weights must add up to 1 (see kit.fusion.normalise), got {sum(weights)}")
    out = {}
    for name, first in conditionings[0].items():
        tensors = [c[name] for c in conditionings]
        if all(torch.equal(first, t) for t in tensors[1:]):
            out[name] = first
            continue
        total = torch.zeros(first.shape, dtype=torch.float64)
        for tensor, weight in zip(tensors, weights):
            total += weight * tensor.detach().to("cpu", torch.float64)
        out[name] = total.to(first.device, first.dtype)
    return out


# Component encodings of recent blends, per studio: a live preview re-blends the same
# prompts with new weights, and an encoding is deterministic, so it is reused.
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CACHE_SIZE = 64
_cache_lock = threading.Lock()


def encode_component(studio, prompt: str, negative: str, guidance: float, encoding: str, chunks: int) -> dict:
    """`studio.encode([prompt], negative, guidance, ...)`, one prompt per call, remembered."""
    key = (id(studio.pipe), prompt, negative, guidance > 1, encoding, chunks)
    with _cache_lock:
        cache = _CACHE.setdefault(studio, OrderedDict())
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    cond = studio.encode([prompt], negative, guidance, encoding=encoding, chunks=chunks)
    with _cache_lock:
        cache[key] = cond
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    return cond


def conditioning(
    studio, weights, subject: str, negative: str = "", guidance: float = 0.0, encoding: str = WEBUI
) -> dict:
    """The blended conditioning of one image: each non-zero component encoded on its own (as many
    chunks long as the longest), then blended."""
    components = sorted((c for c in check_weights(weights) if c.weight != 0), key=lambda c: c.key)
    total = sum(c.weight for c in components)
    texts = [c.prompt(subject) for c in components]
    chunks = studio.chunk_count(texts, encoding)
    conds = [encode_component(studio, text, negative, guidance, encoding, chunks) for text in texts]
    return blend(conds, [c.weight / total for c in components])


def inputs(studio, records) -> tuple[dict, torch.Tensor]:
    """(conditioning, initial latents) for a batch of "fuse" records: registered with the Studio below."""
    first = records[0]
    conds = []
    for record in records:
        subject = studio.check_prompt(record.subject, "subject")
        conds.append(conditioning(studio, record.fusion, subject, first.negative, first.guidance, first.encoding))
    cond = {name: torch.cat([c[name] for c in conds]) for name in conds[0]}
    return cond, studio.noise([r.seed for r in records], first.width, first.height)


# ---------------------------------------------------------------------------------------------
# Making images


def plan(studio, weights, subject, *, seed=None, negative=None, steps=None, guidance=None, size=None, preview=False):
    """Check a fusion request and return its Record, without touching a model."""
    components = check_weights(weights)
    subject = studio.check_prompt(subject, "subject")
    for c in components:
        studio.check_prompt(c.prompt(subject), f"weights[{c.key!r}] prompt")
    (record,) = studio.plan(
        subject, negative=negative, seed=seed, steps=steps, guidance=guidance, size=size, preview=preview
    )
    return _fused(record, weights, subject, seed_action(seed))


def _fused(record, weights, subject: str, seed_chosen: list[dict] | None = None):
    """A copy of `record` (its settings checked) for `subject` in a blend of `weights`; `seed_chosen`:
    the person's seed action (`seed_action`), none when the seed was left to chance."""
    components = check_weights(weights)
    fused = replace(
        record,
        kind="fuse",
        prompt=f"{describe(weights)}: {subject}",
        subject=subject,
        style=None,
        fusion={c.key: c.weight for c in components},
    )
    person = [
        {"action": "typed the prompt", "prompt": subject},
        {"action": "set the fusion weights", "weights": dict(fused.fusion)},
        *([{"action": "typed the negative prompt"}] if record.negative else []),
        *(seed_chosen or []),
    ]
    return credit(fused, person)


def fuse(
    studio,
    weights,
    subject,
    *,
    seed=None,
    negative=None,
    steps=None,
    guidance=None,
    size=None,
    preview=False,
    on_step=None,
    on_preview=None,
    run=None,
    save=True,
):
    """One image of `subject` in a weighted blend of styles or prompts (see the module notes).

    >>> art = studio.fuse({"ukiyo-e": 0.6, "art-deco": 0.4}, subject="portrait of an elder", seed=3)

    The record has kind "fuse", `fusion` = the weights as given (canonical keys),
    `prompt` = a readable mix such as "0.6 ukiyo-e + 0.4 art-deco: portrait of an elder"
    and `style` None. A stopped `run` raises `kit.Stopped`. `save=False` keeps a passing
    preview out of the studio's gallery. `on_preview(images)` gets the TAESD picture before the
    full decode, as in `Studio.generate`.
    """
    record = plan(
        studio,
        weights,
        subject,
        seed=seed,
        negative=negative,
        steps=steps,
        guidance=guidance,
        size=size,
        preview=preview,
    )
    return studio.render_many([record], on_step=on_step, on_preview=on_preview, run=run, save=save)[0]


def check_styles(keys, low: int = 2, high: int = MAX_STYLES, field: str = "styles") -> list[str]:
    """Canonical keys of `low` to `high` distinct styles (or prompts): for a grid or the mixer."""
    if isinstance(keys, (str, dict)) or not hasattr(keys, "__iter__"):
        raise KitError(f"{field} must be a list of style ids, e.g. ['ukiyo-e', 'art-deco'], got {keys!r}")
    keys = list(keys)
    if not low <= len(keys) <= high:
        allowed = f"{low} or {high}" if high == low + 1 else f"{low} to {high}"
        raise KitError(f"{field}: choose {allowed} styles, got {len(keys)}")
    names = [_component_key(k)[0] for k in keys]
    for name in names:
        if names.count(name) > 1:
            raise KitError(f"{field} names {name!r} twice; give each style once")
    return names


def grid_cells(keys: list[str], points: int) -> tuple[list[dict | None], int]:
    """The weights of every cell of a fusion grid (None: a blank cell) and its number of columns.

    Two styles: a row of `points` blends from all A to all B. Three styles: a
    triangle with A at the top, B bottom left, C bottom right; row r, column c
    (c <= r) has weights ((n - r)/n, (r - c)/n, c/n) with n = points - 1, so
    each edge is a two-style sweep and the inside mixes all three.
    """
    if isinstance(points, bool) or not isinstance(points, numbers.Integral) or not 2 <= points <= MAX_GRID_STEPS:
        raise KitError(
            f"points (grid points along each edge) must be a whole number from 2 to {MAX_GRID_STEPS}, got {points!r}"
        )
    n = int(points) - 1
    if len(keys) == 2:
        a, b = keys
        return [{a: (n - i) / n, b: i / n} for i in range(n + 1)], n + 1
    a, b, c = keys
    cells = []
    for row in range(n + 1):
        for col in range(n + 1):
            cells.append({a: (n - row) / n, b: (row - col) / n, c: col / n} if col <= row else None)
    return cells, n + 1


def label(weights: dict) -> str:
    """A grid cell's label: its weights in order, e.g. '0.75 : 0.25'."""
    return " : ".join(f"{w:.2g}" for w in weights.values())


def fusion_grid(
    studio,
    styles,
    subject,
    seed=None,
    points=None,
    *,
    steps=None,
    negative=None,
    guidance=None,
    size=None,
    preview=False,
    diffusion_steps=None,
    cell=160,
    on_step=None,
    run=None,
):
    """A contact sheet of blends: a sweep for 2 styles, a barycentric triangle for 3.

    `points` is the number of grid points along each edge (2 styles: `points`
    images; 3 styles: points * (points + 1) / 2 images; default 5); `steps` is the
    sampler's step count, as everywhere else. Every cell uses the same seed, so only
    the blend changes. Returns (sheet, artworks), the artworks in reading order.
    A stopped `run` raises `kit.Stopped` with the finished artworks.

    Old calls: `steps` without `points` still counts grid points, and `diffusion_steps`
    the sampler's steps, each with a FutureWarning (use `studio.fusion_grid(..., points=, steps=)`).
    """
    if points is None and steps is not None:
        warnings.warn(
            "fusion_grid(steps=N) counted grid points; use points=N (steps will mean diffusion steps, "
            "as everywhere else)",
            FutureWarning,
            stacklevel=2,
        )
        points, steps = steps, None
    if diffusion_steps is not None:
        warnings.warn(
            "fusion_grid(diffusion_steps=N) is now steps=N (with points= for the grid)", FutureWarning, stacklevel=2
        )
        steps = diffusion_steps
    points = 5 if points is None else points
    keys = check_styles(styles, 2, 3)
    cells, columns = grid_cells(keys, points)
    chosen = seed_action(seed)
    seed = Drawn(random_seed()) if seed is None else seed
    blends = [weights for weights in cells if weights is not None]
    first = plan(
        studio,
        blends[0],
        subject,
        seed=seed,
        negative=negative,
        steps=steps,
        guidance=guidance,
        size=size,
        preview=preview,
    )  # checks every key and the settings once
    records = [first] + [_fused(first, weights, first.subject) for weights in blends[1:]]
    person = [
        {"action": "typed the prompt", "prompt": first.subject},
        {"action": "chose the styles of a grid", "styles": keys, "points": points},  # the grid sets each weight
        *([{"action": "typed the negative prompt"}] if first.negative else []),
        *chosen,
    ]
    records = [credit(record, person) for record in records]
    arts = studio.render_many(records, on_step=on_step, run=run)
    finished = iter(arts)
    images = [next(finished) if weights is not None else None for weights in cells]
    labels = [label(weights) if weights is not None else "" for weights in cells]
    title = f"{' : '.join(keys)} | {records[0].subject} | seed {records[0].seed}"
    return contact_sheet(images, labels, columns=columns, cell=cell, title=title), arts


def weights_table(artworks):
    """The blend of each fused artwork as a table: image (numbered from 1), one column per
    component with its normalised weight in percent (rounded to 0.1), and the seed.

    Components appear in the order first met, so a fusion grid's sweep reads left to right.
    A pandas DataFrame indexed by image when pandas is installed, else a list of dicts.
    """
    arts = list(artworks) if isinstance(artworks, (list, tuple)) else [artworks]
    keys: dict[str, None] = {}
    for i, art in enumerate(arts):
        record = getattr(art, "record", None)
        if not getattr(record, "fusion", None):
            raise KitError(f"artworks[{i}] is not a fused image (its record has no fusion weights)")
        keys.update(dict.fromkeys(record.fusion))
    columns = ["image", *(f"{key} (%)" for key in keys), "seed"]
    rows = []
    for i, art in enumerate(arts):
        weights = art.record.fusion
        total = sum(weights.values())
        row = {"image": i + 1}
        row.update({f"{key} (%)": round(100 * weights.get(key, 0) / total, 1) + 0.0 for key in keys})
        row["seed"] = art.record.seed
        rows.append(row)
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows, columns=columns).set_index("image")


def check_record(studio, record) -> None:
    """A "fuse" record's own fields, checked before any model work."""
    subject = studio.check_prompt(record.subject, "record.subject")
    for c in check_weights(record.fusion):
        studio.check_prompt(c.prompt(subject), f"record.fusion[{c.key!r}] prompt")


INPUTS["fuse"] = inputs  # the Studio renders and replays "fuse" records with these inputs
CHECKS["fuse"] = check_record
