"""The embedder: vectors, batching, the disk cache, robust image reading, model loading."""

import io
import os
import sqlite3
import warnings

import numpy as np
import pytest
from fifo import bounded
from PIL import Image

from kit import KitError, embed, presets
from kit.files import read_image
from kit.maps.embed import Embedder, VectorCache, load_clip


@pytest.fixture(scope="module")
def base():
    """One loaded tiny embedder without a cache; other embedders borrow its model."""
    emb = Embedder("tiny", device="cpu", cache=False)
    emb.model  # noqa: B018 - load once for the module
    return emb


def make(base, **kwargs):
    emb = Embedder("tiny", device="cpu", **kwargs)
    emb._clip = base._clip  # same seeded weights; saves a load per test
    return emb


def count_calls(monkeypatch, model, name):
    calls = []
    forward = getattr(model, name)

    def counted(x, **kwargs):
        calls.append(len(x))
        return forward(x, **kwargs)

    monkeypatch.setattr(model, name, counted)
    return calls


def noise(seed, size=(48, 40)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def save_images(folder, n, fmt="PNG", size=(48, 40)):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img{i:04d}.{fmt.lower()}"
        noise(i, size).save(path, fmt)
        paths.append(path)
    return paths


# ---------------------------------------------------------------- vectors


def test_text_vectors_are_unit_float32_rows(base):
    vectors = base.texts(["a portrait in ukiyo-e style", "art deco poster", "batik pattern"])
    assert vectors.shape == (3, base.dim) == (3, 64)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


def test_image_vectors_are_unit_float32_rows(base, tmp_path):
    paths = save_images(tmp_path, 3)
    vectors = base.images(paths + [noise(99)])
    assert vectors.shape == (4, 64) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_same_input_same_vector_across_embedders(base, tmp_path):
    (path,) = save_images(tmp_path, 1)
    fresh = Embedder("tiny", device="cpu", cache=False)  # its own load: the seeded weights repeat
    np.testing.assert_array_equal(base.texts(["a cat"]), fresh.texts(["a cat"]))
    np.testing.assert_array_equal(base.images([path]), fresh.images([path]))
    assert fresh.model_id == base.model_id and fresh.model_id.startswith("kit-tiny-clip/toy@")


def test_batched_equals_one_by_one(base, tmp_path):
    texts = [f"portrait number {i} in the style of a mural" for i in range(10)]
    paths = save_images(tmp_path, 10)
    single = make(base, cache=False, batch_size=1)
    batched = make(base, cache=False, batch_size=32)
    np.testing.assert_allclose(single.texts(texts), batched.texts(texts), atol=1e-5)
    np.testing.assert_allclose(single.images(paths), batched.images(paths), atol=1e-5)


def test_pil_image_and_its_png_file_embed_the_same(base, tmp_path):
    image = noise(5)
    image.save(tmp_path / "same.png")
    np.testing.assert_allclose(base.images([image]), base.images([tmp_path / "same.png"]), atol=1e-6)


def test_empty_inputs_give_empty_arrays_without_loading(tmp_path):
    emb = Embedder("tiny", device="cpu", cache=tmp_path / "c.sqlite")
    assert emb.texts([]).shape == (0, 64)
    assert emb.images([]).shape == (0, 64)
    (tmp_path / "empty").mkdir()
    result = emb.embed_images([tmp_path / "empty"])
    assert result.vectors.shape == (0, 64) and result.items == [] and result.errors == []
    assert emb._clip is None


def test_bad_text_input_names_the_index(base):
    with pytest.raises(KitError, match=r"texts\[1\] is empty"):
        base.texts(["a cat", "   "])
    with pytest.raises(KitError, match=r"texts\[0\] must be a string"):
        base.texts([3])
    with pytest.raises(KitError, match=r"images\[1\] must be a PIL image"):
        base.images([noise(0), 42])
    with pytest.raises(KitError, match="errors must be"):
        base.images([noise(0)], errors="ignore")
    with pytest.raises(KitError, match="batch_size"):
        Embedder("tiny", batch_size=0, cache=False)


def test_long_text_is_truncated_to_the_context(base):
    long = "a very detailed portrait of an elder " * 30  # far past 77 tokens
    vectors = base.texts([long, long + " with a red scarf and gold leaf"])
    np.testing.assert_array_equal(vectors[0], vectors[1])


# ---------------------------------------------------------------- the cache


def test_cache_hit_is_identical_and_skips_the_model(base, tmp_path, monkeypatch):
    paths = save_images(tmp_path / "img", 5)
    emb = make(base, cache=tmp_path / "cache.sqlite")
    first_texts = emb.texts(["a cat", "a dog"])
    first_images = emb.images(paths + [noise(50)])

    text_calls = count_calls(monkeypatch, emb.model, "encode_text")
    image_calls = count_calls(monkeypatch, emb.model, "encode_image")
    again = make(base, cache=tmp_path / "cache.sqlite")  # a new embedder reads the same file
    np.testing.assert_array_equal(again.texts(["a cat", "a dog"]), first_texts)
    np.testing.assert_array_equal(again.images(paths + [noise(50)]), first_images)
    assert text_calls == [] and image_calls == []

    again.texts(["a cat", "a new text"])  # only the new text goes through the model
    assert text_calls == [1]


def test_cache_is_keyed_by_model_id(base, tmp_path, monkeypatch):
    path = tmp_path / "cache.sqlite"
    make(base, cache=path).texts(["a cat"])
    other = make(base, cache=path)
    other.model_id = "ViT-B-32/some-other-weights"
    calls = count_calls(monkeypatch, other.model, "encode_text")
    other.texts(["a cat"])
    assert calls == [1]
    with sqlite3.connect(path) as db:
        models = sorted(row[0] for row in db.execute("SELECT model FROM vectors"))
    assert models == sorted([base.model_id, "ViT-B-32/some-other-weights"])


def test_repeats_in_one_call_run_once(base, tmp_path, monkeypatch):
    (path,) = save_images(tmp_path, 1)
    emb = make(base, cache=False)
    calls = count_calls(monkeypatch, emb.model, "encode_image")
    vectors = emb.images([path, str(path), path])
    assert calls == [1]
    np.testing.assert_array_equal(vectors[0], vectors[2])


def test_default_cache_lives_in_kit_cache(base, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path / "kitcache"))
    emb = make(base)
    emb.texts(["a cat"])
    assert emb.cache.path == tmp_path / "kitcache" / "embeddings.sqlite"
    assert emb.cache.path.stat().st_size > 0
    assert VectorCache(tmp_path / "kitcache").clear(emb.model_id) == 1


