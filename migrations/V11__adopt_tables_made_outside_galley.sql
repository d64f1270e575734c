-- Tables made in `public` outside Galley's own API and console (psql, another tool) are
-- first-class at once, as those made through Galley are: row-level security enabled and
-- forced, `service_role` granted, and the statement recorded in the schema history. Only
-- where the event trigger exists (Galley migrated as a superuser, as the embedded cluster
-- is). Galley's own connections (application_name `galley`) record their changes
-- themselves; pg_dump and pg_restore copy what already is.
CREATE OR REPLACE FUNCTION galley.notify_schema_change() RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
  command record;
  adopted text[] := '{}';
  app text := coalesce(pg_catalog.current_setting('application_name', true), '');
BEGIN
  IF tg_event = 'ddl_command_end'
     AND app NOT IN ('galley', 'pg_restore', 'pg_dump')
     -- The ALTERs below fire this trigger again: they are not the user's.
     AND coalesce(pg_catalog.current_setting('galley.adopting', true), '') <> 'on' THEN
    PERFORM pg_catalog.set_config('galley.adopting', 'on', true);
    FOR command IN
      SELECT * FROM pg_catalog.pg_event_trigger_ddl_commands()
      WHERE schema_name = 'public' AND object_type = 'table'
        AND command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
    LOOP
      EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', command.object_identity);
      EXECUTE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', command.object_identity);
      EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO service_role',
                                command.object_identity);
      adopted := adopted || command.object_identity;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger_ddl_commands() WHERE schema_name = 'public') THEN
      INSERT INTO galley.schema_history (actor, operation, target, sql)
      VALUES (session_user || coalesce(' (' || nullif(app, '') || ')', ''), 'sql',
              coalesce(nullif(pg_catalog.array_to_string(adopted, ','), ''), 'sql'),
              pg_catalog.current_query());
    END IF;
    PERFORM pg_catalog.set_config('galley.adopting', 'off', true);
  END IF;
  PERFORM pg_catalog.pg_notify('galley_schema', tg_tag);
END
$$;
