"""media_duration and media_links: how long the submitted video/audio is, and whether any is only linked.

ST0505 (Accelerate People) caps video or audio extracts at ten minutes in total and
refuses links to video: a clip must be a file uploaded with the portfolio. Media
files, and media embedded in slides or documents, are timed; linked media cannot be
timed here and are reported by ``media_links`` instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from extractors.model import Document, Link, Location, Media

from ..base import CheckContext
from ..model import CheckResult, Finding, Outcome, excerpt


def fmt_duration(seconds: float) -> str:
    """``453.5`` -> ``7:33.5``; short and unambiguous for an assessor."""
    minutes, secs = divmod(round(seconds, 1), 60)
    return f"{int(minutes)}:{int(secs):02d}" if secs == int(secs) else f"{int(minutes)}:{secs:04.1f}"


def is_unknown(m: Media) -> bool:
    return m.duration_s is None or m.duration_source == "unknown"


def all_media(docs: list[Document]) -> Iterator[tuple[Document, Media]]:
    for doc in docs:
        for m in doc.media:
            yield doc, m


def _label(doc: Document, m: Media) -> str:
    """A media file's own name, or the embedded clip and where it sits."""
    if m.name == doc.file:
        return PurePosixPath(doc.file).name
    return f"{m.name} in {_where(doc, m)}"


def _where(doc: Document, m: Media) -> str:
    loc = m.location
    if loc.slide is not None:
        return f"slide {loc.slide} of {doc.file}"
    if loc.page is not None:
        return f"page {loc.page} of {doc.file}"
    if loc.paragraph is not None:
        return f"paragraph {loc.paragraph} of {doc.file}"
    return doc.file


# ---------------------------------------------------------------- media_duration


@dataclass(slots=True)
class _Clips:
    timed: list[tuple[Document, Media]]
    unknown: list[tuple[Document, Media]]
    linked: list[tuple[Document, Media]]

    @property
    def total_s(self) -> float:
        return sum(m.duration_s or 0.0 for _, m in self.timed)


def _sort_clips(docs: list[Document]) -> _Clips:
    clips = _Clips([], [], [])
    for doc, m in all_media(docs):
        if m.linked:
            clips.linked.append((doc, m))
        elif is_unknown(m):
            clips.unknown.append((doc, m))
        else:
            clips.timed.append((doc, m))
    return clips


def _clip_finding(doc: Document, m: Media, per_clip_max: float | None) -> Finding:
    assert m.duration_s is not None
    over = per_clip_max is not None and m.duration_s > per_clip_max
    msg = f"{m.kind} {_label(doc, m)}: {fmt_duration(m.duration_s)} ({m.duration_s:.1f} s)"
    if over:
        msg += f": longer than the {per_clip_max:g} s allowed per clip"
    detail: dict[str, Any] = {"duration_s": round(m.duration_s, 3), "duration_source": m.duration_source,
                              "kind": m.kind}
    if over:
        detail["over_per_clip_max"] = True
    if doc.format == "media" and doc.warnings:
        detail["warnings"] = list(doc.warnings)
    return Finding(msg, m.location, m.name, detail)


def _unknown_finding(doc: Document, m: Media) -> Finding:
    return Finding(f"{m.kind} {_label(doc, m)}: duration unknown: check by hand", m.location, m.name,
                   {"duration_source": m.duration_source, "kind": m.kind})


def _linked_finding(doc: Document, m: Media) -> Finding:
    return Finding(f"{m.kind} {_label(doc, m)} is linked, not embedded: not counted here "
                   "(see media_links)", m.location, m.name, {"linked": True, "kind": m.kind})


