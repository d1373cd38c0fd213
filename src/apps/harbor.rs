//! Harbor (harbor-core): its `POSTGRESQL_*` variables, with the defaults
//! of `src/lib/config/metadata/metadatalist.go`, connected to as
//! `src/common/dao/pgsql.go` connects (`sslmode`, `disable` when empty).
//! golang-migrate runs at boot from `migrations/postgresql/` in the working
//! directory (`/harbor` in the image), or `POSTGRES_MIGRATION_SCRIPTS_PATH`;
//! its version table is `schema_migrations`.
//!
//! May touch: the working directory, to look for the migrations folder
//! (read only).

use std::path::{Path, PathBuf};

use super::{first_set, server_url, App, Database};
use crate::env::Env;
use crate::exit::{Code, Failure};

pub const APP: App = App {
    name: "harbor",
    tool: "golang-migrate",
    table: "schema_migrations",
    detect: |env, _| Ok(first_set(env, &VARIABLES.map(|(name, _)| name))),
    database,
    migrations,
};

/// Each variable and Harbor's default for it (`metadatalist.go`).
const VARIABLES: [(&str, &str); 6] = [
    ("POSTGRESQL_HOST", "postgresql"),
    ("POSTGRESQL_PORT", "5432"),
    ("POSTGRESQL_USERNAME", "postgres"),
    ("POSTGRESQL_PASSWORD", "root123"),
    ("POSTGRESQL_DATABASE", "registry"),
    ("POSTGRESQL_SSLMODE", "disable"),
];

/// Harbor's default, relative to its working directory (`pgsql.go`'s
/// `defaultMigrationPath`).
const MIGRATIONS: &str = "migrations/postgresql/";

fn get(env: &Env, index: usize) -> (&'static str, &str) {
    let (name, default) = VARIABLES[index];
    (name, env.get(name).unwrap_or(default))
}

fn database(env: &Env, _: &Path) -> Result<Database, Failure> {
    let (sslmode_name, sslmode) = get(env, 5);
    if !crate::tls::PG_SSLMODES.contains(&sslmode) {
        return Err(Failure::new(
            Code::Config,
            format!(
                "{sslmode_name}={sslmode}: expected one of {}",
                crate::tls::PG_SSLMODES.join(", ")
            ),
        ));
    }
    let url = server_url(
        "postgres",
        get(env, 0),
        Some(get(env, 1)),
        Some(get(env, 2)),
        Some(get(env, 3).1),
        Some(get(env, 4).1),
        &[("sslmode", sslmode)],
    )?;
    let (set, unset): (Vec<_>, Vec<_>) = VARIABLES
        .iter()
        .partition(|(name, _)| env.get(name).is_some());
    let mut from = set.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ");
    if !unset.is_empty() {
        // Each default by name; the password's value is a password.
        let defaults: Vec<String> = unset
            .iter()
            .map(|(name, default)| match *name {
                "POSTGRESQL_PASSWORD" => name.to_string(),
                _ => format!("{name} {default}"),
            })
            .collect();
        from.push_str(&format!(" (Harbor's defaults: {})", defaults.join(", ")));
    }
    let from = from.trim_start().to_owned();
    Ok(Database::new(url, "Harbor's POSTGRESQL_* variables", from))
}

fn migrations(env: &Env, cwd: &Path) -> Result<Option<PathBuf>, Failure> {
    let name = "POSTGRES_MIGRATION_SCRIPTS_PATH";
    match env.get(name) {
        Some(path) if Path::new(path).is_dir() => Ok(Some(PathBuf::from(path))),
        Some(path) => Err(Failure::new(
            Code::Config,
            format!("{name}={path}: expected the folder of Harbor's PostgreSQL migrations"),
        )),
        None => Ok(Some(cwd.join(MIGRATIONS)).filter(|dir| dir.is_dir())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harbors_defaults_fill_what_is_not_set() {
        let env = Env::from_pairs(&[("POSTGRESQL_HOST", "harbor-db"), ("POSTGRESQL_PASSWORD", "p w")]);
        let d = database(&env, Path::new("/harbor")).unwrap();
        assert_eq!(d.url, "postgres://postgres:p%20w@harbor-db:5432/registry?sslmode=disable");
        assert_eq!(d.from, "POSTGRESQL_HOST, POSTGRESQL_PASSWORD (Harbor's defaults: POSTGRESQL_PORT 5432, POSTGRESQL_USERNAME postgres, POSTGRESQL_DATABASE registry, POSTGRESQL_SSLMODE disable)");
        let d = database(&Env::from_pairs(&[("POSTGRESQL_SSLMODE", "require")]), Path::new("/")).unwrap();
        assert!(d.from.starts_with("POSTGRESQL_SSLMODE (Harbor's defaults: POSTGRESQL_HOST postgresql, "), "{}", d.from);
        assert!(d.from.contains(", POSTGRESQL_PASSWORD,") && !d.from.contains("root123"), "{}", d.from);
    }

    #[test]
    fn a_bad_sslmode_or_port_is_named() {
        let env = Env::from_pairs(&[("POSTGRESQL_SSLMODE", "on")]);
        let m = database(&env, Path::new("/")).unwrap_err().message;
        assert!(m.starts_with("POSTGRESQL_SSLMODE=on: expected one of disable"), "{m}");
        let env = Env::from_pairs(&[("POSTGRESQL_PORT", "70000")]);
        let m = database(&env, Path::new("/")).unwrap_err().message;
        assert!(m.starts_with("POSTGRESQL_PORT=70000: expected a port"), "{m}");
    }

    #[test]
    fn the_migrations_folder_is_in_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::from_pairs(&[]);
        assert_eq!(migrations(&env, dir.path()).unwrap(), None);
        std::fs::create_dir_all(dir.path().join(MIGRATIONS)).unwrap();
        assert_eq!(migrations(&env, dir.path()).unwrap(), Some(dir.path().join(MIGRATIONS)));
        let bad = Env::from_pairs(&[("POSTGRES_MIGRATION_SCRIPTS_PATH", "/no/such")]);
        assert!(migrations(&bad, dir.path()).is_err());
    }
}
