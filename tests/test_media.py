"""extractors.media against the real corpus: durations within max(0.1 s, 1 %) of ffprobe, kinds, edge cases."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest

from extractors.base import Context
from extractors.errors import ErrorCode, ExtractionError
from extractors.limits import Limits
from extractors.media import MediaExtractor, MediaInfo, probe
from extractors.model import Document

from .conftest import corpus_file

pytestmark = pytest.mark.corpus

LIMITS = Limits()

# file under media/: (ffprobe duration from CATALOGUE.tsv, kind, container). None = ffprobe says N/A.
CATALOGUE: dict[str, tuple[float | None, str, str]] = {
    "-video-with-dash-.mp4": (5.0, "video", "mp4"),
    "mdn_bear.mp3": (6.295510, "audio", "mp3"),
    "mdn_monster.webm": (7.333, "video", "webm"),
    "mdn_rabbit320.mp4": (7.8, "video", "mp4"),
    "mdn_rabbit320.webm": (7.8, "video", "webm"),
    "mdn_viper.mp3": (41.038367, "audio", "mp3"),
    "mdn_viper.ogg": (40.984059, "audio", "ogg"),
    "moviepy_chaplin.mp4": (9.64, "video", "mp4"),
    "moviepy_no_duration.webm": (None, "video", "webm"),
    "moviepy_smpte-2997.mp4": (10.048, "video", "mp4"),
    "moviepy_video_with_failing_audio.mp4": (11.259, "video", "mp4"),
    "moviepy_with-attached-pic.mp3": (1.018776, "audio", "mp3"),  # mjpeg cover art is not video
    "mutagen_8k-1ch-3.5s-silence.aif": (3.5, "audio", "aiff"),
    "mutagen_alac.m4a": (3.684717, "audio", "m4a"),
    "mutagen_silence-2s-PCM-44100-16-ID3v23.wav": (2.0, "audio", "wav"),  # ID3 png is not video
    "pymediainfo_issue55.flv": (1.075, "audio", "flv"),
    "pymediainfo_sample.mp4": (0.98, "video", "mp4"),
    "tinytag_flac453sStereo.flac": (453.514739, "audio", "flac"),
    "tinytag_test.m4a": (314.978685, "audio", "m4a"),  # truncated: header duration, plus a warning
    "tinytag_test.opus": (1.0, "audio", "ogg"),
    "tinytag_test3sMono.wav": (3.0, "audio", "wav"),
    "tinytag_vbr_xing_header.mp3": (3.944490, "audio", "mp3"),
}


def _close(got: float | None, want: float) -> bool:
    return got is not None and abs(got - want) <= max(0.1, 0.01 * want)


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_duration_kind_and_container(name: str) -> None:
    want, kind, container = CATALOGUE[name]
    info = probe(corpus_file(f"media/{name}"), LIMITS)
    assert (info.kind, info.container) == (kind, container)
    if want is None:
        assert info.duration_source == "packet_scan"
        assert info.duration_s is not None and 4.8 <= info.duration_s <= 5.1
    else:
        assert info.duration_source == "header"
        assert _close(info.duration_s, want), f"{name}: {info.duration_s} vs ffprobe {want}"


def test_table_covers_catalogue(corpus: Path) -> None:
    """A media file added to the corpus must be added to the table above."""
    with open(corpus / "CATALOGUE.tsv", newline="", encoding="utf-8") as fh:
        paths = [row["path"] for row in csv.DictReader(fh, delimiter="\t")]
    media = {p.removeprefix("media/") for p in paths if p.startswith("media/") and (corpus / p).exists()}
    assert media == set(CATALOGUE)


def test_flac_453_seconds() -> None:
    info = probe(corpus_file("media/tinytag_flac453sStereo.flac"), LIMITS)
    assert info.duration_s is not None and abs(info.duration_s - 453.5) < 0.1
    assert info.duration_s > 7 * 60  # long media in a tiny (84 KB) file


def test_truncated_m4a_keeps_header_duration_and_warns() -> None:
    info = probe(corpus_file("media/tinytag_test.m4a"), LIMITS)
    assert info.duration_source == "header" and _close(info.duration_s, 314.978685)
    assert any("truncated" in w for w in info.warnings)


def test_intact_files_have_no_warnings() -> None:
    for name in ("mdn_rabbit320.mp4", "mutagen_alac.m4a", "pymediainfo_sample.mp4", "-video-with-dash-.mp4"):
        assert probe(corpus_file(f"media/{name}"), LIMITS).warnings == ()


def test_mdat_cut_short_warns(tmp_path: Path) -> None:
    data = corpus_file("media/mdn_rabbit320.mp4").read_bytes()  # moov first, then mdat
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    info = probe(cut, LIMITS)
    assert _close(info.duration_s, 7.8)
    assert any("'mdat' box ends past the end" in w for w in info.warnings)


def test_moov_lost_to_truncation_is_corrupt(tmp_path: Path) -> None:
    data = corpus_file("media/-video-with-dash-.mp4").read_bytes()  # mdat first, moov at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:800])
    with pytest.raises(ExtractionError) as err:
        probe(cut, LIMITS)
    assert err.value.code is ErrorCode.CORRUPT


def test_dash_filename_relative_to_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name starting with '-' is never seen by FFmpeg as an option or special input."""
    path = corpus_file("media/-video-with-dash-.mp4")
    monkeypatch.chdir(path.parent)
    info = probe(Path(path.name), LIMITS)
    assert info.kind == "video" and _close(info.duration_s, 5.0)


