"""The facts stage over laid-out documents: one ``nlp.pipe`` pass, then the rules per document.

``Analyser`` holds what every document's analysis shares (the model and the known people); ``parse`` runs the
model over many texts in mini-batches, ``document`` applies the rules to one parsed text and builds the
``Document``. How a batch is timed and how a failing one is split up is the ingest step's business.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc

from pipeline.errors import FactsError
from pipeline.facts import analyse
from pipeline.facts.gazetteer import KnownPeople, load_known_people
from pipeline.facts.model import load_model
from pipeline.models import Document, Laid, Outline

NLP_BATCH_SIZE = 16
MAX_WORDS = 200_000  # a long read has 20,000; a book-length text is not an article


@dataclass(frozen=True)
class Analyser:
    """The loaded model and known people, shared by every document of a process."""

    nlp: Language
    known_people: KnownPeople | None = None

    @classmethod
    def load(cls, model_name: str, people_path: Path | None = None) -> Analyser:
        """The configured model (once per process) and the known-people file; ``ModelNotFoundError``."""
        return cls(load_model(model_name), load_known_people(people_path))

    def check_length(self, item: Laid) -> None:
        """``FactsError`` when the text is over the model's length limit, or has more words than any article
        (the model's memory grows with the words: 500,000 one-letter words take 8 GB)."""
        if len(item.text) > self.nlp.max_length:
            raise FactsError(f"text of {len(item.text):,} characters is over the model's {self.nlp.max_length:,} limit")
        words = item.text.count(" ") + item.text.count("\n")
        if words > MAX_WORDS:
            raise FactsError(f"text of about {words:,} words is over the {MAX_WORDS:,}-word limit of the facts stage")

    def parse(self, texts: Iterable[str]) -> Iterator[Doc]:
        """Parsed texts in order, through the model in mini-batches."""
        return iter(self.nlp.pipe(texts, batch_size=NLP_BATCH_SIZE))

    def document(self, item: Laid, parsed: Doc, *, anchor: date | None = None) -> Document:
        """The rules over one parsed text: the full ``Document``. ``anchor`` stands in for a missing published date."""
        published = _as_date(item.extracted.published_at) or anchor
        facts = analyse(parsed, anchor=published, outline=Outline(item.sections), known_people=self.known_people)
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
