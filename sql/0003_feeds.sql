-- Feeds: each polled RSS/Atom feed with its conditional-GET state, and every entry seen in one;
-- and the site name of fetched pages.
-- depends: 0002_analyst_views

ALTER TABLE articles ADD COLUMN site_name text;
COMMENT ON COLUMN articles.site_name IS 'The publication the page names itself (og:site_name and the like), when known.';

CREATE TABLE feeds (
    id              bigserial PRIMARY KEY,
    url             text        NOT NULL UNIQUE,
    title           text,
    etag            text,
    last_modified   text,
    last_polled_at  timestamptz,
    last_status     text        CHECK (last_status IN ('fetched', 'not_modified', 'malformed', 'failed')),
    last_error      text,
    entries_seen    integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE feed_entries (
    id              bigserial PRIMARY KEY,
    feed_id         bigint      NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
    link            text        NOT NULL,
    entry_id        text,
    title           text,
    article_id      bigint      REFERENCES articles (id) ON DELETE SET NULL,
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (feed_id, link)
);
CREATE INDEX feed_entries_link_idx ON feed_entries (link);
CREATE INDEX feed_entries_article_idx ON feed_entries (article_id);

COMMENT ON TABLE feeds IS 'One row per polled feed: its conditional-GET state (etag, last_modified) and how the last poll went.';
COMMENT ON COLUMN feeds.last_status IS 'fetched, not_modified (HTTP 304), malformed (feedparser bozo; recovered entries still used) or failed.';
COMMENT ON COLUMN feeds.last_error IS 'The reason the last poll failed or the feed was malformed, as recorded in ingest_errors.';
COMMENT ON TABLE feed_entries IS 'Every feed entry whose page was loaded; a link seen in any feed is not fetched again.';
COMMENT ON COLUMN feed_entries.link IS 'The entry link, normalised (tracking parameters dropped).';
COMMENT ON COLUMN feed_entries.article_id IS 'The article the page became (the same story from two feeds is one article).';
