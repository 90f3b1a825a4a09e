"""Hostile PDFs for reliability catalogue tests 7-10, generated on demand (nothing binary is checked in).

Each generator writes one small file (bombs are small compressed inputs that
expand hugely) into the directory it is given and returns its path:

- 7: Flate bombs: one stream inflating past pypdf's 75 MB cap, and nested
  ``/Filter [/FlateDecode /FlateDecode ...]`` (the pypdf #3429 shape), where
  pypdf decodes them (an embedded file) and on each route by which pdfium
  would inflate one whole: the page's content, a form XObject, a font program,
  an inline image, an ICC profile, an object stream holding the page's font;
- 8: LZW, RunLength and JBIG2 bombs, and streams declaring a huge ``/Length``;
- 9: the CPU-loop regression corpus of pypdf's advisories: a comment running
  into EOF (at the end of the file, and at the end of an object stream),
  circular ``/Prev`` chains (xref tables and xref streams), cyclic outlines, a
  DCT inline image with no EOI, a missing ``/Root`` with a huge ``/Size``,
  cyclic and exploding page trees;
- 10: XMP metadata with custom entity declarations (billion laughs).

``CASES`` maps a case to its generator, ``EXPECTED`` to the outcomes that are
correct for it (``ErrorCode`` values, or ``"ok"`` for a bounded successful read),
and ``CATALOGUE`` to its catalogue number. Files are written by hand, with a
small builder that computes xref offsets, so each hazard sits exactly where it
is meant to.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

MB = 1_000_000
#: pypdf's per-filter output cap (Configuration.*_maximum_output_length); every bomb expands beyond it.
PYPDF_FILTER_CAP = 75 * MB
#: What the text of the known-good page says; a read that succeeds on a hostile case must still show it.
MARKER = "Hostile corpus marker text"
TEXT = b"BT /F1 12 Tf 72 700 Td (" + MARKER.encode() + b") Tj ET"
#: The billion-laughs entity's innermost value; it must never appear in any output.
LAUGH = "lol"

FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"


# --- a small PDF writer ---------------------------------------------------------------------------------


def stream(dictionary: bytes, data: bytes, length: int | None = None) -> bytes:
    """A stream object body; ``length`` overrides the true /Length (to lie about it)."""
    declared = len(data) if length is None else length
    return b"<< " + dictionary + b" /Length %d >>\nstream\n" % declared + data + b"\nendstream"


def assemble(objects: Sequence[bytes], trailer: bytes = b"/Root 1 0 R", late: Sequence[bytes] = ()) -> bytes:
    """Objects 1..n, then a correct xref table and trailer (``trailer`` is its body beyond /Size).

    ``late`` are raw objects (numbered n+1...) written after ``%%EOF`` yet listed
    in the xref, so one can run into the end of the file.
    """
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    size = len(objects) + len(late) + 1
    head = b"xref\n0 %d\n0000000000 65535 f \n" % size
    tail = b"trailer\n<< /Size %d %s >>\nstartxref\n%d\n%%%%EOF\n" % (size, trailer, xref)
    position = xref + len(head) + 20 * (size - 1) + len(tail)
    for raw in late:
        offsets.append(position)
        position += len(raw)
    out += head + b"".join(b"%010d 00000 n \n" % offset for offset in offsets) + tail
    for raw in late:
        out += raw
    assert len(out) == position
    return bytes(out)


def one_page(
    content: bytes = TEXT,
    *,
    content_dict: bytes = b"",
    catalog: bytes = b"",
    page: bytes = b"",
    resources: bytes = b"",
    extra: Sequence[bytes] = (),
    content_length: int | None = None,
) -> list[bytes]:
    """Objects of a one-page PDF: 1 catalog, 2 pages, 3 page, 4 contents, 5 font, 6+ ``extra``."""
    return [
        b"<< /Type /Catalog /Pages 2 0 R " + catalog + b" >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] " + page
        + b" /Resources << /Font << /F1 5 0 R >> " + resources + b" >> /Contents 4 0 R >>",
        stream(content_dict, content, content_length),
        FONT,
        *extra,
    ]


def _with_attachment(path: Path, data: bytes, filters: bytes, length: int | None = None) -> Path:
    """A one-page PDF with ``data`` as its one embedded file (objects 6-7), which pypdf decodes to size it."""
    catalog = b"/Names << /EmbeddedFiles << /Names [(bomb.bin) 6 0 R] >> >>"
    spec = b"<< /Type /Filespec /F (bomb.bin) /UF (bomb.bin) /EF << /F 7 0 R >> >>"
    embedded = stream(b"/Type /EmbeddedFile" + (b" /Filter " + filters if filters else b""), data, length)
    return write(path, assemble(one_page(catalog=catalog, extra=(spec, embedded))))


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- bomb payloads ----------------------------------------------------------------------------------------


def deflate_spaces(size: int, prefix: bytes = b"") -> bytes:
    """zlib data inflating to ``prefix`` then ``size`` spaces (whole MiB), built without inflated data in memory.

    Each MiB is compressed once and ends in a full flush (byte-aligned, history
    reset), so the same ~1 KB block can simply be repeated; the Adler-32 of n
    appended equal bytes has a closed form. 1 GiB costs ~1 MB, at deflate's ~1030:1 limit.
    """
    chunk = 1 << 20
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = deflater.compress(prefix) + deflater.flush(zlib.Z_FULL_FLUSH)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflater.compress(b" " * chunk) + deflater.flush(zlib.Z_FULL_FLUSH)
    n = size // chunk * chunk
    checksum = zlib.adler32(prefix)
    low0, high0 = checksum & 0xFFFF, checksum >> 16
    low = (low0 + n * 0x20) % 65521
    high = (high0 + n * low0 + 0x20 * (n * (n + 1) // 2)) % 65521
    return b"\x78\xda" + head + block * (n // chunk) + b"\x03\x00" + struct.pack(">I", (high << 16) | low)


def nested_flate(inner_size: int, layers: int) -> bytes:
    """``layers`` of zlib around ``inner_size`` spaces: each outer layer inflates ~1000x into the next."""
    data = deflate_spaces(inner_size)
    for _ in range(layers - 1):
        data = zlib.compress(data, 9)
    return data


def lzw_run(tables: int, byte: int = 0x20) -> bytes:
    """LZWDecode data (EarlyChange 1) for a run of ``byte``: each table of codes expands to ~7.4 MB.

    A run is LZW's best case: code k stands for k+1 copies, so one 4096-entry
    table of 12-bit codes (~5.6 KB) inflates to 1+2+...+3838 bytes.
    """
    codes: list[int] = []
    for _ in range(tables):
        codes.append(256)  # clear table
        codes.append(byte)
        codes.extend(range(258, 4095))
    codes.append(257)  # end of data
    out = bytearray()
    buffer = bits_in = 0
    width, next_code = 9, 258
    for code in codes:
        buffer = (buffer << width) | code
        bits_in += width
        while bits_in >= 8:
            bits_in -= 8
            out.append((buffer >> bits_in) & 0xFF)
        buffer &= (1 << bits_in) - 1
        if code == 256:
            width, next_code = 9, 258
        elif code != 257:
            next_code += 1
            if next_code > (1 << width) - 1 and width < 12:
                width += 1
    if bits_in:
        out.append((buffer << (8 - bits_in)) & 0xFF)
    return bytes(out)


def run_length(size: int) -> bytes:
    """RunLengthDecode data for ``size`` spaces: 2 bytes per 128 (its best ratio, 64:1)."""
    return b"\x81 " * (size // 128) + b"\x80"


def jbig2_page(width: int, height: int) -> bytes:
    """An embedded-stream JBIG2 page-information segment declaring a ``width`` x ``height`` page.

    Only a decoder would allocate that page (35 000 x 35 000 px is 150 MB at
    1 bit); pypdf may only decode JBIG2 by running the external ``jbig2dec``.
    """
    data = struct.pack(">IIIIBH", width, height, 0, 0, 0, 0)
    header = struct.pack(">IBBBI", 0, 48, 0, 1, len(data))  # segment 0, type 48 page info, page 1
    return header + data


def billion_laughs_xmp(levels: int = 9) -> bytes:
    """An XMP packet whose DOCTYPE declares entities 10^``levels`` "lol"s long, used in dc:title."""
    entities = [f'<!ENTITY l0 "{LAUGH}">']
    entities += [f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, levels + 1)]
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        f"<!DOCTYPE x:xmpmeta [\n{chr(10).join(entities)}\n]>\n"
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">&l{levels};</rdf:li></rdf:Alt></dc:title>'
        "</rdf:Description></rdf:RDF></x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


# --- 7: Flate bombs ---------------------------------------------------------------------------------------

GiB = 1 << 30


def flate_bomb_attachment(d: Path) -> Path:
    """One embedded-file stream of ~100 KB inflating to 100 MB: pypdf stops at its 75 MB cap."""
    return _with_attachment(d / "flate_bomb_attachment.pdf", deflate_spaces(100 * MB), b"/FlateDecode")


def flate_bomb_content(d: Path) -> Path:
    """The page's content stream, ~1 MB inflating to 1 GiB of spaces: pdfium would inflate it whole."""
    content = deflate_spaces(GiB)
    return write(d / "flate_bomb_content.pdf", assemble(one_page(content, content_dict=b"/Filter /FlateDecode")))


