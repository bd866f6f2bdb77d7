"""The Airflow DAGs: they import cleanly and read well, and real runs leave articles in Postgres.

Airflow reads its configuration when first imported, so every Airflow step runs in a subprocess with its
own ``AIRFLOW_HOME`` (a SQLite metadata database, migrated first, as ``dag.test()`` needs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer

from .airflow_stack import local_feed
from .conftest import ROOT
from .test_fetch import article

DAGS = ROOT / "dags"
BIN = Path(sys.executable).parent

INSPECT = """
import json
from airflow.dag_processing.dagbag import BundleDagBag
bag = BundleDagBag(dag_folder={dags!r}, bundle_path=__import__("pathlib").Path({dags!r}))
from airflow.serialization.encoders import coerce_to_core_timetable
from airflow.timetables.base import TimeRestriction
from airflow.sdk import timezone
def documented(task):
    return bool(getattr(task, "doc_md", None) or getattr(task, "partial_kwargs", {{}}).get("doc_md"))
def first_run_waits(dag):
    info = coerce_to_core_timetable(dag.timetable).next_dagrun_info(
        last_automated_data_interval=None, restriction=TimeRestriction(dag.start_date, None, dag.catchup))
    return info is None or info.run_after > timezone.utcnow()
print(json.dumps({{
    "errors": bag.import_errors,
    "dags": {{dag_id: {{"tags": sorted(dag.tags), "doc": bool(dag.doc_md), "description": dag.description,
                        "paused_at_creation": dag.is_paused_upon_creation, "first_run_waits": first_run_waits(dag),
                        "tasks": {{t.task_id: documented(t) for t in dag.tasks}},
                        "map_index": {{t.task_id: getattr(t, "map_index_template", None) for t in dag.tasks}},
                        "mapped": sorted(t.task_id for t in dag.tasks if "Mapped" in type(t).__name__),
                        "upstream": {{t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}},
                        "outlets": {{t.task_id: [a.name for a in t.outlets] for t in dag.tasks if t.outlets}}}}
             for dag_id, dag in bag.dags.items()}},
}}))
"""

RUN = """
import json, sys
from airflow.dag_processing.dagbag import BundleDagBag
bag = BundleDagBag(dag_folder={dags!r}, bundle_path=__import__("pathlib").Path({dags!r}))
states = {{}}
for dag_id in sys.argv[1:]:
    run = bag.get_dag(dag_id).test()
    states[dag_id] = str(run.state)
print(json.dumps(states))
"""


def airflow_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "NEWSFLOW_"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        NEWSFLOW_HOME=str(ROOT),
        NEWSFLOW_QUEUE_STREAM=f"newsflow-test:{uuid.uuid4().hex}",  # a run never drains a real stream
        **extra,
    )
    return env


def python(code: str, env: dict[str, str], *args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_dags_import_cleanly_with_docs_and_tags(tmp_path: Path) -> None:
    found = python(INSPECT.format(dags=str(DAGS)), airflow_env(tmp_path))
    assert found["errors"] == {}
    dags = found["dags"]
    assert isinstance(dags, dict)
    assert set(dags) == {"news_daily", "news_process", "news_events", "news_reprocess"}
    for dag_id, dag in dags.items():
        assert dag["doc"] and "newsflow" in dag["tags"], dag_id
        assert dag["description"] and len(dag["description"]) <= 200, dag_id
        assert dag["paused_at_creation"] is False, f"{dag_id} would start switched off"
        assert dag["first_run_waits"], f"switching {dag_id} on would start a run for a day already past"
        assert all(dag["tasks"].values()), (dag_id, dag["tasks"])
    assert dags["news_daily"]["map_index"]["fetch_feed_batch"] == "{{ feeds_polled }}"
    process = dags["news_process"]
    assert process["upstream"] == {"plan_shards": [], "process_pending_documents": ["plan_shards"],
                                   "publish_facts": ["process_pending_documents"],
                                   "continue_backlog": ["publish_facts"]}  # fmt: skip
    assert process["mapped"] == ["process_pending_documents"]
    assert process["map_index"]["process_pending_documents"] == "{{ shard }}"
    assert process["outlets"] == {"publish_facts": ["newsflow_facts"], "continue_backlog": ["newsflow_raw_documents"]}


@pytest.mark.postgres
def test_news_daily_then_news_process_load_a_local_feed(
    tmp_path: Path, httpserver: HTTPServer, migrated_url: str, engine: sa.Engine
) -> None:
    feeds = local_feed(httpserver, tmp_path)
    env = airflow_env(
        tmp_path,
        NEWSFLOW_DATABASE_URL=migrated_url,
        NEWSFLOW_FEEDS=str(feeds),
        NEWSFLOW_ALLOW_PRIVATE_HOSTS="true",
        NEWSFLOW_FETCH_HOST_INTERVAL="0",
    )
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, check=True, timeout=300)

    states = python(RUN.format(dags=str(DAGS)), env, "news_daily", "news_process")

    assert states == {"news_daily": "success", "news_process": "success"}
    with engine.connect() as conn:
        headings = list(conn.scalars(sa.text("SELECT heading FROM sections ORDER BY position")))
        pending = conn.scalar(sa.text("SELECT count(*) FROM raw_documents WHERE processed_at IS NULL"))
        runs = set(conn.scalars(sa.text("SELECT trigger FROM ingest_runs")))
    assert headings == [None, "What comes next"]
    assert pending == 0
    assert runs == {"news_daily", "news_process"}


EVENT = """
import asyncio, importlib.util, json, sys
from airflow.dag_processing.dagbag import BundleDagBag
sys.path.append({dags!r})  # as Airflow puts the bundle's folder on the path for its DAG files
spec = importlib.util.spec_from_file_location("news_events_file", {dags!r} + "/news_events.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
[watcher] = module.INBOX.watchers
dag = BundleDagBag(dag_folder={dags!r}, bundle_path=__import__("pathlib").Path({dags!r})).get_dag("news_events")

async def first_event():
    async for event in watcher.trigger.run():
        return event.payload

payload = asyncio.run(asyncio.wait_for(first_event(), timeout=30))
run = dag.test()
tasks = {{ti.task_id: str(ti.state) for ti in run.get_task_instances()}}
print(json.dumps({{"payload": payload, "state": str(run.state), "tasks": tasks}}))
"""


@pytest.mark.postgres
def test_a_file_dropped_in_the_inbox_is_ingested_when_the_doorbell_rings(
    tmp_path: Path, migrated_url: str, engine: sa.Engine
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "talks.html").write_text(article(), encoding="utf-8")
    (inbox / "broken.txt").write_bytes(b"")
    (inbox / ".ring").touch()
    unreachable = "redis://127.0.0.1:1/0"  # a run by hand skips the queue it cannot reach; the inbox is drained
    queue = {"NEWSFLOW_QUEUE_URL": unreachable}
    env = airflow_env(tmp_path, NEWSFLOW_DATABASE_URL=migrated_url, NEWSFLOW_INBOX=str(inbox), **queue)
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, check=True, timeout=300)

    outcome = python(EVENT.format(dags=str(DAGS)), env)

    tasks = {"drain_inbox": "success", "drain_queue": "skipped"}
    assert outcome == {"payload": True, "state": "success", "tasks": tasks}
    assert not (inbox / ".ring").exists()
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["talks.html"]
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["broken.txt"]
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM sections WHERE heading = 'What comes next'")) == 1
        assert conn.scalar(sa.text("SELECT count(*) FROM ingest_errors WHERE source LIKE '%broken.txt'")) == 1
