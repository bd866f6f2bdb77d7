"""Parallel ingestion: worker processes, each loading the model once, share one ingest run.

The parent opens the run and hands the inputs to the workers in batches of
``NEWSFLOW_BATCH_SIZE`` (paths and URLs only; documents never cross processes).
Each worker reads, extracts, parses and loads its batches with its own database
engine and returns the counts, which the parent adds up. Each batch is loaded in
one transaction, and a document the database refuses is retried alone, so a
failure costs only that document.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat

from sqlalchemy.engine import Engine

from pipeline import store
from pipeline.database import create_engine, database_url
from pipeline.ingest import IngestSummary, batches, ingest_into, join_run
from pipeline.nlp import load_model
from pipeline.settings import Settings

_worker: dict[str, object] = {}


def ingest_parallel(
    settings: Settings,
    engine: Engine,
    inputs: Iterable[str],
    *,
    workers: int,
    trigger: str = "cli",
    on_batch: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Ingest with ``workers`` processes; ``on_batch`` hears how many inputs each finished batch held."""
    summary = IngestSummary(run_id=store.start_run(engine, trigger=trigger))
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start, initargs=(settings,)) as pool:
            for part in pool.map(_ingest_batch, repeat(summary.run_id), batches(inputs, settings.batch_size)):
                summary.merge(part)
                if on_batch:
                    on_batch(part.seen)
    finally:
        store.finish_run(engine, summary.run_id, summary.counts())
    return summary


def _start(settings: Settings) -> None:
    """Worker start-up: one engine and one loaded model per process."""
    _worker["settings"] = settings
    _worker["engine"] = create_engine(database_url(settings))
    load_model(settings.spacy_model)


def _ingest_batch(run_id: int, batch: list[str]) -> IngestSummary:
    settings, engine = _worker["settings"], _worker["engine"]
    assert isinstance(settings, Settings) and isinstance(engine, Engine)
    part = IngestSummary(run_id=run_id)
    with join_run(settings, engine, part) as run:
        ingest_into(run, batch)
    return part
