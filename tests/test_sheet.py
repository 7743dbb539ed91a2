"""Contact sheets: labels in every script are drawn as letters, not boxes; the sheet reads on dark pages."""

import os

import numpy as np
import pytest
from PIL import Image

from kit import sheet

# Pairs of different letters of one script. A font without the script draws both as the same
# "missing glyph" box, so two labels that differ only in that letter would come out identical.
SCRIPTS = {
    "Latin with macrons (Tā moko)": ("ā", "ē"),
    "Vietnamese (Đông Hồ)": ("ồ", "ể"),
    "Turkish (İznik)": ("İ", "Đ"),
    "Greek": ("Ω", "Ψ"),
    "Cyrillic": ("Ж", "Д"),
    "Arabic": ("ب", "م"),
    "Devanagari": ("क", "म"),
    "CJK": ("山", "水"),
}


def _label_strip(label: str) -> np.ndarray:
    """The label row under one blank cell of a one-image sheet."""
    cell = 80
    image = sheet.contact_sheet([Image.new("RGB", (8, 8))], labels=[label], cell=cell)
    return np.asarray(image)[cell:, :, :]


def _need_font(text: str):
    if all(font is not None for _, font in sheet.font_runs(text)):
        return
    message = f"no font on this computer draws {text!r}: run scripts/install-browser.sh (Noto fonts)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.mark.parametrize("script", SCRIPTS)
def test_labels_in_every_script_are_letters_not_boxes(script):
    first, second = SCRIPTS[script]
    _need_font(first + second)
    a, b = _label_strip(first), _label_strip(second)
    assert (a[..., 3] > 0).any()  # something is drawn
    assert not np.array_equal(a, b), f"{script}: {first!r} and {second!r} look the same (boxes?)"


def test_every_character_of_a_label_gets_a_font_that_has_it():
    text = "मधुबनी 浮世絵 Tā moko"
    _need_font(text)
    runs = sheet.font_runs(text)
    assert "".join(run for run, _ in runs) == text
    names = [font.getname()[0] for _, font in runs]
    assert any("Devanagari" in name for name in names) and any("CJK" in name for name in names)
    assert runs[0][0].startswith("मधुबनी")  # vowel signs stay with their letters


def test_a_character_no_font_has_is_reported_not_silently_boxed():
    unassigned = "\U0010fffd"  # a private-use code point: no font draws it
    with pytest.warns(UserWarning, match="no font on this computer draws these label characters"):
        sheet.contact_sheet([Image.new("RGB", (8, 8))], labels=[f"x{unassigned}"])


def test_the_sheet_is_transparent_around_opaque_images_and_label_plates():
    red = Image.new("RGB", (60, 30), "red")  # fitted to the cell: 76 x 38
    image = sheet.contact_sheet([red, None], labels=["one", "two"], columns=2, cell=80, title="a title")
    assert image.mode == "RGBA" and image.size == (160, 22 + 80 + 16)
    pixels = np.asarray(image)
    assert pixels[22 + 10, 40, 3] == 0  # the background shows the page behind it
    assert tuple(pixels[22 + 40, 40]) == (255, 0, 0, 255)  # images are pasted opaque
    assert tuple(pixels[22 + 40, 3]) == (255, 0, 0, 255)  # and enlarged to fill the cell
    assert pixels[22 + 40, 80 + 40, 3] == 0  # an empty cell stays empty
    assert pixels[22 + 80 + 8, 3, 3] > 200  # the label sits on an opaque light plate
    assert pixels[22 + 80 + 8, 3, :3].min() > 200


def test_long_labels_are_cut_with_an_ellipsis_to_fit_the_cell():
    runs = sheet._fit("Vietnamese lacquer painting (sơn mài) " * 3, 100, sheet.LABEL_FONT_PX)
    text = "".join(run for run, _ in runs)
    assert text.endswith("…") and sum(font.getlength(run) for run, font in runs) <= 100
