"""Feed bookkeeping in Postgres: conditional-GET state per feed and the entries already loaded."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline.models import FeedEntry, FeedPoll, storable

MAX_TITLE_CHARS = 1000  # a feed's or an entry's title is stored up to this many characters
MAX_ENTRY_ID_CHARS = 2000
MAX_NOTE_CHARS = 4000  # last_error, ETag and Last-Modified
RETRY_POLLS = 3  # an entry that failed in this many runs no longer makes the next poll unconditional


@dataclass(frozen=True)
class FeedState:
    id: int
    etag: str | None
    last_modified: str | None


def claim_feed(engine: Engine, url: str) -> FeedState:
    """The feed's row (created on first sight) with what the next conditional GET should send."""
    with engine.begin() as conn:
        row = conn.execute(
            sa.text(
                "INSERT INTO feeds (url) VALUES (:url) ON CONFLICT (url) DO UPDATE SET url = EXCLUDED.url "
                "RETURNING id, etag, last_modified"
            ),
            {"url": url},
        ).one()
    return FeedState(int(row.id), row.etag, row.last_modified)


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
    "UPDATE feeds SET last_polled_at = now(), last_status = :status, etag = :etag, last_modified = :modified, "
    "last_error = CASE WHEN :status = 'not_modified' THEN last_error ELSE :error END, "
    "title = coalesce(:title, title), entries_seen = entries_seen + :entries, entries_deferred = :deferred, "
    "entries_skipped = coalesce(:skipped, entries_skipped) WHERE id = :id"
)


def finish_poll(
    engine: Engine, feed: FeedState, poll: FeedPoll | None, *, error: str | None = None, deferred: int = 0
) -> None:
    """Store how the poll went; a failed poll keeps the previous ETag and Last-Modified, and a poll that left
    entries for later (``deferred``) stores none, so the next poll is unconditional and sees them again. The
    entries a fetched poll skipped are counted and listed; a 304 keeps the previous count and list."""
    fetched = poll is not None and not poll.not_modified
    values = {
        "id": feed.id,
        "status": _status(poll),
        "error": bounded(error or poll_note(poll), MAX_NOTE_CHARS),
        "etag": bounded(None if deferred else poll.etag if poll else feed.etag, MAX_NOTE_CHARS),
        "modified": bounded(None if deferred else poll.last_modified if poll else feed.last_modified, MAX_NOTE_CHARS),
        "title": bounded(poll.title, MAX_TITLE_CHARS) if poll else None,
        "entries": len(poll.entries) if poll else 0,
        "deferred": deferred,
        "skipped": len(poll.skipped) if poll is not None and fetched else None,
    }
    with engine.begin() as conn:
        conn.execute(sa.text(FINISH_POLL), values)


def bounded(text: str | None, limit: int) -> str | None:
    """``text`` as Postgres can store it (``storable``: NUL and lone surrogates escaped), cut to ``limit``
    characters with an ellipsis."""
    if text is None:
        return None
    clean = storable(text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _status(poll: FeedPoll | None) -> str:
    if poll is None:
        return "failed"
    return "not_modified" if poll.not_modified else "malformed" if poll.problem else "fetched"


def poll_note(poll: FeedPoll | None) -> str | None:
    """The feed's problem and the entries it skipped (the first ten, with their reasons), or None."""
    if poll is None:
        return None
    skipped = poll.skipped
    listed = "; ".join(str(entry) for entry in skipped[:MAX_LISTED_SKIPS])
    more = f"; and {len(skipped) - MAX_LISTED_SKIPS} more" if len(skipped) > MAX_LISTED_SKIPS else ""
    note = f"{len(skipped)} entries skipped: {listed}{more}" if skipped else None
    return "; ".join(part for part in (poll.problem, note) if part) or None
