"""Walk pacing: which frames a walk shows, and re-timing them so they look equally far apart.

No model and no torch here, only numpy. `kit.walks` uses these pieces:

- ``plan_walk`` says, for every frame of a walk, which two keyframes it lies between and where.
- ``walk_positions`` and ``plan_at`` convert between a plan and positions.
- ``step_sizes``, ``even_pacing`` and ``insert_points`` re-time a rendered walk so that
  successive frames look equally far apart, measured in an embedding space such as CLIP.

Positions along a walk are in "keyframe time": keyframe ``i`` sits at position ``i`` and a
frame at ``t`` of the way from keyframe ``i`` to the next sits at ``i + t``. What a frame
between two keyframes looks like (the blend of their noise and prompts) is `kit.latents`'s part.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..errors import KitError

MAX_FRAMES = 2000  # the longest walk plan_walk and even_pacing will plan


# ---------------------------------------------------------------------------------------------
# Walk planning


def plan_walk(n_keyframes: int, frames: int, loop: bool = False) -> list[tuple[int, int, float]]:
    """For each frame of a walk, ``(start keyframe, end keyframe, t)`` with t in [0, 1].

    The walk has ``segments = n_keyframes - 1`` (or ``n_keyframes`` with ``loop=True``, the
    last segment going back to keyframe 0). The first frame is keyframe 0 at t = 0. Without a
    loop the last frame is the last keyframe at t = 1; with a loop the walk would close on
    keyframe 0 at frame number ``frames``, so the last frame is the one just before it.

    Let ``steps = frames - 1`` (or ``frames`` with a loop). The rule:
    - If ``steps >= segments``, every keyframe lands exactly on a frame: keyframe j sits on
      frame ``round(j * steps / segments)`` (halves round up) and the frames between two
      keyframes are evenly spaced in t. When ``steps`` is a multiple of ``segments`` all
      segments get the same number of frames; otherwise they differ by one frame at most,
      and the longer segments are spread evenly along the walk.
    - If ``steps < segments`` there are too few frames to show every keyframe: frame k sits
      at keyframe time ``k * segments / steps``, evenly spaced, and some keyframes fall
      between frames.
    A frame on keyframe j (other than the last frame of an open walk) is ``(j, j + 1, 0.0)``.
    """
    n_keyframes = _check_count("n_keyframes", n_keyframes, 2, None)
    frames = _check_count("frames", frames, 2, MAX_FRAMES)
    segments = n_keyframes if loop else n_keyframes - 1
    steps = frames if loop else frames - 1

    plan = []
    if steps >= segments:
        anchors = [(2 * j * steps + segments) // (2 * segments) for j in range(segments + 1)]
        segment = 0
        for k in range(frames):
            while segment < segments - 1 and k >= anchors[segment + 1]:
                segment += 1
            t = (k - anchors[segment]) / (anchors[segment + 1] - anchors[segment])
            plan.append((segment, (segment + 1) % n_keyframes, t))
    else:
        for k in range(frames):
            segment = min(k * segments // steps, segments - 1)
            t = (k * segments - segment * steps) / steps
            plan.append((segment, (segment + 1) % n_keyframes, t))
    return plan


def walk_positions(plan) -> np.ndarray:
    """Keyframe-time positions ``start + t`` of a plan's frames, as a float64 array."""
    return np.array([start + t for start, _end, t in plan], dtype=np.float64)


def plan_at(positions, n_keyframes: int, loop: bool = False) -> list[tuple[int, int, float]]:
    """The inverse of walk_positions: ``(start, end, t)`` for each keyframe-time position.

    Positions must lie in [0, segments]; the end of the walk maps to ``(segments - 1, end, 1.0)``.
    """
    n_keyframes = _check_count("n_keyframes", n_keyframes, 2, None)
    segments = n_keyframes if loop else n_keyframes - 1
    positions = np.asarray(positions, dtype=np.float64).reshape(-1)
    if not np.all((positions >= 0) & (positions <= segments)):
        raise KitError(f"positions must be in [0, {segments}] for {n_keyframes} keyframes (loop={loop})")
    plan = []
    for p in positions:
        segment = min(int(math.floor(p)), segments - 1)
        plan.append((segment, (segment + 1) % n_keyframes, float(p - segment)))
    return plan


