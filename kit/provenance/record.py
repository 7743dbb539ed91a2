"""The record behind every image, and its web-UI ``parameters`` text.

A ``Record`` holds everything needed to explain and regenerate one image (prompt, seed,
model, sampler, ...). It is JSON-serialisable and checked loosely on creation: what JSON
and numpy hand over is accepted, what cannot be meant is refused with a KitError naming
the field. ``Record.parameters()`` writes it in the format the popular Stable Diffusion
web UIs write and read; ``parse_parameters`` and ``Record.from_parameters`` read it back.
``Record.parents()`` names the images (by pixel hash) this one was made from; ``Record.authorship``
says who did what: the person's part (typed the prompt, chose the style, drew, picked one of
several ...) next to the model's (which model, which steps), and ``describe_authorship()`` says
it in sentences.

Light on purpose: stdlib and numpy only.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import operator
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .. import __version__, kinds
from ..errors import KitError

__all__ = [
    "Record",
    "Drawn",
    "credit",
    "check_person",
    "seed_action",
    "parse_parameters",
    "sampler_name",
    "SAMPLER_NAMES",
]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# ---------------------------------------------------------------------------
# Record
# ---------------------------------------------------------------------------

# Field groups for the loose type checks in Record.__post_init__.
_STR = (
    "kind",
    "prompt",
    "negative",
    "preset",
    "model",
    "scheduler",
    "sampler",
    "device",
    "dtype",
    "backend",
    "decoder",
    "encoding",
    "kit_version",
    "created",
    "sha256",
)
_OPTIONAL_STR = ("subject", "style", "revision")
_INT = ("seed", "steps", "width", "height")
_FLOAT = ("guidance",)
_OPTIONAL_DICT = ("fusion", "walk", "restore", "restyle", "authorship")
# Keys a record's settings use to name an image it was made from (see Record.parents).
_PARENT_KEYS = ("source_sha256", "parent_sha256")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass
class Record:
    """Everything needed to explain and regenerate one image.

    JSON-serialisable. Every field has a default so records written by older
    versions still load; keys this version does not know end up in ``extra``.
    """

    kind: str = "generate"  # "generate" | "walk" | "fuse" | "restore" | "restyle" ("imported" for foreign PNGs)
    prompt: str = ""  # as sent to the text encoder, after the style template
    negative: str = ""
    subject: str | None = None  # the user's text before a style template was applied
    style: str | None = None  # style id
    seed: int = 0
    steps: int = 1
    guidance: float = 0.0
    width: int = 512
    height: int = 512
    preset: str = ""
    model: str = ""  # repo id or local folder
    revision: str | None = None  # weights commit hash when known
    scheduler: str = ""  # diffusers class name
    sampler: str = ""  # web-UI sampler name, e.g. "Euler a"
    device: str = "cpu"
    dtype: str = "float32"
    backend: str = "torch"  # "torch" | "openvino" (kit.core.openvino_backend); records written before: torch
    decoder: str = "vae"  # "vae" (full VAE) | "taesd" (preview)
    # how the prompts were encoded (kit.prompts): "webui" (emphasis syntax, chunks of 75 tokens) for
    # every image made now; "truncate" (the text as typed, cut after 75 tokens) for records written before
    encoding: str = "truncate"
    fusion: dict[str, float] | None = None  # style id or free prompt -> weight, as the user gave them
    walk: dict | None = None  # keyframes, method, segment, t, frame, frames
    restore: dict | None = None  # mask_sha256, mask_area, mask_png, source_sha256, source_path, strength, work_size
    restyle: dict | None = None  # source_sha256, source_size, source_path, strength, crop, resize (image to image)
    # who did what: {"person": [{"action": "typed the prompt", ...}, ...], "model": {"model", "preset", "kind",
    # "steps", "did"}} (see credit); None for records written before, which do not say
    authorship: dict | None = None
    kit_version: str = __version__
    created: str = field(default_factory=_now)
    sha256: str = ""  # pixel_hash() of the image
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        # Loose checks: accept what JSON and numpy hand us, refuse what cannot be meant.
        for name in _STR:
            value = getattr(self, name)
            if value is None:
                value = ""
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            elif not isinstance(value, str):
                raise KitError(f"Record.{name} must be a string, got {value!r}")
            setattr(self, name, value)
        for name in _OPTIONAL_STR:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise KitError(f"Record.{name} must be a string or None, got {value!r}")
        for name in _INT:
            setattr(self, name, _as_int(name, getattr(self, name)))
        for name in _FLOAT:
            setattr(self, name, _as_float(name, getattr(self, name)))
        for name in _OPTIONAL_DICT:
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, dict):
                    raise KitError(f"Record.{name} must be a dict or None, got {value!r}")
                setattr(self, name, _json_copy(name, value))
        if self.fusion is not None:
            self.fusion = {str(k): _as_float(f"fusion[{k!r}]", v) for k, v in self.fusion.items()}
        if self.authorship is not None:
            _check_authorship(self.authorship)
        if not isinstance(self.extra, dict):
            raise KitError(f"Record.extra must be a dict, got {self.extra!r}")
        self.extra = _json_copy("extra", self.extra)
        for name in (*_STR, *_OPTIONAL_STR):
            _check_text(f"Record.{name}", getattr(self, name))
        if self.sha256 and not _SHA256.fullmatch(self.sha256):
            # a hash names a file and a gallery row: data must never be able to make it a path
            raise KitError(
                f"Record.sha256 must be the 64 hex digits of a pixel hash (or empty), got {self.sha256[:80]!r}"
            )
        self.sha256 = self.sha256.lower()

    # -- JSON ---------------------------------------------------------------

    def to_dict(self) -> dict:
        """A plain dict of JSON types."""
        return dataclasses.asdict(self)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        """Build a Record from a dict; unknown keys are kept in ``extra``."""
        if not isinstance(data, dict):
            raise KitError(f"a Record needs a dict (JSON object), got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names and k != "extra"}
        extra = data.get("extra") or {}
        if not isinstance(extra, dict):
            raise KitError(f"Record.extra must be a dict, got {extra!r}")
        extra = {**extra, **{k: v for k, v in data.items() if k not in names}}
        return cls(**known, extra=extra)

    @classmethod
    def from_json(cls, text: str | bytes) -> Record:
        if isinstance(text, (str, bytes)) and len(text) > MAX_JSON:
            raise KitError(f"not a valid Record JSON: {len(text):,} characters, over the limit of {MAX_JSON:,}")
        try:
            data = json.loads(text)
        except RecursionError:
            raise KitError(f"not a valid Record JSON: nested deeper than {MAX_DEPTH} levels") from None
        except (TypeError, ValueError) as err:
            raise KitError(f"not a valid Record JSON: {err}") from err
        return cls.from_dict(data)

    # -- web-UI text ----------------------------------------------------------

    def parameters(self) -> str:
        """The record in the web-UI ``parameters`` format (see ``parse_parameters``)."""
        settings = {
            "Steps": self.steps,
            "Sampler": self.sampler or sampler_name(self.scheduler),
            "CFG scale": self.guidance,
            "Seed": self.seed,
            "Size": f"{self.width}x{self.height}",
            "Model": self.preset or self.model,
            "Style": self.style,
            "Fusion": "; ".join(f"{k} {v:g}" for k, v in self.fusion.items()) if self.fusion else None,
            "Version": f"kit {self.kit_version}" if self.kit_version else "",
        }
        line = ", ".join(f"{key}: {_quote(value)}" for key, value in settings.items() if value not in (None, ""))
        lines = [self.prompt] if self.prompt else []
        if self.negative:
            lines.append(f"Negative prompt: {self.negative}")
        lines.append(line)
        return "\n".join(lines)

    @classmethod
    def from_parameters(cls, text: str) -> Record:
        """A Record (kind "imported") from a web-UI ``parameters`` text.

        Values that do not convert are left out; everything parsed is kept in
        ``extra["parameters"]``.
        """
        parsed = parse_parameters(text)
        values = {
            "kind": "imported",
            "encoding": "webui",
            "prompt": parsed["Prompt"],
            "negative": parsed["Negative prompt"],
            "kit_version": "",
        }
        for key, name, convert in (("Steps", "steps", int), ("Seed", "seed", int), ("CFG scale", "guidance", float)):
            try:
                values[name] = convert(parsed[key])
            except (KeyError, ValueError):
                pass
        # "Size: 512x768" reads as Size-1 / Size-2, as in the web UI; a "Size" left whole is one it did not split
        size = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", parsed.get("Size", ""))
        if "Size-1" in parsed:
            values["width"], values["height"] = int(parsed["Size-1"]), int(parsed["Size-2"])
        elif size:
            values["width"], values["height"] = int(size[1]), int(size[2])
        values["sampler"] = parsed.get("Sampler", "")
        values["model"] = parsed.get("Model", "")
        values["style"] = parsed.get("Style")
        version = parsed.get("Version", "")
        if version.startswith("kit "):
            values["kit_version"] = version[4:]
        return cls(**values, extra={"parameters": parsed})

    # -- lineage --------------------------------------------------------------

    def parents(self) -> list[str]:
        """The pixel hashes of the images this one was made from, in the order found, no repeats.

        A restoration or a restyle names its source (``restore["source_sha256"]``, ``restyle[...]``);
        any other kind may name its sources the same way in its own settings (``walk``, or a dict in ``extra``),
        or list them in ``extra["parents"]``. Values that are not sha256 hex digests are
        ignored: a record is data, and a wrong hash names nothing.
        """
        found = []
        for value in (
            self.restore,
            self.restyle,
            self.walk,
            self.extra,
            *(v for v in self.extra.values() if isinstance(v, dict)),
        ):
            if not isinstance(value, dict):
                continue
            candidates = value.get("parents")
            candidates = list(candidates) if isinstance(candidates, list) else []
            candidates += [value.get(key) for key in _PARENT_KEYS]
            found += [c.lower() for c in candidates if isinstance(c, str) and _SHA256.fullmatch(c)]
        return list(dict.fromkeys(found))

    def made_by_model(self) -> bool:
        """Whether a model made the image: not for a foreign PNG ("imported"), nor for a record whose authorship
        names no model (a person's drawing). Records written before authorship was kept were all made by one."""
        kind = kinds.get(self.kind)
        if kind is not None and not kind.model:
            return False
        return self.authorship is None or "model" in self.authorship

    def edit(self) -> str | None:
        """What the image is when a model made it from a source image ("a restoration"), else None: its kind
        says so (`kit.kinds`), or, for a kind this process has not loaded, the source its record names."""
        kind = kinds.get(self.kind)
        if kind is not None and kind.edit:
            return kind.edit
        return "an image made from another" if self.parents() else None

    # -- who did what -----------------------------------------------------------

    def describe_authorship(self, more: list[dict] | None = None) -> list[str]:
        """Who did what, as sentences for people: the person's actions first, then the model's part.

        more: person actions noted after the image was saved (``Gallery.authorship`` passes the
        picks it keeps). A record written before authorship was kept says so instead.
        """
        section = self.authorship or {}
        person = [*section.get("person", []), *(more or [])]
        if not section:
            lines = ["This record was written before the kit kept who did what."]
            return lines + [_say(entry, self) for entry in person]
        lines = [_say(entry, self) for entry in person] or ["The person gave no input of their own."]
        if "model" not in section:  # no model made it (a person's drawing)
            return lines
        model = section.get("model") or {}
        name = model.get("model") or self.model or self.preset or "the model"
        steps = model.get("steps")
        did = model.get("did") or "made the image"
        lines.append(
            f"The model ({name}{f', {steps} step' + 's' * (steps != 1) if isinstance(steps, int) else ''}) {did}."
        )
        return lines


class Drawn(int):
    """A seed the person did not choose (a dice roll, a widget's default): passed as the seed, it makes
    the same image, but the record does not say the person chose it (see `credit`)."""


def seed_action(seed) -> list[dict]:
    """The person's seed action for a request's seed: none when the seed was left to chance."""
    if seed is None or isinstance(seed, (Drawn, bool)) or not isinstance(seed, numbers.Integral):
        return []  # left to chance, or not a seed at all (the request's own check refuses that)
    return [{"action": "chose the seed", "seed": int(seed)}]


MAX_ACTIONS = 64  # person actions a record may hold (a record is data: read from a file, it is checked)


def credit(record: Record, person: list[dict]) -> Record:
    """Fill `record.authorship`: `person` (the person's actions, in order) and the model's part, from the
    record's own fields and what its kind says the model did (`kit.kinds`). Returns the record (changed in place)."""
    kind = kinds.get(record.kind)
    model = {
        "model": record.model or record.preset,
        "preset": record.preset,
        "kind": record.kind,
        "steps": record.steps,
        "did": kind.model_did(record) if kind is not None else "made the image",
    }
    record.authorship = {"person": list(person), "model": model}
    _check_authorship(record.authorship)
    return record


def check_person(person, field: str = "person") -> list[dict]:
    """Person actions a caller adds (a widget: {"action": "drew", "strokes": 12}), JSON-copied; None is none."""
    if person is None:
        return []
    if isinstance(person, dict) or not isinstance(person, (list, tuple)):
        raise KitError(
            f"{field} must be a list of actions such as [{{'action': 'drew', 'strokes': 12}}], "
            f"got {type(person).__name__}"
        )
    person = _json_copy(field, list(person))
    try:
        _check_authorship({"person": person})
    except KitError as err:
        raise KitError(f"{field}: {err}") from None
    return person


def _check_authorship(section) -> None:
    """Loose checks, as for every field: a dict with a list of person actions (dicts naming an action)."""
    if set(section) - {"person", "model"}:
        raise KitError(f"Record.authorship may hold 'person' and 'model', got {sorted(section)}")
    person = section.get("person", [])
    if not isinstance(person, list) or len(person) > MAX_ACTIONS:
        raise KitError(f"Record.authorship['person'] must be a list of at most {MAX_ACTIONS} actions")
    for entry in person:
        if not isinstance(entry, dict) or not isinstance(entry.get("action"), str) or not entry["action"].strip():
            raise KitError(f"Record.authorship['person'] entries must be objects with an 'action' text, got {entry!r}")
    if not isinstance(section.get("model", {}), dict):
        raise KitError("Record.authorship['model'] must be an object")


def _say(entry: dict, record: Record) -> str:
    """One person action as a sentence."""
    action = entry["action"]
    details = {k: v for k, v in entry.items() if k != "action"}
    if action == "typed the prompt" and isinstance(details.get("prompt"), str):
        return f"The person typed the prompt \u201c{details['prompt']}\u201d."
    if action == "chose the style" and details.get("style"):
        return f"The person chose the style {details['style']}."
    if action == "set the fusion weights" and isinstance(details.get("weights"), dict):
        mix = ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else str(k) for k, v in details["weights"].items())
        return f"The person chose the styles and their weights ({mix})."
    if action == "chose the seed" and isinstance(details.get("seed"), int):
        seed = details["seed"]
        also = f" (the batch's first; this image's is {record.seed})" if record.seed != seed else ""
        return f"The person chose the seed {seed}{also}."
    if action in ("gave the source image", "gave the image to restore") and isinstance(details.get("sha256"), str):
        return f"The person {action} (pixel hash {details['sha256'][:12]}\u2026)."
    if action == "set the strength" and isinstance(details.get("strength"), (int, float)):
        return f"The person set the strength to {details['strength']:g}."
    if action == "gave the mask" and isinstance(details.get("pixels"), int):
        return f"The person gave the mask of the area to restore ({details['pixels']} pixels)."
    if action == "drew" and isinstance(details.get("strokes"), int):
        n = details["strokes"]
        return f"The person drew {n} stroke{'s' * (n != 1)}."
    if action == "painted the mask" and isinstance(details.get("pixels"), int):
        return f"The person painted the mask by hand ({details['pixels']} pixels)."
    if action == "picked" and isinstance(details.get("of"), int):
        return f"The person picked this image out of {details['of']} candidates."
    rest = ", ".join(f"{k} {_short(v)}" for k, v in details.items())
    return f"The person {action}{f' ({rest})' if rest else ''}."


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _as_int(name, value) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, str):
            return int(value.strip())
        if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):  # numpy floats too
            if not float(value).is_integer():
                raise ValueError
            return int(value)
        return operator.index(value)  # int and numpy integers
    except (TypeError, ValueError, OverflowError):
        raise KitError(f"Record.{name} must be an integer, got {value!r}") from None


