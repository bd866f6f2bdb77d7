-- A feed may deliver more new entries than one poll takes (NEWSFLOW_FEED_MAX_ENTRIES): the rest wait.
-- depends: 0005_reader_role

ALTER TABLE feeds ADD COLUMN entries_deferred integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN feeds.entries_deferred IS 'New entries the last poll left for the next one (over NEWSFLOW_FEED_MAX_ENTRIES); while any wait, the next poll sends no ETag or Last-Modified, so it gets the whole feed again.';
