//! Logging: one line per decision on stderr, `unlatch: ` first, or one JSON
//! object a line with `UNLATCH_LOG_FORMAT=json`.
//!
//! The `log` facade and env_logger carry the records; only the line format
//! is ours. Records from dependencies (sqlx) are dropped: their messages can
//! quote SQL and connection details, and a user reads ours instead.
//!
//! May touch: stderr.

use std::io::Write;

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
                    "msg": record.args().to_string(),
                });
                writeln!(buf, "{line}")
            } else {
                let prefix = match record.level() {
                    log::Level::Error => "error: ",
                    log::Level::Warn => "warning: ",
                    log::Level::Debug | log::Level::Trace => "debug: ",
                    log::Level::Info => "",
                };
                writeln!(buf, "unlatch: {prefix}{}", record.args())
            }
        })
        .init();
}
