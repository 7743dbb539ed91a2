"""XMP in every saved image: the IPTC digital source type and AI fields that ExifTool and Adobe read."""

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

import kit
from kit.errors import KitError
from kit.features.damage import damage
from kit.provenance import xmp
from kit.provenance.artwork import Artwork, load
from kit.provenance.record import Record

NAMES = {  # namespace URI -> the prefix the IPTC and Adobe specifications use
    "http://ns.adobe.com/xap/1.0/": "xmp",
    "http://iptc.org/std/Iptc4xmpExt/2008-02-29/": "Iptc4xmpExt",
}
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
PROMPT = 'portrait of an elder <b>&amp; "grand-mère" 祖母 ᏣᎳᎩ'  # markup, an entity, quotes, non-latin text


def read_xmp(path) -> dict:
    """{"prefix:Name": text} from the XMP packet of a PNG, parsed as XML."""
    with Image.open(path) as png:
        packet = png.text[xmp.KEYWORD]
    root = ET.fromstring(packet)  # raises ParseError when the packet is not well-formed
    assert root.tag == "{adobe:ns:meta/}xmpmeta"
    (description,) = root.iter(f"{RDF}Description")
    found = {}
    for element in description:
        uri, name = element.tag[1:].split("}")
        found[f"{NAMES[uri]}:{name}"] = element.text
    return found


@pytest.mark.slow
def test_a_generated_image_says_it_was_made_by_a_model_from_text(studio, tmp_path):
    (art,) = studio.generate(PROMPT, seed=5)
    fields = read_xmp(art.save(tmp_path))
    assert fields == {
        "xmp:CreatorTool": f"kit {kit.__version__}",
        "Iptc4xmpExt:DigitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
        "Iptc4xmpExt:AISystemUsed": "kit-tiny",
        "Iptc4xmpExt:AISystemVersionUsed": art.record.revision,  # the tiny build the weights come from
        "Iptc4xmpExt:AIPromptInformation": PROMPT,
    }
    assert art.record.revision.startswith("tiny-")


def test_a_restoration_says_it_is_an_edit_of_an_existing_image(studio, tmp_path):
    damaged, mask = damage(Image.new("RGB", (64, 64), (90, 140, 200)), "holes", seed=4, amount=0.08)
    art = studio.restore(damaged, mask, prompt="a blue sky", negative="text, <watermark>", seed=11)
    fields = read_xmp(art.save(tmp_path))
    assert fields["Iptc4xmpExt:DigitalSourceType"] == xmp.COMPOSITE
    assert fields["Iptc4xmpExt:DigitalSourceType"].endswith("/compositeWithTrainedAlgorithmicMedia")
    assert fields["Iptc4xmpExt:AISystemUsed"] == "kit-tiny-inpaint"
    assert fields["Iptc4xmpExt:AISystemVersionUsed"] == art.record.revision
    assert fields["Iptc4xmpExt:AIPromptInformation"] == "a blue sky\nNegative prompt: text, <watermark>"
    assert "Iptc4xmpExt:AIPromptWriterName" not in fields  # a record does not know who typed the prompt


@pytest.mark.slow
def test_a_fusion_is_made_from_text(studio, tmp_path):
    art = studio.fuse({"ukiyo-e": 0.6, "art-deco": 0.4}, subject="portrait of an elder", seed=3)
    fields = read_xmp(art.save(tmp_path))
    assert fields["Iptc4xmpExt:DigitalSourceType"] == xmp.TRAINED
    assert fields["Iptc4xmpExt:AIPromptInformation"] == art.record.prompt  # the blend and the subject


@pytest.mark.parametrize(
    "record, source",
    [
        (Record(kind="generate"), xmp.TRAINED),
        (Record(kind="walk", walk={"segment": 0, "t": 0.5, "frame": 1, "frames": 3}), xmp.TRAINED),
        (Record(kind="fuse", fusion={"ukiyo-e": 1.0}), xmp.TRAINED),
        (Record(kind="restore"), xmp.COMPOSITE),
        (Record(kind="generate", extra={"parents": ["ab" * 32]}), xmp.COMPOSITE),  # made from an existing image
    ],
    ids=["generate", "walk", "fuse", "restore", "has-a-parent"],
)
def test_source_type_by_kind(record, source):
    assert xmp.source_type(record) == source


def test_the_c2pa_terms_have_one_definition():
    from kit import credentials

    assert (credentials.TRAINED, credentials.COMPOSITE) == (xmp.TRAINED, xmp.COMPOSITE)


