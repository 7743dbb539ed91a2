"""Latent walks: glide from keyframe to keyframe by blending seed noise and prompt embeddings together.

    frames = studio.walk([("portrait of an elder", 1), ("portrait of an elder", 2, "ukiyo-e")], frames=12)
    frames[5].image                    # a Walk is a list of Artworks
    frames.save_gif("elder.gif")       # plus elder.gif.json with every frame's record

A keyframe is a prompt, a seed and optionally a catalogue style. A frame lies t of the way
from one keyframe to the next: its initial noise is the slerp (or lerp) of the two seeds'
noise and its conditioning the same blend of the two prompts' embeddings (every tensor the
pipeline takes, SDXL's pooled ones too). A frame that sits on a keyframe is, pixel for pixel,
what ``studio.generate(prompt, style=style, seed=seed)`` makes:

- each keyframe prompt is encoded on its own, as generate does, and the blend at t = 0 or
  t = 1 returns that encoding bit for bit (``latents.slerp`` pins the ends);
- frames on keyframes are rendered in batches of one; the others go in batches, whose
  records name their batch-mates so ``studio.render(record)`` can replay them exactly;
- any randomness of the scheduler is drawn from the seed of the keyframe a segment starts
  from, or at t = 1 from the keyframe it ends on.

``even=True`` re-times a walk so that successive frames are equally far apart, measured
with the preset's CLIP image embedding (or pixel distance where CLIP is unavailable); the
arithmetic of planning and re-timing a walk is ``kit.core.pacing``'s.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .. import checks, styles
from ..core import latents, pacing
from ..errors import KitError
from ..kinds import Kind, register
from ..limits import MAX_BATCH, MAX_PROMPT_CHARS
from ..provenance.artwork import Artwork
from ..provenance.record import Record, credit
from ..runs import Stopped
from . import animation

METHODS = ("slerp", "lerp")
SPACES = ("auto", "clip", "pixels")
PIXEL_SIDE = 128  # pixel distances are measured on frames shrunk to at most this size


class Keyframe(NamedTuple):
    """A point of a walk: a prompt (before any style template), a seed and an optional style id."""

    prompt: str
    seed: int
    style: str | None = None


# ---------------------------------------------------------------------------------------------
# Checking a request (before any model work)


def check_keyframes(studio, keyframes) -> list[Keyframe]:
    """Keyframes as a list of Keyframe, or KitError naming the first bad one.

    Each keyframe is ``(prompt, seed)``, ``(prompt, seed, style)`` or a dict with the keys
    ``prompt``, ``seed`` and optionally ``style``.
    """
    if isinstance(keyframes, (str, bytes, dict)) or not hasattr(keyframes, "__iter__"):
        raise KitError(f"keyframes must be a list of (prompt, seed) pairs, got {type(keyframes).__name__}")
    keyframes = list(keyframes)
    if len(keyframes) < 2:
        raise KitError(f"keyframes: a walk needs at least 2 keyframes, got {len(keyframes)}")
    checked = []
    for i, item in enumerate(keyframes):
        field = f"keyframe {i + 1} (keyframes[{i}])"  # numbered from 1, as the WalkExplorer shows them
        if isinstance(item, dict):
            unknown = set(item) - {"prompt", "seed", "style"}
            if unknown or "prompt" not in item or "seed" not in item:
                raise KitError(
                    f"{field} must have the keys 'prompt', 'seed' and optionally 'style', got {sorted(item)}"
                )
            prompt, seed, style = item["prompt"], item["seed"], item.get("style")
        elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
            prompt, seed, style = (*item, None)[:3]
        else:
            raise KitError(f"{field} must be a (prompt, seed) or (prompt, seed, style) tuple, got {item!r}")
        prompt = studio.check_prompt(prompt, f"{field} prompt")
        try:
            seed = latents.check_seed(seed)
        except KitError as err:
            raise KitError(f"{field}: {err}") from None
        if style is not None:
            if not isinstance(style, str) or not style.strip():
                raise KitError(f"{field} style must be a style id such as 'ukiyo-e' or None, got {style!r}")
            try:
                style = styles.get(style).id
            except KitError as err:
                raise KitError(f"{field}: {err}") from None
        checked.append(Keyframe(prompt, seed, style))
    return checked


def check_frames(frames) -> int:
    return checks.whole(frames, "frames", 2, pacing.MAX_FRAMES)


def check_method(method) -> str:
    if method not in METHODS:
        raise KitError(f"method must be 'slerp' or 'lerp', got {method!r}")
    return method


def _check_batch_size(batch_size, default) -> int:
    return default if batch_size is None else checks.whole(batch_size, "batch_size", 1, MAX_BATCH)


# ---------------------------------------------------------------------------------------------
# The walk


def walk(
    studio,
    keyframes,
    frames: int = 24,
    method: str = "slerp",
    loop: bool = False,
    *,
    even: bool = False,
    space: str = "auto",
    refine: int = 1,
    batch_size: int | None = None,
    reuse: Walk | None = None,
    on_step=None,
    negative=None,
    steps=None,
    guidance=None,
    size=None,
    preview: bool = False,
    on_preview=None,
    run=None,
) -> Walk:
    """Render a walk through ``keyframes`` and return it as a ``Walk`` (a list of Artworks).

    frames: how many frames (2 to pacing.MAX_FRAMES); loop: walk back to the first keyframe.
    method: "slerp" (keeps the noise's length, the usual choice) or "lerp".
    even: re-time the walk so that successive frames are equally far apart, measured in
    ``space`` ("clip", "pixels" or "auto": CLIP where it loads, else pixels), with
    ``refine`` rounds of extra frames where the first pass jumps.
    batch_size: frames per batch (default ``studio.batch_size``); frames on keyframes always
    go alone. reuse: an earlier Walk over the same keyframes and settings whose frames
    are taken instead of rendered again. on_step(done, total): progress.
    negative, steps, guidance, size, preview, on_preview: as for ``studio.generate`` (on_preview gets
    each batch's TAESD frames as soon as their latents exist, before the full VAE decode).
    run: a `kit.Run` that can stop the walk; a stopped walk raises `kit.Stopped` whose `done`
    is the Walk of the frames finished (``complete`` False), which `reuse` can continue.
    """
    frames = check_frames(frames)
    refine = checks.whole(refine, "refine", 0, 4)
    checks.callback(on_preview, "on_preview", "the preview images")
    if space not in SPACES:
        raise KitError(f"space must be one of {', '.join(map(repr, SPACES))}, got {space!r}")
    even = checks.flag(even, "even")
    result = Walk(
        studio,
        keyframes,
        method=method,
        loop=loop,
        negative=negative,
        steps=steps,
        guidance=guidance,
        size=size,
        preview=preview,
        batch_size=batch_size,
        reuse=reuse,
    )
    result.space = space
    plan = pacing.plan_walk(len(result.keyframes), frames, loop=result.loop)
    keys = [(segment, t) for segment, _end, t in plan]
    positions = pacing.walk_positions(plan)
    with studio.running(run, on_step) as run:
        try:
            arts = result._render(keys, run, on_preview)
            if even:
                keys, positions, arts = result._even_pacing(keys, positions, arts, frames, refine, run)
                result.even = True
        except Stopped:
            result.complete = False
            result._show(keys, positions, [result._cache.get(key) for key in keys])
            raise Stopped("the walk", result, len(keys)) from None
    result._show(keys, positions, arts)
    return result


class Walk(list):
    """The frames of a latent walk (Artworks, in order) and the cache they come from.

    Attributes: keyframes, method, loop, even, complete (False when stopped early),
    keys ((segment, t) of each frame), positions (keyframe time: segment + t),
    step_sizes / pacing_space (measured on first use: the distance between successive
    frames, an angle in radians in CLIP space or the RMS pixel change in 0..1) and
    first_pass ((positions, step sizes) before an even re-timing).
    """

    def __init__(
        self,
        studio,
        keyframes,
        *,
        method="slerp",
        loop=False,
        negative=None,
        steps=None,
        guidance=None,
        size=None,
        preview=False,
        batch_size=None,
        reuse=None,
    ):
        super().__init__()
        self.studio = studio
        self.keyframes = check_keyframes(studio, keyframes)
        self.method = check_method(method)
        self.loop = checks.flag(loop, "loop")
        self.batch_size = _check_batch_size(batch_size, studio.batch_size)
        if reuse is not None and not isinstance(reuse, Walk):
            raise KitError(f"reuse must be an earlier Walk or None, got {type(reuse).__name__}")
        # One generate record per keyframe: the same checks and fields as studio.generate.
        first = self.keyframes[0]
        base = studio.plan(
            first.prompt,
            style=first.style,
            seed=first.seed,
            negative=negative,
            steps=steps,
            guidance=guidance,
            size=size,
            preview=preview,
        )[0]
        self._base = [
            dataclasses.replace(
                base,
                prompt=styles.get(k.style).compose(k.prompt) if k.style else k.prompt,
                subject=k.prompt if k.style else None,
                style=k.style,
                seed=k.seed,
            )
            for k in self.keyframes
        ]
        self.signature = (
            tuple(self.keyframes),
            tuple(r.prompt for r in self._base),
            self.method,
            self.loop,
            *(
                getattr(base, name)
                for name in (
                    "negative",
                    "steps",
                    "guidance",
                    "width",
                    "height",
                    "decoder",
                    "preset",
                    "model",
                    "device",
                    "dtype",
                )
            ),
        )
        same = reuse is not None and reuse.signature == self.signature and reuse.studio is studio
        # (segment, t) -> Artwork: every frame rendered for these keyframes and settings
        self._cache: dict[tuple[int, float], Artwork] = reuse._cache if same else {}
        self._vectors: dict[tuple[str, int, float], np.ndarray] = reuse._vectors if same else {}
        self.space = "auto"
        self.even = False
        self.complete = True
        self.keys: list[tuple[int, float]] = []
        self.positions = np.zeros(0)
        self.first_pass: tuple[np.ndarray, np.ndarray] | None = None
        self._steps: np.ndarray | None = None
        self._space_used: str | None = None

    def __repr__(self):
        path = " -> ".join(f"{k.prompt!r}/{k.seed}" + (f"/{k.style}" if k.style else "") for k in self.keyframes)
        flags = "".join(
            name
            for name, on in ((", loop", self.loop), (", even", self.even), (", stopped early", not self.complete))
            if on
        )
        return f"Walk({len(self)} frames, {self.method}{flags}: {path})"

    # ------------------------------------------------------------ showing

    def table(self, steps: bool = False):
        """One row per frame, rounded: frame, from keyframe, to keyframe, t and, once measured
        (or with ``steps=True``, which measures), the step to the next frame. Frames and
        keyframes are numbered from 1, as in the WalkExplorer: frame 1 is ``walk[0]``.

        A pandas DataFrame indexed by frame when pandas is installed, else a list of dicts.
        """
        rows, columns = self._rows(steps)
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows, columns=columns).set_index("frame")

    def _rows(self, steps: bool = False) -> tuple[list[dict], list[str]]:
        measured = bool(steps) or self._steps is not None
        sizes = self.step_sizes if measured else np.zeros(0)
        columns = ["frame", "from keyframe", "to keyframe", "t"]
        if measured:
            columns.append(
                "step to next (CLIP angle, radians)"
                if self.pacing_space == "clip"
                else "step to next (RMS pixel change, 0 to 1)"
            )
        n = len(self.keyframes)
        rows = []
        for i, (segment, t) in enumerate(self.keys[: len(self)]):
            row = {
                "frame": i + 1,
                "from keyframe": segment + 1,
                "to keyframe": (segment + 1) % n + 1,
                "t": round(float(t), 3),
            }
            if measured:
                row[columns[-1]] = round(float(sizes[i]), 4) if i < len(sizes) else float("nan")
            rows.append(row)
        return rows, columns

    def _repr_html_(self) -> str:
        """The walk's keyframes and its frames as a small table (the images: a contact sheet)."""
        return animation.html(self)

    # ------------------------------------------------------------ records

    def frame_record(self, segment: int, t: float, frame: int, frames: int) -> Record:
        """The record of the frame t of the way along ``segment``."""
        end = (segment + 1) % len(self.keyframes)
        base = self._base[end if t == 1 else segment]
        record = dataclasses.replace(
            base,
            kind="walk",
            extra={},
            walk={
                "keyframes": [list(k) for k in self.keyframes],
                "prompts": [r.prompt for r in self._base],
                "method": self.method,
                "loop": self.loop,
                "segment": segment,
                "t": float(t),
                "frame": frame,
                "frames": frames,
            },
        )
        # keyframes are (prompt, seed) pairs a person gives: no image is their source, so a frame names no parents
        chosen = [k.style for k in self.keyframes if k.style]
        person = [
            {"action": "typed the keyframes' prompts", "prompts": [k.prompt for k in self.keyframes]},
            {"action": "chose the keyframes' seeds", "seeds": [k.seed for k in self.keyframes]},
            *([{"action": "chose the keyframes' styles", "styles": chosen}] if chosen else []),
            *([{"action": "typed the negative prompt"}] if base.negative else []),
            {"action": "set the walk", "method": self.method, "loop": self.loop},
        ]
        return credit(record, person)

    @property
    def records(self) -> list[Record]:
        return [art.record for art in self]

    @property
    def images(self) -> list:
        return [art.image for art in self]

    # ------------------------------------------------------------ rendering

    def _render(self, keys, run, on_preview=None) -> list[Artwork]:
        """Artworks for (segment, t) keys, from the cache or rendered (raises kit.Stopped, keeping what was made)."""
        missing = [key for key in dict.fromkeys(keys) if key not in self._cache]
        records = [self.frame_record(segment, t, i, len(keys)) for i, (segment, t) in enumerate(missing)]
        alone = [r for r in records if r.walk["t"] in (0.0, 1.0)]
        batched = [r for r in records if r.walk["t"] not in (0.0, 1.0)]
        if records:
            run.expect(len(alone) * records[0].steps + math.ceil(len(batched) / self.batch_size) * records[0].steps)
        for group, size in ((alone, 1), (batched, self.batch_size)):
            if not group:
                continue
            try:
                self._keep(self.studio.render_many(group, batch_size=size, run=run, on_preview=on_preview))
            except Stopped as stopped:
                self._keep(stopped.done)
                raise
        return [self._cache[key] for key in keys]

    def _keep(self, arts):
        for art in arts:
            self._cache[(art.record.walk["segment"], art.record.walk["t"])] = art

    def _show(self, keys, positions, arts):
        """Make the list hold the rendered frames, each record numbered within this walk."""
        kept = [(key, p, art) for key, p, art in zip(keys, positions, arts) if art is not None]
        self.clear()
        for i, (_key, _p, art) in enumerate(kept):
            record = dataclasses.replace(art.record, walk={**art.record.walk, "frame": i, "frames": len(kept)})
            self.append(Artwork(art.image, record, path=art.path))
        self.keys = [key for key, _p, _a in kept]
        self.positions = np.array([p for _k, p, _a in kept], dtype=np.float64)
        self._steps = None

    def _even_pacing(self, keys, positions, arts, frames, refine, run):
        """Measure the rendered walk, add frames where it jumps, and re-time it to equal steps."""
        steps = self._measure(arts)
        self.first_pass = (positions.copy(), steps)
        known = dict(zip(positions.tolist(), keys))
        for _ in range(refine):
            more = pacing.insert_points(positions, steps)
            if len(more) == len(positions):
                break
            keys = [known.get(p) or self._key_at(p) for p in more.tolist()]
            arts = self._render(keys, run)
            positions = more
            known.update(zip(positions.tolist(), keys))
            steps = self._measure(arts)
        timed = pacing.even_pacing(positions, steps, frames=frames)
        keys = [known.get(p) or self._key_at(p) for p in timed.tolist()]
        return keys, timed, self._render(keys, run)

    def _key_at(self, position: float) -> tuple[int, float]:
        ((segment, _end, t),) = pacing.plan_at([position], len(self.keyframes), loop=self.loop)
        return segment, t

    # ------------------------------------------------------------ measuring

    @property
    def step_sizes(self) -> np.ndarray:
        """Distance from each frame to the next (len(walk) - 1 values), measured on first use."""
        if self._steps is None:
            self._steps = self._measure(list(self)) if len(self) > 1 else np.zeros(0)
        return self._steps

    @property
    def pacing_space(self) -> str:
        """Where step sizes are measured: "clip" (angle, radians) or "pixels" (RMS change, 0..1)."""
        if self._space_used is None:
            self.step_sizes  # noqa: B018  (measuring decides the space)
        return self._space_used or ("pixels" if self.space == "pixels" else "clip")

    def _measure(self, arts) -> np.ndarray:
        vectors = self._frame_vectors(arts)
        if self._space_used == "clip":
            return pacing.step_sizes(vectors, "angle")
        return pacing.step_sizes(vectors, "euclidean") / math.sqrt(vectors.shape[1])

    def _frame_vectors(self, arts) -> np.ndarray:
        """One vector per frame in the walk's space (chosen on first use, then kept), cached by (segment, t)."""
        if self._space_used is None:
            self._space_used = "pixels" if self.space == "pixels" else "clip"
        keys = [(art.record.walk["segment"], art.record.walk["t"]) for art in arts]
        todo = [(key, art) for key, art in zip(keys, arts) if (self._space_used, *key) not in self._vectors]
        if todo and self._space_used == "clip":
            try:
                vectors = _embedder(self.studio).images([art.image for _key, art in todo], errors="raise")
            except Exception as err:  # no CLIP for this preset here: measure pixels, and say so
                if self.space == "clip":
                    raise KitError(f"cannot measure the walk in CLIP space: {err}") from err
                warnings.warn(f"CLIP embedding unavailable ({err}); pacing by pixel distance instead", stacklevel=4)
                self._space_used = "pixels"
                return self._frame_vectors(arts)
            for (key, _art), vector in zip(todo, vectors):
                self._vectors[("clip", *key)] = np.asarray(vector, dtype=np.float64)
        elif todo:
            for key, art in todo:
                self._vectors[("pixels", *key)] = _pixel_vector(art.image)
        return np.stack([self._vectors[(self._space_used, *key)] for key in keys])

    # ------------------------------------------------------------ export

    def save_gif(self, path, fps: float = 12, loop: bool = True, *, exist: str = "error") -> Path:
        """Write the frames as an animated GIF (``loop``: repeat forever) and ``<path>.json`` with every record:
        see `kit.features.animation.save_gif`."""
        return animation.save_gif(self, path, fps, loop, exist=exist)

    def save_mp4(self, path, fps: float = 24, *, exist: str = "error") -> Path:
        """Write the frames as an H.264 MP4 and ``<path>.json`` with every record: see
        `kit.features.animation.save_mp4`."""
        return animation.save_mp4(self, path, fps, exist=exist)


def _pixel_vector(image) -> np.ndarray:
    small = image.convert("RGB")
    small.thumbnail((PIXEL_SIDE, PIXEL_SIDE))
    return np.asarray(small, dtype=np.float64).reshape(-1) / 255


def _embedder(studio):
    """The preset's CLIP image embedder, made once and held by the studio."""

    def make():
        from ..maps.embed import Embedder

        return Embedder(preset=studio.preset, device=studio.device, cache=False)

    return studio.held("walks.embedder", make)


# ---------------------------------------------------------------------------------------------
# What the Studio calls to render (and replay) walk records


def inputs(studio, records: list[Record]) -> tuple[dict, torch.Tensor]:
    """(conditioning, initial latents) for a batch of walk frames: the blends their records describe."""
    encoded: dict[str, dict] = {}
    noises: dict[int, torch.Tensor] = {}
    first = records[0]

    def encoding(prompt, everyone):
        if prompt not in encoded:  # one encode call per keyframe prompt, as long as the walk's longest
            chunks = studio.chunk_count(everyone, first.encoding)
            encoded[prompt] = studio.encode(
                [prompt], first.negative, first.guidance, encoding=first.encoding, chunks=chunks
            )
        return encoded[prompt]

    def noise(seed):
        if seed not in noises:
            noises[seed] = studio.noise([seed], first.width, first.height)[0]
        return noises[seed]

    conds, starts = [], []
    for record in records:
        w = _walk_fields(record)
        seeds, prompts = [k[1] for k in w["keyframes"]], w["prompts"]
        start, end, t = w["segment"], (w["segment"] + 1) % len(seeds), w["t"]
        blend = latents.slerp if w["method"] == "slerp" else latents.lerp
        starts.append(blend(noise(seeds[start]), noise(seeds[end]), t))
        a, b = encoding(prompts[start], prompts), encoding(prompts[end], prompts)
        conds.append({name: blend(a[name], b[name], t) for name in a})
    cond = {name: torch.cat([c[name] for c in conds]) for name in conds[0]}
    return cond, torch.stack(starts)


def _walk_fields(record: Record) -> dict:
    """The walk dict of a record, checked: a hand-edited or truncated record fails clearly."""
    w = record.walk
    try:
        keyframes, prompts = w["keyframes"], w["prompts"]
        ok = (
            2 <= len(keyframes) <= pacing.MAX_FRAMES
            and len(prompts) == len(keyframes)
            and all(isinstance(p, str) and 0 < len(p) <= MAX_PROMPT_CHARS for p in prompts)
            and w["method"] in METHODS
            and 0 <= w["segment"] < len(keyframes)
            and 0 <= w["t"] <= 1
        )
        for k in keyframes:
            latents.check_seed(k[1])
    except (KeyError, TypeError, IndexError, KitError):
        ok = False
    if not ok:
        shown = repr(w) if len(repr(w)) <= 300 else repr(w)[:300] + "..."
        raise KitError(
            "this walk record is incomplete or damaged: record.walk needs keyframes, prompts, "
            f"method ('slerp' or 'lerp'), segment and t in [0, 1]; got {shown}"
        )
    return w


register(
    Kind(
        "walk",
        did="generated this frame from noise and prompt embeddings blended between the keyframes",
        field="walk",
        inputs=inputs,
        check=lambda studio, record: _walk_fields(record),
    )
)
