//! URL dialects: the database URL as the tool beside unlatch writes it
//! (Prisma, golang-migrate, JDBC...), read into the URL sqlx takes, plus
//! where that tool keeps its tables.
//!
//! Each dialect reads the URL as its tool does; a parameter unlatch does not
//! understand is kept out of the connection and named in a warning, and
//! none may silently change where unlatch looks.
//!
//! May touch: nothing; it reads text.

use crate::db::Kind;

/// A URL read in its dialect.
#[derive(Debug)]
pub struct Located {
    pub kind: Kind,
    /// A URL sqlx reads: `sqlite:`, `mysql:` or `postgres:`.
    pub url: String,
    /// The PostgreSQL schema the tool's tables are in.
    pub schema: Option<String>,
    /// Tables the URL names, by tool name.
    pub tables: Vec<(&'static str, String)>,
    pub warnings: Vec<String>,
}

/// Reads `url` in whichever dialect its form shows. `Err` is the reason,
/// which the caller wraps with the variable's name.
pub fn read(url: &str) -> Result<Located, String> {
    let scheme = url
        .split_once(':')
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    let kind = match scheme.as_str() {
        "sqlite" => Kind::Sqlite,
        "mysql" | "mariadb" => Kind::MySql,
        "postgres" | "postgresql" => Kind::Postgres,
        "" => return Err("no scheme".into()),
        other => return Err(format!("unsupported scheme {other}:")),
    };
    Ok(Located {
        kind,
        url: url.to_owned(),
        schema: None,
        tables: Vec::new(),
        warnings: Vec::new(),
    })
}
