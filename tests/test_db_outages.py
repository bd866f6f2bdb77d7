"""Database-side breaks a red team found: migrations stalled by a reader, tracebacks from migrate, feed polls and
the staged path that did not wait for a restarting database, secrets in a repr, logins refused for good that
were waited on."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from sqlalchemy.engine import make_url
from werkzeug import Request, Response

from pipeline.db import raw_store
from pipeline.db.engine import is_systemic, is_transient
from pipeline.db.migrations import MIGRATION_LOCK_KEY, Waits, apply_migrations
from pipeline.errors import DatabaseUnavailableError
from pipeline.ingest.run import open_run
from pipeline.ingest.staged import process_pending, stage_values
from pipeline.settings import Settings

from .conftest import SEED, MakeDatabase
from .private_server import PrivateServer
from .test_faults import NEWSFLOW
from .test_restarts import fresh_database

pytestmark = pytest.mark.postgres

TOKEN = "S3cr3tT0ken"


def test_a_settings_repr_never_shows_the_database_password() -> None:
    settings = Settings.from_env({"NEWSFLOW_DATABASE_URL": f"postgresql://u:{TOKEN}@h/db"})
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)
    assert settings.database_url and TOKEN in settings.database_url


@pytest.mark.parametrize(
    "message",
    [
        'connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "x"',
        'connection to server at "127.0.0.1", port 5432 failed: FATAL:  role "nobody" does not exist',
        'connection to server at "127.0.0.1", port 5432 failed: FATAL:  database "nope" does not exist',
        'connection to server at "10.0.0.1", port 5432 failed: FATAL:  no pg_hba.conf entry for host "10.0.0.2"',
        'connection to server at "127.0.0.1", port 5432 failed: fe_sendauth: no password supplied',
    ],
)
def test_a_login_refused_for_good_is_systemic_at_once_and_not_waited_on(message: str) -> None:
    error = sa.exc.OperationalError("SELECT 1", {}, psycopg2.OperationalError(message))
    assert not is_transient(error) and is_systemic(error)
    lost = sa.exc.OperationalError("SELECT 1", {}, psycopg2.OperationalError("server closed the connection"))
    assert is_transient(lost) and not is_systemic(lost)


def test_a_feed_only_run_stopped_by_the_database_ends_with_the_plain_sentence() -> None:
    from pipeline.cli import _Request, _stop_message
    from pipeline.errors import DatabaseConnectionLostError

    driver = "the database connection was lost: OperationalError: connection to server failed: Connection refused"
    message = _stop_message(DatabaseConnectionLostError(driver), _Request([], ["http://a/feed", "http://b/feed"], 1))
    assert (
        message == "the database connection was lost; 2 feeds were not finished; run the same command again to finish"
    )
    both = _stop_message(DatabaseConnectionLostError(driver), _Request(["a.txt"], ["http://a/feed"], 1))
    assert both.startswith("the database connection was lost; 1 document was not loaded and 1 feed was not finished;")


def _holding(url: str, statement: str) -> tuple[sa.Engine, sa.Connection]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    conn = engine.connect()
    conn.execute(sa.text(statement), {"key": MIGRATION_LOCK_KEY})
    return engine, conn


def test_a_session_holding_the_migration_key_does_not_stall_a_run_with_nothing_to_migrate(
    migrated_url: str, settings: Settings
) -> None:
    engine, holder = _holding(migrated_url, "SELECT pg_advisory_lock(:key)")
    try:
        started = time.monotonic()
        assert apply_migrations(migrated_url, settings.sql_dir, lock_wait=3) == []
        assert time.monotonic() - started < 2
    finally:
        holder.close()
        engine.dispose()


@pytest.fixture
def reader_url(migrated_url: str) -> Iterator[str]:
    """A login that is a member of newsflow_reader, as docs/querying.md hands it out."""
    admin = sa.create_engine(migrated_url, poolclass=sa.NullPool)
    name = f"reader_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {name} LOGIN IN ROLE newsflow_reader"))
    yield make_url(migrated_url).set(username=name).render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP OWNED BY {name}"))
        conn.execute(sa.text(f"DROP ROLE {name}"))
    admin.dispose()


@pytest.mark.parametrize(
    "call",
    ["pg_advisory_lock(:key)", "pg_advisory_lock_shared(:key)", "pg_try_advisory_lock(:key)",
     "pg_try_advisory_lock_shared(:key)", "pg_advisory_xact_lock(:key)", "pg_advisory_xact_lock_shared(:key)",
     "pg_try_advisory_xact_lock(:key)", "pg_try_advisory_xact_lock_shared(:key)", "pg_advisory_lock(1, 2)",
     "pg_try_advisory_xact_lock(1, 2)"],
)  # fmt: skip
def test_the_reader_cannot_take_advisory_locks(reader_url: str, call: str) -> None:
    reader = sa.create_engine(reader_url, poolclass=sa.NullPool)
    with reader.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        conn.execute(sa.text(f"SELECT {call}"), {"key": MIGRATION_LOCK_KEY})
    reader.dispose()


def test_the_reader_login_has_time_limits(migrated_url: str) -> None:
    engine = sa.create_engine(migrated_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        settings = conn.scalar(
            sa.text(
                "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s "
                "JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = 'newsflow_reader'"
            )
        )
    engine.dispose()
    assert "idle_in_transaction_session_timeout=" in settings and "statement_timeout=" in settings


def test_a_readers_open_transaction_does_not_stall_a_migration_for_ever(
    reader_url: str, migrated_url: str, settings: Settings, tmp_path: Path
) -> None:
    """A reader leaves ``BEGIN; SELECT count(*) FROM v_sections`` open; a pending migration that changes the view
    waits a bounded time, then stops with an error naming the reader's session (and writers never queue long)."""
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    for path in settings.sql_dir.glob("*.sql"):
        (sql_dir / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    last = sorted(p.stem for p in settings.sql_dir.glob("*.sql"))[-1]
    (sql_dir / "9999_alter_view.sql").write_text(
        "-- depends: " + last + "\nALTER VIEW v_sections RENAME COLUMN body TO body;\n", encoding="utf-8"
    )
    reader = sa.create_engine(reader_url, poolclass=sa.NullPool)
    conn = reader.connect()
    conn.execute(sa.text("SELECT count(*) FROM v_sections"))  # the transaction stays open
    outcome: list[BaseException | list[str]] = []

    def migrate() -> None:
        try:
            outcome.append(apply_migrations(migrated_url, sql_dir, waits=Waits(ddl=0.5, ddl_attempts=2)))
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome.append(error)

    thread = threading.Thread(target=migrate, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(20)
    took = time.monotonic() - started
    conn.close()  # unblocks the old code's migrator
    thread.join(30)
    reader.dispose()
    assert took < 15, f"the migration waited {took:.0f}s behind a reader's open transaction"
    error = outcome[0]
    assert isinstance(error, DatabaseUnavailableError), error
    assert "9999_alter_view" in str(error) and "server pid" in str(error) and "role reader_" in str(error)


def test_a_migrating_user_without_create_is_told_permission_denied(
    make_database: MakeDatabase, settings: Settings
) -> None:
    url = make_database(migrated=False)
    admin = sa.create_engine(url, poolclass=sa.NullPool)
    name = f"nocreate_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {name} LOGIN"))
        conn.execute(sa.text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    try:
        user_url = make_url(url).set(username=name).render_as_string(hide_password=False)
        with pytest.raises(DatabaseUnavailableError, match="permission denied"):
            apply_migrations(user_url, settings.sql_dir)
        env = {**os.environ, "NEWSFLOW_DATABASE_URL": user_url, "COLUMNS": "300"}
        done = subprocess.run([NEWSFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 3 and "Traceback" not in done.stderr and "permission denied" in done.stderr
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP OWNED BY {name}"))
            conn.execute(sa.text(f"DROP ROLE {name}"))
        admin.dispose()


@pytest.fixture
def server() -> Iterator[PrivateServer]:
    private = PrivateServer.temporary()
    yield private
    private.destroy()


SLOW = "-- depends: {last}\nCREATE TABLE half_done (id int);\nSELECT pg_sleep(4);\nCREATE TABLE all_done (id int);\n"


def test_a_restart_mid_migration_is_waited_for_and_the_migration_redone(
    server: PrivateServer, settings: Settings, tmp_path: Path
) -> None:
    url = fresh_database(server, settings)
    home = tmp_path / "home"
    (home / "sql").mkdir(parents=True)
    for path in settings.sql_dir.glob("*.sql"):
        (home / "sql" / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    last = sorted(p.stem for p in settings.sql_dir.glob("*.sql"))[-1]
    (home / "sql" / "9999_slow.sql").write_text(SLOW.format(last=last), encoding="utf-8")
    env = {**os.environ, "NEWSFLOW_DATABASE_URL": url, "NEWSFLOW_HOME": str(home), "COLUMNS": "300"}
    migrator = subprocess.Popen([NEWSFLOW, "db", "migrate"], env=env, stderr=subprocess.PIPE, text=True)
    admin = sa.create_engine(server.admin_url, poolclass=sa.NullPool)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with admin.connect() as conn:
            query = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(4)%' AND pid <> pg_backend_pid()"
            if conn.scalar(sa.text(query)):
                break
        time.sleep(0.1)
    server.restart("fast")
    _, stderr = migrator.communicate(timeout=120)
    admin.dispose()
    assert migrator.returncode == 0 and "Traceback" not in stderr, stderr
    assert "9999_slow" in stderr
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM _yoyo_migration WHERE migration_id = '9999_slow'")) == 1
        assert conn.scalar(sa.text("SELECT count(*) FROM yoyo_lock")) == 0
        assert conn.scalar(sa.text("SELECT to_regclass('all_done') IS NOT NULL"))
    engine.dispose()


ARTICLE = (
    "&lt;p&gt;Alice Smith, the mayor of Springfield, said on Monday that the council voted on the budget.&lt;/p&gt;"
)


def _feed() -> str:
    entries = "".join(
        f"<entry><id>tag:example.org,2026:{i}</id><title>Story {i}</title><updated>2026-01-01T00:00:00Z</updated>"
        f"<content type='html'>{ARTICLE * (8 + i)}</content></entry>"
        for i in range(4)
    )
    return (
        "<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'><id>x</id><title>t</title>"
        f"<updated>2026-01-01T00:00:00Z</updated>{entries}</feed>"
    )


@pytest.mark.parametrize("comes_back", [True, False], ids=["restarts", "stays-down"])
def test_a_feed_poll_waits_for_a_restarting_database(
    server: PrivateServer, settings: Settings, httpserver: HTTPServer, comes_back: bool
) -> None:
    """The server stops while the feed is fetched: back 1.5 s later, the poll finishes and the run succeeds;
    down for good, the run stops with the plain sentence (exit 3)."""
    url = fresh_database(server, settings)

    def handler(_request: Request) -> Response:
        server.stop("immediate")
        if comes_back:
            threading.Thread(target=lambda: (time.sleep(1.5), server.start()), daemon=True).start()
        return Response(_feed(), content_type="application/atom+xml")

    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_oneshot_request("/feed").respond_with_handler(handler)
    env = {**os.environ, "NEWSFLOW_DATABASE_URL": url, "NEWSFLOW_ALLOW_PRIVATE_HOSTS": "1", "COLUMNS": "300",
           "NEWSFLOW_DB_RECONNECT_SECONDS": "20" if comes_back else "2"}  # fmt: skip
    done = subprocess.run([NEWSFLOW, "ingest", "--feed", httpserver.url_for("/feed")], env=env, capture_output=True,
                          text=True, timeout=180)  # fmt: skip
    message = " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr and "psycopg2" not in done.stderr, done.stderr
    if not comes_back:
        assert done.returncode == 3, done.stderr
        assert "the database connection was lost; 1 feed was not finished; run the same command again" in message
        return
    assert done.returncode == 0, done.stderr
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT status FROM ingest_runs")) == "succeeded"
        assert conn.scalar(sa.text("SELECT count(*) FROM articles")) == 4
        assert conn.scalar(sa.text("SELECT count(*) FROM feed_entries")) == 4
    engine.dispose()


def test_closing_a_staged_document_waits_for_a_restarting_database(
    db_settings: Settings, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection is lost just as the first loaded document's staged row is closed: the close is done again
    once the database answers, nothing is left claimed, nothing failed, and the run succeeds."""
    settings = replace(db_settings, batch_size=2, db_reconnect_seconds=10)
    pages = sorted(str(p) for p in SEED.parent.glob("*.txt"))[:3] or [str(SEED)]
    with open_run(settings, engine, trigger="stage") as run:
        stage_values(run, pages)
    real_close, calls = raw_store.close, []

    def flaky_close(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            driver = psycopg2.OperationalError("server closed the connection unexpectedly")
            raise sa.exc.OperationalError("UPDATE raw_documents", {}, driver)
        real_close(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(raw_store, "close", flaky_close)
    summary = process_pending(settings, engine, limit=10)
    assert summary.failed == 0 and summary.seen == len(pages), summary.failures
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM raw_documents WHERE processed_at IS NULL")) == 0
        statuses = conn.execute(sa.text("SELECT status FROM ingest_runs ORDER BY id")).scalars().all()
    assert statuses[-1] == "succeeded"


def _errors(url: str) -> list[tuple[int, str, str]]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, source, stage FROM ingest_errors ORDER BY id")).all()
    engine.dispose()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_an_error_row_written_again_after_a_lost_commit_reply_is_stored_once(make_database: MakeDatabase) -> None:
    """A COMMIT whose reply is lost: the input has no outcome, the batch runs it again, and its error row is
    written a second time. The key (run, stage, source) keeps one; a very long source is keyed by its digest."""
    from pipeline.db import runs
    from pipeline.db.engine import create_engine

    url = make_database()
    engine = create_engine(url)
    run_id = runs.start_run(engine, trigger="test")
    long_source = "https://example.org/" + "é" * 5000
    for _ in range(2):
        for source in ("/tmp/a.txt", long_source):
            runs.record_error(engine, run_id=run_id, source=source, stage="fetch", error="lost once")
    runs.record_error(engine, run_id=run_id, source="/tmp/a.txt", stage="extract", error="another stage")
    engine.dispose()
    assert [(source[:20], stage) for _, source, stage in _errors(url)] == [
        ("/tmp/a.txt", "fetch"), (long_source[:20], "fetch"), ("/tmp/a.txt", "extract")
    ]  # fmt: skip


def test_the_error_key_migration_keeps_the_first_of_each_duplicate(
    make_database: MakeDatabase, settings: Settings, tmp_path: Path
) -> None:
    older = tmp_path / "sql"
    older.mkdir()
    for migration in sorted(settings.sql_dir.glob("*.sql")):
        if migration.name < "0013":
            (older / migration.name).write_text(migration.read_text(encoding="utf-8"), encoding="utf-8")
    url = make_database(migrated=False)
    apply_migrations(url, older)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        run_id = conn.scalar(sa.text("INSERT INTO ingest_runs (trigger) VALUES ('test') RETURNING id"))
        for source, stage in [("a", "fetch"), ("b", "fetch"), ("a", "fetch"), ("a", "extract"), ("a", "fetch")]:
            conn.execute(sa.text("INSERT INTO ingest_errors (ingest_run_id, source, stage, error) "
                                 "VALUES (:r, :s, :st, 'x')"), {"r": run_id, "s": source, "st": stage})  # fmt: skip
        conn.execute(sa.text("INSERT INTO ingest_errors (ingest_run_id, source, stage, error) "
                             "VALUES (NULL, 'a', 'fetch', 'x'), (NULL, 'a', 'fetch', 'x')"))  # fmt: skip
    engine.dispose()
    first = _errors(url)
    assert "0013_error_once" in apply_migrations(url, settings.sql_dir)
    kept = _errors(url)
    assert kept == [first[0], first[1], first[3], first[5], first[6]]  # runless rows are not keyed
