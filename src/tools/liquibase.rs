//! Liquibase: table `DATABASECHANGELOGLOCK` (`databaseChangeLogLockTableName`),
//! row `ID = 1`, columns `LOCKED`, `LOCKGRANTED`, `LOCKEDBY`.
//!
//! Liquibase writes `LOCKGRANTED` with the database's own clock and
//! `LOCKEDBY` as `host (ip)`, and never expires a lock ("Waiting for
//! changelog lock...."). The age is measured against the database's clock,
//! so no zone is needed. Freeing it is what `liquibase releaseLocks` does
//! (`LOCKED = FALSE, LOCKGRANTED = NULL, LOCKEDBY = NULL`), guarded by the
//! observed grant time and holder.
//!
//! May touch: the Liquibase lock table only.

use async_trait::async_trait;

use crate::clock::LockZone;
use sqlx::Row;

use super::{Entry, Lock, LockState, Tool, Value, Variable};
use crate::db::{Db, Kind};
use crate::trail::Change;

const TABLE: Variable = Variable {
    name: "UNLATCH_LIQUIBASE_TABLE",
    default: Some("DATABASECHANGELOGLOCK"),
    meaning: "Liquibase's lock table",
    value: Value::Table,
};

pub const ENTRY: Entry = Entry {
    name: "liquibase",
    variables: &[TABLE],
    build: |s| {
        Box::new(Liquibase {
            table: s.table(&TABLE),
        })
    },
};

pub struct Liquibase {
    pub table: String,
}

#[async_trait]
impl Tool for Liquibase {
    fn at(&self) -> (&'static str, &str, &'static str) {
        (ENTRY.name, &self.table, "ID 1")
    }

    async fn observe(&self, db: &mut Db, _zone: &LockZone) -> anyhow::Result<LockState> {
        let sql = format!(
            "SELECT CASE WHEN LOCKED THEN 1 ELSE 0 END, {}, LOCKEDBY FROM {} WHERE ID = 1",
            db.kind.text("LOCKGRANTED"),
            self.table
        );
        let Some(row) = db.row(&sql, &[]).await? else {
            return Ok(LockState::Free);
        };
        if row.try_get::<i64, _>(0)? == 0 {
            return Ok(LockState::Free);
        }
        let granted: Option<String> = row.try_get(1)?;
        let holder: Option<String> = row.try_get(2)?;
        let lock = Lock::row("1", granted, None).by_database_clock(db).await?;
        Ok(LockState::Held(Lock { holder, ..lock }))
    }

    fn free(&self, kind: Kind, lock: &Lock, _zone: &LockZone) -> anyhow::Result<Change> {
        let sql = format!(
            "UPDATE {} SET LOCKED = FALSE, LOCKGRANTED = NULL, LOCKEDBY = NULL WHERE ID = 1 AND LOCKED AND {} AND {}",
            self.table,
            kind.same(&kind.text("LOCKGRANTED"), "?"),
            kind.same("LOCKEDBY", "?")
        );
        let args = [lock.acquired_at.as_deref(), lock.holder.as_deref()];
        Ok(Change::new(&[("ID", "1")], sql, &args))
    }

    fn manual_fix(&self, _db: &Db, _seen: &LockState) -> String {
        format!(
            "liquibase releaseLocks (or: UPDATE {} SET LOCKED = FALSE, LOCKGRANTED = NULL, LOCKEDBY = NULL WHERE ID = 1;)",
            self.table
        )
    }
}
