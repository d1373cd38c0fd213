//! Configuration: every setting comes from the environment and is checked
//! here, in full, before anything touches the database.
//!
//! envy + serde read the `UNLATCH_*` variables as plain strings; each one is
//! then parsed by a function of its own so that every error names the
//! variable and what it expected (envy's own messages name neither for
//! string fields). Defaults live in [`VARIABLES`], which `--help` prints and
//! the README repeats. An empty variable counts as unset, as Docker's
//! `-e NAME=` suggests.
//!
//! May touch: the process environment and, for Ghost, its config file.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::clock::LockZone;
use crate::db::Target;
use crate::exit::{Code, Failure};
use crate::tools::{ToolChoice, ToolSettings};
use crate::user::RunAs;
use crate::{ghost, tools};

/// The variables unlatch reads, but for the tools' (see [`variables`]):
/// name, default, meaning.
#[rustfmt::skip]
pub const VARIABLES: &[(&str, &str, &str)] = &[
    ("UNLATCH_DATABASE_URL", "(unset)", "database URL: sqlite:, mysql:, mariadb:, postgres:, postgresql:, Prisma's file:, jdbc:"),
    ("DATABASE_URL", "(unset)", "used when UNLATCH_DATABASE_URL is unset"),
    ("database__client, database__connection__*", "(unset)", "Ghost's variables (a *_FILE variant read as a secret file), used when no URL is set; then config.$NODE_ENV.json, config.local.json and Ghost's defaults"),
    ("LIQUIBASE_COMMAND_URL", "(unset)", "Liquibase's JDBC URL, used when none of the above is set"),
    ("LIQUIBASE_COMMAND_USERNAME, LIQUIBASE_COMMAND_PASSWORD", "(unset)", "Liquibase's credentials, with LIQUIBASE_COMMAND_URL"),
    ("LIQUIBASE_COMMAND_LIQUIBASE_SCHEMA_NAME", "LIQUIBASE_COMMAND_DEFAULT_SCHEMA_NAME", "schema of Liquibase's lock table, with LIQUIBASE_COMMAND_URL"),
    ("LIQUIBASE_COMMAND_DEFAULT_SCHEMA_NAME", "(the URL's)", "Liquibase's default schema, with LIQUIBASE_COMMAND_URL"),
    ("LIQUIBASE_DATABASE_CHANGELOG_LOCK_TABLE_NAME", "DATABASECHANGELOGLOCK", "Liquibase's lock table, with LIQUIBASE_COMMAND_URL (UNLATCH_LIQUIBASE_TABLE wins)"),
    ("FLYWAY_URL", "(unset)", "Flyway's JDBC URL, used when none of the above is set (with both, UNLATCH_TOOL picks)"),
    ("FLYWAY_USER, FLYWAY_PASSWORD", "(unset)", "Flyway's credentials, with FLYWAY_URL"),
    ("FLYWAY_DEFAULT_SCHEMA", "the first of FLYWAY_SCHEMAS", "schema of Flyway's history table, with FLYWAY_URL"),
    ("FLYWAY_SCHEMAS", "(the URL's)", "Flyway's schemas, comma-separated, with FLYWAY_URL"),
    ("FLYWAY_TABLE", "flyway_schema_history", "Flyway's history table, with FLYWAY_URL (UNLATCH_FLYWAY_TABLE wins)"),
    ("PGSSLMODE", "prefer", "libpq's sslmode, for a postgres: URL without one: disable, allow, prefer, require, verify-ca, verify-full"),
    ("PGSSLROOTCERT", "(unset)", "libpq's sslrootcert, for a postgres: URL without one: the CA's file, or system"),
    ("PGSSLCERT, PGSSLKEY", "(unset)", "libpq's sslcert and sslkey, for a postgres: URL without them: the client's certificate and key files"),
    ("PGCHANNELBINDING", "prefer", "libpq's channel_binding, for a postgres: URL without one; require verifies the server's certificate instead"),
    ("database__connection__ssl__*", "(unset)", "Ghost's TLS for MySQL as mysql2 reads it: ssl__ca, ssl__cert, ssl__key (PEM text), ssl__rejectUnauthorized=false (encrypted, not verified), ssl__verifyIdentity"),
    ("UNLATCH_WAIT_TIMEOUT", "60s", "how long to wait for the database to accept connections"),
    ("UNLATCH_LOCK_TTL", "15m", "a lock held longer than this is stale and may be healed"),
    ("UNLATCH_LOCK_WAIT", "UNLATCH_LOCK_TTL", "how long to wait for a live lock, or another replica, before giving up"),
    ("UNLATCH_LOCK_TIMEZONE", "$TZ, else /etc/localtime, else UTC", "zone of the naive timestamps the tool writes"),
    ("UNLATCH_ON_STALE", "clear", "what to do with a stale lock: clear, rollback or fail"),
    ("UNLATCH_ROLLBACK_CMD", "(unset)", "command run before clearing, with UNLATCH_ON_STALE=rollback"),
    ("UNLATCH_ON_DIRTY", "fail", "what to do with a dirty or failed migration: fail, or retry (mark it not applied, migrate)"),
    ("UNLATCH_TERMINATE_STALE_SESSIONS", "0", "1: end a PostgreSQL session that holds a tool's advisory lock, idle longer than the TTL"),
    ("UNLATCH_MIGRATE_CMD", "(unset)", "command that migrates, e.g. knex-migrator-migrate --init"),
    ("UNLATCH_MIGRATIONS_DIR", "(unset)", "folder of plain SQL migrations (sqlx's format) for the built-in runner"),
    ("UNLATCH_MIGRATE_TIMEOUT", "10m", "time limit for the migrate and rollback commands"),
    ("UNLATCH_KILL_GRACE", "10s", "time between TERM and KILL when a command, or what the app left, must stop"),
    ("UNLATCH_MODE", "auto", "auto (supervise as PID 1, else exec), supervise or exec"),
    ("UNLATCH_SIGNAL_TARGET", "child", "where a supervisor forwards signals: child or group (its process group)"),
    ("UNLATCH_RUN_AS", "(unset)", "user[:group] COMMAND runs as, names or numbers"),
    ("UNLATCH_MIGRATE_RUN_AS", "UNLATCH_RUN_AS", "user[:group] the migrate and rollback commands run as"),
    ("UNLATCH_HOOKS_DIR", "/entrypoint.d, when it exists", "folder of hooks run after the heal, before the migrations"),
    ("UNLATCH_HOOK_TIMEOUT", "5m", "time limit for each hook"),
    ("UNLATCH_HOOK_FAILURE", "stop", "a failed hook stops the start (stop) or is logged (warn)"),
    ("UNLATCH_SQLITE_BACKUP", "0", "1: copy a SQLite database (VACUUM INTO) before migrations too, not only before a heal"),
    ("UNLATCH_SQLITE_BACKUP_KEEP", "3", "how many of those copies to keep beside the database"),
    ("UNLATCH_LOG", "info", "least severe level logged: error, warn, info, debug, off"),
    ("UNLATCH_LOG_FORMAT", "text", "text (one `unlatch:` line per decision) or json (one object a line)"),
    ("UNLATCH_TERMINATION_LOG", TERMINATION_LOG, "a failed start writes its reason here, if the file exists (Kubernetes' terminationMessagePath)"),
];

