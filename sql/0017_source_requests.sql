-- What each input was given as: a URL before its redirects and canonical link, a feed's link with its tracking
-- parameters, a relative path. An article is named by its canonical source; this remembers the names it was
-- asked for by, so news_reprocess (and an analyst) can find it by the name they typed.
-- depends: 0016_websub

CREATE TABLE source_requests (
    requested     text        NOT NULL,
    source        text        NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now()
);
-- Keyed by md5: a URL may be up to 8,192 characters, over a btree entry's limit.
CREATE UNIQUE INDEX source_requests_once ON source_requests (md5(requested), md5(source));

COMMENT ON TABLE source_requests IS 'Each name an input was given as (requested) that differs from the source it was stored under; written when a run finishes.';
COMMENT ON COLUMN source_requests.requested IS 'The input as given: a URL as typed or as a feed listed it, a path as typed.';
COMMENT ON COLUMN source_requests.source IS 'The source the document is stored under (articles.source, raw_documents.source): the canonical URL or the real path.';
COMMENT ON COLUMN source_requests.first_seen_at IS 'When this name first led to this source.';
