"""The one image reader, `kit.files.read_image`, and the five places that read images through it.

Every file in the table is read by each path that reads images: `read_image` itself, the
Embedder, a collection's ImageEncoder, restoration's `check_image` and the atlas's
`thumbnail_uri`. Readable files must give the same RGB array everywhere, with the pixels
pinned here; unreadable ones the same reason everywhere, as a KitError naming the field
(an error row in a collection, None for a thumbnail). Devices and FIFOs are refused by their
file type: a spy makes opening one fail the test, so a FIFO with no writer cannot hang it.
"""

import base64
import builtins
import io
import os
import pickle
import struct
import types
import zlib

import numpy as np
import pytest
from PIL import Image

from kit import KitError
from kit.files import MAX_BYTES, MAX_PIXELS, ReadError, has_alpha, read_file, read_image, to_rgb

WHITE = (255, 255, 255)
SIDE = 16  # >= restore's smallest side (8) and <= the atlas's thumbnail size (64): all see the whole image


# ---------------------------------------------------------------- the files


def rgba_png(folder):
    image = Image.new("RGBA", (SIDE, SIDE), (200, 30, 30, 255))
    image.putpixel((0, 0), (200, 30, 30, 0))  # transparent: its colour must not show
    image.putpixel((1, 0), (0, 0, 255, 64))  # a quarter blue
    return _save(image, folder / "rgba.png")


def la_png(folder):
    image = Image.new("LA", (SIDE, SIDE), (100, 255))
    image.putpixel((0, 0), (0, 0))
    return _save(image, folder / "la.png")


