//! App profiles: the database, migration tool and table of an app that
//! gets stuck on migrations, read from the variables its users already set,
//! so that unlatch needs no variable of its own in front of it.
//!
//! One file per app: its [`App`] (name, tool, table, how it is detected,
//! how its variables name the database). [`REGISTRY`] lists them;
//! `UNLATCH_APP`'s names and the apps `auto` looks for come from it, so a
//! new app is a file and a line there. Each app's variables are read as
//! the app reads them (defaults, secret files, which engine wins), with the
//! app's source named beside each rule; the facts and their sources are in
//! `docs/apps.md`.
//!
//! Under `UNLATCH_APP=auto` a profile is chosen when its variables (or, for
//! Nginx Proxy Manager, its `package.json`) are there; two found is a
//! configuration error. `UNLATCH_DATABASE_URL` wins over every app, and
//! `DATABASE_URL` over every app but Prisma's, whose variable it is.
//!
//! May touch: the files an app's own start reads in the working directory,
//! read only (Ghost's config files, Nginx Proxy Manager's `package.json`,
//! the Prisma schema, Harbor's migrations folder), and the secret files
//! its `*__FILE` variables name.

use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::exit::{Code, Failure};

/// Declares each app's module and lists its [`App`].
macro_rules! registry {
    ($($app:ident),* $(,)?) => {
        $(pub mod $app;)*
        /// Every app profile unlatch knows.
        pub const REGISTRY: &[App] = &[$($app::APP),*];
    };
}

registry!(ghost, nginx_proxy_manager, prisma, harbor, rundeck);

/// An app as the registry lists it.
pub struct App {
    /// As `UNLATCH_APP` spells it.
    pub name: &'static str,
    /// The migration tool it runs, as `UNLATCH_TOOL` spells it.
    pub tool: &'static str,
    /// That tool's table, as the app configures it.
    pub table: &'static str,
    /// Why the app is taken to be here (`DB_MYSQL_HOST is set`); `None`
    /// when nothing of it is.
    pub detect: fn(&Env, &Path) -> Result<Option<String>, Failure>,
    /// The database its settings name.
    pub database: fn(&Env, &Path) -> Result<Database, Failure>,
    /// The folder of the tool's migrations, when the app has one.
    pub migrations: fn(&Env, &Path) -> Result<Option<PathBuf>, Failure>,
}

/// The database an app's settings name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub url: String,
    /// What named it, for messages (`DATABASE_URL`, `Nginx Proxy
    /// Manager's DB_MYSQL_* variables`).
    pub source: String,
    /// The variables read, for the profile's log line.
    pub from: String,
    /// Harmless oddities (a variable the app then ignores).
    pub warnings: Vec<String>,
}

impl Database {
    fn new(url: String, source: impl Into<String>, from: impl Into<String>) -> Database {
        Database {
            url,
            source: source.into(),
            from: from.into(),
            warnings: Vec::new(),
        }
    }
}

/// `UNLATCH_APP`'s value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Auto,
    None,
    Named(&'static App),
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "App({})", self.name)
    }
}

impl PartialEq for App {
    fn eq(&self, other: &App) -> bool {
        self.name == other.name
    }
}

impl Eq for App {}

/// `UNLATCH_APP`'s value: `auto`, `none` or an app's name, in any case.
pub fn choice(value: &str) -> Result<Choice, String> {
    match value.to_ascii_lowercase().as_str() {
        "auto" => Ok(Choice::Auto),
        "none" => Ok(Choice::None),
        name => REGISTRY
            .iter()
            .find(|app| app.name == name)
            .map(Choice::Named)
            .ok_or_else(|| format!("expected auto, none or one of: {}", names())),
    }
}

/// The apps' names, in the registry's order.
pub fn names() -> String {
    let names: Vec<_> = REGISTRY.iter().map(|app| app.name).collect();
    names.join(", ")
}

/// The profile in use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub app: &'static App,
    pub why: String,
}

