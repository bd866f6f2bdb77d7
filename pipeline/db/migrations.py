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

The lock is taken only when something is pending (checked first without it, then again under it), so a session
holding the key (a stuck migrator, or anyone who may call ``pg_advisory_lock``: ``sql/0011`` takes that from
PUBLIC) never stalls a run that has nothing to migrate. A migration's DDL waits at most
``DDL_LOCK_TIMEOUT_SECONDS`` for the tables it changes (``lock_timeout``), so a reader's open transaction
never queues every writer behind the waiting DDL; it is tried ``DDL_ATTEMPTS`` times, then stops with an error
naming the sessions that hold locks. A database error is a ``DatabaseUnavailableError`` (password masked, the
real cause named); a lost connection is waited for, up to ``reconnect_seconds``, and the migrations go again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from yoyo import exceptions as yoyo_exceptions
from yoyo import get_backend, read_migrations

from pipeline.db.engine import is_systemic, is_transient, libpq_url, scrubbed, shown_url
from pipeline.db.reconnect import Backoff, wait_for_database
from pipeline.db.watchdog import watch_connection
from pipeline.errors import DatabaseUnavailableError, describe

# pg_advisory_lock key of Newsflow's migrations: the bytes of "newsflow" read as a signed 64-bit integer.
MIGRATION_LOCK_KEY = int.from_bytes(b"newsflow", "big", signed=True)
# How long a migrator waits for another to finish before giving up with a systemic error.
MIGRATION_LOCK_WAIT_SECONDS = 600.0
# How often the server checks that the migrating client is still connected (PostgreSQL 14+).
DEAD_CLIENT_CHECK = "1s"
# How long one migration waits for a table lock (a reader's open transaction), and how often it is tried.
DDL_LOCK_TIMEOUT_SECONDS = 10.0
DDL_ATTEMPTS = 3
MAX_RECONNECTS = 5


@dataclass(frozen=True)
class Waits:
    """How long a migrator waits: for another migrator, for a table lock (per attempt), for a lost server."""

    lock: float = MIGRATION_LOCK_WAIT_SECONDS
    ddl: float = DDL_LOCK_TIMEOUT_SECONDS
    ddl_attempts: int = DDL_ATTEMPTS
    reconnect: float = 60.0


def pending_migrations(url: str, sql_dir: Path) -> list[str]:
    """Ids of the migrations not yet applied to this database."""
    with _backend(url) as backend:
        return [m.id for m in backend.to_apply(read_migrations(str(sql_dir)))]


def apply_migrations(
    url: str, sql_dir: Path, *, lock_wait: float = MIGRATION_LOCK_WAIT_SECONDS, waits: Waits | None = None
) -> list[str]:
    """Apply every pending migration in order, one migrator at a time; return the ids applied.

    ``DatabaseUnavailableError`` when another migrator holds the lock for longer than ``lock_wait`` seconds, a
    table stays locked, or the database fails (after waiting ``waits.reconnect`` seconds for a lost one)."""
    waits = waits or Waits(lock=lock_wait)
    applied: list[str] = []
    for _ in range(MAX_RECONNECTS):
        try:
            applied += _apply_pending(url, sql_dir, waits)
            return applied
        except (psycopg2.Error, yoyo_exceptions.LockTimeout) as error:
            if not is_transient(error) or not _database_answers(url, waits.reconnect):
                raise _migration_error(url, error) from None
    raise DatabaseUnavailableError(
        f"the connection to {shown_url(url)} was lost {MAX_RECONNECTS} times while migrating"
    )


def _apply_pending(url: str, sql_dir: Path, waits: Waits) -> list[str]:
    """The migrations applied now: none, and no lock taken, when nothing is pending."""
    migrations = read_migrations(str(sql_dir))
    with _backend(url) as backend:
        if _recorded(backend) and not backend.to_apply(migrations):
            return []
        _ensure_lock_table(backend)
        with migration_lock(backend, url, waits.lock), backend.lock():
            backend.execute("SELECT set_config('lock_timeout', :wait, false)", {"wait": f"{int(waits.ddl * 1000)}ms"})
            to_apply = backend.to_apply(migrations)
            for migration in to_apply:
                _apply_waiting(backend, migration, url, waits)
        return [m.id for m in to_apply]


