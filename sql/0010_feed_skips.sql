-- Feed entries that cannot be ingested (a link that is not http(s), neither link nor content) are counted and
-- listed, instead of vanishing; entries carried inline are delivered under their name within the feed.
-- depends: 0006_feed_backlog

ALTER TABLE feeds ADD COLUMN entries_skipped integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN feeds.entries_skipped IS 'Entries of the last fetched poll that could not be ingested: a link that is not a well-formed http(s) URL (javascript:, data:, ftp:, mailto:, file:, …) or over 2,000 characters, and no inline content; or neither link nor content. Listed in last_error. A 304 keeps the count.';
COMMENT ON COLUMN feeds.last_error IS 'The reason the last poll failed or the feed was malformed (as recorded in ingest_errors), and the entries it skipped with their reasons (the first ten); a 304 keeps the previous one, as the feed is unchanged.';
COMMENT ON COLUMN feed_entries.link IS 'The entry link, normalised (tracking parameters dropped); for an entry carried inline (no http(s) link, but content), its name: feed-entry:<feed url>#<entry id>, also its article''s source.';
