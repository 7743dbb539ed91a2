"""Reading a web-UI ``parameters`` text (kit.provenance.record.parse_parameters) as AUTOMATIC1111's web UI reads it.

tests/data/webui_infotext_corpus.json holds texts and what the web UI's own reader
(parse_generation_parameters, at the upstream commit named in the file) gave for each: every case
must come out equal. The focused tests below name each way the kit's earlier reader differed.
"""

import json
import tracemalloc
from pathlib import Path

import pytest

from kit.errors import KitError
from kit.provenance.record import Record, parse_parameters

CORPUS = json.loads((Path(__file__).parent / "data" / "webui_infotext_corpus.json").read_text(encoding="utf-8"))
SETTINGS = "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x768"


def read(text):
    """parse_parameters without the prompts, for tests about the settings line."""
    parsed = parse_parameters(text)
    return {k: v for k, v in parsed.items() if k not in ("Prompt", "Negative prompt")}


def test_corpus_names_its_source():
    upstream = CORPUS["upstream"]
    assert upstream["repository"] == "AUTOMATIC1111/stable-diffusion-webui"
    assert upstream["file"] == "modules/infotext_utils.py"
    assert len(upstream["commit"]) == 40
    assert len(CORPUS["cases"]) >= 200
    assert len({case["name"] for case in CORPUS["cases"]}) == len(CORPUS["cases"])


@pytest.mark.parametrize("case", CORPUS["cases"], ids=[case["name"] for case in CORPUS["cases"]])
def test_corpus_case_reads_as_the_web_ui_reads_it(case):
    assert parse_parameters(case["text"]) == case["expected"]


# -- quoted values -------------------------------------------------------------


def test_quoted_values_are_json_strings():
    line = (
        'p\nSteps: 1, Seed: 2, Sampler: "say \\"hi\\", ok", Path: "C:\\\\dir\\\\", Name: "caf\\u00e9, \\u2603", '
        'Note: "one\\ntwo", Hashes: "a: 1, b: 2"'
    )
    assert read(line) == {
        "Steps": "1",
        "Seed": "2",
        "Sampler": 'say "hi", ok',
        "Path": "C:\\dir\\",
        "Name": "café, ☃",
        "Note": "one\ntwo",
        "Hashes": "a: 1, b: 2",
    }


def test_a_quoted_value_that_is_not_json_stays_as_written():
    assert read('p\nSteps: 1, Seed: 2, Name: "a\\qb, c"')["Name"] == '"a\\qb, c"'  # \q is no JSON escape
    assert read('p\nSteps: 1, Seed: 2, Name: "a\tb"')["Name"] == '"a\tb"'  # a raw tab is not allowed in JSON
    assert read('p\nSteps: 1, Seed: 2, Name: ", Sampler: x')["Name"] == '"'


def test_a_quote_is_read_only_when_a_comma_or_the_end_follows_it():
    # '"a" b' is not a quoted value: it runs to the comma, quotes and all
    assert read('p\nSteps: 1, Seed: 2, Name: "a" b, Sampler: x')["Name"] == '"a" b'
    # the same with a space before the comma: the value is cut at the comma inside the quotes
    assert read('p\nSteps: 1, Seed: 2, Name: "a, b" , Sampler: x') == {
        "Steps": "1",
        "Seed": "2",
        "Name": '"a',
        "Sampler": "x",
    }
    # an escaped quote does not close; an empty pair of quotes is the empty string
    assert read('p\nSteps: 1, Seed: 2, Name: "a\\", b", E: ""')["Name"] == 'a", b'
    assert read('p\nSteps: 1, Seed: 2, Name: "a\\", b", Empty: ""')["Empty"] == ""


# -- keys ----------------------------------------------------------------------


def test_keys_with_spaces_dashes_and_slashes_are_whole():
    assert read("p\nSteps: 1, Key with spaces: a, Key-with-dashes: b, Key/slash: c, k_under: d") == {
        "Steps": "1",
        "Key with spaces": "a",
        "Key-with-dashes": "b",
        "Key/slash": "c",
        "k_under": "d",
    }


def test_keys_take_what_the_web_ui_takes():
    # a key holds letters, digits, "_", spaces, "-" and "/": before a "." or a ")" it starts again
    assert read("p\nSteps: 1, Seed: 2, Kohya Hires.fix: True, Weight (clip): 0.5") == {
        "Steps": "1",
        "Seed": "2",
        "fix": "True",
    }
    # a key of one character is none; a space before the colon is part of the key
    assert read("p\nSteps : 1, Seed: 2, A: 1, Sampler: Euler") == {"Steps ": "1", "Seed": "2", "Sampler": "Euler"}
    # a later pair with the same key wins
    assert read("p\nSteps: 1, Sampler: Euler, Seed: 2, Steps: 30")["Steps"] == "30"


