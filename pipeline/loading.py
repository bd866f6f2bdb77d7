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

import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import psycopg2
import sqlalchemy as sa
from psycopg2.extras import execute_values
from psycopg2.sql import SQL, Identifier
from sqlalchemy.engine import Connection, Engine
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from pipeline.facts.names import name_key
from pipeline.models import Document, RawDocument

LoadStatus = Literal["loaded", "replaced", "unchanged"]
PERSON = "PERSON"
TRANSIENT_ATTEMPTS = 4
# SQLSTATEs worth retrying the batch for: serialization failure, deadlock, and the server shutting down or
# crashing (class 08, connection exceptions, is matched by prefix). Other errors, even those psycopg2 files
# under OperationalError (a key over the index row size, a tsvector too long, a statement timeout), are the
# data's fault and go to the per-document fallback.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03"})


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
        if is_transient(error):
            raise  # still failing after the retries: the database is unreachable, not the data at fault
        if len(items) == 1:
            return [LoadFailure(_describe(error))]
    return [_load_alone(engine, item, options) for item in items]


def is_transient(error: BaseException) -> bool:
    """A lost connection, a server restart, a deadlock or a serialization failure, anywhere in the chain
    (a driver error raised on the raw cursor is followed by SQLAlchemy's failed rollback)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, psycopg2.Error) and _transient_driver_error(current):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


def _transient_driver_error(error: psycopg2.Error) -> bool:
    code = error.pgcode
    if code is None:  # raised by libpq itself: the connection broke or was already closed
        return isinstance(error, (psycopg2.OperationalError, psycopg2.InterfaceError))
    return code.startswith("08") or code in TRANSIENT_SQLSTATES


def _load_alone(engine: Engine, item: LoadItem, options: LoadOptions) -> LoadResult | LoadFailure:
    return load_documents(engine, [item], options)[0]


def _describe(error: BaseException) -> str:
    first = str(getattr(error, "orig", None) or error).strip().splitlines() or [""]
    return f"{type(getattr(error, 'orig', None) or error).__name__}: {first[0]}"


@retry(
    retry=retry_if_exception(is_transient),
    stop=stop_after_attempt(TRANSIENT_ATTEMPTS),
    wait=wait_exponential(multiplier=0.2, max=5),
    reraise=True,
)
def _load_together(engine: Engine, items: Sequence[LoadItem], options: LoadOptions) -> list[LoadResult]:
    with engine.begin() as conn:
        return _write_batch(conn, items, options)


def _write_batch(conn: Connection, items: Sequence[LoadItem], options: LoadOptions) -> list[LoadResult]:
    ordered = sorted(items, key=lambda item: item.raw.source)
    raw_ids = _store_raw(conn, [item.raw for item in ordered], options.run_id)
    claimed = _claim_articles(conn, [_article_values(item, raw_ids, options) for item in ordered], options.force)
    results = {source: LoadResult(status=status, article_id=ident) for source, (ident, status) in claimed.items()}
    changed = [
        (results[i.raw.source].article_id, i.document) for i in ordered if results[i.raw.source].status != "unchanged"
    ]
    if changed:
        _insert_facts(conn, changed)
    return [results[item.raw.source] for item in items]


RAW_COLUMNS = ("source", "content_sha256", "media_type", "metadata", "body_gzip", "byte_size", "ingest_run_id")


def raw_values(raw: RawDocument, run_id: int) -> dict[str, Any]:
    """A ``raw_documents`` row, by column (``metadata`` as JSON text, for a ``CAST(... AS jsonb)``)."""
    return {
        "source": raw.source,
        "content_sha256": raw.content_sha256,
        "media_type": raw.media_type,
        "metadata": json_text(dict(raw.metadata)),
        "body_gzip": raw.body_gzip,
        "byte_size": len(raw.body),
        "ingest_run_id": run_id,
    }


def _store_raw(conn: Connection, raws: list[RawDocument], run_id: int) -> dict[tuple[str, str], int]:
    rows = [_in_order(raw_values(raw, run_id), RAW_COLUMNS) for raw in raws]
    statement = (
        "INSERT INTO raw_documents (source, content_sha256, media_type, metadata, body_gzip, byte_size, "
        "ingest_run_id, processed_at) VALUES %s "
        "ON CONFLICT (source, content_sha256) DO UPDATE SET processed_at = now(), process_error = NULL "
        "RETURNING source, content_sha256, id"
    )
    template = "(%s, %s, %s, CAST(%s AS jsonb), %s, %s, %s, now())"
    found = _values(conn, statement, rows, fetch=True, template=template)
    return {(source, sha): int(ident) for source, sha, ident in found}


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


INSERT_ARTICLES = (
    f"INSERT INTO articles ({', '.join(ARTICLE_COLUMNS)}) VALUES %s "
    "ON CONFLICT (source) DO NOTHING RETURNING source, id"
)


def _claim_articles(conn: Connection, articles: list[dict[str, Any]], force: bool) -> dict[str, tuple[int, LoadStatus]]:
    """Insert new articles; lock the existing ones and update those whose content changed."""
    rows = [_in_order(values, ARTICLE_COLUMNS) for values in articles]
    claimed: dict[str, tuple[int, LoadStatus]] = {
        source: (int(ident), "loaded") for source, ident in _values(conn, INSERT_ARTICLES, rows, fetch=True)
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

# Each fact table's columns, in the order of the tuples ``_fact_rows`` builds, and the leading
# columns that form its unique key (a duplicate within one article keeps the first row).
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
UNIQUE_KEY: dict[str, tuple[int, ...]] = {
    "entity_mentions": (0, 2, 3),
    "quotes": (0, 1, 2, 3),
    "dates": (0, 2, 3),
    "quantities": (0, 2, 3),
    "claims": (0, 2, 3, 4),
}
SECTION_COLUMNS = ("id", "article_id", "position", "heading", "start_offset", "end_offset", "body")


def _insert_facts(conn: Connection, documents: list[tuple[int, Document]]) -> None:
    """Sections and every fact table of the documents, each table in one COPY."""
    section_ids = _insert_sections(conn, documents)
    entity_ids = _upsert_entities(conn, [document for _, document in documents])
    tables: dict[str, list[tuple[Any, ...]]] = {table: [] for table in FACT_COLUMNS}
    for article_id, document in documents:
        entities = EntityIndex.of({key: entity_ids[key] for key in _entity_keys(document)})
        for table, rows in _fact_rows(article_id, section_ids[article_id], document, entities).items():
            tables[table].extend(rows)
    for table, rows in tables.items():
        _copy(conn, table, FACT_COLUMNS[table], _first_per_key(rows, UNIQUE_KEY[table]))


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
    rows: list[tuple[Any, ...]] = []
    for article_id, document in documents:
        section_ids[article_id] = [int(next(ids)) for _ in document.sections]
        rows.extend(
            (ident, article_id, sec.position, sec.heading, sec.start, sec.end, document.text[sec.start : sec.end])
            for ident, sec in zip(section_ids[article_id], document.sections, strict=True)
        )
    _copy(conn, "sections", SECTION_COLUMNS, rows)
    return section_ids


def _upsert_entities(conn: Connection, documents: list[Document]) -> dict[tuple[str, str], int]:
    """Entity ids by (key, type). New ones are inserted in key order, so concurrent loads lock in one order."""
    wanted = sorted({(name_key(e.name), e.type): e.name for d in documents for e in d.facts.entities}.items())
    if not wanted:
        return {}
    _values(
        conn,
        "INSERT INTO entities (key, type, name) VALUES %s ON CONFLICT (key, type) DO NOTHING",
        [(key, kind, name) for (key, kind), name in wanted],
    )
    found = conn.execute(
        sa.text(
            "SELECT e.key, e.type, e.id FROM entities e JOIN unnest(CAST(:keys AS text[]), CAST(:types AS text[])) "
            "AS w (key, type) ON e.key = w.key AND e.type = w.type"
        ),
        {"keys": [key for (key, _), _ in wanted], "types": [kind for (_, kind), _ in wanted]},
    ).all()
    return {(key, kind): int(ident) for key, kind, ident in found}


def _fact_rows(
    article_id: int, sections: list[int], document: Document, entities: EntityIndex
) -> dict[str, list[tuple[Any, ...]]]:
    """Rows for each fact table, in ``FACT_COLUMNS`` order."""
    facts = document.facts

    def section(offset: int) -> int:
        return sections[document.section_of(offset)]

    def speaker_id(speaker: str | None) -> int | None:
        return entities.persons.get(name_key(speaker)) if speaker else None

    return {
        "entity_mentions": [
            (article_id, section(m.start), m.start, m.end, ident, m.text)
            for e in facts.entities
            for ident in (entities.ids[(name_key(e.name), e.type)],)
            for m in e.mentions
        ],
        "quotes": [
            (
                article_id,
                q.kind,
                q.start,
                q.end,
                sections[q.section],
                q.text,
                q.speaker,
                speaker_id(q.speaker),
                q.speaker_text,
                q.cue,
            )
            for q in facts.quotes
        ],
        "dates": [
            (article_id, section(d.start), d.start, d.end, d.text, d.value, d.granularity, _first_day(d.value))
            for d in facts.dates
        ],
        "quantities": [
            (article_id, section(q.start), q.start, q.end, q.text, q.value, q.unit, q.noun) for q in facts.quantities
        ],
        "claims": [
            (
                article_id,
                sections[c.section],
                c.start,
                c.end,
                c.predicate,
                c.actor,
                entities.any_type.get(name_key(c.actor)),
                c.object,
            )
            for c in facts.claims
        ],
    }


def _in_order(values: Mapping[str, Any], columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple(values[column] for column in columns)


def _first_per_key(rows: Iterable[tuple[Any, ...]], key: tuple[int, ...]) -> list[tuple[Any, ...]]:
    seen: set[tuple[Any, ...]] = set()
    kept = []
    for row in rows:
        identity = tuple(row[i] for i in key)
        if identity not in seen:
            seen.add(identity)
            kept.append(row)
    return kept


def _first_day(value: str) -> str:
    parts = value.split("-")
    return "-".join(parts + ["01"] * (3 - len(parts)))


def json_text(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, default=str)


COPY_FROM_STDIN = SQL("COPY {} ({}) FROM STDIN")
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_line(row: tuple[Any, ...]) -> str:
    """One row in COPY's text format: tab-separated, ``\\N`` for NULL, specials escaped in strings."""
    return "\t".join("\\N" if value is None else str(value).translate(COPY_ESCAPES) for value in row)


