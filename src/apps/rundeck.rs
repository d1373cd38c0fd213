//! Rundeck (the official image): `RUNDECK_DATABASE_URL`, a JDBC URL, with
//! `RUNDECK_DATABASE_USERNAME` and `RUNDECK_DATABASE_PASSWORD`, which the
//! image's remco template writes into `rundeck-config.properties` as
//! `dataSource.url`, `.username` and `.password`. Grails' database-migration
//! plugin (Liquibase) migrates at boot; its lock table is
//! `DATABASECHANGELOGLOCK`.
//!
//! Rundeck reads that file with `java.util.Properties.load(InputStream)`
//! (`rundeckapp/grails-app/init/rundeckapp/init/
//! DefaultRundeckConfigPropertyLoader.groovy:29-32`): ISO-8859-1, the
//! leading blanks cut, `\` an escape (`\uXXXX`, `\t`...), and remco
//! writes the values unescaped (`pkg/template/renderer.go`:
//! `pongo2.SetAutoescape(false)`). So each of the three is read here as
//! that file reads it.
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
    let url = as_properties_read(URL, url)?;
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
    let user = env.get(USER).map(|v| as_properties_read(USER, v)).transpose()?;
    let password = env
        .get(PASSWORD)
        .map(|v| as_properties_read(PASSWORD, v))
        .transpose()?;
    let extras = JdbcExtras {
        user: user.as_deref(),
        password: password.as_deref(),
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

/// `value`, written by remco into `rundeck-config.properties` as
/// `key = value`, as `Properties.load(InputStream)` reads it back: bytes
/// as ISO-8859-1, leading blanks cut, escapes decoded. What would end the
/// line early, continue it, or throw ("Malformed \\uxxxx encoding", after
/// which Rundeck loads no setting at all) is refused. The value is never
/// shown: it may be a password.
fn as_properties_read(variable: &str, value: &str) -> Result<String, Failure> {
    let refuse = |why: &str| {
        Failure::new(
            Code::Config,
            format!(
                "{variable}: {why}, which Rundeck's rundeck-config.properties (a Java properties file) \
                 cannot carry as it is; expected the value on one line, a backslash written as \\\\"
            ),
        )
    };
    if value.contains(['\n', '\r']) {
        return Err(refuse("the value holds a line break"));
    }
    let mut chars = value.bytes().map(char::from).peekable();
    while chars.next_if(|c| matches!(c, ' ' | '\t' | '\u{c}')).is_some() {}
    let mut units: Vec<u16> = Vec::new();
    while let Some(c) = chars.next() {
        let decoded = match c {
            '\\' => match chars.next() {
                None => return Err(refuse("the value ends with a lone \\ (a line continuation)")),
                Some('t') => '\t',
                Some('n') => '\n',
                Some('r') => '\r',
                Some('f') => '\u{c}',
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let unit = u16::from_str_radix(&hex, 16)
                        .ok()
                        .filter(|_| hex.len() == 4 && hex.chars().all(|h| h.is_ascii_hexdigit()))
                        .ok_or_else(|| refuse("a \\u not followed by four hex digits"))?;
                    units.push(unit);
                    continue;
                }
                Some(other) => other,
            },
            other => other,
        };
        units.extend(decoded.encode_utf16(&mut [0; 2]).iter());
    }
    let read = String::from_utf16(&units).map_err(|_| refuse("a \\u escape leaves half a UTF-16 pair"))?;
    if !value.is_ascii() {
        log::warn!(
            "{variable}: the value holds characters beyond ASCII; Rundeck reads rundeck-config.properties as \
             ISO-8859-1, so they reach the database as other characters (write them as \\uXXXX), and unlatch \
             reads them as Rundeck does"
        );
    }
    Ok(read)
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

    #[test]
    fn each_value_is_read_as_rundecks_properties_file_reads_it() {
        let read = |v: &str| as_properties_read(PASSWORD, v);
        assert_eq!(read("  p@:/%#?\"'x ").unwrap(), "p@:/%#?\"'x ");
        assert_eq!(read(r"a\\b\c\u00fc\t").unwrap(), "a\\bcü\t");
        // UTF-8 read as ISO-8859-1: what Rundeck then sends.
        assert_eq!(read("ü").unwrap(), "Ã¼");
        assert_eq!(read(r"\ud83d\ude00").unwrap(), "😀");
        for bad in ["a\\", r"\u12", r"\uzzzz", "a\nb", r"\ud83d"] {
            let m = read(bad).unwrap_err().message;
            assert!(m.starts_with("RUNDECK_DATABASE_PASSWORD: "), "{bad:?}: {m}");
        }
    }
}
