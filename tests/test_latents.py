"""Seeds, noise and lerp/slerp: facts checked on real draws."""

import math

import numpy as np
import pytest
import torch

from kit.core.latents import ANGLE_EPS, check_seed, lerp, noise, random_seed, slerp
from kit.errors import KitError

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


def test_slerp_of_unequal_lengths_turns_evenly_and_scales_linearly():
    a, b = noise(1, (256,)), 3 * noise(2, (256,))
    ts = torch.linspace(0, 1, 9)
    path = slerp(a, b, ts)
    lengths = path.norm(dim=1)
    assert torch.allclose(lengths, (1 - ts) * a.norm() + ts * b.norm(), rtol=1e-5)
    assert np.allclose([angle(a, x) for x in path], ts.numpy() * angle(a, b), atol=1e-5)
