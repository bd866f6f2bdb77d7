"""Sections: find headings, lay the blocks out as one text, and cut it into spans.

Markup (HTML h1–h6, Markdown ``#``) marks headings directly. In plain text a
heading is recognised by shape and context: a short line without
sentence-final punctuation, in Title Case, ALL CAPS, a question or a quoted
phrase (“Alarming mortality rate”), standing alone between paragraphs and
followed by body text. A shorter line in sentence case ("Overcrowded
conditions worsen risk") is a heading only between two prose paragraphs.
"""

from __future__ import annotations

import re

from pipeline.models import Block, Extracted, Laid, Section

PARAGRAPH_SEPARATOR = "\n\n"
HEADING_MAX_WORDS = 12
HEADING_MAX_CHARS = 90
SENTENCE_CASE_MAX_WORDS = 8
PROSE_MIN_WORDS = 15
CREDIT_START = re.compile(r"(?:by|photos?|images?|sources?|credits?|video|watch|file)\b", re.IGNORECASE)
SENTENCE_END = (".", "!", "?", "”", '"', "’", ")")
MINOR_WORDS = frozenset("a an and as at but by for from in into nor of on or per the to vs via with over under".split())
WORD = re.compile(r"[^\W\d_][\w’'\-]*")


def lay_out(source: str, extracted: Extracted, *, plain_text: bool) -> Laid:
    """The document as one text with its sections; plain text also gets its headings found by their shape."""
    blocks = mark_plain_headings(extracted.blocks) if plain_text else extracted.blocks
    text, sections = layout(blocks)
    return Laid(source=source, extracted=extracted, text=text, sections=sections)


def mark_plain_headings(blocks: tuple[Block, ...]) -> tuple[Block, ...]:
    """Turn paragraphs that are shaped and placed like headings into heading blocks."""
    marked = list(blocks)
    for index, block in enumerate(blocks):
        if block.kind != "paragraph" or index + 1 >= len(blocks):
            continue
        following = blocks[index + 1]
        if following.kind == "heading" or not looks_like_heading(block.text):
            continue
        if looks_like_heading(following.text):
            continue
        marked[index] = Block("heading", block.text, level=2)
    for index in range(1, len(blocks) - 1):
        before, block, after = marked[index - 1], marked[index], marked[index + 1]
        if (
            block.kind == "paragraph"
            and _is_prose(before)
            and _is_prose(after)
            and _is_sentence_case_heading(block.text)
        ):
            marked[index] = Block("heading", block.text, level=2)
    return tuple(marked)


def _is_prose(block: Block) -> bool:
    return (
        block.kind in {"paragraph", "quote"}
        and len(block.text.split()) >= PROSE_MIN_WORDS
        and block.text.endswith(SENTENCE_END)
    )


def _is_sentence_case_heading(line: str) -> bool:
    words = line.split()
    return (
        0 < len(words) <= SENTENCE_CASE_MAX_WORDS
        and line[0].isupper()
        and not line.endswith((".", ",", ";", ":", "!", "…", "”", '"'))
        and not re.search(r"\d{1,2}:\d{2}", line)
        and not CREDIT_START.match(line)
    )


def looks_like_heading(line: str) -> bool:
    """Short, no sentence-final period, and Title Case, ALL CAPS or a question."""
    words = line.split()
    if not words or len(words) > HEADING_MAX_WORDS or len(line) > HEADING_MAX_CHARS:
        return False
    if _is_quoted_phrase(line):
        return True
    if CREDIT_START.match(line):
        return False
    if line.endswith((".", ",", ";", ":", "!", "…", "”", '"')) or line.startswith(("“", '"', "-", "•", "*")):
        return False
    return line.endswith("?") or line.isupper() or is_title_case(line)


def _is_quoted_phrase(line: str) -> bool:
    """A line that is nothing but a short quoted phrase, without sentence punctuation inside the marks."""
    match = re.fullmatch(r"(?:\d+\.\s*)?[“\"](?P<inner>[^“”\"]+)[”\"]", line)
    return match is not None and not match.group("inner").rstrip().endswith((".", ",", "!", ";", ":"))


def is_title_case(line: str) -> bool:
    """Every word capitalised except short function words, and at least one word overall."""
    words = WORD.findall(line)
    if not words or not words[0][0].isupper():
        return False
    significant = [w for w in words[1:] if w.lower() not in MINOR_WORDS]
    return all(w[0].isupper() for w in significant)


def layout(blocks: tuple[Block, ...]) -> tuple[str, tuple[Section, ...]]:
    """Join blocks into the document text and compute section spans over it.

    A section's span covers its body and excludes its heading line; section 0
    is the lead before the first heading (heading ``None``) when there is one.
    """
    parts: list[str] = []
    offset = 0
    pending: list[tuple[str | None, int]] = [(None, 0)]
    for block in blocks:
        if parts:
            offset += len(PARAGRAPH_SEPARATOR)
        parts.append(block.text)
        if block.kind == "heading":
            pending.append((block.text, offset + len(block.text) + len(PARAGRAPH_SEPARATOR)))
        offset += len(block.text)
    text = PARAGRAPH_SEPARATOR.join(parts)
    return text, _sections(text, pending)


def _sections(text: str, starts: list[tuple[str | None, int]]) -> tuple[Section, ...]:
    sections: list[Section] = []
    for index, (heading, start) in enumerate(starts):
        next_heading_start = starts[index + 1][1] if index + 1 < len(starts) else None
        end = len(text) if next_heading_start is None else _heading_line_start(text, next_heading_start)
        start = min(start, len(text))
        end = max(start, end)
        while end > start and text[end - 1].isspace():
            end -= 1
        if heading is None and end == start:
            continue
        sections.append(Section(position=len(sections), heading=heading, start=start, end=end))
    return tuple(sections)


def _heading_line_start(text: str, body_start: int) -> int:
    """Offset where the heading line that precedes ``body_start`` begins."""
    heading_end = max(0, body_start - len(PARAGRAPH_SEPARATOR))
    previous_break = text.rfind(PARAGRAPH_SEPARATOR, 0, heading_end)
    return 0 if previous_break < 0 else previous_break
