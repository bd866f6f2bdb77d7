-- An entry carried inline is taken again when its content changes, so its article is replaced; entries that
-- failed make the next poll unconditional until they have failed in three runs.
-- depends: 0010_feed_skips

ALTER TABLE feed_entries ADD COLUMN content_digest text;
COMMENT ON COLUMN feed_entries.content_digest IS 'For an entry carried inline: the sha256 of the content and metadata it was last delivered with; a poll that finds other content takes the entry again and replaces its article. NULL for linked entries (and for inline entries delivered before this column, which are not taken again until then).';
COMMENT ON COLUMN feeds.entries_deferred IS 'Entries the last poll found new but did not deliver and that are still wanted: not tried (over NEWSFLOW_FEED_MAX_ENTRIES, or the poll''s time budget spent), or tried and failed (a deferring Retry-After, a timeout, a 5xx) in fewer than three runs. While any wait, the next poll sends no ETag or Last-Modified, so it gets the whole feed again.';
