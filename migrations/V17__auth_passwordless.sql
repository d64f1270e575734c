-- Passwordless sign-in: every mailed token also carries a six-digit code, typed in
-- instead of following the link. Only a hash of the code is kept, salted by the address
-- it was sent to; wrong codes are counted, and a token whose code was missed five times
-- is dead. Magic links, invitations and reauthentication codes are kinds of their own.
ALTER TABLE auth.one_time_tokens DROP CONSTRAINT one_time_tokens_kind_check;
ALTER TABLE auth.one_time_tokens ADD CONSTRAINT one_time_tokens_kind_check
  CHECK (kind IN ('confirmation', 'recovery', 'email_change', 'magiclink', 'invite', 'reauthentication'));
ALTER TABLE auth.one_time_tokens
  ADD COLUMN code_hash        bytea,
  ADD COLUMN failed_attempts  integer NOT NULL DEFAULT 0;
CREATE INDEX one_time_tokens_relates_to_idx ON auth.one_time_tokens (relates_to) WHERE used_at IS NULL;

ALTER TABLE auth.users ADD COLUMN reauthentication_sent_at timestamptz;

-- PKCE (`flow_type: 'pkce'`): a mailed link started with a code challenge does not carry
-- the session to the browser; following it issues a single-use authorization code that
-- only the holder of the challenge's verifier can exchange (`grant_type=pkce`). The code
-- is kept as its SHA-256.
CREATE TABLE auth.flow_states (
  id                     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id                uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  code_challenge         text        NOT NULL,
  code_challenge_method  text        NOT NULL CHECK (code_challenge_method IN ('s256', 'plain')),
  -- How the session it leads to was authenticated, as the `amr` claim names it.
  authentication_method  text        NOT NULL,
  auth_code_hash         bytea       UNIQUE,
  auth_code_issued_at    timestamptz,
  created_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX flow_states_user_id_idx ON auth.flow_states (user_id);
REVOKE ALL ON auth.flow_states FROM PUBLIC;

ALTER TABLE auth.one_time_tokens
  ADD COLUMN flow_state_id uuid REFERENCES auth.flow_states (id) ON DELETE CASCADE;
CREATE INDEX one_time_tokens_flow_state_id_idx ON auth.one_time_tokens (flow_state_id);
