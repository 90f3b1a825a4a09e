"""Precision/recall and throughput of the language detectors.

Accuracy comes from the labelled sets in tests/data/detectors (real corpus
sentences plus hand-written ones; provenance on every line): reflective vs not,
opinion vs observation, sensitive-data kind per line, and exact I/we counts.
Throughput is measured on the text of real corpus documents (extraction is done
once, outside the timing): spaCy parsing with the parse cache cleared, then each
sentence rule on the parsed blocks, the sensitive-data scan, and the three
language checks end to end. Medians over ``--rounds``.

    python benchmarks/bench_detectors.py [--rounds 5] [--formats epa,docx] [--json out.json]

The corpus is ../shared/corpus from the repository root, or $GATECHECK_CORPUS (or --corpus).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from timing import median_seconds  # noqa: E402  (benchmarks/ is the script directory)

from extractors import ExtractionError, extract_file  # noqa: E402
from extractors.model import Document  # noqa: E402
from tests.checkkit import ctx, run  # noqa: E402
from validators import nlp as lang  # noqa: E402
from validators.checks.attribution import count, count_text  # noqa: E402
from validators.checks.reflective import (  # noqa: E402
    _hits,
    _names,
    classify_sentences,
    classify_text,
    reflective_names,
)
from validators.checks.sensitive import KINDS, scan  # noqa: E402
from validators.profile import Role  # noqa: E402

DATA = REPO / "tests" / "data" / "detectors"
SUFFIX = {"epa": ".md", "docx": ".docx", "pptx": ".pptx", "pdf": ".pdf"}


def rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines() if line]


def pr(items: Iterable[dict[str, Any]], positive: str, predict: Callable[[str], bool]) -> dict[str, float | int]:
    """Precision, recall and the confusion counts for one positive label."""
    tp = fp = fn = tn = 0
    for r in items:
        pred, gold = predict(r["text"]), r["label"] == positive
        tp, fp, fn, tn = tp + (pred and gold), fp + (pred and not gold), fn + (gold and not pred), tn + (
            not pred and not gold)
    return {"precision": round(tp / (tp + fp), 3) if tp + fp else 1.0,
            "recall": round(tp / (tp + fn), 3) if tp + fn else 1.0, "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def accuracy() -> dict[str, dict[str, float | int]]:
    refl = rows("reflective")

    def is_refl(text: str) -> bool:
        return bool(reflective_names(text))

    out = {
        "reflective (all)": pr(refl, "reflective", is_refl),
        "reflective (real corpus lines)": pr([r for r in refl if r["source"].startswith("corpus:")], "reflective",
                                             is_refl),
        "reflective (hand-written holdout)": pr([r for r in refl if r["split"] == "holdout"], "reflective", is_refl),
        "opinion": pr(rows("opinion"), "opinion", lambda t: classify_text(t).label == "opinion"),
    }
    sens = rows("sensitive")
    for kind in KINDS:
        out[f"sensitive: {kind}"] = pr(sens, kind, _finds(kind))
    out["sensitive (any kind)"] = _any_sensitive(sens)
    att = rows("attribution")
    exact = sum(count_text(r["text"]) == r["counts"] for r in att)
    out["attribution exact I/we counts"] = {"correct": exact, "lines": len(att)}
    return out


def _finds(kind: str) -> Callable[[str], bool]:
    return lambda text: any(m.kind == kind for m in scan(text))


def _any_sensitive(sens: list[dict[str, Any]]) -> dict[str, float | int]:
    relabelled = [{"text": r["text"], "label": "yes" if r["label"] != "none" else "no"} for r in sens]
    return pr(relabelled, "yes", lambda t: bool(scan(t)))


def corpus_docs(corpus: Path, formats: list[str]) -> list[Document]:
    docs = []
    for fmt in formats:
        for path in sorted((corpus / fmt).glob(f"*{SUFFIX[fmt]}")):
            try:
                docs.append(extract_file(path, path.name))
            except ExtractionError:
                continue
    return docs


def throughput(docs: list[Document], rounds: int) -> dict[str, Any]:
    texts = [b.text for d in docs for b in d.blocks if b.text.strip()]
    parsed = lang.parse(texts)
    n_sent = sum(len(lang.sentences(d)) for d in parsed)

    def cold_parse() -> None:
        lang._PARSES.clear()
        lang.parse(texts)

    def reflective_rule() -> None:
        for d in parsed:
            hits = _hits(d)
            for s in lang.sentences(d):
                _names(hits, s.first_token, s.end_token)

    def opinion_rule() -> None:
        for d in parsed:
            classify_sentences(d, lang.sentences(d))

    def pronouns() -> None:
        for d in parsed:
            count(d)

    def sensitive() -> None:
        for t in texts:
            scan(t)

    def checks() -> None:
        lang._PARSES.clear()
        pairs = [(d, Role.EVIDENCE) for d in docs]
        for cid in ("reflective_accounts", "employer_contributions", "sensitive_data"):
            run(cid, ctx(cid, pairs, {}, severity="warn"))
        run("attribution", ctx("attribution", [(d, Role.REPORT) for d in docs], {}, severity="warn"))

    out: dict[str, Any] = {"documents": len(docs), "blocks": len(texts), "sentences": n_sent,
                           "words": sum(len(t.split()) for t in texts)}
    for name, fn in (("spaCy parse, cache cleared", cold_parse), ("reflective rule", reflective_rule),
                     ("opinion/observation rule", opinion_rule), ("I/we counting", pronouns),
                     ("sensitive-data scan", sensitive), ("4 checks end to end, cache cleared", checks)):
        secs = median_seconds(fn, rounds)
        out[name] = {"seconds": round(secs, 4), "sentences_per_s": round(n_sent / secs) if secs else None}
    lang.parse(texts)  # leave the cache warm for anyone calling after us
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--formats", default="epa,docx", help="corpus folders to read: epa,docx,pptx,pdf")
    ap.add_argument("--corpus", type=Path, default=Path(os.environ.get("GATECHECK_CORPUS", REPO.parent / "shared" /
                                                                       "corpus")))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    name = lang.pipeline_name()
    load_s = time.perf_counter() - start
    print(f"pipeline: {name} (built in {load_s:.2f} s)\n")
    acc = accuracy()
    print("| detector | precision | recall | tp | fp | fn | tn |\n| --- | --- | --- | --- | --- | --- | --- |")
    for det, m in acc.items():
        if "precision" in m:
            counts = " | ".join(str(m[k]) for k in ("tp", "fp", "fn", "tn"))
            print(f"| {det} | {m['precision']:.3f} | {m['recall']:.3f} | {counts} |")
    att = acc["attribution exact I/we counts"]
    print(f"\nattribution: exact I/we counts on {att['correct']}/{att['lines']} labelled lines\n")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if not args.corpus.is_dir():
        print(f"corpus {args.corpus} not found: throughput skipped")
        thr: dict[str, Any] = {}
    else:
        thr = throughput(corpus_docs(args.corpus, formats), args.rounds)
        print(f"throughput on {thr['documents']} corpus documents ({', '.join(formats)}): {thr['blocks']} blocks, "
              f"{thr['sentences']} sentences, {thr['words']} words; median of {args.rounds} rounds\n")
        print("| stage | seconds | sentences/s |\n| --- | --- | --- |")
        for stage, m in thr.items():
            if isinstance(m, dict):
                print(f"| {stage} | {m['seconds']:.3f} | {m['sentences_per_s']:,} |")
    if args.json:
        args.json.write_text(json.dumps({"pipeline": name, "accuracy": acc, "throughput": thr}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
