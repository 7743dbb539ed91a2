"""The kinds of image the kit makes: one table, filled by each feature as it is imported.

A kind is the value of ``Record.kind`` ("generate", "walk", "fuse", "restore", "restyle", and "imported" for a
PNG the kit did not make). Each feature ends with ``register(Kind(...))``: what its records hold, how the Studio
renders and checks them, and what the model did, in words. The Studio, the record's authorship, the gallery and
the content credentials read the table here, so a new feature is one file and one registration.

A leaf: it imports nothing of the kit, so everything may read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Kind", "register", "get", "names"]


@dataclass(frozen=True)
class Kind:
    """One kind of record.

    name: the value of ``Record.kind``. did: what the model did, the end of the sentence "The model (its name,
    N steps) ..." (a function of the record when it depends on the record's settings). field: the record field
    that holds the kind's own settings ("walk", "fusion", "restore", "restyle"), or None. inputs: (studio,
    records) -> (conditioning, initial latents), for kinds the text-to-image path renders; renderer: (studio,
    record, run) -> Artwork, for kinds with a pipeline of their own; check: (studio, record) -> None, the
    kind's own fields checked (KitError) before any model work. edit: for a kind made from a source image,
    what it is called ("a restoration"): content credentials sign it as an edit of its source. model: False
    for an image no model made (a person's drawing, a foreign PNG): its PNG carries no AI metadata and it is
    not signed as made by a model.
    """

    name: str
    did: str | Callable = "made the image"
    field: str | None = None
    inputs: Callable | None = None
    renderer: Callable | None = None
    check: Callable | None = None
    edit: str | None = None
    model: bool = True

    def model_did(self, record) -> str:
        """What the model did for `record`, in words."""
        return self.did(record) if callable(self.did) else self.did


_TABLE: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add (or replace, when a module is imported again) a kind in the table; returns it."""
    if not isinstance(kind, Kind):
        raise TypeError(f"register takes a Kind, got {type(kind).__name__}")
    if kind.inputs is not None and kind.renderer is not None:
        raise ValueError(f"kind {kind.name!r}: give inputs (the text-to-image path) or a renderer, not both")
    _TABLE[kind.name] = kind
    return kind


def get(name) -> Kind | None:
    """The registered kind called `name`, or None."""
    return _TABLE.get(name) if isinstance(name, str) else None


def names() -> tuple[str, ...]:
    """The names of the registered kinds, in the order they were registered."""
    return tuple(_TABLE)


register(Kind("imported", did="made the image (outside the kit)", model=False))  # a PNG the kit did not make
