"""Degenerate vectors in every map path: huge, zero, identical and NaN rows, given to the atlas,
to `map_vectors` and to a fitted map's `place`. Huge rows are directions like any other, identical
rows land on one point, and rows with no direction (zero, NaN) are a KitError naming the row.
"""

import numpy as np
import pytest

from kit import KitError
from kit.maps.atlas import StyleAtlas
from kit.maps.collections.collection import map_vectors

DIM = 8


def vectors(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def atlas_of(rows):
    atlas = StyleAtlas(None, seed=0)
    atlas.add_vectors(rows)
    return atlas


def test_a_huge_row_is_a_unit_direction_not_a_zero_length_one():
    rows = vectors(6)
    rows[0] = 3e38  # float32's largest values: its squared length overflows float32
    atlas = atlas_of(rows)
    np.testing.assert_allclose(np.linalg.norm(atlas._matrix(), axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(atlas._matrix()[0], np.full(DIM, 1 / np.sqrt(DIM)), atol=1e-6)
    cmap = map_vectors(rows, sample=4, seed=0, progress=False)
    assert np.isfinite(cmap.coords).all()
    same = map_vectors(np.vstack([np.ones((1, DIM)), rows[1:]]), sample=4, seed=0, progress=False)
    np.testing.assert_array_equal(cmap.coords, same.coords)  # only a row's direction counts


@pytest.mark.parametrize("n", [4, 5, 30])
def test_identical_points_land_on_one_point(n):
    rows = np.tile(vectors(1), (n, 1))
    coords = atlas_of(rows).fit()
    assert np.isfinite(coords).all() and (coords == coords[0]).all()
    cmap = map_vectors(rows, sample=4, seed=0, progress=False)
    assert np.isfinite(cmap.coords).all() and (cmap.coords == cmap.coords[0]).all()


def test_repeated_points_share_their_place_among_others():
    rows = vectors(12)
    rows[5] = rows[7] = rows[9] = rows[2]
    coords = atlas_of(rows).fit()
    assert np.isfinite(coords).all()
    assert (coords[[5, 7, 9]] == coords[2]).all()
    assert len(np.unique(coords, axis=0)) == 9


@pytest.mark.parametrize("bad, message", [(0.0, "row 3 .*zero"), (np.nan, "row 3 .*NaN"), (np.inf, "row 3 .*NaN")])
def test_a_row_without_direction_is_refused_in_every_map_path(bad, message):
    rows = vectors(10)
    rows[3] = bad
    with pytest.raises(KitError, match=message):
        atlas_of(rows)
    with pytest.raises(KitError, match=message):
        map_vectors(rows, sample=4, progress=False)
    cmap = map_vectors(vectors(10), sample=4, seed=0, progress=False)
    with pytest.raises(KitError, match=message):
        cmap.place(rows, progress=False)
    atlas = atlas_of(vectors(10))
    atlas.fit()
    with pytest.raises(KitError, match=message):
        atlas.place(rows)
