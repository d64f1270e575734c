-- The admin UI's SQL console: what each admin ran (kept for the history page), and the
-- snippets admins saved. Both are Galley's own bookkeeping, read through /admin/v1/sql.
CREATE TABLE galley.sql_history (
  id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ran_at      timestamptz NOT NULL DEFAULT now(),
  -- `admin:<email>`, or the key's role.
  actor       text        NOT NULL,
  -- `owner`, `service_role`, `anon` or `user:<uuid>`.
  run_as      text        NOT NULL,
  sql         text        NOT NULL,
  committed   boolean     NOT NULL,
  elapsed_ms  double precision NOT NULL,
  -- Rows the last statement returned or touched; NULL when it failed.
  row_count   bigint,
  error       text
);
CREATE INDEX sql_history_actor_idx ON galley.sql_history (actor, id);

CREATE TABLE galley.sql_snippets (
  id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text        NOT NULL UNIQUE,
  sql         text        NOT NULL,
  created_by  text        NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);
