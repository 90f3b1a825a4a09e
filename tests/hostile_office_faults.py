"""TEST-ONLY: a *naive* zip reader, imported inside sandbox children to show what the sandbox bounds.

Our extractors never read a zip without the pre-scan and never use ``zipfile.Path``; this module
stands in for a library that would. ``SandboxPool(setup="tests.hostile_office_faults")`` makes each
child replace the plain-text extractor with one that obeys a first line ``NAIVE <how> <zip path>``:

- ``read``: ``zf.read()`` every member with plain ``zipfile`` (a forged ``compress_size`` makes it ask
  the file object for 2 GiB at once: cpython #151307);
- ``walk``: walk the archive with ``zipfile.Path`` (loops for ever on ``//`` names before CPython
  3.11.10 / 3.12.5: CVE-2024-8088).

Other text is read as usual. Nothing imports this module outside tests.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import ClassVar

from extractors import base
from extractors.base import Context
from extractors.model import Document
from extractors.textfile import TextExtractor

MAGIC = "NAIVE "


def _read(path: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            zf.read(name)


def _walk(path: Path) -> None:
    def visit(node: zipfile.Path) -> None:
        for child in node.iterdir():
            if child.is_dir():
                visit(child)

    with zipfile.ZipFile(path) as zf:
        visit(zipfile.Path(zf))


NAIVE = {"read": _read, "walk": _walk}


class NaiveZipTextExtractor:
    name: ClassVar[str] = "naive-zip-text"
    formats: ClassVar[frozenset[str]] = frozenset({"text"})

    def extract(self, ctx: Context, doc: Document) -> None:
        first = ctx.path.read_text(encoding="utf-8", errors="replace").partition("\n")[0]
        if first.startswith(MAGIC):
            how, _, target = first.removeprefix(MAGIC).partition(" ")
            NAIVE[how](Path(target))
        TextExtractor().extract(ctx, doc)


base.register(NaiveZipTextExtractor())
