"""The intake queue's ledger, ``intake_messages``: this module is its one writer.

A message taken from the stream is staged and its ledger row written in one transaction, so a message seen
again (redelivered after a crash between that commit and its acknowledgement in Redis) is known by its id and
never processed twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipeline.db import raw_store
from pipeline.models import RawDocument, storable


@dataclass(frozen=True)
class Taken:
    """One message's ledger entry: which stream message, what it was, and who published it."""

    stream: str
    message_id: str
    kind: str
    source: str
    origin: str


RECORD = (
    "INSERT INTO intake_messages (stream, message_id, kind, source, origin, outcome, error, raw_document_id, "
    "ingest_run_id) VALUES (:stream, :message_id, :kind, :source, :origin, :outcome, :error, :raw_id, :run) "
    "ON CONFLICT (stream, message_id) DO NOTHING RETURNING message_id"
)


def seen(engine: Engine, stream: str, message_ids: list[str]) -> set[str]:
    """The ids among ``message_ids`` that already have their outcome in the ledger."""
    if not message_ids:
        return set()
    query = "SELECT message_id FROM intake_messages WHERE stream = :stream AND message_id = ANY(:ids)"
    with engine.connect() as conn:
        return set(conn.scalars(sa.text(query), {"stream": stream, "ids": message_ids}))


@dataclass(frozen=True)
class Outcome:
    """What became of a message: staged (with its raw document), unchanged, or failed (with the reason)."""

    outcome: str
    run_id: int
    raw_id: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Staged:
    """What staging a message did: the raw document's id (None when exactly this version was stored already),
    and ``first``: False when another drain recorded the message first, and nothing was staged."""

    raw_id: int | None
    first: bool = True


class _RecordedBeforeError(Exception):
    """Another drain's ledger row for the message committed first: this transaction is rolled back."""


def stage(engine: Engine, taken: Taken, raw: RawDocument, *, run_id: int) -> Staged:
    """Stage the message's document and write its ledger row, in one transaction. The ledger row is the lock: a
    drain that reclaimed the message while this one still worked on it (its batch outlasted the claim time)
    and recorded it first wins, and this one stages nothing (``first`` False), even when the page changed."""
    try:
        with engine.begin() as conn:
            raw_id = raw_store.stage_on(conn, raw, run_id=run_id)
            outcome = Outcome("unchanged" if raw_id is None else "staged", run_id, raw_id=raw_id)
            if not _record(conn, taken, outcome):
                raise _RecordedBeforeError
    except _RecordedBeforeError:
        return Staged(None, first=False)
    return Staged(raw_id)


def fail(engine: Engine, taken: Taken, error: str, *, run_id: int) -> None:
    """Write the ledger row of a message that failed (malformed, refused, not fetched)."""
    with engine.begin() as conn:
        _record(conn, taken, Outcome("failed", run_id, error=error))


def _record(conn: Connection, taken: Taken, outcome: Outcome) -> bool:
    """Write the ledger row; False when the message has one already (another drain recorded it)."""
    error = storable(outcome.error) if outcome.error is not None else None
    values = {"stream": taken.stream, "message_id": taken.message_id, "kind": taken.kind,
              "source": storable(taken.source), "origin": storable(taken.origin), "outcome": outcome.outcome,
              "error": error, "raw_id": outcome.raw_id, "run": outcome.run_id}  # fmt: skip
    return conn.scalar(sa.text(RECORD), values) is not None
