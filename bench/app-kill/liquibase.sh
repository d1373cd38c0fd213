#!/bin/bash
# kill -> lock freed -> app up, Liquibase 4.28.0 as Rundeck runs it, unlatch defaults.
# usage: bench/app-kill/liquibase.sh postgres|mariadb
# Needs: the servers of tests (PostgreSQL 127.0.0.1:5432 user postgres trust, MariaDB 127.0.0.1:3306 root),
# cargo build, and (Liquibase) the liquibaseapp npm fixture installed by cargo test --test e2e_liquibase.
T=$(mktemp -d)
set -u
W=$(cd "$(dirname "$0")/../.." && pwd); F=$W/tests/fixtures/liquibaseapp
export LIQUIBASE_HOME=$(ls -d /var/cache/unlatch/npm/liquibaseapp-*/node_modules/liquibase/dist/liquibase | head -1)
db=m_$(date +%s%N | tail -c 8)
if [ "$1" = postgres ]; then
  psql -qh 127.0.0.1 -U postgres -d test -c "CREATE DATABASE $db"
  export RUNDECK_DATABASE_URL=jdbc:postgresql://127.0.0.1:5432/$db RUNDECK_DATABASE_USERNAME=postgres RUNDECK_DATABASE_PASSWORD=pw
  q() { psql -h 127.0.0.1 -U postgres -d $db -Atc "$1"; }
else
  mysql -h127.0.0.1 -uroot -e "CREATE DATABASE $db"
  export RUNDECK_DATABASE_URL=jdbc:mariadb://127.0.0.1:3306/$db RUNDECK_DATABASE_USERNAME=root RUNDECK_DATABASE_PASSWORD=
  q() { mysql -h127.0.0.1 -uroot $db -N -e "$1"; }
fi
SLOW=5 setsid $F/update.sh > $T/m_first.log 2>&1 & pg=$!
until grep -q "Running Changeset: changelog.sql::2" $T/m_first.log; do sleep 0.05; done
kill -KILL -- -$pg; t0=$(date +%s.%N)
echo "killed; lock: $(q 'SELECT LOCKED FROM DATABASECHANGELOGLOCK')"
SLOW=0 UNLATCH_LOG_FORMAT=json UNLATCH_MIGRATE_CMD=$F/update.sh $W/target/debug/unlatch -- sh -c "date +%s.%N > $T/m_up" > $T/m_unlatch.log 2>&1
rc=$?
wait
up=$(cat $T/m_up)
freed=$(grep '^{' $T/m_unlatch.log | grep -m1 -E 'freed it|marked version' | python3 -c 'import sys,json; print(json.loads(sys.stdin.read())["time"])' | xargs -I{} date -d {} +%s.%N)
echo "lock freed $(echo "$freed - $t0" | bc) s after the kill"
echo "unlatch exit $rc; app up $(echo "$up - $t0" | bc) s after the kill"
grep '^{' $T/m_unlatch.log | grep -v trail | python3 -c 'import sys,json; [print(json.loads(l)["time"][11:23], json.loads(l).get("msg","")[:300]) for l in sys.stdin]'
