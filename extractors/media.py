"""Audio/video probing: kind, duration and container, for the "at most 10 minutes of media" rule.

Why it works the way it does:

* Durations come from container headers (``AVFormatContext.duration``, then stream durations). Frames are never
  decoded. When the header has no duration (a WebM written without a Duration element) a demux-only packet scan,
  capped at ``Limits.media_scan_packets`` packets, gives ``max(pts + duration) - min(pts)`` over the audio/video
  streams (``duration_source="packet_scan"``); if that finds nothing the duration is ``None`` (``"unknown"``).
* Submissions are untrusted. The file is opened by Python and handed to FFmpeg as a file object, so FFmpeg never
  interprets the name (``-video.mp4``, ``pipe:x``, ``concat:a|b`` are just names). ``format_whitelist`` keeps
  FFmpeg to real audio/video containers (no HLS/concat playlists, which open other files or URLs) and
  ``protocol_whitelist="none"`` blocks any nested open a demuxer might still attempt.
* Cover art (``attached_pic`` disposition, e.g. ID3 pictures in mp3/wav) is not video: kind is "video" only when a
  real video stream exists.
* Library exceptions are translated once, here: a demuxer FFmpeg recognises but we do not accept gives
  ``UNSUPPORTED_FORMAT``; everything else unreadable gives ``CORRUPT``. No library message is ever inspected.
* A header duration over a day (``_PLAUSIBLE_S``; evidence media runs minutes) is a claim to check, not a fact:
  a Matroska ``Duration`` element, or an MP4's sample tables, can say 10^6 hours in a 1 MB file (reliability
  catalogue test 21). The same bounded demux-only scan then measures the packets: if it reads them all and they
  span less than half the claim, that span is reported (``duration_source="packet_scan"``); otherwise the claim
  stays. Either way a warning says the header's duration is implausible, so a person sees why.
* A truncated file whose header FFmpeg cannot read at all (``bad/truncated_pymediainfo_sample.mkv``: its Matroska
  header ends mid-element, so no stream or duration can be trusted) raises ``CORRUPT`` rather than guessing.
  A truncated MP4 whose header is intact (``tinytag_test.m4a``) keeps its header duration plus a warning, found
  cheaply by walking the top-level boxes.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar

import av
import av.error
from av.container import InputContainer
from av.stream import Stream

from .base import Context
from .errors import ErrorCode, ExtractionError
from .limits import Limits
from .model import Document, Location, Media

# FFmpeg demuxers a submission may use. Anything else FFmpeg recognises (images, playlists, raw streams, devices)
# fails the open with EINVAL (av.error.ArgumentError), reported as UNSUPPORTED_FORMAT.
_DEMUXERS = (
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,asf,mpeg,mpegts,"  # mov/matroska each serve several file types
    "mp3,wav,w64,aiff,flac,ogg,aac,ac3,eac3,caf,amr,amrnb,amrwb"
)
_OPEN_OPTIONS: dict[str, str] = {"format_whitelist": _DEMUXERS, "protocol_whitelist": "none"}
# What a broken or hostile file can make PyAV (or the file object) raise. av.FFmpegError covers every av.error.*.
_LIBRARY_ERRORS: tuple[type[BaseException], ...] = (av.FFmpegError, OSError, ValueError, EOFError, ArithmeticError,
                                                    IndexError)  # demux(): a packet of a stream FFmpeg added after
# open (FLV creates streams mid-file) has no PyAV stream: IndexError (tests/data/fuzz_regressions/).
_ATTACHED_PIC = 0x400  # AV_DISPOSITION_ATTACHED_PIC: a cover image, not a video track
_MAX_MP4_BOXES = 10_000  # top-level boxes walked for the truncation check; real files have a handful
#: A header duration above this is checked against the packets (see the module docstring).
_PLAUSIBLE_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class MediaInfo:
    kind: str  # "video" or "audio"
    duration_s: float | None
    duration_source: str  # "header" | "packet_scan" | "unknown"
    container: str  # normalised: "mp4", "m4a", "mov", "webm", "mkv", "mp3", "wav", ...
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Duration:
    seconds: float | None
    source: str
    warnings: tuple[str, ...] = ()
    complete: bool = True  # a packet scan that read every packet (not stopped by the cap or damage)


def probe(source: Path | BinaryIO, limits: Limits, name: str = "") -> MediaInfo:
    """Kind, duration and container of one media file or file object (read from its start, left open).

    Raises ExtractionError (code CORRUPT or UNSUPPORTED_FORMAT) on unreadable media; never anything else.
    """
    label = name or _label(source)
    try:
        with _binary(source) as fh:
            info = _probe_open(fh, limits, label)
            is_mp4 = info.container in {"mp4", "m4a", "mov"} and fh.seekable()
            truncated = _mp4_truncation(fh, label) if is_mp4 else None
    except ExtractionError:
        raise
    except _LIBRARY_ERRORS as exc:
        raise _corrupt(label, exc) from exc
    if truncated is None:
        return info
    return MediaInfo(info.kind, info.duration_s, info.duration_source, info.container, (*info.warnings, truncated))


class MediaExtractor:
    """Adds one ``Media`` entry (and any probe warnings) for a stand-alone audio/video file."""

    name: ClassVar[str] = "media"
    formats: ClassVar[frozenset[str]] = frozenset({"media"})

    def extract(self, ctx: Context, doc: Document) -> None:
        info = probe(ctx.path, ctx.limits, ctx.display_name)
        doc.media.append(
            Media(
                name=ctx.display_name,
                kind=info.kind,
                duration_s=info.duration_s,
                location=Location(file=ctx.display_name),
                duration_source=info.duration_source,
                container=info.container,
            )
        )
        for warning in info.warnings:
            doc.warn(warning)


# --- opening ---------------------------------------------------------------------------------------------------


def _label(source: Path | BinaryIO) -> str:
    if isinstance(source, str | os.PathLike):
        return Path(source).name
    return str(getattr(source, "name", "") or "<media stream>")


@contextmanager
def _binary(source: Path | BinaryIO) -> Iterator[BinaryIO]:
    """Our own file object for a path (FFmpeg never sees the name); a caller's object is rewound and left open."""
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fh:
            yield fh
        return
    start = source.tell() if source.seekable() else None
    if start is not None:
        source.seek(0)
    try:
        yield source
    finally:
        if start is not None:
            source.seek(start)


