"""Seeds, initial noise, interpolation and walk planning: the math of latent walks.

No model lives here, only torch and numpy. The Studio uses these pieces:

- ``noise(seed, shape)`` turns a seed into the initial latent, always drawn on the CPU so
  a seed gives the same image on every device (house rule 5).
- ``lerp`` / ``slerp`` blend two latents (or two prompt embeddings).
- ``plan_walk`` says, for every frame of a walk, which two keyframes it lies between and where.
- ``step_sizes``, ``even_pacing`` and ``insert_points`` re-time a rendered walk so that
  successive frames look equally far apart, measured in an embedding space such as CLIP.

Positions along a walk are in "keyframe time": keyframe ``i`` sits at position ``i`` and a
frame at ``t`` of the way from keyframe ``i`` to the next sits at ``i + t``.
``walk_positions`` and ``plan_at`` convert between a plan and positions.
"""

from __future__ import annotations

import math
import numbers
import secrets

import numpy as np
import torch

from .errors import KitError

SEED_LIMIT = 2**63          # seeds are 0 <= seed < SEED_LIMIT (they must fit a signed int64)
RANDOM_SEED_LIMIT = 2**32   # random_seed() stays below this so a seed is easy to read and type
MAX_FRAMES = 2000           # the longest walk plan_walk and even_pacing will plan

# Angle threshold for slerp, in radians, used at both ends of [0, pi]:
# - Nearly parallel (angle < ANGLE_EPS): slerp's weights differ from lerp's by a relative
#   theta**2 / 6 at most, about 2e-9 here, some 30 times below float32 rounding (6e-8), so
#   lerp gives the same result in every dtype we return and we never divide by a vanishing
#   sin(theta).
# - Nearly opposite (pi - angle < ANGLE_EPS): the arc from a to b is not unique; the plane it
#   would take is fixed by a part of b smaller than 1e-4 of its length, that is by rounding
#   noise for half-precision latents. We route the arc through a fixed orthogonal midpoint
#   instead. Just above the threshold the slerp weights are at most ~1/ANGLE_EPS = 1e4,
#   which costs 4 of float64's 16 digits: still far more than any output dtype keeps.
ANGLE_EPS = 1e-4

# The orthogonal midpoint for (nearly) opposite latents is built from this fixed draw, so the
# midpoint looks like Gaussian noise (a plausible latent) and is the same on every run.
MIDPOINT_SEED = 0


# ---------------------------------------------------------------------------------------------
# Seeds and noise


def check_seed(seed) -> int:
    """Return ``seed`` as an int, or raise KitError if it is not an integer in 0..2**63-1."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise KitError(f"seed must be an integer in 0..2**63-1, got {seed!r} ({type(seed).__name__})")
    seed = int(seed)
    if not 0 <= seed < SEED_LIMIT:
        raise KitError(f"seed must be an integer in 0..2**63-1, got {seed}")
    return seed


def random_seed() -> int:
    """A fresh seed from the operating system's entropy, in 0..2**32-1 (short enough to type)."""
    return secrets.randbelow(RANDOM_SEED_LIMIT)


