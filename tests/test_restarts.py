"""The database restarts during a run: the run waits for it (a bounded time), loads what was in flight, and ends
as a clean run would; when it does not come back, the run stops with a plain sentence and a re-run converges.

Each test runs its own PostgreSQL server (``tests/private_server.py``), stopped and restarted under the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa

from pipeline.db.digest import content_digest
from pipeline.db.engine import create_engine
from pipeline.db.migrations import apply_migrations
from pipeline.ingest import ingest
from pipeline.settings import Settings

from . import test_faults
from .conftest import MakeDatabase
from .private_server import PrivateServer
from .test_faults import NEWSFLOW, articles, clean_digest

corpus = test_faults.corpus  # the same fixture: the seed and 15 benchmark pages

pytestmark = pytest.mark.postgres


@pytest.fixture
def server() -> Iterator[PrivateServer]:
    private = PrivateServer.temporary()
    yield private
    private.destroy()


def fresh_database(server: PrivateServer, settings: Settings) -> str:
    admin = sa.create_engine(server.admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text("CREATE DATABASE news"))
    admin.dispose()
    apply_migrations(server.url("news"), settings.sql_dir)
    return server.url("news")


def errors(engine: sa.Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text("SELECT source, stage, error FROM ingest_errors"))]


def test_a_database_down_for_seconds_mid_run_is_waited_for_and_the_run_ends_clean(
    server: PrivateServer, settings: Settings, make_database: MakeDatabase, corpus: list[Path]
) -> None:
    """The server stops (fast, then immediate) twice during the run and is down 3 s each time: far longer
    than the loader's own retries. The run waits, loads what was in flight, and equals a clean run."""
    url = fresh_database(server, settings)
    run_settings = replace(settings, database_url=url, batch_size=3, db_reconnect_seconds=60)
    engine = create_engine(url)
    outages = {3: "fast", 9: "immediate"}
    done: list[str] = []

    def outage(mode: str, down: threading.Event) -> None:
        server.stop(mode)
        down.set()
        time.sleep(3)
        server.start()

    def on_document(name: str) -> None:
        done.append(name)
        if len(done) in outages:
            down = threading.Event()
            threading.Thread(target=outage, args=(outages[len(done)], down), daemon=True).start()
            assert down.wait(30)  # the next batch is read and loaded while the server is down

    summary = ingest(run_settings, engine, map(str, corpus), on_document=on_document)
    assert (summary.seen, summary.failed) == (len(corpus), 0), summary.failures
    assert errors(engine) == []
    assert content_digest(engine) == clean_digest(make_database, settings, corpus)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT status FROM ingest_runs")) == "succeeded"
    engine.dispose()


