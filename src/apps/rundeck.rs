//! Rundeck (the official image): `RUNDECK_DATABASE_URL`, a JDBC URL, with
//! `RUNDECK_DATABASE_USERNAME` and `RUNDECK_DATABASE_PASSWORD`, which the
//! image's remco template writes into `rundeck-config.properties` as
//! `dataSource.url`, `.username` and `.password`. Grails' database-migration
//! plugin (Liquibase) migrates at boot; its lock table is
//! `DATABASECHANGELOGLOCK`.
//!
//! Unset, Rundeck uses an H2 file, which unlatch cannot open; so the URL
//! must be set for the profile to be found, and an H2 (or any other) URL
//! is refused by name.
//!
//! May touch: nothing; it reads variables.

use std::path::Path;

use super::{first_set, App, Database};
use crate::dialect::{jdbc_with, JdbcExtras};
use crate::env::Env;
use crate::exit::{Code, Failure};

pub const APP: App = App {
    name: "rundeck",
    tool: "liquibase",
    table: "DATABASECHANGELOGLOCK",
    detect: |env, _| Ok(first_set(env, &[URL])),
    database,
    migrations: super::no_folder,
};

const URL: &str = "RUNDECK_DATABASE_URL";
const USER: &str = "RUNDECK_DATABASE_USERNAME";
const PASSWORD: &str = "RUNDECK_DATABASE_PASSWORD";

/// The JDBC drivers the image's README lists besides H2, by URL prefix
/// (each driver's `acceptsURL` compares it exactly).
const PREFIXES: &[&str] = &["jdbc:mysql:", "jdbc:mariadb:", "jdbc:postgresql:"];

fn database(env: &Env, _: &Path) -> Result<Database, Failure> {
    let Some(url) = env.get(URL) else {
        return Err(Failure::new(
            Code::Config,
            format!("UNLATCH_APP=rundeck, but {URL} is not set; expected Rundeck's JDBC URL (its default, an H2 file, unlatch cannot open)"),
        ));
    };
    let url = url.trim();
    if !PREFIXES.iter().any(|p| url.starts_with(p)) {
        let shown = url.split([';', '?']).next().unwrap_or_default();
        return Err(Failure::new(
            Code::Config,
            format!(
                "{URL}={}: expected a URL starting {} (unlatch cannot open H2 or other databases)",
                crate::db::redact(shown),
                PREFIXES.join(", ")
            ),
        ));
    }
    let extras = JdbcExtras {
        user: env.get(USER),
        password: env.get(PASSWORD),
        ..JdbcExtras::default()
    };
    let composed = jdbc_with(url, &extras).map_err(|why| {
        Failure::new(Code::Config, format!("{URL}={}: {why}", crate::db::redact(url)))
    })?;
    let from: Vec<&str> = [URL, USER, PASSWORD]
        .into_iter()
        .filter(|name| env.get(name).is_some())
        .collect();
    Ok(Database::new(composed, URL, from.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credentials_join_the_jdbc_url() {
        let env = Env::from_pairs(&[
            (URL, "jdbc:mysql://db:3306/rundeck?autoReconnect=true&useSSL=false"),
            (USER, "rundeck"),
            (PASSWORD, "p&w=1"),
        ]);
        let d = database(&env, Path::new("/")).unwrap();
        assert_eq!(d.from, "RUNDECK_DATABASE_URL, RUNDECK_DATABASE_USERNAME, RUNDECK_DATABASE_PASSWORD");
        let target = crate::db::Target::parse(&d.url, URL).unwrap();
        assert_eq!(target.password(), Some("p&w=1"));
        assert_eq!(target.name, "rundeck");
    }

    #[test]
    fn h2_and_others_are_refused_by_name() {
        for url in ["jdbc:h2:file:/home/rundeck/server/data/grailsdb;DB_CLOSE_ON_EXIT=FALSE", "jdbc:sqlite:/x.db", "mysql://db/x"] {
            let m = database(&Env::from_pairs(&[(URL, url)]), Path::new("/")).unwrap_err().message;
            assert!(m.starts_with("RUNDECK_DATABASE_URL=") && m.contains("expected a URL starting jdbc:mysql:"), "{m}");
        }
    }
}
