"""Resolve the few style properties that decide what a paragraph is.

Headings come from built-in heading styles or outline levels (inherited
through ``w:basedOn``); bold and hidden text can also come from a style, not
only from direct formatting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from .ooxml import W_NS

W = f"{{{W_NS}}}"
_HEADING_NAME = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
_TOC_NAME = re.compile(r"^(toc\s*[1-9]|toc heading|table of figures)$", re.IGNORECASE)


@dataclass(slots=True)
class Style:
    name: str
    based_on: str | None
    outline_level: int | None  # 0-based as in the XML; 9 = body text
    bold: bool | None
    vanish: bool | None
    numbered: bool


def on(el: etree._Element | None) -> bool | None:
    """A w:b / w:vanish toggle: present means on unless val is false/0/off."""
    if el is None:
        return None
    return el.get(f"{W}val", "true").lower() not in {"false", "0", "off"}


class Styles:
    def __init__(self, root: etree._Element | None) -> None:
        self._raw: dict[str, Style] = {}
        self.default_paragraph: str | None = None
        if root is not None:
            self._load(root)
        self._cache: dict[str, Style] = {}

    def _load(self, root: etree._Element) -> None:
        for st in root.iter(f"{W}style"):
            sid = st.get(f"{W}styleId") or ""
            name_el, based = st.find(f"{W}name"), st.find(f"{W}basedOn")
            ppr, rpr = st.find(f"{W}pPr"), st.find(f"{W}rPr")
            lvl = ppr.find(f"{W}outlineLvl") if ppr is not None else None
            self._raw[sid] = Style(
                name=(name_el.get(f"{W}val") if name_el is not None else sid) or sid,
                based_on=based.get(f"{W}val") if based is not None else None,
                outline_level=_int(lvl.get(f"{W}val")) if lvl is not None else None,
                bold=on(rpr.find(f"{W}b")) if rpr is not None else None,
                vanish=on(rpr.find(f"{W}vanish")) if rpr is not None else None,
                numbered=ppr is not None and ppr.find(f"{W}numPr") is not None,
            )
            is_default = (st.get(f"{W}default") or "").lower() in {"1", "true", "on"}
            if st.get(f"{W}type") == "paragraph" and is_default:
                self.default_paragraph = sid

    def get(self, sid: str | None) -> Style:
        sid = sid or self.default_paragraph or ""
        if sid not in self._cache:
            self._cache[sid] = self._resolve(sid, depth=0)
        return self._cache[sid]

    def _resolve(self, sid: str, depth: int) -> Style:
        raw = self._raw.get(sid)
        if raw is None:
            return Style(sid, None, None, None, None, False)
        if raw.based_on is None or depth > 20 or raw.based_on == sid:
            return raw
        parent = self._resolve(raw.based_on, depth + 1)
        return Style(
            name=raw.name,
            based_on=raw.based_on,
            outline_level=raw.outline_level if raw.outline_level is not None else parent.outline_level,
            bold=raw.bold if raw.bold is not None else parent.bold,
            vanish=raw.vanish if raw.vanish is not None else parent.vanish,
            numbered=raw.numbered or parent.numbered,
        )

    def heading_level(self, sid: str | None) -> int | None:
        """1-based heading level from the style's name or outline level."""
        st = self.get(sid)
        m = _HEADING_NAME.match(st.name.strip())
        if m:
            return int(m.group(1))
        if st.outline_level is not None and 0 <= st.outline_level <= 8:
            return st.outline_level + 1
        return None

    def is_title(self, sid: str | None) -> bool:
        return self.get(sid).name.strip().lower() in {"title", "subtitle"}

    def is_toc(self, sid: str | None) -> bool:
        return bool(_TOC_NAME.match(self.get(sid).name.strip()))

    def is_caption(self, sid: str | None) -> bool:
        return self.get(sid).name.strip().lower() == "caption"


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None
