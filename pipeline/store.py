"""Store: load one document version into Postgres in one transaction.

Idempotency is held by the database, not by luck: ``articles.source`` and
``raw_documents (source, content_sha256)`` are unique, the article row is
locked (``FOR UPDATE``) before its facts are replaced, and entities are
upserted on ``(key, type)`` in a stable order so concurrent loaders never
deadlock.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import sqlalchemy as sa
from psycopg2.extras import execute_values
from sqlalchemy.engine import Connection, Engine

from pipeline.facts.names import name_key
from pipeline.models import Document, RawDocument

LoadStatus = Literal["loaded", "replaced", "unchanged"]
PERSON = "PERSON"
RAW_GZIP_LEVEL = 1  # raw pages compress 4-5x at level 1, in a quarter of level 6's time


@dataclass(frozen=True)
class LoadResult:
    status: LoadStatus
    article_id: int


def start_run(engine: Engine, *, trigger: str) -> int:
    with engine.begin() as conn:
        run_id = conn.scalar(sa.text("INSERT INTO ingest_runs (trigger) VALUES (:t) RETURNING id"), {"t": trigger})
    return int(run_id)


def finish_run(engine: Engine, run_id: int, counts: Mapping[str, int]) -> None:
    status = "succeeded" if counts["failed"] == 0 else ("failed" if counts["failed"] == counts["seen"] else "partial")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE ingest_runs SET finished_at = now(), status = :status, documents_seen = :seen, "
                "documents_loaded = :loaded, documents_unchanged = :unchanged, documents_failed = :failed "
                "WHERE id = :id"
            ),
            {"status": status, "id": run_id, **{k: counts[k] for k in ("seen", "loaded", "unchanged", "failed")}},
        )


def record_error(engine: Engine, *, run_id: int | None, source: str, stage: str, error: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO ingest_errors (ingest_run_id, source, stage, error) VALUES (:r, :s, :st, :e)"),
            {"r": run_id, "s": source, "st": stage, "e": error[:4000]},
        )


def find_unchanged(engine: Engine, raw: RawDocument) -> int | None:
    """The article that already holds exactly this content (same source, or the same bytes elsewhere)."""
    with engine.connect() as conn:
        found = conn.scalar(
            sa.text("SELECT id FROM articles WHERE content_hash = :h ORDER BY (source = :s) DESC, id LIMIT 1"),
            {"h": raw.content_sha256, "s": raw.source},
        )
    return int(found) if found is not None else None


def load_document(
    engine: Engine, raw: RawDocument, document: Document, *, run_id: int, extractor_version: str, force: bool = False
) -> LoadResult:
    """Store the raw bytes, then insert or replace the article and all its facts atomically.

    ``force`` replaces the facts even when the content is unchanged (re-deriving after an extractor upgrade)."""
    with engine.begin() as conn:
        raw_id = _store_raw(conn, raw, run_id)
        values = _article_values(raw, document, raw_id=raw_id, run_id=run_id, extractor_version=extractor_version)
        article_id, status = _claim_article(conn, values, force=force)
        if status != "unchanged":
            _insert_facts(conn, article_id, document)
    return LoadResult(status=status, article_id=article_id)


def _store_raw(conn: Connection, raw: RawDocument, run_id: int) -> int:
    row = conn.execute(
        sa.text(
            "INSERT INTO raw_documents (source, content_sha256, media_type, metadata, body_gzip, byte_size, "
            "ingest_run_id, processed_at) VALUES (:source, :sha, :media, CAST(:meta AS jsonb), :body, :size, :run, "
            "now()) ON CONFLICT (source, content_sha256) DO UPDATE SET processed_at = now(), process_error = NULL "
            "RETURNING id"
        ),
        _raw_values(raw, run_id),
    ).one()
    return int(row.id)


def _claim_article(conn: Connection, values: dict[str, Any], *, force: bool = False) -> tuple[int, LoadStatus]:
    """Insert the article, or lock and update it when its content changed."""
    inserted = conn.scalar(
        sa.text(
            "INSERT INTO articles (source, url, title, author, published_at, language, site_name, content_hash, "
            "raw_document_id, text, extractor_version, ingest_run_id) VALUES (:source, :url, :title, :author, "
            ":published_at, :language, :site_name, :content_hash, :raw_id, :text, :extractor_version, :run_id) "
            "ON CONFLICT (source) DO NOTHING RETURNING id"
        ),
        values,
    )
    if inserted is not None:
        return int(inserted), "loaded"
    current = conn.execute(
        sa.text("SELECT id, content_hash FROM articles WHERE source = :source FOR UPDATE"), values
    ).one()
    if current.content_hash == values["content_hash"] and not force:
        return int(current.id), "unchanged"
    conn.execute(
        sa.text(
            "UPDATE articles SET url = :url, title = :title, author = :author, published_at = :published_at, "
            "language = :language, site_name = :site_name, content_hash = :content_hash, "
            "raw_document_id = :raw_id, text = :text, "
            "extractor_version = :extractor_version, ingest_run_id = :run_id, version = version + 1, "
            "updated_at = now() WHERE id = :id"
        ),
        {**values, "id": current.id},
    )
    conn.execute(sa.text("DELETE FROM sections WHERE article_id = :id"), {"id": current.id})
    return int(current.id), "replaced"


def _article_values(
    raw: RawDocument, document: Document, *, raw_id: int, run_id: int, extractor_version: str
) -> dict[str, Any]:
    return {
        "source": raw.source,
        "url": document.url,
        "title": document.title,
        "author": document.author,
        "published_at": document.published_at,
        "language": document.language,
        "site_name": document.site_name,
        "content_hash": raw.content_sha256,
        "raw_id": raw_id,
        "text": document.text,
        "extractor_version": extractor_version,
        "run_id": run_id,
    }


# Each fact table's columns, in the order the rows of ``_fact_rows`` are turned into tuples.
FACT_COLUMNS: dict[str, tuple[str, ...]] = {
    "entity_mentions": ("article_id", "section_id", "entity_id", "start_offset", "end_offset", "mention"),
    "quotes": (
        "article_id", "section_id", "kind", "quote", "start_offset", "end_offset", "speaker",
        "speaker_entity_id", "speaker_text", "cue",
    ),
    "dates": (
        "article_id", "section_id", "mention", "start_offset", "end_offset", "value", "granularity", "value_start",
    ),
    "quantities": ("article_id", "section_id", "mention", "start_offset", "end_offset", "value", "unit", "noun"),
    "claims": (
        "article_id", "section_id", "actor", "actor_entity_id", "predicate", "object", "start_offset", "end_offset",
    ),
}  # fmt: skip
ROW_KEYS: dict[str, tuple[str, ...]] = {
    "entity_mentions": ("entity_id", "start", "end", "text"),
    "quotes": ("kind", "text", "start", "end", "speaker", "speaker_id", "speaker_text", "cue"),
    "dates": ("text", "start", "end", "value", "granularity", "value_start"),
    "quantities": ("text", "start", "end", "value", "unit", "noun"),
    "claims": ("actor", "actor_id", "predicate", "object", "start", "end"),
}
PAGE_SIZE = 1000


def _insert_facts(conn: Connection, article_id: int, document: Document) -> None:
    """Sections, entities and every fact table, each in one multi-row statement (``execute_values``)."""
    section_ids = _insert_sections(conn, article_id, document)
    entity_ids = _upsert_entities(conn, document)
    for table, rows in _fact_rows(document, entity_ids).items():
        values = [(article_id, section_ids[row["section"]], *(row[k] for k in ROW_KEYS[table])) for row in rows]
        columns = ", ".join(FACT_COLUMNS[table])
        _values(conn, f"INSERT INTO {table} ({columns}) VALUES %s ON CONFLICT DO NOTHING", values)


def _values(conn: Connection, statement: str, rows: list[tuple[Any, ...]], *, fetch: bool = False) -> list[Any]:
    """Many rows in one statement through psycopg2's ``execute_values``, inside the open transaction."""
    if not rows:
        return []
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        found = execute_values(cursor, statement, rows, page_size=PAGE_SIZE, fetch=fetch)
    finally:
        cursor.close()
    return list(found or [])