/// Every variable unlatch reads: [`VARIABLES`], with the tools' own
/// ([`tools::variables`]) after `UNLATCH_WAIT_TIMEOUT`. `--help` prints
/// this table, and a test checks that the README documents each row.
pub fn variables() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut all = VARIABLES.to_vec();
    let at = all
        .iter()
        .position(|(name, _, _)| *name == "UNLATCH_WAIT_TIMEOUT");
    let at = at.map_or(all.len(), |i| i + 1);
    all.splice(at..at, tools::variables());
    all
}

/// Kubernetes' default `terminationMessagePath`.
pub const TERMINATION_LOG: &str = "/dev/termination-log";

/// Where a failed start writes its reason: `UNLATCH_TERMINATION_LOG`, read
/// apart from the rest, since a configuration error is reported there too.
pub fn termination_log(env: &Env) -> PathBuf {
    PathBuf::from(
        env.get("UNLATCH_TERMINATION_LOG")
            .unwrap_or(TERMINATION_LOG),
    )
}

/// What to do with a lock held longer than the TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnStale {
    /// Compare-and-swap the lock back to free.
    Clear,
    /// Run this command first, then clear the lock if it is still held.
    Rollback(Vec<String>),
    /// Change nothing and stop.
    Fail,
}

/// How COMMAND is started after the preflight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Supervise when PID 1, exec otherwise.
    Auto,
    Supervise,
    Exec,
}

/// Where a supervisor sends the signals it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalTarget {
    Child,
    Group,
}

/// What a failed hook does to the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookFailure {
    Stop,
    Warn,
}

/// What to do with a dirty or failed migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDirty {
    /// Change nothing; name the migration and the tool's repair command.
    Fail,
    /// Mark it not applied, as the tool's repair does, then migrate.
    Retry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// How to log; read first, so that configuration errors are logged in the
/// format the user asked for.
#[derive(Debug, Clone, Copy)]
pub struct Logging {
    pub level: log::LevelFilter,
    pub format: LogFormat,
}

/// The whole, validated configuration.
#[derive(Debug)]
pub struct Config {
    pub database: Option<Target>,
    pub wait_timeout: Duration,
    pub tool: ToolChoice,
    pub lock_ttl: Duration,
    pub lock_wait: Duration,
    pub lock_zone: LockZone,
    pub on_stale: OnStale,
    pub on_dirty: OnDirty,
    pub terminate_stale_sessions: bool,
    pub tool_settings: ToolSettings,
    pub migrate_cmd: Option<Vec<String>>,
    pub migrations_dir: Option<PathBuf>,
    pub migrate_timeout: Duration,
    pub kill_grace: Duration,
    pub mode: Mode,
    pub signal_target: SignalTarget,
    pub run_as: Option<RunAs>,
    pub migrate_run_as: Option<RunAs>,
    pub hooks_dir: Option<PathBuf>,
    pub hook_timeout: Duration,
    pub hook_failure: HookFailure,
    /// Copy a SQLite database before migrating (it is always copied before a heal).
    pub sqlite_backup: bool,
    pub sqlite_backup_keep: usize,
    /// Harmless oddities (an unknown `UNLATCH_*` name, a setting that has no
    /// effect), logged once logging is up.
    pub warnings: Vec<String>,
}

/// The `UNLATCH_*` variables as envy reads them, before validation
/// (`UNLATCH_LOG*` are read first, by [`Logging`]).
#[derive(Debug, Default, Deserialize)]
struct Raw {
    database_url: Option<String>,
    wait_timeout: Option<String>,
    lock_ttl: Option<String>,
    lock_wait: Option<String>,
    lock_timezone: Option<String>,
    on_stale: Option<String>,
    rollback_cmd: Option<String>,
    migrate_cmd: Option<String>,
    migrations_dir: Option<String>,
    migrate_timeout: Option<String>,
    kill_grace: Option<String>,
    mode: Option<String>,
    signal_target: Option<String>,
    run_as: Option<String>,
    migrate_run_as: Option<String>,
    hooks_dir: Option<String>,
    hook_timeout: Option<String>,
    hook_failure: Option<String>,
    sqlite_backup: Option<String>,
    sqlite_backup_keep: Option<String>,
    on_dirty: Option<String>,
    terminate_stale_sessions: Option<String>,
}