def _as_float(name, value) -> float:
    if isinstance(value, bool):
        raise KitError(f"Record.{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise KitError(f"Record.{name} must be a number, got {value!r}") from None


MAX_DEPTH = 32  # how deeply a record's settings may nest (a record is data: a forged one may nest 100,000 deep)
MAX_JSON = 8 * 2**20  # characters of a record's JSON text


def _json_copy(name, value):
    """A deep copy through JSON: tuples become lists, so a saved record equals its load. Refused with a KitError
    naming the field: what is not JSON, nests deeper than MAX_DEPTH, or holds text that is not text."""
    _check_plain(f"Record.{name}", value, 0)
    try:
        return json.loads(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError) as err:
        raise KitError(f"Record.{name} must hold only JSON values: {err}") from None


def _check_plain(name: str, value, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise KitError(f"{name} nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_text(f"{name} key", key)
            _check_plain(f"{name}[{key!r}]" if isinstance(key, str) and len(key) < 40 else name, item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_plain(name, item, depth + 1)
    else:
        _check_text(name, value)


def _check_text(name: str, value) -> None:
    """A lone surrogate (from a broken decode) cannot be written as UTF-8: refused here, naming the field,
    rather than failing later in the middle of a save."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise KitError(
                f"{name} holds a character that is not text (a lone surrogate): "
                f"{value[:60].encode('utf-8', 'backslashreplace').decode()!r}"
            ) from None


# ---------------------------------------------------------------------------
# The web-UI "parameters" text
# ---------------------------------------------------------------------------
#
#   <prompt>
#   Negative prompt: <negative>            (line left out when empty)
#   Steps: 1, Sampler: Euler a, CFG scale: 0.0, Seed: 42, Size: 512x512, Model: sd-turbo, Version: kit 0.1.0
#
# The last line is "Key: value" pairs joined by ", ". A value holding a comma, a colon
# or a newline is written as a JSON string in double quotes, as those web UIs do.
#
# Reading follows AUTOMATIC1111's reader (parse_generation_parameters in the web UI's
# modules/infotext_utils.py), pinned by tests/data/webui_infotext_corpus.json; the rules
# are spelled out in parse_parameters and _settings_pairs.

_NEGATIVE = "Negative prompt:"
# A key: a letter, digit or "_" (any script) and at least one more of those, space, "-" or "/", then a colon,
# looked for only where a run of such characters starts (so a long run is read once, not once per character).
_KEY = re.compile(r"(?<![\w \-/])[ \-/]*(\w[\w \-/]+):")
_SPACES = re.compile(r"\s*")
_WXH = re.compile(r"(\d+)x(\d+)\n?")  # "512x768" (\d: any script's decimal digits, as the web UI's)


# diffusers scheduler class -> the sampler name the web UIs show for the same method.
SAMPLER_NAMES = {
    "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "HeunDiscreteScheduler": "Heun",
    "LMSDiscreteScheduler": "LMS",
    "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a",
    "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DDIMScheduler": "DDIM",
    "PNDMScheduler": "PLMS",
    "UniPCMultistepScheduler": "UniPC",
    "LCMScheduler": "LCM",
}


def sampler_name(scheduler: str) -> str:
    """The web-UI sampler name for a diffusers scheduler class name ("" when there is none)."""
    return SAMPLER_NAMES.get(scheduler, "")


def _quote(value) -> str:
    text = str(value)
    if any(c in text for c in ",:\n"):
        return json.dumps(text, ensure_ascii=False)
    return text


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def _unescaped(line: str) -> str:
    """The line with every backslash escape (``\\\\`` and ``\\"``) masked, same length: a quote left
    in it is one that ends a quoted value. A run of backslashes pairs up from its start (a value
    opens after a colon and white space, never inside a run), so masking the whole line at once
    reads every value of it the way reading each value from its opening quote would."""
    return line.replace("\\\\", "__").replace('\\"', "__")


def _settings_pairs(line: str) -> list[tuple[str, str]]:
    """Every ``Key: value`` pair in one settings line (no "\\n" in it), in order, values as written.

    What counts, as the web UI reads it:

    * a key is a letter, digit or "_" followed by at least one more letter, digit, "_", space,
      "-" or "/", then a colon; spaces before the colon stay part of the key ("Steps : 1" has
      key "Steps "). Text that is not a key is skipped up to the next key that is one, so in
      "Hires.fix: 1" the key is "fix", and "A: 1" (one character) is no key;
    * after the colon, white space is skipped. A value opening with a quote is the quoted text
      when the quote closes (a backslash takes the next character, so ``\\"`` does not close),
      holds at least one character, and a comma or the line's end comes right after; any other
      value runs to the next comma or the line's end, white space at its end kept;
    * the next pair is looked for after the comma.

    Each character is read a bounded number of times, with no regex backtracking that grows
    with the text: a hostile line of a megabyte costs a fraction of a second, not the hours
    a backtracking pattern can take, and no more than a few copies of the line in memory.
    """
    pairs: list[tuple[str, str]] = []
    masked = None
    size = len(line)
    pos = 0
    while pos < size:
        key = _KEY.search(line, pos)
        if key is None:
            break
        start = _SPACES.match(line, key.end()).end()
        end = -1
        if line.startswith('"', start):
            masked = masked or _unescaped(line)
            close = masked.find('"', start + 1)
            if close > start + 1 and (close + 1 == size or line[close + 1] == ","):
                end = close + 1
        if end < 0:
            comma = line.find(",", start)
            end = size if comma < 0 else comma
        pairs.append((key[1], line[start:end]))
        pos = end + 1
    return pairs


def parse_parameters(text: str) -> dict:
    """Read a web-UI ``parameters`` text into a dict of strings, as AUTOMATIC1111's web UI reads it.

    Keys: ``"Prompt"``, ``"Negative prompt"`` and every key of the settings line
    (``"Steps"``, ``"Sampler"``, ``"CFG scale"``, ``"Seed"``, ...). Values stay strings, as
    the web UIs give them. The rules, those of the web UI's reader
    (``parse_generation_parameters``; tests/data/webui_infotext_corpus.json holds its answers):

    * the text is stripped and cut into lines at "\\n" only (a "\\r" before it goes with the
      line's stripping; a lone "\\r" is no line break). The last line is the settings line
      when it holds at least three pairs (see ``_settings_pairs``); else it is prompt text;
    * every other line is stripped. From the first line starting "Negative prompt:" on,
      lines belong to the negative prompt (a later such line loses the label too); before
      it, to the prompt. Empty lines before a prompt's first text are dropped;
    * a quoted value is read as a JSON string (escapes undone); one that is not valid JSON
      stays as written, quotes and all. A pair with an empty value is left out (it still
      counts towards the three);
    * a value of the form ``<digits>x<digits>`` is given as two keys: ``Size: 512x768``
      gives ``"Size-1": "512"`` and ``"Size-2": "768"`` and no ``"Size"``; so does any key
      (``Hires resize``, ``First pass size``). A later pair with the same key wins;
    * "Prompt" and "Negative prompt" are the prompt lines, whatever the settings line says.

    Left out of the web UI's reader: the defaults it fills in for pasting into its own form
    (``Clip skip: 1``, the Hires/Mask/Schedule/RNG/VAE/FP8 defaults, ``Emphasis``), what
    depends on its settings or its files (styles pulled out of the prompt, the old hires-fix
    size rewriting, ``skip_fields``, version back-compat), and its ``<hypernet:...>`` tag
    added to the prompt: they say what the web UI would do, not what the text says.
    """
    if not isinstance(text, str):
        raise KitError(f"parameters must be a string, got {type(text).__name__}")
    *lines, last = text.strip().split("\n")
    pairs = _settings_pairs(last)
    if len(pairs) < 3:
        lines.append(last)
        pairs = []
    prompt: list[str] = []
    negative: list[str] = []
    part = prompt
    for line in lines:
        line = line.strip()
        if line.startswith(_NEGATIVE):
            part = negative
            line = line[len(_NEGATIVE) :].strip()
        if part or line:
            part.append(line)
    parsed = {}
    for key, value in pairs:
        if not value:
            continue
        if value[0] == '"' == value[-1]:
            value = _unquote(value)
        size = _WXH.fullmatch(value)
        if size:
            parsed[f"{key}-1"], parsed[f"{key}-2"] = size[1], size[2]
        else:
            parsed[key] = value
    parsed["Prompt"] = "\n".join(prompt)
    parsed["Negative prompt"] = "\n".join(negative)
    return parsed
