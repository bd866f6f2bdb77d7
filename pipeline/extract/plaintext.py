"""Plain text: paragraphs, plus the header lines (title, byline, dateline) at the top."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime

from pipeline.extract.textutil import ZONE_OFFSETS, clean_author, clean_inline, parse_published
from pipeline.models import Block, Extracted

BYLINE = re.compile(r"^by\s+(?P<name>[^\d.!?]{2,80})$", re.IGNORECASE)
DATELINE_WORDS = re.compile(
    r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\b|\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}",
    re.IGNORECASE,
)
WEEKDAYS = re.compile(r"\b(mon|tues|wednes|thurs|fri|satur|sun)day\b|\b[ap]\.?m\.?\b", re.IGNORECASE)
DATELINE_PREFIX = re.compile(r"^(published|updated|posted)( on)?:?\s+", re.IGNORECASE)
HEADER_SCAN = 4
HARD_WRAP_MIN, HARD_WRAP_MAX = 40, 100


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs from blank-line groups; a group of unwrapped lines gives one paragraph per line."""
    paragraphs: list[str] = []
    for group in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [clean_inline(line) for line in group.split("\n")]
        lines = [line for line in lines if line]
        if _is_hard_wrapped(lines):
            paragraphs.append(" ".join(lines))
        else:
            paragraphs.extend(lines)
    return paragraphs


def _is_hard_wrapped(lines: list[str]) -> bool:
    """True when every line but the last has the width of a wrapped column."""
    return len(lines) > 1 and all(HARD_WRAP_MIN <= len(line) <= HARD_WRAP_MAX for line in lines[:-1])


def read_plain_text(text: str, *, title: str | None = None) -> Extracted:
    """Blocks of a plain-text article, with its header lines lifted into metadata."""
    paragraphs = split_paragraphs(text)
    extracted = Extracted(blocks=(), title=title)
    body_start = 0
    for index, line in enumerate(paragraphs[:HEADER_SCAN]):
        header = _read_header_line(line, extracted, is_first=index == 0, has_more=index + 1 < len(paragraphs))
        if header is None:
            break
        extracted, body_start = header, index + 1
    blocks = tuple(Block("paragraph", p) for p in paragraphs[body_start:])
    return replace(extracted, blocks=blocks)


def _read_header_line(line: str, extracted: Extracted, *, is_first: bool, has_more: bool) -> Extracted | None:
    """The metadata with this header line applied, or None when the line is body text."""
    if extracted.title and line.casefold() == extracted.title.casefold():
        return extracted
    byline = BYLINE.match(line)
    if byline and len(line.split()) <= 10:
        return replace(extracted, author=clean_author(byline.group("name")))
    dateline = _dateline(line)
    if dateline is not None:
        return replace(extracted, published_at=extracted.published_at or dateline)
    if is_first and has_more and not extracted.title and looks_like_title(line):
        return replace(extracted, title=line)
    return None


def _dateline(line: str) -> date | datetime | None:
    """A line that is nothing but a date (optionally "Published: …", or "Published … | Updated …"), parsed.

    Of a published and an updated date, the first one written wins."""
    parsed = [_single_dateline(part.strip()) for part in line.split("|")]
    return parsed[0] if all(p is not None for p in parsed) else None


def _single_dateline(line: str) -> date | datetime | None:
    stripped = DATELINE_PREFIX.sub("", line)
    if len(stripped.split()) > 8 or not DATELINE_WORDS.search(stripped):
        return None
    leftover = WEEKDAYS.sub("", DATELINE_WORDS.sub("", stripped))
    if any(
        word.upper() not in ZONE_OFFSETS and word.lower() not in {"at", "on"}
        for word in re.findall(r"[A-Za-z]{2,}", leftover)
    ):
        return None
    return parse_published(re.sub(r"\b(at|on)\b", " ", stripped))


def looks_like_title(line: str) -> bool:
    """Short, without sentence-final punctuation other than a question mark."""
    words = line.split()
    return 1 <= len(words) <= 25 and len(line) <= 200 and not line.endswith((".", ",", ";", ":"))