def _open(fh: BinaryIO, label: str) -> InputContainer:
    """Open with the demuxer/protocol whitelists; EINVAL there means "a format we do not accept"."""
    try:
        return av.open(fh, mode="r", container_options=dict(_OPEN_OPTIONS), metadata_errors="replace")
    except av.error.ArgumentError as exc:
        raise ExtractionError(
            ErrorCode.UNSUPPORTED_FORMAT, f"{label}: not an accepted audio/video container ({type(exc).__name__})"
        ) from exc


def _corrupt(label: str, exc: BaseException) -> ExtractionError:
    return ExtractionError(ErrorCode.CORRUPT, f"{label}: unreadable audio/video file ({type(exc).__name__})")


# --- probing ---------------------------------------------------------------------------------------------------


def _probe_open(fh: BinaryIO, limits: Limits, label: str) -> MediaInfo:
    with _open(fh, label) as container:
        streams = _av_streams(container)
        if not streams:
            raise ExtractionError(ErrorCode.UNSUPPORTED_FORMAT, f"{label}: no audio or video stream")
        kind = "video" if any(s.type == "video" for s in streams) else "audio"
        header = _header_duration(container, streams)
        if header is None:
            duration = _scan_duration(container, streams, limits, label)
        elif header.seconds is not None and header.seconds > _PLAUSIBLE_S:
            duration = _check_claim(container, streams, header.seconds, limits, label)
        else:
            duration = header
        name = _container_name(container, fh)
    return MediaInfo(kind, duration.seconds, duration.source, name, duration.warnings)


def _av_streams(container: InputContainer) -> list[Stream]:
    """Audio and real video streams: cover art (attached_pic) is a picture, not a video track."""
    return [s for s in container.streams if s.type == "audio" or (s.type == "video" and not _is_cover(s))]


def _is_cover(stream: Stream) -> bool:
    """Attached picture? ``disposition`` is a Flag (older PyAV) or IntFlag, so go through ``.value``."""
    disposition = getattr(stream, "disposition", None)
    return bool(int(getattr(disposition, "value", disposition) or 0) & _ATTACHED_PIC)


def _header_duration(container: InputContainer, streams: list[Stream]) -> _Duration | None:
    """Container duration, else the longest stream duration; None when the header says nothing usable."""
    if container.duration is not None and container.duration > 0:
        return _Duration(container.duration / av.time_base, "header")
    ends = [float(s.duration * s.time_base) for s in streams if s.duration and s.time_base]
    return _Duration(max(ends), "header") if ends and max(ends) > 0 else None


