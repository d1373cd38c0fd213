//! Database: where it is, waiting for it, and the few SQL forms that differ
//! between SQLite, MySQL/MariaDB and PostgreSQL.
//!
//! All three go through sqlx's `Any` driver, so a tool adapter is written
//! once: it writes `?` placeholders and asks [`Kind`] for the handful of
//! expressions that differ. The alternative, one connection type per
//! database behind an enum, would repeat every query three times for no gain
//! at this size. Values cross as text or integers only (the `Any` driver's
//! common ground); timestamps are read as text and parsed by `clock`.
//!
//! The URL holds a password; it is kept private here, and everything shown
//! to a user goes through [`Target::redacted`] or [`Target::scrub`].
//!
//! May touch: the network and the database file; it writes nothing itself.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyArguments, AnyConnectOptions, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, ConnectOptions, Connection};

use crate::clock::human;
use crate::env::Env;
use crate::exit::{Code, Failure};
use crate::process::Stop;
use crate::tools::ToolChoice;
use crate::wait::{self, Wait};
use crate::{dialect, tls};

/// Which SQL dialect a database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    MySql,
    Postgres,
}

/// A validated database location. Its URL never leaves this module.
#[derive(Clone)]
pub struct Target {
    pub kind: Kind,
    url: String,
    password: Option<String>,
    /// The URL with its password masked, for messages.
    pub redacted: String,
    /// Which variable (or file) named the database, for messages.
    pub source: String,
    /// The SQLite file, when it is one (not `:memory:`).
    pub sqlite_file: Option<PathBuf>,
    /// The database name, for MySQL and PostgreSQL.
    pub name: String,
    /// The PostgreSQL schema the tool's tables are in, when the URL names
    /// one (Prisma's `schema`, JDBC's `currentSchema`...): it becomes the
    /// connection's `search_path`, as the tools themselves do.
    pub schema: Option<String>,
    /// Tables the URL or the tool's own variables name, by tool
    /// (golang-migrate's `x-migrations-table`, `FLYWAY_TABLE`...).
    pub tables: Vec<(&'static str, String)>,
    /// Harmless oddities found on the way (a parameter unlatch does not
    /// understand), logged with the configuration's warnings.
    pub warnings: Vec<String>,
    /// What else must never be shown besides the password (an inline
    /// client key).
    secrets: Vec<String>,
    /// A CA is named, and only it may be trusted ([`tls::confine_roots`]).
    pub only_given_roots: bool,
    /// libpq's `allow`/`prefer`: the `sslmode` of a second attempt when
    /// the server turns the first down.
    fallback_sslmode: Option<&'static str>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({} from {})", self.redacted, self.source)
    }
}

impl Target {
    /// Checks a database URL without connecting, with no `PG*` defaults.
    pub fn parse(url: &str, source: &str) -> Result<Target, Failure> {
        Target::read(url, source, &Env::default(), ToolChoice::Auto)
    }

