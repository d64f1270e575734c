#!/usr/bin/env bash
# TEST STAND-IN entrypoint (see the Dockerfile beside it): the part of the official
# postgres image's contract that deploy/compose.yaml relies on.
#
# - POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) is required on a new data directory;
#   POSTGRES_USER (default postgres), POSTGRES_DB (default: the user's name),
#   POSTGRES_INITDB_ARGS and PGDATA are honoured, each also as a *_FILE variable.
# - On a new data directory only: initdb, host connections by scram-sha-256 from
#   anywhere, listen_addresses = '*', then /docker-entrypoint-initdb.d/*.sh (run when
#   executable, sourced otherwise), *.sql and *.sql.gz against a server that listens on
#   the Unix socket only.
# - Then the server (`postgres` and the given options) replaces this script, as the
#   postgres user.
set -Eeo pipefail

# file_env VAR [DEFAULT]: VAR, or the content of the file VAR_FILE names.
file_env() {
  local var="$1" file_var="${1}_FILE" default="${2:-}" value
  if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
    echo "error: both $var and $file_var are set (but are exclusive)" >&2
    exit 1
  fi
  value="$default"
  if [ -n "${!var:-}" ]; then
    value="${!var}"
  elif [ -n "${!file_var:-}" ]; then
    value="$(<"${!file_var}")"
  fi
  export "$var"="$value"
  unset "$file_var"
}

# Options first (`-c fsync=on`): they are the server's.
if [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi

if [ "$1" != postgres ]; then
  exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
  install -d -o postgres -g postgres -m 0700 "$PGDATA"
  install -d -o postgres -g postgres -m 2777 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
file_env POSTGRES_INITDB_ARGS

psql_cmd=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "$POSTGRES_PASSWORD" ]; then
    echo "error: the database is uninitialized and no superuser password is given:" \
      "set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE" >&2
    exit 1
  fi
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS holds several words
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    $POSTGRES_INITDB_ARGS
  printf '\n%s\n' "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  printf '\n%s\n' "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"

  export PGPASSWORD="$POSTGRES_PASSWORD"
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p 5432" start
  if [ "$POSTGRES_DB" != postgres ]; then
    "${psql_cmd[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then
          echo "$0: running $f"
          "$f"
        else
          echo "$0: sourcing $f"
          # shellcheck disable=SC1090
          . "$f"
        fi
        ;;
      *.sql)
        echo "$0: running $f"
        "${psql_cmd[@]}" --dbname "$POSTGRES_DB" -f "$f"
        ;;
      *.sql.gz)
        echo "$0: running $f"
        gunzip -c "$f" | "${psql_cmd[@]}" --dbname "$POSTGRES_DB"
        ;;
      *)
        if [ -e "$f" ]; then
          echo "$0: ignoring $f"
        fi
        ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  unset PGPASSWORD
  echo "$0: PostgreSQL init process complete; ready for start up."
fi

exec "$@"
