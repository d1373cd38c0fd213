//! Migration tools: how each one records that it holds its lock, and how to
//! free that lock exactly as the tool's own repair would.
//!
//! One file per tool: its [`Tool`], and its [`Entry`] (name, variables with
//! their defaults, how it is built from them). [`REGISTRY`] lists the
//! entries; `UNLATCH_TOOL`'s names, the tools' variables (read here, shown
//! by `--help`) and the order `auto` tries the tools all come from it, so a
//! new tool is a file and a line there. An adapter never decides anything:
//! whether a lock is stale, and what to do about it, is `heal`'s job.
//!
//! Error semantics: `Err` means the database could not be read or written
//! (unlatch stops); a lock that changed between look and swap is not an
//! error but `Ok(false)` from [`Tool::release`], and the caller looks again.
//!
//! An adapter writes nothing itself: it plans the change ([`Tool::free`],
//! [`Tool::restore`]), and [`crate::trail`] makes it and records it, with
//! the rows as they were, in one transaction.
//!
//! May touch: each tool's own tables, through its adapter only.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use jiff::Timestamp;

use crate::clock::LockZone;
use crate::db::{Db, Kind};
use crate::exit::{Code, Failure};
use crate::trail::{self, Change};

/// Declares each tool's module and lists its [`Entry`], in the order
/// `auto` tries them.
macro_rules! registry {
    ($($tool:ident),* $(,)?) => {
        $(pub mod $tool;)*
        /// Every tool unlatch knows, in the order `auto` tries them.
        pub const REGISTRY: &[Entry] = &[$($tool::ENTRY),*];
    };
}

registry!(
    knex_migrator,
    knex,
    liquibase,
    golang_migrate,
    prisma,
    flyway,
    sqlx_tool,
    goose,
);

// A test drives knex-migrator's adapter directly.
pub use knex_migrator::KnexMigrator;

/// A tool as the registry lists it.
pub struct Entry {
    /// As `UNLATCH_TOOL` spells it.
    pub name: &'static str,
    pub variables: &'static [Variable],
    /// The adapter, with the values [`ToolSettings`] read.
    pub build: fn(&ToolSettings) -> Box<dyn Tool>,
}

/// A variable a tool reads.
pub struct Variable {
    pub name: &'static str,
    /// `None`: unset unless given.
    pub default: Option<&'static str>,
    /// For `--help`.
    pub meaning: &'static str,
    pub value: Value,
}

/// What a [`Variable`]'s value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// A table name ([`table_name`]); a URL or the tool's own variables
    /// may name it instead, when it is left at its default.
    Table,
    /// An existing folder of the tool's migrations.
    Folder,
}

/// Which migration tool's lock to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    Named(&'static str),
}

/// The values given to the tools' variables, by variable name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolSettings(BTreeMap<&'static str, String>);

impl ToolSettings {
    /// The value of the variable `name`, or its default.
    pub fn get(&self, name: &str) -> Option<&str> {
        let default = || tool_variables().find(|(_, v)| v.name == name)?.1.default;
        self.0.get(name).map(String::as_str).or_else(default)
    }

    /// The table a [`Value::Table`] variable names.
    pub fn table(&self, variable: &Variable) -> String {
        self.get(variable.name).unwrap_or_default().to_owned()
    }