def nested_flate_attachment(d: Path) -> Path:
    """``[/FlateDecode x3]`` on an embedded file: ~1 KB that inflates to 4 GiB (the pypdf #3429 shape)."""
    data = nested_flate(4 * GiB, 3)
    return _with_attachment(d / "nested_flate_attachment.pdf", data, b"[/FlateDecode /FlateDecode /FlateDecode]")


def nested_flate_content(d: Path) -> Path:
    """``[/FlateDecode x3]`` on the page's content stream, where pdfium (not pypdf) would decode it."""
    data = nested_flate(4 * GiB, 3)
    content_dict = b"/Filter [/FlateDecode /FlateDecode /FlateDecode]"
    return write(d / "nested_flate_content.pdf", assemble(one_page(data, content_dict=content_dict)))


def flate_bomb_form(d: Path) -> Path:
    """A form XObject the page draws, nested-Flate to 4 GiB: pdfium parses forms with the page."""
    form = stream(b"/Type /XObject /Subtype /Form /BBox [0 0 10 10] /Filter [/FlateDecode /FlateDecode]",
                  nested_flate(4 * GiB, 2))
    objects = one_page(TEXT + b" /Fm0 Do", resources=b"/XObject << /Fm0 6 0 R >>", extra=(form,))
    return write(d / "flate_bomb_form.pdf", assemble(objects))


