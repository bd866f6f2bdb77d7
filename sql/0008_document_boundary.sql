-- One document boundary. Runs keep their counts by outcome, the seconds each stage took and, when something
-- systemic stopped them, why. Staged documents are claimed by one run at a time, count how often processing
-- was started on them, and are set aside (quarantined) when their processing died too often.
-- depends: 0007_run_owner

ALTER TABLE ingest_runs DROP CONSTRAINT ingest_runs_status_check;
ALTER TABLE ingest_runs ADD CONSTRAINT ingest_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'abandoned', 'stopped'));
ALTER TABLE ingest_runs ADD COLUMN outcomes jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE ingest_runs ADD COLUMN stage_seconds jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE ingest_runs ADD COLUMN stop_reason text;

COMMENT ON COLUMN ingest_runs.status IS 'running, succeeded, partial (some documents failed), failed (all failed), stopped (something systemic, in stop_reason, ended it early) or abandoned (its process died; what it committed is kept, and a re-run finishes the rest).';
COMMENT ON COLUMN ingest_runs.outcomes IS 'Documents by outcome: loaded, replaced, unchanged, staged, failed.';
COMMENT ON COLUMN ingest_runs.stage_seconds IS 'Wall seconds spent per stage (read, extract, facts, load, …), summed over documents.';
COMMENT ON COLUMN ingest_runs.stop_reason IS 'Why the run stopped early (database lost, disk full, model missing); NULL when it ran to the end.';

ALTER TABLE raw_documents ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE raw_documents ADD COLUMN claimed_by bigint REFERENCES ingest_runs (id) ON DELETE SET NULL;
ALTER TABLE raw_documents ADD COLUMN claimed_at timestamptz;
ALTER TABLE raw_documents ADD COLUMN quarantined_at timestamptz;

COMMENT ON COLUMN raw_documents.attempts IS 'How often processing was started on this staged version; a run that dies leaves it raised.';
COMMENT ON COLUMN raw_documents.claimed_by IS 'The run processing this staged version now; another run takes it only when that run is over or its claim expired.';
COMMENT ON COLUMN raw_documents.quarantined_at IS 'When this version was set aside after its processing died NEWSFLOW_QUARANTINE_ATTEMPTS times (process_error says so).';

CREATE VIEW v_quarantined_documents AS
SELECT r.id AS raw_document_id, r.source, r.attempts, r.process_error AS reason, r.fetched_at, r.quarantined_at
FROM raw_documents r
WHERE r.quarantined_at IS NOT NULL;

COMMENT ON VIEW v_quarantined_documents IS 'Staged documents set aside because processing them killed the worker (a crash, the OOM killer) too often: news_process goes on past them. Re-queue one with UPDATE raw_documents SET quarantined_at = NULL, processed_at = NULL, attempts = 0 WHERE id = …';

GRANT SELECT ON v_quarantined_documents TO newsflow_reader;
