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
//! May touch: nothing but reading, for Prisma's relative paths, whether the
//! Prisma schema is in the working directory (and its `package.json`).

use std::path::{Path, PathBuf};

use url::Url;

use crate::config::Env;
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

/// Parameters only Prisma reads: one of them makes a URL Prisma's.
pub const PRISMA_ONLY: &[&str] = &[
    "schema",
    "sslaccept",
    "sslidentity",
    "connection_limit",
    "pgbouncer",
    "pool_timeout",
    "socket_timeout",
    "statement_cache_size",
    "max_connection_lifetime",
    "max_idle_connection_lifetime",
];

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

/// Reads `url` in whichever dialect its form shows; `env` gives
/// `UNLATCH_TOOL`. `Err` is the reason, which the caller wraps with the
/// variable's name.
pub fn read(url: &str, env: &Env) -> Result<Located, String> {
    let prisma_named = env.get("UNLATCH_TOOL") == Some("prisma");
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

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn working_dir() -> Result<PathBuf, String> {
    std::env::current_dir().map_err(|e| format!("cannot read the working directory: {e}"))
}

/// The parameters a URL carries that unlatch reads or drops, gathered as
/// they are met.
#[derive(Default)]
struct Params {
    /// Kept for sqlx, in order.
    kept: Vec<(String, String)>,
    /// Dropped: the tools' own, and those unlatch does not know.
    unused: Vec<String>,
}

impl Params {
    fn keep(&mut self, key: &str, value: &str) {
        self.kept.retain(|(k, _)| k != key);
        self.kept.push((key.to_owned(), value.to_owned()));
    }

    fn drop_unused(&mut self, key: &str) {
        if !self.unused.iter().any(|k| k == key) {
            self.unused.push(key.to_owned());
        }
    }

    fn value(&self, key: &str) -> Option<&str> {
        self.kept
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `url` with the kept parameters as its query.
    fn apply(&self, url: &mut Url) {
        url.set_query(None);
        if !self.kept.is_empty() {
            url.query_pairs_mut().extend_pairs(&self.kept);
        }
    }

    /// The one warning that names what was dropped.
    fn warning(&self) -> Option<String> {
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

fn flag(key: &str, value: &str) -> Result<bool, String> {
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

fn postgres(url: &str, prisma_named: bool) -> Result<Located, String> {
    let mut parsed = Url::parse(url).map_err(|e| e.to_string())?;
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let prisma = prisma_named || pairs.iter().any(|(k, _)| PRISMA_ONLY.contains(&k.as_str()));
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
    located.warnings.extend(params.warning());
    params.apply(&mut parsed);
    located.url = parsed.into();
    Ok(located)
}

/// A schema name as Prisma puts it in `search_path`: quoted, so that its
/// case is kept; a plain lowercase name is the same either way.
fn quoted_schema(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !name.is_empty() {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// golang-migrate's `x-migrations-table`: a plain name, or with
/// `x-migrations-table-quoted` a quoted `"schema"."table"`. golang-migrate
/// quotes the name in its SQL, and unlatch's adapters write it unquoted: a
/// name that quoting would change is refused rather than missed.
fn migrations_table(value: &str, quoted: bool) -> Result<(Option<String>, String), String> {
    let (schema, name) = if quoted {
        let unquote = |part: &str| {
            part.strip_prefix('"')
                .and_then(|p| p.strip_suffix('"'))
                .map(str::to_owned)
        };
        let bad = || {
            format!("x-migrations-table={value}: expected \"table\" or \"schema\".\"table\" with x-migrations-table-quoted")
        };
        match value.split('.').collect::<Vec<_>>().as_slice() {
            [table] => (None, unquote(table).ok_or_else(bad)?),
            [schema, table] => (
                Some(unquote(schema).ok_or_else(bad)?),
                unquote(table).ok_or_else(bad)?,
            ),
            _ => return Err(bad()),
        }
    } else {
        (None, value.to_owned())
    };
    let plain = |name: &str| {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    if !plain(&name) || schema.as_deref().is_some_and(|s| !plain(s)) {
        return Err(format!(
            "x-migrations-table={value}: expected a lowercase name of letters, digits and _ \
             (golang-migrate quotes it, so any other name is one unlatch would not find)"
        ));
    }
    Ok((schema, name))
}

/// Prisma's TLS parameters, read as Prisma's engines read them: `sslmode`
/// is disable, prefer (the default) or require; the certificate is checked
/// only with `sslaccept=strict`; `sslcert` is the server's CA, relative to
/// the Prisma schema's folder.
#[derive(Default)]
struct PrismaTls {
    mode: Option<String>,
    strict: bool,
    ca: Option<String>,
    /// Any TLS parameter given (MySQL: Prisma encrypts only then).
    any: bool,
}

impl PrismaTls {
    fn take(&mut self, key: &str, value: &str) -> Result<(), String> {
        self.any = true;
        match key {
            "sslmode" => self.mode = Some(value.to_ascii_lowercase()),
            // Prisma reads any value but accept_invalid_certs as strict.
            "sslaccept" => self.strict = value != "accept_invalid_certs",
            "sslcert" => self.ca = Some(value.to_owned()),
            "sslpassword" => {}
            _ => {
                return Err(format!(
                    "{key}: a PKCS#12 client identity is not supported by unlatch; \
                     give unlatch a libpq-style URL with sslcert and sslkey (PEM) in UNLATCH_DATABASE_URL"
                ))
            }
        }
        Ok(())
    }

    /// The CA's path, resolved as Prisma resolves it.
    fn ca_path(&self) -> Result<Option<String>, String> {
        let Some(ca) = &self.ca else { return Ok(None) };
        if Path::new(ca).is_absolute() {
            return Ok(Some(ca.clone()));
        }
        let dir = prisma_schema_dir(&working_dir()?).map_err(|why| {
            format!("sslcert={ca} is relative to the Prisma schema's folder, but {why}")
        })?;
        Ok(Some(dir.join(ca).display().to_string()))
    }

    fn apply_postgres(
        &self,
        params: &mut Params,
        warnings: &mut Vec<String>,
    ) -> Result<(), String> {
        let mode = match self.mode.as_deref().unwrap_or("prefer") {
            "disable" => "disable",
            "prefer" if self.strict => "verify-full",
            "require" if self.strict => "verify-full",
            "prefer" => "prefer",
            "require" => "require",
            // Prisma reads anything else as prefer; libpq's stricter
            // meaning is kept, and said.
            other @ ("verify-ca" | "verify-full") => {
                warnings.push(format!(
                    "sslmode={other} in a Prisma URL: Prisma's engine reads it as prefer; unlatch keeps libpq's meaning and verifies"
                ));
                other
            }
            other => {
                return Err(format!(
                    "sslmode={other}: expected disable, prefer or require (Prisma's values)"
                ))
            }
        };
        params.keep("sslmode", mode);
        match self.ca_path()? {
            Some(ca) if mode.starts_with("verify") => params.keep("sslrootcert", &ca),
            Some(_) => warnings.push(
                "sslcert in a Prisma URL without sslaccept=strict: Prisma does not check the server's certificate, so neither does unlatch"
                    .into(),
            ),
            None => {}
        }
        Ok(())
    }

    fn apply_mysql(&self, params: &mut Params) -> Result<(), String> {
        if !self.any {
            return Ok(());
        }
        params.keep(
            "ssl-mode",
            if self.strict {
                "VERIFY_IDENTITY"
            } else {
                "REQUIRED"
            },
        );
        if let (true, Some(ca)) = (self.strict, self.ca_path()?) {
            params.keep("ssl-ca", &ca);
        }
        Ok(())
    }
}

/// golang-migrate's MySQL URL is go-sql-driver's DSN behind `mysql://`:
/// `user:pass@tcp(host:port)/db` or `user:pass@unix(/path)/db`. Rewritten
/// to the URL form; any other URL is returned as it is.
fn go_dsn_to_url(url: &str) -> Result<String, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(url.to_owned());
    };
    let (userinfo, address) = match rest.rfind("@tcp(").or_else(|| rest.rfind("@unix(")) {
        Some(at) => (&rest[..=at], &rest[at + 1..]),
        None if rest.starts_with("tcp(") || rest.starts_with("unix(") => ("", rest),
        None => return Ok(url.to_owned()),
    };
    let (net, inner) = address.split_once('(').expect("matched above");
    let (addr, tail) = inner
        .split_once(')')
        .ok_or_else(|| format!("{net}(: expected a closing parenthesis"))?;
    Ok(match net {
        "tcp" => format!("{scheme}://{userinfo}{addr}{tail}"),
        _ => {
            let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
            let socket: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("socket", addr)
                .finish();
            let query = if query.is_empty() {
                socket
            } else {
                format!("{query}&{socket}")
            };
            format!("{scheme}://{userinfo}localhost{path}?{query}")
        }
    })
}

fn mysql(url: &str, prisma_named: bool) -> Result<Located, String> {
    let mut parsed = Url::parse(url).map_err(|e| e.to_string())?;
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let prisma = prisma_named || pairs.iter().any(|(k, _)| PRISMA_ONLY.contains(&k.as_str()));
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
    located.warnings.extend(params.warning());
    params.apply(&mut parsed);
    located.url = parsed.into();
    Ok(located)
}

/// A MySQL table name unlatch writes unquoted exactly as the tool quotes it.
fn mysql_table(key: &str, value: &str) -> Result<String, String> {
    let mut chars = value.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{key}={value}: expected a table name of letters, digits and _"
        ))
    }
}

/// go-sql-driver's `tls` and golang-migrate's `x-tls-*`.
#[derive(Default)]
struct GoTls {
    tls: Option<String>,
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    skip_verify: bool,
}

impl GoTls {
    fn take(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "tls" => self.tls = Some(value.to_owned()),
            "x-tls-ca" => self.ca = Some(value.to_owned()),
            "x-tls-cert" => self.cert = Some(value.to_owned()),
            "x-tls-key" => self.key = Some(value.to_owned()),
            _ => self.skip_verify = flag(key, value)?,
        }
        Ok(())
    }

    fn apply(&self, params: &mut Params) -> Result<(), String> {
        let Some(tls) = &self.tls else {
            if self.ca.is_some() || self.cert.is_some() {
                params.drop_unused("x-tls-ca");
            }
            return Ok(());
        };
        let mode = match tls.as_str() {
            "true" | "1" | "TRUE" | "True" => "VERIFY_IDENTITY",
            "false" | "0" | "FALSE" | "False" => "DISABLED",
            "skip-verify" => "REQUIRED",
            "preferred" => "PREFERRED",
            // A named configuration: golang-migrate builds it from x-tls-*.
            _ if self.skip_verify => "REQUIRED",
            _ => {
                if self.ca.is_none() {
                    return Err(format!("tls={tls}: a named TLS configuration needs x-tls-ca, as golang-migrate does"));
                }
                "VERIFY_IDENTITY"
            }
        };
        params.keep("ssl-mode", mode);
        let custom = !matches!(
            tls.as_str(),
            "true"
                | "1"
                | "TRUE"
                | "True"
                | "false"
                | "0"
                | "FALSE"
                | "False"
                | "skip-verify"
                | "preferred"
        );
        if custom {
            if let Some(ca) = &self.ca {
                params.keep("ssl-ca", ca);
            }
            match (&self.cert, &self.key) {
                (Some(cert), Some(key)) => {
                    params.keep("ssl-cert", cert);
                    params.keep("ssl-key", key);
                }
                (None, None) => {}
                _ => {
                    return Err(
                        "x-tls-cert and x-tls-key: expected both, as golang-migrate does".into(),
                    )
                }
            }
        }
        Ok(())
    }
}

/// A JDBC URL (Liquibase, Flyway): `jdbc:postgresql:`, `jdbc:mysql:`,
/// `jdbc:mariadb:` or `jdbc:sqlite:`, `rest` being what follows `jdbc:`.
fn jdbc(rest: &str) -> Result<Located, String> {
    let (sub, tail) = rest.split_once(':').ok_or(
        "jdbc: without a driver name; expected jdbc:postgresql:, jdbc:mysql: or jdbc:mariadb:",
    )?;
    match sub.to_ascii_lowercase().as_str() {
        "postgresql" => jdbc_postgres(tail),
        "mysql" | "mariadb" => jdbc_mysql(sub, tail),
        "sqlite" => jdbc_sqlite(tail),
        other => Err(format!(
            "jdbc:{other}: is not a database unlatch knows; expected jdbc:postgresql:, jdbc:mysql:, jdbc:mariadb: or jdbc:sqlite:"
        )),
    }
}

/// Userinfo escaped so that the value reaches the server as it is, `%`
/// included (the URL crate leaves `%` alone).
fn escape_userinfo(value: &str) -> String {
    const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(value, USERINFO).to_string()
}

/// The URL of a JDBC tail: `//host[:port]/db?...`, or pgjdbc's hostless
/// `db?...` (localhost); several hosts are refused.
fn jdbc_url(scheme: &str, sub: &str, tail: &str) -> Result<Url, String> {
    let Some(authority_on) = tail.strip_prefix("//") else {
        if tail.contains(':') || sub != "postgresql" {
            return Err(format!(
                "jdbc:{sub}:{}: expected jdbc:{sub}://host:port/database",
                tail.split(':').next().unwrap_or_default()
            ));
        }
        return Url::parse(&format!("{scheme}://localhost/{tail}")).map_err(|e| e.to_string());
    };
    let authority = authority_on.split(['/', '?']).next().unwrap_or_default();
    if authority.contains(',') || authority.contains('(') {
        return Err(format!(
            "several hosts ({authority}): unlatch connects to one; give it the primary's URL"
        ));
    }
    Url::parse(&format!("{scheme}://{authority_on}")).map_err(|e| e.to_string())
}

/// Moves `user` and `password` parameters into the URL's userinfo.
fn credentials_from_query(
    url: &mut Url,
    user: Option<String>,
    password: Option<String>,
) -> Result<(), String> {
    if let Some(user) = user {
        url.set_username(&escape_userinfo(&user))
            .map_err(|_| "user: cannot be used in a URL".to_owned())?;
    }
    if let Some(password) = password {
        url.set_password(Some(&escape_userinfo(&password)))
            .map_err(|_| "password: cannot be used in a URL".to_owned())?;
    }
    Ok(())
}

/// pgjdbc's parameters: `currentSchema` (its search_path), `user`,
/// `password`, `ssl`, `sslmode` and libpq's certificate parameters.
fn jdbc_postgres(tail: &str) -> Result<Located, String> {
    let mut url = jdbc_url("postgres", "postgresql", tail)?;
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut located = Located::new(Kind::Postgres, String::new());
    let mut params = Params::default();
    let (mut user, mut password, mut ssl, mut mode, mut trusting) =
        (None, None, false, None, false);
    for (key, value) in pairs {
        match key.as_str() {
            "currentSchema" => located.schema = Some(value),
            "user" => user = Some(value),
            "password" => password = Some(value),
            "ssl" => ssl = flag(&key, &value)?,
            "sslmode" => mode = Some(value),
            "sslfactory" => trusting = value.ends_with(".NonValidatingFactory"),
            "sslrootcert" | "sslcert" | "sslkey" | "options" => params.keep(&key, &value),
            "ApplicationName" => params.keep("application_name", &value),
            "sslpassword" => params.drop_unused("sslpassword"),
            _ => params.drop_unused(&key),
        }
    }
    // pgjdbc: ssl=true alone means verify-full; its default is prefer.
    let mode = mode.or_else(|| ssl.then(|| "verify-full".to_owned()));
    if let Some(mode) = mode {
        let mode = if trusting && mode.starts_with("verify") {
            "require".to_owned()
        } else {
            mode
        };
        params.keep("sslmode", &mode);
    }
    credentials_from_query(&mut url, user, password)?;
    located.warnings.extend(params.warning());
    params.apply(&mut url);
    located.url = url.into();
    Ok(located)
}

/// What a tool's own variables add to its JDBC URL (Liquibase's
/// `LIQUIBASE_COMMAND_*`, Flyway's `FLYWAY_*`).
#[derive(Debug, Default)]
pub struct JdbcExtras<'a> {
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    /// Where the tool keeps its tables: a PostgreSQL schema, a MySQL
    /// database (MySQL's schemas are databases).
    pub schema: Option<&'a str>,
    /// The tool quotes the schema's name (Flyway), so its case is kept.
    pub schema_quoted: bool,
}

/// `url`, a JDBC URL, with `extras` in it as the JDBC driver takes them:
/// `user` and `password` as parameters, unless the URL has its own (the
/// URL's win, as in pgjdbc); the schema as pgjdbc's `currentSchema`, or as
/// MySQL's database.
pub fn jdbc_with(url: &str, extras: &JdbcExtras) -> Result<String, String> {
    let Some(rest) = strip_prefix_ignore_case(url, "jdbc:") else {
        return Err("expected a JDBC URL, like jdbc:postgresql://host:5432/db".into());
    };
    let (sub, tail) = rest.split_once(':').unwrap_or((rest, ""));
    let sub = sub.to_ascii_lowercase();
    if sub == "sqlite" {
        return Ok(url.to_owned());
    }
    let (base, query) = tail.split_once('?').unwrap_or((tail, ""));
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut add = |key: &str, value: Option<&str>, replace: bool| {
        let Some(value) = value else { return };
        let present = pairs.iter().position(|(k, _)| k == key);
        match (present, replace) {
            (Some(at), true) => pairs[at].1 = value.to_owned(),
            (Some(_), false) => {}
            (None, _) => pairs.push((key.to_owned(), value.to_owned())),
        }
    };
    add("user", extras.user, false);
    add("password", extras.password, false);
    let mut base = base.to_owned();
    match (sub.as_str(), extras.schema) {
        ("postgresql", Some(schema)) => {
            let schema = if extras.schema_quoted {
                quoted_schema(schema)
            } else {
                schema.to_owned()
            };
            add("currentSchema", Some(&schema), true);
        }
        (_, Some(database)) => {
            let authority_end = base
                .strip_prefix("//")
                .map_or(0, |a| 2 + a.find('/').unwrap_or(a.len()));
            base.truncate(authority_end);
            base.push('/');
            base.push_str(database);
        }
        _ => {}
    }
    let mut out = format!("jdbc:{sub}:{base}");
    if !pairs.is_empty() {
        out.push('?');
        out.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish(),
        );
    }
    Ok(out)
}