def flate_bomb_font(d: Path) -> Path:
    """An embedded TrueType font program (FontFile2) nested-Flate to 4 GiB: pdfium loads it to place glyphs."""
    font_file = stream(b"/Length1 4096 /Filter [/FlateDecode /FlateDecode]", nested_flate(4 * GiB, 2))
    descriptor = (
        b"<< /Type /FontDescriptor /FontName /Bomb /Flags 32 /FontBBox [0 0 1000 1000] /ItalicAngle 0 "
        b"/Ascent 800 /Descent -200 /CapHeight 700 /StemV 80 /FontFile2 6 0 R >>"
    )
    objects = one_page(extra=(font_file, descriptor))
    objects[4] = b"<< /Type /Font /Subtype /TrueType /BaseFont /Bomb /FontDescriptor 7 0 R >>"
    return write(d / "flate_bomb_font.pdf", assemble(objects))


def flate_bomb_inline_image(d: Path) -> Path:
    """An inline image (``BI /F /Fl ... ID``) whose ~1 MB of data inflates to 1 GiB: pdfium decodes it in full."""
    content = TEXT + b"\nq 10 0 0 10 100 100 cm BI /W 100 /H 100 /BPC 8 /CS /G /F /Fl ID " + deflate_spaces(GiB)
    return write(d / "flate_bomb_inline_image.pdf", assemble(one_page(content + b"\nEI Q")))