    /// Checks a database URL, in any dialect [`dialect`] knows, without
    /// connecting; `env` gives libpq's `PG*` defaults for what the URL does
    /// not say; `tool`, how to read a URL more than one tool writes.
    pub fn read(url: &str, source: &str, env: &Env, tool: ToolChoice) -> Result<Target, Failure> {
        // A secret file's trailing newline is not part of the URL.
        let url = url.trim_end_matches(['\n', '\r']);
        // Every cause may quote the URL, or part of it.
        let bad = |why: String| {
            Failure::new(
                Code::Config,
                format!(
                    "{source}={}: {}; expected a URL like sqlite:///data/app.db, \
                     mysql://user:password@host:3306/db or postgres://user:password@host:5432/db",
                    redact(url),
                    mask_url_passwords(&why)
                ),
            )
        };
        let located = dialect::read(url, tool).map_err(&bad)?;
        let kind = located.kind;
        let mut target = Target {
            kind,
            url: located.url,
            password: None,
            redacted: redact(url),
            source: source.to_owned(),
            sqlite_file: None,
            name: String::new(),
            schema: located.schema,
            tables: located.tables,
            warnings: located.warnings,
            secrets: Vec::new(),
            only_given_roots: false,
            fallback_sslmode: None,
        };
        if kind == Kind::Sqlite {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&target.url)
                .map_err(|e| bad(e.to_string()))?;
            let file = options.get_filename();
            if !target.url.contains(":memory:") && !target.url.contains("mode=memory") {
                target.name = file.display().to_string();
                target.sqlite_file = Some(file.to_owned());
            }
            return Ok(target);
        }
        let mut parsed = url::Url::parse(&target.url).map_err(|e| bad(e.to_string()))?;
        target.password = parsed.password().map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        });
        if kind == Kind::Postgres {
            check_postgres_user(&parsed).map_err(&bad)?;
            // sqlx, as libpq, also takes the password as a parameter, the
            // last one over the URL's own: hidden all the same.
            if let Some(given) = parsed
                .query_pairs()
                .filter(|(key, _)| key == "password")
                .map(|(_, value)| value.into_owned())
                .last()
            {
                target.secrets.extend(target.password.replace(given));
            }
        }
        target.name = parsed.path().trim_start_matches('/').to_owned();
        target.secrets.extend(target.saslprepped_password());
        // A socket is named by a parameter: MySQL's `socket`, libpq's `host`.
        let socket = parsed
            .query_pairs()
            .any(|(key, _)| key == "socket" || (kind == Kind::Postgres && key == "host"));
        if parsed.host_str().is_none_or(str::is_empty) && !socket {
            return Err(bad("no host".into()));
        }
        let settled = tls::settle(kind, &mut parsed, env).map_err(&bad)?;
        target.secrets.extend(settled.secrets);
        target.warnings.extend(settled.warnings);
        target.only_given_roots = settled.only_given_roots;
        target.fallback_sslmode = settled.fallback_sslmode;
        target.url = parsed.into();
        if target.name.is_empty() {
            return Err(bad("no database name in the path".into()));
        }
        // Let the driver check its own parameters (sslmode, charset...) now,
        // not after a minute of waiting.
        let checked = match kind {
            Kind::MySql => sqlx::mysql::MySqlConnectOptions::from_str(&target.url).map(drop),
            _ => sqlx::postgres::PgConnectOptions::from_str(&target.url).map(drop),
        };
        checked.map_err(|e| bad(target.scrub(&e.to_string())))?;
        Ok(target)
    }

    /// What to add to a refusal when the connection asked for no TLS: a
    /// server that takes TLS only refuses such a login as if the password
    /// were wrong (MariaDB: 1045; PostgreSQL: no `hostnossl` line).
    fn plaintext_hint(&self) -> &'static str {
        let plaintext = url::Url::parse(&self.url).is_ok_and(|url| {
            url.query_pairs().any(|(key, value)| {
                matches!(&*key, "sslmode" | "ssl-mode")
                    && matches!(&*value.to_ascii_lowercase(), "disable" | "disabled")
            })
        });
        if plaintext {
            "; this connection was not encrypted (TLS disabled): if the server takes TLS \
             connections only, enable TLS (sslmode=require, ssl-mode=REQUIRED, or Ghost's \
             database__connection__ssl)"
        } else {
            ""
        }
    }

    /// The password, for [`crate::logging::hide`]; never to be shown.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The other secrets (an inline client key), for
    /// [`crate::logging::hide`]; never to be shown.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// `host:port` as the URL gives it, for messages.
    fn host(&self) -> String {
        let url = url::Url::parse(&self.url).ok();
        match url.as_ref().map(|u| (u.host_str(), u.port())) {
            Some((Some(host), Some(port))) => format!("{host}:{port}"),
            Some((host, _)) => host.unwrap_or_default().to_owned(),
            None => String::new(),
        }
    }

    /// `text` with this target's password masked, and that of any URL it
    /// quotes, for any message that might quote a driver's error (sqlx
    /// quotes a bad query parameter whole: fuzz/database_url).
    pub fn scrub(&self, text: &str) -> String {
        let mut text = mask_url_passwords(text);
        for secret in self.password.iter().chain(&self.secrets) {
            if !secret.is_empty() {
                text = text.replace(secret.as_str(), "***");
            }
        }
        text
    }

    /// Options for a connection in `role`, with `sslmode` replaced when
    /// given.
    fn options(
        &self,
        role: Role,
        sslmode: Option<&str>,
        password: Option<&str>,
    ) -> Result<AnyConnectOptions, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let bad = |why: String| sqlx::Error::Configuration(format!("database URL: {why}").into());
        let mut url = url::Url::parse(&self.url).map_err(|e| bad(e.to_string()))?;
        if let Some(password) = password {
            let escaped =
                percent_encoding::utf8_percent_encode(password, percent_encoding::NON_ALPHANUMERIC);
            url.set_password(Some(&escaped.to_string()))
                .map_err(|()| bad("no password can be set".into()))?;
        }
        if let Some(mode) = sslmode {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != "sslmode")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.query_pairs_mut()
                .clear()
                .extend_pairs(pairs)
                .append_pair("sslmode", mode);
        }
        // GET_LOCK is server-wide: MySQL's guard needs no database.
        // (PostgreSQL's guard is on the work connection: see guard.)
        if role == Role::Guard && self.kind == Kind::MySql {
            url.set_path("");
        }
        if let Some(schema) = &self.schema {
            // Set at connection start: no round trip.
            url.query_pairs_mut()
                .append_pair("options[search_path]", &startup_option(schema));
        }
        Ok(AnyConnectOptions::from_url(&url)?.disable_statement_logging())
    }

    /// Opens one connection now, without waiting; with libpq's `allow`
    /// and `prefer`, a second attempt in the other mode when the server
    /// turns the first down, as libpq makes it.
    pub async fn connect_once(&self, role: Role) -> Result<AnyConnection, sqlx::Error> {
        let result = self.connect_with_fallback(role, None).await;
        let refused = matches!(&result, Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("28P01"));
        match self.saslprepped_password() {
            Some(prepared) if refused => {
                log::debug!(
                    "{}: password refused; trying it in SASLprep's normal form, as libpq sends it for SCRAM",
                    self.redacted
                );
                self.connect_with_fallback(role, Some(&prepared))
                    .await
                    .or(result)
            }
            _ => result,
        }
    }

    /// The password as SASLprep (RFC 4013) makes it, when that differs:
    /// PostgreSQL prepares a password so before it keeps its SCRAM verifier,
    /// and libpq prepares the one it sends, but sqlx sends it as it is.
    fn saslprepped_password(&self) -> Option<String> {
        let password = self
            .password
            .as_deref()
            .filter(|_| self.kind == Kind::Postgres)?;
        let prepared = stringprep::saslprep(password).ok()?;
        (prepared != password).then(|| prepared.into_owned())
    }

    /// [`connect_once`](Self::connect_once) with `password` instead of the URL's.
    async fn connect_with_fallback(
        &self,
        role: Role,
        password: Option<&str>,
    ) -> Result<AnyConnection, sqlx::Error> {
        let connect = |sslmode| async move {
            AnyConnection::connect_with(&self.options(role, sslmode, password)?).await
        };
        let first = connect(None).await;
        let (Err(err), Some(mode)) = (&first, self.fallback_sslmode) else {
            return first;
        };
        let turned_down =
            matches!(err, sqlx::Error::Database(_)) || tls::handshake_failure(err).is_some();
        if !turned_down {
            return first;
        }
        log::debug!(
            "{} (sslmode {}): {}; trying again with sslmode={mode}",
            self.redacted,
            if mode == "disable" { "prefer" } else { "allow" },
            self.scrub(&err.to_string())
        );
        match connect(Some(mode)).await {
            // The encrypted attempt's error is the one that tells.
            Err(_) if mode == "disable" => first,
            second => second,
        }
    }
}

