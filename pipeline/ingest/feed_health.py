"""Feed health, after Media Cloud's rss-fetcher: which feeds a poller skips, and what a poll leaves.

A poll fails when its feed cannot be fetched (network error, HTTP error, refused) or is not parsed cleanly
(malformed, unparseable, too costly to parse; a 304 answered while the feed was last malformed counts too).
Each failure in a row doubles the wait before the scheduled poller tries the feed again: 1 h, 2 h, 4 h, …, at
most ``NEWSFLOW_FEED_BACKOFF_MAX_HOURS``. A feed that has failed at every poll for
``NEWSFLOW_FEED_DISABLE_DAYS`` is disabled, with the reason kept, until ``newsflow feeds enable URL``. One clean
poll ends the run of failures. Times come from ``Settings.wall_clock`` (a test passes a fake one).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.db.feeds import FeedState, Health
from pipeline.settings import Settings

FIRST_BACKOFF = timedelta(hours=1)
DUE_SLACK = timedelta(minutes=10)  # due this soon is due now: a daily run a few seconds early skips no day


def skip_reason(feed: FeedState, now: datetime, *, due_only: bool) -> str | None:
    """Why a poller does not poll the feed now (disabled; or, for the scheduled poller, ``due_only``, backing
    off until a later time), or None when it should."""
    if feed.disabled_at is not None:
        return f"disabled since {stamp(feed.disabled_at)}: {feed.disabled_reason} (newsflow feeds enable URL)"
    if due_only and feed.next_poll_at is not None and feed.next_poll_at > now + DUE_SLACK:
        polls = f"{feed.consecutive_failures} failed poll{'s' if feed.consecutive_failures != 1 else ''}"
        return f"backing off after {polls} until {stamp(feed.next_poll_at)}"
    return None


def after_poll(feed: FeedState, settings: Settings, failure: tuple[str, str] | None = None) -> Health:
    """The feed's health after a poll that went well (``failure`` None) or failed with ``(reason, stage)``."""
    now = settings.wall_clock()
    if failure is None:
        return Health(at=now)
    reason, stage = failure
    failures = feed.consecutive_failures + 1
    since = feed.failing_since or now
    wait = min(FIRST_BACKOFF * 2 ** min(failures - 1, 20), timedelta(hours=settings.feed_backoff_max_hours))
    disable_after = timedelta(days=settings.feed_disable_days)
    disabled = settings.feed_disable_days > 0 and now - since >= disable_after
    why = f"failing since {stamp(since)} ({failures} polls in a row); last error [{stage}]: {reason}"
    return Health(now, reason, stage, failures, since, now + wait, why if disabled else None)


def still_malformed(feed: FeedState) -> str | None:
    """The error of a 304 answered while the feed was last malformed (its last clean content is not what the
    server holds), or None when the feed was not."""
    if feed.last_status != "malformed":
        return None
    earlier = (feed.last_failure or "malformed feed").removeprefix(STILL_MALFORMED)
    return STILL_MALFORMED + earlier


STILL_MALFORMED = "still malformed (HTTP 304 after a malformed poll): "


def stamp(moment: datetime) -> str:
    """A time for a message: UTC, to the minute."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
