//! sqlx: table `_sqlx_migrations`; a row with `success = false` is a
//! migration left half-applied ("migration N is partially applied; fix and
//! remove row from `_sqlx_migrations` table"). sqlx writes such rows on
//! MySQL, where DDL commits implicitly; `installed_on` is the database's
//! clock. sqlx has no repair command: its message says to delete the row,
//! which is what unlatch does, for the version observed.
//!
//! May touch: `_sqlx_migrations` only.

use async_trait::async_trait;

use crate::clock::LockZone;
use sqlx::Row;

use super::{Entry, Lock, LockState, Tool};
use crate::db::{Db, Kind};
use crate::trail::Change;

const TABLE: &str = "_sqlx_migrations";

pub const ENTRY: Entry = Entry {
    name: "sqlx",
    variables: &[],
    build: |_| Box::new(Sqlx),
};

pub struct Sqlx;

#[async_trait]
impl Tool for Sqlx {
    fn at(&self) -> (&'static str, &str, &'static str) {
        (ENTRY.name, TABLE, "success = false")
    }

    fn columns(&self) -> &'static [&'static str] {
        &["version", "description", "installed_on", "success"]
    }

    async fn observe(&self, db: &mut Db, _zone: &LockZone) -> anyhow::Result<LockState> {
        let sql = format!(
            "SELECT {}, {}, {} FROM {TABLE} WHERE NOT success ORDER BY version LIMIT 1",
            db.kind.text("version"),
            db.kind.text("description"),
            db.kind.text("installed_on")
        );
        let Some(row) = db.row(&sql, &[]).await? else {
            return Ok(LockState::Free);
        };
        let version: String = row.try_get(0)?;
        let description: String = row.try_get(1)?;
        let installed_on: Option<String> = row.try_get(2)?;
        let lock = Lock::dirty(
            &format!("{version} {description}"),
            &version,
            installed_on,
            None,
        );
        Ok(LockState::Held(lock.by_database_clock(db).await?))
    }

    fn free(&self, kind: Kind, lock: &Lock, _zone: &LockZone) -> anyhow::Result<Change> {
        let sql = format!(
            "DELETE FROM {TABLE} WHERE {} = ? AND NOT success",
            kind.text("version")
        );
        Ok(Change::by_key("version", &lock.key, sql))
    }

    /// sqlx-core `generate_lock_id`: 0x3d32ad9e times the CRC-32 of the
    /// database's name.
    fn advisory_key(&self, database: &str, _schema: &str) -> Option<i64> {
        Some(0x3d32_ad9e_i64 * i64::from(crc32fast::hash(database.as_bytes())))
    }

    fn manual_fix(&self, _db: &Db, seen: &LockState) -> String {
        let LockState::Held(lock) = seen else {
            return String::new();
        };
        format!(
            "DELETE FROM {TABLE} WHERE version = {} AND NOT success;",
            lock.key
        )
    }
}
