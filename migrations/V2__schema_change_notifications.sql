-- Every instance keeps a catalog of the exposed schemas and reloads it when told to on
-- the `galley_schema` channel. Galley's schema manager notifies after its own changes;
-- this event trigger notifies after DDL run any other way (psql, another tool).

CREATE FUNCTION galley.notify_schema_change() RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
  PERFORM pg_catalog.pg_notify('galley_schema', tg_tag);
END
$$;

-- Only a superuser may create event triggers. Without one, Galley still sees its own
-- changes, and DDL done by hand shows up at the next change or restart.
DO $$
BEGIN
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    CREATE EVENT TRIGGER galley_schema_ddl ON ddl_command_end
      EXECUTE FUNCTION galley.notify_schema_change();
    CREATE EVENT TRIGGER galley_schema_drop ON sql_drop
      EXECUTE FUNCTION galley.notify_schema_change();
  ELSE
    RAISE NOTICE 'Galley: not a superuser, so no event trigger; DDL run outside Galley is seen at the next change or restart';
  END IF;
END
$$;
