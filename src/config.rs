//! Configuration: every setting comes from the environment and is checked
//! here, in full, before anything touches the database.
//!
//! One reader. envy + serde take the `UNLATCH_*` variables as text (`Vars`);
//! `setting` then checks each with its kind (a duration, a choice, a flag,
//! a command, a folder...), and every refusal reads `NAME=value: expected
//! ...`. Typed fields straight from envy were turned down: for string, enum
//! and custom fields envy's errors name no variable. Choices are the stages'
//! own enums, read by serde, trimmed and in any case. Defaults live in
//! [`VARIABLES`] alone: `--help` prints it, a test holds the README's table
//! to it, and an unset variable is read from its default there.
//!
//! May touch: the process environment (through [`Env`]); what an app
//! profile reads ([`apps`]); the zone file `TZ` names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use jiff::tz::TimeZone;
use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::Deserialize;

use crate::apps::{self, Chosen};
use crate::clock::LockZone;
use crate::db::Target;
pub use crate::env::Env;
use crate::exit::{Code, Failure};
use crate::heal::OnStale;
use crate::logging::{self, LogFormat};
use crate::tools::{ToolChoice, ToolSettings, Value};
use crate::user::RunAs;
use crate::{backup, heal, hooks, launch, proof, tools};

/// Every variable unlatch reads: name, default, meaning. `--help` prints
/// this table, the README's is checked against it, and an unset variable
/// takes its default from here.
#[rustfmt::skip]
pub const VARIABLES: &[(&str, &str, &str)] = &[
    ("UNLATCH_DATABASE_URL", "(unset)", "database URL: sqlite:, mysql:, mariadb:, postgres:, postgresql:, Prisma's file:, jdbc:"),
    ("DATABASE_URL", "(unset)", "used when UNLATCH_DATABASE_URL is unset"),
    ("UNLATCH_APP", "auto", "app profile: auto (found from the app's own variables), none, ghost, nginx-proxy-manager, prisma, harbor or rundeck; gives the database, the tool and its table"),
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
    ("UNLATCH_PROOFS", "1", "1: heal a live lock at once when its holder is provably gone (SQLite lease, PostgreSQL or MySQL session list); 0: live until the TTL"),
    ("UNLATCH_PROOF_SETTLE", "250ms", "how long the session list must stay empty of other clients for a proof on PostgreSQL or MySQL (measured: pool gaps up to 70ms)"),
    ("UNLATCH_POOL_IDLE_TIMEOUT", "10s", "at or below the idle timeout of any connection pool that may hold the lock (node-postgres 10s, knex/tarn 30s): a proof needs the lock taken, or seen free, less than this ago"),
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
/// this table, and a test holds the README's to it.
/// Made once: every setting's default is looked up here.
pub fn variables() -> &'static [(&'static str, &'static str, &'static str)] {
    static ALL: LazyLock<Vec<(&str, &str, &str)>> = LazyLock::new(|| {
        let mut all = VARIABLES.to_vec();
        let at = all
            .iter()
            .position(|(name, _, _)| *name == "UNLATCH_WAIT_TIMEOUT");
        let at = at.map_or(all.len(), |i| i + 1);
        all.splice(at..at, tools::variables());
        all
    });
    &ALL
}

/// Kubernetes' default `terminationMessagePath`.
pub const TERMINATION_LOG: &str = "/dev/termination-log";

/// Where a failed start writes its reason: `UNLATCH_TERMINATION_LOG`, read
/// apart from the rest, since a configuration error is reported there too.
pub fn termination_log(env: &Env) -> PathBuf {
    let given = env.get("UNLATCH_TERMINATION_LOG");
    PathBuf::from(given.map_or(TERMINATION_LOG, str::trim))
}

/// The whole, validated configuration: each stage's own settings, and
/// what the pipeline itself reads.
#[derive(Debug)]
pub struct Config {
    pub database: Option<Target>,
    pub wait_timeout: Duration,
    pub tool: ToolChoice,
    pub tool_settings: ToolSettings,
    pub heal: heal::Settings,
    pub hooks: hooks::Settings,
    pub migrate_cmd: Option<Vec<String>>,
    pub migrations_dir: Option<PathBuf>,
    pub launch: launch::Settings,
    /// Copy a SQLite database before migrating (it is always copied before a heal).
    pub sqlite_backup: bool,
    /// The app profile's log line, when one is in use.
    pub app_profile: Option<String>,
    /// Harmless oddities (an unknown `UNLATCH_*` name, a setting that has no
    /// effect), logged once logging is up.
    pub warnings: Vec<String>,
}

/// The `UNLATCH_*` variables as envy reads them: text by name, each then
/// checked by [`Vars::setting`] with its kind. The one reader: the tools'
/// variables come from here too.
struct Vars(BTreeMap<String, String>);

impl Vars {
    fn read(env: &Env) -> Result<Vars, Failure> {
        // envy lowercases names: `UNLATCH_Lock_Ttl`, warned about as
        // unknown, must not be read as `UNLATCH_LOCK_TTL`.
        let vars = env
            .with_prefix("UNLATCH_")
            .filter(|(k, _)| !k.bytes().any(|b| b.is_ascii_lowercase()));
        envy::prefixed("UNLATCH_")
            .from_iter(vars.map(|(k, v)| (k.to_owned(), v.to_owned())))
            .map(Vars)
            .map_err(|e| config_error(format!("could not read the UNLATCH_* variables: {e}")))
    }

    /// The value of `name` (`UNLATCH_LOCK_TTL`), as given.
    fn get(&self, name: &str) -> Option<&str> {
        debug_assert!(
            variables().iter().any(|(known, _, _)| *known == name),
            "{name} is not in VARIABLES"
        );
        let key = name.strip_prefix("UNLATCH_").unwrap_or(name);
        self.0.get(&key.to_ascii_lowercase()).map(String::as_str)
    }

