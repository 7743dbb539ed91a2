"""Who did what: every record the kit makes says what the person did and what the model did, and the
C2PA manifest says it in the standard's terms (the source as parentOf ingredient, c2pa.drawing by a
person, c2pa.edited by the model with compositeWithTrainedAlgorithmicMedia)."""

import numpy as np
import pytest
from PIL import Image, ImageDraw
from test_credentials import make_chain, needs_c2pa

import kit
from kit import credentials
from kit.errors import KitError
from kit.provenance.artwork import pixel_hash
from kit.provenance.record import Drawn, Record

SIZE = 64


@pytest.fixture(scope="module")
def chain():
    return make_chain()  # a throwaway CA and signing certificate, made at run time


def _actions(record):
    return [entry["action"] for entry in record.authorship["person"]]


def _entry(record, action):
    found = [entry for entry in record.authorship["person"] if entry["action"] == action]
    assert len(found) == 1, (action, record.authorship)
    return found[0]


@pytest.fixture(scope="module")
def source_file(tmp_path_factory):
    image = Image.new("RGB", (SIZE, SIZE), (90, 140, 200))
    ImageDraw.Draw(image).ellipse((16, 10, 48, 50), fill=(220, 180, 140))
    path = tmp_path_factory.mktemp("photos") / "sketch.png"
    image.save(path)
    return path


# ---------------------------------------------------------------- the engine fills it from the arguments


def test_generate_credits_the_prompt_style_and_a_chosen_seed(studio):
    first, second = studio.generate("portrait of an elder", style="ukiyo-e", seed=7, n=2, size=SIZE)
    record = second.record
    assert _actions(record) == ["typed the prompt", "chose the style", "chose the seed"]
    assert _entry(record, "typed the prompt")["prompt"] == "portrait of an elder"  # what was typed, not the template
    assert _entry(record, "chose the style")["style"] == "ukiyo-e"
    assert _entry(record, "chose the seed")["seed"] == 7 and record.seed == 8  # the batch's first seed was chosen
    model = record.authorship["model"]
    assert model == {
        "model": "kit-tiny",
        "preset": "tiny",
        "kind": "generate",
        "steps": record.steps,
        "did": model["did"],
    }
    sentences = record.describe_authorship()
    assert sentences[0] == "The person typed the prompt \u201cportrait of an elder\u201d."
    assert "seed 7" in sentences[2] and "8" in sentences[2]
    assert sentences[-1].startswith(f"The model (kit-tiny, {record.steps} steps)")


def test_a_seed_left_to_chance_is_not_chosen_by_the_person(studio):
    (art,) = studio.generate("portrait of an elder", size=SIZE)
    assert _actions(art.record) == ["typed the prompt"]
    (rolled,) = studio.generate("portrait of an elder", seed=Drawn(art.record.seed), size=SIZE)  # a dice roll
    assert _actions(rolled.record) == ["typed the prompt"]
    assert rolled.record.seed == art.record.seed and pixel_hash(rolled.image) == pixel_hash(art.image)
    (chosen,) = studio.generate("portrait of an elder", seed=art.record.seed, size=SIZE)  # typed: now it is chosen
    assert "chose the seed" in _actions(chosen.record)


def test_fusion_credits_the_weights_and_a_grid_does_not(studio):
    art = studio.fuse({"ukiyo-e": 0.6, "art-deco": 0.4}, "portrait of an elder", seed=3, size=SIZE)
    assert _actions(art.record) == ["typed the prompt", "set the fusion weights", "chose the seed"]
    assert _entry(art.record, "set the fusion weights")["weights"] == {"ukiyo-e": 0.6, "art-deco": 0.4}
    assert art.record.authorship["model"]["kind"] == "fuse"
    _sheet, cells = studio.fusion_grid(["ukiyo-e", "art-deco"], "portrait", points=2, size=SIZE)
    for cell in cells:  # the grid set each cell's weights, the person chose the styles; no seed was given
        assert _actions(cell.record) == ["typed the prompt", "chose the styles of a grid"]


def test_walk_frames_credit_the_keyframes(studio):
    frames = studio.walk([("portrait of an elder", 1), ("portrait of a child", 2, "ukiyo-e")], frames=3, size=SIZE)
    for frame in frames:
        record = frame.record
        assert _entry(record, "typed the keyframes' prompts")["prompts"] == [
            "portrait of an elder",
            "portrait of a child",
        ]
        assert _entry(record, "chose the keyframes' seeds")["seeds"] == [1, 2]
        assert _entry(record, "chose the keyframes' styles")["styles"] == ["ukiyo-e"]
        assert record.authorship["model"]["kind"] == "walk"
        assert record.parents() == []  # keyframes are prompts and seeds: no image is their source


