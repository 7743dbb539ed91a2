"""The version floors in pyproject.toml are the versions constraints/lowest.txt pins, which
scripts/test-lowest.sh installs and tests: a floor raised or lowered in one place only fails here."""

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11's")
ROOT = Path(__file__).resolve().parents[1]
# the libraries whose floors must be tested (torch's cannot be here: see pyproject.toml)
TESTED = {"diffusers", "transformers", "open-clip-torch", "plotly", "huggingface-hub", "safetensors"}


def floors() -> dict[str, Version | None]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    out = {}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        lowest = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        out[canonicalize_name(requirement.name)] = Version(lowest[0]) if lowest else None
    return out


def pins() -> dict[str, Version]:
    out = {}
    for line in (ROOT / "constraints" / "lowest.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{line!r}: pin exact versions"
            out[canonicalize_name(requirement.name)] = Version(spec.version)
    return out


def test_every_pinned_dependency_is_pinned_at_its_floor():
    ours, pinned = floors(), pins()
    disagree = {
        name: (str(ours[name]), str(version))
        for name, version in pinned.items()
        if name in ours and ours[name] != version
    }
    assert not disagree, f"pyproject floor vs constraints/lowest.txt pin: {disagree}"


def test_the_libraries_the_issue_names_are_pinned():
    assert TESTED <= pins().keys() and TESTED <= floors().keys()
    assert all(floors()[name] for name in TESTED)
