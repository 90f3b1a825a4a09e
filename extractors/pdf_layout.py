"""Stage 4 of PDF extraction: page lines become furniture, headings and paragraphs.

It exists to hold the layout heuristics, which need no PDF library at all,
only the ``Page`` and ``Line`` records pdfium produced: running headers,
footers and page numbers found in the top and bottom bands; bookmarks placed
on the text that spells them (or at their target); headings by font size when
there is no outline; paragraphs split at gaps, column jumps and size changes;
and the located blocks built from all of that in reading order.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter

from .model import Block, BlockKind, Location
from .pdf_model import WS, Line, OutlineEntry, Page
from .wordcount import count_words

# --- layout heuristics ------------------------------------------------------

HEADING_SIZE_RATIO = 1.15  # font size vs the body's median
HEADING_MAX_WORDS = 12
HEADING_MAX_LINES = 3
TITLE_MAX_LINES = 8  # a long bookmark may quote a whole paragraph opening
HEADING_MAX_LEVELS = 3
PARA_GAP_RATIO = 1.3  # line advance vs the page's median advance
SIZE_CHANGE_RATIO = 1.15
HF_BAND = 0.12  # top/bottom share of the page searched for running headers/footers
HF_LINES_PER_BAND = 3
HF_MIN_SHARE = 0.5
HF_RUN_PAGES = 5

# "12", "- 12 -", "Page 3 of 10", "3/10", "iv" (lower-case roman only: "C" or "X" alone is more
# likely a figure label than a page number).
_PAGE_NUMBER = re.compile(
    r"^[\s\-–—(\[]*(?:(?i:page|p\.|seite|pág\.?|pagina)\s*)?(?:\d{1,4}|[ivxlc]{1,7})"
    r"(?:\s*(?i:/|of|von|de|sur)\s*\d{1,4})?[\s\-–—)\]]*$"
)
_DIGITS = re.compile(r"\d+")
_EDGE_NUMBER = re.compile(r"^(?:page\s+)?#(?:\s|$)|(?:^|\s)(?:page\s+)?#$")


# --- running headers, footers and page numbers ------------------------------


def mark_headers_footers(pages: list[Page]) -> None:
    """Running headers/footers and page numbers become HEADER_FOOTER lines.

    Only the outermost lines of each page's top and bottom band are looked
    at. A line there is furniture when, digits normalised and a leading or
    trailing page number dropped, it has two letters or more (so table rows of
    dates are not caught) and recurs on >= half the pages with text, or on a
    run of HF_RUN_PAGES pages (the running head of one part of a long document;
    every other page counts as a run, as in books). Bare page numbers are the
    first number-only line from the edge, kept when its value follows the page
    order (a figure label near the margin does not).
    """
    chains = {page.number: (_edge_chain(page, top=True), _edge_chain(page, top=False)) for page in pages}
    repeated = _repeated_keys(pages, chains)
    numbers = _page_number_lines(pages, chains)
    for page in pages:
        for chain in chains[page.number]:
            for i in chain:
                if (page.number, i) in numbers or _hf_key(page.lines[i].text) in repeated:
                    page.lines[i].role = "hf"


def _edge_chain(page: Page, top: bool) -> list[int]:
    """Up to HF_LINES_PER_BAND line indexes inside the top (or bottom) band, nearest the edge first."""
    band = HF_BAND * page.height
    if top:
        order = sorted(range(len(page.lines)), key=lambda i: -page.lines[i].top)
        inside = [i for i in order if page.lines[i].top >= page.box[3] - band]
    else:
        order = sorted(range(len(page.lines)), key=lambda i: page.lines[i].bottom)
        inside = [i for i in order if page.lines[i].bottom <= page.box[1] + band]
    return inside[:HF_LINES_PER_BAND]


def _repeated_keys(pages: list[Page], chains: dict[int, tuple[list[int], list[int]]]) -> set[str]:
    seen_on: dict[str, set[int]] = {}
    for page in pages:
        for chain in chains[page.number]:
            for i in chain:
                key = _hf_key(page.lines[i].text)
                if sum(ch.isalpha() for ch in key) >= 2:
                    seen_on.setdefault(key, set()).add(page.number)
    threshold = max(2, math.ceil(HF_MIN_SHARE * sum(1 for page in pages if page.lines)))
    return {key for key, nums in seen_on.items() if len(nums) >= threshold or _longest_run(nums) >= HF_RUN_PAGES}


def _page_number_lines(pages: list[Page], chains: dict[int, tuple[list[int], list[int]]]) -> set[tuple[int, int]]:
    """(page, line) of page numbers: per band the first number-only line whose offset from the page index recurs."""
    found: list[tuple[int, int, int | None]] = []  # page, line, value (None for roman numerals)
    for page in pages:
        for chain in chains[page.number]:
            for i in chain:
                if _PAGE_NUMBER.match(page.lines[i].text):
                    digits = _DIGITS.search(page.lines[i].text)
                    found.append((page.number, i, int(digits.group()) if digits else None))
                    break
    offsets = Counter(value - number for number, _, value in found if value is not None)
    needed = min(3, sum(1 for page in pages if page.lines))
    return {(n, i) for n, i, value in found if value is None or offsets[value - n] >= needed}


def _longest_run(numbers: set[int]) -> int:
    """Longest chain of page numbers at most two apart (recto/verso running heads alternate)."""
    best = run = 0
    prev: int | None = None
    for n in sorted(numbers):
        run = run + 1 if prev is not None and n - prev <= 2 else 1
        best = max(best, run)
        prev = n
    return best


def _hf_key(text: str) -> str:
    """Digits normalised; a page number at either end dropped ("47700 Federal Register" = "Federal Register 47699")."""
    key = WS.sub(" ", _DIGITS.sub("#", text.casefold())).strip()
    return _EDGE_NUMBER.sub("", key).strip()


# --- headings from the outline ----------------------------------------------


def place_outline_headings(pages: list[Page], outline: list[OutlineEntry]) -> bool:
    """Put each bookmark on its page: on the text that spells its title, else at its /XYZ top.

    A title found nowhere in the page's text is still inserted (sections need
    it) except on scans and OCR'd scans, where it would add words the page does
    not have.
    """
    cursors = [0] * len(pages)
    last_key: dict[int, str] = {}
    placed = False
    for entry in outline:
        if entry.page is None or not 0 <= entry.page < len(pages) or not pages[entry.page].lines:
            continue
        if last_key.get(entry.page) == _key(entry.title):
            continue  # the same bookmark twice in a row: one heading
        page = pages[entry.page]
        match = _find_title(page, entry, cursors[entry.page])
        if match is not None:
            start, span, cut = match
            if cut is not None:
                _split_line(page, start + span - 1, cut)
            _mark_heading(page, start, span, entry.level)
            cursors[entry.page] = start + span
        elif not page.ocr:  # an OCR layer does not carry the bookmark's words either
            at = _insert_position(page, entry.top, cursors[entry.page])
            page.inserts.setdefault(at, []).append((entry.level, entry.title))
            cursors[entry.page] = at
        else:
            continue
        last_key[entry.page] = _key(entry.title)
        placed = True
    return placed


def _find_title(page: Page, entry: OutlineEntry, start: int) -> tuple[int, int, int | None] | None:
    """Where the title's letters/digits are spelt by body text from ``start``: (line, lines, cut).

    ``cut`` is the character offset in the last line where the title ends, or
    None when it ends with the line. A leading section number on either side
    is ignored ("1 Foo" matches "Foo"). Whole-line matches beat matches that
    end inside a line (a run-in heading, or a long bookmark quoting the start
    of a paragraph); among equals the first at or below the /XYZ top wins.
    """
    want = _key(entry.title)
    if not want:
        return None
    truncated = entry.title.rstrip().endswith(("...", "…"))
    keys = [_key(line.text) if line.role == "body" else None for line in page.lines]
    whole: list[tuple[int, int, int | None]] = []
    inside: list[tuple[int, int, int | None]] = []
    for i in range(start, len(page.lines)):
        found = _match_at(page, keys, i, want, truncated)
        if found is not None:
            (whole if found[2] is None else inside).append(found)
    for matches in (whole, inside):
        if matches:
            return _nearest_top(page, matches, entry.top)
    return None


def _match_at(
    page: Page, keys: list[str | None], i: int, want: str, truncated: bool
) -> tuple[int, int, int | None] | None:
    first = keys[i]
    if not first or (first[0] != want[0] and not first[0].isdigit()):
        return None  # cheap reject: the title cannot start here
    run: list[str] = []
    for key in keys[i : i + TITLE_MAX_LINES]:
        if key is None:
            break
        run.append(key)
    end = _title_end("".join(run), want)
    if end is None:
        return None
    for n, key in enumerate(run):
        if end <= len(key):
            if end == len(key):
                return i, n + 1, None
            cut = _char_offset(page.lines[i + n].text, end)
            boundary = not page.lines[i + n].text[cut : cut + 1].isalnum()
            return (i, n + 1, cut) if (boundary or truncated) and n < HEADING_MAX_LINES else None
        end -= len(key)
    return None


def _title_end(full: str, want: str) -> int | None:
    """Length of ``full``'s key prefix that spells ``want`` (leading section numbers ignored)."""
    if full.startswith(want):
        return len(want)
    digits = "0123456789"
    lead = len(full) - len(full.lstrip(digits))
    bare = want.lstrip(digits)
    if bare and full[lead:].startswith(bare):
        return lead + len(bare)
    return None


