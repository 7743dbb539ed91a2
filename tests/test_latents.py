"""Seeds, noise, lerp/slerp and walk planning: facts checked on real draws."""

import math

import numpy as np
import pytest
import torch

from kit.errors import KitError
from kit.latents import (
    ANGLE_EPS,
    MAX_FRAMES,
    check_seed,
    even_pacing,
    insert_points,
    lerp,
    noise,
    plan_at,
    plan_walk,
    random_seed,
    slerp,
    step_sizes,
    walk_positions,
)

LATENT = (4, 64, 64)  # an SD latent for a 512 px image
D = 4 * 64 * 64


def angle(x, y):
    x, y = x.double().flatten(), y.double().flatten()
    return math.acos(max(-1.0, min(1.0, float(x @ y / (x.norm() * y.norm())))))


# --- seeds and noise -----------------------------------------------------------------------


def test_noise_is_reproducible_and_seed_dependent():
    a, b, c = noise(7, LATENT), noise(7, LATENT), noise(8, LATENT)
    assert a.shape == LATENT and a.dtype == torch.float32 and a.device.type == "cpu"
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # Standard normal: mean ~0, std ~1 over 16k draws.
    assert abs(a.mean().item()) < 0.05 and abs(a.std().item() - 1) < 0.05


def test_noise_same_values_in_every_dtype():
    full = noise(3, LATENT)
    half = noise(3, LATENT, dtype=torch.float16)
    assert half.dtype == torch.float16
    assert torch.equal(half, full.half())
    assert torch.equal(noise(3, LATENT, dtype=torch.float64), full.double())


def test_noise_accepts_numpy_integer_and_largest_seed():
    assert torch.equal(noise(np.int64(5), (3,)), noise(5, (3,)))
    assert noise(2**63 - 1, (2, 2)).shape == (2, 2)


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, True, "3", None])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(KitError, match=r"seed must be an integer in 0\.\.2\*\*63-1"):
        noise(seed, (2,))
    with pytest.raises(ValueError):  # KitError is a ValueError
        check_seed(seed)


@pytest.mark.parametrize("shape", [(), (0, 3), (2, -1), (2.0,), "abc", 5])
def test_bad_shape_is_rejected(shape):
    with pytest.raises(KitError, match="shape"):
        noise(1, shape)


def test_random_seed_range_and_entropy():
    seeds = {random_seed() for _ in range(50)}
    assert all(isinstance(s, int) and 0 <= s < 2**32 for s in seeds)
    assert len(seeds) > 45
    assert check_seed(max(seeds)) == max(seeds)


# --- lerp and slerp --------------------------------------------------------------------------


def test_slerp_keeps_the_norm_of_gaussian_noise_and_lerp_shrinks_it():
    a, b = noise(1, LATENT), noise(2, LATENT)
    root_d = math.sqrt(D)
    mid_slerp = slerp(a, b, 0.5)
    mid_lerp = lerp(a, b, 0.5)
    assert abs(mid_slerp.norm().item() / root_d - 1) < 0.01
    assert abs(mid_lerp.norm().item() / root_d - 1 / math.sqrt(2)) < 0.01
    # All along the arc, not only at the middle.
    for x in slerp(a, b, torch.linspace(0, 1, 11)):
        assert abs(x.norm().item() / root_d - 1) < 0.01


def test_endpoints_are_exact_bit_for_bit():
    a, b = noise(1, LATENT), noise(2, LATENT)
    for f in (lerp, slerp):
        assert torch.equal(f(a, b, 0.0), a)
        assert torch.equal(f(a, b, 1.0), b)
        batch = f(a, b, [0.0, 0.3, 1.0])
        assert batch.shape == (3, *LATENT)
        assert torch.equal(batch[0], a) and torch.equal(batch[2], b)
    # Also for the opposite case, which takes the midpoint route.
    assert torch.equal(slerp(a, -a, 1.0), -a)
    assert torch.equal(slerp(a, -a, 0.0), a)


def test_batched_t_matches_scalar_t():
    a, b = noise(1, (2, 8, 8)), noise(2, (2, 8, 8))
    ts = [0.1, 0.5, 0.9]
    for f in (lerp, slerp):
        batch = f(a, b, torch.tensor(ts))
        for row, t in zip(batch, ts):
            assert torch.allclose(row, f(a, b, t), atol=1e-7)