def flate_bomb_icc_profile(d: Path) -> Path:
    """An ICCBased colour space, selected by the page (``/CS0 cs``), whose profile inflates to 4 GiB."""
    profile = stream(b"/N 3 /Filter [/FlateDecode /FlateDecode]", nested_flate(4 * GiB, 2))
    content = b"/CS0 cs 0.5 0.5 0.5 sc " + TEXT
    objects = one_page(content, resources=b"/ColorSpace << /CS0 [/ICCBased 6 0 R] >>", extra=(profile,))
    return write(d / "flate_bomb_icc_profile.pdf", assemble(objects))


def font_in_object_stream(objstm: bytes) -> bytes:
    """A one-page PDF whose font (object 5) is entry 0 of object stream 6, with a cross-reference stream."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    rows = [struct.pack(">BIH", 0, 0, 65535)]
    for number, body in enumerate([*one_page()[:4], None, objstm], 1):
        if body is None:  # object 5: type 2 (compressed), in object stream 6, index 0
            rows.append(struct.pack(">BIH", 2, 6, 0))
            continue
        rows.append(struct.pack(">BIH", 1, len(out), 0))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    rows.append(struct.pack(">BIH", 1, xref, 0))
    out += b"7 0 obj\n" + stream(b"/Type /XRef /Size 8 /W [1 4 2] /Root 1 0 R", b"".join(rows)) + b"\nendobj\n"
    return bytes(out + b"startxref\n%d\n%%%%EOF\n" % xref)


def flate_bomb_object_stream(d: Path) -> Path:
    """The page's font lives in an object stream (``/Type /ObjStm``) that inflates to 2 GiB after it.

    pypdf stops at its cap when it resolves the font; pdfium would inflate the
    whole object stream to find the font.
    """
    head = b"5 0 "
    data = zlib.compress(deflate_spaces(2 * GiB, prefix=head + FONT + b"\n"), 9)
    objstm = stream(b"/Type /ObjStm /N 1 /First %d /Filter [/FlateDecode /FlateDecode]" % len(head), data)
    return write(d / "flate_bomb_object_stream.pdf", font_in_object_stream(objstm))


# --- 8: LZW / RunLength / JBIG2 bombs, huge /Length -------------------------------------------------------


def lzw_bomb_attachment(d: Path) -> Path:
    """An LZWDecode embedded file of ~90 KB inflating to ~118 MB (CVE-2025-62708 / CVE-2025-66019 shape)."""
    return _with_attachment(d / "lzw_bomb_attachment.pdf", lzw_run(16), b"/LZWDecode")


def lzw_bomb_content(d: Path) -> Path:
    """The same LZW bomb as the page's content stream (pdfium decodes it)."""
    content_dict = b"/Filter /LZWDecode"
    return write(d / "lzw_bomb_content.pdf", assemble(one_page(lzw_run(16), content_dict=content_dict)))


def runlength_bomb_attachment(d: Path) -> Path:
    """``[/FlateDecode /RunLengthDecode]``: 100 MB of run-length data, itself deflated to a few KB."""
    data = zlib.compress(run_length(100 * MB), 9)
    return _with_attachment(d / "runlength_bomb_attachment.pdf", data, b"[/FlateDecode /RunLengthDecode]")


def runlength_bomb_content(d: Path) -> Path:
    """The same RunLength bomb as the page's content stream."""
    data = zlib.compress(run_length(100 * MB), 9)
    content_dict = b"/Filter [/FlateDecode /RunLengthDecode]"
    return write(d / "runlength_bomb_content.pdf", assemble(one_page(data, content_dict=content_dict)))


def jbig2_bomb_attachment(d: Path) -> Path:
    """A JBIG2Decode embedded file declaring a 35 000 x 35 000 page: decoding it needs the jbig2dec binary."""
    return _with_attachment(d / "jbig2_bomb_attachment.pdf", jbig2_page(35_000, 35_000), b"/JBIG2Decode")


