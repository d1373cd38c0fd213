//! The environment as unlatch reads it: one snapshot, taken once, of the
//! variables it may read (its own, the apps', libpq's and the tools'), valid
//! UTF-8, empty values dropped (Docker's `-e NAME=` means unset).
//!
//! Its own module so that `config`, `apps`, `db`, `dialect` and `tls` all
//! read the same snapshot without importing one another.
//!
//! May touch: nothing (the caller hands in the process environment), but
//! the secret files a `*_FILE` variable names, read by [`secret_file`].

use std::collections::BTreeMap;
use std::ffi::OsString;

use crate::exit::{Code, Failure};

/// Sorted, so that with several bad values the first one reported is the
/// same on every start.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// Takes the variables unlatch may read; one that is not UTF-8 is an
    /// error naming it, rather than the panic `std::env::vars` would give.
    pub fn capture(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<Env, Failure> {
        let mut map = BTreeMap::new();
        for (key, value) in vars {
            let Ok(key) = key.into_string() else { continue };
            if !is_ours(&key) {
                continue;
            }
            let value = value.into_string().map_err(|_| {
                Failure::new(
                    Code::Config,
                    format!("{key} is not valid UTF-8; expected a UTF-8 value"),
                )
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

    /// Variables whose name starts with `prefix`, in name order.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        let vars = self.vars.iter().filter(move |(k, _)| k.starts_with(prefix));
        vars.map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// ASCII letters, digits and `_`, not starting with a digit: a variable's
/// name as a shell takes it, and a table's that needs no quotes.
pub fn is_name(value: &str) -> bool {
    let mut chars = value.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_ours(key: &str) -> bool {
    key.starts_with("UNLATCH_")
        || key.starts_with("database__")
        // libpq's defaults, and the URLs of the tools beside unlatch.
        || key.starts_with("PG")
        || key.starts_with("LIQUIBASE_")
        || key.starts_with("FLYWAY_")
        // The app profiles' variables (crate::apps).
        || key.starts_with("DB_MYSQL_")
        || key.starts_with("DB_POSTGRES_")
        || key.starts_with("DB_SQLITE_FILE")
        || key.starts_with("POSTGRESQL_")
        || key.starts_with("RUNDECK_DATABASE_")
        || matches!(
            key,
            "DATABASE_URL"
                | "DIRECT_URL"
                | "POSTGRES_MIGRATION_SCRIPTS_PATH"
                | "NODE_CONFIG_DIR"
                | "TZ"
                | "NODE_ENV"
        )
}

/// The text of the secret file `path` that `variable` names, as the app's
/// own hook would read it; the app decides how to trim it.
pub fn secret_file(variable: &str, path: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| {
    Failure::new(
        Code::Config,
        format!("{variable}={path}: cannot read it ({e}); expected a readable file holding the value"),
    )
})
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_prefix_gives_exactly_its_variables_in_order() {
        let env = Env::from_pairs(&[
            ("UNLATCH_B", "2"),
            ("TZ", "UTC"),
            ("UNLATCH_A", "1"),
            ("DATABASE_URL", "x"),
        ]);
        let got: Vec<_> = env.with_prefix("UNLATCH_").collect();
        assert_eq!(got, [("UNLATCH_A", "1"), ("UNLATCH_B", "2")]);
    }
}