def palette_png(folder):
    image = Image.new("P", (SIDE, SIDE), 1)
    image.putpalette([200, 30, 30, 10, 200, 30] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.save(folder / "palette.png", transparency=0)  # entry 0, (200, 30, 30), is transparent
    return folder / "palette.png"


def cmyk_tif(folder):
    image = Image.new("CMYK", (SIDE, SIDE), (0, 255, 255, 0))  # red
    image.putpixel((0, 0), (0, 0, 0, 0))  # no ink: white
    return _save(image, folder / "cmyk.tif")


def grey16_png(folder):
    pixels = np.full((SIDE, SIDE), 32768, dtype=np.uint16)  # mid-grey
    pixels[0, :3] = [65535, 0, 257]
    return _save(Image.fromarray(pixels), folder / "grey16.png")


def grey16_big_endian_tif(folder):
    pixels = np.full((SIDE, SIDE), 32768, dtype=">u2")
    pixels[0, 0] = 65535
    image = Image.fromarray(pixels)
    assert image.mode == "I;16B"
    return _save(image, folder / "grey16b.tif")


def int32_tif(folder):
    image = Image.new("I", (SIDE, SIDE), 32768)
    image.putpixel((0, 0), 70000)  # over 16 bits: clipped at white
    return _save(image, folder / "int32.tif")


def float_tif(folder):
    pixels = np.full((SIDE, SIDE), 0.5, dtype=np.float32)
    pixels[0, :3] = [1.0, 2.0, -1.0]  # white, and two values clipped at the ends of 0..1
    return _save(Image.fromarray(pixels), folder / "float.tif")


def exif_jpg(folder):
    """32 x 16, red left and blue right, stored with EXIF orientation 6: upright it is 16 x 32, red on top."""
    image = Image.new("RGB", (32, 16), (255, 0, 0))
    image.paste((0, 0, 255), (16, 0, 32, 16))
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(folder / "exif.jpg", exif=exif.tobytes(), quality=95)
    return folder / "exif.jpg"


def animated_gif(folder):
    frames = [Image.new("RGB", (SIDE, SIDE), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(folder / "animated.gif") as gif:
        assert gif.n_frames == 3
    return folder / "animated.gif"


def _save(image, path):
    image.save(path)
    return path


# name -> (builder, size upright, {(x, y): the exact RGB pixel}); the rest of the image is filled as built
READABLE = {
    "rgba": (rgba_png, (SIDE, SIDE), {(0, 0): WHITE, (1, 0): (191, 191, 255), (5, 5): (200, 30, 30)}),
    "la": (la_png, (SIDE, SIDE), {(0, 0): WHITE, (5, 5): (100, 100, 100)}),
    "palette": (palette_png, (SIDE, SIDE), {(0, 0): WHITE, (5, 5): (10, 200, 30)}),
    "cmyk": (cmyk_tif, (SIDE, SIDE), {(0, 0): WHITE, (5, 5): (255, 0, 0)}),
    "grey16": (grey16_png, (SIDE, SIDE), {(0, 0): WHITE, (1, 0): (0, 0, 0), (2, 0): (1, 1, 1), (5, 5): (128,) * 3}),
    "grey16b": (grey16_big_endian_tif, (SIDE, SIDE), {(0, 0): WHITE, (5, 5): (128, 128, 128)}),
    "int32": (int32_tif, (SIDE, SIDE), {(0, 0): WHITE, (5, 5): (128, 128, 128)}),
    "float": (float_tif, (SIDE, SIDE), {(0, 0): WHITE, (1, 0): WHITE, (2, 0): (0, 0, 0), (5, 5): (128,) * 3}),
    "exif": (exif_jpg, (16, 32), {(8, 4): (255, 0, 0), (8, 27): (0, 0, 255)}),  # JPEG: within 12, see below
    "animated": (animated_gif, (SIDE, SIDE), {(0, 0): (255, 0, 0), (9, 9): (255, 0, 0)}),  # the first frame
}
LOSSY = {"exif"}


def truncated_png(folder):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(buffer, "PNG")
    (folder / "truncated.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return folder / "truncated.png"


def text_png(folder):
    (folder / "text.png").write_text("not a picture at all", encoding="utf-8")
    return folder / "text.png"


def eps_png(folder):
    """PostScript named .png: PIL would hand it to Ghostscript; the kit does not read the format at all."""
    (folder / "eps.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n0 0 moveto\nshowpage\n")
    return folder / "eps.png"


def empty_png(folder):
    (folder / "empty.png").write_bytes(b"")
    return folder / "empty.png"


def a_folder(folder):
    (folder / "folder.png").mkdir()
    return folder / "folder.png"


def missing(folder):
    return folder / "missing.png"


def dev_zero(folder):
    return "/dev/zero"


def fifo(folder):
    os.mkfifo(folder / "fifo.png")  # no writer: opening it for reading would wait forever
    return folder / "fifo.png"


def link_to_dev_zero(folder):
    os.symlink("/dev/zero", folder / "zero.png")
    return folder / "zero.png"


def png_header(width, height):
    """A PNG with only a header: it claims the size, holds no pixels (a decompression bomb's first bytes)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


def bomb_png(folder):  # 10 gigapixels: over PIL's hard limit (DecompressionBombError)
    (folder / "bomb.png").write_bytes(png_header(100_000, 100_000))
    return folder / "bomb.png"


def bomb_warning_png(folder):  # 100 megapixels: over PIL's warning limit (DecompressionBombWarning)
    (folder / "bomb-warning.png").write_bytes(png_header(10_000, 10_000))
    return folder / "bomb-warning.png"


def over_pixel_cap_png(folder):  # 81 megapixels: under PIL's limits, over the kit's
    (folder / "big.png").write_bytes(png_header(9_000, 9_000))
    return folder / "big.png"


def huge_file(folder):
    with open(folder / "huge.png", "wb") as file:  # sparse: takes no disk space
        file.truncate(MAX_BYTES + 1)
    return folder / "huge.png"


# name -> (builder, the reason every reader gives)
UNREADABLE = {
    "truncated": (truncated_png, "truncated or corrupt image"),
    "text": (text_png, "not an image file in a format the kit reads"),
    "eps": (eps_png, "not an image file in a format the kit reads"),
    "empty": (empty_png, "empty file"),
    "folder": (a_folder, "a folder, not a regular file"),
    "missing": (missing, "no such file"),
    "dev-zero": (dev_zero, "a device, not a regular file"),
    "fifo": (fifo, "a FIFO (named pipe), not a regular file"),
    "link-to-dev-zero": (link_to_dev_zero, "a device, not a regular file"),
    "bomb": (bomb_png, "too large: a possible decompression bomb"),
    "bomb-warning": (bomb_warning_png, "too large: a possible decompression bomb"),
    "over-pixel-cap": (over_pixel_cap_png, f"too large: 9000 x 9000 pixels is over the limit of {MAX_PIXELS:,}"),
    "huge": (huge_file, f"too large: {MAX_BYTES + 1:,} bytes is over the limit of {MAX_BYTES:,}"),
}
NOT_TO_OPEN = {"dev-zero", "fifo", "link-to-dev-zero", "folder", "huge"}  # refused by os.stat alone


# ---------------------------------------------------------------- the five readers


class StubModel:
    """Stands in for CLIP: the test is about the pixels each path hands to `preprocess`."""

    def encode_image(self, batch, normalize=True):
        import torch

        return torch.full((len(batch), 4), 0.5)


@pytest.fixture(scope="module")
def embedder():
    import torch

    from kit.maps.embed import Embedder

    emb = Embedder(preset="tiny", device="cpu", cache=False)
    seen = []
    emb._clip = (StubModel(), lambda image: seen.append(np.asarray(image)) or torch.zeros(3), None)
    emb._dim = 4
    return emb, seen


@pytest.fixture(scope="module")
def encoder():
    import torch

    from kit.maps.collections.collection import ImageEncoder

    enc = object.__new__(ImageEncoder)  # the real __call__, without loading a model
    seen = []
    enc.device, enc.max_pixels, enc.model, enc.dim, enc.dtype = "cpu", MAX_PIXELS, StubModel(), 4, torch.float32
    enc.preprocess = lambda image: seen.append(np.asarray(image)) or torch.zeros(3)
    return enc, seen


def via_embed(embedder, path):
    """(RGB array, None) or (None, reason) from Embedder.embed_images."""
    emb, seen = embedder
    seen.clear()
    result = emb.embed_images([path])
    if result.errors:
        assert result.items == [] and len(result.errors) == 1
        return None, result.errors[0][1]
    assert len(seen) == 1 and result.vectors.shape == (1, 4)
    return seen[0], None


def via_collection(encoder, path):
    """(RGB array, None) or (None, the error row's text) from a collection's ImageEncoder."""
    enc, seen = encoder
    seen.clear()
    out = enc({"file": [str(path)], "id": ["x"]})
    error = out["error"][0]
    if error:
        assert seen == [] and out["width"][0] == 0 and not out["embedding"][0].any()
        return None, error
    assert (out["width"][0], out["height"][0]) == seen[0].shape[1::-1]
    return seen[0], None


def via_restore(path, field="original"):
    from kit.files import check_image

    return np.asarray(check_image(path, field))


def via_atlas(path):
    from kit.maps.atlas import thumbnail_uri

    uri = thumbnail_uri(path)
    if uri is None:
        return None
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as png:
        assert png.mode == "RGB"
        return np.asarray(png)


@pytest.fixture
def spy(monkeypatch):
    """Fail the test if anything opens one of the paths in the returned set (a FIFO would hang)."""
    forbidden = set()

    def guard(real):
        def opener(file, *args, **kwargs):
            if isinstance(file, (str, bytes, os.PathLike)) and os.path.realpath(file) in forbidden:
                raise AssertionError(f"{file} was opened: it must be refused by its file type first")
            return real(file, *args, **kwargs)

        return opener

    monkeypatch.setattr(os, "open", guard(os.open))
    monkeypatch.setattr(builtins, "open", guard(builtins.open))
    monkeypatch.setattr(io, "open", guard(io.open))
    return forbidden


# ---------------------------------------------------------------- readable files: one array everywhere


@pytest.mark.parametrize("name", list(READABLE))
def test_every_reader_gives_the_same_pixels(name, tmp_path, embedder, encoder):
    build, size, pixels = READABLE[name]
    path = build(tmp_path)
    image = read_image(path)
    assert image.mode == "RGB" and image.size == size
    for xy, want in pixels.items():
        got = image.getpixel(xy)
        if name in LOSSY:
            assert np.abs(np.subtract(got, want)).max() <= 12, (xy, got, want)
        else:
            assert got == want, (xy, got, want)
    reference = np.asarray(image)
    embedded, reason = via_embed(embedder, path)
    assert reason is None
    collected, error = via_collection(encoder, path)
    assert error is None
    for other in (embedded, collected, via_restore(path), via_atlas(path)):
        np.testing.assert_array_equal(other, reference)


@pytest.mark.parametrize("name", list(READABLE))
def test_every_kind_of_source_gives_the_same_pixels(name, tmp_path):
    path = READABLE[name][0](tmp_path)
    reference = np.asarray(read_image(path))
    with open(path, "rb") as file:
        from_file = read_image(file)
    with Image.open(path) as opened:
        from_pil = read_image(opened)  # a lazily opened PIL image: same orientation and colours
        from_artwork = read_image(types.SimpleNamespace(image=opened))
    for image in (read_image(path.read_bytes()), read_image(str(path)), from_file, from_pil, from_artwork):
        np.testing.assert_array_equal(np.asarray(image), reference)
    rgba = read_image(path, alpha=True)
    assert rgba.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(to_rgb(rgba)), reference)  # compositing later gives the same


def test_alpha_is_kept_when_asked(tmp_path):
    image = read_image(rgba_png(tmp_path), alpha=True)
    assert image.getpixel((0, 0)) == (200, 30, 30, 0) and image.getpixel((1, 0)) == (0, 0, 255, 64)
    assert read_image(palette_png(tmp_path), alpha=True).getpixel((0, 0))[3] == 0
    assert read_image(cmyk_tif(tmp_path), alpha=True).getpixel((5, 5)) == (255, 0, 0, 255)  # opaque


def test_an_animation_gives_its_first_frame_and_keeps_the_callers_frame(tmp_path):
    with Image.open(animated_gif(tmp_path)) as gif:
        gif.seek(1)
        assert gif.convert("RGB").getpixel((0, 0)) == (0, 0, 255)
        assert read_image(gif).getpixel((0, 0)) == (255, 0, 0)
        assert gif.tell() == 1


def test_the_result_is_a_new_image(tmp_path):
    original = Image.new("RGB", (SIDE, SIDE), (1, 2, 3))
    copy = read_image(original)
    copy.putpixel((0, 0), (9, 9, 9))
    assert original.getpixel((0, 0)) == (1, 2, 3)


# ---------------------------------------------------------------- colour modes in memory


def _palette_with_alpha():
    image = Image.new("P", (2, 2), 0)
    image.putpalette([10, 20, 30, 0, 40, 50, 60, 255], "RGBA")
    return image


def _transparent_colour(mode, value, key):
    image = Image.new(mode, (2, 2), value)
    image.info["transparency"] = key
    return image


# (mode, the image, the RGB pixel at (0, 0))
MODES = [
    ("RGBA", Image.new("RGBA", (2, 2), (255, 0, 0, 128)), (255, 127, 127)),  # half red over white
    ("RGBa", Image.new("RGBa", (2, 2), (0, 0, 0, 0)), WHITE),
    ("LA", Image.new("LA", (2, 2), (0, 0)), WHITE),
    ("La", Image.new("La", (2, 2), (100, 128)), (227, 227, 227)),  # premultiplied 100 at half alpha: 199 over white
    ("PA", Image.new("PA", (2, 2), (0, 0)), WHITE),
    ("P + palette alpha", _palette_with_alpha(), WHITE),
    ("P + transparency", _transparent_colour("P", 0, 0), WHITE),
    ("RGB + transparent colour", _transparent_colour("RGB", (200, 30, 30), (200, 30, 30)), WHITE),
    ("L + transparent colour", _transparent_colour("L", 7, 7), WHITE),
    ("L", Image.new("L", (2, 2), 7), (7, 7, 7)),
    ("1", Image.new("1", (2, 2), 1), WHITE),
    ("CMYK", Image.new("CMYK", (2, 2), (0, 255, 255, 0)), (255, 0, 0)),
    ("YCbCr", Image.new("RGB", (2, 2), (10, 200, 30)).convert("YCbCr"), None),  # None: as PIL converts back
    ("I;16", Image.fromarray(np.full((2, 2), 32768, dtype=np.uint16)), (128, 128, 128)),
    ("I;16B", Image.fromarray(np.full((2, 2), 32768, dtype=">u2")), (128, 128, 128)),
    ("I", Image.new("I", (2, 2), 65535), WHITE),
    ("I mid", Image.new("I", (2, 2), 32768), (128, 128, 128)),
    ("F", Image.new("F", (2, 2), 0.5), (128, 128, 128)),
    ("F NaN", Image.new("F", (2, 2), float("nan")), (0, 0, 0)),
]


@pytest.mark.parametrize("name, image, want", MODES, ids=[row[0] for row in MODES])
def test_colour_modes(name, image, want):
    rgb = read_image(image)
    if want is None:
        want = image.convert("RGB").getpixel((0, 0))
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == want
    assert to_rgb(image).getpixel((0, 0)) == want


def test_has_alpha():
    assert has_alpha(Image.new("RGBA", (1, 1))) and has_alpha(_palette_with_alpha())
    assert has_alpha(_transparent_colour("RGB", (0, 0, 0), (0, 0, 0)))
    assert not has_alpha(Image.new("RGB", (1, 1))) and not has_alpha(Image.new("I;16", (1, 1)))


def test_arrays():
    assert read_image(np.full((SIDE, SIDE, 3), 9, dtype=np.uint8)).getpixel((0, 0)) == (9, 9, 9)
    assert read_image(np.full((SIDE, SIDE), 32768, dtype=np.uint16)).getpixel((0, 0)) == (128, 128, 128)
    assert read_image(np.full((SIDE, SIDE), 0.25, dtype=np.float32)).getpixel((0, 0)) == (64, 64, 64)
    with pytest.raises(KitError, match=r"^source: a float64 array of shape \(2, 3, 4, 5\) is not an image"):
        read_image(np.zeros((2, 3, 4, 5)), field="source")


# ---------------------------------------------------------------- unreadable files: one reason everywhere


def _assert_clean(err):
    """No chained traceback: the message says it all."""
    assert err.__cause__ is None and (err.__suppress_context__ or err.__context__ is None)


@pytest.mark.parametrize("name", list(UNREADABLE))
def test_every_reader_refuses_with_the_same_reason(name, tmp_path, spy, embedder, encoder):
    build, reason = UNREADABLE[name]
    path = build(tmp_path)
    if name in NOT_TO_OPEN:
        spy.add(os.path.realpath(path))
    with pytest.raises(ReadError) as caught:
        read_image(path, field="portrait")
    err = caught.value
    assert isinstance(err, KitError) and err.reason.startswith(reason)
    assert str(err) == f"portrait: cannot read an image from {str(path)!r}: {err.reason}"
    _assert_clean(err)

    if name != "folder":  # the Embedder reads a folder's images instead
        assert via_embed(embedder, path) == (None, err.reason)
        emb = embedder[0]
        with pytest.raises(ReadError, match="^image: cannot read an image from ") as raised:
            emb.embed_images([path], errors="raise")
        assert raised.value.reason == err.reason
        _assert_clean(raised.value)
    assert via_collection(encoder, path) == (None, err.reason)  # an error row, and the batch goes on
    with pytest.raises(KitError) as refused:
        via_restore(path, "original")
    assert str(refused.value) == f"original: cannot read an image from {str(path)!r}: {err.reason}"
    _assert_clean(refused.value)
    assert via_atlas(path) is None


def test_a_bad_file_is_one_error_row_in_a_batch(tmp_path, encoder):
    good, bad = rgba_png(tmp_path), text_png(tmp_path)
    enc, seen = encoder
    seen.clear()
    out = enc({"file": [str(good), str(bad), str(good)], "id": ["a", "b", "c"]})
    assert out["error"][0] == out["error"][2] == "" and out["error"][1].startswith(UNREADABLE["text"][1])
    assert list(out["width"]) == [SIDE, 0, SIDE] and len(seen) == 2
    assert list(out["id"]) == ["a", "b", "c"]


def test_caps_can_be_lowered(tmp_path):
    path = rgba_png(tmp_path)
    with pytest.raises(ReadError, match=r"too large: 16 x 16 pixels is over the limit of 255"):
        read_image(path, max_pixels=255)
    assert read_image(path, max_pixels=256).size == (SIDE, SIDE)
    size = path.stat().st_size
    with pytest.raises(ReadError, match=rf"too large: {size:,} bytes is over the limit of {size - 1:,}"):
        read_image(path, max_bytes=size - 1)
    with pytest.raises(ReadError, match="too large"):
        read_image(path.read_bytes(), max_bytes=size - 1)
    with pytest.raises(ReadError, match="too large: over the limit of"), open(path, "rb") as file:
        read_image(file, max_bytes=size - 1)
    with pytest.raises(ReadError, match="too large: 16 x 16 pixels"):
        read_image(Image.new("RGB", (SIDE, SIDE)), max_pixels=100)
    for bad in (0, -1, 1.5, True, None):
        with pytest.raises(KitError, match="max_pixels must be a whole number"):
            read_image(path, max_pixels=bad)
    from kit.maps.embed import Embedder

    assert "too large" in Embedder(cache=False, max_pixels=100).embed_images([path]).errors[0][1]


def test_bad_sources(tmp_path):
    with pytest.raises(KitError, match="^source must be a PIL image, an Artwork, .* got int$"):
        read_image(42, field="source")
    path = rgba_png(tmp_path)
    with pytest.raises(KitError, match="text mode: open it with 'rb'"), open(path, encoding="latin-1") as text:
        read_image(text)
    with pytest.raises(ReadError, match="^image: cannot read an image from the bytes given: empty file$"):
        read_image(b"")


def test_read_errors_survive_pickling():
    """Ray sends errors between processes."""
    err = ReadError("portrait", "'a.png'", "empty file")
    again = pickle.loads(pickle.dumps(err))
    assert (type(again), str(again), again.reason, again.field) == (ReadError, str(err), "empty file", "portrait")


def test_read_file_caps_a_file_that_grows(tmp_path, monkeypatch):
    path = tmp_path / "growing.bin"
    path.write_bytes(b"x" * 10)
    real_stat = os.stat
    monkeypatch.setattr(
        os, "stat", lambda p, *a, **k: types.SimpleNamespace(st_mode=real_stat(p).st_mode, st_size=4)
    )  # what a stat saw before the file grew
    with pytest.raises(ReadError, match="too large: over the limit of 5 bytes"):
        read_file(path, max_bytes=5)
    assert read_file(path, max_bytes=10) == b"x" * 10


# ---------------------------------------------------------------- saving


@pytest.mark.parametrize(
    "image, mode, pixel",
    [
        (Image.fromarray(np.full((SIDE, SIDE), 32768, dtype=np.uint16)), "RGB", (128, 128, 128)),
        (Image.new("I", (SIDE, SIDE), 65535), "RGB", WHITE),
        (Image.new("F", (SIDE, SIDE), 0.5), "RGB", (128, 128, 128)),
        (Image.new("CMYK", (SIDE, SIDE), (0, 255, 255, 0)), "RGB", (255, 0, 0)),
        (Image.new("RGBa", (SIDE, SIDE), (0, 0, 0, 0)), "RGBA", (0, 0, 0, 0)),
    ],
    ids=["I;16", "I", "F", "CMYK", "RGBa"],
)
def test_artwork_save_scales_16_bit_and_keeps_alpha(tmp_path, image, mode, pixel):
    from kit.provenance.artwork import Artwork, load, pixel_hash
    from kit.provenance.record import Record

    path = Artwork(image, Record(prompt="grey", width=SIDE, height=SIDE)).save(tmp_path)
    art = load(path)
    assert art.image.mode == mode and art.image.getpixel((0, 0)) == pixel  # 16-bit grey is 128, not 255
    assert art.verified and art.record.sha256 == pixel_hash(art.image)
