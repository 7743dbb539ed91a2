"""Weighted blends of prompt embeddings: the weight rule, and the blend of encoded components.

Style fusion (`kit.fusion`) and image to image with fusion weights (`kit.restyle`) both read weights here.

A text encoder turns a prompt into a *prompt embedding*: one vector per token
(77 x 1024 numbers for sd-turbo), plus a pooled vector for SDXL. The UNet reads
only these numbers, so a point between the embeddings of two prompts is a
prompt "between" them. Fusion encodes each component on its own and blends:

    embedding = sum_i  w_i / (sum_j w_j) * embedding_i

Components are the keys of a `weights` dict:

- a catalogue style id ("ukiyo-e"): the prompt is `style.compose(subject)`;
- any other text ("watercolour", "stained glass"): the prompt is
  f"{subject}, in the style of {text}". Text that looks like a style id
  (lowercase words joined by hyphens, no spaces) must be one: a typo such as
  "ukiyo-ee" is an error with a suggestion, not a silent free prompt.

The weight rule, and why:

- Weights are divided by their sum, so they add up to 1 ({A: 1, B: 1} is the
  same image as {A: .5, B: .5}). Weights that add up to 1 make an *affine*
  blend: what every component shares (the subject's tokens, the start token,
  the negative prompt) comes out exactly as it was, whatever the weights;
  only what differs between the styles is mixed.
- A negative weight pushes away from that component: {A: 1, B: -0.5} becomes
  {A: 2, B: -1}, i.e. A + (A - B): start at A and go further along the line
  from B to A. To keep that an extrapolation and not a jump into nowhere, at
  least one weight must be positive and the negative weights may add up to
  at most half of the positive ones (so every normalised weight lies in
  [-1, 2]); in particular all-zero weights and zero sums are refused.
- A component with weight 0 is not encoded at all, and a single component
  with weight 1 passes its tensors through unchanged: {X: 1} gives exactly
  the pixels of `studio.generate(subject, style=X, seed=s)`.
- Components are summed in a fixed order (sorted by key), so the order of the
  dict's keys never changes a pixel.
"""

from __future__ import annotations

import math
import numbers
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

from .. import styles as style_catalogue
from ..errors import KitError
from ..prompts import WEBUI

MAX_STYLES = 5  # components in one blend (and styles in the mixer)
MAX_WEIGHT = 100.0  # |weight| as given, before normalising
MAX_CANCEL = 0.5  # negative weights may add up to at most this share of the positive ones
LOOKS_LIKE_ID = re.compile(r"[a-z0-9]+(-[a-z0-9]+)+")
EXAMPLE = "{'ukiyo-e': 0.6, 'art-deco': 0.4}"


# ---------------------------------------------------------------------------------------------
# Checking weights


@dataclass(frozen=True)
class Component:
    """One term of a blend: a catalogue style or a free prompt, with its weight as given."""

    key: str  # the style id, or the free prompt text
    weight: float
    style: style_catalogue.Style | None  # None for a free prompt

    def prompt(self, subject: str) -> str:
        """The text this component sends to the encoder."""
        if self.style is not None:
            return self.style.compose(subject)
        return f"{subject}, in the style of {self.key}"


def component_key(key) -> tuple[str, style_catalogue.Style | None]:
    """(canonical key, style or None) for a key of a weights dict."""
    if isinstance(key, style_catalogue.Style):
        return key.id, key
    if not isinstance(key, str):
        raise KitError(f"weights: keys must be style ids or text, got {key!r} ({type(key).__name__})")
    text = " ".join(key.split())
    if not text:
        raise KitError(f"weights: a key is empty; use a style id or a few words, e.g. {EXAMPLE}")
    try:
        style = style_catalogue.get(text)
    except KitError as err:
        if LOOKS_LIKE_ID.fullmatch(text.lower()):
            raise KitError(f"weights: {err}") from None
        return text, None
    return style.id, style


