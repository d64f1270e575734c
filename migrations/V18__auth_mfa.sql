-- Multi-factor authentication, as Supabase Auth keeps it: a user's factors (TOTP apps,
-- WebAuthn passkeys), the challenges issued for them, and which factor raised a session
-- to aal2.
--
-- A TOTP secret is stored sealed (ChaCha20-Poly1305 under a key derived from the project
-- secret, the factor's id bound as associated data), so a copy of the table alone does
-- not yield codes. `last_step` is the last 30-second step a code was accepted for: no
-- code works twice.
CREATE TABLE auth.mfa_factors (
  id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id             uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  -- Unique per user, the empty name included, as GoTrue checks it.
  friendly_name       text        NOT NULL DEFAULT '',
  factor_type         text        NOT NULL CHECK (factor_type IN ('totp', 'webauthn')),
  status              text        NOT NULL DEFAULT 'unverified' CHECK (status IN ('unverified', 'verified')),
  secret              bytea,
  last_step           bigint      NOT NULL DEFAULT 0,
  -- A passkey's public key, counter and flags once registered (webauthn-rs's Passkey).
  web_authn_credential jsonb,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  last_challenged_at  timestamptz,
  -- Wrong codes in a row, across challenges: past ten, each further try waits twice as
  -- long as the one before (one minute, then two, up to about seventeen hours).
  failed_attempts     integer     NOT NULL DEFAULT 0,
  last_failed_at      timestamptz,
  CONSTRAINT mfa_factors_friendly_name_length CHECK (length(friendly_name) <= 256),
  CONSTRAINT mfa_factors_totp_has_secret CHECK (factor_type <> 'totp' OR secret IS NOT NULL)
);
CREATE INDEX mfa_factors_user_id_idx ON auth.mfa_factors (user_id);
CREATE UNIQUE INDEX mfa_factors_user_friendly_name_key ON auth.mfa_factors (user_id, friendly_name);
REVOKE ALL ON auth.mfa_factors FROM PUBLIC;

-- A challenge is answered from the address it was issued to, within its lifetime, at
-- most five times wrong.
CREATE TABLE auth.mfa_challenges (
  id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  factor_id        uuid        NOT NULL REFERENCES auth.mfa_factors (id) ON DELETE CASCADE,
  created_at       timestamptz NOT NULL DEFAULT now(),
  verified_at      timestamptz,
  ip_address       text        NOT NULL,
  failed_attempts  integer     NOT NULL DEFAULT 0,
  -- A WebAuthn ceremony's server state between its options and its answer.
  web_authn_state  jsonb
);
CREATE INDEX mfa_challenges_factor_id_idx ON auth.mfa_challenges (factor_id);
REVOKE ALL ON auth.mfa_challenges FROM PUBLIC;

ALTER TABLE auth.sessions
  ADD COLUMN factor_id uuid REFERENCES auth.mfa_factors (id) ON DELETE SET NULL;
CREATE INDEX sessions_factor_id_idx ON auth.sessions (factor_id);
