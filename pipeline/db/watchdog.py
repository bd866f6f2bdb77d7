"""The hung-server watchdog: a command the server never answers is cut, so the run waits (a bounded time) and
stops instead of hanging.

TCP keepalives and ``tcp_user_timeout`` (``engine.CONNECT_OPTIONS``) catch a dead host or a cut network, but a
server whose processes are frozen (stopped, swapped out, wedged) on a live host still has its kernel
acknowledge every packet, and libpq then waits for an answer for ever. So each engine's connections are
watched by a thread: when one has had a command in flight (``TRANSACTION_STATUS_ACTIVE``) for two looks in a
row, ``WATCH_INTERVAL_SECONDS`` apart, a fresh connection is tried. A server that answers it is merely busy,
and nothing happens; one that does not answer within the connect timeout is frozen, and every connection with
a command in flight has its socket shut down: libpq sees the connection closed, the caller gets the ordinary
lost-connection error, and the run waits for the database as it does after a restart.
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


class Watchdog:
    """Watches the connections an engine opened; ``answers`` tells whether the server takes a new connection."""

    def __init__(self, answers: Callable[[], bool], interval: float = WATCH_INTERVAL_SECONDS) -> None:
        self.answers, self.interval = answers, interval
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
            if stuck and not self.answers():
                for conn in stuck:
                    sever(conn)
                busy = set()
            busy_before = busy


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


def watch(engine: Engine, options: dict[str, str]) -> Watchdog:
    """Watch every connection ``engine`` opens; the probe connects with the engine's own parameters."""
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    parameters = {**cparams, **options}
    watchdog = Watchdog(connects(lambda: psycopg2.connect(*cargs, **parameters)))
    sa.event.listen(engine, "connect", lambda dbapi_connection, _record: watchdog.track(dbapi_connection))
    return watchdog


def watch_connection(connection: Any, dsn: str) -> Watchdog:
    """Watch one DBAPI connection opened outside an engine (yoyo's, for migrations); the probe connects to
    ``dsn``, which carries the same timeouts."""
    watchdog = Watchdog(connects(lambda: psycopg2.connect(dsn)))
    watchdog.track(connection)
    return watchdog


def connects(connect: Callable[[], Any]) -> Callable[[], bool]:
    """A probe: whether ``connect()`` gets a connection, or is refused (a server restarting is not frozen)."""

    def answers() -> bool:
        try:
            connect().close()
        except psycopg2.OperationalError as error:
            return "timeout expired" not in str(error)
        return True

    return answers
