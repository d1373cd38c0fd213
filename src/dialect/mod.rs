//! URL dialects: the database URL as the tool beside unlatch writes it
//! (Prisma, golang-migrate, JDBC...), read into the URL sqlx takes, plus
//! where that tool keeps its tables.
//!
//! Each dialect reads the URL as its tool does. A parameter that locates
//! the tables (`schema`, `search_path`, `currentSchema`,
//! `x-migrations-table`) is read; one the connection needs (TLS, socket,
//! options) goes on to sqlx in the form sqlx and `tls` read; anything else
//! is kept out of the connection and named in a warning. None may silently
//! change where unlatch looks: a parameter that would (a pooler, a service
//! file, several hosts) is refused with the reason.
//!
//! Which tool wrote a `postgres:`/`mysql:` URL matters for one parameter:
//! `sslcert` is the server's CA to Prisma and the client's certificate to
//! libpq and lib/pq. A URL is Prisma's when `UNLATCH_TOOL=prisma` or when
//! it carries a parameter only Prisma reads ([`PRISMA_ONLY`]).
//!
//! This module reads libpq-style and MySQL URLs, and the parameters every
//! dialect shares; one file per tool's own forms: `prisma`,
//! `golang_migrate`, `jdbc`.
//!
//! May touch: nothing but reading, for Prisma's relative paths, whether the
//! Prisma schema is in the working directory (and its `package.json`).

mod golang_migrate;
mod jdbc;
mod prisma;

use std::path::PathBuf;

use url::Url;

use crate::db::Kind;
use crate::tools::ToolChoice;

use golang_migrate::{go_dsn_to_url, migrations_table, mysql_table, GoTls};
use jdbc::jdbc;
pub use jdbc::{escape_userinfo, jdbc_with, JdbcExtras};
pub use prisma::{prisma_schema_dir, PRISMA_ONLY};
use prisma::{prisma_sqlite, PrismaTls};

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

/// The tools' own parameters that change nothing about where unlatch looks
/// or how it must connect (pool sizes, timeouts, statement handling).
const TOOLS_OWN: &[&str] = &[
    "connection_limit",
    "pool_timeout",
    "socket_timeout",
    "connect_timeout",
    "statement_cache_size",
    "max_connection_lifetime",
    "max_idle_connection_lifetime",
    "x-statement-timeout",
    "x-multi-statement",
    "x-multi-statement-max-size",
    "x-no-lock",
];

/// What sqlx's PostgreSQL parser reads, with libpq's meanings.
const SQLX_POSTGRES: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    // Read by tls::settle (libpq's meaning), not by sqlx.
    "channel_binding",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// What sqlx's MySQL parser reads.
const SQLX_MYSQL: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslca",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "charset",
    "collation",
    "statement-cache-capacity",
    "socket",
    "timezone",
    "time-zone",
];

/// Reads `url` in whichever dialect its form shows, or `tool`'s where the
/// form is shared (Prisma's). `Err` is the reason, which the caller wraps
/// with the variable's name.
pub fn read(url: &str, tool: ToolChoice) -> Result<Located, String> {
    let prisma_named = tool == ToolChoice::Named("prisma");
    if let Some(rest) = strip_prefix_ignore_case(url, "jdbc:") {
        return jdbc(rest);
    }
    if let Some(path) = strip_prefix_ignore_case(url, "file:") {
        return prisma_sqlite(path, &working_dir()?);
    }
    let scheme = url
        .split_once(':')
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    match scheme.as_str() {
        "sqlite" => Ok(Located::new(Kind::Sqlite, url.to_owned())),
        "mysql" | "mariadb" => mysql(&go_dsn_to_url(url)?, prisma_named),
        "postgres" | "postgresql" => postgres(url, prisma_named),
        "" => Err("no scheme".into()),
        other => Err(format!("unsupported scheme {other}:")),
    }
}