def jbig2_bomb_image(d: Path) -> Path:
    """A small declared JBIG2 image whose data declares a 35 000 x 35 000 page (a lie only a decoder sees)."""
    image = stream(
        b"/Type /XObject /Subtype /Image /Width 100 /Height 100 /BitsPerComponent 1 /ColorSpace /DeviceGray "
        b"/Filter /JBIG2Decode",
        jbig2_page(35_000, 35_000),
    )
    content = TEXT + b" q 100 0 0 100 72 72 cm /Im0 Do Q"
    objects = one_page(content, resources=b"/XObject << /Im0 6 0 R >>", extra=(image,))
    return write(d / "jbig2_bomb_image.pdf", assemble(objects))


def huge_length_attachment(d: Path) -> Path:
    """An embedded file declaring ``/Length`` 10^14 (CVE-2026-31826 shape): pypdf caps /Length at 75 MB."""
    return _with_attachment(d / "huge_length_attachment.pdf", b"tiny", b"", length=10**14)


def huge_length_content(d: Path) -> Path:
    """The page's content stream declaring ``/Length`` 10^14 (pdfium must fall back to ``endstream``)."""
    return write(d / "huge_length_content.pdf", assemble(one_page(content_length=10**14)))


# --- 9: CPU-loop regression corpus -------------------------------------------------------------------------


def comment_at_eof(d: Path) -> Path:
    """The file ends inside an object, in a ``%`` with nothing after it (CVE-2023-36464 / GHSA-4vvm-4w3v-6mr8).

    The object is listed in the xref (as the outline root) though written after ``%%EOF``.
    """
    late = (b"6 0 obj\n<< /Type /Outlines /Count 0 %",)
    return write(d / "comment_at_eof.pdf", assemble(one_page(catalog=b"/Outlines 6 0 R"), late=late))


def comment_at_eof_object_stream(d: Path) -> Path:
    """The page's font is the last object of an object stream whose data ends in ``%``: pypdf parses it
    from a buffer that ends inside the comment, which is the advisory's shape, past every EOF check."""
    head = b"5 0 "
    body = head + b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica %"
    objstm = stream(b"/Type /ObjStm /N 1 /First %d" % len(head), body)
    return write(d / "comment_at_eof_object_stream.pdf", font_in_object_stream(objstm))


def _xref_loop(stream_xrefs: bool) -> bytes:
    """A good file plus two incremental xref sections whose /Prev entries point at each other."""
    base = assemble(one_page())
    a = len(base)
    if stream_xrefs:
        # Two xref streams (objects 6 and 7), each listing only itself, /Prev pointing at the other.
        def xref_stream(number: int, offset: int, prev: int) -> bytes:
            rows = struct.pack(">BIH", 1, offset, 0)
            dictionary = b"/Type /XRef /Size 8 /W [1 4 2] /Index [%d 1] /Root 1 0 R /Prev %010d" % (number, prev)
            body = stream(dictionary, rows)
            return b"%d 0 obj\n" % number + body + b"\nendobj\n"

        first = xref_stream(6, a, 0)
        b = a + len(first)
        first = xref_stream(6, a, b)
        second = xref_stream(7, b, a)
        assert a + len(first) == b
        return base + first + second + b"startxref\n%d\n%%%%EOF\n" % b
    section_a = b"xref\n0 1\n0000000000 65535 f \ntrailer\n<< /Size 6 /Root 1 0 R /Prev %010d >>\n"
    b = a + len(section_a % 0)
    section_b = b"xref\n0 1\n0000000000 65535 f \ntrailer\n<< /Size 6 /Root 1 0 R /Prev %010d >>\n" % a
    return base + section_a % b + section_b + b"startxref\n%d\n%%%%EOF\n" % b


def xref_prev_loop_table(d: Path) -> Path:
    """Two xref tables whose trailers' /Prev point at each other (CVE-2026-27628 / GHSA-2rw7-x74f-jg35)."""
    return write(d / "xref_prev_loop_table.pdf", _xref_loop(stream_xrefs=False))


def xref_prev_loop_stream(d: Path) -> Path:
    """The same loop between two cross-reference streams (the advisory's exact shape)."""
    return write(d / "xref_prev_loop_stream.pdf", _xref_loop(stream_xrefs=True))


