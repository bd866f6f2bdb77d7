"""Quote and speaker rules, each on a small text of its own."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.facts.entities import resolve_entities
from pipeline.facts.quotes import extract_quotes
from pipeline.models import Outline, Quote, Section


def quotes_of(nlp: Any, text: str, sections: tuple[Section, ...] | None = None) -> list[Quote]:
    doc = nlp(text)
    _, mentions = resolve_entities(doc)
    outline = Outline(sections or (Section(0, None, 0, len(text)),))
    return extract_quotes(doc, mentions, outline)


def direct(quotes: list[Quote]) -> list[tuple[str, str | None]]:
    return [(q.text, q.speaker) for q in quotes if q.kind == "direct"]


def indirect(quotes: list[Quote]) -> list[tuple[str, str | None, str | None]]:
    return [(q.text, q.speaker, q.cue) for q in quotes if q.kind == "indirect"]


def test_quote_split_around_its_attribution(nlp: Any) -> None:
    text = (
        "Volodymyr Zelensky spoke in Ankara. “We need to understand the mandate,” Zelensky said. “Because we all know.”"
    )
    assert direct(quotes_of(nlp, text)) == [
        ("We need to understand the mandate,", "Volodymyr Zelensky"),
        ("Because we all know.", "Volodymyr Zelensky"),
    ]


def test_attribution_after_a_closing_question_mark(nlp: Any) -> None:
    text = 'Adam Schiff chaired the hearing.\n\n"So it\'s fair to say you have not fixed it?" Schiff asked.'
    [(quote, speaker)] = direct(quotes_of(nlp, text))
    assert speaker == "Adam Schiff"
    assert quote.startswith("So it's fair")


def test_quote_introduced_by_a_colon_in_the_paragraph_before(nlp: Any) -> None:
    text = "Eva-Marie Persson leads the case.\n\nMs Persson said:\n\n“I would like to emphasise that it is credible.”"
    assert direct(quotes_of(nlp, text)) == [("I would like to emphasise that it is credible.", "Eva-Marie Persson")]


def test_quote_running_over_paragraphs_continues_its_speaker(nlp: Any) -> None:
    text = (
        "Secretary of State Mike Pompeo said the release “gives us hope for the talks.\n\n"
        "“We see these developments as hopeful signs.”\n\nThe war goes on."
    )
    quotes = direct(quotes_of(nlp, text))
    assert [speaker for _, speaker in quotes] == ["Mike Pompeo", "Mike Pompeo"]
    assert quotes[1][0] == "We see these developments as hopeful signs."


def test_a_paragraph_that_is_one_quote_continues_the_speaker_before(nlp: Any) -> None:
    text = "Saeb Erekat said it was the latest move by the US.\n\n“They wanted us on our knees. We stand tall.”"
    assert direct(quotes_of(nlp, text)) == [("They wanted us on our knees. We stand tall.", "Saeb Erekat")]


def test_scare_quotes_titles_and_nicknames_are_not_quotes(nlp: Any) -> None:
    text = (
        "Kurt Volker denied that he formed an “irregular” channel, known as the “Three Amigos.” "
        "Teachers sang “We’re Not Gonna Take It” outside."
    )
    assert direct(quotes_of(nlp, text)) == []


def test_a_short_fragment_a_speech_verb_governs_is_a_quote(nlp: Any) -> None:
    text = "Patrick Carlineo called Ilhan Omar a “terrorist” during the call, prosecutors said."
    assert direct(quotes_of(nlp, text)) == [("terrorist", "Patrick Carlineo")]


def test_quotes_in_heading_lines_are_not_quotes(nlp: Any) -> None:
    text = "“My fears have been realized”\n\nTim Morrison told the committee, “I feared this.”"
    sections = (Section(0, None, 0, 0), Section(1, "“My fears have been realized”", 31, len(text)))
    assert direct(quotes_of(nlp, text, sections)) == [("I feared this.", "Tim Morrison")]


def test_pronoun_is_not_the_person_named_later_in_its_sentence(nlp: Any) -> None:
    text = (
        "Patrick Carlineo pleaded guilty on Monday. He was arrested for the call to the office of Ilhan Omar.\n\n"
        "During the call, he called Omar a “terrorist” and said, “somebody ought to hurt her.”"
    )
    assert {speaker for _, speaker in direct(quotes_of(nlp, text))} == {"Patrick Carlineo"}


def test_the_title_refers_back_to_the_person_who_holds_it(nlp: Any) -> None:
    text = "Gov. Eric Holcomb stayed away. The governor said he was waiting for a teacher pay commission."
    [(_, speaker, cue)] = indirect(quotes_of(nlp, text))
    assert (speaker, cue) == ("Eric Holcomb", "said")


def test_an_organisation_speaks_through_it(nlp: Any) -> None:
    text = (
        "Two soldiers died in a crash, the US military said in a statement.\n\n"
        "“The cause of the crash is under investigation,” the statement said. "
        "It said it was withholding the names of those killed."
    )
    speakers = {q.speaker for q in quotes_of(nlp, text)}
    assert speakers == {"the US military"}


def test_joint_speakers_are_kept_together(nlp: Any) -> None:
    text = "Alexander Vindman and Jennifer Williams testified that the call was unusual and improper."
    [(_, speaker, _)] = indirect(quotes_of(nlp, text))
    assert speaker == "Alexander Vindman and Jennifer Williams"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dmitri Peskov told reporters that Putin had no plans to visit Turkey.", "Putin had no plans to visit Turkey"),
        ("Two soldiers were killed in a crash in Logar province, the US military said.", "Two soldiers were killed"),
        ("More than 2,500 civilians have been killed this year, according to the United Nations.", "More than 2,500"),
    ],
)
def test_indirect_speech_on_either_side_of_its_cue(nlp: Any, text: str, expected: str) -> None:
    [(content, speaker, _)] = indirect(quotes_of(nlp, text))
    assert content.startswith(expected)
    assert speaker is not None


def test_indirect_clause_that_is_mostly_quoted_is_not_repeated(nlp: Any) -> None:
    text = "Marco Rubio said, “We all want it to happen, but it is difficult and it will take time.”"
    assert indirect(quotes_of(nlp, text)) == []


@pytest.mark.parametrize(
    "text",
    [
        "He said “this never closes.\n\nNext paragraph goes on and on.",
        "“\n\n”",
        "Odd ” marks “ everywhere ” here “",
        '"',
    ],
)
def test_odd_marks_never_crash_or_swallow_the_article(nlp: Any, text: str) -> None:
    for quote in quotes_of(nlp, text):
        assert "\n\n" not in quote.text


def test_inverted_attribution_with_a_name_the_model_tags_as_an_adverb(nlp: Any) -> None:
    text = "Ubisoft executive Chris Early praised the deal.\n\n“Streaming is binary,” says Early. “You are in or out.”"
    assert {speaker for _, speaker in direct(quotes_of(nlp, text))} == {"Chris Early"}


def test_a_person_named_with_a_role_in_the_subject_is_the_speaker(nlp: Any) -> None:
    text = (
        "“Google offers an extension of the market,” says Chris Early, senior vp partnerships and revenue at Ubisoft."
    )
    assert direct(quotes_of(nlp, text)) == [("Google offers an extension of the market,", "Chris Early")]
