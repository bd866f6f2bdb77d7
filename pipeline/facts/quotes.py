"""Quotes: direct (in quotation marks, with a speaker), partial (unattributed fragments), indirect.

A direct quote's speaker is the subject of the nearest cue verb outside the
marks in the sentences the quote touches ("…,” Zelensky said. “…”). A quote
with no cue of its own, in the same paragraph as the previous one, continues
that speaker. Indirect speech is a cue verb's content clause
("X said that …"), unless the clause is itself quoted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from spacy.tokens import Doc, Span, Token

from pipeline.facts.entities import ResolvedMention
from pipeline.facts.marks import QuotedSpan, quoted_spans
from pipeline.facts.speakers import (
    INDIRECT_CUES,
    SPEECH_CUES,
    MentionIndex,
    Speaker,
    speaker_for,
    subject_of,
)
from pipeline.models import Quote

SectionOf = Callable[[int], int]


@dataclass(frozen=True)
class _Attribution:
    speaker: Speaker | None
    cue: Token | None


def extract_quotes(doc: Doc, mentions: tuple[ResolvedMention, ...], section_of: SectionOf) -> list[Quote]:
    """All quotes of the article, in text order."""
    index = MentionIndex(mentions)
    direct = list(_direct_quotes(doc, index, section_of))
    quoted = [(q.start, q.end) for q in direct]
    indirect = list(_indirect_quotes(doc, index, section_of, quoted=quoted))
    return sorted(direct + indirect, key=lambda q: (q.start, q.kind))


def _direct_quotes(doc: Doc, index: MentionIndex, section_of: SectionOf) -> Iterator[Quote]:
    previous: tuple[QuotedSpan, _Attribution] | None = None
    for span in quoted_spans(doc.text):
        attribution = _attribute(doc, span, index, previous=previous)
        if attribution.speaker is None and previous and _continues(doc.text, previous[0], span):
            attribution = previous[1]
        if attribution.speaker is not None:
            previous = (span, attribution)
        speaker = attribution.speaker
        yield Quote(
            kind="direct" if speaker else "partial",
            text=doc.text[span.start : span.end],
            start=span.start,
            end=span.end,
            speaker=speaker.name if speaker else None,
            speaker_text=speaker.text if speaker else None,
            cue=attribution.cue.text if attribution.cue is not None else None,
            section=section_of(span.start),
        )


def _attribute(
    doc: Doc, span: QuotedSpan, index: MentionIndex, *, previous: tuple[QuotedSpan, _Attribution] | None
) -> _Attribution:
    last_speaker = previous[1].speaker if previous else None
    for cue in _cues_near(doc, span):
        subject = subject_of(cue)
        if subject is not None and not span.outer_start <= subject.idx < span.outer_end:
            return _Attribution(speaker_for(subject, index, last_speaker=last_speaker), cue)
    return _Attribution(None, None)


def _cues_near(doc: Doc, span: QuotedSpan) -> list[Token]:
    """Speech verbs outside the marks in the sentences the quote touches, nearest first."""
    sentences = _sentences_touching(doc, span)
    cues = [
        token
        for sentence in sentences
        for token in sentence
        if token.lemma_.lower() in SPEECH_CUES
        and token.pos_ in {"VERB", "AUX"}
        and not span.outer_start <= token.idx < span.outer_end
    ]
    return sorted(cues, key=lambda t: min(abs(t.idx - span.outer_start), abs(t.idx - span.outer_end)))


def _sentences_touching(doc: Doc, span: QuotedSpan) -> list[Span]:
    first = doc.char_span(span.outer_start, span.outer_start + 1, alignment_mode="expand")
    last = doc.char_span(max(span.outer_end - 1, span.outer_start), span.outer_end, alignment_mode="expand")
    if first is None or last is None:
        return []
    start_sentence, end_sentence = first[0].sent, last[-1].sent
    return list({s.start: s for s in (start_sentence, end_sentence)}.values())


def _continues(text: str, earlier: QuotedSpan, later: QuotedSpan) -> bool:
    """The later quote follows the earlier one in the same paragraph with a short bridge."""
    bridge = text[earlier.outer_end : later.outer_start]
    return "\n" not in bridge and len(bridge) <= 200


def _indirect_quotes(
    doc: Doc, index: MentionIndex, section_of: SectionOf, *, quoted: list[tuple[int, int]]
) -> Iterator[Quote]:
    for token in doc:
        if token.lemma_.lower() not in INDIRECT_CUES or token.pos_ != "VERB":
            continue
        clause = next((c for c in token.children if c.dep_ == "ccomp" and c.i > token.i), None)
        subject = subject_of(token)
        if clause is None or subject is None:
            continue
        content = _clause_span(doc, clause)
        if content is None or any(s < content.end_char and content.start_char < e for s, e in quoted):
            continue
        speaker = speaker_for(subject, index, last_speaker=None)
        yield Quote(
            kind="indirect",
            text=content.text,
            start=content.start_char,
            end=content.end_char,
            speaker=speaker.name,
            speaker_text=speaker.text,
            cue=token.text,
            section=section_of(content.start_char),
        )


def _clause_span(doc: Doc, clause: Token) -> Span | None:
    """The content clause without its "that" and trailing punctuation."""
    start, end = clause.left_edge.i, clause.right_edge.i + 1
    while start < end and (doc[start].dep_ == "mark" or doc[start].is_punct):
        start += 1
    while end > start and doc[end - 1].is_punct:
        end -= 1
    if end - start < 3:
        return None
    return doc[start:end]