/// MySQL Connector/J's and MariaDB Connector/J's parameters.
fn jdbc_mysql(sub: &str, tail: &str) -> Result<Located, String> {
    let mut url = jdbc_url("mysql", sub, tail)?;
    let mariadb = sub.eq_ignore_ascii_case("mariadb");
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut located = Located::new(Kind::MySql, String::new());
    let mut params = Params::default();
    let (mut user, mut password, mut mode, mut use_ssl, mut verify, mut trust) =
        (None, None, None, None, None, false);
    for (key, value) in pairs {
        match key.as_str() {
            "user" => user = Some(value),
            "password" => password = Some(value),
            "sslMode" | "sslmode" => mode = Some(jdbc_mysql_mode(&value, mariadb)?),
            "useSSL" | "useSsl" | "requireSSL" => use_ssl = Some(flag(&key, &value)?),
            "verifyServerCertificate" => verify = Some(flag(&key, &value)?),
            "trustServerCertificate" => trust = flag(&key, &value)?,
            // MariaDB's CA: a path or the PEM itself.
            "serverSslCert" => {
                params.keep("ssl-ca", value.strip_prefix("file://").unwrap_or(&value))
            }
            "socket" | "localSocket" => params.keep("socket", &value),
            _ => params.drop_unused(&key),
        }
    }
    let legacy = match use_ssl {
        Some(false) => Some("DISABLED"),
        // Connector/J: useSSL verifies only with verifyServerCertificate;
        // MariaDB's legacy useSsl verifies unless trustServerCertificate.
        Some(true) if mariadb && !trust => Some("VERIFY_IDENTITY"),
        Some(true) if !mariadb && verify == Some(true) => Some("VERIFY_CA"),
        Some(true) => Some("REQUIRED"),
        None => None,
    };
    if let Some(mode) = mode.or(legacy.map(str::to_owned)) {
        params.keep("ssl-mode", &mode);
    }
    credentials_from_query(&mut url, user, password)?;
    located.warnings.extend(params.warning());
    params.apply(&mut url);
    located.url = url.into();
    Ok(located)
}

