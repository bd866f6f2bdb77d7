"""Quantities: numbers with their unit or the noun they count.

"30-day" → 30 day, "five Ukrainian territories" → 5 (noun territory),
"sixteen months" → 16 month, "7 percent" → 7 percent, "€1.2 billion" →
1200000000 EUR, "14,000 responses" → 14000 (noun response).
"""

from __future__ import annotations

from collections.abc import Iterator

from spacy.tokens import Doc, Span, Token

from pipeline.facts.numbers import MULTIPLIERS, parse_number
from pipeline.models import Quantity

CURRENCIES = {
    "€": "EUR",
    "$": "USD",
    "£": "GBP",
    "¥": "JPY",
    "us$": "USD",
    "eur": "EUR",
    "usd": "USD",
    "euros": "EUR",
    "euro": "EUR",
    "dollars": "USD",
    "dollar": "USD",
    "pounds": "GBP",
    "yen": "JPY",
}
PERCENT_WORDS = frozenset({"%", "percent", "per cent", "pct"})
TIME_UNITS = frozenset({"second", "minute", "hour", "day", "week", "month", "year", "decade", "century"})
MEASURE_UNITS = frozenset(
    {
        "km",
        "kilometre",
        "kilometer",
        "mile",
        "metre",
        "meter",
        "kg",
        "kilogram",
        "ton",
        "tonne",
        "barrel",
        "acre",
        "hectare",
        "litre",
        "liter",
        "gallon",
        "mph",
        "degree",
    }
)
NAME_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "FAC", "EVENT", "PRODUCT", "WORK_OF_ART", "LAW", "NORP"})
VAGUE_NUMBERS = frozenset({"dozens", "hundreds", "thousands", "millions", "billions", "scores", "one", "a"})


def extract_quantities(doc: Doc, calendar_spans: list[tuple[int, int]]) -> list[Quantity]:
    """Quantities outside names and outside expressions already resolved as dates."""
    found = []
    for run in _number_runs(doc):
        if _inside(run, calendar_spans) or any(t.ent_type_ in NAME_LABELS for t in run):
            continue
        quantity = _quantity(doc, run)
        if quantity is not None:
            found.append(quantity)
    return found


def _number_runs(doc: Doc) -> Iterator[Span]:
    start = None
    for token in doc:
        is_number = (token.like_num and token.ent_type_ != "ORDINAL") or (
            start is not None and token.lower_ in MULTIPLIERS
        )
        if is_number and start is None:
            start = token.i
        elif not is_number and start is not None:
            yield doc[start : token.i]
            start = None
    if start is not None:
        yield doc[start:]


def _inside(run: Span, spans: list[tuple[int, int]]) -> bool:
    return any(s <= run.start_char and run.end_char <= e for s, e in spans)


def _quantity(doc: Doc, run: Span) -> Quantity | None:
    if run.text.lower() in VAGUE_NUMBERS and not _hyphen_unit(doc, run):
        return None
    value = parse_number(run.text)
    if value is None:
        return None
    start, end = run.start, run.end
    unit, noun = None, None
    if start > 0 and doc[start - 1].lower_ in CURRENCIES:
        start, unit = start - 1, CURRENCIES[doc[start - 1].lower_]
    hyphen = _hyphen_unit(doc, run)
    following = doc[end] if end < len(doc) else None
    if hyphen is not None:
        end, unit = hyphen.i + 1, unit or hyphen.lemma_.lower()
    elif following is not None and following.lower_ in PERCENT_WORDS:
        end, unit = end + 1, "percent"
    elif following is not None and following.lower_ in CURRENCIES:
        end, unit = end + 1, CURRENCIES[following.lower_]
    elif following is not None and following.lemma_.lower() in TIME_UNITS | MEASURE_UNITS:
        end, unit = end + 1, following.lemma_.lower()
    else:
        counted = _counted_noun(run)
        if counted is not None and unit is None:
            end, noun = counted.i + 1, counted.lemma_.lower()
    span = doc[start:end]
    return Quantity(span.text, span.start_char, span.end_char, value, unit, noun)


def _hyphen_unit(doc: Doc, run: Span) -> Token | None:
    """The unit word after a hyphen glued to the number, as in "30-day"."""
    if run.end + 1 < len(doc) and doc[run.end].text == "-" and not doc[run.end].whitespace_:
        candidate = doc[run.end + 1]
        if candidate.is_alpha:
            return candidate
    return None


def _counted_noun(run: Span) -> Token | None:
    """The noun a number modifies ("five Ukrainian territories" → territories), if it follows closely."""
    last = run[-1]
    head = last.head
    if last.dep_ in {"nummod", "quantmod"} and head.pos_ in {"NOUN", "PROPN"} and 0 < head.i - last.i <= 3:
        return head
    return None
