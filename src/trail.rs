//! Trail: every change unlatch makes to a migration tool's table, made and
//! recorded together, and `unlatch history`, which lists the records.
//!
//! An adapter does not write; it plans a [`Change`]: the compare-and-swap
//! statements, and which rows they touch. [`apply`] makes it in one
//! transaction: it reads those rows first (locked, on MySQL and
//! PostgreSQL; SQLite's transaction is taken `IMMEDIATE`, so no other
//! writer comes between), runs the statements, and writes the record into
//! `unlatch_history` before the commit. A kill at any point leaves either
//! both the change and its record, or neither. A compare-and-swap that
//! finds the row changed rolls everything back: nothing changed, nothing
//! recorded. The record goes to the log too, as one JSON line.
//!
//! A record holds the rows as they were (the before-image: every column the
//! catalog lists, as text or NULL, binary columns in hex), the statements
//! as run (bound values written in), the reason (the `why` the heal gives:
//! the proof, or the age), the tool, the place and the time, and the
//! statements that put the rows back (`undo`), made from the before-image.
//!
//! The trail must never stop a start: the change is what the start needs,
//! the record is for people. So the table is made on first write, and when
//! it cannot be made or written (no CREATE or INSERT privilege, or a table
//! of that name lacking a column this unlatch writes, left by another
//! version), the change is made all the same, the record goes to the log
//! line only, and a warning says why. The record's insert runs under a
//! savepoint, so that its failure does not undo the change (PostgreSQL
//! aborts a whole transaction on one failed statement). Columns a newer
//! unlatch may add are left to their defaults.
//!
//! May touch: table `unlatch_history` (made here on first write), and the
//! tool's table, only with the statements an adapter planned.

use std::fmt::Write as _;

use jiff::Timestamp;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sqlx::Row as _;

use crate::config::Config;
use crate::db::{self, Db, Kind};

const TABLE: &str = "unlatch_history";

/// The log target of a record's line, which [`crate::logging`] prints as
/// JSON (not the module's own: its other lines are plain).
pub const LOG_TARGET: &str = "unlatch::trail::record";

/// The columns this unlatch writes, in order (besides `id`, the key,
/// numbered by the database, which orders the records). `_sql`: MySQL
/// reserves UNDO.
const COLUMNS: [&str; 7] = [
    "recorded_at",
    "tool",
    "place",
    "reason",
    "statement_sql",
    "before_image",
    "undo_sql",
];

/// One statement of a change: `?` placeholders, values as text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    sql: String,
    args: Vec<Option<String>>,
}

/// A change an adapter plans to the tool's table ([`crate::tools::Tool::table`],
/// as the statements name it), for [`apply`] to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The rows the change touches, by columns and their values as text
    /// (the key, or the row's identity); empty: the whole table (a
    /// one-row table, as golang-migrate's). The before-image is read by
    /// it, and `undo` deletes by it before putting the rows back.
    rows: Vec<(String, String)>,
    /// The first is the compare-and-swap: the change holds only if it
    /// touches exactly one row; the rest run after it.
    statements: Vec<Statement>,
}

impl Change {
    /// A change of the rows `rows`, by the compare-and-swap `sql`.
    pub fn new(rows: &[(&str, &str)], sql: String, args: &[Option<&str>]) -> Change {
        Change {
            rows: rows
                .iter()
                .map(|(c, v)| ((*c).to_owned(), (*v).to_owned()))
                .collect(),
            statements: Vec::new(),
        }
        .then(sql, args)
    }

    /// A change of the one row whose `column` is `key`, by the
    /// compare-and-swap `sql`, `key` its one argument.
    pub fn by_key(column: &str, key: &str, sql: String) -> Change {
        Change::new(&[(column, key)], sql, &[Some(key)])
    }

    /// The same, with `sql` run after.
    pub fn then(mut self, sql: String, args: &[Option<&str>]) -> Change {
        let args = args.iter().map(|a| a.map(str::to_owned)).collect();
        self.statements.push(Statement { sql, args });
        self
    }
}

/// How a column's values are written back: bare, in hex, or quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Number,
    Binary,
    Text,
}

/// A column as the catalog lists it.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    class: Class,
}

/// One value of a before-image: text, or, for a binary value, its hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cell {
    Text(String),
    Hex { hex: String },
}

