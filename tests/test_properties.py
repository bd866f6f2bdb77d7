"""Property-based tests (hypothesis) over arbitrary Unicode: the stages never raise, and every offset they
report points at the text it claims (``text[start:end] == stored text``)."""

from __future__ import annotations

from datetime import date
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.extract import remove_boilerplate
from pipeline.extract.plaintext import read_plain_text
from pipeline.facts.batch import Analyser
from pipeline.facts.calendar import resolve
from pipeline.models import Block, Document, Extracted
from pipeline.sections import lay_out, layout, mark_plain_headings

# Arbitrary Unicode (no surrogates, which cannot be encoded), with the characters the rules look at made common.
NEWS_CHARS = st.sampled_from([*" \n\n“”\"‘’'.,:;!?-—()[]0123456789$%€ ", "Mr.", "said", "Putin", "May"])
TEXT = st.lists(st.one_of(st.characters(blacklist_categories=("Cs",)), NEWS_CHARS), max_size=400).map("".join)
BLOCK = st.builds(Block, kind=st.sampled_from(["heading", "paragraph", "quote", "item"]), text=TEXT.filter(str.strip))
BLOCKS = st.lists(BLOCK, max_size=12).map(tuple)
FAST = settings(max_examples=300, deadline=None)
WITH_MODEL = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_sections(text: str, sections: Any) -> None:
    previous_end = 0
    for position, section in enumerate(sections):
        assert section.position == position
        assert previous_end <= section.start <= section.end <= len(text)
        previous_end = section.end
        if section.heading is not None:
            assert section.heading in text[: section.start]


@FAST
@given(BLOCKS)
def test_sectioning_never_raises_and_spans_lie_in_order_inside_the_text(blocks: tuple[Block, ...]) -> None:
    for prepared in (blocks, mark_plain_headings(blocks)):
        text, sections = layout(prepared)
        check_sections(text, sections)


@FAST
@given(TEXT)
def test_plain_text_reading_and_layout_never_raise(text: str) -> None:
    extracted = read_plain_text(text)
    laid = lay_out("arbitrary.txt", extracted, plain_text=True)
    check_sections(laid.text, laid.sections)


@FAST
@given(BLOCKS)
def test_the_body_cleaner_keeps_an_ordered_subset_of_the_blocks(blocks: tuple[Block, ...]) -> None:
    kept = remove_boilerplate(blocks)
    remaining = iter(blocks)
    assert all(any(block == candidate for candidate in remaining) for block in kept)


EXPRESSIONS = st.sampled_from(
    ["Thursday", "last Friday", "next week", "February 29", "May 2025", "2025", "three days ago", "this weekend",
     "early March", "yesterday", "tomorrow", "December 31", "January 1", "next year", "last month"]
)  # fmt: skip
CALENDAR = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))


@FAST
@given(st.one_of(TEXT, EXPRESSIONS), CALENDAR, st.booleans())
def test_date_resolution_never_raises_and_gives_calendar_values(text: str, anchor: date, future: bool) -> None:
    """Arbitrary text, and real expressions seen from anywhere in the calendar, years 1 to 9999."""
    resolved = resolve(text, anchor, future=future)
    if resolved is not None:
        _assert_calendar_value(resolved.value, resolved.granularity)


def _assert_calendar_value(value: str, granularity: str) -> None:
    parts = [int(part) for part in value.split("-")]
    assert len(parts) == {"year": 1, "month": 2, "day": 3}[granularity]
    date(parts[0], *(parts[1:] + [1] * (3 - len(parts))))


@WITH_MODEL
@given(st.lists(TEXT.filter(str.strip), min_size=1, max_size=6))
def test_facts_never_raise_and_every_offset_points_at_its_text(nlp: Any, paragraphs: list[str]) -> None:
    blocks = tuple(Block("paragraph", paragraph) for paragraph in paragraphs)
    plain = read_plain_text("\n\n".join(paragraphs))
    for item in (lay_out("a.txt", plain, plain_text=True), lay_out("a.html", Extracted(blocks), plain_text=False)):
        analyser = Analyser(nlp)
        document = analyser.document(item, next(analyser.parse([item.text])), anchor=date(2025, 5, 15))
        assert isinstance(document, Document), document
        _assert_offsets(document)


def _assert_offsets(document: Document) -> None:
    text, facts = document.text, document.facts
    spans = [(m.start, m.end, m.text) for e in facts.entities for m in e.mentions]
    spans += [(q.start, q.end, q.text) for q in facts.quotes]
    spans += [(d.start, d.end, d.text) for d in facts.dates]
    spans += [(q.start, q.end, q.text) for q in facts.quantities]
    for start, end, expected in spans:
        assert 0 <= start <= end <= len(text) and text[start:end] == expected
    for claim in facts.claims:
        assert 0 <= claim.start <= claim.end <= len(text)
    for quote in facts.quotes:
        assert 0 <= quote.section < len(document.sections)
