"""The kit's tables that are data: one way to read them, and the classification table.

The style catalogue (``kit.styles``), the preset table (``kit.presets``) and the classification
table here are files under ``kit/data/`` that a researcher may edit or replace. They are read the
same way: `read_text` (the kit's safe reader, UTF-8), `read_json` (one JSON object with known
keys, none written twice) and, for whatever a table's own checks find, `data_error` (one
KitError listing every problem).

The classification table (``kit/data/classification.json``) says how a style map groups the
catalogue's free text into a legend: era bins and medium families. `classification()` is the
shipped table, loaded and checked once; `load_classification(path)` reads another.

Only the standard library is imported here; it imports nothing of the kit but the errors and the
file reader, so the catalogue and the presets may both use it.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import KitError
from .files import ReadError, read_file

MAX_LISTED_ERRORS = 20


def read_text(path: Path, what: str) -> str:
    """The text of one of the kit's data files (UTF-8, a byte-order mark dropped), or a KitError that says why not."""
    try:  # the kit's safe reader: regular files only, capped, so a FIFO or /dev/zero cannot hang it
        return read_file(path, field=what).decode("utf-8-sig")
    except ReadError as e:
        raise KitError(f"cannot read the {what} {path}: {e.reason}") from None
    except UnicodeDecodeError as e:
        raise KitError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start}); save the file as UTF-8") from None


def data_error(path, what: str, errors: list[str]) -> KitError:
    """The one error for a data file with problems: every one listed (up to MAX_LISTED_ERRORS)."""
    listed = errors[:MAX_LISTED_ERRORS]
    more = f"\n  ... and {len(errors) - len(listed)} more" if len(errors) > len(listed) else ""
    return KitError(f"{path}: {len(errors)} problem(s) in the {what}:\n  " + "\n  ".join(listed) + more)


