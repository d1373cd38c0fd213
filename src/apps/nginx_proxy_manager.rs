//! Nginx Proxy Manager: its `DB_MYSQL_*`, `DB_POSTGRES_*` and
//! `DB_SQLITE_FILE` variables, read as its `backend/lib/config.js` reads
//! them, and its `*__FILE` secrets as its image's s6 hook
//! (`prepare/60-secrets.sh`) hands them on.
//!
//! MySQL when `DB_MYSQL_HOST`, `DB_MYSQL_USER` and `DB_MYSQL_NAME` are all
//! set; else PostgreSQL when the three `DB_POSTGRES_*` ones are; else
//! SQLite at `DB_SQLITE_FILE` (default `/data/database.sqlite`). knex
//! migrates it in-process at boot, with `tableName: "migrations"`
//! (`backend/migrate.js`), so its lock table is `migrations_lock`. The
//! image's `/app/package.json` is named `nginx-proxy-manager`: in its
//! working directory no variable at all is needed. Its legacy config file,
//! `config/$NODE_ENV.json`, wins over every variable when it names a
//! database, as in `config.js`.
//!
//! May touch: `package.json` and the config file in the working directory,
//! and the files the `*__FILE` variables name (read only).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{first_set, server_url, App, Database};
use crate::env::Env;
use crate::exit::{Code, Failure};

pub const APP: App = App {
    name: "nginx-proxy-manager",
    tool: "knex",
    table: "migrations",
    detect,
    database,
    migrations: super::no_folder,
};

/// Every variable it reads; any of them shows the app is here.
const VARIABLES: &[&str] = &[
    "DB_MYSQL_HOST",
    "DB_MYSQL_PORT",
    "DB_MYSQL_USER",
    "DB_MYSQL_PASSWORD",
    "DB_MYSQL_NAME",
    "DB_MYSQL_SSL",
    "DB_MYSQL_SSL_REJECT_UNAUTHORIZED",
    "DB_MYSQL_SSL_VERIFY_IDENTITY",
    "DB_POSTGRES_HOST",
    "DB_POSTGRES_PORT",
    "DB_POSTGRES_USER",
    "DB_POSTGRES_PASSWORD",
    "DB_POSTGRES_NAME",
    "DB_SQLITE_FILE",
];

/// Its default SQLite file (`backend/lib/config.js`).
pub const SQLITE_DEFAULT: &str = "/data/database.sqlite";

/// `package.json`'s name in the image's `/app` (`backend/package.json`).
const PACKAGE_NAME: &str = "nginx-proxy-manager";