    /// [`setting`] of `name`'s value here.
    fn setting<T>(
        &self,
        name: &str,
        kind: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, Failure> {
        setting(name, self.get(name), kind)
    }

    /// [`setting`] for a variable with no default: `None` when unset.
    fn optional<T>(
        &self,
        name: &str,
        kind: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, Failure> {
        let value = self.get(name);
        value
            .map(|value| setting(name, Some(value), kind))
            .transpose()
    }
}

fn config_error(message: String) -> Failure {
    Failure::new(Code::Config, message)
}

/// How to log; read before the rest, so that configuration errors are
/// logged in the format the user asked for.
pub fn logging(env: &Env) -> Result<logging::Settings, Failure> {
    let vars = Vars::read(env)?;
    Ok(logging::Settings {
        // log's own names, in any case (trace too: harmless, and undocumented),
        // and `warning`, as Python's logging and syslog spell it.
        level: vars.setting("UNLATCH_LOG", |value| {
            let value = if value.eq_ignore_ascii_case("warning") {
                "warn"
            } else {
                value
            };
            value
                .parse()
                .map_err(|_| "expected error, warn, info, debug or off".to_owned())
        })?,
        format: vars.setting("UNLATCH_LOG_FORMAT", choice::<LogFormat>)?,
    })
}

impl Config {
    /// Reads and checks everything. `cwd` is where Ghost's config file is
    /// looked for.
    pub fn from_env(env: &Env, cwd: &Path) -> Result<Config, Failure> {
        let vars = Vars::read(env)?;
        let mut warnings = unknown_variables(env);

        let lock_ttl = vars.setting("UNLATCH_LOCK_TTL", duration)?;
        let rollback_cmd = vars.optional("UNLATCH_ROLLBACK_CMD", command)?;
        let on_stale = match vars.setting("UNLATCH_ON_STALE", choice)? {
            Stale::Clear => OnStale::Clear,
            Stale::Fail => OnStale::Fail,
            Stale::Rollback => OnStale::Rollback(rollback_cmd.clone().ok_or_else(|| {
                config_error(
                    "UNLATCH_ON_STALE=rollback needs UNLATCH_ROLLBACK_CMD, the command that rolls back \
                     (e.g. knex-migrator-rollback --force --v 5.0 --mgpath current)"
                        .into(),
                )
            })?),
        };
        if rollback_cmd.is_some() && !matches!(on_stale, OnStale::Rollback(_)) {
            warnings.push(
                "UNLATCH_ROLLBACK_CMD is set but only used with UNLATCH_ON_STALE=rollback; ignoring it"
                    .into(),
            );
        }
        let run_as = resolve_run_as("UNLATCH_RUN_AS", &vars)?;
        let migrate_run_as = match vars.get("UNLATCH_MIGRATE_RUN_AS") {
            Some(_) => resolve_run_as("UNLATCH_MIGRATE_RUN_AS", &vars)?,
            None => run_as.clone(),
        };
        let kill_grace = vars.setting("UNLATCH_KILL_GRACE", duration)?;
        let migrate_cmd = vars.optional("UNLATCH_MIGRATE_CMD", command)?;
        let migrations_dir = vars.optional(
            "UNLATCH_MIGRATIONS_DIR",
            folder("a folder of .sql migrations"),
        )?;
        if migrate_cmd.is_some() && migrations_dir.is_some() {
            return Err(config_error(
                "UNLATCH_MIGRATIONS_DIR and UNLATCH_MIGRATE_CMD are both set; expected one way to migrate".into(),
            ));
        }
        let (lock_zone, zone_warning) =
            lock_zone(vars.get("UNLATCH_LOCK_TIMEZONE"), env.get("TZ"))?;
        warnings.extend(zone_warning);

        let tool = vars.setting("UNLATCH_TOOL", tools::choice)?;
        let unlatch_url = vars.get("UNLATCH_DATABASE_URL");
        let app = apps::choose(
            env,
            vars.setting("UNLATCH_APP", apps::choice)?,
            unlatch_url.is_some(),
            cwd,
        )?;
        // The app's tool, unless UNLATCH_TOOL names one.
        let tool = match (tool, &app) {
            (ToolChoice::Auto, Some(chosen)) => ToolChoice::Named(chosen.app.tool),
            _ => tool,
        };
        let app_folder = match &app {
            Some(chosen) => (chosen.app.migrations)(env, cwd)?,
            None => None,
        };
        let mut tool_settings = ToolSettings::read(|entry, variable| match variable.value {
            Value::Table => vars.optional(variable.name, tools::table_name),
            Value::Folder => {
                let what = format!("the folder of {}'s migrations", entry.name);
                let path = vars.optional(variable.name, folder(&what))?;
                let app_folder = app_folder
                    .as_ref()
                    .filter(|_| app.as_ref().is_some_and(|c| c.app.tool == entry.name));
                Ok(path
                    .or_else(|| app_folder.cloned())
                    .map(|path| path.display().to_string()))
            }
        })?;
        let (database, from) = database(env, unlatch_url, app.as_ref(), tool, cwd)?;
        if let Some(target) = &database {
            warnings.extend(target.warnings.iter().cloned());
            tool_settings.take_tables(&target.tables);
        }
        let app_profile = app.as_ref().map(|chosen| {
            tool_settings.take_tables(&[(chosen.app.tool, chosen.app.table.to_owned())]);
            let tool = match tool {
                ToolChoice::Named(name) => name,
                ToolChoice::Auto => "auto",
            };
            // The table that tool looks at: a table given to unlatch wins.
            let table = tools::REGISTRY
                .iter()
                .find(|entry| entry.name == tool)
                .and_then(|entry| entry.variables.iter().find(|v| v.value == Value::Table))
                .and_then(|variable| tool_settings.get(variable.name))
                .unwrap_or(chosen.app.table);
            apps::log_line(chosen, from.as_deref().unwrap_or("nowhere"), tool, table)
        });
        let lock_wait = vars.optional("UNLATCH_LOCK_WAIT", duration)?;
        Ok(Config {
            sqlite_backup: vars.setting("UNLATCH_SQLITE_BACKUP", flag)?,
            heal: heal::Settings {
                lock_ttl,
                lock_wait: lock_wait.unwrap_or(lock_ttl),
                lock_zone,
                on_stale,
                on_dirty: vars.setting("UNLATCH_ON_DIRTY", choice)?,
                terminate_stale_sessions: vars.setting("UNLATCH_TERMINATE_STALE_SESSIONS", flag)?,
                migrate_timeout: vars.setting("UNLATCH_MIGRATE_TIMEOUT", above_zero)?,
                kill_grace,
                migrate_run_as: migrate_run_as.clone(),
                backup: backup::Settings {
                    sqlite_file: database.as_ref().and_then(|t| t.sqlite_file.clone()),
                    sqlite_backup_keep: vars.setting("UNLATCH_SQLITE_BACKUP_KEEP", copies)?,
                },
                proof: proof::Settings {
                    proofs: vars.setting("UNLATCH_PROOFS", flag)?,
                    settle: vars.setting("UNLATCH_PROOF_SETTLE", duration)?,
                    pool_idle: vars.setting("UNLATCH_POOL_IDLE_TIMEOUT", above_zero)?,
                },
            },
            hooks: hooks::Settings {
                hooks_dir: vars
                    .optional("UNLATCH_HOOKS_DIR", folder("a folder of executable hooks"))?
                    .or_else(|| Some(PathBuf::from("/entrypoint.d")).filter(|dir| dir.is_dir())),
                hook_timeout: vars.setting("UNLATCH_HOOK_TIMEOUT", above_zero)?,
                hook_failure: vars.setting("UNLATCH_HOOK_FAILURE", choice)?,
                migrate_run_as,
                kill_grace,
            },
            launch: launch::Settings {
                mode: vars.setting("UNLATCH_MODE", choice)?,
                signal_target: vars.setting("UNLATCH_SIGNAL_TARGET", choice)?,
                run_as,
                kill_grace,
            },
            database,
            wait_timeout: vars.setting("UNLATCH_WAIT_TIMEOUT", duration)?,
            tool,
            tool_settings,
            migrate_cmd,
            migrations_dir,
            app_profile,
            warnings,
        })
    }
}

/// `UNLATCH_ON_STALE` as written; `rollback` takes its command from
/// `UNLATCH_ROLLBACK_CMD`.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Stale {
    Clear,
    Rollback,
    Fail,
}

/// Reads `name` from `value`, else from its default in [`VARIABLES`], with
/// `kind`: the one way every variable is read. Surrounding whitespace (a
/// secret file's newline) is dropped; a refusal names the variable, the
/// value and what was expected.
fn setting<T>(
    name: &str,
    value: Option<&str>,
    kind: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, Failure> {
    let value = value.unwrap_or_else(|| default_of(name)).trim();
    kind(value).map_err(|expected| config_error(format!("{name}={value}: {expected}")))
}

fn default_of(name: &str) -> &'static str {
    variables()
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or("", |(_, default, _)| default)
}

fn unknown_variables(env: &Env) -> Vec<String> {
    let known: Vec<&str> = variables().iter().map(|(name, _, _)| *name).collect();
    env.with_prefix("UNLATCH_")
        // UNLATCH_TEST_* belong to the test suite, not to unlatch.
        .filter(|(k, _)| !known.contains(k) && !k.starts_with("UNLATCH_TEST_"))
        .map(|(k, _)| {
            format!("{k} is not a variable unlatch knows; ignoring it (see unlatch --help)")
        })
        .collect()
}

/// The database to work on, from the first source that names one, and
/// what named it (for the app profile's line).
fn database(
    env: &Env,
    unlatch_url: Option<&str>,
    app: Option<&Chosen>,
    tool: ToolChoice,
    cwd: &Path,
) -> Result<(Option<Target>, Option<String>), Failure> {
    let named = |name: &str| Some(name.to_owned());
    if let Some(url) = unlatch_url {
        let target = Target::read(url, "UNLATCH_DATABASE_URL", env, tool)?;
        return Ok((Some(target), named("UNLATCH_DATABASE_URL")));
    }
    if let Some(chosen) = app {
        let found = (chosen.app.database)(env, cwd)?;
        let mut target = Target::read(&found.url, &found.source, env, tool)?;
        target.warnings.extend(found.warnings);
        return Ok((Some(target), Some(found.from)));
    }
    if let Some(url) = env.get("DATABASE_URL") {
        let target = Target::read(url, "DATABASE_URL", env, tool)?;
        return Ok((Some(target), named("DATABASE_URL")));
    }
    let target = tool_variables(env, tool)?;
    let from = target.as_ref().map(|t| t.source.clone());
    Ok((target, from))
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
        tool: tools::liquibase::ENTRY.name,
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
        tool: tools::flyway::ENTRY.name,
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
fn tool_variables(env: &Env, tool: ToolChoice) -> Result<Option<Target>, Failure> {
    let set: Vec<&ToolVariables> = TOOL_VARIABLES
        .iter()
        .filter(|t| env.get(t.url).is_some())
        .collect();
    let chosen = match set.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        _ => match set.iter().find(|t| tool == ToolChoice::Named(t.tool)) {
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
    let control = |name: &str| {
        env.get(name)
            .is_some_and(|v| v.chars().any(char::is_control))
    };
    let mut names = chosen.schemas.iter().chain(&chosen.schema_list);
    if let Some(name) = names.find(|name| control(name)) {
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
    if control(chosen.user) {
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
    let mut target = Target::read(&composed, chosen.url, env, tool)?;
    if let Some(table) = env.get(chosen.table) {
        let table = setting(chosen.table, Some(table), tools::table_name)?;
        target.tables.push((chosen.tool, table));
    }
    log::debug!(
        "database from {}{}",
        chosen.url,
        schema.map_or(String::new(), |s| format!(", tables in schema {s}"))
    );
    Ok(Some(target))
}

fn resolve_run_as(name: &str, vars: &Vars) -> Result<Option<RunAs>, Failure> {
    let spec = vars.get(name);
    spec.map(|spec| RunAs::resolve(name, spec.trim()))
        .transpose()
}

// The value kinds: each turns a variable's trimmed text into its setting,
// or says what it expected instead.

const LIKE: &str = "like 90s, 10m or 1h30m";

/// `90s`, `10m`, `1h30m`, `1h 30m`...; not in months or years, which no
/// wait or time limit means (humantime reads `15M` as 15 months).
pub fn duration(value: &str) -> Result<Duration, String> {
    // humantime 2.4 panics instead of erring when a sum reaches u64::MAX
    // seconds (found by fuzz/duration). At most 64 bytes with numbers of at
    // most 11 digits keeps every sum below that: 5 x 10^11 years < 2^64 s.
    let longest_number = value
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    if value.len() > 64 || longest_number > 11 {
        return Err(format!(
            "expected a duration {LIKE}, at most 64 characters with numbers of at most 11 digits"
        ));
    }
    let units = value.split(|c: char| !c.is_ascii_alphabetic());
    if let Some(unit) = units
        .into_iter()
        .find(|u| matches!(*u, "M" | "month" | "months" | "y" | "year" | "years"))
    {
        return Err(format!(
            "expected a duration {LIKE}; {unit} reads as months or years, surely not meant here \
             (minutes are m)"
        ));
    }
    humantime::parse_duration(value).map_err(|e| format!("expected a duration {LIKE} ({e})"))
}

/// A duration where zero would make every run fail at once (a time limit).
fn above_zero(value: &str) -> Result<Duration, String> {
    match duration(value)? {
        d if d.is_zero() => Err(format!("expected a duration above zero, {LIKE}")),
        d => Ok(d),
    }
}

/// One of an enum's names, in any case: the stages' own choices
/// (`OnDirty`, `Mode`...), deserialized by serde.
fn choice<T: DeserializeOwned>(value: &str) -> Result<T, String> {
    let lower: &str = &value.to_ascii_lowercase();
    T::deserialize(lower.into_deserializer()).map_err(|Expected(why)| why)
}

/// serde's error for [`choice`], worded as unlatch's messages are.
#[derive(Debug)]
struct Expected(String);

impl serde::de::Error for Expected {
    fn custom<T: std::fmt::Display>(why: T) -> Expected {
        Expected(why.to_string())
    }

    fn unknown_variant(_: &str, names: &'static [&'static str]) -> Expected {
        let (last, rest) = names.split_last().expect("an enum has variants");
        Expected(match rest {
            [] => format!("expected {last}"),
            _ => format!("expected {} or {last}", rest.join(", ")),
        })
    }
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Expected {}

/// `1`/`true` or `0`/`false`.
fn flag(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "0" | "false" => Ok(false),
        "1" | "true" => Ok(true),
        _ => Err("expected 1 or 0".into()),
    }
}

/// How many backup copies to keep.
fn copies(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number of copies, at least 1".into()),
    }
}

/// Splits a command into words with POSIX shell quoting; no shell runs it.
fn command(value: &str) -> Result<Vec<String>, String> {
    let words = shell_words::split(value)
        .map_err(|_| "unmatched quote; expected words in POSIX shell quoting".to_owned())?;
    if words.is_empty() {
        return Err("expected a command, found no words".into());
    }
    Ok(words)
}

/// A folder that exists; `what` says what it should hold.
fn folder(what: &str) -> impl Fn(&str) -> Result<PathBuf, String> + '_ {
    move |value| {
        let path = PathBuf::from(value);
        match (path.is_dir(), path.exists()) {
            (true, _) => Ok(path),
            (false, true) => Err(format!("it is not a folder; expected {what}")),
            (false, false) => Err(format!("it does not exist; expected {what}")),
        }
    }
}

/// The zone knex-migrator wrote its naive timestamps in: the container's.
/// A zone file `TZ` names that cannot be read leaves UTC, as glibc does,
/// with a warning.
fn lock_zone(
    unlatch_tz: Option<&str>,
    tz: Option<&str>,
) -> Result<(LockZone, Option<String>), Failure> {
    if unlatch_tz.is_some() {
        let zone = setting("UNLATCH_LOCK_TIMEZONE", unlatch_tz, |name| {
            zone_named(name)
                .ok_or_else(|| "expected a time zone name like UTC or Europe/Berlin".into())
        })?;
        return Ok((LockZone::fixed(zone), None));
    }
    // glibc and Node read `:name` as `name`, `:` alone as no TZ, and a name
    // starting with `/` as the path of a TZif file.
    let Some(value) = tz.filter(|tz| *tz != ":") else {
        return Ok((LockZone::system(), None));
    };
    let name = value.strip_prefix(':').unwrap_or(value);
    if name.starts_with('/') {
        return Ok(match zone_file(name) {
            Ok(zone) => (LockZone::fixed(zone), None),
            Err(e) => (
                LockZone::fixed(TimeZone::UTC),
                Some(format!(
                    "TZ={value}: cannot read that zone file ({e}); using UTC, as glibc does \
                     (set UNLATCH_LOCK_TIMEZONE to override)"
                )),
            ),
        });
    }
    let zone = setting("TZ", tz, |value| {
        let name = value.strip_prefix(':').unwrap_or(value);
        zone_named(name).or_else(|| TimeZone::posix(name).ok()).ok_or_else(|| {
            "expected a time zone name like UTC or Europe/Berlin, a POSIX TZ string or a zone file's path \
             (set UNLATCH_LOCK_TIMEZONE to override)"
                .into()
        })
    })?;
    Ok((LockZone::fixed(zone), None))
}

fn zone_named(name: &str) -> Option<TimeZone> {
    if name.eq_ignore_ascii_case("UTC") {
        return Some(TimeZone::UTC);
    }
    TimeZone::get(name).ok()
}

/// A TZif file, named after the zone its path, or the link's target
/// (`/etc/localtime`), ends in: `.../zoneinfo/Europe/Berlin`.
fn zone_file(path: &str) -> Result<TimeZone, String> {
    let data = std::fs::read(path).map_err(|e| e.to_string())?;
    let real = std::fs::canonicalize(path).map_or(path.to_owned(), |p| p.display().to_string());
    let name = real
        .rsplit_once("zoneinfo/")
        .map_or(real.as_str(), |(_, name)| name);
    TimeZone::tzif(name, &data).map_err(|e| e.to_string())
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
    use crate::heal::OnDirty;
    use crate::hooks::HookFailure;
    use crate::launch::Mode;
    use crate::supervise::SignalTarget;

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
    fn nothing_runs_that_was_not_configured() {
        let c = config(&[]).unwrap();
        assert!(c.database.is_none());
        assert!(c.migrate_cmd.is_none());
        assert!(c.launch.run_as.is_none() && c.heal.migrate_run_as.is_none());
        assert!(!c.sqlite_backup);
    }

    #[test]
    fn unset_durations_take_their_defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.wait_timeout, Duration::from_secs(60));
        assert_eq!(c.heal.lock_ttl, Duration::from_secs(900));
        assert_eq!(c.heal.lock_wait, c.heal.lock_ttl);
        assert_eq!(c.heal.migrate_timeout, Duration::from_secs(600));
        assert_eq!(c.heal.kill_grace, Duration::from_secs(10));
        // Each stage's copy of a shared setting is the same.
        assert_eq!(
            (c.hooks.kill_grace, c.launch.kill_grace),
            (c.heal.kill_grace, c.heal.kill_grace)
        );
        assert_eq!(c.hooks.hook_timeout, Duration::from_secs(300));
    }

