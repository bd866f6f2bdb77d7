-- The reader role creates nothing: no temporary tables, views or functions, no schemas, no large objects.
-- depends: 0008_document_boundary
--
-- PostgreSQL grants TEMPORARY on every database, and EXECUTE on the functions that create large objects, to
-- PUBLIC, so every login (the analysts' included) could fill pg_temp and pg_largeobject. Both are taken from
-- PUBLIC here; the database's owner keeps them (Newsflow itself uses neither). CREATE on the database (so
-- CREATE SCHEMA) was never PUBLIC's, and 0005 took CREATE on schema public from PUBLIC.
--
-- The database is named by whoever set it up, so it is found with current_database(). Only the functions'
-- owner (a superuser) may revoke on them: a migrating user that is not one is told so, and the server's
-- administrator runs this block once (docker/postgres-init.sql.in does it for the compose stack).

DO $$
DECLARE
    database_owner name := (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database());
    creator regprocedure;
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO %I', current_database(), database_owner);
    FOREACH creator IN ARRAY ARRAY[
        'pg_catalog.lo_create(oid)', 'pg_catalog.lo_creat(integer)', 'pg_catalog.lo_from_bytea(oid, bytea)',
        'pg_catalog.lo_import(text)', 'pg_catalog.lo_import(text, oid)'
    ]::regprocedure[] LOOP
        IF pg_has_role((SELECT proowner FROM pg_proc WHERE oid = creator), 'USAGE') THEN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', creator);
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', creator, database_owner);
        ELSE
            RAISE WARNING 'only a superuser can take %() from PUBLIC: run sql/0009_reader_limits.sql as one', creator;
        END IF;
    END LOOP;
END
$$;

-- newsflow_reader's COMMENT (from 0005) is left alone: only a superuser or CREATEROLE may change it.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