def noise(seed: int, shape: tuple, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The initial latent noise for ``seed``: standard normal, on the CPU, of ``shape``.

    Drawn in float32 from a CPU ``torch.Generator`` seeded with ``seed`` and then cast to
    ``dtype``, so a seed gives the same noise on every device and (up to rounding) in every
    dtype. The caller moves the tensor to its device.
    """
    seed = check_seed(seed)
    shape = _check_shape(shape)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(dtype)


def _check_shape(shape) -> tuple[int, ...]:
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if not dims or any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1 for n in dims):
        raise KitError(f"shape must be a non-empty tuple of positive integers, got {shape!r}")
    return tuple(int(n) for n in dims)


# ---------------------------------------------------------------------------------------------
# Interpolation


def lerp(a: torch.Tensor, b: torch.Tensor, t) -> torch.Tensor:
    """Linear interpolation ``(1 - t) * a + t * b``.

    ``t`` is a number in [0, 1] (result shaped like ``a``) or a 1-D sequence/tensor of B
    such numbers (result shaped ``(B, *a.shape)``). Computed in float64 on the CPU so a walk
    frame is the same on every device; returned in the inputs' dtype on ``a``'s device.
    t = 0 gives ``a`` and t = 1 gives ``b`` exactly.
    """
    a64, b64, ts, scalar, out_dtype = _prepare(a, b, t)
    out = _lerp_rows(a64.flatten(), b64.flatten(), ts)
    return _finish(out, a, b, ts, scalar, out_dtype)


def slerp(a: torch.Tensor, b: torch.Tensor, t) -> torch.Tensor:
    """Spherical interpolation along the arc from ``a`` to ``b``; same ``t`` rules as lerp.

    Each tensor is treated as one flattened vector (the whole latent). The direction turns
    from ``a``'s to ``b``'s at constant angular speed (weights ``sin((1 - t) * theta) /
    sin(theta)`` and ``sin(t * theta) / sin(theta)`` on the unit vectors, ``theta`` the angle
    between them) and the length goes linearly from ``|a|`` to ``|b|``. So two noise draws
    keep their length all along the walk, where lerp shrinks it towards the middle (by
    about 1/sqrt(2) for independent draws), which washes out the image.

    Edge cases, never NaN for finite inputs:
    - a zero vector, or an angle below ``ANGLE_EPS`` (nearly parallel, identical): lerp,
      which for parallel vectors is the same path;
    - an angle within ``ANGLE_EPS`` of pi (opposite, e.g. ``b = -a``): the arc goes through a
      fixed midpoint orthogonal to both, reached at t = 0.5, so the path is well defined and
      the same on every run; one-element vectors have no orthogonal direction and use lerp;
    - t = 0 gives ``a`` and t = 1 gives ``b`` exactly, bit for bit.
    """
    a64, b64, ts, scalar, out_dtype = _prepare(a, b, t)
    va, vb = a64.flatten(), b64.flatten()
    theta = _angle(va, vb)
    opposite = theta is not None and math.pi - theta < ANGLE_EPS
    if theta is None or theta < ANGLE_EPS or (opposite and va.numel() == 1):
        out = _lerp_rows(va, vb, ts)
    elif opposite:
        mid = _orthogonal_midpoint(va, vb)
        first = _arc_rows(va, mid, (2 * ts).clamp(max=1), _angle(va, mid))
        second = _arc_rows(mid, vb, (2 * ts - 1).clamp(min=0), _angle(mid, vb))
        out = torch.where((ts <= 0.5)[:, None], first, second)
    else:
        out = _arc_rows(va, vb, ts, theta)
    return _finish(out, a, b, ts, scalar, out_dtype)


def _prepare(a, b, t):
    """Check the inputs; return float64 CPU copies, t as a 1-D float64 tensor and how to answer."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.shape != b.shape:
        raise KitError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    out_dtype = torch.promote_types(a.dtype, b.dtype)
    if not out_dtype.is_floating_point:
        raise KitError(f"a and b must be floating-point tensors, got {a.dtype} and {b.dtype}")
    try:
        ts = torch.as_tensor(t, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise KitError(f"t must be a number in [0, 1] or a 1-D sequence of them, got {t!r}") from None
    if ts.dim() > 1:
        raise KitError(f"t must be a number in [0, 1] or a 1-D sequence of them, got shape {tuple(ts.shape)}")
    scalar = ts.dim() == 0
    ts = ts.reshape(-1)
    if not bool(torch.all((ts >= 0) & (ts <= 1))):   # also catches NaN
        bad = ts[~((ts >= 0) & (ts <= 1))][0].item()
        raise KitError(f"t must be in [0, 1] (walks do not extrapolate past their keyframes), got {bad}")
    a64 = a.detach().to(device="cpu", dtype=torch.float64)
    b64 = b.detach().to(device="cpu", dtype=torch.float64)
    return a64, b64, ts, scalar, out_dtype


def _finish(out, a, b, ts, scalar, out_dtype):
    """Cast back, pin the exact endpoints, restore the shape and the device."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    out = out.to(out_dtype)
    out[ts == 0] = a.detach().flatten().cpu().to(out_dtype)
    out[ts == 1] = b.detach().flatten().cpu().to(out_dtype)
    out = out.reshape(len(ts), *a.shape)
    if scalar:
        out = out[0]
    return out.to(a.device)


def _lerp_rows(va, vb, ts):
    """Rows (1 - t) * va + t * vb for every t: shape (len(ts), numel)."""
    return (1 - ts)[:, None] * va + ts[:, None] * vb


def _angle(va, vb):
    """The angle between two float64 vectors, or None if either is zero.

    Uses 2 * atan2(|a^ - b^|, |a^ + b^|), which stays accurate near 0 and near pi where
    acos of the cosine loses half its digits.
    """
    na, nb = torch.linalg.vector_norm(va), torch.linalg.vector_norm(vb)
    if na == 0 or nb == 0:
        return None
    ua, ub = va / na, vb / nb
    return 2 * math.atan2(torch.linalg.vector_norm(ua - ub).item(), torch.linalg.vector_norm(ua + ub).item())


def _arc_rows(va, vb, ts, theta):
    """Slerp rows for every t between non-zero vectors at angle theta (not near 0 or pi)."""
    na, nb = torch.linalg.vector_norm(va), torch.linalg.vector_norm(vb)
    s = math.sin(theta)
    wa = torch.sin((1 - ts) * theta) / s
    wb = torch.sin(ts * theta) / s
    direction = wa[:, None] * (va / na) + wb[:, None] * (vb / nb)
    length = (1 - ts) * na + ts * nb
    return length[:, None] * direction


def _orthogonal_midpoint(va, vb):
    """A fixed vector orthogonal to the a-b axis, as long as the mean of |a| and |b|

    (the length the walk has at t = 0.5)."""
    axis = va / torch.linalg.vector_norm(va) - vb / torch.linalg.vector_norm(vb)
    axis = axis / torch.linalg.vector_norm(axis)
    generator = torch.Generator(device="cpu").manual_seed(MIDPOINT_SEED)
    candidate = torch.randn(va.numel(), generator=generator, dtype=torch.float64)
    mid = candidate - (candidate @ axis) * axis
    if torch.linalg.vector_norm(mid) < 0.1 * torch.linalg.vector_norm(candidate):
        # The fixed draw lies (almost) along the axis: use the basis vector the axis touches
        # least, whose orthogonal part is at least sqrt(1 - 1/n) long.
        k = int(torch.argmin(axis.abs()))
        mid = -axis[k] * axis
        mid[k] += 1
    length = (torch.linalg.vector_norm(va) + torch.linalg.vector_norm(vb)) / 2
    return mid * (length / torch.linalg.vector_norm(mid))


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
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().cpu().to(torch.float64).numpy()
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
    # Same stable angle formula as slerp uses.
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