/// A table name of ASCII letters, digits and `_` only (what
/// `UNLATCH_*_TABLE` accepts): safe to write into a statement as a literal,
/// with nothing to escape.
pub(crate) fn plain_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// [`Db::shapes`]'s statement on PostgreSQL, every name written inline
/// (plain names only: [`plain_name`]), so that nothing is bound and it
/// takes one round trip; [`crate::look`] runs it in the guard's first try.
/// Rows of (table, column). `to_regclass` and `pg_table_is_visible` follow
/// `search_path`, as the tools' unqualified names do.
pub(crate) fn shapes_inline(tables: &[&str], endings: &[&str]) -> String {
    let named: Vec<String> = tables
        .iter()
        .map(|t| format!("to_regclass('{t}')"))
        .collect();
    let endings: Vec<String> = endings
        .iter()
        .map(|e| format!("'%{}'", e.replace('_', "\\_")))
        .collect();
    pg_shapes(&named, &endings)
}

/// [`Db::shapes`]'s statement on PostgreSQL, of the tables' `to_regclass`
/// expressions and the endings' `LIKE` patterns, as SQL. A `UNION` of the
/// two, not one `OR`: with the `OR`, the list of `to_regclass` calls was
/// worked out again for each row of `pg_class` (1 ms more).
fn pg_shapes(named: &[String], endings: &[String]) -> String {
    let select = "SELECT CAST(c.relname AS TEXT), CAST(a.attname AS TEXT) FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped";
    let mut parts = Vec::new();
    if !named.is_empty() {
        parts.push(format!("{select} WHERE c.oid IN ({})", named.join(", ")));
    }
    for like in endings {
        parts.push(format!(
            "{select} WHERE c.relkind IN ('r', 'p') AND c.relname LIKE {like} AND pg_catalog.pg_table_is_visible(c.oid)"
        ));
    }
    parts.join(" UNION ")
}

/// [`Db::shapes`]'s statement with the names bound, and its arguments.
fn shapes_bound(kind: Kind, tables: &[&str], endings: &[&str]) -> (String, Vec<String>) {
    let list = vec!["?"; tables.len()].join(", ");
    let like: Vec<String> = endings
        .iter()
        .map(|e| format!("%{}", e.replace('_', "\\_")))
        .collect();
    let (name, named, ending) = match kind {
        Kind::Sqlite => (
            "m.name",
            "m.name COLLATE NOCASE IN",
            "m.name LIKE ? ESCAPE '\\'",
        ),
        Kind::MySql => ("table_name", "table_name IN", "table_name LIKE ?"),
        Kind::Postgres => ("c.relname", "c.oid IN", "c.relname LIKE ?"),
    };
    let mut found = Vec::new();
    if !tables.is_empty() {
        let list = match kind {
            Kind::Postgres => vec!["to_regclass(?)"; tables.len()].join(", "),
            _ => list,
        };
        found.push(format!("{named} ({list})"));
    }
    found.extend(endings.iter().map(|_| match kind {
        Kind::Postgres => format!(
            "({ending} AND c.relkind IN ('r', 'p') AND pg_catalog.pg_table_is_visible(c.oid))"
        ),
        _ => ending.to_owned(),
    }));
    let found = found.join(" OR ");
    let sql = match kind {
        Kind::Sqlite => format!(
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND ({found}) ORDER BY {name}, p.cid"
        ),
        Kind::MySql => format!(
            "SELECT CAST(table_name AS CHAR(255)), CAST(column_name AS CHAR(255)) FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND ({found}) ORDER BY {name}, ordinal_position"
        ),
        Kind::Postgres => {
            let named = vec!["to_regclass(?)".to_owned(); tables.len()];
            pg_shapes(&named, &vec!["?".to_owned(); endings.len()])
        }
    };
    let args = tables.iter().map(|t| t.to_string()).chain(like).collect();
    (sql, args)
}

/// A PostgreSQL user name sqlx can log in with: sqlx panics on one that
/// SASLprep refuses, and a control character (a secret file's newline or
/// carriage return) is the one such a name ever carries by mistake.
fn check_postgres_user(url: &url::Url) -> Result<(), String> {
    let from_query = url
        .query_pairs()
        .filter(|(key, _)| key == "user")
        .map(|(_, value)| value.into_owned());
    let decoded = percent_encoding::percent_decode_str(url.username())
        .decode_utf8_lossy()
        .into_owned();
    for user in std::iter::once(decoded).chain(from_query) {
        if user.chars().any(char::is_control) {
            return Err(USER_CONTROL_CHARACTER.into());
        }
        // sqlx prepares the name with SASLprep and panics where that fails.
        if stringprep::saslprep(&format!("n={user}")).is_err() {
            return Err(format!(
                "the user name {user:?} has characters SASLprep (RFC 4013) prohibits, which sqlx, \
                 unlatch's driver, cannot carry in a SCRAM login; expected a user name without them"
            ));
        }
    }
    Ok(())
}

/// Why a user name with a control character is refused.
pub const USER_CONTROL_CHARACTER: &str = "the user name has a control character \
     (a secret file's trailing newline or carriage return?); expected the user name alone";

/// Masks the password of a URL-like string, even one that does not parse,
/// and shows an inline certificate or key as its kind only.
pub fn redact(url: &str) -> String {
    // Every `user:pass@` the text shows first, URLs further in included,
    // then the URL's own password as the URL parser reads it: on odd input
    // the two disagree (fuzz/database_url found several such).
    let masked = mask_query_passwords(&mask_to_last_at(&redact_own_password(&mask_url_passwords(
        url,
    ))));
    tls::shorten_inline_pems(&masked)
}

/// A JDBC URL carries its password as a parameter (`?password=`), and
/// Prisma its key's (`sslpassword=`): their values are masked.
fn mask_query_passwords(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(at) = rest.find(['?', '&', ';']) {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let key_end = rest.find('=').unwrap_or(rest.len());
        let key = &rest[..key_end];
        if key_end < rest.len()
            && (key.eq_ignore_ascii_case("password") || key.eq_ignore_ascii_case("sslpassword"))
        {
            let value_end = rest[key_end..]
                .find(['&', ';', '#'])
                .map_or(rest.len(), |e| key_end + e);
            out.push_str(key);
            out.push_str("=***");
            rest = &rest[value_end..];
        }
    }
    out.push_str(rest);
    out
}

