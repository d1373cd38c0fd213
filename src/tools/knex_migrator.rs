//! knex-migrator (Ghost): table `migrations_lock`, one row `lock_key='km01'`.
//!
//! `locked` truthy means held; `acquired_at` is the holder's local time with
//! no zone. Freeing it is knex-migrator's own documented manual fix
//! (`UPDATE migrations_lock SET locked=0 WHERE lock_key='km01'`), plus the
//! `released_at` its `unlock()` writes, guarded by the observed
//! `acquired_at` so that a lock taken again in between is never freed. A
//! missing row is put back unlocked, as knex-migrator#94 advises.
//!
//! May touch: `migrations_lock` only.

use async_trait::async_trait;

use crate::clock::LockZone;
use sqlx::Row;

use super::{Entry, Lock, LockState, Tool};
use crate::clock;
use crate::db::{Db, Kind};
use crate::trail::Change;

const TABLE: &str = "migrations_lock";
const KEY: &str = "km01";

pub const ENTRY: Entry = Entry {
    name: "knex-migrator",
    variables: &[],
    build: |_| Box::new(KnexMigrator),
};

pub struct KnexMigrator;

#[async_trait]
impl Tool for KnexMigrator {
    fn at(&self) -> (&'static str, &str, &'static str) {
        (ENTRY.name, TABLE, "lock_key 'km01'")
    }

    fn columns(&self) -> &'static [&'static str] {
        &["lock_key", "locked", "acquired_at", "released_at"]
    }

    async fn observe(&self, db: &mut Db, zone: &LockZone) -> anyhow::Result<LockState> {
        let columns = format!(
            "CASE WHEN locked THEN 1 ELSE 0 END, {}",
            db.kind.text("acquired_at")
        );
        let row = if db.kind == Kind::Postgres {
            // The row picked here, not by a WHERE: planning one (the
            // primary key's index and its statistics) cost a fresh backend
            // about 0.3 ms, on a table of a row or two. The comparison is
            // the same: PostgreSQL compares text byte for byte.
            let sql = format!("SELECT {columns}, CAST(lock_key AS TEXT) FROM {TABLE}");
            let mut found = None;
            for row in db.simple_rows(&sql).await? {
                if row.try_get::<Option<String>, _>(2)?.as_deref() == Some(KEY) {
                    found = Some(row);
                    break;
                }
            }
            found
        } else {
            // MySQL compares with the column's collation, as knex-migrator's
            // own query does.
            let sql = format!("SELECT {columns} FROM {TABLE} WHERE lock_key = '{KEY}'");
            db.row(&sql, &[]).await?
        };
        let Some(row) = row else {
            return Ok(LockState::Missing);
        };
        if row.try_get::<i64, _>(0)? == 0 {
            return Ok(LockState::Free);
        }
        let acquired_at: Option<String> = row.try_get(1)?;
        let taken = acquired_at
            .as_deref()
            .and_then(|t| clock::parse_lock_time(t, zone));
        Ok(LockState::Held(Lock::row(KEY, acquired_at, taken).read_by(
            zone.iana_name().unwrap_or("the configured zone"),
        )))
    }

    fn restore(&self, kind: Kind) -> Option<Change> {
        let sql = format!(
            "INSERT INTO {TABLE} (lock_key, locked) SELECT '{KEY}', FALSE{} \
             WHERE NOT EXISTS (SELECT 1 FROM {TABLE} WHERE lock_key = '{KEY}')",
            if kind == Kind::MySql { " FROM DUAL" } else { "" }
        );
        Some(Change::new(&[("lock_key", KEY)], sql, &[]))
    }

    fn free(&self, kind: Kind, lock: &Lock, zone: &LockZone) -> anyhow::Result<Change> {
        let now = clock::now_text(zone, kind == Kind::Postgres);
        let sql = format!(
            "UPDATE {TABLE} SET locked = FALSE, released_at = {} \
             WHERE lock_key = '{KEY}' AND locked AND {}",
            kind.timestamp_param(),
            kind.same(&kind.text("acquired_at"), "?"),
        );
        let args = [Some(now.as_str()), lock.acquired_at.as_deref()];
        Ok(Change::new(&[("lock_key", KEY)], sql, &args))
    }

    fn manual_fix(&self, db: &Db, seen: &LockState) -> String {
        let f = if db.kind == Kind::Postgres {
            "false"
        } else {
            "0"
        };
        match seen {
            LockState::Missing => format!(
                "INSERT INTO {TABLE} (lock_key, locked, acquired_at, released_at) VALUES ('{KEY}', {f}, NULL, NULL);"
            ),
            _ => format!("UPDATE {TABLE} SET locked={f} WHERE lock_key='{KEY}';"),
        }
    }
}
