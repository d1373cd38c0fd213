//! Prisma Migrate: table `_prisma_migrations`; a row with `finished_at` and
//! `rolled_back_at` both NULL is a migration that failed or died (P3009:
//! "migrate found failed migrations in the target database").
//!
//! Prisma writes `started_at` itself, in UTC (a `timestamptz` on
//! PostgreSQL), so the TTL applies to it. Its repair is
//! `prisma migrate resolve --rolled-back <name>`, which sets
//! `rolled_back_at`; unlatch does the same, guarded by the row's id and
//! both columns still NULL.
//!
//! May touch: `_prisma_migrations` only.

use async_trait::async_trait;
use jiff::tz::TimeZone;

use crate::clock::LockZone;
use sqlx::Row;

use super::{Entry, Lock, LockState, Tool};
use crate::clock;
use crate::db::{Db, Kind};
use crate::trail::Change;

const TABLE: &str = "_prisma_migrations";

pub const ENTRY: Entry = Entry {
    name: "prisma",
    variables: &[],
    build: |_| Box::new(Prisma),
};

pub struct Prisma;

#[async_trait]
impl Tool for Prisma {
    fn at(&self) -> (&'static str, &str, &'static str) {
        (ENTRY.name, TABLE, "finished_at and rolled_back_at NULL")
    }

    fn columns(&self) -> &'static [&'static str] {
        &["id", "migration_name", "started_at", "finished_at", "rolled_back_at"]
    }

    async fn observe(&self, db: &mut Db, _zone: &LockZone) -> anyhow::Result<LockState> {
        let sql = format!(
            "SELECT id, migration_name, {} FROM {TABLE} WHERE finished_at IS NULL AND rolled_back_at IS NULL \
             ORDER BY started_at LIMIT 1",
            db.kind.text("started_at")
        );
        let Some(row) = db.row(&sql, &[]).await? else {
            return Ok(LockState::Free);
        };
        let (id, name, started): (String, String, Option<String>) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        // Prisma's clock is UTC; a timestamptz carries its own offset.
        let taken = started
            .as_deref()
            .and_then(|t| clock::parse_lock_time(t, &TimeZone::UTC));
        Ok(LockState::Held(
            Lock::dirty(&name, &id, started, taken).read_by("UTC"),
        ))
    }

    fn free(&self, kind: Kind, lock: &Lock, _zone: &LockZone) -> anyhow::Result<Change> {
        // The same representation Prisma uses for its own timestamps.
        let now = match kind {
            Kind::Postgres => "CURRENT_TIMESTAMP",
            Kind::MySql => "UTC_TIMESTAMP(3)",
            Kind::Sqlite
                if lock
                    .acquired_at
                    .as_deref()
                    .is_some_and(|t| t.bytes().all(|b| b.is_ascii_digit())) =>
            {
                "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
            }
            Kind::Sqlite => "strftime('%Y-%m-%d %H:%M:%f', 'now')",
        };
        let sql = format!(
            "UPDATE {TABLE} SET rolled_back_at = {now} WHERE id = ? AND finished_at IS NULL AND rolled_back_at IS NULL"
        );
        Ok(Change::by_key("id", &lock.key, sql))
    }

    /// prisma-engines: `pg_advisory_lock(72707369)`.
    fn advisory_key(&self, _database: &str, _schema: &str) -> Option<i64> {
        Some(72_707_369)
    }

    fn manual_fix(&self, _db: &Db, seen: &LockState) -> String {
        match seen {
            LockState::Held(Lock {
                stuck: super::Stuck::Dirty { migration },
                ..
            }) => {
                format!("npx prisma migrate resolve --rolled-back {migration}")
            }
            _ => String::new(),
        }
    }
}
