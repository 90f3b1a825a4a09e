"""Shared spaCy plumbing for the language checks: one cached pipeline, sentences
with offsets, and named lemma patterns.

Why a blank pipeline by default: gatecheck must run offline and start fast, and
the rules here are lexical (who says "I learned", who says "I observed"), so a
tokenizer, a sentencizer and a lookup lemmatizer (tables shipped in
``spacy-lookups-data``) are enough. A trained pipeline can be named in
``GATECHECK_SPACY_MODEL``; it is used only when it is already installed, so
nothing here ever downloads. ``pipeline_name()`` says which one ran, so a
report can state how its flags were produced.

Patterns are written in a tiny token language so every rule reads like the
phrase it catches and can be named in a finding::

    "i learn"           lemma i, lemma learn   ("I learned", "I learnt", "I learn")
    "=looking back"     exact lower-case words
    "^=looking back"    ... at the start of a sentence
    "i _{0,2} learn"    up to two tokens of any kind in between
    "my strength|weakness"  alternatives;  "have?"  an optional token
    "=could|should"     a leading "=" applies to every alternative of the token
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc

log = logging.getLogger(__name__)

MODEL_ENV = "GATECHECK_SPACY_MODEL"
_CACHE_MAX = 20_000  # parsed texts kept; several checks read the same blocks
_TEXT_MAX = 200_000  # characters handed to spaCy per block; longer blocks are cut (logged)

# Lookup-table lemmas that are plainly wrong for words these rules depend on.
_LEMMA_FIXES = {"develope": "develop", "realize": "realise"}


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence of one block: ``text == block_text[start:end]``."""

    text: str
    start: int
    end: int
    first_token: int  # token index in the block's Doc
    end_token: int  # exclusive


@dataclass(frozen=True, slots=True)
class Hit:
    """One named pattern matching one stretch of a Doc."""

    name: str
    start_char: int
    end_char: int
    start_token: int
    end_token: int


# --------------------------------------------------------------------------- pipeline


@Language.factory("gatecheck_lemma_norm", default_config={})
def _make_lemma_norm(nlp: Language, name: str) -> _LemmaNorm:
    return _LemmaNorm(nlp)


class _LemmaNorm:
    """Lower-case every lemma and repair lookup misses, so patterns are case-free.

    The lookup lemmatizer is case-sensitive ("Looking" stays "Looking") and has a
    few bad entries ("developed" -> "develope"); the rules must not depend on
    either, nor on whether a trained lemmatizer keeps "I" upper-case.
    """

    def __init__(self, nlp: Language) -> None:
        self._table: Any = None
        if "lemmatizer" in nlp.pipe_names:
            lookups = getattr(nlp.get_pipe("lemmatizer"), "lookups", None)
            if lookups is not None and lookups.has_table("lemma_lookup"):
                self._table = lookups.get_table("lemma_lookup")

    def __call__(self, doc: Doc) -> Doc:
        for token in doc:
            lemma = token.lemma_ or token.text
            if lemma == token.text and self._table is not None and token.text != token.lower_:
                lemma = self._table.get(token.lower_, token.lower_)
            lemma = lemma.lower()
            token.lemma_ = _LEMMA_FIXES.get(lemma, lemma)
        return doc


def _blank() -> tuple[Language, str]:
    """Blank English with sentence splitting and lookup lemmas: no model, no network."""
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    name = "blank:en+sentencizer"
    try:
        nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
        nlp.initialize()  # loads the lookup tables from the installed spacy-lookups-data
        name += "+lemmatizer(lookup)"
    except (ValueError, OSError, ImportError) as exc:  # tables missing: lemmas fall back to lower-case text
        log.warning("spaCy lookup lemmatizer unavailable (%s); lemmas are lower-case words", exc)
        if "lemmatizer" in nlp.pipe_names:
            nlp.remove_pipe("lemmatizer")
        nlp.initialize()
        name += "+lowercase-lemmas"
    return nlp, name


def _installed(model: str) -> bool:
    if Path(model).is_dir():
        return True
    try:
        return importlib.util.find_spec(model) is not None
    except (ImportError, ValueError):
        return False


def _trained(model: str) -> tuple[Language, str]:
    nlp = spacy.load(model, exclude=["ner"])  # entities are never used; skip their cost
    if not _has_sents(nlp):
        nlp.add_pipe("sentencizer", first=True)
    meta = nlp.meta
    return nlp, f"{meta.get('lang', 'en')}_{meta.get('name', model)}-{meta.get('version', '?')}"


def _has_sents(nlp: Language) -> bool:
    return any(n in nlp.pipe_names for n in ("parser", "senter", "sentencizer"))


