"""TEST-ONLY: hostile Office packages and zip portfolios for reliability catalogue tests 11-19, made on demand.

Nothing binary is checked in: each case is written from parts generated here, by ``zipfile`` where
the zip itself is honest, and by a small raw zip writer where the structure is the hazard (bombs,
overlaps, forged sizes, symlinks, encryption flags), so every shape is exact and reviewable.

* ``CASES[name](folder)`` writes the file into ``folder`` and returns its path.
* ``EXPECTED[name]`` is the set of acceptable outcomes (``ErrorCode`` values; "ok" never, all are hostile).
  For a portfolio whose bad member is refused alone, the outcome is that member's code.
* ``CATALOGUE[name]`` is the catalogue test the case belongs to (reliability-anchors.md (b)).

Shapes:

* 11: ``<!ENTITY x SYSTEM "file:///etc/hostname">`` in ``word/document.xml``, ``ppt/slides/slide1.xml``,
  ``[Content_Types].xml`` and ``_rels/.rels``; and in a UTF-16 part, where a byte search for
  ``<!DOCTYPE`` does not see it.
* 12: an external *parameter* entity (the lxml <= 6.1.2 gap) pointing at a canary URL.
* 13: billion laughs; 300-deep nesting (libxml2's default limit is 256); a 20 MB single text node
  (limit 10 MB), once as varied text (reaches libxml2) and once repetitive (the ratio check stops it first).
* 14: parts expanding to 1.07 GiB in total (each 1 MiB part under the ratio check's floor), 100 000
  tiny entries (with a true and with a lying entry count), one part at ~1000:1.
* 15: a part whose deflate data makes zlib raise ``zlib.error``; a stored part declaring more bytes than
  the file holds (``EOFError``); a deflate stream cut short and a bad CRC (``BadZipFile``); a missing
  main part and no ``[Content_Types].xml`` (python-docx: ``KeyError``); no central directory.
* 16: portfolio members ``../evil``, ``/abs/evil``, ``C:\\evil``, ``..\\\\evil`` and a symlink.
* 17: quoted-overlap bombs (CVE-2024-0450): a 100-entry chain as a portfolio, the two-entry kernel as a docx.
* 18: forged ``compress_size`` with duplicate directory entries at offset 0 (cpython #151307), local and
  central headers that disagree, and ``//`` names that loop ``zipfile.Path`` on unpatched runtimes.
* 19: zips nested past our depth limit and past ClamAV's MaxRecursion 16, duplicate member names, a
  ZipCrypto-encrypted member.
"""

from __future__ import annotations

import functools
import io
import os
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from extractors.zipscan import central_record, end_record, local_header, overlap_bomb, raw_deflate
from tests.docgen import Docx, p

MiB = 1024 * 1024
#: Text every generated good document carries: present in a read document, so a refusal is not a silent empty read.
MARKER = "Hostile office marker text"
HOSTNAME_URL = "file:///etc/hostname"
#: Nothing listens on the discard port: the CASES variant can never reach a network. Tests pass a live canary.
DEAD_CANARY = "http://127.0.0.1:9/gatecheck-canary.dtd"
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
P_NS = "http://schemas.openxmlformats.org/presentationml/2006/main"
A_NS = "http://schemas.openxmlformats.org/drawingml/2006/main"
R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


# --- raw zip writing -------------------------------------------------------------------------------------------


@dataclass
class Entry:
    """One member as written: ``data`` is the stored (compressed) bytes; forged fields override the truth."""

    name: str
    data: bytes
    crc: int
    size: int
    method: int = zipfile.ZIP_DEFLATED
    flags: int = 0
    external_attr: int = 0
    create_system: int = 0
    central_csize: int | None = None  # forge the directory's compressed size
    local_sizes: tuple[int, int] | None = None  # forge the local header's (compressed, uncompressed) sizes
    offset: int | None = None  # point the directory record somewhere else (set by the writer when None)


def deflated(name: str, content: bytes) -> Entry:
    return Entry(name, raw_deflate(content), zlib.crc32(content), len(content))


