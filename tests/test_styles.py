"""The style catalogue: its coverage, its validation, and the small API around it."""

import csv
import json
import subprocess
import sys
import textwrap

import pytest

import kit
from kit import data_tables, styles
from kit.errors import KitError

INHABITED_CONTINENTS = {"Africa", "Asia", "Europe", "North America", "South America", "Oceania"}

# traditions the catalogue promises to include, by id
NAMED = [
    "ukiyo-e",
    "mughal-miniature",
    "madhubani",
    "kalighat",
    "thangka",
    "gongbi",
    "minhwa",
    "persian-miniature",
    "ottoman-illumination",
    "ethiopian-icon",
    "tingatinga",
    "ndebele-wall-painting",
    "yoruba-beadwork",
    "fayum-portraits",
    "byzantine-icon",
    "maya-murals",
    "huichol-yarn-painting",
    "mexican-muralism",
    "haitian-naive",
    "inuit-printmaking",
    "coast-salish",
    "northwest-coast-formline",
    "western-desert-painting",
    "arnhem-land-bark-painting",
    "maori-kowhaiwhai",
    "renaissance",
    "baroque",
    "impressionism",
    "cubism",
    "art-deco",
]

# traditions that must carry the sensitive flag and a note
MUST_BE_SENSITIVE = [
    "thangka",
    "western-desert-painting",
    "arnhem-land-bark-painting",
    "kimberley-rock-art",
    "huichol-yarn-painting",
    "coast-salish",
    "northwest-coast-formline",
    "inuit-printmaking",
    "navajo-sandpainting",
    "maori-kowhaiwhai",
    "ta-moko",
    "ethiopian-icon",
    "byzantine-icon",
]

GOOD_ROW = {
    "id": "test-style",
    "name": "Test style",
    "region": "Eastern Asia",
    "continent": "Asia",
    "place": "Japan",
    "era_start": "1700",
    "era_end": "1800",
    "medium": "ink on paper",
    "description": "A style used by the tests.",
    "prompt": "{subject}, test style",
    "reference": "Test",
    "sensitive": "false",
    "note": "",
}


def write_csv(tmp_path, rows, columns=styles.COLUMNS):
    """Write rows (dicts over GOOD_ROW) to a CSV in tmp_path and return its path."""
    path = tmp_path / "my_styles.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**GOOD_ROW, **row})
    return path


def load_error(tmp_path, rows) -> str:
    path = write_csv(tmp_path, rows)
    with pytest.raises(KitError) as info:
        styles.load(path)
    message = str(info.value)
    assert str(path) in message, "the message names the file"
    return message


# ------------------------------------------------------------------ coverage


def test_catalogue_is_large_and_covers_every_inhabited_continent():
    cover = styles.coverage()
    assert cover["styles"] == len(styles.catalogue()) >= 170
    assert set(cover["by_continent"]) == INHABITED_CONTINENTS
    assert len(cover["by_region"]) >= 12
    assert sum(cover["by_region"].values()) == cover["styles"]
    assert styles.regions() == list(cover["by_region"])


def test_no_region_dominates_and_most_styles_are_outside_europe():
    cover = styles.coverage()
    assert max(cover["by_region"].values()) <= 0.1 * cover["styles"]
    assert cover["non_european_share"] >= 0.5
    european = sum(s.continent == "Europe" for s in styles.catalogue())
    assert european / cover["styles"] == pytest.approx(1 - cover["non_european_share"], abs=0.001)


def test_eras_run_from_antiquity_to_today():
    catalogue = styles.catalogue()
    assert any(s.era_start < 0 for s in catalogue)
    assert styles.coverage()["earliest_year"] < -3000
    living = [s for s in catalogue if s.living]
    assert len(living) >= 30
    # living traditions exist on every continent, not only in Europe
    assert {s.continent for s in living} == INHABITED_CONTINENTS
    # 20th- and 21st-century traditions from outside Europe and North America
    modern = {s.continent for s in catalogue if s.era_start >= 1900}
    assert {"Africa", "Asia", "South America", "Oceania"} <= modern


@pytest.mark.parametrize("style_id", NAMED)
def test_named_traditions_are_present(style_id):
    style = styles.get(style_id)
    assert style.id == style_id
    assert style.region in styles.REGIONS


@pytest.mark.parametrize("style_id", MUST_BE_SENSITIVE)
def test_sacred_and_community_owned_traditions_are_marked_sensitive(style_id):
    style = styles.get(style_id)
    assert style.sensitive
    assert len(style.note) > 40


def test_every_row_is_consistent():
    catalogue = styles.catalogue()
    assert len({s.id for s in catalogue}) == len(catalogue)
    for s in catalogue:
        assert styles.REGIONS[s.region] == s.continent, s.id
        assert s.era_end is None or s.era_start <= s.era_end, s.id
        assert s.prompt.count("{subject}") == 1, s.id
        assert not s.sensitive or s.note, s.id
        assert s.description.endswith("."), s.id
        assert "\n" not in s.description, s.id