class MediaDuration:
    id: ClassVar[str] = "media_duration"

    def run(self, ctx: CheckContext) -> CheckResult:
        clips = _sort_clips([d.doc for d in ctx.submission.documents])
        if not (clips.timed or clips.unknown or clips.linked):
            return ctx.not_applicable("no video or audio was submitted or embedded")
        total_max = _opt_float(ctx.param("total_max_s"))
        per_clip_max = _opt_float(ctx.param("per_clip_max_s"))
        total = clips.total_s
        findings = [_clip_finding(d, m, per_clip_max) for d, m in clips.timed]
        findings += [_unknown_finding(d, m) for d, m in clips.unknown]
        findings += [_linked_finding(d, m) for d, m in clips.linked]
        measured = {"total_s": round(total, 3), "clips": len(clips.timed) + len(clips.unknown),
                    "unknown": len(clips.unknown), "linked": len(clips.linked)}
        expected = {"total_max_s": total_max, "per_clip_max_s": per_clip_max}
        kw: dict[str, Any] = {"measured": measured, "expected": expected, "findings": findings}
        problems = _duration_problems(clips, total, total_max, per_clip_max)
        unknown_note = f"; {len(clips.unknown)} clip(s) of unknown duration: check by hand" if clips.unknown else ""
        if problems:  # a violation is fail or warn already: unknown durations never lower it
            return ctx.violation("; ".join(problems) + unknown_note, **kw)
        limit = f" (limit {fmt_duration(total_max)})" if total_max is not None else ""
        summary = f"{measured['clips']} clip(s), {fmt_duration(total)} in total{limit}"
        if clips.unknown:
            return ctx.result(Outcome.WARN, summary + unknown_note, **kw)
        return ctx.passed(summary, **kw)


def _duration_problems(clips: _Clips, total: float, total_max: float | None, per_clip_max: float | None) -> list[str]:
    problems: list[str] = []
    if total_max is not None and total > total_max:
        problems.append(f"media total {fmt_duration(total)} ({total:.0f} s) is over the "
                        f"{fmt_duration(total_max)} ({total_max:g} s) maximum by {total - total_max:.0f} s")
    if per_clip_max is not None:
        long = [m for _, m in clips.timed if (m.duration_s or 0.0) > per_clip_max]
        if long:
            problems.append(f"{len(long)} clip(s) longer than {per_clip_max:g} s each")
    return problems


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


# ---------------------------------------------------------------- media_links

# Hosts whose links are video/audio whatever the path (subdomains included).
VIDEO_HOSTS: tuple[str, ...] = (
    "youtube.com", "youtu.be", "youtube-nocookie.com", "vimeo.com", "microsoftstream.com",
    "web.microsoftstream.com", "loom.com", "wistia.com", "wistia.net", "wi.st", "vidyard.com",
    "panopto.com", "panopto.eu", "streamable.com", "tiktok.com", "fb.watch", "facebook.com/watch",
    "dailymotion.com", "twitch.tv", "soundcloud.com",
)
# File-sharing hosts: a link is to video/audio only when its path, query or text says so (precision).
FILE_SHARE_HOSTS: tuple[str, ...] = (
    "sharepoint.com", "onedrive.live.com", "1drv.ms", "drive.google.com", "dropbox.com", "box.com",
)
_MEDIA_EXT = re.compile(r"\.(mp4|m4v|mov|avi|wmv|webm|mkv|flv|3gp|mpe?g|mp3|m4a|wav|ogg|oga|flac|aac|wma)\b", re.I)
_VIDEO_WORD = re.compile(r"\b(video|videos|recording|recorded|screencast|clip|footage|audio|podcast|vlog)\b", re.I)
# SharePoint and OneDrive share links carry the file type: /:v:/ and 1drv.ms/v/ are video.
_SHARE_VIDEO_PATH = re.compile(r"^/(?::v:|v)/", re.I)
_STREAM_PATH = re.compile(r"stream\.aspx|/stream/|/video/|/videos/", re.I)


@dataclass(frozen=True, slots=True)
class _HostRule:
    host: str
    path_prefix: str

    @classmethod
    def parse(cls, entry: str) -> _HostRule:
        entry = entry.strip().lower()
        entry = re.sub(r"^[a-z]+://", "", entry)
        host, _, path = entry.partition("/")
        return cls(host.removeprefix("*."), "/" + path if path else "")

    def matches(self, host: str, path: str) -> bool:
        host_ok = host == self.host or host.endswith("." + self.host)
        return host_ok and path.lower().startswith(self.path_prefix)


