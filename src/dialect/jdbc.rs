//! JDBC URLs (Liquibase, Flyway): pgjdbc's, MySQL Connector/J's, MariaDB
//! Connector/J's and sqlite-jdbc's, with their own parameter names; and
//! the tools' variables folded into them ([`jdbc_with`]).
//!
//! May touch: nothing; it reads text.

use std::path::PathBuf;

use url::Url;

use super::{flag, quoted_schema, strip_prefix_ignore_case, working_dir, Located, Params};
use crate::db::Kind;

/// A JDBC URL (Liquibase, Flyway): `jdbc:postgresql:`, `jdbc:mysql:`,
/// `jdbc:mariadb:` or `jdbc:sqlite:`, `rest` being what follows `jdbc:`.
pub(super) fn jdbc(rest: &str) -> Result<Located, String> {
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
pub fn escape_userinfo(value: &str) -> String {
    const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(value, USERINFO).to_string()
}

/// The URL of a JDBC tail: `//host[:port]/db?...`, or pgjdbc's hostless
/// `db?...` (localhost); several hosts are refused.
pub(super) fn jdbc_url(scheme: &str, sub: &str, tail: &str) -> Result<Url, String> {
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
pub(super) fn credentials_from_query(
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
pub(super) fn jdbc_postgres(tail: &str) -> Result<Located, String> {
    let mut url = jdbc_url("postgres", "postgresql", tail)?;
    let pairs = crate::tls::query_pairs(&url);
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
    Ok(params.finish(url, located))
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
pub(super) fn jdbc_mysql(sub: &str, tail: &str) -> Result<Located, String> {
    let mut url = jdbc_url("mysql", sub, tail)?;
    let mariadb = sub.eq_ignore_ascii_case("mariadb");
    let pairs = crate::tls::query_pairs(&url);
    let located = Located::new(Kind::MySql, String::new());
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
    Ok(params.finish(url, located))
}

pub(super) fn jdbc_mysql_mode(value: &str, mariadb: bool) -> Result<String, String> {
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
pub(super) fn jdbc_sqlite(tail: &str) -> Result<Located, String> {
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
    let mut located = Located::new(Kind::Sqlite, crate::apps::ghost::sqlite_url(&path));
    located.warnings.extend(Params::none_used(query));
    Ok(located)
}
