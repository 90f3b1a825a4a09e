"""Structure-aware mutations of seed files: bytes, zip members, XML tags inside OOXML parts, PDF tokens.

Why structure-aware: a random byte flip in a deflated docx almost always dies in the zip CRC check, so the
XML walkers and pypdf/pdfium object parsers behind it would never see a damaged input. These mutators
re-zip edited members (so a mutated ``word/document.xml`` reaches lxml and our walkers) and swap PDF
tokens (so object numbers, ``/Kids`` trees and ``/Length`` values go wrong in ways a parser must survive).

Every choice goes through a ``Chooser`` so the same mutators serve Hypothesis (draws it can shrink) and the
atheris harness / sandbox batch (a seeded ``random.Random``).
"""

from __future__ import annotations

import io
import random
import re
import warnings
import zipfile
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")


class Chooser(Protocol):
    """The source of every random decision a mutation makes."""

    def below(self, n: int) -> int:
        """An integer in ``[0, n)`` (0 when ``n <= 1``)."""
        ...

    def blob(self, max_len: int) -> bytes:
        """Arbitrary bytes, at most ``max_len`` long."""
        ...


class RandomChooser:
    """A ``Chooser`` over a seeded PRNG: reproducible outside Hypothesis (atheris, sandbox batch)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def below(self, n: int) -> int:
        return self.rng.randrange(n) if n > 1 else 0

    def blob(self, max_len: int) -> bytes:
        return self.rng.randbytes(self.rng.randrange(max_len + 1))


def pick(ch: Chooser, items: Sequence[T]) -> T:
    return items[ch.below(len(items))]


# --- raw bytes -------------------------------------------------------------------------------------------------

_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x20, 0x0A, 0x3C, 0x3E, 0x2F)
_INTS = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)


def _flip(data: bytes, ch: Chooser, _donors: Sequence[bytes]) -> bytes:
    if not data:
        return b"\x00"
    i = ch.below(len(data))
    return data[:i] + bytes([data[i] ^ (1 << ch.below(8))]) + data[i + 1 :]


def _set_byte(data: bytes, ch: Chooser, _donors: Sequence[bytes]) -> bytes:
    if not data:
        return bytes([pick(ch, _BYTES)])
    i = ch.below(len(data))
    return data[:i] + bytes([pick(ch, _BYTES)]) + data[i + 1 :]


def _set_int(data: bytes, ch: Chooser, _donors: Sequence[bytes]) -> bytes:
    """Overwrite 1/2/4/8 bytes with a boundary integer: box sizes, zip header fields, EBML lengths."""
    width = pick(ch, (1, 2, 4, 8))
    value = pick(ch, _INTS) & ((1 << (8 * width)) - 1)
    raw = value.to_bytes(width, pick(ch, ("big", "little")))
    i = ch.below(max(1, len(data) - width + 1))
    return data[:i] + raw + data[i + width :]


def _truncate(data: bytes, ch: Chooser, _donors: Sequence[bytes]) -> bytes:
    return data[: ch.below(len(data) + 1)]


def _delete(data: bytes, ch: Chooser, _donors: Sequence[bytes]) -> bytes:
    i = ch.below(len(data) + 1)
    return data[:i] + data[i + 1 + ch.below(64) :]


def _insert(data: bytes, ch: Chooser, _donors: Sequence[bytes]) -> bytes:
    i = ch.below(len(data) + 1)
    return data[:i] + ch.blob(32) + data[i:]


def _duplicate(data: bytes, ch: Chooser, _donors: Sequence[bytes]) -> bytes:
    i = ch.below(len(data) + 1)
    chunk = data[i : i + 1 + ch.below(256)]
    return data[:i] + chunk * (1 + ch.below(4)) + data[i:]


def _splice(data: bytes, ch: Chooser, donors: Sequence[bytes]) -> bytes:
    """Graft a slice of another seed in (or over) this one: mixes headers and bodies of different files."""
    donor = pick(ch, donors) if donors else data
    j = ch.below(len(donor) + 1)
    piece = donor[j : j + 1 + ch.below(2048)]
    i = ch.below(len(data) + 1)
    cut = i + (len(piece) if ch.below(2) else 0)
    return data[:i] + piece + data[cut:]


ByteOp = Callable[[bytes, Chooser, Sequence[bytes]], bytes]
BYTE_OPS: tuple[ByteOp, ...] = (_flip, _set_byte, _set_int, _truncate, _delete, _insert, _duplicate, _splice)


def mutate_bytes(data: bytes, ch: Chooser, donors: Sequence[bytes] = ()) -> bytes:
    return pick(ch, BYTE_OPS)(data, ch, donors)


# --- XML parts -------------------------------------------------------------------------------------------------

_TAG = re.compile(rb"<[^<>]{1,400}>")
_ATTR_VALUE = re.compile(rb'="[^"]{0,200}"')
_VALUES = (b"", b"-1", b"0", b"1", b"4294967296", b"99999999999999999999999", b"NaN", b"1e400", b"rId1", b"rId999",
           b"../../../../x.xml", b"/", b"http://example.invalid/", b"\xc3\x28", b"&amp;", b"true", b"x" * 300)
_XML_INSERTS = (
    b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>',
    b"<![CDATA[\x00]]>",
    b"<?pi data?>",
    b"&#0;",
    b"&undefined;",
    b'<w:p xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:r><w:t>x</w:t></w:r></w:p>',
    b'<a:p xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><a:r><a:t>x</a:t></a:r></a:p>',
)


def _tags(data: bytes) -> list[re.Match[bytes]]:
    return list(_TAG.finditer(data))


def _tag_name(tag: bytes) -> bytes:
    return re.split(rb"[\s/>]", tag[1:].lstrip(b"/"), maxsplit=1)[0]


def _xml_delete_tag(data: bytes, ch: Chooser, tags: list[re.Match[bytes]]) -> bytes:
    m = pick(ch, tags)
    return data[: m.start()] + data[m.end() :]


def _xml_duplicate_tag(data: bytes, ch: Chooser, tags: list[re.Match[bytes]]) -> bytes:
    m = pick(ch, tags)
    return data[: m.end()] + m.group() * (1 + ch.below(3)) + data[m.end() :]


def _xml_swap_tags(data: bytes, ch: Chooser, tags: list[re.Match[bytes]]) -> bytes:
    a, b = sorted((pick(ch, tags), pick(ch, tags)), key=lambda m: m.start())
    if a.start() == b.start():
        return data
    return data[: a.start()] + b.group() + data[a.end() : b.start()] + a.group() + data[b.end() :]


def _xml_rename_tag(data: bytes, ch: Chooser, tags: list[re.Match[bytes]]) -> bytes:
    """Give one tag another element's name: a w:t where a w:p was, a p:sp inside a:t ..."""
    m, donor = pick(ch, tags), pick(ch, tags)
    name, new = _tag_name(m.group()), _tag_name(donor.group())
    if not name:
        return data
    return data[: m.start()] + m.group().replace(name, new, 1) + data[m.end() :]


