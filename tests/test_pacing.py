"""Walk pacing: planning a walk's frames and re-timing them to equal steps (kit.core.pacing)."""

import numpy as np
import pytest
import torch

from kit.core.latents import noise, slerp
from kit.core.pacing import MAX_FRAMES, even_pacing, insert_points, plan_at, plan_walk, step_sizes, walk_positions
from kit.errors import KitError

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
