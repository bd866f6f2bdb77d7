"""Schema migrations: the numbered plain-SQL files in ``sql/``, applied by yoyo.

yoyo records applied migrations in ``_yoyo_migration``. Each migration runs, and is recorded, in one
transaction on one session, so a migrator that dies mid-migration leaves it rolled back and unrecorded, to be
applied whole by the next run.

Concurrent migrators serialise on a session-level advisory lock, taken on the very connection that applies
the migrations: it is released when that session ends, however the process ends (killed, crashed, its host
gone). The session asks the server to check every second that its client is still there, so a killed
migrator's backend stops within a second even in the middle of a long statement. yoyo's own lock table, whose
row outlives a killed holder, is only a formality under the advisory lock: rows found there are left by dead
migrators of older versions, and are cleared.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
from yoyo import get_backend, read_migrations

from pipeline.db.engine import libpq_url, shown_url
from pipeline.errors import DatabaseUnavailableError

# pg_advisory_lock key of Newsflow's migrations: the bytes of "newsflow" read as a signed 64-bit integer.
MIGRATION_LOCK_KEY = int.from_bytes(b"newsflow", "big", signed=True)
# How long a migrator waits for another to finish before giving up with a systemic error.
MIGRATION_LOCK_WAIT_SECONDS = 600.0
# How often the server checks that the migrating client is still connected (PostgreSQL 14+).
DEAD_CLIENT_CHECK = "1s"


def pending_migrations(url: str, sql_dir: Path) -> list[str]:
    """Ids of the migrations not yet applied to this database."""
    backend = get_backend(libpq_url(url))
    try:
        return [m.id for m in backend.to_apply(read_migrations(str(sql_dir)))]
    finally:
        backend.connection.close()


def apply_migrations(url: str, sql_dir: Path, *, lock_wait: float = MIGRATION_LOCK_WAIT_SECONDS) -> list[str]:
    """Apply every pending migration in order, one migrator at a time; return the ids applied.

    ``DatabaseUnavailableError`` when another migrator holds the lock for longer than ``lock_wait`` seconds."""
    backend = get_backend(libpq_url(url))
    try:
        with migration_lock(backend, url, lock_wait), backend.lock():
            to_apply = backend.to_apply(read_migrations(str(sql_dir)))
            for migration in to_apply:
                _apply_one(backend, migration)
        return [m.id for m in to_apply]
    finally:
        backend.connection.close()


def _apply_one(backend: Any, migration: Any) -> None:
    """Run one migration and record it in a single transaction on the locked session, so that it is applied
    and marked together or not at all (yoyo's own ``apply_one`` commits the two separately, on two sessions)."""
    if not migration.use_transactions:  # "-- transactional: false": yoyo's way, the steps commit as they go
        migration.process_steps(backend, "apply")
        with backend.transaction():
            backend.log_migration(migration, "apply")
            backend.mark_one(migration, log=False)
        return
    with backend.transaction():
        migration.process_steps(backend, "apply")
        backend.log_migration(migration, "apply")
        backend.mark_one(migration, log=False)


@contextmanager
def migration_lock(backend: Any, url: str, lock_wait: float) -> Iterator[None]:
    """Hold the migration advisory lock on ``backend``'s session; clear yoyo lock rows left by dead holders."""
    backend.execute(
        "SELECT set_config('client_connection_check_interval', :interval, false) "
        "FROM pg_settings WHERE name = 'client_connection_check_interval'",
        {"interval": DEAD_CLIENT_CHECK},
    )
    backend.execute("SELECT set_config('lock_timeout', :wait, false)", {"wait": f"{max(1, int(lock_wait * 1000))}ms"})
    try:
        backend.execute("SELECT pg_advisory_lock(:key)", {"key": MIGRATION_LOCK_KEY})
    except psycopg2.errors.LockNotAvailable as error:
        raise DatabaseUnavailableError(
            f"another migrator has held the migration lock on {shown_url(url)} for over {lock_wait:g}s "
            f"(its session: {_lock_holder(backend)})",
            stage="migrate",
        ) from error
    backend.execute("RESET lock_timeout")
    backend.break_lock()
    yield
    # On failure the session's end (the caller closes it) releases the lock.
    backend.execute("SELECT pg_advisory_unlock(:key)", {"key": MIGRATION_LOCK_KEY})


def _lock_holder(backend: Any) -> str:
    """The server pid, client address and start of the session that holds the migration lock."""
    backend.rollback()
    row = backend.execute(
        "SELECT a.pid, coalesce(host(a.client_addr), 'local'), a.backend_start FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.objid::bigint = (CAST(:key AS bigint) & 4294967295) "
        "AND l.classid::bigint = (CAST(:key AS bigint) >> 32) LIMIT 1",
        {"key": MIGRATION_LOCK_KEY},
    ).fetchone()
    return f"server pid {row[0]} from {row[1]} since {row[2]:%Y-%m-%d %H:%M:%S %Z}" if row else "ended just now"
