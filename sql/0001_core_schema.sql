-- Core schema: runs, raw store, articles, sections and facts.
--
-- Identity: an article is one `source` (canonical URL or file path). Each
-- distinct content (sha256 of the raw bytes plus sidecar metadata) of that
-- source is one raw document version. The article row always points at the
-- version its facts were derived from; a changed version replaces the facts
-- in one transaction. Facts hang off the article with ON DELETE CASCADE so a
-- replacement is "delete the article's facts, insert the new ones".

CREATE TABLE ingest_runs (
    id                  bigserial PRIMARY KEY,
    trigger             text        NOT NULL DEFAULT 'cli',
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    status              text        NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'succeeded', 'partial', 'failed')),
    documents_seen      integer     NOT NULL DEFAULT 0,
    documents_loaded    integer     NOT NULL DEFAULT 0,
    documents_unchanged integer     NOT NULL DEFAULT 0,
    documents_failed    integer     NOT NULL DEFAULT 0
);

CREATE TABLE raw_documents (
    id              bigserial PRIMARY KEY,
    source          text        NOT NULL,
    content_sha256  text        NOT NULL,
    media_type      text        NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    body_gzip       bytea       NOT NULL,
    byte_size       integer     NOT NULL,
    fetched_at      timestamptz NOT NULL DEFAULT now(),
    ingest_run_id   bigint      REFERENCES ingest_runs (id) ON DELETE SET NULL,
    UNIQUE (source, content_sha256)
);
CREATE INDEX raw_documents_sha_idx ON raw_documents (content_sha256);

CREATE TABLE articles (
    id               bigserial PRIMARY KEY,
    source           text        NOT NULL UNIQUE,
    url              text,
    title            text,
    author           text,
    published_at     timestamptz,
    language         text,
    content_hash     text        NOT NULL,
    raw_document_id  bigint      NOT NULL REFERENCES raw_documents (id),
    text             text        NOT NULL,
    version          integer     NOT NULL DEFAULT 1,
    extractor_version text       NOT NULL,
    ingest_run_id    bigint      REFERENCES ingest_runs (id) ON DELETE SET NULL,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX articles_content_hash_idx ON articles (content_hash);
CREATE INDEX articles_published_at_idx ON articles (published_at);
CREATE INDEX articles_ingest_run_idx ON articles (ingest_run_id);

CREATE TABLE sections (
    id           bigserial PRIMARY KEY,
    article_id   bigint  NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    position     integer NOT NULL,
    heading      text,
    start_offset integer NOT NULL,
    end_offset   integer NOT NULL,
    body         text    NOT NULL,
    body_tsv     tsvector GENERATED ALWAYS AS (
                     to_tsvector('english', coalesce(heading, '') || ' ' || body)
                 ) STORED,
    UNIQUE (article_id, position),
    CHECK (start_offset <= end_offset)
);
CREATE INDEX sections_body_tsv_idx ON sections USING gin (body_tsv);
CREATE INDEX sections_heading_idx ON sections (lower(heading));

CREATE TABLE entities (
    id         bigserial PRIMARY KEY,
    key        text NOT NULL,
    type       text NOT NULL,
    name       text NOT NULL,
    UNIQUE (key, type)
);
CREATE INDEX entities_name_idx ON entities (lower(name));

CREATE TABLE entity_mentions (
    id           bigserial PRIMARY KEY,
    article_id   bigint  NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    section_id   bigint  NOT NULL REFERENCES sections (id) ON DELETE CASCADE,
    entity_id    bigint  NOT NULL REFERENCES entities (id),
    start_offset integer NOT NULL,
    end_offset   integer NOT NULL,
    mention      text    NOT NULL,
    UNIQUE (article_id, start_offset, end_offset)
);
CREATE INDEX entity_mentions_entity_idx ON entity_mentions (entity_id);
CREATE INDEX entity_mentions_section_idx ON entity_mentions (section_id);

CREATE TABLE quotes (
    id                bigserial PRIMARY KEY,
    article_id        bigint  NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    section_id        bigint  NOT NULL REFERENCES sections (id) ON DELETE CASCADE,
    kind              text    NOT NULL CHECK (kind IN ('direct', 'partial', 'indirect')),
    quote             text    NOT NULL,
    start_offset      integer NOT NULL,
    end_offset        integer NOT NULL,
    speaker           text,
    speaker_entity_id bigint  REFERENCES entities (id),
    speaker_text      text,
    cue               text,
    UNIQUE (article_id, kind, start_offset, end_offset)
);
CREATE INDEX quotes_speaker_idx ON quotes (speaker);
CREATE INDEX quotes_speaker_entity_idx ON quotes (speaker_entity_id);
CREATE INDEX quotes_section_idx ON quotes (section_id);

CREATE TABLE dates (
    id           bigserial PRIMARY KEY,
    article_id   bigint  NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    section_id   bigint  NOT NULL REFERENCES sections (id) ON DELETE CASCADE,
    mention      text    NOT NULL,
    start_offset integer NOT NULL,
    end_offset   integer NOT NULL,
    value        text    NOT NULL,
    granularity  text    NOT NULL CHECK (granularity IN ('day', 'month', 'year')),
    value_start  date    NOT NULL,
    UNIQUE (article_id, start_offset, end_offset)
);
CREATE INDEX dates_value_start_idx ON dates (value_start);

CREATE TABLE quantities (
    id           bigserial PRIMARY KEY,
    article_id   bigint  NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    section_id   bigint  NOT NULL REFERENCES sections (id) ON DELETE CASCADE,
    mention      text    NOT NULL,
    start_offset integer NOT NULL,
    end_offset   integer NOT NULL,
    value        numeric NOT NULL,
    unit         text,
    noun         text,
    UNIQUE (article_id, start_offset, end_offset)
);

CREATE TABLE claims (
    id              bigserial PRIMARY KEY,
    article_id      bigint  NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    section_id      bigint  NOT NULL REFERENCES sections (id) ON DELETE CASCADE,
    actor           text    NOT NULL,
    actor_entity_id bigint  REFERENCES entities (id),
    predicate       text    NOT NULL,
    object          text    NOT NULL,
    start_offset    integer NOT NULL,
    end_offset      integer NOT NULL,
    UNIQUE (article_id, start_offset, end_offset, predicate)
);
CREATE INDEX claims_actor_entity_idx ON claims (actor_entity_id);
CREATE INDEX claims_predicate_idx ON claims (predicate);

CREATE TABLE ingest_errors (
    id            bigserial PRIMARY KEY,
    ingest_run_id bigint      REFERENCES ingest_runs (id) ON DELETE CASCADE,
    source        text        NOT NULL,
    stage         text        NOT NULL,
    error         text        NOT NULL,
    occurred_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_errors_run_idx ON ingest_errors (ingest_run_id);
CREATE INDEX ingest_errors_source_idx ON ingest_errors (source);