def build_zip(entries: list[Entry], *, extra_central: Sequence[bytes] = (), count: int | None = None,
              zip64: bool = False) -> bytes:
    """Local headers and data in order, then the directory; ``count`` lies in the end record."""
    body = bytearray()
    records = []
    for e in entries:
        offset = len(body)
        csize, usize = e.local_sizes or (len(e.data), e.size)
        body += local_header(e.name.encode(), e.crc, csize, usize, e.method, e.flags) + e.data
        records.append(central_record(
            e.name.encode(), e.crc, len(e.data) if e.central_csize is None else e.central_csize, e.size,
            offset if e.offset is None else e.offset, e.method, e.flags, e.external_attr, e.create_system))
    directory = b"".join(records) + b"".join(extra_central)
    total = len(records) + len(extra_central)
    tail = b""
    if zip64:  # the real count needs 64 bits when it is over 65 535
        at = len(body) + len(directory)
        tail = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, total, total, len(directory), len(body))
        tail += struct.pack("<4sLQL", b"PK\x06\x07", 0, at, 1)
    return bytes(body) + directory + tail + end_record(total if count is None else count, len(directory), len(body))


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


# --- good documents to make hostile ----------------------------------------------------------------------------


@functools.cache
def docx_parts() -> dict[str, bytes]:
    """A small valid docx (tests.docgen), as part name -> bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Docx().add(p(MARKER), p("Evidence of the work I did on site.")).save(Path(tmp) / "good.docx")
        with zipfile.ZipFile(path) as zf:
            return {n: zf.read(n) for n in zf.namelist()}


def good_docx(folder: Path, name: str = "good.docx") -> Path:
    return _write(folder, name, _zip(docx_parts()))


def pptx_parts() -> dict[str, bytes]:
    """A one-slide presentation with only the parts PowerPoint needs to open it."""
    ct = "application/vnd.openxmlformats-officedocument.presentationml"
    return {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/ppt/presentation.xml" ContentType="{ct}.presentation.main+xml"/>'
            f'<Override PartName="/ppt/slides/slide1.xml" ContentType="{ct}.slide+xml"/></Types>').encode(),
        "_rels/.rels": _rels(f'<Relationship Id="rId1" Type="{REL}/officeDocument" Target="ppt/presentation.xml"/>'),
        "ppt/presentation.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><p:presentation xmlns:p="{P_NS}" xmlns:r="{R_NS}">'
            '<p:sldIdLst><p:sldId id="256" r:id="rId1"/></p:sldIdLst></p:presentation>').encode(),
        "ppt/_rels/presentation.xml.rels": _rels(
            f'<Relationship Id="rId1" Type="{REL}/slide" Target="slides/slide1.xml"/>'),
        "ppt/slides/slide1.xml": slide_xml("<a:t>" + MARKER + "</a:t>").encode(),
    }


def good_pptx(folder: Path, name: str = "good.pptx") -> Path:
    return _write(folder, name, _zip(pptx_parts()))


def slide_xml(run: str, doctype: str = "") -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>{doctype}<p:sld xmlns:p="{P_NS}" xmlns:a="{A_NS}" '
            f'xmlns:r="{R_NS}"><p:cSld><p:spTree><p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/>'
            '</p:nvGrpSpPr><p:grpSpPr/><p:sp><p:nvSpPr><p:cNvPr id="2" name="Text"/><p:cNvSpPr/><p:nvPr/>'
            f'</p:nvSpPr><p:spPr/><p:txBody><a:bodyPr/><a:p><a:r>{run}</a:r></a:p></p:txBody></p:sp>'
            '</p:spTree></p:cSld></p:sld>')


def _rels(items: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
            f'package/2006/relationships">{items}</Relationships>').encode()


def document_xml(body: str, doctype: str = "") -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>{doctype}<w:document xmlns:w="{W_NS}"><w:body>{body}'
            "<w:sectPr/></w:body></w:document>")


def _docx_with(folder: Path, name: str, changes: dict[str, bytes | None]) -> Path:
    parts = {**docx_parts(), **changes}
    return _write(folder, name, _zip({k: v for k, v in parts.items() if v is not None}))


def _run(text: str) -> str:
    return f'<w:p><w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>'


# --- 11, 12: external entities ---------------------------------------------------------------------------------


def _entity(url: str) -> str:
    return f'<!DOCTYPE x [<!ENTITY x SYSTEM "{url}">]>'


def xxe_document(folder: Path, url: str = HOSTNAME_URL) -> Path:
    doc = document_xml(_run(MARKER) + _run("&x;"), _entity(url).replace("x [", "w:document [", 1))
    return _docx_with(folder, "xxe_document.docx", {"word/document.xml": doc.encode()})


def xxe_slide(folder: Path, url: str = HOSTNAME_URL) -> Path:
    parts = pptx_parts()
    parts["ppt/slides/slide1.xml"] = slide_xml("<a:t>&x;</a:t>", _entity(url).replace("x [", "p:sld [", 1)).encode()
    return _write(folder, "xxe_slide.pptx", _zip(parts))


def xxe_content_types(folder: Path, url: str = HOSTNAME_URL) -> Path:
    ct = docx_parts()["[Content_Types].xml"].decode()
    head, sep, rest = ct.partition("<Types")
    rest = rest.replace(">", ">&x;", 1)  # as text of the root: an external entity may not sit in an attribute
    ct = head + _entity(url).replace("x [", "Types [", 1) + sep + rest
    return _docx_with(folder, "xxe_content_types.docx", {"[Content_Types].xml": ct.encode()})


def xxe_rels(folder: Path, url: str = HOSTNAME_URL) -> Path:
    rels = docx_parts()["_rels/.rels"].decode()
    head, sep, rest = rels.partition("<Relationships")
    rest = rest.replace(">", ">&x;", 1)
    rels = head + _entity(url).replace("x [", "Relationships [", 1) + sep + rest
    return _docx_with(folder, "xxe_rels.docx", {"_rels/.rels": rels.encode()})


#: The part each case of test 11 poisons.
XXE_PART = {"xxe_document": "word/document.xml", "xxe_slide": "ppt/slides/slide1.xml",
            "xxe_content_types": "[Content_Types].xml", "xxe_rels": "_rels/.rels",
            "xxe_document_utf16": "word/document.xml"}


def xxe_document_utf16(folder: Path, url: str = HOSTNAME_URL) -> Path:
    doc = document_xml(_run(MARKER) + _run("&x;"), _entity(url).replace("x [", "w:document [", 1))
    data = doc.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    return _docx_with(folder, "xxe_document_utf16.docx", {"word/document.xml": data})


def xxe_parameter_entity(folder: Path, url: str = DEAD_CANARY) -> Path:
    doctype = f'<!DOCTYPE w:document [<!ENTITY % remote SYSTEM "{url}"> %remote;]>'
    doc = document_xml(_run(MARKER) + _run("&exfil;"), doctype)
    return _docx_with(folder, "xxe_parameter_entity.docx", {"word/document.xml": doc.encode()})


# --- 13: entity expansion, depth, huge text --------------------------------------------------------------------


def billion_laughs(folder: Path) -> Path:
    ents = '<!ENTITY l0 "lol">' + "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    doc = document_xml(_run("&l9;"), f"<!DOCTYPE w:document [{ents}]>")
    return _docx_with(folder, "billion_laughs.docx", {"word/document.xml": doc.encode()})


def deep_nesting_300(folder: Path) -> Path:
    depth = 300
    body = '<w:customXml w:element="x">' * depth + _run(MARKER) + "</w:customXml>" * depth
    return _docx_with(folder, "deep_nesting_300.docx", {"word/document.xml": document_xml(body).encode()})


def text_node_20mb(folder: Path) -> Path:
    """20 MB of varied (base64) text in one ``w:t``: compresses ~1.3:1, so only libxml2's 10 MB limit is left."""
    import base64

    text = base64.b64encode(os.urandom(15_000_000)).decode()  # 20 000 000 characters
    return _docx_with(folder, "text_node_20mb.docx", {"word/document.xml": document_xml(_run(text)).encode()})


