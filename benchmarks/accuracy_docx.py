"""Print the DOCX accuracy table: our body+tables words vs pandoc (same counting rule).

Usage: python benchmarks/accuracy_docx.py [CORPUS_DIR]
Flags: T tracked changes, B text boxes, F foot/endnotes (files with any flag are outside the ±1% bar).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from extractors import ExtractionError, count_words, extract_file  # noqa: E402


def flags(path: Path) -> str:
    with zipfile.ZipFile(path) as zf:
        xml = zf.read("word/document.xml") if "word/document.xml" in zf.namelist() else b""
    marks = (("T", b"<w:ins " in xml or b"<w:del " in xml), ("B", b"txbxContent" in xml),
             ("F", b"footnoteReference" in xml or b"endnoteReference" in xml))
    return "".join(k for k, on in marks if on)


def pandoc_words(path: Path) -> int | None:
    proc = subprocess.run(["pandoc", "-t", "plain", "--wrap=none", "--track-changes=accept", str(path)],
                          capture_output=True, timeout=300, check=False)
    return count_words(proc.stdout.decode("utf-8", "replace")) if proc.returncode == 0 else None


def main() -> None:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "corpus"
    print("| file | flags | ours body+tables | pandoc | deviation |\n|---|---|---|---|---|")
    for path in sorted((corpus / "docx").glob("*.docx")):
        try:
            parts = extract_file(path).words_by_part()
        except ExtractionError as err:
            print(f"| {path.name} | | {err.code} | | |")
            continue
        ours, theirs = parts["body"] + parts["tables"], pandoc_words(path)
        dev = f"{(ours - theirs) / theirs * 100:+.2f}%" if theirs else "n/a"
        print(f"| {path.name} | {flags(path)} | {ours} | {theirs if theirs is not None else 'fails'} | {dev} |")


if __name__ == "__main__":
    main()
