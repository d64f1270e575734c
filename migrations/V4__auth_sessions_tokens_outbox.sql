-- Auth: what Supabase Auth keeps about an account's mail, its sessions, the single-use
-- tokens that emailed links carry, and the outbox mail leaves through.

ALTER TABLE auth.users
  ADD COLUMN invited_at            timestamptz,
  ADD COLUMN confirmation_sent_at  timestamptz,
  ADD COLUMN recovery_sent_at      timestamptz,
  -- A new address waiting for its confirmation before it replaces `email`.
  ADD COLUMN email_change          text,
  ADD COLUMN email_change_sent_at  timestamptz,
  ADD CONSTRAINT users_email_change_is_normalised
    CHECK (email_change IS NULL OR (email_change = lower(btrim(email_change)) AND email_change <> ''));

-- One row per signed-in device. The refresh token is not stored: it is a MAC over the
-- session id and `refresh_counter` under a key derived from the project secret, so the
-- row holds nothing that could be replayed. Rotation bumps the counter; a token for an
-- older counter is reuse.
CREATE TABLE auth.sessions (
  id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id          uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  refresh_counter  bigint      NOT NULL DEFAULT 0,
  refreshed_at     timestamptz,
  aal              text        NOT NULL DEFAULT 'aal1',
  -- The sign-in methods, newest first, as the `amr` claim carries them.
  amr              jsonb       NOT NULL DEFAULT '[]'::jsonb,
  user_agent       text,
  ip               text
);
CREATE INDEX sessions_user_id_idx ON auth.sessions (user_id);
REVOKE ALL ON auth.sessions FROM PUBLIC;

-- Links sent by mail: only the SHA-256 of the token is kept; each is used once.
CREATE TABLE auth.one_time_tokens (
  id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id     uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  kind        text        NOT NULL CHECK (kind IN ('confirmation', 'recovery', 'email_change')),
  token_hash  bytea       NOT NULL UNIQUE,
  -- The address the token was sent to (for an email change, the new one).
  relates_to  text        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz
);
CREATE INDEX one_time_tokens_user_kind_idx ON auth.one_time_tokens (user_id, kind);
REVOKE ALL ON auth.one_time_tokens FROM PUBLIC;

-- Mail waiting to be sent. Workers on every instance claim rows with
-- FOR UPDATE SKIP LOCKED; a failed send is retried with backoff; a sent mail keeps its
-- envelope but loses its body (the link in it is a credential).
CREATE TABLE galley.outbox (
  id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind             text        NOT NULL,
  recipient        text        NOT NULL,
  subject          text        NOT NULL,
  body_text        text        NOT NULL,
  body_html        text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  attempts         integer     NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  sent_at          timestamptz,
  last_error       text
);
CREATE INDEX outbox_pending_idx ON galley.outbox (next_attempt_at) WHERE sent_at IS NULL;
