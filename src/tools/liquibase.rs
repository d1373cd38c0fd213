//! Liquibase: table `DATABASECHANGELOGLOCK` (`databaseChangeLogLockTableName`),
//! row `ID = 1`, columns `LOCKED`, `LOCKGRANTED`, `LOCKEDBY`.
//!
//! Liquibase writes `LOCKGRANTED` as the database's `NOW()` into a zone-less
//! column (LockDatabaseChangeLogGenerator, 4.28) and `LOCKEDBY` as
//! `host (ip)`, and never expires a lock ("Waiting for changelog lock....").
//! On MySQL and MariaDB, whose drivers leave the session's zone alone, that
//! is the server's clock, and the age is measured against it. On PostgreSQL
//! the JDBC driver sets the session's `TimeZone` to the JVM's zone, so the
//! value is the JVM's wall-clock time: it is read in the lock zone
//! (`UNLATCH_LOCK_TIMEZONE`, else `TZ`), which in the app's container is
//! the JVM's; against the server's clock a JVM west of it would make a live
//! lock look hours old. Freeing it is what `liquibase releaseLocks` does
//! (`LOCKED = FALSE, LOCKGRANTED = NULL, LOCKEDBY = NULL`), guarded by the
//! observed grant time and holder.
//!
//! May touch: the Liquibase lock table only.

use async_trait::async_trait;

use crate::clock::{self, LockZone};
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

    async fn observe(&self, db: &mut Db, zone: &LockZone) -> anyhow::Result<LockState> {
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
        let lock = if db.kind == Kind::Postgres {
            let taken = granted
                .as_deref()
                .and_then(|t| clock::parse_lock_time(t, zone));
            Lock::row("1", granted, taken)
                .read_by(zone.iana_name().unwrap_or("the configured zone"))
        } else {
            Lock::row("1", granted, None).by_database_clock(db).await?
        };
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
