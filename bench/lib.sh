# Helpers shared by the bash benches (sourced, not run): the release build,
# the knex-migrator fixture, and the servers named by UNLATCH_TEST_MYSQL_URL
# and UNLATCH_TEST_POSTGRES_URL (the test suite's variables). Every bench
# makes databases of its own, named unlatch_bench_<bench>_<pid>, and drops
# them on exit.

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# The binaries measured: the release build, or, with BENCH_BIN_DIR set (as
# bench/run does), the copies in that folder, so that a rebuild meanwhile
# cannot change what a run measures.
UNLATCH=${BENCH_BIN_DIR:-$ROOT/target/release}/unlatch
# One bare PostgreSQL connection, no client library (examples/pg-bare).
BARE=${BENCH_BIN_DIR:-$ROOT/target/release/examples}/pg-bare
FX=$ROOT/tests/fixtures/knexapp   # knex-migrator 6.2.1, as Ghost uses it
KM=$FX/node_modules/.bin

build() {
  [ -n "${BENCH_BIN_DIR:-}" ] || cargo build --release --quiet --bin unlatch --example stale-lock --example pg-bare
}

# The build the Dockerfile ships (static glibc, not position-independent),
# of unlatch and of the bare connection alike: STATIC_UNLATCH, STATIC_BARE.
build_static() {
  local triple dir
  triple=$(rustc -vV | sed -n 's/^host: //p')
  dir=$ROOT/target/$triple/release
  if [ -n "${BENCH_BIN_DIR:-}" ]; then
    STATIC_UNLATCH=$BENCH_BIN_DIR/static/unlatch STATIC_BARE=$BENCH_BIN_DIR/static/pg-bare
    return
  fi
  RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    cargo build --release --quiet --target "$triple" --bin unlatch --example pg-bare
  STATIC_UNLATCH=$dir/unlatch STATIC_BARE=$dir/examples/pg-bare
}

# The fixture's node_modules (knex-migrator, better-sqlite3 compiled here:
# about two minutes the first time).
need_knexapp() {
  [ -x "$KM/knex-migrator-health" ] && return
  echo "installing tests/fixtures/knexapp (npm install, about 2 minutes)..." >&2
  (cd "$FX" && npm install --no-audit --no-fund >&2)
}