def _check_claim(container: InputContainer, streams: list[Stream], claim_s: float, limits: Limits,
                 label: str) -> _Duration:
    """An implausibly long header duration, checked against the packets' own timestamps (bounded scan)."""
    said = f"{label}: the header claims {claim_s / 3600:,.0f} hours"
    with suppress(*_LIBRARY_ERRORS):  # the size only makes the warning clearer (a non-seekable input has none)
        size = container.size
        if size > 0:
            said += f" in a {size:,}-byte file"
    try:
        scanned = _scan_duration(container, streams, limits, label)
    except _LIBRARY_ERRORS:
        scanned = _Duration(None, "unknown", complete=False)
    if scanned.complete and scanned.seconds is not None and scanned.seconds < claim_s / 2:
        return _Duration(scanned.seconds, "packet_scan",
                         (f"{said}; its media data spans {scanned.seconds:.1f} s, which is used instead",))
    return _Duration(claim_s, "header", (f"{said}; the media data does not disprove it, but treat it as suspect",))


def _scan_duration(container: InputContainer, streams: list[Stream], limits: Limits, label: str) -> _Duration:
    """Bounded demux-only scan (no decoding): span from the earliest packet start to the latest packet end."""
    start: float | None = None
    end: float | None = None
    warnings: list[str] = []
    count = 0
    try:
        for packet in container.demux(streams):
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None or packet.time_base is None:
                continue  # the flush packet each stream ends with
            count += 1
            if count > limits.media_scan_packets:
                warnings.append(
                    f"{label}: duration scan stopped at {limits.media_scan_packets} packets; "
                    "the real duration is longer"
                )
                break
            t0, t1 = float(ts * packet.time_base), float((ts + (packet.duration or 0)) * packet.time_base)
            start, end = (t0, t1) if start is None or end is None else (min(start, t0), max(end, t1))
    except _LIBRARY_ERRORS as exc:
        if start is None:
            raise
        warnings.append(f"{label}: media data is damaged ({type(exc).__name__}); duration covers the readable part")
    if start is None or end is None or end <= start:
        return _Duration(None, "unknown", (f"{label}: no duration in the header and no timed packets",))
    return _Duration(end - start, "packet_scan", tuple(warnings), complete=not warnings)


# --- naming and cheap truncation check ----------------------------------------------------------------------


def _container_name(container: InputContainer, fh: BinaryIO) -> str:
    """Short, user-facing container name; FFmpeg names demuxers, not file types (mov serves mp4/m4a/mov)."""
    demuxer = container.format.name.split(",")[0]
    if demuxer == "mov":
        brand = str(container.metadata.get("major_brand", "")).strip().lower()
        return {"m4a": "m4a", "qt": "mov"}.get(brand, "mp4")
    if demuxer == "matroska":
        return _matroska_doctype(fh)
    return demuxer


def _matroska_doctype(fh: BinaryIO) -> str:
    """'webm' or 'mkv' from the EBML DocType (ID 0x4282) in the first bytes; one demuxer reads both."""
    if not fh.seekable():
        return "matroska"
    fh.seek(0)
    head = fh.read(64)
    i = head.find(b"\x42\x82")
    if i < 0 or i + 3 > len(head) or not head[i + 2] & 0x80:
        return "mkv"
    return "webm" if head[i + 3 : i + 3 + (head[i + 2] & 0x7F)] == b"webm" else "mkv"


def _mp4_truncation(fh: BinaryIO, label: str) -> str | None:
    """Warn when a top-level MP4 box runs past EOF or there is no media data box: the header outlives the data."""
    size = fh.seek(0, io.SEEK_END)
    offset, has_data = 0, False
    for _ in range(_MAX_MP4_BOXES):
        if offset + 8 > size:
            break
        box_size, box_type = _mp4_box(fh, offset, size)
        if box_size < 8:
            return f"{label}: MP4 box structure is damaged at byte {offset}; the duration may be wrong"
        has_data = has_data or box_type in {b"mdat", b"moof"}
        if offset + box_size > size:
            return f"{label}: file is truncated ('{box_type.decode('latin-1')}' box ends past the end of the file)"
        offset += box_size
    if not has_data:
        return f"{label}: file holds no media data (no 'mdat' box); it looks truncated, duration is the header's claim"
    return None


def _mp4_box(fh: BinaryIO, offset: int, file_size: int) -> tuple[int, bytes]:
    """(size, type) of the box at ``offset``; size 0 means "to end of file", size 1 means a 64-bit size follows."""
    fh.seek(offset)
    head = fh.read(16)
    box_size, box_type = struct.unpack(">I4s", head[:8])
    if box_size == 1:
        box_size = struct.unpack(">Q", head[8:16])[0] if len(head) >= 16 else 0
    elif box_size == 0:
        box_size = file_size - offset
    return box_size, box_type