def text_node_20mb_repetitive(folder: Path) -> Path:
    """The same size of one repeated letter: ~1000:1, refused by the ratio check before any XML is parsed."""
    doc = document_xml(_run("a" * 20_000_000))
    return _docx_with(folder, "text_node_20mb_repetitive.docx", {"word/document.xml": doc.encode()})


# --- 14: Office zip bombs ---------------------------------------------------------------------------------------


def _docx_entries() -> list[Entry]:
    return [deflated(name, data) for name, data in docx_parts().items()]


@functools.cache
def _mib_of_zeros() -> Entry:
    return deflated("", b"\0" * MiB)


def bomb_total_1gib(folder: Path) -> Path:
    """1100 media parts of 1 MiB each (1.07 GiB): each under the 1 MiB ratio floor, so only the total stops it."""
    kernel = _mib_of_zeros()
    pads = [Entry(f"word/media/pad{n:04d}.bin", kernel.data, kernel.crc, kernel.size) for n in range(1100)]
    return _write(folder, "bomb_total_1gib.docx", build_zip(_docx_entries() + pads))


def _tiny_entries(n: int) -> list[Entry]:
    empty = zlib.crc32(b"")
    return [Entry(f"word/x/{i:06d}.xml", b"", empty, 0, method=zipfile.ZIP_STORED) for i in range(n)]


