"""Lineage: where an image came from and what was made from it, by the parent hashes in the records.

A record names its parents' pixel hashes (a walk's two ends, a restyle's source ...); the gallery's
index keeps them in a column, so `trace` walks the family both ways from the index rows alone and
loads only the PNGs of the images it reaches. Apart from the gallery because it is a graph walk and
a result to read (`Lineage.text`, `Lineage.tree`), not storage: `Gallery.lineage` reads the rows
and hands them here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..errors import KitError
from .artwork import Artwork

__all__ = ["Lineage", "trace"]


@dataclass(eq=False)
class Lineage:
    """Where an image came from and what was made from it (see `Gallery.lineage`).

    ``artworks``: the image itself (empty when only named as a parent); ``ancestors`` and
    ``descendants``: nearest first, one Artwork per image whose PNG is in the gallery;
    ``ancestor_hashes``/``descendant_hashes``: every hash, PNG or not; ``unknown``: ancestors
    named by a record whose PNG the gallery does not have.
    """

    sha256: str
    artworks: list[Artwork] = field(default_factory=list)
    ancestors: list[Artwork] = field(default_factory=list)
    descendants: list[Artwork] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    ancestor_hashes: list[str] = field(default_factory=list)
    descendant_hashes: list[str] = field(default_factory=list)
    parents: dict[str, list[str]] = field(default_factory=dict)  # hash -> its parents' hashes (ancestors' edges)
    children: dict[str, list[str]] = field(default_factory=dict)  # hash -> its children's hashes (descendants')
    by_hash: dict[str, Artwork] = field(default_factory=dict)  # the loaded Artwork of each hash with a PNG

    def tree(self, direction: str = "ancestors") -> dict:
        """The lineage as a tree from this image: {"sha256", "artwork" (None without a PNG), "next": [subtrees]},
        following parents ("ancestors") or children ("descendants"). An image reached twice (two paths to one
        ancestor) is listed again without its subtree ("seen": True), so the tree stays finite."""
        if direction not in ("ancestors", "descendants"):
            raise KitError(f"direction must be 'ancestors' or 'descendants', got {direction!r}")
        edges = self.parents if direction == "ancestors" else self.children
        seen: set[str] = set()

        def node(sha):
            if sha in seen:
                return {"sha256": sha, "artwork": self.by_hash.get(sha), "next": [], "seen": True}
            seen.add(sha)
            return {"sha256": sha, "artwork": self.by_hash.get(sha), "next": [node(h) for h in edges.get(sha, [])]}

        return node(self.sha256)

    def text(self) -> str:
        """The lineage as an indented text tree: what the image was made from, then what was made from it."""

        def describe(sha):
            art = self.by_hash.get(sha)
            if art is None:
                return f"{sha[:12]}  (not in the gallery)"
            record = art.record
            return f"{sha[:12]}  {record.kind}, seed {record.seed}: {(record.subject or record.prompt)[:60]!r}"

        def lines(tree, depth):
            out = []
            for sub in tree["next"]:
                again = " (again)" if sub.get("seen") else ""
                out.append("    " * depth + "\u2514\u2500 " + describe(sub["sha256"]) + again)
                out += lines(sub, depth + 1)
            return out

        up, down = lines(self.tree("ancestors"), 1), lines(self.tree("descendants"), 1)
        return "\n".join(
            [
                describe(self.sha256),
                "  made from:",
                *(up or ["    (nothing: made from text)"]),
                "  made into:",
                *(down or ["    (nothing yet)"]),
            ]
        )

    def __repr__(self) -> str:
        return (
            f"Lineage({self.sha256[:12]}, {len(self.ancestor_hashes)} ancestor(s), "
            f"{len(self.descendant_hashes)} descendant(s), {len(self.unknown)} not in the gallery)"
        )


def trace(
    sha256: str, rows: Iterable[tuple], on_disk, load_all: Callable[[list[str]], Iterable[Artwork]], where: str
) -> Lineage:
    """The lineage of the image whose pixel hash is or starts with `sha256` (lower-case hex digits).

    rows: (file, sha256, parents) of every index row, oldest first, parents as space-separated
    hashes; on_disk: the PNG names in the folder now (a row whose PNG was deleted still links its
    family, but nothing is loaded for it); load_all: PNG names -> their Artworks (one that cannot be
    read is skipped); where: the gallery's folder, named in errors.
    """
    parents: dict[str, list[str]] = {}
    files: dict[str, list[str]] = {}
    for file, sha, named in rows:
        sha = (sha or "").lower()
        parents.setdefault(sha, [])
        parents[sha] += [p for p in (named or "").split() if p not in parents[sha]]
        if file in on_disk:
            files.setdefault(sha, []).append(file)
    known = set(parents) | {p for named in parents.values() for p in named}
    matches = sorted(h for h in known if h.startswith(sha256))
    if not matches:
        raise KitError(f"no image with sha256 {sha256!r} in the gallery {where!r}, nor named as a parent by one")
    if len(matches) > 1:
        raise KitError(f"sha256 {sha256!r} matches {len(matches)} images: give more of its digits")
    target = matches[0]
    children: dict[str, list[str]] = {}
    for sha, named in parents.items():
        for parent in named:
            children.setdefault(parent, []).append(sha)

    up, down = _walk(target, parents), _walk(target, children)
    loaded = {h: art for h in [target, *up, *down] for art in load_all(files.get(h, [])[:1])}

    def artworks(hashes):
        return [loaded[h] for h in hashes if h in loaded]

    return Lineage(
        sha256=target,
        artworks=artworks([target]),
        ancestors=artworks(up),
        descendants=artworks(down),
        unknown=[h for h in up if h not in files],
        ancestor_hashes=up,
        descendant_hashes=down,
        parents={h: list(parents.get(h, [])) for h in [target, *up]},
        children={h: list(children.get(h, [])) for h in [target, *down]},
        by_hash=loaded,
    )


def _walk(start: str, edges: dict[str, list[str]]) -> list[str]:
    """Every hash reachable from `start` along `edges`, nearest first (breadth first), each once."""
    seen, order, frontier = {start}, [], [start]
    while frontier:
        nxt = []
        for node in frontier:
            for other in edges.get(node, []):
                if other not in seen:
                    seen.add(other)
                    order.append(other)
                    nxt.append(other)
        frontier = nxt
    return order