def read_json(path: str | Path, what: str, keys: dict[str, bool]) -> dict:
    """The top-level object of one of the kit's JSON tables, or a KitError naming the file and the fault.

    keys: the allowed top-level keys, each mapped to whether it is required. A key written twice
    in one object is an error (plain ``json`` would keep the last one without a word).
    """
    path = Path(path)

    def unique(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise ValueError(f"the key {key!r} is written twice in one object; keep one")
            seen[key] = value
        return seen

    try:
        data = json.loads(read_text(path, what), object_pairs_hook=unique)
    except json.JSONDecodeError as e:
        raise KitError(f"{path}: not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except ValueError as e:
        raise KitError(f"{path}: {e}") from None
    if not isinstance(data, dict):
        raise KitError(f"{path}: the {what} must be one JSON object with the keys {', '.join(keys)}")
    errors = [f"unknown key {key!r}; allowed: {', '.join(keys)}" for key in data if key not in keys]
    errors += [f"key {key!r} is missing" for key, required in keys.items() if required and key not in data]
    if errors:
        raise data_error(path, what, errors)
    return data


DATA = Path(__file__).parent / "data"  # the package's data folder: the catalogue, the tables, the tiny weights
CLASSIFICATION_PATH = DATA / "classification.json"
UNLABELLED = "unlabelled"  # the group of a point with no era or medium (not a label a table may use)


@dataclass(frozen=True)
class Classification:
    """How a map groups the catalogue's free text into a legend: era bins and medium families.

    era_bins: ``(first year of the next bin, label)`` pairs in rising order, the last ``(None, label)``.
    medium_families: family -> keywords; a medium belongs to the family whose keyword starts a
    word earliest in its text (the longest keyword on a tie).
    medium_overrides: ``(family, words)`` pairs checked first: a medium containing one of the
    words anywhere belongs to that family. other_medium: the family of a medium nothing matches.
    """

    era_bins: tuple[tuple[int | None, str], ...]
    medium_families: dict[str, tuple[str, ...]]
    medium_overrides: tuple[tuple[str, tuple[str, ...]], ...]
    other_medium: str

    def era_bin(self, year) -> str:
        """The era bin of a start year (negative = BCE); UNLABELLED for None."""
        if year is None:
            return UNLABELLED
        for upper, label in self.era_bins[:-1]:
            if year < upper:
                return label
        return self.era_bins[-1][1]

    def medium_family(self, medium) -> str:
        """The family of a free-text medium ("oil on canvas" -> "painting & drawing")."""
        if not medium:
            return UNLABELLED
        text = str(medium).lower()
        for family, words in self.medium_overrides:
            if any(word in text for word in words):
                return family
        best = None  # (position, -keyword length, family): earliest match, longest keyword on a tie
        for family, keywords in self.medium_families.items():
            for keyword in keywords:
                found = re.search(r"\b" + re.escape(keyword), text)
                if found:
                    candidate = (found.start(), -len(keyword), family)
                    best = candidate if best is None else min(best, candidate)
        return best[2] if best else self.other_medium

    @property
    def era_labels(self) -> list[str]:
        return [label for _upper, label in self.era_bins]

    @property
    def medium_labels(self) -> list[str]:
        """Every medium family, in legend order: keyword families, override families, other."""
        return list(dict.fromkeys([*self.medium_families, *(f for f, _w in self.medium_overrides), self.other_medium]))


def load_classification(path: str | Path = CLASSIFICATION_PATH) -> Classification:
    """Read and check a classification table (JSON like ``kit/data/classification.json``).

    Raises one KitError listing every problem, each named by its place in the file
    ("era_bins[2].before", 'medium_families["print"][3]').
    """
    data = read_json(
        path,
        "classification table",
        {"about": False, "era_bins": True, "medium_families": True, "medium_overrides": False, "other_medium": True},
    )
    errors: list[str] = []
    era_bins = _era_bins(data["era_bins"], errors)
    families = {}
    if isinstance(data["medium_families"], dict) and data["medium_families"]:
        for family, keywords in data["medium_families"].items():
            families[family] = _words(keywords, f"medium_families[{_quoted(family)}]", errors)
    else:
        errors.append("field 'medium_families': must be an object of family -> list of keywords, not empty")
    overrides = []
    rows = data.get("medium_overrides", [])
    for number, row in enumerate(rows if isinstance(rows, list) else [None]):
        where = f"medium_overrides[{number}]"
        if not isinstance(rows, list) or not isinstance(row, dict) or set(row) != {"family", "contains"}:
            errors.append(f"field '{where}': must be an object with the keys 'family' and 'contains'")
            continue
        overrides.append((row["family"], _words(row["contains"], f"{where}.contains", errors)))
    other = data["other_medium"]
    labels = [
        *((f"era_bins[{i}].label", label) for i, (_upper, label) in enumerate(era_bins)),
        *((f"medium_families[{_quoted(family)}]", family) for family in families),
        *((f"medium_overrides[{i}].family", family) for i, (family, _words) in enumerate(overrides)),
        ("other_medium", other),
    ]
    for where, label in labels:
        if not isinstance(label, str) or not label.strip() or label != label.strip():
            errors.append(f"field '{where}': {label!r} must be a non-empty label without spaces around it")
        elif label == UNLABELLED:
            errors.append(f"field '{where}': {UNLABELLED!r} is kept for points without a value; choose another label")
    eras = [label for _upper, label in era_bins if isinstance(label, str)]
    if len(set(eras)) != len(eras):
        errors.append("field 'era_bins': every bin needs a label of its own")
    if isinstance(other, str) and other in [family for _where, family in labels[len(era_bins) : -1]]:
        errors.append(f"field 'other_medium': {other!r} is already a family; the fallback needs a name of its own")
    if errors:
        raise data_error(path, "classification table", errors)
    return Classification(tuple(era_bins), families, tuple(overrides), other)


def _era_bins(rows, errors: list[str]) -> list[tuple[int | None, str]]:
    """Check the era bins: ``{"before": year, "label": text}`` rising, the last one ``"before": null``."""
    if not isinstance(rows, list) or not rows:
        errors.append('field \'era_bins\': must be a non-empty list of {"before": year, "label": text}')
        return []
    bins, previous = [], None
    for number, row in enumerate(rows):
        where, last = f"era_bins[{number}]", number == len(rows) - 1
        if not isinstance(row, dict) or set(row) != {"before", "label"}:
            errors.append(f"field '{where}': must be an object with the keys 'before' and 'label'")
            continue
        upper = row["before"]
        if last and upper is not None:
            errors.append(f"field '{where}.before': the last bin runs to today, so it must be null, got {upper!r}")
        elif not last and (isinstance(upper, bool) or not isinstance(upper, int)):
            errors.append(
                f"field '{where}.before': must be a whole year (negative for BCE), got {upper!r}; "
                f"only the last bin has null"
            )
        elif not last and previous is not None and upper <= previous:
            errors.append(f"field '{where}.before': {upper} is not after the previous bin's {previous}; bins must rise")
        else:
            previous = upper if not last else previous
        bins.append((upper, row["label"]))
    return bins


def _quoted(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


def _words(words, where: str, errors: list[str]) -> tuple[str, ...]:
    """Check a list of lowercase match words (a medium's text is lowercased before matching)."""
    if not isinstance(words, list) or not words:
        errors.append(f"field '{where}': must be a non-empty list of lowercase words")
        return ()
    for number, word in enumerate(words):
        if not isinstance(word, str) or not word.strip() or word != word.strip().lower():
            errors.append(
                f"field '{where}[{number}]': {word!r} must be lowercase text without spaces around it "
                f"(mediums are lowercased before matching)"
            )
    return tuple(words)


@functools.lru_cache(maxsize=1)
def classification() -> Classification:
    """The shipped classification table (loaded and checked once)."""
    return load_classification()
