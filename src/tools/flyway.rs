//! Flyway: table `flyway_schema_history` (`flyway.table`); a row with
//! `success = false` is a failed migration ("Detected failed migration to
//! version X").
//!
//! Flyway writes such a row only after a failure it caught, on databases
//! without transactional DDL; `installed_on` is the database's clock, so the
//! age is measured against it. Its repair, `flyway repair`, removes the
//! failed rows; unlatch removes the one observed, by `installed_rank`.
//!
//! May touch: Flyway's history table only.

use async_trait::async_trait;

use crate::clock::LockZone;
use sqlx::Row;

use super::{Entry, Lock, LockState, Tool, Value, Variable};
use crate::db::{Db, Kind};
use crate::trail::Change;

const TABLE: Variable = Variable {
    name: "UNLATCH_FLYWAY_TABLE",
    default: Some("flyway_schema_history"),
    meaning: "Flyway's history table",
    value: Value::Table,
};

pub const ENTRY: Entry = Entry {
    name: "flyway",
    variables: &[TABLE],
    build: |s| {
        Box::new(Flyway {
            table: s.table(&TABLE),
        })
    },
};

pub struct Flyway {
    pub table: String,
}

#[async_trait]
impl Tool for Flyway {
    fn at(&self) -> (&'static str, &str, &'static str) {
        (ENTRY.name, &self.table, "success = false")
    }

    fn columns(&self) -> &'static [&'static str] {
        &["installed_rank", "version", "description", "installed_on", "success"]
    }

    async fn observe(&self, db: &mut Db, _zone: &LockZone) -> anyhow::Result<LockState> {
        let sql = format!(
            "SELECT {}, version, description, {} FROM {} WHERE NOT success ORDER BY installed_rank LIMIT 1",
            db.kind.text("installed_rank"),
            db.kind.text("installed_on"),
            self.table
        );
        let Some(row) = db.row(&sql, &[]).await? else {
            return Ok(LockState::Free);
        };
        let rank: String = row.try_get(0)?;
        let version: Option<String> = row.try_get(1)?;
        let description: Option<String> = row.try_get(2)?;
        let installed_on: Option<String> = row.try_get(3)?;
        let name = format!(
            "version {} ({})",
            version.as_deref().unwrap_or("repeatable"),
            description.as_deref().unwrap_or("")
        );
        Ok(LockState::Held(
            Lock::dirty(&name, &rank, installed_on, None)
                .by_database_clock(db)
                .await?,
        ))
    }

    fn free(&self, kind: Kind, lock: &Lock, _zone: &LockZone) -> anyhow::Result<Change> {
        let sql = format!(
            "DELETE FROM {} WHERE {} = ? AND NOT success",
            self.table,
            kind.text("installed_rank")
        );
        Ok(Change::by_key("installed_rank", &lock.key, sql))
    }

    /// PostgreSQLAdvisoryLockTemplate: 0x466C79776179 ("Flyway") plus the
    /// Java hashCode of the quoted table name (not checked against a live
    /// Flyway here).
    fn advisory_key(&self, _database: &str, schema: &str) -> Option<i64> {
        let quoted = format!("\"{schema}\".\"{}\"", self.table);
        let hash = quoted
            .encode_utf16()
            .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
        Some(0x466C_7977_6179 + i64::from(hash))
    }

    fn manual_fix(&self, _db: &Db, _seen: &LockState) -> String {
        "flyway repair".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advisory_key_for_the_default_table() {
        let flyway = Flyway {
            table: "flyway_schema_history".into(),
        };
        assert_eq!(
            flyway.advisory_key("app", "public"),
            Some(77_433_833_903_597)
        );
    }
}
