"""Typed extraction errors with stable codes and remedies.

Library exceptions are translated once, at the extractor boundary, into one of
these. Callers (CLI, API, worker) only ever see an ``ExtractionError``; they
never match on library messages.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable error codes: part of the public contract, never renamed."""

    ENCRYPTED = "encrypted"
    CORRUPT = "corrupt"
    EMPTY = "empty"
    UNSUPPORTED_FORMAT = "unsupported_format"
    LEGACY_FORMAT = "legacy_format"
    MACRO_ENABLED = "macro_enabled"
    TEMPLATE_FORMAT = "template_format"
    TOO_LARGE = "too_large"
    ZIP_BOMB = "zip_bomb"
    HOSTILE_XML = "hostile_xml"
    UNSAFE_PATH = "unsafe_path"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    PARSER_CRASHED = "parser_crashed"
    INTERNAL = "internal_error"


_REMEDIES: dict[ErrorCode, str] = {
    ErrorCode.ENCRYPTED: "Remove the password (save an unprotected copy) and upload again.",
    ErrorCode.CORRUPT: "Open the file in the application that made it, save it again, and re-upload.",
    ErrorCode.EMPTY: "The file is empty: upload the finished document.",
    ErrorCode.UNSUPPORTED_FORMAT: "Save the document as .docx, .pdf or .pptx (media as mp4/mp3) and upload that.",
    ErrorCode.LEGACY_FORMAT: "Open it in Word or PowerPoint and 'Save as' .docx or .pptx.",
    ErrorCode.MACRO_ENABLED: "Save a macro-free copy (.docx or .pptx) and upload that.",
    ErrorCode.TEMPLATE_FORMAT: "This is a template: create a document from it and save that as .docx/.pptx.",
    ErrorCode.TOO_LARGE: "Reduce the file size (compress images or split the evidence) and upload again.",
    ErrorCode.ZIP_BOMB: "The archive expands far beyond a normal document; re-create it from the originals.",
    ErrorCode.HOSTILE_XML: "The document contains XML constructs Office never writes; re-save it in Word/PowerPoint.",
    ErrorCode.UNSAFE_PATH: "The archive contains unsafe entry names; re-create the zip from the original files.",
    ErrorCode.NOT_FOUND: "Check the path and try again.",
    ErrorCode.TIMEOUT: "The file is too complex to read in time: re-save or re-export it (e.g. Save As .docx or PDF), "
    "or split it, and upload again.",
    ErrorCode.PARSER_CRASHED: "The file made the reader crash: re-save or re-export the file (e.g. Save As .docx or "
    "PDF) and upload again.",
    ErrorCode.INTERNAL: "An unexpected problem occurred; report it with the file's sha256.",
}


class ExtractionError(Exception):
    """A file could not be extracted; ``code`` is stable, ``remedy`` is for people."""

    def __init__(self, code: ErrorCode, message: str, remedy: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.remedy = remedy or _REMEDIES[code]

    def to_dict(self, file: str) -> dict[str, str]:
        return {"file": file, "code": str(self.code), "message": self.message, "remedy": self.remedy}
