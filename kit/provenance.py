"""Provenance, as one import: the record, the artwork and the gallery.

The code lives in three leaf modules, one concern each:

- ``kit.record``: ``Record`` and its web-UI ``parameters`` text (``parse_parameters``, ``sampler_name``);
- ``kit.artwork``: ``Artwork`` (an image with its record), ``load``, ``replay``, ``pixel_hash``;
- ``kit.gallery``: the append-only ``Gallery``, its recovery, and ``lineage``.

This module re-exports their public names, so ``from kit.provenance import ...`` keeps working.
"""

from __future__ import annotations

from .artwork import Artwork, ReplayResult, load, pixel_hash, replay
from .gallery import Gallery, Lineage, default_folder
from .record import SAMPLER_NAMES, Record, parse_parameters, sampler_name

__all__ = [
    "Record",
    "Artwork",
    "ReplayResult",
    "Gallery",
    "Lineage",
    "load",
    "replay",
    "pixel_hash",
    "parse_parameters",
    "sampler_name",
    "default_folder",
    "SAMPLER_NAMES",
]
