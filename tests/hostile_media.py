"""TEST-ONLY: hostile audio/video files for reliability catalogue tests 20 and 21, made on demand.

Nothing here is committed as a binary: every case is cut, flipped or patched from a corpus file, written with
PyAV, or assembled element by element (Matroska), so the shapes are exact and reviewable.

* ``CASES[name](folder)`` writes the file into ``folder`` and returns its path.
* ``EXPECTED[name]`` is the set of acceptable outcomes through ``extract_any`` (an ``ErrorCode`` value, or
  ``"ok"`` for a document with one ``Media`` entry). Sets are as tight as PyAV 18 / FFmpeg 8 allow.
* ``CATALOGUE[name]`` is the catalogue test the case belongs to (reliability-anchors.md (b)).

Shapes (anchors 1.4):

* PyAV #2344: an MP4 with its ``moov`` up front, cut inside the first coded frame. Decoding such a stream
  crashed PyAV 18.0 (SIGSEGV/SIGBUS); the probe never decodes, so the header duration is kept with a
  "truncated" warning. The same cut in an MP4 whose ``moov`` comes last loses the header: ``corrupt``.
* Malformed Matroska (#163 family): truncations, bit flips and lying element sizes.
* MXF (#450, SIGBUS from recursion): a real PyAV-written MXF, and a damaged one. MXF is not an accepted
  container (the sniffer does not know it; ``probe``'s format whitelist refuses it), so the MXF demuxer never
  parses it: ``unsupported_format``.
* Resource bombs: a header claiming 10^6 hours (MP4 ``mvhd``/``tkhd``/``mdhd`` and sample tables, Matroska
  ``Duration``), 65 535 and 1 000 tracks, frame sizes of 100 000 x 100 000 (Matroska MJPEG and raw) and
  65 535 x 65 535 (MP4's maximum).

``python -m tests.hostile_media measure FILE`` probes one file in this process (under the sandbox's RLIMIT_AS) and
prints a JSON line (outcome, seconds and the process's peak RSS); the tests run it in a fresh child per file.
``python -m tests.hostile_media fuzz SEED COUNT`` runs the mutation loop the same way.
"""

from __future__ import annotations

import io
import json
import random
import resource
import struct
import sys
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av

from extractors.errors import ExtractionError
from extractors.limits import Limits
from extractors.media import probe

from .conftest import corpus_file

OK = "ok"
#: 10^6 hours, in seconds: the claimed duration of the fake-duration files.
MILLION_HOURS_S = 3_600_000_000
#: Corpus media the mutation loop starts from: one per container family, small enough to mutate quickly.
FUZZ_SEEDS = ("media/mdn_rabbit320.mp4", "media/mdn_monster.webm", "media/mdn_bear.mp3", "media/tinytag_test.opus",
              "media/tinytag_test3sMono.wav", "media/mutagen_alac.m4a", "media/pymediainfo_issue55.flv",
              "media/tinytag_flac453sStereo.flac")


# -- MP4 boxes ----------------------------------------------------------------------------------------------------


def _boxes(data: bytes | bytearray, start: int, end: int) -> Iterator[tuple[int, int, bytes]]:
    """(offset, size, type) of the boxes between ``start`` and ``end`` (32-bit sizes only: enough for the corpus)."""
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        if size < 8:
            return
        yield offset, size, kind
        offset += size


def _box(data: bytes | bytearray, path: list[bytes], start: int = 0, end: int | None = None) -> Iterator[int]:
    """Offsets of every box at ``path`` (e.g. ``[b"moov", b"trak", b"tkhd"]``)."""
    end = len(data) if end is None else end
    for offset, size, kind in _boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                yield offset
            else:
                yield from _box(data, path[1:], offset + 8, offset + size)


def _mdat_offset(data: bytes) -> int:
    return next(_box(data, [b"mdat"]))


