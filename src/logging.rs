//! Logging: one line per decision on stderr, `unlatch: ` first, or one JSON
//! object a line with `UNLATCH_LOG_FORMAT=json`.
//!
//! A change's record ([`crate::trail`]) is a JSON object: in text, the line
//! is `unlatch: trail {...}` (`unlatch: warning: trail {...}` when its table
//! could not take it); in JSON, the object is the line's `trail` field, not
//! a string in `msg`.
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
//! A start that fails also writes its error line to Kubernetes' termination
//! message file (`UNLATCH_TERMINATION_LOG`), when that file exists, so that
//! `kubectl describe pod` shows why.
//!
//! May touch: stderr; the termination message file, when it exists.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// How to log (`UNLATCH_LOG`, `UNLATCH_LOG_FORMAT`).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub level: log::LevelFilter,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(settings: Settings) {
    let json = settings.format == LogFormat::Json;
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Off)
        .filter_module("unlatch", settings.level)
        .target(env_logger::Target::Stderr)
        .format(move |buf, record| {
            let trail = record.target() == crate::trail::LOG_TARGET;
            if json {
                let msg = conceal(&record.args().to_string());
                // The record as written, not re-read: its keys, and the
                // columns of its rows, keep their order.
                let object = trail && serde_json::from_str::<serde::de::IgnoredAny>(&msg).is_ok();
                let line = serde_json::json!({
                    "time": jiff::Timestamp::now().to_string(),
                    "level": record.level().as_str().to_ascii_lowercase(),
                    "msg": if object { "trail" } else { &msg },
                });
                match object {
                    true => {
                        let fields = line.to_string();
                        let fields = fields.strip_suffix('}').unwrap_or(&fields);
                        writeln!(buf, "{fields},\"trail\":{msg}}}")
                    }
                    false => writeln!(buf, "{line}"),
                }
            } else {
                let level = match record.level() {
                    log::Level::Error => "error: ",
                    log::Level::Warn => "warning: ",
                    log::Level::Debug | log::Level::Trace => "debug: ",
                    log::Level::Info => "",
                };
                let prefix = format!("{level}{}", if trail { "trail " } else { "" });
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

/// Writes `error`, as its text line, to `path` when that file exists (it
/// is never created: Kubernetes makes it only where it reads it back).
/// Nothing may come of a failure to write it but a debug line: the error
/// itself is what counts.
pub fn termination_message(path: &Path, error: &str) {
    let line = format!("unlatch: error: {}\n", conceal(error));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    match written {
        Ok(()) => log::debug!("wrote the reason to {}", path.display()),
        Err(e) => log::debug!(
            "not writing the reason to {} (UNLATCH_TERMINATION_LOG): {e}",
            path.display()
        ),
    }
}

/// `text` with every hidden secret, and the password of every URL in it,
/// masked.
pub fn conceal(text: &str) -> String {
    let mut out = crate::db::mask_url_passwords(text);
    for secret in SECRETS.lock().unwrap().iter() {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_secrets_are_masked_anywhere() {
        hide("Hidd3n-Pw");
        assert_eq!(
            conceal("running mysql -pHidd3n-Pw -e 'select 1'"),
            "running mysql -p*** -e 'select 1'"
        );
    }
}