/// A snapshot of the environment: valid UTF-8, empty values dropped.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Takes the variables unlatch may read; one that is not UTF-8 is an
    /// error naming it, rather than the panic `std::env::vars` would give.
    pub fn capture(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<Env, Failure> {
        let mut map = HashMap::new();
        for (key, value) in vars {
            let Ok(key) = key.into_string() else { continue };
            if !is_ours(&key) {
                continue;
            }
            let value = value.into_string().map_err(|_| {
                config_error(format!("{key} is not valid UTF-8; expected a UTF-8 value"))
            })?;
            if !value.is_empty() {
                map.insert(key, value);
            }
        }
        Ok(Env { vars: map })
    }

    /// An environment of exactly these pairs, for tests.
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Env {
        Env::capture(
            pairs
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        )
        .expect("test pairs are UTF-8")
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Variables whose name starts with `prefix`.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.vars
            .iter()
            .filter(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn is_ours(key: &str) -> bool {
    key.starts_with("UNLATCH_")
        || key.starts_with("database__")
        // libpq's defaults, and the URLs of the tools beside unlatch.
        || key.starts_with("PG")
        || key.starts_with("LIQUIBASE_")
        || key.starts_with("FLYWAY_")
        || matches!(key, "DATABASE_URL" | "TZ" | "NODE_ENV")
}

fn config_error(message: String) -> Failure {
    Failure::new(Code::Config, message)
}

fn raw(env: &Env) -> Result<Raw, Failure> {
    envy::prefixed("UNLATCH_")
        .from_iter(
            env.with_prefix("UNLATCH_")
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        )
        .map_err(|e| config_error(format!("could not read the UNLATCH_* variables: {e}")))
}

impl Logging {
    pub fn from_env(env: &Env) -> Result<Logging, Failure> {
        let level = match env.get("UNLATCH_LOG").unwrap_or("info") {
            "off" => log::LevelFilter::Off,
            "error" => log::LevelFilter::Error,
            "warn" => log::LevelFilter::Warn,
            "info" => log::LevelFilter::Info,
            "debug" => log::LevelFilter::Debug,
            other => {
                return Err(config_error(format!(
                    "UNLATCH_LOG={other}: expected one of error, warn, info, debug, off"
                )))
            }
        };
        let format = match env.get("UNLATCH_LOG_FORMAT").unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(config_error(format!(
                    "UNLATCH_LOG_FORMAT={other}: expected text or json"
                )))
            }
        };
        Ok(Logging { level, format })
    }
}

impl Config {
    /// Reads and checks everything. `cwd` is where Ghost's config file is
    /// looked for.
    pub fn from_env(env: &Env, cwd: &Path) -> Result<Config, Failure> {
        let raw = raw(env)?;
        let mut warnings = unknown_variables(env);

        let lock_ttl = duration("UNLATCH_LOCK_TTL", raw.lock_ttl.as_deref(), "15m")?;
        let lock_wait = match raw.lock_wait.as_deref() {
            Some(value) => parse_duration("UNLATCH_LOCK_WAIT", value)?,
            None => lock_ttl,
        };
        let on_stale = on_stale(raw.on_stale.as_deref(), raw.rollback_cmd.as_deref())?;
        if raw.rollback_cmd.is_some() && !matches!(on_stale, OnStale::Rollback(_)) {
            warnings.push(
                "UNLATCH_ROLLBACK_CMD is set but only used with UNLATCH_ON_STALE=rollback; ignoring it"
                    .into(),
            );
        }
        let migrate_timeout = duration(
            "UNLATCH_MIGRATE_TIMEOUT",
            raw.migrate_timeout.as_deref(),
            "10m",
        )?;
        if migrate_timeout.is_zero() {
            return Err(config_error(
                "UNLATCH_MIGRATE_TIMEOUT=0s: expected a duration above zero, like 10m".into(),
            ));
        }

        let run_as = resolve_run_as("UNLATCH_RUN_AS", raw.run_as.as_deref())?;
        let migrate_run_as = match raw.migrate_run_as.as_deref() {
            Some(spec) => resolve_run_as("UNLATCH_MIGRATE_RUN_AS", Some(spec))?,
            None => run_as.clone(),
        };

        let database = database(env, raw.database_url.as_deref(), cwd)?;
        let (tool, mut tool_settings) = tools::settings_from(|name| env.get(name))?;
        if let Some(target) = &database {
            warnings.extend(target.warnings.iter().cloned());
            tool_settings.take_tables(&target.tables);
        }

        Ok(Config {
            database,
            wait_timeout: duration("UNLATCH_WAIT_TIMEOUT", raw.wait_timeout.as_deref(), "60s")?,
            tool,
            lock_ttl,
            lock_wait,
            lock_zone: lock_zone(raw.lock_timezone.as_deref(), env.get("TZ"))?,
            on_stale,
            on_dirty: match raw.on_dirty.as_deref().unwrap_or("fail") {
                "fail" => OnDirty::Fail,
                "retry" => OnDirty::Retry,
                other => {
                    return Err(config_error(format!(
                        "UNLATCH_ON_DIRTY={other}: expected fail or retry"
                    )))
                }
            },
            tool_settings,
            terminate_stale_sessions: flag(
                "UNLATCH_TERMINATE_STALE_SESSIONS",
                raw.terminate_stale_sessions.as_deref(),
            )?,
            migrate_cmd: command("UNLATCH_MIGRATE_CMD", raw.migrate_cmd.as_deref())?,
            migrations_dir: migrations_dir(
                raw.migrations_dir.as_deref(),
                raw.migrate_cmd.is_some(),
            )?,
            migrate_timeout,
            kill_grace: duration("UNLATCH_KILL_GRACE", raw.kill_grace.as_deref(), "10s")?,
            mode: match raw.mode.as_deref().unwrap_or("auto") {
                "auto" => Mode::Auto,
                "supervise" => Mode::Supervise,
                "exec" => Mode::Exec,
                other => {
                    return Err(config_error(format!(
                        "UNLATCH_MODE={other}: expected auto, supervise or exec"
                    )))
                }
            },
            signal_target: match raw.signal_target.as_deref().unwrap_or("child") {
                "child" => SignalTarget::Child,
                "group" => SignalTarget::Group,
                other => {
                    return Err(config_error(format!(
                        "UNLATCH_SIGNAL_TARGET={other}: expected child or group"
                    )))
                }
            },
            run_as,
            migrate_run_as,
            hooks_dir: hooks_dir(raw.hooks_dir.as_deref())?,
            hook_timeout: duration("UNLATCH_HOOK_TIMEOUT", raw.hook_timeout.as_deref(), "5m")?,
            hook_failure: match raw.hook_failure.as_deref().unwrap_or("stop") {
                "stop" => HookFailure::Stop,
                "warn" => HookFailure::Warn,
                other => {
                    return Err(config_error(format!(
                        "UNLATCH_HOOK_FAILURE={other}: expected stop or warn"
                    )))
                }
            },
            sqlite_backup: flag("UNLATCH_SQLITE_BACKUP", raw.sqlite_backup.as_deref())?,
            sqlite_backup_keep: match raw
                .sqlite_backup_keep
                .as_deref()
                .unwrap_or("3")
                .parse::<usize>()
            {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(config_error(format!(
                    "UNLATCH_SQLITE_BACKUP_KEEP={}: expected a whole number of copies, at least 1",
                    raw.sqlite_backup_keep.unwrap_or_default()
                )))
                }
            },
            warnings,
        })
    }
}

