"""A run: its row in ``ingest_runs``, its counts by outcome, the seconds per stage, and the one failure recorder.

Every input of a run ends with exactly one outcome (loaded, replaced, unchanged, staged or failed), so
``seen`` is their sum. A failed input is one ``ingest_errors`` row with its stage and reason; a staged
document the run had claimed is closed with the same reason, so it is never tried again. When something
systemic stops the run, the row says so (status ``stopped``, ``stop_reason``) and the error goes on up.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import TypeVar

from sqlalchemy.engine import Engine

from pipeline.db import raw_store, runs
from pipeline.db.engine import is_systemic, is_transient
from pipeline.db.raw_store import StoredVersion
from pipeline.db.reconnect import Backoff, engine_probe, wait_for_database
from pipeline.errors import (
    DatabaseConnectionLostError,
    DatabaseUnavailableError,
    SystemicError,
    describe,
    disk_full,
)
from pipeline.facts.batch import Analyser
from pipeline.models import Document, Failure, RawDocument
from pipeline.settings import Settings
from pipeline.sources import Fetcher
from pipeline.sources.naming import source_names

Progress = Callable[[str], None]
LOST = "the database connection was lost"
T = TypeVar("T")


@dataclass(frozen=True)
class Input:
    """One document to process: the path or URL as given, or a version from the raw store (``stored``), which
    the run has claimed when it is a staged document waiting for processing (``claimed``), or bytes already
    in hand (``raw``: a feed entry's page fetched within the poll's budget, or its inline content)."""

    name: str
    stored: StoredVersion | None = None
    claimed: bool = False
    raw: RawDocument | None = None

    @property
    def claimed_raw_id(self) -> int | None:
        return self.stored.id if self.stored is not None and self.claimed else None


@dataclass
class RunSummary:
    """What a run did: for the command line's table, the Airflow task's asset event, and the run's row."""

    run_id: int
    outcomes: Counter[str] = field(default_factory=Counter)
    sections: int = 0
    entities: int = 0
    quotes: int = 0
    failures: list[Failure] = field(default_factory=list)
    articles: dict[str, int] = field(default_factory=dict)  # input (path or URL) → article id
    raw_documents: dict[str, int] = field(default_factory=dict)  # input → staged raw document id
    stage_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    stop_reason: str | None = None
    feed_entries_skipped: int = 0  # feed entries with neither an http(s) link nor content
    feed_entries_deferred: int = 0  # new feed entries left for the next poll (entry cap or time budget)
    inbox_left: int = 0  # inbox files and URL lines left for the next drain (its time budget spent)
    feeds_skipped: dict[str, str] = field(default_factory=dict)  # feed URL → why it was not polled (disabled, backoff)

    @property
    def seen(self) -> int:
        return sum(self.outcomes.values())

    @property
    def loaded(self) -> int:
        return self.outcomes["loaded"]

    @property
    def replaced(self) -> int:
        return self.outcomes["replaced"]

    @property
    def unchanged(self) -> int:
        return self.outcomes["unchanged"]

    @property
    def staged(self) -> int:
        return self.outcomes["staged"]

    @property
    def failed(self) -> int:
        return self.outcomes["failed"]

    def counts(self) -> dict[str, int]:
        return {"seen": self.seen, "loaded": self.loaded + self.replaced, "unchanged": self.unchanged,
                "failed": self.failed}  # fmt: skip

    def table_row(self) -> dict[str, int]:
        """The command line's summary: documents, then each outcome and what the loaded ones held."""
        outcomes = {"new": self.loaded, "replaced": self.replaced, "unchanged": self.unchanged, "failed": self.failed}
        return {"documents": self.seen, **outcomes, "sections": self.sections, "entities": self.entities,
                "quotes": self.quotes, **(self.feed_counts() if any(self.feed_counts().values()) else {})}  # fmt: skip

    def feed_counts(self) -> dict[str, int]:
        """Feed entries skipped (no usable link or content) and deferred to the next poll; feeds not polled
        (disabled, or backing off)."""
        return {"skipped": self.feed_entries_skipped, "deferred": self.feed_entries_deferred,
                "feeds_skipped": len(self.feeds_skipped)}  # fmt: skip

    def extra(self) -> dict[str, int]:
        """The counts an Airflow asset event carries."""
        return {**self.counts(), "staged": self.staged, "sections": self.sections, "quotes": self.quotes,
                **self.feed_counts()}  # fmt: skip

    def merge(self, other: RunSummary) -> None:
        """Add another summary of the same run (a parallel worker's) to this one."""
        self.outcomes.update(other.outcomes)
        self.sections, self.entities = self.sections + other.sections, self.entities + other.entities
        self.quotes += other.quotes
        self.feed_entries_skipped += other.feed_entries_skipped
        self.feed_entries_deferred += other.feed_entries_deferred
        self.inbox_left += other.inbox_left
        self.feeds_skipped.update(other.feeds_skipped)
        self.failures.extend(other.failures)
        self.articles.update(other.articles)
        self.raw_documents.update(other.raw_documents)
        for stage, seconds in other.stage_seconds.items():
            self.stage_seconds[stage] += seconds

    def record(self) -> runs.RunRecord:
        return runs.RunRecord(
            self.seen, self.loaded + self.replaced, self.unchanged, self.failed, dict(self.outcomes),
            dict(self.stage_seconds), self.stop_reason,
        )  # fmt: skip