@cache
def _pipeline() -> tuple[Language, str]:
    model = os.environ.get(MODEL_ENV, "").strip()
    why = "not installed"
    if model and _installed(model):
        try:
            nlp, name = _trained(model)
            nlp.add_pipe("gatecheck_lemma_norm", last=True)
            return nlp, name
        except (OSError, ValueError, ImportError, KeyError) as exc:
            log.warning("%s=%s could not be loaded (%s); using the blank pipeline", MODEL_ENV, model, exc)
            why = f"could not be loaded: {type(exc).__name__}"
    nlp, name = _blank()
    if model:
        name += f" ({MODEL_ENV}={model} {why})"
    nlp.add_pipe("gatecheck_lemma_norm", last=True)
    return nlp, name


def nlp() -> Language:
    """The process-wide pipeline (built once)."""
    return _pipeline()[0]


def pipeline_name() -> str:
    """Which pipeline produced the analyses, e.g. ``blank:en+sentencizer+lemmatizer(lookup)``."""
    return _pipeline()[1]


def reset() -> None:
    """Forget the pipeline and parses (tests switch ``GATECHECK_SPACY_MODEL``)."""
    _pipeline.cache_clear()
    _PARSES.clear()
    _COMPILED.clear()


# --------------------------------------------------------------------------- parsing

_PARSES: OrderedDict[str, Doc] = OrderedDict()
_PARSES_LOCK = threading.Lock()  # checks may run in worker threads; spaCy itself is only read
_COMPILED: dict[int, tuple[Matcher, PhraseMatcher]] = {}  # PatternSet id -> matchers on the current vocab


def _key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def parse(texts: Sequence[str], batch_size: int = 256) -> list[Doc]:
    """Docs for ``texts``, parsing only those not seen recently, in one ``nlp.pipe`` batch.

    Several checks read the same blocks (reflective accounts, employer
    contributions and attribution all walk the evidence), so a parse is cached by
    text: the second check costs a dictionary look-up.
    """
    pipe = nlp()
    keys = [_key(t) for t in texts]
    with _PARSES_LOCK:
        known = {k: _PARSES[k] for k in keys if k in _PARSES}
    todo = {k: t[:_TEXT_MAX] for k, t in zip(keys, texts, strict=True) if k not in known}
    if any(len(t) > _TEXT_MAX for t in texts):
        log.warning("a block longer than %d characters was cut for language analysis", _TEXT_MAX)
    known.update(zip(todo, pipe.pipe(todo.values(), batch_size=batch_size), strict=True))
    with _PARSES_LOCK:
        for k in keys:
            _PARSES[k] = known[k]
            _PARSES.move_to_end(k)
        while len(_PARSES) > _CACHE_MAX:
            _PARSES.popitem(last=False)
    return [known[k] for k in keys]


def sentences(doc: Doc) -> list[Sentence]:
    """Sentences of one parsed block with their character offsets in the block text.

    Surrounding whitespace is trimmed (a double space after a full stop becomes a
    whitespace token that spaCy puts at the start of the next sentence), so the
    quoted sentence in a finding is exactly ``block_text[start:end]``.
    """
    out = []
    for s in doc.sents:
        text = s.text
        stripped = text.strip()
        if not stripped:
            continue
        start = s.start_char + (len(text) - len(text.lstrip()))
        out.append(Sentence(stripped, start, start + len(stripped), s.start, s.end))
    return out


# --------------------------------------------------------------------------- patterns

TokenPattern = list[dict[str, Any]]  # spaCy Matcher token dicts
Spec = str | TokenPattern  # a pattern in the little language above, or raw token dicts

_REPEAT = re.compile(r"^_(\{\d*,\d*\}|[?*+])?$")


def compile_pattern(spec: str) -> list[dict[str, Any]]:
    """Turn ``"^=looking back"`` / ``"i _{0,2} learn|learnt"`` into Matcher token dicts."""
    tokens: list[dict[str, Any]] = []
    for raw in spec.split():
        m = _REPEAT.match(raw)
        if m:
            tokens.append({"OP": m.group(1) or "{1}"} if m.group(1) else {})
            continue
        tokens.append(_token(raw))
    if not tokens:
        raise ValueError(f"empty pattern {spec!r}")
    return tokens


def _token(raw: str) -> dict[str, Any]:
    tok: dict[str, Any] = {}
    if raw.startswith("^"):
        tok["IS_SENT_START"] = True
        raw = raw[1:]
    optional = raw.endswith("?") and len(raw) > 1
    if optional:
        raw = raw[:-1]
    attr = "LEMMA"
    if raw.startswith("="):
        attr, raw = "LOWER", raw[1:]
    words = [w.lower().lstrip("=") for w in raw.split("|") if w.strip("=")]
    if not words:
        raise ValueError(f"empty token in pattern: {raw!r}")
    tok[attr] = words[0] if len(words) == 1 else {"IN": words}
    if optional:
        tok["OP"] = "?"
    return tok


