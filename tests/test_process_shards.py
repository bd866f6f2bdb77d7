"""news_process's shards: several processing runs at once over one backlog share it without overlap.

Two shards run in two processes (as on two Celery workers), released together once each has its model loaded,
over a backlog of small batches with failing documents and one a dead run left behind: every document is
processed, and exactly once.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pipeline.db.engine import create_engine
from pipeline.facts.model import load_model
from pipeline.ingest import run as runs
from pipeline.ingest.staged import plan_shards, process_pending, shard_count, stage_values
from pipeline.settings import Settings
from pipeline.tasks import leftovers, process_shard, process_shards, summed

from . import poison
from .conftest import ROOT

pytestmark = pytest.mark.postgres
GOOD = 46
BATCH = 3
DEAD_RUN = "INSERT INTO ingest_runs (trigger, status) VALUES ('dead', 'abandoned') RETURNING id"


def shard(url: str, barrier: Any, results: Any) -> None:
    """One shard in its own process: load the model, wait for the other shard, then process until none waits."""
    settings = replace(Settings.from_env({"NEWSFLOW_HOME": str(ROOT)}), database_url=url, batch_size=BATCH)
    load_model(settings.spacy_model)
    engine = create_engine(url)
    barrier.wait(timeout=300)
    summary = process_pending(settings, engine, limit=10**6, trigger="shard", seconds=600)
    results.put({"run": summary.run_id, "seen": summary.seen, "loaded": summary.loaded, "failed": summary.failed})
    engine.dispose()


def backlog(settings: Settings, engine: sa.Engine, folder: Path) -> list[poison.Item]:
    """Good documents, documents that fail (empty, binary), and one a dead run had claimed, all staged."""
    items = [poison.Item(f"good-{n:02}.txt", poison.text("calm", n), None) for n in range(GOOD)]
    items += [poison.Item("empty.html", b"<html><body></body></html>", "extract")]
    items += [poison.Item("binary.txt", b"\x00\xff" * 40, "extract")]
    with runs.open_run(settings, engine, trigger="test") as run:
        stage_values(run, poison.write(folder, items))
    assert run.summary.staged == len(items), run.summary.failures
    with engine.begin() as conn:
        dead = conn.scalar(sa.text(DEAD_RUN))
        conn.execute(
            sa.text("UPDATE raw_documents SET claimed_by = :dead, attempts = 1 WHERE source LIKE '%good-07.txt'"),
            {"dead": dead},
        )
    return items


def test_two_shards_at_once_process_every_document_exactly_once(
    db_settings: Settings, engine: sa.Engine, migrated_url: str, tmp_path: Path
) -> None:
    items = backlog(replace(db_settings, batch_size=BATCH), engine, tmp_path / "in")
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    shards = [context.Process(target=shard, args=(migrated_url, barrier, results)) for _ in range(2)]
    for process in shards:
        process.start()
    done = [results.get(timeout=600) for _ in shards]
    for process in shards:
        process.join(timeout=60)
    assert [process.exitcode for process in shards] == [0, 0]

    assert sum(result["seen"] for result in done) == len(items), done
    assert sum(result["failed"] for result in done) == 2 and sum(result["loaded"] for result in done) == GOOD
    assert all(result["seen"] > 0 for result in done), f"one shard did all the work: {done}"
    with engine.connect() as conn:
        waiting = conn.scalar(sa.text("SELECT count(*) FROM raw_documents WHERE processed_at IS NULL"))
        tries = dict(conn.execute(sa.text("SELECT attempts, count(*) FROM raw_documents GROUP BY attempts")).all())
        articles = dict(conn.execute(sa.text("SELECT ingest_run_id, count(*) FROM articles GROUP BY 1")).all())
        versions = set(conn.scalars(sa.text("SELECT version FROM articles")))
        errors = list(conn.scalars(sa.text("SELECT source FROM ingest_errors ORDER BY source")))
    assert waiting == 0
    assert tries == {1: len(items) - 1, 2: 1}, "each document claimed once (the left-behind one once more)"
    assert articles == {result["run"]: result["loaded"] for result in done if result["loaded"]}
    assert versions == {1}
    assert [Path(source).name for source in errors] == ["binary.txt", "empty.html"]


def test_a_shard_stops_claiming_once_its_time_budget_is_spent(
    db_settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    settings = replace(db_settings, batch_size=BATCH)
    items = backlog(settings, engine, tmp_path / "in")
    assert plan_shards(replace(settings, process_shards=4), engine) == (len(items), 4)

    first = process_pending(settings, engine, trigger="shard", seconds=0)

    assert first.seen == 1, "the left-behind document goes first, alone, and the budget ends the shard after it"
    second = process_pending(settings, engine, trigger="shard", seconds=0)
    assert second.seen == BATCH
    rest = process_pending(settings, engine, trigger="shard", seconds=None)
    assert first.seen + second.seen + rest.seen == len(items)
    assert plan_shards(settings, engine) == (0, 1)


@pytest.mark.parametrize(
    ("waiting", "shards", "batch", "expected"),
    [
        (0, 2, 32, 1),
        (-5, 2, 32, 1),
        (1, 2, 32, 1),
        (32, 2, 32, 1),
        (33, 2, 32, 2),
        (10**9, 2, 32, 2),
        (10**9, 1, 32, 1),
        (100, 8, 32, 4),
        (7, 16, 1, 7),
    ],
)
def test_shards_are_as_many_as_the_setting_allows_and_the_backlog_keeps_busy(
    settings: Settings, waiting: int, shards: int, batch: int, expected: int
) -> None:
    assert shard_count(replace(settings, process_shards=shards, batch_size=batch), waiting) == expected


def test_the_shard_setting_is_read_from_the_environment_and_never_below_one() -> None:
    assert Settings.from_env({}).process_shards == 2
    assert Settings.from_env({"NEWSFLOW_PROCESS_SHARDS": "6"}).process_shards == 6
    assert Settings.from_env({"NEWSFLOW_PROCESS_SHARDS": "0"}).process_shards == 1
    assert Settings.from_env({"NEWSFLOW_PROCESS_SECONDS": "90"}).process_seconds == 90.0


def test_a_shard_that_spends_its_budget_asks_for_another_run_and_one_that_empties_the_backlog_does_not(
    db_settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    settings = replace(db_settings, batch_size=BATCH, process_seconds=0)
    items = backlog(settings, engine, tmp_path / "in")
    assert process_shards(replace(settings, process_shards=3)) == ["shard 1 of 3", "shard 2 of 3", "shard 3 of 3"]

    cut_short = process_shard(settings)

    assert (cut_short["seen"], cut_short["budget_spent"]) == (1, 1)
    assert leftovers(settings, summed([cut_short, {"seen": 0, "budget_spent": 0}])) == len(items) - 1
    emptied = process_shard(replace(settings, process_seconds=600))
    assert (emptied["seen"], emptied["budget_spent"]) == (len(items) - 1, 0)
    assert leftovers(settings, summed([emptied])) == 0
    assert leftovers(settings, summed([cut_short, emptied])) == 0, "nothing waits: no run to ask for"
    assert summed([cut_short, emptied])["seen"] == len(items)