def check_weights(weights) -> list[Component]:
    """The components of a weights dict, in the order given; KitError naming the problem."""
    if not isinstance(weights, dict):
        raise KitError(
            f"weights must be a dict of style ids (or prompts) to numbers, e.g. {EXAMPLE}; got {type(weights).__name__}"
        )
    if not weights:
        raise KitError(f"weights is empty: give 1 to {MAX_STYLES} styles with their weights, e.g. {EXAMPLE}")
    if len(weights) > MAX_STYLES:
        raise KitError(f"weights has {len(weights)} entries; a blend takes 1 to {MAX_STYLES} styles or prompts")
    components, seen = [], set()
    for key, weight in weights.items():
        name, style = component_key(key)
        if name in seen:
            raise KitError(f"weights names {name!r} twice; give each style once")
        seen.add(name)
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            raise KitError(f"weights[{name!r}] must be a number, got {weight!r} ({type(weight).__name__})")
        weight = float(weight)
        if not math.isfinite(weight) or abs(weight) > MAX_WEIGHT:
            raise KitError(
                f"weights[{name!r}] must be a finite number from {-MAX_WEIGHT:g} to {MAX_WEIGHT:g}, got {weight}"
            )
        components.append(Component(name, weight, style))
    positive = sum(c.weight for c in components if c.weight > 0)
    negative = -sum(c.weight for c in components if c.weight < 0)
    if positive == 0:
        raise KitError(
            f"weights need at least one positive weight (they are divided by their sum), got {_plain(weights)}"
        )
    if negative > MAX_CANCEL * positive:
        raise KitError(
            f"weights: the negative weights add up to {negative:g}, more than half of the positive "
            f"ones ({positive:g}); a negative weight pushes away from a style, but may cancel at most "
            f"half of the blend"
        )
    return components


def _plain(weights) -> dict:
    return {str(getattr(k, "id", k)): v for k, v in weights.items()}


def normalise(weights) -> dict[str, float]:
    """The weights divided by their sum (they add up to 1), keyed by canonical key, in the order given."""
    components = check_weights(weights)
    total = sum(c.weight for c in components)
    return {c.key: c.weight / total for c in components}


def describe(weights) -> str:
    """A readable mix of normalised weights, zero weights left out: '0.6 ukiyo-e + 0.4 "watercolour"'."""
    components = [c for c in check_weights(weights) if c.weight != 0]
    total = sum(c.weight for c in components)
    text = ""
    for c in components:
        weight = c.weight / total
        sign = ("-" if weight < 0 else "") if not text else (" - " if weight < 0 else " + ")
        name = c.key if c.style is not None else f'"{c.key}"'
        text += f"{sign}{abs(weight):.3g} {name}"
    return text


# ---------------------------------------------------------------------------------------------
# Blending


def blend(conditionings: list[dict], weights: list[float]) -> dict:
    """The weighted sum of conditioning dicts, tensor by tensor (weights must add up to 1).

    Summed in float64 on the CPU and cast back, so the result is the same on every
    device. A tensor equal in every component (the negative prompt's) is passed
    through unchanged, and so is a single component's.
    """
    if len(conditionings) != len(weights) or not conditionings:
        raise KitError(f"blend needs one weight per conditioning, got {len(weights)} for {len(conditionings)}")
    if abs(sum(weights) - 1) > 1e-9:
        raise KitError(f"blend weights must add up to 1 (see kit.blend.normalise), got {sum(weights)}")
    out = {}
    for name, first in conditionings[0].items():
        tensors = [c[name] for c in conditionings]
        if all(torch.equal(first, t) for t in tensors[1:]):
            out[name] = first
            continue
        total = torch.zeros(first.shape, dtype=torch.float64)
        for tensor, weight in zip(tensors, weights):
            total += weight * tensor.detach().to("cpu", torch.float64)
        out[name] = total.to(first.device, first.dtype)
    return out


# Component encodings of recent blends, held by each studio: a live preview re-blends the same
# prompts with new weights, and an encoding is deterministic, so it is reused.
_CACHE_SIZE = 64


def encode_component(studio, prompt: str, negative: str, guidance: float, encoding: str, chunks: int) -> dict:
    """`studio.encode([prompt], negative, guidance, ...)`, one prompt per call, remembered."""
    key = (id(studio.pipe), prompt, negative, guidance > 1, encoding, chunks)
    cache, lock = studio.held("blend.encodings", lambda: (OrderedDict(), threading.Lock()))
    with lock:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    cond = studio.encode([prompt], negative, guidance, encoding=encoding, chunks=chunks)
    with lock:
        cache[key] = cond
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    return cond


def conditioning(
    studio, weights, subject: str, negative: str = "", guidance: float = 0.0, encoding: str = WEBUI
) -> dict:
    """The blended conditioning of one image: each non-zero component encoded on its own (as many
    chunks long as the longest), then blended."""
    components = sorted((c for c in check_weights(weights) if c.weight != 0), key=lambda c: c.key)
    total = sum(c.weight for c in components)
    texts = [c.prompt(subject) for c in components]
    chunks = studio.chunk_count(texts, encoding)
    conds = [encode_component(studio, text, negative, guidance, encoding, chunks) for text in texts]
    return blend(conds, [c.weight / total for c in components])