class PatternSet:
    """Named token patterns (and optional phrase lists) run once per Doc.

    ``patterns`` maps a name to pattern specs (see the module docstring) or to
    raw spaCy token-dict lists; ``phrases`` maps a name to literal phrases
    matched on lower-case text. Names are what findings report, so an assessor
    reads "if_again" next to the sentence it fired on.
    """

    def __init__(
        self,
        patterns: Mapping[str, Sequence[Spec]],
        phrases: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.patterns = {k: list(v) for k, v in patterns.items()}
        self.phrases = {k: list(v) for k, v in (phrases or {}).items()}
        compiled = []
        for name, specs in self.patterns.items():  # fail at import time, not mid-check
            for spec in specs:
                if not spec:
                    raise ValueError(f"empty pattern for {name}")
                compiled.append(compile_pattern(spec) if isinstance(spec, str) else spec)
        self._anchors = _anchors(compiled, self.phrases.values())

    @property
    def names(self) -> list[str]:
        return sorted(set(self.patterns) | set(self.phrases))

    def _compiled(self) -> tuple[Matcher, PhraseMatcher]:
        key = id(self)
        if key not in _COMPILED:
            vocab_nlp = nlp()
            vocab = vocab_nlp.vocab
            matcher = Matcher(vocab)
            for name, specs in self.patterns.items():
                matcher.add(name, [compile_pattern(s) if isinstance(s, str) else s for s in specs])
            phrase = PhraseMatcher(vocab, attr="LOWER")
            for name, items in self.phrases.items():
                phrase.add(name, [vocab_nlp.make_doc(i) for i in items])
            _COMPILED[key] = (matcher, phrase)
        return _COMPILED[key]

    def could_match(self, doc: Doc) -> bool:
        """False when no token carries a word every match needs: the Matcher is skipped (most blocks)."""
        if self._anchors is None:
            return True
        lemmas, lowers = self._anchors
        return any(t.lemma_ in lemmas or t.lower_ in lowers for t in doc)

    def hits(self, doc: Doc) -> list[Hit]:
        """Every match in ``doc``, in text order (overlaps kept: names are deduplicated later)."""
        if not self.could_match(doc):
            return []
        matcher, phrase = self._compiled()
        strings = doc.vocab.strings
        found = [*matcher(doc), *phrase(doc)]
        out = [Hit(strings[mid], doc[s].idx, doc[e - 1].idx + len(doc[e - 1]), s, e) for mid, s, e in found]
        return sorted(out, key=lambda h: (h.start_char, h.name))

    def names_in(self, doc: Doc) -> list[str]:
        """Pattern names that fire in ``doc``, in order of first appearance."""
        seen: dict[str, None] = {}
        for h in self.hits(doc):
            seen.setdefault(h.name, None)
        return list(seen)


def _required_words(tokens: list[dict[str, Any]]) -> tuple[str, set[str]] | None:
    """The attribute and words of the first token a match cannot do without, if it names words."""
    for tok in tokens:
        if tok.get("OP") in {"?", "*", "!"} or str(tok.get("OP", "")).startswith("{0"):
            continue
        for attr in ("LEMMA", "LOWER"):
            value = tok.get(attr)
            if isinstance(value, str):
                return attr, {value}
            if isinstance(value, dict) and "IN" in value:
                return attr, set(value["IN"])
    return None


def _anchors(patterns: Iterable[list[dict[str, Any]]], phrases: Iterable[Iterable[str]]) -> tuple[set[str],
                                                                                                   set[str]] | None:
    """Words of which every match contains at least one; None when some pattern names no required word."""
    lemmas: set[str] = set()
    lowers: set[str] = {p.split()[0].split("-")[0].lower() for items in phrases for p in items if p.split()}
    for tokens in patterns:
        req = _required_words(tokens)
        if req is None:
            return None
        (lemmas if req[0] == "LEMMA" else lowers).update(req[1])
    return lemmas, lowers


def names_by_sentence(hits: Iterable[Hit], sents: Sequence[Sentence]) -> dict[int, list[str]]:
    """Index of sentence -> pattern names whose match starts in it."""
    out: dict[int, dict[str, None]] = {}
    for h in hits:
        for i, s in enumerate(sents):
            if s.first_token <= h.start_token < s.end_token:
                out.setdefault(i, {}).setdefault(h.name, None)
                break
    return {i: list(v) for i, v in out.items()}
