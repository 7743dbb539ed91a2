"""Disclosed restoration on the tiny preset: only masked pixels change, and the overlay says which."""

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

import kit
from kit import damage as D
from kit import restore as R
from kit.errors import KitError
from kit.provenance.artwork import pixel_hash


def _picture(size=(64, 64)) -> Image.Image:
    """A small synthetic 'painting': a sky gradient, a hill and a sun."""
    width, height = size
    y = np.linspace(0, 1, height)[:, None]
    sky = np.stack([60 + 120 * y, 110 + 80 * y, 200 - 60 * y], axis=2) * np.ones((1, width, 1))
    image = Image.fromarray(sky.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.6, height * 0.1, width * 0.85, height * 0.35), fill=(250, 210, 90))
    draw.polygon([(0, height), (width * 0.4, height * 0.55), (width, height)], fill=(60, 120, 50))
    return image


def _box_mask(size=(64, 64), box=(20, 20, 40, 36)) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


@pytest.fixture(scope="module")
def restored(studio, tmp_path_factory):
    damaged, mask = D.damage(_picture(), "holes", seed=4, amount=0.08)
    source = tmp_path_factory.mktemp("scan") / "damaged.png"
    damaged.save(source)
    return damaged, mask, studio.restore(source, mask, seed=11)  # from a file: the record keeps its path


@pytest.fixture
def no_models(monkeypatch):
    """A studio that fails the test if anything tries to load a model."""
    studio = kit.Studio(preset="tiny")

    def fail(*args, **kwargs):
        pytest.fail("a model was loaded for bad input")

    monkeypatch.setattr(studio, "_load", fail)
    return studio


# ---------------------------------------------------------------- restoring


def test_outside_the_mask_is_bit_identical_and_inside_is_repainted(restored):
    damaged, mask, art = restored
    region = np.asarray(mask) == 255
    before, after = np.asarray(damaged), np.asarray(art.image)
    assert art.image.size == damaged.size and art.image.mode == "RGB"
    assert np.array_equal(after[~region], before[~region])
    changed = (after[region] != before[region]).any(axis=1)
    assert changed.mean() > 0.9


def test_overlay_marks_exactly_the_masked_region(restored):
    _, mask, art = restored
    region = np.asarray(mask) == 255
    marked = (np.asarray(art.overlay) != np.asarray(art.image)).any(axis=2)
    assert np.array_equal(marked, region)
    # the outline: masked pixels next to unmasked ones are pure magenta
    edge = R._edge(region)
    assert edge.any() and (np.asarray(art.overlay)[edge] == R.TINT).all()
    assert np.array_equal(np.asarray(art.mask) == 255, region)


def test_record_discloses_the_restoration(restored):
    damaged, mask, art = restored
    record = art.record
    region = np.asarray(mask) == 255
    assert record.kind == "restore"
    assert record.seed == 11 and record.model == "kit-tiny-inpaint"
    assert record.restore["mask_sha256"] == R.mask_hash(region)
    assert record.restore["mask_area"] == pytest.approx(region.mean())
    assert record.restore["source_sha256"] == pixel_hash(damaged)
    assert record.restore["strength"] == 1.0
    assert record.sha256 == pixel_hash(art.image)
    assert np.array_equal(np.asarray(R.mask_of(record)) == 255, region)


def test_same_seed_same_pixels_other_seed_other_pixels(studio, restored):
    damaged, mask, art = restored
    again = studio.restore(damaged, mask, seed=11)
    assert np.array_equal(np.asarray(again.image), np.asarray(art.image))
    other = studio.restore(damaged, mask, seed=12)
    assert not np.array_equal(np.asarray(other.image), np.asarray(art.image))


def test_saved_restoration_loads_replays_and_shows_its_overlay(studio, restored, tmp_path):
    damaged, _, art = restored
    path = art.save(tmp_path)
    loaded = kit.load(path)
    assert loaded.verified and loaded.record.kind == "restore"
    assert np.array_equal(np.asarray(R.disclose(loaded)), np.asarray(art.overlay))
    assert loaded.record.restore["source_path"].endswith("damaged.png")
    replayed = R.render(studio, loaded.record)  # finds the source file, checks its hash, paints again
    assert np.array_equal(np.asarray(replayed.image), np.asarray(art.image))
    with pytest.raises(KitError, match="source"):
        R.render(studio, loaded.record, image=_picture())


def test_odd_sizes_and_array_masks(studio):
    image = _picture((70, 60))
    region = np.zeros((60, 70), dtype=bool)
    region[10:30, 5:25] = True
    art = studio.restore(image, region, seed=1, steps=1)
    assert art.image.size == (70, 60)
    assert art.record.restore["work_size"] == [72, 64]
    assert np.array_equal(np.asarray(art.image)[~region], np.asarray(image)[~region])


