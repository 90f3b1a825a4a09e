"""Word/LibreOffice-compatible counting rules, pinned with examples (also in the README)."""

from __future__ import annotations

import pytest

from extractors.wordcount import CountMode, count_words, word_spans


@pytest.mark.parametrize(
    ("text", "word", "libreoffice"),
    [
        ("The quick brown fox", 4, 4),
        ("real-time father-in-law vis-a-vis", 3, 3),  # hyphenated compounds are one word in both
        ("and/or user/config 06/30/2003", 3, 3),  # slashes join
        ("be—one of—many", 2, 4),  # em dash: Word joins, LibreOffice separates
        ("pages 10–12", 2, 3),  # en dash
        ("well--known", 1, 2),  # double hyphen is a dash to LibreOffice
        ("a — b", 2, 2),  # a spaced dash has no letter or digit: not a word
        ("abc123 1.23 \"$\" http://www.example.com", 3, 3),  # "$" alone has no letter/digit
        ("   \t\n  ", 0, 0),
        ("", 0, 0),
        ("• bullet • points", 2, 2),
        ("日本語のテキスト", 8, 8),  # CJK: every character is a word, as Word counts it
        ("Word文書です", 5, 5),  # one Latin run + four CJK characters
        ("Привет мир", 2, 2),  # Cyrillic letters are letters
        ("مرحبا بالعالم", 2, 2),  # Arabic
    ],
)
def test_counts(text: str, word: int, libreoffice: int) -> None:
    assert count_words(text, CountMode.WORD) == word
    assert count_words(text, CountMode.LIBREOFFICE) == libreoffice


def test_spans_point_at_counted_words() -> None:
    text = "Intro — the real-time 日本 system"
    spans = word_spans(text)
    assert [text[a:b] for a, b in spans] == ["Intro", "the", "real-time", "日", "本", "system"]
    assert len(spans) == count_words(text)
