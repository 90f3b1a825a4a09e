"""``gatecheck check`` and ``gatecheck standards``.

Exit codes: 0 no check failed, 1 any check failed, 2 usage or input errors
(unknown standard or method, a path that does not exist, a bad --role/--meta).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TextIO

from extractors import Limits
from validators import api, profile
from validators.profile import Role

from . import checkreport
from .cli import sample_path


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} must look like KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _usage(err: TextIO, message: str) -> int:
    err.write(f"gatecheck check: error: {message}\n")
    return 2


def check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    paths = list(args.paths) + ([str(sample_path())] if args.sample else [])
    if not paths:
        return _usage(err, "give at least one PATH (or --sample)")
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        return _usage(err, f"no such file or folder: {', '.join(missing)}")
    found = profile.find(args.standard, args.epao)
    if len(found) != 1:
        options = ", ".join(f"{p.id} ({p.epao})" for p in profile.all_profiles().values()
                            if p.standard.code.lower() == args.standard.lower()) or "see `gatecheck standards`"
        why = "several profiles match" if found else "no profile matches"
        return _usage(err, f"{why} {args.standard!r}: {options}")
    prof = found[0]
    method = next((m for m in prof.methods if m.lower() == args.method.lower()), None)
    if method is None:
        return _usage(err, f"{prof.id} has no method {args.method!r}; methods: {', '.join(prof.methods)}")
    try:
        roles = {k: Role(v) for k, v in _pairs(args.role, "--role").items()}
        meta = _pairs(args.meta, "--meta")
    except ValueError as exc:
        return _usage(err, str(exc))
    report = api.check_paths(paths, prof, method, roles=roles, meta=meta, limits=Limits.from_env(),
                             sandbox=args.sandbox).to_dict()
    if args.format == "json":
        json.dump(report, out, ensure_ascii=False, indent=2)
        out.write("\n")
    elif args.format == "html":
        out.write(checkreport.page(report))
    else:
        checkreport.text(report, out)
    return 1 if any(c["outcome"] == "fail" for c in report["checks"]) else 0


def standards(args: argparse.Namespace, out: TextIO) -> int:
    listing = [
        {"profile": p.id, "code": p.standard.code, "title": p.standard.title, "epao": p.epao,
         "methods": {mid: {"name": m.name, "checks": list(m.checks), "ksbs": len(m.ksbs)}
                     for mid, m in p.methods.items()}}
        for p in sorted(profile.all_profiles().values(), key=lambda p: (p.standard.code, p.id))
    ]
    if args.format == "json":
        json.dump({"schema": "gatecheck.standards/1", "standards": listing}, out, indent=2)
        out.write("\n")
        return 0
    for item in listing:
        out.write(f"{item['code']}  {item['title']} ({item['epao']})  --standard {item['profile']}\n")
        for mid, m in item["methods"].items():
            out.write(f"    --method {mid}: {m['name']} ({len(m['checks'])} checks, {m['ksbs']} KSBs)\n")
    return 0