def test_values_keep_trailing_spaces_and_empty_values_are_left_out():
    assert read("p\nSteps: 1  , Seed: 2 , Sampler: Euler  , Empty: , Time: 12:30") == {
        "Steps": "1  ",
        "Seed": "2 ",
        "Sampler": "Euler  ",
        "Time": "12:30",
    }
    # an empty value still counts towards the three pairs a settings line needs
    assert parse_parameters("p\nA1: , B2: , C3: ") == {"Prompt": "p", "Negative prompt": ""}


def test_width_x_height_values_are_split_for_any_key():
    parsed = parse_parameters(f"p\n{SETTINGS}, Hires resize: 1024x1536, Tile: ５１２x６４")
    assert (parsed["Size-1"], parsed["Size-2"]) == ("512", "768") and "Size" not in parsed
    assert (parsed["Hires resize-1"], parsed["Hires resize-2"]) == ("1024", "1536")
    assert (parsed["Tile-1"], parsed["Tile-2"]) == ("５１２", "６４")
    # quoted, it is unquoted first; with spaces or a capital X it stays whole
    assert read('p\nSteps: 1, Seed: 2, Size: "32x24"')["Size-1"] == "32"
    assert read("p\nSteps: 1, Seed: 2, Size: 512 x 512")["Size"] == "512 x 512"
    assert read("p\nSteps: 1, Seed: 2, Size: 512X512")["Size"] == "512X512"


def test_from_parameters_reads_the_split_size():
    record = Record.from_parameters(f"a fox\n{SETTINGS}")
    assert (record.width, record.height, record.steps, record.seed, record.sampler) == (512, 768, 20, 1, "Euler a")
    assert record.extra["parameters"]["Size-1"] == "512"
    spaced = Record.from_parameters("a fox\nSteps: 2, Seed: 3, Size: 640 x 480")
    assert (spaced.width, spaced.height) == (640, 480)


# -- prompts -------------------------------------------------------------------


def test_multi_line_prompts_have_their_lines_stripped():
    text = f"\n\n  a portrait  \r\n\n\tof a man\t\r\n{SETTINGS}\r\n"
    parsed = parse_parameters(text)
    assert parsed["Prompt"] == "a portrait\n\nof a man"
    assert parsed["Seed"] == "1"


def test_negative_prompts_over_several_lines():
    text = f"a\nNegative prompt:\n\n  ugly\n\nblurry\nNegative prompt: twice\n{SETTINGS}"
    parsed = parse_parameters(text)
    # empty lines before its first text are dropped; a second label line loses its label too
    assert parsed["Negative prompt"] == "ugly\n\nblurry\ntwice"
    assert parsed["Prompt"] == "a"


def test_negative_prompt_label_only_at_a_line_start():
    parsed = parse_parameters(f"a portrait Negative prompt: ugly\nnegative prompt: lower\n{SETTINGS}")
    assert parsed["Prompt"] == "a portrait Negative prompt: ugly\nnegative prompt: lower"
    assert parsed["Negative prompt"] == ""
    assert parse_parameters(f"a\nNegative prompt:\n{SETTINGS}")["Negative prompt"] == ""
    only = parse_parameters(f"Negative prompt: ugly, blurry\n{SETTINGS}")
    assert (only["Prompt"], only["Negative prompt"]) == ("", "ugly, blurry")


def test_prompt_keys_in_the_settings_line_do_not_replace_the_prompts():
    parsed = parse_parameters(f"real\nPrompt: fake, Negative prompt: fake too, {SETTINGS}")
    assert (parsed["Prompt"], parsed["Negative prompt"]) == ("real", "")


# -- the last line -------------------------------------------------------------


def test_a_last_line_with_fewer_than_three_pairs_is_prompt_text():
    assert parse_parameters("a portrait\nstyle: ukiyo-e, mood: calm") == {
        "Prompt": "a portrait\nstyle: ukiyo-e, mood: calm",
        "Negative prompt": "",
    }
    after = parse_parameters(f"a portrait\n{SETTINGS}\nthank you for looking!")
    assert after == {"Prompt": f"a portrait\n{SETTINGS}\nthank you for looking!", "Negative prompt": ""}


def test_a_last_line_with_three_pairs_is_the_settings_line_whatever_else_it_holds():
    # prompt-like text with three "word:" bits is read as settings, as the web UI does
    parsed = parse_parameters("a portrait\n(red:1.2), (blue:0.8), (green:1.1)")
    assert parsed == {"red": "1.2)", "blue": "0.8)", "green": "1.1)", "Prompt": "a portrait", "Negative prompt": ""}
    assert parse_parameters("a cat, Steps: 20, Sampler: Euler, Seed: 1")["Prompt"] == ""


