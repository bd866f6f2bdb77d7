"""Runs and their error rows: ``ingest_runs`` and ``ingest_errors`` are written here and nowhere else."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline.db.bulk import json_text
from pipeline.models import storable


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


@dataclass(frozen=True)
class RunRecord:
    """How a run ended, as its row stores it."""

    seen: int
    loaded: int
    unchanged: int
    failed: int
    outcomes: Mapping[str, int]
    stage_seconds: Mapping[str, float]
    stop_reason: str | None = None

    @property
    def status(self) -> str:
        if self.stop_reason is not None:
            return "stopped"
        if self.failed == 0:
            return "succeeded"
        return "failed" if self.failed >= self.seen else "partial"


FINISH_RUN = (
    "UPDATE ingest_runs SET finished_at = now(), status = :status, documents_seen = :seen, "
    "documents_loaded = :loaded, documents_unchanged = :unchanged, documents_failed = :failed, "
    "outcomes = CAST(:outcomes AS jsonb), stage_seconds = CAST(:stage_seconds AS jsonb), stop_reason = :stop_reason "
    "WHERE id = :id"
)


def finish_run(engine: Engine, run_id: int, record: RunRecord) -> None:
    values = {
        "id": run_id,
        "status": record.status,
        "seen": record.seen,
        "loaded": record.loaded,
        "unchanged": record.unchanged,
        "failed": record.failed,
        "outcomes": json_text(record.outcomes),
        "stage_seconds": json_text({stage: round(seconds, 3) for stage, seconds in record.stage_seconds.items()}),
        "stop_reason": record.stop_reason,
    }
    with engine.begin() as conn:
        conn.execute(sa.text(FINISH_RUN), values)


MAX_SOURCE_BYTES = 2000  # a btree index entry holds about 2,700 bytes


def bounded(source: str) -> str:
    """A source short enough for the errors table's index: a very long path or URL is cut, marked with "…"."""
    text = storable(source)
    encoded = text.encode("utf-8")
    if len(encoded) <= MAX_SOURCE_BYTES:
        return text
    return encoded[: MAX_SOURCE_BYTES - 3].decode("utf-8", "ignore") + "…"


# An input's error row is written again when the reply to its COMMIT was lost (the input then has no outcome
# and the batch runs it again): the key (run, stage, md5(source)) of sql/0013_error_once.sql keeps the first.
RECORD_ERROR = (
    "INSERT INTO ingest_errors (ingest_run_id, source, stage, error) VALUES (:r, :s, :st, :e) "
    "ON CONFLICT (ingest_run_id, stage, md5(source)) DO NOTHING"
)


def record_error(engine: Engine, *, run_id: int | None, source: str, stage: str, error: str) -> None:
    """The input's error row, once per run and stage however often it is written."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(RECORD_ERROR),
            {"r": run_id, "s": bounded(source), "st": stage, "e": storable(error)[:4000]},
        )