def _fact_rows(document: Document, entity_ids: Mapping[tuple[str, str], int]) -> dict[str, list[dict[str, Any]]]:
    """Rows for each fact table, keyed by section position (mapped to ids by the caller)."""
    facts, at = document.facts, document.section_of
    persons = {key: ident for (key, kind), ident in entity_ids.items() if kind == PERSON}
    return {
        "entity_mentions": [
            {
                "section": at(m.start),
                "entity_id": entity_ids[(name_key(e.name), e.type)],
                "start": m.start,
                "end": m.end,
                "text": m.text,
            }
            for e in facts.entities
            for m in e.mentions
        ],
        "quotes": [
            {**asdict(q), "speaker_id": persons.get(name_key(q.speaker)) if q.speaker else None} for q in facts.quotes
        ],
        "dates": [{**asdict(d), "section": at(d.start), "value_start": _first_day(d.value)} for d in facts.dates],
        "quantities": [{**asdict(q), "section": at(q.start)} for q in facts.quantities],
        "claims": [{**asdict(c), "actor_id": _any_entity(entity_ids, c.actor)} for c in facts.claims],
    }


def _insert_sections(conn: Connection, article_id: int, document: Document) -> dict[int, int]:
    rows = [
        (article_id, sec.position, sec.heading, sec.start, sec.end, document.text[sec.start : sec.end])
        for sec in document.sections
    ]
    statement = (
        "INSERT INTO sections (article_id, position, heading, start_offset, end_offset, body) VALUES %s "
        "RETURNING position, id"
    )
    return {int(position): int(ident) for position, ident in _values(conn, statement, rows, fetch=True)}


