"""Feed ingestion: poll each feed conditionally, take only entries no feed delivered before, ingest them.

A feed that cannot be fetched, or is malformed, becomes an ``ingest_errors`` row (stage ``feed``) with the
reason; a malformed feed's recovered entries are still taken, and the other feeds go on. A second poll of an
unchanged feed costs one 304, and entries already delivered are never fetched again. One poll takes at most
``NEWSFLOW_FEED_MAX_ENTRIES`` new entries, in feed order with links that failed before last, within
``NEWSFLOW_FEED_POLL_SECONDS`` from the poll's start (checked before each entry is fetched, on the settings'
clock); the rest wait for the next poll, neither failed nor delivered, and so do entries tried but not
delivered until they have failed in three runs (the next poll is sent unconditionally, so a 304 cannot hide
them). The feed is parsed in a child process within the lesser of ``NEWSFLOW_DOCUMENT_SECONDS`` and what is
left of the poll's budget, under ``NEWSFLOW_FEED_PARSE_MEMORY_MB``. Entries carried inline are taken from
their content; entries with neither a usable link nor content are counted as skipped, and listed in the feed's
``last_error``. ``stage_feeds`` puts the entries into the raw store for ``news_process`` instead of
loading them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial

from sqlalchemy.engine import Engine

from pipeline.db import feeds as feed_store
from pipeline.errors import FeedError, FetchError
from pipeline.ingest import feed_health
from pipeline.ingest.boundary import guarded
from pipeline.ingest.run import Input, Progress, Run, RunSummary, open_run
from pipeline.ingest.staged import stage_inputs
from pipeline.ingest.step import batches, ingest_batch, read
from pipeline.models import Failure, FeedEntry, FeedPoll
from pipeline.settings import Settings
from pipeline.sources.feed_parsing import MIB, ParseLimits
from pipeline.sources.feeds import poll_feed


def ingest_feeds(
    settings: Settings,
    engine: Engine,
    feed_urls: Iterable[str],
    *,
    trigger: str = "cli",
    on_document: Progress | None = None,
) -> RunSummary:
    """Poll every feed (a disabled one excepted: it is skipped with the reason) and ingest its new entries, in
    one run. Feeds named here are polled even while backing off: a person asked for them."""
    with open_run(settings, engine, trigger=trigger, on_document=on_document) as run:
        for url in feed_urls:
            _ingest_feed(run, url, stage_only=False, due_only=False)
    return run.summary


def stage_feeds(
    settings: Settings, engine: Engine, feed_urls: Iterable[str], *, trigger: str = "cli", due_only: bool = True
) -> RunSummary:
    """Poll every feed that is due (not disabled; with ``due_only``, not backing off) and put its new entries
    into the raw store for ``news_process``, in one run. The feeds skipped are in ``feeds_skipped``."""
    with open_run(settings, engine, trigger=trigger) as run:
        for url in feed_urls:
            _ingest_feed(run, url, stage_only=True, due_only=due_only)
    return run.summary


def _ingest_feed(run: Run, url: str, *, stage_only: bool, due_only: bool) -> None:
    engine = run.engine
    assert engine is not None
    deadline = run.settings.clock() + run.settings.feed_poll_seconds
    feed = run.retrying(lambda: feed_store.claim_feed(engine, url))
    skipped = feed_health.skip_reason(feed, run.settings.wall_clock(), due_only=due_only)
    if skipped is not None:
        run.summary.feeds_skipped[url] = skipped
        return
    failed_at: list[str] = []
    poll = guarded(run, Input(url), "feed", lambda: _poll(run, url, feed, deadline, failed_at))
    if isinstance(poll, Failure):
        health = feed_health.after_poll(feed, run.settings, (poll.error, failed_at[0] if failed_at else "feed"))
        run.retrying(lambda: feed_store.finish_poll(engine, feed, None, health))
        return
    problem = poll.problem or (feed_health.still_malformed(feed) if poll.not_modified else None)
    if problem:
        run.fail(Input(url), Failure(url, "feed", problem))
    waiting = _take_entries(run, feed, poll, deadline, stage_only=stage_only)
    health = feed_health.after_poll(feed, run.settings, (problem, "parse") if problem else None)
    run.retrying(lambda: feed_store.finish_poll(engine, feed, poll, health, deferred=waiting))


def _take_entries(run: Run, feed: feed_store.FeedState, poll: FeedPoll, deadline: float, *, stage_only: bool) -> int:
    """Take the poll's new entries (up to the cap, within the poll's time); how many are still wanted."""
    engine = run.engine
    assert engine is not None
    run.summary.feed_entries_skipped += len(poll.skipped)
    entries = (
        []
        if poll.not_modified
        else run.retrying(lambda: feed_store.fresh_first(engine, feed_store.unseen(engine, poll.entries)))
    )
    tried = _take(run, entries[: run.settings.feed_max_entries], deadline, stage_only=stage_only)
    delivered = _record_delivered(run, feed, tried)
    undelivered = [entry for entry in entries if entry.link not in delivered]
    waiting = run.retrying(lambda: feed_store.still_wanted(engine, undelivered))
    run.summary.feed_entries_deferred += waiting
    return waiting


def _take(run: Run, entries: list[FeedEntry], deadline: float, *, stage_only: bool) -> list[FeedEntry]:
    """Ingest (or stage) the entries in order until the poll's time is up; the entries tried, in order."""
    tried: list[FeedEntry] = []
    inputs = _read_in_time(run, entries, deadline, tried)
    if stage_only:
        stage_inputs(run, inputs)
    else:
        for batch in batches(inputs, run.settings.batch_size):
            ingest_batch(run, batch)
    return tried