fn detect(env: &Env, cwd: &Path) -> Result<Option<String>, Failure> {
    let secret = VARIABLES.iter().find_map(|name| {
        let file = format!("{name}__FILE");
        env.get(&file).map(|_| format!("{file} is set"))
    });
    if let Some(why) = first_set(env, VARIABLES).or(secret) {
        return Ok(Some(why));
    }
    let named = std::fs::read_to_string(cwd.join("package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|json| json["name"] == PACKAGE_NAME);
    Ok(named.then(|| format!("./package.json is named {PACKAGE_NAME}")))
}

/// The variables of one engine, as `config.js` names them.
struct Engine {
    scheme: &'static str,
    prefix: &'static str,
    default_port: &'static str,
}

const MYSQL: Engine = Engine {
    scheme: "mysql",
    prefix: "DB_MYSQL_",
    default_port: "3306",
};
const POSTGRES: Engine = Engine {
    scheme: "postgres",
    prefix: "DB_POSTGRES_",
    default_port: "5432",
};

fn database(env: &Env, cwd: &Path) -> Result<Database, Failure> {
    if let Some((file, settings)) = config_file(env, cwd) {
        return from_config_file(&file, &settings, cwd);
    }
    let mut warnings = Vec::new();
    for engine in [MYSQL, POSTGRES] {
        let read = |field: &str| value(env, &format!("{}{field}", engine.prefix));
        let (host, user, name) = (read("HOST")?, read("USER")?, read("NAME")?);
        match (&host, &user, &name) {
            (Some(host), Some(user), Some(name)) => {
                let mut db = server(env, &engine, host, user, name)?;
                db.warnings.extend(warnings);
                return Ok(db);
            }
            (None, None, None) => {}
            _ => warnings.push(format!(
                "{p}HOST, {p}USER and {p}NAME are not all set: Nginx Proxy Manager then does not use them, \
                 nor does unlatch",
                p = engine.prefix
            )),
        }
    }
    let (from, file) = match value(env, "DB_SQLITE_FILE")? {
        Some(given) => (given.name, given.text),
        None => (
            format!("DB_SQLITE_FILE's default {SQLITE_DEFAULT}"),
            SQLITE_DEFAULT.to_owned(),
        ),
    };
    // better-sqlite3 opens a relative name in the working directory, /app
    // in the image (the backend's s6 run script does `cd /app`).
    let url = super::ghost::sqlite_url(&cwd.join(file));
    let mut db = Database::new(url, "Nginx Proxy Manager's DB_SQLITE_FILE", from);
    db.warnings = warnings;
    Ok(db)
}

/// The MySQL or PostgreSQL database of `engine`'s variables.
fn server(
    env: &Env,
    engine: &Engine,
    host: &Given,
    user: &Given,
    name: &Given,
) -> Result<Database, Failure> {
    let p = engine.prefix;
    let port = value(env, &format!("{p}PORT"))?;
    let password = value(env, &format!("{p}PASSWORD"))?;
    let params = match engine.scheme {
        "mysql" => vec![("ssl-mode", mysql_ssl_mode(env))],
        // No `ssl` in its knex connection: node-postgres then reads
        // PGSSLMODE, and without it sends no SSL request.
        _ if env.get("PGSSLMODE").is_some() => vec![],
        _ => vec![("sslmode", "disable")],
    };
    let port_name = format!("{p}PORT");
    let port_given = match &port {
        Some(port) => (port.name.as_str(), port.text.as_str()),
        None => (port_name.as_str(), engine.default_port),
    };
    let url = server_url(
        engine.scheme,
        (&host.name, &host.text),
        Some(port_given),
        Some((&user.name, &user.text)),
        password.as_ref().map(|p| p.text.as_str()),
        Some(&name.text),
        &params,
    )?;
    let mut from: Vec<&str> = vec![&host.name];
    from.extend(port.as_ref().map(|p| p.name.as_str()));
    from.push(&user.name);
    from.extend(password.as_ref().map(|p| p.name.as_str()));
    from.push(&name.name);
    let mut from = from.join(", ");
    if port.is_none() {
        from.push_str(&format!(" ({p}PORT's default {})", engine.default_port));
    }
    Ok(Database::new(
        url,
        format!("Nginx Proxy Manager's {p}* variables"),
        from,
    ))
}

/// `config.js`'s first choice: `${NODE_CONFIG_DIR:-./config}/${NODE_ENV:-
/// default}.json`, when it exists, parses and has a `database`; a file
/// that cannot be read or parsed is passed over, as its `catch` does.
fn config_file(env: &Env, cwd: &Path) -> Option<(PathBuf, Value)> {
    let dir = env.get("NODE_CONFIG_DIR").unwrap_or("./config");
    let name = format!("{}.json", env.get("NODE_ENV").unwrap_or("default"));
    let file = super::ghost::normalize(&cwd.join(dir).join(name));
    let text = std::fs::read_to_string(&file).ok()?;
    let json: Value = serde_json::from_str(&text).ok()?;
    let database = json.get("database").filter(|d| !is_falsy(d))?.clone();
    Some((file, database))
}

fn is_falsy(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// The database the config file's `database` names, read as `db.js`'s
/// `generateDbConfig` hands it to knex.
fn from_config_file(file: &Path, db: &Value, cwd: &Path) -> Result<Database, Failure> {
    let shown = file.display().to_string();
    let refuse = |why: String| Failure::new(Code::Config, format!("{shown}: {why}"));
    let text = |value: &Value| match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let source = format!("Nginx Proxy Manager's {shown}");
    match db["engine"].as_str() {
        Some("knex-native") => {
            let client = db["knex"]["client"].as_str().unwrap_or_default();
            let filename = db["knex"]["connection"]["filename"].as_str();
            match (client, filename) {
                ("better-sqlite3" | "sqlite3", Some(filename)) => {
                    let url = super::ghost::sqlite_url(&cwd.join(filename));
                    Ok(Database::new(url, source, shown.clone()))
                }
                _ => Err(refuse(format!(
                    "database.knex.client={client}: expected better-sqlite3 or sqlite3 with a connection.filename"
                ))),
            }
        }
        Some(engine @ ("mysql" | "mysql2" | "pg")) => {
            let field = |key: &str| text(&db[key]);
            let (Some(host), Some(name)) = (field("host"), field("name")) else {
                return Err(refuse("database.host and database.name: expected both".into()));
            };
            let (scheme, default_port) = match engine {
                "pg" => ("postgres", "5432"),
                _ => ("mysql", "3306"),
            };
            let port = field("port").unwrap_or_else(|| default_port.to_owned());
            let ssl = match (scheme, &db["ssl"]) {
                ("mysql", ssl) if is_falsy(ssl) => vec![("ssl-mode", "DISABLED")],
                ("mysql", ssl) => vec![("ssl-mode", mysql2_ssl_object(ssl))],
                _ => vec![],
            };
            let user = field("user");
            let url = server_url(
                scheme,
                ("database.host", &host),
                Some(("database.port", &port)),
                user.as_deref().map(|u| ("database.user", u)),
                field("password").as_deref(),
                Some(&name),
                &ssl,
            )
            .map_err(|e| refuse(e.message))?;
            Ok(Database::new(url, source, shown.clone()))
        }
        other => Err(refuse(format!(
            "database.engine={}: expected mysql2, pg or knex-native",
            other.unwrap_or("(none)")
        ))),
    }
}

/// An `ssl` object as mysql2 reads it: `rejectUnauthorized` unless false,
/// `verifyIdentity` only when true.
fn mysql2_ssl_object(ssl: &Value) -> &'static str {
    match (
        ssl["rejectUnauthorized"] != Value::Bool(false),
        ssl["verifyIdentity"] == Value::Bool(true),
    ) {
        (false, _) => "REQUIRED",
        (true, false) => "VERIFY_CA",
        (true, true) => "VERIFY_IDENTITY",
    }
}

/// mysql2's TLS from `DB_MYSQL_SSL*` (`config.js`: `toBool` is
/// `/^(1|true|yes|on)$/i` on the trimmed value; `rejectUnauthorized` and
/// `verifyIdentity` default to true when unset). No CA is given, so
/// Node's own roots verify, as the system's do here.
fn mysql_ssl_mode(env: &Env) -> &'static str {
    let to_bool = |name: &str| {
        let value = env.get(name).unwrap_or("").trim().to_ascii_lowercase();
        matches!(value.as_str(), "1" | "true" | "yes" | "on")
    };
    let unset_or = |name: &str| env.get(name).is_none() || to_bool(name);
    match (
        to_bool("DB_MYSQL_SSL"),
        unset_or("DB_MYSQL_SSL_REJECT_UNAUTHORIZED"),
        unset_or("DB_MYSQL_SSL_VERIFY_IDENTITY"),
    ) {
        (false, _, _) => "DISABLED",
        (true, false, _) => "REQUIRED",
        (true, true, false) => "VERIFY_CA",
        (true, true, true) => "VERIFY_IDENTITY",
    }
}

/// A value and the variable it came from (`DB_MYSQL_PASSWORD__FILE`).
struct Given {
    name: String,
    text: String,
}

/// `name`'s value as the app sees it: from `name__FILE` when that names a
/// file (the s6 hook writes it over `name`), else `name`.
fn value(env: &Env, name: &str) -> Result<Option<Given>, Failure> {
    let file_variable = format!("{name}__FILE");
    if let Some(path) = env.get(&file_variable) {
        if let Some(text) = secret_file(&file_variable, path)? {
            return Ok(Some(Given {
                name: file_variable,
                text,
            }));
        }
    }
    Ok(env.get(name).map(|text| Given {
        name: name.to_owned(),
        text: text.to_owned(),
    }))
}

/// The hook's `printf $(cat "$SECRETFILE")`: trailing newlines cut by the
/// command substitution, then split into words on bash's default `IFS`
/// (space, tab, newline: not `\r`, so a CRLF file's value keeps its
/// carriage return, and s6's `with-contenv`, `s6-envdir -Lfn`, keeps it
/// too), the first word printed as a format. A value that splitting or
/// printf would change (`IFS` inside, `%`, `\`) is refused: the app would
/// read another one. A path that is not a file is passed over, as the hook
/// passes it over.
fn secret_file(variable: &str, path: &str) -> Result<Option<String>, Failure> {
    if !Path::new(path).is_file() {
        log::warn!(
            "{variable}={path}: not a file; Nginx Proxy Manager's secret hook passes it over (\"Cannot find secret\"), and so does unlatch"
        );
        return Ok(None);
    }
    let text = crate::env::secret_file(variable, path)?;
    let value = text.trim_matches(IFS);
    if value.contains(IFS) || value.contains(['%', '\\']) {
        return Err(Failure::new(
            Code::Config,
            format!(
                "{variable}={path}: the value holds white space, % or \\, which Nginx Proxy Manager's secret hook \
                 (printf $(cat file)) changes before the app reads it; expected a value without them"
            ),
        ));
    }
    if value.contains('\r') {
        log::warn!(
            "{variable}={path}: the value holds a carriage return (a file saved with CRLF line ends?); \
             Nginx Proxy Manager's secret hook keeps it, and so does unlatch"
        );
    }
    Ok(Some(value.to_owned()))
}

/// bash's default `IFS`, which splits the hook's unquoted `$(cat file)`.
const IFS: [char; 3] = [' ', '\t', '\n'];

#[cfg(test)]
mod tests {
    use super::*;

    fn db(pairs: &[(&str, &str)]) -> Database {
        database(&Env::from_pairs(pairs), Path::new("/app")).unwrap()
    }

    fn refusal(pairs: &[(&str, &str)]) -> String {
        let err = database(&Env::from_pairs(pairs), Path::new("/app")).unwrap_err();
        assert_eq!(err.code, Code::Config);
        err.message
    }

    #[test]
    fn mysql_needs_host_user_and_name_and_wins_over_postgres() {
        let mysql = [
            ("DB_MYSQL_HOST", "db"),
            ("DB_MYSQL_USER", "npm"),
            ("DB_MYSQL_PASSWORD", "p@ss"),
            ("DB_MYSQL_NAME", "npm"),
            ("DB_POSTGRES_HOST", "pg"),
            ("DB_POSTGRES_USER", "npm"),
            ("DB_POSTGRES_NAME", "npm"),
        ];
        let d = db(&mysql);
        assert_eq!(d.url, "mysql://npm:p%40ss@db:3306/npm?ssl-mode=DISABLED");
        assert_eq!(
            d.from,
            "DB_MYSQL_HOST, DB_MYSQL_USER, DB_MYSQL_PASSWORD, DB_MYSQL_NAME (DB_MYSQL_PORT's default 3306)"
        );
        // Without DB_MYSQL_NAME, config.js goes on to PostgreSQL.
        let d = db(&[&mysql[..3], &mysql[4..]].concat());
        assert_eq!(d.url, "postgres://npm@pg:5432/npm?sslmode=disable");
        assert!(d.warnings[0].contains("DB_MYSQL_HOST, DB_MYSQL_USER and DB_MYSQL_NAME"));
    }

    #[test]
    fn nothing_set_is_its_default_sqlite_file_and_a_relative_one_is_in_app() {
        let d = db(&[]);
        assert_eq!(d.url, "sqlite:///data/database.sqlite");
        assert_eq!(d.from, "DB_SQLITE_FILE's default /data/database.sqlite");
        assert_eq!(db(&[("DB_SQLITE_FILE", "data/x.sqlite")]).url, "sqlite:///app/data/x.sqlite");
    }

    #[test]
    fn tls_as_config_js_reads_it() {
        let base = [("DB_MYSQL_HOST", "db"), ("DB_MYSQL_USER", "u"), ("DB_MYSQL_NAME", "n")];
        for (extra, mode) in [
            (&[("DB_MYSQL_SSL", " Yes")][..], "VERIFY_IDENTITY"),
            (&[("DB_MYSQL_SSL", "on"), ("DB_MYSQL_SSL_VERIFY_IDENTITY", "false")][..], "VERIFY_CA"),
            (&[("DB_MYSQL_SSL", "1"), ("DB_MYSQL_SSL_REJECT_UNAUTHORIZED", "0")][..], "REQUIRED"),
            (&[("DB_MYSQL_SSL", "maybe")][..], "DISABLED"),
        ] {
            let url = db(&[&base[..], extra].concat()).url;
            assert!(url.ends_with(&format!("ssl-mode={mode}")), "{extra:?}: {url}");
        }
    }

    #[test]
    fn a_secret_file_is_read_as_the_hook_hands_it_on() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cr:t\n").unwrap();
        let path = file.to_str().unwrap();
        let pairs = [
            ("DB_MYSQL_HOST", "db"),
            ("DB_MYSQL_USER", "u"),
            ("DB_MYSQL_NAME", "n"),
            ("DB_MYSQL_PASSWORD", "ignored"),
            ("DB_MYSQL_PASSWORD__FILE", path),
        ];
        let d = db(&pairs);
        assert_eq!(d.url, "mysql://u:s3cr%3At@db:3306/n?ssl-mode=DISABLED");
        assert!(d.from.contains("DB_MYSQL_PASSWORD__FILE"), "{}", d.from);
        std::fs::write(&file, "two words\n").unwrap();
        assert!(refusal(&pairs).starts_with("DB_MYSQL_PASSWORD__FILE="));
        // Not IFS: a CRLF file's \r and a no-break space reach the app.
        std::fs::write(&file, "\tn\u{a0}b\r\n\n").unwrap();
        assert_eq!(db(&pairs).url, "mysql://u:n%C2%A0b%0D@db:3306/n?ssl-mode=DISABLED");
        for inside in ["a\tb", "a\nb", "50%", "a\\b"] {
            std::fs::write(&file, inside).unwrap();
            assert!(refusal(&pairs).starts_with("DB_MYSQL_PASSWORD__FILE="), "{inside:?}");
        }
        std::fs::remove_file(&file).unwrap();
        // Not a file: the hook passes it over, DB_MYSQL_PASSWORD stays.
        assert!(db(&pairs).url.contains(":ignored@"));
    }

    #[test]
    fn the_legacy_config_file_wins_over_the_variables() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        // backend/config/default.json in NPM's repository.
        let file = dir.path().join("config/default.json");
        std::fs::write(&file, r#"{"database":{"engine":"mysql2","host":"db","name":"npm","user":"npm","password":"npm","port":3306}}"#).unwrap();
        let env = Env::from_pairs(&[("DB_SQLITE_FILE", "/data/x.sqlite")]);
        let d = database(&env, dir.path()).unwrap();
        assert_eq!(d.url, "mysql://npm:npm@db:3306/npm?ssl-mode=DISABLED");
        assert_eq!(d.from, file.display().to_string());
        // NODE_ENV names another file, absent: the variables count.
        let env = Env::from_pairs(&[("NODE_ENV", "production"), ("DB_SQLITE_FILE", "/data/x.sqlite")]);
        assert_eq!(database(&env, dir.path()).unwrap().url, "sqlite:///data/x.sqlite");
        std::fs::write(&file, r#"{"database":{"engine":"knex-native","knex":{"client":"better-sqlite3","connection":{"filename":"/app/config/mydb.sqlite"}}}}"#).unwrap();
        assert_eq!(database(&Env::default(), dir.path()).unwrap().url, "sqlite:///app/config/mydb.sqlite");
        std::fs::write(&file, r#"{"database":{"engine":"mssql"}}"#).unwrap();
        let m = database(&Env::default(), dir.path()).unwrap_err().message;
        assert!(m.ends_with("database.engine=mssql: expected mysql2, pg or knex-native"), "{m}");
        std::fs::write(&file, "{ not json").unwrap();
        assert_eq!(database(&Env::default(), dir.path()).unwrap().url, "sqlite:///data/database.sqlite");
    }

    #[test]
    fn a_bad_port_is_named() {
        let m = refusal(&[
            ("DB_POSTGRES_HOST", "db"),
            ("DB_POSTGRES_USER", "u"),
            ("DB_POSTGRES_NAME", "n"),
            ("DB_POSTGRES_PORT", "abc"),
        ]);
        assert_eq!(m, "DB_POSTGRES_PORT=abc: expected a port number, 1 to 65535");
    }

    #[test]
    fn its_package_json_or_any_variable_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let none = detect(&Env::from_pairs(&[]), dir.path()).unwrap();
        assert_eq!(none, None);
        std::fs::write(dir.path().join("package.json"), r#"{"name":"nginx-proxy-manager"}"#).unwrap();
        let why = detect(&Env::from_pairs(&[]), dir.path()).unwrap();
        assert_eq!(why.as_deref(), Some("./package.json is named nginx-proxy-manager"));
        let why = detect(&Env::from_pairs(&[("DB_SQLITE_FILE", "/x")]), Path::new("/x")).unwrap();
        assert_eq!(why.as_deref(), Some("DB_SQLITE_FILE is set"));
    }
}
