"""From extracted blocks to a full Document: sections, then facts in one spaCy pass.

``process_batch`` feeds the texts of a whole batch through ``nlp.pipe`` so the
model runs once per document, in batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime

from spacy.language import Language

from pipeline.extract import extract
from pipeline.facts import analyse
from pipeline.facts.gazetteer import KnownPeople
from pipeline.models import Document, Extracted, Facts, Outline, RawDocument, Section
from pipeline.sections import layout, mark_plain_headings

NLP_BATCH_SIZE = 16


@dataclass(frozen=True)
class Laid:
    """An extracted document laid out as text with its sections, ready for NLP."""

    source: str
    extracted: Extracted
    text: str
    sections: tuple[Section, ...]


def lay_out(source: str, extracted: Extracted, *, plain_text: bool) -> Laid:
    blocks = mark_plain_headings(extracted.blocks) if plain_text else extracted.blocks
    text, sections = layout(blocks)
    return Laid(source=source, extracted=extracted, text=text, sections=sections)


def extract_and_lay_out(raw: RawDocument, *, source: str | None = None) -> Laid:
    """Extract a raw document and lay it out; plain text also gets its headings found by their shape.
    Raises ``ExtractError``."""
    return lay_out(source or raw.source, extract(raw), plain_text=raw.media_type == "text/plain")


class FactsError(RuntimeError):
    """Fact extraction failed on one document; the batch goes on without it."""


def process_batch(
    nlp: Language, items: Iterable[Laid], *, anchor: date | None = None, known_people: KnownPeople | None = None
) -> Iterator[Document | FactsError]:
    """Documents with facts (or the error of one), one ``nlp.pipe`` pass over the batch, in input order."""
    batch = list(items)
    fits = [item for item in batch if len(item.text) <= nlp.max_length]
    docs = iter(nlp.pipe((item.text for item in fits), batch_size=NLP_BATCH_SIZE))
    for item in batch:
        if len(item.text) > nlp.max_length:
            yield FactsError(f"text of {len(item.text):,} characters is over the model's {nlp.max_length:,} limit")
            continue
        parsed = next(docs)
        published = _as_date(item.extracted.published_at) or anchor
        try:
            facts = analyse(parsed, anchor=published, outline=Outline(item.sections), known_people=known_people)
        except Exception as error:  # noqa: BLE001 - a rule tripping on one text must not stop the batch
            yield FactsError(f"{type(error).__name__}: {error}")
            continue
        yield _document(item, facts)


def _document(item: Laid, facts: Facts) -> Document:
    extracted = item.extracted
    return Document(
        source=item.source,
        text=item.text,
        sections=item.sections,
        facts=facts,
        title=extracted.title,
        author=extracted.author,
        language=extracted.language,
        published_at=extracted.published_at,
        url=extracted.url,
        site_name=extracted.site_name,
    )


def _as_date(value: date | datetime | None) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    return value
