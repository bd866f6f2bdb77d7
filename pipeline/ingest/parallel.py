"""Parallel ingestion: worker processes, each loading the model once, share one ingest run.

The parent opens the run and hands the inputs to the workers in batches of ``NEWSFLOW_BATCH_SIZE`` (paths and
URLs only; documents never cross processes). Each worker runs the batch step with its own database engine and
returns its summary, which the parent adds up.

A document that kills its worker (a crash, the OOM killer) breaks the pool. The batches that were in flight
then are the suspects: they are run again one document at a time, one at a time, in a fresh pool, so the
culprit is found, recorded as failed ("its worker process died"), and every other document is still loaded.

Workers die with the parent (``lifeline``): a killed run leaves nothing writing, and the next run closes it
as abandoned. A parent that stops on its own (an interrupt, any exception) closes the lifeline first, so its
workers end at once and nothing is written after the run's row says where it stopped.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection

from sqlalchemy.engine import Engine

from pipeline.db.engine import create_engine, database_url
from pipeline.errors import SystemicError
from pipeline.facts.model import check_model, load_model
from pipeline.ingest import ingest_values
from pipeline.ingest.lifeline import die_with_parent
from pipeline.ingest.run import Input, Run, RunSummary, join_run, open_run
from pipeline.ingest.step import batches
from pipeline.models import Failure
from pipeline.settings import Settings

WORKER_DIED = "its worker process died while processing it (a crash or the OOM killer?)"
MAX_BARREN_POOLS = 3  # workers that die this often in a row without finishing anything cannot start at all
_worker: dict[str, object] = {}


@dataclass(frozen=True)
class _Work:
    values: list[str]
    suspect: bool = False  # run alone, after a worker died with it in flight


def ingest_parallel(
    settings: Settings,
    engine: Engine,
    inputs: Iterable[str],
    *,
    workers: int,
    on_batch: Callable[[int], None] | None = None,
) -> RunSummary:
    """Ingest with ``workers`` processes; ``on_batch`` hears how many inputs each finished batch held."""
    check_model(settings.spacy_model)
    queue = deque(_Work(values) for values in batches(inputs, settings.batch_size))
    with open_run(settings, engine, trigger="cli") as run:
        barren = 0  # pools in a row that broke before finishing anything
        while queue:
            with _pool(settings, workers) as pool:
                barren = 0 if _drain(run, pool, queue, workers, on_batch or (lambda _n: None)) else barren + 1
            if barren >= MAX_BARREN_POOLS:
                raise SystemicError(f"worker processes died {barren} times in a row before finishing any work")
    return run.summary


@contextmanager
def _pool(settings: Settings, workers: int) -> Iterator[ProcessPoolExecutor]:
    """Spawned workers that die with this process (``lifeline``): only this process holds the pipe's write end."""
    context = multiprocessing.get_context("spawn")
    reader, writer = context.Pipe(duplex=False)
    try:
        start = (settings, os.getpid(), reader)
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start, initargs=start)
        try:
            yield pool
        except BaseException:
            _abandon(pool, writer)
            raise
        pool.shutdown(wait=True)
    finally:
        reader.close()
        writer.close()


def _abandon(pool: ProcessPoolExecutor, lifeline: Connection) -> None:
    """The parent stops (an interrupt, an error): close the lifeline, so every worker ends at once, its open
    transaction rolled back, instead of finishing the batch in hand; then drop the work not started."""
    lifeline.close()
    pool.shutdown(wait=False, cancel_futures=True)


def _drain(
    run: Run, pool: ProcessPoolExecutor, queue: deque[_Work], workers: int, on_batch: Callable[[int], None]
) -> int:
    """Keep the workers busy until the queue is empty, or the pool broke (its suspects then wait in front);
    the number of batches finished."""
    in_flight: dict[Future[RunSummary], _Work] = {}
    finished = 0
    while queue or in_flight:
        try:
            _fill(run, pool, queue, in_flight, workers)
        except BrokenProcessPool:
            return finished + _settle_broken(run, in_flight, queue, on_batch)
        done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        if any(isinstance(future.exception(), BrokenProcessPool) for future in done):
            return finished + _settle_broken(run, in_flight, queue, on_batch)
        for future in done:
            _merge(run, future.result(), on_batch)
            del in_flight[future]
            finished += 1
    return finished


def _fill(
    run: Run, pool: ProcessPoolExecutor, queue: deque[_Work], in_flight: dict[Future[RunSummary], _Work], workers: int
) -> None:
    """Submit work until every worker has some; a suspect runs alone."""
    while queue and len(in_flight) < (1 if queue[0].suspect else workers) and not _suspect_running(in_flight):
        work = queue.popleft()
        try:
            in_flight[pool.submit(_ingest_batch, run.id, work.values)] = work
        except BrokenProcessPool:
            queue.appendleft(work)
            raise


def _settle_broken(
    run: Run, in_flight: dict[Future[RunSummary], _Work], queue: deque[_Work], on_batch: Callable[[int], None]
) -> int:
    """After a worker died: keep what finished, and make suspects of the work that did not; the number kept."""
    wait(in_flight)
    suspects, kept = [], 0
    for future, work in in_flight.items():
        if future.exception() is None:
            _merge(run, future.result(), on_batch)
            kept += 1
        elif isinstance(future.exception(), BrokenProcessPool):
            suspects.append(work)
        else:
            raise future.exception()  # type: ignore[misc]
    in_flight.clear()
    _requeue_suspects(run, suspects, queue, on_batch)
    return kept


def _merge(run: Run, part: RunSummary, on_batch: Callable[[int], None]) -> None:
    run.summary.merge(part)
    on_batch(part.seen)


def _suspect_running(in_flight: dict[Future[RunSummary], _Work]) -> bool:
    return any(work.suspect for work in in_flight.values())


def _requeue_suspects(run: Run, suspects: list[_Work], queue: deque[_Work], on_batch: Callable[[int], None]) -> None:
    """A suspect that was already alone is the culprit; the others go again, one document at a time."""
    for work in suspects:
        if work.suspect:
            run.fail(Input(work.values[0]), Failure(work.values[0], "process", WORKER_DIED))
            on_batch(1)
        else:
            queue.extendleft(_Work([value], suspect=True) for value in reversed(work.values))


def _start(settings: Settings, parent_pid: int, lifeline: Connection) -> None:
    """Worker start-up: bound to the parent's life, then one engine and one loaded model per process. A failure
    here is kept and raised with the first batch, so it reaches the parent as what it is (a missing model is
    systemic) and not as a dead pool."""
    die_with_parent(parent_pid, lifeline)
    try:
        _worker["settings"] = settings
        _worker["engine"] = create_engine(database_url(settings), statement_seconds=settings.db_statement_seconds)
        load_model(settings.spacy_model)
    except Exception as error:  # noqa: BLE001 - handed to the parent with the first batch
        _worker["error"] = error


def _ingest_batch(run_id: int, values: list[str]) -> RunSummary:
    if "error" in _worker:
        raise _worker["error"]  # type: ignore[misc]
    settings, engine = _worker["settings"], _worker["engine"]
    assert isinstance(settings, Settings) and isinstance(engine, Engine)
    part = RunSummary(run_id=run_id)
    with join_run(settings, engine, part) as run:
        ingest_values(run, values)
    return part
