"""Identify a file from its content, never from its name.

Returns a format id for the registry, or raises a typed error for formats that
are recognised but refused (legacy binaries, encrypted OOXML, macro-enabled
files, templates, spreadsheets, ODF). The file name is used only to break a tie
the content cannot: a ``.docx`` whose main part has the template content type
opens in Word and is read; a ``.dotx`` is refused as a template.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import olefile

from . import zipscan
from .errors import ErrorCode, ExtractionError
from .limits import Limits
from .ooxml import Package

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # normal, empty archive
_ASF_MAGIC = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")

_OOXML_MAIN = {
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": ("docx", ""),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml": ("docx", "template"),
    "application/vnd.ms-word.document.macroenabled.main+xml": ("docx", "macro"),
    "application/vnd.ms-word.template.macroenabledtemplate.main+xml": ("docx", "macro"),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml": ("pptx", ""),
    "application/vnd.openxmlformats-officedocument.presentationml.slideshow.main+xml": ("pptx", "slideshow"),
    "application/vnd.openxmlformats-officedocument.presentationml.template.main+xml": ("pptx", "template"),
    "application/vnd.ms-powerpoint.presentation.macroenabled.main+xml": ("pptx", "macro"),
    "application/vnd.ms-powerpoint.slideshow.macroenabled.main+xml": ("pptx", "macro"),
    "application/vnd.ms-powerpoint.template.macroenabled.main+xml": ("pptx", "macro"),
}
_TEMPLATE_EXTS = {".dotx", ".dotm", ".potx", ".potm"}
_OOXML_EXTS = {".docx", ".docm", ".pptx", ".pptm", ".ppsx", ".ppsm", *_TEMPLATE_EXTS}
# Names that promise a binary format: plain text under one of them is a damaged or mislabelled file.
_BINARY_EXTS = {".pdf", ".docx", ".pptx", ".ppsx", ".doc", ".ppt", ".odt", ".zip", ".mp4", ".mov", ".m4a", ".mp3",
                ".wav", ".webm", ".mkv", ".avi", ".wmv", ".ogg", ".opus", ".flac", ".aiff", ".png", ".jpg", ".jpeg"}
_SPREADSHEET = "spreadsheetml"


@dataclass(frozen=True, slots=True)
class Sniffed:
    format: str  # docx | pptx | pdf | media | zip | text | image
    detail: str = ""  # container or variant: mp4, webm, slideshow, template, markdown ...


def sniff(path: Path, limits: Limits, name: str = "") -> Sniffed:
    """Format of ``path`` from its bytes; ``name`` (the user's file name) can only make it stricter."""
    with path.open("rb") as fh:
        head = fh.read(4096)
    if not head:
        raise ExtractionError(ErrorCode.EMPTY, "the file is empty (0 bytes)")
    if head.startswith(_OLE_MAGIC):
        return _sniff_ole(path)
    if head.startswith(_ZIP_MAGICS):
        return _sniff_zip(path, limits, name)
    if b"%PDF-" in head[:1024]:
        return Sniffed("pdf")
    found = _sniff_media(head) or _sniff_image(head)
    if found:
        return found
    if _looks_like_pdf_body(head):
        raise ExtractionError(ErrorCode.CORRUPT, "looks like a PDF but has no %PDF header")
    text = _sniff_text(head, Path(name) if name else path)
    if text:
        claimed = (Path(name) if name else path).suffix.lower()
        if claimed in _BINARY_EXTS:
            raise ExtractionError(ErrorCode.CORRUPT, f"named {claimed} but the content is plain text, not {claimed}")
        return text
    raise ExtractionError(ErrorCode.UNSUPPORTED_FORMAT, "file type not recognised from its content")


def _sniff_ole(path: Path) -> Sniffed:
    try:
        with olefile.OleFileIO(str(path)) as ole:
            streams = {"/".join(s) for s in ole.listdir()}
    except (OSError, ValueError, IndexError, TypeError) as exc:
        raise ExtractionError(ErrorCode.CORRUPT, "damaged OLE2 (legacy Office) container") from exc
    if "EncryptionInfo" in streams and "EncryptedPackage" in streams:
        raise ExtractionError(ErrorCode.ENCRYPTED, "password-protected Office document")
    if "WordDocument" in streams:
        raise ExtractionError(
            ErrorCode.LEGACY_FORMAT, "Word 97-2003 (.doc) document", "Open it in Word and 'Save as' .docx."
        )
    if "PowerPoint Document" in streams:
        raise ExtractionError(
            ErrorCode.LEGACY_FORMAT,
            "PowerPoint 97-2003 (.ppt) presentation",
            "Open it in PowerPoint and 'Save as' .pptx.",
        )
    if "Workbook" in streams or "Book" in streams:
        raise ExtractionError(ErrorCode.UNSUPPORTED_FORMAT, "Excel 97-2003 workbook (spreadsheets are not accepted)")
    raise ExtractionError(ErrorCode.UNSUPPORTED_FORMAT, "unrecognised OLE2 (legacy Office) file")


def _sniff_zip(path: Path, limits: Limits, name: str = "") -> Sniffed:
    """The zip pre-scan runs first: not even ``mimetype`` is read from a zip that fails it."""
    with path.open("rb") as fh, zipscan.open_zip(fh, limits) as zf:  # typed errors only, NotImplementedError too
        names = {n.lower() for n in zf.namelist()}
        if "mimetype" in names and "[content_types].xml" not in names:
            mime = zipscan.read_member(zf, zf.getinfo(_exact(zf, "mimetype")), 256).decode("ascii", "replace")
            raise ExtractionError(ErrorCode.UNSUPPORTED_FORMAT, f"OpenDocument file ({mime.strip()})",
                                  "Save it as .docx (Word) or .pptx (PowerPoint) and upload that.")
    if "[content_types].xml" not in names:
        claimed = (Path(name) if name else path).suffix.lower()
        if claimed in _OOXML_EXTS:  # Word and PowerPoint refuse it too: never read it as a portfolio of XML files
            raise ExtractionError(ErrorCode.CORRUPT, f"named {claimed} but the package has no [Content_Types].xml")
        return Sniffed("zip")
    with Package(path, limits, verify=False) as pkg:  # the extractor verifies checksums once
        main = pkg.main_part()
        ctype = (pkg.content_type(main) or "").lower() if main else ""
    if _SPREADSHEET in ctype:
        raise ExtractionError(ErrorCode.UNSUPPORTED_FORMAT, "Excel workbook (spreadsheets are not accepted)")
    if ctype not in _OOXML_MAIN:
        raise ExtractionError(
            ErrorCode.UNSUPPORTED_FORMAT, "Office package without a Word or PowerPoint document (e.g. a theme)"
        )
    fmt, variant = _OOXML_MAIN[ctype]
    if variant == "macro":
        app = "Word" if fmt == "docx" else "PowerPoint"
        raise ExtractionError(ErrorCode.MACRO_ENABLED, f"macro-enabled {app} file")
    if variant == "template" and (Path(name) if name else path).suffix.lower() in _TEMPLATE_EXTS:
        raise ExtractionError(ErrorCode.TEMPLATE_FORMAT, "Office template, not a document")
    return Sniffed(fmt, variant)


def _exact(zf: zipfile.ZipFile, lower: str) -> str:
    return next(n for n in zf.namelist() if n.lower() == lower)


def _sniff_media(head: bytes) -> Sniffed | None:
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        container = {b"qt  ": "mov", b"M4A ": "m4a", b"M4B ": "m4a", b"M4V ": "m4v"}.get(brand, "mp4")
        return Sniffed("media", container)
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniffed("media", "webm" if b"webm" in head[:64] else "mkv")
    if head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"AVI "):
        return Sniffed("media", "wav" if head[8:12] == b"WAVE" else "avi")
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return Sniffed("media", "aiff")
    if head.startswith(b"OggS"):
        return Sniffed("media", "opus" if b"OpusHead" in head[:128] else "ogg")
    if head.startswith(b"fLaC"):
        return Sniffed("media", "flac")
    if head.startswith(b"FLV"):
        return Sniffed("media", "flv")
    if head.startswith(_ASF_MAGIC):
        return Sniffed("media", "wmv")
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] in (0xFB, 0xF3, 0xF2, 0xFA)):
        return Sniffed("media", "mp3")
    return None


def _sniff_image(head: bytes) -> Sniffed | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "png")
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "jpeg")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image", "gif")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", "webp")
    return None


def _looks_like_pdf_body(head: bytes) -> bool:
    """PDF syntax without the header: a damaged PDF, not an unknown format."""
    objects = b" obj" in head and (b"endobj" in head or b"/Type" in head)
    return objects or (b"<<" in head and (b"trailer" in head or b"startxref" in head or b"/Root" in head))


def _sniff_text(head: bytes, path: Path) -> Sniffed | None:
    if b"\x00" in head:
        return None
    try:
        head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multibyte char cut at the 4 KiB edge
            return None
    is_md = path.suffix.lower() in {".md", ".markdown"} or head.lstrip().startswith((b"#", b"---"))
    return Sniffed("text", "markdown" if is_md else "plain")
