-- A NOTIFY in the writer's transaction serializes the commits of every transaction that
-- sends one (PostgreSQL holds a database-wide lock on the notification queue from
-- pre-commit to the end of the commit): inserts into a published table fell to a third
-- of their rate at 8 clients. The capture writes the log only; the instance that
-- committed a write wakes its own reader and notifies the others once it has read the
-- change, and every instance also reads every 100 ms, for writes made outside Galley.
CREATE OR REPLACE FUNCTION galley.realtime_capture() RETURNS trigger
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
  RETURN NULL;
END
$$;
