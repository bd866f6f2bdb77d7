"""The hung-server watchdog: a command the server never answers is cut, so the run waits (a bounded time) and
stops instead of hanging.

TCP keepalives and ``tcp_user_timeout`` (``engine.CONNECT_OPTIONS``) catch a dead host or a cut network, but a
server whose processes are frozen (stopped, swapped out, wedged) on a live host still has its kernel
acknowledge every packet, and libpq then waits for an answer for ever. So each engine's connections are
watched by a thread: when one has had a command in flight (``TRANSACTION_STATUS_ACTIVE``) for two looks in a
row, ``WATCH_INTERVAL_SECONDS`` apart, a fresh connection is tried. One the server does not answer within the
connect timeout means the server is frozen, and every connection with a command in flight has its socket shut
down: libpq sees the connection closed, the caller gets the ordinary lost-connection error, and the run waits
for the database as it does after a restart. A server that answers may still have one backend wedged (its
process stopped alone): the probe asks ``pg_stat_activity`` about each waiting connection's backend, and cuts
one the server shows gone, or idle for longer than a look while its client waits for an answer, or running
one statement for longer than ``statement_seconds`` (``NEWSFLOW_DB_STATEMENT_SECONDS``). Otherwise the
server is merely busy, and nothing happens.
"""

from __future__ import annotations

import os
import socket
import threading
import weakref
from collections.abc import Callable
from typing import Any

import psycopg2
import psycopg2.extensions
import sqlalchemy as sa
from sqlalchemy.engine import Engine

WATCH_INTERVAL_SECONDS = 5.0
ACTIVE = psycopg2.extensions.TRANSACTION_STATUS_ACTIVE
# How long one statement may run before the watchdog takes its backend for wedged (NEWSFLOW_DB_STATEMENT_SECONDS).
STATEMENT_SECONDS = 600.0
# The server's view of one backend: its state and how many seconds ago that state began.
BACKEND_STATE = (
    "SELECT state, extract(epoch FROM clock_timestamp() - state_change) FROM pg_stat_activity WHERE pid = %s"
)


class Watchdog:
    """Watches the connections an engine opened; ``connect`` opens a probe connection to the same server.

    ``statement_seconds`` (None: no limit) is how long a statement may run before its backend counts as wedged."""

    def __init__(self, connect: Callable[[], Any], statement_seconds: float | None = STATEMENT_SECONDS,
                 interval: float = WATCH_INTERVAL_SECONDS) -> None:  # fmt: skip
        self.connect, self.statement_seconds, self.interval = connect, statement_seconds, interval
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def track(self, connection: Any) -> None:
        """Watch a new DBAPI connection (the thread runs while any watched connection is open)."""
        with self._lock:
            self._connections.add(connection)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="db-watchdog", daemon=True)
                self._thread.start()

    def _watch(self) -> None:
        busy_before: set[int] = set()
        while True:
            threading.Event().wait(self.interval)
            with self._lock:
                open_ = [conn for conn in self._connections if not conn.closed]
                if not open_:
                    self._thread = None
                    return
            busy = {id(conn) for conn in open_ if _in_flight(conn)}
            stuck = [conn for conn in open_ if id(conn) in busy & busy_before]
            cut = self.hung(stuck) if stuck else []
            for conn in cut:
                sever(conn)
            busy_before = busy - {id(conn) for conn in cut}

    def hung(self, stuck: list[Any]) -> list[Any]:
        """Of connections with a command in flight for a while, those never to be answered: all of them when
        the server does not take a new connection (frozen), else those whose backend the server shows idle
        (for longer than a look) or gone while its client waits, or running one statement too long (wedged)."""
        try:
            probe = self.connect()
        except psycopg2.OperationalError as error:
            return stuck if "timeout expired" in str(error) else []  # refused or restarting is not frozen
        try:
            return [conn for conn in stuck if self._wedged(probe, conn)]
        except psycopg2.Error:
            return []
        finally:
            probe.close()

    def _wedged(self, probe: Any, connection: Any) -> bool:
        try:
            pid = connection.info.backend_pid
        except (psycopg2.Error, AttributeError):
            return False
        with probe.cursor() as cursor:
            cursor.execute(BACKEND_STATE, (pid,))
            row = cursor.fetchone()
        probe.rollback()
        if row is None:
            return _in_flight(connection)  # the backend is gone, the client still waits
        state, seconds = row[0], float(row[1] or 0)
        if state is None:  # not ours to see
            return False
        limit = self.interval if state != "active" else self.statement_seconds
        return limit is not None and seconds > limit and _in_flight(connection)


def _in_flight(connection: Any) -> bool:
    try:
        return bool(connection.info.transaction_status == ACTIVE)
    except (psycopg2.Error, AttributeError):
        return False


def sever(connection: Any) -> None:
    """Shut the connection's socket down under libpq (which then reports the connection closed)."""
    try:
        with socket.socket(fileno=os.dup(connection.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg2.Error):
        pass


def watch(engine: Engine, options: dict[str, str], statement_seconds: float | None = STATEMENT_SECONDS) -> Watchdog:
    """Watch every connection ``engine`` opens; the probe connects with the engine's own parameters."""
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    parameters = {**cparams, **options}
    watchdog = Watchdog(lambda: psycopg2.connect(*cargs, **parameters), statement_seconds)
    sa.event.listen(engine, "connect", lambda dbapi_connection, _record: watchdog.track(dbapi_connection))
    return watchdog


def watch_connection(connection: Any, dsn: str) -> Watchdog:
    """Watch one DBAPI connection opened outside an engine (yoyo's, for migrations); the probe connects to
    ``dsn``, which carries the same timeouts. A migration's statement has no time limit (an index on a large
    table may take long): only a frozen server, or a backend idle or gone under a waiting client, is cut."""
    watchdog = Watchdog(lambda: psycopg2.connect(dsn), statement_seconds=None)
    watchdog.track(connection)
    return watchdog
