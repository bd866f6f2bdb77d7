"""The migration lock dies with its holder: a killed migrator blocks nobody, its half-applied migration is
rolled back and applied again, stale lock rows of older versions are cleared, and two migrators serialise."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa

from pipeline.db.migrations import MIGRATION_LOCK_KEY, apply_migrations
from pipeline.errors import DatabaseUnavailableError

from .conftest import ROOT, MakeDatabase

# A migration that sleeps for as long as the session's newsflow.test_pause says (0 when unset), after creating
# a table: a migrator can be caught, and killed, in the middle of it.
SLOW_MIGRATION = """-- depends: 0001_first
CREATE TABLE half_applied (id int);
SELECT pg_sleep(coalesce(nullif(current_setting('newsflow.test_pause', true), ''), '0')::float);
CREATE TABLE after_the_pause (id int);
"""
MIGRATOR = (
    "import sys; from pathlib import Path; from pipeline.db.migrations import apply_migrations; "
    "print(apply_migrations(sys.argv[1], Path(sys.argv[2])))"
)


@pytest.fixture
def slow_sql_dir(tmp_path: Path) -> Path:
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE first (id int);\n", encoding="utf-8")
    (tmp_path / "0002_slow.sql").write_text(SLOW_MIGRATION, encoding="utf-8")
    return tmp_path


def _start_migrator(url: str, sql_dir: Path, pause: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PGOPTIONS": f"-c newsflow.test_pause={pause}"}
    return subprocess.Popen(
        [sys.executable, "-c", MIGRATOR, url, str(sql_dir)],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_until_sleeping(admin: sa.Engine, database: str, process: subprocess.Popen[str]) -> None:
    """Until a session of ``database`` runs the migration's pg_sleep (the migrator is mid-migration)."""
    deadline = time.monotonic() + 30
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = :d AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()"
    )
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        with admin.connect() as conn:
            if conn.scalar(query, {"d": database}):
                return
        time.sleep(0.05)
    raise AssertionError("the migrator never reached the pause")


def _tables(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())


def _applied(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT migration_id FROM _yoyo_migration ORDER BY migration_id")).scalars())


@pytest.mark.postgres
def test_a_killed_migrator_blocks_no_later_run_and_its_half_migration_is_redone(
    make_database: MakeDatabase, slow_sql_dir: Path
) -> None:
    url = make_database(migrated=False)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    migrator = _start_migrator(url, slow_sql_dir, pause=60)
    _wait_until_sleeping(engine, engine.url.database or "", migrator)
    migrator.send_signal(signal.SIGKILL)
    migrator.wait()

    started = time.monotonic()
    applied = apply_migrations(url, slow_sql_dir)
    took = time.monotonic() - started

    print(f"second migrate after the kill: {took:.2f}s")
    assert took < 8, f"the second migrate waited {took:.1f}s for a dead holder"
    assert applied == ["0002_slow"]  # 0001 was committed before the kill; 0002 was rolled back and redone
    assert {"first", "half_applied", "after_the_pause"} <= _tables(engine)
    assert _applied(engine) == ["0001_first", "0002_slow"]
    engine.dispose()


@pytest.mark.postgres
def test_a_stale_yoyo_lock_row_of_an_older_version_does_not_block(make_database: MakeDatabase, settings) -> None:  # type: ignore[no-untyped-def]
    url = make_database(migrated=False)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:  # what a migrator of an older version leaves behind when it is killed
        conn.execute(
            sa.text(
                "CREATE TABLE yoyo_lock (locked INT DEFAULT 1, ctime TIMESTAMP, pid INT NOT NULL, PRIMARY KEY (locked))"
            )
        )
        conn.execute(sa.text("INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now(), 4194301)"))
    started = time.monotonic()
    applied = apply_migrations(url, settings.sql_dir)
    assert time.monotonic() - started < 8
    assert applied and applied[0] == "0001_core_schema"
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM yoyo_lock")) == 0
    engine.dispose()


@pytest.mark.postgres
def test_concurrent_migrators_serialise(make_database: MakeDatabase, slow_sql_dir: Path) -> None:
    url = make_database(migrated=False)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    first = _start_migrator(url, slow_sql_dir, pause=3)
    _wait_until_sleeping(engine, engine.url.database or "", first)
    second = _start_migrator(url, slow_sql_dir, pause=3)
    outputs = [process.communicate(timeout=60) for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert outputs[0][0].splitlines()[-1] == "['0001_first', '0002_slow']"
    assert outputs[1][0].splitlines()[-1] == "[]"  # it waited for the first, then found nothing to do
    assert _applied(engine) == ["0001_first", "0002_slow"]
    engine.dispose()


@pytest.mark.postgres
def test_a_migration_is_applied_and_recorded_together_or_not_at_all(
    make_database: MakeDatabase, slow_sql_dir: Path
) -> None:
    url = make_database(migrated=False)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    empty = slow_sql_dir / "empty"
    empty.mkdir()
    apply_migrations(url, empty)  # yoyo's own tables, nothing applied
    with engine.begin() as conn:  # recording 0002 fails once it has run: its DDL must not stay behind
        conn.execute(
            sa.text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.migration_id = '0002_slow' THEN RAISE EXCEPTION 'cannot record'; END IF; RETURN NEW; END $$"
            )
        )
        conn.execute(
            sa.text("CREATE TRIGGER refuse BEFORE INSERT ON _yoyo_migration FOR EACH ROW EXECUTE FUNCTION refuse()")
        )
    with pytest.raises(DatabaseUnavailableError, match=r"cannot migrate .*cannot record") as raised:
        apply_migrations(url, slow_sql_dir)
    assert isinstance(raised.value.__context__, psycopg2.errors.RaiseException)  # the real cause, kept
    assert "half_applied" not in _tables(engine) and _applied(engine) == ["0001_first"]
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER refuse ON _yoyo_migration"))
    assert apply_migrations(url, slow_sql_dir) == ["0002_slow"]
    assert _applied(engine) == ["0001_first", "0002_slow"]
    engine.dispose()


@pytest.mark.postgres
def test_a_migrator_gives_up_on_a_live_holder_with_a_clear_error(make_database: MakeDatabase, settings) -> None:  # type: ignore[no-untyped-def]
    url = make_database(migrated=False)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as holder:
        holder.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        with pytest.raises(
            DatabaseUnavailableError, match=r"another migrator has held the migration lock .* server pid"
        ):
            apply_migrations(url, settings.sql_dir, lock_wait=0.5)
    assert apply_migrations(url, settings.sql_dir)[0] == "0001_core_schema"  # the holder's session ended
    engine.dispose()
