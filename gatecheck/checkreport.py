"""Render a gateway report as a checklist (text) or a self-contained page (HTML)."""

from __future__ import annotations

import html
from typing import Any, TextIO

_MARK = {"pass": "✓", "warn": "!", "fail": "✗", "not_applicable": "–", "error": "?"}
_COLOUR = {"pass": "#1b7f3b", "warn": "#a86400", "fail": "#b3261e", "not_applicable": "#666", "error": "#6b2fa3"}


def where(loc: dict[str, Any]) -> str:
    bits = [loc.get("file", "")]
    for key, label in (("page", "page"), ("slide", "slide"), ("paragraph", "paragraph"), ("row", "row")):
        if loc.get(key) is not None:
            bits.append(f"{label} {loc[key]}")
    if loc.get("section"):
        bits.append(f"§ {loc['section']}")
    return ", ".join(b for b in bits if b)


def text(report: dict[str, Any], out: TextIO) -> None:
    std = report["standard"]
    out.write(f"gatecheck: {std['code']} {std['title']} ({std['epao']}), {std['method']} {std['method_name']}\n")
    out.write(f"Outcome: {report['outcome'].upper()}\n\n")
    for c in report["checks"]:
        out.write(f"{_MARK[c['outcome']]} {c['id']:<26} {c['outcome'].upper():<15} {c['summary']}\n")
        out.write(f"    rule: {c['rule']['text']}  [{c['rule']['source']}]\n")
        for f in c["findings"]:
            loc = where(f["location"])
            out.write(f"    • {f['message']}" + (f"  ({loc})" if loc else "") + "\n")
            if f.get("excerpt"):
                out.write(f"      “{f['excerpt']}”\n")
    out.write("\nDocuments:\n")
    for d in report["documents"]:
        out.write(f"  {d['file']}: {d['role']} ({d['role_reason']}), {d['words']['total']} words\n")
    for e in report["errors"]:
        out.write(f"  ✗ {e['file']}: [{e['code']}] {e['message']}. {e['remedy']}\n")
    for item in report.get("cannot_check", []):
        out.write(f"  not checked: {item}\n")


def page(report: dict[str, Any]) -> str:
    std = report["standard"]
    e = html.escape
    rows = "".join(_check_html(c) for c in report["checks"])
    docs = "".join(
        f"<li>{e(d['file'])}: <b>{e(d['role'])}</b> ({e(d['role_reason'])}), {d['words']['total']} words</li>"
        for d in report["documents"]
    )
    errs = "".join(
        f"<li class=fail>{e(x['file'])}: [{e(x['code'])}] {e(x['message'])}. {e(x['remedy'])}</li>"
        for x in report["errors"]
    )
    cannot = "".join(f"<li>{e(x)}</li>" for x in report.get("cannot_check", []))
    colour = _COLOUR.get(report["outcome"], "#333")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>gatecheck: {e(std['code'])} {e(std['method'])}</title>
<style>body{{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}}
.check{{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}}
.badge{{display:inline-block;padding:0 .5rem;border-radius:4px;color:#fff;font-weight:600}}
.rule{{color:#555;font-size:.9em}} .loc{{color:#555;font-size:.85em}}
blockquote{{margin:.2rem 0 .6rem 1rem;padding-left:.6rem;border-left:3px solid #ccc;color:#333}}
.fail{{color:#b3261e}}</style></head><body>
<h1>{e(std['code'])} {e(std['title'])}</h1>
<p>{e(std['epao'])}, {e(std['method'])}: {e(std['method_name'])} (profile {e(std['profile'])})</p>
<h2>Outcome: <span class="badge" style="background:{colour}">{e(report['outcome'].upper())}</span></h2>
{rows}
<h2>Documents</h2><ul>{docs}{errs}</ul>
{f'<h2>Not checked</h2><ul>{cannot}</ul>' if cannot else ''}
</body></html>
"""


def _check_html(c: dict[str, Any]) -> str:
    e = html.escape
    colour = _COLOUR.get(c["outcome"], "#333")
    items = "".join(
        f"<li>{e(f['message'])}<div class=loc>{e(where(f['location']))}</div>"
        + (f"<blockquote>{e(f['excerpt'])}</blockquote>" if f.get("excerpt") else "")
        + "</li>"
        for f in c["findings"]
    )
    return (
        f'<div class="check" id="{e(c["id"])}"><span class="badge" style="background:{colour}">'
        f"{e(c['outcome'].upper())}</span> <b>{e(c['id'])}</b>: {e(c['summary'])}"
        f'<div class="rule">Rule: {e(c["rule"]["text"])} <i>({e(c["rule"]["source"])})</i></div>'
        + (f"<ul>{items}</ul>" if items else "")
        + "</div>"
    )
