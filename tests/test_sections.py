import pytest

from pipeline.models import Block
from pipeline.sections import is_title_case, layout, looks_like_heading, mark_plain_headings


def paragraphs(*texts: str) -> tuple[Block, ...]:
    return tuple(Block("paragraph", t) for t in texts)


def test_heading_shapes() -> None:
    assert looks_like_heading("How Did We Get Here?")
    assert looks_like_heading("Russia’s Demands")
    assert looks_like_heading("THE STATE OF PLAY")
    assert looks_like_heading("What happens next?")
    assert not looks_like_heading("Zelensky promptly challenged Putin to attend the talks in person.")
    assert not looks_like_heading("“Right now, we have people negotiating,” Trump said")
    assert not looks_like_heading("a quiet lower-case line")


def test_title_case_allows_minor_words() -> None:
    assert is_title_case("The Return of the King")
    assert not is_title_case("The return of the king")


def test_heading_needs_body_after_it() -> None:
    blocks = paragraphs("Lead paragraph that is a full sentence.", "Background", "Body text goes here.", "The End")
    marked = mark_plain_headings(blocks)
    assert [b.kind for b in marked] == ["paragraph", "heading", "paragraph", "paragraph"]


def test_two_heading_like_lines_in_a_row_are_not_both_headings() -> None:
    marked = mark_plain_headings(paragraphs("Intro sentence here.", "Big News", "Small Print", "Then a body."))
    assert [b.kind for b in marked] == ["paragraph", "paragraph", "heading", "paragraph"]


def test_layout_offsets_cover_bodies_and_exclude_headings() -> None:
    blocks = (
        Block("paragraph", "Lead one."),
        Block("heading", "Part Two"),
        Block("paragraph", "Body two."),
        Block("paragraph", "More two."),
        Block("heading", "Part Three"),
        Block("paragraph", "Body three."),
    )
    text, sections = layout(blocks)
    assert [(s.position, s.heading) for s in sections] == [(0, None), (1, "Part Two"), (2, "Part Three")]
    assert [text[s.start : s.end] for s in sections] == ["Lead one.", "Body two.\n\nMore two.", "Body three."]


def test_no_lead_section_when_article_starts_with_a_heading() -> None:
    text, sections = layout((Block("heading", "Only"), Block("paragraph", "Body.")))
    assert [(s.position, s.heading, text[s.start : s.end]) for s in sections] == [(0, "Only", "Body.")]


def test_empty_input() -> None:
    assert layout(()) == ("", ())


PROSE = "The physicians wrote to the agency in early November and asked for a meeting about the flu vaccine."


@pytest.mark.parametrize(
    "heading", ['"We write with urgency"', "“Alarming mortality rate”", "Overcrowded conditions worsen risk"]
)
def test_plain_headings_in_quotes_or_sentence_case_between_prose(heading: str) -> None:
    blocks = tuple(Block("paragraph", t) for t in [PROSE, heading, PROSE])
    assert [b.kind for b in mark_plain_headings(blocks)] == ["paragraph", "heading", "paragraph"]


@pytest.mark.parametrize("line", ["“We stand tall.”", "Photo by Reuters", "He said no, twice."])
def test_short_lines_that_are_not_headings(line: str) -> None:
    blocks = tuple(Block("paragraph", t) for t in [PROSE, line, PROSE])
    assert [b.kind for b in mark_plain_headings(blocks)] == ["paragraph", "paragraph", "paragraph"]
