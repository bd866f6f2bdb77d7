"""Facts: everything derived from one spaCy pass over the document text."""

from __future__ import annotations

from datetime import date

from spacy.tokens import Doc

from pipeline.facts.claims import extract_claims
from pipeline.facts.dates import extract_dates
from pipeline.facts.entities import resolve_entities
from pipeline.facts.gazetteer import KnownPeople
from pipeline.facts.quantities import extract_quantities
from pipeline.facts.quotes import extract_quotes
from pipeline.models import Facts, Outline


def analyse(doc: Doc, *, anchor: date | None, outline: Outline, known_people: KnownPeople | None = None) -> Facts:
    """Entities, quotes, dates, quantities and claims of one parsed document."""
    entities, mentions = resolve_entities(doc, known_people)
    dates = extract_dates(doc, anchor)
    return Facts(
        entities=entities,
        quotes=tuple(extract_quotes(doc, mentions, outline)),
        dates=tuple(dates),
        quantities=tuple(extract_quantities(doc, [(d.start, d.end) for d in dates])),
        claims=tuple(extract_claims(doc, mentions, outline)),
    )
