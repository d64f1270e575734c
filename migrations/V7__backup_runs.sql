-- Scheduled backups: one row per scheduled moment (`backup.schedule`), claimed by the
-- first instance to insert it, so with several instances each scheduled backup runs
-- exactly once whatever their clocks say.
CREATE TABLE galley.backup_runs (
  slot        timestamptz PRIMARY KEY,
  started_at  timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  -- `running`, `succeeded` or `failed`.
  outcome     text        NOT NULL DEFAULT 'running',
  name        text,
  error       text
);
