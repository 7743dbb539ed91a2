"""XMP for the PNGs the kit saves: how an image was made, where ExifTool and Adobe look for it.

``Artwork.save`` writes this packet into every image the kit made, in an iTXt chunk with the
keyword ``XML:com.adobe.xmp`` (the place the XMP specification gives it in a PNG), next to the
web-UI ``parameters`` text and the kit's own record. It says, in IPTC Photo Metadata 2025.1 terms:

- ``Iptc4xmpExt:DigitalSourceType``: trainedAlgorithmicMedia for an image the model made from text
  (generate, walk frames, fusions); compositeWithTrainedAlgorithmicMedia for an edit of an existing
  image (a restoration, or any record that names the images it was made from);
- ``Iptc4xmpExt:AISystemUsed``: the model (repo id or the tiny preset's name);
- ``Iptc4xmpExt:AISystemVersionUsed``: the weights revision, when the record knows it;
- ``Iptc4xmpExt:AIPromptInformation``: the prompt the model was given, and the negative prompt;
- ``xmp:CreatorTool``: kit and the version that made the record.

``Iptc4xmpExt:AIPromptWriterName`` is left out: a record does not know who typed the prompt. A
record read from a foreign PNG (kind "imported") gets no packet: the kit cannot say how that
image was made. The packet is written before any content credentials are added
(``kit.credentials.sign`` works on the saved file), so the C2PA hash covers it.

Stdlib only.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from ..errors import KitError

__all__ = ["KEYWORD", "TRAINED", "COMPOSITE", "source_type", "packet"]

KEYWORD = "XML:com.adobe.xmp"  # the PNG iTXt keyword of an XMP packet
TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"

_PACKET = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">
{properties}
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""

# Characters XML 1.0 cannot hold at all, escaped or not (most C0 controls, lone surrogates, U+FFFE/F).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ESCAPES = {"\r": "&#13;"}  # besides & < >: a bare CR would read back as a LF


def source_type(record) -> str:
    """The IPTC digital source type of the image a record describes."""
    return COMPOSITE if record.edit() else TRAINED


def _properties(record) -> dict[str, str]:
    """XMP property name -> text for a kit record; properties the record cannot fill are left out."""
    negative = _text(record, "negative")
    prompt = "\n".join(filter(None, [_text(record, "prompt"), negative and f"Negative prompt: {negative}"]))
    values = {
        "xmp:CreatorTool": f"kit {_text(record, 'kit_version')}".strip(),
        "Iptc4xmpExt:DigitalSourceType": source_type(record),
        "Iptc4xmpExt:AISystemUsed": _text(record, "model") or _text(record, "preset"),
        "Iptc4xmpExt:AISystemVersionUsed": _text(record, "revision"),
        "Iptc4xmpExt:AIPromptInformation": prompt,
    }
    return {name: text for name, text in values.items() if text}


def packet(record) -> str | None:
    """The XMP packet for a record, or None for an image no model made (a foreign PNG, a person's drawing):
    the kit says nothing of how such an image was made."""
    if not record.made_by_model():
        return None
    lines = [f"   <{name}>{escape(text, _ESCAPES)}</{name}>" for name, text in _properties(record).items()]
    return _PACKET.format(properties="\n".join(lines))


def _text(record, field: str) -> str:
    """A record's text field, refused with a KitError naming it when XML cannot hold one of its characters."""
    text = getattr(record, field) or ""
    bad = _NOT_XML.search(text)
    if bad:
        raise KitError(f"Record.{field} holds the character {bad[0]!r}, which XMP (XML 1.0) cannot carry")
    return text
