"""The ``gatecheck`` command line.

Contract (parsed by other tools; keep it stable): ``gatecheck extract PATH...
--format json|text``. JSON follows ``schemas/extract.schema.json``. Exit 0 when
every file was extracted, 1 when any file has an error, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TextIO

from extractors import CountMode, Result, iter_extract, zipscan
from extractors.limits import Limits

from . import textreport

EXTRACT_SCHEMA = "gatecheck.extract/1"
SANDBOX_HELP = ("parse each file in a child process with a time and memory cap "
                "(GATECHECK_MAX_PARSE_SECONDS, GATECHECK_MAX_PARSE_MEMORY_BYTES); for untrusted files")


def sample_path() -> Path:
    """The embedded default input: a small EPA-style project report."""
    return Path(str(resources.files("gatecheck") / "samples" / "sample_project_report.docx"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatecheck", description="Pre-check EPA gateway submissions.")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("extract", help="extract documents into the located document model")
    ex.add_argument("paths", nargs="*", metavar="PATH", help="files, folders or zip portfolios")
    ex.add_argument("--sample", action="store_true", help="run on the embedded sample report")
    ex.add_argument("--format", choices=("json", "text"), default="text")
    ex.add_argument(
        "--count-mode",
        choices=[m.value for m in CountMode],
        default=CountMode.WORD.value,
        help="word: Microsoft Word rules (default); libreoffice: dashes also separate words",
    )
    ex.add_argument("--blocks", action="store_true", help="include every located block in JSON output")
    ex.add_argument("--no-progress", action="store_true", help="never draw a progress bar")
    ex.add_argument("--sandbox", action="store_true", help=SANDBOX_HELP)
    ck = sub.add_parser("check", help="check a submission against a standard's gateway rules")
    ck.add_argument("paths", nargs="*", metavar="PATH", help="files, folders or zip portfolios of one submission")
    ck.add_argument("--standard", required=True, help="standard code (ST0505) or profile id")
    ck.add_argument("--epao", help="EPAO name, when a standard has several profiles")
    ck.add_argument("--method", required=True, help="assessment method id, e.g. AM1")
    ck.add_argument("--role", action="append", default=[], metavar="PATH=ROLE", help="override a detected role")
    ck.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="gateway metadata")
    ck.add_argument("--format", choices=("json", "text", "html"), default="text")
    ck.add_argument("--sample", action="store_true", help="add the embedded sample report")
    ck.add_argument("--sandbox", action="store_true", help=SANDBOX_HELP)
    st = sub.add_parser("standards", help="list standards profiles and their methods")
    st.add_argument("--format", choices=("json", "text"), default="text")
    sv = sub.add_parser("serve", help="run the HTTP API and one worker locally (data in $GATECHECK_DATA_DIR)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # repairs are reported as warnings, not log noise
    zipscan.selftest()  # refuse to run if the zip pre-scan stopped catching an overlap bomb (CVE-2024-0450)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "extract":
        return _extract(parser, args, sys.stdout, sys.stderr)
    if args.command in ("check", "standards"):
        from . import checkcli  # imports spaCy/pydantic only for these commands

        if args.command == "check":
            return checkcli.check(args, sys.stdout, sys.stderr)
        return checkcli.standards(args, sys.stdout)
    if args.command == "serve":
        from . import serve  # imports FastAPI/Celery only for this command

        return serve.main(args)
    parser.error(f"unknown command {args.command}")
    return 2


def _extract(parser: argparse.ArgumentParser, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    paths: list[str] = list(args.paths)
    if args.sample:
        paths.append(str(sample_path()))
    if not paths:
        parser.print_usage(err)
        err.write("gatecheck extract: error: give at least one PATH (or --sample)\n")
        return 2
    mode = CountMode(args.count_mode)
    show_progress = not args.no_progress and err.isatty() and len(paths) > 1
    result = Result()
    results = iter_extract(paths, mode=mode, limits=Limits.from_env(), sandbox=args.sandbox)
    for n, (_, res) in enumerate(results, start=1):
        result.extend(res)
        if show_progress:
            textreport.progress(err, n, len(paths))
    if show_progress:
        err.write("\n")
    if args.format == "json":
        json.dump(to_json(result, blocks=args.blocks), out, ensure_ascii=False, indent=2)
        out.write("\n")
    else:
        textreport.render(result, out)
    return 1 if result.errors else 0


def to_json(result: Result, *, blocks: bool = False) -> dict[str, object]:
    return {
        "schema": EXTRACT_SCHEMA,
        "documents": [d.to_dict(include_blocks=blocks) for d in result.documents],
        "errors": result.errors,
    }


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
