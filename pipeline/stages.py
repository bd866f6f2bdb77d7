"""The two stages of scheduled ingestion, and re-deriving facts from stored pages.

``news_daily`` fetches into the raw store (``feeding.ingest_feeds(stage_only=True)``);
``process_pending`` then turns staged documents into articles, sections and
facts, in batches through one ``nlp.pipe`` pass each. ``reprocess`` re-derives
the facts of stored articles from their raw bytes after an extractor upgrade,
without fetching anything.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from pipeline import store
from pipeline.extract import ExtractError
from pipeline.ingest import (
    Batch,
    Failure,
    IngestSummary,
    analyse_pending,
    input_failure,
    load_batch,
    open_run,
)
from pipeline.loading import LoadFailure
from pipeline.models import RawDocument
from pipeline.process import Laid, extract_and_lay_out
from pipeline.settings import Settings

DEFAULT_LIMIT = 1000


def process_pending(
    settings: Settings, engine: Engine, *, limit: int = DEFAULT_LIMIT, trigger: str = "process"
) -> IngestSummary:
    """Process up to ``limit`` staged documents, oldest first; each failure is recorded and closes its document."""
    with open_run(settings, engine, trigger=trigger) as run:
        while run.summary.seen < limit:
            pending = store.pending_raw(engine, limit=min(settings.batch_size, limit - run.summary.seen))
            if not pending:
                break
            _process(run, pending, force=False)
    return run.summary


def reprocess(
    settings: Settings, engine: Engine, *, sources: list[str] | None = None, trigger: str = "reprocess"
) -> IngestSummary:
    """Re-derive the facts of stored articles (all, or those sources) from their raw bytes."""
    stored = store.stored_raw(engine, sources=sources)
    with open_run(settings, engine, trigger=trigger) as run:
        size = settings.batch_size
        for start in range(0, len(stored), size):
            _process(run, stored[start : start + size], force=True)
    return run.summary


def _process(run: Batch, documents: list[tuple[int, RawDocument]], *, force: bool) -> None:
    laid: list[tuple[int, RawDocument, Laid]] = []
    for raw_id, raw in documents:
        run.summary.seen += 1
        try:
            laid.append((raw_id, raw, extract_and_lay_out(raw)))
        except ExtractError as error:
            _close_failed(run, raw_id, input_failure(raw.source, error))
    if not laid:
        return
    loadable = analyse_pending(run, laid, lambda raw_id, failure: _close_failed(run, raw_id, failure))
    loaded = load_batch(run, [(raw.source, raw, document) for _, raw, document in loadable], force=force)
    for (raw_id, _, _), result in zip(loadable, loaded, strict=True):
        if isinstance(result, LoadFailure):
            store.mark_processed(run.engine, raw_id, article_id=None, error=f"load: {result.error}")
        else:
            store.mark_processed(run.engine, raw_id, article_id=result.article_id)


def _close_failed(run: Batch, raw_id: int, failure: Failure) -> None:
    run.summary.failures.append(failure)
    store.record_error(
        run.engine, run_id=run.summary.run_id, source=failure.source, stage=failure.stage, error=failure.error
    )
    store.mark_processed(run.engine, raw_id, article_id=None, error=f"{failure.stage}: {failure.error}")