fn jdbc_mysql_mode(value: &str, mariadb: bool) -> Result<String, String> {
    let mode = match value.to_ascii_lowercase().as_str() {
        "disabled" | "disable" => "DISABLED",
        "preferred" => "PREFERRED",
        "required" | "trust" => "REQUIRED",
        "verify_ca" | "verify-ca" => "VERIFY_CA",
        "verify_identity" | "verify-full" => "VERIFY_IDENTITY",
        _ if mariadb => {
            return Err(format!(
                "sslMode={value}: expected disable, trust, verify-ca or verify-full"
            ))
        }
        _ => {
            return Err(format!(
            "sslMode={value}: expected DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY"
        ))
        }
    };
    Ok(mode.to_owned())
}

/// sqlite-jdbc: `jdbc:sqlite:<path>`, relative to the working directory as
/// the JVM reads it.
fn jdbc_sqlite(tail: &str) -> Result<Located, String> {
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    if path.is_empty() || path == ":memory:" {
        return Ok(Located::new(Kind::Sqlite, "sqlite::memory:".into()));
    }
    let path = PathBuf::from(path.strip_prefix("file:").unwrap_or(path));
    let path = if path.is_absolute() {
        path
    } else {
        working_dir()?.join(path)
    };
    let mut located = Located::new(Kind::Sqlite, crate::ghost::sqlite_url(&path));
    if !query.is_empty() {
        let mut params = Params::default();
        for (key, _) in url::form_urlencoded::parse(query.as_bytes()) {
            params.drop_unused(&key);
        }
        located.warnings.extend(params.warning());
    }
    Ok(located)
}