/// A row as it was: each column and its value (`None`: NULL), in the
/// catalog's order, which the JSON keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<(String, Option<Cell>)>);

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (column, value) in &self.0 {
            map.serialize_entry(column, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Row, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Row;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of column: value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
                let mut row = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    row.push(entry);
                }
                Ok(Row(row))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

/// One change, as recorded; the JSON of `unlatch history --json` and of
/// the log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When the change was made, by unlatch's clock (RFC 3339, UTC).
    pub recorded_at: String,
    pub tool: String,
    /// The table and the rows that block the tool.
    pub place: String,
    /// Why: the lock's account and the proof or age that made it stale.
    pub reason: String,
    /// The statements as run, bound values written in.
    pub statement: String,
    /// The rows the change touched, as they were before it: none when it
    /// put a missing row back.
    pub before: Vec<Row>,
    /// Statements that put the rows back as they were.
    pub undo: String,
}

impl Record {
    /// One line for `unlatch history`.
    fn line(&self) -> String {
        let before = serde_json::to_string(&self.before).unwrap_or_default();
        let one_line = |text: &str| text.replace(['\n', '\r'], " ");
        format!(
            "{} {} {}: {} | ran: {} | before: {before} | undo: {}",
            self.recorded_at,
            self.tool,
            self.place,
            one_line(&self.reason),
            one_line(&self.statement),
            one_line(&self.undo)
        )
    }
}

/// Makes `change` to `table`, for `tool` at `place` because `why`, in one
/// transaction with its record (see the module's doc). `Ok(false)`: the
/// compare-and-swap found the row changed; nothing was written.
pub async fn apply(
    db: &mut Db,
    tool: &str,
    table: &str,
    place: &str,
    change: &Change,
    why: &str,
) -> anyhow::Result<bool> {
    let columns = columns(db, table).await?;
    // Made or checked before the transaction: on MySQL, DDL commits one.
    let kept = ready(db).await;
    let begin = match db.kind {
        Kind::Sqlite => "BEGIN IMMEDIATE",
        _ => "BEGIN",
    };
    db.simple_rows(begin).await?;
    let planned = Planned {
        table,
        change,
        columns: &columns,
    };
    let made = transact(db, tool, place, &planned, why, kept.is_ok()).await;
    let outcome = match made {
        Ok(Some(outcome)) => {
            db.simple_rows("COMMIT").await?;
            outcome
        }
        Ok(None) => {
            db.simple_rows("ROLLBACK").await?;
            return Ok(false);
        }
        Err(err) => {
            // The error is what counts; a failed rollback adds nothing.
            let _ = db.simple_rows("ROLLBACK").await;
            return Err(err);
        }
    };
    let (record, stored) = outcome;
    let not_kept = kept.err().or(stored.err());
    // A record the table could not take is a warning, so that it shows
    // wherever the warning about it does (`UNLATCH_LOG=warn`).
    let level = match not_kept {
        Some(_) => log::Level::Warn,
        None => log::Level::Info,
    };
    log::log!(target: LOG_TARGET, level, "{}", serde_json::to_string(&record)?);
    if let Some(why) = not_kept {
        log::warn!("{TABLE}: this change is recorded in the log line above only: {why}");
    }
    Ok(true)
}

/// What [`apply`] changes: the table, as the catalog lists its columns,
/// and the change planned to it.
struct Planned<'a> {
    table: &'a str,
    change: &'a Change,
    columns: &'a [Column],
}