def test_bytesio_source_is_read_from_start_and_rewound() -> None:
    buf = io.BytesIO(corpus_file("media/mdn_rabbit320.mp4").read_bytes())
    buf.seek(123)
    info = probe(buf, LIMITS, name="ppt/media/media1.mp4")
    assert (info.kind, info.container, info.duration_source) == ("video", "mp4", "header")
    assert _close(info.duration_s, 7.8)
    assert buf.tell() == 123 and not buf.closed


def test_bytesio_packet_scan() -> None:
    buf = io.BytesIO(corpus_file("media/moviepy_no_duration.webm").read_bytes())
    info = probe(buf, LIMITS)
    assert info.duration_source == "packet_scan" and info.duration_s is not None and 4.8 <= info.duration_s <= 5.1


def test_packet_scan_cap_gives_lower_bound_with_warning() -> None:
    info = probe(corpus_file("media/moviepy_no_duration.webm"), Limits(media_scan_packets=10))
    assert info.duration_source == "packet_scan"
    assert info.duration_s is not None and info.duration_s < 4.8
    assert any("10 packets" in w for w in info.warnings)


def test_truncated_mkv_is_corrupt() -> None:
    """Its Matroska header ends mid-element: FFmpeg cannot open it, so no duration can be trusted."""
    with pytest.raises(ExtractionError) as err:
        probe(corpus_file("bad/truncated_pymediainfo_sample.mkv"), LIMITS)
    assert err.value.code is ErrorCode.CORRUPT
    assert "\n" not in err.value.message and "truncated_pymediainfo_sample.mkv" in err.value.message


@pytest.mark.parametrize(
    "payload", [bytes(range(256)) * 20, b"", b"\x1aE\xdf\xa3" + b"\xff" * 100, b"ID3" + b"\0" * 64]
)
def test_garbage_is_corrupt(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(payload)
    with pytest.raises(ExtractionError) as err:
        probe(path, LIMITS)
    assert err.value.code in {ErrorCode.CORRUPT, ErrorCode.UNSUPPORTED_FORMAT}
    with pytest.raises(ExtractionError):
        probe(io.BytesIO(payload), LIMITS)


def test_random_bytes_are_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp3"
    path.write_bytes(bytes((i * 7919 + 13) % 251 for i in range(8000)))
    with pytest.raises(ExtractionError) as err:
        probe(path, LIMITS)
    assert err.value.code is ErrorCode.CORRUPT


def test_playlist_is_refused_without_opening_what_it_names(tmp_path: Path) -> None:
    """An HLS playlist would make FFmpeg open other files or URLs; it is not an accepted container."""
    target = corpus_file("media/mdn_rabbit320.mp4")
    playlist = tmp_path / "evil.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{target}\n#EXT-X-ENDLIST\n")
    with pytest.raises(ExtractionError) as err:
        probe(playlist, LIMITS)
    assert err.value.code is ErrorCode.UNSUPPORTED_FORMAT


def test_missing_file_is_typed(tmp_path: Path) -> None:
    with pytest.raises(ExtractionError):
        probe(tmp_path / "nope.mp4", LIMITS)


def test_extractor_appends_media_and_warnings() -> None:
    path = corpus_file("media/tinytag_test.m4a")
    ctx = Context(path=path, display_name="evidence/interview.m4a", limits=LIMITS)
    doc = Document(file=ctx.display_name, format="media", sha256="", size=path.stat().st_size)
    MediaExtractor().extract(ctx, doc)
    (media,) = doc.media
    assert (media.name, media.kind, media.container, media.duration_source) == (
        "evidence/interview.m4a",
        "audio",
        "m4a",
        "header",
    )
    assert media.location.file == "evidence/interview.m4a"
    assert doc.warnings and doc.warnings[0].startswith("evidence/interview.m4a:")


def test_media_info_is_frozen() -> None:
    info = MediaInfo("audio", 1.0, "header", "mp3")
    with pytest.raises(AttributeError):
        info.kind = "video"  # type: ignore[misc]


def test_whole_media_folder_is_fast(corpus: Path) -> None:
    files = sorted(p for p in (corpus / "media").iterdir() if p.is_file())
    start = time.perf_counter()
    for path in files:
        probe(path, LIMITS)
    assert time.perf_counter() - start < 5.0, "header probing should take milliseconds per file"


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_truncated_or_damaged_copies_never_crash(name: str) -> None:
    """Cut and byte-flipped copies give a MediaInfo or an ExtractionError, never another exception or a hang."""
    data = corpus_file(f"media/{name}").read_bytes()
    variants = [data[: len(data) * k // 8] for k in range(8)]
    variants += [
        data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :] for i in range(7, len(data), max(1, len(data) // 8))
    ]
    for blob in variants:
        try:
            info = probe(io.BytesIO(blob), LIMITS, name)
        except ExtractionError as err:
            assert err.code in {ErrorCode.CORRUPT, ErrorCode.UNSUPPORTED_FORMAT}
        else:
            assert info.kind in {"audio", "video"} and info.duration_source in {"header", "packet_scan", "unknown"}