def test_shipped_file_is_utf8_with_the_documented_header():
    text = styles.CATALOGUE_PATH.read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(styles.COLUMNS)
    assert "Đông Hồ" in text


def test_catalogue_is_cached_and_returns_copies():
    first, second = styles.catalogue(), styles.catalogue()
    assert first == second and first is not second
    first.clear()
    assert len(styles.catalogue()) >= 170
    assert styles.ids() == [s.id for s in styles.catalogue()]


def test_style_is_exposed_at_the_top_level():
    assert kit.Style is styles.Style
    assert isinstance(styles.get("ukiyo-e"), kit.Style)


# ------------------------------------------------------------------ Style


def test_compose_fills_the_template_with_a_stripped_subject():
    style = styles.get("ukiyo-e")
    text = style.compose("  portrait of an elder \n")
    assert text.startswith("portrait of an elder, ukiyo-e")
    assert "{subject}" not in text
    assert text == style.prompt.replace("{subject}", "portrait of an elder")


def test_compose_keeps_braces_in_the_subject():
    assert styles.get("cubism").compose("a {curly} cat").startswith("a {curly} cat, Cubist")


@pytest.mark.parametrize("subject", ["", "   ", None, 42])
def test_compose_rejects_an_empty_or_non_text_subject(subject):
    with pytest.raises(KitError, match="subject"):
        styles.get("ukiyo-e").compose(subject)


def test_styles_are_frozen():
    with pytest.raises(AttributeError):
        styles.get("ukiyo-e").name = "other"


@pytest.mark.parametrize(
    "start, end, expected",
    [
        (1670, 1900, "c. 1670–1900"),
        (1907, 1925, "1907–1925"),
        (1971, None, "1971–today"),
        (1920, 1933, "c. 1920–1933"),
        (-1700, -1450, "c. 1700–1450 BCE"),
        (-30, 250, "c. 30 BCE–250 CE"),
        (477, 495, "c. 477–495 CE"),
        (618, None, "c. 618 CE–today"),
        (-500, -500, "c. 500 BCE"),
    ],
)
def test_era_reads_naturally(start, end, expected):
    style = styles.Style(**{**GOOD_ROW, "era_start": start, "era_end": end, "sensitive": False})
    assert style.era == expected
    assert style.living is (end is None)


def test_reference_gives_a_wikipedia_url():
    assert styles.get("fayum-portraits").url == "https://en.wikipedia.org/wiki/Fayum_mummy_portraits"


# ------------------------------------------------------------------ get / search


def test_get_ignores_case_and_spaces_and_passes_styles_through():
    style = styles.get("  Ukiyo-E ")
    assert style.id == "ukiyo-e"
    assert styles.get(style) is style


def test_get_unknown_id_names_it_and_suggests_close_matches():
    with pytest.raises(KitError) as info:
        styles.get("ukiyoe")
    message = str(info.value)
    assert "'ukiyoe'" in message
    assert "did you mean" in message and "'ukiyo-e'" in message


def test_get_unknown_id_can_suggest_from_names():
    with pytest.raises(KitError, match="mughal-miniature"):
        styles.get("mughal")


def test_get_with_nothing_close_still_explains():
    with pytest.raises(KitError, match=r"unknown style id 'zzzz-qqqq'.*kit.styles.ids\(\)"):
        styles.get("zzzz-qqqq")


def test_search_is_case_and_accent_insensitive_and_needs_every_word():
    assert "ukiyo-e" in [s.id for s in styles.search("WOODBLOCK japan")]
    assert [s.id for s in styles.search("dong ho")] == ["dong-ho-painting"]
    assert "iznik-pottery" in [s.id for s in styles.search("iznik")]
    assert all("Western Africa" == s.region for s in styles.search("western africa"))
    assert styles.search("woodblock zzzz") == []
    assert len(styles.search("  ")) == len(styles.catalogue())


def test_search_over_a_loaded_catalogue(tmp_path):
    mine = styles.load(write_csv(tmp_path, [{}]))
    assert styles.search("test style", mine) == mine


# ------------------------------------------------------------------ load / validation


def test_load_a_valid_researcher_catalogue(tmp_path):
    path = write_csv(
        tmp_path,
        [
            {},
            {
                "id": "living-one",
                "era_end": "",
                "region": "Polynesia",
                "continent": "Oceania",
                "sensitive": "TRUE",
                "note": "Handle with care.",
            },
        ],
    )
    loaded = styles.load(path)
    assert [s.id for s in loaded] == ["test-style", "living-one"]
    assert loaded[0].era_start == 1700 and loaded[0].era_end == 1800 and loaded[0].sensitive is False
    assert loaded[1].era_end is None and loaded[1].sensitive is True
    cover = styles.coverage(loaded)
    assert cover["by_continent"] == {"Asia": 1, "Oceania": 1}
    assert cover["sensitive"] == 1 and cover["living"] == 1


