//! Migration tools: how each one records that it holds its lock, and how to
//! free that lock exactly as the tool's own repair would.
//!
//! One file per tool, each implementing [`Tool`]; [`all`] lists them, and
//! that list is the only place a new tool is added. An adapter reads and
//! writes only its tool's own tables, and never decides anything: whether a
//! lock is stale, and what to do about it, is `heal`'s job.
//!
//! Error semantics: `Err` means the database could not be read or written
//! (unlatch stops); a lock that changed between look and swap is not an
//! error but `Ok(false)` from [`Tool::release`], and the caller looks again.

mod flyway;
mod golang_migrate;
mod knex;
mod knex_migrator;
mod liquibase;
mod prisma;
mod sqlx_tool;

use async_trait::async_trait;

use crate::clock::LockZone;
use jiff::Timestamp;

use crate::config::ToolChoice;
use crate::db::Db;
use crate::exit::{Code, Failure};

pub use flyway::Flyway;
pub use golang_migrate::GolangMigrate;
pub use knex::Knex;
pub use knex_migrator::KnexMigrator;
pub use liquibase::Liquibase;
pub use prisma::Prisma;
pub use sqlx_tool::Sqlx;

/// The names `UNLATCH_TOOL` accepts besides `auto`.
pub const NAMES: &[&str] = &[
    KnexMigrator::NAME,
    Knex::NAME,
    Liquibase::NAME,
    GolangMigrate::NAME,
    Prisma::NAME,
    Flyway::NAME,
    Sqlx::NAME,
];

/// What the tools let users change (`UNLATCH_*_TABLE`), and where
/// golang-migrate's migrations are (to find the version before a dirty one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolSettings {
    /// knex's `tableName`; its lock table is this plus `_lock`.
    pub knex: String,
    pub liquibase_lock: String,
    pub golang_migrate: String,
    pub flyway: String,
    pub golang_migrate_path: Option<std::path::PathBuf>,
}

impl Default for ToolSettings {
    fn default() -> ToolSettings {
        ToolSettings {
            knex: "knex_migrations".into(),
            liquibase_lock: "DATABASECHANGELOGLOCK".into(),
            golang_migrate: "schema_migrations".into(),
            flyway: "flyway_schema_history".into(),
            golang_migrate_path: None,
        }
    }
}

/// A table name the `*_TABLE` settings take: ASCII letters, digits and
/// `_`, not starting with a digit. The adapters write it unquoted, so it
/// must mean the same quoted or not (on MySQL; on PostgreSQL, lowercase).
pub fn is_table_name(value: &str) -> bool {
    let mut chars = value.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl ToolSettings {
    /// Takes the tables a URL or a tool's own variables name, for the
    /// tools whose `UNLATCH_*_TABLE` left the default.
    pub fn take_tables(&mut self, named: &[(&'static str, String)]) {
        let defaults = ToolSettings::default();
        for (tool, table) in named {
            let (slot, default) = match *tool {
                GolangMigrate::NAME => (&mut self.golang_migrate, defaults.golang_migrate.as_str()),
                Flyway::NAME => (&mut self.flyway, defaults.flyway.as_str()),
                Liquibase::NAME => (&mut self.liquibase_lock, defaults.liquibase_lock.as_str()),
                Knex::NAME => (&mut self.knex, defaults.knex.as_str()),
                _ => continue,
            };
            if slot == default {
                slot.clone_from(table);
            }
        }
    }
}

/// Every adapter, in the order `auto` tries them.
pub fn all(tables: &ToolSettings) -> Vec<Box<dyn Tool>> {
    vec![
        Box::new(KnexMigrator),
        Box::new(Knex {
            table: format!("{}_lock", tables.knex),
        }),
        Box::new(Liquibase {
            table: tables.liquibase_lock.clone(),
        }),
        Box::new(GolangMigrate {
            table: tables.golang_migrate.clone(),
            path: tables.golang_migrate_path.clone(),
        }),
        Box::new(Prisma),
        Box::new(Flyway {
            table: tables.flyway.clone(),
        }),
        Box::new(Sqlx),
    ]
}

/// The canonical name for `name`, if it is a tool unlatch knows.
pub fn known(name: &str) -> Option<&'static str> {
    NAMES.iter().copied().find(|n| *n == name)
}

/// The adapters `choice` allows.
pub fn candidates(choice: ToolChoice, tables: &ToolSettings) -> Vec<Box<dyn Tool>> {
    let all = all(tables);
    match choice {
        ToolChoice::Named(name) => all.into_iter().filter(|t| t.name() == name).collect(),
        ToolChoice::Auto => all,
    }
}

/// What a tool left in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// Nothing blocks the next run.
    Free,
    /// A lock held, or a migration marked dirty or failed.
    Held(Lock),
    /// The lock's row is gone; the tool treats that as locked, yet no
    /// process can hold it (it needs the row to take the lock).
    Missing,
}

/// What kind of thing blocks the tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stuck {
    /// A lock row that survives its holder (knex, knex-migrator, Liquibase).
    Lock,
    /// A migration marked dirty or failed, named (golang-migrate, Prisma,
    /// Flyway, sqlx): not a lock, and healed only with `UNLATCH_ON_DIRTY`.
    Dirty { migration: String },
}