def _copy(conn: Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    """``COPY table (columns) FROM STDIN`` in text format, inside the open transaction."""
    if not rows:
        return
    buffer = io.StringIO("\n".join(map(_copy_line, rows)) + "\n")
    with driver_cursor(conn) as cursor:
        cursor.copy_expert(COPY_FROM_STDIN.format(Identifier(table), SQL(", ").join(map(Identifier, columns))), buffer)


PAGE_SIZE = 1000


def _values(
    conn: Connection, statement: str, rows: list[tuple[Any, ...]], *, fetch: bool = False, template: str | None = None
) -> list[Any]:
    """Many rows in one statement through psycopg2's ``execute_values``, inside the open transaction."""
    if not rows:
        return []
    with driver_cursor(conn) as cursor:
        found = execute_values(cursor, statement, rows, template=template, page_size=PAGE_SIZE, fetch=fetch)
    return list(found or [])


@contextmanager
def driver_cursor(conn: Connection) -> Iterator[Any]:
    """psycopg2's own cursor on the transaction's connection, for COPY and ``execute_values``. SQLAlchemy does
    not see its errors, so when the connection broke it is told here (``invalidate``): the pool then drops it,
    and the retry starts on a fresh one."""
    dbapi_connection: Any = conn.connection.dbapi_connection
    cursor = dbapi_connection.cursor()
    try:
        yield cursor
    except psycopg2.Error:
        if dbapi_connection.closed:
            conn.invalidate()
        raise
    finally:
        if not cursor.closed:
            cursor.close()