    /// Takes the tables a URL or a tool's own variables name, for the
    /// tools whose table variable left the default.
    pub fn take_tables(&mut self, named: &[(&'static str, String)]) {
        for (tool, table) in named {
            let variable =
                tool_variables().find(|(entry, v)| entry.name == *tool && v.value == Value::Table);
            if let Some((_, v)) = variable {
                if self.get(v.name) == v.default {
                    self.0.insert(v.name, table.clone());
                }
            }
        }
    }
}

fn tool_variables() -> impl Iterator<Item = (&'static Entry, &'static Variable)> {
    REGISTRY
        .iter()
        .flat_map(|entry| entry.variables.iter().map(move |v| (entry, v)))
}

/// `UNLATCH_TOOL`'s value: `auto`, or a registered tool's name, in any case.
pub fn choice(value: &str) -> Result<ToolChoice, String> {
    match value.to_ascii_lowercase().as_str() {
        "auto" => Ok(ToolChoice::Auto),
        name => REGISTRY
            .iter()
            .find(|e| e.name == name)
            .map(|e| ToolChoice::Named(e.name))
            .ok_or_else(|| format!("expected auto or one of: {}", names())),
    }
}

impl ToolSettings {
    /// Every tool's variables, each read and checked by `read` (`None`:
    /// unset), which is told the tool it belongs to.
    pub fn read<E>(
        mut read: impl FnMut(&Entry, &Variable) -> Result<Option<String>, E>,
    ) -> Result<ToolSettings, E> {
        let mut settings = ToolSettings::default();
        for (entry, variable) in tool_variables() {
            if let Some(value) = read(entry, variable)? {
                settings.0.insert(variable.name, value);
            }
        }
        Ok(settings)
    }
}

/// `UNLATCH_TOOL`'s row of the variables table, then each tool's
/// variables: (name, default, meaning).
pub fn variables() -> Vec<(&'static str, &'static str, &'static str)> {
    static TOOL: LazyLock<String> =
        LazyLock::new(|| format!("migration tool to look after: auto, {}", names()));
    let tools = tool_variables().map(|(_, v)| (v.name, v.default.unwrap_or("(unset)"), v.meaning));
    std::iter::once(("UNLATCH_TOOL", "auto", TOOL.as_str()))
        .chain(tools)
        .collect()
}

/// A table name as the `*_TABLE` variables take it ([`crate::env::is_name`]).
/// The adapters write it unquoted, so it must mean the same quoted or not
/// (on MySQL; on PostgreSQL, lowercase).
pub fn table_name(value: &str) -> Result<String, String> {
    match crate::env::is_name(value) {
        true => Ok(value.to_owned()),
        false => Err("expected a table name of letters, digits and _".into()),
    }
}

/// The tools' names, in the registry's order: `knex-migrator, knex, ...`.
fn names() -> String {
    let names: Vec<_> = REGISTRY.iter().map(|e| e.name).collect();
    names.join(", ")
}

/// The adapters `choice` allows, in the order `auto` tries them.
pub fn candidates(choice: ToolChoice, settings: &ToolSettings) -> Vec<Box<dyn Tool>> {
    REGISTRY
        .iter()
        .filter(|e| choice == ToolChoice::Auto || choice == ToolChoice::Named(e.name))
        .map(|e| (e.build)(settings))
        .collect()
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
    /// A lock row that survives its holder, such as knex's.
    Lock,
    /// A migration marked dirty or failed, named, such as golang-migrate's:
    /// not a lock, and healed only with `UNLATCH_ON_DIRTY`.
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
    /// Why this lock cannot outlive its holder (a lease that runs out, a
    /// row lock that ends with its transaction): it is reported, never
    /// healed. `None`: an ordinary lock.
    pub report_only: Option<&'static str>,
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
            report_only: None,
        }
    }

    /// The same, reported only, for `why`.
    pub fn report_only(self, why: &'static str) -> Lock {
        Lock {
            report_only: Some(why),
            ..self
        }
    }

    /// A dirty or failed `migration`, keyed by `key`.
    pub fn dirty(
        migration: &str,
        key: &str,
        acquired_at: Option<String>,
        taken: Option<Timestamp>,
    ) -> Lock {
        let migration = migration.to_owned();
        Lock {
            stuck: Stuck::Dirty { migration },
            ..Lock::row(key, acquired_at, taken)
        }
    }

    /// The same, noting how its timestamp was read.
    pub fn read_by(self, clock: &str) -> Lock {
        Lock {
            clock: Some(clock.to_owned()),
            ..self
        }
    }

    /// The same, its timestamp written by the database's own clock (`NOW()`
    /// into a zone-less column), so read against that clock now.
    async fn by_database_clock(mut self, db: &mut Db) -> anyhow::Result<Lock> {
        if let Some(text) = &self.acquired_at {
            self.taken = crate::clock::by_database_clock(text, &db.now_naive().await?);
        }
        Ok(self.read_by("the database's clock"))
    }

