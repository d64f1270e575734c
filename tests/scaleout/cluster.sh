# Shared by tests/scaleout/run and scripts/bench-scaleout (sourced, not run): one
# PostgreSQL on loopback prepared as an operator would, several `galley serve` instances
# started at the same moment against it, and an HAProxy configuration in front of them.
# The caller sets `galley` (the binary) and `label` (the prefix of messages) first, and
# exports any further GALLEY_* settings before `start_instances`. Everything started is
# stopped by pid on exit.

if ! command -v haproxy >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { echo "$label: haproxy is missing (apt-get install haproxy)" >&2; exit 1; }
  echo "$label: installing haproxy" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null
fi
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -x "$pg_bin/initdb" ] || { echo "$label: PostgreSQL server binaries are missing" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# PostgreSQL refuses to run as root: as root, the cluster runs as `postgres`.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

work="$(mktemp -d "${TMPDIR:-/tmp}/galley-scaleout.XXXXXX")"
chmod 711 "$work"
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ -f "$work/pg/postmaster.pid" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
  fi
  if [ "$status" -ne 0 ]; then
    for log in "$work"/galley-*.log "$work/haproxy.log"; do
      [ -f "$log" ] || continue
      echo "--- last lines of $(basename "$log")" >&2
      tail -n 8 "$log" >&2
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# One PostgreSQL on loopback, prepared as an operator would (README: the four roles and a
# non-superuser owner that owns the database).
pg_port="$(free_port)"
mkdir -p "$work/pg" "$work/sock"
[ "$(id -u)" -eq 0 ] && chown postgres "$work/pg" "$work/sock"
as_pg "$pg_bin/initdb" -D "$work/pg" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$work/pg" -w -l "$work/pg/server.log" \
  -o "-p $pg_port -k $work/sock -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" \
  start >/dev/null
db_password="$(openssl rand -hex 16)"
psql_admin() { as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$work/sock" -p "$pg_port" -U postgres "$@"; }
psql_admin -d postgres <<SQL
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
CREATE ROLE authenticator LOGIN NOINHERIT;
CREATE ROLE galley_owner LOGIN CREATEROLE PASSWORD '$db_password';
CREATE DATABASE app OWNER galley_owner;
SQL

# Secrets as files, as containers mount them.
mkdir -m 700 "$work/secrets"
openssl rand -hex 32 >"$work/secrets/jwt_secret"
echo "$db_password" >"$work/secrets/db_password"


# `start_instances N`: N instances started together; fills `ports` and `galley_pids`,
# sets `started_ms` and `ready_ms`, and returns once every one answers /health/ready.
ports=()
galley_pids=()
start_instances() {
  local n="$1" i url
  export GALLEY_DATABASE_URL="postgres://galley_owner@127.0.0.1:$pg_port/app"
  export GALLEY_DATABASE_PASSWORD_FILE="$work/secrets/db_password"
  export GALLEY_AUTH_JWT_SECRET_FILE="$work/secrets/jwt_secret"
  export GALLEY_DATABASE_ALLOW_UNSAFE_DURABILITY=true # the test cluster runs with fsync off
  export GALLEY_LOG_FORMAT=json
  for i in $(seq 1 "$n"); do
    ports+=("$(free_port)")
  done
  started_ms="$(date +%s%3N)"
  for i in $(seq 1 "$n"); do
    "$galley" serve --listen "127.0.0.1:${ports[$((i - 1))]}" --metrics-listen 127.0.0.1:0 \
      --data-dir "$work/data-$i" >/dev/null 2>"$work/galley-$i.log" &
    galley_pids+=($!)
    pids+=($!)
  done
  for i in $(seq 1 "$n"); do
    url="http://127.0.0.1:${ports[$((i - 1))]}"
    for _ in $(seq 1 600); do
      "$galley" health --url "$url/health/ready" >/dev/null 2>&1 && break
      kill -0 "${galley_pids[$((i - 1))]}" 2>/dev/null || { echo "$label: instance $i exited" >&2; exit 1; }
      sleep 0.1
    done
  done
  ready_ms="$(date +%s%3N)"
}
