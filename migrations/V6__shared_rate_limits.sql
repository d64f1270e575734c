-- Rate-limit buckets every instance shares: the per-account limit on sign-ins and
-- recovery mails must hold across instances behind a load balancer, not multiply by
-- their number. One row per (bucket, SHA-256 of the key); a row untouched for a window
-- is full again and pruned. UNLOGGED: a crash empties the buckets (limits restart
-- full), which costs nothing that matters and spares the WAL one write per sign-in.
CREATE UNLOGGED TABLE galley.rate_limits (
  bucket     text             NOT NULL,
  key        text             NOT NULL,
  tokens     double precision NOT NULL,
  allowed    boolean          NOT NULL,
  updated_at timestamptz      NOT NULL,
  PRIMARY KEY (bucket, key)
);
CREATE INDEX rate_limits_updated_at_idx ON galley.rate_limits (updated_at);