def test_duplicate_id_is_reported_with_both_rows(tmp_path):
    message = load_error(tmp_path, [{}, {"name": "Another"}])
    assert "row 3" in message and "field 'id'" in message
    assert "duplicate id 'test-style'" in message and "row 2" in message


@pytest.mark.parametrize("bad_id", ["Test-Style", "test_style", "test--style", "-test", "tëst"])
def test_badly_formed_id(tmp_path, bad_id):
    message = load_error(tmp_path, [{"id": bad_id}])
    assert "row 2, field 'id'" in message and "kebab-case" in message


def test_unknown_region_lists_the_allowed_ones_and_suggests(tmp_path):
    message = load_error(tmp_path, [{"region": "East Asia"}])
    assert "row 2, field 'region'" in message and "'East Asia'" in message
    assert "did you mean 'Eastern Asia'" in message
    assert "South-eastern Asia" in message and "Polynesia" in message


def test_continent_must_match_region(tmp_path):
    message = load_error(tmp_path, [{"continent": "Europe"}])
    assert "row 2, field 'continent'" in message and "'Asia'" in message
    message = load_error(tmp_path, [{"continent": "Atlantis"}])
    assert "unknown continent 'Atlantis'" in message and "Oceania" in message


@pytest.mark.parametrize(
    "row, field, words",
    [
        ({"era_start": "1900", "era_end": "1800"}, "era_end", "era_start must be <= era_end"),
        ({"era_start": "-50000"}, "era_start", "-40000"),
        ({"era_end": "3000"}, "era_end", "out of range"),
        ({"era_start": "1600s"}, "era_start", "not a whole year"),
        ({"era_start": "500 BCE"}, "era_start", "negative for BCE"),
        ({"era_end": "1850.5"}, "era_end", "not a whole year"),
    ],
)
def test_bad_years(tmp_path, row, field, words):
    message = load_error(tmp_path, [row])
    assert f"row 2, field '{field}'" in message and words in message


@pytest.mark.parametrize("prompt, found", [("a portrait, test style", 0), ("{subject} and {subject}", 2)])
def test_prompt_needs_exactly_one_subject(tmp_path, prompt, found):
    message = load_error(tmp_path, [{"prompt": prompt}])
    assert "row 2, field 'prompt'" in message and f"found {found} times" in message


def test_sensitive_row_needs_a_note(tmp_path):
    message = load_error(tmp_path, [{}, {"id": "second", "sensitive": "true", "note": "  "}])
    assert "row 3, field 'note'" in message and "sensitive" in message


@pytest.mark.parametrize("value", ["yes", "1", "y", "t"])
def test_sensitive_must_be_true_or_false(tmp_path, value):
    message = load_error(tmp_path, [{"sensitive": value}])
    assert "row 2, field 'sensitive'" in message and "allowed: true, false" in message


@pytest.mark.parametrize("field", ["id", "name", "place", "medium", "description", "reference", "era_start"])
def test_empty_required_field(tmp_path, field):
    message = load_error(tmp_path, [{field: "  "}])
    assert f"row 2, field '{field}': must not be empty" in message


def test_every_problem_is_listed_at_once(tmp_path):
    message = load_error(tmp_path, [{"region": "Mars"}, {"id": "b", "prompt": "no subject"}])
    assert "2 problem(s)" in message
    assert "row 2, field 'region'" in message and "row 3, field 'prompt'" in message


def test_missing_column_is_named(tmp_path):
    columns = [c for c in styles.COLUMNS if c != "medium"]
    path = write_csv(tmp_path, [{}], columns=columns)
    with pytest.raises(KitError, match="missing column.*medium"):
        styles.load(path)


def test_extra_values_in_a_row_are_reported(tmp_path):
    path = tmp_path / "ragged.csv"
    good = ",".join(f'"{GOOD_ROW[c]}"' for c in styles.COLUMNS)
    path.write_text(",".join(styles.COLUMNS) + "\n" + good + ",surplus\n", encoding="utf-8")
    with pytest.raises(KitError, match="row 2, has 1 value"):
        styles.load(path)


def test_unreadable_and_empty_files(tmp_path):
    with pytest.raises(KitError, match="cannot read the style catalogue"):
        styles.load(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(styles.COLUMNS) + "\n", encoding="utf-8")
    with pytest.raises(KitError, match="no style rows"):
        styles.load(empty)
    latin = tmp_path / "latin1.csv"
    latin.write_bytes((",".join(styles.COLUMNS) + "\n").encode() + "caf\xe9".encode("latin-1"))
    with pytest.raises(KitError, match="UTF-8"):
        styles.load(latin)


