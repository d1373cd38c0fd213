//! `unlatch status`: what unlatch sees, changing nothing.
//!
//! It takes no guard (a look must never wait behind a migration) and no
//! lock; it prints the database (password masked), each tool found, its
//! lock, the holder's timestamp, the age and the verdict. The exit code is
//! the verdict: 0 free, 1 live, 2 stale.
//!
//! May touch: the database, reading only.

use jiff::Timestamp;
use serde_json::json;

use crate::clock::human;
use crate::config::Config;
use crate::heal::{self, Verdict};
use crate::process::Stop;
use crate::tools::{self, LockState};
use crate::{db, runner, sessions};

pub async fn run(config: &Config, as_json: bool) -> anyhow::Result<u8> {
    let mut stop = Stop::install()?;
    let database = config.database.as_ref().map(|t| t.redacted.clone());
    let mut report = json!({
        "database": database,
        "ttl_seconds": config.heal.lock_ttl.as_secs(),
        "tools": [],
    });
    let mut worst = 0;
    if let Some(target) = &config.database {
        if let Some(mut db) = db::wait_for(target, config.wait_timeout, &mut stop).await? {
            let candidates = tools::candidates(config.tool, &config.tool_settings);
            let holders = sessions::holders(&mut db, &candidates, None).await?;
            report["sessions"] = holders
                .iter()
                .map(|h| json!({"tool": h.tool, "key": h.key, "pid": h.pid, "state": h.state, "idle_seconds": h.idle.as_secs()}))
                .collect();
            for tool in tools::detected(candidates, &mut db, None).await? {
                let state = tool.observe(&mut db, &config.heal.lock_zone).await?;
                let verdict = heal::judge(&state, Timestamp::now(), None, config.heal.lock_ttl);
                worst = worst.max(match verdict {
                    Verdict::Free => 0,
                    Verdict::Live { .. } => 1,
                    Verdict::Stale { .. } => 2,
                });
                report["tools"]
                    .as_array_mut()
                    .expect("built as an array")
                    .push(tool_report(tool.as_ref(), &state, &verdict));
            }
            if let Some(dir) = &config.migrations_dir {
                let pending = runner::pending(&mut db, &runner::load(dir).await?).await?;
                report["pending"] = pending
                    .iter()
                    .map(|(v, d)| json!({"version": v, "description": d}))
                    .collect();
            }
            db.close().await;
        }
    }
    if as_json {
        println!("{report}");
    } else {
        print!("{}", text(&report, config));
    }
    Ok(worst)
}

fn tool_report(tool: &dyn tools::Tool, state: &LockState, verdict: &Verdict) -> serde_json::Value {
    let (lock, acquired_at) = match state {
        LockState::Free => ("free", None),
        LockState::Missing => ("missing", None),
        LockState::Held(lock) => ("held", lock.acquired_at.clone()),
    };
    let age = match verdict {
        Verdict::Live { age } | Verdict::Stale { age } => age.map(|a| a.as_secs()),
        Verdict::Free => None,
    };
    json!({
        "tool": tool.name(),
        "table": tool.place(),
        "lock": lock,
        "acquired_at": acquired_at,
        "age_seconds": age,
        "verdict": verdict.word(),
    })
}

fn text(report: &serde_json::Value, config: &Config) -> String {
    let mut out = String::new();
    let line =
        |out: &mut String, key: &str, value: &str| out.push_str(&format!("{key:<12}{value}\n"));
    line(
        &mut out,
        "database",
        report["database"].as_str().unwrap_or("none configured"),
    );
    let tools = report["tools"].as_array().expect("built as an array");
    if tools.is_empty() {
        line(&mut out, "tool", "none found");
        line(&mut out, "verdict", "free");
    }
    for tool in tools {
        let s = |key: &str| tool[key].as_str().unwrap_or("-").to_owned();
        line(&mut out, "tool", &format!("{} {}", s("tool"), s("table")));
        line(&mut out, "lock", &s("lock"));
        line(&mut out, "acquired_at", &s("acquired_at"));
        let age = tool["age_seconds"]
            .as_u64()
            .map_or("-".to_owned(), |a| human(std::time::Duration::from_secs(a)));
        line(&mut out, "age", &age);
        line(&mut out, "ttl", &human(config.heal.lock_ttl));
        line(&mut out, "verdict", &s("verdict"));
    }
    for migration in report["pending"].as_array().into_iter().flatten() {
        let version = migration["version"].to_string();
        line(
            &mut out,
            "pending",
            &format!(
                "{version} {}",
                migration["description"].as_str().unwrap_or("")
            ),
        );
    }
    for session in report["sessions"].as_array().into_iter().flatten() {
        let field = |key: &str| session[key].to_string().trim_matches('"').to_owned();
        line(
            &mut out,
            "session",
            &format!(
                "{} advisory lock {} held by pid {} ({}, {}s)",
                field("tool"),
                field("key"),
                field("pid"),
                field("state"),
                field("idle_seconds")
            ),
        );
    }
    out
}