def bomb_100k_entries(folder: Path) -> Path:
    return _write(folder, "bomb_100k_entries.docx", build_zip(_docx_entries() + _tiny_entries(100_000), zip64=True))


def bomb_100k_entries_lying_count(folder: Path) -> Path:
    """The end record says 4 entries; the directory holds 100 004 (zipfile believes the directory)."""
    data = build_zip(_docx_entries() + _tiny_entries(100_000), count=4)
    return _write(folder, "bomb_100k_entries_lying_count.docx", data)


def bomb_ratio(folder: Path) -> Path:
    pad = deflated("word/media/zeros.bin", b"\0" * (64 * MiB))  # ~1030:1
    return _write(folder, "bomb_ratio.docx", build_zip([*_docx_entries(), pad]))


# --- 15: corrupt Office zips ------------------------------------------------------------------------------------


def _replace_entry(name: str, entry: Entry) -> list[Entry]:
    return [entry if e.name == name else e for e in _docx_entries()]


def corrupt_zlib_error(folder: Path) -> Path:
    """document.xml's deflate stream starts with the reserved block type 3: zlib raises 'invalid block type'."""
    content = docx_parts()["word/document.xml"]
    bad = b"\x07" + raw_deflate(content)[1:]
    return _write(folder, "corrupt_zlib_error.docx",
                  build_zip(_replace_entry("word/document.xml", Entry("word/document.xml", bad, zlib.crc32(content),
                                                                      len(content)))))