fn unknown_variables(env: &Env) -> Vec<String> {
    let known: Vec<&str> = variables().iter().map(|(name, _, _)| *name).collect();
    let mut unknown: Vec<String> = env
        .with_prefix("UNLATCH_")
        // UNLATCH_TEST_* belong to the test suite, not to unlatch.
        .filter(|(k, _)| !known.contains(k) && !k.starts_with("UNLATCH_TEST_"))
        .map(|(k, _)| {
            format!("{k} is not a variable unlatch knows; ignoring it (see unlatch --help)")
        })
        .collect();
    unknown.sort();
    unknown
}

/// The database to work on, from the first source that names one.
fn database(env: &Env, unlatch_url: Option<&str>, cwd: &Path) -> Result<Option<Target>, Failure> {
    if let Some(url) = unlatch_url {
        return Target::read(url, "UNLATCH_DATABASE_URL", env).map(Some);
    }
    if let Some(url) = env.get("DATABASE_URL") {
        return Target::read(url, "DATABASE_URL", env).map(Some);
    }
    if let Some((url, source)) = ghost::database_url(env, cwd)? {
        return Target::read(&url, &source, env).map(Some);
    }
    tool_variables(env)
}

/// A migration tool's own variables, read as that tool reads them.
struct ToolVariables {
    tool: &'static str,
    url: &'static str,
    user: &'static str,
    password: &'static str,
    /// Where the tool's tables go, first set first.
    schemas: &'static [&'static str],
    /// A comma-separated list whose first entry is the schema, after `schemas`.
    schema_list: Option<&'static str>,
    schema_quoted: bool,
    table: &'static str,
}

/// Liquibase keeps its lock table in its liquibase schema, else the
/// default schema; Flyway its history table in the default schema, else
/// the first of its schemas, and quotes the name.
const TOOL_VARIABLES: [ToolVariables; 2] = [
    ToolVariables {
        tool: tools::Liquibase::NAME,
        url: "LIQUIBASE_COMMAND_URL",
        user: "LIQUIBASE_COMMAND_USERNAME",
        password: "LIQUIBASE_COMMAND_PASSWORD",
        schemas: &[
            "LIQUIBASE_COMMAND_LIQUIBASE_SCHEMA_NAME",
            "LIQUIBASE_COMMAND_DEFAULT_SCHEMA_NAME",
        ],
        schema_list: None,
        schema_quoted: false,
        table: "LIQUIBASE_DATABASE_CHANGELOG_LOCK_TABLE_NAME",
    },
    ToolVariables {
        tool: tools::Flyway::NAME,
        url: "FLYWAY_URL",
        user: "FLYWAY_USER",
        password: "FLYWAY_PASSWORD",
        schemas: &["FLYWAY_DEFAULT_SCHEMA"],
        schema_list: Some("FLYWAY_SCHEMAS"),
        schema_quoted: true,
        table: "FLYWAY_TABLE",
    },
];

/// With no URL of unlatch's own, the database Liquibase's or Flyway's own
/// variables name, with their schema and table; both set, `UNLATCH_TOOL`
/// says which.
fn tool_variables(env: &Env) -> Result<Option<Target>, Failure> {
    let set: Vec<&ToolVariables> = TOOL_VARIABLES
        .iter()
        .filter(|t| env.get(t.url).is_some())
        .collect();
    let chosen = match set.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        _ => match set.iter().find(|t| env.get("UNLATCH_TOOL") == Some(t.tool)) {
            Some(one) => *one,
            None => {
                return Err(config_error(
                    "LIQUIBASE_COMMAND_URL and FLYWAY_URL are both set; expected UNLATCH_TOOL=liquibase or flyway \
                     to pick one, or the database in UNLATCH_DATABASE_URL"
                        .into(),
                ))
            }
        },
    };
    let url = env.get(chosen.url).expect("filtered on it");
    // A name with a control character (a secret file's newline) would
    // reach the server as it is, and be refused there only after the wait.
    let mut names = chosen.schemas.iter().chain(&chosen.schema_list);
    if let Some(name) = names.find(|name| {
        env.get(name)
            .is_some_and(|v| v.chars().any(char::is_control))
    }) {
        return Err(config_error(format!(
            "{name}: the schema name has a control character (a secret file's trailing newline?); \
             expected schema names alone"
        )));
    }
    let listed = chosen
        .schema_list
        .and_then(|name| env.get(name))
        .and_then(|list| list.split(',').map(str::trim).find(|s| !s.is_empty()));
    let schema = chosen
        .schemas
        .iter()
        .find_map(|name| env.get(name))
        .or(listed);
    if env
        .get(chosen.user)
        .is_some_and(|user| user.chars().any(char::is_control))
    {
        return Err(config_error(format!(
            "{}: {}",
            chosen.user,
            crate::db::USER_CONTROL_CHARACTER
        )));
    }
    let extras = crate::dialect::JdbcExtras {
        user: env.get(chosen.user),
        password: env.get(chosen.password),
        schema,
        schema_quoted: chosen.schema_quoted,
    };
    let composed = crate::dialect::jdbc_with(url.trim_end_matches(['\n', '\r']), &extras)
        .map_err(|why| config_error(format!("{}={}: {why}", chosen.url, crate::db::redact(url))))?;
    let mut target = Target::read(&composed, chosen.url, env)?;
    if let Some(table) = env.get(chosen.table) {
        target
            .tables
            .push((chosen.tool, tools::table_name(chosen.table, table)?));
    }
    log::debug!(
        "database from {}{}",
        chosen.url,
        schema.map_or(String::new(), |s| format!(", tables in schema {s}"))
    );
    Ok(Some(target))
}