def _patch_full_box(data: bytearray, offset: int, fields_v0: str, fields_v1: str, values: dict[int, int]) -> None:
    """Overwrite fields (by index) of a version 0 or 1 full box after its 12-byte header."""
    version = data[offset + 8]
    fmt = ">" + (fields_v1 if version == 1 else fields_v0)
    current = list(struct.unpack_from(fmt, data, offset + 12))
    for index, value in values.items():
        current[index] = value
    struct.pack_into(fmt, data, offset + 12, *current)


# -- EBML / Matroska ----------------------------------------------------------------------------------------------


def _vint(n: int) -> bytes:
    """EBML data size: the shortest length whose all-ones value is reserved (``unknown``) and stays free."""
    for length in range(1, 9):
        if n < (1 << (7 * length)) - 1:
            return (n | (1 << (7 * length))).to_bytes(length, "big")
    raise ValueError(n)


def _el(element_id: int, payload: bytes) -> bytes:
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big") + _vint(len(payload)) + payload


def _uint(element_id: int, value: int) -> bytes:
    return _el(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _float(element_id: int, value: float) -> bytes:
    return _el(element_id, struct.pack(">d", value))


def _str(element_id: int, value: str) -> bytes:
    return _el(element_id, value.encode("ascii"))


_EBML_HEADER = _el(0x1A45DFA3, _uint(0x4286, 1) + _uint(0x42F7, 1) + _uint(0x42F2, 4) + _uint(0x42F3, 8)
                   + _str(0x4282, "matroska") + _uint(0x4287, 4) + _uint(0x4285, 2))
_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"


def _matroska(tracks: list[bytes], blocks: list[tuple[int, bytes]], duration_ms: float | None = 1000.0) -> bytes:
    """A Matroska file: header, Info, Tracks, one Cluster of SimpleBlocks (track number, payload)."""
    info = _uint(0x2AD7B1, 1_000_000) + _str(0x4D80, "gatecheck-tests") + _str(0x5741, "gatecheck-tests")
    if duration_ms is not None:
        info += _float(0x4489, duration_ms)
    cluster = _uint(0xE7, 0)
    for i, (track, payload) in enumerate(blocks):
        cluster += _el(0xA3, _vint(track) + struct.pack(">hB", i * 40, 0x80) + payload)
    segment = _el(0x1549A966, info) + _el(0x1654AE6B, b"".join(tracks)) + _el(0x1F43B675, cluster)
    return _EBML_HEADER + (0x18538067).to_bytes(4, "big") + _UNKNOWN_SIZE + segment


def _pcm_track(number: int) -> bytes:
    """A mono 8 kHz 16-bit PCM audio TrackEntry: the smallest track FFmpeg accepts without codec private data."""
    audio = _el(0xE1, _float(0xB5, 8000.0) + _uint(0x9F, 1) + _uint(0x6264, 16))
    return _el(0xAE, _uint(0xD7, number) + _uint(0x73C5, number) + _uint(0x83, 2) + _str(0x86, "A_PCM/INT/LIT")
               + audio)


def _video_track(number: int, codec: str, width: int, height: int, extra: bytes = b"") -> bytes:
    video = _el(0xE0, _uint(0xB0, width) + _uint(0xBA, height) + extra)
    return _el(0xAE, _uint(0xD7, number) + _uint(0x73C5, number) + _uint(0x83, 1) + _str(0x86, codec) + video)


def _find_ebml(data: bytes | bytearray, element_id: bytes, after: int = 0) -> int:
    """Offset of the first element with this ID at or after ``after`` (a byte search: fine for known files)."""
    at = bytes(data).find(element_id, after)
    if at < 0:
        raise ValueError(f"element {element_id.hex()} not found")
    return at


# -- PyAV-written files -------------------------------------------------------------------------------------------


def _pyav_video(path: Path, fmt: str, codec: str, frames: int = 10, pix_fmt: str = "yuv420p") -> Path:
    """A small real 64x48 video written by PyAV (flat grey frames), so damaged variants start from a valid file."""
    width, height = 64, 48
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i in range(frames):
            frame = av.VideoFrame(width, height, pix_fmt)
            for plane in frame.planes:  # flat frames, a new shade each
                plane.update(bytes([16 + i * 20]) * plane.buffer_size)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def _flip(data: bytes | bytearray, positions: list[int]) -> bytearray:
    out = bytearray(data)
    for pos in positions:
        out[pos % len(out)] ^= 0xFF
    return out


# -- catalogue 20: native-crash shapes ----------------------------------------------------------------------------


def mp4_cut_in_first_frame(folder: Path) -> Path:
    """PyAV #2344: moov first, cut 300 bytes into the first coded frame (the file has no second frame)."""
    data = corpus_file("media/mdn_rabbit320.mp4").read_bytes()
    path = folder / "cut_in_first_frame.mp4"
    path.write_bytes(data[: _mdat_offset(data) + 8 + 300])
    return path


def mp4_moov_last_cut_in_first_frame(folder: Path) -> Path:
    """The same cut where the moov comes after the media data: no header survives."""
    data = corpus_file("media/moviepy_chaplin.mp4").read_bytes()
    path = folder / "moov_last_cut.mp4"
    path.write_bytes(data[: _mdat_offset(data) + 8 + 300])
    return path


def mkv_corpus_truncated(folder: Path) -> Path:
    """The corpus's damaged Matroska (an element exceeds its parent), copied."""
    path = folder / "truncated_sample.mkv"
    path.write_bytes(corpus_file("bad/truncated_pymediainfo_sample.mkv").read_bytes())
    return path


def mkv_cut_in_first_block(folder: Path) -> Path:
    """A real WebM cut a few hundred bytes into its first Cluster."""
    data = corpus_file("media/mdn_rabbit320.webm").read_bytes()
    path = folder / "cut_in_first_block.webm"
    path.write_bytes(data[: _find_ebml(data, b"\x1f\x43\xb6\x75") + 400])
    return path


def mkv_bitflipped_header(folder: Path) -> Path:
    """A PyAV-written MKV with 24 bytes of its first 400 (EBML header, Info, Tracks) inverted."""
    source = _pyav_video(folder / "source.mkv", "matroska", "mpeg4")
    data = source.read_bytes()
    source.unlink()
    rng = random.Random(20)
    path = folder / "bitflipped.mkv"
    path.write_bytes(_flip(data, [rng.randrange(4, min(400, len(data))) for _ in range(24)]))
    return path


def mkv_lying_sizes(folder: Path) -> Path:
    """A PyAV-written MKV whose Tracks and Cluster claim the largest sizes their size fields hold (far past EOF)."""
    data = bytearray(_pyav_video(folder / "source.mkv", "matroska", "mpeg4").read_bytes())
    (folder / "source.mkv").unlink()
    for element in (b"\x16\x54\xae\x6b", b"\x1f\x43\xb6\x75"):
        at = _find_ebml(data, element) + 4
        length = 8 - (data[at].bit_length() - 1)  # width of the existing size field, kept
        data[at : at + length] = ((1 << (7 * length)) - 2 | (1 << (7 * length))).to_bytes(length, "big")
    path = folder / "lying_sizes.mkv"
    path.write_bytes(data)
    return path


def mxf_pyav(folder: Path) -> Path:
    """A valid MXF (OP1a, MPEG-2 video) written by PyAV: FFmpeg reads it, but it is not an accepted container."""
    return _pyav_video(folder / "clip.mxf", "mxf", "mpeg2video")


def mxf_damaged(folder: Path) -> Path:
    """That MXF cut in half with bytes inverted through its header partition (the #450 family)."""
    data = _pyav_video(folder / "source.mxf", "mxf", "mpeg2video").read_bytes()
    (folder / "source.mxf").unlink()
    rng = random.Random(450)
    path = folder / "damaged.mxf"
    path.write_bytes(_flip(data[: len(data) // 2], [rng.randrange(16, 2048) for _ in range(32)]))
    return path


# -- catalogue 21: resource bombs ---------------------------------------------------------------------------------


def mp4_duration_million_hours(folder: Path) -> Path:
    """A real MP4 whose every duration says 10^6 hours: mvhd, tkhd, elst, mdhd and the sample tables (stts).

    FFmpeg takes an MP4's durations from the sample tables, not mvhd, so the samples are stretched too (timescale
    1, each sample 3.6e9 / count seconds long): the claim is consistent all through the header.
    """
    data = bytearray(corpus_file("media/mdn_rabbit320.mp4").read_bytes())
    for mvhd in _box(data, [b"moov", b"mvhd"]):  # creation, modification, timescale, duration
        _patch_full_box(data, mvhd, "IIII", "QQIQ", {2: 1, 3: MILLION_HOURS_S})
    for trak in _box(data, [b"moov", b"trak"]):
        end = trak + struct.unpack_from(">I", data, trak)[0]
        for tkhd in _box(data, [b"tkhd"], trak + 8, end):  # creation, modification, track id, reserved, duration
            _patch_full_box(data, tkhd, "IIIII", "QQIIQ", {4: MILLION_HOURS_S})
        for elst in _box(data, [b"edts", b"elst"], trak + 8, end):  # entry count, then the first segment's duration
            _patch_full_box(data, elst, "II", "IQ", {1: MILLION_HOURS_S})
        for mdhd in _box(data, [b"mdia", b"mdhd"], trak + 8, end):
            _patch_full_box(data, mdhd, "IIII", "QQIQ", {2: 1, 3: MILLION_HOURS_S})
        for stts in _box(data, [b"mdia", b"minf", b"stbl", b"stts"], trak + 8, end):
            entries = struct.unpack_from(">I", data, stts + 12)[0]
            samples = sum(struct.unpack_from(">I", data, stts + 16 + 8 * i)[0] for i in range(entries))
            for i in range(entries):
                struct.pack_into(">I", data, stts + 16 + 8 * i + 4, -(-MILLION_HOURS_S // samples))
    path = folder / "million_hours.mp4"
    path.write_bytes(data)
    return path


def mkv_duration_million_hours(folder: Path) -> Path:
    """A real WebM whose Segment Info Duration says 3.6e12 ms (TimecodeScale 1 ms): 10^6 hours."""
    data = bytearray(corpus_file("media/mdn_rabbit320.webm").read_bytes())
    at = _find_ebml(data, b"\x44\x89")
    size = data[at + 2] & 0x7F
    data[at + 3 : at + 3 + size] = struct.pack(">d" if size == 8 else ">f", MILLION_HOURS_S * 1000.0)
    path = folder / "million_hours.webm"
    path.write_bytes(data)
    return path


def _many_streams(folder: Path, count: int) -> Path:
    tracks = [_pcm_track(n) for n in range(1, count + 1)]
    path = folder / f"streams_{count}.mkv"
    path.write_bytes(_matroska(tracks, [(1, b"\0" * 160)] * 4))
    return path


def mkv_65535_streams(folder: Path) -> Path:
    """65 535 PCM tracks declared (2.5 MB of TrackEntry elements), data for the first only."""
    return _many_streams(folder, 65_535)


def mkv_1000_streams(folder: Path) -> Path:
    """1 000 tracks: exactly FFmpeg's default ``max_streams``, so every one becomes a stream."""
    return _many_streams(folder, 1_000)


def mkv_frame_100000_mjpeg(folder: Path) -> Path:
    """A video track claiming 100 000 x 100 000 pixels (10^10; 15 GB per yuv420p frame) over 64x48 MJPEG frames."""
    jpeg = _pyav_video(folder / "source.mkv", "matroska", "mjpeg", frames=1, pix_fmt="yuvj420p")
    data = jpeg.read_bytes()
    jpeg.unlink()
    frame = data[data.find(b"\xff\xd8") :]  # the single MJPEG frame, start of image to end of image
    frame = frame[: frame.find(b"\xff\xd9") + 2]
    path = folder / "frame_100000_mjpeg.mkv"
    path.write_bytes(_matroska([_video_track(1, "V_MJPEG", 100_000, 100_000)], [(1, frame)] * 3))
    return path


def mkv_frame_100000_raw(folder: Path) -> Path:
    """The same claim for uncompressed I420 video, where a decoder would have to trust it: 15 GB per frame."""
    colour_space = _el(0x2EB524, b"I420")
    path = folder / "frame_100000_raw.mkv"
    path.write_bytes(_matroska([_video_track(1, "V_UNCOMPRESSED", 100_000, 100_000, colour_space)],
                               [(1, b"\x80" * 4096)] * 3))
    return path


def mp4_frame_65535(folder: Path) -> Path:
    """A real MP4 whose tkhd and visual sample entry claim 65 535 x 65 535 (the largest MP4 can say)."""
    data = bytearray(corpus_file("media/mdn_rabbit320.mp4").read_bytes())
    for tkhd in _box(data, [b"moov", b"trak", b"tkhd"]):
        version = data[tkhd + 8]
        at = tkhd + 12 + (32 if version == 1 else 20) + 52  # ... matrix, then width and height (16.16)
        struct.pack_into(">II", data, at, 0xFFFF0000, 0xFFFF0000)
    for stsd in _box(data, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"]):
        entry = stsd + 16  # full box header (12) + entry count (4)
        if bytes(data[entry + 4 : entry + 8]) in (b"avc1", b"mp4v", b"hvc1"):
            struct.pack_into(">HH", data, entry + 32, 0xFFFF, 0xFFFF)  # header 8, SampleEntry 8, reserved 16
    path = folder / "frame_65535.mp4"
    path.write_bytes(data)
    return path


CASES: dict[str, Callable[[Path], Path]] = {
    # catalogue 20: the shapes behind PyAV's native crashes
    "mp4_cut_in_first_frame": mp4_cut_in_first_frame,
    "mp4_moov_last_cut_in_first_frame": mp4_moov_last_cut_in_first_frame,
    "mkv_corpus_truncated": mkv_corpus_truncated,
    "mkv_cut_in_first_block": mkv_cut_in_first_block,
    "mkv_bitflipped_header": mkv_bitflipped_header,
    "mkv_lying_sizes": mkv_lying_sizes,
    "mxf_pyav": mxf_pyav,
    "mxf_damaged": mxf_damaged,
    # catalogue 21: resource bombs
    "mp4_duration_million_hours": mp4_duration_million_hours,
    "mkv_duration_million_hours": mkv_duration_million_hours,
    "mkv_65535_streams": mkv_65535_streams,
    "mkv_1000_streams": mkv_1000_streams,
    "mkv_frame_100000_mjpeg": mkv_frame_100000_mjpeg,
    "mkv_frame_100000_raw": mkv_frame_100000_raw,
    "mp4_frame_65535": mp4_frame_65535,
}

_OK = frozenset({OK})
_CORRUPT = frozenset({"corrupt"})
EXPECTED: dict[str, frozenset[str]] = {
    "mp4_cut_in_first_frame": _OK,  # header duration plus a "truncated" warning: nothing is decoded
    "mp4_moov_last_cut_in_first_frame": _CORRUPT,  # the header was after the cut
    "mkv_corpus_truncated": _CORRUPT,
    "mkv_cut_in_first_block": _OK,  # Info and Tracks are intact; the duration is the header's
    "mkv_bitflipped_header": _CORRUPT,
    "mkv_lying_sizes": _OK,  # FFmpeg reads up to the real end of file
    "mxf_pyav": frozenset({"unsupported_format"}),  # not an accepted container: refused before any demuxer runs
    "mxf_damaged": frozenset({"unsupported_format"}),
    "mp4_duration_million_hours": _OK,  # claim kept (the samples agree) with an "implausible" warning
    "mkv_duration_million_hours": _OK,  # claim replaced by the packet scan's 7.8 s, with a warning
    "mkv_65535_streams": _OK,  # FFmpeg keeps the first max_streams (1000) tracks
    "mkv_1000_streams": _OK,
    "mkv_frame_100000_mjpeg": _OK,  # the size is never used: no frame is decoded or allocated
    "mkv_frame_100000_raw": _OK,
    "mp4_frame_65535": _OK,
}

CATALOGUE: dict[str, int] = {name: 20 if i < 8 else 21 for i, name in enumerate(CASES)}


# -- probing in a child: outcome, time (and the parent reads peak RSS) --------------------------------------------


def outcome_of(path: Path, limits: Limits) -> tuple[str, dict[str, object]]:
    """``"ok"`` and the probe's findings, or the ExtractionError code; anything else propagates (a test failure)."""
    try:
        info = probe(path, limits)
    except ExtractionError as err:
        return str(err.code), {"message": err.message}
    return OK, {"kind": info.kind, "duration_s": info.duration_s, "source": info.duration_source,
                "container": info.container, "warnings": list(info.warnings)}


def mutations(seed: int, count: int) -> Iterator[tuple[str, bytes]]:
    """``count`` deterministic variants of the corpus media: bit flips, byte runs, truncations, splices."""
    rng = random.Random(seed)
    sources = [(rel, corpus_file(rel).read_bytes()) for rel in FUZZ_SEEDS]
    for i in range(count):
        rel, data = sources[i % len(sources)]
        blob = bytearray(data)
        how = rng.choice(("flip", "run", "truncate", "splice"))
        if how == "flip":
            for _ in range(rng.randint(1, 16)):
                pos = rng.randrange(min(len(blob), 4096)) if rng.random() < 0.7 else rng.randrange(len(blob))
                blob[pos] ^= 1 << rng.randrange(8)
        elif how == "run":
            pos = rng.randrange(min(len(blob), 4096))
            blob[pos : pos + 8] = bytes([rng.choice((0x00, 0xFF, 0x7F, 0x80))]) * 8
        elif how == "truncate":
            blob = blob[: rng.randrange(1, len(blob))]
        else:
            a = rng.randrange(min(len(blob), 4096))
            b = rng.randrange(len(blob))
            blob[a : a + 64] = blob[b : b + 64]
        yield f"{i:03d}:{how}:{rel}", bytes(blob)


def _peak_rss() -> int:
    """This process's peak resident set (VmHWM), in bytes; exec starts it afresh, unlike a fork's ru_maxrss."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _main(argv: list[str]) -> int:
    limits = Limits()
    # the sandbox child's address-space cap, so a blow-up here fails the same way it would there
    resource.setrlimit(resource.RLIMIT_AS, (limits.max_parse_memory_bytes, limits.max_parse_memory_bytes))
    if argv[:1] == ["measure"]:
        path = Path(argv[1])
        start = time.perf_counter()
        outcome, detail = outcome_of(path, limits)
        seconds = time.perf_counter() - start
        print(json.dumps({"outcome": outcome, "seconds": seconds, "peak_rss": _peak_rss(), **detail}))
        return 0
    if argv[:1] == ["fuzz"]:
        for label, blob in mutations(int(argv[1]), int(argv[2])):
            start = time.perf_counter()
            try:
                info = probe(io.BytesIO(blob), limits, label)
                outcome = f"{OK}:{info.kind}:{info.duration_source}"
            except ExtractionError as err:
                outcome = str(err.code)
            except Exception as exc:  # the finding the loop exists for: reported, not hidden
                outcome = f"unmapped:{type(exc).__name__}"
            print(json.dumps({"input": label, "outcome": outcome, "seconds": time.perf_counter() - start}),
                  flush=True)
        return 0
    sys.stderr.write("usage: python -m tests.hostile_media measure FILE | fuzz SEED COUNT\n")
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