/// A password written without percent-encoding (`@`, `/`, `#`, `?` in it)
/// ends early for the URL parser, which reads the rest as host, path or
/// query; so everything from the first `:` after `://` up to the URL's last
/// `@` is masked too. Hiding more than the password is the safe mistake.
fn mask_to_last_at(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let Some(at) = url.rfind('@').filter(|&at| at > start) else {
        return url.to_owned();
    };
    match url[start..at].find(':').map(|c| start + c) {
        Some(colon) => format!("{}:***{}", &url[..colon], &url[at..]),
        None => url.to_owned(),
    }
}

/// The password as the URL parser reads it; a URL it cannot read is left
/// to [`mask_to_last_at`].
fn redact_own_password(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url) {
        if parsed.password().is_some() && parsed.set_password(Some("***")).is_ok() {
            return parsed.into();
        }
    }
    url.to_owned()
}

/// Masks `pass` in every `scheme://user:pass@host` of `text`, URLs inside
/// commands and error messages included. Every `://` is looked at on its
/// own, so a URL that starts inside another one's authority is not missed
/// (fuzz/database_url).
pub fn mask_url_passwords(text: &str) -> String {
    let mut hidden: Vec<(usize, usize)> = Vec::new();
    for (found, _) in text.match_indices("://") {
        let start = found + 3;
        let tail = &text[start..];
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | '\'' | '"') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        let Some(at) = authority.rfind('@') else {
            continue;
        };
        if let Some(colon) = authority[..at].find(':') {
            hidden.push((start + colon + 1, start + at));
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut shown_to = 0;
    for (from, to) in hidden {
        if to > shown_to && from < to {
            out.push_str(&text[shown_to..from.max(shown_to)]);
            out.push_str("***");
            shown_to = to;
        }
    }
    out.push_str(&text[shown_to..]);
    out
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Inspecting and healing.
    Work,
    /// Holding unlatch's guard, and nothing else.
    Guard,
}

/// What one failed connection attempt means.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Retry,
    Credentials,
    MissingDatabase,
    Fatal,
    /// The TLS handshake failed, and why: a certificate that fails
    /// verification will not pass by waiting.
    Tls(String),
    /// The server refused a setting the URL gives at connection start
    /// (`options`, a schema for `search_path`), or one sqlx sends, which
    /// a PgBouncer not told to ignore it refuses: waiting will not help.
    Setting,
}

fn classify(err: &sqlx::Error) -> Attempt {
    // rustls's errors arrive inside an I/O error (sqlx's handshake) or as
    // sqlx's own TLS error.
    if let Some(why) = tls::handshake_failure(err) {
        return Attempt::Tls(why);
    }
    match err {
        sqlx::Error::Database(db) => {
            if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                return match my.number() {
                    1045 | 1044 | 1698 => Attempt::Credentials,
                    1049 => Attempt::MissingDatabase,
                    _ => Attempt::Retry,
                };
            }
            match db.code().as_deref() {
                Some("28P01" | "28000") => Attempt::Credentials,
                Some("3D000") => Attempt::MissingDatabase,
                // invalid_parameter_value, undefined_object (an unknown
                // setting), cant_change_runtime_param.
                Some("22023" | "42704" | "55P02") => Attempt::Setting,
                Some("08P01") if db.message().contains("unsupported startup parameter") => {
                    Attempt::Setting
                }
                _ => Attempt::Retry,
            }
        }
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::PoolTimedOut => Attempt::Retry,
        _ => Attempt::Fatal,
    }
}

/// What PostgreSQL answers when a statement sqlx prepared (named
/// `sqlx_s_<n>`, numbered from 1 on each connection) meets a server
/// session other than its own: `42P05`, another client's `sqlx_s_1` is
/// there already; `26000`, ours is not there. unlatch prepares nothing by
/// hand, so either means the connection's statements are spread over
/// pooled backends: a transaction-mode pooler reached without
/// `pgbouncer=true` (Supabase's port 6543, Fly's pooled URL, Neon's
/// `-pooler` host). A pooler that keeps prepared statements apart
/// (PgBouncer 1.21 and later, `max_prepared_statements`) answers neither,
/// and is not caught here: see tests/pooler.rs.
const POOLED_STATEMENT_CODES: [&str; 2] = ["42P05", "26000"];

/// `err`, or, when one of unlatch's prepared statements met another
/// session (above), the same refusal as for `pgbouncer=true`, naming the
/// variable: exit 64. Nothing was written: the statement failed before it
/// ran (at parse, or at bind), and the guard's statements are unprepared.
pub fn refuse_pooler(err: anyhow::Error, target: Option<&Target>) -> anyhow::Error {
    let Some(target) = target.filter(|t| t.kind == Kind::Postgres) else {
        return err;
    };
    let answer = err
        .chain()
        .filter_map(|e| e.downcast_ref::<sqlx::Error>()?.as_database_error())
        .find(|e| {
            e.code()
                .is_some_and(|code| POOLED_STATEMENT_CODES.contains(&&*code))
                && e.message().contains("\"sqlx_s_")
        });
    let Some(answer) = answer else {
        return err;
    };
    Failure::new(
        Code::Config,
        format!(
            "{}={}: the server answered \"{}\" ({}) to one of unlatch's own statements, so {}",
            target.source,
            target.redacted,
            target.scrub(answer.message()),
            answer.code().unwrap_or_default(),
            dialect::POOLER_REFUSAL
        ),
    )
    .into()
}

/// SQLite's primary result codes for a database another connection holds
/// locked past the busy timeout (`SQLITE_BUSY`), and for a write to a file
/// (or folder, where the journal goes) this process may not write
/// (`SQLITE_READONLY`); sqlx reports the extended code, whose low byte is
/// the primary one.
const SQLITE_BUSY: i32 = 5;
const SQLITE_READONLY: i32 = 8;