/// The profile `choice` gives. Under `auto`, none when unlatch was given
/// its own URL, else the one app whose settings are found.
pub fn choose(
    env: &Env,
    choice: Choice,
    own_url: bool,
    cwd: &Path,
) -> Result<Option<Chosen>, Failure> {
    match choice {
        Choice::None => Ok(None),
        Choice::Named(app) => Ok(Some(Chosen {
            app,
            why: "UNLATCH_APP is set".into(),
        })),
        Choice::Auto if own_url => Ok(None),
        Choice::Auto => detect(env, cwd),
    }
}

fn detect(env: &Env, cwd: &Path) -> Result<Option<Chosen>, Failure> {
    // DATABASE_URL won over Ghost's settings before there were profiles:
    // set beside another app's variables, it is a URL given to unlatch.
    let generic_url = env.get("DATABASE_URL").is_some();
    let mut found = Vec::new();
    for app in REGISTRY {
        if generic_url && app.name != prisma::APP.name {
            continue;
        }
        if let Some(why) = (app.detect)(env, cwd)? {
            found.push(Chosen { app, why });
        }
    }
    if found.len() > 1 {
        let each: Vec<String> = found
            .iter()
            .map(|c| format!("{} ({})", c.app.name, c.why))
            .collect();
        return Err(Failure::new(
            Code::Config,
            format!(
                "UNLATCH_APP=auto found the settings of more than one app: {}; expected UNLATCH_APP set to \
                 the app in this container, or the database in UNLATCH_DATABASE_URL",
                each.join(" and ")
            ),
        ));
    }
    Ok(found.pop())
}

/// The profile's one log line: the tool and table in use, which a tool or
/// table given to unlatch may have changed.
pub fn log_line(chosen: &Chosen, database_from: &str, tool: &str, table: &str) -> String {
    format!(
        "app profile {} ({}): database from {database_from}, tool {tool}, table {table}",
        chosen.app.name, chosen.why
    )
}

/// No migrations folder: the tool needs none, or the app has none.
fn no_folder(_: &Env, _: &Path) -> Result<Option<PathBuf>, Failure> {
    Ok(None)
}

/// The first of `names` that is set, as the reason a profile was found.
fn first_set(env: &Env, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find(|name| env.get(name).is_some())
        .map(|name| format!("{name} is set"))
}

fn config_error(message: String) -> Failure {
    Failure::new(Code::Config, message)
}