def _check_count(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise KitError(f"{name} must be an integer {_range_text(low, high)}, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        raise KitError(f"{name} must be an integer {_range_text(low, high)}, got {value}")
    return value


def _range_text(low, high):
    return f">= {low}" if high is None else f"in {low}..{high}"


# ---------------------------------------------------------------------------------------------
# Even pacing


def step_sizes(vectors, metric: str = "angle") -> np.ndarray:
    """Distances between successive rows of ``vectors`` (shape (frames, dim)): length frames - 1.

    metric:
    - ``"angle"`` (default): the angle in radians between the rows' directions, i.e. arc
      length on the unit sphere where L2-normalised embeddings such as CLIP's live. Angles
      add up along an arc, which the cumulative distance in ``even_pacing`` relies on.
    - ``"cosine"``: ``1 - cosine similarity``. Familiar, but it grows like angle**2 / 2, so
      it does not add up along a path; prefer "angle" for pacing.
    - ``"euclidean"``: the straight-line distance between the rows as given.
    Rows must be non-zero for "angle" and "cosine".
    """
    if hasattr(vectors, "detach"):  # a torch tensor (any dtype, any device)
        vectors = vectors.detach().cpu().double().numpy()
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise KitError(f"vectors must be a 2-D array with at least 2 rows, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise KitError("vectors must be finite")
    if metric == "euclidean":
        return np.linalg.norm(np.diff(x, axis=0), axis=1)
    if metric not in ("angle", "cosine"):
        raise KitError(f"metric must be 'angle', 'cosine' or 'euclidean', got {metric!r}")
    norms = np.linalg.norm(x, axis=1)
    if np.any(norms == 0):
        raise KitError(f"metric {metric!r} needs non-zero rows; row {int(np.argmin(norms))} is zero")
    u = x / norms[:, None]
    if metric == "cosine":
        return np.clip(1 - np.sum(u[:-1] * u[1:], axis=1), 0, 2)
    # The same stable angle formula as kit.latents.slerp uses.
    return 2 * np.arctan2(np.linalg.norm(u[1:] - u[:-1], axis=1), np.linalg.norm(u[1:] + u[:-1], axis=1))


def even_pacing(t_values, steps, frames: int | None = None) -> np.ndarray:
    """Re-time a walk so that successive frames are equally far apart.

    ``t_values`` are the positions of the rendered frames (non-decreasing, e.g. keyframe time
    from ``walk_positions``), ``steps`` the measured distances between successive
    frames (length ``len(t_values) - 1``, e.g. from ``step_sizes``). Distance is assumed
    linear in t between rendered frames; the new positions are the piecewise-linear inverse
    of the cumulative distance at ``frames`` evenly spaced distances (default: as many
    frames as given). The first and last positions are kept exactly. A walk that does not
    move at all (total distance 0) gets evenly spaced positions.
    """
    t, steps = _check_walk(t_values, steps)
    frames = len(t) if frames is None else _check_count("frames", frames, 2, MAX_FRAMES)
    cumulative = np.concatenate([[0.0], np.cumsum(steps)])
    total = cumulative[-1]
    if total == 0:
        return np.linspace(t[0], t[-1], frames)
    targets = np.linspace(0.0, total, frames)
    # Segment i holds targets with cumulative[i] <= target; zero-length segments are skipped
    # because side="right" picks the last of equal cumulative values.
    i = np.clip(np.searchsorted(cumulative, targets, side="right") - 1, 0, len(steps) - 1)
    lengths = steps[i]
    fraction = np.divide(targets - cumulative[i], lengths, out=np.zeros_like(targets), where=lengths > 0)
    new = t[i] + np.clip(fraction, 0, 1) * (t[i + 1] - t[i])
    new[0], new[-1] = t[0], t[-1]
    return new


def insert_points(t_values, steps, max_ratio: float = 1.5) -> np.ndarray:
    """Add a midpoint wherever the walk jumps: a step larger than ``max_ratio`` times the median.

    Returns the sorted positions, the given ones included. A still walk (all steps zero)
    gets no new points. Render the new frames, measure again and repeat to refine further.
    """
    t, steps = _check_walk(t_values, steps)
    is_number = isinstance(max_ratio, numbers.Real) and not isinstance(max_ratio, bool)
    if not is_number or not 1 <= max_ratio < math.inf:
        raise KitError(f"max_ratio must be a finite number >= 1, got {max_ratio!r}")
    jumps = (steps > max_ratio * np.median(steps)) & (t[1:] > t[:-1])
    midpoints = (t[:-1][jumps] + t[1:][jumps]) / 2
    return np.sort(np.concatenate([t, midpoints]))


def _check_walk(t_values, steps):
    """Both as float64 arrays, after checking them."""
    t = np.asarray(t_values, dtype=np.float64)
    s = np.asarray(steps, dtype=np.float64)
    if t.ndim != 1 or len(t) < 2:
        raise KitError(f"t_values must be a 1-D sequence of at least 2 positions, got shape {t.shape}")
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0):
        raise KitError("t_values must be finite and non-decreasing")
    if s.shape != (len(t) - 1,):
        raise KitError(f"steps must have length len(t_values) - 1 = {len(t) - 1}, got shape {s.shape}")
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise KitError("steps must be finite and >= 0")
    return t, s