/// Inside [`apply`]'s transaction: the before-image, the statements, the
/// record. `None`: the compare-and-swap lost. The record's insert, when
/// `keep`, under a savepoint; its failure, as text.
async fn transact(
    db: &mut Db,
    tool: &str,
    place: &str,
    planned: &Planned<'_>,
    why: &str,
    keep: bool,
) -> anyhow::Result<Option<(Record, Result<(), String>)>> {
    let Planned {
        table,
        change,
        columns,
    } = *planned;
    anyhow::ensure!(!columns.is_empty(), "table {table} not found");
    // The columns of the change's rows, with the values that pick them.
    let keys = change
        .rows
        .iter()
        .map(|(name, value)| {
            let column = find(columns, name)
                .ok_or_else(|| anyhow::anyhow!("table {table} has no column {name}"))?;
            Ok((column, value.as_str()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let before = before_image(db, table, columns, &keys).await?;
    for (n, statement) in change.statements.iter().enumerate() {
        let args: Vec<Option<&str>> = statement.args.iter().map(Option::as_deref).collect();
        let touched = db.exec(&statement.sql, &args).await?;
        if n == 0 && touched != 1 {
            return Ok(None);
        }
    }
    let record = Record {
        recorded_at: Timestamp::now().to_string(),
        tool: tool.to_owned(),
        place: place.to_owned(),
        reason: why.to_owned(),
        statement: change
            .statements
            .iter()
            .map(|s| written(db.kind, s))
            .collect::<Vec<_>>()
            .join("; "),
        before: before.iter().map(|row| image_row(columns, row)).collect(),
        undo: undo(db.kind, table, columns, &keys, &before),
    };
    let stored = match keep {
        true => store(db, &record).await,
        false => Ok(()),
    };
    Ok(Some((record, stored)))
}

/// Inserts `record` under a savepoint; a failure is rolled back to it and
/// returned as text, the change kept.
async fn store(db: &mut Db, record: &Record) -> Result<(), String> {
    let savepoint = |what: &str| format!("{what}SAVEPOINT unlatch_trail");
    db.simple_rows(&savepoint(""))
        .await
        .map_err(|e| format!("{e:#}"))?;
    let image = serde_json::to_string(&record.before).map_err(|e| e.to_string())?;
    let sql = format!(
        "INSERT INTO {TABLE} ({}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        COLUMNS.join(", ")
    );
    let values = [
        &record.recorded_at,
        &record.tool,
        &record.place,
        &record.reason,
        &record.statement,
        &image,
        &record.undo,
    ];
    let args: Vec<Option<&str>> = values.iter().map(|v| Some(v.as_str())).collect();
    match db.exec(&sql, &args).await {
        Ok(_) => {
            let _ = db.simple_rows(&savepoint("RELEASE ")).await;
            Ok(())
        }
        Err(err) => {
            let _ = db.simple_rows(&savepoint("ROLLBACK TO ")).await;
            Err(format!("writing it failed: {err:#}"))
        }
    }
}

/// Whether records can go into `unlatch_history`: made now if absent;
/// `Err`: why not.
async fn ready(db: &mut Db) -> Result<(), String> {
    let found = columns(db, TABLE)
        .await
        .map_err(|e| format!("reading its columns failed: {e:#}"))?;
    if found.is_empty() {
        return db
            .exec(&create_table(db.kind), &[])
            .await
            .map(drop)
            .map_err(|e| format!("making the table failed: {e:#}"));
    }
    let missing: Vec<&str> = COLUMNS
        .iter()
        .filter(|c| find(&found, c).is_none())
        .copied()
        .collect();
    match missing.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "the table there lacks column {} (made by another version of unlatch, or not by unlatch?)",
            missing.join(", ")
        )),
    }
}

/// `unlatch_history`'s DDL: text columns everywhere, and a key the
/// database numbers (MySQL may require a primary key).
fn create_table(kind: Kind) -> String {
    let (id, text, options) = match kind {
        Kind::Sqlite => ("INTEGER PRIMARY KEY", "TEXT", ""),
        Kind::MySql => (
            "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY",
            "LONGTEXT",
            " DEFAULT CHARSET=utf8mb4",
        ),
        Kind::Postgres => ("BIGSERIAL PRIMARY KEY", "TEXT", ""),
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (id {id}, recorded_at VARCHAR(40) NOT NULL, \
         tool VARCHAR(64) NOT NULL, place VARCHAR(255) NOT NULL, reason {text} NOT NULL, \
         statement_sql {text} NOT NULL, before_image {text} NOT NULL, undo_sql {text} NOT NULL){options}"
    )
}

/// `table`'s columns, from the catalog, in order; none when it is absent.
async fn columns(db: &mut Db, table: &str) -> anyhow::Result<Vec<Column>> {
    let kind = db.kind;
    let found = db.columns(table).await?;
    Ok(found
        .into_iter()
        .map(|(name, declared)| Column {
            name,
            class: class(kind, &declared.to_ascii_lowercase()),
        })
        .collect())
}

/// The column of `columns` called `name`, in any case.
fn find<'c>(columns: &'c [Column], name: &str) -> Option<&'c Column> {
    columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))
}

