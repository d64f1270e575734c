-- Passkeys (WebAuthn) as a way to sign in, as Supabase Auth keeps them: each registered
-- credential with its public key and signature counter (webauthn-rs's `Passkey`, as
-- JSON), and the ceremonies under way: the server's state between the options it sent
-- and the answer, used once and within five minutes.
CREATE TABLE auth.webauthn_credentials (
  id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id        uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  credential_id  bytea       NOT NULL UNIQUE,
  credential     jsonb       NOT NULL,
  friendly_name  text        NOT NULL DEFAULT '' CHECK (length(friendly_name) <= 120),
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  last_used_at   timestamptz
);
CREATE INDEX webauthn_credentials_user_id_idx ON auth.webauthn_credentials (user_id);
REVOKE ALL ON auth.webauthn_credentials FROM PUBLIC;

CREATE TABLE auth.webauthn_challenges (
  id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  -- The user registering; none for a sign-in (the credential names its user).
  user_id     uuid        REFERENCES auth.users (id) ON DELETE CASCADE,
  kind        text        NOT NULL CHECK (kind IN ('registration', 'authentication')),
  state       jsonb       NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL
);
CREATE INDEX webauthn_challenges_user_id_idx ON auth.webauthn_challenges (user_id);
CREATE INDEX webauthn_challenges_expires_at_idx ON auth.webauthn_challenges (expires_at);
REVOKE ALL ON auth.webauthn_challenges FROM PUBLIC;