class Run:
    """What a run's batches share: settings, the database (None for ``newsflow extract``), one HTTP client,
    the summary, and the progress callback that hears of every input once its outcome is known."""

    def __init__(self, settings: Settings, engine: Engine | None, summary: RunSummary, on_document: Progress) -> None:
        self.settings, self.engine, self.summary = settings, engine, summary
        self.on_document = on_document
        self.fetcher = Fetcher.from_settings(settings)
        self.backoff = Backoff(settings.db_reconnect_seconds)  # how long to wait for a lost database
        self.settled: Counter[str] = Counter()  # inputs with an outcome since the batch step last cleared it

    @property
    def id(self) -> int:
        return self.summary.run_id

    def analyser(self) -> Analyser:
        """The model and known people (loaded once per process); ``ModelNotFoundError`` is systemic."""
        return Analyser.load(self.settings.spacy_model, self.settings.people_path)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.summary.stage_seconds[stage] += time.perf_counter() - started

    def fail(self, item: Input, failure: Failure) -> Failure:
        """The one failure recorder: an ``ingest_errors`` row, a claimed staged document closed, and counted (only
        once the rows are written: when the database is lost on the way, the input has no outcome yet)."""
        if self.engine is not None:
            with database_errors():
                self._record_failure(self.engine, item, failure)
        self.summary.failures.append(failure)
        self._outcome(item.name, "failed")
        return failure

    def _record_failure(self, engine: Engine, item: Input, failure: Failure) -> None:
        runs.record_error(engine, run_id=self.id, source=failure.source, stage=failure.stage, error=failure.error)
        if item.claimed_raw_id is not None:
            raw_store.close(engine, item.claimed_raw_id, article_id=None, error=f"{failure.stage}: {failure.error}")

    def wait_for_database(self, lost: BaseException) -> None:
        """After the connection was lost: return once the database answers again, or raise
        ``DatabaseConnectionLostError`` when it has not within ``NEWSFLOW_DB_RECONNECT_SECONDS``."""
        if self.engine is None or not wait_for_database(engine_probe(self.engine), self.backoff):
            raise DatabaseConnectionLostError(f"the database connection was lost: {describe(lost)}") from lost

    def retrying(self, work: Callable[[], T]) -> T:
        """``work()`` (idempotent), done again once the database answers after the connection was lost (within
        ``NEWSFLOW_DB_RECONNECT_SECONDS``); database errors as the ``SystemicError`` they amount to."""
        assert self.engine is not None
        engine = self.engine
        with database_errors():
            return reconnecting(engine, self.backoff, work)

    def succeed(self, item: Input, outcome: str, document: Document | None = None) -> None:
        """An input that made it: loaded, replaced, unchanged or staged (with the document's counts when loaded)."""
        if document is not None and outcome in {"loaded", "replaced"}:
            self.summary.sections += len(document.sections)
            self.summary.entities += len(document.facts.entities)
            self.summary.quotes += len(document.facts.quotes)
        self._outcome(item.name, outcome)

    def _outcome(self, name: str, outcome: str) -> None:
        self.summary.outcomes[outcome] += 1
        self.settled[name] += 1
        self.on_document(name)

    def close(self) -> None:
        self.fetcher.close()


@contextmanager
def open_run(settings: Settings, engine: Engine, *, trigger: str, on_document: Progress | None = None) -> Iterator[Run]:
    """A new run: its row (closing runs on this host whose process died as abandoned), finished on the way out,
    as ``stopped`` with the reason when a systemic error ends it."""
    backoff = Backoff(settings.db_reconnect_seconds)
    summary = RunSummary(run_id=reconnecting(engine, backoff, lambda: runs.start_run(engine, trigger=trigger)))
    interrupted = False
    try:
        with join_run(settings, engine, summary, on_document=on_document) as run:
            yield run
    except Exception as error:
        systemic = systemic_error(error)
        summary.stop_reason = str(systemic) if systemic else f"internal error: {describe(error)}"
        if systemic is not None and systemic is not error:
            raise systemic from error
        raise
    except BaseException as error:  # an interrupt, or Airflow ending the task: no waiting for the database
        summary.stop_reason, interrupted = f"interrupted ({type(error).__name__})", True
        if not _finish_at_once(engine, summary):
            error.add_note(RECORD_NOT_WRITTEN)
        raise
    finally:
        if not interrupted:
            _finish(engine, summary, backoff)