/// The built-in runner's folder; it and a migrate command exclude each other.
fn migrations_dir(value: Option<&str>, has_command: bool) -> Result<Option<PathBuf>, Failure> {
    let Some(value) = value else { return Ok(None) };
    if has_command {
        return Err(config_error(
            "UNLATCH_MIGRATIONS_DIR and UNLATCH_MIGRATE_CMD are both set; expected one way to migrate".into(),
        ));
    }
    let path = PathBuf::from(value);
    if !path.is_dir() {
        return Err(config_error(format!(
            "UNLATCH_MIGRATIONS_DIR={value}: expected a folder of .sql migrations"
        )));
    }
    Ok(Some(path))
}

/// `1`/`true` or `0`/`false`; unset is false.
fn flag(name: &str, value: Option<&str>) -> Result<bool, Failure> {
    match value.unwrap_or("0") {
        "0" | "false" => Ok(false),
        "1" | "true" => Ok(true),
        other => Err(config_error(format!("{name}={other}: expected 1 or 0"))),
    }
}

/// `UNLATCH_HOOKS_DIR` must be a folder; unset, `/entrypoint.d` is used
/// when there is one.
fn hooks_dir(value: Option<&str>) -> Result<Option<PathBuf>, Failure> {
    let Some(value) = value else {
        let default = Path::new("/entrypoint.d");
        return Ok(default.is_dir().then(|| default.to_owned()));
    };
    let path = PathBuf::from(value);
    if path.is_dir() {
        return Ok(Some(path));
    }
    let why = if path.exists() {
        "it is not a folder"
    } else {
        "it does not exist"
    };
    Err(config_error(format!(
        "UNLATCH_HOOKS_DIR={value}: {why}; expected a folder of executable hooks"
    )))
}

fn resolve_run_as(name: &str, spec: Option<&str>) -> Result<Option<RunAs>, Failure> {
    spec.map(|spec| RunAs::resolve(name, spec)).transpose()
}

fn duration(name: &str, value: Option<&str>, default: &str) -> Result<Duration, Failure> {
    parse_duration(name, value.unwrap_or(default))
}

/// Parses `90s`, `10m`, `1h30m`, `1h 30m`...
pub fn parse_duration(name: &str, value: &str) -> Result<Duration, Failure> {
    let expected = "expected a duration like 90s, 10m or 1h30m";
    // humantime 2.4 panics instead of erring when a sum reaches u64::MAX
    // seconds (found by fuzz/duration). At most 64 bytes with numbers of at
    // most 11 digits keeps every sum below that: 5 x 10^11 years < 2^64 s.
    let longest_number = value
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    if value.len() > 64 || longest_number > 11 {
        return Err(config_error(format!(
            "{name}={value}: {expected}, at most 64 characters with numbers of at most 11 digits"
        )));
    }
    humantime::parse_duration(value.trim())
        .map_err(|e| config_error(format!("{name}={value}: {expected} ({e})")))
}

fn on_stale(value: Option<&str>, rollback_cmd: Option<&str>) -> Result<OnStale, Failure> {
    match value.unwrap_or("clear") {
        "clear" => Ok(OnStale::Clear),
        "fail" => Ok(OnStale::Fail),
        "rollback" => match command("UNLATCH_ROLLBACK_CMD", rollback_cmd)? {
            Some(cmd) => Ok(OnStale::Rollback(cmd)),
            None => Err(config_error(
                "UNLATCH_ON_STALE=rollback needs UNLATCH_ROLLBACK_CMD, the command that rolls back \
                 (e.g. knex-migrator-rollback --force --v 5.0 --mgpath current)"
                    .into(),
            )),
        },
        other => Err(config_error(format!(
            "UNLATCH_ON_STALE={other}: expected clear, rollback or fail"
        ))),
    }
}

/// Splits a command into words with POSIX shell quoting; no shell runs it.
pub fn command(name: &str, value: Option<&str>) -> Result<Option<Vec<String>>, Failure> {
    let Some(value) = value else { return Ok(None) };
    let words = shell_words::split(value).map_err(|_| {
        config_error(format!(
            "{name}: unmatched quote in {value:?}; expected words in POSIX shell quoting"
        ))
    })?;
    if words.is_empty() {
        return Err(config_error(format!(
            "{name}={value:?}: expected a command, found no words"
        )));
    }
    Ok(Some(words))
}

/// The zone knex-migrator wrote its naive timestamps in: the container's.
fn lock_zone(unlatch_tz: Option<&str>, tz: Option<&str>) -> Result<LockZone, Failure> {
    if let Some(name) = unlatch_tz {
        return zone_named(name).map(LockZone::fixed).ok_or_else(|| {
            config_error(format!(
                "UNLATCH_LOCK_TIMEZONE={name}: expected a time zone name like UTC or Europe/Berlin"
            ))
        });
    }
    if let Some(value) = tz {
        let name = value.strip_prefix(':').unwrap_or(value);
        return zone_named(name)
            .or_else(|| TimeZone::posix(name).ok())
            .map(LockZone::fixed)
            .ok_or_else(|| {
                config_error(format!(
                    "TZ={value}: expected a time zone name like UTC or Europe/Berlin, or a POSIX TZ string \
                     (set UNLATCH_LOCK_TIMEZONE to override)"
                ))
            });
    }
    Ok(LockZone::system())
}

