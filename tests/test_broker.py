"""The broker test: durable event intake through Redis with a real Airflow.

Messages are published while the triggerer is down (the api-server, scheduler and dag-processor run, on
LocalExecutor with Postgres as the metadata database); nothing runs. Then the triggerer starts: its
``QueueBacklogTrigger`` (imported from the DAGs folder on ``PYTHONPATH``) sees the backlog, ``news_events``
stages every message, and ``news_process`` follows on the raw-documents asset. Every message is processed
exactly once: one raw document and one article per good page or document, one error row per bad message,
each page fetched once from the local server, nothing waiting, the stream acknowledged and emptied.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from sqlalchemy.engine import make_url

from pipeline.sources import queue as broker
from pipeline.sources.queue import IntakeMessage

from .airflow_stack import AirflowStack, airflow_env, free_port, running_airflow
from .test_airflow_live import metadata_url  # noqa: F401 - the fixture: an empty database for Airflow's metadata
from .test_fetch import article
from .test_queue import REDIS_URL, redis_answers

PAGES = 20
DAG_IDS = ("news_events", "news_process")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not redis_answers(), reason="the broker test needs Redis at 127.0.0.1:6379"),
]


def messages(server: HTTPServer) -> list[IntakeMessage]:
    """PAGES pages, a page that is gone, and two documents sent as bytes."""
    server.expect_request("/robots.txt").respond_with_data("", status=404)
    for n in range(PAGES):
        server.expect_request(f"/story/{n}").respond_with_data(article(extra=f"Story {n}. "), content_type="text/html")
    server.expect_request("/gone").respond_with_data("gone", status=410)
    urls = [server.url_for(f"/story/{n}") for n in range(PAGES)] + [server.url_for("/gone")]
    notes = [f"# Note {n}\n\nA note about the talks, number {n}.\n".encode() for n in range(2)]
    documents = [IntakeMessage.for_document(f"notes/{n}.md", note, origin="producer") for n, note in enumerate(notes)]
    return [IntakeMessage.for_url(url, origin="test-producer") for url in urls] + documents


def test_messages_published_while_the_triggerer_is_down_are_processed_exactly_once(
    tmp_path: Path, httpserver: HTTPServer, migrated_url: str, metadata_url: str, engine: sa.Engine  # noqa: F811
) -> None:
    stream, port = f"newsflow-broker-test:{uuid.uuid4().hex}", free_port()
    meta = make_url(metadata_url).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    queue_env = {"NEWSFLOW_QUEUE_URL": REDIS_URL, "NEWSFLOW_QUEUE_STREAM": stream, "NEWSFLOW_QUEUE_GROUP": "airflow"}
    env = airflow_env(tmp_path / "airflow", port, AIRFLOW__CORE__EXECUTOR="LocalExecutor",
                      AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=meta, NEWSFLOW_DATABASE_URL=migrated_url,
                      **queue_env)  # fmt: skip
    client: Any = redis.Redis.from_url(REDIS_URL)
    try:
        with running_airflow(env, port, tmp_path / "logs", "api-server", "scheduler", "dag-processor") as stack:
            stack.wait_until_up(dag_ids=["news_events", "news_process"])
            queue = broker.connect(REDIS_URL)
            ids = broker.publish(queue, stream, messages(httpserver))
            client.xadd(stream, {b"v": b"1", b"kind": b"carrier pigeon"})  # malformed
            time.sleep(15)  # the triggerer is down: nothing may wake news_events
            assert stack.latest_run("news_events") is None
            started = time.monotonic()
            stack.start("triggerer")
            first = wait_for(lambda: _succeeded(stack, "news_events"), "news_events to drain the queue")
            staged_at = time.monotonic() - started
            wait_for(lambda: _all_processed(engine, expected=PAGES + 2), "news_process to process every document")
            processed_at = time.monotonic() - started
            runs = {dag: stack.api("GET", f"/dags/{dag}/dagRuns")["total_entries"] for dag in DAG_IDS}
            instances = stack.api("GET", f"/dags/news_events/dagRuns/{first}/taskInstances")["task_instances"]
        facts = _facts(engine, stream)
        state = (int(client.xlen(stream)), int(client.xpending(stream, "airflow")["pending"]))
    finally:
        client.delete(stream)
    print(f"\nbroker test: {len(ids) + 1} messages published while the triggerer was down; first news_events run "
          f"{first}; staged {staged_at:.1f} s and processed {processed_at:.1f} s after the triggerer started; "
          f"runs {runs}; {facts}")  # fmt: skip
    assert facts["raw_documents"] == PAGES + 2 and facts["articles"] == PAGES + 2
    assert facts["errors"] == Counter({"fetch": 1, "queue": 1})
    assert facts["ledger"] == {"staged": PAGES + 2, "failed": 2}
    assert facts["waiting"] == 0
    tasks = {instance["task_id"]: instance["state"] for instance in instances}
    assert tasks == {"drain_queue": "success", "drain_inbox": "skipped"}, "the queue woke it, not the doorbell"
    fetches = Counter(request.path for request, _ in httpserver.log if request.path != "/robots.txt")
    assert fetches == Counter([f"/story/{n}" for n in range(PAGES)] + ["/gone"]), fetches  # each page once
    assert state == (0, 0), "the stream is acknowledged and emptied"


def wait_for(check: Any, what: str, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(2)
    raise TimeoutError(f"timed out waiting for {what}")


def _succeeded(stack: AirflowStack, dag_id: str) -> str | None:
    run = stack.latest_run(dag_id)
    if run and run["state"] == "failed":
        raise AssertionError(f"{dag_id} failed: {run}")
    return str(run["dag_run_id"]) if run and run["state"] == "success" else None


def _all_processed(engine: sa.Engine, *, expected: int) -> bool:
    with engine.connect() as conn:
        done = conn.scalar(sa.text("SELECT count(*) FROM raw_documents WHERE processed_at IS NOT NULL"))
    return bool(done == expected)


def _facts(engine: sa.Engine, stream: str) -> dict[str, Any]:
    with engine.connect() as conn:
        ledger = "SELECT outcome, count(*) FROM intake_messages WHERE stream = :s GROUP BY outcome"
        return {
            "raw_documents": conn.scalar(sa.text("SELECT count(*) FROM raw_documents")),
            "articles": conn.scalar(sa.text("SELECT count(*) FROM articles")),
            "errors": Counter(conn.scalars(sa.text("SELECT stage FROM ingest_errors"))),
            "ledger": dict(conn.execute(sa.text(ledger), {"s": stream}).tuples().all()),
            "waiting": conn.scalar(sa.text("SELECT count(*) FROM raw_documents WHERE processed_at IS NULL")),
        }


TRIGGER = """
import asyncio, json, sys
sys.path.append({dags!r})  # as every Airflow process has the DAGs folder on PYTHONPATH
from newsflow_triggers import QueueBacklogTrigger
from pipeline.sources import queue as broker
from pipeline.sources.queue import IntakeMessage