    /// How long ago the holder took it, by its own timestamp, when that is
    /// of use (there, readable, not in the future).
    pub fn age(&self, now: Timestamp) -> Option<std::time::Duration> {
        self.taken.and_then(|t| crate::clock::age(t, now))
    }

    /// Everything observed, in one string: the same lock, the same string.
    /// `unlatch_state` keeps it as the key of a first sighting, so its form
    /// is spelled out here, not left to `Debug`. It is the form `{:?}` gave
    /// before (`Lock|km01|Some("…")|None`), so that a sighting recorded by an
    /// older unlatch still matches.
    pub fn signature(&self) -> String {
        let stuck = match &self.stuck {
            Stuck::Lock => "Lock".to_owned(),
            Stuck::Dirty { migration } => format!("Dirty {{ migration: {} }}", quoted(migration)),
        };
        let optional = |value: &Option<String>| {
            value
                .as_deref()
                .map_or("None".to_owned(), |v| format!("Some({})", quoted(v)))
        };
        format!(
            "{stuck}|{}|{}|{}",
            self.key,
            optional(&self.acquired_at),
            optional(&self.holder)
        )
    }
}

/// `text` in double quotes, escaped as `Debug` for `str` does it: each
/// character as [`char::escape_debug`] gives it, but for `'`, left alone.
fn quoted(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        if c == '\'' {
            out.push(c);
        } else {
            out.extend(c.escape_debug());
        }
    }
    out.push('"');
    out
}

#[async_trait]
pub trait Tool: Send + Sync {
    /// The tool's name, as `UNLATCH_TOOL` spells it; the table whose
    /// presence says the tool is used here; and which rows of it block the
    /// tool, for messages (`lock_key 'km01'`).
    fn at(&self) -> (&'static str, &str, &'static str);

    /// The tool's name, as `UNLATCH_TOOL` spells it.
    fn name(&self) -> &'static str {
        self.at().0
    }

    /// The table whose presence says the tool is used here.
    fn table(&self) -> &str {
        self.at().1
    }

    /// Whether the tool's lock or marker carries a time of its own (when
    /// it was taken): `false` for those whose age is unlatch's first
    /// sighting, for which a start records when it saw the lock free
    /// ([`crate::state::saw_free`]), the recency a proof needs.
    fn dates_its_lock(&self) -> bool {
        true
    }

    /// Where the lock or marker lives, for messages: `migrations_lock (lock_key 'km01')`.
    fn place(&self) -> String {
        let (_, table, rows) = self.at();
        format!("{table} ({rows})")
    }

    /// The columns that make [`Tool::table`] this tool's, as the tool
    /// writes them (other tools may use the same name; a table of another
    /// name may be this tool's, [`Tool::any_name_ending`]).
    fn columns(&self) -> &'static [&'static str];

    /// For a tool whose table may bear any name (knex's follows its
    /// `tableName`): how every such name ends. A table of that ending with
    /// this tool's [`Tool::columns`] is this tool's.
    fn any_name_ending(&self) -> Option<&'static str> {
        None
    }

    /// This tool on `table`, a table of its shape under another name
    /// ([`Tool::any_name_ending`]).
    fn on_table(&self, _table: &str) -> Option<Box<dyn Tool>> {
        None
    }

    /// The state as it is now. Reads only.
    async fn observe(&self, db: &mut Db, zone: &LockZone) -> anyhow::Result<LockState>;

    /// Frees the lock, or marks the failed migration as not applied, the way
    /// the tool's own repair does, if and only if it is still exactly as
    /// `seen` (a compare-and-swap), recording the change and `why` in the
    /// trail in the same transaction ([`trail::apply`]). `Ok(false)`: it
    /// changed; nothing written.
    async fn release(
        &self,
        db: &mut Db,
        seen: &LockState,
        zone: &LockZone,
        why: &str,
    ) -> anyhow::Result<bool> {
        let (name, table, place) = (self.name(), self.table(), self.place());
        match change(self, db.kind, seen, zone)? {
            Some(change) => trail::apply(db, name, table, &place, &change, why).await,
            None => Ok(false),
        }
    }

    /// The change that frees a held lock or a dirty marker: its
    /// compare-and-swap on `lock` as observed, and the rows it touches.
    fn free(&self, kind: Kind, lock: &Lock, zone: &LockZone) -> anyhow::Result<Change>;

    /// The change that puts a missing lock row back, unlocked, for the
    /// tools whose own repair does that.
    fn restore(&self, _kind: Kind) -> Option<Change> {
        None
    }

    /// What a person would run to do the same by hand: the tool's own
    /// repair command, or the statement.
    fn manual_fix(&self, db: &Db, seen: &LockState) -> String;

    /// The PostgreSQL advisory-lock key the tool migrates under, for this
    /// database and schema; `None` if it takes none.
    fn advisory_key(&self, _database: &str, _schema: &str) -> Option<i64> {
        None
    }
}

