-- Realtime's broadcast from the database and its authorization, laid out as Supabase's
-- so policies and SQL written for Supabase work: `realtime.messages` (the rows
-- `realtime.send` writes, and the table whose row-level security policies decide who
-- may read and write a private channel), `realtime.topic()` for those policies, and
-- `realtime.send`. A broadcast row is logged by the same capture trigger as a table's
-- changes, so it reaches every instance when its transaction commits, and never if it
-- rolls back.

CREATE TABLE realtime.messages (
  topic          text      NOT NULL,
  extension      text      NOT NULL,
  payload        jsonb,
  event          text,
  private        boolean   DEFAULT false,
  updated_at     timestamp NOT NULL DEFAULT now(),
  inserted_at    timestamp NOT NULL DEFAULT now(),
  id             uuid      NOT NULL DEFAULT gen_random_uuid(),
  binary_payload bytea,
  CONSTRAINT messages_payload_exclusivity CHECK (payload IS NULL OR binary_payload IS NULL),
  PRIMARY KEY (id, inserted_at)
);
CREATE INDEX messages_inserted_at ON realtime.messages (inserted_at);
ALTER TABLE realtime.messages ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON realtime.messages FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON realtime.messages TO anon, authenticated, service_role;

CREATE TRIGGER galley_realtime AFTER INSERT ON realtime.messages
  FOR EACH ROW WHEN (NEW.extension = 'broadcast' AND NEW.payload IS NOT NULL)
  EXECUTE FUNCTION galley.realtime_capture();

-- The channel being authorized, in policies on realtime.messages.
CREATE FUNCTION realtime.topic() RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT nullif(pg_catalog.current_setting('realtime.topic', true), '')::text
$$;
GRANT EXECUTE ON FUNCTION realtime.topic() TO anon, authenticated, service_role;

-- Broadcasts `payload` as `event` on `topic` when the calling transaction commits.
-- Never raises: a failure is a warning, as in Supabase. It writes as Galley's owner
-- (database broadcasts need no write permission), so triggers of any role may call it.
CREATE FUNCTION realtime.send(payload jsonb, event text, topic text, private boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
  generated_id uuid;
  final_payload jsonb;
BEGIN
  BEGIN
    generated_id := pg_catalog.gen_random_uuid();
    final_payload := CASE
      WHEN payload ? 'id' THEN payload
      ELSE pg_catalog.jsonb_set(payload, '{id}', pg_catalog.to_jsonb(generated_id))
    END;
    PERFORM pg_catalog.set_config('realtime.topic', topic, true);
    INSERT INTO realtime.messages (id, payload, event, topic, private, extension)
    VALUES (generated_id, final_payload, event, topic, private, 'broadcast');
  EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'WarnSendingBroadcastMessage: %', SQLERRM;
  END;
END
$$;
REVOKE ALL ON FUNCTION realtime.send(jsonb, text, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION realtime.send(jsonb, text, text, boolean) TO anon, authenticated, service_role;

-- Private-channel authorization (crates/realtime/src/authorize.rs): probe rows written as
-- Galley's owner, in a transaction that is always rolled back, whose visibility to the
-- subscriber's role under these policies says whether it may read the channel.
CREATE FUNCTION galley.realtime_probe(ids uuid[], topic text, extensions text[]) RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = ''
AS $$
  INSERT INTO realtime.messages (id, topic, extension)
  SELECT probe.id, topic, probe.extension
  FROM unnest(ids, extensions) AS probe(id, extension)
$$;
REVOKE ALL ON FUNCTION galley.realtime_probe(uuid[], text, text[]) FROM PUBLIC;
GRANT USAGE ON SCHEMA galley TO authenticator;
GRANT EXECUTE ON FUNCTION galley.realtime_probe(uuid[], text, text[]) TO authenticator;
