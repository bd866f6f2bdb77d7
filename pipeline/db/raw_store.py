"""The raw store: every document version's original bytes, gzip-compressed, in ``raw_documents``.

This module is the one writer of ``raw_documents``. The loader stores the versions it loads through
``store_versions``; the scheduled path stages fetched pages with ``stage`` and later claims them for
processing. A claim is exclusive (``FOR UPDATE SKIP LOCKED``, then the claiming run's id): no two runs ever
process one document. Each claim raises ``attempts``; a document still waiting after its claiming run is
over was left behind by a process that died on it, and after ``max_attempts`` such deaths it is closed as
quarantined (``v_quarantined_documents``) instead of being tried again.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipeline.db.bulk import in_order, insert_values, json_text
from pipeline.errors import SourceError
from pipeline.models import RawDocument, storable

RAW_COLUMNS = ("source", "content_sha256", "media_type", "metadata", "body_gzip", "byte_size", "ingest_run_id")


@dataclass(frozen=True)
class StoredVersion:
    """A raw document version in the store, as stored: decoded by ``raw()``, inside the document boundary."""

    id: int
    source: str
    media_type: str
    metadata: Any
    body_gzip: bytes

    def raw(self) -> RawDocument:
        """The version's bytes and metadata; ``SourceError`` when the stored row is damaged."""
        try:
            body = gzip.decompress(self.body_gzip)
            metadata = {str(key): str(value) for key, value in dict(self.metadata).items()}
        except (OSError, EOFError, zlib.error, TypeError, ValueError) as error:
            raise SourceError(f"stored version {self.id} cannot be read back: {error}") from error
        return RawDocument(self.source, body, self.media_type, metadata)


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


STORE_VERSIONS = (
    "INSERT INTO raw_documents (source, content_sha256, media_type, metadata, body_gzip, byte_size, "
    "ingest_run_id, processed_at) VALUES %s "
    "ON CONFLICT (source, content_sha256) DO UPDATE SET processed_at = now(), process_error = NULL, "
    "claimed_by = NULL, quarantined_at = NULL "
    "RETURNING source, content_sha256, id"
)
STORE_TEMPLATE = "(%s, %s, %s, CAST(%s AS jsonb), %s, %s, %s, now())"


def store_versions(conn: Connection, raws: list[RawDocument], run_id: int) -> dict[tuple[str, str], int]:
    """Store versions being loaded now (marked processed), inside the loader's transaction; ids by
    (source, content hash)."""
    rows = [in_order(raw_values(raw, run_id), RAW_COLUMNS) for raw in raws]
    found = insert_values(conn, STORE_VERSIONS, rows, fetch=True, template=STORE_TEMPLATE)
    return {(source, sha): int(ident) for source, sha, ident in found}


STAGE = (
    "INSERT INTO raw_documents (source, content_sha256, media_type, metadata, body_gzip, byte_size, "
    "ingest_run_id) VALUES (:source, :content_sha256, :media_type, CAST(:metadata AS jsonb), :body_gzip, "
    ":byte_size, :ingest_run_id) ON CONFLICT (source, content_sha256) DO NOTHING RETURNING id"
)


def stage(engine: Engine, raw: RawDocument, *, run_id: int) -> int | None:
    """Keep a fetched document for the processing stage; None when this exact version is already stored."""
    with engine.begin() as conn:
        return stage_on(conn, raw, run_id=run_id)


def stage_on(conn: Connection, raw: RawDocument, *, run_id: int) -> int | None:
    """``stage`` inside a transaction the caller holds (the intake ledger commits its row with it)."""
    staged = conn.scalar(sa.text(STAGE), raw_values(raw, run_id))
    return int(staged) if staged is not None else None


# A waiting document is free to claim when nobody claimed it, its claiming run is over, or the claim expired.
CLAIMABLE = (
    "processed_at IS NULL AND (claimed_by IS NULL OR claimed_at < now() - make_interval(secs => :lease) "
    "OR NOT EXISTS (SELECT FROM ingest_runs WHERE ingest_runs.id = claimed_by AND status = 'running'))"
)
CLAIM = (
    f"WITH next AS (SELECT id FROM raw_documents WHERE {CLAIMABLE} AND (attempts = 0) = :fresh AND attempts < :max "
    "ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED) "
    "UPDATE raw_documents r SET attempts = r.attempts + 1, claimed_by = :run, claimed_at = now() FROM next "
    "WHERE r.id = next.id RETURNING r.id, r.source, r.media_type, r.metadata, r.body_gzip"
)


@dataclass(frozen=True)
class ClaimPolicy:
    """Who claims, and when a claim or a document gives up."""

    run_id: int
    lease_seconds: float
    max_attempts: int


def claim(engine: Engine, policy: ClaimPolicy, *, limit: int, fresh: bool) -> list[StoredVersion]:
    """Claim up to ``limit`` waiting documents for this run, oldest first: never tried ones (``fresh``), or
    ones a dead process left behind."""
    values = {"lease": policy.lease_seconds, "fresh": fresh, "limit": limit, "run": policy.run_id,
              "max": policy.max_attempts}  # fmt: skip
    with engine.begin() as conn:
        rows = conn.execute(sa.text(CLAIM), values).all()
    return sorted((_version(row) for row in rows), key=lambda version: version.id)