def test_restyle_credits_the_source_the_strength_and_what_a_widget_adds(studio, source_file):
    art = studio.restyle(
        source_file,
        "portrait of an elder",
        style="ukiyo-e",
        strength=0.5,
        seed=4,
        person=[{"action": "drew", "strokes": 12}],
    )
    record = art.record
    assert _actions(record) == [
        "gave the source image",
        "typed the prompt",
        "chose the style",
        "set the strength",
        "chose the seed",
        "drew",
    ]
    assert _entry(record, "gave the source image")["sha256"] == record.restyle["source_sha256"] == record.parents()[0]
    assert record.authorship["model"]["steps_run"] == int(record.steps * 0.5)
    assert "The person drew 12 strokes." in record.describe_authorship()
    blended = studio.restyle(source_file, style={"ukiyo-e": 0.5, "art-deco": 0.5}, size=(SIZE, SIZE))
    assert _actions(blended.record) == ["gave the source image", "set the fusion weights", "set the strength"]
    with pytest.raises(KitError, match="person"):
        studio.restyle(source_file, "portrait", person={"action": "drew"})
    with pytest.raises(KitError, match="action"):
        studio.restyle(source_file, "portrait", person=[{"strokes": 3}])


def test_restore_credits_the_mask_given_or_painted(studio, source_file):
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[20:30, 10:40] = True
    art = studio.restore(source_file, mask, seed=5)
    assert _actions(art.record) == ["gave the image to restore", "gave the mask", "chose the seed"]
    assert _entry(art.record, "gave the mask")["pixels"] == 300
    painted = studio.restore(source_file, mask, person=[{"action": "painted the mask", "pixels": 300}])
    assert _actions(painted.record) == ["gave the image to restore", "painted the mask"]  # no seed was given
    assert "The person painted the mask by hand (300 pixels)." in painted.record.describe_authorship()


def test_authorship_survives_a_file_and_bad_sections_are_refused(studio, tmp_path):
    (art,) = studio.generate("portrait of an elder", seed=9, size=SIZE)
    loaded = kit.load(art.save(tmp_path))
    assert loaded.record.authorship == art.record.authorship
    old = Record.from_dict({k: v for k, v in art.record.to_dict().items() if k != "authorship"})
    assert old.authorship is None  # a record written before says nothing, and says so
    assert old.describe_authorship() == ["This record was written before the kit kept who did what."]
    for bad in ({"person": "typed"}, {"person": [{"action": ""}]}, {"person": [], "model": 3}, {"who": []}):
        with pytest.raises(KitError, match="authorship"):
            Record(authorship=bad)


# ---------------------------------------------------------------- C2PA in the standard's terms


@needs_c2pa
def test_restyle_manifest_names_the_parent_drawing_and_model_edit(studio, source_file, chain, tmp_path):
    cert_chain, key, _ = chain
    art = studio.restyle(source_file, "portrait of an elder", seed=4, person=[{"action": "drew", "strokes": 3}])
    path = art.save(tmp_path)
    credentials.sign(path, cert_chain, key)  # the source is found at the path the record names
    info = credentials.read(path)
    assert info["valid"] is True
    assert info["actions"] == ["c2pa.opened", "c2pa.drawing", "c2pa.edited"]
    assert info["ingredients"] == [{"title": "original.png", "relationship": "parentOf"}]
    drawing, edited = info["action_details"][1:]
    assert drawing["digitalSourceType"] == credentials.HUMAN_EDITS
    assert "3 strokes drawn by a person" in drawing["description"]
    assert edited["digitalSourceType"] == credentials.COMPOSITE and "kit-tiny" in edited["description"]
    assert "typed the prompt" in edited["description"]
    assert info["authorship"] == art.record.authorship


@needs_c2pa
def test_generated_image_manifest_is_created_by_the_model(studio, chain, tmp_path):
    cert_chain, key, _ = chain
    (art,) = studio.generate("portrait of an elder", seed=2, size=SIZE)
    info = credentials.read(credentials.sign(art.save(tmp_path), cert_chain, key))
    assert info["actions"] == ["c2pa.created"] and info["digital_source_types"] == [credentials.TRAINED]
    assert "chose the seed" in info["action_details"][0]["description"]
    assert info["authorship"]["person"][0] == {"action": "typed the prompt", "prompt": "portrait of an elder"}


@needs_c2pa
def test_restyle_without_its_source_asks_for_it(studio, chain, tmp_path):
    cert_chain, key, _ = chain
    art = studio.restyle(Image.new("RGB", (SIZE, SIZE), (10, 200, 30)), "portrait", seed=1)  # no path to find
    path = art.save(tmp_path)
    with pytest.raises(KitError, match="original"):
        credentials.sign(path, cert_chain, key)