def test_empty_and_settings_only_texts():
    assert parse_parameters("") == {"Prompt": "", "Negative prompt": ""}
    assert parse_parameters(" \r\n\t ") == {"Prompt": "", "Negative prompt": ""}
    parsed = parse_parameters(SETTINGS + "\r\n")
    assert parsed["Prompt"] == "" and parsed["Size-2"] == "768"


# -- the kit's own texts ---------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"prompt": "a fox\nin snow, (detailed:1.2)", "negative": "lowres\nwatermark"},
        {"model": 'C:\\models\\mine, v2 "final"', "preset": "", "style": "ukiyo-e, late"},
        {"prompt": "", "negative": ""},
        {"prompt": "浮世絵の肖像 — «portrait» 🎨", "fusion": {"a: b, c": 0.5, "ukiyo-e": 0.5}},
    ],
)
def test_the_kits_texts_read_back(changes):
    values = dict(prompt="portrait", negative="blurry", style="ukiyo-e", seed=42, steps=4, guidance=1.5)
    values.update(width=32, height=24, preset="sd-turbo", sampler="Euler a")
    values.update(changes)
    record = Record(**values)
    parsed = parse_parameters(record.parameters())
    assert (parsed["Prompt"], parsed["Negative prompt"]) == (record.prompt, record.negative)
    assert (parsed["Steps"], parsed["Seed"], parsed["CFG scale"], parsed["Size-1"], parsed["Size-2"]) == (
        "4",
        "42",
        "1.5",
        "32",
        "24",
    )
    assert parsed["Model"] == (record.preset or record.model)
    back = Record.from_parameters(record.parameters())
    assert (back.prompt, back.negative, back.seed, back.width, back.height) == (
        record.prompt,
        record.negative,
        42,
        32,
        24,
    )


def test_a_non_string_is_refused_naming_the_field():
    for bad in (None, b"Steps: 1", 42, ["a"]):
        with pytest.raises(KitError, match="parameters must be a string"):
            parse_parameters(bad)


# -- hostile texts ---------------------------------------------------------------

MB = 2**20
HOSTILE = [
    # one run of key characters with no colon: a pattern retried at each of its characters costs n squared
    ("a" * MB, {"Prompt": "a" * MB, "Negative prompt": ""}),
    ("ab " * (MB // 3), {"Prompt": ("ab " * (MB // 3)).strip(), "Negative prompt": ""}),
    ("ab" + "-" * MB + ":", {"Prompt": "ab" + "-" * MB + ":", "Negative prompt": ""}),
    (":" * MB, {"Prompt": ":" * MB, "Negative prompt": ""}),
    ("a:" * (MB // 2), {"Prompt": "a:" * (MB // 2), "Negative prompt": ""}),
    # quoted values that never close, and escapes by the megabyte
    (
        'Steps: 1, Seed: 2, Note: "' + '\\"' * (MB // 2),
        {"Steps": "1", "Seed": "2", "Note": '"' + '\\"' * (MB // 2), "Prompt": "", "Negative prompt": ""},
    ),
    (
        'Steps: 1, Seed: 2, Path: "' + "\\" * MB + '"',
        {"Steps": "1", "Seed": "2", "Path": "\\" * (MB // 2), "Prompt": "", "Negative prompt": ""},
    ),
    ('ab: "x, ' * (MB // 8), {"ab": '"x', "Prompt": "", "Negative prompt": ""}),
    # many pairs, many lines, a huge width x height
    ("ab: 1, " * (MB // 7), {"ab": "1", "Prompt": "", "Negative prompt": ""}),
    ("Negative prompt:\n" * (MB // 17), {"Prompt": "", "Negative prompt": ""}),
    ("x\n" * (MB // 2), {"Prompt": "\n".join(["x"] * (MB // 2)), "Negative prompt": ""}),
    (
        "Steps: 1, Seed: 2, Size: " + "1" * (MB // 2) + "x" + "2" * (MB // 2),
        {
            "Steps": "1",
            "Seed": "2",
            "Size-1": "1" * (MB // 2),
            "Size-2": "2" * (MB // 2),
            "Prompt": "",
            "Negative prompt": "",
        },
    ),
    ("浮" * MB, {"Prompt": "浮" * MB, "Negative prompt": ""}),
]


@pytest.mark.parametrize("text, expected", HOSTILE, ids=[f"hostile-{i}" for i in range(len(HOSTILE))])
def test_a_megabyte_of_hostile_text_is_read_in_bounded_memory(text, expected):
    """Each of these is read in one pass: a backtracking reader takes hours on the first ones (n squared
    steps) or a hundred megabytes of regex stack on the quoted ones. Asserted: the answer, and the peak
    memory the reading allocates (a few copies of the text), not a time."""
    tracemalloc.start()
    try:
        parsed = parse_parameters(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert parsed == expected
    assert peak < 48 * MB
