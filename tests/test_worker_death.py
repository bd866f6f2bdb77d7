"""Workers die with their parent: ``newsflow ingest --workers 2`` killed (SIGKILL or SIGTERM) leaves no worker
writing behind it, and the next run closes the killed one as abandoned."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from pipeline.db.engine import create_engine
from pipeline.ingest.lifeline import parent_alive

from .conftest import BENCHMARK, MakeDatabase
from .test_faults import NEWSFLOW, articles

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """80 benchmark pages: enough that both workers are busy for a good while."""
    folder = tmp_path_factory.mktemp("pages")
    for page in sorted((BENCHMARK / "html").glob("*.html.gz"))[:80]:
        shutil.copy(page, folder / page.name)
    return sorted(folder.iterdir())


def busy_workers(parent: subprocess.Popen[bytes], engine: sa.Engine) -> list[psutil.Process]:
    """The parent's worker processes, once the first batch is stored (so every worker is at work)."""
    deadline = time.monotonic() + 180
    while articles(engine) == 0 and parent.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert parent.poll() is None, "the run ended before it could be killed"
    return psutil.Process(parent.pid).children(recursive=True)


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_a_killed_parent_and_write_nothing_after(
    make_database: MakeDatabase, pages: list[Path], kill: signal.Signals
) -> None:
    url = make_database()
    engine = create_engine(url)
    env = {**os.environ, "NEWSFLOW_DATABASE_URL": url, "NEWSFLOW_BATCH_SIZE": "8"}
    command = [NEWSFLOW, "ingest", "--workers", "2", *map(str, pages)]
    parent = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = busy_workers(parent, engine)
    assert len(workers) >= 2
    parent.send_signal(kill)
    parent.wait()
    deadline = time.monotonic() + 3
    while not all(gone(worker) for worker in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [worker.pid for worker in workers if not gone(worker)]
    for worker in workers:  # a failing test leaves nothing behind either
        if not gone(worker):
            worker.kill()
    assert left == [], f"workers still running 3 s after the parent was killed: {left}"
    stored = articles(engine)
    time.sleep(3)
    assert articles(engine) == stored, "rows were written after the parent was killed"
    assert stored < len(pages)

    rerun = subprocess.run([NEWSFLOW, "ingest", "--workers", "2", *map(str, pages[:2])], env=env, capture_output=True)
    assert rerun.returncode == 0, rerun.stderr
    with engine.connect() as conn:
        statuses = [row[0] for row in conn.execute(sa.text("SELECT status FROM ingest_runs ORDER BY id"))]
    assert statuses == ["abandoned", "succeeded"]
    engine.dispose()


def test_an_interrupted_parent_stops_its_workers_at_once_and_its_row_counts_what_was_stored(
    make_database: MakeDatabase, pages: list[Path]
) -> None:
    """SIGINT (or any exception) in the parent alone: the workers do not finish the batches in hand."""
    url = make_database()
    engine = create_engine(url)
    env = {**os.environ, "NEWSFLOW_DATABASE_URL": url, "NEWSFLOW_BATCH_SIZE": "6"}
    parent = subprocess.Popen([NEWSFLOW, "ingest", "--workers", "2", *map(str, pages)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    workers = busy_workers(parent, engine)
    parent.send_signal(signal.SIGINT)
    at_signal = articles(engine)
    parent.wait(timeout=60)
    deadline = time.monotonic() + 3
    while not all(gone(worker) for worker in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [worker.pid for worker in workers if not gone(worker)] == []
    time.sleep(2)
    with engine.connect() as conn:
        status, loaded = conn.execute(sa.text("SELECT status, documents_loaded FROM ingest_runs")).one()
    stored = articles(engine)
    engine.dispose()
    print(f"interrupted: {at_signal} stored at the signal, {stored} in the end, the run's row says {loaded}")
    # the workers end at once: at most a batch whose commit was already on its way lands (one batch is 6)
    assert stored - at_signal < 6, f"{stored - at_signal} articles were written after the interrupt"
    assert status == "stopped" and loaded == stored < len(pages)


def test_the_watchdog_sees_the_lifeline_close_and_the_parent_change() -> None:
    """The mechanism that covers non-Linux systems and a parent that died before ``prctl``, without killing."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    assert parent_alive(os.getppid(), reader, interval=0.01) is True
    assert parent_alive(os.getppid() + 1, reader, interval=0.01) is False  # re-parented: another parent pid
    writer.close()
    assert parent_alive(os.getppid(), reader, interval=0.01) is False
    reader.close()
