"""Feed bookkeeping in Postgres: conditional-GET state per feed and the entries already loaded."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline.models import FeedEntry, FeedPoll, storable

MAX_TITLE_CHARS = 1000  # a feed's or an entry's title is stored up to this many characters
MAX_ENTRY_ID_CHARS = 2000
MAX_NOTE_CHARS = 4000  # last_error, ETag and Last-Modified
RETRY_POLLS = 3  # an entry that failed in this many runs no longer makes the next poll unconditional


@dataclass(frozen=True)
class FeedState:
    """A feed's row as a poll starts: what the conditional GET sends, how the last poll went, and its health."""

    id: int
    etag: str | None
    last_modified: str | None
    last_status: str | None = None
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    last_failure: str | None = None
    next_poll_at: datetime | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None


@dataclass(frozen=True)
class Health:
    """What one poll leaves of its feed's health (``pipeline.ingest.feed_health`` works it out): when it ended,
    its failure and the stage (``fetch``, ``parse`` or ``feed``) or None when it went well, the run of failures
    with its start, the backoff's next poll time, and the reason when this poll disables the feed."""

    at: datetime
    failure: str | None = None
    failure_stage: str | None = None
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    next_poll_at: datetime | None = None
    disabled_reason: str | None = None


CLAIM_FEED = (
    "INSERT INTO feeds (url) VALUES (:url) ON CONFLICT (url) DO UPDATE SET url = EXCLUDED.url "
    "RETURNING id, etag, last_modified, last_status, consecutive_failures, failing_since, last_failure, "
    "next_poll_at, disabled_at, disabled_reason"
)


def claim_feed(engine: Engine, url: str) -> FeedState:
    """The feed's row (created on first sight) with what the next conditional GET should send, and its health."""
    with engine.begin() as conn:
        row = conn.execute(sa.text(CLAIM_FEED), {"url": url}).one()
    return FeedState(int(row.id), row.etag, row.last_modified, row.last_status, int(row.consecutive_failures),
                     row.failing_since, row.last_failure, row.next_poll_at, row.disabled_at,
                     row.disabled_reason)  # fmt: skip


def unseen(engine: Engine, entries: Iterable[FeedEntry]) -> list[FeedEntry]:
    """Entries whose link no feed has delivered yet, and entries carried inline whose content changed since
    they were delivered; in feed order, the first of any repeats."""
    by_link: dict[str, FeedEntry] = {}
    for entry in entries:
        by_link.setdefault(entry.link, entry)
    if not by_link:
        return []
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT link, content_digest FROM feed_entries WHERE link = ANY(:links)"), {"links": list(by_link)}
        )
        seen = {row.link: row.content_digest for row in rows}
    return [entry for link, entry in by_link.items() if link not in seen or _edited(entry, seen[link])]


def _edited(entry: FeedEntry, delivered_digest: str | None) -> bool:
    """An inline entry delivered with other content (one delivered before digests were kept is not known to)."""
    digest = content_digest(entry)
    return digest is not None and delivered_digest is not None and digest != delivered_digest


def content_digest(entry: FeedEntry) -> str | None:
    """An inline entry's version (its content and metadata: ``RawDocument.content_sha256``); None for an entry
    to fetch."""
    return entry.content.content_sha256 if entry.content is not None else None


def still_wanted(engine: Engine, entries: list[FeedEntry]) -> int:
    """How many of ``entries`` (not delivered by this poll) the next poll should see again: all but those whose
    link has failed in ``RETRY_POLLS`` runs or more, so a link broken for good does not make every poll of its
    feed unconditional for ever (it is still tried whenever the feed is fetched whole)."""
    if not entries:
        return 0
    with engine.connect() as conn:
        given_up = set(
            conn.scalars(
                sa.text(
                    "SELECT source FROM ingest_errors WHERE source = ANY(:links) GROUP BY source "
                    "HAVING count(DISTINCT ingest_run_id) >= :polls"
                ),
                {"links": [entry.link for entry in entries], "polls": RETRY_POLLS},
            )
        )
    return sum(1 for entry in entries if entry.link not in given_up)


