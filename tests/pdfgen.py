"""Hand-built PDFs for tests: objects 1..n written in order with a correct xref table (object 1 the catalog)."""

from __future__ import annotations

from collections.abc import Sequence


def assemble(objects: Sequence[bytes]) -> bytes:
    """``objects`` are object bodies (dictionaries or streams); the trailer's /Root is object 1."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