/// How a column of `declared` type is written back. On SQLite, its
/// affinity; each value's own type decides in the end ([`before_image`]).
fn class(kind: Kind, declared: &str) -> Class {
    let starts = |names: &[&str]| names.iter().any(|n| declared.starts_with(n));
    match kind {
        Kind::Sqlite
            if declared.contains("char")
                || declared.contains("clob")
                || declared.contains("text") =>
        {
            Class::Text
        }
        Kind::Sqlite if declared.contains("blob") || declared.is_empty() => Class::Text,
        Kind::Sqlite => Class::Number,
        Kind::MySql
            if starts(&[
                "binary",
                "varbinary",
                "tinyblob",
                "blob",
                "mediumblob",
                "longblob",
                "bit",
            ]) =>
        {
            Class::Binary
        }
        Kind::MySql
            if starts(&[
                "tinyint",
                "smallint",
                "mediumint",
                "int",
                "bigint",
                "decimal",
                "numeric",
                "float",
                "double",
                "real",
            ]) =>
        {
            Class::Number
        }
        Kind::Postgres if declared == "bytea" => Class::Binary,
        Kind::Postgres
            if starts(&[
                "smallint",
                "integer",
                "bigint",
                "numeric",
                "real",
                "double precision",
            ]) =>
        {
            Class::Number
        }
        _ => Class::Text,
    }
}

/// A value as read for the before-image: its class and its text.
#[derive(Debug, Clone)]
struct Value {
    class: Class,
    text: Option<String>,
}

/// The rows picked by `keys` (every row, when none), every column, read
/// within the change's transaction (locked where the database can: `FOR
/// UPDATE`).
async fn before_image(
    db: &mut Db,
    table: &str,
    columns: &[Column],
    keys: &[(&Column, &str)],
) -> anyhow::Result<Vec<Vec<Value>>> {
    let kind = db.kind;
    let read: Vec<String> = columns.iter().map(|c| read_expression(kind, c)).collect();
    let (condition, args) = identity(kind, keys);
    let lock = if kind == Kind::Sqlite {
        ""
    } else {
        " FOR UPDATE"
    };
    let sql = format!("SELECT {} FROM {table}{condition}{lock}", read.join(", "));
    let args: Vec<Option<&str>> = args.iter().map(|a| Some(*a)).collect();
    let rows = db.rows(&sql, &args).await?;
    rows.iter()
        .map(|row| {
            columns
                .iter()
                .enumerate()
                .map(|(i, column)| read_value(kind, column, row, i))
                .collect()
        })
        .collect()
}

/// ` WHERE CAST(col AS TEXT) = ? AND ...` for the rows `keys` pick, and the
/// values to bind; nothing for the whole table.
fn identity<'a>(kind: Kind, keys: &[(&Column, &'a str)]) -> (String, Vec<&'a str>) {
    if keys.is_empty() {
        return (String::new(), Vec::new());
    }
    let tests: Vec<String> = keys
        .iter()
        .map(|(column, _)| format!("{} = ?", kind.text(&kind.quote(&column.name))))
        .collect();
    let values = keys.iter().map(|(_, v)| *v).collect();
    (format!(" WHERE {}", tests.join(" AND ")), values)
}

/// How one column is read: as text, or hex for binary. SQLite's values are
/// tagged with their own type (`n`umber, `x` hex, `t`ext), which may differ
/// from row to row.
fn read_expression(kind: Kind, column: &Column) -> String {
    let q = kind.quote(&column.name);
    match (kind, column.class) {
        (Kind::Sqlite, _) => format!(
            "CASE typeof({q}) WHEN 'null' THEN NULL WHEN 'blob' THEN 'x' || hex({q}) \
             WHEN 'integer' THEN 'n' || {q} WHEN 'real' THEN 'n' || printf('%.17g', {q}) ELSE 't' || {q} END"
        ),
        (Kind::MySql, Class::Binary) => format!("HEX({q})"),
        (Kind::MySql, _) => format!("CAST({q} AS CHAR)"),
        (Kind::Postgres, Class::Binary) => format!("encode({q}, 'hex')"),
        (Kind::Postgres, _) => format!("CAST({q} AS TEXT)"),
    }
}

/// The `i`th value of `row` as text. MySQL may send a long text cast as a
/// BLOB: its bytes are the text.
fn text_at(row: &sqlx::any::AnyRow, i: usize) -> anyhow::Result<Option<String>> {
    Ok(match row.try_get::<Option<String>, _>(i) {
        Ok(text) => text,
        Err(_) => row
            .try_get::<Option<Vec<u8>>, _>(i)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
    })
}