def outline_next_cycle(d: Path) -> Path:
    """Bookmarks whose /Next chain loops back (CVE-2026-24688 / GHSA-2q4j-m29v-hq73)."""
    outlines = b"<< /Type /Outlines /First 7 0 R /Last 8 0 R /Count 2 >>"
    first = b"<< /Title (Alpha) /Parent 6 0 R /Next 8 0 R /Dest [3 0 R /XYZ 0 792 0] >>"
    second = b"<< /Title (Beta) /Parent 6 0 R /Prev 7 0 R /Next 7 0 R /Dest [3 0 R /XYZ 0 700 0] >>"
    objects = one_page(catalog=b"/Outlines 6 0 R", extra=(outlines, first, second))
    return write(d / "outline_next_cycle.pdf", assemble(objects))


def outline_child_cycle(d: Path) -> Path:
    """A bookmark whose /First child is its own ancestor (the TreeObject.children cycle, pypdf 6.7.1)."""
    outlines = b"<< /Type /Outlines /First 7 0 R /Last 7 0 R /Count 2 >>"
    parent = b"<< /Title (Parent) /Parent 6 0 R /First 8 0 R /Last 8 0 R /Count 1 /Dest [3 0 R /XYZ 0 792 0] >>"
    child = b"<< /Title (Child) /Parent 7 0 R /First 7 0 R /Last 7 0 R /Count 1 /Dest [3 0 R /XYZ 0 700 0] >>"
    objects = one_page(catalog=b"/Outlines 6 0 R", extra=(outlines, parent, child))
    return write(d / "outline_child_cycle.pdf", assemble(objects))


def dct_inline_no_eoi(d: Path) -> Path:
    """A DCT inline image with no EOI marker and no ``EI`` (CVE-2025-62707 / GHSA-vr63-x8vc-m265)."""
    jpeg_start = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\xff\xdb\x00\x43\x00"
    content = TEXT + b"\nBI /W 16 /H 16 /CS /G /BPC 8 /F /DCT ID " + jpeg_start + b"\x10" * 4096
    return write(d / "dct_inline_no_eoi.pdf", assemble(one_page(content)))


def missing_root_huge_size(d: Path) -> Path:
    """No /Root and /Size 2^31-1 (CVE-2026-22690 / GHSA-4xc4-762w-m6cg): recovery must be bounded."""
    data = assemble(one_page(), trailer=b"")
    data = data.replace(b"<< /Size 6  >>", b"<< /Size 2147483647 >>")
    assert b"2147483647" in data
    return write(d / "missing_root_huge_size.pdf", data)