def corrupt_truncated_stream(folder: Path) -> Path:
    """document.xml's deflate stream is cut in half: fewer bytes come out than declared (zipfile: bad CRC)."""
    content = docx_parts()["word/document.xml"]
    cut = raw_deflate(content)[: len(raw_deflate(content)) // 2]
    return _write(folder, "corrupt_truncated_stream.docx",
                  build_zip(_replace_entry("word/document.xml", Entry("word/document.xml", cut, zlib.crc32(content),
                                                                      len(content)))))


def corrupt_eof(folder: Path) -> Path:
    """The last part, stored, declares 100 000 more bytes than the file holds: zipfile's read runs out (EOFError)."""
    content = docx_parts()["word/document.xml"]
    short = Entry("word/document.xml", content, zlib.crc32(content), len(content) + 100_000,
                  method=zipfile.ZIP_STORED, central_csize=len(content) + 100_000,
                  local_sizes=(len(content) + 100_000, len(content) + 100_000))
    others = [e for e in _docx_entries() if e.name != "word/document.xml"]
    return _write(folder, "corrupt_eof.docx", build_zip([*others, short]))


def corrupt_crc(folder: Path) -> Path:
    good = deflated("word/document.xml", docx_parts()["word/document.xml"])
    good.crc ^= 0xDEADBEEF
    return _write(folder, "corrupt_crc.docx", build_zip(_replace_entry("word/document.xml", good)))


def missing_main_part(folder: Path) -> Path:
    """The package relationship names word/document.xml, which is not there (python-docx: KeyError)."""
    return _docx_with(folder, "missing_main_part.docx", {"word/document.xml": None})


def missing_content_types(folder: Path) -> Path:
    return _docx_with(folder, "missing_content_types.docx", {"[Content_Types].xml": None})


def no_central_directory(folder: Path) -> Path:
    data = _zip(docx_parts())
    return _write(folder, "no_central_directory.docx", data[: data.rfind(b"PK\x01\x02") - 10])


# --- 16: traversal ----------------------------------------------------------------------------------------------


def _portfolio_with(evil: Entry) -> bytes:
    good = deflated("portfolio/report.md", f"# Report\n{MARKER}\n".encode())
    return build_zip([good, evil])


def _evil(member: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        return _write(folder, build.__name__ + ".zip", _portfolio_with(deflated(member, b"pwned\n")))
    return build


traversal_dotdot = _evil("../evil")
traversal_absolute = _evil("/abs/evil")
traversal_drive = _evil("C:\\evil")
traversal_backslash_dotdot = _evil("..\\evil")
for _fn, _name in ((traversal_dotdot, "traversal_dotdot"), (traversal_absolute, "traversal_absolute"),
                   (traversal_drive, "traversal_drive"), (traversal_backslash_dotdot, "traversal_backslash_dotdot")):
    _fn.__name__ = _fn.__qualname__ = _name


def traversal_symlink(folder: Path) -> Path:
    """A Unix symlink member pointing out of the archive (extractors would follow it when writing through it)."""
    target = b"/etc/passwd"
    link = Entry("portfolio/link", target, zlib.crc32(target), len(target), method=zipfile.ZIP_STORED,
                 external_attr=(stat.S_IFLNK | 0o777) << 16, create_system=3)
    return _write(folder, "traversal_symlink.zip", _portfolio_with(link))


# --- 17: overlap ------------------------------------------------------------------------------------------------


def quoted_overlap_chain(folder: Path, n: int = 100, kernel_bytes: int = 900_000) -> Path:
    """Fifield's quoted-overlap bomb: entry i's data quotes entry i+1's header and runs on into it.

    Every entry inflates to the headers after it plus the shared kernel, so ``n`` entries give
    ~``n * kernel_bytes`` (here ~90 MB from ~40 KB). Each entry stays under the ratio floor and the
    total under the size limit: only the overlap check can refuse it.
    """
    kernel_content = b"\0" * kernel_bytes
    kernel = raw_deflate(kernel_content)
    names = [f"portfolio/part{i:03d}.md".encode() for i in range(n)]
    # Build back to front: entry i = header_i + quote(block holding header_{i+1}...) ; the last one holds the kernel.
    tail = kernel
    tail_content = kernel_content
    headers: list[bytes] = []
    sizes: list[tuple[int, int, int]] = []
    for i in reversed(range(n)):
        header = local_header(names[i], zlib.crc32(tail_content), len(tail), len(tail_content))
        headers.append(header)
        sizes.append((zlib.crc32(tail_content), len(tail), len(tail_content)))
        if i:
            quote = b"\x00" + struct.pack("<HH", len(header), len(header) ^ 0xFFFF) + header
            tail, tail_content = quote + tail, header + tail_content
    headers.reverse()
    sizes.reverse()
    body = headers[0] + tail
    offsets, at = [], 0
    for i in range(n):
        offsets.append(at)
        at += len(headers[i]) + 5  # the next header starts after this one and its 5-byte quote prefix
    directory = b"".join(central_record(names[i], *sizes[i], offsets[i]) for i in range(n))
    return _write(folder, "quoted_overlap_chain.zip", body + directory + end_record(n, len(directory), len(body)))


def overlap_docx(folder: Path) -> Path:
    """The two-entry overlap kernel (zipscan.overlap_bomb, the startup self-test's sample), named .docx."""
    return _write(folder, "overlap.docx", overlap_bomb())


# --- 18: forged headers ----------------------------------------------------------------------------------------


def forged_compress_size(folder: Path) -> Path:
    """cpython #151307's shape: a stored entry claiming 2**31-1 compressed bytes, listed twice at offset 0.

    A plain ``zf.read()`` asks the file object for 2 GiB at once; the duplicate record at the same
    offset sends the runtime's overlap check (where it exists) down its warn-only branch.
    """
    data = b"hello"
    forged = Entry("a.txt", data, zlib.crc32(data), len(data), method=zipfile.ZIP_STORED, central_csize=2**31 - 1,
                   local_sizes=(2**31 - 1, len(data)))
    dup = central_record(b"a.txt", zlib.crc32(data), 2**31 - 1, len(data), 0, zipfile.ZIP_STORED)
    return _write(folder, "forged_compress_size.zip", build_zip([forged], extra_central=[dup]))


def forged_local_sizes(folder: Path) -> Path:
    """document.xml's local header claims other sizes than the directory (a streaming reader would see other data)."""
    entry = deflated("word/document.xml", docx_parts()["word/document.xml"])
    entry.local_sizes = (len(entry.data) // 2, entry.size * 50)
    return _write(folder, "forged_local_sizes.docx", build_zip(_replace_entry("word/document.xml", entry)))


def zipfile_path_loop(folder: Path) -> Path:
    """Names starting ``//``: ``zipfile.Path`` on CPython < 3.11.10 / 3.12.5 loops for ever walking their parents."""
    return _write(folder, "zipfile_path_loop.zip", _zip({"portfolio/report.md": MARKER.encode(),
                                                          "//loop/evil.md": b"# loop\n"}))


# --- 19: nesting, duplicates, encryption ------------------------------------------------------------------------


def nested(depth: int, leaf: bytes | None = None) -> bytes:
    """A zip holding a zip ... ``depth`` archives in all, the innermost holding a Markdown file."""
    data = _zip({"notes.md": leaf or f"# Notes\n{MARKER}\n".encode()})
    for level in range(depth - 1, 0, -1):
        data = _zip({f"level{level + 1}.zip": data})
    return data


def nested_past_limit(folder: Path) -> Path:
    return _write(folder, "nested_past_limit.zip", nested(3))  # our limit: 2 archives deep


def nested_past_clamav(folder: Path) -> Path:
    return _write(folder, "nested_past_clamav.zip", nested(17))  # ClamAV MaxRecursion 16


def duplicate_names(folder: Path) -> Path:
    first = deflated("portfolio/report.md", b"# Report\nThe real one.\n")
    second = deflated("portfolio/report.md", b"# Report\nThe one a different unzip would show.\n")
    return _write(folder, "duplicate_names.zip", build_zip([first, second]))


def encrypted_member(folder: Path) -> Path:
    """One ZipCrypto member (flag bit 0; a 12-byte header then ciphertext) beside a readable one."""
    good = deflated("portfolio/report.md", f"# Report\n{MARKER}\n".encode())
    secret = os.urandom(12) + os.urandom(40)
    locked = Entry("portfolio/secret.md", secret, 0x12345678, 40, flags=0x1)
    return _write(folder, "encrypted_member.zip", build_zip([good, locked]))


_TABLE: list[tuple[Callable[[Path], Path], int, frozenset[str]]] = [
    (xxe_document, 11, frozenset({"hostile_xml"})),
    (xxe_slide, 11, frozenset({"hostile_xml"})),
    (xxe_content_types, 11, frozenset({"hostile_xml"})),
    (xxe_rels, 11, frozenset({"hostile_xml"})),
    (xxe_document_utf16, 11, frozenset({"hostile_xml"})),
    (xxe_parameter_entity, 12, frozenset({"hostile_xml"})),
    (billion_laughs, 13, frozenset({"hostile_xml"})),
    (deep_nesting_300, 13, frozenset({"hostile_xml"})),
    (text_node_20mb, 13, frozenset({"too_large"})),
    (text_node_20mb_repetitive, 13, frozenset({"zip_bomb"})),
    (bomb_total_1gib, 14, frozenset({"zip_bomb"})),
    (bomb_100k_entries, 14, frozenset({"zip_bomb"})),
    (bomb_100k_entries_lying_count, 14, frozenset({"zip_bomb"})),
    (bomb_ratio, 14, frozenset({"zip_bomb"})),
    (corrupt_zlib_error, 15, frozenset({"corrupt"})),
    (corrupt_truncated_stream, 15, frozenset({"corrupt"})),
    (corrupt_eof, 15, frozenset({"corrupt"})),
    (corrupt_crc, 15, frozenset({"corrupt"})),
    (missing_main_part, 15, frozenset({"corrupt"})),
    (missing_content_types, 15, frozenset({"corrupt"})),
    (no_central_directory, 15, frozenset({"corrupt"})),
    (traversal_dotdot, 16, frozenset({"unsafe_path"})),
    (traversal_absolute, 16, frozenset({"unsafe_path"})),
    (traversal_drive, 16, frozenset({"unsafe_path"})),
    (traversal_backslash_dotdot, 16, frozenset({"unsafe_path"})),
    (traversal_symlink, 16, frozenset({"unsafe_path"})),
    (quoted_overlap_chain, 17, frozenset({"zip_bomb"})),
    (overlap_docx, 17, frozenset({"zip_bomb"})),
    (forged_compress_size, 18, frozenset({"corrupt"})),
    (forged_local_sizes, 18, frozenset({"corrupt"})),
    (zipfile_path_loop, 18, frozenset({"unsafe_path"})),
    (nested_past_limit, 19, frozenset({"zip_bomb"})),
    (nested_past_clamav, 19, frozenset({"zip_bomb"})),
    (duplicate_names, 19, frozenset({"unsafe_path"})),
    (encrypted_member, 19, frozenset({"encrypted"})),
]

CASES: dict[str, Callable[[Path], Path]] = {fn.__name__: fn for fn, _, _ in _TABLE}
CATALOGUE: dict[str, int] = {fn.__name__: number for fn, number, _ in _TABLE}
EXPECTED: dict[str, frozenset[str]] = {fn.__name__: outcomes for fn, _, outcomes in _TABLE}


def of_catalogue(number: int) -> list[str]:
    return [name for name, n in CATALOGUE.items() if n == number]