# ---------------------------------------------------------------- bad input, before any model work


@pytest.mark.parametrize(
    "mask, message",
    [
        (_box_mask((48, 64)), "must match"),
        (Image.new("L", (64, 64), 0), "empty"),
        (Image.new("L", (64, 64), 255), "whole image"),
        (Image.new("L", (64, 64), 128), "binary"),
        (np.full((64, 64), 0.5), "binary"),
        (np.zeros((64, 64, 3), dtype=np.uint8), "one channel"),
        ("no/such/mask.png", "cannot read"),
    ],
)
def test_bad_masks(no_models, mask, message):
    with pytest.raises(KitError, match=message):
        no_models.restore(_picture(), mask)


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((2, 3, 4, 5)), "not an image"),
        (42, "must be a PIL image"),
        ("no/such/image.png", "cannot read"),
        (Image.new("RGB", (4, 4)), "at least 8"),
    ],
)
def test_bad_images(no_models, image, message):
    with pytest.raises(KitError, match=message):
        no_models.restore(image, _box_mask())


@pytest.mark.parametrize(
    "options, message",
    [
        ({"strength": 0}, "strength"),
        ({"strength": 1.5}, "strength"),
        ({"steps": 0}, "steps"),
        ({"steps": 2, "strength": 0.2}, "steps x strength"),
        ({"seed": -1}, "seed"),
        ({"prompt": 7}, "prompt"),
    ],
)
def test_bad_settings(no_models, options, message):
    with pytest.raises(KitError, match=message):
        no_models.restore(_picture(), _box_mask(), **options)


def test_masks_accepted_in_every_binary_form():
    region = np.asarray(_box_mask()) == 255
    for mask in (
        _box_mask(),
        _box_mask().convert("1"),
        region,
        region.astype(np.uint8),
        region.astype(np.uint8) * 255,
        region.astype(float),
    ):
        assert np.array_equal(R.check_mask(mask, (64, 64)), region)


# ---------------------------------------------------------------- damage and measures (no model)


@pytest.mark.parametrize("kind", D.DAMAGE_KINDS)
def test_damage_mask_is_exactly_the_damaged_pixels(kind):
    image = _picture((96, 80))
    damaged, mask = D.damage(image, kind, seed=3, amount=0.1)
    changed = (np.asarray(damaged) != np.asarray(image)).any(axis=2)
    assert mask.mode == "L" and set(np.unique(mask)) <= {0, 255}
    assert np.array_equal(changed, np.asarray(mask) == 255)
    assert 0.1 <= changed.mean() < 0.3
    again, mask_again = D.damage(image, kind, seed=3, amount=0.1)
    assert np.array_equal(np.asarray(again), np.asarray(damaged))
    other, _ = D.damage(image, kind, seed=4, amount=0.1)
    assert not np.array_equal(np.asarray(other), np.asarray(damaged))


def test_damage_rejects_bad_arguments():
    with pytest.raises(KitError, match="kind"):
        D.damage(_picture(), "fire")
    for amount in (0, 0.9, True):
        with pytest.raises(KitError, match="amount"):
            D.damage(_picture(), amount=amount)


def test_compare_inside_and_outside():
    image = _picture()
    mask = _box_mask()
    region = np.asarray(mask) == 255
    same = D.compare(image, image, mask)
    assert same["psnr_inside"] == math.inf and same["psnr_outside"] == math.inf
    assert same["ssim_inside"] == pytest.approx(1.0) and same["ssim_outside"] == pytest.approx(1.0)

    pixels = np.asarray(image).copy()
    noise = np.random.default_rng(0).integers(-40, 41, pixels.shape)
    pixels[region] = np.clip(pixels[region] + noise[region], 0, 255)
    result = D.compare(image, Image.fromarray(pixels), mask)
    assert result["psnr_outside"] == math.inf
    assert 10 < result["psnr_inside"] < 40
    assert result["ssim_inside"] < 0.9
    assert result["ssim_outside"] == pytest.approx(1.0)  # windows clear of the mask see no change
    assert result["mask_area"] == pytest.approx(region.mean())


def test_ssim_falls_with_distortion():
    image = _picture()
    blurred = image.resize((16, 16)).resize((64, 64))
    assert D.ssim(image, image) == pytest.approx(1.0)
    assert D.ssim(image, blurred) < D.ssim(image, image)
    darker = Image.fromarray((np.asarray(image) * 0.5).astype(np.uint8))
    assert 0 < D.ssim(image, darker) < 1
