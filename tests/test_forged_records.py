"""A file is data, never a command: every record read from a PNG is checked like a typed request,
before any model work, and a replay says when the record names another model."""

import base64
import dataclasses
import json

import pytest
from PIL import Image, PngImagePlugin

import kit
from kit import KitError


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """(studio, a generated PNG, a batch-made PNG, a walk frame, a fusion, a restoration) on the tiny preset."""
    studio = kit.Studio(preset="tiny", device="cpu")
    studio.progress_bar = False
    folder = tmp_path_factory.mktemp("made")
    (one,) = studio.generate("a weaver", seed=3)
    pair = studio.generate("a potter", seed=5, n=2)
    frame = studio.walk([("a weaver", 1), ("a potter", 2)], frames=3)[1]
    fused = studio.fuse({"ukiyo-e": 0.5, "art-deco": 0.5}, "a weaver", seed=2)
    image = Image.new("RGB", (64, 64), (120, 80, 40))
    image.save(folder / "source.png")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 40, 40))
    restored = studio.restore(folder / "source.png", mask, seed=1)
    restyled = studio.restyle(folder / "source.png", "a weaver", seed=4, strength=0.5)
    paths = {
        name: art.save(folder)
        for name, art in [
            ("generate", one),
            ("batch", pair[1]),
            ("walk", frame),
            ("fuse", fused),
            ("restore", restored),
            ("restyle", restyled),
        ]
    }
    return studio, paths


def forge(path, tmp_path, **changes):
    """A copy of the PNG at `path` whose kit record has `changes` (dotted keys reach into dicts)."""
    original = kit.load(path)
    data = original.record.to_dict()
    for key, value in changes.items():
        target, *rest = key.split("__")
        if rest:
            node = data[target]
            for part in rest[:-1]:
                node = node[part]
            node[rest[-1]] = value
        else:
            data[target] = value
    info = PngImagePlugin.PngInfo()
    info.add_itxt("kit", json.dumps(data))  # as a forger writes it: the kit's own checks never ran
    out = tmp_path / f"forged-{len(list(tmp_path.iterdir()))}.png"
    original.image.save(out, pnginfo=info)
    return out


