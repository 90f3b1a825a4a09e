"""Pre-scan a zip container before any library opens it.

docx, pptx and portfolio zips are all zips; each is checked here, from its
directory records alone, before a single member is inflated:

1. the end-of-central-directory record and the raw central directory are walked
   *before* ``zipfile`` builds its ``ZipInfo`` list, so 100 000 tiny entries or a
   huge directory are refused without materialising them;
2. entry count, declared sizes, total expansion and compression ratio;
3. unsafe member names and symlinks;
4. every entry's local header is read: the data must end before the central
   directory (a forged ``compress_size``, cpython #151307: ``corrupt``), the local
   and central headers must agree (``corrupt``), and no two entries may overlap (the
   quoted-overlap bomb, CVE-2024-0450: ``zip_bomb``; this runtime's ``zipfile`` may
   not catch it, see ``selftest``).

Reads are also capped while they happen, because declared sizes can be forged.
"""

from __future__ import annotations

import io
import itertools
import logging
import lzma
import os
import posixpath
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from .errors import ErrorCode, ExtractionError
from .limits import DEFAULT_LIMITS, Limits

_LOCAL = struct.Struct("<4sHHHHHLLLHH")  # local file header, 30 bytes
_LOCAL_SIG = b"PK\x03\x04"
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # central directory record, 46 bytes
_CENTRAL_SIG = b"PK\x01\x02"
_FLAG_ENCRYPTED = 0x1
_FLAG_DATA_DESCRIPTOR = 0x8  # sizes follow the data; the local header's are zero
_ZIP64_MARK = 0xFFFFFFFF
#: A real central directory record is ~50-300 bytes; this much per permitted entry is far beyond any real archive.
_DIRECTORY_BYTES_PER_ENTRY = 4096
#: Unix (3) and macOS (19) archivers store the st_mode, and so a symlink bit, in the high half of external_attr.
_UNIX_HOSTS = (3, 19)

log = logging.getLogger(__name__)


def unsafe_member_name(name: str) -> bool:
    """True for names that could escape an extraction directory."""
    if not name or "\x00" in name or name.startswith(("/", "\\")) or "\\" in name:
        return True
    if len(name) > 1 and name[1] == ":":  # C:\...
        return True
    return ".." in posixpath.normpath(name).split("/")


def is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system in _UNIX_HOSTS and stat.S_ISLNK(info.external_attr >> 16)


def is_encrypted(info: zipfile.ZipInfo) -> bool:
    return bool(info.flag_bits & _FLAG_ENCRYPTED)


def open_zip(fp: IO[bytes] | str | os.PathLike[str], limits: Limits) -> zipfile.ZipFile:
    """Open a zip and validate its directory against ``limits``; raises ``ExtractionError`` only."""
    try:
        if isinstance(fp, (str, os.PathLike)):
            with open(fp, "rb") as fh:
                scan_end_records(fh, limits)
            zf = zipfile.ZipFile(fp)
        else:
            scan_end_records(fp, limits)
            zf = zipfile.ZipFile(fp)
    except ExtractionError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, struct.error,
            NotImplementedError) as exc:  # NotImplementedError: a forged "version needed to extract"
        raise ExtractionError(ErrorCode.CORRUPT, f"not a readable zip package ({type(exc).__name__})") from exc
    try:
        check_directory(zf, limits)
    except ExtractionError:
        zf.close()
        raise
    except (OSError, EOFError, ValueError, struct.error) as exc:
        zf.close()
        raise ExtractionError(ErrorCode.CORRUPT, f"damaged zip directory ({type(exc).__name__})") from exc
    return zf