fn read_value(
    kind: Kind,
    column: &Column,
    row: &sqlx::any::AnyRow,
    i: usize,
) -> anyhow::Result<Value> {
    let text = text_at(row, i)?;
    if kind != Kind::Sqlite {
        return Ok(Value {
            class: column.class,
            text,
        });
    }
    let Some(tagged) = text else {
        return Ok(Value {
            class: Class::Text,
            text: None,
        });
    };
    let (tag, rest) = tagged.split_at(1);
    let class = match tag {
        "n" => Class::Number,
        "x" => Class::Binary,
        _ => Class::Text,
    };
    Ok(Value {
        class,
        text: Some(rest.to_owned()),
    })
}

/// A row of the before-image, for the record.
fn image_row(columns: &[Column], values: &[Value]) -> Row {
    Row(columns
        .iter()
        .zip(values)
        .map(|(column, value)| {
            let cell = value.text.clone().map(|text| match value.class {
                Class::Binary => Cell::Hex { hex: text },
                _ => Cell::Text(text),
            });
            (column.name.clone(), cell)
        })
        .collect())
}

/// The statements that put the rows back as they were: the rows the
/// change touched deleted (by `keys`, its identity: they may have changed),
/// then the before-image inserted.
fn undo(
    kind: Kind,
    table: &str,
    columns: &[Column],
    keys: &[(&Column, &str)],
    before: &[Vec<Value>],
) -> String {
    let tests: Vec<String> = keys
        .iter()
        .map(|(column, value)| {
            let value = Value {
                class: column.class,
                text: Some((*value).to_owned()),
            };
            format!("{} = {}", kind.quote(&column.name), literal(kind, &value))
        })
        .collect();
    let mut out = format!("DELETE FROM {table}");
    if !tests.is_empty() {
        let _ = write!(out, " WHERE {}", tests.join(" AND "));
    }
    let names: Vec<String> = columns.iter().map(|c| kind.quote(&c.name)).collect();
    for row in before {
        let values: Vec<String> = row.iter().map(|v| literal(kind, v)).collect();
        let _ = write!(
            out,
            "; INSERT INTO {table} ({}) VALUES ({})",
            names.join(", "),
            values.join(", ")
        );
    }
    out
}

/// `value` as a literal: NULL, a number bare, binary in hex, text quoted.
fn literal(kind: Kind, value: &Value) -> String {
    let Some(text) = &value.text else {
        return "NULL".to_owned();
    };
    match value.class {
        Class::Binary if kind == Kind::Postgres => format!("decode('{text}', 'hex')"),
        Class::Binary => format!("X'{text}'"),
        Class::Number if is_number(text) => text.clone(),
        _ => quoted(kind, text),
    }
}

/// Text quoted as a string literal. MySQL reads a backslash as an escape
/// unless NO_BACKSLASH_ESCAPES is set, so such text goes as hex, which
/// means the same either way.
fn quoted(kind: Kind, text: &str) -> String {
    if kind == Kind::MySql && text.contains('\\') {
        let hex: String = text.bytes().map(|b| format!("{b:02X}")).collect();
        return format!("X'{hex}'");
    }
    format!("'{}'", text.replace('\'', "''"))
}

/// A number as SQL writes one: digits, a sign, a point, an exponent.
fn is_number(text: &str) -> bool {
    let digits = text.trim_start_matches(['-', '+']);
    !digits.is_empty()
        && digits.starts_with(|c: char| c.is_ascii_digit())
        && text.parse::<f64>().is_ok_and(f64::is_finite)
}

/// A statement as run, its bound values written in (unlatch's statements
/// have no `?` inside their literals).
fn written(kind: Kind, statement: &Statement) -> String {
    let mut args = statement.args.iter();
    let mut out = String::new();
    for (n, part) in statement.sql.split('?').enumerate() {
        if n > 0 {
            let value = Value {
                class: Class::Text,
                text: args.next().cloned().flatten(),
            };
            out.push_str(&literal(kind, &value));
        }
        out.push_str(part);
    }
    out
}