def _xml_attr_value(data: bytes, ch: Chooser, tags: list[re.Match[bytes]]) -> bytes:
    m = pick(ch, tags)
    values = list(_ATTR_VALUE.finditer(m.group()))
    if not values:
        return data
    v = pick(ch, values)
    tag = m.group()[: v.start()] + b'="' + pick(ch, _VALUES) + b'"' + m.group()[v.end() :]
    return data[: m.start()] + tag + data[m.end() :]


def _xml_nest(data: bytes, ch: Chooser, tags: list[re.Match[bytes]]) -> bytes:
    """Wrap a spot in many copies of an existing element: deep trees for recursive walkers."""
    m = pick(ch, tags)
    name = _tag_name(m.group())
    if not name or m.group().startswith((b"</", b"<?", b"<!")):
        return data
    depth = pick(ch, (8, 64, 300, 3000))
    return data[: m.end()] + (b"<" + name + b">") * depth + (b"</" + name + b">") * depth + data[m.end() :]


def _xml_insert(data: bytes, ch: Chooser, tags: list[re.Match[bytes]]) -> bytes:
    m = pick(ch, tags)
    at = m.end() if ch.below(2) else 0
    return data[:at] + pick(ch, _XML_INSERTS) + data[at:]


def _xml_text(data: bytes, ch: Chooser, tags: list[re.Match[bytes]]) -> bytes:
    """Replace the text after a tag with arbitrary bytes (bad UTF-8, NULs, stray '<')."""
    m = pick(ch, tags)
    end = data.find(b"<", m.end())
    end = len(data) if end < 0 else end
    return data[: m.end()] + ch.blob(64) + data[end:]


