"""A database that stops answering (it accepts TCP and says nothing, or its processes are frozen) ends the run
within ``NEWSFLOW_DB_RECONNECT_SECONDS`` plus the connect timeout and the hung-server watchdog's interval, with
the plain sentence: never a hang."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from pipeline.db.engine import CONNECT_TIMEOUT_SECONDS, connect_options, libpq_url
from pipeline.db.watchdog import WATCH_INTERVAL_SECONDS

from . import test_faults
from .private_server import PrivateServer
from .test_faults import NEWSFLOW, articles
from .test_restarts import fresh_database

corpus = test_faults.corpus

pytestmark = pytest.mark.postgres

BOUND = 3  # NEWSFLOW_DB_RECONNECT_SECONDS in these tests
# detection (two looks of the watchdog, its probe's connect timeout), the loader's one retry, the wait for the
# database (the bound, one probe), the try at writing the run's row: four connect timeouts in all
ALLOWED = 2 * WATCH_INTERVAL_SECONDS + 4 * CONNECT_TIMEOUT_SECONDS + BOUND + 10


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "NEWSFLOW_DATABASE_URL": url, "NEWSFLOW_DB_RECONNECT_SECONDS": str(BOUND),
            "NEWSFLOW_BATCH_SIZE": "2", "COLUMNS": "300"}  # fmt: skip


def test_every_connection_carries_the_timeouts_and_keepalives(engine: sa.Engine) -> None:
    options = connect_options("postgresql://u@h/db")
    assert options == {"connect_timeout": "10", "keepalives": "1", "keepalives_idle": "5",
                       "keepalives_interval": "2", "keepalives_count": "3", "tcp_user_timeout": "10000"}  # fmt: skip
    assert "connect_timeout" not in connect_options("postgresql://u@h/db?connect_timeout=3")  # the URL's own wins
    with engine.connect() as conn:  # the engine every run, worker and task uses (create_engine)
        dsn = conn.connection.dbapi_connection.dsn  # type: ignore[union-attr]
    assert all(f"{key}={value}" in dsn for key, value in options.items()), dsn
    assert "tcp_user_timeout=10000" in libpq_url("postgresql://u@h/db", timeouts=True)
    assert "connect_timeout" not in libpq_url("postgresql://u@h/db")  # what `newsflow db url` prints


def test_a_server_that_accepts_and_never_answers_ends_ingest_at_the_connect_timeout(
    silent_server: int, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("Alice Smith said on Monday that the vote was close.\n", encoding="utf-8")
    url = f"postgresql://postgres@127.0.0.1:{silent_server}/news"
    started = time.monotonic()
    done = subprocess.run([NEWSFLOW, "ingest", str(tmp_path / "a.txt")], env=_env(url), capture_output=True,
                          text=True, timeout=CONNECT_TIMEOUT_SECONDS * 3 + 30)  # fmt: skip
    took = time.monotonic() - started
    print(f"silent server: ended after {took:.1f}s")
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and "timeout expired" in done.stderr
    assert took < CONNECT_TIMEOUT_SECONDS * 3 + 15


def _server_processes(server: PrivateServer) -> list[psutil.Process]:
    postmaster = psutil.Process(int((server.pgdata / "postmaster.pid").read_text().split()[0]))
    return [postmaster, *postmaster.children(recursive=True)]


def test_a_frozen_server_mid_run_ends_the_run_with_the_plain_sentence(
    settings,
    corpus: list[Path],  # type: ignore[no-untyped-def]
) -> None:
    server = PrivateServer.temporary()
    frozen: list[psutil.Process] = []
    try:
        url = fresh_database(server, settings)
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        process = subprocess.Popen([NEWSFLOW, "ingest", *map(str, corpus)], env=_env(url),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 120
        while articles(engine) == 0 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        engine.dispose()
        assert process.poll() is None, "the run ended before the server could be frozen"
        frozen = _server_processes(server)
        stderr, took = _freeze_and_wait(frozen, process, "the run")
        print(f"frozen server: the run ended {took:.1f}s after the freeze (bound {BOUND}s)")
        assert process.returncode == 3, stderr
        message = " ".join(stderr.split())
        assert "Traceback" not in stderr and "psycopg2" not in stderr, stderr
        assert "the database connection was lost;" in message and "run the same command again" in message, message
        assert took < ALLOWED
    finally:
        _resume(frozen)
        server.destroy()


def test_a_server_frozen_during_a_migration_ends_db_migrate_with_an_error(
    tmp_path_factory: pytest.TempPathFactory,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    """yoyo's own connection is watched too: a migration the frozen server never answers is cut, the migrator
    waits the bound for the server and stops (exit 3, one line), instead of hanging for ever."""
    home = tmp_path_factory.mktemp("home")
    shutil.copytree(settings.sql_dir, home / "sql")
    (home / "sql" / "9999_slow.sql").write_text(
        "CREATE TABLE frozen_half (id int);\nSELECT pg_sleep(4);\nCREATE TABLE frozen_whole (id int);\n"
    )
    server = PrivateServer.temporary()
    frozen: list[psutil.Process] = []
    try:
        url = fresh_database(server, settings)
        process = subprocess.Popen([NEWSFLOW, "db", "migrate"], env={**_env(url), "NEWSFLOW_HOME": str(home)},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        _wait_for_statement(server, "pg_sleep(4)", process)
        frozen = _server_processes(server)
        stderr, took = _freeze_and_wait(frozen, process, "db migrate")
        print(f"frozen server during a migration: db migrate ended {took:.1f}s after the freeze (bound {BOUND}s)")
        assert process.returncode == 3, stderr
        assert stderr.startswith("error: cannot migrate") and "Traceback" not in stderr, stderr
        assert took < ALLOWED
    finally:
        _resume(frozen)
        server.destroy()


def _wait_for_statement(server: PrivateServer, text: str, process: subprocess.Popen[str]) -> None:
    """Return once a session of ``server`` runs a statement containing ``text``."""
    engine = sa.create_engine(server.url("postgres"), poolclass=sa.NullPool)
    query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND strpos(query, :t) > 0 "
                    "AND pid <> pg_backend_pid()")  # fmt: skip
    deadline = time.monotonic() + 60
    try:
        while process.poll() is None and time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.scalar(query, {"t": text}):
                    return
            time.sleep(0.1)
    finally:
        engine.dispose()
    raise AssertionError(f"no session ran {text} (the process ended: {process.poll()})")


RUN_BACKENDS = ("SELECT pid FROM pg_stat_activity WHERE datname = 'news' AND backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()")  # fmt: skip


def test_a_wedged_backend_of_the_run_is_cut_and_the_run_ends(
    settings,
    corpus: list[Path],  # type: ignore[no-untyped-def]
) -> None:
    """Only the run's own backends frozen (the postmaster still accepts): the watchdog asks pg_stat_activity
    about them, cuts one that sits idle while its client waits, or that has run one statement longer than
    ``NEWSFLOW_DB_STATEMENT_SECONDS``, and the run goes on or stops with the plain sentence, never hangs."""
    server = PrivateServer.temporary()
    frozen: list[psutil.Process] = []
    try:
        url = fresh_database(server, settings)
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        process = subprocess.Popen([NEWSFLOW, "ingest", *map(str, corpus)],
                                   env={**_env(url), "NEWSFLOW_DB_STATEMENT_SECONDS": "10"},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 120
        while articles(engine) == 0 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with engine.connect() as conn:
            pids = conn.scalars(sa.text(RUN_BACKENDS)).all()
        engine.dispose()
        assert process.poll() is None and pids, "the run ended before its backends could be frozen"
        frozen = [psutil.Process(pid) for pid in pids]
        for member in frozen:
            member.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        try:
            _, stderr = process.communicate(timeout=ALLOWED + 60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise AssertionError("the run still hangs on its wedged backends") from None
        took = time.monotonic() - started
        print(f"wedged backends: the run ended {took:.1f}s after the freeze, exit {process.returncode}")
        assert process.returncode in {0, 3}, stderr
        assert "Traceback" not in stderr and "psycopg2" not in stderr, stderr
    finally:
        _resume(frozen)
        server.destroy()


def test_the_watchdog_cuts_a_statement_over_the_limit_and_never_a_busy_healthy_one(make_database) -> None:  # type: ignore[no-untyped-def]
    """The second look of the watchdog, on the shared server (nothing frozen): pg_sleep over the statement limit
    is cut; a stream of quick statements (its backend idle for instants between them), a statement under the
    limit, and one with no limit are left alone."""
    import psycopg2

    from pipeline.db.watchdog import Watchdog

    dsn = libpq_url(make_database(migrated=False), timeouts=True)

    def watched(limit: float | None) -> psycopg2.extensions.connection:
        connection = psycopg2.connect(dsn)
        connection.autocommit = True
        Watchdog(lambda: psycopg2.connect(dsn), statement_seconds=limit, interval=0.3).track(connection)
        return connection

    over = watched(1.5)
    started = time.monotonic()
    with pytest.raises(psycopg2.OperationalError), over.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(20)")
    assert time.monotonic() - started < 5
    for limit, statement in [(None, "SELECT pg_sleep(3)"), (10.0, "SELECT pg_sleep(3)")]:
        with watched(limit).cursor() as cursor:
            cursor.execute(statement)
    busy = watched(10.0)
    deadline = time.monotonic() + 4
    with busy.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_class, pg_attribute WHERE pg_class.oid = attrelid")
    busy.close()


def _freeze_and_wait(frozen: list[psutil.Process], process: subprocess.Popen[str], what: str) -> tuple[str, float]:
    """Stop ``frozen`` (SIGSTOP) and wait for ``process`` to end: its stderr and the seconds it took."""
    for member in frozen:
        member.send_signal(signal.SIGSTOP)
    started = time.monotonic()
    try:
        _, stderr = process.communicate(timeout=ALLOWED + 30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(f"{what} still hangs on the frozen server") from None
    return stderr, time.monotonic() - started


def _resume(frozen: list[psutil.Process]) -> None:
    """SIGCONT each frozen process still there (one may be gone: a backend killed while stopped)."""
    for member in frozen:
        with suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGCONT)
