-- The intake queue's ledger: one row per stream message a drain took (news_queue, newsflow enqueue), keyed by
-- the stream and the message id Redis gave it. A message is acknowledged in Redis only once its row is
-- committed, in the same transaction as the document it staged; a message redelivered after a crash between
-- that commit and the acknowledgement finds its row and is acknowledged without being processed again.
-- depends: 0014_feed_health

CREATE TABLE intake_messages (
    stream          text        NOT NULL,
    message_id      text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('url', 'document', 'malformed')),
    source          text        NOT NULL,
    origin          text        NOT NULL DEFAULT '',
    outcome         text        NOT NULL CHECK (outcome IN ('staged', 'unchanged', 'failed')),
    error           text,
    raw_document_id bigint      REFERENCES raw_documents (id) ON DELETE SET NULL,
    ingest_run_id   bigint      REFERENCES ingest_runs (id) ON DELETE SET NULL,
    taken_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, message_id)
);
CREATE INDEX intake_messages_run_idx ON intake_messages (ingest_run_id);

COMMENT ON TABLE intake_messages IS
    'One row per intake-queue message taken: its outcome (staged, unchanged or failed, with the error), the '
    'raw document it staged and the run; keyed by stream message id so no message is processed twice.';
COMMENT ON COLUMN intake_messages.origin IS 'Who published the message, as the producer said (--origin).';
