"""Feed ingestion: poll each feed conditionally, fetch only entries no feed delivered before, load them.

A feed that cannot be fetched, or is malformed, becomes an ``ingest_errors`` row
(stage ``feed``) with the reason; a malformed feed's recovered entries are still
loaded, and the other feeds go on. A second poll of an unchanged feed costs one
304, and entries already loaded are never fetched again. One poll takes at most
``NEWSFLOW_FEED_MAX_ENTRIES`` new entries, in feed order with links that failed before
last; the rest wait for the next.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.engine import Engine

from pipeline import feedstore, store
from pipeline.fetch import FetchError
from pipeline.fetch.feeds import FeedEntry, poll_feed
from pipeline.ingest import Batch, Failure, IngestSummary, Progress, ingest_into, open_run
from pipeline.settings import Settings


def ingest_feeds(
    settings: Settings,
    engine: Engine,
    feed_urls: Iterable[str],
    *,
    trigger: str = "cli",
    on_document: Progress | None = None,
    stage_only: bool = False,
) -> IngestSummary:
    """Poll every feed and ingest its new entries, in one run (only into the raw store with ``stage_only``)."""
    with open_run(settings, engine, trigger=trigger, on_document=on_document, stage_only=stage_only) as run:
        for url in feed_urls:
            _ingest_feed(run, url)
    return run.summary


def _ingest_feed(run: Batch, url: str) -> None:
    feed = feedstore.claim_feed(run.engine, url)
    try:
        poll = poll_feed(run.fetcher, url, etag=feed.etag, last_modified=feed.last_modified)
    except FetchError as error:
        _feed_failure(run, url, str(error))
        feedstore.finish_poll(run.engine, feed, None, error=str(error))
        return
    if poll.problem:
        _feed_failure(run, url, poll.problem)
    entries = [] if poll.not_modified else feedstore.fresh_first(run.engine, feedstore.unseen(run.engine, poll.entries))
    taken = entries[: run.settings.feed_max_entries]
    ingest_into(run, [entry.link for entry in taken])
    _record_loaded(run, feed, taken)
    feedstore.finish_poll(run.engine, feed, poll, deferred=len(entries) - len(taken))


def _record_loaded(run: Batch, feed: feedstore.FeedState, entries: list[FeedEntry]) -> None:
    for entry in entries:
        article_id = run.summary.articles.get(entry.link)
        raw_id = run.summary.raw_documents.get(entry.link)
        if article_id is not None or raw_id is not None:
            feedstore.record_entry(run.engine, feed, entry, article_id=article_id, raw_document_id=raw_id)


def _feed_failure(run: Batch, url: str, reason: str) -> None:
    run.summary.failures.append(Failure(url, "feed", reason))
    store.record_error(run.engine, run_id=run.summary.run_id, source=url, stage="feed", error=reason)
