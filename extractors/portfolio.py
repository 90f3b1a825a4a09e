"""Portfolios: zip archives and folders of evidence, read entry by entry.

Member names are never trusted: the whole archive is refused if any name is
absolute, climbs out with ``..``, or is a symlink; members are copied (with a
size cap enforced while inflating) to generated temp names and extracted from
there. The folder a file sits in is kept as its evidence group.
"""

from __future__ import annotations

import posixpath
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import zipscan
from .errors import ErrorCode, ExtractionError
from .limits import Limits
from .model import Document
from .pipeline import extract_file
from .sniff import sniff
from .wordcount import CountMode

_JUNK = ("__macosx/", ".ds_store", "thumbs.db", "desktop.ini", "~$")


@dataclass(slots=True)
class Result:
    documents: list[Document] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    def extend(self, other: Result) -> None:
        self.documents.extend(other.documents)
        self.errors.extend(other.errors)


def is_junk(member: str) -> bool:
    low = member.lower()
    base = posixpath.basename(low)
    return low.startswith("__macosx/") or base in _JUNK or base.startswith(("~$", "._")) or base.startswith(".")


def extract_any(path: Path, display: str, mode: CountMode, limits: Limits, depth: int = 0) -> Result:
    """Extract a file, a folder or a zip portfolio; errors become entries, never exceptions."""
    out = Result()
    try:
        if path.is_dir():
            return _folder(path, display, mode, limits)
        found = sniff(path, limits, display)
        if found.format == "zip":
            return _archive(path, display, mode, limits, depth)
        out.documents.append(extract_file(path, display, mode=mode, limits=limits, sniffed=found, depth=depth))
    except ExtractionError as err:
        out.errors.append(err.to_dict(display))
    except OSError as exc:
        code = ErrorCode.NOT_FOUND if isinstance(exc, FileNotFoundError) else ErrorCode.CORRUPT
        out.errors.append(ExtractionError(code, f"cannot read: {exc.strerror or type(exc).__name__}").to_dict(display))
    return out


def folder_files(root: Path, display: str) -> Iterator[tuple[Path, str, str]]:
    """(path, display name, evidence group) of every file worth reading under ``root``, in a stable order.

    Shared with the sandbox, which walks folders in the parent and parses each file in a child.
    """
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        if not is_junk(rel):
            yield path, posixpath.join(display, rel), posixpath.dirname(rel)


def _folder(root: Path, display: str, mode: CountMode, limits: Limits) -> Result:
    out = Result()
    for path, name, group in folder_files(root, display):
        sub = extract_any(path, name, mode, limits)
        set_group(sub, group)
        out.extend(sub)
    return out


def _archive(path: Path, display: str, mode: CountMode, limits: Limits, depth: int) -> Result:
    if depth >= limits.max_zip_depth:
        raise ExtractionError(ErrorCode.ZIP_BOMB, f"archives nested more than {limits.max_zip_depth} deep")
    out = Result()
    with path.open("rb") as fh, zipscan.open_zip(fh, limits) as zf, tempfile.TemporaryDirectory(prefix="gc-") as tmp:
        members = _members(zf)
        for n, info in enumerate(members):
            target = Path(tmp) / f"m{n:05d}"
            _copy_member(zf, info, target, limits)
            sub = extract_any(target, f"{display}/{info.filename}", mode, limits, depth + 1)
            set_group(sub, posixpath.dirname(info.filename))
            out.extend(sub)
            target.unlink(missing_ok=True)
    return out


def _members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    # Names were already vetted by zipscan.check_directory (unsafe paths, links).
    return [i for i in zf.infolist() if not i.is_dir() and not is_junk(i.filename)]


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limits: Limits) -> None:
    with target.open("wb") as out:
        for chunk in zipscan.iter_member(zf, info, limits.max_zip_entry_bytes):
            out.write(chunk)


def set_group(result: Result, group: str) -> None:
    for doc in result.documents:
        if doc.group is None:
            doc.group = group