QUARANTINE = (
    "UPDATE raw_documents SET processed_at = now(), quarantined_at = now(), claimed_by = NULL, "
    "process_error = 'quarantined: its processing died ' || attempts || ' times (a crash or the OOM killer?)' "
    f"WHERE id IN (SELECT id FROM raw_documents WHERE {CLAIMABLE} AND attempts >= :max FOR UPDATE SKIP LOCKED) "
    "RETURNING source, process_error"
)


def quarantine(engine: Engine, policy: ClaimPolicy) -> list[tuple[str, str]]:
    """Close the waiting documents whose processing died ``max_attempts`` times: (source, reason) each."""
    with engine.begin() as conn:
        rows = conn.execute(sa.text(QUARANTINE), {"lease": policy.lease_seconds, "max": policy.max_attempts}).all()
    return [(row.source, row.process_error) for row in rows]


WAITING = "SELECT count(*) FROM raw_documents WHERE processed_at IS NULL"


def waiting(engine: Engine) -> int:
    """How many staged documents wait for processing (claimed or not): the backlog news_process plans for."""
    with engine.connect() as conn:
        return int(conn.scalar(sa.text(WAITING)) or 0)


RELEASE = (
    "UPDATE raw_documents SET claimed_by = NULL, attempts = greatest(attempts - 1, 0) "
    "WHERE claimed_by = :run AND processed_at IS NULL"
)


def release(engine: Engine, run_id: int) -> int:
    """Give back what a run claimed and did not finish, when it stops for a reason that is not the documents'
    (the database, an interrupt): their attempts are lowered again, so they are not quarantined for it."""
    with engine.begin() as conn:
        return int(conn.execute(sa.text(RELEASE), {"run": run_id}).rowcount or 0)


def close(engine: Engine, raw_id: int, *, article_id: int | None, error: str | None = None) -> None:
    """Close a staged document: processed (linking its feed entries to the article) or failed with a reason."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE raw_documents SET processed_at = now(), process_error = :error, claimed_by = NULL "
                "WHERE id = :id"
            ),
            {"id": raw_id, "error": storable(error) if error is not None else None},
        )
        if article_id is not None:
            conn.execute(
                sa.text("UPDATE feed_entries SET article_id = :article WHERE raw_document_id = :id"),
                {"id": raw_id, "article": article_id},
            )


STORED_IDS = (
    "SELECT r.id FROM articles a JOIN raw_documents r ON r.id = a.raw_document_id "
    "WHERE :all OR a.source = ANY(:sources) OR a.url = ANY(:sources) "
    "OR a.source IN (SELECT source FROM source_requests WHERE md5(requested) = "
    "ANY(ARRAY(SELECT md5(given) FROM unnest(CAST(:sources AS text[])) AS given))) ORDER BY a.id"
)


def stored_ids(engine: Engine, *, sources: list[str] | None) -> list[int]:
    """The raw version behind each article (all of them, or those whose source, URL, or a name it was requested
    by is given), by id."""
    values = {"all": sources is None, "sources": sources or []}
    with engine.connect() as conn:
        return [int(ident) for ident in conn.scalars(sa.text(STORED_IDS), values)]


# Each name an input was given as, where it differs from the source its staged version or article is under.
REMEMBER_STAGED = (
    "INSERT INTO source_requests (requested, source) SELECT given.requested, r.source "
    "FROM unnest(CAST(:requested AS text[]), CAST(:ids AS bigint[])) AS given (requested, id) "
    "JOIN raw_documents r ON r.id = given.id WHERE r.source <> given.requested ON CONFLICT DO NOTHING"
)
REMEMBER_LOADED = (
    "INSERT INTO source_requests (requested, source) SELECT given.requested, a.source "
    "FROM unnest(CAST(:requested AS text[]), CAST(:ids AS bigint[])) AS given (requested, id) "
    "JOIN articles a ON a.id = given.id WHERE a.source <> given.requested ON CONFLICT DO NOTHING"
)


def remember_requests(engine: Engine, *, raw_documents: dict[str, int], articles: dict[str, int]) -> None:
    """Keep the names inputs were given as (input → staged raw document id, input → article id), where they
    differ from the source the document is stored under."""
    with engine.begin() as conn:
        for statement, named in ((REMEMBER_STAGED, raw_documents), (REMEMBER_LOADED, articles)):
            if named:
                values = {"requested": [storable(name) for name in named], "ids": list(named.values())}
                conn.execute(sa.text(statement), values)


VERSIONS = "SELECT id, source, media_type, metadata, body_gzip FROM raw_documents WHERE id = ANY(:ids) ORDER BY id"


def versions(engine: Engine, ids: list[int]) -> list[StoredVersion]:
    """These stored versions, as stored (a batch at a time, so a reprocess never holds the whole store)."""
    with engine.connect() as conn:
        return [_version(row) for row in conn.execute(sa.text(VERSIONS), {"ids": ids}).all()]


def _version(row: Any) -> StoredVersion:
    return StoredVersion(int(row.id), row.source, row.media_type, row.metadata, bytes(row.body_gzip))