# MariaDB/MySQL: host, port, user and password from UNLATCH_TEST_MYSQL_URL.
if [ -n "${UNLATCH_TEST_MYSQL_URL:-}" ]; then
  IFS=$'\t' read -r MY_HOST MY_PORT MY_USER MY_PASS < <(python3 -c '
import sys, urllib.parse as u
p = u.urlparse(sys.argv[1])
print(p.hostname or "127.0.0.1", p.port or 3306, u.unquote(p.username or "root"), u.unquote(p.password or "") or "-", sep="\t")' "$UNLATCH_TEST_MYSQL_URL")
  [ "$MY_PASS" = - ] && MY_PASS=
fi
my() { MYSQL_PWD="$MY_PASS" mariadb -h "$MY_HOST" -P "$MY_PORT" -u "$MY_USER" "$@"; }
pg() { psql -qAtX -v ON_ERROR_STOP=1 "$@"; }
# The URL of database $2 on the server of URL $1.
url_for() { local base=${1%%\?*}; echo "${base%/*}/$2"; }

# Words for `env`: the fixture's variables for a knex-migrator database,
# $1 = sqlite3 (then $2 is the file) or mysql (then $2 is the database).
knex_env() {
  if [ "$1" = sqlite3 ]; then
    echo "FIXTURE_VERSION=1.1 FIXTURE_DB_CLIENT=sqlite3 FIXTURE_DB_FILE=$2"
  else
    echo "FIXTURE_VERSION=1.1 FIXTURE_DB_CLIENT=mysql FIXTURE_DB_HOST=$MY_HOST FIXTURE_DB_PORT=$MY_PORT FIXTURE_DB_USER=$MY_USER FIXTURE_DB_PASSWORD=$MY_PASS FIXTURE_DB_NAME=$2"
  fi
}

# A Ghost-like database that knex-migrator itself made: init at 1.1 (every
# migration recorded), lock free, `knex-migrator health` passes.
knex_init() {
  # shellcheck disable=SC2046
  env $(knex_env "$1" "$2") "$KM/knex-migrator-init" --mgpath "$FX" >/dev/null
  env $(knex_env "$1" "$2") "$KM/knex-migrator-health" --mgpath "$FX" >/dev/null
}

# The statement that makes the lock what a killed migrate leaves (locked=1,
# acquired two hours ago, in local time as knex-migrator writes it), or, with
# $2 = 0, free again; for engine $1.
lock_sql() {
  local locked=${2:-1} released=3
  [ "$locked" = 1 ] || released=1
  if [ "$1" = sqlite3 ]; then
    echo "UPDATE migrations_lock SET locked=$locked, acquired_at=datetime('now','localtime','-2 hours'), released_at=datetime('now','localtime','-$released hours') WHERE lock_key='km01'"
  else
    echo "UPDATE migrations_lock SET locked=$locked, acquired_at=NOW() - INTERVAL 2 HOUR, released_at=NOW() - INTERVAL $released HOUR WHERE lock_key='km01'"
  fi
}

# hyperfine -N, run $3 times over and merged into one JSON file $1 (the
# results' "times"): hyperfine runs all of one command's runs in one block,
# and on a noisy machine the load drifts from block to block, so rounds of a
# few runs per command, interleaved, make the side-by-side figures fair. $2
# is the warm-up of the first round (later ones warm up once); the rest are
# hyperfine's arguments (commands, names, --prepare, --runs...).
hyperfine_rounds() {
  local json=$1 warmup=$2 rounds=$3 i
  shift 3
  for ((i = 1; i <= rounds; i++)); do
    [ "$i" = 1 ] || warmup=1
    hyperfine -N --style none --warmup "$warmup" --export-json "$json.$i" "$@" >/dev/null 2>"$json.err" || {
      cat "$json.err" >&2; return 1; }
  done
  python3 - "$json" "$rounds" <<'PY'
import json, sys
path, rounds = sys.argv[1], int(sys.argv[2])
merged = {}
for i in range(1, rounds + 1):
    for r in json.load(open(f"{path}.{i}"))["results"]:
        merged.setdefault(r["command"], []).extend(r["times"])
json.dump({"results": [{"command": c, "times": t} for c, t in merged.items()]}, open(path, "w"))
PY
}

# knex-migrator's lock table on PostgreSQL, free (knex-migrator cannot make
# one there: see bench/startup).
KM_LOCK_SQL="CREATE TABLE migrations_lock (lock_key varchar(191) primary key, locked boolean default false, acquired_at timestamptz, released_at timestamptz); INSERT INTO migrations_lock VALUES ('km01',false,NULL,NULL)"

# A private TLS-enabled PostgreSQL (ssl=on, trust authentication, a fresh
# RSA 2048 certificate), on a free port of 127.0.0.1: sets TLS_PORT and
# TLS_DIR; stop_tls_postgres stops it and removes its folder. On failure,
# returns 1 with the reason in TLS_WHY.
start_tls_postgres() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ "$(id -u)" = 0 ] || { TLS_WHY="needs root (the server runs as the postgres user)"; return 1; }
  [ -n "$bin" ] || { TLS_WHY="no PostgreSQL server binaries in /usr/lib/postgresql"; return 1; }
  id postgres >/dev/null 2>&1 || { TLS_WHY="no postgres user"; return 1; }
  command -v openssl >/dev/null || { TLS_WHY="no openssl"; return 1; }
  TLS_DIR=$(mktemp -d)
  TLS_PG_BIN=$bin
  TLS_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.crt" >/dev/null 2>&1
  chmod 600 "$TLS_DIR/server.key"
  chown -R postgres: "$TLS_DIR"
  runuser -u postgres -- "$bin/initdb" -D "$TLS_DIR/data" -U postgres --auth=trust --no-sync -E UTF8 >/dev/null 2>&1 ||
    { TLS_WHY="initdb failed"; return 1; }
  runuser -u postgres -- "$bin/pg_ctl" -D "$TLS_DIR/data" -w -t 60 -l "$TLS_DIR/server.log" \
    -o "-p $TLS_PORT -k $TLS_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on -c ssl_cert_file=$TLS_DIR/server.crt -c ssl_key_file=$TLS_DIR/server.key" \
    start >/dev/null 2>&1 || { TLS_WHY="pg_ctl start failed: $(tail -n 3 "$TLS_DIR/server.log" 2>/dev/null)"; return 1; }
}

stop_tls_postgres() {
  [ -n "${TLS_DIR:-}" ] || return 0
  [ -z "${TLS_PG_BIN:-}" ] || runuser -u postgres -- "$TLS_PG_BIN/pg_ctl" -D "$TLS_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$TLS_DIR"
  TLS_DIR=
}
