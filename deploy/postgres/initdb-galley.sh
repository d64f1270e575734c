#!/usr/bin/env bash
# Prepares a new PostgreSQL for Galley, once: the official postgres image runs the
# scripts in /docker-entrypoint-initdb.d/ as the superuser when its data directory is
# new (deploy/compose.yaml mounts this one there, read-only).
#
# Creates the roles Galley's requests switch between (anon, authenticated, service_role
# with BYPASSRLS, which only a superuser may create on PostgreSQL 15), the login role the
# request pool uses (authenticator), and the role Galley connects as (galley_owner, with
# CREATEROLE, owning the `galley` database, and BYPASSRLS and CREATEDB for `galley backup`:
# its tables force row-level security even on their owner, who could lift that anyway; its password is read from the secret file
# GALLEY_DB_PASSWORD_FILE names). Galley itself never connects as a superuser. The same
# statements, for a PostgreSQL you run yourself: README.md, "Against a PostgreSQL you
# manage".
set -e

password_file="${GALLEY_DB_PASSWORD_FILE:-/run/secrets/galley_db_password}"
if [ ! -s "$password_file" ]; then
  echo "initdb-galley.sh: Galley's database password is missing: $password_file is empty or absent" >&2
  exit 1
fi

# psql reads the password from the file itself (a backquoted \set) and quotes it
# (:'owner_password'), so it is on no command line; PostgreSQL stores a SCRAM verifier.
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --no-password --no-psqlrc \
  --dbname postgres --set password_file="$password_file" <<'SQL'
\set owner_password `tr -d '\r\n' < :'password_file'`
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
CREATE ROLE authenticator LOGIN NOINHERIT;
CREATE ROLE galley_owner LOGIN CREATEROLE BYPASSRLS CREATEDB PASSWORD :'owner_password';
CREATE DATABASE galley OWNER galley_owner;
SQL
echo "initdb-galley.sh: roles anon, authenticated, service_role, authenticator, galley_owner and the database galley are ready"
