//! knex: table `knex_migrations_lock` (knex's `tableName` plus `_lock`),
//! column `is_locked`.
//!
//! knex takes the lock with `UPDATE ... SET is_locked = 1 WHERE is_locked =
//! 0`; with transactions disabled that commits on its own and outlives a
//! killed process. knex records no time, so the age is unlatch's first
//! sighting (kept in `unlatch_state`, so that a restart loop adds up).
//! Freeing it is what `knex migrate:unlock` leaves behind (`is_locked = 0`),
//! done as a compare-and-swap on the row observed.
//!
//! May touch: the knex lock table only.

use async_trait::async_trait;

use crate::clock::LockZone;
use sqlx::Row;

use super::{Entry, Lock, LockState, Tool, Value, Variable};
use crate::db::{Db, Kind};
use crate::trail::Change;

const TABLE: Variable = Variable {
    name: "UNLATCH_KNEX_TABLE",
    default: Some("knex_migrations"),
    meaning: "knex's tableName (its lock table is this plus _lock)",
    value: Value::Table,
};

pub const ENTRY: Entry = Entry {
    name: "knex",
    variables: &[TABLE],
    build: |s| {
        Box::new(Knex {
            table: format!("{}_lock", s.table(&TABLE)),
        })
    },
};

pub struct Knex {
    pub table: String,
}

#[async_trait]
impl Tool for Knex {
    fn at(&self) -> (&'static str, &str, &'static str) {
        (ENTRY.name, &self.table, "is_locked")
    }

    fn dates_its_lock(&self) -> bool {
        false
    }

    fn columns(&self) -> &'static [&'static str] {
        &["index", "is_locked"]
    }

    // knex's lock table is its `tableName` plus `_lock`, and apps choose
    // the name (Nginx Proxy Manager's is `migrations`, so `migrations_lock`,
    // knex-migrator's name): found by its columns under any such name.
    fn any_name_ending(&self) -> Option<&'static str> {
        Some("_lock")
    }

    fn on_table(&self, table: &str) -> Option<Box<dyn Tool>> {
        Some(Box::new(Knex {
            table: table.to_owned(),
        }))
    }

    async fn observe(&self, db: &mut Db, _zone: &LockZone) -> anyhow::Result<LockState> {
        let index = db.kind.quote("index");
        let sql = format!(
            "SELECT {} FROM {} WHERE is_locked <> 0 ORDER BY {index} LIMIT 1",
            db.kind.text(&index),
            self.table
        );
        Ok(match db.row(&sql, &[]).await? {
            Some(row) => LockState::Held(Lock::row(&row.try_get::<String, _>(0)?, None, None)),
            None => LockState::Free,
        })
    }

    fn free(&self, kind: Kind, lock: &Lock, _zone: &LockZone) -> anyhow::Result<Change> {
        let index = kind.quote("index");
        let sql = format!(
            "UPDATE {} SET is_locked = 0 WHERE {} = ? AND is_locked <> 0",
            self.table,
            kind.text(&index)
        );
        Ok(Change::by_key("index", &lock.key, sql))
    }

    fn manual_fix(&self, _db: &Db, _seen: &LockState) -> String {
        format!(
            "knex migrate:unlock (or: UPDATE {} SET is_locked = 0;)",
            self.table
        )
    }
}