impl Located {
    fn new(kind: Kind, url: String) -> Located {
        Located {
            kind,
            url,
            schema: None,
            tables: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

pub(super) fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

pub(super) fn working_dir() -> Result<PathBuf, String> {
    std::env::current_dir().map_err(|e| format!("cannot read the working directory: {e}"))
}

/// The parameters a URL carries that unlatch reads or drops, gathered as
/// they are met.
#[derive(Default)]
pub(super) struct Params {
    /// Kept for sqlx, in order.
    kept: Vec<(String, String)>,
    /// Dropped: the tools' own, and those unlatch does not know.
    unused: Vec<String>,
}

impl Params {
    pub(super) fn keep(&mut self, key: &str, value: &str) {
        self.kept.retain(|(k, _)| k != key);
        self.kept.push((key.to_owned(), value.to_owned()));
    }

    pub(super) fn drop_unused(&mut self, key: &str) {
        if !self.unused.iter().any(|k| k == key) {
            self.unused.push(key.to_owned());
        }
    }

    pub(super) fn value(&self, key: &str) -> Option<&str> {
        self.kept
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `located`, its URL `url` with the kept parameters as its query, and
    /// the warning for what was dropped.
    pub(super) fn finish(&self, mut url: Url, mut located: Located) -> Located {
        url.set_query(None);
        if !self.kept.is_empty() {
            url.query_pairs_mut().extend_pairs(&self.kept);
        }
        located.warnings.extend(self.warning());
        located.url = url.into();
        located
    }

    /// The warning for a query of which unlatch uses nothing (a SQLite
    /// file's options).
    pub(super) fn none_used(query: &str) -> Option<String> {
        let mut params = Params::default();
        for (key, _) in url::form_urlencoded::parse(query.as_bytes()) {
            params.drop_unused(&key);
        }
        params.warning()
    }

    /// The one warning that names what was dropped.
    pub(super) fn warning(&self) -> Option<String> {
        if self.unused.is_empty() {
            return None;
        }
        let (own, unknown): (Vec<&String>, Vec<&String>) = self
            .unused
            .iter()
            .partition(|k| TOOLS_OWN.contains(&k.as_str()));
        let mut parts = Vec::new();
        if !own.is_empty() {
            parts.push(format!(
                "{} (the tools' own pool, timeout and statement settings)",
                join(&own)
            ));
        }
        if !unknown.is_empty() {
            parts.push(format!("{} (not parameters unlatch knows)", join(&unknown)));
        }
        Some(format!(
            "the database URL's parameters {}: not used by unlatch, which connects without them",
            parts.join("; ")
        ))
    }
}

fn join(keys: &[&String]) -> String {
    keys.iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn flag(key: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "t" | "yes" => Ok(true),
        "false" | "0" | "f" | "no" => Ok(false),
        _ => Err(format!("{key}={value}: expected true or false")),
    }
}

/// A transaction-mode pooler hands each statement to whichever server
/// connection is free: session locks (`pg_advisory_lock`, which unlatch's
/// guard and the tools take) do not hold across statements there.
pub const POOLER_REFUSAL: &str = "this URL goes through a transaction-mode pooler (PgBouncer, Supavisor, a pooled URL), \
     where the session locks unlatch and the migration tools take cannot hold; give unlatch the direct URL \
     (Prisma's directUrl, the provider's non-pooled or session-mode URL) in UNLATCH_DATABASE_URL";

/// A URL's query as owned pairs, in order.
type Pairs = Vec<(String, String)>;

/// `url` parsed, its query's pairs, and whether it is Prisma's (named so,
/// or carrying a parameter only Prisma reads).
fn parse_with_query(url: &str, prisma_named: bool) -> Result<(Url, Pairs, bool), String> {
    let parsed = Url::parse(url).map_err(|e| e.to_string())?;
    let pairs = crate::tls::query_pairs(&parsed);
    let prisma = prisma_named || pairs.iter().any(|(k, _)| PRISMA_ONLY.contains(&k.as_str()));
    Ok((parsed, pairs, prisma))
}

fn postgres(url: &str, prisma_named: bool) -> Result<Located, String> {
    let (parsed, pairs, prisma) = parse_with_query(url, prisma_named)?;
    let mut located = Located::new(Kind::Postgres, String::new());
    let mut params = Params::default();
    let mut table = None;
    let mut table_quoted = false;
    let mut prisma_tls = PrismaTls::default();
    for (key, value) in &pairs {
        match key.as_str() {
            "pgbouncer" if flag(key, value)? => return Err(format!("pgbouncer=true: {POOLER_REFUSAL}")),
            "pgbouncer" => {}
            // Prisma quotes its schema's name in search_path.
            "schema" if value.is_empty() => {
                return Err("schema=: expected the name of a schema (Prisma's default is public)".into())
            }
            "schema" => located.schema = Some(quoted_schema(value)),
            // lib/pq's runtime parameter (golang-migrate), as it is.
            "search_path" => located.schema = Some(value.clone()),
            "x-migrations-table" => table = Some(value.clone()),
            "x-migrations-table-quoted" => table_quoted = flag(key, value)?,
            "service" => {
                return Err(format!(
                    "service={value}: a connection service file (pg_service.conf) is not read by unlatch; \
                     give host, port and dbname in the URL"
                ))
            }
            "sslmode" | "sslcert" | "sslaccept" | "sslidentity" | "sslpassword" if prisma => {
                prisma_tls.take(key, value)?
            }
            k if SQLX_POSTGRES.contains(&k) || k.starts_with("options[") => params.keep(k, value),
            k => params.drop_unused(k),
        }
    }
    if prisma {
        prisma_tls.apply_postgres(&mut params, &mut located.warnings)?;
    }
    if let Some(table) = table {
        let (schema, name) = migrations_table(&table, table_quoted)?;
        if let Some(schema) = schema {
            located.schema = Some(schema);
        }
        located.tables.push(("golang-migrate", name));
    }
    if !prisma && params.value("sslcert").is_some() && params.value("sslkey").is_none() {
        located.warnings.push(
            "the database URL has sslcert but no sslkey: read as libpq's client certificate; \
             if this is Prisma's URL, where sslcert is the server's CA, set UNLATCH_TOOL=prisma"
                .into(),
        );
    }
    Ok(params.finish(parsed, located))
}

/// A schema name as Prisma puts it in `search_path`: quoted, so that its
/// case is kept; a plain lowercase name is the same either way.
pub(super) fn quoted_schema(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !name.is_empty() {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn mysql(url: &str, prisma_named: bool) -> Result<Located, String> {
    let (parsed, pairs, prisma) = parse_with_query(url, prisma_named)?;
    let mut located = Located::new(Kind::MySql, String::new());
    let mut params = Params::default();
    let mut prisma_tls = PrismaTls::default();
    let mut go_tls = GoTls::default();
    for (key, value) in &pairs {
        match key.as_str() {
            "x-migrations-table" => located
                .tables
                .push(("golang-migrate", mysql_table(key, value)?)),
            "sslcert" | "sslaccept" | "sslidentity" | "sslpassword" if prisma => {
                prisma_tls.take(key, value)?
            }
            // Prisma strips parentheses from its socket path.
            "socket" if prisma => params.keep("socket", &value.replace(['(', ')'], "")),
            "tls" | "x-tls-ca" | "x-tls-cert" | "x-tls-key" | "x-tls-insecure-skip-verify" => {
                go_tls.take(key, value)?
            }
            k if SQLX_MYSQL.contains(&k) => params.keep(k, value),
            k => params.drop_unused(k),
        }
    }
    if prisma {
        prisma_tls.apply_mysql(&mut params)?;
    }
    go_tls.apply(&mut params)?;
    Ok(params.finish(parsed, located))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parameters and their values (`None`: absent).
    type Params = &'static [(&'static str, Option<&'static str>)];

    fn read_plain(url: &str) -> Located {
        read(url, ToolChoice::Auto).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn query(url: &str) -> Vec<(String, String)> {
        Url::parse(url)
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn param(url: &str, key: &str) -> Option<String> {
        query(url)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// That `l`'s first warning holds `part`.
    #[track_caller]
    fn assert_warns(l: &Located, part: &str) {
        let first = l.warnings.first().map(String::as_str).unwrap_or_default();
        assert!(first.contains(part), "{part}: {:?}", l.warnings);
    }

    /// A URL as written, and parameters of the URL it is read as (`None`:
    /// dropped), each row named after the behaviour it shows.
    #[rustfmt::skip]
    const PARAMS: &[(&str, &str, Params)] = &[
        // Prisma checks no certificate unless sslaccept=strict.
        ("Prisma's schema and connection_limit leave the URL; no certificate checked", "postgresql://u:p@db:5432/app?schema=tenant_a&connection_limit=5", &[("schema", None), ("connection_limit", None), ("sslmode", Some("prefer"))]),
        ("Prisma's require", "postgres://u@h/d?sslmode=require", &[("sslmode", Some("require"))]),
        ("Prisma's strict require", "postgres://u@h/d?sslmode=require&sslaccept=strict", &[("sslmode", Some("verify-full"))]),
        ("Prisma's disable", "postgres://u@h/d?sslmode=disable&schema=x", &[("sslmode", Some("disable"))]),
        ("Prisma's strict alone", "postgres://u@h/d?sslaccept=strict", &[("sslmode", Some("verify-full"))]),
        ("Prisma's sslcert is the CA when strict, not a client's", "postgres://u@h/d?sslmode=require&sslaccept=strict&sslcert=/etc/ca.pem", &[("sslrootcert", Some("/etc/ca.pem")), ("sslcert", None)]),
        ("Prisma does not verify unless strict", "postgres://u@h/d?sslmode=require&sslcert=/etc/ca.pem&schema=public", &[("sslrootcert", None)]),
        ("an unknown parameter is dropped, application_name and options kept", "postgres://u@h/d?target_session_attrs=read-write&application_name=x&options[statement_timeout]=5s", &[("target_session_attrs", None), ("application_name", Some("x")), ("options[statement_timeout]", Some("5s"))]),
        ("golang-migrate's unix socket", "mysql://root@unix(/run/mysqld/mysqld.sock)/app", &[("socket", Some("/run/mysqld/mysqld.sock"))]),
        ("golang-migrate's custom TLS verifies with x-tls-ca", "mysql://root@tcp([::1]:3306)/app?tls=custom&x-tls-ca=/ca.pem", &[("ssl-mode", Some("VERIFY_IDENTITY")), ("ssl-ca", Some("/ca.pem"))]),
        ("golang-migrate's skip-verify", "mysql://root@tcp(db)/app?tls=skip-verify", &[("ssl-mode", Some("REQUIRED"))]),
        ("Prisma's strict on MySQL, its sslcert the CA", "mysql://u@h/d?sslaccept=strict&sslcert=/ca.pem&connection_limit=1", &[("ssl-mode", Some("VERIFY_IDENTITY")), ("ssl-ca", Some("/ca.pem"))]),
        ("Prisma's invalid certificates accepted", "mysql://u@h/d?sslaccept=accept_invalid_certs", &[("ssl-mode", Some("REQUIRED"))]),
        ("sqlx's ssl-mode kept", "mysql://u@h/d?ssl-mode=REQUIRED", &[("ssl-mode", Some("REQUIRED"))]),
        ("pgjdbc's ssl=true verifies; its password leaves the query", "jdbc:postgresql://db:5433/app?currentSchema=billing&user=svc&password=p%25w%40x&ssl=true&loginTimeout=5", &[("sslmode", Some("verify-full")), ("password", None)]),
        ("pgjdbc's NonValidatingFactory", "jdbc:postgresql://db/app?ssl=true&sslfactory=org.postgresql.ssl.NonValidatingFactory", &[("sslmode", Some("require"))]),
        ("Connector/J's sslMode", "jdbc:mysql://db:3306/app?user=root&password=pw&sslMode=VERIFY_CA", &[("ssl-mode", Some("VERIFY_CA"))]),
        ("Connector/J's useSSL=false", "jdbc:mysql://db/app?useSSL=false", &[("ssl-mode", Some("DISABLED"))]),
        ("MariaDB's verify-full and serverSslCert", "jdbc:mariadb://db/app?sslMode=verify-full&serverSslCert=/ca.pem", &[("ssl-mode", Some("VERIFY_IDENTITY")), ("ssl-ca", Some("/ca.pem"))]),
        ("MariaDB's trust", "jdbc:mariadb://db/app?sslMode=trust", &[("ssl-mode", Some("REQUIRED"))]),
    ];

    #[test]
    fn each_url_gives_its_parameters() {
        for (behaviour, url, params) in PARAMS {
            let l = read_plain(url);
            for (key, expected) in *params {
                let found = param(&l.url, key);
                assert_eq!(found.as_deref(), *expected, "{behaviour}, {key}: {l:?}");
            }
        }
    }

    /// A URL refused, and a part of the reason given.
    #[rustfmt::skip]
    const REFUSED: &[(&str, &str, &str)] = &[
        ("Prisma's sslidentity", "postgres://u@h/d?sslidentity=id.p12&schema=a", "PKCS#12"),
        ("a transaction-mode pooler", "postgres://u@pooler:6543/d?pgbouncer=true", "transaction-mode pooler"),
        ("a pooler needs a direct URL", "postgres://u@pooler:6543/d?pgbouncer=true", "direct URL"),
        ("golang-migrate's table must be lowercase", "postgres://u@h/d?x-migrations-table=MyTable", "lowercase"),
        ("a libpq service", "postgres:///d?service=prod", "pg_service.conf"),
        ("pgjdbc's several hosts", "jdbc:postgresql://a:5432,b:5432/app", "several hosts"),
        ("Connector/J's replication", "jdbc:mysql:replication://a,b/app", "jdbc:mysql:replication: expected jdbc:mysql://host:port/database"),
        ("an unknown JDBC driver", "jdbc:oracle:thin:@h:1521:x", "jdbc:oracle"),
    ];

    #[test]
    fn each_refused_url_says_why() {
        for (behaviour, url, part) in REFUSED {
            let err = read(url, ToolChoice::Auto).unwrap_err();
            assert!(err.contains(part), "{behaviour}: {err}");
        }
        assert!(read("postgres://u@h/d?pgbouncer=false", ToolChoice::Auto).is_ok());
    }

    #[test]
    fn prisma_schema_becomes_the_schema_and_warns_of_what_it_drops() {
        let l = read_plain("postgresql://u:p@db:5432/app?schema=tenant_a&connection_limit=5");
        assert_eq!(l.kind, Kind::Postgres);
        assert_eq!(l.schema.as_deref(), Some("tenant_a"));
        assert_warns(&l, "connection_limit");
        // Prisma quotes the name: its case is kept.
        let l = read_plain("postgresql://u@db/app?schema=Tenant");
        assert_eq!(l.schema.as_deref(), Some("\"Tenant\""));
    }

    #[test]
    fn unlatch_tool_prisma_reads_sslcert_as_the_ca() {
        let l = read(
            "postgres://u@h/d?sslmode=require&sslaccept=strict&sslcert=/ca.pem",
            ToolChoice::Named("prisma"),
        )
        .unwrap();
        assert_eq!(param(&l.url, "sslrootcert").as_deref(), Some("/ca.pem"));
        // libpq's meaning otherwise: the client certificate, passed on.
        let l = read_plain("postgres://u@h/d?sslcert=/client.pem&sslkey=/client.key");
        assert_eq!(param(&l.url, "sslcert").as_deref(), Some("/client.pem"));
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let l = read_plain("postgres://u@h/d?sslcert=/ca.pem");
        assert_warns(&l, "UNLATCH_TOOL=prisma");
    }

    #[test]
    fn golang_migrate_table_and_search_path() {
        let l = read_plain(
            "postgres://u@h/d?sslmode=disable&search_path=app&x-migrations-table=app_migrations&x-multi-statement=true",
        );
        assert_eq!(l.schema.as_deref(), Some("app"));
        assert_eq!(l.tables, [("golang-migrate", "app_migrations".to_owned())]);
        assert_eq!(
            query(&l.url),
            [("sslmode".to_owned(), "disable".to_owned())]
        );
        assert_warns(&l, "x-multi-statement");
        let l = read_plain(
            "postgres://u@h/d?x-migrations-table=%22migrate%22.%22versions%22&x-migrations-table-quoted=1",
        );
        assert_eq!(l.schema.as_deref(), Some("migrate"));
        assert_eq!(l.tables, [("golang-migrate", "versions".to_owned())]);
    }

    #[test]
    fn unknown_parameters_are_named() {
        let l = read_plain("postgres://u@h/d?target_session_attrs=read-write&application_name=x&options[statement_timeout]=5s");
        assert_warns(&l, "target_session_attrs (not parameters unlatch knows)");
    }

    #[test]
    fn golang_migrate_mysql_dsn() {
        let l = read_plain("mysql://root:s%40cret@tcp(db:3307)/app?x-migrations-table=versions&multiStatements=true");
        assert_eq!(l.kind, Kind::MySql);
        let url = Url::parse(&l.url).unwrap();
        assert_eq!(url.host_str(), Some("db"));
        assert_eq!(url.port(), Some(3307));
        assert_eq!(url.password(), Some("s%40cret"));
        assert_eq!(url.path(), "/app");
        assert_eq!(l.tables, [("golang-migrate", "versions".to_owned())]);
        assert_warns(&l, "multiStatements");
    }

    #[test]
    fn jdbc_postgres() {
        let l = read_plain(
            "jdbc:postgresql://db:5433/app?currentSchema=billing&user=svc&password=p%25w%40x&ssl=true&loginTimeout=5",
        );
        assert_eq!(l.kind, Kind::Postgres);
        assert_eq!(l.schema.as_deref(), Some("billing"));
        let url = Url::parse(&l.url).unwrap();
        assert_eq!(
            (url.host_str(), url.port(), url.path()),
            (Some("db"), Some(5433), "/app")
        );
        assert_eq!(url.username(), "svc");
        // The password reaches the server as written: p%w@x.
        let password = percent_encoding::percent_decode_str(url.password().unwrap())
            .decode_utf8()
            .unwrap();
        assert_eq!(password, "p%w@x");
        assert_warns(&l, "loginTimeout");
        let l = read_plain("jdbc:postgresql:app");
        assert_eq!(Url::parse(&l.url).unwrap().host_str(), Some("localhost"));
    }

    #[test]
    fn jdbc_with_the_tools_variables() {
        let extras = JdbcExtras {
            user: Some("svc"),
            password: Some("p&w=x"),
            schema: Some("Billing"),
            schema_quoted: true,
        };
        let url = jdbc_with("jdbc:postgresql://db/app?currentSchema=x", &extras).unwrap();
        let l = read_plain(&url);
        assert_eq!(l.schema.as_deref(), Some("\"Billing\""));
        let parsed = Url::parse(&l.url).unwrap();
        assert_eq!(parsed.username(), "svc");
        let password = percent_encoding::percent_decode_str(parsed.password().unwrap());
        assert_eq!(password.decode_utf8().unwrap(), "p&w=x");
        // The URL's own user wins, as in pgjdbc.
        let url = jdbc_with("jdbc:postgresql://db/app?user=own", &extras).unwrap();
        assert_eq!(Url::parse(&read_plain(&url).url).unwrap().username(), "own");
        // MySQL's schemas are databases.
        let url = jdbc_with("jdbc:mysql://db:3306/app?useSSL=false", &extras).unwrap();
        assert_eq!(
            Url::parse(&read_plain(&url).url).unwrap().path(),
            "/Billing"
        );
        assert!(jdbc_with("postgres://db/app", &extras).is_err());
    }

    #[test]
    fn jdbc_mysql_and_mariadb() {
        let l = read_plain("jdbc:mysql://db:3306/app?user=root&password=pw&sslMode=VERIFY_CA");
        assert_eq!(l.kind, Kind::MySql);
        assert_eq!(Url::parse(&l.url).unwrap().username(), "root");
    }

    #[test]
    fn jdbc_sqlite_and_prisma_file_urls() {
        let l = read_plain("jdbc:sqlite:/data/app.db");
        assert_eq!(l.url, "sqlite:///data/app.db");
        let l = read_plain("file:/data/dev.db?connection_limit=1");
        assert_eq!(l.url, "sqlite:///data/dev.db");
        assert_warns(&l, "connection_limit");
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        std::fs::create_dir_all(dir.join("prisma")).unwrap();
        let err = prisma_sqlite("./dev.db", dir).unwrap_err();
        assert!(err.contains("no Prisma schema was found"), "{err}");
        std::fs::write(dir.join("prisma/schema.prisma"), "").unwrap();
        let l = prisma_sqlite("./dev.db", dir).unwrap();
        assert_eq!(
            l.url,
            crate::apps::ghost::sqlite_url(&dir.join("prisma/dev.db"))
        );
        let l = prisma_sqlite("../data/dev.db", dir).unwrap();
        assert_eq!(
            l.url,
            crate::apps::ghost::sqlite_url(&dir.join("data/dev.db"))
        );
        std::fs::write(
            dir.join("package.json"),
            r#"{"prisma":{"schema":"db/schema.prisma"}}"#,
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("db")).unwrap();
        std::fs::write(dir.join("db/schema.prisma"), "").unwrap();
        let l = prisma_sqlite("dev.db", dir).unwrap();
        assert_eq!(
            l.url,
            crate::apps::ghost::sqlite_url(&dir.join("db/dev.db"))
        );
    }
}