/// Prisma's SQLite URL, `file:<path>`: a relative path is relative to the
/// folder of the Prisma schema, which unlatch finds as Prisma's CLI does
/// from the working directory; found nowhere, the URL is refused rather
/// than read against the wrong folder.
fn prisma_sqlite(rest: &str, cwd: &Path) -> Result<Located, String> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| "the file path is not UTF-8".to_owned())?;
    let path = path.strip_prefix("//").unwrap_or(&path);
    if path.is_empty() {
        return Err("file: without a path; expected file:./dev.db or file:/data/app.db".into());
    }
    let mut located = Located::new(Kind::Sqlite, String::new());
    let path = Path::new(path);
    let file = if path.is_absolute() {
        path.to_owned()
    } else {
        let dir = prisma_schema_dir(cwd).map_err(|why| {
            format!(
                "file:{} is relative to the Prisma schema's folder, but {why}; \
                 give an absolute path (file:/data/app.db) or start unlatch where Prisma's CLI runs",
                path.display()
            )
        })?;
        located.warnings.push(format!(
            "file:{} is read relative to the Prisma schema's folder {}, as Prisma reads it",
            path.display(),
            dir.display()
        ));
        normalize(&dir.join(path))
    };
    located.url = crate::ghost::sqlite_url(&file);
    if !query.is_empty() {
        let mut params = Params::default();
        for (key, _) in url::form_urlencoded::parse(query.as_bytes()) {
            params.drop_unused(&key);
        }
        located.warnings.extend(params.warning());
    }
    Ok(located)
}

