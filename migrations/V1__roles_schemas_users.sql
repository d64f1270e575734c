-- Galley's foundation: the API roles, the `auth` and `galley` schemas, `auth.users`, and
-- the Supabase-compatible helpers that RLS policies call.

-- Roles are cluster-wide, so a second database on the same server finds them already
-- there. `service_role` needs BYPASSRLS, which PostgreSQL 15 lets only a superuser grant:
-- this is why the first start needs a superuser (or pre-created roles).
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
    CREATE ROLE anon NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
    CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'authenticator') THEN
    -- NOINHERIT: authenticator has no privileges of its own; a request must
    -- SET LOCAL ROLE to one of the API roles to see anything.
    CREATE ROLE authenticator LOGIN NOINHERIT;
  END IF;
END
$$;

GRANT anon, authenticated, service_role TO authenticator;

-- Nothing is reachable by default; the schema manager grants per table.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;

CREATE SCHEMA IF NOT EXISTS galley;
REVOKE ALL ON SCHEMA galley FROM PUBLIC;

CREATE SCHEMA auth;
REVOKE ALL ON SCHEMA auth FROM PUBLIC;
-- Policies call auth.uid() and friends as the request's role.
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;

-- Accounts, shaped like Supabase Auth's table so that policies and queries written for
-- Supabase (`auth.users.id`, `email`, `raw_user_meta_data`, ...) work unchanged.
CREATE TABLE auth.users (
  id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  aud                 text        NOT NULL DEFAULT 'authenticated',
  role                text        NOT NULL DEFAULT 'authenticated',
  email               text,
  encrypted_password  text,
  email_confirmed_at  timestamptz,
  phone               text,
  phone_confirmed_at  timestamptz,
  last_sign_in_at     timestamptz,
  raw_app_meta_data   jsonb       NOT NULL DEFAULT '{}'::jsonb,
  raw_user_meta_data  jsonb       NOT NULL DEFAULT '{}'::jsonb,
  is_anonymous        boolean     NOT NULL DEFAULT false,
  banned_until        timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  deleted_at          timestamptz,
  CONSTRAINT users_email_is_normalised CHECK (email IS NULL OR (email = lower(btrim(email)) AND email <> '')),
  CONSTRAINT users_role_is_known CHECK (role IN ('authenticated', 'service_role')),
  CONSTRAINT users_app_meta_is_object CHECK (jsonb_typeof(raw_app_meta_data) = 'object'),
  CONSTRAINT users_user_meta_is_object CHECK (jsonb_typeof(raw_user_meta_data) = 'object')
);
CREATE UNIQUE INDEX users_email_key ON auth.users (email) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX users_phone_key ON auth.users (phone) WHERE phone IS NOT NULL;
REVOKE ALL ON auth.users FROM PUBLIC;

-- The request's JWT claims live in the transaction-local setting `request.jwt.claims`.
-- These helpers read it exactly as Supabase's do (including the older per-claim
-- settings), so policies written for Supabase work here. They are plain SQL so the
-- planner can inline them into policies; every name in them resolves in pg_catalog,
-- which is searched first whatever the caller's search_path.
CREATE FUNCTION auth.uid() RETURNS uuid
LANGUAGE sql STABLE
AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

CREATE FUNCTION auth.role() RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

CREATE FUNCTION auth.jwt() RETURNS jsonb
LANGUAGE sql STABLE
AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

GRANT EXECUTE ON FUNCTION auth.uid(), auth.role(), auth.jwt() TO anon, authenticated, service_role;
