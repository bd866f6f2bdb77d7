-- Which process a run belongs to, so a run whose process died (killed, OOM, machine restart) is closed as
-- abandoned by the next run on the same host instead of showing "running" for ever.
-- depends: 0006_feed_backlog

ALTER TABLE ingest_runs ADD COLUMN host text;
ALTER TABLE ingest_runs ADD COLUMN pid integer;
ALTER TABLE ingest_runs DROP CONSTRAINT ingest_runs_status_check;
ALTER TABLE ingest_runs ADD CONSTRAINT ingest_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'abandoned'));

COMMENT ON COLUMN ingest_runs.host IS 'Host name of the process that ran it.';
COMMENT ON COLUMN ingest_runs.pid IS 'Process id on that host; a running run whose process is gone is marked abandoned by the next run there.';
COMMENT ON COLUMN ingest_runs.status IS 'running, succeeded, partial (some documents failed), failed (all failed) or abandoned (its process died; what it committed is kept, and a re-run finishes the rest).';