# The note an interrupt carries when the run's row could not be written on the one quick try.
RECORD_NOT_WRITTEN = (
    "the database did not answer, so the run's record could not be written (the next run on this host marks "
    "it abandoned); what was stored stays"
)


def _finish(engine: Engine, summary: RunSummary, backoff: Backoff) -> None:
    """Write the run's row (waiting for a restarting database), giving back the staged documents it claimed and
    did not finish when it stopped early. A run stopped because the database went away may not be able to, and
    says so through its error; the next run closes its row as abandoned."""
    if summary.stop_reason is not None:
        with suppress(Exception):  # the error that stopped the run is the one to report
            if summary.stop_reason.startswith(LOST):  # waited for already: one more try
                _release_and_finish(engine, summary)
            else:
                reconnecting(engine, backoff, lambda: _release_and_finish(engine, summary))
        return
    with database_errors():
        reconnecting(engine, backoff, lambda: _record(engine, summary))


def _record(engine: Engine, summary: RunSummary) -> None:
    """The names the run's inputs were given as, then the run's row."""
    staged, loaded = _every_name(summary.raw_documents), _every_name(summary.articles)
    raw_store.remember_requests(engine, raw_documents=staged, articles=loaded)
    runs.finish_run(engine, summary.run_id, summary.record())


def _every_name(ids: dict[str, int]) -> dict[str, int]:
    return {name: ident for given, ident in ids.items() for name in source_names(given)}


def _finish_at_once(engine: Engine, summary: RunSummary) -> bool:
    """One quick try at the row of an interrupted run (connecting gives up at the connect timeout); whether
    it was written."""
    with suppress(Exception):  # the interrupt is the one to report
        _release_and_finish(engine, summary)
        return True
    return False


def _release_and_finish(engine: Engine, summary: RunSummary) -> None:
    raw_store.release(engine, summary.run_id)
    _record(engine, summary)


# How often ``reconnecting`` tries its work in all, however much of the bound is left.
RECONNECT_ATTEMPTS = 8


def reconnecting(engine: Engine, backoff: Backoff, work: Callable[[], T]) -> T:
    """``work()``, done again each time the connection was lost and the database answers again, while the bound
    (``backoff.seconds``, counted from the first loss) lasts, at most ``RECONNECT_ATTEMPTS`` times in all."""
    deadline: float | None = None
    for attempt in range(1, RECONNECT_ATTEMPTS + 1):
        try:
            return work()
        except Exception as error:
            if not is_transient(error):
                raise
            deadline = backoff.clock() + backoff.seconds if deadline is None else deadline
            left = deadline - backoff.clock()
            if attempt == RECONNECT_ATTEMPTS or (attempt > 1 and left <= 0) or not _answers(engine, backoff, left):
                raise DatabaseConnectionLostError(f"the database connection was lost: {describe(error)}") from error
    raise AssertionError("unreachable")  # pragma: no cover


def _answers(engine: Engine, backoff: Backoff, seconds: float) -> bool:
    """Whether the database answers within ``seconds`` (tried at once when none are left)."""
    return wait_for_database(engine_probe(engine), replace(backoff, seconds=max(0.0, seconds)))


@contextmanager
def database_errors() -> Iterator[None]:
    """Database errors met outside the document boundary, as the ``SystemicError`` they amount to."""
    try:
        yield
    except Exception as error:
        systemic = systemic_error(error)
        if systemic is None or systemic is error:
            raise
        raise systemic from error


def systemic_error(error: BaseException) -> SystemicError | None:
    """The ``SystemicError`` that ``error`` amounts to: the database lost or refusing everyone, a full disk."""
    if isinstance(error, SystemicError):
        return error
    full = disk_full(error)
    if full is not None:
        return full
    if is_transient(error):
        return DatabaseConnectionLostError(f"the database connection was lost: {describe(error)}")
    if is_systemic(error):
        return DatabaseUnavailableError(f"the database refuses every document: {describe(error)}")
    return None


@contextmanager
def join_run(
    settings: Settings, engine: Engine | None, summary: RunSummary, *, on_document: Progress | None = None
) -> Iterator[Run]:
    """Work inside a run that is already open (a parallel worker's share), or without a database."""
    run = Run(settings, engine, summary, on_document or (lambda _name: None))
    try:
        yield run
    finally:
        run.close()
