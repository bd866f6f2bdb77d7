-- Read-only access for analysts: the role newsflow_reader may SELECT the analyst views and nothing else.
-- depends: 0004_staging
--
-- Hand it out with a login role of your own (see docs/querying.md):
--   CREATE ROLE alice LOGIN PASSWORD '...' IN ROLE newsflow_reader;
-- Roles belong to the whole server, so the role is created only when missing. Where the migrating user may
-- not create roles (the compose stack's news owner), the server's init script creates it beforehand.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'newsflow_reader') THEN
        CREATE ROLE newsflow_reader NOLOGIN;
        COMMENT ON ROLE newsflow_reader IS
            'Newsflow analysts: SELECT on the v_* analyst views only; no tables, no raw store, no writes.';
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- another database on this server created it a moment ago
END
$$;

-- Nobody but the owner creates objects here (already so on PostgreSQL 15+).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO newsflow_reader;
-- Views run with their owner's rights, so these grants reach the rows the views show and nothing more.
GRANT SELECT ON v_sections, v_quotes, v_entity_mentions, v_dates, v_quantities, v_claims TO newsflow_reader;
