//! goose's lease lock (`goose_lock`, since v3.26; PostgreSQL): one row per
//! lock id, `locked`, `locked_at`, `locked_by`, `lease_expires_at`.
//!
//! goose takes the row when it is free or its lease has run out
//! (`... WHERE locked = false OR lease_expires_at < now()`, in
//! lock/internal/store/postgres.go) and renews the lease while it runs
//! (30 s lease, 5 s heartbeat by default, lock/postgres.go): a killed
//! holder's lease expires by itself and the next goose takes it over. So a
//! held row is reported, never healed.
//!
//! May touch: nothing (it reads `goose_lock`).

use async_trait::async_trait;
use sqlx::Row;

use super::{Entry, Lock, LockState, Tool, Value, Variable};
use crate::clock::LockZone;
use crate::db::{Db, Kind};
use crate::trail::Change;

const TABLE: Variable = Variable {
    name: "UNLATCH_GOOSE_LOCK_TABLE",
    default: Some("goose_lock"),
    meaning: "goose's lease-lock table (WithTableName); reported only",
    value: Value::Table,
};

pub const ENTRY: Entry = Entry {
    name: "goose",
    variables: &[TABLE],
    build: |s| {
        Box::new(Goose {
            table: s.table(&TABLE),
        })
    },
};

const WHY: &str = "goose's lease lock expires by itself (lease_expires_at) and the next goose \
     takes it over; nothing to heal";

pub struct Goose {
    pub table: String,
}

#[async_trait]
impl Tool for Goose {
    fn at(&self) -> (&'static str, &str, &'static str) {
        (ENTRY.name, &self.table, "locked")
    }

    fn columns(&self) -> &'static [&'static str] {
        &["lock_id", "locked", "locked_at", "locked_by", "lease_expires_at"]
    }

    async fn observe(&self, db: &mut Db, _zone: &LockZone) -> anyhow::Result<LockState> {
        let k = db.kind;
        let sql = format!(
            "SELECT {}, {}, {}, {} FROM {} WHERE CASE WHEN locked THEN 1 ELSE 0 END = 1 ORDER BY lock_id",
            k.text("lock_id"),
            k.text("locked_at"),
            k.text("locked_by"),
            k.text("lease_expires_at"),
            self.table
        );
        let Some(row) = db.row(&sql, &[]).await? else {
            return Ok(LockState::Free);
        };
        let key: String = row.try_get(0)?;
        let lock = Lock::row(&key, row.try_get(1)?, None).report_only(WHY);
        let holder: Option<String> = row.try_get(2)?;
        let expires: Option<String> = row.try_get(3)?;
        let holder = holder.map(|h| match &expires {
            Some(e) => format!("{h}, lease until {e}"),
            None => h,
        });
        Ok(LockState::Held(Lock { holder, ..lock }))
    }

    fn free(&self, _kind: Kind, _lock: &Lock, _zone: &LockZone) -> anyhow::Result<Change> {
        anyhow::bail!("{}: {WHY}", self.place())
    }

    fn manual_fix(&self, _db: &Db, _seen: &LockState) -> String {
        "nothing: goose takes over a lease that has run out".to_owned()
    }
}