def fresh_first(engine: Engine, entries: list[FeedEntry]) -> list[FeedEntry]:
    """Entries never tried before first, then those that failed in an earlier run: with a cap on entries per
    poll, links that keep failing cannot starve the rest of the feed."""
    if not entries:
        return []
    with engine.connect() as conn:
        failed = set(
            conn.scalars(
                sa.text("SELECT DISTINCT source FROM ingest_errors WHERE source = ANY(:links)"),
                {"links": [entry.link for entry in entries]},
            )
        )
    return [e for e in entries if e.link not in failed] + [e for e in entries if e.link in failed]


RECORD_ENTRY = (
    "INSERT INTO feed_entries (feed_id, link, entry_id, title, article_id, raw_document_id, content_digest) "
    "VALUES (:feed, :link, :entry_id, :title, :article, :raw, :digest) ON CONFLICT (feed_id, link) DO UPDATE SET "
    "title = EXCLUDED.title, content_digest = EXCLUDED.content_digest, "
    "article_id = coalesce(EXCLUDED.article_id, feed_entries.article_id), "
    "raw_document_id = coalesce(EXCLUDED.raw_document_id, feed_entries.raw_document_id) "
    "WHERE EXCLUDED.content_digest IS NOT NULL"
)


def record_entry(
    engine: Engine, feed: FeedState, entry: FeedEntry, *, article_id: int | None, raw_document_id: int | None
) -> None:
    """Remember a delivered entry with its article, or with its staged page until that is processed; an inline
    entry taken again for its new content has its row brought up to date."""
    values = {
        "feed": feed.id,
        "link": entry.link,
        "entry_id": bounded(entry.entry_id, MAX_ENTRY_ID_CHARS),
        "title": bounded(entry.title, MAX_TITLE_CHARS),
        "article": article_id,
        "raw": raw_document_id,
        "digest": content_digest(entry),
    }
    with engine.begin() as conn:
        conn.execute(sa.text(RECORD_ENTRY), values)


MAX_LISTED_SKIPS = 10

FINISH_POLL = (
    "UPDATE feeds SET last_polled_at = :at, last_status = :status, etag = :etag, last_modified = :modified, "
    "last_error = CASE WHEN :status = 'not_modified' THEN last_error ELSE :error END, "
    "title = coalesce(:title, title), entries_seen = entries_seen + :entries, entries_deferred = :deferred, "
    "entries_skipped = coalesce(:skipped, entries_skipped), "
    "consecutive_failures = :failures, failing_since = :failing_since, next_poll_at = :next_poll, "
    "last_failure = coalesce(:failure, last_failure), "
    "last_failure_stage = CASE WHEN :failure IS NULL THEN last_failure_stage ELSE :failure_stage END, "
    "last_failure_at = CASE WHEN :failure IS NULL THEN last_failure_at ELSE :at END, "
    "last_success_at = CASE WHEN :failure IS NULL THEN :at ELSE last_success_at END, "
    "disabled_at = CASE WHEN :disabled_reason IS NULL THEN disabled_at ELSE :at END, "
    "disabled_reason = coalesce(:disabled_reason, disabled_reason) WHERE id = :id"
)


def finish_poll(engine: Engine, feed: FeedState, poll: FeedPoll | None, health: Health, *, deferred: int = 0) -> None:
    """Store how the poll went and the feed's health after it. A failed poll keeps the previous ETag and
    Last-Modified; a poll that did not parse cleanly (malformed, or a 304 to a poll after a malformed one), or
    that left entries for later (``deferred``), stores none, so the next poll is unconditional: a malformed
    feed's error stays until a poll parses it cleanly, and deferred entries are seen again. The entries a
    fetched poll skipped are counted and listed; a 304 keeps the previous count and list."""
    fetched = poll is not None and not poll.not_modified
    unconditional = bool(deferred) or (poll is not None and health.failure is not None)
    values = {
        "id": feed.id,
        "status": _status(poll, health),
        "error": bounded(poll_note(poll) if fetched else health.failure, MAX_NOTE_CHARS),
        "etag": bounded(None if unconditional else poll.etag if poll else feed.etag, MAX_NOTE_CHARS),
        "modified": bounded(
            None if unconditional else poll.last_modified if poll else feed.last_modified, MAX_NOTE_CHARS
        ),
        "title": bounded(poll.title, MAX_TITLE_CHARS) if poll else None,
        "entries": len(poll.entries) if poll else 0,
        "deferred": deferred,
        "skipped": len(poll.skipped) if poll is not None and fetched else None,
    }
    with engine.begin() as conn:
        conn.execute(sa.text(FINISH_POLL), values | _health_values(health))


