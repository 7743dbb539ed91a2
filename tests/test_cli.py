"""The `kit` command as a teacher meets it: lessons copied once and never overwritten, clear errors
offline, `python -m kit`, and `kit lab` stopped cleanly with its kernels."""

import http.server
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from fifo import bounded

from kit import KitError, lessons, presets
from kit.cli import main

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))


def kit(*args, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "kit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


# ------------------------------------------------------------------ the command


def test_python_dash_m_kit_is_the_kit_command():
    out = kit("--help")
    assert out.returncode == 0 and "lab" in out.stdout and "doctor" in out.stdout
    out = kit("lab", "--help")
    assert out.returncode == 0
    for preset in ("tiny", "sd-turbo", "sdxl-turbo"):
        assert preset in out.stdout  # `kit lab --help` lists the presets


def test_an_unknown_lab_option_is_an_error_not_a_silent_start(tmp_path):
    out = kit("lab", "--prest", "tiny", "--lessons", str(tmp_path / "lessons"))
    assert out.returncode == 2 and "unrecognized arguments: --prest" in out.stderr
    assert not (tmp_path / "lessons").exists()  # nothing was copied, nothing started


@pytest.mark.parametrize("port", ["-1", "99999", "http"])
def test_a_bad_port_is_an_error_before_anything_starts(tmp_path, port):
    out = kit("lab", "--port", port, "--lessons", str(tmp_path / "lessons"))
    assert out.returncode == 2 and "a port is a whole number from 1 to 65535" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "lessons").exists()


def test_download_offline_is_one_short_message():
    out = kit("download", "sd-turbo", env={"HF_HUB_OFFLINE": "1"})
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "HF_HUB_OFFLINE" in out.stderr


