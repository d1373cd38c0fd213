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
//! Keycloak keeps its own rows in the same table (`DBLockProvider.Namespace`:
//! 1000 KEYCLOAK_BOOT, 1001 OFFLINE_SESSIONS, beside 1) and locks a row with
//! `SELECT ID ... WHERE ID = n FOR UPDATE` in a transaction, released by
//! committing (`CustomLockDatabaseChangeLogGenerator`, `CustomLockService`
//! in keycloak/keycloak's model/jpa): it never sets `LOCKED`, and the row
//! lock ends with its session. On a table with those rows a `LOCKED` row is
//! reported, never healed: Keycloak does not wait for it.
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

/// Keycloak's own rows (`DBLockProvider.Namespace`), which say the table is Keycloak's.
const KEYCLOAK_ROWS: &[&str] = &["1000", "1001"];

const KEYCLOAK: &str = "Keycloak takes this lock with SELECT ... FOR UPDATE and releases it by \
     committing (the row lock ends with its session); it never waits on LOCKED";

pub struct Liquibase {
    pub table: String,
}

#[async_trait]
impl Tool for Liquibase {
    fn at(&self) -> (&'static str, &str, &'static str) {
        (ENTRY.name, &self.table, "ID 1")
    }

    fn columns(&self) -> &'static [&'static str] {
        &["ID", "LOCKED", "LOCKGRANTED", "LOCKEDBY"]
    }

    async fn observe(&self, db: &mut Db, zone: &LockZone) -> anyhow::Result<LockState> {
        // Every row (one, or Keycloak's three): whose table it is.
        let sql = format!(
            "SELECT {}, CASE WHEN LOCKED THEN 1 ELSE 0 END, {}, LOCKEDBY FROM {} ORDER BY ID",
            db.kind.text("ID"),
            db.kind.text("LOCKGRANTED"),
            self.table
        );
        let rows = db.rows(&sql, &[]).await?;
        let mut ids = Vec::new();
        for row in &rows {
            ids.push(row.try_get::<String, _>(0)?);
        }
        let keycloak = ids.iter().any(|id| KEYCLOAK_ROWS.contains(&id.as_str()));
        for (row, id) in rows.iter().zip(&ids) {
            if row.try_get::<i64, _>(1)? == 0 || (id != "1" && !keycloak) {
                continue;
            }
            let granted: Option<String> = row.try_get(2)?;
            let holder: Option<String> = row.try_get(3)?;
            let mut lock = granted_at(db, zone, id, granted).await?;
            if keycloak {
                lock = lock.report_only(KEYCLOAK);
            }
            return Ok(LockState::Held(Lock { holder, ..lock }));
        }
        Ok(LockState::Free)
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

/// Row `id`'s lock, its `LOCKGRANTED` read as the module's doc says: in the
/// lock zone on PostgreSQL, against the database's clock elsewhere.
async fn granted_at(
    db: &mut Db,
    zone: &LockZone,
    id: &str,
    granted: Option<String>,
) -> anyhow::Result<Lock> {
    if db.kind == Kind::Postgres {
        let taken = granted
            .as_deref()
            .and_then(|t| clock::parse_lock_time(t, zone));
        Ok(Lock::row(id, granted, taken).read_by(zone.iana_name().unwrap_or("the configured zone")))
    } else {
        Lock::row(id, granted, None).by_database_clock(db).await
    }
}
