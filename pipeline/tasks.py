"""The Airflow task bodies, as plain functions that return the counts an asset event carries.

The DAG files in ``dags/`` are thin shells: they find the database URL (the
``newsflow_db`` connection, else ``NEWSFLOW_DATABASE_URL``, else the embedded
server), call one of these, and publish what it returns. A document-level
failure is recorded and counted here; a systemic one raises ``SystemicError``
so that Airflow fails the task and retries it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from pipeline.db import open_database
from pipeline.errors import SystemicError
from pipeline.ingest import RunSummary
from pipeline.ingest.feeds import stage_feeds
from pipeline.ingest.inbox import drain_inbox as drain
from pipeline.ingest.inbox import has_leftovers, waiting_files
from pipeline.ingest.queue import drain_queue as drain_messages
from pipeline.ingest.staged import plan_shards, process_pending, reprocess
from pipeline.models import without_credentials
from pipeline.settings import Settings
from pipeline.sources import queue
from pipeline.sources.feeds import read_feed_list

FEEDS_PER_TASK = 10
MAX_FAILURE_LINES = 1000  # a task log names this many failures, then counts the rest (all are in ingest_errors)
MAX_LABEL_CHARS = 200
SHARD_LIMIT = 1_000_000  # documents one news_process shard takes at most; its time budget ends it sooner
MAX_NAMED_FEEDS = FEEDS_PER_TASK  # a failed batch's message names this many feeds with their reasons
log = logging.getLogger(__name__)


def settings_for(connection_url: Callable[[], str]) -> Settings:
    """The settings from the environment, with the Airflow connection's URL when the lookup finds one.

    ``connection_url`` is the DAG's lookup of the ``newsflow_db`` connection; any error it raises
    (the connection is not set) means: use ``NEWSFLOW_DATABASE_URL``, else the embedded server."""
    settings = Settings.from_env()
    try:
        url = connection_url()
    except Exception:  # noqa: BLE001 - Airflow's "connection not found" type is not ours to import
        log.info("no Airflow connection newsflow_db: using NEWSFLOW_DATABASE_URL or the embedded server")
        return settings
    return replace(settings, database_url=url)


def ready_engine(settings: Settings) -> Engine:
    """An engine on a migrated database, or ``SystemicError`` when it cannot be reached."""
    engine, _ = open_database(settings)
    return engine


def feed_batches(settings: Settings, *, size: int = FEEDS_PER_TASK) -> list[list[str]]:
    """The configured feeds in batches, one mapped task each."""
    feeds = read_feed_list(settings.feeds_path or settings.seeds_dir / "feeds.yaml")
    return [feeds[start : start + size] for start in range(0, len(feeds), size)]


def fetch_feeds(
    settings: Settings, feed_urls: list[str], *, trigger: str = "airflow", retry: bool = False
) -> dict[str, int]:
    """Poll a batch of feeds and fetch their new entries into the raw store. A dead feed or page is its error
    row and the batch succeeds; ``SystemicError`` when the database cannot be reached, or when no feed the batch
    polled could be polled at all (feeds skipped as disabled or backing off are no failures). A ``retry`` of
    the task polls its feeds whatever their backoff, so a batch that failed whole is tried again, not skipped."""
    engine = ready_engine(settings)
    summary = stage_feeds(settings, engine, feed_urls, trigger=trigger, due_only=not retry)
    counts = reported(summary, f"fetched {len(feed_urls)} feed(s)")
    polled = [url for url in feed_urls if url not in summary.feeds_skipped]
    reasons = {f.source: f.error.removeprefix(f"{f.source}: ") for f in summary.failures
               if f.stage == "feed" and f.source in set(polled)}  # fmt: skip
    if polled and len(reasons) == len(polled):
        named = "; ".join(f"{url}: {reason}" for url, reason in list(reasons.items())[:MAX_NAMED_FEEDS])
        more = f"; and {len(reasons) - MAX_NAMED_FEEDS} more" if len(reasons) > MAX_NAMED_FEEDS else ""
        named = without_credentials(named)  # a feed's password never shows in the task's failure
        raise SystemicError(f"no feed of the batch could be polled ({len(reasons)}): {named}{more}", stage="feed")
    return counts


def process(settings: Settings, *, limit: int, trigger: str = "airflow") -> dict[str, int]:
    """Turn staged documents into articles, sections and facts."""
    return reported(process_pending(settings, ready_engine(settings), limit=limit, trigger=trigger), "processed")


def process_shards(settings: Settings) -> list[str]:
    """news_process's plan: one name per shard (mapped task), ``shard 1 of 2`` …, as many shards as the waiting
    backlog can keep busy, ``NEWSFLOW_PROCESS_SHARDS`` at most."""
    waiting, shards = plan_shards(settings, ready_engine(settings))
    log.info("%d staged document(s) waiting: %d shard(s) share them", waiting, shards)
    return [f"shard {number} of {shards}" for number in range(1, shards + 1)]


def process_shard(settings: Settings, *, trigger: str = "airflow") -> dict[str, int]:
    """One shard: claim batches of waiting documents and process them until none waits or the shard's time
    budget (``NEWSFLOW_PROCESS_SECONDS``) is spent. Shards running at once never claim the same document."""
    engine, started = ready_engine(settings), settings.clock()
    summary = process_pending(settings, engine, limit=SHARD_LIMIT, trigger=trigger, seconds=settings.process_seconds)
    spent = settings.clock() - started >= settings.process_seconds
    return {**reported(summary, "processed"), "budget_spent": int(spent)}


def leftovers(settings: Settings, totals: dict[str, int]) -> int:
    """The documents still waiting after shards of which at least one spent its time budget (so the backlog
    outgrew the run, which made progress); 0 when every shard ran out of documents instead."""
    return plan_shards(settings, ready_engine(settings))[0] if totals.get("budget_spent") else 0


def summed(counts: list[dict[str, int]]) -> dict[str, int]:
    """Mapped tasks' counts added up, key by key (in the order the keys first appear)."""
    totals: dict[str, int] = {}
    for batch in counts:
        for key, value in batch.items():
            totals[key] = totals.get(key, 0) + value
    return totals


