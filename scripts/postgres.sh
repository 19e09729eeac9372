# A throwaway PostgreSQL server for the tests, sourced by scripts/test.sh (or by hand:
# `source scripts/postgres.sh && postgres_start`, then run `cargo test` in that shell).
#
# postgres_start installs Debian's `postgresql` when it is missing (apt, as root or through
# sudo), makes a cluster in a temporary directory (initdb refuses to run as root, so as root it
# runs as the `postgres` user), starts it on 127.0.0.1 with a free port and its socket in that
# directory, creates a role with a random password that may create databases (each test makes
# its own) and a database, and exports GATEWAY_TEST_POSTGRES_URL. postgres_stop stops the
# server and removes the directory; it is safe to call twice. The cluster trades durability
# for speed (fsync off): the tests kill gateways, never this server.

postgres_start() {
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends postgresql >/dev/null \
      || { $sudo apt-get update >/dev/null \
        && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends postgresql >/dev/null; }
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  fi
  # As root, the server runs as `postgres`; otherwise as whoever runs the tests.
  local as=()
  if [ "$(id -u)" -eq 0 ]; then
    as=(runuser -u postgres --)
  fi
  POSTGRES_TEST_DIR="$(mktemp -d /tmp/gateway-postgres.XXXXXX)"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$POSTGRES_TEST_DIR"
  POSTGRES_TEST_BIN="$bin"
  POSTGRES_TEST_AS=("${as[@]}")
  local port password
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  "${as[@]}" "$bin/initdb" -D "$POSTGRES_TEST_DIR/data" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >"$POSTGRES_TEST_DIR/initdb.log" 2>&1 \
    || { cat "$POSTGRES_TEST_DIR/initdb.log"; return 1; }
  "${as[@]}" "$bin/pg_ctl" -D "$POSTGRES_TEST_DIR/data" -l "$POSTGRES_TEST_DIR/server.log" -w \
    -o "-p $port -k $POSTGRES_TEST_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
    start >/dev/null || { cat "$POSTGRES_TEST_DIR/server.log"; return 1; }
  "${as[@]}" "$bin/psql" -q -v ON_ERROR_STOP=1 -h "$POSTGRES_TEST_DIR" -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE gateway LOGIN CREATEDB PASSWORD '$password'" \
    -c "CREATE DATABASE gateway OWNER gateway" >/dev/null
  export GATEWAY_TEST_POSTGRES_URL="postgres://gateway:$password@127.0.0.1:$port/gateway"
  echo "postgres: $("$bin/postgres" --version) on 127.0.0.1:$port ($POSTGRES_TEST_DIR)"
}

postgres_stop() {
  if [ -n "${POSTGRES_TEST_DIR:-}" ] && [ -d "$POSTGRES_TEST_DIR" ]; then
    "${POSTGRES_TEST_AS[@]}" "$POSTGRES_TEST_BIN/pg_ctl" -D "$POSTGRES_TEST_DIR/data" -m fast -w stop \
      >/dev/null 2>&1 || true
    rm -rf "$POSTGRES_TEST_DIR"
  fi
  POSTGRES_TEST_DIR=""
}
