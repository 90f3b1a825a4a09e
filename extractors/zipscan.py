"""Pre-scan a zip container before any library opens it.

docx, pptx and portfolio zips are all zips; each is checked here for entry
count, declared and actual sizes, compression ratio, overlapping entries and
unsafe member names. Reads are capped while they happen, because declared
sizes in the central directory can be forged.
"""

from __future__ import annotations

import itertools
import lzma
import posixpath
import stat
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO

from .errors import ErrorCode, ExtractionError
from .limits import Limits

_LOCAL_HEADER_LEN = 30


def unsafe_member_name(name: str) -> bool:
    """True for names that could escape an extraction directory."""
    if not name or "\x00" in name or name.startswith(("/", "\\")) or "\\" in name:
        return True
    if len(name) > 1 and name[1] == ":":  # C:\...
        return True
    return ".." in posixpath.normpath(name).split("/")


def is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def open_zip(fp: IO[bytes] | str, limits: Limits) -> zipfile.ZipFile:
    """Open a zip and validate its directory against ``limits``."""
    try:
        zf = zipfile.ZipFile(fp)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise ExtractionError(ErrorCode.CORRUPT, f"not a readable zip package ({type(exc).__name__})") from exc
    try:
        check_directory(zf, limits)
    except ExtractionError:
        zf.close()
        raise
    return zf


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
        if info.file_size > limits.ratio_floor_bytes and info.compress_size > 0:
            ratio = info.file_size / info.compress_size
            if ratio > limits.max_compression_ratio:
                raise ExtractionError(
                    ErrorCode.ZIP_BOMB, f"entry {info.filename!r} has compression ratio {ratio:.0f}:1"
                )
    if total > limits.max_zip_total_bytes:
        limit = limits.max_zip_total_bytes
        raise ExtractionError(ErrorCode.ZIP_BOMB, f"archive expands to {total} bytes (limit {limit})")
    _check_overlap(infos)


def _check_overlap(infos: list[zipfile.ZipInfo]) -> None:
    """Reject entries whose data overlaps another's (the 'better zip bomb')."""
    spans = sorted(
        (i.header_offset, i.header_offset + _LOCAL_HEADER_LEN + len(i.filename.encode()) + i.compress_size, i.filename)
        for i in infos
        if not i.is_dir()
    )
    for (_, end, name), (start_next, _, name_next) in itertools.pairwise(spans):
        if start_next < end:
            raise ExtractionError(
                ErrorCode.ZIP_BOMB, f"entries {name!r} and {name_next!r} overlap (crafted archive)"
            )


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """Read one member, stopping at ``cap`` bytes whatever the header claims."""
    return b"".join(iter_member(zf, info, cap))


def iter_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, chunk: int = 1 << 20) -> Iterator[bytes]:
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
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise ExtractionError(ErrorCode.CORRUPT, f"entry {info.filename!r} is damaged ({type(exc).__name__})") from exc
