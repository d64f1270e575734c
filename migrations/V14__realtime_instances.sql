-- The instances serving realtime, each seen every few seconds: broadcasts and presence
-- cross instances (through galley.realtime_changes) only while more than one is alive.
CREATE TABLE galley.realtime_instances (
  id      text        PRIMARY KEY,
  seen_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON galley.realtime_instances FROM PUBLIC;
