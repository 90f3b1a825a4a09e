"""Realistic EPA-style reports for check tests, written from real corpus prose.

Body text is taken, in order, from a real third-party document in the corpus
(poi_stress016_privacy_notice.docx, ~2,950 words of plain report-like prose),
so word counts, sentence shapes and punctuation are those of real writing.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from extractors import count_words, extract_file
from extractors.model import BlockKind
from tests.conftest import corpus_file
from tests.docgen import Docx, p, table

THEMES = ["Plan", "Design", "Build", "Test", "Deploy", "Maintain"]


APPRENTICE = ("AMI-refresh-project", "hack-3975", "hack-HW98", "devops-presentation")


@cache
def prose(source: str = "notice") -> list[str]:
    """Real paragraphs: a privacy notice ("notice") or a real apprentice's own evidence write-ups ("apprentice")."""
    if source == "apprentice":
        paths = [corpus_file(f"epa/benfielding74_evidence_{n}.md") for n in APPRENTICE]
    else:
        paths = [corpus_file("docx/poi_stress016_privacy_notice.docx")]
    return [b.text for path in paths for b in extract_file(path).blocks
            if b.kind is BlockKind.PARAGRAPH and b.words >= 12 and "http" not in b.text]


def take(words: int, source: str = "notice") -> list[str]:
    """Paragraphs of real prose holding exactly ``words`` counted words (the last one trimmed)."""
    out: list[str] = []
    left = words
    for para in prose(source) * 4:
        if left <= 0:
            break
        chunk: list[str] = []
        for token in para.split():
            n = count_words(token)
            if n > left:
                break
            chunk.append(token)
            left -= n
        out.append(" ".join(chunk))
    return out


def report(path: Path, body_words: int, *, themes: list[str] = THEMES, mapping: list[list[str]] | None = None,
           appendix_words: int = 150, mapping_in_appendix: bool = True, source: str = "notice",
           starr: bool = False) -> Path:
    """Title, intro, one Heading 2 per theme (optionally S.T.A.R.R. Heading 3s in the first theme),
    an appendix, a KSB mapping and references."""
    doc = Docx().add(p("Service desk automation project", style="Title"))
    paras = take(body_words - (5 if starr else 0), source)
    doc.add(p("Introduction", style="Heading1"))
    chunks = _split(paras, len(themes) + 1)
    doc.add(*[p(t) for t in chunks[0]])
    for n, (theme, chunk) in enumerate(zip(themes, chunks[1:], strict=True)):
        doc.add(p(theme, style="Heading2"))
        if starr and n == 0:
            for element, para in zip(("Situation", "Task", "Action", "Result", "Reflection"), _split(chunk, 5),
                                     strict=True):
                doc.add(p(element, style="Heading3"), *[p(t) for t in para])
        else:
            doc.add(*[p(t) for t in chunk])
    doc.add(p("Appendix A: Screenshots and logs", style="Heading1"), *[p(t) for t in take(appendix_words, source)])
    rows = mapping if mapping is not None else [["KSB", "Where evidenced"], ["K3", "Plan"], ["S2", "Design"]]
    title = "Appendix B: KSB mapping" if mapping_in_appendix else "KSB mapping"
    doc.add(p(title, style="Heading1"), table(rows))
    doc.add(p("References", style="Heading1"), p("ITIL Foundation (2019) ITIL 4 edition. Axelos."))
    return doc.save(path)


def _split(paras: list[str], n: int) -> list[list[str]]:
    """Split paragraphs into n runs with roughly equal word counts."""
    total = sum(len(x.split()) for x in paras)
    out: list[list[str]] = [[] for _ in range(n)]
    seen = 0
    for para in paras:
        idx = min(n - 1, seen * n // max(total, 1))
        out[idx].append(para)
        seen += len(para.split())
    return [chunk or ["This stage is described in the sections above."] for chunk in out]
