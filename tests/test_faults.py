"""Faults: killed processes, racing processes, a staged run cut short, dropped and stalled connections.

After each fault the database must equal a clean run's, compared by ``content_digest``
(every table's rows by natural key, independent of ids and timestamps).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer

from pipeline.db.digest import content_digest
from pipeline.db.engine import create_engine
from pipeline.ingest import ingest
from pipeline.ingest import staged as stages
from pipeline.ingest.feeds import stage_feeds
from pipeline.ingest.staged import process_pending
from pipeline.settings import Settings
from pipeline.sources.http import Fetcher, FetchError, FetchPolicy

from .conftest import BENCHMARK, SEED, MakeDatabase
from .test_feeds import rss
from .test_fetch import article

NEWSFLOW = str(Path(sys.executable).parent / "newsflow")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The seed and 15 benchmark pages."""
    folder = tmp_path_factory.mktemp("corpus")
    shutil.copy(SEED, folder / SEED.name)
    shutil.copy(SEED.with_name(SEED.name + ".meta.yaml"), folder / (SEED.name + ".meta.yaml"))
    for page in sorted((BENCHMARK / "html").glob("*.html.gz"))[:15]:
        shutil.copy(page, folder / page.name)
    return sorted(p for p in folder.iterdir() if not p.name.endswith(".yaml"))


def clean_digest(make_database: MakeDatabase, settings: Settings, inputs: list[Path]) -> dict[str, str]:
    url = make_database()
    engine = create_engine(url)
    ingest(replace(settings, database_url=url), engine, [str(p) for p in inputs])
    digest = content_digest(engine)
    engine.dispose()
    return digest


def newsflow_ingest(url: str, inputs: list[Path], *, batch_size: int = 4) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NEWSFLOW_DATABASE_URL": url, "NEWSFLOW_BATCH_SIZE": str(batch_size)}
    return subprocess.Popen(
        [NEWSFLOW, "ingest", *map(str, inputs)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def articles(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text("SELECT count(*) FROM articles")) or 0)


@pytest.mark.postgres
def test_a_run_killed_mid_way_converges_on_rerun(
    make_database: MakeDatabase, settings: Settings, corpus: list[Path]
) -> None:
    url = make_database()
    engine = create_engine(url)
    process = newsflow_ingest(url, corpus)
    deadline = time.monotonic() + 120
    while articles(engine) == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stored = articles(engine)
    assert 0 < stored < len(corpus), "the kill should land after the first batch and before the last"

    rerun = newsflow_ingest(url, corpus)
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read() if rerun.stderr else ""
    assert content_digest(engine) == clean_digest(make_database, settings, corpus)
    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT status, pid FROM ingest_runs ORDER BY id")).all()
    assert [tuple(run) for run in runs] == [("abandoned", process.pid), ("succeeded", rerun.pid)]
    engine.dispose()


@pytest.mark.postgres
def test_two_processes_over_overlapping_inputs_store_each_document_once(
    make_database: MakeDatabase, settings: Settings, corpus: list[Path]
) -> None:
    url = make_database()
    first, second = corpus[:11], corpus[5:]
    racing = [newsflow_ingest(url, first, batch_size=3), newsflow_ingest(url, list(reversed(second)), batch_size=3)]
    for process in racing:
        assert process.wait(timeout=300) == 0, process.stderr.read() if process.stderr else ""
    engine = create_engine(url)
    with engine.connect() as conn:
        errors = conn.execute(sa.text("SELECT source, error FROM ingest_errors")).all()
    assert errors == []
    assert articles(engine) == len(corpus)
    assert content_digest(engine) == clean_digest(make_database, settings, corpus)
    engine.dispose()


@pytest.mark.postgres
def test_a_processing_task_retried_after_a_partial_run_duplicates_nothing(
    httpserver: HTTPServer,
    db_settings: Settings,
    engine: sa.Engine,
    make_database: MakeDatabase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """news_process's task fails after its first batch (as a worker lost mid-task would); Airflow's retry
    calls the same function again, which must finish the work without storing anything twice."""
    settings = replace(db_settings, allow_private_hosts=True, fetch_host_interval=0.0, fetch_attempts=1, batch_size=2)
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    for n in range(5):
        page = article(extra=f"<p>Dispatch number {n} from the talks.</p>")
        httpserver.expect_request(f"/story/{n}").respond_with_data(page, content_type="text/html")
    feed = rss(*(httpserver.url_for(f"/story/{n}") for n in range(5)))
    httpserver.expect_request("/feed.xml").respond_with_data(feed, content_type="application/rss+xml")
    feeds = [httpserver.url_for("/feed.xml")]
    stage_feeds(settings, engine, feeds)
    stage_feeds(settings, engine, feeds)  # the fetch task retried: nothing new is staged

    real_process = stages.ingest_batch
    calls: list[int] = []

    def lost_after_first_batch(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("worker lost")
        real_process(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(stages, "ingest_batch", lost_after_first_batch)
    with pytest.raises(RuntimeError):
        process_pending(settings, engine)
    monkeypatch.setattr(stages, "ingest_batch", real_process)
    assert 0 < articles(engine) < 5
    process_pending(settings, engine)

    clean_url = make_database()
    clean = create_engine(clean_url)
    stage_feeds(replace(settings, database_url=clean_url), clean, feeds)
    process_pending(replace(settings, database_url=clean_url), clean)
    assert content_digest(engine) == content_digest(clean)
    clean.dispose()


@pytest.fixture
def dropping_server() -> Iterator[tuple[str, list[int]]]:
    """A server that drops the first two connections without a word, then answers with a page."""
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[int] = []
    body = article().encode()
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            connections.append(1)
            with client:
                client.recv(65536)
                if len(connections) > 2:
                    client.sendall(response)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/story", connections
    listener.close()


POLICY = FetchPolicy(
    allow_private_hosts=True, host_interval=0.0, read_timeout=2.0, attempts=3, backoff_seconds=0.1, respect_robots=False
)


def test_dropped_connections_are_retried(dropping_server: tuple[str, list[int]]) -> None:
    url, connections = dropping_server
    with Fetcher(POLICY) as fetcher:
        page = fetcher.get(url)
    assert b"What comes next" in page.body and len(connections) == 3


def test_a_server_that_always_drops_ends_in_a_clear_error(dropping_server: tuple[str, list[int]]) -> None:
    url, connections = dropping_server
    with Fetcher(replace(POLICY, attempts=2)) as fetcher, pytest.raises(FetchError, match="after 2 attempts"):
        fetcher.get(url)
    assert len(connections) == 2


def test_a_stalled_server_times_out_on_every_attempt() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog) and never answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/stall"
    started = time.monotonic()
    stalling = replace(POLICY, read_timeout=0.5, attempts=2)
    with Fetcher(stalling) as fetcher, pytest.raises(FetchError, match="timed out"):
        fetcher.get(url)
    assert time.monotonic() - started < 10
    listener.close()
