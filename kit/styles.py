"""The style catalogue: the world's art traditions as data, each with a prompt template.

The catalogue ships as ``kit/data/styles.csv`` (UTF-8, one header row). Researchers can bring
their own file in the same schema with ``load(path)``; it is validated the same way.

Columns
-------
id           lowercase kebab-case slug, unique (``ukiyo-e``, ``mughal-miniature``)
name         display name
region       a UN geoscheme subregion, one of ``REGIONS`` ("Eastern Asia", "Western Africa", ...)
continent    the continent of that region (``REGIONS[region]``)
place        country, city or community
era_start    integer year, negative for BCE: the earliest widely documented date for the
             tradition as described here (its roots are often older)
era_end      integer year, or empty for a living tradition that is still practised
medium       materials and techniques
description  one factual line
prompt       a template with exactly one ``{subject}``
reference    the title of the English Wikipedia article to read first
sensitive    ``true`` or ``false``
note         required when sensitive: why, and how to use the entry respectfully

A tradition is marked sensitive when its imagery is sacred or in living ceremonial use (icons,
thangkas, sandpaintings), when its designs belong to a community that restricts or has objected
to copying (many Indigenous traditions), when it marks a person's genealogy (tā moko, tatau),
or when it encodes a harmful classification (casta paintings). The prompts of such entries
describe materials and surfaces only, never the restricted imagery itself.

The catalogue is read like the kit's other tables that are data (`kit.data_tables.read_text`,
one error listing every problem); how a map groups it into a legend (era bins, medium
families) is such a table too: `kit.data_tables.classification()`.

Only the standard library is imported here, so ``import kit.styles`` stays instant.
"""

from __future__ import annotations

import csv
import datetime
import difflib
import functools
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .data_tables import DATA, data_error, read_text
from .errors import KitError

__all__ = [
    "Style",
    "REGIONS",
    "CONTINENTS",
    "COLUMNS",
    "CATALOGUE_PATH",
    "EARLIEST_YEAR",
    "catalogue",
    "get",
    "ids",
    "regions",
    "search",
    "load",
    "coverage",
]

CATALOGUE_PATH = DATA / "styles.csv"

# UN geoscheme (M49) subregions of the inhabited continents -> continent.
# The Americas are split into North America (with Central America and the Caribbean) and South America.
REGIONS = {
    "Northern Africa": "Africa",
    "Eastern Africa": "Africa",
    "Middle Africa": "Africa",
    "Southern Africa": "Africa",
    "Western Africa": "Africa",
    "Central Asia": "Asia",
    "Eastern Asia": "Asia",
    "South-eastern Asia": "Asia",
    "Southern Asia": "Asia",
    "Western Asia": "Asia",
    "Eastern Europe": "Europe",
    "Northern Europe": "Europe",
    "Southern Europe": "Europe",
    "Western Europe": "Europe",
    "Northern America": "North America",
    "Central America": "North America",
    "Caribbean": "North America",
    "South America": "South America",
    "Australia and New Zealand": "Oceania",
    "Melanesia": "Oceania",
    "Micronesia": "Oceania",
    "Polynesia": "Oceania",
}
CONTINENTS = tuple(dict.fromkeys(REGIONS.values()))

COLUMNS = (
    "id",
    "name",
    "region",
    "continent",
    "place",
    "era_start",
    "era_end",
    "medium",
    "description",
    "prompt",
    "reference",
    "sensitive",
    "note",
)
OPTIONAL_COLUMNS = {"era_end", "note"}  # may be empty (note only when not sensitive)

EARLIEST_YEAR = -40000  # older than any dated figurative art
ID_PATTERN = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
SUBJECT = "{subject}"


@dataclass(frozen=True)
class Style:
    """One art tradition of the catalogue."""

    id: str
    name: str
    region: str
    continent: str
    place: str
    era_start: int
    era_end: int | None  # None: a living tradition
    medium: str
    description: str
    prompt: str
    reference: str
    sensitive: bool
    note: str

    def compose(self, subject: str) -> str:
        """Fill the prompt template with `subject` (stripped)."""
        if not isinstance(subject, str) or not subject.strip():
            raise KitError(
                f"style {self.id!r}: subject must be a non-empty string, got {subject!r}; "
                f"e.g. style.compose('portrait of an elder')"
            )
        return self.prompt.replace(SUBJECT, subject.strip())

    @property
    def living(self) -> bool:
        """True when the tradition is still practised (no end year)."""
        return self.era_end is None

    @property
    def era(self) -> str:
        """A readable era: 'c. 1670–1900', '1971–today', 'c. 1700–1450 BCE', 'c. 30 BCE–250 CE'.

        Dates before 1800 and round decades are approximate, so they read 'c.'.
        """
        start, end = self.era_start, self.era_end
        circa = "c. " if start < 1800 or start % 10 == 0 else ""
        if end is None:
            return f"{circa}{_year(start)}–today"
        if start == end:
            return f"{circa}{_year(start)}"
        if end < 0:
            return f"{circa}{-start}–{-end} BCE"
        if start < 0:
            return f"{circa}{-start} BCE–{end} CE"
        if end < 1000:
            return f"{circa}{start}–{end} CE"
        return f"{circa}{start}–{end}"

    @property
    def url(self) -> str:
        """Link to the English Wikipedia article named in `reference`."""
        return "https://en.wikipedia.org/wiki/" + self.reference.replace(" ", "_")


