//! First look (PostgreSQL): what a start with nothing to heal needs to
//! know, read in the same round trip as the guard's first try.
//!
//! That is which of the candidate tools' tables exist, whether
//! `unlatch_state` does, and the names the tools' advisory keys are made of
//! ([`sessions::NAMES`]): a round trip each before (0.1 to 0.6 ms on a
//! fresh backend). The guard runs the statement after its try, in a
//! transaction of its own, and hands the row back only when that try took
//! the guard: so it was read under the guard, after anything the replica
//! that held it before wrote. When the guard was busy the row is thrown
//! away, and after the wait each step reads for itself, as it always did.
//!
//! What it saw holds until this start writes or waits: the tools' tables
//! for choosing the tool (only a migrate command, which runs later, makes
//! them); `unlatch_state`'s absence until the heal records a sighting; the
//! names (the current schema) only if the heal found the lock free at its
//! first look. Every write still compares and swaps on what the heal
//! itself observed.
//!
//! May touch: nothing (it reads the catalogs).

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{self, Kind, Target};
use crate::sessions::{self, Names};
use crate::state;
use crate::tools::Tool;

/// The row the guard's first try brought back.
#[derive(Debug)]
pub struct Look {
    /// Which of the tables asked about exist, as they were named.
    pub tables: Vec<String>,
    pub names: Names,
}

/// The statement: the `candidates`' tables and unlatch's own, looked up
/// through `search_path` as the tools' unqualified names are. On
/// PostgreSQL only, and only when every name can be written inline (`None`
/// otherwise: each step reads for itself).
pub fn statement(target: &Target, candidates: &[Box<dyn Tool>]) -> Option<String> {
    let mut tables: Vec<&str> = candidates.iter().map(|t| t.table()).collect();
    tables.push(state::TABLE);
    if target.kind != Kind::Postgres || !tables.iter().all(|t| db::plain_name(t)) {
        return None;
    }
    // One expression per name, not a VALUES list aggregated: planning
    // that cost a fresh backend about 0.15 ms more.
    let present: Vec<String> = tables
        .iter()
        .map(|t| format!("CASE WHEN to_regclass('{t}') IS NOT NULL THEN '{t}' END"))
        .collect();
    Some(format!(
        "SELECT CAST(concat_ws(',', {}) AS TEXT), {}",
        present.join(", "),
        sessions::NAMES
    ))
}

impl Look {
    /// Reads a row of [`statement`].
    pub fn read(row: &AnyRow) -> anyhow::Result<Look> {
        let present: String = row.try_get(0)?;
        Ok(Look {
            tables: present
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            names: Names::read(row, 1)?,
        })
    }

    pub fn has(&self, table: &str) -> bool {
        self.tables.iter().any(|t| t.eq_ignore_ascii_case(table))
    }
}