def scan_end_records(fh: IO[bytes], limits: Limits) -> None:
    """Count central directory records from the raw bytes, before ``zipfile`` turns each into a ``ZipInfo``.

    ``zipfile`` trusts neither the EOCD's entry count nor a cap: it reads the whole declared
    directory and makes one object per record. Anything malformed is left for ``zipfile`` to
    report (as ``corrupt``); this only refuses what is too big to be worth parsing.
    """
    endrec = zipfile._EndRecData(fh)  # the very record zipfile uses (private: selftest() exercises it)
    if not endrec:
        return
    declared = endrec[zipfile._ECD_ENTRIES_TOTAL]
    if declared > limits.max_zip_entries:
        limit = limits.max_zip_entries
        raise ExtractionError(ErrorCode.ZIP_BOMB, f"archive declares {declared} entries (limit {limit})")
    size_cd = endrec[zipfile._ECD_SIZE]
    cap = limits.max_zip_entries * _DIRECTORY_BYTES_PER_ENTRY
    if size_cd > cap:
        raise ExtractionError(ErrorCode.ZIP_BOMB, f"archive directory is {size_cd} bytes (limit {cap})")
    start = endrec[zipfile._ECD_LOCATION] - size_cd
    if endrec[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:
        start -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
    if start < 0:
        return
    fh.seek(start)
    directory = fh.read(size_cd)
    count, pos = 0, 0
    while pos + _CENTRAL.size <= len(directory) and directory[pos:pos + 4] == _CENTRAL_SIG:
        fields = _CENTRAL.unpack_from(directory, pos)
        pos += _CENTRAL.size + fields[12] + fields[13] + fields[14]  # name, extra, comment lengths
        count += 1
        if count > limits.max_zip_entries:
            raise ExtractionError(ErrorCode.ZIP_BOMB, f"archive has more than {limits.max_zip_entries} entries")


def check_directory(zf: zipfile.ZipFile, limits: Limits) -> None:
    infos = zf.infolist()
    if len(infos) > limits.max_zip_entries:
        raise ExtractionError(ErrorCode.ZIP_BOMB, f"archive has {len(infos)} entries (limit {limits.max_zip_entries})")
    total = 0
    for info in infos:
        if not info.filename:
            raise ExtractionError(ErrorCode.CORRUPT, "archive has an entry with an empty name")
        if unsafe_member_name(info.filename) or is_symlink(info):
            raise ExtractionError(ErrorCode.UNSAFE_PATH, f"archive entry {info.filename!r} is an unsafe path or link")
        total += info.file_size
        if info.file_size > limits.max_zip_entry_bytes:
            raise ExtractionError(
                ErrorCode.ZIP_BOMB, f"entry {info.filename!r} expands to {info.file_size} bytes"
            )
        if info.file_size > limits.ratio_floor_bytes:
            ratio = info.file_size / max(1, info.compress_size)
            if ratio > limits.max_compression_ratio:
                raise ExtractionError(
                    ErrorCode.ZIP_BOMB, f"entry {info.filename!r} has compression ratio {ratio:.0f}:1"
                )
    if total > limits.max_zip_total_bytes:
        limit = limits.max_zip_total_bytes
        raise ExtractionError(ErrorCode.ZIP_BOMB, f"archive expands to {total} bytes (limit {limit})")
    _check_layout(zf, [i for i in infos if not i.is_dir()])


@dataclass(frozen=True, slots=True)
class _Span:
    start: int  # local header offset
    end: int  # end of the compressed data
    name: str


def _check_layout(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
    """Read every local header: the data must lie where the directory says, once, before the directory.

    Directory entries are skipped: they are never inflated by anything here.
    """
    fp = zf.fp
    if fp is None:
        return
    start_dir = getattr(zf, "start_dir", None)
    spans: list[_Span] = []
    for info in infos:
        fp.seek(info.header_offset)
        raw = fp.read(_LOCAL.size)
        if len(raw) < _LOCAL.size or raw[:4] != _LOCAL_SIG:
            raise ExtractionError(ErrorCode.CORRUPT, f"entry {info.filename!r} has no local header where listed")
        _, _, flags, _, _, _, _, csize, usize, name_len, extra_len = _LOCAL.unpack(raw)
        data_start = info.header_offset + _LOCAL.size + name_len + extra_len
        end = data_start + info.compress_size
        if start_dir is not None and end > start_dir:  # zipfile would read on into the directory, or past EOF
            raise ExtractionError(
                ErrorCode.CORRUPT,
                f"entry {info.filename!r} claims {info.compress_size} compressed bytes, past the end of the "
                "archive's data (damaged or forged sizes)",
            )
        if not flags & _FLAG_DATA_DESCRIPTOR and _ZIP64_MARK not in (csize, usize) and (csize or usize) and (
                (csize, usize) != (info.compress_size, info.file_size)):
            raise ExtractionError(
                ErrorCode.CORRUPT,
                f"entry {info.filename!r}: local header says {csize}/{usize} bytes, directory "
                f"{info.compress_size}/{info.file_size} (damaged or forged)",
            )
        spans.append(_Span(info.header_offset, end, info.filename))
    spans.sort(key=lambda s: (s.start, s.end))
    for here, after in itertools.pairwise(spans):
        if after.start < here.end:
            raise ExtractionError(
                ErrorCode.ZIP_BOMB, f"entries {here.name!r} and {after.name!r} overlap (crafted archive)"
            )


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """Read one member, stopping at ``cap`` bytes whatever the header claims."""
    return b"".join(iter_member(zf, info, cap))


def iter_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """Inflate in ``chunk`` steps: ``read()`` with no size would let zipfile ask for ``compress_size`` at once."""
    got = 0
    try:
        with zf.open(info) as fh:
            while True:
                buf = fh.read(chunk)
                if not buf:
                    return
                got += len(buf)
                if got > cap:
                    raise ExtractionError(ErrorCode.ZIP_BOMB, f"entry {info.filename!r} inflates past {cap} bytes")
                yield buf
    except ExtractionError:
        raise
    except RuntimeError as exc:  # zipfile raises RuntimeError for encrypted members
        raise ExtractionError(ErrorCode.ENCRYPTED, f"entry {info.filename!r} is password-protected") from exc
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, OSError, EOFError, ValueError, NotImplementedError,
            struct.error) as exc:
        raise ExtractionError(ErrorCode.CORRUPT, f"entry {info.filename!r} is damaged ({_name(exc)})") from exc


def _name(exc: BaseException) -> str:
    """``zlib.error``, ``zipfile.BadZipFile``, ``EOFError``: the bare class name of zlib's is just 'error'."""
    cls = type(exc)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__name__}"