def _host_path(url: str) -> tuple[str, str, str]:
    url = url.strip()
    if "://" not in url and not url.startswith("//") and ":" not in url.split("/", 1)[0]:
        url = "//" + url  # "youtu.be/abc" written without a scheme
    try:
        parts = urlsplit(url)
    except ValueError:
        return "", "", ""
    if parts.scheme.lower() not in {"http", "https", ""}:
        return "", "", ""
    host = (parts.hostname or "").lower().removeprefix("www.")
    return host, unquote(parts.path or ""), unquote(parts.query or "")


def _video_hint(path: str, query: str, text: str) -> str | None:
    if _SHARE_VIDEO_PATH.match(path):
        return "share link of type video"
    if m := _MEDIA_EXT.search(path) or _MEDIA_EXT.search(query):
        return f"media file extension {m.group(0).lower()}"
    if _STREAM_PATH.search(path):
        return "stream/video path"
    if m := _VIDEO_WORD.search(text):
        return f"link text says '{m.group(0)}'"
    return None


@dataclass(slots=True)
class _LinkRules:
    video: list[_HostRule]
    file_share: list[_HostRule]

    def why(self, url: str, text: str) -> str | None:
        host, path, query = _host_path(url)
        if not host:
            return None
        for rule in self.video:
            if rule.matches(host, path):
                return f"video/audio host {rule.host}{rule.path_prefix}"
        for rule in self.file_share:
            if rule.matches(host, path) and (hint := _video_hint(path, query, text)):
                return f"file-sharing host {rule.host} with {hint}"
        return None


def _rules(ctx: CheckContext) -> _LinkRules:
    video = ctx.param("hosts")
    share = ctx.param("file_share_hosts")
    return _LinkRules(
        [_HostRule.parse(h) for h in (VIDEO_HOSTS if video is None else video)],
        [_HostRule.parse(h) for h in (FILE_SHARE_HOSTS if share is None else share)],
    )


def _link_finding(doc: Document, link: Link, why: str) -> Finding:
    label = f" ('{excerpt(link.text, width=80)}')" if link.text.strip() else ""
    return Finding(f"link to video/audio{label}: {link.url}: upload the file instead", link.location,
                   excerpt(link.text or link.url), {"url": link.url, "text": link.text, "why": why,
                                                    "document": doc.file})


def _same_place(a: Location, b: Location) -> bool:
    return a.to_dict() == b.to_dict()


def _linked_media_findings(doc: Document, used: set[int]) -> list[Finding]:
    """Media(linked=True): the URL comes from the Link at the same place, when there is one."""
    out: list[Finding] = []
    for m in doc.media:
        if not m.linked:
            continue
        url = m.name
        for i, link in enumerate(doc.links):
            if i not in used and (link.url == m.name or _same_place(link.location, m.location)):
                used.add(i)
                url = link.url
                break
        out.append(Finding(f"linked (not embedded) {m.kind}: {url}: upload the file instead", m.location,
                           excerpt(m.name), {"url": url, "why": "media linked from the document, not embedded",
                                             "document": doc.file}))
    return out


class MediaLinks:
    id: ClassVar[str] = "media_links"

    def run(self, ctx: CheckContext) -> CheckResult:
        rules = _rules(ctx)
        docs = [d.doc for d in ctx.submission.documents]
        findings: list[Finding] = []
        n_links = 0
        for doc in docs:
            used: set[int] = set()
            findings += _linked_media_findings(doc, used)
            for i, link in enumerate(doc.links):
                n_links += 1
                if i not in used and (why := rules.why(link.url, link.text)):
                    findings.append(_link_finding(doc, link, why))
        measured = {"links_checked": n_links, "video_links": len(findings),
                    "urls": [f.detail["url"] for f in findings]}
        expected = {"video_links": 0}
        if not docs:
            return ctx.not_applicable("no documents to search for links")
        if findings:
            return ctx.violation(f"{len(findings)} link(s) to video/audio: video must be uploaded as a file, "
                                 "a link is not accepted", measured=measured, expected=expected, findings=findings)
        return ctx.passed(f"no links to video/audio hosting among {n_links} link(s)", measured=measured,
                          expected=expected)
