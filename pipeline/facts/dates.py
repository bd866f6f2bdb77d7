"""Dates: calendar expressions resolved against the published date.

Candidates are spaCy DATE mentions plus a pattern scan for the forms the small
model misses inside other entities ("the 1967 Six-Day War", "Holcomb’s 2016
campaign", "the September 11, 2001 attacks"). Each is resolved by
``calendar.resolve``; the tense of its clause decides past or future.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

from spacy.tokens import Doc, Span, Token

from pipeline.facts.calendar import MONTHS, WEEKDAYS, resolve
from pipeline.facts.sentences import text_of
from pipeline.models import DateMention

DAY_PART_WORDS = frozenset({"morning", "afternoon", "evening", "night", "midday", "noon"})
FUTURE_AUX = frozenset({"will", "shall", "might", "may", "could", "would", "'ll", "wo"})
FUTURE_WORDS = frozenset({"next", "coming", "upcoming", "tomorrow"})
# Words that put what follows in the future: "is due to …", "is scheduled for …", "plans to …".
FUTURE_HEADS = frozenset({"due", "schedule", "expect", "set", "plan", "slate", "aim", "hope", "intend", "upcoming"})
REPORTING_VERBS = frozenset({"say", "tell", "report", "announce", "state", "write", "add"})
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
MONTH = r"(?:" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_YEAR = r"(?:1[89]\d\d|20\d\d)"
DATE_PATTERN = re.compile(
    r"(?<![\w$€£,./:-])(?:"
    rf"{MONTH}\s+{_DAY}(?:,?\s+{_YEAR})?"
    rf"|{_DAY}\s+(?:of\s+)?{MONTH}(?:,?\s+{_YEAR})?"
    rf"|(?:(?:early|late|mid)[\s-]+)?{MONTH}(?:,?\s+(?:of\s+)?{_YEAR})?"
    rf"|(?:(?:earlier|later|so far)\s+)?(?:this|last|next)\s+(?:year|month|week(?:end)?)"
    rf"|(?:(?:last|next|this)\s+)?(?:{'|'.join(WEEKDAYS)})(?:\s+(?:morning|afternoon|evening|night))?"
    r"|yesterday|today|tomorrow|tonight"
    rf"|{_YEAR}"
    r")(?![\w$€£%]|,\d|\.\d)",
    re.IGNORECASE,
)


def extract_dates(doc: Doc, anchor: date | None) -> list[DateMention]:
    """Every date expression that names a calendar day, month or year, in text order."""
    if anchor is None:
        return []
    found: list[DateMention] = []
    for span in _candidates(doc):
        if any(span.start_char < d.end and d.start < span.end_char for d in found):
            continue
        resolved = resolve(span.text, anchor, future=is_future(span))
        if resolved is not None:
            found.append(DateMention(span.text, span.start_char, span.end_char, resolved.value, resolved.granularity))
    return sorted(found, key=lambda d: d.start)


def _candidates(doc: Doc) -> Iterator[Span]:
    """spaCy DATE mentions first (they carry context such as "last"), then pattern matches."""
    for entity in doc.ents:
        if entity.label_ == "DATE":
            yield _with_day_part(entity)
    for match in DATE_PATTERN.finditer(text_of(doc)):
        span = doc.char_span(match.start(), match.end(), alignment_mode="contract")
        if span is not None and len(span) > 0 and not _is_name_part(span, match.group(0)):
            yield span


def _is_name_part(span: Span, text: str) -> bool:
    """Months and weekdays are capitalised ("march" is a verb); "May" the month is not a modal or a
    name; a lone year is a year, not a count ("2016 people")."""
    first = span[0]
    if first.lower_.rstrip(".") in MONTHS or first.lower_ in WEEKDAYS:
        if not first.text[0].isupper() or first.ent_type_ not in {"", "DATE", "EVENT"}:
            return True
        if first.lower_ == "may" and len(span) == 1 and first.tag_ != "NNP":
            return True
    if text.isdigit():
        following = span.doc[span.end] if span.end < len(span.doc) else None
        return following is not None and following.tag_ == "NNS" and following.lower_ not in {"attacks", "elections"}
    return False


def _with_day_part(entity: Span) -> Span:
    """Join a following part of day: "Wednesday" + "evening" (spaCy splits DATE and TIME)."""
    doc = entity.doc
    if entity.end < len(doc) and doc[entity.end].lower_ in DAY_PART_WORDS:
        return doc[entity.start : entity.end + 1]
    return entity


def is_future(span: Span) -> bool:
    """Whether the clause the date belongs to speaks of the future.

    "will/might … on Friday", "is due to take place in February", and the
    present tense of a non-reporting verb ("the session starts in January").
    """
    if any(token.lower_ in FUTURE_WORDS for token in span):
        return True
    verb = _governing_verb(span.root)
    if verb is None:
        return False
    if any(child.dep_ == "aux" and child.lower_ in FUTURE_AUX for child in verb.children):
        return True
    if verb.lower_ == "going" and any(child.dep_ == "xcomp" for child in verb.children):
        return True
    if any(token.lemma_.lower() in FUTURE_HEADS for token in _verb_chain(verb)):
        return True
    return verb.tag_ in {"VBZ", "VBP"} and verb.lemma_.lower() not in REPORTING_VERBS | {"be", "have"}


def _verb_chain(verb: Token) -> list[Token]:
    """The verb and the heads it hangs from through xcomp/infinitive links ("due to take")."""
    chain = [verb]
    current = verb
    while current.dep_ in {"xcomp", "ccomp", "acomp"} and current.head is not current and len(chain) < 4:
        current = current.head
        chain.append(current)
    return chain


def _governing_verb(token: Token) -> Token | None:
    current = token
    for _ in range(6):
        if current.pos_ in {"VERB", "AUX"} or current.lower_ == "due":
            return current
        if current.head is current:
            return None
        current = current.head
    return None
