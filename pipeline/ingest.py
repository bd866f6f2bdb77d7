"""Ingest: run the stages over batches of inputs and load each batch in one transaction.

A bad document is recorded in ``ingest_errors`` with its stage and reason and
costs nothing else: the batch goes on, and the good documents are kept.
An unchanged document (same content hash) is skipped before any parsing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from itertools import islice
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import Engine

import pipeline
from pipeline import store
from pipeline.extract import ExtractError
from pipeline.facts.gazetteer import load_known_people
from pipeline.fetch import Fetcher, FetchError, FetchPolicy
from pipeline.fetch.pages import fetch_page
from pipeline.loading import LoadFailure, LoadItem, LoadOptions, LoadResult, load_documents
from pipeline.models import Document, RawDocument
from pipeline.nlp import load_model
from pipeline.process import FactsError, Laid, extract_and_lay_out, process_batch
from pipeline.settings import Settings
from pipeline.sources import SourceError, expand_inputs, is_url, read_file

Progress = Callable[[str], None]
Key = TypeVar("Key")  # what a caller names its documents by: an input path or URL, a raw document id


@dataclass(frozen=True)
class Failure:
    source: str
    stage: str
    error: str


@dataclass
class IngestSummary:
    """What a run did, for the CLI's table and the Airflow task's asset event."""

    run_id: int
    seen: int = 0
    loaded: int = 0
    replaced: int = 0
    unchanged: int = 0
    sections: int = 0
    entities: int = 0
    quotes: int = 0
    staged: int = 0
    failures: list[Failure] = field(default_factory=list)
    articles: dict[str, int] = field(default_factory=dict)  # input (path or URL) → article id
    raw_documents: dict[str, int] = field(default_factory=dict)  # input → staged raw document id

    @property
    def failed(self) -> int:
        return len(self.failures)

    def counts(self) -> dict[str, int]:
        return {
            "seen": self.seen,
            "loaded": self.loaded + self.replaced,
            "unchanged": self.unchanged,
            "failed": self.failed,
        }

    def merge(self, other: IngestSummary) -> None:
        """Add another summary of the same run (a parallel worker's) to this one."""
        for name in ("seen", "loaded", "replaced", "unchanged", "sections", "entities", "quotes", "staged"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.extend(other.failures)
        self.articles.update(other.articles)
        self.raw_documents.update(other.raw_documents)

    def extra(self) -> dict[str, int]:
        """The counts an Airflow asset event carries."""
        return {**self.counts(), "staged": self.staged, "sections": self.sections, "quotes": self.quotes}


def extractor_version(settings: Settings) -> str:
    return f"newsflow {pipeline.__version__}; {settings.spacy_model}"


def read_input(value: str, fetcher: Fetcher) -> RawDocument:
    """One input as raw bytes: a file, or an http(s) page fetched and named by its canonical URL."""
    if is_url(value):
        return fetch_page(fetcher, value)
    path = Path(value)
    if not path.exists():
        raise SourceError(f"no such file or directory: {value}")
    return read_file(path, max_bytes=fetcher.policy.max_bytes)


def ingest(
    settings: Settings,
    engine: Engine,
    inputs: Iterable[str],
    *,
    trigger: str = "cli",
    on_document: Progress | None = None,
) -> IngestSummary:
    """Ingest every input; one transaction per batch (per document when one fails), errors recorded per document."""
    with open_run(settings, engine, trigger=trigger, on_document=on_document) as run:
        ingest_into(run, inputs)
    return run.summary


@contextmanager
def open_run(
    settings: Settings,
    engine: Engine,
    *,
    trigger: str,
    on_document: Progress | None = None,
    stage_only: bool = False,
) -> Iterator[Batch]:
    """An ingest run: its row in ``ingest_runs``, one HTTP client, and the counts, closed with the run.

    With ``stage_only`` the run fetches documents into the raw store and leaves them for ``process_pending``."""
    summary = IngestSummary(run_id=store.start_run(engine, trigger=trigger))
    try:
        with join_run(settings, engine, summary, on_document=on_document, stage_only=stage_only) as run:
            yield run
    finally:
        store.finish_run(engine, summary.run_id, summary.counts())


@contextmanager
def join_run(
    settings: Settings,
    engine: Engine,
    summary: IngestSummary,
    *,
    on_document: Progress | None = None,
    stage_only: bool = False,
) -> Iterator[Batch]:
    """Work inside a run another process opened (a parallel worker): its own HTTP client, the shared run id."""
    with Fetcher(FetchPolicy.from_settings(settings)) as fetcher:
        yield Batch(settings, engine, fetcher, summary, on_document or (lambda _source: None), stage_only)


@dataclass(frozen=True)
class Batch:
    """What a run's batches share: where to load, how to fetch, what to count."""

    settings: Settings
    engine: Engine
    fetcher: Fetcher
    summary: IngestSummary
    on_document: Progress
    stage_only: bool = False


def ingest_into(run: Batch, inputs: Iterable[str]) -> None:
    """Ingest inputs into a run that is already open (the CLI's and the feeds' shared loop)."""
    for batch in batches(inputs, run.settings.batch_size):
        if run.stage_only:
            for value in batch:
                _stage(run, value)
        else:
            _ingest_batch(run, batch)


def _stage(run: Batch, value: str) -> None:
    """Fetch or read one input into the raw store, unless exactly this version is already there."""
    run.summary.seen += 1
    try:
        raw = read_input(value, run.fetcher)
    except (SourceError, FetchError) as error:
        _fail(run.engine, run.summary, input_failure(value, error))
        return
    finally:
        run.on_document(value)
    raw_id = store.stage_raw(run.engine, raw, run_id=run.summary.run_id)
    if raw_id is None:
        run.summary.unchanged += 1
    else:
        run.summary.staged += 1
        run.summary.raw_documents[value] = raw_id


def _ingest_batch(run: Batch, batch: list[str]) -> None:
    pending: list[tuple[str, RawDocument, Laid]] = []
    for value in batch:
        run.summary.seen += 1
        prepared = _prepare(run, value)
        if prepared is None:
            run.on_document(value)
        else:
            pending.append((value, *prepared))
    if not pending:
        return
    loadable = analyse_pending(run, pending, lambda _value, failure: _fail(run.engine, run.summary, failure))
    load_batch(run, loadable)
    for _, raw, _ in pending:
        run.on_document(raw.source)


def analyse_pending(
    run: Batch, pending: list[tuple[Key, RawDocument, Laid]], on_failure: Callable[[Key, Failure], None]
) -> list[tuple[Key, RawDocument, Document]]:
    """Facts for a batch of laid-out documents (the raw pages compressed alongside), keyed as given; a
    document whose facts fail goes to ``on_failure`` instead."""
    loadable: list[tuple[Key, RawDocument, Document]] = []
    with compressing([raw for _, raw, _ in pending]):
        documents = analyse_batch(run.settings, [laid for _, _, laid in pending])
        for (key, raw, _), document in zip(pending, documents, strict=True):
            if isinstance(document, FactsError):
                on_failure(key, Failure(raw.source, "facts", str(document)))
            else:
                loadable.append((key, raw, document))
    return loadable


@contextmanager
def compressing(raws: list[RawDocument]) -> Iterator[None]:
    """Compress the raw pages for the raw store on a thread while the model runs: zlib releases the GIL, so
    on a second core this work costs no wall time."""
    thread = threading.Thread(target=lambda: [raw.body_gzip for raw in raws], name="compress-raw", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def analyse_batch(
    settings: Settings, items: list[Laid], *, anchor: date | None = None
) -> Iterator[Document | FactsError]:
    """Facts for laid-out documents: one ``nlp.pipe`` pass with the configured model and known people."""
    nlp = load_model(settings.spacy_model)
    return process_batch(nlp, items, anchor=anchor, known_people=load_known_people(settings.people_path))


def _prepare(run: Batch, value: str) -> tuple[RawDocument, Laid] | None:
    """Read (or fetch) and extract one input; None when it failed or is unchanged."""
    engine, summary = run.engine, run.summary
    try:
        raw = read_input(value, run.fetcher)
    except (SourceError, FetchError) as error:
        _fail(engine, summary, input_failure(value, error))
        return None
    unchanged = store.find_unchanged(engine, raw)
    if unchanged is not None:
        summary.unchanged += 1
        summary.articles[value] = unchanged
        return None
    try:
        return raw, extract_and_lay_out(raw)
    except ExtractError as error:
        _fail(engine, summary, input_failure(raw.source, error))
        return None


def load_batch(
    run: Batch, documents: list[tuple[str, RawDocument, Document]], *, force: bool = False
) -> list[LoadResult | LoadFailure]:
    """Load processed documents in one transaction; a document the database refuses is recorded, the rest kept.
    Returns each document's result, in order."""
    options = LoadOptions(run.summary.run_id, extractor_version(run.settings), force=force)
    results = load_documents(run.engine, [LoadItem(raw, document) for _, raw, document in documents], options)
    for (value, raw, document), result in zip(documents, results, strict=True):
        _count(run, value, raw, document, result)
    return results


def _count(run: Batch, value: str, raw: RawDocument, document: Document, result: LoadResult | LoadFailure) -> None:
    summary = run.summary
    if isinstance(result, LoadFailure):
        _fail(run.engine, summary, Failure(raw.source, "load", result.error))
        return
    summary.articles[value] = result.article_id
    if result.status == "unchanged":
        summary.unchanged += 1
        return
    if result.status == "replaced":
        summary.replaced += 1
    else:
        summary.loaded += 1
    summary.sections += len(document.sections)
    summary.entities += len(document.facts.entities)
    summary.quotes += len(document.facts.quotes)


def input_failure(source: str, error: SourceError | FetchError | ExtractError) -> Failure:
    """The failure of reading, fetching or extracting one input, named by its stage."""
    stage = "read" if isinstance(error, SourceError) else "fetch" if isinstance(error, FetchError) else "extract"
    return Failure(source, stage, str(error))


def _fail(engine: Engine, summary: IngestSummary, failure: Failure) -> None:
    summary.failures.append(failure)
    store.record_error(engine, run_id=summary.run_id, source=failure.source, stage=failure.stage, error=failure.error)


def extract_documents(
    settings: Settings, inputs: Iterable[str], *, anchor: date | None = None
) -> Iterator[Document | Failure]:
    """Documents (or failures) for ``newsflow extract``, in input order, without a database."""
    with Fetcher(FetchPolicy.from_settings(settings)) as fetcher:
        yield from _extract_documents(settings, fetcher, inputs, anchor=anchor)


def _extract_documents(
    settings: Settings, fetcher: Fetcher, inputs: Iterable[str], *, anchor: date | None
) -> Iterator[Document | Failure]:
    for batch in batches(expand_inputs(list(inputs)), settings.batch_size):
        prepared: list[Laid | Failure] = [_extract_one(value, fetcher) for value in batch]
        laid = [item for item in prepared if isinstance(item, Laid)]
        processed = iter(analyse_batch(settings, laid, anchor=anchor) if laid else ())
        for item in prepared:
            if isinstance(item, Failure):
                yield item
                continue
            document = next(processed)
            yield Failure(item.source, "facts", str(document)) if isinstance(document, FactsError) else document


def _extract_one(value: str, fetcher: Fetcher) -> Laid | Failure:
    try:
        return extract_and_lay_out(read_input(value, fetcher), source=value)
    except (SourceError, FetchError, ExtractError) as error:
        return input_failure(value, error)


def batches(values: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(values)
    while batch := list(islice(iterator, size)):
        yield batch