def _xml_cut(data: bytes, ch: Chooser, tags: list[re.Match[bytes]]) -> bytes:
    return data[: pick(ch, tags).end()]


XmlOp = Callable[[bytes, Chooser, list[re.Match[bytes]]], bytes]
XML_OPS: tuple[XmlOp, ...] = (_xml_delete_tag, _xml_duplicate_tag, _xml_swap_tags, _xml_rename_tag, _xml_attr_value,
                              _xml_attr_value, _xml_nest, _xml_insert, _xml_text, _xml_cut)


def mutate_xml(data: bytes, ch: Chooser, donors: Sequence[bytes] = ()) -> bytes:
    tags = _tags(data)
    if not tags or ch.below(8) == 0:
        return mutate_bytes(data, ch, donors)
    return pick(ch, XML_OPS)(data, ch, tags)


# --- zip containers --------------------------------------------------------------------------------------------

_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_NAMES = ("[Content_Types].xml", "_rels/.rels", "word/document.xml", "ppt/presentation.xml", "a/b/c.docx",
          "DOCUMENT.XML", "x.pdf", "notes.md", "media/clip.mp4", "__MACOSX/._x", "deep/" * 20 + "f.txt")
Member = tuple[zipfile.ZipInfo, bytes]


def read_zip(data: bytes) -> list[Member] | None:
    """Every member's info and bytes, or None when the zip cannot be read whole (fall back to byte ops)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > 200 or sum(i.file_size for i in infos) > 32 << 20:
                return None
            return [(info, zf.read(info)) for info in infos]
    except Exception:  # any failure just means "not a zip we can re-pack"
        return None


def write_zip(members: Sequence[Member]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore")  # duplicate names are one of the mutations
        for info, body in members:
            fresh = zipfile.ZipInfo(info.filename, date_time=(2024, 1, 1, 0, 0, 0))
            fresh.compress_type = info.compress_type
            fresh.external_attr = info.external_attr
            fresh.create_system = info.create_system
            zf.writestr(fresh, body)
    return buf.getvalue()


def _is_xml(name: str) -> bool:
    return name.lower().endswith((".xml", ".rels", ".vml"))


def _zip_edit(members: list[Member], ch: Chooser, donors: Sequence[bytes]) -> list[Member]:
    """The workhorse: mutate one member's content (XML-aware for parts, recursive for nested zips)."""
    i = ch.below(len(members))
    info, body = members[i]
    if _is_xml(info.filename):
        body = mutate_xml(body, ch, donors)
    elif body[:2] == b"PK":
        body = mutate(body, ch, donors, depth=1)
    else:
        body = mutate_bytes(body, ch, donors)
    return [*members[:i], (info, body), *members[i + 1 :]]


def _zip_delete(members: list[Member], ch: Chooser, _donors: Sequence[bytes]) -> list[Member]:
    i = ch.below(len(members))
    return members[:i] + members[i + 1 :]