# -- crafted archives: the startup self-test and the tests build these -----------------------------------------


def local_header(name: bytes, crc: int, csize: int, usize: int, method: int = zipfile.ZIP_DEFLATED,
                 flags: int = 0) -> bytes:
    return _LOCAL.pack(_LOCAL_SIG, 20, flags, method, 0, 0x21, crc, csize, usize, len(name), 0) + name


def central_record(name: bytes, crc: int, csize: int, usize: int, offset: int, method: int = zipfile.ZIP_DEFLATED,
                   flags: int = 0, external_attr: int = 0, create_system: int = 0) -> bytes:
    return _CENTRAL.pack(_CENTRAL_SIG, 20, create_system, 20, 0, flags, method, 0, 0x21, crc, csize, usize,
                         len(name), 0, 0, 0, 0, external_attr, offset) + name


def end_record(count: int, size_cd: int, offset_cd: int) -> bytes:
    return struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, min(count, 0xFFFF), min(count, 0xFFFF), size_cd, offset_cd, 0)


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def overlap_bomb(kernel_bytes: int = 64 * 1024) -> bytes:
    """A two-entry quoted-overlap zip (CVE-2024-0450): entry ``a``'s data quotes ``b``'s header and runs into ``b``.

    ``a``'s deflate stream is one stored block holding ``b``'s local header, then ``b``'s own
    compressed data, so both entries inflate correctly while sharing bytes. Real bombs chain
    thousands of these; two are enough to show whether a reader refuses the overlap.
    """
    content = b"x" * kernel_bytes
    kernel = raw_deflate(content)
    b_header = local_header(b"b", zlib.crc32(content), len(kernel), len(content))
    quote = b"\x00" + struct.pack("<HH", len(b_header), len(b_header) ^ 0xFFFF) + b_header  # non-final stored block
    a_content = b_header + content
    a_header = local_header(b"a", zlib.crc32(a_content), len(quote) + len(kernel), len(a_content))
    b_offset = len(a_header) + len(quote) - len(b_header)
    body = a_header + quote + kernel
    directory = (central_record(b"a", zlib.crc32(a_content), len(quote) + len(kernel), len(a_content), 0)
                 + central_record(b"b", zlib.crc32(content), len(kernel), len(content), b_offset))
    return body + directory + end_record(2, len(directory), len(body))


@dataclass(frozen=True, slots=True)
class SelfTest:
    prescan_refuses_overlap: bool
    runtime_refuses_overlap: bool  # this interpreter's zipfile has the gh-109858 check (3.11.8+, 3.12.2+, 3.13)


def selftest(*, require_runtime_check: bool | None = None) -> SelfTest:
    """Build an overlap bomb in memory; the pre-scan must refuse it, or this raises ``RuntimeError``.

    Every zip passes the pre-scan before ``zipfile`` reads a member, so the pre-scan is what
    protects us; the runtime's own check (absent from CPython 3.11.7) is defence in depth: its
    absence is logged, and is fatal only when ``require_runtime_check`` (default: environment
    ``GATECHECK_REQUIRE_ZIPFILE_OVERLAP_CHECK=1``) asks for it, e.g. in the production image.
    """
    data = overlap_bomb(4096)
    try:
        open_zip(io.BytesIO(data), DEFAULT_LIMITS).close()
        prescan = False
    except ExtractionError as exc:
        prescan = exc.code is ErrorCode.ZIP_BOMB
    runtime = _runtime_refuses(data)
    if not prescan:
        raise RuntimeError("zip pre-scan no longer refuses an overlapping-entry zip bomb (CVE-2024-0450)")
    if require_runtime_check is None:
        require_runtime_check = os.environ.get("GATECHECK_REQUIRE_ZIPFILE_OVERLAP_CHECK", "") == "1"
    if not runtime:
        msg = "this Python's zipfile lacks the overlapped-entry check (gh-109858); relying on the pre-scan"
        if require_runtime_check:
            raise RuntimeError(msg)
        log.info(msg)  # informational: the pre-scan above is what protects every read
    return SelfTest(prescan, runtime)


def _runtime_refuses(data: bytes) -> bool:
    """Does plain ``zipfile`` refuse the overlapping entry? (The sample is tiny: reading it is harmless.)"""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                zf.read(info)
    except zipfile.BadZipFile:  # the sample is valid but for the overlap: any refusal is the overlap check
        return True
    return False