def _year(year: int) -> str:
    if year < 0:
        return f"{-year} BCE"
    if year < 1000:
        return f"{year} CE"
    return str(year)


# ------------------------------------------------------------------------- loading


def load(path: str | Path) -> list[Style]:
    """Read and validate a style catalogue CSV; raise one KitError listing every problem found.

    Rows are numbered as a spreadsheet shows them: the header is row 1, the first style row 2.
    """
    path = Path(path)
    try:
        reader = csv.DictReader(io.StringIO(read_text(path, "style catalogue"), newline=""))
        header = reader.fieldnames or []
        raw_rows = list(reader)
    except csv.Error as e:
        raise KitError(f"{path}: malformed CSV: {e}") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise KitError(
            f"{path}: header is missing column(s) {', '.join(missing)}; required columns: {', '.join(COLUMNS)}"
        )

    styles, errors = [], []
    first_row_of_id: dict[str, int] = {}
    for row_number, raw in enumerate(raw_rows, start=2):
        problems: list[str] = []
        style = _parse_row(raw, problems)
        if style is not None:
            if style.id in first_row_of_id:
                problems.append(
                    f"field 'id': duplicate id {style.id!r} (first used in row "
                    f"{first_row_of_id[style.id]}); ids must be unique"
                )
            else:
                first_row_of_id[style.id] = row_number
        errors += [f"row {row_number}, {p}" for p in problems]
        if not problems:
            styles.append(style)

    if not raw_rows:
        errors.append("no style rows after the header")
    if errors:
        raise data_error(path, "style catalogue", errors)
    return styles


def _parse_row(raw: dict, problems: list[str]) -> Style | None:
    """Check one CSV row; append messages ("field 'x': ...") to `problems`; return a Style or None."""
    if None in raw:
        problems.append(
            f"has {len(raw[None])} value(s) more than the {len(raw) - 1} columns; quote values that contain commas"
        )
        return None
    if any(raw[c] is None for c in COLUMNS):
        problems.append(f"has fewer values than the {len(COLUMNS)} columns ({', '.join(COLUMNS)})")
        return None
    row = {c: raw[c].strip() for c in COLUMNS}

    for column in COLUMNS:
        if column not in OPTIONAL_COLUMNS and not row[column]:
            problems.append(f"field '{column}': must not be empty")

    if row["id"] and not ID_PATTERN.fullmatch(row["id"]):
        problems.append(
            f"field 'id': {row['id']!r} is not a lowercase kebab-case slug "
            f"(letters a-z, digits and single hyphens, e.g. 'mughal-miniature')"
        )

    region, continent = row["region"], row["continent"]
    if region and region not in REGIONS:
        hint = _did_you_mean(region, REGIONS)
        problems.append(
            f"field 'region': unknown region {region!r}{hint}; allowed (UN geoscheme subregions): {', '.join(REGIONS)}"
        )
    if continent and continent not in CONTINENTS:
        problems.append(f"field 'continent': unknown continent {continent!r}; allowed: {', '.join(CONTINENTS)}")
    elif continent and region in REGIONS and REGIONS[region] != continent:
        problems.append(
            f"field 'continent': {continent!r} does not match region {region!r}, which is in {REGIONS[region]!r}"
        )

    this_year = datetime.date.today().year
    era_start = _parse_year(row["era_start"], "era_start", this_year, problems)
    era_end = _parse_year(row["era_end"], "era_end", this_year, problems) if row["era_end"] else None
    if era_start is not None and era_end is not None and era_start > era_end:
        problems.append(
            f"field 'era_end': {era_end} is before era_start {era_start}; "
            f"era_start must be <= era_end (leave era_end empty for a living tradition)"
        )

    count = row["prompt"].count(SUBJECT)
    if row["prompt"] and count != 1:
        problems.append(
            f"field 'prompt': must contain {SUBJECT} exactly once, found {count} times "
            f"(e.g. '{SUBJECT}, ukiyo-e woodblock print')"
        )

    sensitive = None
    if row["sensitive"]:
        sensitive = {"true": True, "false": False}.get(row["sensitive"].lower())
        if sensitive is None:
            problems.append(f"field 'sensitive': {row['sensitive']!r} is not a boolean; allowed: true, false")
    if sensitive and not row["note"]:
        problems.append(
            "field 'note': required when sensitive is true; say why the tradition needs care "
            "and how to use it respectfully"
        )

    if problems:
        return None
    return Style(
        id=row["id"],
        name=row["name"],
        region=region,
        continent=continent,
        place=row["place"],
        era_start=era_start,
        era_end=era_end,
        medium=row["medium"],
        description=row["description"],
        prompt=row["prompt"],
        reference=row["reference"],
        sensitive=sensitive,
        note=row["note"],
    )


