"""The one batch step every entry point uses: read → extract → lay out → analyse → load.

Each document passes the stages behind the document boundary (``boundary.guarded``): whatever one document
trips becomes its error row and the batch goes on. The model runs once per batch (``nlp.pipe``); when that
pass fails or overruns its budget, the batch is analysed again one document at a time, so only the culprit
fails. The load is one transaction per batch, and the loader isolates a document the database refuses.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from itertools import islice
from typing import TYPE_CHECKING, Literal, TypeVar

import pipeline
from pipeline.db import loader, raw_store
from pipeline.db.loader import LoadFailure, LoadItem, LoadOptions, LoadResult
from pipeline.errors import DatabaseConnectionLostError, describe
from pipeline.extract import extract
from pipeline.facts.batch import Analyser
from pipeline.ingest.boundary import failure_of, guarded, raise_if_systemic, time_budget
from pipeline.ingest.run import Input, Run
from pipeline.models import Document, Failure, Laid, RawDocument
from pipeline.sections import lay_out
from pipeline.sources import read_input

if TYPE_CHECKING:
    from spacy.tokens import Doc

EXTRACTOR = "newsflow"
MAX_LOST_CONNECTIONS = 5  # a batch the database connection is lost under this often fails (a crashing statement?)
LOST_TOO_OFTEN = f"the database connection was lost {MAX_LOST_CONNECTIONS} times while loading it"
T = TypeVar("T")


@dataclass(frozen=True)
class Prepared:
    """A document read and laid out, waiting for the model."""

    input: Input
    raw: RawDocument
    laid: Laid


def ingest_batch(run: Run, inputs: list[Input], *, force: bool = False) -> None:
    """Read, extract, analyse and load a batch, each document behind the boundary. With ``force`` the facts are
    replaced even when the content is unchanged (reprocessing after an extractor upgrade).

    When the database connection is lost, the run waits for the database (``Run.wait_for_database``) and the
    inputs without an outcome yet go again; after ``MAX_LOST_CONNECTIONS`` losses they fail with that reason."""
    pending = list(inputs)
    for _ in range(MAX_LOST_CONNECTIONS):
        run.settled.clear()
        try:
            _ingest_once(run, pending, force=force)
            return
        except DatabaseConnectionLostError as error:
            pending = unsettled(pending, run.settled)
            if not pending:
                return
            run.wait_for_database(error)
    for item in pending:
        run.fail(item, Failure(item.name, "load", LOST_TOO_OFTEN))


def unsettled(inputs: list[Input], settled: Counter[str]) -> list[Input]:
    """The inputs that have no outcome yet (an input given twice is settled once for each outcome)."""
    left = Counter(settled)
    pending = []
    for item in inputs:
        if left[item.name] > 0:
            left[item.name] -= 1
        else:
            pending.append(item)
    return pending


def _ingest_once(run: Run, inputs: list[Input], *, force: bool) -> None:
    attempts = [_prepare(run, value, skip_unchanged=not force) for value in inputs]
    prepared = [item for item in attempts if isinstance(item, Prepared)]
    with compressing([item.raw for item in prepared]):
        analysed = analyse(run, prepared)
    loadable = [(item, doc) for item, doc in zip(prepared, analysed, strict=True) if isinstance(doc, Document)]
    if loadable:
        _load(run, loadable, force=force)


def extract_batch(run: Run, inputs: list[Input], *, anchor: date | None = None) -> list[Document | Failure]:
    """Documents (or failures) in input order, without a database: ``newsflow extract`` and the evaluation."""
    prepared = [_prepare(run, value, skip_unchanged=False) for value in inputs]
    analysed = iter(analyse(run, [item for item in prepared if isinstance(item, Prepared)], anchor=anchor))
    return [next(analysed) if isinstance(item, Prepared) else item for item in prepared if item is not None]


def _prepare(run: Run, value: Input, *, skip_unchanged: bool) -> Prepared | Failure | None:
    """Read (or fetch) and lay out one input: its failure, or None when it is stored unchanged already."""
    raw = read(run, value)
    if isinstance(raw, Failure):
        return raw
    if skip_unchanged and value.stored is None and run.engine is not None:
        unchanged = _unchanged(run, value, raw)
        if unchanged is not None:
            return None if unchanged is True else unchanged
    laid = guarded(run, value, "extract", lambda: extract_and_lay_out(raw, value.name))
    return laid if isinstance(laid, Failure) else Prepared(value, raw, laid)


def read(run: Run, value: Input) -> RawDocument | Failure:
    """One input's bytes (a file read, a page fetched, a version read back from the raw store, the bytes it
    carries), or its failure."""
    stored, carried = value.stored, value.raw
    if carried is not None:
        return carried
    return guarded(run, value, "read", lambda: stored.raw() if stored else read_input(value.name, run.fetcher))


def extract_and_lay_out(raw: RawDocument, name: str) -> Laid:
    """Extract a raw document and lay it out as one text with its sections, named ``name``."""
    return lay_out(name, extract(raw), plain_text=raw.media_type == "text/plain")


def _unchanged(run: Run, value: Input, raw: RawDocument) -> Literal[True] | Failure | None:
    """True (and counted) when exactly this content is stored already; None when it is not."""
    engine = run.engine
    assert engine is not None
    article_id = guarded(run, value, "read", lambda: loader.unchanged_article(engine, raw))
    if article_id is None or isinstance(article_id, Failure):
        return article_id
    run.summary.articles[value.name] = article_id
    run.succeed(value, "unchanged")
    return True


def analyse(run: Run, batch: list[Prepared], *, anchor: date | None = None) -> list[Document | Failure]:
    """Each document's facts or failure, in order: one model pass over the batch, and when that pass fails,
    one document at a time."""
    if not batch:
        return []
    analyser = run.analyser()
    checked = {id(item): _too_long(run, analyser, item) for item in batch}
    fits = [item for item in batch if checked[id(item)] is None]
    analysed = dict(zip(map(id, fits), _analyse_together(run, analyser, fits, anchor), strict=True))
    return [checked[id(item)] or analysed[id(item)] for item in batch]


def _too_long(run: Run, analyser: Analyser, item: Prepared) -> Failure | None:
    checked = guarded(run, item.input, "facts", lambda: analyser.check_length(item.laid))
    return checked if isinstance(checked, Failure) else None


def _analyse_together(
    run: Run, analyser: Analyser, batch: list[Prepared], anchor: date | None
) -> list[Document | Failure]:
    parsed = analyser.parse(item.laid.text for item in batch)
    try:
        docs = [_parse_next(run, parsed) for _ in batch]
    except _ParseFailedError as failed:
        if len(batch) > 1:
            return [_analyse_together(run, analyser, [item], anchor)[0] for item in batch]
        return [run.fail(batch[0].input, failed.failure(batch[0].input.name))]
    return [_apply_rules(run, analyser, item, doc, anchor) for item, doc in zip(batch, docs, strict=True)]


class _ParseFailedError(Exception):
    """The model pass over a batch failed or overran; which document caused it is not known yet."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error

    def failure(self, name: str) -> Failure:
        return failure_of(name, "facts", self.error)


