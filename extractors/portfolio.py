"""Portfolios: zip archives and folders of evidence, read entry by entry.

Member names are never trusted: the whole archive is refused if any name is
absolute, climbs out with ``..``, is a symlink or appears twice (which copy
would be "the" file?); members are copied (with a size cap enforced while
inflating) to generated temp names and extracted from there. The folder a file
sits in is kept as its evidence group.

What the archive as a whole did wrong (bomb, unsafe names, nesting) refuses the
archive; what one member did wrong (encrypted, damaged data) is that member's
error and the others are still read. Nested archives share one expansion
budget (``Limits.max_zip_total_bytes``), so zips of zips cannot multiply it.

The sandbox (extractors.sandbox) reads archives through ``extract_or_expand``:
a child expands the archive into a folder the parent owns, and the parent
sends each member back as a job of its own, with its own deadline.
"""

from __future__ import annotations

import posixpath
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from . import zipscan
from .errors import ErrorCode, ExtractionError
from .limits import Limits
from .model import Document
from .pipeline import extract_file
from .sniff import sniff
from .wordcount import CountMode

_T = TypeVar("_T")
_JUNK = ("__macosx/", ".ds_store", "thumbs.db", "desktop.ini", "~$")


@dataclass(slots=True)
class Result:
    documents: list[Document] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    def extend(self, other: Result) -> None:
        self.documents.extend(other.documents)
        self.errors.extend(other.errors)


@dataclass(slots=True)
class Member:
    """One archive member as expanded: its generated file, or the error that stopped it being copied."""

    name: str  # the member's path inside the archive: for display and its evidence group
    file: str | None  # generated name inside the expansion folder (never derived from ``name``)
    error: dict[str, str] | None = None


@dataclass(slots=True)
class Expansion:
    """An archive expanded into a folder, members in archive order."""

    members: list[Member] = field(default_factory=list)

    @property
    def errors(self) -> list[dict[str, str]]:
        return [m.error for m in self.members if m.error is not None]


@dataclass(slots=True)
class Budget:
    """Bytes that nested archives of one input may still expand to, shared down the nesting."""

    remaining: int

    def limits(self, limits: Limits) -> Limits:
        return replace(limits, max_zip_total_bytes=min(limits.max_zip_total_bytes, max(0, self.remaining)))

    def spend(self, n: int) -> None:
        self.remaining -= n


def is_junk(member: str) -> bool:
    low = member.lower()
    base = posixpath.basename(low)
    return low.startswith("__macosx/") or base in _JUNK or base.startswith(("~$", "._")) or base.startswith(".")


def extract_any(path: Path, display: str, mode: CountMode, limits: Limits, depth: int = 0,
                budget: Budget | None = None) -> Result:
    """Extract a file, a folder or a zip portfolio; errors become entries, never exceptions."""
    if path.is_dir():
        return _folder(path, display, mode, limits)

    def run() -> Result:
        found = sniff(path, limits, display)
        if found.format == "zip":
            return _archive(path, display, mode, limits, depth, budget or Budget(limits.max_zip_total_bytes))
        return Result(documents=[extract_file(path, display, mode=mode, limits=limits, sniffed=found, depth=depth)])

    return guarded(display, run)


def extract_or_expand(path: Path, display: str, mode: CountMode, limits: Limits, depth: int, dest: Path,
                      budget: int) -> Result | Expansion:
    """What a sandbox child does with one file: read a document, or expand a zip portfolio into ``dest``."""

    def run() -> Result | Expansion:
        found = sniff(path, limits, display)
        if found.format == "zip":
            return expand_archive(path, display, Budget(budget).limits(limits), depth, dest)
        return Result(documents=[extract_file(path, display, mode=mode, limits=limits, sniffed=found, depth=depth)])

    return guarded(display, run)


def guarded(display: str, run: Callable[[], _T]) -> _T | Result:
    """Run an extraction step; a typed error (or an unreadable file) becomes the result's one error."""
    try:
        return run()
    except ExtractionError as err:
        return Result(errors=[err.to_dict(display)])
    except OSError as exc:
        code = ErrorCode.NOT_FOUND if isinstance(exc, FileNotFoundError) else ErrorCode.CORRUPT
        return Result(errors=[ExtractionError(code, f"cannot read: {exc.strerror or type(exc).__name__}")
                              .to_dict(display)])


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


def _archive(path: Path, display: str, mode: CountMode, limits: Limits, depth: int, budget: Budget) -> Result:
    """In-process: members are copied one at a time, read, and deleted before the next is copied."""
    out = Result()
    with tempfile.TemporaryDirectory(prefix="gc-") as tmp:
        for member in _expand(path, display, budget.limits(limits), depth, Path(tmp), budget):
            if member.error is not None:
                out.errors.append(member.error)
                continue
            assert member.file is not None
            target = Path(tmp) / member.file
            sub = extract_any(target, f"{display}/{member.name}", mode, limits, depth + 1, budget)
            set_group(sub, posixpath.dirname(member.name))
            out.extend(sub)
            target.unlink(missing_ok=True)
    return out


def expand_archive(path: Path, display: str, limits: Limits, depth: int, dest: Path) -> Expansion:
    """Copy every member into ``dest`` under generated names (the sandbox child's half of a portfolio)."""
    return Expansion(list(_expand(path, display, limits, depth, dest, Budget(limits.max_zip_total_bytes))))


def _expand(path: Path, display: str, limits: Limits, depth: int, dest: Path, budget: Budget) -> Iterator[Member]:
    """Pre-scan, then yield each member once its copy is written (so the caller may read and delete it)."""
    if depth >= limits.max_zip_depth:
        raise ExtractionError(ErrorCode.ZIP_BOMB, f"archives nested more than {limits.max_zip_depth} deep")
    with path.open("rb") as fh, zipscan.open_zip(fh, limits) as zf:
        members = _members(zf)
        budget.spend(sum(i.file_size for i in zf.infolist()))
        for n, info in enumerate(members):
            target = dest / f"m{n:05d}"
            try:
                if zipscan.is_encrypted(info):
                    raise ExtractionError(ErrorCode.ENCRYPTED, f"entry {info.filename!r} is password-protected")
                _copy_member(zf, info, target, limits)
            except ExtractionError as err:
                target.unlink(missing_ok=True)
                yield Member(info.filename, None, err.to_dict(f"{display}/{info.filename}"))
                continue
            yield Member(info.filename, target.name)


def _members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Files worth reading. Names were already vetted by zipscan.check_directory (unsafe paths, links)."""
    members = [i for i in zf.infolist() if not i.is_dir() and not is_junk(i.filename)]
    seen: set[str] = set()
    for info in members:
        key = posixpath.normpath(info.filename)
        if key in seen:
            raise ExtractionError(ErrorCode.UNSAFE_PATH, f"archive has two entries named {info.filename!r}")
        seen.add(key)
    return members


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limits: Limits) -> None:
    with target.open("wb") as out:
        for chunk in zipscan.iter_member(zf, info, limits.max_zip_entry_bytes):
            out.write(chunk)


def set_group(result: Result, group: str) -> None:
    for doc in result.documents:
        if doc.group is None:
            doc.group = group