def test_angle_along_the_arc_is_monotone_and_even():
    a, b = noise(1, LATENT), noise(2, LATENT)
    total = angle(a, b)
    ts = torch.linspace(0, 1, 21)
    path = slerp(a, b, ts)
    from_a = [angle(a, x) for x in path]
    to_b = [angle(x, b) for x in path]
    assert all(x < y for x, y in zip(from_a[1:], from_a[2:]))
    assert all(x > y for x, y in zip(to_b[:-2], to_b[1:-1]))
    # slerp moves at constant angular speed.
    assert np.allclose(from_a, ts.numpy() * total, atol=1e-3)


def test_identical_and_nearly_identical_vectors():
    a = noise(1, LATENT)
    same = slerp(a, a.clone(), torch.linspace(0, 1, 5))
    assert torch.isfinite(same).all()
    assert torch.allclose(same, a.expand_as(same), atol=1e-6)
    # A tiny nudge, well below ANGLE_EPS: falls back to lerp, still no NaN.
    near = a + 1e-7 * noise(2, LATENT)
    assert angle(a, near) < ANGLE_EPS
    mid = slerp(a, near, 0.5)
    assert torch.isfinite(mid).all()
    assert torch.allclose(mid, lerp(a, near, 0.5), atol=1e-6)


def test_opposite_vectors_take_a_well_defined_arc():
    a = noise(1, LATENT)
    ts = torch.linspace(0, 1, 11)
    path = slerp(a, -a, ts)
    assert torch.isfinite(path).all()
    assert torch.equal(path, slerp(a, -a, ts))  # deterministic
    mid = path[5]
    # The midpoint is orthogonal to a and as long as a (not the zero vector lerp passes through).
    assert abs(angle(a, mid) - math.pi / 2) < 1e-3
    assert abs(mid.norm().item() / a.norm().item() - 1) < 1e-4
    from_a = [angle(a, x) for x in path]
    assert all(x < y for x, y in zip(from_a, from_a[1:]))
    assert abs(from_a[-1] - math.pi) < 1e-3
    # Nearly opposite (inside ANGLE_EPS) behaves the same way.
    near = -a + 1e-6 * noise(2, LATENT)
    assert torch.isfinite(slerp(a, near, ts)).all()
    # Just outside ANGLE_EPS the ordinary formula runs and stays finite and long.
    just = slerp(a, -a + 1e-3 * noise(2, LATENT), 0.5)
    assert torch.isfinite(just).all() and just.norm() > 0.9 * a.norm()


def test_opposite_one_element_vectors_use_lerp():
    out = slerp(torch.tensor([2.0]), torch.tensor([-2.0]), [0.25, 0.5])
    assert torch.equal(out, torch.tensor([[1.0], [0.0]]))


def test_zero_vectors_fall_back_to_lerp():
    a, z = noise(1, (16,)), torch.zeros(16)
    assert torch.allclose(slerp(z, a, 0.25), 0.25 * a)
    assert torch.allclose(slerp(a, z, 0.25), 0.75 * a)
    assert torch.equal(slerp(z, z, 0.5), z)


def test_half_precision_inputs():
    a, b = noise(1, LATENT, torch.float16), noise(2, LATENT, torch.float16)
    for f in (lerp, slerp):
        out = f(a, b, [0.0, 0.5, 1.0])
        assert out.dtype == torch.float16
        assert torch.isfinite(out).all()
        assert torch.equal(out[0], a) and torch.equal(out[2], b)
    assert abs(slerp(a, b, 0.5).float().norm().item() / math.sqrt(D) - 1) < 0.01
    assert torch.isfinite(slerp(a, -a, 0.5)).all()


@pytest.mark.parametrize("t", [-0.1, 1.5, float("nan"), [0.2, 1.01], [[0.5]], "half"])
def test_t_outside_zero_one_is_rejected(t):
    a, b = noise(1, (4,)), noise(2, (4,))
    for f in (lerp, slerp):
        with pytest.raises(KitError, match="t must"):
            f(a, b, t)


def test_mismatched_or_integer_inputs_are_rejected():
    with pytest.raises(KitError, match="same shape"):
        slerp(torch.zeros(3), torch.zeros(4), 0.5)
    with pytest.raises(KitError, match="floating-point"):
        lerp(torch.arange(3), torch.arange(3), 0.5)


# --- walk planning -------------------------------------------------------------------------