def test_download_without_a_network_is_one_short_message(tmp_path):
    # a Hub that cannot be reached: a closed port on this machine
    out = kit(
        "download",
        "sd-turbo",
        env={
            "HF_HUB_OFFLINE": "0",
            "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_ETAG_TIMEOUT": "2",
            "HF_HUB_DOWNLOAD_TIMEOUT": "2",
        },
        timeout=300,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "could not download sd-turbo" in out.stderr and "--preset tiny" in out.stderr


# ------------------------------------------------------------------ offline first


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_hub_reachable_asks_once_and_reports_why(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert presets.hub_reachable() == (False, "offline (HF_HUB_OFFLINE is set)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    ok, why = presets.hub_reachable(timeout=2)
    assert not ok and "not reachable" in why
    server = http.server.HTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert presets.hub_reachable(timeout=2)[0]  # any HTTP answer, a 404 too, means the Hub is there
    finally:
        server.shutdown()


def test_lab_says_at_start_when_the_preset_cannot_run():
    sd_turbo = presets.get("sd-turbo")
    problem = presets.startup_problem(sd_turbo, reachable=(False, "offline (HF_HUB_OFFLINE is set)"))
    assert "kit lab --preset tiny" in problem and "kit download sd-turbo" in problem
    assert presets.startup_problem(sd_turbo, reachable=(True, "reachable")) is None  # it will download
    assert presets.startup_problem(presets.get("tiny"), reachable=(False, "offline")) is None


def test_a_missing_model_is_one_short_error_with_its_cause_kept(monkeypatch):
    import kit

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    studio = kit.Studio(preset="stabilityai/sd-turbo", device="cpu")
    with pytest.raises(KitError, match=r"kit lab --preset tiny") as caught:
        studio.generate("a portrait", seed=1)
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)  # no chained screens
    assert len(caught.traceback) <= 3  # raised at the door, not from deep inside the loaders
    cause = OSError("no route to host")
    assert presets.not_available(studio.preset, "pipeline", cause).cause is cause  # kept for whoever digs


def test_the_preset_table_is_data_checked_on_load(tmp_path):
    table = presets.load()  # kit/data/presets.json
    assert list(table) == ["tiny", "sd-turbo", "sdxl-turbo", "tiny-sdxl"] and table == presets.PRESETS
    assert table["tiny"].offline and table["tiny-sdxl"].offline and table["sd-turbo"].min_size == 256
    assert table["sdxl-turbo"].family == table["tiny-sdxl"].family == "sdxl"
    rows = json.loads(presets.PRESETS_PATH.read_text(encoding="utf-8"))["presets"]
    rows[1].update(steps=0, size=500, colour="red")
    rows[2].update(name="sd-turbo", family="sd3")
    rows.append({"name": "Big One", "model": 7, "min_size": 1024})
    path = tmp_path / "presets.json"
    path.write_text(json.dumps({"presets": rows}), encoding="utf-8")
    with pytest.raises(KitError) as info:
        presets.load(path)
    message = str(info.value)
    for words in (
        f"{path}: 6 problem(s) in the preset table",
        "presets[1] (sd-turbo): unknown field 'colour'; allowed: name, model",
        "presets[1] (sd-turbo) field 'steps' must be a whole number from 1 to 150, got 0",
        "presets[1] (sd-turbo) field 'size' must be a multiple of 8 pixels, got 500",
        "presets[2] (sd-turbo) field 'family' must be one of sd, sdxl, got 'sd3'",
        "presets[4] (Big One) field 'name' must be a lowercase kebab-case name",
        "presets[4] (Big One) field 'model' must be text or null, got 7",
    ):
        assert words in message, words
    rows[1:] = [{**rows[0], "name": "tiny", "min_size": 128}]
    path.write_text(json.dumps({"presets": rows}), encoding="utf-8")
    with pytest.raises(KitError) as info:
        presets.load(path)
    assert "presets[1] (tiny): the sizes must satisfy min_size <= size <= max_size, got 128 <= 64 <= 512" in str(
        info.value
    )
    rows[1]["min_size"] = 64
    path.write_text(json.dumps({"presets": rows}), encoding="utf-8")
    with pytest.raises(KitError, match=r"presets\[1\]: the name 'tiny' is used twice"):
        presets.load(path)


def test_doctor_reports_the_hub():
    out = kit("doctor", env={"HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0 and "offline (HF_HUB_OFFLINE is set)" in out.stdout


# ------------------------------------------------------------------ the lessons


def test_lessons_are_copied_once_and_never_overwritten(tmp_path):
    folder = tmp_path / "lessons"
    report = lessons.install(folder)
    assert report["copied"] == SHIPPED and sorted(p.name for p in folder.glob("*.ipynb")) == SHIPPED
    for name in SHIPPED:
        assert (folder / name).read_bytes() == (ROOT / "notebooks" / name).read_bytes()
    mine = folder / SHIPPED[1]
    mine.write_text('{"cells": [], "edited": "by a student"}')
    report = lessons.install(folder)
    assert report["kept"] == [SHIPPED[1]] and not report["copied"]
    assert "by a student" in mine.read_text()  # the student's work is never overwritten
    report = lessons.install(folder, reset=True)
    assert report["reset"] == [SHIPPED[1]]
    assert mine.read_bytes() == (ROOT / "notebooks" / SHIPPED[1]).read_bytes()
    backups = list(folder.glob(f"{SHIPPED[1]}.*.bak"))
    assert len(backups) == 1 and "by a student" in backups[0].read_text()  # ... and kept on reset


def test_an_untouched_lesson_follows_a_newer_shipped_version(tmp_path, monkeypatch):
    source = tmp_path / "shipped"
    source.mkdir()
    (source / "a.ipynb").write_text("version 1")
    (source / "b.ipynb").write_text("version 1")
    monkeypatch.setattr(lessons, "shipped", lambda: source)
    folder = tmp_path / "mine"
    lessons.install(folder)
    (folder / "b.ipynb").write_text("my notes")
    (source / "a.ipynb").write_text("version 2")
    (source / "b.ipynb").write_text("version 2")
    report = lessons.install(folder)
    assert report["updated"] == ["a.ipynb"] and report["kept"] == ["b.ipynb"]
    assert (folder / "a.ipynb").read_text() == "version 2" and (folder / "b.ipynb").read_text() == "my notes"


def test_lessons_folder_must_be_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(KitError, match="is a file"):
        lessons.install(tmp_path / "file")
    assert main(["lab", "--lessons", str(tmp_path / "file")]) == 2


def test_a_folder_or_fifo_named_like_a_lesson_is_left_alone(tmp_path, monkeypatch):
    """`kit lab` neither crashes on a folder nor waits on a FIFO where a lesson would go: both stay as they are."""
    source = tmp_path / "shipped"
    source.mkdir()
    for name in ("a.ipynb", "b.ipynb", "c.ipynb"):
        (source / name).write_text(f"lesson {name}")
    monkeypatch.setattr(lessons, "shipped", lambda: source)
    folder = tmp_path / "mine"
    (folder / "a.ipynb").mkdir(parents=True)
    (folder / "a.ipynb" / "notes.txt").write_text("mine")
    os.mkfifo(folder / "b.ipynb")
    report = bounded(lambda: lessons.install(folder), folder / "b.ipynb")
    assert report["blocked"] == ["a.ipynb", "b.ipynb"] and report["copied"] == ["c.ipynb"]
    assert (folder / "a.ipynb" / "notes.txt").read_text() == "mine" and stat.S_ISFIFO(
        os.lstat(folder / "b.ipynb").st_mode
    )
    report = bounded(lambda: lessons.install(folder, reset=True), folder / "b.ipynb")
    assert report["blocked"] == ["a.ipynb", "b.ipynb"] and report["current"] == ["c.ipynb"]
    assert not list(folder.glob("*.bak"))


def test_a_fifo_in_place_of_the_lessons_record_is_a_clear_error(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    os.mkfifo(folder / lessons.MANIFEST)
    with pytest.raises(KitError, match="FIFO"):
        bounded(lambda: lessons.install(folder), folder / lessons.MANIFEST)
    assert stat.S_ISFIFO(os.lstat(folder / lessons.MANIFEST).st_mode)  # not the kit's file: never replaced


def test_a_wheel_ships_the_lessons(tmp_path):
    """`pip install .` (not editable) has the lessons inside the package, where `kit lab` finds them."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "wheel"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "wheel").glob("kit_portraits-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path / "site"), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    code = (
        "import kit, kit.lessons as l, json; print(json.dumps([kit.__file__, str(l.shipped()), "
        f"l.install({str(tmp_path / 'copies')!r})['copied']]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
    )
    where, shipped, copied = json.loads(out.stdout)
    assert where.startswith(str(tmp_path / "site"))
    assert shipped == str(tmp_path / "site" / "kit" / "lessons")
    assert copied == SHIPPED


# ------------------------------------------------------------------ stopping kit lab


def wait_for(predicate, timeout=120.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def answers(url) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
        return True
    except OSError:
        return False


def port_free(port) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_stopping_kit_lab_stops_jupyterlab_and_its_kernels(tmp_path, how):
    port, token = closed_port(), "kit-test-token"
    home = tmp_path / "home"
    env = {
        **os.environ,
        "HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "ws"),
        "IPYTHONDIR": str(home / "ipython"),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kit",
            "lab",
            "--preset",
            "tiny",
            "--lessons",
            str(tmp_path / "lessons"),
            "--no-browser",
            "--port",
            str(port),
            "--",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            "--LabApp.extension_manager=readonly",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        api = f"http://127.0.0.1:{port}/api"
        wait_for(lambda: answers(f"{api}/status?token={token}"), what="JupyterLab to answer")
        request = urllib.request.Request(
            f"{api}/kernels?token={token}", data=b"{}", method="POST", headers={"Content-Type": "application/json"}
        )
        json.loads(urllib.request.urlopen(request, timeout=60).read())
        wait_for(lambda: len(psutil.Process(process.pid).children(recursive=True)) >= 2, what="the kernel")
        tree = psutil.Process(process.pid).children(recursive=True)  # the server and its kernel
        assert (tmp_path / "lessons" / SHIPPED[0]).is_file()  # served from the user's copy
        process.send_signal(how)
        assert process.wait(timeout=60) == 0
        wait_for(
            lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree),
            timeout=30,
            what="the server and kernel to exit",
        )
        assert port_free(port)
    finally:
        if process.poll() is None:
            process.kill()
        for child in psutil.Process().children(recursive=True):
            child.kill()