/// Every record, oldest first; none when the table is absent. Columns a
/// table of another version lacks are read as empty.
pub async fn read(db: &mut Db) -> anyhow::Result<Vec<Record>> {
    let found = columns(db, TABLE).await?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let has = |name: &str| find(&found, name).is_some();
    let read: Vec<String> = COLUMNS
        .iter()
        .map(|c| match has(c) {
            true => (*c).to_owned(),
            false => "NULL".to_owned(),
        })
        .collect();
    let order = if has("id") { "id" } else { "recorded_at" };
    let sql = format!("SELECT {} FROM {TABLE} ORDER BY {order}", read.join(", "));
    let mut records = Vec::new();
    for row in db.rows(&sql, &[]).await? {
        let text = |i: usize| Ok::<_, anyhow::Error>(text_at(&row, i)?.unwrap_or_default());
        let image = text(5)?;
        let before = serde_json::from_str(&image).unwrap_or_else(|e| {
            log::warn!("{TABLE}: a before-image unlatch cannot read ({e}): {image}");
            Vec::new()
        });
        records.push(Record {
            recorded_at: text(0)?,
            tool: text(1)?,
            place: text(2)?,
            reason: text(3)?,
            statement: text(4)?,
            before,
            undo: text(6)?,
        });
    }
    Ok(records)
}

/// `unlatch history`: prints every record, oldest first, one line each, or
/// with `--json` one JSON array; says so when there is none. Exit 0.
pub async fn show(config: &Config, as_json: bool) -> anyhow::Result<u8> {
    let read = db::read_only(config, async |db, _, _| read(db).await).await?;
    let records = read.unwrap_or_default();
    if as_json {
        println!("{}", serde_json::to_string(&records)?);
    } else if records.is_empty() {
        println!("no changes recorded");
    } else {
        for record in &records {
            println!("{}", record.line());
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_keeps_its_columns_in_order() {
        let line = r#"{"b":"1","a":null,"c":{"hex":"00"}}"#;
        let row: Row = serde_json::from_str(line).unwrap();
        assert_eq!(row.0[0].0, "b");
        assert_eq!(row.0[2].1, Some(Cell::Hex { hex: "00".into() }));
        assert_eq!(serde_json::to_string(&row).unwrap(), line);
    }

    #[test]
    fn literals_put_each_value_back_as_it_was() {
        let value = |class, text: Option<&str>| Value {
            class,
            text: text.map(str::to_owned),
        };
        let cases = [
            (Kind::Postgres, value(Class::Text, None), "NULL"),
            (Kind::Postgres, value(Class::Number, Some("-7")), "-7"),
            (Kind::MySql, value(Class::Number, Some("1.5e3")), "1.5e3"),
            // A number class holding text (SQLite's NUMERIC affinity): quoted.
            (Kind::Sqlite, value(Class::Number, Some("km01")), "'km01'"),
            (Kind::Sqlite, value(Class::Number, Some("inf")), "'inf'"),
            (Kind::Postgres, value(Class::Text, Some("it's")), "'it''s'"),
            (Kind::Postgres, value(Class::Text, Some("a\\b")), "'a\\b'"),
            (Kind::MySql, value(Class::Text, Some("a\\b")), "X'615C62'"),
            (Kind::Sqlite, value(Class::Binary, Some("00FF")), "X'00FF'"),
            (
                Kind::Postgres,
                value(Class::Binary, Some("00ff")),
                "decode('00ff', 'hex')",
            ),
        ];
        for (kind, value, expected) in cases {
            assert_eq!(literal(kind, &value), expected, "{kind:?} {value:?}");
        }
    }

    #[test]
    fn a_statement_is_written_with_its_values() {
        let statement = Statement {
            sql: "UPDATE t SET a = ?, b = CAST(? AS INTEGER) WHERE c IS ?".into(),
            args: vec![Some("x'y".into()), Some("2".into()), None],
        };
        assert_eq!(
            written(Kind::Sqlite, &statement),
            "UPDATE t SET a = 'x''y', b = CAST('2' AS INTEGER) WHERE c IS NULL"
        );
    }

    #[test]
    fn column_types_decide_how_values_go_back() {
        for (kind, declared, expected) in [
            (Kind::Postgres, "bytea", Class::Binary),
            (Kind::Postgres, "integer", Class::Number),
            (Kind::Postgres, "numeric(10,2)", Class::Number),
            (Kind::Postgres, "boolean", Class::Text),
            (Kind::Postgres, "timestamp with time zone", Class::Text),
            (Kind::MySql, "blob", Class::Binary),
            (Kind::MySql, "tinyint", Class::Number),
            (Kind::MySql, "datetime", Class::Text),
            (Kind::Sqlite, "uint64", Class::Number),
            (Kind::Sqlite, "varchar(191)", Class::Text),
            (Kind::Sqlite, "", Class::Text),
        ] {
            assert_eq!(class(kind, declared), expected, "{kind:?} {declared}");
        }
    }
}
