"""Content credentials (C2PA): a signed, tamper-evident statement in the PNG that a model made it.

Optional: needs the ``c2pa`` extra (``pip install "kit-portraits[c2pa]"``, the c2pa-python package) and
a signing certificate chain with its private key (PEM). The kit never ships a key.

    path = art.save("gallery/")
    credentials.sign(path, "chain.pem", "key.pem")            # c2pa.created, trainedAlgorithmicMedia
    credentials.sign(restored_path, "chain.pem", "key.pem", original="scan.png")   # c2pa.opened + c2pa.edited
    credentials.read(path)    # {"valid": True, "actions": [...], ...}, None when unsigned

Sign the file after `Artwork.save`: the kit's PNG text chunks (its record, the web-UI text and the
XMP of `kit.provenance.xmp`) are written first and the manifest last. The manifest's hash covers the whole
file (those chunks included), so any later change to the file, even re-saving the same pixels or
adding XMP, makes the credentials invalid.
"""

from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path

from .. import __version__, kinds
from ..errors import KitError
from ..files import ReadError, read_file, read_image, write_atomic
from .artwork import load, pixel_hash
from .xmp import COMPOSITE, TRAINED  # the IPTC digital source types, as the PNG's XMP states them too

HUMAN_EDITS = "http://cv.iptc.org/newscodes/digitalsourcetype/humanEdits"  # IPTC: changes by a person, no model

ALGORITHMS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")
INSTALL = 'content credentials need the c2pa-python package: pip install "kit-portraits[c2pa]"'
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_C2PA_CHUNK = b"caBX"  # the PNG chunk that holds a C2PA manifest store
_PEM_BYTES = 1 << 20  # a certificate chain or a key is a few kB


def available() -> bool:
    """True when c2pa-python can be imported."""
    try:
        _c2pa()
    except KitError:
        return False
    return True


def _c2pa():
    try:
        import c2pa
    except ImportError:
        raise KitError(INSTALL) from None
    return c2pa


def has_manifest(path) -> bool:
    """Whether a PNG file holds a C2PA manifest chunk (read without c2pa; says nothing about validity).

    The file is read with the kit's one reader: a FIFO or a device is refused (KitError), never waited on."""
    return _has_manifest(_read(path, "path"))


def _has_manifest(data: bytes) -> bool:
    if data[:8] != _PNG_SIGNATURE:
        return False
    offset = 8
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == _C2PA_CHUNK:
            return True
        if kind == b"IEND":
            return False
        offset += 8 + length + 4  # header, data and CRC
    return False


def _read(path, field: str) -> bytes:
    """The bytes of a file given by a user (regular files only, bounded), or KitError naming `field`.

    A path no file system takes (too long, a NUL byte) is refused the same way as a missing file."""
    try:
        return read_file(path, field=field)
    except ReadError as err:
        raise KitError(f"{field}: cannot read {err.where}: {err.reason}") from None
    except ValueError:  # os.stat refuses a path with a NUL byte before asking the file system
        raise KitError(f"{field}: {str(path)[:200]!r} is not a path a file system takes") from None


# Person actions that have a C2PA action of their own: drawing on the image, painting the mask.
# The others (typed the prompt, chose the style, the seed, picked one of several) have none in the
# standard: they are in the "kit.authorship" assertion, and the model's action names them in words.
_DRAWN = {"drew": "c2pa.drawing", "painted the mask": "c2pa.drawing"}
AUTHORSHIP_LABEL = "kit.authorship"  # the record's authorship section, as the kit wrote it