def test_plan_walk_even_case_lands_on_every_keyframe():
    plan = plan_walk(3, 9)
    assert len(plan) == 9
    assert plan[0] == (0, 1, 0.0)
    assert plan[4] == (1, 2, 0.0)  # keyframe 1 exactly on the middle frame
    assert plan[-1] == (1, 2, 1.0)
    assert [t for _, _, t in plan[:4]] == [0.0, 0.25, 0.5, 0.75]
    positions = walk_positions(plan)
    assert np.allclose(np.diff(positions), 0.25)


def test_plan_walk_uneven_case_still_lands_on_every_keyframe():
    # 7 steps over 3 segments: keyframes on frames round(j * 7 / 3) = 0, 2, 5, 7.
    plan = plan_walk(4, 8)
    on_keyframes = [k for k, (_, _, t) in enumerate(plan) if t == 0.0]
    assert on_keyframes == [0, 2, 5]
    assert plan[-1] == (2, 3, 1.0)
    steps = np.diff(walk_positions(plan))
    assert np.all(steps > 0) and steps.max() / steps.min() <= 1.5 + 1e-12


@pytest.mark.parametrize("n,frames", [(2, 2), (2, 24), (5, 24), (7, 100), (10, 10), (3, MAX_FRAMES)])
def test_plan_walk_invariants(n, frames):
    plan = plan_walk(n, frames)
    assert len(plan) == frames
    assert plan[0] == (0, 1, 0.0) and plan[-1] == (n - 2, n - 1, 1.0)
    assert all(j == i + 1 and 0 <= t <= 1 for i, j, t in plan)
    positions = walk_positions(plan)
    assert np.all(np.diff(positions) > 0)
    if frames - 1 >= n - 1:
        assert {round(p, 9) for p in positions} >= set(range(n))


def test_plan_walk_loop_returns_to_the_start():
    plan = plan_walk(3, 12, loop=True)
    assert len(plan) == 12
    assert plan[0] == (0, 1, 0.0)
    assert plan[4] == (1, 2, 0.0) and plan[8] == (2, 0, 0.0)
    assert plan[-1] == (2, 0, 0.75)  # one step before closing on keyframe 0
    assert plan_walk(2, 2, loop=True) == [(0, 1, 0.0), (1, 0, 0.0)]


def test_plan_walk_with_fewer_frames_than_segments():
    plan = plan_walk(6, 3)  # 5 segments, 2 steps: positions 0, 2.5, 5
    assert plan == [(0, 1, 0.0), (2, 3, 0.5), (4, 5, 1.0)]


def test_plan_at_inverts_walk_positions():
    for loop in (False, True):
        plan = plan_walk(4, 17, loop=loop)
        again = plan_at(walk_positions(plan), 4, loop=loop)
        assert [(i, j) for i, j, _ in again] == [(i, j) for i, j, _ in plan]
        assert np.allclose([t for *_, t in again], [t for *_, t in plan])
    with pytest.raises(KitError, match="positions"):
        plan_at([0.0, 3.5], 4)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(n_keyframes=1, frames=10), "n_keyframes"),
        (dict(n_keyframes=2.0, frames=10), "n_keyframes"),
        (dict(n_keyframes=3, frames=1), "frames"),
        (dict(n_keyframes=3, frames=10**6), "frames"),
        (dict(n_keyframes=3, frames=True), "frames"),
    ],
)
def test_plan_walk_bad_input(kwargs, field):
    with pytest.raises(KitError, match=field) as info:
        plan_walk(**kwargs)
    if field == "frames":
        assert f"2..{MAX_FRAMES}" in str(info.value)


# --- step sizes and even pacing -------------------------------------------------------------


def circle(angles):
    """Unit vectors at the given angles on a great circle of a 3-D sphere."""
    angles = np.asarray(angles)
    return np.stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)], axis=1)


def cv(x):
    return float(np.std(x) / np.mean(x))


def test_step_sizes_metrics():
    pts = circle([0.0, 0.1, 0.3])
    assert np.allclose(step_sizes(pts), [0.1, 0.2])
    assert np.allclose(step_sizes(pts, metric="cosine"), 1 - np.cos([0.1, 0.2]))
    assert np.allclose(step_sizes(pts, metric="euclidean"), 2 * np.sin(np.array([0.1, 0.2]) / 2))
    # Angle works on unnormalised rows and on torch tensors.
    assert np.allclose(step_sizes(torch.tensor(pts * [[1], [5], [2]])), [0.1, 0.2])
    with pytest.raises(KitError, match="metric"):
        step_sizes(pts, metric="manhattan")
    with pytest.raises(KitError, match="zero"):
        step_sizes(np.zeros((3, 4)))
    assert np.array_equal(step_sizes(np.zeros((3, 4)), metric="euclidean"), [0.0, 0.0])


