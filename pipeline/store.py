"""Store: runs, error rows, the raw store of staged pages, and reading stored pages back.

Loading processed documents (articles, sections and facts) is ``pipeline.loading``.
"""

from __future__ import annotations

import gzip
import os
import socket
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline.loading import raw_values
from pipeline.models import RawDocument


def start_run(engine: Engine, *, trigger: str) -> int:
    """A new run owned by this process; runs on this host whose process is gone are closed as abandoned."""
    host = socket.gethostname()
    with engine.begin() as conn:
        running = conn.execute(
            sa.text("SELECT id, pid FROM ingest_runs WHERE status = 'running' AND host = :host"), {"host": host}
        ).all()
        dead = [run.id for run in running if run.pid is not None and not _process_alive(run.pid)]
        if dead:
            conn.execute(
                sa.text("UPDATE ingest_runs SET status = 'abandoned', finished_at = now() WHERE id = ANY(:ids)"),
                {"ids": dead},
            )
        run_id = conn.scalar(
            sa.text("INSERT INTO ingest_runs (trigger, host, pid) VALUES (:t, :host, :pid) RETURNING id"),
            {"t": trigger, "host": host, "pid": os.getpid()},
        )
    return int(run_id)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


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


def stage_raw(engine: Engine, raw: RawDocument, *, run_id: int) -> int | None:
    """Keep a fetched document for the processing stage; None when this exact version is already stored."""
    with engine.begin() as conn:
        staged = conn.scalar(
            sa.text(
                "INSERT INTO raw_documents (source, content_sha256, media_type, metadata, body_gzip, byte_size, "
                "ingest_run_id) VALUES (:source, :content_sha256, :media_type, CAST(:metadata AS jsonb), :body_gzip, "
                ":byte_size, :ingest_run_id) ON CONFLICT (source, content_sha256) DO NOTHING RETURNING id"
            ),
            raw_values(raw, run_id),
        )
    return int(staged) if staged is not None else None


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