def _parse_year(text: str, column: str, this_year: int, problems: list[str]) -> int | None:
    if not text:
        return None  # emptiness is reported by the caller where required
    if not re.fullmatch(r"-?\d+", text):
        problems.append(
            f"field '{column}': {text!r} is not a whole year; write an integer, "
            f"negative for BCE (e.g. -500 for 500 BCE)"
        )
        return None
    year = int(text)
    if not EARLIEST_YEAR <= year <= this_year:
        problems.append(f"field '{column}': year {year} is out of range; allowed {EARLIEST_YEAR}..{this_year}")
        return None
    return year


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


# ----------------------------------------------------------------- the catalogue


@functools.lru_cache(maxsize=1)
def _shipped() -> tuple[Style, ...]:
    return tuple(load(CATALOGUE_PATH))


@functools.lru_cache(maxsize=1)
def _by_id() -> dict[str, Style]:
    return {style.id: style for style in _shipped()}


def catalogue() -> list[Style]:
    """All styles of the shipped catalogue (loaded and validated once)."""
    return list(_shipped())


def ids() -> list[str]:
    """The ids of the shipped catalogue, in file order."""
    return [style.id for style in _shipped()]


def regions() -> list[str]:
    """The regions that the shipped catalogue covers, in the order of ``REGIONS``."""
    used = {style.region for style in _shipped()}
    return [region for region in REGIONS if region in used]


def get(style_id: str | Style) -> Style:
    """The style with this id (case and surrounding spaces ignored); a Style is returned as is."""
    if isinstance(style_id, Style):
        return style_id
    key = str(style_id).strip().lower()
    style = _by_id().get(key)
    if style is not None:
        return style
    suggestions = difflib.get_close_matches(key, list(_by_id()), n=3, cutoff=0.6)
    if not suggestions and key:
        suggestions = [s.id for s in search(key)][:3]
    hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    raise KitError(
        f"unknown style id {style_id!r}{hint} "
        f"(kit.styles.ids() lists all {len(_by_id())}; kit.styles.search(text) finds by name or place)"
    )


def _fold(text: str) -> str:
    """Lowercase without accents, so 'Dong Ho' finds 'Đông Hồ' and 'iznik' finds 'İznik'."""
    text = unicodedata.normalize("NFKD", text.casefold()).replace("đ", "d").replace("ø", "o")
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def search(text: str, styles: list[Style] | None = None) -> list[Style]:
    """Styles whose id, name, place, region, continent, medium or description contain every word of `text`.

    Case and accents are ignored. An empty text returns every style.
    """
    words = _fold(text or "").split()
    pool = _shipped() if styles is None else styles
    found = []
    for style in pool:
        haystack = _fold(
            " ".join(
                (style.id, style.name, style.place, style.region, style.continent, style.medium, style.description)
            )
        )
        if all(word in haystack for word in words):
            found.append(style)
    return found


def coverage(styles: list[Style] | None = None) -> dict:
    """Counts by continent and region, the era span and the share outside Europe.

    Uses the shipped catalogue unless `styles` (e.g. from ``load``) is given.
    """
    styles = list(_shipped() if styles is None else styles)
    by_continent = {c: n for c in CONTINENTS if (n := sum(s.continent == c for s in styles))}
    by_region = {r: n for r in REGIONS if (n := sum(s.region == r for s in styles))}
    living = sum(s.living for s in styles)
    earliest = min((s.era_start for s in styles), default=None)
    ends = [s.era_end for s in styles if s.era_end is not None]
    latest = datetime.date.today().year if living else max(ends, default=None)
    european = by_continent.get("Europe", 0)
    return {
        "styles": len(styles),
        "sensitive": sum(s.sensitive for s in styles),
        "living": living,
        "by_continent": by_continent,
        "by_region": by_region,
        "earliest_year": earliest,
        "latest_year": latest,
        "non_european_share": round(1 - european / len(styles), 3) if styles else 0.0,
    }
