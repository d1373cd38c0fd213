//! Sessions: the PostgreSQL advisory locks some tools migrate under (those
//! whose adapter gives an [`advisory_key`](crate::tools::Tool::advisory_key)).
//!
//! Such a lock dies with its session, so it cannot go stale the way a lock
//! row does; yet it sticks when the server keeps a dead client's session
//! (the client was killed, its TCP connection not yet seen to be gone). When
//! a tool's key is held, unlatch says by whom: the session's pid, state, age
//! and last query. It ends that session only with
//! `UNLATCH_TERMINATE_STALE_SESSIONS=1`, and only when it is idle, and has
//! been for longer than `UNLATCH_LOCK_TTL`; an active session is never ended.
//!
//! May touch: other sessions, through `pg_terminate_backend`, when allowed.

use std::time::Duration;

use anyhow::Context;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::clock::human;
use crate::db::{Db, Kind};
use crate::heal;
use crate::tools::Tool;

/// A session holding a tool's advisory lock; `unlatch status --json` shows
/// it as it is, but for its start and query (fields in name order, as the
/// report's).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Holder {
    /// Time since the session's state last changed.
    #[serde(rename = "idle_seconds", serialize_with = "seconds")]
    pub idle: Duration,
    pub key: i64,
    pub pid: i32,
    pub state: String,
    pub tool: &'static str,
    #[serde(skip)]
    pub backend_start: String,
    #[serde(skip)]
    pub query: String,
}

fn seconds<S: serde::Serializer>(time: &Duration, to: S) -> Result<S::Ok, S::Error> {
    to.serialize_u64(time.as_secs())
}

impl Holder {
    fn idle_state(&self) -> bool {
        self.state.starts_with("idle")
    }

    pub fn describe(&self) -> String {
        format!(
            "{}'s advisory lock {} is held by PostgreSQL session {} ({}, for {}; connected since {}; last query: {:?})",
            self.tool,
            self.key,
            self.pid,
            self.state,
            human(self.idle),
            self.backend_start,
            self.query
        )
    }
}

/// The names a tool's advisory key is made of: database, current schema,
/// search_path (three columns; catalog reads only). [`crate::look`] reads
/// them in the guard's round trip.
pub const NAMES: &str = "CAST(current_database() AS TEXT), CAST(current_schema() AS TEXT), \
     CAST(current_setting('search_path') AS TEXT)";

/// The advisory keys other sessions hold in this database, as
/// `classid:objid` pairs (a bigint key shows as classid, its high 32 bits,
/// and objid, the low ones, with objsubid 1).
const HELD: &str = "SELECT CAST(COALESCE(string_agg(CAST(l.classid AS TEXT) || ':' || CAST(l.objid AS TEXT), ','), '') AS TEXT) \
     FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
     AND l.pid <> pg_backend_pid() \
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// A row of [`NAMES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    database: String,
    /// The schema the tools name their keys after.
    schema: String,
}

impl Names {
    /// Reads [`NAMES`]' three columns of `row`, from column `from` on.
    pub fn read(row: &AnyRow, from: usize) -> anyhow::Result<Names> {
        let (database, schema, search_path): (String, Option<String>, String) = (
            row.try_get(from)?,
            row.try_get(from + 1)?,
            row.try_get(from + 2)?,
        );
        // current_schema() is NULL while the schema the tool was told to use
        // does not exist yet (a first deploy: the tool creates it under its
        // lock); the tools name their lock after that schema all the same.
        let schema = schema.unwrap_or_else(|| first_schema(&search_path));
        Ok(Names { database, schema })
    }
}

