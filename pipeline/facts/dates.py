"""Dates: spaCy DATE mentions resolved to the calendar against the published date."""

from __future__ import annotations

from datetime import date

from spacy.tokens import Doc, Span, Token

from pipeline.facts.calendar import resolve
from pipeline.models import DateMention

DAY_PART_WORDS = frozenset({"morning", "afternoon", "evening", "night", "midday", "noon"})
FUTURE_AUX = frozenset({"will", "shall", "might", "may", "could", "would", "'ll"})
FUTURE_WORDS = frozenset({"next", "coming", "upcoming", "tomorrow"})


def extract_dates(doc: Doc, anchor: date | None) -> list[DateMention]:
    """Every DATE mention that names a calendar day, month or year."""
    if anchor is None:
        return []
    found: list[DateMention] = []
    for entity in doc.ents:
        if entity.label_ != "DATE":
            continue
        span = _with_day_part(entity)
        resolved = resolve(span.text, anchor, future=is_future(span))
        if resolved is None:
            continue
        found.append(DateMention(span.text, span.start_char, span.end_char, resolved.value, resolved.granularity))
    return found


def _with_day_part(entity: Span) -> Span:
    """Join a following part of day: "Wednesday" + "evening" (spaCy splits DATE and TIME)."""
    doc = entity.doc
    if entity.end < len(doc) and doc[entity.end].lower_ in DAY_PART_WORDS:
        return doc[entity.start : entity.end + 1]
    return entity


def is_future(span: Span) -> bool:
    """Whether the clause the date belongs to speaks of the future (will/might … on Friday)."""
    if any(token.lower_ in FUTURE_WORDS for token in span):
        return True
    verb = _governing_verb(span.root)
    if verb is None:
        return False
    return any(child.dep_ == "aux" and child.lower_ in FUTURE_AUX for child in verb.children) or (
        verb.lower_ == "going" and any(child.dep_ == "xcomp" for child in verb.children)
    )


def _governing_verb(token: Token) -> Token | None:
    current = token
    for _ in range(6):
        if current.pos_ in {"VERB", "AUX"}:
            return current
        if current.head is current:
            return None
        current = current.head
    return None