# ------------------------------------------------------------------ the classification table (JSON)


def write_table(tmp_path, **changes):
    """The shipped classification table with top-level keys changed (None removes one), written to tmp_path."""
    table = json.loads(data_tables.CLASSIFICATION_PATH.read_text(encoding="utf-8"))
    for key, value in changes.items():
        table.pop(key) if value is None else table.__setitem__(key, value)
    path = tmp_path / "classes.json"
    path.write_text(json.dumps(table, ensure_ascii=False), encoding="utf-8")
    return path


def classification_error(path) -> str:
    with pytest.raises(KitError) as info:
        data_tables.load_classification(path)
    assert str(path) in str(info.value), "the message names the file"
    return str(info.value)


def test_the_shipped_classification_groups_every_catalogue_style():
    table = data_tables.classification()
    assert table is data_tables.classification()  # loaded once
    assert table.era_labels == ["before 500 CE", "500–1499", "1500–1799", "1800–1944", "1945–today"]
    assert table.medium_labels[-2:] == ["tattoo & body art", "other"]
    assert table.medium_family("chisel and needle tattoo on carved wood") == "tattoo & body art"  # overrides first
    families = {table.medium_family(s.medium) for s in styles.catalogue()}
    assert families <= set(table.medium_labels) and len(families) >= 6
    assert {table.era_bin(s.era_start) for s in styles.catalogue()} == set(table.era_labels)


def test_a_researchers_classification_table_is_read(tmp_path):
    path = write_table(
        tmp_path, era_bins=[{"before": 0, "label": "BCE"}, {"before": None, "label": "CE"}], medium_overrides=None
    )
    table = data_tables.load_classification(path)
    assert [table.era_bin(y) for y in (-1, 0, None)] == ["BCE", "CE", "unlabelled"]
    assert table.medium_family("tattoo") == "other"  # no overrides: nothing names tattoo


def test_every_classification_problem_is_listed_at_once(tmp_path):
    path = write_table(
        tmp_path,
        era_bins=[
            {"before": 1500, "label": "early"},
            {"before": 1500, "label": "early"},
            {"before": "1800", "label": "x"},
            {"before": 1900, "label": "late"},
        ],
        medium_families={"print": ["Woodcut", " ink"], "paint": []},
        medium_overrides=[{"family": "tattoo"}],
        other_medium="print",
    )
    message = classification_error(path)
    for words in (
        "era_bins[1].before': 1500 is not after the previous bin's 1500",
        "era_bins[2].before': must be a whole year",
        "era_bins[3].before': the last bin runs to today, so it must be null",
        "every bin needs a label of its own",
        "medium_families[\"print\"][0]': 'Woodcut' must be lowercase",
        'medium_families["print"][1]\'',
        'medium_families["paint"]\': must be a non-empty list',
        "medium_overrides[0]': must be an object with the keys 'family' and 'contains'",
        "other_medium': 'print' is already a family",
    ):
        assert words in message, words
    assert "9 problem(s) in the classification table" in message


@pytest.mark.parametrize(
    "text, words",
    [
        ('{"era_bins": [], "era_bins": []}', "the key 'era_bins' is written twice"),
        ('{"era_bins": [', "not valid JSON: Expecting value at line 1"),
        ("[1, 2]", "must be one JSON object"),
        ('{"era_bins": [], "colours": {}}', "unknown key 'colours'; allowed: about, era_bins"),
    ],
)
def test_a_malformed_classification_file_is_named_and_explained(tmp_path, text, words):
    path = tmp_path / "classes.json"
    path.write_text(text, encoding="utf-8")
    assert words in classification_error(path)


def test_unreadable_classification_files(tmp_path):
    with pytest.raises(KitError, match="cannot read the classification table"):
        data_tables.load_classification(tmp_path / "nope.json")
    latin = tmp_path / "latin1.json"
    latin.write_bytes('{"other_medium": "caf\xe9"}'.encode("latin-1"))
    assert "not valid UTF-8" in classification_error(latin)
    assert "'unlabelled' is kept for points without a value" in classification_error(
        write_table(tmp_path, other_medium="unlabelled")
    )


# ------------------------------------------------------------------ lightness


def test_import_is_light():
    code = textwrap.dedent("""
        import sys
        import kit.styles
        kit.styles.catalogue()
        heavy = ["torch", "numpy", "diffusers", "transformers", "open_clip", "umap", "PIL", "ipywidgets"]
        print(",".join(m for m in heavy if m in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_a_catalogue_path_that_is_a_fifo_is_refused_unread(tmp_path):
    import os

    fifo = tmp_path / "styles.csv"
    os.mkfifo(fifo)
    with pytest.raises(KitError, match="a FIFO"):
        kit.styles.load(fifo)
