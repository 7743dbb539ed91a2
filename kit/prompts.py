"""Prompts as people paste them from the web UIs: emphasis syntax, and chunks of the text encoder's window.

A CLIP text encoder reads 77 tokens: a start token, 75 of the prompt, an end token. The popular
Stable Diffusion web UIs read longer prompts by cutting the tokens into chunks of 75, encoding
each chunk on its own (with its own start and end tokens) and laying the chunks' embeddings side
by side, so the UNet attends to all of them; the keyword ``BREAK`` ends a chunk early. They also
read emphasis written into the prompt:

=================  ==========================================
``(word)``         weight x 1.1 (nested: ``((word))`` x 1.21)
``[word]``         weight / 1.1
``(word:1.3)``     weight x 1.3 (``(word:1.0)`` is plain ``word``)
``\\(`` ``\\)``      a literal bracket (also ``\\[``, ``\\]``, ``\\\\``)
=================  ==========================================

An unclosed bracket weighs the rest of the prompt; a stray closing one is text. The weights
scale the token embeddings, whose mean is then restored (the web UIs' "original" method), see
``Studio.encode``. A record names how its prompt was encoded (``Record.encoding``):

- ``"webui"``: the above (every image the kit makes now);
- ``"truncate"``: the text as typed, cut after 75 tokens (records written before; their
  replays stay the same pixels).

Compel, the maintained prompt-weighting library, reads a syntax of its own (``word++``,
``(word)1.3``) and not this one, so this parser is the kit's own. Pure Python; no model needed.
"""

from __future__ import annotations

import math
import re

from .errors import KitError

__all__ = ["ENCODINGS", "WEBUI", "TRUNCATE", "EMPHASIS", "MAX_WEIGHT", "parse", "chunks", "check_encoding"]

WEBUI = "webui"
TRUNCATE = "truncate"
ENCODINGS = (WEBUI, TRUNCATE)
EMPHASIS = 1.1  # what one pair of brackets multiplies (round) or divides (square) by
# The largest weight a fragment may end up with, written or nested: scaled embeddings must stay finite in
# half precision (float16 holds up to 65504; a text encoder's states reach about 30). A weight written
# with 400 digits is infinite, and would give a black NaN picture: refused, with the fragment named.
MAX_WEIGHT = 1000.0
BREAK = None  # the weight that marks a BREAK among parsed fragments

_PIECE = re.compile(
    r"""
      \\(?P<escaped>[\\()\[\]])                                  # a bracket or backslash, as text
    | (?P<open>[(\[])
    | :\s*(?P<weight>[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*\)          # ":1.3)" closes a round bracket
    | (?P<close>[)\]])
    | (?P<text>[^\\()\[\]:]+|[\\:])
""",
    re.VERBOSE,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*")


def check_encoding(value, field: str = "encoding") -> str:
    if value not in ENCODINGS:
        raise KitError(f"{field} must be one of {', '.join(map(repr, ENCODINGS))}, got {value!r}")
    return value


def parse(text: str) -> list[tuple[str, float | None]]:
    """The prompt's text fragments and their weights, emphasis syntax read as the web UIs read it.

    >>> parse("a (red:1.5) hat, [blurry]")
    [('a ', 1.0), ('red', 1.5), (' hat, ', 1.0), ('blurry', 0.9090909090909091)]

    Neighbours of equal weight are joined, so ``(word:1.0)`` reads exactly as ``word``. A
    ``BREAK`` between words is a fragment ``("BREAK", None)``. An empty prompt is ``[("", 1.0)]``.
    """
    pieces: list[list] = []  # [text, weight]
    round_, square = [], []  # where each open bracket's pieces start

    def weigh(start: int, factor: float):
        for piece in pieces[start:]:
            piece[1] *= factor

    for match in _PIECE.finditer(text):
        kind, value = match.lastgroup, match.group(match.lastgroup)
        if kind == "open":
            (round_ if value == "(" else square).append(len(pieces))
        elif kind == "weight" and round_:
            weigh(round_.pop(), float(value))
        elif kind == "close" and value == ")" and round_:
            weigh(round_.pop(), EMPHASIS)
        elif kind == "close" and value == "]" and square:
            weigh(square.pop(), 1 / EMPHASIS)
        else:  # text, an escaped character, or a bracket or weight with nothing open
            for i, part in enumerate(_BREAK.split(value if kind != "weight" else match.group(0))):
                if i:
                    pieces.append(["BREAK", BREAK])
                if part:
                    pieces.append([part, 1.0])
    for start in round_:
        weigh(start, EMPHASIS)
    for start in square:
        weigh(start, 1 / EMPHASIS)

    for text_, weight in pieces:
        if weight is not BREAK and not (math.isfinite(weight) and abs(weight) <= MAX_WEIGHT):
            raise KitError(
                f"prompt: the weight of {text_.strip()[:40]!r} comes to {weight:g}; a weight must be a finite "
                f"number of at most {MAX_WEIGHT:g} (written as (word:1.3), or by nesting brackets)"
            )
    merged: list[list] = []
    for text_, weight in pieces:
        if merged and weight is not BREAK and merged[-1][1] == weight:
            merged[-1][0] += text_
        else:
            merged.append([text_, weight])
    return [(t, w) for t, w in merged] or [("", 1.0)]


def chunks(tokenize, text: str, window: int, encoding: str = WEBUI) -> list[tuple[list[int], list[float]]]:
    """The prompt's token ids and weights, cut into chunks of at most `window` tokens.

    `tokenize(text)` gives a fragment's ids without start and end tokens. Under ``"truncate"``
    the text is one fragment of weight 1 and only its first chunk is kept. A prompt of no
    tokens is one empty chunk.
    """
    fragments = [(text, 1.0)] if encoding == TRUNCATE else parse(text)
    out: list[tuple[list[int], list[float]]] = []
    ids: list[int] = []
    weights: list[float] = []

    def close():
        out.append((ids[:], weights[:]))
        ids.clear()
        weights.clear()

    for fragment, weight in fragments:
        if weight is BREAK:
            close()
            continue
        for token in tokenize(fragment):
            if len(ids) == window:
                close()
            ids.append(token)
            weights.append(weight)
    if ids or not out:
        close()
    return out[:1] if encoding == TRUNCATE else out