def manifest(record, title: str, edited: bool = False) -> dict:
    """The manifest definition for an image made from `record` (a kit Record), in C2PA's terms.

    A new image (text to image: generate, walk frames, fusions) gets ``c2pa.created`` with digital
    source type trainedAlgorithmicMedia. An edit of an existing image (a restoration, a restyle;
    `edited`) gets ``c2pa.opened`` of its parent ingredient, then what the person drew on it
    (``c2pa.drawing``, humanEdits: strokes drawn, a mask painted by hand), then the model's
    ``c2pa.edited`` with compositeWithTrainedAlgorithmicMedia. Each action's description says who
    did it; the record's whole authorship section (``kit.authorship``) goes alongside.
    """
    agent = {"name": "kit", "version": __version__}
    model = record.model or record.preset
    section = record.authorship or {}
    person = section.get("person", [])
    steps = (section.get("model") or {}).get("steps_run", record.steps)
    by_model = f"{model}, {steps} step{'s' * (steps != 1)}"
    chose = [a["action"] for a in person if a["action"] not in _DRAWN and not a["action"].startswith("gave")]
    told = f"; the person {', '.join(chose)}" if chose else ""
    if edited:
        area = (record.restore or {}).get("mask_area")
        share = f" ({area:.1%} of the pixels)" if isinstance(area, (int, float)) else ""
        did = (
            f"damaged region inpainted by {by_model}{share}"
            if record.kind == "restore"
            else f"re-rendered by {by_model}"
        )
        actions = [
            {
                "action": "c2pa.opened",
                "parameters": {"ingredientIds": ["original"]},
                "description": "the source image, given by the person",
            }
        ]
        for entry in person:
            if entry["action"] == "drew":
                strokes = entry.get("strokes")
                count = f"{strokes} stroke{'s' * (strokes != 1)}" if isinstance(strokes, int) else "strokes"
                actions.append(
                    {
                        "action": "c2pa.drawing",
                        "digitalSourceType": HUMAN_EDITS,
                        "description": f"{count} drawn by a person",
                    }
                )
            elif entry["action"] == "painted the mask":
                pixels = entry.get("pixels")
                actions.append(
                    {
                        "action": "c2pa.drawing",
                        "description": "the area to restore painted by a person"
                        + (f" ({pixels} pixels)" if isinstance(pixels, int) else ""),
                    }
                )
        actions.append(
            {
                "action": "c2pa.edited",
                "digitalSourceType": COMPOSITE,
                "softwareAgent": agent,
                "description": f"{did}{told}",
            }
        )
    else:
        actions = [
            {
                "action": "c2pa.created",
                "digitalSourceType": TRAINED,
                "softwareAgent": agent,
                "description": f"generated by {by_model}{told}",
            }
        ]
    assertions = [{"label": "c2pa.actions", "data": {"actions": actions}}]
    if section:
        assertions.append({"label": AUTHORSHIP_LABEL, "data": section})
    return {
        "claim_generator_info": [agent],
        "title": title,
        "format": "image/png",
        "assertions": assertions,
    }


def _pem(value, field: str) -> str:
    """PEM text from text, bytes or a path to a PEM file."""
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if isinstance(value, os.PathLike) or (isinstance(value, str) and "-----BEGIN" not in value):
        try:
            value = read_file(Path(value).expanduser(), field=field, max_bytes=_PEM_BYTES).decode("ascii", "replace")
        except ValueError as err:  # a ReadError, or a path with a NUL byte
            reason = getattr(err, "reason", "not a path")
            raise KitError(
                f"{field} must be PEM text or a path to a PEM file; {str(value)[:200]!r}: {reason}"
            ) from None
    if not isinstance(value, str) or "-----BEGIN" not in value:
        raise KitError(f"{field} is not PEM text (it should start with '-----BEGIN')")
    return value


def _png(path, field: str) -> tuple[Path, bytes]:
    """(path, bytes) of a PNG file given by the user; KitError when it is not one."""
    path = Path(path).expanduser()
    data = _read(path, field)
    if data[:8] != _PNG_SIGNATURE:
        raise KitError(f"{field}: {str(path)!r} is not a PNG; the kit signs the PNGs it saves")
    return path, data


def sign(
    path, cert_chain, private_key, *, original=None, out=None, alg: str = "es256", timestamp_url: str | None = None
) -> Path:
    """Add content credentials to a PNG saved by the kit; returns the signed file's path.

    cert_chain: PEM certificates (the signing certificate first, then its issuers), as text
    or a file path; private_key: the signing key's PEM. original: for a restoration or a restyle
    (record kind "restore" or "restyle") the source image, a path or PIL image, added as the parent
    ingredient; by default the file the record names, when it still holds the recorded pixels.
    out: where to write (default: replace `path`, atomically). timestamp_url: an RFC 3161
    time-stamp authority (network), none by default.
    """
    path, data = _png(path, "path")
    c2pa = _c2pa()
    if alg not in ALGORITHMS:
        raise KitError(f"alg must be one of {', '.join(ALGORITHMS)}, got {alg!r}")
    chain = _pem(cert_chain, "cert_chain")
    key = _pem(private_key, "private_key")
    if _has_manifest(data):
        raise KitError(f"{str(path)!r} already carries content credentials; sign the unsigned file")
    record = load(path).record
    if not record.made_by_model():
        what = "no kit record" if record.kind == "imported" else f"a {record.kind}, which no model made"
        raise KitError(f"{str(path)!r} holds {what}: only images the kit made with a model are signed as made by one")
    made_from = record.edit()
    if made_from and original is None:
        original = _recorded_source(record)
    if made_from and original is None:
        raise KitError(
            f"original: {made_from} is signed as an edit of its source image, which is not at "
            "the path its record names; pass original="
        )
    parent = None if original is None else _ingredient_bytes(original)

    target = Path(out).expanduser() if out is not None else path
    definition = manifest(record, title=target.name, edited=parent is not None)
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, chain.encode(), key.encode(), timestamp_url))
        builder = c2pa.Builder(definition)
        if parent is not None:
            builder.add_ingredient(
                {"title": "original.png", "relationship": "parentOf", "label": "original"},
                "image/png",
                io.BytesIO(parent),
            )
        signed = io.BytesIO()
        builder.sign(signer, "image/png", io.BytesIO(data), signed)
    except c2pa.C2paError as err:
        raise KitError(
            f"signing failed: {err}. The certificate must be an X.509 v3 end-entity certificate "
            "with digitalSignature key usage and an emailProtection or documentSigning extended "
            "key usage, issued by a CA in the chain"
        ) from err
    # signing in place replaces the file, as asked; signing into `out` never overwrites another file
    write_atomic(target, signed.getvalue(), exist="replace" if target == path else "error")
    return target


