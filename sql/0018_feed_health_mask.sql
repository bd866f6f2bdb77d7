-- v_feed_health masks a URL's user info up to the authority's last @ (RFC 3986): before, it stopped at the
-- first, so a password holding an @ showed its tail (https://***@rest-of-password@host/feed).
-- depends: 0017_source_requests

CREATE OR REPLACE VIEW v_feed_health AS
SELECT regexp_replace(f.url, '^([a-z][a-z0-9+.-]*://)[^/?#]*@', '\1***@', 'i') AS feed_url,
       CASE WHEN f.disabled_at IS NOT NULL THEN 'disabled'
            WHEN f.consecutive_failures > 0 THEN 'failing'
            WHEN f.last_polled_at IS NULL THEN 'new'
            ELSE 'ok' END AS state,
       f.consecutive_failures,
       regexp_replace(f.last_failure, '([a-z][a-z0-9+.-]*://)[^/?#\s]*@', '\1***@', 'gi') AS last_error,
       f.last_failure_at AS last_error_at,
       f.last_success_at,
       e.last_new_entry_at,
       f.last_failure_stage AS last_error_stage,
       round(coalesce(e.last_week, 0) / 7.0, 2) AS entries_per_day,
       f.failing_since,
       f.next_poll_at,
       f.disabled_at,
       regexp_replace(f.disabled_reason, '([a-z][a-z0-9+.-]*://)[^/?#\s]*@', '\1***@', 'gi') AS disabled_reason,
       f.last_polled_at,
       f.title
FROM feeds f
LEFT JOIN LATERAL (
    SELECT max(fe.first_seen_at) AS last_new_entry_at,
           count(*) FILTER (WHERE fe.first_seen_at > now() - interval '7 days') AS last_week
    FROM feed_entries fe
    WHERE fe.feed_id = f.id
) e ON true;