def _read_in_time(run: Run, entries: list[FeedEntry], deadline: float, tried: list[FeedEntry]) -> Iterator[Input]:
    """Each entry's page fetched (or its inline content), one at a time while the clock is before ``deadline``;
    each entry is appended to ``tried`` as it is started. A failed fetch is recorded and yields nothing."""
    for entry in entries:
        if run.settings.clock() >= deadline:
            return
        tried.append(entry)
        raw = read(run, Input(entry.link, raw=entry.content))
        if not isinstance(raw, Failure):
            yield Input(entry.link, raw=raw)


def _poll(run: Run, url: str, feed: feed_store.FeedState, deadline: float, failed_at: list[str]) -> FeedPoll:
    """One poll of the feed; when it fails, ``failed_at`` gets where: ``fetch`` or ``parse``."""
    limits = _parse_limits(run.settings, deadline)
    try:
        return poll_feed(run.fetcher, url, etag=feed.etag, last_modified=feed.last_modified, limits=limits)
    except FetchError as error:
        failed_at.append("fetch")
        raise FetchError(str(error), stage="feed") from error
    except FeedError:
        failed_at.append("parse")
        raise


def _parse_limits(settings: Settings, deadline: float) -> ParseLimits:
    """The feed's parse may take the document budget, or what is left of the poll's if that is less (a
    second at least, so a feed fetched at the last moment is still read)."""
    left = max(1.0, deadline - settings.clock())
    seconds = min(left, settings.document_seconds) if settings.document_seconds > 0 else left
    memory_bytes = settings.feed_parse_memory_mb * MIB
    return ParseLimits(seconds=seconds, memory_bytes=memory_bytes, entry_bytes=settings.fetch_max_bytes)


def _record_delivered(run: Run, feed: feed_store.FeedState, entries: list[FeedEntry]) -> set[str]:
    """Remember the entries that made it, with their article or staged page; their links. Each entry's row is
    written inside the document boundary: what the database refuses about one is that entry's error."""
    made_it = [e for e in entries if e.link in run.summary.articles or e.link in run.summary.raw_documents]
    return {entry.link for entry in made_it if _record_entry(run, feed, entry)}


def _record_entry(run: Run, feed: feed_store.FeedState, entry: FeedEntry) -> bool:
    """Whether the entry's row was written (inside the boundary: a refusal is the entry's error row)."""
    engine = run.engine
    assert engine is not None
    article_id, raw_id = run.summary.articles.get(entry.link), run.summary.raw_documents.get(entry.link)
    record = partial(feed_store.record_entry, engine, feed, entry, article_id=article_id, raw_document_id=raw_id)
    recorded = guarded(run, Input(entry.link), "feed", lambda: run.retrying(record))
    return not isinstance(recorded, Failure)
