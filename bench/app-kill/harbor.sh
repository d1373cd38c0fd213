#!/bin/bash
# kill -> dirty marker healed -> harbor-core (stand-in) up; unlatch in front from the first start,
# Harbor's variables + UNLATCH_ON_DIRTY=retry, every other setting at its default.
# Needs: the servers of tests (PostgreSQL 127.0.0.1:5432 user postgres trust, MariaDB 127.0.0.1:3306 root),
# cargo build, and (Liquibase) the liquibaseapp npm fixture installed by cargo test --test e2e_liquibase.
T=$(mktemp -d)
set -u
W=$(cd "$(dirname "$0")/../.." && pwd); F=$W/tests/fixtures/harborapp
db=h_$(date +%s%N | tail -c 8)
psql -qh 127.0.0.1 -U postgres -d test -c "CREATE DATABASE $db"
export POSTGRESQL_HOST=127.0.0.1 POSTGRESQL_USERNAME=postgres POSTGRESQL_PASSWORD=pw POSTGRESQL_DATABASE=$db
export POSTGRES_MIGRATION_SCRIPTS_PATH=$F/migrations UNLATCH_ON_DIRTY=retry UNLATCH_LOG_FORMAT=json UNLATCH_MIGRATE_CMD=$F/migrate.sh
export HARBORAPP_LOCK_ID=$(python3 -c "import zlib,sys; print((zlib.crc32(b'public\0schema_migrations\0$db')*1486364155) & 0xffffffff)")
q() { psql -h 127.0.0.1 -U postgres -d $db -Atc "$1" 2>/dev/null; }
HARBORAPP_SLOW=5 $W/target/debug/unlatch -- true > $T/h_first.log 2>&1 & u=$!
until [ "$(q 'SELECT version, dirty FROM schema_migrations')" = "2|t" ]; do sleep 0.1; done
child=$(pgrep -P $u | head -1)
kill -KILL $u; kill -KILL -- -$child; t0=$(date +%s.%N)
echo "killed; schema_migrations: $(q 'SELECT version, dirty FROM schema_migrations')"
HARBORAPP_SLOW=0 $W/target/debug/unlatch -- sh -c "date +%s.%N > $T/h_up" > $T/h_unlatch.log 2>&1
rc=$?
up=$(cat $T/h_up)
freed=$(grep '^{' $T/h_unlatch.log | grep -m1 -E 'marked version' | python3 -c 'import sys,json; print(json.loads(sys.stdin.read())["time"])' | xargs -I{} date -d {} +%s.%N)
echo "marker healed $(echo "$freed - $t0" | bc) s after the kill"
echo "unlatch exit $rc; harbor-core up $(echo "$up - $t0" | bc) s after the kill; now $(q 'SELECT version, dirty FROM schema_migrations')"
grep '^{' $T/h_unlatch.log | grep -v trail | python3 -c 'import sys,json; [print(json.loads(l)["time"][11:23], json.loads(l).get("msg","")[:300]) for l in sys.stdin]'
