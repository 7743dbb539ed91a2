"""Style fusion: one image of a subject in a weighted blend of several styles.

Each component (a catalogue style, or any text) is encoded on its own and the encodings are blended by
weight: the weight rule and the blend live in `kit.blend`, which this feature shares with image to image.
A fusion grid lays out the blends between two or three styles on one contact sheet.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import replace

import torch

from ..core.blend import MAX_STYLES, check_weights, component_key, conditioning, describe
from ..core.latents import random_seed
from ..errors import KitError
from ..kinds import Kind, register
from ..provenance.record import Drawn, credit, seed_action
from ..sheet import contact_sheet

MAX_GRID_STEPS = 11  # points along each edge of a fusion grid


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
    names = [component_key(k)[0] for k in keys]
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


register(
    Kind(
        "fuse",
        did="generated the image from a weighted blend of the styles' prompt embeddings",
        field="fusion",
        inputs=inputs,
        check=check_record,
    )
)
