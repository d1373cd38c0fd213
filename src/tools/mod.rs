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

mod knex_migrator;

use async_trait::async_trait;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::config::ToolChoice;
use crate::db::Db;
use crate::exit::{Code, Failure};

pub use knex_migrator::KnexMigrator;

/// The names `UNLATCH_TOOL` accepts besides `auto`.
pub const NAMES: &[&str] = &[KnexMigrator::NAME];

/// Every adapter, in the order `auto` tries them.
pub fn all() -> Vec<Box<dyn Tool>> {
    vec![Box::new(KnexMigrator)]
}

/// The canonical name for `name`, if it is a tool unlatch knows.
pub fn known(name: &str) -> Option<&'static str> {
    NAMES.iter().copied().find(|n| *n == name)
}

/// The adapter called `name`.
pub fn named(name: &str) -> Option<Box<dyn Tool>> {
    all().into_iter().find(|t| t.name() == name)
}

/// A lock as a tool left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// Nobody holds it.
    Free,
    /// Somebody holds it, or did when they died.
    Held(Lock),
    /// The lock's row is gone; the tool treats that as locked, yet no
    /// process can hold it (it needs the row to take the lock).
    Missing,
}

/// A held lock, as observed: what a compare-and-swap compares against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// The holder's timestamp exactly as the database renders it.
    pub acquired_at: Option<String>,
    /// That timestamp read as an instant, when it can be.
    pub taken: Option<Timestamp>,
}

#[async_trait]
pub trait Tool: Send + Sync {
    /// The tool's name, as `UNLATCH_TOOL` spells it.
    fn name(&self) -> &'static str;

    /// Where the lock lives, for messages: `migrations_lock (lock_key 'km01')`.
    fn place(&self) -> String;

    /// Whether this tool's lock table is in the database.
    async fn detect(&self, db: &mut Db) -> anyhow::Result<bool>;

    /// The lock as it is now. Reads only.
    async fn observe(&self, db: &mut Db, zone: &TimeZone) -> anyhow::Result<LockState>;

    /// Frees the lock if, and only if, it is still exactly as `seen`
    /// (a compare-and-swap). `Ok(false)`: it changed; nothing was written.
    async fn release(&self, db: &mut Db, seen: &LockState, zone: &TimeZone)
        -> anyhow::Result<bool>;

    /// The statement a person would run to free `seen` by hand.
    fn manual_fix(&self, db: &Db, seen: &LockState) -> String;
}

/// The tool whose lock to look after: the one named, or the one whose
/// tables are found. `None`: nothing to heal (no lock table yet).
pub async fn select(choice: ToolChoice, db: &mut Db) -> anyhow::Result<Option<Box<dyn Tool>>> {
    let candidates = match choice {
        ToolChoice::Named(name) => named(name).into_iter().collect(),
        ToolChoice::Auto => all(),
    };
    let mut found = Vec::new();
    for tool in candidates {
        if tool.detect(db).await? {
            found.push(tool);
        }
    }
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
    if found.is_empty() {
        let looked: Vec<_> = match choice {
            ToolChoice::Named(name) => named(name).into_iter().collect(),
            ToolChoice::Auto => all(),
        }
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
