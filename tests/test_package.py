"""The package as a newcomer meets it: a light import, the cli, the doctor, clean notebooks."""

import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import kit

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ["torch", "diffusers", "transformers", "open_clip", "umap", "numba", "plotly", "ipywidgets"]


def run_python(code):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_kit_imports_no_heavy_library():
    code = f"import sys, kit, kit.styles, kit.errors; print([m for m in {HEAVY!r} if m in sys.modules])"
    assert run_python(code) == "[]"


def test_public_names_resolve():
    import kit.provenance.artwork
    import kit.provenance.gallery
    import kit.studio

    assert (kit.Studio, kit.Artwork, kit.Gallery, kit.replay) == (
        kit.studio.Studio,
        kit.provenance.artwork.Artwork,
        kit.provenance.gallery.Gallery,
        kit.provenance.artwork.replay,
    )
    assert kit.Style is kit.styles.Style
    with pytest.raises(AttributeError):
        _ = kit.no_such_name


def test_doctor_reports_device_versions_presets_and_the_plan():
    report = kit.doctor()
    assert report["device"].startswith(("cpu", "cuda", "mps"))
    assert report["torch"] and report["diffusers"] != "not installed"
    assert set(report["presets"]) == {"tiny", "sd-turbo", "sdxl-turbo", "tiny-sdxl"}
    assert report["presets"]["tiny"] == report["presets"]["tiny-sdxl"] == "ready"  # built from code: nothing to fetch
    assert "tiny" in report["default"]  # KIT_PRESET=tiny in the tests
    assert "<table>" in report._repr_html_() and "device" in str(report)
    openvino = importlib.util.find_spec("openvino") is not None
    assert report["backend"].startswith("torch; ") and ("openvino" in report["backend"])
    assert ("installed:" in report["backend"]) == (openvino and report["device"] == "cpu")


def test_doctor_names_the_backend_kit_backend_picks_and_how_to_get_openvino(monkeypatch):
    from kit.core import openvino_backend

    monkeypatch.setenv("KIT_BACKEND", "openvino")
    assert openvino_backend.describe("cpu").startswith("openvino; ")
    real = importlib.metadata.version

    def without_openvino(name):
        if name == "openvino":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", without_openvino)
    assert 'pip install "kit-portraits[openvino]"' in openvino_backend.describe("cpu")


def test_cli_doctor_and_a_clear_error():
    out = subprocess.run([sys.executable, "-m", "kit.cli", "doctor"], capture_output=True, text=True)
    assert out.returncode == 0 and "presets" in out.stdout
    out = subprocess.run([sys.executable, "-m", "kit.cli", "download", "not a preset!"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown preset" in out.stderr


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_are_committed_without_outputs_and_use_the_public_api(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "a notebook without code"
    for cell in code:
        assert cell.get("outputs") == [] and cell.get("execution_count") is None, "clear the outputs before committing"
    source = "\n".join("".join(c["source"]) for c in code)
    assert "KIT_PRESET=" not in source and 'preset="' not in source, "notebooks read $KIT_PRESET, never fix a preset"
    assert "kit._" not in source and "._pipe" not in source, "notebooks use the public API only"


def test_the_layer_rules_hold():
    """import-linter's contracts (pyproject.toml): the packages follow the layers (widgets; cli and lessons; the
    Studio; features; maps; core; provenance; the leaves), features do not import each other, no two siblings
    import each other in a circle (imports inside functions counted), and the engine never imports widgets."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    kit_dir = ROOT / "kit"
    top = {f"kit.{p.stem}" for p in kit_dir.glob("*.py") if p.stem not in ("__init__", "__main__")}
    top |= {f"kit.{p.name}" for p in kit_dir.iterdir() if (p / "__init__.py").is_file()}
    layered = {name.strip() for layer in contracts[0]["layers"] for name in re.split(r"[:|]", layer)}
    assert layered == top, "every module and package of kit has its layer"
    engine = top - {"kit.widgets"}
    assert set(contracts[-1]["source_modules"]) == engine, "every engine module is under the no-widgets rule"
    linter = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(linter)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in out.stdout


def test_the_version_is_kept_in_one_place():
    from importlib.metadata import version

    assert version("kit-portraits") == kit.__version__
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^version\s*=\s*"', pyproject, re.M) is None  # no second copy of the number
    assert 'version = { attr = "kit.__version__" }' in pyproject


def test_design_md_names_every_engine_file():
    table = (ROOT / "design.md").read_text()
    kit_dir = ROOT / "kit"
    files = sorted(str(p.relative_to(kit_dir)) for p in kit_dir.rglob("*.py") if p.name != "__init__.py")
    files = [name for name in files if not name.startswith("widgets/")]  # one row names them all
    missing = [name for name in files if f"`{name}`" not in table]
    assert missing == [], f"design.md's file table does not name {missing}"


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff_lint_and_format_are_clean(command):
    """The project's lint and format rules (pyproject.toml's [tool.ruff]), as a maintainer runs them."""
    ruff = Path(sys.executable).with_name("ruff")
    out = subprocess.run([str(ruff), *command], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