def _char_offset(text: str, key_length: int) -> int:
    """Index in ``text`` just after the character that completes ``key_length`` key characters."""
    n = 0
    for index, ch in enumerate(text):
        if ch.isalnum():
            n += len(ch.casefold())
            if n >= key_length:
                return index + 1
    return len(text)


def _nearest_top(
    page: Page, matches: list[tuple[int, int, int | None]], top: float | None
) -> tuple[int, int, int | None]:
    if top is not None:
        for match in matches:
            if page.lines[match[0]].top <= top + 2:
                return match
    return matches[0]


def _split_line(page: Page, index: int, cut: int) -> None:
    """Split a line where a heading ends; the rest stays body text on the same baseline."""
    line = page.lines[index]
    head, rest = line.text[:cut].strip(), line.text[cut:].strip()
    if not head or not rest:
        return
    line.text = head
    page.lines.insert(index + 1, Line(text=rest, bottom=line.bottom, top=line.top, size=line.size))


def _key(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _mark_heading(page: Page, start: int, span: int, level: int) -> None:
    page.lines[start].role = "heading"
    page.lines[start].level = level
    page.lines[start].span = span
    for j in range(start + 1, start + span):
        page.lines[j].role = "heading_cont"


def _insert_position(page: Page, top: float | None, start: int) -> int:
    """Before the first body line at or below ``top`` (the bookmark's target), else at ``start``."""
    if top is None:
        return start
    for i in range(start, len(page.lines)):
        if page.lines[i].role == "body" and page.lines[i].top <= top + 2:
            return i
    return len(page.lines)


# --- headings by font size, paragraphs, blocks ------------------------------


def font_size_headings(pages: list[Page]) -> bool:
    """Short paragraphs set >= 15% above the body's median size become headings, levels by size rank."""
    text_pages = [p for p in pages if not p.ocr]
    body = _body_size(text_pages)
    if body is None:
        return False
    found: list[tuple[Page, list[int], float]] = []
    for page in text_pages:
        for group in _paragraph_groups(page):
            size = page.lines[group[0]].size
            if size >= HEADING_SIZE_RATIO * body and _is_heading_text(page, group):
                found.append((page, group, size))
    if not found:
        return False
    ranks = sorted({round(size * 2) / 2 for _, _, size in found}, reverse=True)
    for page, group, size in found:
        level = min(ranks.index(round(size * 2) / 2) + 1, HEADING_MAX_LEVELS)
        _mark_heading(page, group[0], len(group), level)
    return True


def _body_size(pages: list[Page]) -> float | None:
    """Median font size weighted by characters, over body lines."""
    weights: Counter[float] = Counter()
    for page in pages:
        for line in page.lines:
            if line.role == "body" and line.size > 0:
                weights[round(line.size, 1)] += len(line.text)
    if not weights:
        return None
    half = sum(weights.values()) / 2
    running = 0
    for size in sorted(weights):
        running += weights[size]
        if running >= half:
            return size
    return None


def _is_heading_text(page: Page, group: list[int]) -> bool:
    if len(group) > HEADING_MAX_LINES:
        return False
    text = " ".join(page.lines[i].text for i in group)
    letters = sum(1 for ch in text if ch.isalpha())
    return letters >= 2 and count_words(text) <= HEADING_MAX_WORDS


def _paragraph_groups(page: Page) -> list[list[int]]:
    """Consecutive body lines split at large vertical gaps, upward jumps (columns) and size changes."""
    advance = _median_advance(page)
    groups: list[list[int]] = []
    current: list[int] = []
    for i, line in enumerate(page.lines):
        if line.role != "body" or i in page.inserts:
            if current:
                groups.append(current)
            current = []
            if line.role != "body":
                continue
        if current and _breaks(page.lines[current[-1]], line, advance):
            groups.append(current)
            current = []
        current.append(i)
    if current:
        groups.append(current)
    return groups


def _median_advance(page: Page) -> float:
    advances = []
    for prev, cur in zip(page.lines, page.lines[1:], strict=False):
        step = prev.bottom - cur.bottom
        if 0.3 * prev.size < step < 3 * prev.size:
            advances.append(step)
    if advances:
        return statistics.median(advances)
    sizes = [line.size for line in page.lines] or [10.0]
    return 1.2 * statistics.median(sizes)


def _breaks(prev: Line, cur: Line, advance: float) -> bool:
    step = prev.bottom - cur.bottom
    if step < -0.5 * prev.height or step > PARA_GAP_RATIO * advance:
        return True
    small, large = sorted((prev.size, cur.size))
    return small > 0 and large / small > SIZE_CHANGE_RATIO


def page_blocks(page: Page, display: str, heading_source: str | None) -> list[Block]:
    """Blocks in pdfium's reading order: headers/footers, headings, paragraphs."""
    groups = {group[0]: group for group in _paragraph_groups(page)}
    blocks: list[Block] = []

    def add(text: str, kind: BlockKind, level: int | None = None) -> None:
        source = heading_source if kind is BlockKind.HEADING else None
        location = Location(file=display, page=page.number)
        blocks.append(Block(text=text, kind=kind, location=location, level=level, detected_by=source))

    for i, line in enumerate(page.lines):
        for level, title in page.inserts.get(i, []):
            add(title, BlockKind.HEADING, level)
        if line.role == "hf":
            add(line.text, BlockKind.HEADER_FOOTER)
        elif line.role == "heading":
            add(" ".join(page.lines[j].text for j in range(i, i + line.span)), BlockKind.HEADING, line.level)
        elif i in groups:
            add(" ".join(page.lines[j].text for j in groups[i]), BlockKind.PARAGRAPH)
    for level, title in page.inserts.get(len(page.lines), []):
        add(title, BlockKind.HEADING, level)
    return blocks