def _upsert_entities(conn: Connection, document: Document) -> dict[tuple[str, str], int]:
    """Entity ids by (key, type), upserted in key order so concurrent loads lock in one order."""
    wanted = sorted({(name_key(e.name), e.type): e.name for e in document.facts.entities}.items())
    statement = (
        "INSERT INTO entities (key, type, name) VALUES %s "
        "ON CONFLICT (key, type) DO UPDATE SET key = EXCLUDED.key RETURNING key, type, id"
    )
    found = _values(conn, statement, [(key, kind, name) for (key, kind), name in wanted], fetch=True)
    return {(key, kind): int(ident) for key, kind, ident in found}


def _any_entity(entity_ids: Mapping[tuple[str, str], int], name: str) -> int | None:
    key = name_key(name)
    return next((ident for (k, _), ident in sorted(entity_ids.items()) if k == key), None)


def _first_day(value: str) -> str:
    parts = value.split("-")
    return "-".join(parts + ["01"] * (3 - len(parts)))


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def stage_raw(engine: Engine, raw: RawDocument, *, run_id: int) -> int | None:
    """Keep a fetched document for the processing stage; None when this exact version is already stored."""
    with engine.begin() as conn:
        staged = conn.scalar(
            sa.text(
                "INSERT INTO raw_documents (source, content_sha256, media_type, metadata, body_gzip, byte_size, "
                "ingest_run_id) VALUES (:source, :sha, :media, CAST(:meta AS jsonb), :body, :size, :run) "
                "ON CONFLICT (source, content_sha256) DO NOTHING RETURNING id"
            ),
            _raw_values(raw, run_id),
        )
    return int(staged) if staged is not None else None


def _raw_values(raw: RawDocument, run_id: int) -> dict[str, Any]:
    return {
        "source": raw.source,
        "sha": raw.content_sha256,
        "media": raw.media_type,
        "meta": _json(dict(raw.metadata)),
        "body": gzip.compress(raw.body, RAW_GZIP_LEVEL),
        "size": len(raw.body),
        "run": run_id,
    }


def pending_raw(engine: Engine, *, limit: int) -> list[tuple[int, RawDocument]]:
    """Staged documents waiting to be processed, oldest first."""
    query = (
        "SELECT id, source, media_type, metadata, body_gzip FROM raw_documents "
        "WHERE processed_at IS NULL ORDER BY id LIMIT :limit"
    )
    return _raw_rows(engine, query, {"limit": limit})


def stored_raw(engine: Engine, *, sources: list[str] | None) -> list[tuple[int, RawDocument]]:
    """The raw version behind each article (all of them, or those with the given sources)."""
    query = (
        "SELECT r.id, r.source, r.media_type, r.metadata, r.body_gzip FROM articles a "
        "JOIN raw_documents r ON r.id = a.raw_document_id WHERE :all OR a.source = ANY(:sources) ORDER BY a.id"
    )
    return _raw_rows(engine, query, {"all": sources is None, "sources": sources or []})


def _raw_rows(engine: Engine, query: str, params: Mapping[str, Any]) -> list[tuple[int, RawDocument]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(query), dict(params)).all()
    return [
        (int(row.id), RawDocument(row.source, gzip.decompress(row.body_gzip), row.media_type, dict(row.metadata)))
        for row in rows
    ]


def mark_processed(engine: Engine, raw_id: int, *, article_id: int | None, error: str | None = None) -> None:
    """Close a staged document: processed (linking its feed entries to the article) or failed with a reason."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE raw_documents SET processed_at = now(), process_error = :error WHERE id = :id"),
            {"id": raw_id, "error": error},
        )
        if article_id is not None:
            conn.execute(
                sa.text("UPDATE feed_entries SET article_id = :article WHERE raw_document_id = :id"),
                {"id": raw_id, "article": article_id},
            )