/// A held lock or a dirty marker, as observed: what a compare-and-swap
/// compares against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub stuck: Stuck,
    /// Which row: the compare-and-swap's key (`km01`, a version, an id).
    pub key: String,
    /// The holder's (or the failed run's) timestamp, as the database renders it.
    pub acquired_at: Option<String>,
    /// That timestamp as an instant, when it can be read and is not in the future.
    pub taken: Option<Timestamp>,
    /// Who holds it, when the tool records that (Liquibase's LOCKEDBY).
    pub holder: Option<String>,
    /// How the timestamp was read, for messages: a zone, or "the database's clock".
    pub clock: Option<String>,
}

impl Lock {
    /// A lock row of `key`, no holder recorded.
    pub fn row(key: &str, acquired_at: Option<String>, taken: Option<Timestamp>) -> Lock {
        Lock {
            stuck: Stuck::Lock,
            key: key.to_owned(),
            acquired_at,
            taken,
            holder: None,
            clock: None,
        }
    }

    /// A dirty or failed `migration`, keyed by `key`.
    pub fn dirty(
        migration: &str,
        key: &str,
        acquired_at: Option<String>,
        taken: Option<Timestamp>,
    ) -> Lock {
        Lock {
            stuck: Stuck::Dirty {
                migration: migration.to_owned(),
            },
            key: key.to_owned(),
            acquired_at,
            taken,
            holder: None,
            clock: None,
        }
    }

    /// The same, noting how its timestamp was read.
    pub fn read_by(self, clock: &str) -> Lock {
        Lock {
            clock: Some(clock.to_owned()),
            ..self
        }
    }

    /// Everything observed, in one string: the same lock, the same string.
    pub fn signature(&self) -> String {
        format!(
            "{:?}|{}|{:?}|{:?}",
            self.stuck, self.key, self.acquired_at, self.holder
        )
    }
}

#[async_trait]
pub trait Tool: Send + Sync {
    /// The tool's name, as `UNLATCH_TOOL` spells it.
    fn name(&self) -> &'static str;

    /// The table whose presence says the tool is used here.
    fn table(&self) -> &str;

    /// Where the lock or marker lives, for messages: `migrations_lock (lock_key 'km01')`.
    fn place(&self) -> String;

    /// Given that [`Tool::table`] exists, whether it is this tool's (other
    /// tools may use the same name).
    async fn confirm(&self, _db: &mut Db) -> anyhow::Result<bool> {
        Ok(true)
    }

    /// The state as it is now. Reads only.
    async fn observe(&self, db: &mut Db, zone: &LockZone) -> anyhow::Result<LockState>;

    /// Frees the lock, or marks the failed migration as not applied, the way
    /// the tool's own repair does, if and only if it is still exactly as
    /// `seen` (a compare-and-swap). `Ok(false)`: it changed; nothing written.
    async fn release(&self, db: &mut Db, seen: &LockState, zone: &LockZone)
        -> anyhow::Result<bool>;

    /// What a person would run to do the same by hand: the tool's own
    /// repair command, or the statement.
    fn manual_fix(&self, db: &Db, seen: &LockState) -> String;

    /// The PostgreSQL advisory-lock key the tool migrates under, for this
    /// database and schema; `None` if it takes none.
    fn advisory_key(&self, _database: &str, _schema: &str) -> Option<i64> {
        None
    }
}

/// The tool whose lock to look after: the one named, or the one whose
/// tables are found. `None`: nothing to heal (no lock table yet).
/// `present`: which of the candidates' tables exist, when that was read
/// just before under the guard ([`crate::look`]).
pub async fn select(
    choice: ToolChoice,
    tables: &ToolSettings,
    db: &mut Db,
    present: Option<&[String]>,
) -> anyhow::Result<Option<Box<dyn Tool>>> {
    let found = detected(candidates(choice, tables), db, present).await?;
    if found.len() > 1 {
        let names: Vec<_> = found.iter().map(|t| t.name()).collect();
        return Err(Failure::new(
            Code::Config,
            format!(
                "found the lock tables of {}; set UNLATCH_TOOL to the one this app uses",
                names.join(" and ")
            ),
        )
        .into());
    }
    let mut found = found;
    if found.is_empty() {
        let looked: Vec<_> = candidates(choice, tables)
            .iter()
            .map(|t| format!("{} {}", t.name(), t.place()))
            .collect();
        log::info!(
            "no migration lock table found (looked for {}): nothing to heal",
            looked.join(", ")
        );
    }
    Ok(found.pop())
}

/// The adapters among `tools` whose tables are in the database; `present`
/// as for [`select`].
pub async fn detected(
    tools: Vec<Box<dyn Tool>>,
    db: &mut Db,
    present: Option<&[String]>,
) -> anyhow::Result<Vec<Box<dyn Tool>>> {
    // One catalog query for every candidate's table (a round trip each
    // cost a few ms a start), unless it was read already; then each
    // present one confirmed.
    let present = match present {
        Some(present) => present.to_vec(),
        None => {
            let names: Vec<&str> = tools.iter().map(|t| t.table()).collect();
            db.existing_tables(&names).await?
        }
    };
    let mut found = Vec::new();
    for tool in tools {
        let there = present.iter().any(|p| p.eq_ignore_ascii_case(tool.table()));
        if there && tool.confirm(db).await? {
            found.push(tool);
        }
    }
    Ok(found)
}