/// The change [`Tool::release`] makes of `seen`; `None`: nothing to do.
fn change<T: Tool + ?Sized>(
    tool: &T,
    kind: Kind,
    seen: &LockState,
    zone: &LockZone,
) -> anyhow::Result<Option<Change>> {
    match seen {
        LockState::Held(lock) if lock.report_only.is_some() => {
            anyhow::bail!("{} is reported only, never healed", tool.place())
        }
        LockState::Held(lock) => tool.free(kind, lock, zone).map(Some),
        LockState::Missing => Ok(tool.restore(kind)),
        LockState::Free => Ok(None),
    }
}

/// The tables and their columns, as the catalog names them ([`Db::shapes`]).
pub type Shapes = [(String, Vec<String>)];

/// A table found under a tool's name but without that tool's columns.
#[derive(Debug, Clone)]
pub struct Unknown {
    pub tool: &'static str,
    pub table: String,
    /// The columns the tool's table has ([`Tool::columns`]).
    pub expected: &'static [&'static str],
    pub found: Vec<String>,
}

impl Unknown {
    /// For messages: `migrations_lock is not knex-migrator's (expected columns ...; it has ...)`.
    pub fn said(&self) -> String {
        format!(
            "table {} is not {}'s (expected columns {}; it has {})",
            self.table,
            self.tool,
            self.expected.join(", "),
            self.found.join(", ")
        )
    }
}

/// What the catalog shows of the candidates' tables.
pub struct Detected {
    /// Each table recognised by its columns, with its tool's adapter, in the
    /// candidates' order; a tool's own name before others of its shape.
    pub tools: Vec<Box<dyn Tool>>,
    /// Tables under a tool's name that no candidate recognises.
    pub unknown: Vec<Unknown>,
}

/// The tool whose lock to look after: the one named, or the one whose
/// tables are found, recognised by their columns. `None`: nothing to heal
/// (no lock table yet, or only tables no tool recognises: named, left
/// alone). `shapes`: the candidates' tables as read just before under the
/// guard ([`crate::look`]). Of a tool found on several tables (knex lock
/// tables of two `tableName`s), a held one is the one judged.
pub async fn select(
    choice: ToolChoice,
    tables: &ToolSettings,
    db: &mut Db,
    zone: &LockZone,
    shapes: Option<&Shapes>,
) -> anyhow::Result<Option<Box<dyn Tool>>> {
    let candidates = candidates(choice, tables);
    let looked: Vec<_> = candidates
        .iter()
        .map(|t| format!("{} {}", t.name(), t.place()))
        .collect();
    let Detected { tools, unknown } = detected(candidates, db, shapes).await?;
    for unknown in &unknown {
        match choice {
            // Named by the user, yet not that tool's: bad input.
            ToolChoice::Named(name) if tools.is_empty() => {
                let message = format!(
                    "UNLATCH_TOOL={name}, but {}: expected UNLATCH_TOOL to name the tool whose table this is (or auto), \
                     or the tool's table variable to name its table",
                    unknown.said()
                );
                return Err(Failure::new(Code::Config, message).into());
            }
            _ => log::warn!("{}: left alone", unknown.said()),
        }
    }
    let mut names: Vec<&str> = tools.iter().map(|t| t.name()).collect();
    names.dedup();
    if names.len() > 1 {
        let names = names.join(" and ");
        let message =
            format!("found the lock tables of {names}; set UNLATCH_TOOL to the one this app uses");
        return Err(Failure::new(Code::Config, message).into());
    }
    if tools.is_empty() {
        let looked = looked.join(", ");
        log::info!("no migration lock table found (looked for {looked}): nothing to heal");
        return Ok(None);
    }
    held_first(tools, db, zone).await
}

