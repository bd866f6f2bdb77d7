-- The reader stalls nobody: no advisory locks (Newsflow's migration lock among them), and time limits on its
-- statements and on transactions it leaves open.
-- depends: 0011_feed_entry_content
--
-- PostgreSQL grants EXECUTE on the advisory-lock functions to PUBLIC, so any login (an analyst's) could take
-- Newsflow's migration key and hold every migrator waiting. They are taken from PUBLIC here and granted back to
-- the database's owner, the role Newsflow migrates and writes as (give them to another writing role by hand).
-- Only the functions' owner (a superuser) may revoke on them: a migrating user that is not one is told so, and
-- the server's administrator runs this block once (docker/postgres-init.sql.in does it for the compose stack).
--
-- newsflow_reader gets a statement_timeout and an idle_in_transaction_session_timeout, for when it is used as a
-- login itself. Role settings are not inherited by member logins: each analyst login gets its own
-- (ALTER ROLE alice SET ..., docs/querying.md). Only a superuser or a role with CREATEROLE may set them.

DO $$
DECLARE
    database_owner name := (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database());
    locker regprocedure;
BEGIN
    FOR locker IN
        SELECT p.oid::regprocedure FROM pg_proc p
        WHERE p.pronamespace = 'pg_catalog'::regnamespace
          AND p.proname ~ '^pg_(try_)?advisory_(xact_)?lock(_shared)?$'
    LOOP
        IF pg_has_role((SELECT proowner FROM pg_proc WHERE oid = locker), 'USAGE') THEN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', locker);
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', locker, database_owner);
        ELSE
            RAISE WARNING 'only a superuser can take %() from PUBLIC: run sql/0012_reader_timeouts.sql as one', locker;
        END IF;
    END LOOP;
    BEGIN
        ALTER ROLE newsflow_reader SET statement_timeout = '120s';
        ALTER ROLE newsflow_reader SET idle_in_transaction_session_timeout = '60s';
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE WARNING 'only a superuser or CREATEROLE may set newsflow_reader''s time limits: run sql/0011 as one';
    END;
END
$$;
