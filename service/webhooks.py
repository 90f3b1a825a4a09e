"""Webhook signing and verification, and the SSRF guard for callback URLs.

Delivery itself belongs to the worker; this module is the contract both sides
share. Signing follows the Stripe scheme (reliability-anchors §5): HMAC-SHA256
over ``"<timestamp>." + raw body`` so a receiver can verify the exact bytes it
got, a constant-time compare, and a 300 s replay window (past *or* future, as Svix).

Rotation without downtime: a tenant's stored secret may hold several secrets separated
by whitespace, newest first (``"NEW OLD"``). Every delivery then carries one ``v1=`` per
secret, so a receiver still on the old secret and one already on the new one both verify;
drop the old one once every receiver has switched. Published test vectors:
``tests/data/webhook_vectors.json``.

Why an SSRF guard: a callback URL is an attacker-chosen target for a request
made from inside our network (metadata endpoints at 169.254.169.254, Redis on
loopback, MinIO on a private address). The API refuses such URLs at submission
time; the worker must check again at delivery and connect to the address it
checked (``allowed_addresses``), because DNS can change in between (rebinding).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

SIGNATURE_HEADER = "X-Gatecheck-Signature"
TIMESTAMP_HEADER = "X-Gatecheck-Timestamp"
DEFAULT_TOLERANCE_S = 300
MAX_URL_LENGTH = 2048


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}."`` + body."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return mac.hexdigest()


def secret_list(secrets_: str | Iterable[str]) -> list[str]:
    """The secrets a stored value (or list) holds: whitespace separates them, newest first, duplicates once."""
    items = secrets_.split() if isinstance(secrets_, str) else [s for v in secrets_ for s in v.split()]
    return list(dict.fromkeys(items))


def signature_headers(secrets_: str | Iterable[str], body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers for one delivery: one ``v1=`` value per secret (``"NEW OLD"`` during a rotation)."""
    ts = int(time.time()) if timestamp is None else timestamp
    keys = secret_list(secrets_)
    if not keys:
        raise ValueError("no webhook secret to sign with")
    sigs = ",".join(f"v1={sign(s, ts, body)}" for s in keys)
    return {SIGNATURE_HEADER: sigs, TIMESTAMP_HEADER: str(ts), "Content-Type": "application/json"}


def verify(
    secret: str | Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True iff a ``v1`` signature matches ``body`` under one of the receiver's secrets (a rotating
    receiver may hold two) and the timestamp is within ``tolerance_s`` of now, either way."""
    lower = {k.lower(): v for k, v in headers.items()}
    raw_ts = lower.get(TIMESTAMP_HEADER.lower(), "").strip()
    raw_sig = lower.get(SIGNATURE_HEADER.lower(), "")
    keys = secret_list(secret)
    if not raw_ts.isascii() or not raw_ts.isdigit() or len(raw_ts) > 12 or not raw_sig or not keys:
        return False
    current = time.time() if now is None else now
    if abs(current - int(raw_ts)) > tolerance_s:
        return False
    expected = [sign(k, raw_ts, body).encode() for k in keys]
    ok = False
    for part in raw_sig.split(","):
        scheme, _, value = part.strip().partition("=")
        for want in expected:  # no early exit: every candidate is compared, in constant time
            ok |= scheme == "v1" and hmac.compare_digest(value.strip().encode(), want)
    return ok


def _forbidden(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def allowed_addresses(url: str, allow_private: bool = False) -> list[str]:
    """The resolved addresses a delivery may connect to; empty means refuse the URL.

    Every address the name resolves to must pass: a name with one public and one
    private address is refused, or the client would choose which one we hit.
    """
    if len(url) > MAX_URL_LENGTH:
        return []
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return []
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return []
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    addrs: list[str] = []
    for *_, sockaddr in infos:
        host = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return []
        if not allow_private and _forbidden(ip):
            return []
        if host not in addrs:
            addrs.append(host)
    return addrs


def is_allowed_target(url: str, allow_private: bool = False) -> bool:
    """True iff ``url`` is http(s), has no credentials, and resolves only to addresses we may call."""
    return bool(allowed_addresses(url, allow_private))