/// The sessions (other than ours) holding any of `tools`' advisory keys.
/// `names`: [`NAMES`] as read just before, if it was (the guard's round
/// trip). Reads nothing more when none of `tools` takes such a lock; else
/// the keys held, and pg_stat_activity, dearer on a fresh backend, only
/// when one of those is a tool's.
pub async fn holders<'t>(
    db: &mut Db,
    tools: impl IntoIterator<Item = &'t dyn Tool>,
    names: Option<Names>,
) -> anyhow::Result<Vec<Holder>> {
    if db.kind != Kind::Postgres {
        return Ok(Vec::new());
    }
    let Names { database, schema } = match names {
        Some(names) => names,
        None => {
            let rows = db.simple_rows(&format!("SELECT {NAMES}")).await?;
            Names::read(rows.first().context("no row")?, 0)?
        }
    };
    let mut keys: Vec<(&'static str, i64)> = tools
        .into_iter()
        .filter_map(|t| t.advisory_key(&database, &schema).map(|k| (t.name(), k)))
        .collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rows = db.simple_rows(HELD).await?;
    let held: String = rows.first().context("no row")?.try_get(0)?;
    // As (high, low) halves: an application's own keys may have the high
    // bit set, which a bigint sum in SQL would overflow on.
    let held: Vec<(u32, u32)> = held
        .split(',')
        .filter_map(|pair| pair.split_once(':'))
        .filter_map(|(high, low)| Some((high.parse().ok()?, low.parse().ok()?)))
        .collect();
    keys.retain(|(_, k)| held.contains(&halves(*k)));
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let pairs: Vec<String> = keys
        .iter()
        .map(|(_, k)| format!("({}, {})", halves(*k).0, halves(*k).1))
        .collect();
    let sql = format!(
        "SELECT CAST(l.classid AS BIGINT) * 4294967296 + CAST(l.objid AS BIGINT), a.pid, COALESCE(a.state, ''), \
         CAST(EXTRACT(EPOCH FROM now() - a.state_change) AS BIGINT), CAST(a.backend_start AS TEXT), \
         left(COALESCE(a.query, ''), 120) \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND a.pid <> pg_backend_pid() \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND (CAST(l.classid AS BIGINT), CAST(l.objid AS BIGINT)) IN ({})",
        pairs.join(", ")
    );
    let mut found = Vec::new();
    for row in sqlx::query(&sql).fetch_all(db.conn()).await? {
        let key: i64 = row.try_get(0)?;
        for (tool, _) in keys.iter().filter(|(_, k)| *k == key) {
            found.push(Holder {
                tool,
                key,
                pid: row.try_get(1)?,
                state: row.try_get(2)?,
                idle: Duration::from_secs(row.try_get::<i64, _>(3)?.max(0) as u64),
                backend_start: row.try_get(4)?,
                query: row.try_get(5)?,
            });
        }
    }
    Ok(found)
}

/// The first schema of a `search_path` setting, as PostgreSQL reads it:
/// a quoted name as it is, any other folded to lower case.
fn first_schema(search_path: &str) -> String {
    let first = search_path.split(',').next().unwrap_or_default().trim();
    match first.strip_prefix('"').and_then(|f| f.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => first.to_lowercase(),
    }
}

/// A bigint advisory key as pg_locks shows it: classid, objid.
fn halves(key: i64) -> (u32, u32) {
    ((key >> 32) as u32, key as u32)
}

/// Reports every holder; ends the idle, stale ones when allowed. `names`:
/// as for [`holders`].
pub async fn check(
    db: &mut Db,
    tools: &[Box<dyn Tool>],
    names: Option<Names>,
    config: &heal::Settings,
) -> anyhow::Result<()> {
    for holder in holders(db, tools.iter().map(|t| t.as_ref()), names).await? {
        let stale = holder.idle_state() && holder.idle > config.lock_ttl;
        let ttl = human(config.lock_ttl);
        if stale && config.terminate_stale_sessions {
            db.row(&format!("SELECT pg_terminate_backend({})", holder.pid), &[])
                .await?;
            log::info!(
                "{}: idle longer than UNLATCH_LOCK_TTL={ttl}; ended it (UNLATCH_TERMINATE_STALE_SESSIONS=1)",
                holder.describe()
            );
        } else if stale {
            log::warn!(
                "{}: idle longer than UNLATCH_LOCK_TTL={ttl}; leaving it (UNLATCH_TERMINATE_STALE_SESSIONS=1 would end it)",
                holder.describe()
            );
        } else {
            log::info!("{}: in use, leaving it", holder.describe());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_schema_of_a_search_path_as_postgres_reads_it() {
        assert_eq!(first_schema("not_yet"), "not_yet");
        assert_eq!(first_schema("\"Not-Yet\", public"), "Not-Yet");
        assert_eq!(first_schema("Tenant"), "tenant");
        assert_eq!(first_schema("\"a\"\"b\""), "a\"b");
    }
}
