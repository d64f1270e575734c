-- OAuth and OpenID Connect sign-in, as Supabase Auth keeps it: a user's identities at
-- external providers (one row per provider account, the provider's claims kept as
-- `identity_data`), and the sign-ins under way between `/authorize` and `/callback`.
CREATE TABLE auth.identities (
  id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  -- The provider's subject for the account (`sub`, or GitHub's numeric id).
  provider_id      text        NOT NULL,
  user_id          uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  identity_data    jsonb       NOT NULL DEFAULT '{}'::jsonb,
  provider         text        NOT NULL,
  last_sign_in_at  timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  email            text        GENERATED ALWAYS AS (lower(identity_data ->> 'email')) STORED,
  CONSTRAINT identities_provider_id_provider_key UNIQUE (provider_id, provider),
  CONSTRAINT identities_data_is_object CHECK (jsonb_typeof(identity_data) = 'object')
);
CREATE INDEX identities_user_id_idx ON auth.identities (user_id);
CREATE INDEX identities_email_idx ON auth.identities (email);
REVOKE ALL ON auth.identities FROM PUBLIC;

-- A sign-in under way: the browser carries `state` to the provider and back; only its
-- SHA-256 is kept. Each holds the PKCE verifier and nonce Galley sent the provider, the
-- app's own PKCE challenge (when it started one), and, when linking, the user the
-- identity joins. Used once, within ten minutes.
CREATE TABLE auth.oauth_states (
  id                     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  state_hash             bytea       NOT NULL UNIQUE,
  provider               text        NOT NULL,
  redirect_to            text        NOT NULL,
  code_verifier          text        NOT NULL,
  nonce                  text        NOT NULL,
  code_challenge         text,
  code_challenge_method  text        CHECK (code_challenge_method IN ('s256', 'plain')),
  link_user_id           uuid        REFERENCES auth.users (id) ON DELETE CASCADE,
  created_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oauth_states_link_user_id_idx ON auth.oauth_states (link_user_id);
CREATE INDEX oauth_states_created_at_idx ON auth.oauth_states (created_at);
REVOKE ALL ON auth.oauth_states FROM PUBLIC;

-- An OAuth sign-in that the app finishes with PKCE: the provider's own tokens wait here
-- for the exchange, sealed as TOTP secrets are (the flow state's id bound to them).
ALTER TABLE auth.flow_states
  ADD COLUMN provider_access_token  bytea,
  ADD COLUMN provider_refresh_token bytea;