def reprocess_articles(settings: Settings, sources: list[str] | None, *, trigger: str = "airflow") -> dict[str, int]:
    """Re-derive facts from stored raw documents (all of them when ``sources`` is empty)."""
    return reported(reprocess(settings, ready_engine(settings), sources=sources, trigger=trigger), "reprocessed")


def drain_inbox(settings: Settings, inbox: Path, *, trigger: str = "inbox") -> dict[str, Any]:
    """Ingest every document and URL list dropped in ``inbox``, then move each to ``processed/`` or ``failed/``;
    ``left`` counts the files and URL lines left for the next drain when its time budget ran out."""
    files = waiting_files(inbox)
    if not files and not has_leftovers(inbox):
        return {"files": 0, **RunSummary(run_id=0).extra(), "left": 0}
    summary = drain(settings, ready_engine(settings), files, inbox=inbox, trigger=trigger)
    return {"files": len(files), **reported(summary, f"drained {len(files)} file(s)"), "left": summary.inbox_left}


def drain_queue(settings: Settings, *, trigger: str = "news_events") -> dict[str, int]:
    """Stage every message waiting in the intake queue for ``news_process``, acknowledging each once its outcome is
    stored; the counts, with the messages ``redelivered`` (acknowledged, not processed twice) and ``left``."""
    drained = drain_messages(settings, ready_engine(settings), queue.connect(settings.queue_url), trigger=trigger)
    counts = reported(drained.summary, f"drained {drained.messages['taken']} message(s) from the intake queue")
    return {**counts, "messages": drained.messages["taken"], "redelivered": drained.messages["redelivered"],
            "malformed": drained.messages["malformed"], "left": drained.left}  # fmt: skip


def feed_batch_label(feed_urls: list[str]) -> str:
    """A mapped fetch task's name in the UI: the feeds it polls, shortened (``host/path``), then how many more."""
    room = MAX_LABEL_CHARS - len(" (+99999 more)")
    shown: list[str] = []
    for url in feed_urls:
        short = without_credentials(url).split("://", 1)[-1].rstrip("/")
        if shown and len(", ".join([*shown, short])) > room:
            break
        shown.append(short if len(short) <= room else short[: room - 1] + "…")
    rest = len(feed_urls) - len(shown)
    return ", ".join(shown) + (f" (+{rest} more)" if rest else "") if feed_urls else "no feeds"


def reported(summary: RunSummary, what: str) -> dict[str, int]:
    """Log each failure as one line (its URL or path, stage and reason), then a table of what the batch did;
    returns the counts its asset event carries."""
    for failure in summary.failures[:MAX_FAILURE_LINES]:
        source, error = without_credentials(failure.source), without_credentials(failure.error)
        log.warning("failed: %s [%s] %s", source, failure.stage, error)
    if len(summary.failures) > MAX_FAILURE_LINES:
        more = len(summary.failures) - MAX_FAILURE_LINES
        log.warning("… and %d more failures (SELECT * FROM ingest_errors WHERE run_id = %d)", more, summary.run_id)
    for url, why in list(summary.feeds_skipped.items())[:MAX_FAILURE_LINES]:
        log.info("skipped: %s %s", without_credentials(url), without_credentials(why))
    counts = summary.extra()
    log.info("%s, ingest run %d:\n%s", what, summary.run_id, counts_table({**counts, "entities": summary.entities}))
    return counts


def counts_table(counts: dict[str, int]) -> str:
    """Counts as a two-line text table, one right-aligned column per count."""
    widths = [max(len(name), len(str(value))) for name, value in counts.items()]
    header = "  ".join(name.rjust(width) for name, width in zip(counts, widths, strict=True))
    values = "  ".join(str(value).rjust(width) for value, width in zip(counts.values(), widths, strict=True))
    return f"{header}\n{values}"
