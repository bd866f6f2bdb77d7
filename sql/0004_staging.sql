-- Staging: fetched documents wait in raw_documents until the processing stage turns them into articles.
-- depends: 0003_feeds

ALTER TABLE raw_documents ADD COLUMN processed_at timestamptz;
ALTER TABLE raw_documents ADD COLUMN process_error text;
UPDATE raw_documents SET processed_at = fetched_at;
CREATE INDEX raw_documents_pending_idx ON raw_documents (id) WHERE processed_at IS NULL;

ALTER TABLE feed_entries ADD COLUMN raw_document_id bigint REFERENCES raw_documents (id) ON DELETE SET NULL;

COMMENT ON COLUMN raw_documents.processed_at IS 'When this version was turned into an article (or failed to be); NULL while it waits for news_process.';
COMMENT ON COLUMN raw_documents.process_error IS 'Why processing failed, when it did (also in ingest_errors).';
COMMENT ON COLUMN feed_entries.raw_document_id IS 'The fetched page, stored before processing; article_id is set once it is processed.';