/// Of one tool's adapters on several tables, the first whose lock is not
/// free; else the first (its own name's).
async fn held_first(
    mut tools: Vec<Box<dyn Tool>>,
    db: &mut Db,
    zone: &LockZone,
) -> anyhow::Result<Option<Box<dyn Tool>>> {
    if tools.len() > 1 {
        for i in 0..tools.len() {
            if tools[i].observe(db, zone).await? != LockState::Free {
                return Ok(Some(tools.swap_remove(i)));
            }
        }
    }
    Ok(tools.into_iter().next())
}

/// The tables of `tools` in the database, recognised by their columns;
/// `shapes` as for [`select`], else read here in one catalog query.
pub async fn detected(
    tools: Vec<Box<dyn Tool>>,
    db: &mut Db,
    shapes: Option<&Shapes>,
) -> anyhow::Result<Detected> {
    let read;
    let shapes = match shapes {
        Some(shapes) => shapes,
        None => {
            let (names, endings) = looked_up(&tools);
            read = db.shapes(&names, &endings).await?;
            &read
        }
    };
    Ok(recognise(tools, shapes))
}

/// What [`Db::shapes`] is asked, for `tools`: their tables' names, and the
/// endings of those that take any name.
pub fn looked_up(tools: &[Box<dyn Tool>]) -> (Vec<&str>, Vec<&'static str>) {
    let names = tools.iter().map(|t| t.table()).collect();
    let mut endings: Vec<&'static str> = tools.iter().filter_map(|t| t.any_name_ending()).collect();
    endings.dedup();
    (names, endings)
}