def _zip_rename(members: list[Member], ch: Chooser, _donors: Sequence[bytes]) -> list[Member]:
    i = ch.below(len(members))
    info, body = members[i]
    other = pick(ch, members)[0].filename
    name = pick(ch, (other, info.filename.upper(), info.filename + "/", pick(ch, _NAMES), "../" + info.filename))
    fresh = zipfile.ZipInfo(name)
    fresh.compress_type = info.compress_type
    return [*members[:i], (fresh, body), *members[i + 1 :]]


def _zip_add(members: list[Member], ch: Chooser, donors: Sequence[bytes]) -> list[Member]:
    """Add a member: a random blob, a copy of a donor seed (nested docx/pdf), or the archive itself."""
    source = ch.below(3)
    if source == 0:
        body = ch.blob(512)
    elif source == 1 and donors:
        body = pick(ch, donors)
    else:
        body = write_zip(members)
    info = zipfile.ZipInfo(pick(ch, _NAMES))
    info.compress_type = pick(ch, _COMPRESSIONS)
    return [*members, (info, body)]


def _zip_compression(members: list[Member], ch: Chooser, _donors: Sequence[bytes]) -> list[Member]:
    i = ch.below(len(members))
    info, body = members[i]
    info.compress_type = pick(ch, _COMPRESSIONS)
    return [*members[:i], (info, body), *members[i + 1 :]]


def _zip_reorder(members: list[Member], ch: Chooser, _donors: Sequence[bytes]) -> list[Member]:
    i = ch.below(len(members))
    return [*members[i:], *members[:i]]


ZipOp = Callable[[list[Member], Chooser, Sequence[bytes]], list[Member]]
ZIP_OPS: tuple[ZipOp, ...] = (_zip_edit, _zip_edit, _zip_edit, _zip_edit, _zip_delete, _zip_rename, _zip_add,
                              _zip_compression, _zip_reorder)


def mutate_zip(data: bytes, ch: Chooser, donors: Sequence[bytes] = (), depth: int = 0) -> bytes:
    """One member-level edit, re-packed with valid CRCs; raw byte damage one time in four."""
    members = read_zip(data) if ch.below(4) else None
    if not members:
        return mutate_bytes(data, ch, donors)
    if depth > 0:  # a nested archive: edit inside it only
        return write_zip(_zip_edit(members, ch, donors))
    return write_zip(pick(ch, ZIP_OPS)(members, ch, donors))


# --- PDF tokens ------------------------------------------------------------------------------------------------

_PDF_TOKEN = re.compile(
    rb"/[^\s/<>\[\]()%{}]{1,64}|-?\d{1,12}(?:\.\d+)?|<<|>>|\[|\]|"
    rb"\b(?:obj|endobj|stream|endstream|xref|trailer|startxref|R|true|false|null)\b"
)
_PDF_VALUES = (
    b"0", b"-1", b"1", b"2", b"3", b"2147483647", b"4294967296", b"-2147483649", b"99999999999999999999", b"3.4e38",
    b"null", b"<<", b">>", b"[", b"]", b"(", b")", b"1 0 R", b"2 0 R", b"3 0 R", b"/Kids", b"/Parent", b"/Count",
    b"/Pages", b"/Page", b"/Type", b"/Outlines", b"/First", b"/Last", b"/Next", b"/Prev", b"/Dest", b"/Length",
    b"/Filter", b"/FlateDecode", b"/LZWDecode", b"/RunLengthDecode", b"/ASCIIHexDecode", b"/ASCII85Decode",
    b"/DCTDecode", b"/JBIG2Decode", b"/DecodeParms", b"/Predictor", b"/Columns", b"/Encrypt", b"/XFA", b"/Names",
    b"/EmbeddedFiles", b"/URI", b"/Annots", b"/MediaBox", b"/Rotate", b"/Width", b"/Height", b"/Resources",
    b"/Contents", b"/Font", b"/ToUnicode", b"/ObjStm", b"/XRefStm", b"/Root", b"/Size", b"/Index", b"/W",
    b"stream", b"endstream", b"obj", b"endobj", b"xref", b"trailer", b"startxref", b"%%EOF",
)