/// `a/./b/../c` as `a/c`, without touching the file system (the file may
/// not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The folder of the Prisma schema, looked for as Prisma's CLI does:
/// `package.json`'s `prisma.schema`, then `prisma/schema.prisma`,
/// `schema.prisma`, and the multi-file `prisma/schema/` folder. `Err` says
/// where it looked.
pub fn prisma_schema_dir(cwd: &Path) -> Result<PathBuf, String> {
    let from_package = std::fs::read_to_string(cwd.join("package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|json| json["prisma"]["schema"].as_str().map(|s| cwd.join(s)));
    let candidates = from_package.into_iter().chain([
        cwd.join("prisma/schema.prisma"),
        cwd.join("schema.prisma"),
        cwd.join("prisma/schema"),
    ]);
    for candidate in candidates {
        if candidate.is_file() {
            return Ok(candidate.parent().unwrap_or(cwd).to_owned());
        }
        if candidate.is_dir() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "no Prisma schema was found in {} (looked for package.json's prisma.schema, prisma/schema.prisma, \
         schema.prisma and prisma/schema/)",
        cwd.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_plain(url: &str) -> Located {
        read(url, &Env::default()).unwrap_or_else(|e| panic!("{url}: {e}"))
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

    #[test]
    fn prisma_schema_becomes_the_schema_and_leaves_the_url() {
        let l = read_plain("postgresql://u:p@db:5432/app?schema=tenant_a&connection_limit=5");
        assert_eq!(l.kind, Kind::Postgres);
        assert_eq!(l.schema.as_deref(), Some("tenant_a"));
        assert_eq!(param(&l.url, "schema"), None);
        assert_eq!(param(&l.url, "connection_limit"), None);
        assert!(
            l.warnings.iter().any(|w| w.contains("connection_limit")),
            "{:?}",
            l.warnings
        );
        // Prisma checks no certificate unless sslaccept=strict.
        assert_eq!(param(&l.url, "sslmode").as_deref(), Some("prefer"));
        // Prisma quotes the name: its case is kept.
        let l = read_plain("postgresql://u@db/app?schema=Tenant");
        assert_eq!(l.schema.as_deref(), Some("\"Tenant\""));
    }

    #[test]
    fn prisma_tls_maps_to_libpq_modes() {
        for (q, mode) in [
            ("sslmode=require", "require"),
            ("sslmode=require&sslaccept=strict", "verify-full"),
            ("sslmode=disable&schema=x", "disable"),
            ("sslaccept=strict", "verify-full"),
        ] {
            let l = read_plain(&format!("postgres://u@h/d?{q}"));
            assert_eq!(param(&l.url, "sslmode").as_deref(), Some(mode), "{q}");
        }
        let l = read_plain("postgres://u@h/d?sslmode=require&sslaccept=strict&sslcert=/etc/ca.pem");
        assert_eq!(param(&l.url, "sslrootcert").as_deref(), Some("/etc/ca.pem"));
        assert_eq!(param(&l.url, "sslcert"), None, "Prisma's sslcert is the CA");
        let l = read_plain("postgres://u@h/d?sslmode=require&sslcert=/etc/ca.pem&schema=public");
        assert_eq!(
            param(&l.url, "sslrootcert"),
            None,
            "Prisma does not verify: {:?}",
            l.warnings
        );
        assert!(read(
            "postgres://u@h/d?sslidentity=id.p12&schema=a",
            &Env::default()
        )
        .unwrap_err()
        .contains("PKCS#12"));
    }

    #[test]
    fn unlatch_tool_prisma_reads_sslcert_as_the_ca() {
        let env = Env::from_pairs(&[("UNLATCH_TOOL", "prisma")]);
        let l = read(
            "postgres://u@h/d?sslmode=require&sslaccept=strict&sslcert=/ca.pem",
            &env,
        )
        .unwrap();
        assert_eq!(param(&l.url, "sslrootcert").as_deref(), Some("/ca.pem"));
        // libpq's meaning otherwise: the client certificate, passed on.
        let l = read_plain("postgres://u@h/d?sslcert=/client.pem&sslkey=/client.key");
        assert_eq!(param(&l.url, "sslcert").as_deref(), Some("/client.pem"));
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let l = read_plain("postgres://u@h/d?sslcert=/ca.pem");
        assert!(l.warnings.iter().any(|w| w.contains("UNLATCH_TOOL=prisma")));
    }

    #[test]
    fn pgbouncer_is_refused_with_the_reason() {
        let err = read("postgres://u@pooler:6543/d?pgbouncer=true", &Env::default()).unwrap_err();
        assert!(
            err.contains("transaction-mode pooler") && err.contains("direct URL"),
            "{err}"
        );
        assert!(read("postgres://u@h/d?pgbouncer=false", &Env::default()).is_ok());
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
        assert!(
            l.warnings[0].contains("x-multi-statement"),
            "{:?}",
            l.warnings
        );
        let l = read_plain(
            "postgres://u@h/d?x-migrations-table=%22migrate%22.%22versions%22&x-migrations-table-quoted=1",
        );
        assert_eq!(l.schema.as_deref(), Some("migrate"));
        assert_eq!(l.tables, [("golang-migrate", "versions".to_owned())]);
        let err = read(
            "postgres://u@h/d?x-migrations-table=MyTable",
            &Env::default(),
        )
        .unwrap_err();
        assert!(err.contains("lowercase"), "{err}");
    }

    #[test]
    fn unknown_parameters_are_named_and_dropped() {
        let l = read_plain("postgres://u@h/d?target_session_attrs=read-write&application_name=x&options[statement_timeout]=5s");
        assert_eq!(param(&l.url, "target_session_attrs"), None);
        assert_eq!(param(&l.url, "application_name").as_deref(), Some("x"));
        assert_eq!(
            param(&l.url, "options[statement_timeout]").as_deref(),
            Some("5s")
        );
        assert!(
            l.warnings
                .iter()
                .any(|w| w.contains("target_session_attrs (not parameters unlatch knows)")),
            "{:?}",
            l.warnings
        );
        let err = read("postgres:///d?service=prod", &Env::default()).unwrap_err();
        assert!(err.contains("pg_service.conf"), "{err}");
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
        assert!(
            l.warnings[0].contains("multiStatements"),
            "{:?}",
            l.warnings
        );
        let l = read_plain("mysql://root@unix(/run/mysqld/mysqld.sock)/app");
        assert_eq!(
            param(&l.url, "socket").as_deref(),
            Some("/run/mysqld/mysqld.sock")
        );
        let l = read_plain("mysql://root@tcp([::1]:3306)/app?tls=custom&x-tls-ca=/ca.pem");
        assert_eq!(
            param(&l.url, "ssl-mode").as_deref(),
            Some("VERIFY_IDENTITY")
        );
        assert_eq!(param(&l.url, "ssl-ca").as_deref(), Some("/ca.pem"));
        let l = read_plain("mysql://root@tcp(db)/app?tls=skip-verify");
        assert_eq!(param(&l.url, "ssl-mode").as_deref(), Some("REQUIRED"));
    }

    #[test]
    fn prisma_mysql_tls() {
        let l = read_plain("mysql://u@h/d?sslaccept=strict&sslcert=/ca.pem&connection_limit=1");
        assert_eq!(
            param(&l.url, "ssl-mode").as_deref(),
            Some("VERIFY_IDENTITY")
        );
        assert_eq!(param(&l.url, "ssl-ca").as_deref(), Some("/ca.pem"));
        let l = read_plain("mysql://u@h/d?sslaccept=accept_invalid_certs");
        assert_eq!(param(&l.url, "ssl-mode").as_deref(), Some("REQUIRED"));
        let l = read_plain("mysql://u@h/d?ssl-mode=REQUIRED");
        assert_eq!(param(&l.url, "ssl-mode").as_deref(), Some("REQUIRED"));
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
        assert_eq!(param(&l.url, "sslmode").as_deref(), Some("verify-full"));
        assert_eq!(param(&l.url, "password"), None);
        assert!(l.warnings[0].contains("loginTimeout"));
        let l = read_plain(
            "jdbc:postgresql://db/app?ssl=true&sslfactory=org.postgresql.ssl.NonValidatingFactory",
        );
        assert_eq!(param(&l.url, "sslmode").as_deref(), Some("require"));
        let l = read_plain("jdbc:postgresql:app");
        assert_eq!(Url::parse(&l.url).unwrap().host_str(), Some("localhost"));
        let err = read("jdbc:postgresql://a:5432,b:5432/app", &Env::default()).unwrap_err();
        assert!(err.contains("several hosts"), "{err}");
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
        assert_eq!(param(&l.url, "ssl-mode").as_deref(), Some("VERIFY_CA"));
        assert_eq!(Url::parse(&l.url).unwrap().username(), "root");
        let l = read_plain("jdbc:mysql://db/app?useSSL=false");
        assert_eq!(param(&l.url, "ssl-mode").as_deref(), Some("DISABLED"));
        let l = read_plain("jdbc:mariadb://db/app?sslMode=verify-full&serverSslCert=/ca.pem");
        assert_eq!(
            param(&l.url, "ssl-mode").as_deref(),
            Some("VERIFY_IDENTITY")
        );
        assert_eq!(param(&l.url, "ssl-ca").as_deref(), Some("/ca.pem"));
        let l = read_plain("jdbc:mariadb://db/app?sslMode=trust");
        assert_eq!(param(&l.url, "ssl-mode").as_deref(), Some("REQUIRED"));
        assert!(read("jdbc:mysql:replication://a,b/app", &Env::default()).is_err());
        assert!(read("jdbc:oracle:thin:@h:1521:x", &Env::default())
            .unwrap_err()
            .contains("jdbc:oracle"));
    }

    #[test]
    fn jdbc_sqlite_and_prisma_file_urls() {
        let l = read_plain("jdbc:sqlite:/data/app.db");
        assert_eq!(l.url, "sqlite:///data/app.db");
        let l = read_plain("file:/data/dev.db?connection_limit=1");
        assert_eq!(l.url, "sqlite:///data/dev.db");
        assert!(l.warnings[0].contains("connection_limit"));
        let dir = std::env::temp_dir().join(format!("unlatch-dialect-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("prisma")).unwrap();
        let err = prisma_sqlite("./dev.db", &dir).unwrap_err();
        assert!(err.contains("no Prisma schema was found"), "{err}");
        std::fs::write(dir.join("prisma/schema.prisma"), "").unwrap();
        let l = prisma_sqlite("./dev.db", &dir).unwrap();
        assert_eq!(l.url, crate::ghost::sqlite_url(&dir.join("prisma/dev.db")));
        let l = prisma_sqlite("../data/dev.db", &dir).unwrap();
        assert_eq!(l.url, crate::ghost::sqlite_url(&dir.join("data/dev.db")));
        std::fs::write(
            dir.join("package.json"),
            r#"{"prisma":{"schema":"db/schema.prisma"}}"#,
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("db")).unwrap();
        std::fs::write(dir.join("db/schema.prisma"), "").unwrap();
        let l = prisma_sqlite("dev.db", &dir).unwrap();
        assert_eq!(l.url, crate::ghost::sqlite_url(&dir.join("db/dev.db")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