/// `err`, or, when SQLite refused one of unlatch's statements because the
/// file is read-only here (exit 77, as a refused login: waiting will not
/// change it) or another process holds it locked (exit 75, as a lock still
/// held), what that means and what to do.
pub fn sqlite_refusal(err: anyhow::Error, target: &Target) -> anyhow::Error {
    let Some(file) = &target.sqlite_file else {
        return err;
    };
    let answer = err
        .chain()
        .find_map(|e| e.downcast_ref::<sqlx::Error>()?.as_database_error());
    let Some((code, said)) =
        answer.and_then(|a| Some((a.code()?.parse::<i32>().ok()?, a.message())))
    else {
        return err;
    };
    let read_only_mount = on_read_only_mount(file);
    let file = file.display();
    let (code, meaning) = match code & 0xff {
        SQLITE_READONLY if read_only_mount => {
            (Code::Credentials, READ_ONLY_MOUNT.to_owned())
        }
        SQLITE_READONLY => (
            Code::Credentials,
            format!(
                "is read-only to unlatch (uid {}): make the file, and its folder (SQLite writes its \
                 journal beside it), writable for that user, or run unlatch as the file's owner",
                nix::unistd::geteuid()
            ),
        ),
        SQLITE_BUSY => (
            Code::LockStillHeld,
            format!(
                "is locked by another process, which kept it locked past SQLite's busy timeout (5s): \
                 an app, a sqlite3 shell or a backup in a transaction (`fuser {file}` names it); \
                 let it finish, or stop it, then start again"
            ),
        ),
        _ => return err,
    };
    let doing = err.to_string();
    Failure::new(
        code,
        format!("the SQLite database {file} {meaning}. SQLite answered \"{said}\" to: {doing}"),
    )
    .into()
}

/// What a SQLite file on a read-only mount needs: no owner or mode helps.
pub const READ_ONLY_MOUNT: &str = "is on a read-only filesystem: mount its volume read-write (not \
     a read-only bind, ConfigMap or image layer under --read-only)";

