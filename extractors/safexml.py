"""Hardened XML parsing for untrusted OOXML parts.

OOXML never legitimately carries a DTD, so any DOCTYPE or ENTITY declaration
is refused outright (billion laughs, external entities); the parser itself is
also configured not to resolve entities, load DTDs or touch the network, and a
DTD that got past the byte check anyway is refused after parsing.

The byte check only works on ASCII-compatible text, so every part is first
normalised to UTF-8 here: UTF-16 (``<!DOCTYPE`` is ``<\\0!\\0...``) or UTF-7
(``+ADw-!DOCTYPE``) would otherwise hide a DTD from it. libxml2 only ever sees
UTF-8. Its default resource limits stay on (no ``huge_tree``) and each is
reported as what it is, not as "not well-formed".
"""

from __future__ import annotations

import codecs
import re

from lxml import etree

from .errors import ErrorCode, ExtractionError

_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_DECLARATION = re.compile(rb"""^<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
_DECLARATION_TEXT = re.compile(r"""^(<\?xml[^>]*?)\sencoding\s*=\s*["'][^"']*["']""")
_UTF8_NAMES = {"utf-8", "utf8", "ascii", "us-ascii"}
_NEVER_OFFICE = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, b"<\x00\x00\x00", b"\x00\x00\x00<", b"\x4c\x6f\xa7\x94")
_LIMIT_HINTS = ("XML_PARSE_HUGE", "amplification", "Resource limit", "Excessive depth")

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


def to_utf8(data: bytes, part: str) -> bytes:
    """The part as UTF-8 with no encoding declaration left to contradict it (unchanged if it already is)."""
    if data.startswith(_NEVER_OFFICE):  # UTF-32 or EBCDIC: libxml2 reads them, Office never writes them
        raise ExtractionError(ErrorCode.HOSTILE_XML, f"{part} uses a text encoding Office never writes")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _transcode(data, "utf-16", part)
    if data.startswith(b"<\x00"):
        return _transcode(data, "utf-16-le", part)
    if data.startswith(b"\x00<"):
        return _transcode(data, "utf-16-be", part)
    m = _DECLARATION.match(data[3:] if data.startswith(codecs.BOM_UTF8) else data)
    if m is None or m.group(1).decode("ascii").lower() in _UTF8_NAMES:
        return data
    name = m.group(1).decode("ascii")
    try:
        codecs.lookup(name)
    except LookupError:
        raise ExtractionError(ErrorCode.HOSTILE_XML, f"{part} declares an unknown text encoding {name!r}") from None
    return _transcode(data, name, part)


def _transcode(data: bytes, encoding: str, part: str) -> bytes:
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise ExtractionError(ErrorCode.CORRUPT, f"{part} is not valid {encoding} text") from exc
    return _DECLARATION_TEXT.sub(r"\1", text.lstrip("\ufeff"), count=1).encode("utf-8")


def parse(data: bytes, part: str) -> etree._Element:
    """Parse one XML part safely, normalising the encoding and Strict OOXML namespaces."""
    data = to_utf8(data, part)
    if _DTD.search(data, 0, _prolog_end(data)):
        raise ExtractionError(ErrorCode.HOSTILE_XML, f"{part} declares a DTD or entities (never written by Office)")
    if b"purl.oclc.org/ooxml" in data[:4096]:
        for strict, transitional in _STRICT:
            data = data.replace(strict, transitional)
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc, part) from exc
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None:  # backstop: the byte check should have caught it
        raise ExtractionError(ErrorCode.HOSTILE_XML, f"{part} declares a DTD (never written by Office)")
    return root


def _syntax_error(exc: etree.XMLSyntaxError, part: str) -> ExtractionError:
    """libxml2's default limits (no huge_tree) name what they refused; say so instead of 'not well-formed'."""
    msg = str(exc.msg or "")
    if not any(hint in msg for hint in _LIMIT_HINTS):
        return ExtractionError(ErrorCode.CORRUPT, f"{part} is not well-formed XML (line {exc.lineno})")
    if "depth" in msg.lower():
        return ExtractionError(ErrorCode.HOSTILE_XML, f"{part} nests elements more than 256 deep (parser limit; "
                               "Office never writes that)")
    if "amplification" in msg:
        return ExtractionError(ErrorCode.HOSTILE_XML, f"{part} expands entities explosively (billion laughs)")
    return ExtractionError(ErrorCode.TOO_LARGE, f"{part} has a single text or attribute value over the XML parser's "
                           "10 MB limit")
