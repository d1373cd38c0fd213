//! First look (PostgreSQL): what a start with nothing to heal needs to
//! know, read in the same round trip as the guard's first try.
//!
//! That is which of the candidate tools' tables exist, with their columns
//! (a tool is recognised by them: [`tools::recognise`]), whether
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
use crate::tools::{self, Tool};

/// The row the guard's first try brought back.
#[derive(Debug)]
pub struct Look {
    /// The tables asked about that exist (and those of a shape any name
    /// may bear: [`tools::looked_up`]), each with its columns.
    pub shapes: Vec<(String, Vec<String>)>,
    pub names: Names,
}

/// Separate a table from its column, and one pair from the next, in the
/// row's one text: control characters no name in this schema carries.
const COLUMN: char = '\u{1f}';
const PAIR: char = '\u{1e}';

/// The statement: the `candidates`' tables and unlatch's own, with their
/// columns ([`db::shapes_inline`], the statement `Db::shapes` runs), looked
/// up through `search_path` as the tools' unqualified names are. On
/// PostgreSQL only, and only when every name can be written inline (`None`
/// otherwise: each step reads for itself).
pub fn statement(target: &Target, candidates: &[Box<dyn Tool>]) -> Option<String> {
    let (mut tables, endings) = tools::looked_up(candidates);
    tables.push(state::TABLE);
    let plain = tables.iter().chain(&endings).all(|t| db::plain_name(t));
    if target.kind != Kind::Postgres || !plain {
        return None;
    }
    // One text, not rows: the guard's try hands back one row.
    Some(format!(
        "SELECT (SELECT string_agg(t || chr(31) || c, chr(30)) FROM ({}) AS s(t, c)), {}",
        db::shapes_inline(&tables, &endings),
        sessions::NAMES
    ))
}

impl Look {
    /// Reads a row of [`statement`].
    pub fn read(row: &AnyRow) -> anyhow::Result<Look> {
        let text: Option<String> = row.try_get(0)?;
        let mut shapes: Vec<(String, Vec<String>)> = Vec::new();
        for pair in text.as_deref().unwrap_or("").split(PAIR) {
            let Some((table, column)) = pair.split_once(COLUMN) else {
                continue;
            };
            match shapes.iter_mut().find(|(t, _)| t == table) {
                Some((_, columns)) => columns.push(column.to_owned()),
                None => shapes.push((table.to_owned(), vec![column.to_owned()])),
            }
        }
        Ok(Look {
            shapes,
            names: Names::read(row, 1)?,
        })
    }

    /// The tables found, for the log.
    pub fn tables(&self) -> Vec<&str> {
        self.shapes.iter().map(|(t, _)| t.as_str()).collect()
    }

    pub fn has(&self, table: &str) -> bool {
        self.shapes
            .iter()
            .any(|(t, _)| t.eq_ignore_ascii_case(table))
    }
}