/// A server's URL (`mysql:` or `postgres:`) from its parts, each taken as
/// it is: user and password percent-encoded so that `%`, `@` or `:` reach
/// the server unchanged, an IPv6 address in brackets.
#[allow(clippy::too_many_arguments)]
fn server_url(
    scheme: &str,
    host: (&str, &str),
    port: Option<(&str, &str)>,
    user: Option<(&str, &str)>,
    password: Option<&str>,
    database: Option<&str>,
    params: &[(&str, &str)],
) -> Result<String, Failure> {
    let mut url = url::Url::parse(&format!("{scheme}://localhost/")).expect("static URL parses");
    let bad = |(name, value): (&str, &str), what: &str| {
        config_error(format!("{name}={value}: expected {what}"))
    };
    let bracketed;
    let host_text = if host.1.parse::<std::net::Ipv6Addr>().is_ok() {
        bracketed = format!("[{}]", host.1);
        &bracketed
    } else if host.1.contains([':', '/', '@', '?', '#', '[', ']', '\\']) {
        // The URL parser would cut `db:3306` to `db`, where the app's
        // driver looks up the whole name and fails.
        return Err(bad(
            host,
            "a host name or address alone (no port, user or path)",
        ));
    } else {
        host.1
    };
    url.set_host(Some(host_text))
        .map_err(|_| bad(host, "a host name or address"))?;
    if let Some(port) = port {
        let number = port
            .1
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad(port, "a port number, 1 to 65535"))?;
        url.set_port(Some(number)).expect("a host is set");
    }
    if let Some(user) = user {
        url.set_username(&crate::dialect::escape_userinfo(user.1))
            .expect("a host is set");
    }
    if let Some(password) = password {
        url.set_password(Some(&crate::dialect::escape_userinfo(password)))
            .expect("a host is set");
    }
    if let Some(database) = database {
        url.set_path(&crate::dialect::escape_userinfo(database));
    }
    if !params.is_empty() {
        url.query_pairs_mut().extend_pairs(params);
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_a_choice_and_others_are_refused() {
        for app in REGISTRY {
            assert_eq!(choice(&app.name.to_uppercase()), Ok(Choice::Named(app)));
        }
        assert_eq!(choice("Auto"), Ok(Choice::Auto));
        assert_eq!(choice("none"), Ok(Choice::None));
        let why = choice("foo").unwrap_err();
        assert!(
            why.contains("nginx-proxy-manager") && why.contains("rundeck"),
            "{why}"
        );
    }

    #[test]
    fn unlatch_app_in_help_names_every_app() {
        let (_, _, meaning) = crate::config::VARIABLES
            .iter()
            .find(|(name, _, _)| *name == "UNLATCH_APP")
            .expect("UNLATCH_APP is in VARIABLES");
        for app in REGISTRY {
            assert!(meaning.contains(app.name), "{}: {meaning}", app.name);
        }
    }

    #[test]
    fn each_apps_tool_is_a_registered_tool() {
        for app in REGISTRY {
            assert!(
                crate::tools::choice(app.tool).is_ok(),
                "{}: {}",
                app.name,
                app.tool
            );
        }
    }

    #[test]
    fn two_apps_found_is_refused_naming_both() {
        let env = Env::from_pairs(&[("DB_MYSQL_HOST", "db"), ("POSTGRESQL_HOST", "pg")]);
        let err = choose(&env, Choice::Auto, false, Path::new("/nonexistent")).unwrap_err();
        assert_eq!(err.code, Code::Config);
        for part in [
            "UNLATCH_APP",
            "nginx-proxy-manager",
            "harbor",
            "DB_MYSQL_HOST",
        ] {
            assert!(err.message.contains(part), "{part}: {}", err.message);
        }
        // unlatch's own URL: no profile, nothing detected.
        assert_eq!(
            choose(&env, Choice::Auto, true, Path::new("/x")).unwrap(),
            None
        );
    }

    #[test]
    fn database_url_alone_is_no_profile_and_wins_over_other_apps() {
        let x = Path::new("/nonexistent");
        let plain = Env::from_pairs(&[("DATABASE_URL", "postgres://u@h/d")]);
        assert_eq!(choose(&plain, Choice::Auto, false, x).unwrap(), None);
        let beside = Env::from_pairs(&[
            ("DATABASE_URL", "postgres://u@h/d"),
            ("DB_MYSQL_HOST", "db"),
        ]);
        assert_eq!(choose(&beside, Choice::Auto, false, x).unwrap(), None);
        let prisma = Env::from_pairs(&[
            ("DATABASE_URL", "postgres://u@h/d"),
            ("DIRECT_URL", "postgres://u@h2/d"),
        ]);
        let chosen = choose(&prisma, Choice::Auto, false, x).unwrap().unwrap();
        assert_eq!(chosen.app.name, "prisma");
        assert_eq!(chosen.why, "DIRECT_URL is set");
    }

    #[test]
    fn a_server_url_encodes_what_needs_it() {
        let url = server_url(
            "mysql",
            ("H", "::1"),
            Some(("P", "3307")),
            Some(("U", "a@b")),
            Some("p%41:/#"),
            Some("npm"),
            &[("ssl-mode", "DISABLED")],
        )
        .unwrap();
        assert_eq!(
            url,
            "mysql://a%40b:p%2541%3A%2F%23@[::1]:3307/npm?ssl-mode=DISABLED"
        );
        let err = server_url(
            "mysql",
            ("H", "db"),
            Some(("DB_MYSQL_PORT", "abc")),
            None,
            None,
            None,
            &[],
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "DB_MYSQL_PORT=abc: expected a port number, 1 to 65535"
        );
        for host in ["db:3306", "u@db", "db/x", "fe80::1%eth0"] {
            let err = server_url(
                "mysql",
                ("DB_MYSQL_HOST", host),
                None,
                None,
                None,
                None,
                &[],
            )
            .unwrap_err();
            assert!(
                err.message
                    .starts_with(&format!("DB_MYSQL_HOST={host}: expected a host")),
                "{}",
                err.message
            );
        }
    }
}