    #[test]
    fn unset_choices_take_their_defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.heal.on_stale, OnStale::Clear);
        assert_eq!(c.heal.on_dirty, OnDirty::Fail);
        assert_eq!(c.tool, ToolChoice::Auto);
        assert_eq!(
            (c.launch.mode, c.launch.signal_target),
            (Mode::Auto, SignalTarget::Child)
        );
        assert_eq!(c.hooks.hook_failure, HookFailure::Stop);
        assert_eq!(c.heal.backup.sqlite_backup_keep, 3);
        assert_eq!(c.tool_settings, ToolSettings::default());
    }

    #[test]
    fn every_default_in_the_table_is_one_its_variable_accepts() {
        // Unset variables are read from these defaults: each must parse,
        // and say the same as the code's own constants.
        assert_eq!(
            duration(default_of("UNLATCH_LOCK_TTL")),
            Ok(Duration::from_secs(900))
        );
        assert_eq!(default_of("UNLATCH_NO_SUCH_VARIABLE"), "");
    }

    /// Variables and their values.
    type Vars = &'static [(&'static str, &'static str)];

    /// What a configuration read must say.
    type Holds = fn(&Config) -> bool;

    /// Each refusal, named after the behaviour it shows: the variables
    /// set, then a part of its message (`^`: its start). That a bad value
    /// is named, refused with 64 and harmless is `tests/bad_input.rs`'s.
    #[rustfmt::skip]
    const REFUSALS: &[(&str, Vars, &str)] = &[
        ("a bad duration names the form", &[("UNLATCH_LOCK_TTL", "soon")], "^UNLATCH_LOCK_TTL=soon: expected a duration like 90s"),
        ("a duration needs its unit", &[("UNLATCH_KILL_GRACE", "10")], "UNLATCH_KILL_GRACE=10"),
        // humantime reads M as months: 15M would be a TTL of 15 months.
        ("months are surely mistaken", &[("UNLATCH_LOCK_TTL", "15M")], "^UNLATCH_LOCK_TTL=15M: expected a duration like 90s"),
        ("months are surely mistaken, said why", &[("UNLATCH_LOCK_TTL", "15M")], "M reads as months or years"),
        // fuzz/duration's crash: humantime's own parser panics on this.
        ("a huge duration, not a panic", &[("UNLATCH_LOCK_TTL", "2s18446744073709551610.1s1.1s01.1s01.7s00.1s0.1s1.1s55.7s0.1ss0.7s0.1s0.1s")], "numbers of at most 11 digits"),
        ("an unknown stale choice", &[("UNLATCH_ON_STALE", "nuke")], "expected clear, rollback or fail"),
        ("an unknown tool, with the known ones", &[("UNLATCH_TOOL", "alembic")], "knex-migrator"),
        ("an unknown mode", &[("UNLATCH_MODE", "fork")], "^UNLATCH_MODE=fork: expected auto, supervise or exec"),
        ("an unknown signal target", &[("UNLATCH_SIGNAL_TARGET", "all")], "expected child or group"),
        ("an unknown hook failure", &[("UNLATCH_HOOK_FAILURE", "ignore")], "expected stop or warn"),
        ("an unknown dirty choice", &[("UNLATCH_ON_DIRTY", "force")], "expected fail or retry"),
        ("a count of copies", &[("UNLATCH_SQLITE_BACKUP_KEEP", "0")], "at least 1"),
        ("proofs are a flag", &[("UNLATCH_PROOFS", "yes")], "^UNLATCH_PROOFS=yes: expected 1 or 0"),
        ("a settle window is a duration", &[("UNLATCH_PROOF_SETTLE", "fast")], "^UNLATCH_PROOF_SETTLE=fast: expected a duration"),
        ("a pool's idle timeout is above zero", &[("UNLATCH_POOL_IDLE_TIMEOUT", "0s")], "^UNLATCH_POOL_IDLE_TIMEOUT=0s: expected a duration above zero"),
        ("a command with an open quote", &[("UNLATCH_MIGRATE_CMD", "echo 'oops")], "UNLATCH_MIGRATE_CMD"),
        ("a command with an open quote, said why", &[("UNLATCH_MIGRATE_CMD", "echo 'oops")], "unmatched quote"),
        ("a command of no words", &[("UNLATCH_MIGRATE_CMD", "   ")], "found no words"),
        ("an unknown zone", &[("UNLATCH_LOCK_TIMEZONE", "Mars/Olympus")], "UNLATCH_LOCK_TIMEZONE"),
        ("an unknown TZ", &[("TZ", "Nowhere/Land")], "^TZ=Nowhere/Land"),
        ("a tool's URL not JDBC", &[("FLYWAY_URL", "postgres://db/app")], "^FLYWAY_URL="),
        ("two ways to migrate", &[("UNLATCH_MIGRATIONS_DIR", "/"), ("UNLATCH_MIGRATE_CMD", "true")], "both set"),
        ("a tool's bad table", &[("FLYWAY_URL", "jdbc:postgresql://db/app"), ("FLYWAY_TABLE", "a b")], "^FLYWAY_TABLE=a b: expected a table name"),
        ("an unknown migrate user", &[("UNLATCH_MIGRATE_RUN_AS", "ghost-user-x")], "^UNLATCH_MIGRATE_RUN_AS=ghost-user-x"),
        ("a hooks folder that is a file", &[("UNLATCH_HOOKS_DIR", "/etc/passwd")], "UNLATCH_HOOKS_DIR=/etc/passwd: it is not a folder"),
        ("a hooks folder that is not there", &[("UNLATCH_HOOKS_DIR", "/no/such/dir")], "it does not exist"),
        ("a bad table name", &[("UNLATCH_FLYWAY_TABLE", "x; DROP TABLE y")], "^UNLATCH_FLYWAY_TABLE=x; DROP TABLE y: expected a table name"),
        ("a migrations path not there", &[("UNLATCH_GOLANG_MIGRATE_PATH", "/no/such")], "UNLATCH_GOLANG_MIGRATE_PATH"),
        ("a migrations folder that is a file", &[("UNLATCH_MIGRATIONS_DIR", "/etc/passwd")], "expected a folder"),
    ];

    #[test]
    fn each_refusal_names_its_variable_and_what_was_expected() {
        for (behaviour, pairs, part) in REFUSALS {
            let m = message(pairs);
            let ok = match part.strip_prefix('^') {
                Some(start) => m.starts_with(start),
                None => m.contains(part),
            };
            assert!(ok, "{behaviour}: {m:?} does not hold {part:?}");
        }
        for value in ["1y", "2 months", "1year", "3years", "1month"] {
            let m = message(&[("UNLATCH_LOCK_WAIT", value)]);
            let start = format!("UNLATCH_LOCK_WAIT={value}: ");
            assert!(m.starts_with(&start), "months or years: {m}");
        }
        for name in ["UNLATCH_MIGRATE_TIMEOUT", "UNLATCH_HOOK_TIMEOUT"] {
            for zero in ["0s", "0"] {
                let expected = format!(
                    "{name}={zero}: expected a duration above zero, like 90s, 10m or 1h30m"
                );
                assert_eq!(message(&[(name, zero)]), expected, "time limits of zero");
            }
        }
    }

    /// Variables read, and what the configuration then says, each row
    /// named after the behaviour it shows (`|_| true`: read without error).
    #[rustfmt::skip]
    const READS: &[(&str, Vars, Holds)] = &[
        ("a compound duration", &[("UNLATCH_LOCK_TTL", "1h30m")], |c| c.heal.lock_ttl == Duration::from_secs(5400)),
        ("the wait defaults to the TTL", &[("UNLATCH_LOCK_TTL", "1h30m")], |c| c.heal.lock_wait == Duration::from_secs(5400)),
        ("seconds", &[("UNLATCH_WAIT_TIMEOUT", "90s")], |c| c.wait_timeout == Duration::from_secs(90)),
        ("minutes are m", &[("UNLATCH_LOCK_TTL", "15m")], |c| c.heal.lock_ttl == Duration::from_secs(900)),
        ("days are d", &[("UNLATCH_LOCK_WAIT", "2d")], |c| c.heal.lock_wait == Duration::from_secs(2 * 86_400)),
        // Zero is meaningful where it means "at once".
        ("a TTL of zero", &[("UNLATCH_LOCK_TTL", "0s")], |c| c.heal.lock_ttl.is_zero()),
        ("a grace of zero", &[("UNLATCH_KILL_GRACE", "0s")], |c| c.heal.kill_grace.is_zero()),
        ("an empty duration counts as unset", &[("UNLATCH_LOCK_TTL", "")], |c| c.heal.lock_ttl == Duration::from_secs(900)),
        ("an empty choice counts as unset", &[("UNLATCH_ON_STALE", "")], |c| c.heal.on_stale == OnStale::Clear),
        // A secret file's trailing newline, and capitals.
        ("a choice is trimmed", &[("UNLATCH_ON_STALE", "clear\n")], |c| c.heal.on_stale == OnStale::Clear),
        ("a choice in any case", &[("UNLATCH_ON_DIRTY", " Retry")], |c| c.heal.on_dirty == OnDirty::Retry),
        ("a mode in capitals", &[("UNLATCH_MODE", "EXEC")], |c| c.launch.mode == Mode::Exec),
        ("a target with CRLF", &[("UNLATCH_SIGNAL_TARGET", "Group\r\n")], |c| c.launch.signal_target == SignalTarget::Group),
        ("a hook failure in capitals", &[("UNLATCH_HOOK_FAILURE", "WARN")], |c| c.hooks.hook_failure == HookFailure::Warn),
        ("a flag in capitals", &[("UNLATCH_SQLITE_BACKUP", "TRUE\n")], |c| c.sqlite_backup),
        ("a tool in any case", &[("UNLATCH_TOOL", "Knex-Migrator ")], |c| c.tool == ToolChoice::Named("knex-migrator")),
        ("supervise", &[("UNLATCH_MODE", "supervise")], |c| c.launch.mode == Mode::Supervise),
        ("group", &[("UNLATCH_SIGNAL_TARGET", "group")], |c| c.launch.signal_target == SignalTarget::Group),
        ("proofs on by default", &[], |c| c.heal.proof.proofs && c.heal.proof.settle == Duration::from_millis(250)),
        ("proofs off", &[("UNLATCH_PROOFS", "0")], |c| !c.heal.proof.proofs),
        ("a settle window in ms", &[("UNLATCH_PROOF_SETTLE", "400ms")], |c| c.heal.proof.settle == Duration::from_millis(400)),
        ("a pool's idle timeout of 10s by default", &[], |c| c.heal.proof.pool_idle == Duration::from_secs(10)),
        ("a pool's idle timeout in ms", &[("UNLATCH_POOL_IDLE_TIMEOUT", "400ms")], |c| c.heal.proof.pool_idle == Duration::from_millis(400)),
        ("a table name", &[("UNLATCH_KNEX_TABLE", "my_migrations")], |c| c.tool_settings.get("UNLATCH_KNEX_TABLE") == Some("my_migrations")),
        ("an unused rollback command is a warning", &[("UNLATCH_ROLLBACK_CMD", "true")], |c| c.warnings.iter().any(|w| w.contains("UNLATCH_ROLLBACK_CMD"))),
        ("a migrations folder", &[("UNLATCH_MIGRATIONS_DIR", "/")], |c| c.migrations_dir.is_some() && c.migrate_cmd.is_none()),
        ("a command split like a shell, without one", &[("UNLATCH_MIGRATE_CMD", r#"sh -c 'echo "a b"; exit 3'"#)], |c| c.migrate_cmd.as_deref() == Some(&["sh".into(), "-c".into(), r#"echo "a b"; exit 3"#.into()])),
        ("TZ by name", &[("TZ", "Europe/Berlin")], |c| c.heal.lock_zone.iana_name() == Some("Europe/Berlin")),
        ("TZ with glibc's colon", &[("TZ", ":Europe/Berlin")], |c| c.heal.lock_zone.iana_name() == Some("Europe/Berlin")),
        ("TZ=UTC", &[("TZ", "UTC")], |c| *c.heal.lock_zone == TimeZone::UTC),
        ("TZ as a POSIX rule", &[("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")], |_| true),
        ("UNLATCH_LOCK_TIMEZONE wins over TZ", &[("TZ", "Europe/Berlin"), ("UNLATCH_LOCK_TIMEZONE", "America/New_York")], |c| c.heal.lock_zone.iana_name() == Some("America/New_York")),
        ("UNLATCH_DATABASE_URL wins over DATABASE_URL", &[("UNLATCH_DATABASE_URL", "sqlite:///tmp/a.db"), ("DATABASE_URL", "postgres://u@h/d")], |c| c.database.as_ref().unwrap().source == "UNLATCH_DATABASE_URL"),
        ("DATABASE_URL wins over Ghost's", &[("DATABASE_URL", "postgres://u@h/d"), ("database__client", "sqlite3")], |c| c.database.as_ref().unwrap().source == "DATABASE_URL"),
        // App profiles: the app's tool and table unless unlatch is told otherwise.
        ("an app's variables give its database, tool and table", &[("DB_SQLITE_FILE", "/tmp/npm.sqlite")], |c| c.database.as_ref().unwrap().source == "Nginx Proxy Manager's DB_SQLITE_FILE" && c.tool == ToolChoice::Named("knex") && c.tool_settings.get("UNLATCH_KNEX_TABLE") == Some("migrations") && c.app_profile.as_deref() == Some("app profile nginx-proxy-manager (DB_SQLITE_FILE is set): database from DB_SQLITE_FILE, tool knex, table migrations")),
        ("UNLATCH_DATABASE_URL wins over a named app's database, not its tool", &[("UNLATCH_APP", "rundeck"), ("UNLATCH_DATABASE_URL", "sqlite:///tmp/a.db"), ("RUNDECK_DATABASE_URL", "jdbc:h2:mem:x")], |c| c.database.as_ref().unwrap().source == "UNLATCH_DATABASE_URL" && c.tool == ToolChoice::Named("liquibase")),
        ("under auto, UNLATCH_DATABASE_URL means no app", &[("UNLATCH_DATABASE_URL", "sqlite:///tmp/a.db"), ("DB_SQLITE_FILE", "/tmp/npm.sqlite")], |c| c.app_profile.is_none() && c.tool == ToolChoice::Auto),
        ("UNLATCH_TOOL wins over the app's tool", &[("UNLATCH_TOOL", "knex-migrator"), ("DB_SQLITE_FILE", "/tmp/npm.sqlite")], |c| c.tool == ToolChoice::Named("knex-migrator")),
        ("a table given wins over the app's", &[("UNLATCH_KNEX_TABLE", "mine"), ("DB_SQLITE_FILE", "/tmp/npm.sqlite")], |c| c.tool_settings.get("UNLATCH_KNEX_TABLE") == Some("mine") && c.app_profile.as_ref().unwrap().ends_with("tool knex, table mine")),
        ("UNLATCH_APP=none reads no app's variables", &[("UNLATCH_APP", "None"), ("DB_SQLITE_FILE", "/tmp/npm.sqlite"), ("database__client", "sqlite3")], |c| c.database.is_none() && c.app_profile.is_none()),
        ("Ghost's variables are Ghost's profile", &[("database__client", "sqlite3"), ("database__connection__filename", "/tmp/g.db")], |c| c.tool == ToolChoice::Named("knex-migrator")),
        ("a URL of unlatch's own wins over a tool's variables", &[("LIQUIBASE_COMMAND_URL", "jdbc:postgresql://db:5432/app?currentSchema=x"), ("LIQUIBASE_COMMAND_USERNAME", "svc"), ("LIQUIBASE_COMMAND_PASSWORD", "s3cret"), ("LIQUIBASE_COMMAND_DEFAULT_SCHEMA_NAME", "billing"), ("LIQUIBASE_DATABASE_CHANGELOG_LOCK_TABLE_NAME", "app_lock"), ("DATABASE_URL", "postgres://u@h/d")], |c| c.database.as_ref().unwrap().source == "DATABASE_URL"),
    ];

    #[test]
    fn each_variable_is_read_into_its_setting() {
        for (behaviour, pairs, holds) in READS {
            let c = config(pairs).unwrap_or_else(|e| panic!("{behaviour}: {}", e.message));
            assert!(holds(&c), "{behaviour}: {c:#?}");
        }
    }

    #[test]
    fn the_longest_duration_accepted() {
        // The longest accepted sum, in the largest unit accepted.
        let most = "99999999999w99999999999w99999999999w99999999999w99999999999w999s";
        assert_eq!(most.len(), 64);
        assert!(duration(most).is_ok());
    }

    #[test]
    fn a_rollback_command_is_split_and_the_migrate_user_defaults_to_run_as() {
        let c = config(&[
            ("UNLATCH_ON_STALE", "rollback"),
            ("UNLATCH_ROLLBACK_CMD", "knex-migrator-rollback --v '5.0'"),
        ])
        .unwrap();
        let words = ["knex-migrator-rollback", "--v", "5.0"].map(String::from);
        assert_eq!(c.heal.on_stale, OnStale::Rollback(words.to_vec()));
        let c = config(&[("UNLATCH_RUN_AS", "nobody")]).unwrap();
        assert_eq!(c.launch.run_as.as_ref().unwrap().spec, "nobody");
        assert_eq!(
            c.heal.migrate_run_as, c.launch.run_as,
            "the migrate user defaults to UNLATCH_RUN_AS"
        );
        let c = config(&[
            ("UNLATCH_RUN_AS", "root"),
            ("UNLATCH_MIGRATE_RUN_AS", "nobody"),
        ])
        .unwrap();
        assert_eq!(c.heal.migrate_run_as.as_ref().unwrap().spec, "nobody");
        assert_eq!(
            c.hooks.migrate_run_as, c.heal.migrate_run_as,
            "hooks run as migrations do"
        );
    }

    /// A TZif file (version 1) with one zone, `offset` seconds east of UTC.
    fn tzif(offset: i32) -> Vec<u8> {
        let mut file = b"TZif\0".to_vec();
        file.extend([0; 15]);
        // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
        for count in [0u32, 0, 0, 0, 1, 4] {
            file.extend(count.to_be_bytes());
        }
        file.extend(offset.to_be_bytes());
        file.extend([0, 0]);
        file.extend(b"ABC\0");
        file
    }

    #[test]
    fn tz_may_name_a_zone_file_as_glibc_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("zoneinfo/Test/Plus_One");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, tzif(3600)).unwrap();
        let path = file.to_str().unwrap();
        let link = dir.path().join("localtime");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let link = link.to_str().unwrap();
        // `/usr/share/zoneinfo/Europe/Berlin` and `:/etc/localtime` alike.
        for tz in [format!(":{path}"), path.to_owned(), format!(":{link}")] {
            let c = config(&[("TZ", &tz)]).unwrap();
            assert_eq!(c.heal.lock_zone.iana_name(), Some("Test/Plus_One"), "{tz}");
            let offset = c.heal.lock_zone.to_offset(jiff::Timestamp::UNIX_EPOCH);
            assert_eq!(offset.seconds(), 3600, "{tz}");
            assert!(c.warnings.is_empty(), "{tz}: {:?}", c.warnings);
        }
    }

    #[test]
    fn a_missing_zone_file_leaves_utc_with_a_warning() {
        let c = config(&[("TZ", ":/no/such/localtime")]).unwrap();
        assert_eq!(*c.heal.lock_zone, TimeZone::UTC);
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0].starts_with("TZ=:/no/such/localtime: cannot read that zone file"),
            "{:?}",
            c.warnings
        );
    }

    const LIQUIBASE: [(&str, &str); 5] = [
        (
            "LIQUIBASE_COMMAND_URL",
            "jdbc:postgresql://db:5432/app?currentSchema=x",
        ),
        ("LIQUIBASE_COMMAND_USERNAME", "svc"),
        ("LIQUIBASE_COMMAND_PASSWORD", "s3cret"),
        ("LIQUIBASE_COMMAND_DEFAULT_SCHEMA_NAME", "billing"),
        ("LIQUIBASE_DATABASE_CHANGELOG_LOCK_TABLE_NAME", "app_lock"),
    ];

    const FLYWAY: [(&str, &str); 3] = [
        ("FLYWAY_URL", "jdbc:postgresql://db/app"),
        ("FLYWAY_SCHEMAS", " Tenant ,other"),
        ("FLYWAY_TABLE", "history"),
    ];

    #[test]
    fn liquibases_variables_name_the_database_schema_and_lock_table() {
        let c = config(&LIQUIBASE).unwrap();
        assert_eq!(
            c.tool_settings.get("UNLATCH_LIQUIBASE_TABLE"),
            Some("app_lock")
        );
        let target = c.database.unwrap();
        assert_eq!(target.source, "LIQUIBASE_COMMAND_URL");
        assert_eq!(target.schema.as_deref(), Some("billing"));
        assert_eq!(target.password(), Some("s3cret"));
        assert!(!target.redacted.contains("s3cret"), "{}", target.redacted);
    }

    #[test]
    fn flyways_variables_name_the_schema_quoted_and_the_history_table() {
        let c = config(&FLYWAY).unwrap();
        assert_eq!(c.tool_settings.get("UNLATCH_FLYWAY_TABLE"), Some("history"));
        // Flyway quotes the name: its case is kept.
        assert_eq!(c.database.unwrap().schema.as_deref(), Some("\"Tenant\""));
    }

    #[test]
    fn with_both_tools_variables_unlatch_tool_picks() {
        let mut both = LIQUIBASE.to_vec();
        both.extend(FLYWAY);
        assert!(message(&both).contains("UNLATCH_TOOL"));
        both.push(("UNLATCH_TOOL", "flyway"));
        let source = config(&both).unwrap().database.unwrap().source;
        assert_eq!(source, "FLYWAY_URL");
    }

    #[test]
    fn log_settings() {
        // The second in capitals, with a secret file's newline.
        for (level, format, filter) in [
            ("warn", "json", log::LevelFilter::Warn),
            ("DEBUG", "Json\n", log::LevelFilter::Debug),
        ] {
            let l = logging(&env(&[
                ("UNLATCH_LOG", level),
                ("UNLATCH_LOG_FORMAT", format),
            ]))
            .unwrap();
            assert_eq!(l.level, filter);
            assert_eq!(l.format, LogFormat::Json);
        }
        let e = logging(&env(&[("UNLATCH_LOG", "loud")])).unwrap_err();
        assert!(e.message.starts_with("UNLATCH_LOG=loud"));
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
    fn a_name_in_other_case_is_unknown_and_not_read() {
        let c = config(&[("UNLATCH_Lock_Ttl", "1h")]).unwrap();
        assert_eq!(c.heal.lock_ttl, Duration::from_secs(900));
        assert!(c.warnings[0].starts_with("UNLATCH_Lock_Ttl is not a variable"));
    }

    #[test]
    fn unknown_unlatch_variable_is_a_warning() {
        let c = config(&[("UNLATCH_LOCK_TTLL", "1m"), ("UNLATCH_TEST_MYSQL_URL", "x")]).unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].starts_with("UNLATCH_LOCK_TTLL is not a variable"));
    }

    /// The README's configuration table, row by row: the names in its
    /// first column and its default, as [`VARIABLES`] writes them.
    fn readme_rows() -> Vec<(String, String)> {
        let readme = include_str!("../README.md");
        let table = &readme[readme.find("## Configuration").expect("the README has it")..];
        table
            .lines()
            .skip_while(|line| !line.starts_with("| `"))
            .take_while(|line| line.starts_with('|'))
            .map(|row| {
                let cells: Vec<&str> = row.split(" | ").collect();
                let plain = |cell: &str| cell.trim_matches(['|', ' ']).replace('`', "");
                (plain(cells[0]), plain(cells[1]))
            })
            .collect()
    }

    #[test]
    fn the_readme_table_lists_the_variables_and_defaults_of_the_help() {
        let readme = readme_rows();
        let ours: Vec<(String, String)> = variables()
            .iter()
            .map(|(name, default, _)| {
                let default = default.trim_start_matches('(').trim_end_matches(')');
                (name.to_string(), default.to_owned())
            })
            .collect();
        let names =
            |rows: &[(String, String)]| rows.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&readme),
            names(&ours),
            "the README's names, in --help's order"
        );
        assert_eq!(readme, ours, "the README's defaults");
    }
}