def test_a_corrupt_cache_file_warns_and_embeds_anyway(base, tmp_path):
    bad = tmp_path / "cache.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    emb = make(base, cache=bad)
    with pytest.warns(UserWarning, match="not usable"):
        vectors = emb.texts(["a cat"])
    np.testing.assert_array_equal(vectors, base.texts(["a cat"]))


def test_a_cached_second_pass_runs_no_model(base, tmp_path, monkeypatch):
    """The cache's promise, without a clock: a second pass over the same files reads every vector from
    the cache and never calls the image model (bench/bench_embed.py measures how much faster that is)."""
    paths = save_images(tmp_path / "img", 20, fmt="JPEG", size=(64, 64))
    emb = make(base, cache=tmp_path / "cache.sqlite")
    first = emb.images(paths)
    calls = []
    model = emb.model
    original = model.encode_image
    monkeypatch.setattr(model, "encode_image", lambda *a, **k: calls.append(1) or original(*a, **k))
    second = emb.images(paths)
    np.testing.assert_array_equal(first, second)
    assert calls == []


# ---------------------------------------------------------------- reading images


# Each colour mode's conversion is pinned in test_images.py (kit.files.read_image, the one reader).


def write_odd_files(folder):
    """Every kind of file a real folder of scans holds; returns {name: what it should become}."""
    folder.mkdir()
    (folder / "text.png").write_text("not an image at all")
    (folder / "zero.jpg").write_bytes(b"")
    buffer = io.BytesIO()
    noise(1, (64, 64)).save(buffer, "JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(folder / "cmyk.jpg")
    Image.new("RGBA", (16, 16), (0, 0, 255, 64)).save(folder / "rgba.png")
    gradient = np.arange(256, dtype=np.uint16).reshape(16, 16) * 257
    Image.fromarray(gradient).save(folder / "grey16.png")
    Image.new("RGB", (16, 16), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(
        folder / "palette.gif"
    )
    (folder / "sub").mkdir()
    noise(2).save(folder / "sub" / "nested.png")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    (folder / "._hidden.jpg").write_bytes(b"macOS resource fork junk")
    return folder


def test_decode_gives_correct_rgb_pixels(tmp_path):
    folder = write_odd_files(tmp_path / "odd")
    cmyk = np.asarray(read_image((folder / "cmyk.jpg").read_bytes()), dtype=int)
    assert np.abs(cmyk - [255, 0, 0]).max() <= 8  # CMYK red, JPEG-lossy
    rgba = read_image((folder / "rgba.png").read_bytes())
    assert rgba.mode == "RGB" and rgba.getpixel((0, 0)) == (191, 191, 255)  # a quarter blue on white
    grey = np.asarray(read_image((folder / "grey16.png").read_bytes()))
    np.testing.assert_array_equal(grey[..., 0].ravel(), np.arange(256))  # 16-bit scaled, not clipped
    assert read_image((folder / "palette.gif").read_bytes()).getpixel((3, 3)) == (10, 200, 30)


def test_bad_images_are_skipped_and_reported(base, tmp_path):
    folder = write_odd_files(tmp_path / "odd")
    result = base.embed_images([folder, tmp_path / "missing.png"])
    names = [p.name for p in result.items]
    assert names == ["cmyk.jpg", "grey16.png", "palette.gif", "rgba.png", "nested.png"]  # sorted by path parts
    assert result.vectors.shape == (5, 64)
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
    reasons = {p.name: reason for p, reason in result.errors}
    assert list(reasons) == ["text.png", "truncated.jpg", "zero.jpg", "missing.png"]  # input order
    assert "not an image" in reasons["text.png"]
    assert "truncated" in reasons["truncated.jpg"]
    assert reasons["zero.jpg"] == "empty file"
    assert reasons["missing.png"] == "no such file"
    # each row belongs to its item: the RGBA file embeds like its composite on white
    row = names.index("rgba.png")
    np.testing.assert_allclose(
        result.vectors[row], base.images([Image.new("RGB", (16, 16), (191, 191, 255))])[0], atol=1e-6
    )

    with pytest.warns(UserWarning, match="skipped 4 of 9 images"):
        assert base.images([folder, tmp_path / "missing.png"]).shape == (5, 64)
    with pytest.raises(KitError, match="text.png"):
        base.images([folder], errors="raise")


def test_a_folders_broken_link_device_link_and_fifo_are_errors_never_dropped(base, tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    noise(0).save(folder / "good.png")
    (folder / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (folder / "device.png").symlink_to("/dev/null")
    os.mkfifo(folder / "pipe.png")
    (folder / "album.png").mkdir()  # a folder named like an image is a folder: its images count
    noise(1).save(folder / "album.png" / "inner.png")
    result = bounded(lambda: base.embed_images(folder), folder / "pipe.png")
    assert [p.name for p in result.items] == ["inner.png", "good.png"]  # sorted by path parts
    reasons = {p.name: reason for p, reason in result.errors}
    assert reasons == {
        "device.png": "a device, not a regular file",
        "gone.png": "no such file",
        "pipe.png": "a FIFO (named pipe), not a regular file",
    }


def test_a_text_with_a_lone_surrogate_is_a_clear_error(base):
    with pytest.raises(KitError, match=r"texts\[1\] .*surrogate"):
        base.texts(["a cat", "a dog \ud800"])


def test_huge_images_are_skipped_before_decoding(base, tmp_path):
    Image.new("1", (9000, 9000)).save(tmp_path / "bomb.png")  # 81 megapixels in a few kilobytes
    noise(3).save(tmp_path / "fine.png")
    result = base.embed_images([tmp_path / "bomb.png", tmp_path / "fine.png"])
    assert [p.name for p in result.items] == ["fine.png"]
    assert "too large: 9000 x 9000" in result.errors[0][1]
    small_limit = make(base, cache=False, max_pixels=1000)
    assert "too large" in small_limit.embed_images([tmp_path / "fine.png"]).errors[0][1]


# ---------------------------------------------------------------- loading


def test_weights_round_trip_through_open_clip_loader(base, tmp_path):
    """Saved with safetensors, loaded by create_model_and_transforms(name, pretrained=file)."""
    import torch
    from safetensors.torch import save_file

    model = load_clip("tiny", "cpu")[0]
    with torch.no_grad():
        model.visual.proj.mul_(-1.0)  # make the saved weights differ from the seeded ones
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, tmp_path / "tiny_clip.safetensors")

    preset = presets.Preset(
        name="tiny-file",
        model=None,
        clip_model="kit-tiny-clip",
        clip_pretrained=str(tmp_path / "tiny_clip.safetensors"),
    )
    loaded = Embedder(preset, device="cpu", cache=False, dtype="float32")  # as `model`, for equal bits
    assert loaded.model_id.startswith("kit-tiny-clip/tiny_clip.safetensors@")
    image = noise(4)
    with torch.inference_mode():
        # normalised as the Embedder does (in numpy): torch's own normalize may differ in the last bit
        expected = embed.unit_float32(model.encode_image(loaded.preprocess(image)[None]))
    np.testing.assert_array_equal(loaded.images([image]), expected)
    np.testing.assert_allclose(loaded.images([image]), -base.images([image]), atol=1e-6)  # flipped projection
    np.testing.assert_array_equal(loaded.texts(["a cat"]), base.texts(["a cat"]))  # text tower untouched


def test_pickle_weights_are_refused(tmp_path):
    (tmp_path / "w.pt").write_bytes(b"pickle")
    preset = presets.Preset(name="x", model=None, clip_model="kit-tiny-clip", clip_pretrained=str(tmp_path / "w.pt"))
    with pytest.raises(KitError, match="safetensors"):
        load_clip(preset, "cpu")


def test_a_bfloat16_embedder_keeps_its_vectors_apart_and_agrees_with_float32(tmp_path):
    image = noise(4)
    full = Embedder("tiny", device="cpu", cache=tmp_path / "c.sqlite", dtype="float32")
    fast = Embedder("tiny", device="cpu", cache=tmp_path / "c.sqlite", dtype="bfloat16")
    assert fast.model_id == full.model_id + ":bfloat16"  # one cache, each dtype's rows under its own key
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "not cached" warning: bfloat16 rows are unit rows in float32 too
        a, b = full.images([image]), fast.images([image])
    assert a.dtype == b.dtype == np.float32 and not np.array_equal(a, b)
    assert np.allclose(np.linalg.norm(b, axis=1), 1, atol=1e-6)
    assert float((a * b).sum()) > 0.99  # unit rows: the cosine between the two
    with sqlite3.connect(tmp_path / "c.sqlite") as db:  # both kept, each under its own model id
        assert sorted(m for (m,) in db.execute("SELECT model FROM vectors")) == sorted([full.model_id, fast.model_id])


def isolated_hub(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))


def test_real_preset_offline_and_uncached_names_kit_download(tmp_path, monkeypatch):
    isolated_hub(monkeypatch, tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    emb = Embedder("sd-turbo", device="cpu", cache=False, dtype="float32")
    assert emb.model_id == "ViT-B-32/laion2b_s34b_b79k" and emb.dim == 512  # known without weights
    with pytest.raises(KitError, match="kit download sd-turbo") as caught:
        emb.texts(["a cat"])
    assert "KIT_PRESET=tiny" in str(caught.value) and "clip" in str(caught.value)


def test_failed_download_names_kit_download(tmp_path, monkeypatch):
    import open_clip

    isolated_hub(monkeypatch, tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")

    def no_network(*args, **kwargs):
        raise RuntimeError("Failed to download weights for tag 'laion2b_s34b_b79k': connection refused")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", no_network)
    with pytest.raises(KitError, match="kit download sd-turbo.*") as caught:
        load_clip("sd-turbo", "cpu")
    assert "connection refused" in str(caught.value)


def test_unknown_clip_names_are_clear():
    with pytest.raises(KitError, match="unknown open_clip model"):
        load_clip(presets.Preset(name="x", model=None, clip_model="ViT-Nope", clip_pretrained="random"), "cpu")
    with pytest.raises(KitError, match="known tags are"):
        load_clip(presets.Preset(name="x", model=None, clip_model="ViT-B-32", clip_pretrained="no-such-tag"), "cpu")


def test_no_warnings_on_a_clean_run(base, tmp_path):
    (path,) = save_images(tmp_path, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        base.images([path])
        base.texts(["a cat"])
