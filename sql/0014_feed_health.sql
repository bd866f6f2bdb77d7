-- Feed health, after Media Cloud's rss-fetcher: each feed's run of failures, its last error (and the stage,
-- fetch or parse, it failed at), its last success, and the backoff and disabling that follow from them; and
-- the analyst view v_feed_health over them and the entries each feed delivered.
-- depends: 0013_error_once

ALTER TABLE feeds
    ADD COLUMN consecutive_failures integer     NOT NULL DEFAULT 0,
    ADD COLUMN failing_since        timestamptz,
    ADD COLUMN last_failure         text,
    ADD COLUMN last_failure_stage   text        CHECK (last_failure_stage IN ('fetch', 'parse', 'feed')),
    ADD COLUMN last_failure_at      timestamptz,
    ADD COLUMN last_success_at      timestamptz,
    ADD COLUMN next_poll_at         timestamptz,
    ADD COLUMN disabled_at          timestamptz,
    ADD COLUMN disabled_reason      text;

COMMENT ON COLUMN feeds.consecutive_failures IS 'Polls in a row that failed: not fetched (network, HTTP, refused) or not parsed cleanly (malformed, unparseable, too costly), including a 304 answered while the feed was still malformed. 0 after a clean poll or newsflow feeds enable.';
COMMENT ON COLUMN feeds.failing_since IS 'When the current run of failures began (NULL while the feed is well); a feed failing for NEWSFLOW_FEED_DISABLE_DAYS is disabled.';
COMMENT ON COLUMN feeds.last_failure IS 'The reason of the last failed poll, kept after the feed recovers (last_failure_at says when).';
COMMENT ON COLUMN feeds.last_failure_stage IS 'Where the last failed poll failed: fetch (network, HTTP status, refused), parse (malformed, unparseable, too costly to parse) or feed (anything else).';
COMMENT ON COLUMN feeds.last_success_at IS 'When a poll last fetched and parsed the feed cleanly, or got a 304 for a feed last parsed cleanly.';
COMMENT ON COLUMN feeds.next_poll_at IS 'A failing feed backs off: the scheduled poller (news_daily) skips it until this time (1 h after the first failure, doubling, at most NEWSFLOW_FEED_BACKOFF_MAX_HOURS). NULL: due at every poll.';
COMMENT ON COLUMN feeds.disabled_at IS 'When the feed was disabled for failing NEWSFLOW_FEED_DISABLE_DAYS in a row; no poller polls it until newsflow feeds enable URL.';
COMMENT ON COLUMN feeds.disabled_reason IS 'Why the feed was disabled: how long it failed, in how many polls, and its last error.';

CREATE VIEW v_feed_health AS
SELECT regexp_replace(f.url, '^([a-z][a-z0-9+.-]*://)[^/?#@]*@', '\1***@', 'i') AS feed_url,
       CASE WHEN f.disabled_at IS NOT NULL THEN 'disabled'
            WHEN f.consecutive_failures > 0 THEN 'failing'
            WHEN f.last_polled_at IS NULL THEN 'new'
            ELSE 'ok' END AS state,
       f.consecutive_failures,
       regexp_replace(f.last_failure, '([a-z][a-z0-9+.-]*://)[^/?#@\s]*@', '\1***@', 'gi') AS last_error,
       f.last_failure_at AS last_error_at,
       f.last_success_at,
       e.last_new_entry_at,
       f.last_failure_stage AS last_error_stage,
       round(coalesce(e.last_week, 0) / 7.0, 2) AS entries_per_day,
       f.failing_since,
       f.next_poll_at,
       f.disabled_at,
       regexp_replace(f.disabled_reason, '([a-z][a-z0-9+.-]*://)[^/?#@\s]*@', '\1***@', 'gi') AS disabled_reason,
       f.last_polled_at,
       f.title
FROM feeds f
LEFT JOIN LATERAL (
    SELECT max(fe.first_seen_at) AS last_new_entry_at,
           count(*) FILTER (WHERE fe.first_seen_at > now() - interval '7 days') AS last_week
    FROM feed_entries fe
    WHERE fe.feed_id = f.id
) e ON true;

COMMENT ON VIEW v_feed_health IS
    'One row per feed: state (ok, failing, disabled, or new: never polled), consecutive_failures, the last error '
    'with its stage (fetch or parse) and time, the last clean poll, the last new entry delivered, entries_per_day '
    '(new entries delivered over the last 7 days, divided by 7), and the backoff (next_poll_at) and disabling '
    '(disabled_at, disabled_reason) that follow. User names and passwords in URLs are shown as ***.';

GRANT SELECT ON v_feed_health TO newsflow_reader;
