"""Quotation marks: pair them within paragraphs, robust to odd or unclosed marks."""

from __future__ import annotations

from dataclasses import dataclass

OPENING = "“„«"
CLOSING = "”»"
STRAIGHT = '"'
PARAGRAPH_BREAK = "\n"


@dataclass(frozen=True)
class QuotedSpan:
    """Offsets of the text between a pair of marks (marks excluded), and the marks' span."""

    start: int
    end: int
    outer_start: int
    outer_end: int


def quoted_spans(text: str) -> list[QuotedSpan]:
    """Every quoted span, paragraph by paragraph, with marks excluded.

    An opening mark without its closing one inside the same paragraph is
    dropped, unless the paragraph opens with it (a block quote running to the
    paragraph's end) or the next paragraph opens with a mark (the convention
    for a quote running over paragraphs); a quote therefore never swallows the
    rest of the article.
    """
    spans: list[QuotedSpan] = []
    offset = 0
    paragraphs = text.split(PARAGRAPH_BREAK)
    for index, paragraph in enumerate(paragraphs):
        following = next((p.lstrip() for p in paragraphs[index + 1 :] if p.strip()), "")
        spans.extend(_paragraph_spans(paragraph, offset, runs_on=following[:1] in {*OPENING, STRAIGHT}))
        offset += len(paragraph) + len(PARAGRAPH_BREAK)
    return spans


def _paragraph_spans(paragraph: str, offset: int, *, runs_on: bool = False) -> list[QuotedSpan]:
    spans: list[QuotedSpan] = []
    open_at: int | None = None
    for index, char in enumerate(paragraph):
        if char in OPENING or (char == STRAIGHT and open_at is None and _opens(paragraph, index)):
            open_at = index
        elif (char in CLOSING or char == STRAIGHT) and open_at is not None:
            spans.extend(_span(paragraph, open_at, index + 1, offset))
            open_at = None
    if open_at == 0 or (open_at is not None and runs_on):
        spans.extend(_span(paragraph, open_at, len(paragraph) + 1, offset))
    return spans


def _opens(paragraph: str, index: int) -> bool:
    """A straight mark opens when it follows a space, a bracket or the paragraph start."""
    return index == 0 or paragraph[index - 1].isspace() or paragraph[index - 1] in "([{—–-:"


def _span(paragraph: str, outer_start: int, outer_end: int, offset: int) -> list[QuotedSpan]:
    start, end = outer_start + 1, min(outer_end - 1, len(paragraph))
    while start < end and paragraph[start].isspace():
        start += 1
    while end > start and paragraph[end - 1].isspace():
        end -= 1
    if end - start < 2:
        return []
    return [QuotedSpan(offset + start, offset + end, offset + outer_start, offset + min(outer_end, len(paragraph)))]