def test_unknown_fields_are_left_out_and_the_packet_stays_small(tmp_path):
    record = Record(prompt="", preset="tiny", model="", revision=None)
    fields = read_xmp(Artwork(Image.new("RGB", (8, 8)), record).save(tmp_path))
    assert set(fields) == {"xmp:CreatorTool", "Iptc4xmpExt:DigitalSourceType", "Iptc4xmpExt:AISystemUsed"}
    assert fields["Iptc4xmpExt:AISystemUsed"] == "tiny"  # the preset when the record names no model
    assert len(xmp.packet(record).encode()) < 1000


def test_carriage_returns_and_markup_read_back_exactly(tmp_path):
    prompt = "line one\r\nline two ]]> <!-- not a comment --> &lt;"
    fields = read_xmp(Artwork(Image.new("RGB", (8, 8)), Record(prompt=prompt)).save(tmp_path))
    assert fields["Iptc4xmpExt:AIPromptInformation"] == prompt


def test_text_xml_cannot_hold_is_refused_naming_the_field(tmp_path):
    art = Artwork(Image.new("RGB", (8, 8)), Record(prompt="fine", negative="bell \x07"))
    with pytest.raises(KitError, match=r"Record\.negative .*'\\x07'"):
        art.save(tmp_path)
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_a_foreign_png_gets_no_claim_from_the_kit(tmp_path):
    foreign = tmp_path / "foreign.png"
    Image.new("RGB", (8, 8)).save(foreign)
    art = load(foreign)
    assert art.record.kind == "imported"
    with Image.open(art.save(tmp_path / "out")) as png:
        assert xmp.KEYWORD not in png.text and "kit" in png.text


def test_a_saved_kit_image_still_loads_with_its_record(tmp_path):
    art = Artwork(Image.new("RGB", (8, 8)), Record(prompt=PROMPT, seed=9))
    back = load(art.save(tmp_path))
    assert back.verified is True and back.record == art.record


# ---------------------------------------------------------------- what ExifTool reads

EXIFTOOL = shutil.which("exiftool")


@pytest.mark.skipif(
    EXIFTOOL is None,
    reason="exiftool is not on PATH: install Debian's libimage-exiftool-perl "
    "(scripts/install-browser.sh does, as the README's test command runs it)",
)
@pytest.mark.parametrize("kind", ["generate", "restore"])
def test_exiftool_reads_the_source_type_the_ai_fields_and_the_prompt(tmp_path, kind):
    record = Record(kind=kind, prompt=PROMPT, preset="tiny", model="kit-tiny", revision="tiny-b5b35b916eea")
    path = Artwork(Image.new("RGB", (8, 8)), record).save(tmp_path)
    out = subprocess.run([EXIFTOOL, "-json", "-n", "-XMP:all", str(path)], capture_output=True, check=True)
    (tags,) = json.loads(out.stdout.decode("utf-8"))  # -n: values as stored, not ExifTool's descriptions
    source = "trainedAlgorithmicMedia" if kind == "generate" else "compositeWithTrainedAlgorithmicMedia"
    assert tags["DigitalSourceType"] == f"http://cv.iptc.org/newscodes/digitalsourcetype/{source}"
    assert tags["AISystemUsed"] == "kit-tiny"
    assert tags["AISystemVersionUsed"] == "tiny-b5b35b916eea"
    assert tags["AIPromptInformation"] == PROMPT
    assert tags["CreatorTool"] == f"kit {kit.__version__}"
    assert "AIPromptWriterName" not in tags


def test_what_the_xmp_says_comes_from_the_record_even_where_no_feature_is_loaded():
    """A process that loaded no feature (no kind registered but "imported") reads a drawing as no model's and a
    record naming its source as an edit: the record says it, not the kinds table alone."""
    code = (
        "import sys; from kit.provenance import xmp; from kit.provenance.record import Record; "
        "drawing = Record(kind='drawing', authorship={'person': [{'action': 'drew', 'strokes': 2}]}); "
        "edit = Record(kind='restyle', prompt='p', restyle={'source_sha256': 'ab' * 32}); "
        "made = Record(kind='generate', prompt='p'); "
        "print(xmp.packet(drawing) is None, xmp.source_type(edit) == xmp.COMPOSITE, "
        "xmp.source_type(made) == xmp.TRAINED, 'kit.features' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "True", "False"]