def _health_values(health: Health) -> dict[str, object]:
    return {
        "at": health.at,
        "failure": bounded(health.failure, MAX_NOTE_CHARS),
        "failure_stage": health.failure_stage,
        "failures": health.consecutive_failures,
        "failing_since": health.failing_since,
        "next_poll": health.next_poll_at,
        "disabled_reason": bounded(health.disabled_reason, MAX_NOTE_CHARS),
    }


def bounded(text: str | None, limit: int) -> str | None:
    """``text`` as Postgres can store it (``storable``: NUL and lone surrogates escaped), cut to ``limit``
    characters with an ellipsis."""
    if text is None:
        return None
    clean = storable(text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _status(poll: FeedPoll | None, health: Health) -> str:
    if poll is None:
        return "failed"
    if poll.problem or (poll.not_modified and health.failure is not None):
        return "malformed"
    return "not_modified" if poll.not_modified else "fetched"


def poll_note(poll: FeedPoll | None) -> str | None:
    """The feed's problem and the entries it skipped (the first ten, with their reasons), or None."""
    if poll is None:
        return None
    skipped = poll.skipped
    listed = "; ".join(str(entry) for entry in skipped[:MAX_LISTED_SKIPS])
    more = f"; and {len(skipped) - MAX_LISTED_SKIPS} more" if len(skipped) > MAX_LISTED_SKIPS else ""
    note = f"{len(skipped)} entries skipped: {listed}{more}" if skipped else None
    return "; ".join(part for part in (poll.problem, note) if part) or None


@dataclass(frozen=True)
class FeedHealth:
    """One row of ``v_feed_health``, as ``newsflow feeds health`` shows it."""

    feed_url: str
    state: str
    consecutive_failures: int
    last_error: str | None
    last_error_stage: str | None
    last_error_at: datetime | None
    last_success_at: datetime | None
    last_new_entry_at: datetime | None
    entries_per_day: float
    next_poll_at: datetime | None
    disabled_reason: str | None


HEALTH_WORST_FIRST = (
    "SELECT feed_url, state, consecutive_failures, last_error, last_error_stage, last_error_at, last_success_at, "
    "last_new_entry_at, entries_per_day, next_poll_at, disabled_reason FROM v_feed_health ORDER BY "
    "CASE state WHEN 'disabled' THEN 0 WHEN 'failing' THEN 1 WHEN 'new' THEN 2 ELSE 3 END, "
    "consecutive_failures DESC, last_new_entry_at NULLS FIRST, feed_url LIMIT :limit"
)


def feed_health(engine: Engine, *, limit: int | None = None) -> list[FeedHealth]:
    """Every feed's health (the first ``limit``), worst first: disabled, then failing (most failures first),
    never polled, well (the longest without a new entry first)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(HEALTH_WORST_FIRST), {"limit": limit}).mappings().all()
    return [FeedHealth(**{**row, "entries_per_day": float(row["entries_per_day"])}) for row in rows]


ENABLE_FEED = (
    "UPDATE feeds SET disabled_at = NULL, disabled_reason = NULL, consecutive_failures = 0, failing_since = NULL, "
    "next_poll_at = NULL WHERE url = :url RETURNING id"
)


def enable_feed(engine: Engine, url: str) -> bool:
    """Enable the feed (as listed) again, with its run of failures and its backoff reset; False when no feed
    has that URL. Its last error stays (with its time) as history."""
    with engine.begin() as conn:
        return conn.execute(sa.text(ENABLE_FEED), {"url": url}).first() is not None