/// Which of `shapes` are which tool's, by their columns.
pub fn recognise(tools: Vec<Box<dyn Tool>>, shapes: &Shapes) -> Detected {
    let has = |columns: &[String], wanted: &[&str]| {
        wanted
            .iter()
            .all(|w| columns.iter().any(|c| c.eq_ignore_ascii_case(w)))
    };
    let mut found: Vec<Box<dyn Tool>> = Vec::new();
    let mut misnamed = Vec::new();
    for tool in tools {
        // Tables of its shape under other names, after its own.
        let mut others = Vec::new();
        if let Some(ending) = tool.any_name_ending() {
            for (table, columns) in shapes {
                let other = table.to_ascii_lowercase().ends_with(ending)
                    && !table.eq_ignore_ascii_case(tool.table());
                if other && has(columns, tool.columns()) {
                    others.extend(tool.on_table(table));
                }
            }
        }
        match shapes
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(tool.table()))
        {
            Some((_, columns)) if has(columns, tool.columns()) => found.push(tool),
            Some((table, columns)) => misnamed.push(Unknown {
                tool: tool.name(),
                table: table.clone(),
                expected: tool.columns(),
                found: columns.clone(),
            }),
            None => {}
        }
        found.extend(others);
    }
    // A table another tool recognises is that tool's, whatever its name.
    let unknown = misnamed
        .into_iter()
        .filter(|u| {
            !found
                .iter()
                .any(|t| t.table().eq_ignore_ascii_case(&u.table))
        })
        .collect();
    Detected {
        tools: found,
        unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_the_form_debug_gave_before() {
        let odd = "it's \"quoted\", a\\b\t\n\0\u{1b}, é, e\u{301}, zero\u{200b}width";
        let mut holder = Lock::row("km01", Some("2024-01-01 00:00:00".into()), None);
        holder.holder = Some(odd.to_owned());
        for lock in [
            Lock::row("1", None, None),
            holder,
            Lock::dirty(odd, "20240103", None, None),
        ] {
            // The form an older unlatch stored, hashed, in `unlatch_state`.
            let before = format!(
                "{:?}|{}|{:?}|{:?}",
                lock.stuck, lock.key, lock.acquired_at, lock.holder
            );
            assert_eq!(lock.signature(), before);
        }
        let dirty = Lock::dirty("version 2 (create posts)", "2", Some("x".into()), None);
        assert_eq!(
            dirty.signature(),
            r#"Dirty { migration: "version 2 (create posts)" }|2|Some("x")|None"#
        );
    }

    #[test]
    fn names_and_variables_are_each_declared_once() {
        let mut names: Vec<_> = REGISTRY.iter().map(|e| e.name).collect();
        names.extend(variables().iter().map(|(name, _, _)| *name));
        let declared = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), declared, "a name or variable declared twice");
        for entry in REGISTRY {
            assert_eq!((entry.build)(&ToolSettings::default()).name(), entry.name);
        }
    }

    fn shape(table: &str, columns: &[&str]) -> (String, Vec<String>) {
        let columns = columns.iter().map(|c| c.to_string()).collect();
        (table.to_owned(), columns)
    }

    #[test]
    fn a_table_is_its_columns_tool_whatever_its_name() {
        let settings = ToolSettings::default();
        // A real NPM SQLite database: knex's default lock table and NPM's,
        // the latter under knex-migrator's name.
        let npm = [
            shape("knex_migrations_lock", &["index", "is_locked"]),
            shape("migrations_lock", &["index", "is_locked"]),
            shape("migrations", &["id", "name", "batch", "migration_time"]),
        ];
        let found = recognise(candidates(ToolChoice::Auto, &settings), &npm);
        let tables: Vec<_> = found.tools.iter().map(|t| (t.name(), t.table())).collect();
        assert_eq!(
            tables,
            [
                ("knex", "knex_migrations_lock"),
                ("knex", "migrations_lock")
            ]
        );
        assert!(found.unknown.is_empty());
        // A table of knex-migrator's name that is no tool's.
        let odd = [shape("MIGRATIONS_LOCK", &["id", "note"])];
        let found = recognise(candidates(ToolChoice::Auto, &settings), &odd);
        assert!(found.tools.is_empty());
        let unknown: Vec<_> = found.unknown.iter().map(|u| (u.tool, u.said())).collect();
        assert_eq!(
            unknown,
            [(
                "knex-migrator",
                "table MIGRATIONS_LOCK is not knex-migrator's (expected columns lock_key, locked, \
                 acquired_at, released_at; it has id, note)"
                    .to_owned()
            )]
        );
        // Not ending in _lock: no knex table, whatever its columns.
        let other = [shape("locks", &["index", "is_locked"])];
        let found = recognise(candidates(ToolChoice::Auto, &settings), &other);
        assert!(found.tools.is_empty() && found.unknown.is_empty());
    }

    #[test]
    fn a_table_named_elsewhere_replaces_only_a_default() {
        let mine = |_: &Entry, v: &Variable| {
            Ok::<_, ()>((v.name == "UNLATCH_KNEX_TABLE").then(|| "mine".to_owned()))
        };
        let mut settings = ToolSettings::read(mine).unwrap();
        assert_eq!(choice("Auto"), Ok(ToolChoice::Auto));
        settings.take_tables(&[
            ("knex", "theirs".into()),
            ("flyway", "history".into()),
            ("prisma", "ignored".into()),
        ]);
        assert_eq!(settings.get("UNLATCH_KNEX_TABLE"), Some("mine"));
        assert_eq!(settings.get("UNLATCH_FLYWAY_TABLE"), Some("history"));
        assert_eq!(settings.get("UNLATCH_GOLANG_MIGRATE_PATH"), None);
    }
}
