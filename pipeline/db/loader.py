"""Load processed documents into Postgres: a batch in one transaction, rows sent by COPY.

A batch is written set-wise: one statement each for the raw pages, the
articles and the entities, and one ``COPY`` each for sections and the five fact
tables. Per-document atomicity is kept: the batch commits whole or not at all,
and when it fails for a reason in the data, each document is loaded again alone,
so only the bad one fails and every good one is stored.

Idempotency is held by the database, not by luck: ``articles.source`` and
``raw_documents (source, content_sha256)`` are unique, existing articles are
locked (``FOR UPDATE``) before their facts are replaced, and rows that other
loaders may race on (raw pages, articles, entities) are written in a stable
order so concurrent batches never deadlock. A dropped connection or a deadlock
is retried (``tenacity``); a database that stays unreachable raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from pipeline.db import raw_store
from pipeline.db.bulk import Row, copy_rows, in_order, insert_values
from pipeline.db.engine import is_systemic, is_transient, retry_at_once
from pipeline.errors import describe
from pipeline.models import Document, RawDocument, name_key

LoadStatus = Literal["loaded", "replaced", "unchanged"]
PERSON = "PERSON"
TRANSIENT_ATTEMPTS = 4


@dataclass(frozen=True)
class LoadResult:
    status: LoadStatus
    article_id: int


@dataclass(frozen=True)
class LoadFailure:
    """A document the database refused, with the reason (the batch's other documents were stored)."""

    error: str


@dataclass(frozen=True)
class LoadItem:
    raw: RawDocument
    document: Document


@dataclass(frozen=True)
class LoadOptions:
    run_id: int
    extractor_version: str
    force: bool = False  # replace facts even when the content is unchanged (after an extractor upgrade)


def load_documents(engine: Engine, items: Sequence[LoadItem], options: LoadOptions) -> list[LoadResult | LoadFailure]:
    """Store each document's raw bytes, article and facts; results in input order.

    The whole batch is one transaction; if the data makes it fail, each document is retried
    alone, so one bad document costs nothing else."""
    if not items:
        return []
    if len({item.raw.source for item in items}) < len(items):
        return [_load_alone(engine, item, options) for item in items]  # the same source twice: in order
    try:
        return list(_load_together(engine, items, options))
    except Exception as error:  # isolate the bad document below
        if is_transient(error) or is_systemic(error):
            raise  # the database is unreachable or refuses everyone: not the data at fault
        if len(items) == 1:
            return [LoadFailure(describe(error))]
    return [_load_alone(engine, item, options) for item in items]


def _load_alone(engine: Engine, item: LoadItem, options: LoadOptions) -> LoadResult | LoadFailure:
    return load_documents(engine, [item], options)[0]


@retry(
    retry=retry_if_exception(retry_at_once),
    stop=stop_after_attempt(TRANSIENT_ATTEMPTS),
    wait=wait_exponential(multiplier=0.2, max=5),
    reraise=True,
)
def _load_together(engine: Engine, items: Sequence[LoadItem], options: LoadOptions) -> list[LoadResult]:
    with engine.begin() as conn:
        return _write_batch(conn, items, options)


def _write_batch(conn: Connection, items: Sequence[LoadItem], options: LoadOptions) -> list[LoadResult]:
    ordered = sorted(items, key=lambda item: item.raw.source)
    raw_ids = raw_store.store_versions(conn, [item.raw for item in ordered], options.run_id)
    claimed = _claim_articles(conn, [_article_values(item, raw_ids, options) for item in ordered], options.force)
    results = {source: LoadResult(status=status, article_id=ident) for source, (ident, status) in claimed.items()}
    changed = [
        (results[i.raw.source].article_id, i.document) for i in ordered if results[i.raw.source].status != "unchanged"
    ]
    if changed:
        _insert_facts(conn, changed)
    return [results[item.raw.source] for item in items]


ARTICLE_COLUMNS = (
    "source", "url", "title", "author", "published_at", "language", "site_name", "content_hash",
    "raw_document_id", "text", "extractor_version", "ingest_run_id",
)  # fmt: skip


def _article_values(item: LoadItem, raw_ids: Mapping[tuple[str, str], int], options: LoadOptions) -> dict[str, Any]:
    raw, document = item.raw, item.document
    return {
        "source": raw.source,
        "url": document.url,
        "title": document.title,
        "author": document.author,
        "published_at": document.published_at,
        "language": document.language,
        "site_name": document.site_name,
        "content_hash": raw.content_sha256,
        "raw_document_id": raw_ids[(raw.source, raw.content_sha256)],
        "text": document.text,
        "extractor_version": options.extractor_version,
        "ingest_run_id": options.run_id,
    }


ASCII_LOWER = re.compile("[a-z]")
# Only rows whose name changes are touched (and locked): a better spelling arriving is rare.
RENAME_TO_PREFERRED = """
UPDATE entities AS e SET name = w.name
FROM unnest(CAST(:keys AS text[]), CAST(:types AS text[]), CAST(:names AS text[])) AS w (key, type, name)
WHERE e.key = w.key AND e.type = w.type AND e.name <> w.name
  AND ((w.name COLLATE "C") !~ '[a-z]', w.name COLLATE "C") < ((e.name COLLATE "C") !~ '[a-z]', e.name COLLATE "C")
"""

INSERT_ARTICLES = (
    f"INSERT INTO articles ({', '.join(ARTICLE_COLUMNS)}) VALUES %s "
    "ON CONFLICT (source) DO NOTHING RETURNING source, id"
)


def _claim_articles(conn: Connection, articles: list[dict[str, Any]], force: bool) -> dict[str, tuple[int, LoadStatus]]:
    """Insert new articles; lock the existing ones and update those whose content changed."""
    rows = [in_order(values, ARTICLE_COLUMNS) for values in articles]
    claimed: dict[str, tuple[int, LoadStatus]] = {
        source: (int(ident), "loaded") for source, ident in insert_values(conn, INSERT_ARTICLES, rows, fetch=True)
    }
    existing = [values for values in articles if values["source"] not in claimed]
    if existing:
        claimed |= _replace_articles(conn, existing, force)
    return claimed


def _replace_articles(
    conn: Connection, articles: list[dict[str, Any]], force: bool
) -> dict[str, tuple[int, LoadStatus]]:
    current = conn.execute(
        sa.text("SELECT source, id, content_hash FROM articles WHERE source = ANY(:s) ORDER BY source FOR UPDATE"),
        {"s": [values["source"] for values in articles]},
    ).all()
    stored = {row.source: row for row in current}
    claimed: dict[str, tuple[int, LoadStatus]] = {}
    for values in articles:
        row = stored[values["source"]]
        if row.content_hash == values["content_hash"] and not force:
            claimed[row.source] = (int(row.id), "unchanged")
            continue
        conn.execute(sa.text(REPLACE_ARTICLE), {**values, "id": row.id})
        claimed[row.source] = (int(row.id), "replaced")
    replaced = [ident for ident, status in claimed.values() if status == "replaced"]
    if replaced:
        conn.execute(sa.text("DELETE FROM sections WHERE article_id = ANY(:ids)"), {"ids": replaced})
    return claimed


REPLACE_ARTICLE = (
    "UPDATE articles SET url = :url, title = :title, author = :author, published_at = :published_at, "
    "language = :language, site_name = :site_name, content_hash = :content_hash, "
    "raw_document_id = :raw_document_id, text = :text, extractor_version = :extractor_version, "
    "ingest_run_id = :ingest_run_id, version = version + 1, updated_at = now() WHERE id = :id"
)

# Each fact table's columns, in COPY order, and the columns that form its unique key (a duplicate within one
# article keeps the first row).
FACT_COLUMNS: dict[str, tuple[str, ...]] = {
    "entity_mentions": ("article_id", "section_id", "start_offset", "end_offset", "entity_id", "mention"),
    "quotes": (
        "article_id", "kind", "start_offset", "end_offset", "section_id", "quote", "speaker",
        "speaker_entity_id", "speaker_text", "cue",
    ),
    "dates": (
        "article_id", "section_id", "start_offset", "end_offset", "mention", "value", "granularity", "value_start",
    ),
    "quantities": ("article_id", "section_id", "start_offset", "end_offset", "mention", "value", "unit", "noun"),
    "claims": (
        "article_id", "section_id", "start_offset", "end_offset", "predicate", "actor", "actor_entity_id", "object",
    ),
}  # fmt: skip
UNIQUE_KEY: dict[str, tuple[str, ...]] = {
    "entity_mentions": ("article_id", "start_offset", "end_offset"),
    "quotes": ("article_id", "kind", "start_offset", "end_offset"),
    "dates": ("article_id", "start_offset", "end_offset"),
    "quantities": ("article_id", "start_offset", "end_offset"),
    "claims": ("article_id", "start_offset", "end_offset", "predicate"),
}
SECTION_COLUMNS = ("id", "article_id", "position", "heading", "start_offset", "end_offset", "body")


def _insert_facts(conn: Connection, documents: list[tuple[int, Document]]) -> None:
    """Sections and every fact table of the documents, each table in one COPY."""
    section_ids = _insert_sections(conn, documents)
    entity_ids = _upsert_entities(conn, [document for _, document in documents])
    tables: dict[str, list[Row]] = {table: [] for table in FACT_COLUMNS}
    for article_id, document in documents:
        entities = EntityIndex.of({key: entity_ids[key] for key in _entity_keys(document)})
        rows = FactRows(article_id, section_ids[article_id], document, entities)
        for table, builder in FactRows.BUILDERS.items():
            tables[table].extend(builder(rows))
    for table, table_rows in tables.items():
        copy_rows(conn, table, FACT_COLUMNS[table], _first_per_key(table_rows, UNIQUE_KEY[table]))


def _entity_keys(document: Document) -> set[tuple[str, str]]:
    return {(name_key(e.name), e.type) for e in document.facts.entities}


@dataclass(frozen=True)
class EntityIndex:
    """One document's entity ids: by (key, type), people by key, and any type by key (the first in order).
    Per document, so a speaker or actor links only to an entity of its own article, whatever the batch."""

    ids: Mapping[tuple[str, str], int]
    persons: Mapping[str, int]
    any_type: Mapping[str, int]

    @classmethod
    def of(cls, ids: Mapping[tuple[str, str], int]) -> EntityIndex:
        any_type: dict[str, int] = {}
        for (key, _), ident in sorted(ids.items()):
            any_type.setdefault(key, ident)
        persons = {key: ident for (key, kind), ident in ids.items() if kind == PERSON}
        return cls(ids, persons, any_type)


def _insert_sections(conn: Connection, documents: list[tuple[int, Document]]) -> dict[int, list[int]]:
    """Section ids per article, by position: ids drawn from the sequence, rows sent by COPY."""
    count = sum(len(document.sections) for _, document in documents)
    ids = iter(
        conn.execute(
            sa.text("SELECT nextval(pg_get_serial_sequence('sections', 'id')) FROM generate_series(1, :n)"),
            {"n": count},
        ).scalars()
    )
    section_ids: dict[int, list[int]] = {}
    rows: list[Row] = []
    for article_id, document in documents:
        section_ids[article_id] = [int(next(ids)) for _ in document.sections]
        rows.extend(
            {
                "id": ident,
                "article_id": article_id,
                "position": section.position,
                "heading": section.heading,
                "start_offset": section.start,
                "end_offset": section.end,
                "body": document.text[section.start : section.end],
            }
            for ident, section in zip(section_ids[article_id], document.sections, strict=True)
        )
    copy_rows(conn, "sections", SECTION_COLUMNS, rows)
    return section_ids


def _upsert_entities(conn: Connection, documents: list[Document]) -> dict[tuple[str, str], int]:
    """Entity ids by (key, type). New ones are inserted in key order, so concurrent loads lock in one order.
    An entity's name is its preferred spelling among all ever loaded (``preferred_spelling``), so it does not
    depend on the order articles arrive in (two workers, a retried batch)."""
    wanted = _spellings(documents)
    if not wanted:
        return {}
    rows = [(key, kind, name) for (key, kind), name in wanted]
    insert_values(conn, "INSERT INTO entities (key, type, name) VALUES %s ON CONFLICT (key, type) DO NOTHING", rows)
    keys = {"keys": [row[0] for row in rows], "types": [row[1] for row in rows], "names": [row[2] for row in rows]}
    conn.execute(sa.text(RENAME_TO_PREFERRED), keys)
    found = conn.execute(
        sa.text(
            "SELECT e.key, e.type, e.id FROM entities e JOIN unnest(CAST(:keys AS text[]), CAST(:types AS text[])) "
            "AS w (key, type) ON e.key = w.key AND e.type = w.type"
        ),
        keys,
    ).all()
    return {(key, kind): int(ident) for key, kind, ident in found}


def _spellings(documents: list[Document]) -> list[tuple[tuple[str, str], str]]:
    """The preferred spelling of each (key, type) in these documents, in key order."""
    best: dict[tuple[str, str], str] = {}
    for entity in (e for d in documents for e in d.facts.entities):
        slot = (name_key(entity.name), entity.type)
        if slot not in best or preferred_spelling(entity.name) < preferred_spelling(best[slot]):
            best[slot] = entity.name
    return sorted(best.items())


def preferred_spelling(name: str) -> tuple[bool, str]:
    """Sort key of an entity's spellings, the preferred first: not in capitals, then by code point (the same
    order as ``RENAME_TO_PREFERRED`` in SQL)."""
    return (ASCII_LOWER.search(name) is None, name)


@dataclass(frozen=True)
class FactRows:
    """The rows of one document's facts, per table, by column name."""

    article_id: int
    section_ids: list[int]
    document: Document
    entities: EntityIndex

    def section_id(self, offset: int) -> int:
        return self.section_ids[self.document.section_of(offset)]

    def entity_mentions(self) -> list[Row]:
        return [
            {"article_id": self.article_id, "section_id": self.section_id(m.start), "start_offset": m.start,
             "end_offset": m.end, "entity_id": self.entities.ids[(name_key(e.name), e.type)], "mention": m.text}
            for e in self.document.facts.entities
            for m in e.mentions
        ]  # fmt: skip

    def quotes(self) -> list[Row]:
        return [
            {"article_id": self.article_id, "kind": q.kind, "start_offset": q.start, "end_offset": q.end,
             "section_id": self.section_ids[q.section], "quote": q.text, "speaker": q.speaker,
             "speaker_entity_id": self.entities.persons.get(name_key(q.speaker)) if q.speaker else None,
             "speaker_text": q.speaker_text, "cue": q.cue}
            for q in self.document.facts.quotes
        ]  # fmt: skip

    def dates(self) -> list[Row]:
        return [
            {"article_id": self.article_id, "section_id": self.section_id(d.start), "start_offset": d.start,
             "end_offset": d.end, "mention": d.text, "value": d.value, "granularity": d.granularity,
             "value_start": _first_day(d.value)}
            for d in self.document.facts.dates
        ]  # fmt: skip

    def quantities(self) -> list[Row]:
        return [
            {"article_id": self.article_id, "section_id": self.section_id(q.start), "start_offset": q.start,
             "end_offset": q.end, "mention": q.text, "value": q.value, "unit": q.unit, "noun": q.noun}
            for q in self.document.facts.quantities
        ]  # fmt: skip

    def claims(self) -> list[Row]:
        return [
            {"article_id": self.article_id, "section_id": self.section_ids[c.section], "start_offset": c.start,
             "end_offset": c.end, "predicate": c.predicate, "actor": c.actor,
             "actor_entity_id": self.entities.any_type.get(name_key(c.actor)), "object": c.object}
            for c in self.document.facts.claims
        ]  # fmt: skip

    BUILDERS: ClassVar[dict[str, Callable[[FactRows], list[Row]]]] = {
        "entity_mentions": entity_mentions,
        "quotes": quotes,
        "dates": dates,
        "quantities": quantities,
        "claims": claims,
    }


def _first_per_key(rows: Iterable[Row], key: Sequence[str]) -> list[Row]:
    seen: set[tuple[Any, ...]] = set()
    kept = []
    for row in rows:
        identity = in_order(row, key)
        if identity not in seen:
            seen.add(identity)
            kept.append(row)
    return kept


def _first_day(value: str) -> str:
    parts = value.split("-")
    return "-".join(parts + ["01"] * (3 - len(parts)))


UNCHANGED = "SELECT id FROM articles WHERE content_hash = :h ORDER BY (source = :s) DESC, id LIMIT 1"


def unchanged_article(engine: Engine, raw: RawDocument) -> int | None:
    """The article that already holds exactly this content (same source, or the same bytes elsewhere)."""
    with engine.connect() as conn:
        found = conn.scalar(sa.text(UNCHANGED), {"h": raw.content_sha256, "s": raw.source})
    return int(found) if found is not None else None
