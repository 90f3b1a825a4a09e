"""Hardened XML parsing for untrusted OOXML parts.

OOXML never legitimately carries a DTD, so any DOCTYPE or ENTITY declaration
is refused outright (billion laughs, external entities); the parser itself is
also configured not to resolve entities, load DTDs or touch the network.
"""

from __future__ import annotations

import re

from lxml import etree

from .errors import ErrorCode, ExtractionError

_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
    recover=False,
)

# ISO/IEC 29500 Strict namespaces -> Transitional, so one walker reads both.
_STRICT = [
    (b"http://purl.oclc.org/ooxml/wordprocessingml/main", b"http://schemas.openxmlformats.org/wordprocessingml/2006/main"),
    (b"http://purl.oclc.org/ooxml/presentationml/main", b"http://schemas.openxmlformats.org/presentationml/2006/main"),
    (b"http://purl.oclc.org/ooxml/drawingml/main", b"http://schemas.openxmlformats.org/drawingml/2006/main"),
    (b"http://purl.oclc.org/ooxml/drawingml/wordprocessingDrawing", b"http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing"),
    (b"http://purl.oclc.org/ooxml/drawingml/picture", b"http://schemas.openxmlformats.org/drawingml/2006/picture"),
    (b"http://purl.oclc.org/ooxml/drawingml/chart", b"http://schemas.openxmlformats.org/drawingml/2006/chart"),
    (b"http://purl.oclc.org/ooxml/drawingml/diagram", b"http://schemas.openxmlformats.org/drawingml/2006/diagram"),
    (b"http://purl.oclc.org/ooxml/officeDocument/relationships", b"http://schemas.openxmlformats.org/officeDocument/2006/relationships"),
]


_ROOT_START = re.compile(rb"<[A-Za-z_]")


def _prolog_end(data: bytes) -> int:
    """A DTD may only precede the root element; past it lxml rejects one anyway."""
    m = _ROOT_START.search(data)
    return m.start() if m else len(data)


def parse(data: bytes, part: str) -> etree._Element:
    """Parse one XML part safely, normalising Strict OOXML namespaces."""
    if _DTD.search(data, 0, _prolog_end(data)):
        raise ExtractionError(ErrorCode.HOSTILE_XML, f"{part} declares a DTD or entities (never written by Office)")
    if b"purl.oclc.org/ooxml" in data[:4096]:
        for strict, transitional in _STRICT:
            data = data.replace(strict, transitional)
    try:
        return etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise ExtractionError(ErrorCode.CORRUPT, f"{part} is not well-formed XML (line {exc.lineno})") from exc
