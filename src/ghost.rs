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
//! May touch: `config.$NODE_ENV.json` in the working directory (read only).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::Env;
use crate::exit::{Code, Failure};

const FIELDS: &[&str] = &[
    "filename",
    "host",
    "port",
    "user",
    "password",
    "database",
    "socketPath",
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
    let keys = std::iter::once(("client", "database__client".to_owned())).chain(
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
    Ok(settings)
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
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            Code::Config,
            format!("{variable}={path}: cannot read it ({e}); expected a readable file holding the value"),
        )
    })?;
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
    for field in FIELDS {
        if let Some(value) = scalar(&database["connection"][field]) {
            settings.insert(field, value);
        }
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

/// Node's `path.normalize`: `.` and `..` resolved in the text.
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
    // Ghost's values are taken as they are, `%` included: every character
    // but URL-safe ones is escaped here (the URL crate leaves `%`, so `%41`
    // would reach the server as `A`).
    const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let escaped = |value: &str| percent_encoding::utf8_percent_encode(value, USERINFO).to_string();
    if let Some(user) = settings.get("user") {
        url.set_username(&escaped(user))
            .map_err(|_| bad("user", user))?;
    }
    if let Some(password) = settings.get("password") {
        url.set_password(Some(&escaped(password))).map_err(|_| {
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
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs)
    }

    fn dir_with(file: &str, json: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "unlatch-ghost-{}-{file}-{}",
            std::process::id(),
            json.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), json).unwrap();
        dir
    }

    #[test]
    fn nothing_configured_is_none() {
        assert!(database_url(&env(&[]), Path::new("/nonexistent"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn sqlite_from_variables() {
        let e = env(&[
            ("database__client", "sqlite3"),
            (
                "database__connection__filename",
                "/var/lib/ghost/content/data/ghost.db",
            ),
        ]);
        let (url, source) = database_url(&e, Path::new("/nonexistent"))
            .unwrap()
            .unwrap();
        assert_eq!(url, "sqlite:///var/lib/ghost/content/data/ghost.db");
        assert_eq!(source, "Ghost's database__* variables");
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
        let e = env(&[
            ("database__client", "sqlite3"),
            ("database__connection__filename", "content/data/ghost.db"),
        ]);
        let (url, _) = database_url(&e, &dir).unwrap().unwrap();
        assert_eq!(url, sqlite_url(&dir.join("content/data/ghost.db")));
        std::fs::create_dir_all(dir.join("current")).unwrap();
        let (url, _) = database_url(&e, &dir).unwrap().unwrap();
        assert_eq!(url, sqlite_url(&dir.join("current/content/data/ghost.db")));
    }

    #[test]
    fn mysql_from_variables_encodes_credentials() {
        let e = env(&[
            ("database__client", "mysql"),
            ("database__connection__host", "db"),
            ("database__connection__port", "3307"),
            ("database__connection__user", "ghost"),
            ("database__connection__password", "p@ss:w/rd"),
            ("database__connection__database", "ghost_prod"),
        ]);
        let (url, _) = database_url(&e, Path::new("/nonexistent"))
            .unwrap()
            .unwrap();
        assert_eq!(url, "mysql://ghost:p%40ss%3Aw%2Frd@db:3307/ghost_prod");
    }

    #[test]
    fn file_is_read_for_node_env_and_variables_win() {
        let dir = dir_with(
            "config.production.json",
            r#"{"url":"http://x","database":{"client":"mysql","connection":{"host":"mysql","port":3306,"user":"root","password":"secret","database":"ghost"}}}"#,
        );
        let e = env(&[
            ("NODE_ENV", "production"),
            ("database__connection__host", "db.internal"),
        ]);
        let (url, source) = database_url(&e, &dir).unwrap().unwrap();
        assert_eq!(url, "mysql://root:secret@db.internal:3306/ghost");
        assert_eq!(
            source,
            "Ghost's database__* variables and config.production.json"
        );

        let (url, source) = database_url(&env(&[("NODE_ENV", "production")]), &dir)
            .unwrap()
            .unwrap();
        assert_eq!(url, "mysql://root:secret@mysql:3306/ghost");
        assert_eq!(source, "config.production.json");
        // NODE_ENV defaults to development, as in Ghost.
        assert!(database_url(&env(&[]), &dir).unwrap().is_none());
    }

    #[test]
    fn malformed_file_is_a_config_error_naming_it() {
        let dir = dir_with("config.development.json", "{ not json");
        let err = database_url(&env(&[]), &dir).unwrap_err();
        assert_eq!(err.code, Code::Config);
        assert!(
            err.message
                .contains("config.development.json: expected Ghost's JSON config"),
            "{}",
            err.message
        );
    }

    #[test]
    fn unknown_client_and_missing_fields_are_named() {
        let err = database_url(&env(&[("database__client", "pg")]), Path::new("/x")).unwrap_err();
        assert!(
            err.message
                .contains("database__client=pg: expected sqlite3, mysql or mysql2"),
            "{}",
            err.message
        );
        // Outside Ghost's own environments there are no defaults to fill in.
        let err = database_url(
            &env(&[("NODE_ENV", "staging"), ("database__client", "sqlite3")]),
            Path::new("/x"),
        )
        .unwrap_err();
        assert!(
            err.message
                .contains("database__connection__filename is not set"),
            "{}",
            err.message
        );
        let err = database_url(
            &env(&[
                ("NODE_ENV", "staging"),
                ("database__connection__host", "db"),
            ]),
            Path::new("/x"),
        )
        .unwrap_err();
        assert!(
            err.message.contains("database__client is not"),
            "{}",
            err.message
        );
        let err = database_url(
            &env(&[
                ("database__client", "mysql"),
                ("database__connection__database", "g"),
                ("database__connection__port", "x"),
            ]),
            Path::new("/x"),
        )
        .unwrap_err();
        assert!(
            err.message.contains("database__connection__port=x"),
            "{}",
            err.message
        );
    }

    #[test]
    fn ghosts_own_defaults_fill_what_is_not_given() {
        // Ghost 5.130.6, config.production.json: mysql, 127.0.0.1, root, ghost.
        let e = env(&[
            ("NODE_ENV", "production"),
            ("database__connection__password", "pw"),
        ]);
        let (url, _) = database_url(&e, Path::new("/x")).unwrap().unwrap();
        assert_eq!(url, "mysql://root:pw@127.0.0.1/ghost");
        let e = env(&[
            ("NODE_ENV", "production"),
            ("database__connection__host", "db"),
        ]);
        let (url, _) = database_url(&e, Path::new("/x")).unwrap().unwrap();
        assert_eq!(url, "mysql://root@db/ghost");
        // Development: SQLite under Ghost's root, whatever host is given.
        let e = env(&[("database__connection__host", "db")]);
        let (url, _) = database_url(&e, Path::new("/srv/blog")).unwrap().unwrap();
        assert_eq!(url, "sqlite:///srv/blog/content/data/ghost-dev.db");
        // Nothing of Ghost's given: no database made up.
        assert!(
            database_url(&env(&[("NODE_ENV", "production")]), Path::new("/x"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn config_local_json_is_read_below_the_environments_file() {
        let dir = dir_with(
            "config.local.json",
            r#"{"database":{"client":"mysql","connection":{"host":"local","database":"blog"}}}"#,
        );
        let (url, source) = database_url(&env(&[("NODE_ENV", "production")]), &dir)
            .unwrap()
            .unwrap();
        assert_eq!(url, "mysql://root@local/blog");
        assert_eq!(source, "config.local.json");
        std::fs::write(
            dir.join("config.production.json"),
            r#"{"database":{"connection":{"host":"prod"}}}"#,
        )
        .unwrap();
        let (url, source) = database_url(&env(&[("NODE_ENV", "production")]), &dir)
            .unwrap()
            .unwrap();
        assert_eq!(url, "mysql://root@prod/blog");
        assert_eq!(source, "config.production.json and config.local.json");
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
            let e = env(&[
                ("database__client", "sqlite3"),
                ("database__connection__filename", filename),
            ]);
            let (url, _) = database_url(&e, &dir).unwrap().unwrap();
            assert_eq!(url, sqlite_url(&expected), "{filename}");
        }
    }

    #[test]
    fn a_secret_file_is_read_as_the_hook_hands_it_on() {
        let dir = dir_with("password", "p%41ss\n");
        let e = env(&[
            ("database__client", "mysql"),
            ("database__connection__host", "db"),
            ("database__connection__user", "ghost"),
            ("database__connection__password", "ignored"),
            (
                "database__connection__password_FILE",
                dir.join("password").to_str().unwrap(),
            ),
            ("database__connection__database", "ghost"),
        ]);
        let (url, _) = database_url(&e, Path::new("/x")).unwrap().unwrap();
        assert_eq!(url, "mysql://ghost:p%2541ss@db/ghost");
        std::fs::write(dir.join("password"), "a\nb\n").unwrap();
        let err = database_url(&e, Path::new("/x")).unwrap_err();
        assert!(
            err.message.contains("more than one line"),
            "{}",
            err.message
        );
        std::fs::remove_file(dir.join("password")).unwrap();
        let err = database_url(&e, Path::new("/x")).unwrap_err();
        assert!(
            err.message
                .starts_with("database__connection__password_FILE="),
            "{}",
            err.message
        );
        assert_eq!(err.code, Code::Config);
    }

    #[test]
    fn socket_path_becomes_a_query_parameter() {
        let e = env(&[
            ("database__client", "mysql2"),
            (
                "database__connection__socketPath",
                "/run/mysqld/mysqld.sock",
            ),
            ("database__connection__user", "root"),
            ("database__connection__database", "ghost"),
        ]);
        let (url, _) = database_url(&e, Path::new("/x")).unwrap().unwrap();
        assert_eq!(
            url,
            "mysql://root@localhost/ghost?socket=%2Frun%2Fmysqld%2Fmysqld.sock"
        );
    }
}
