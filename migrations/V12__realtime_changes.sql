-- Realtime's database changes, captured without replication privileges: a table that
-- opted in (the admin API creates the `galley_realtime` trigger on it) writes each
-- changed row to `galley.realtime_changes` in the writer's own transaction, so a change
-- is logged exactly when it commits. Every instance reads the log by snapshot: the rows
-- of the transactions that became visible since its previous read (see
-- crates/realtime/src/changes/feed.rs), so nothing committed is skipped or read twice,
-- whatever order transactions commit in, and nothing waits for a long transaction.

-- Supabase's schema for Realtime; policies written for Supabase name it.
CREATE SCHEMA IF NOT EXISTS realtime;
REVOKE ALL ON SCHEMA realtime FROM PUBLIC;
GRANT USAGE ON SCHEMA realtime TO anon, authenticated, service_role;

CREATE TABLE galley.realtime_changes (
  id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- The writing transaction (top level): the read cursor is a snapshot of these.
  txid        xid8        NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
  schema_name name        NOT NULL,
  table_name  name        NOT NULL,
  op          text        NOT NULL CHECK (op IN ('INSERT', 'UPDATE', 'DELETE')),
  record      jsonb,
  old_record  jsonb,
  at          timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
CREATE INDEX realtime_changes_txid ON galley.realtime_changes (txid);
REVOKE ALL ON galley.realtime_changes FROM PUBLIC;

-- SECURITY DEFINER: whoever writes the table (an API role, psql) logs the change
-- without any privilege on the log. One notification per transaction (PostgreSQL folds
-- identical ones), delivered when it commits.
CREATE FUNCTION galley.realtime_capture() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
  INSERT INTO galley.realtime_changes (schema_name, table_name, op, record, old_record)
  VALUES (
    TG_TABLE_SCHEMA,
    TG_TABLE_NAME,
    TG_OP,
    CASE WHEN TG_OP <> 'DELETE' THEN pg_catalog.to_jsonb(NEW) END,
    CASE WHEN TG_OP <> 'INSERT' THEN pg_catalog.to_jsonb(OLD) END
  );
  PERFORM pg_catalog.pg_notify('galley_realtime', '');
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION galley.realtime_capture() FROM PUBLIC;