@contextmanager
def _backend(url: str) -> Iterator[Any]:
    """yoyo's backend on a connection that carries the timeouts and keepalives, watched for a frozen server
    (``watchdog``); closed on the way out."""
    dsn = libpq_url(url, timeouts=True)
    try:
        backend = get_backend(dsn)
    except psycopg2.Error as error:
        if is_transient(error) and not is_systemic(error):
            raise
        raise _migration_error(url, error) from None
    watch_connection(backend.connection, dsn)  # a frozen server cuts the migration instead of hanging it
    try:
        yield backend
    finally:
        backend.connection.close()


def _recorded(backend: Any) -> bool:
    """Whether yoyo's tables are there (without them, reading what is applied would create them unlocked)."""
    row = backend.execute("SELECT to_regclass('_yoyo_migration') IS NOT NULL, to_regclass('_yoyo_version') IS NOT NULL")
    found = row.fetchone()
    backend.rollback()
    return bool(found[0] and found[1])


def _ensure_lock_table(backend: Any) -> None:
    """yoyo's lock table, created with the real error when it cannot be (yoyo hides it: "yoyo_lock does not
    exist" instead of "permission denied for schema public")."""
    exists = backend.execute("SELECT to_regclass(:name) IS NOT NULL", {"name": backend.lock_table}).fetchone()[0]
    backend.rollback()
    if not exists:
        with backend.transaction():
            backend.execute(backend.format_sql(backend.create_lock_table_sql))


def _database_answers(url: str, seconds: float) -> bool:
    """Whether the database takes a connection again within ``seconds``."""

    def probe() -> None:
        psycopg2.connect(libpq_url(url, timeouts=True)).close()

    return wait_for_database(probe, Backoff(seconds))


def _migration_error(url: str, error: BaseException) -> DatabaseUnavailableError:
    """A database error met while migrating, as the systemic error it is, password masked."""
    if isinstance(error, DatabaseUnavailableError):
        return error
    reason = scrubbed(describe(error), url)
    return DatabaseUnavailableError(f"cannot migrate {shown_url(url)}: {reason}", stage="migrate")


def _apply_waiting(backend: Any, migration: Any, url: str, waits: Waits) -> None:
    """One migration, its table locks waited for ``waits.ddl`` seconds at a time, ``waits.ddl_attempts`` times."""
    for attempt in range(1, waits.ddl_attempts + 1):
        try:
            _apply_one(backend, migration)
            return
        except psycopg2.errors.LockNotAvailable:
            backend.rollback()
            if attempt == waits.ddl_attempts:
                raise DatabaseUnavailableError(
                    f"migration {migration.id} waited {waits.ddl_attempts} x {waits.ddl:g}s for tables that other "
                    f"sessions hold on {shown_url(url)}: {_lock_holders(backend)}; end those sessions "
                    "(SELECT pg_terminate_backend(pid)) or run the migration again",
                    stage="migrate",
                ) from None
            time.sleep(min(1.0, waits.ddl))


def _lock_holders(backend: Any) -> str:
    """The sessions that hold table locks in this database: pid, role, state and since when."""
    rows = backend.execute(
        "SELECT DISTINCT a.pid, a.usename, coalesce(a.state, 'unknown'), a.xact_start FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.granted AND l.locktype = 'relation' "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND a.pid <> pg_backend_pid() ORDER BY a.xact_start NULLS LAST LIMIT 5"
    ).fetchall()
    backend.rollback()
    held = [f"server pid {pid} (role {role}, {state}" + (f" since {start:%H:%M:%S %Z})" if start else ")")
            for pid, role, state, start in rows]  # fmt: skip
    return ", ".join(held) or "none any more"


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
