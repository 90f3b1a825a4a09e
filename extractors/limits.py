"""Resource limits applied before and while parsing untrusted files.

Defaults are generous for real submissions (the longest corpus docx has a
12.6 MB document.xml) and far below what a bomb needs. Override with
environment variables ``GATECHECK_<NAME>`` (e.g. GATECHECK_MAX_FILE_BYTES).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    max_file_bytes: int = 2048 * MiB  # media can be large; documents are far smaller
    max_document_bytes: int = 200 * MiB  # docx/pptx/pdf container on disk
    max_zip_entries: int = 10_000
    max_zip_total_bytes: int = 1024 * MiB  # sum of uncompressed sizes
    max_zip_entry_bytes: int = 512 * MiB  # one uncompressed member
    max_xml_part_bytes: int = 256 * MiB  # one XML part fed to lxml
    # Real OOXML parts in the corpus compress at most 38:1 (a 12.6 MB document.xml).
    max_compression_ratio: int = 100  # only enforced on members above ratio_floor_bytes
    ratio_floor_bytes: int = 1 * MiB
    max_zip_depth: int = 2  # zip inside zip inside a portfolio
    max_pdf_pages: int = 5_000
    media_scan_packets: int = 200_000  # bounded packet scan when the header has no duration
    # Sandbox (extractors.sandbox): each parse runs in a child process with these caps.
    max_parse_seconds: int = 60  # wall clock per input; the hostile-file bar is 30 s
    max_parse_memory_bytes: int = 1024 * MiB  # RLIMIT_AS of the child (address space, not RSS)
    sandbox_recycle_after: int = 50  # replace a child after this many inputs (slow leaks in lxml/pdfium/FFmpeg)

    @classmethod
    def from_env(cls) -> Limits:
        kwargs: dict[str, int] = {}
        for f in fields(cls):
            raw = os.environ.get(f"GATECHECK_{f.name.upper()}")
            if raw is not None and raw.strip().isdigit():
                kwargs[f.name] = int(raw)
        return cls(**kwargs)


DEFAULT_LIMITS = Limits()