def page_tree_cycle(d: Path) -> Path:
    """A /Pages node whose /Kids holds a /Pages node whose /Kids holds the first (pypdf 6.7.1, CWE-835)."""
    objects = one_page(extra=(b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R 3 0 R] /Count 1 >>",))
    objects[1] = b"<< /Type /Pages /Kids [6 0 R] /Count 1 >>"
    return write(d / "page_tree_cycle.pdf", assemble(objects))


def page_tree_fanout(d: Path) -> Path:
    """Eight /Pages levels each listing the next level ten times: 10^8 page references from 9 objects.

    Not a loop but the same hazard (pypdf 6.21.4 "limit copied page attributes
    during flattening"); ``/Count 1`` lies so the declared-count check passes.
    """
    levels = 8
    objects = one_page()
    first = len(objects) + 1
    objects[1] = b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % first
    for level in range(levels):
        number = first + level
        kid = b"%d 0 R" % (number + 1) if level < levels - 1 else b"3 0 R"
        parent = 2 if level == 0 else number - 1
        objects.append(b"<< /Type /Pages /Parent %d 0 R /Kids [%s] /Count 1 >>" % (parent, b" ".join([kid] * 10)))
    objects[2] = objects[2].replace(b"/Parent 2 0 R", b"/Parent %d 0 R" % (first + levels - 1))
    return write(d / "page_tree_fanout.pdf", assemble(objects))


# --- 10: XMP entity expansion -------------------------------------------------------------------------------


def xmp_billion_laughs(d: Path) -> Path:
    """Catalog /Metadata whose XMP declares nested entities (10^9 "lol"s) and uses the outermost one."""
    xmp = stream(b"/Type /Metadata /Subtype /XML", billion_laughs_xmp())
    objects = one_page(catalog=b"/Metadata 6 0 R", extra=(xmp,))
    return write(d / "xmp_billion_laughs.pdf", assemble(objects))


def xmp_billion_laughs_deflated(d: Path) -> Path:
    """The same XMP stream behind /FlateDecode (the form most producers write)."""
    xmp = stream(b"/Type /Metadata /Subtype /XML /Filter /FlateDecode", zlib.compress(billion_laughs_xmp(), 9))
    objects = one_page(catalog=b"/Metadata 6 0 R", extra=(xmp,))
    return write(d / "xmp_billion_laughs_deflated.pdf", assemble(objects))


# --- a known-good PDF ----------------------------------------------------------------------------------------


def good(d: Path) -> Path:
    """A plain one-page PDF showing ``MARKER``: what the pool must still read after each hostile case."""
    return write(d / "good.pdf", assemble(one_page()))


# --- the catalogue ------------------------------------------------------------------------------------------

OK = "ok"
TOO_LARGE = "too_large"
CORRUPT = "corrupt"

_BOUNDED = frozenset({OK, TOO_LARGE})  # pypdf decodes embedded files under its caps, or we refuse them
_REFUSED = frozenset({TOO_LARGE})  # what pdfium would inflate is measured first (extractors/pdf_streams.py)

_TABLE: list[tuple[Callable[[Path], Path], int, frozenset[str]]] = [
    (flate_bomb_attachment, 7, _BOUNDED),
    (flate_bomb_content, 7, _REFUSED),
    (nested_flate_attachment, 7, _BOUNDED),
    (nested_flate_content, 7, _REFUSED),
    (flate_bomb_form, 7, _REFUSED),
    (flate_bomb_font, 7, _REFUSED),
    (flate_bomb_inline_image, 7, _REFUSED),
    (flate_bomb_icc_profile, 7, _REFUSED),
    (flate_bomb_object_stream, 7, _REFUSED),
    (lzw_bomb_attachment, 8, _BOUNDED),
    (lzw_bomb_content, 8, _REFUSED),
    (runlength_bomb_attachment, 8, _BOUNDED),
    (runlength_bomb_content, 8, _REFUSED),
    (jbig2_bomb_attachment, 8, _BOUNDED),
    (jbig2_bomb_image, 8, frozenset({OK})),  # text extraction never decodes an image
    (huge_length_attachment, 8, frozenset({OK, CORRUPT, TOO_LARGE})),
    (huge_length_content, 8, frozenset({OK, CORRUPT, TOO_LARGE})),
    (comment_at_eof, 9, frozenset({OK, CORRUPT})),
    (comment_at_eof_object_stream, 9, frozenset({OK, CORRUPT})),
    (xref_prev_loop_table, 9, frozenset({CORRUPT})),
    (xref_prev_loop_stream, 9, frozenset({CORRUPT})),
    (outline_next_cycle, 9, frozenset({OK})),  # the pages are fine: only the bookmarks loop
    (outline_child_cycle, 9, frozenset({OK})),
    (dct_inline_no_eoi, 9, frozenset({OK, CORRUPT})),
    (missing_root_huge_size, 9, frozenset({CORRUPT})),
    (page_tree_cycle, 9, frozenset({CORRUPT})),
    (page_tree_fanout, 9, frozenset({CORRUPT, TOO_LARGE})),
    (xmp_billion_laughs, 10, frozenset({OK})),
    (xmp_billion_laughs_deflated, 10, frozenset({OK})),
]

CASES: dict[str, Callable[[Path], Path]] = {fn.__name__: fn for fn, _, _ in _TABLE}
CATALOGUE: dict[str, int] = {fn.__name__: number for fn, number, _ in _TABLE}
EXPECTED: dict[str, frozenset[str]] = {fn.__name__: outcomes for fn, _, outcomes in _TABLE}
