//! Logging: one line per decision on stderr, `unlatch: ` first, or one JSON
//! object a line with `UNLATCH_LOG_FORMAT=json`.
//!
//! The `log` facade and env_logger carry the records; only the line format
//! is ours. Records from dependencies (sqlx) are dropped: their messages can
//! quote SQL and connection details, and a user reads ours instead.
//!
//! Every line is concealed on its way out: the database password, wherever
//! it shows (a migrate command may carry it, as `-p...` or in a URL), and the
//! password of any URL. Doing it here, not at each call, means no message can
//! forget to.
//!
//! May touch: stderr.

use std::io::Write;
use std::sync::Mutex;

use crate::config::{LogFormat, Logging};

pub fn init(settings: Logging) {
    let json = settings.format == LogFormat::Json;
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Off)
        .filter_module("unlatch", settings.level)
        .target(env_logger::Target::Stderr)
        .format(move |buf, record| {
            if json {
                let line = serde_json::json!({
                    "time": jiff::Timestamp::now().to_string(),
                    "level": record.level().as_str().to_ascii_lowercase(),
                    "msg": conceal(&record.args().to_string()),
                });
                writeln!(buf, "{line}")
            } else {
                let prefix = match record.level() {
                    log::Level::Error => "error: ",
                    log::Level::Warn => "warning: ",
                    log::Level::Debug | log::Level::Trace => "debug: ",
                    log::Level::Info => "",
                };
                writeln!(
                    buf,
                    "unlatch: {prefix}{}",
                    conceal(&record.args().to_string())
                )
            }
        })
        .init();
}

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Masks `secret` (the database password) in every line logged from now on.
pub fn hide(secret: &str) {
    if !secret.is_empty() {
        SECRETS.lock().unwrap().push(secret.to_owned());
    }
}

/// `text` with every hidden secret, and the password of every URL in it,
/// masked.
pub fn conceal(text: &str) -> String {
    let mut out = mask_url_passwords(text);
    for secret in SECRETS.lock().unwrap().iter() {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

/// Masks `pass` in every `scheme://user:pass@host` of `text`, URLs inside
/// commands and error messages included.
fn mask_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | '\'' | '"') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        let userinfo = authority.rfind('@').map(|a| &authority[..a]);
        match userinfo.and_then(|u| u.find(':').map(|colon| (colon, u.len()))) {
            Some((colon, at)) => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked_inside_commands() {
        assert_eq!(
            mask_url_passwords("sh -c 'psql -q '\\''postgres://u:pw%40x@h:5432/db'\\'' -c x'"),
            "sh -c 'psql -q '\\''postgres://u:***@h:5432/db'\\'' -c x'"
        );
        assert_eq!(
            mask_url_passwords("migrate -database mysql://root:s3@tcp(db:3306)/app up; see https://example.com/a@b"),
            "migrate -database mysql://root:***@tcp(db:3306)/app up; see https://example.com/a@b"
        );
        assert_eq!(
            mask_url_passwords("sqlite:///data/app.db"),
            "sqlite:///data/app.db"
        );
        assert_eq!(mask_url_passwords("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn hidden_secrets_are_masked_anywhere() {
        hide("Hidd3n-Pw");
        assert_eq!(
            conceal("running mysql -pHidd3n-Pw -e 'select 1'"),
            "running mysql -p*** -e 'select 1'"
        );
    }
}
