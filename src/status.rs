//! `unlatch status`: what unlatch sees, changing nothing.
//!
//! It takes no guard (a look must never wait behind a migration) and no
//! lock; it prints the database (password masked), each tool found, its
//! lock, the holder's timestamp, the age and the verdict. The verdict is
//! the next start's, by the start's own code ([`heal::judge_seen`]): a lock
//! of unknown age is aged from unlatch's first sighting of it, read but
//! never recorded here. A live lock whose holder is provably gone
//! ([`heal::prove_gone`]: a SQLite lease taken and given up, or the session
//! list read; nothing written) is one the next start heals at once, so its
//! verdict is `stale`, as a lock past the TTL, with the proof beside it;
//! a live lock without one shows why. A lock no process can leave stale
//! (goose's lease, Keycloak's row locks) is `report-only`; a table under a
//! tool's name without its columns is `unknown`; neither is ever healed.
//! The exit code is the verdict: 0 free (or report-only, unknown), 1 live,
//! 2 stale.
//!
//! May touch: the database, reading only.

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use crate::clock::human;
use crate::config::Config;
use crate::heal::{self, Sightings, Verdict};
use crate::process::Stop;
use crate::proof::Finding;
use crate::tools::{self, LockState};
use crate::{db, runner, sessions};

/// What `unlatch status` found; `--json` prints it as it is, otherwise
/// [`Report::text`]. Fields in name order: the JSON's order since its first
/// release.
#[derive(Serialize, Default)]
struct Report {
    database: Option<String>,
    /// With `UNLATCH_MIGRATIONS_DIR` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pending: Option<Vec<runner::Pending>>,
    /// Once connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    sessions: Option<Vec<sessions::Holder>>,
    tools: Vec<Found>,
    ttl_seconds: u64,
}

/// A tool found, and its lock.
#[derive(Serialize)]
struct Found {
    acquired_at: Option<String>,
    age_seconds: Option<u64>,
    lock: &'static str,
    /// For a held lock younger than the TTL: the proof that its holder is
    /// gone (`pg-sessions: ...`), or `none: ` and why there is none; for a
    /// `report-only` lock or an `unknown` table, `none: ` and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    proof: Option<String>,
    table: String,
    tool: &'static str,
    verdict: &'static str,
}

/// Prints what unlatch sees; the exit code is the worst verdict.
pub async fn run(config: &Config, as_json: bool) -> anyhow::Result<u8> {
    let mut report = Report {
        database: config.database.as_ref().map(|t| t.redacted.clone()),
        ttl_seconds: config.heal.lock_ttl.as_secs(),
        ..Report::default()
    };
    let looked = db::read_only(config, async |db, target, stop| {
        look(db, target, config, &mut report, stop).await
    })
    .await?;
    let worst = looked.unwrap_or(0);
    if as_json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(worst)
}

/// Fills `report` in from the database; the worst verdict: 0 free, 1 live,
/// 2 stale.
async fn look(
    db: &mut db::Db,
    target: &db::Target,
    config: &Config,
    report: &mut Report,
    stop: &mut Stop,
) -> anyhow::Result<u8> {
    let candidates = tools::candidates(config.tool, &config.tool_settings);
    report.sessions =
        Some(sessions::holders(db, candidates.iter().map(|t| t.as_ref()), None).await?);
    let mut worst = 0;
    let detected = tools::detected(candidates, db, None).await?;
    for unknown in detected.unknown {
        report.tools.push(Found {
            acquired_at: None,
            age_seconds: None,
            lock: "unrecognised",
            proof: Some(format!("none: {}", unknown.said())),
            table: unknown.table,
            tool: unknown.tool,
            verdict: "unknown",
        });
    }
    for tool in detected.tools {
        let state = tool.observe(db, &config.heal.lock_zone).await?;
        if let LockState::Held(lock) = &state {
            if let Some(why) = lock.report_only {
                report.tools.push(Found {
                    acquired_at: lock.acquired_at.clone(),
                    age_seconds: None,
                    lock: "held",
                    proof: Some(format!("none: {why}")),
                    table: tool.place(),
                    tool: tool.name(),
                    verdict: "report-only",
                });
                continue;
            }
        }
        // The start's own judgement, first sightings counted, none recorded.
        let ttl = config.heal.lock_ttl;
        let mut verdict = heal::judge_seen(tool.as_ref(), db, &state, ttl, Sightings::Read).await?;
        // As a start would: a live lock of a provably gone holder is healed.
        let mut proof = None;
        if let Verdict::Live(age) = verdict {
            let proofs = &config.heal.proof;
            proof = Some(
                match heal::prove_gone(tool.as_ref(), db, target, &state, proofs, stop).await? {
                    Finding::Gone { proof, evidence } => {
                        verdict = Verdict::Stale(age);
                        format!("{proof}: {evidence}")
                    }
                    Finding::NoProof(why) => format!("none: {why}"),
                },
            );
        }
        let (lock, acquired_at) = match state {
            LockState::Free => ("free", None),
            LockState::Missing => ("missing", None),
            LockState::Held(lock) => ("held", lock.acquired_at),
        };
        let (rank, age) = match verdict {
            Verdict::Free => (0, None),
            Verdict::Live(age) => (1, age),
            Verdict::Stale(age) => (2, age),
        };
        worst = worst.max(rank);
        report.tools.push(Found {
            acquired_at,
            age_seconds: age.map(|a| a.as_secs()),
            lock,
            proof,
            table: tool.place(),
            tool: tool.name(),
            verdict: verdict.word(),
        });
    }
    if let Some(dir) = &config.migrations_dir {
        report.pending = Some(runner::pending(db, &runner::load(dir).await?).await?);
    }
    Ok(worst)
}

impl Report {
    /// One `key value` line per fact, keys in a column.
    fn text(&self) -> String {
        let mut out = String::new();
        let mut line = |key: &str, value: &str| {
            let _ = writeln!(out, "{key:<12}{value}");
        };
        line(
            "database",
            self.database.as_deref().unwrap_or("none configured"),
        );
        if self.tools.is_empty() {
            line("tool", "none found");
            line("verdict", "free");
        }
        let seconds = |s: u64| human(Duration::from_secs(s));
        for found in &self.tools {
            line("tool", &format!("{} {}", found.tool, found.table));
            line("lock", found.lock);
            line("acquired_at", found.acquired_at.as_deref().unwrap_or("-"));
            line("age", &found.age_seconds.map_or("-".to_owned(), seconds));
            line("ttl", &seconds(self.ttl_seconds));
            line("verdict", found.verdict);
            if let Some(proof) = &found.proof {
                line("proof", proof);
            }
        }
        for p in self.pending.iter().flatten() {
            line("pending", &format!("{} {}", p.version, p.description));
        }
        for s in self.sessions.iter().flatten() {
            let held = format!(
                "{} advisory lock {} held by pid {} ({}, {}s)",
                s.tool,
                s.key,
                s.pid,
                s.state,
                s.idle.as_secs()
            );
            line("session", &held);
        }
        out
    }
}