def _recorded_source(record):
    """The source file a restore or restyle record names, when it is on disk with the recorded pixels; else None."""
    kind = kinds.get(record.kind)
    info = getattr(record, kind.field if kind is not None and kind.field else record.kind, None)
    path = info.get("source_path") if isinstance(info, dict) else None
    if not isinstance(path, str):
        return None
    try:
        image = read_image(path, field="original")
    except ValueError:  # a KitError (missing, unreadable, a name too long), or a path with a NUL byte
        return None
    return path if pixel_hash(image) == info.get("source_sha256") else None


def _ingredient_bytes(original) -> bytes:
    """PNG bytes of the original image (a path, an Artwork or a PIL image)."""
    from PIL import Image

    image = getattr(original, "image", original)
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    return _png(original, "original")[1]


def read(path, trust_anchors=None) -> dict | None:
    """The content credentials of a file, or None when it has none.

    Returns {"state", "valid", "trusted", "actions", "action_details" (action, digitalSourceType and
    description of each), "authorship" (the kit's who-did-what section), "digital_source_types", "ai_generated",
    "signer", "issuer", "ingredients", "failures", "manifest"}. `valid`: the signature and
    every hash check out (the file is as signed). `trusted`: the signer chains to one of
    `trust_anchors` (PEM text or file); a self-made certificate is valid but not trusted.
    """
    path = Path(path).expanduser()
    data = _read(path, "path")
    c2pa = _c2pa()
    if data[:8] == _PNG_SIGNATURE and not _has_manifest(data):
        return None
    context = None
    if trust_anchors is not None:
        context = c2pa.Context.from_dict({"trust": {"trust_anchors": _pem(trust_anchors, "trust_anchors")}})
    try:
        with io.BytesIO(data) as file:
            reader = c2pa.Reader.try_create(_mime(path), file, None, context)
            if reader is None:
                return None
            store = json.loads(reader.json())
            state = reader.get_validation_state() or "Invalid"
    except c2pa.C2paError as err:
        return {
            "state": "Invalid",
            "valid": False,
            "trusted": False,
            "actions": [],
            "action_details": [],
            "authorship": None,
            "digital_source_types": [],
            "ai_generated": False,
            "signer": None,
            "issuer": None,
            "ingredients": [],
            "failures": [str(err)],
            "manifest": None,
        }
    active = store.get("manifests", {}).get(store.get("active_manifest"), {})
    actions = [
        a
        for assertion in active.get("assertions", [])
        if assertion.get("label", "").startswith("c2pa.actions")
        for a in assertion.get("data", {}).get("actions", [])
    ]
    sources = [a["digitalSourceType"] for a in actions if a.get("digitalSourceType")]
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    signature = active.get("signature_info") or {}
    return {
        "state": state,
        "valid": state in ("Valid", "Trusted"),
        "trusted": state == "Trusted",
        "actions": [a.get("action") for a in actions],
        "action_details": [{k: a.get(k) for k in ("action", "digitalSourceType", "description")} for a in actions],
        "authorship": next(
            (a.get("data") for a in active.get("assertions", []) if a.get("label") == AUTHORSHIP_LABEL), None
        ),
        "digital_source_types": sources,
        "ai_generated": any(s in (TRAINED, COMPOSITE) for s in sources),
        "signer": signature.get("common_name"),
        "issuer": signature.get("issuer"),
        "ingredients": [
            {"title": i.get("title"), "relationship": i.get("relationship")} for i in active.get("ingredients", [])
        ],
        "failures": [f.get("code") for f in results.get("failure", [])],
        "manifest": active,
    }


def status(path) -> dict | None:
    """What `kit.load` can say about a file's credentials without failing.

    None when the file has no C2PA manifest; `read(path)` when c2pa is installed; otherwise
    {"state": "unchecked", "valid": None, ...} saying that credentials are present but unverified.
    """
    try:
        present = has_manifest(path)
    except KitError:  # missing, or not a regular file (a FIFO is never waited on)
        return None
    if not present:
        return None
    if not available():
        return {"state": "unchecked", "valid": None, "trusted": None, "reason": INSTALL}
    return read(path)


def _mime(path: Path) -> str:
    return {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}.get(
        path.suffix.lower(), "image/png"
    )
