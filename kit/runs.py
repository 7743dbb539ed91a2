"""A run: one piece of long work (generate, walk, fuse, a fusion grid, restore, an audit, a
collection embedding) with its own progress callback and its own Stop.

    run = kit.Run(on_step=lambda done, total: print(done, total))
    studio.generate("portrait of an elder", n=8, run=run)      # another thread may call run.stop()

The rule for a stopped run, the same for every feature: it raises `kit.Stopped`, whose
`done` holds what was finished before the Stop (images already saved to a gallery stay
there). A Stop pressed before the run starts is kept: the run stops at its first step.
Each run has its own token, so stopping one widget's run never stops another's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Stopped(Exception):
    """A run was stopped before it finished; `done` holds what it finished (a list, maybe empty)."""

    def __init__(self, what: str = "the run", done=None, total: int | None = None):
        self.done = done if isinstance(done, list) else list(done or [])  # a Walk stays a Walk
        self.total = total
        made = f": {len(self.done)} of {total} finished" if total is not None else ""
        super().__init__(f"{what} was stopped{made}")


class Run:
    """Progress and a cancel token for one piece of work.

    on_step(done, total) is called after every unit of work (a diffusion step, an image).
    `stop()` may be called from any thread, before or during the run.
    """

    def __init__(
        self,
        on_step: Callable[[int, int], None] | None = None,
        *,
        progress_bar: bool = False,
        description: str = "",
        unit: str = "step",
    ):
        self.on_step = on_step
        self.progress_bar = progress_bar
        self.description, self.unit = description, unit
        self._stop = threading.Event()
        self.done = 0
        self.total = 0
        self._bar = None

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else "running"
        return f"Run({self.done}/{self.total}, {state})"

    def stop(self) -> None:
        """Ask the work to stop at its next step."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def expect(self, units: int) -> Run:
        """`units` more units of work are coming (the total grows to at least done + units)."""
        self.total = max(self.total, self.done + int(units))
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()
        elif self.progress_bar and self.total > 1:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, initial=self.done, desc=self.description, unit=self.unit, leave=False)
        return self

    def step(self, units: int = 1) -> None:
        """`units` more done: report progress."""
        self.done += units
        if self._bar is not None:
            self._bar.update(units)
        if self.on_step is not None:
            self.on_step(self.done, self.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def as_run(run=None, on_step=None, *, progress_bar: bool = False, description: str = "", unit: str = "step") -> Run:
    """The run to use: the one given, else a new one reporting to `on_step`."""
    if run is None:
        return Run(on_step, progress_bar=progress_bar, description=description, unit=unit)
    if not isinstance(run, Run):
        raise TypeError(f"run must be a kit.Run, got {type(run).__name__}")
    if on_step is not None:
        raise TypeError("pass on_step to the Run (kit.Run(on_step=...)), not beside it")
    return run
