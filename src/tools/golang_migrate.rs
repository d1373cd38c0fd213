//! golang-migrate: table `schema_migrations` (`x-migrations-table`), one row
//! `(version, dirty)`.
//!
//! golang-migrate sets `dirty` before a migration and clears it after, so a
//! run that died or failed leaves "Dirty database version N. Fix and force
//! version." It records no time: the age is unlatch's first sighting. Its
//! repair is `migrate force V` with V the version before N, which means the
//! failed migration counts as not applied; unlatch does the same (the row
//! replaced by `(V, false)`, or removed when N was the first), which needs
//! the migrations folder (`UNLATCH_GOLANG_MIGRATE_PATH`) to know V.
//!
//! May touch: golang-migrate's version table only.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::clock::LockZone;
use sqlx::Row;

use super::{Entry, Lock, LockState, Tool, Value, Variable};
use crate::db::{Db, Kind};
use crate::trail::Change;
use crate::exit::{Code, Failure};

const TABLE: Variable = Variable {
    name: "UNLATCH_GOLANG_MIGRATE_TABLE",
    default: Some("schema_migrations"),
    meaning: "golang-migrate's version table",
    value: Value::Table,
};
const PATH: Variable = Variable {
    name: "UNLATCH_GOLANG_MIGRATE_PATH",
    default: None,
    meaning: "golang-migrate's migrations folder, to find the version before a dirty one",
    value: Value::Folder,
};

pub const ENTRY: Entry = Entry {
    name: "golang-migrate",
    variables: &[TABLE, PATH],
    build: |s| {
        Box::new(GolangMigrate {
            table: s.table(&TABLE),
            path: s.get(PATH.name).map(PathBuf::from),
        })
    },
};

pub struct GolangMigrate {
    pub table: String,
    pub path: Option<PathBuf>,
}

impl GolangMigrate {

    /// The version before `dirty` among the folder's `<version>_*.up.*`
    /// files; `None` when there is none (golang-migrate's nil version).
    fn previous_version(dir: &Path, dirty: u64) -> anyhow::Result<Option<u64>> {
        let mut best = None;
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let Some((version, rest)) = name.split_once('_') else {
                continue;
            };
            let (Ok(version), true) = (version.parse::<u64>(), rest.contains(".up.")) else {
                continue;
            };
            if version < dirty && best.is_none_or(|b| version > b) {
                best = Some(version);
            }
        }
        Ok(best)
    }
}

#[async_trait]
impl Tool for GolangMigrate {
    fn at(&self) -> (&'static str, &str, &'static str) {
        (ENTRY.name, &self.table, "dirty")
    }

    fn dates_its_lock(&self) -> bool {
        false
    }

    // Others (dbmate, Rails) name their table schema_migrations too;
    // only golang-migrate's has `dirty`.
    fn columns(&self) -> &'static [&'static str] {
        &["version", "dirty"]
    }

    async fn observe(&self, db: &mut Db, _zone: &LockZone) -> anyhow::Result<LockState> {
        let sql = format!(
            "SELECT {} FROM {} WHERE dirty LIMIT 1",
            db.kind.text("version"),
            self.table
        );
        Ok(match db.row(&sql, &[]).await? {
            Some(row) => {
                let version: String = row.try_get(0)?;
                LockState::Held(Lock::dirty(
                    &format!("version {version}"),
                    &version,
                    None,
                    None,
                ))
            }
            None => LockState::Free,
        })
    }

    fn free(&self, kind: Kind, lock: &Lock, _zone: &LockZone) -> anyhow::Result<Change> {
        let Some(path) = &self.path else {
            let why = format!(
                "{}: marking a dirty golang-migrate version as not applied needs {}, \
                 the migrations folder, to find the version before it",
                self.table, PATH.name
            );
            return Err(Failure::new(Code::Config, why).into());
        };
        let previous = Self::previous_version(path, lock.key.parse()?)?.map(|v| v.to_string());
        let delete = format!(
            "DELETE FROM {} WHERE {} = ? AND dirty",
            self.table,
            kind.text("version")
        );
        // The table now empty means the delete matched: put the previous
        // version in, clean, as `migrate force` does.
        let insert = format!(
            "INSERT INTO {t} (version, dirty) SELECT {}, FALSE{} WHERE NOT EXISTS (SELECT 1 FROM {t})",
            kind.int_param(),
            if kind == Kind::MySql { " FROM DUAL" } else { "" },
            t = self.table
        );
        // The rows touched: the whole table, which golang-migrate keeps at
        // one row; putting it back replaces the version forced in.
        let change = Change::new(&[], delete, &[Some(&lock.key)]);
        Ok(match &previous {
            Some(previous) => change.then(insert, &[Some(previous)]),
            None => change,
        })
    }

    /// database/util.go `GenerateAdvisoryLockId(db, schema, table)`: the
    /// CRC-32 of `schema\0table\0db`, times 1486364155, as a uint32.
    fn advisory_key(&self, database: &str, schema: &str) -> Option<i64> {
        let name = format!("{schema}\0{}\0{database}", self.table);
        Some(i64::from(
            crc32fast::hash(name.as_bytes()).wrapping_mul(1_486_364_155),
        ))
    }

    fn manual_fix(&self, _db: &Db, seen: &LockState) -> String {
        let LockState::Held(lock) = seen else {
            return String::new();
        };
        let previous = self
            .path
            .as_ref()
            .and_then(|p| Self::previous_version(p, lock.key.parse().ok()?).ok())
            .map(|v| v.map_or_else(|| "-1".to_owned(), |v| v.to_string()))
            .unwrap_or_else(|| format!("<the version before {}>", lock.key));
        let path = self
            .path
            .as_ref()
            .map_or("<migrations folder>".to_owned(), |p| {
                p.display().to_string()
            });
        format!("migrate -path {path} -database \"$DATABASE_URL\" force {previous}")
    }
}
