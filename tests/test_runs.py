"""One run, its own Stop: every feature takes a kit.Run, and a stopped run raises kit.Stopped the same way."""

import threading

import numpy as np
import pytest
from PIL import Image

import kit
from kit import Run, Stopped


def damaged():
    image = Image.new("RGB", (64, 64), (120, 80, 40))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 40, 40))
    return image, mask


FEATURES = {
    "generate": lambda s, run: s.generate("a weaver", seed=1, n=2, run=run),
    "walk": lambda s, run: s.walk([("a weaver", 1), ("a potter", 2)], frames=4, run=run),
    "fuse": lambda s, run: s.fuse({"ukiyo-e": 0.5, "art-deco": 0.5}, "a weaver", seed=1, run=run),
    "fusion grid": lambda s, run: s.fusion_grid(["ukiyo-e", "art-deco"], "a weaver", seed=1, points=3, run=run),
    "restore": lambda s, run: s.restore(*damaged(), seed=1, run=run),
    "audit": lambda s, run: kit.audit(s, "a {term}", ["weaver", "potter"], seeds=range(2), rounds=100, run=run),
}


@pytest.mark.parametrize("name", FEATURES)
def test_a_stop_pressed_before_the_run_starts_is_kept(studio, name):
    run = Run()
    run.stop()
    with pytest.raises(Stopped, match="stopped") as caught:
        FEATURES[name](studio, run)
    assert len(caught.value.done) == 0 and run.done == 0  # not one diffusion step ran


@pytest.mark.parametrize("name", FEATURES)
def test_a_stop_during_the_run_raises_stopped_with_what_was_finished(studio, name):
    run = Run(on_step=lambda done, total: run.stop())  # stop after the first step
    with pytest.raises(Stopped) as caught:
        FEATURES[name](studio, run)
    assert run.stopped and run.done >= 1
    for art in caught.value.done:
        assert isinstance(art, kit.Artwork) and art.record.sha256


@pytest.mark.parametrize("name", FEATURES)
def test_a_run_reports_progress_to_its_own_callback(studio, name):
    seen = []
    FEATURES[name](studio, Run(on_step=lambda done, total: seen.append((done, total))))
    assert seen and [d for d, _ in seen] == list(range(1, len(seen) + 1))
    assert seen[-1][0] == seen[-1][1]  # the last step completes the total


def test_stopping_one_run_leaves_another_run_on_the_same_studio_alone(studio):
    stopped, running = Run(), Run()
    stopped.stop()
    with pytest.raises(Stopped):
        studio.generate("a weaver", seed=3, run=stopped)
    (art,) = studio.generate("a weaver", seed=3, run=running)  # not stopped by the other's Stop
    assert not running.stopped and art.record.seed == 3


def test_studio_stop_stops_the_runs_in_progress_from_another_thread(studio):
    started = threading.Event()
    run = Run(on_step=lambda done, total: (started.set(), release.wait(30)))
    release = threading.Event()
    result = {}

    def work():
        try:
            studio.generate("a weaver", seed=4, n=3, steps=2, run=run)
        except Stopped as err:
            result["stopped"] = err

    worker = threading.Thread(target=work)
    worker.start()
    assert started.wait(60)
    studio.stop()  # e.g. a notebook's "stop everything on this studio"
    release.set()
    worker.join(120)
    assert "stopped" in result and run.stopped


def test_parts_load_once_when_two_threads_ask_together():
    s = kit.Studio(preset="tiny", device="cpu")
    pipes = []
    threads = [threading.Thread(target=lambda: pipes.append(s.load("pipeline"))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(pipes) == 3 and all(p is pipes[0] for p in pipes) and s.loaded == ("pipeline",)


def test_a_run_cannot_be_given_a_second_callback(studio):
    with pytest.raises(TypeError, match="pass on_step to the Run"):
        studio.generate("a weaver", seed=1, run=Run(), on_step=lambda d, t: None)


def test_the_stopped_walk_keeps_its_frames_for_reuse(studio):
    run = Run(on_step=lambda done, total: run.stop() if done >= 2 * studio.preset.steps else None)
    with pytest.raises(Stopped) as caught:
        studio.walk([("a weaver", 1), ("a potter", 2)], frames=5, run=run)
    partial = caught.value.done
    assert isinstance(partial, kit.walks.Walk) and not partial.complete and 1 <= len(partial) < 5
    whole = studio.walk([("a weaver", 1), ("a potter", 2)], frames=5, reuse=partial)
    assert whole.complete and len(whole) == 5
    first = {a.record.walk["t"]: np.asarray(a.image) for a in partial}
    for art in whole:
        if art.record.walk["t"] in first:
            assert np.array_equal(np.asarray(art.image), first[art.record.walk["t"]])