def test_even_pacing_makes_a_quadratic_walk_even():
    # The embedding moves along an arc at angle t**2: frames bunch at the start.
    t = np.linspace(0, 1, 25)
    steps = step_sizes(circle(t**2))
    assert cv(steps) > 0.5
    new_t = even_pacing(t, steps)
    assert new_t[0] == 0.0 and new_t[-1] == 1.0
    assert np.all(np.diff(new_t) > 0)
    assert cv(step_sizes(circle(new_t**2))) < 0.02
    # Asking for more frames also gives an even walk.
    more = even_pacing(t, steps, frames=49)
    assert len(more) == 49 and cv(step_sizes(circle(more**2))) < 0.03


def test_even_pacing_on_keyframe_time_positions():
    positions = walk_positions(plan_walk(3, 13))  # 0 .. 2
    steps = step_sizes(circle(positions**3))
    new = even_pacing(positions, steps)
    assert new[0] == 0.0 and new[-1] == 2.0
    assert cv(step_sizes(circle(new**3))) < 0.05
    assert all(0 <= t <= 1 for *_, t in plan_at(new, 3))


def test_still_walk_has_no_division_by_zero():
    t = np.linspace(0, 1, 6)
    still = step_sizes(np.ones((6, 8)))
    assert np.array_equal(still, np.zeros(5))
    with np.errstate(all="raise"):
        assert np.allclose(even_pacing(t, still), t)
        assert np.array_equal(insert_points(t, still), t)
        # Partly still: zero steps are skipped, no NaN.
        mixed = even_pacing(t, np.array([0.0, 1.0, 0.0, 1.0, 0.0]))
    assert np.all(np.isfinite(mixed)) and mixed[0] == 0.0 and mixed[-1] == 1.0
    assert np.all(np.diff(mixed) >= 0)
    # Identical keyframes: a still walk through the real interpolators and planner.
    a = noise(4, (4, 8, 8))
    frames = slerp(a, a, [t for *_, t in plan_walk(2, 6)])
    assert torch.isfinite(frames).all()
    assert np.allclose(step_sizes(frames.flatten(1), metric="euclidean"), 0, atol=1e-6)


def test_insert_points_where_the_walk_jumps():
    t = np.linspace(0, 1, 6)
    steps = np.array([1.0, 1.0, 4.0, 1.0, 1.2])
    out = insert_points(t, steps)
    assert np.allclose(out, [0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0])
    assert np.allclose(insert_points(t, steps, max_ratio=1.1), [0, 0.2, 0.4, 0.5, 0.6, 0.8, 0.9, 1.0])
    with pytest.raises(KitError, match="max_ratio"):
        insert_points(t, steps, max_ratio=0.5)


@pytest.mark.parametrize(
    "t,steps,match",
    [
        ([0.0, 0.5, 0.4], [1.0, 1.0], "non-decreasing"),
        ([0.0], [], "at least 2"),
        ([0.0, 0.5, 1.0], [1.0], "length"),
        ([0.0, 0.5, 1.0], [1.0, -1.0], ">= 0"),
        ([0.0, float("nan")], [1.0], "finite"),
    ],
)
def test_even_pacing_bad_input(t, steps, match):
    with pytest.raises(KitError, match=match):
        even_pacing(t, steps)


def test_even_pacing_bad_frames():
    with pytest.raises(KitError, match="frames"):
        even_pacing([0.0, 1.0], [1.0], frames=1)
    with pytest.raises(KitError, match="frames"):
        even_pacing([0.0, 1.0], [1.0], frames=10**6)


def test_slerp_of_unequal_lengths_turns_evenly_and_scales_linearly():
    a, b = noise(1, (256,)), 3 * noise(2, (256,))
    ts = torch.linspace(0, 1, 9)
    path = slerp(a, b, ts)
    lengths = path.norm(dim=1)
    assert torch.allclose(lengths, (1 - ts) * a.norm() + ts * b.norm(), rtol=1e-5)
    assert np.allclose([angle(a, x) for x in path], ts.numpy() * angle(a, b), atol=1e-5)