def test_a_database_that_does_not_come_back_stops_the_run_with_a_plain_sentence_and_a_rerun_converges(
    server: PrivateServer, settings: Settings, make_database: MakeDatabase, corpus: list[Path]
) -> None:
    url = fresh_database(server, settings)
    engine = create_engine(url)
    env = {**os.environ, "NEWSFLOW_DATABASE_URL": url, "NEWSFLOW_BATCH_SIZE": "2", "NEWSFLOW_DB_RECONNECT_SECONDS": "2"}
    command = [NEWSFLOW, "ingest", *map(str, corpus)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while articles(engine) == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    stored = articles(engine)
    engine.dispose()
    server.stop("immediate")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 3, stderr
    message = " ".join(stderr.split())
    assert "sqlalche.me" not in stderr and "Traceback" not in stderr and "psycopg2" not in stderr, stderr
    assert "the database connection was lost;" in message and "run the same command again to finish" in message
    not_loaded = int(message.split("the database connection was lost;")[1].split()[0])
    assert 0 < not_loaded <= len(corpus) - stored, message

    server.start()
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    engine = create_engine(url)
    assert content_digest(engine) == clean_digest(make_database, settings, corpus)
    with engine.connect() as conn:
        statuses = [row[0] for row in conn.execute(sa.text("SELECT status FROM ingest_runs ORDER BY id"))]
    assert statuses[-1] == "succeeded" and statuses[0] in {"stopped", "abandoned"}
    engine.dispose()


def test_waiting_for_the_database_backs_off_and_gives_up_at_the_bound() -> None:
    """No real waiting: the clock and the sleep are injected; the probe fails until the bound."""
    from pipeline.db.reconnect import Backoff, wait_for_database

    now = [0.0]
    slept: list[float] = []
    probes: list[float] = []

    def probe() -> None:
        probes.append(now[0])
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    backoff = Backoff(seconds=60, first=0.25, longest=8, clock=lambda: now[0], sleep=sleep)
    assert wait_for_database(probe, backoff) is False
    assert now[0] <= 60 and probes[-1] >= 50, (now[0], probes)
    assert slept[:4] == [0.25, 0.5, 1.0, 2.0] and max(slept) <= 8

    calls = iter([False, False, True])

    def comes_back() -> None:
        if not next(calls):
            raise sa.exc.OperationalError("SELECT 1", {}, Exception("the database system is starting up"))

    now[0], slept[:] = 0.0, []
    assert wait_for_database(comes_back, backoff) is True
    assert slept == [0.25, 0.5]


def test_the_lost_connection_error_names_the_documents_not_loaded() -> None:
    from pipeline.errors import DatabaseConnectionLostError

    error = DatabaseConnectionLostError.for_documents(37)
    assert str(error) == "the database connection was lost; 37 documents were not loaded; " + (
        "run the same command again to finish"
    )
    assert "1 document was not loaded" in str(DatabaseConnectionLostError.for_documents(1))


def test_a_batch_the_connection_is_lost_under_again_and_again_fails_with_error_rows(
    db_settings: Settings, engine: sa.Engine, corpus: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load that loses its connection every time (a statement that crashes the server) is not retried for
    ever: after 5 losses its documents get error rows, written once the database answers, and the run goes on."""
    from pipeline.db import loader
    from pipeline.ingest.step import LOST_TOO_OFTEN, MAX_LOST_CONNECTIONS

    real_load = loader.load_documents
    poisoned = str(corpus[1])
    attempts: list[int] = []

    def crashing_load(engine: sa.Engine, items: list[loader.LoadItem], options: loader.LoadOptions) -> object:
        if any(item.raw.source.endswith(Path(poisoned).name) for item in items):
            attempts.append(1)
            driver = psycopg2.OperationalError("server closed the connection unexpectedly")
            raise sa.exc.OperationalError("INSERT INTO articles", {}, driver)
        return real_load(engine, items, options)

    monkeypatch.setattr(loader, "load_documents", crashing_load)
    summary = ingest(replace(db_settings, batch_size=2), engine, map(str, corpus[:4]))
    assert len(attempts) == MAX_LOST_CONNECTIONS
    assert (summary.seen, summary.failed) == (4, 2)  # the poisoned document and its batch-mate
    assert sorted(error for _, _, error in errors(engine)) == [LOST_TOO_OFTEN, LOST_TOO_OFTEN]
    assert articles(engine) == 2


def _lost() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("COMMIT", {}, psycopg2.OperationalError("server closed the connection unexpectedly"))


def test_work_lost_again_and_again_is_retried_until_the_bound(engine: sa.Engine) -> None:
    """Two drops in a row (around the run's row, say) are waited for while the bound lasts, not once only; the
    retries stop at the bound (the clock is injected) and at an attempt cap."""
    from pipeline.db.reconnect import Backoff
    from pipeline.errors import DatabaseConnectionLostError
    from pipeline.ingest.run import RECONNECT_ATTEMPTS, reconnecting

    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    backoff = Backoff(seconds=60, clock=lambda: now[0], sleep=sleep)
    failures = iter([_lost(), _lost(), _lost()])

    def flaky() -> str:
        failure = next(failures, None)
        if failure is not None:
            now[0] += 5  # each lost attempt takes a while
            raise failure
        return "done"

    assert reconnecting(engine, backoff, flaky) == "done"
    calls = [0]

    def always_lost() -> None:
        calls[0] += 1
        now[0] += 1
        raise _lost()

    now[0] = 0.0
    with pytest.raises(DatabaseConnectionLostError):
        reconnecting(engine, backoff, always_lost)
    assert calls[0] == RECONNECT_ATTEMPTS

    def slow_lost() -> None:
        calls[0] += 1
        now[0] += 25
        raise _lost()

    now[0], calls[0] = 0.0, 0
    with pytest.raises(DatabaseConnectionLostError):
        reconnecting(engine, backoff, slow_lost)
    # lost first at 25 s: tried again at 25, 50 and 75 s, none after the bound (60 s from the first loss)
    assert calls[0] == 4 and now[0] == 100


def test_a_run_whose_only_loss_is_its_own_record_says_the_data_is_complete() -> None:
    from pipeline.cli import _Request, _stop_message
    from pipeline.errors import DatabaseConnectionLostError

    request = _Request(["a.txt", "b.txt"], [], 1)
    request.count(2)
    message = _stop_message(DatabaseConnectionLostError("the database connection was lost: x"), request)
    assert "the data is complete" in message and "only the run's record" in message, message
    assert "not loaded" not in message and "run the same command again" not in message


def test_an_interrupt_while_waiting_for_the_database_ends_at_once_with_a_plain_line(
    server: PrivateServer, settings: Settings, corpus: list[Path]
) -> None:
    """Ctrl-C (or Airflow's SIGTERM, which ends the task the same way) while the run waits for a lost database:
    the run's row gets one quick try, not another whole bound, and the command says what happened in a line."""
    url = fresh_database(server, settings)
    engine = create_engine(url)
    env = {**os.environ, "NEWSFLOW_DATABASE_URL": url, "NEWSFLOW_BATCH_SIZE": "2",
           "NEWSFLOW_DB_RECONNECT_SECONDS": "60"}  # fmt: skip
    process = subprocess.Popen([NEWSFLOW, "ingest", *map(str, corpus)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while articles(engine) == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    engine.dispose()
    server.stop("immediate")
    time.sleep(2)  # the run is waiting for the database now
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError("the interrupted run is still waiting a minute later") from None
    took = time.monotonic() - started
    print(f"interrupted while waiting for the database: ended {took:.1f}s after SIGINT")
    assert took < 8, took
    assert "Traceback" not in stderr and "interrupted:" in stderr, stderr
    assert "could not be written" in " ".join(stderr.split()), stderr