stream, url = sys.argv[1], sys.argv[2]
classpath, kwargs = QueueBacklogTrigger(stream=stream, group="g", poll_seconds=0.05).serialize()
trigger = QueueBacklogTrigger(**kwargs)  # as the triggerer builds it again from the serialised form

async def events():
    found, seen = [], {{"classpath": classpath}}

    async def collect():
        async for event in trigger.run():
            found.append(event.payload)

    async def until(count):
        for _ in range(100):
            if len(found) >= count:
                return
            await asyncio.sleep(0.05)

    task = asyncio.create_task(collect())
    if url.endswith(":1/0"):  # Redis down: no event, no error, the trigger goes on
        await asyncio.sleep(1)
        seen.update(events=list(found), running=not task.done())
    else:
        queue = broker.connect(url)
        broker.publish(queue, stream, [IntakeMessage.for_url("https://a.example/1", origin="t")])
        await until(1)
        await asyncio.sleep(1)  # the same backlog, well before refire_seconds: quiet
        seen["quiet"] = list(found)
        broker.publish(queue, stream, [IntakeMessage.for_url("https://a.example/2", origin="t")])
        await until(2)
        seen["events"] = list(found)
    task.cancel()
    return seen

print(json.dumps(asyncio.run(events())))
"""


@pytest.mark.parametrize("redis_up", [True, False])
def test_the_trigger_fires_on_a_backlog_once_then_on_new_messages(tmp_path: Path, redis_up: bool) -> None:
    from .test_dags import DAGS, python
    from .test_dags import airflow_env as dag_env

    stream = f"newsflow-trigger-test:{uuid.uuid4().hex}"
    url = REDIS_URL if redis_up else "redis://127.0.0.1:1/0"
    env = dag_env(tmp_path, NEWSFLOW_QUEUE_URL=url)
    try:
        seen = python(TRIGGER.format(dags=str(DAGS)), env, stream, url)
    finally:
        redis.Redis.from_url(REDIS_URL).delete(stream)
    assert seen["classpath"] == "newsflow_triggers.QueueBacklogTrigger"
    if not redis_up:
        assert seen == {"classpath": "newsflow_triggers.QueueBacklogTrigger", "events": [], "running": True}
        return
    first, news = seen["events"]
    assert seen["quiet"] == [first], "fired again on the same backlog before refire_seconds"
    assert first == {"stream": stream, "pending": 0, "waiting": 1, "last_id": first["last_id"]}
    assert news["waiting"] == 2 and news["last_id"] != first["last_id"]
