"""Coverage-guided fuzzing (atheris / libFuzzer) of our extraction wrappers, one target per run.

    .venv/bin/python -m tests.fuzz.atheris_harness TARGET [libFuzzer flags ...]
    .venv/bin/python -m tests.fuzz.atheris_harness pdf -max_total_time=600 -artifact_prefix=/tmp/crashes/

TARGET is pdf, docx, pptx, zip or media (tests/fuzz/targets.py). The property is the Hypothesis tests' one:
any input ends in a result or an ``ExtractionError`` with a mapped code; anything else is raised as a
``Finding``, which libFuzzer records as a crash (``crash-<sha1>`` under ``-artifact_prefix``). The time
budget and RSS cap are libFuzzer's own ``-timeout`` and ``-rss_limit_mb`` (defaults: GATECHECK_FUZZ_TIME_BUDGET,
GATECHECK_FUZZ_RSS_MB), which also catch hangs in C code and native crashes (deadly signal).

Instrumentation is selective: only our own package and the pure-Python parsers it drives (``extractors``,
``pypdf``, ``olefile``; ``GATECHECK_ATHERIS_INSTRUMENT`` narrows it) go through
``atheris.instrument_imports(include=...)``, never ``instrument_all``. Every extractor is imported inside that
block (they load their parsers lazily, which would otherwise escape it). lxml, pypdfium2 and PyAV are
C extensions that atheris cannot instrument (they are only libFuzzer-instrumented when built with
clang's -fsanitize=fuzzer, which their wheels are not), so coverage feedback stops at our calls into them.
The seed corpus (real corpus files plus generated minimal files) and a structure-aware custom mutator
(zip-member, XML-tag and PDF-token edits, half of the time; libFuzzer's byte mutator otherwise) make up for it.

Corpus: pass a directory (libFuzzer style) to keep the evolved corpus between campaigns; it is seeded when
empty. Without one, a seeded ``gc-atheris-*`` directory is made under $TMPDIR and left there (libFuzzer exits
the process without running Python's atexit handlers), and its path is printed.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

import atheris

#: Packages given coverage instrumentation. Instrumenting pypdf costs ~8 s of start-up, so the short CI runs
#: may narrow this (GATECHECK_ATHERIS_INSTRUMENT=extractors); campaigns keep the default.
INSTRUMENT = os.environ.get("GATECHECK_ATHERIS_INSTRUMENT", "extractors,pypdf,olefile").split(",")

with atheris.instrument_imports(include=[name.strip() for name in INSTRUMENT if name.strip()]):
    from extractors import base
    from tests.fuzz import mutators, targets

    base.registered()  # extractors import their parsers lazily: load them all here, inside the instrumented block

_TMP = Path(tempfile.mkdtemp(prefix="gc-atheris-"))
_TARGET = ""
_SUFFIX = ""


def test_one_input(data: bytes) -> None:
    """One libFuzzer input: extract it as the target's kind of file; a ``Finding`` is a crash."""
    path = _TMP / f"input{_SUFFIX}"
    path.write_bytes(data)
    try:
        targets.extract_outcome(_TARGET, path, f"fuzz{_SUFFIX}")
    finally:
        path.unlink(missing_ok=True)


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """Half structure-aware (re-zipped members, XML tags, PDF tokens), half libFuzzer's own byte mutator."""
    chooser = mutators.RandomChooser(seed)
    if chooser.below(2):
        return atheris.Mutate(data, max_size)
    return mutators.mutate(data, chooser, targets.all_seed_bytes())[:max_size]


def _seed(folder: Path, target: str) -> None:
    """Put the target's seeds into an empty corpus directory (libFuzzer adds interesting inputs to it)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not any(folder.iterdir()):
        for n, (_, data) in enumerate(targets.seeds(target)):
            (folder / f"seed{n:02d}").write_bytes(data)


def main(argv: list[str]) -> None:
    global _TARGET, _SUFFIX
    if len(argv) < 2 or argv[1] not in targets.TARGETS:
        sys.exit(f"usage: {argv[0]} {{{','.join(targets.TARGETS)}}} [libFuzzer flags]")
    _TARGET, _SUFFIX = argv[1], targets.TARGETS[argv[1]].suffix
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # as the sandbox child: repairs are not failures
    warnings.simplefilter("ignore")
    flags = argv[2:]
    defaults = {"-timeout": int(targets.TIME_BUDGET_S), "-rss_limit_mb": targets.RSS_CAP_MB, "-max_len": 1 << 20}
    for flag, value in defaults.items():
        if not any(f.startswith(flag + "=") for f in flags):
            flags.append(f"{flag}={value}")
    dirs = [f for f in flags if not f.startswith("-")]
    if not dirs:
        flags.append(str(_TMP / "corpus"))
        print(f"corpus and scratch files: {_TMP}", file=sys.stderr)
    for folder in dirs or [str(_TMP / "corpus")]:
        if not Path(folder).is_file():  # a file argument means "replay this input", as in libFuzzer
            _seed(Path(folder), _TARGET)
    atheris.Setup([argv[0], *flags], test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
