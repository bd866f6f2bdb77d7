"""Ingest: runs, the one batch step, and every way documents come in.

``ingest`` loads files, directories and URLs; ``ingest.feeds`` polls feeds; ``ingest.staged`` is the scheduled
path (fetch into the raw store, process what waits there, reprocess stored versions); ``ingest.parallel``
spreads a run over worker processes; ``ingest.inbox`` drains the event inbox. All of them go through
``step.ingest_batch`` with its document boundary, inside a ``run.Run``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date

from sqlalchemy.engine import Engine

from pipeline.ingest.run import Input, Progress, Run, RunSummary, join_run, open_run
from pipeline.ingest.step import batches, extract_batch, ingest_batch
from pipeline.models import Document, Failure
from pipeline.settings import Settings
from pipeline.sources import expand_inputs

__all__ = ["RunSummary", "extract_documents", "ingest", "ingest_values"]


def ingest(
    settings: Settings,
    engine: Engine,
    inputs: Iterable[str],
    *,
    trigger: str = "cli",
    on_document: Progress | None = None,
) -> RunSummary:
    """Ingest files, directories and URLs in one run: a transaction per batch, an error row per failed document."""
    with open_run(settings, engine, trigger=trigger, on_document=on_document) as run:
        ingest_values(run, expand_inputs(list(inputs)))
    return run.summary


def ingest_values(run: Run, values: Iterable[str]) -> None:
    """Ingest paths and URLs into a run that is already open, a batch at a time."""
    for batch in batches((Input(value) for value in values), run.settings.batch_size):
        ingest_batch(run, batch)


def extract_documents(
    settings: Settings, inputs: Iterable[str], *, anchor: date | None = None
) -> Iterator[Document | Failure]:
    """Documents (or failures) for ``newsflow extract``, in input order, without a database."""
    with join_run(settings, None, RunSummary(run_id=0)) as run:
        for batch in batches((Input(value) for value in expand_inputs(list(inputs))), settings.batch_size):
            yield from extract_batch(run, batch, anchor=anchor)