def _pdf_tokens(data: bytes) -> list[re.Match[bytes]]:
    return list(_PDF_TOKEN.finditer(data))


def mutate_pdf(data: bytes, ch: Chooser, donors: Sequence[bytes] = ()) -> bytes:
    """Replace, drop, repeat or swap a PDF token; plain byte damage one time in four."""
    tokens = _pdf_tokens(data) if ch.below(4) else []
    if not tokens:
        return mutate_bytes(data, ch, donors)
    m = pick(ch, tokens)
    op = ch.below(4)
    if op == 0:
        new = pick(ch, _PDF_VALUES) if ch.below(3) else pick(ch, tokens).group()
        return data[: m.start()] + new + data[m.end() :]
    if op == 1:
        return data[: m.start()] + data[m.end() :]
    if op == 2:
        return data[: m.end()] + b" " + m.group() + data[m.end() :]
    other = pick(ch, tokens)
    a, b = sorted((m, other), key=lambda t: t.start())
    if a.end() > b.start():
        return data
    return data[: a.start()] + b.group() + data[a.end() : b.start()] + a.group() + data[b.end() :]


_OBJ = re.compile(rb"(?<![0-9])([0-9]{1,7})[ \t\r\n]+([0-9]{1,5})[ \t\r\n]+obj\b")
_ROOT_REF = re.compile(rb"/Root[ \t\r\n]*([0-9]{1,7})[ \t\r\n]+([0-9]{1,5})[ \t\r\n]+R")


def repair_pdf_xref(data: bytes) -> bytes:
    """Append a fresh cross-reference table for the objects where they now sit.

    Why: token edits shift byte offsets, and the preflight rightly refuses a ``startxref`` that misses its
    table, so without this most PDF mutants would never reach pypdf's object parser or pdfium.
    """
    objects = {int(m.group(1)): (m.start(), int(m.group(2))) for m in _OBJ.finditer(data)}
    roots = list(_ROOT_REF.finditer(data))
    if not objects or not roots or max(objects) > 100_000:
        return data
    size = max(objects) + 1
    body = data if data.endswith(b"\n") else data + b"\n"
    rows = [b"%010d %05d n \n" % objects[n] if n in objects else b"0000000000 65535 f \n" for n in range(size)]
    root = b"%d %d R" % (int(roots[-1].group(1)), int(roots[-1].group(2)))
    trailer = b"trailer\n<< /Size %d /Root %s >>\nstartxref\n%d\n%%%%EOF\n" % (size, root, len(body))
    return body + b"xref\n0 %d\n" % size + b"".join(rows) + trailer


# --- dispatch --------------------------------------------------------------------------------------------------


def mutate(data: bytes, ch: Chooser, donors: Sequence[bytes] = (), depth: int = 0) -> bytes:
    """One mutation chosen by what the bytes look like (zip, PDF, anything else)."""
    if data[:2] == b"PK" and depth < 2:
        return mutate_zip(data, ch, donors, depth)
    if b"%PDF" in data[:1024]:
        return mutate_pdf(data, ch, donors)
    return mutate_bytes(data, ch, donors)


def mutate_many(data: bytes, ch: Chooser, donors: Sequence[bytes] = (), rounds: int = 3) -> bytes:
    """1..``rounds`` stacked mutations, capped at 4 MiB so one example never costs much memory."""
    for _ in range(1 + ch.below(rounds)):
        data = mutate(data, ch, donors)[: 4 << 20]
    if b"%PDF" in data[:1024] and ch.below(2):
        data = repair_pdf_xref(data)
    return data
