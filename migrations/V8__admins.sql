-- Admins: the people who run this deployment through /admin. They are not app users:
-- their accounts, passwords and sessions live here, apart from auth.users, and no app
-- token can become one.
CREATE TABLE galley.admins (
  id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  email           text        NOT NULL,
  -- argon2id, PHC string.
  password_hash   text        NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  last_sign_in_at timestamptz
);
CREATE UNIQUE INDEX admins_email_idx ON galley.admins (lower(email));

-- Signed-in admins. The browser's cookie holds a random token; only its SHA-256 is kept.
-- A session ends at `expires_at` (absolute) or when unused for the idle limit, both
-- checked on every request.
CREATE TABLE galley.admin_sessions (
  token_hash   bytea       PRIMARY KEY,
  admin_id     uuid        NOT NULL REFERENCES galley.admins (id) ON DELETE CASCADE,
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  user_agent   text,
  source_ip    text
);
CREATE INDEX admin_sessions_admin_idx ON galley.admin_sessions (admin_id);

-- One-time links that let the first admin set a password in the browser: printed by
-- `galley serve` while no admin exists. Only the token's SHA-256 is kept.
CREATE TABLE galley.admin_setup_tokens (
  token_hash bytea       PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at    timestamptz
);
