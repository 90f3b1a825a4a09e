"""Sensitive data that must be redacted before a portfolio leaves the employer.

Seed 000: "Where apprentices have worked on confidential or secure tasks, they
should write high level statements about these tasks, but not upload any
restricted information." Evidence written by engineers routinely pastes config,
logs and screenshots' text, so this check looks for credentials, private keys,
internal IP addresses, National Insurance numbers, e-mail addresses and UK phone
numbers, and says exactly where each one is so it can be removed.

Every regex is followed by a validation step, because a false "you leaked a
password" wastes an assessor's time and a provider's trust:

* credentials: the value must not be a placeholder, a variable reference or a
  single-class word ("password: required"); AWS's published example key
  (…EXAMPLE) and masked values (XXXX, ****) are ignored;
* IPv4: four octets 0-255 with no leading zeros, not inside a longer dotted
  number, not after "version"/"section" nor a product token ("Firefox/2.0.0.13",
  "rv:1.8.1.13"); the RFC 5737 documentation ranges,
  loopback, 0.0.0.0 and masks starting 255 are ignored, and so are all-single-
  digit quads (1.2.3.4 is a version or a placeholder far more often than a host);
* NI numbers: the prefix letters HMRC allocates (not D F I Q U V; second not O;
  not BG GB KN NK NT TN ZZ) and a suffix A-D; 123456 placeholders ignored;
* e-mail: RFC 2606 reserved domains (example.com, .test, .invalid …) and image
  names such as logo@2x.png are ignored;
* phones: UK numbering (07 mobiles, 01/02 geographic, 03 non-geographic) with the
  right number of digits; Ofcom's drama ranges (07700 900xxx, 020 7946 0xxx …)
  are fictional and ignored.

A finding never echoes a secret: every match in the quoted text is masked to
its first and last characters.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar

from extractors.model import Document, Location

from ..base import CheckContext
from ..model import CheckResult, Finding, excerpt
from ..profile import Role

KINDS = ("credential", "private_key", "ip_address", "ni_number", "email", "phone")
_ALIASES = {
    "credentials": "credential", "password": "credential", "passwords": "credential", "secrets": "credential",
    "private_keys": "private_key", "private keys": "private_key", "keys": "private_key",
    "ip": "ip_address", "ips": "ip_address", "ipv4": "ip_address", "ip_addresses": "ip_address",
    "ip addresses": "ip_address", "ni": "ni_number", "ni_numbers": "ni_number", "ni numbers": "ni_number",
    "national_insurance": "ni_number", "emails": "email", "email_addresses": "email", "e-mail": "email",
    "phones": "phone", "phone_numbers": "phone", "phone numbers": "phone", "telephone": "phone",
}


@dataclass(frozen=True, slots=True)
class Match:
    kind: str
    pattern: str
    start: int  # span of the sensitive value in the text (what gets masked)
    end: int
    value: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Detector:
    kind: str
    name: str
    regex: re.Pattern[str]
    group: str | int = 0  # the part of the match that is sensitive
    valid: Callable[[re.Match[str], str], str | None] = lambda m, text: ""  # None rejects; str is a note


def mask(value: str) -> str:
    """Same length, first/last characters only: enough to find it, never enough to use it."""
    n = len(value)
    if n <= 4:
        return "*" * n
    keep = 1 if n <= 8 else 2
    return value[:keep] + "".join("*" if not c.isspace() else c for c in value[keep:-keep]) + value[-keep:]


def _mask_key(value: str) -> str:
    """A private key: keep the BEGIN/END armour lines (they say what it is), hide the material."""
    head = re.match(r"-----BEGIN[^-]*-----", value)
    tail = re.search(r"-----END[^-]*-----\s*$", value)
    a = head.end() if head else 0
    b = tail.start() if tail else len(value)
    return value[:a] + re.sub(r"\S", "*", value[a:b]) + value[b:]


# --------------------------------------------------------------------------- validators

_PLACEHOLDER = re.compile(
    r"^(?:[x*#.•_-]+|<[^>]*>|\[[^]]*\]|\{\{?.*\}?\}|\$\{?.*|%.*%|.*(?:example|redacted|changeme|placeholder|your[_-]|"
    r"dummy|sample|hidden|removed|xxxx).*|required|optional|string|none|null|true|false|undefined|secret|password|"
    r"token|n/a|tbc|todo)$",
    re.IGNORECASE,
)
_REFERENCE = re.compile(r"[()]|^(?:var|local|locals|module|data|self|os|env|process|config|settings|vault|secrets?|"
                        r"aws_[a-z_]+|ssm|arn)[.:]|^[a-z_]+\.[a-z_.\[\]'\"]+$", re.IGNORECASE)


def _classes(value: str) -> int:
    return sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"\d", r"[^A-Za-z0-9_.\-]"))


def _secret_value(m: re.Match[str], text: str) -> str | None:
    value = m.group("value")
    key = m.group("key").lower()
    if _PLACEHOLDER.match(value) or _REFERENCE.search(value) or len(set(value)) <= 2:
        return None
    if any(w in value.lower() for w in ("password", "secret", "token", "passwd")):
        return None  # names another variable, e.g. password=db_password
    min_len = 8 if key.strip("_-") in {"token", "secret", "key"} else 4
    if len(value) < min_len or (_classes(value) < 2 and len(value) < 16):
        return None
    return ""


def _connection_password(m: re.Match[str], text: str) -> str | None:
    value = m.group("value")
    if _PLACEHOLDER.match(value) or len(set(value)) <= 2 or value.lower() in {"pass", "pwd", "user"}:
        return None
    return ""


def _not_example_key(m: re.Match[str], text: str) -> str | None:
    return None if m.group(0).endswith("EXAMPLE") else ""


def _unmasked_tail(m: re.Match[str], text: str) -> str | None:
    tail = m.group(0).rsplit("/", 1)[-1]
    return None if len(set(tail.upper())) <= 2 else ""


_DOC_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
_VERSION_BEFORE = re.compile(r"\b(?:version|ver\.?|release|build|firmware|section|clause|paragraph|figure|table|step|"
                             r"ksb|rule|§)\s*:?\s*$", re.IGNORECASE)


# "Firefox/2.0.0.13", "rv:1.8.1.13": a product token's version, unless it is a URL's host ("http://10.0.0.1").
_PRODUCT_VERSION = re.compile(r"(?<![:/])[A-Za-z][\w.-]*/$|\brv:$")


def _ipv4(m: re.Match[str], text: str) -> str | None:
    octets = m.group("ip").split(".")
    if any(len(o) > 1 and o.startswith("0") for o in octets) or any(int(o) > 255 for o in octets):
        return None
    before = text[max(0, m.start() - 20) : m.start()]
    if all(len(o) == 1 for o in octets) or _VERSION_BEFORE.search(before) or _PRODUCT_VERSION.search(before):
        return None
    ip = ipaddress.ip_address(m.group("ip"))
    if ip.is_loopback or ip.is_unspecified or octets[0] == "255" or any(ip in n for n in _DOC_NETS):
        return None
    return "private (internal network)" if ip.is_private else "public"


_NI_BAD_PREFIX = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


def _ni(m: re.Match[str], text: str) -> str | None:
    digits = re.sub(r"\D", "", m.group(0))
    if m.group("prefix") in _NI_BAD_PREFIX or digits in {"123456", "000000", "999999", "654321"}:
        return None
    return ""


_RESERVED_DOMAIN = re.compile(r"(?:^|\.)(?:example\.(?:com|org|net)|example|test|invalid|localhost|local)$", re.I)
_FILE_TLD = {"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "tif", "tiff", "pdf"}


def _email(m: re.Match[str], text: str) -> str | None:
    local, _, domain = m.group(0).rpartition("@")
    if _RESERVED_DOMAIN.search(domain) or domain.rsplit(".", 1)[-1].lower() in _FILE_TLD:
        return None
    if local.lower() in {"git", "noreply", "no-reply", "donotreply"}:
        return None
    return ""


# Ofcom's numbers reserved for drama (fictional): national significant prefixes.
_DRAMA = ("07700900", "01632960", "02079460", "01134960", "01144960", "01154960", "01164960", "01174960",
          "01184960", "01214960", "01314960", "01414960", "01514960", "01614960", "01914980", "02920180", "02890180")


def _uk_phone(m: re.Match[str], text: str) -> str | None:
    digits = re.sub(r"\D", "", m.group(0))
    if digits.startswith("0044"):
        digits = digits[4:]
    elif digits.startswith("44"):
        digits = digits[2:]
    national = digits if digits.startswith("0") else "0" + digits
    kind = national[1:2]
    if kind not in {"1", "2", "3", "7"} or national.startswith(_DRAMA):
        return None
    if len(national) == 11 or (len(national) == 10 and national.startswith("016977")):  # the one 10-digit area
        return "mobile" if kind == "7" else "landline"
    return None


_PHONE_NAT = r"(?:7\d{3}[\s-]?\d{3}[\s-]?\d{3}|7\d{3}[\s-]?\d{6}|[123]\d{1,3}\)?[\s-]?\d{3,4}[\s-]?\d{3,4})"
_CRED_KEY = (r"[A-Za-z0-9_.-]*(?:password|passwd|passphrase|pwd|secret|api[_-]?key|apikey|access[_-]?key(?:[_-]?id)?|"
             r"secret[_-]?key|private[_-]?key|client[_-]?secret|auth[_-]?token|access[_-]?token|refresh[_-]?token|"
             r"bearer|token)[A-Za-z0-9_.-]*")

DETECTORS: list[Detector] = [
    Detector("private_key", "pem_private_key",
             re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY"
                        r"(?: BLOCK)?-----|.*)", re.S)),
    Detector("private_key", "putty_private_key", re.compile(r"PuTTY-User-Key-File-\d+:.*", re.S)),
    Detector("credential", "aws_access_key_id",
             re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"), valid=_not_example_key),
    Detector("credential", "github_token",
             re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{40,})\b")),
    Detector("credential", "slack_token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    Detector("credential", "slack_webhook",
             re.compile(r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{16,}"),
             valid=_unmasked_tail),
    Detector("credential", "google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    Detector("credential", "jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")),
    Detector("credential", "connection_string_password",
             re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s:/@]+:(?P<value>[^\s@/]+)@[^\s/]+"), "value",
             _connection_password),
    Detector("credential", "secret_assignment",
             re.compile(rf"(?<![A-Za-z0-9_])(?P<key>{_CRED_KEY})[\"']?\s*(?::=|=>|=|:)\s*[\"']?(?P<value>[^\s\"',;]+)",
                        re.IGNORECASE), "value", _secret_value),
    Detector("ip_address", "ipv4",
             re.compile(r"(?<![\w.])(?P<ip>(?:\d{1,3}\.){3}\d{1,3})(?:/\d{1,2})?(?![\w])(?!\.\d)"), "ip", _ipv4),
    Detector("ni_number", "uk_ni_number",
             re.compile(r"\b(?P<prefix>[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z])\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b"),
             valid=_ni),
    Detector("email", "email",
             re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b"),
             valid=_email),
    Detector("phone", "uk_phone",
             re.compile(rf"(?<![\w+])(?:\+44[\s-]?(?:\(0\)[\s-]?)?|0044[\s-]?|\(?0){_PHONE_NAT}(?!\w)"),
             valid=_uk_phone),
]


def scan(text: str, kinds: Iterable[str] = KINDS) -> list[Match]:
    """Validated matches of the chosen kinds, in text order, without overlaps (earlier detectors win)."""
    wanted = set(kinds)
    out: list[Match] = []
    for det in DETECTORS:
        if det.kind not in wanted:
            continue
        for m in det.regex.finditer(text):
            note = det.valid(m, text)
            if note is None:
                continue
            a, b = m.span(det.group)
            if any(a < x.end and x.start < b for x in out):
                continue
            out.append(Match(det.kind, det.name, a, b, text[a:b], note))
    return sorted(out, key=lambda x: x.start)


def masked_text(text: str, matches: Iterable[Match] | None = None) -> str:
    """``text`` with every sensitive value (of any kind) masked in place; offsets are unchanged."""
    chars = list(text)
    for m in scan(text) if matches is None else matches:
        chars[m.start : m.end] = list(_mask_key(m.value) if m.kind == "private_key" else mask(m.value))
    return "".join(chars)


def normalise_kinds(raw: object) -> list[str]:
    """The ``kinds`` parameter: a list, "all", or the plain-English names CHECKS.md uses."""
    if raw in (None, "all", ["all"]):
        return list(KINDS)
    items = [raw] if isinstance(raw, str) else list(raw)  # type: ignore[call-overload]
    out = []
    for item in items:
        k = str(item).strip().lower()
        k = _ALIASES.get(k, _ALIASES.get(k.replace("_", " "), k))
        if k not in KINDS:
            raise ValueError(f"unknown sensitive_data kind {item!r}; known: {', '.join(KINDS)}")
        out.append(k)
    return out


_LABEL = {"credential": "credential", "private_key": "private key", "ip_address": "IP address",
          "ni_number": "National Insurance number", "email": "e-mail address", "phone": "phone number"}


def _texts(doc: Document) -> Iterator[tuple[str, Location, bool]]:
    """Every piece of text a reader could see (comments and headers included), then link targets."""
    for b in doc.blocks:
        if b.text.strip():
            yield b.text, b.location, False
    for link in doc.links:
        yield link.url, link.location, True


def _findings(doc: Document, kinds: list[str]) -> list[Finding]:
    """One finding per value and place; a link target repeating visible text adds nothing."""
    out: list[Finding] = []
    seen: set[tuple[str, str, str]] = set()
    in_text: set[tuple[str, str]] = set()
    for text, loc, is_link in _texts(doc):
        found = [m for m in scan(text) if m.kind in kinds]
        safe = masked_text(text) if found else ""
        for m in found:
            key = (m.kind, m.value, repr((loc.file, loc.page, loc.slide, loc.paragraph, loc.table, loc.row, loc.col)))
            if key in seen or (is_link and (m.kind, m.value) in in_text):
                continue
            seen.add(key)
            in_text.add((m.kind, m.value))
            out.append(_finding(m, loc, safe, is_link))
    return out


def _finding(m: Match, loc: Location, safe: str, is_link: bool) -> Finding:
    quote = excerpt(safe, m.start)
    shown = _mask_key(m.value)[:80] if m.kind == "private_key" else mask(m.value)
    detail: dict[str, object] = {"kind": m.kind, "patterns": [m.pattern], "sentence": quote, "masked": shown}
    if m.note:
        detail["note"] = m.note
    where = " in a hyperlink target" if is_link else ""
    return Finding(f"{_LABEL[m.kind]}{where} ({m.pattern}{', ' + m.note if m.note else ''}): redact before submission",
                   loc, quote, detail)


class SensitiveData:
    id: ClassVar[str] = "sensitive_data"

    def run(self, ctx: CheckContext) -> CheckResult:
        kinds = normalise_kinds(ctx.param("kinds", "all"))
        roles = ctx.param("roles")
        docs = ctx.docs(*[Role(r) for r in roles]) if roles else [d.doc for d in ctx.submission.documents]
        if not docs:
            return ctx.not_applicable("no documents to scan")
        findings = [f for d in docs for f in _findings(d, kinds)]
        by_kind = {k: sum(1 for f in findings if f.detail["kind"] == k) for k in kinds}
        measured = {"documents": len(docs), "found": len(findings), "by_kind": by_kind}
        expected = {"kinds": kinds, "found": 0}
        limit = int(ctx.param("max_findings", 200))
        if not findings:
            return ctx.passed(f"no {', '.join(_LABEL[k] for k in kinds)} found in {len(docs)} document(s)",
                              measured=measured, expected=expected)
        summary = ", ".join(f"{n} {_LABEL[k]}(s)" for k, n in by_kind.items() if n)
        return ctx.violation(f"sensitive data to redact: {summary}", measured=measured, expected=expected,
                             findings=findings[:limit])