FORGERIES = [
    ("generate", {"steps": 100_000}, "steps must be a whole number from 1 to 150"),
    ("generate", {"steps": "many"}, "Record.steps must be"),
    ("generate", {"guidance": float("nan")}, "guidance"),
    ("generate", {"width": 4096, "height": 4096}, "size 4096"),
    ("generate", {"width": 63}, "size 63"),
    ("generate", {"seed": -1}, "record.seed"),
    ("generate", {"seed": 2**70}, "record.seed"),
    ("generate", {"prompt": "x" * 20_000}, "record.prompt has 20000 characters"),
    ("generate", {"prompt": ""}, "record.prompt is empty"),
    ("generate", {"negative": ["not", "text"]}, "Record.negative must be a string"),
    ("generate", {"decoder": "../../etc"}, "record.decoder"),
    ("generate", {"kind": "shell"}, "record.kind 'shell' cannot be rendered"),
    ("batch", {"extra__batch__index": 7}, "record.extra.batch.index"),
    ("batch", {"extra__batch__index": "0"}, "record.extra.batch.index"),
    ("batch", {"extra__batch__members": [{"seed": 1, "prompt": "a"}] * 2000}, "2000 members"),
    ("batch", {"extra__batch__members": []}, "0 members"),
    (
        "batch",
        {"extra__batch__members": [{"seed": "x", "prompt": "a"}, {"seed": 1, "prompt": "b"}]},
        "record.extra.batch: Record.seed must be an integer",
    ),
    (
        "batch",
        {"extra__batch__members": [{"seed": 1, "prompt": "a", "steps": 9}, {"seed": 1, "prompt": "b"}]},
        "members must be objects with the fields",
    ),
    ("batch", {"extra__batch": "all of them"}, "record.extra.batch must be an object"),
    ("walk", {"walk__t": 7}, "walk record is incomplete or damaged"),
    ("walk", {"walk__keyframes": [["a", 1]]}, "walk record is incomplete or damaged"),
    ("walk", {"walk__prompts": ["x" * 10_000, "y"]}, "walk record is incomplete or damaged"),
    ("walk", {"walk": None}, "walk record is incomplete or damaged"),
    ("fuse", {"fusion": {"ukiyo-e": "much"}}, r"Record.fusion\['ukiyo-e'\] must be a number"),
    ("fuse", {"fusion": {}}, "weights"),
    ("fuse", {"subject": None}, "record.subject"),
    ("restore", {"restore__mask_png": "not base64!"}, "record.restore.mask_png is not a readable PNG"),
    ("restore", {"restore__mask_png": base64.b64encode(b"GIF89a garbage").decode()}, "mask_png is not a readable"),
    ("restore", {"restore__work_size": [4096, 4096]}, "record.restore.work_size"),
    ("restore", {"restore__work_size": "big"}, "record.restore.work_size"),
    ("restore", {"restore__strength": 0}, "record.restore.strength"),
    ("restore", {"restore": "gone"}, "Record.restore must be a dict"),
    ("restore", {"restore": {"mask_png": ""}}, "record.restore must be an object naming the source"),
    ("restore", {"width": 10**9}, "record.width"),
    ("restore", {"restore__source_path": 7}, "record.restore.source_path must be a file or folder path"),
    ("restore", {"restore__source_path": ["a", "b"]}, "record.restore.source_path must be a file or folder path"),
    ("restore", {"restore__source_path": "/tmp/" + "x" * 300}, "record.restore.source_path has a name of 300"),
    ("restore", {"restore__source_path": "/x" * 3000}, "record.restore.source_path is 6,000 bytes long"),
    ("restore", {"restore__source_path": "a\x00b"}, "record.restore.source_path holds a NUL byte"),
    ("restyle", {"restyle__source_path": 7}, "record.restyle.source_path must be a file or folder path"),
    ("restyle", {"restyle__source_path": {"a": 1}}, "record.restyle.source_path must be a file or folder path"),
    ("restyle", {"restyle__source_path": "/tmp/" + "y" * 300}, "record.restyle.source_path has a name of 300"),
    ("restyle", {"sha256": "/../../escaped"}, "Record.sha256 must be the 64 hex digits"),
]


@pytest.mark.parametrize("source, changes, message", FORGERIES, ids=[f"{s}-{'-'.join(c)}" for s, c, _ in FORGERIES])
def test_a_forged_record_is_a_clear_error_before_any_model_work(made, tmp_path, source, changes, message):
    studio, paths = made
    fresh = kit.Studio(preset="tiny", device="cpu")  # nothing loaded: any model work would show
    forged = forge(paths[source], tmp_path, **changes)
    with pytest.raises(KitError, match=message):
        kit.replay(forged, fresh)
    assert fresh.loaded == ()


@pytest.mark.parametrize("source", ["generate", "batch", "walk", "fuse", "restore"])
def test_unforged_records_still_replay_exactly(made, source):
    studio, paths = made
    result = kit.replay(paths[source], studio)
    assert result.match and result.differences == {}


def test_a_record_of_another_model_is_never_confirmed(made, tmp_path):
    studio, paths = made
    forged = forge(paths["generate"], tmp_path, model="stabilityai/sd-turbo", preset="sd-turbo", revision="0123abcd")
    result = kit.replay(forged, studio)
    assert result.max_abs_diff == 0  # the tiny preset makes the same pixels ...
    assert not result.match  # ... but that confirms nothing about sd-turbo
    assert set(result.differences) == {"preset", "model", "revision"}
    assert "made with another preset, model, revision" in repr(result)


def test_render_checks_records_made_in_code_too(made):
    studio, _ = made
    record = dataclasses.replace(studio.plan("a weaver", seed=1)[0], steps=10**6)
    with pytest.raises(KitError, match="steps"):
        studio.render(record)


def test_a_mask_path_that_is_a_fifo_or_device_is_refused_unread(made, tmp_path):
    import os

    studio, paths = made
    fifo = tmp_path / "mask.png"
    os.mkfifo(fifo)
    for mask in (fifo, "/dev/zero"):
        with pytest.raises(KitError, match="mask: cannot read an image"):
            studio.restore(paths["generate"], mask, seed=1)
