-- One error row per input and stage in a run: a COMMIT whose reply was lost leaves the input without an
-- outcome, the batch runs it again, and its error row would be written twice. Rows left twice by older
-- versions are removed first (the first written, the lowest id, stays). The source is keyed by its md5 (a
-- source may be up to 2,000 bytes, near a btree entry's limit). Rows without a run are not keyed.
-- depends: 0012_reader_timeouts

DELETE FROM ingest_errors later
USING ingest_errors earlier
WHERE later.ingest_run_id = earlier.ingest_run_id
  AND later.stage = earlier.stage
  AND md5(later.source) = md5(earlier.source)
  AND later.id > earlier.id;

CREATE UNIQUE INDEX ingest_errors_once_idx ON ingest_errors (ingest_run_id, stage, md5(source));

COMMENT ON INDEX ingest_errors_once_idx IS
    'One error row per run, stage and source (by its md5): an input retried after a lost COMMIT reply is '
    'recorded once (record_error inserts with ON CONFLICT DO NOTHING).';
