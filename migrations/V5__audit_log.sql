-- Who did what to this deployment: every admin action and schema change, refused or
-- applied, with where it came from. Only appended to.
CREATE TABLE galley.audit_log (
  id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at         timestamptz NOT NULL DEFAULT now(),
  -- The token's subject, or its role for an API key.
  actor      text        NOT NULL,
  -- e.g. `schema.create_table`, `auth.user_created`.
  action     text        NOT NULL,
  target     text        NOT NULL,
  source_ip  text,
  -- `applied`, `dry_run`, `refused` or `failed`.
  outcome    text        NOT NULL,
  details    jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_action_idx ON galley.audit_log (action, id);
CREATE INDEX audit_log_actor_idx ON galley.audit_log (actor, id);