/// Whether `file`'s folder is on a filesystem mounted read-only.
pub fn on_read_only_mount(file: &std::path::Path) -> bool {
    let folder = file.parent().filter(|d| !d.as_os_str().is_empty());
    nix::sys::statvfs::statvfs(folder.unwrap_or(std::path::Path::new(".")))
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// Connects as `unlatch status` and `unlatch history` do (a work
/// connection, waited for as a start waits, Ctrl-C heeded) and runs `look`
/// on it, which reads only; `None`: no database configured, or none there
/// yet. A SQLite file that cannot be read says why ([`sqlite_refusal`]).
pub async fn read_only<T>(
    config: &crate::config::Config,
    look: impl AsyncFnOnce(&mut Db, &Target, &mut Stop) -> anyhow::Result<T>,
) -> anyhow::Result<Option<T>> {
    let mut stop = Stop::install()?;
    let Some(target) = &config.database else {
        return Ok(None);
    };
    let Some(mut db) = wait_for(target, Role::Work, config.wait_timeout, &mut stop).await? else {
        return Ok(None);
    };
    let found = look(&mut db, target, &mut stop)
        .await
        .map_err(|e| sqlite_refusal(e, target))?;
    db.close().await;
    Ok(Some(found))
}

/// An open connection and the dialect it speaks.
pub struct Db {
    conn: AnyConnection,
    pub kind: Kind,
}

/// Waits for the database to accept a connection in `role`, with backoff,
/// for at most `timeout`: a refusal that may pass (the server starting, or
/// out of connection slots while replicas take turns) is retried.
/// `Ok(None)` means the database does not exist (yet): nothing to heal.
pub async fn wait_for(
    target: &Target,
    role: Role,
    timeout: Duration,
    stop: &mut Stop,
) -> anyhow::Result<Option<Db>> {
    if let Some(file) = &target.sqlite_file {
        // `exists()` is false for a file behind a folder unlatch may not
        // search: that is no first boot, and its lock may be held.
        match file.try_exists() {
            Ok(true) => {}
            Ok(false) => {
                log::info!(
                    "database file {} does not exist yet: nothing to heal",
                    file.display()
                );
                return Ok(None);
            }
            Err(e) => {
                return Err(Failure::new(
                    Code::Credentials,
                    format!(
                        "cannot reach the SQLite database {} (from {}) as uid {}: {e}; expected its folders \
                         searchable and the file readable and writable for that user, or unlatch run as the \
                         file's owner",
                        file.display(),
                        target.source,
                        nix::unistd::geteuid()
                    ),
                )
                .into())
            }
        }
    }
    let mut wait = Wait::new(timeout, wait::PACE);
    let mut delay = Duration::from_millis(50);
    loop {
        let attempt = tokio::time::timeout(
            wait.remaining()
                .clamp(Duration::from_secs(1), Duration::from_secs(10)),
            target.connect_once(role),
        );
        let err = match wait::or_stop(attempt, stop).await? {
            Ok(Ok(conn)) => {
                log::debug!("connected to {}", target.redacted);
                return Ok(Some(Db::new(conn, target.kind)));
            }
            Ok(Err(err)) => err,
            Err(_) => sqlx::Error::Io(std::io::ErrorKind::TimedOut.into()),
        };
        let cause = target.scrub(&err.to_string());
        let (name, from) = (&target.redacted, &target.source);
        let refused = match classify(&err) {
            Attempt::Retry => None,
            Attempt::MissingDatabase => {
                log::info!("database {name} does not exist yet: nothing to heal ({cause})");
                return Ok(None);
            }
            Attempt::Credentials => Some((
                Code::Credentials,
                format!(
                    "the database {name} (from {from}) rejected the credentials: {cause}{}",
                    target.plaintext_hint()
                ),
            )),
            Attempt::Fatal => Some((
                Code::Unreachable,
                format!("cannot connect to {name} (from {from}): {cause}"),
            )),
            Attempt::Setting => Some((
                Code::Config,
                format!(
                    "{from}={name}: the server refused a connection setting: {cause}; expected settings \
                     the server takes (a PgBouncer refuses sqlx's extra_float_digits unless its \
                     ignore_startup_parameters lists it: add it there, or give unlatch the direct URL)"
                ),
            )),
            Attempt::Tls(why) => Some((
                Code::Unreachable,
                format!(
                    "cannot connect to {name} (from {from}): TLS with {} failed: {why}",
                    target.host()
                ),
            )),
        };
        if let Some((code, why)) = refused {
            return Err(Failure::new(code, why).into());
        }
        let progress = |waited| {
            format!(
                "waiting for the database {name}: {cause} ({} of UNLATCH_WAIT_TIMEOUT={})",
                human(waited),
                human(timeout)
            )
        };
        let timed_out = || {
            let why = format!(
                "could not reach the database {name} (from {from}) within UNLATCH_WAIT_TIMEOUT={}: {cause}",
                human(timeout)
            );
            Failure::new(Code::Unreachable, why).into()
        };
        wait.again(delay, stop, progress, timed_out).await?;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

impl Db {
    /// Wraps a connection opened elsewhere (tests, the guard).
    pub fn new(conn: AnyConnection, kind: Kind) -> Db {
        Db { conn, kind }
    }

    /// Whether a statement goes as a simple query: on PostgreSQL, one with
    /// nothing to bind takes one round trip so, where a prepared one takes
    /// two (parse and describe, then bind and execute). Most of a start's
    /// statements have nothing to bind.
    fn simple(&self, args: &[Option<&str>]) -> bool {
        self.kind == Kind::Postgres && args.is_empty()
    }

    /// The rows of a statement with nothing to bind, as a simple query.
    pub async fn simple_rows(&mut self, sql: &str) -> anyhow::Result<Vec<AnyRow>> {
        sqlx::Executor::fetch_all(&mut self.conn, sqlx::raw_sql(sql))
            .await
            .with_context(|| sql.to_owned())
    }

    /// Runs a statement; `?` placeholders, bound in order.
    pub async fn exec(&mut self, sql: &str, args: &[Option<&str>]) -> anyhow::Result<u64> {
        let done = if self.simple(args) {
            sqlx::Executor::execute(&mut self.conn, sqlx::raw_sql(sql)).await
        } else {
            let placed = self.kind.placeholders(sql);
            bound(&placed, args).execute(&mut self.conn).await
        };
        Ok(done.with_context(|| sql.to_owned())?.rows_affected())
    }

    /// The rows of a statement; `?` placeholders, bound in order.
    pub async fn rows(&mut self, sql: &str, args: &[Option<&str>]) -> anyhow::Result<Vec<AnyRow>> {
        if self.simple(args) {
            return self.simple_rows(sql).await;
        }
        let placed = self.kind.placeholders(sql);
        bound(&placed, args)
            .fetch_all(&mut self.conn)
            .await
            .with_context(|| sql.to_owned())
    }

    /// Fetches at most one row.
    pub async fn row(
        &mut self,
        sql: &str,
        args: &[Option<&str>],
    ) -> anyhow::Result<Option<AnyRow>> {
        Ok(self.rows(sql, args).await?.into_iter().next())
    }

    /// Whether a table of this name exists in the current database/schema.
    pub async fn table_exists(&mut self, table: &str) -> anyhow::Result<bool> {
        Ok(!self.existing_tables(&[table]).await?.is_empty())
    }

    /// Which of `tables` exist in the current database/schema, in one
    /// round trip; names as the catalog spells them.
    pub async fn existing_tables(&mut self, tables: &[&str]) -> anyhow::Result<Vec<String>> {
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        // Plain names need nothing bound on PostgreSQL: one round trip (see
        // `simple`).
        let inline = self.kind == Kind::Postgres && tables.iter().all(|t| plain_name(t));
        let (list, args): (Vec<String>, Vec<Option<&str>>) = match inline {
            true => (tables.iter().map(|t| format!("'{t}'")).collect(), vec![]),
            false => (
                vec!["?".into(); tables.len()],
                tables.iter().map(|t| Some(*t)).collect(),
            ),
        };
        let sql = match self.kind {
            Kind::Sqlite => format!(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name COLLATE NOCASE IN ({})",
                list.join(", ")
            ),
            Kind::MySql => format!(
                "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_name IN ({})",
                list.join(", ")
            ),
            // to_regclass follows search_path, as the tools' unqualified
            // names do; the catalogs, not information_schema (slow on a
            // fresh backend).
            Kind::Postgres => format!(
                "SELECT CAST(name AS TEXT) FROM (VALUES ({})) AS t(name) WHERE to_regclass(name) IS NOT NULL",
                list.join("), (")
            ),
        };
        let rows = self.rows(&sql, &args).await?;
        rows.iter()
            .map(|r| Ok(sqlx::Row::try_get::<String, _>(r, 0)?))
            .collect()
    }

    /// The tables named `tables` and those whose names end with one of
    /// `endings` (tools whose table takes any name: knex's tableName), each
    /// with its column names, as the catalog spells them: in one round trip.
    pub async fn shapes(
        &mut self,
        tables: &[&str],
        endings: &[&str],
    ) -> anyhow::Result<Vec<(String, Vec<String>)>> {
        if tables.is_empty() && endings.is_empty() {
            return Ok(Vec::new());
        }
        let (sql, args) = match self.kind {
            Kind::Postgres if tables.iter().chain(endings).all(|t| plain_name(t)) => {
                (shapes_inline(tables, endings), vec![])
            }
            kind => shapes_bound(kind, tables, endings),
        };
        let args: Vec<Option<&str>> = args.iter().map(|a| Some(a.as_str())).collect();
        let mut shapes: Vec<(String, Vec<String>)> = Vec::new();
        for row in self.rows(&sql, &args).await? {
            let table: String = sqlx::Row::try_get(&row, 0)?;
            let column: String = sqlx::Row::try_get(&row, 1)?;
            match shapes.iter_mut().find(|(t, _)| *t == table) {
                Some((_, columns)) => columns.push(column),
                None => shapes.push((table, vec![column])),
            }
        }
        Ok(shapes)
    }

    /// `table`'s columns, from the catalog, in order: each name and its
    /// declared type (empty when none is declared); none when it is absent.
    pub async fn columns(&mut self, table: &str) -> anyhow::Result<Vec<(String, String)>> {
        let sql = match self.kind {
            Kind::Sqlite => "SELECT name, type FROM pragma_table_info(?) ORDER BY cid",
            Kind::MySql => {
                "SELECT CAST(column_name AS CHAR(255)), CAST(data_type AS CHAR(255)) FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position"
            }
            Kind::Postgres => {
                "SELECT CAST(attname AS TEXT), format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute \
                 WHERE attrelid = to_regclass(?) AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            }
        };
        let rows = self.rows(sql, &[Some(table)]).await?;
        rows.iter()
            .map(|row| {
                let name: String = sqlx::Row::try_get(row, 0)?;
                let declared: Option<String> = sqlx::Row::try_get(row, 1)?;
                Ok((name, declared.unwrap_or_default()))
            })
            .collect()
    }

    /// Whether `table` has a column `column` (names as the tool writes them;
    /// PostgreSQL folds them to lowercase, the others ignore case).
    pub async fn column_exists(&mut self, table: &str, column: &str) -> anyhow::Result<bool> {
        let kind = self.kind;
        let matches = |name: &str| match kind {
            Kind::Postgres => name == column.to_lowercase(),
            _ => name.eq_ignore_ascii_case(column),
        };
        Ok(self
            .columns(table)
            .await?
            .iter()
            .any(|(name, _)| matches(name)))
    }

    /// The database's own wall-clock time, without a zone, as the tools
    /// that write `NOW()` into a zone-less column see it.
    pub async fn now_naive(&mut self) -> anyhow::Result<String> {
        use sqlx::Row;
        let sql = match self.kind {
            Kind::Sqlite => "SELECT datetime('now')",
            Kind::MySql => "SELECT CAST(NOW(6) AS CHAR)",
            Kind::Postgres => "SELECT CAST(LOCALTIMESTAMP AS TEXT)",
        };
        let row = self.row(sql, &[]).await?.expect("one row");
        Ok(row.try_get::<String, _>(0)?)
    }

    /// The database's clock now, in UTC, to the millisecond or finer: what
    /// unlatch times its own records by ([`crate::state`]), so that replicas
    /// whose clocks disagree agree on it, and a change of daylight saving
    /// time in the server's zone does not shift it.
    pub async fn clock(&mut self) -> anyhow::Result<jiff::Timestamp> {
        use sqlx::Row;
        let sql = match self.kind {
            Kind::Sqlite => "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')",
            Kind::MySql => "SELECT CAST(UTC_TIMESTAMP(6) AS CHAR)",
            Kind::Postgres => "SELECT CAST(clock_timestamp() AT TIME ZONE 'UTC' AS TEXT)",
        };
        let row = self.row(sql, &[]).await?.expect("one row");
        let text: String = row.try_get(0)?;
        let civil: jiff::civil::DateTime = text
            .parse()
            .with_context(|| format!("the database's clock read as {text:?}"))?;
        Ok(civil.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp())
    }

    /// Runs statements in one transaction; returns the rows each affected.
    pub async fn exec_in_transaction(
        &mut self,
        statements: &[(&str, Vec<Option<&str>>)],
    ) -> anyhow::Result<Vec<u64>> {
        let mut tx = self.conn.begin().await?;
        let mut counts = Vec::new();
        for (sql, args) in statements {
            let placed = self.kind.placeholders(sql);
            let done = bound(&placed, args).execute(&mut *tx).await;
            counts.push(done.with_context(|| sql.to_string())?.rows_affected());
        }
        tx.commit().await?;
        Ok(counts)
    }

    pub async fn close(self) {
        let _ = self.conn.close().await;
    }

    /// The raw connection, for the guard's own statements.
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

/// `sql` with `args` bound to its placeholders, in order.
fn bound<'q>(sql: &'q str, args: &[Option<&str>]) -> Query<'q, Any, AnyArguments<'q>> {
    let query = sqlx::query(sql);
    args.iter()
        .fold(query, |q, arg| q.bind(arg.map(str::to_owned)))
}

impl Kind {
    /// `?` placeholders become `$1, $2...` for PostgreSQL. Our SQL has no
    /// `?` inside literals, so a plain scan is exact.
    fn placeholders(self, sql: &str) -> String {
        if self != Kind::Postgres {
            return sql.to_owned();
        }
        let mut parts = sql.split('?');
        let mut out = parts.next().unwrap_or_default().to_owned();
        for (n, part) in parts.enumerate() {
            out.push_str(&format!("${}{part}", n + 1));
        }
        out
    }

    /// An expression's value as text, as the database renders it.
    pub fn text(self, expr: &str) -> String {
        match self {
            // CHAR(255), not CHAR: a TEXT cast to plain CHAR comes back as a BLOB.
            Kind::MySql => format!("CAST({expr} AS CHAR(255))"),
            _ => format!("CAST({expr} AS TEXT)"),
        }
    }

    /// Equality that holds for two NULLs too: the heart of a compare-and-swap
    /// on a value that may be NULL.
    pub fn same(self, lhs: &str, rhs: &str) -> String {
        match self {
            Kind::Sqlite => format!("{lhs} IS {rhs}"),
            Kind::MySql => format!("{lhs} <=> {rhs}"),
            Kind::Postgres => format!("{lhs} IS NOT DISTINCT FROM {rhs}"),
        }
    }

    /// An identifier quoted for this database (for column names that are
    /// reserved words, like knex's `index`).
    pub fn quote(self, ident: &str) -> String {
        match self {
            Kind::MySql => format!("`{ident}`"),
            _ => format!("\"{ident}\""),
        }
    }

    /// A placeholder for an integer given as text.
    pub fn int_param(self) -> &'static str {
        match self {
            Kind::Sqlite => "CAST(? AS INTEGER)",
            Kind::MySql => "CAST(? AS SIGNED)",
            Kind::Postgres => "CAST(? AS BIGINT)",
        }
    }

    /// A placeholder for a timestamp given as text (PostgreSQL will not take
    /// text into a timestamp column without a cast).
    pub fn timestamp_param(self) -> &'static str {
        match self {
            Kind::Postgres => "CAST(? AS TIMESTAMPTZ)",
            _ => "?",
        }
    }
}

/// `value` as one word of PostgreSQL's startup `options`, which the server
/// splits at white space unless a backslash escapes it (`pg_split_opts`);
/// sqlx writes `-c name=value` without escaping, so a schema such as
/// Prisma's `"My Tenant"` would reach the server cut in two.
fn startup_option(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '\\' || c.is_ascii_whitespace() {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_startup_option_keeps_its_spaces_and_backslashes() {
        assert_eq!(startup_option("\"My Tenant\""), "\"My\\ Tenant\"");
        assert_eq!(startup_option("a\\b\tc"), "a\\\\b\\\tc");
        assert_eq!(startup_option("app"), "app");
    }

    #[test]
    fn url_passwords_are_masked_inside_commands() {
        assert_eq!(
            mask_url_passwords("sh -c 'psql -q '\\''postgres://u:pw%40x@h:5432/db'\\'' -c x'"),
            "sh -c 'psql -q '\\''postgres://u:***@h:5432/db'\\'' -c x'"
        );
        assert_eq!(
            mask_url_passwords("migrate -database mysql://root:s3@tcp(db:3306)/app up; see https://example.com/a@b"),
            "migrate -database mysql://root:***@tcp(db:3306)/app up; see https://example.com/a@b"
        );
        assert_eq!(
            mask_url_passwords("sqlite:///data/app.db"),
            "sqlite:///data/app.db"
        );
        assert_eq!(mask_url_passwords("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn the_passwords_fuzzing_found_shown_are_masked() {
        // fuzz/database_url's crashes, shortened: a URL starting inside
        // another one's authority, one after the password, one quoted in a
        // driver's error, one further in a SQLite URL.
        for shown in [
            mask_url_passwords("mariadb://a:p@ttp://user:Fz-S3cret@CCC"),
            redact("mariadb:\r//a\u{1f}poc:i:p!osre*s sql%20c@ttp://user:Fz-S3cret@CCCC"),
            redact("https://:x@h/da%00sqlite:///hostsqlite://user:Fz-S3cret@/%/host"),
            Target::parse("sqlite:/db?host://user:Fz-S3cret@a/ghost", "DATABASE_URL")
                .unwrap_err()
                .message,
            redact("sqlite:r[v///a/ghosIpassdb://user:Fz-S3cret@a:b%40c@t.db"),
        ] {
            assert!(!shown.contains("Fz-S3cret"), "{shown}");
        }
    }

    #[test]
    fn a_password_given_as_a_parameter_is_masked() {
        assert_eq!(
            redact("jdbc:postgresql://db/app?user=u&password=hunter2&ssl=true"),
            "jdbc:postgresql://db/app?user=u&password=***&ssl=true"
        );
        assert_eq!(
            redact("postgres://u@h/d?schema=a&sslpassword=k3y"),
            "postgres://u@h/d?schema=a&sslpassword=***"
        );
        let err = Target::parse(
            "jdbc:postgresql://db/app?password=hunter2&sslmode=bogus",
            "FLYWAY_URL",
        )
        .unwrap_err();
        assert!(!err.message.contains("hunter2"), "{}", err.message);
        // libpq's and sqlx's own password parameter is the password, to be
        // hidden wherever it shows (a migrate command carrying it).
        let target = Target::parse("postgres://u@h/d?password=hunter%2B2", "DATABASE_URL").unwrap();
        assert_eq!(target.password(), Some("hunter+2"));
        assert_eq!(
            target.scrub("migrate --password hunter+2"),
            "migrate --password ***"
        );
    }

    #[test]
    fn redaction_masks_passwords_only() {
        assert_eq!(
            redact("mysql://root:hunter2@db:3306/ghost"),
            "mysql://root:***@db:3306/ghost"
        );
        assert_eq!(redact("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact("sqlite:///data/ghost.db"), "sqlite:///data/ghost.db");
        assert_eq!(redact("weird://user:hunter2@[bad"), "weird://user:***@[bad");
    }

    #[test]
    fn parse_accepts_the_five_schemes() {
        for (url, kind) in [
            ("sqlite:///tmp/x.db", Kind::Sqlite),
            ("mysql://root@127.0.0.1/test", Kind::MySql),
            ("mariadb://root@127.0.0.1/test", Kind::MySql),
            ("postgres://postgres@127.0.0.1/test", Kind::Postgres),
            ("postgresql://postgres@127.0.0.1:5432/test", Kind::Postgres),
        ] {
            assert_eq!(Target::parse(url, "X").unwrap().kind, kind, "{url}");
        }
        let t = Target::parse("sqlite:///tmp/a%20b.db", "X").unwrap();
        assert_eq!(t.sqlite_file.unwrap(), PathBuf::from("/tmp/a b.db"));
        assert!(Target::parse("sqlite::memory:", "X")
            .unwrap()
            .sqlite_file
            .is_none());
    }

    #[test]
    fn parse_errors_name_source_and_hide_password() {
        for (url, why) in [
            ("redis://u:sekrit@h/0", "unsupported scheme redis:"),
            ("no-scheme-here", "no scheme"),
            ("mysql://u:sekrit@h", "no database name"),
            ("postgres://u:sekrit@h/d?sslmode=bogus", "sslmode"),
        ] {
            let err = Target::parse(url, "DATABASE_URL").unwrap_err();
            assert_eq!(err.code, Code::Config);
            assert!(err.message.starts_with("DATABASE_URL="), "{}", err.message);
            assert!(err.message.contains(why), "{why}: {}", err.message);
            assert!(!err.message.contains("sekrit"), "{}", err.message);
        }
    }

    #[test]
    fn postgres_placeholders_are_numbered() {
        assert_eq!(
            Kind::Postgres.placeholders("a = ? AND b = ?"),
            "a = $1 AND b = $2"
        );
        assert_eq!(Kind::MySql.placeholders("a = ?"), "a = ?");
    }

    #[test]
    fn scrub_masks_decoded_password() {
        let t = Target::parse("mysql://u:p%40ss@h/d", "X").unwrap();
        assert_eq!(t.scrub("Access denied for p@ss"), "Access denied for ***");
    }
}