fn zone_named(name: &str) -> Option<TimeZone> {
    if name.eq_ignore_ascii_case("UTC") {
        return Some(TimeZone::UTC);
    }
    TimeZone::get(name).ok()
}

/// The help text's table of variables.
pub fn variables_help() -> String {
    let variables = variables();
    let width = variables.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
    variables
        .iter()
        .map(|(name, default, meaning)| {
            format!("  {name:width$}  {meaning} [default: {default}]\n")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs)
    }

    fn config(pairs: &[(&str, &str)]) -> Result<Config, Failure> {
        Config::from_env(&env(pairs), Path::new("/nonexistent"))
    }

    fn message(pairs: &[(&str, &str)]) -> String {
        let err = config(pairs).unwrap_err();
        assert_eq!(err.code, Code::Config);
        err.message
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert!(c.database.is_none());
        assert_eq!(c.wait_timeout, Duration::from_secs(60));
        assert_eq!(c.lock_ttl, Duration::from_secs(900));
        assert_eq!(c.lock_wait, c.lock_ttl);
        assert_eq!(c.on_stale, OnStale::Clear);
        assert_eq!(c.tool, ToolChoice::Auto);
        assert_eq!(c.migrate_timeout, Duration::from_secs(600));
        assert_eq!(c.kill_grace, Duration::from_secs(10));
        assert!(c.migrate_cmd.is_none());
    }

    #[test]
    fn durations_accept_compound_units() {
        let c = config(&[
            ("UNLATCH_LOCK_TTL", "1h30m"),
            ("UNLATCH_WAIT_TIMEOUT", "90s"),
        ])
        .unwrap();
        assert_eq!(c.lock_ttl, Duration::from_secs(5400));
        assert_eq!(
            c.lock_wait,
            Duration::from_secs(5400),
            "the wait defaults to the TTL"
        );
        assert_eq!(c.wait_timeout, Duration::from_secs(90));
    }

    #[test]
    fn bad_duration_names_variable_and_form() {
        let m = message(&[("UNLATCH_LOCK_TTL", "soon")]);
        assert!(
            m.starts_with("UNLATCH_LOCK_TTL=soon: expected a duration like 90s"),
            "{m}"
        );
        let m = message(&[("UNLATCH_KILL_GRACE", "10")]);
        assert!(m.contains("UNLATCH_KILL_GRACE=10"), "{m}");
        let m = message(&[("UNLATCH_MIGRATE_TIMEOUT", "0s")]);
        assert!(m.contains("above zero"), "{m}");
    }

    #[test]
    fn huge_durations_are_refused_not_a_panic() {
        // fuzz/duration's crash: humantime's own parser panics on this.
        let crash = "2s18446744073709551610.1s1.1s01.1s01.7s00.1s0.1s1.1s55.7s0.1ss0.7s0.1s0.1s";
        let m = message(&[("UNLATCH_LOCK_TTL", crash)]);
        assert!(m.contains("numbers of at most 11 digits"), "{m}");
        let most = "99999999999y99999999999y99999999999y99999999999y99999999999y999s";
        assert_eq!(most.len(), 64);
        assert!(parse_duration("UNLATCH_LOCK_TTL", most).is_ok());
    }

    #[test]
    fn empty_value_counts_as_unset() {
        let c = config(&[("UNLATCH_LOCK_TTL", ""), ("UNLATCH_ON_STALE", "")]).unwrap();
        assert_eq!(c.lock_ttl, Duration::from_secs(900));
        assert_eq!(c.on_stale, OnStale::Clear);
    }

    #[test]
    fn rollback_needs_its_command() {
        let m = message(&[("UNLATCH_ON_STALE", "rollback")]);
        assert!(m.contains("UNLATCH_ROLLBACK_CMD"), "{m}");
        let c = config(&[
            ("UNLATCH_ON_STALE", "rollback"),
            ("UNLATCH_ROLLBACK_CMD", "knex-migrator-rollback --v '5.0'"),
        ])
        .unwrap();
        assert_eq!(
            c.on_stale,
            OnStale::Rollback(vec![
                "knex-migrator-rollback".into(),
                "--v".into(),
                "5.0".into()
            ])
        );
    }

    #[test]
    fn unused_rollback_command_is_a_warning() {
        let c = config(&[("UNLATCH_ROLLBACK_CMD", "true")]).unwrap();
        assert!(c
            .warnings
            .iter()
            .any(|w| w.contains("UNLATCH_ROLLBACK_CMD")));
    }

    #[test]
    fn unknown_choices_are_named() {
        assert!(
            message(&[("UNLATCH_ON_STALE", "nuke")]).contains("expected clear, rollback or fail")
        );
        let m = message(&[("UNLATCH_TOOL", "alembic")]);
        assert!(
            m.contains("UNLATCH_TOOL=alembic") && m.contains("knex-migrator"),
            "{m}"
        );
    }

    #[test]
    fn commands_split_like_a_shell_without_one() {
        let c = config(&[("UNLATCH_MIGRATE_CMD", r#"sh -c 'echo "a b"; exit 3'"#)]).unwrap();
        assert_eq!(
            c.migrate_cmd.unwrap(),
            ["sh", "-c", r#"echo "a b"; exit 3"#]
        );
        let m = message(&[("UNLATCH_MIGRATE_CMD", "echo 'oops")]);
        assert!(
            m.contains("UNLATCH_MIGRATE_CMD") && m.contains("unmatched quote"),
            "{m}"
        );
        assert!(message(&[("UNLATCH_MIGRATE_CMD", "   ")]).contains("found no words"));
    }

    #[test]
    fn time_zone_comes_from_override_then_tz() {
        let c = config(&[("TZ", "Europe/Berlin")]).unwrap();
        assert_eq!(c.lock_zone.iana_name(), Some("Europe/Berlin"));
        let c = config(&[
            ("TZ", "Europe/Berlin"),
            ("UNLATCH_LOCK_TIMEZONE", "America/New_York"),
        ])
        .unwrap();
        assert_eq!(c.lock_zone.iana_name(), Some("America/New_York"));
        let c = config(&[("TZ", "UTC")]).unwrap();
        assert_eq!(*c.lock_zone, TimeZone::UTC);
        assert!(config(&[("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")]).is_ok());
        assert!(
            message(&[("UNLATCH_LOCK_TIMEZONE", "Mars/Olympus")]).contains("UNLATCH_LOCK_TIMEZONE")
        );
        assert!(message(&[("TZ", "Nowhere/Land")]).starts_with("TZ=Nowhere/Land"));
    }

    #[test]
    fn database_url_precedence() {
        let c = config(&[
            ("UNLATCH_DATABASE_URL", "sqlite:///tmp/a.db"),
            ("DATABASE_URL", "postgres://u@h/d"),
        ])
        .unwrap();
        assert_eq!(c.database.unwrap().source, "UNLATCH_DATABASE_URL");
        let c = config(&[
            ("DATABASE_URL", "postgres://u@h/d"),
            ("database__client", "sqlite3"),
        ])
        .unwrap();
        assert_eq!(c.database.unwrap().source, "DATABASE_URL");
    }

    #[test]
    fn the_tools_variables_come_after_unlatchs_own_and_ghosts() {
        let liquibase = [
            (
                "LIQUIBASE_COMMAND_URL",
                "jdbc:postgresql://db:5432/app?currentSchema=x",
            ),
            ("LIQUIBASE_COMMAND_USERNAME", "svc"),
            ("LIQUIBASE_COMMAND_PASSWORD", "s3cret"),
            ("LIQUIBASE_COMMAND_DEFAULT_SCHEMA_NAME", "billing"),
            ("LIQUIBASE_DATABASE_CHANGELOG_LOCK_TABLE_NAME", "app_lock"),
        ];
        let c = config(&liquibase).unwrap();
        assert_eq!(
            c.tool_settings.get("UNLATCH_LIQUIBASE_TABLE"),
            Some("app_lock")
        );
        let target = c.database.unwrap();
        assert_eq!(target.source, "LIQUIBASE_COMMAND_URL");
        assert_eq!(target.schema.as_deref(), Some("billing"));
        assert_eq!(target.password(), Some("s3cret"));
        assert!(!target.redacted.contains("s3cret"), "{}", target.redacted);
        let mut with_url = liquibase.to_vec();
        with_url.push(("DATABASE_URL", "postgres://u@h/d"));
        assert_eq!(
            config(&with_url).unwrap().database.unwrap().source,
            "DATABASE_URL"
        );

        let flyway = [
            ("FLYWAY_URL", "jdbc:postgresql://db/app"),
            ("FLYWAY_SCHEMAS", " Tenant ,other"),
            ("FLYWAY_TABLE", "history"),
        ];
        let c = config(&flyway).unwrap();
        assert_eq!(c.tool_settings.get("UNLATCH_FLYWAY_TABLE"), Some("history"));
        // Flyway quotes the name: its case is kept.
        assert_eq!(c.database.unwrap().schema.as_deref(), Some("\"Tenant\""));

        let mut both = liquibase.to_vec();
        both.extend(flyway);
        assert!(message(&both).contains("UNLATCH_TOOL"));
        both.push(("UNLATCH_TOOL", "flyway"));
        assert_eq!(
            config(&both).unwrap().database.unwrap().source,
            "FLYWAY_URL"
        );
        assert!(message(&[("FLYWAY_URL", "postgres://db/app")]).starts_with("FLYWAY_URL="));
        assert!(message(&[
            ("FLYWAY_URL", "jdbc:postgresql://db/app"),
            ("FLYWAY_TABLE", "a b")
        ])
        .starts_with("FLYWAY_TABLE=a b: expected a table name"));
    }

    #[test]
    fn modes_targets_and_identities() {
        let c = config(&[]).unwrap();
        assert_eq!((c.mode, c.signal_target), (Mode::Auto, SignalTarget::Child));
        assert!(c.run_as.is_none() && c.migrate_run_as.is_none());
        let c = config(&[
            ("UNLATCH_MODE", "supervise"),
            ("UNLATCH_SIGNAL_TARGET", "group"),
            ("UNLATCH_RUN_AS", "nobody"),
        ])
        .unwrap();
        assert_eq!(
            (c.mode, c.signal_target),
            (Mode::Supervise, SignalTarget::Group)
        );
        assert_eq!(
            c.migrate_run_as, c.run_as,
            "the migrate user defaults to UNLATCH_RUN_AS"
        );
        let c = config(&[
            ("UNLATCH_RUN_AS", "root"),
            ("UNLATCH_MIGRATE_RUN_AS", "nobody"),
        ])
        .unwrap();
        assert_eq!(c.migrate_run_as.unwrap().spec, "nobody");
        assert!(message(&[("UNLATCH_MODE", "fork")])
            .starts_with("UNLATCH_MODE=fork: expected auto, supervise or exec"));
        assert!(message(&[("UNLATCH_SIGNAL_TARGET", "all")]).contains("expected child or group"));
        assert!(message(&[("UNLATCH_MIGRATE_RUN_AS", "ghost-user-x")])
            .starts_with("UNLATCH_MIGRATE_RUN_AS=ghost-user-x"));
    }

    #[test]
    fn hooks_and_backups() {
        let c = config(&[]).unwrap();
        assert_eq!(
            (c.hook_timeout, c.hook_failure),
            (Duration::from_secs(300), HookFailure::Stop)
        );
        assert!(!c.sqlite_backup);
        assert_eq!(c.sqlite_backup_keep, 3);
        let m = message(&[("UNLATCH_HOOKS_DIR", "/etc/passwd")]);
        assert!(
            m.contains("UNLATCH_HOOKS_DIR=/etc/passwd: it is not a folder"),
            "{m}"
        );
        let m = message(&[("UNLATCH_HOOKS_DIR", "/no/such/dir")]);
        assert!(m.contains("it does not exist"), "{m}");
        assert!(message(&[("UNLATCH_HOOK_FAILURE", "ignore")]).contains("expected stop or warn"));
        assert!(message(&[("UNLATCH_SQLITE_BACKUP", "yes")]).contains("UNLATCH_SQLITE_BACKUP=yes"));
        assert!(message(&[("UNLATCH_SQLITE_BACKUP_KEEP", "0")]).contains("at least 1"));
    }

    #[test]
    fn dirty_policy_and_table_names() {
        let c = config(&[]).unwrap();
        assert_eq!(c.on_dirty, OnDirty::Fail);
        assert_eq!(c.tool_settings, ToolSettings::default());
        let c = config(&[
            ("UNLATCH_ON_DIRTY", "retry"),
            ("UNLATCH_KNEX_TABLE", "my_migrations"),
        ])
        .unwrap();
        assert_eq!(
            (c.on_dirty, c.tool_settings.get("UNLATCH_KNEX_TABLE")),
            (OnDirty::Retry, Some("my_migrations"))
        );
        assert!(message(&[("UNLATCH_ON_DIRTY", "force")]).contains("expected fail or retry"));
        let m = message(&[("UNLATCH_FLYWAY_TABLE", "x; DROP TABLE y")]);
        assert!(
            m.starts_with("UNLATCH_FLYWAY_TABLE=x; DROP TABLE y: expected a table name"),
            "{m}"
        );
        assert!(message(&[("UNLATCH_GOLANG_MIGRATE_PATH", "/no/such")])
            .contains("UNLATCH_GOLANG_MIGRATE_PATH"));
    }

    #[test]
    fn one_way_to_migrate() {
        assert!(config(&[("UNLATCH_MIGRATIONS_DIR", "/")])
            .unwrap()
            .migrations_dir
            .is_some());
        let m = message(&[
            ("UNLATCH_MIGRATIONS_DIR", "/"),
            ("UNLATCH_MIGRATE_CMD", "true"),
        ]);
        assert!(m.contains("both set"), "{m}");
        assert!(message(&[("UNLATCH_MIGRATIONS_DIR", "/etc/passwd")]).contains("expected a folder"));
    }

    #[test]
    fn log_settings() {
        let l = Logging::from_env(&env(&[
            ("UNLATCH_LOG", "warn"),
            ("UNLATCH_LOG_FORMAT", "json"),
        ]))
        .unwrap();
        assert_eq!(l.level, log::LevelFilter::Warn);
        assert_eq!(l.format, LogFormat::Json);
        let e = Logging::from_env(&env(&[("UNLATCH_LOG", "loud")])).unwrap_err();
        assert!(e.message.starts_with("UNLATCH_LOG=loud"));
    }

    #[test]
    fn non_utf8_value_names_variable() {
        use std::os::unix::ffi::OsStringExt;
        let err = Env::capture([(
            OsString::from("UNLATCH_LOCK_TTL"),
            OsString::from_vec(vec![0xff, b'm']),
        )])
        .unwrap_err();
        assert_eq!(
            err.message,
            "UNLATCH_LOCK_TTL is not valid UTF-8; expected a UTF-8 value"
        );
    }

    #[test]
    fn every_variable_read_is_a_known_one() {
        let c = config(&[
            ("UNLATCH_DATABASE_URL", "sqlite:///tmp/x.db"),
            ("UNLATCH_WAIT_TIMEOUT", "1s"),
            ("UNLATCH_TOOL", "auto"),
            ("UNLATCH_LOCK_TTL", "1s"),
            ("UNLATCH_LOCK_WAIT", "1s"),
            ("UNLATCH_LOCK_TIMEZONE", "UTC"),
            ("UNLATCH_ON_STALE", "rollback"),
            ("UNLATCH_ROLLBACK_CMD", "true"),
            ("UNLATCH_MIGRATE_CMD", "true"),
            ("UNLATCH_MIGRATE_TIMEOUT", "1s"),
            ("UNLATCH_KILL_GRACE", "1s"),
            ("UNLATCH_MODE", "exec"),
            ("UNLATCH_SIGNAL_TARGET", "group"),
            ("UNLATCH_RUN_AS", "root"),
            ("UNLATCH_MIGRATE_RUN_AS", "root"),
            ("UNLATCH_ON_DIRTY", "retry"),
            ("UNLATCH_TERMINATE_STALE_SESSIONS", "1"),
            ("UNLATCH_KNEX_TABLE", "migrations_knex"),
            ("UNLATCH_LIQUIBASE_TABLE", "changelog_lock"),
            ("UNLATCH_GOLANG_MIGRATE_TABLE", "versions"),
            ("UNLATCH_GOLANG_MIGRATE_PATH", "/"),
            ("UNLATCH_FLYWAY_TABLE", "history"),
            ("UNLATCH_HOOKS_DIR", "/"),
            ("UNLATCH_HOOK_TIMEOUT", "1s"),
            ("UNLATCH_HOOK_FAILURE", "warn"),
            ("UNLATCH_SQLITE_BACKUP", "1"),
            ("UNLATCH_SQLITE_BACKUP_KEEP", "2"),
            ("UNLATCH_LOG", "info"),
            ("UNLATCH_LOG_FORMAT", "text"),
            ("UNLATCH_TERMINATION_LOG", "/tmp/termination-log"),
        ])
        .unwrap();
        assert_eq!(c.warnings, Vec::<String>::new());
    }

    #[test]
    fn unknown_unlatch_variable_is_a_warning() {
        let c = config(&[("UNLATCH_LOCK_TTLL", "1m"), ("UNLATCH_TEST_MYSQL_URL", "x")]).unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].starts_with("UNLATCH_LOCK_TTLL is not a variable"));
    }
}
