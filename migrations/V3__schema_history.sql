-- The schema manager's record: every applied change, who made it, the definition before
-- and after, and the exact SQL, in order. Exported as migration files, replayed elsewhere.
CREATE TABLE galley.schema_history (
  id                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  applied_at         timestamptz NOT NULL DEFAULT now(),
  actor              text        NOT NULL,
  operation          text        NOT NULL,
  target             text        NOT NULL,
  definition_before  jsonb,
  definition_after   jsonb,
  sql                text        NOT NULL
);

-- Keeps `updated_at` current on tables created with timestamps.
CREATE FUNCTION galley.set_updated_at() RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
  NEW.updated_at := pg_catalog.now();
  RETURN NEW;
END
$$;
