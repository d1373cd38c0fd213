//! Migrate: run `UNLATCH_MIGRATE_CMD` under its timeout, and clean up after
//! a migrator that did not finish.
//!
//! A migrator that timed out, was stopped, or failed is gone when this runs,
//! so a lock it took cannot be live. unlatch frees it only when that is
//! provable: the lock was free when the command started, unlatch held its
//! guard throughout (so no other replica could take it), and its timestamp
//! is not earlier than the command's start. Without the guard (a guard file
//! it could not open) no lock is provably the command's: another replica,
//! just as unguarded, may hold it. Anything else is left alone, and said so.
//!
//! A command that succeeded yet left the lock set (a wrapper that exited
//! without waiting for its migrator, whose process group unlatch then
//! ended) is healed at once when its holder is provably gone ([`heal::by_proof`],
//! the proof logged); otherwise it is said in one warning. The app starts
//! either way.
//!
//! May touch: the migrate command; the tool's lock, through its adapter.

use std::time::Duration;

use jiff::Timestamp;

use crate::clock::human;
use crate::db::{Db, Target};
use crate::exit::{Code, Failure};
use crate::heal;
use crate::process::{self, Ended, Limits, Output, Spec, Stop};
use crate::tools::{LockState, Tool};

/// The lock a run may have to clean up after.
pub struct Watched<'a> {
    pub tool: &'a dyn Tool,
    pub db: &'a mut Db,
    pub target: &'a Target,
    /// Whether unlatch holds its guard ([`crate::guard::Guard::holds`]):
    /// only then can a lock taken during the run be the command's own.
    pub guarded: bool,
}

/// Runs the migrate command; `env` comes from the hooks' env file.
pub async fn run(
    argv: &[String],
    env: &[(String, String)],
    mut watched: Option<Watched<'_>>,
    config: &heal::Settings,
    stop: &mut Stop,
) -> anyhow::Result<()> {
    let before = match &mut watched {
        Some(w) => Some(w.tool.observe(w.db, &config.lock_zone).await?),
        None => None,
    };
    // Timestamps are written to the second: allow for the truncation.
    let started = Timestamp::now() - Duration::from_secs(1);
    let ended = command("UNLATCH_MIGRATE_CMD", argv, env, config, stop).await?;
    let failure = match ended {
        Ended::Exited(status) if status.success() => {
            if let Some(w) = watched {
                said_if_left_locked(w, config, stop).await;
            }
            return Ok(());
        }
        Ended::Exited(_) | Ended::CouldNotStart(_) => Failure::new(
            Code::MigrationFailed,
            format!(
                "UNLATCH_MIGRATE_CMD {}; not starting the app",
                ended.describe()
            ),
        ),
        Ended::TimedOut => timed_out("UNLATCH_MIGRATE_CMD", config, "not starting the app"),
        Ended::Stopped(n) => Failure::signal(n),
    };
    if let (Some(w), Some(LockState::Free)) = (watched, before) {
        free_own_lock(w, started, config, stop).await?;
    }
    Err(failure.into())
}

/// Runs `name` (the migrate or the rollback command) as migrations run:
/// as `UNLATCH_MIGRATE_RUN_AS`, under `UNLATCH_MIGRATE_TIMEOUT`, its output
/// passed on.
pub async fn command(
    name: &str,
    argv: &[String],
    env: &[(String, String)],
    config: &heal::Settings,
    stop: &mut Stop,
) -> Result<Ended, Failure> {
    let limits = Limits {
        timeout: config.migrate_timeout,
        grace: config.kill_grace,
    };
    let spec = Spec {
        argv,
        run_as: config.migrate_run_as.as_ref(),
        env,
        pass_fd: None,
    };
    process::run(name, spec, limits, Output::Inherit, stop).await
}

/// `name` ran past `UNLATCH_MIGRATE_TIMEOUT`; `then` says what follows.
pub fn timed_out(name: &str, config: &heal::Settings, then: &str) -> Failure {
    let limit = human(config.migrate_timeout);
    Failure::new(
        Code::MigrationTimedOut,
        format!("{name} ran past UNLATCH_MIGRATE_TIMEOUT={limit} and was stopped; {then}"),
    )
}

/// After a migrate command that succeeded, the lock should be free; if it
/// is not (a wrapper that exited 0 without waiting for its migrator, which
/// unlatch then ended as a leftover), a live lock whose holder is provably
/// gone is healed at once; otherwise one warning says what was seen. The
/// app starts all the same: the command said it succeeded. A failed look or
/// heal is said, and changes nothing either.
async fn said_if_left_locked(w: Watched<'_>, config: &heal::Settings, stop: &mut Stop) {
    let state = match w.tool.observe(w.db, &config.lock_zone).await {
        Ok(LockState::Free) => return,
        Ok(state) if heal::reported_only(w.tool, &state).is_some() => return,
        Ok(state) => state,
        Err(e) => {
            let place = w.tool.place();
            log::warn!("could not look at {place} after UNLATCH_MIGRATE_CMD succeeded: {e:#}");
            return;
        }
    };
    let verdict = heal::judge(&state, Timestamp::now(), None, config.lock_ttl);
    let account = heal::account(w.tool, &state, &verdict, config);
    let later = match verdict {
        heal::Verdict::Live(_) => {
            let (tool, db) = (w.tool, w.db);
            match heal::by_proof(tool, db, w.target, &state, &account, config, stop).await {
                Ok(heal::ByProof::Healed) => return,
                Ok(heal::ByProof::NoProof(why)) => format!(
                    "no proof its holder is gone ({why}), so a later start waits for it up to UNLATCH_LOCK_TTL"
                ),
                Ok(heal::ByProof::Changed) => "it changed while unlatch looked".to_owned(),
                Err(e) => format!("it is not healed ({e:#}); a later start looks again"),
            }
        }
        _ => "the next start heals it".to_owned(),
    };
    log::warn!(
        "UNLATCH_MIGRATE_CMD exited with 0 but left {account}: starting the app all the same. The tool \
         refuses to migrate until it is freed; {later} (did a wrapper exit without waiting for its migrator?)"
    );
}

/// Frees the lock the finished migrator took, if it provably took it.
async fn free_own_lock(
    w: Watched<'_>,
    started: Timestamp,
    config: &heal::Settings,
    stop: &mut Stop,
) -> anyhow::Result<()> {
    let state = w.tool.observe(w.db, &config.lock_zone).await?;
    let LockState::Held(lock) = &state else {
        return Ok(());
    };
    if lock.report_only.is_some() {
        return Ok(());
    }
    let taken = lock.acquired_at.as_deref().unwrap_or("NULL");
    let during_run = lock.taken.is_some_and(|t| t >= started);
    if during_run && !w.guarded {
        log::warn!(
            "{} is locked (taken at {taken}, after the migrate command started), but unlatch ran without its \
             guard, so another replica may hold it; leaving it",
            w.tool.place()
        );
    } else if during_run {
        let why = format!(
            "the migrate command is gone but left {} locked (taken at {taken}, after it started, while unlatch \
             held the guard)",
            w.tool.place()
        );
        heal::release(w.tool, w.db, &state, config, &why, stop).await?;
    } else {
        log::warn!(
            "{} is locked (taken at {taken}) but not provably by the migrate command; leaving it",
            w.tool.place()
        );
    }
    Ok(())
}
