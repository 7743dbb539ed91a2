"""Provenance: the record behind every image, the image with its record (save, load, replay), the append-only
gallery with its marks and lineage, the XMP every PNG carries, and content credentials (C2PA).

Low in the layers: the core, the maps, the features and the Studio build on it; it builds only on the leaves.
"""