def _parse_next(run: Run, parsed: Iterator[Doc]) -> Doc:
    """The next parsed text, under the time budget (the model works a mini-batch at a time)."""
    try:
        with run.timed("facts"), time_budget(run.settings.document_seconds, "facts"):
            return next(parsed)
    except Exception as error:
        raise_if_systemic(error)
        raise _ParseFailedError(error) from error


def _apply_rules(run: Run, analyser: Analyser, item: Prepared, doc: Doc, anchor: date | None) -> Document | Failure:
    return guarded(run, item.input, "facts", lambda: analyser.document(item.laid, doc, anchor=anchor))


def _load(run: Run, loadable: list[tuple[Prepared, Document]], *, force: bool) -> None:
    """One transaction for the batch (the loader isolates a document the database refuses), then each outcome."""
    assert run.engine is not None
    options = LoadOptions(run.id, extractor_version(run), force=force)
    try:
        with run.timed("load"):
            results = loader.load_documents(run.engine, [LoadItem(p.raw, d) for p, d in loadable], options)
    except Exception as error:  # noqa: BLE001 - the loader isolates documents itself; this is the batch's end
        raise_if_systemic(error)
        results = [LoadFailure(describe(error))] * len(loadable)
    for (item, document), result in zip(loadable, results, strict=True):
        _loaded(run, item.input, document, result)


def _loaded(run: Run, value: Input, document: Document, result: LoadResult | LoadFailure) -> None:
    if isinstance(result, LoadFailure):
        run.fail(value, Failure(value.name, "load", result.error))
        return
    run.summary.articles[value.name] = result.article_id
    if value.claimed_raw_id is not None and run.engine is not None:
        engine, raw_id = run.engine, value.claimed_raw_id
        run.retrying(lambda: raw_store.close(engine, raw_id, article_id=result.article_id))
    run.succeed(value, result.status, document)


def extractor_version(run: Run) -> str:
    return f"{EXTRACTOR} {pipeline.__version__}; {run.settings.spacy_model}"


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


def batches(values: Iterable[T], size: int) -> Iterator[list[T]]:
    """The values in lists of ``size`` (the last one shorter), without reading ahead of the batch at hand."""
    iterator = iter(values)
    while batch := list(islice(iterator, size)):
        yield batch
