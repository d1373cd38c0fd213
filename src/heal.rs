//! Heal: decide whether a migration lock is live or stale, wait for a live
//! one, and free a stale one as `UNLATCH_ON_STALE` says.
//!
//! A lock is stale when it has been held longer than `UNLATCH_LOCK_TTL`.
//! Its age comes from the holder's own timestamp; when that is missing,
//! unreadable or in the future, the age is counted from the moment this
//! unlatch first saw that same holder (so a lock of unknown age is freed
//! only after unlatch itself has watched it, unchanged, for a whole TTL).
//! Past the TTL, a lock whose tool's advisory lock a session holds is still
//! live: that tool (golang-migrate, Prisma) is running its migrations.
//! A live lock is healed only when its holder is provably gone ([`proof`]:
//! no session or open file, and the holder used the database lately enough
//! to be still connected if alive), under the same policy as a stale one;
//! otherwise it is never touched: it is polled about once a second until it is released, goes stale, its
//! holder is proven gone, or `UNLATCH_LOCK_WAIT` runs out. Every write is
//! the adapter's compare-and-swap on what was observed; when it loses the
//! race, we look again rather than retry blindly.
//!
//! May touch: the tool's lock, through its adapter; the rollback command;
//! `unlatch_state`, through [`state`].

use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::backup;
use crate::clock::{self, human, LockZone};
use crate::db::{Db, Target};
use crate::exit::{Code, Failure};
use crate::migrate;
use crate::process::{Ended, Stop};
use crate::proof::{self, Finding, Recency, Since};
use crate::sessions;
use crate::state;
use crate::tools::{Lock, LockState, Stuck, Tool};
use crate::user::RunAs;
use crate::wait::{self, Wait};

/// What the heal reads from the configuration: the lock policy, and how a
/// rollback command runs (as the migrate command does, which [`crate::migrate`]
/// runs under these settings too).
#[derive(Debug)]
pub struct Settings {
    pub lock_ttl: Duration,
    pub lock_wait: Duration,
    pub lock_zone: LockZone,
    pub on_stale: OnStale,
    pub on_dirty: OnDirty,
    /// End a PostgreSQL session idle with a tool's advisory lock past the TTL.
    pub terminate_stale_sessions: bool,
    pub migrate_timeout: Duration,
    pub kill_grace: Duration,
    pub migrate_run_as: Option<RunAs>,
    /// How to copy a SQLite database before freeing its lock.
    pub backup: backup::Settings,
    /// Whether, and how, to look for a proof that a live lock's holder is gone.
    pub proof: proof::Settings,
}

/// What to do with a lock held longer than the TTL (`UNLATCH_ON_STALE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnStale {
    /// Compare-and-swap the lock back to free.
    Clear,
    /// Run this command first, then clear the lock if it is still held.
    Rollback(Vec<String>),
    /// Change nothing and stop.
    Fail,
}

/// What to do with a dirty or failed migration (`UNLATCH_ON_DIRTY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDirty {
    /// Change nothing; name the migration and the tool's repair command.
    Fail,
    /// Mark it not applied, as the tool's repair does, then migrate.
    Retry,
}

/// How often a live lock is looked at.
const POLL: Duration = Duration::from_secs(1);

/// How often instead while the only thing between it and a proof may pass
/// by itself soon (a killed holder's session lingers for some tens of ms,
/// at most a few hundred measured), during the first [`PROOF_HURRY`] of
/// the wait: past that, a holder still seen is most likely alive, and
/// looking five times a second (a SQLite connection reopened each time)
/// would only cost.
const PROOF_POLL: Duration = Duration::from_millis(200);
const PROOF_HURRY: Duration = Duration::from_secs(3);

/// What a lock's state means under the TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Free,
    /// Held for this long (if known), under the TTL: leave it alone.
    Live(Option<Duration>),
    /// Held past the TTL, or a missing row nobody can hold (age unknown).
    Stale(Option<Duration>),
}

impl Verdict {
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Free => "free",
            Verdict::Live(_) => "live",
            Verdict::Stale(_) => "stale",
        }
    }
}

/// What is said of a lock no process can leave stale (a lease, a row lock
/// of a transaction): reported, never healed. `None`: any other state.
pub fn reported_only(tool: &dyn Tool, state: &LockState) -> Option<String> {
    let LockState::Held(lock) = state else {
        return None;
    };
    let why = lock.report_only?;
    let at = lock.acquired_at.as_deref().unwrap_or("NULL");
    let holder = lock
        .holder
        .as_deref()
        .map(|h| format!(" by {h}"))
        .unwrap_or_default();
    Some(format!(
        "{} lock {} (row {}) held since {at}{holder}: report-only, nothing healed: {why}",
        tool.name(),
        tool.place(),
        lock.key
    ))
}

/// Judges `state`. `watched` is how long this unlatch has seen the same
/// holder; it stands in for the age when the holder's timestamp is no use.
pub fn judge(
    state: &LockState,
    now: Timestamp,
    watched: Option<Duration>,
    ttl: Duration,
) -> Verdict {
    match state {
        LockState::Free => Verdict::Free,
        LockState::Missing => Verdict::Stale(None),
        LockState::Held(lock) => {
            let age = lock.age(now).or(watched);
            match age {
                Some(age) if age >= ttl => Verdict::Stale(Some(age)),
                _ => Verdict::Live(age),
            }
        }
    }
}

/// A one-line account of a lock, for logs: where, holder, age, TTL.
pub fn account(tool: &dyn Tool, state: &LockState, verdict: &Verdict, config: &Settings) -> String {
    let age = match verdict {
        Verdict::Live(Some(a)) | Verdict::Stale(Some(a)) => Some(human(*a)),
        _ => None,
    };
    let (name, place, ttl) = (tool.name(), tool.place(), human(config.lock_ttl));
    match state {
        LockState::Free => format!("{name} lock {place} is free"),
        LockState::Missing => {
            format!("{name} lock {place} has no row: {name} treats that as locked, yet no process can hold it")
        }
        LockState::Held(lock) => {
            let at = lock.acquired_at.as_deref().unwrap_or("NULL");
            let clock = lock
                .clock
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            let holder = lock
                .holder
                .as_deref()
                .map(|h| format!(" by {h}"))
                .unwrap_or_default();
            match &lock.stuck {
                Stuck::Lock => {
                    let age = age.map_or("age unknown".to_owned(), |a| format!("held for {a}"));
                    format!("{name} lock {place} taken at {at}{clock}{holder}, {age}, UNLATCH_LOCK_TTL={ttl}")
                }
                Stuck::Dirty { migration } => {
                    let age = age.map_or("age unknown".to_owned(), |a| format!("{a} ago"));
                    format!(
                        "{name} {place}: migration {migration} failed or did not finish (recorded at {at}{clock}, \
                         {age}), UNLATCH_LOCK_TTL={ttl}"
                    )
                }
            }
        }
    }
}

/// Waits out a live lock and heals a stale one; returns once the lock is
/// free: `true` if it was at the first look, with nothing waited for or
/// written. Fails with `LockStillHeld` after `UNLATCH_LOCK_WAIT`, or
/// `StaleRefused` under `UNLATCH_ON_STALE=fail`. `state_absent`: unlatch's
/// own table was just seen absent under the guard (so no sighting to
/// forget, until this start records one).
pub async fn settle(
    tool: &dyn Tool,
    db: &mut Db,
    target: &Target,
    config: &Settings,
    stop: &mut Stop,
    state_absent: bool,
) -> anyhow::Result<bool> {
    let zone = &config.lock_zone;
    // UNLATCH_LOCK_WAIT counts from the first held lock seen, whoever holds it.
    let mut wait = Wait::new(config.lock_wait, wait::PACE);
    let mut state_absent = state_absent;
    let mut first = true;
    let mut no_proof = proof::Reasons::default();
    loop {
        // Before the look: a time the lock is seen free at is never later.
        let looked = Instant::now();
        let state = tool.observe(db, zone).await?;
        if let Some(said) = reported_only(tool, &state) {
            log::info!("{said}");
            return Ok(first);
        }
        let sightings = Sightings::Record(&mut state_absent);
        let verdict = judge_seen(tool, db, &state, config.lock_ttl, sightings).await?;
        let verdict = running_despite_age(tool, db, verdict).await?;
        let account = account(tool, &state, &verdict, config);
        match verdict {
            Verdict::Free => {
                log::info!("{account}");
                on_free(tool, db, config, looked, state_absent).await?;
                return Ok(first);
            }
            Verdict::Stale(_) => {
                if heal(tool, db, &state, &account, Cause::Stale, config, stop).await? {
                    return Ok(false);
                }
                said_changed(tool);
            }
            Verdict::Live(_) => {
                // Looked for after the lock was observed: the heal's
                // compare-and-swap is on what was seen before the proof.
                let pause = match by_proof(tool, db, target, &state, &account, config, stop).await?
                {
                    ByProof::Healed => return Ok(false),
                    ByProof::Changed => {
                        said_changed(tool);
                        first = false;
                        continue;
                    }
                    ByProof::NoProof(why) => {
                        let pause = if proof::may_pass(&why) && wait.elapsed() < PROOF_HURRY {
                            PROOF_POLL
                        } else {
                            POLL
                        };
                        if no_proof.fresh(&why) {
                            log::info!("{account}: no proof the holder is gone: {why}");
                        }
                        pause
                    }
                };
                let limit = human(config.lock_wait);
                let progress = |_| {
                    format!("{account}: live, leaving it alone; waiting up to UNLATCH_LOCK_WAIT={limit} for it to be released")
                };
                let timed_out = || {
                    let place = tool.place();
                    let why = format!(
                        "{place} is live and still held after UNLATCH_LOCK_WAIT={limit}: {account}"
                    );
                    Failure::new(Code::LockStillHeld, why).into()
                };
                wait.again(pause, stop, progress, timed_out).await?;
            }
        }
        first = false;
    }
}

/// A stale verdict made live when a session holds the tool's advisory
/// lock: golang-migrate and Prisma hold it for their whole run, so a marker
/// past the TTL under a held key is a long migration still running (its
/// dirty marker set before it ran), never one to heal. The age says nothing
/// of a marker whose tool records no time.
async fn running_despite_age(
    tool: &dyn Tool,
    db: &mut Db,
    verdict: Verdict,
) -> anyhow::Result<Verdict> {
    let Verdict::Stale(age) = verdict else {
        return Ok(verdict);
    };
    if sessions::holders(db, [tool], None).await?.is_empty() {
        return Ok(Verdict::Stale(age));
    }
    Ok(Verdict::Live(age))
}

/// The lock changed between the look and the compare-and-swap.
fn said_changed(tool: &dyn Tool) {
    log::info!(
        "{} lock {} changed while unlatch looked; looking again",
        tool.name(),
        tool.place()
    );
}

/// Why a held lock may be healed.
#[derive(Debug, Clone, Copy)]
enum Cause<'a> {
    /// Held past the TTL.
    Stale,
    /// Its holder is provably gone: this says how.
    Proven(&'a str),
}

impl std::fmt::Display for Cause<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Stale => f.write_str("stale"),
            Cause::Proven(how) => f.write_str(how),
        }
    }
}

/// What looking for a proof that a live lock's holder is gone came to.
#[derive(Debug)]
pub enum ByProof {
    /// Proven gone, and healed under the policy.
    Healed,
    /// Proven gone, but the lock changed before the compare-and-swap.
    Changed,
    /// Why there is no proof.
    NoProof(String),
}

/// Looks for a proof that the holder of `seen`, a live lock, is gone and,
/// with one, heals it as a stale one is healed (`UNLATCH_ON_STALE`,
/// `UNLATCH_ON_DIRTY`), the proof named as the cause. `account` is the
/// lock's line ([`account`]).
pub async fn by_proof(
    tool: &dyn Tool,
    db: &mut Db,
    target: &Target,
    seen: &LockState,
    account: &str,
    config: &Settings,
    stop: &mut Stop,
) -> anyhow::Result<ByProof> {
    Ok(
        match prove_gone(tool, db, target, seen, &config.proof, stop).await? {
            Finding::Gone { proof, evidence } => {
                let cause = format!("its holder is provably gone ({proof}: {evidence})");
                match heal(tool, db, seen, account, Cause::Proven(&cause), config, stop).await? {
                    true => ByProof::Healed,
                    false => ByProof::Changed,
                }
            }
            Finding::NoProof(why) => ByProof::NoProof(why),
        },
    )
}

/// Whether the holder of `seen` is provably gone ([`proof::look_for`]),
/// with what unlatch knows of its last use ([`recency`]). Writes nothing:
/// `unlatch status` asks it too.
pub async fn prove_gone(
    tool: &dyn Tool,
    db: &mut Db,
    target: &Target,
    seen: &LockState,
    settings: &proof::Settings,
    stop: &mut Stop,
) -> anyhow::Result<Finding> {
    let recency = match settings.proofs {
        // Its holder, alive, is connected whenever it took the lock: the
        // recency, which stands in for that where a pool may close idle
        // connections, would only turn a killed holder's row into a wait
        // for the TTL once its orphan session (still running the statement
        // it was killed in) ends later than UNLATCH_POOL_IDLE_TIMEOUT after
        // the row was written: a long migration, the very one killed.
        true if tool.holder_stays_connected() => Some(Recency::connected()),
        true => recency(tool, db, seen).await?,
        false => None,
    };
    proof::look_for(db, target, settings, recency.as_ref(), stop).await
}

/// How long ago the holder of `seen` used the database, at the most: it
/// did when it took the lock, by the lock's own timestamp (the age
/// [`judge`] reads, never a first sighting), or, for a lock with none,
/// after a start last saw it free ([`state::seen_free`], by the database's
/// clock).
async fn recency(
    tool: &dyn Tool,
    db: &mut Db,
    seen: &LockState,
) -> anyhow::Result<Option<Recency>> {
    let LockState::Held(lock) = seen else {
        return Ok(None);
    };
    // Before any clock is read: the age only grows from here.
    let measured = Instant::now();
    if let Some(age) = lock.age(Timestamp::now()) {
        let since = Since::Taken;
        return Ok(Some(Recency {
            since,
            age,
            measured,
        }));
    }
    let Some(free_at) = state::seen_free(db, tool.name()).await? else {
        return Ok(None);
    };
    let now = db.clock().await?;
    let since = Since::SeenFree;
    Ok(clock::age(free_at, now).map(|age| Recency {
        since,
        age,
        measured,
    }))
}

/// `tool`'s lock was seen free at `looked`, or freed: its first sighting
/// is forgotten and, for a lock that records no time of its own (proofs
/// on), that time is recorded ([`state::saw_free`]), both in one write.
/// `state_absent`: unlatch's table was seen absent (nothing to forget).
async fn on_free(
    tool: &dyn Tool,
    db: &mut Db,
    config: &Settings,
    looked: Instant,
    state_absent: bool,
) -> anyhow::Result<()> {
    let recorded = config.proof.proofs
        && !tool.dates_its_lock()
        && note_free(db, &[tool.name()], looked).await;
    if !recorded && !state_absent {
        state::forget_seen(db, tool.name()).await?;
    }
    Ok(())
}

/// [`state::saw_free`], a failure said in a warning: a user who may not
/// write `unlatch_state` (nor create it) still starts, its killed
/// migrations then waiting for the TTL. Whether it was recorded.
async fn note_free(db: &mut Db, tools: &[&str], looked: Instant) -> bool {
    let recorded = state::saw_free(db, tools, looked).await;
    if let Err(e) = &recorded {
        log::warn!(
            "could not record in {} when the lock of {} was seen free ({e:#}): a migration killed soon \
             after cannot be proven gone, and waits for UNLATCH_LOCK_TTL",
            state::TABLE,
            tools.join(" and ")
        );
    }
    recorded.is_ok()
}

/// Before a first migration, no tool's table there yet: records that the
/// lock of each of `candidates` whose lock records no time is free
/// ([`state::saw_free`]), since the migrate command about to run may use
/// any of them; a table made since the look is left to its tool.
pub async fn no_lock_yet(
    db: &mut Db,
    candidates: &[Box<dyn Tool>],
    config: &Settings,
) -> anyhow::Result<()> {
    if !config.proof.proofs {
        return Ok(());
    }
    let looked = Instant::now();
    let undated: Vec<&dyn Tool> = candidates
        .iter()
        .map(|t| t.as_ref())
        .filter(|t| !t.dates_its_lock())
        .collect();
    let tables: Vec<&str> = undated.iter().map(|t| t.table()).collect();
    // One catalog query for them all, as tools::select reads it.
    let present = db.existing_tables(&tables).await?;
    let free: Vec<&str> = undated
        .iter()
        .filter(|t| !present.iter().any(|p| p.eq_ignore_ascii_case(t.table())))
        .map(|t| t.name())
        .collect();
    if !free.is_empty() {
        note_free(db, &free, looked).await;
    }
    Ok(())
}

/// What judging a lock does with unlatch's first sightings (`unlatch_state`).
pub enum Sightings<'a> {
    /// A start: records a first sighting, and forgets it once the lock is
    /// seen free. The flag: unlatch's table was just seen absent under the
    /// guard (nothing to forget, until this start records a sighting).
    Record(&'a mut bool),
    /// `unlatch status`, which changes nothing: reads them only; a holder
    /// not seen before counts from now, as a start would record it.
    Read,
}

/// Judges `state` as a start does, and as `unlatch status` reports it: the
/// age from the holder's own timestamp or, when that is no use, from this
/// unlatch's first sighting of the same holder (see [`watched_for`]).
pub async fn judge_seen(
    tool: &dyn Tool,
    db: &mut Db,
    state: &LockState,
    ttl: Duration,
    sightings: Sightings<'_>,
) -> anyhow::Result<Verdict> {
    let watched = watched_for(tool, db, state, sightings).await?;
    Ok(judge(state, Timestamp::now(), watched, ttl))
}

/// How long unlatch has seen this very lock, when its own timestamp is no
/// use (none, unreadable, in the future): from the first sighting kept in
/// `unlatch_state`, so that restarts add up. A start records one (seeing
/// the lock free forgets it: [`on_free`]); recording one ends
/// `state_absent`.
async fn watched_for(
    tool: &dyn Tool,
    db: &mut Db,
    state: &LockState,
    sightings: Sightings<'_>,
) -> anyhow::Result<Option<Duration>> {
    match (state, sightings) {
        (LockState::Held(lock), sightings) if lock.age(Timestamp::now()).is_none() => {
            let signature = lock.signature();
            let first = match sightings {
                Sightings::Record(state_absent) => {
                    *state_absent = false;
                    Some(state::first_seen(db, tool.name(), &signature).await?)
                }
                Sightings::Read => state::seen_since(db, tool.name(), &signature).await?,
            };
            let now = Timestamp::now();
            Ok(first
                .and_then(|f| clock::age(f, now))
                .or(Some(Duration::ZERO)))
        }
        _ => Ok(None),
    }
}

/// Applies `UNLATCH_ON_STALE` to a stale lock, or `UNLATCH_ON_DIRTY` to a
/// stale dirty marker, as `account` tells it; `cause` says why it may be
/// healed (`stale`, or the proof that its holder is gone). `Ok(false)`: it
/// changed under us; nothing was done.
async fn heal(
    tool: &dyn Tool,
    db: &mut Db,
    seen: &LockState,
    account: &str,
    cause: Cause<'_>,
    config: &Settings,
    stop: &mut Stop,
) -> anyhow::Result<bool> {
    // A stale marker's account says how old it is; a proof is said.
    let dirty_lead = match cause {
        Cause::Stale => account.to_owned(),
        Cause::Proven(how) => format!("{account}; {how}"),
    };
    if let LockState::Held(Lock {
        stuck: Stuck::Dirty { migration },
        ..
    }) = seen
    {
        return match config.on_dirty {
            OnDirty::Fail => Err(Failure::new(
                Code::DirtyRefused,
                format!(
                    "{dirty_lead}: UNLATCH_ON_DIRTY=fail leaves it for a person to decide. The tool's repair, once \
                     the migration's effects are checked or undone: {}",
                    tool.manual_fix(db, seen)
                ),
            )
            .into()),
            OnDirty::Retry => {
                let why = format!(
                    "{dirty_lead}: UNLATCH_ON_DIRTY=retry; marked {migration} as not applied, as `{}` does, so that it runs again",
                    tool.manual_fix(db, seen)
                );
                release(tool, db, seen, config, &why, stop).await
            }
        };
    }
    match &config.on_stale {
        OnStale::Fail => Err(Failure::new(
            Code::StaleRefused,
            format!(
                "{account}: {cause}, and UNLATCH_ON_STALE=fail leaves it alone. To free it by hand, once sure \
                 no migration runs: {}",
                tool.manual_fix(db, seen)
            ),
        )
        .into()),
        OnStale::Clear => release(tool, db, seen, config, &format!("{account}: {cause}"), stop).await,
        OnStale::Rollback(argv) => {
            if *seen == LockState::Missing {
                return release(tool, db, seen, config, &format!("{account}: nothing to roll back"), stop).await;
            }
            log::info!("{account}: {cause}; running UNLATCH_ROLLBACK_CMD before freeing it");
            let ended = migrate::command("UNLATCH_ROLLBACK_CMD", argv, &[], config, stop).await?;
            let outcome = match ended {
                Ended::Exited(_) | Ended::CouldNotStart(_) => ended.describe(),
                Ended::TimedOut => {
                    let then = format!("{} is left as it was", tool.place());
                    return Err(migrate::timed_out("UNLATCH_ROLLBACK_CMD", config, &then).into());
                }
                Ended::Stopped(n) => return Err(Failure::signal(n).into()),
            };
            let now = tool.observe(db, &config.lock_zone).await?;
            if now == *seen {
                let why = format!("UNLATCH_ROLLBACK_CMD {outcome} and left the same holder's lock set");
                release(tool, db, seen, config, &why, stop).await
            } else {
                log::info!("UNLATCH_ROLLBACK_CMD {outcome}; it changed {} itself", tool.place());
                Ok(true)
            }
        }
    }
}

/// The one way unlatch writes to a tool's lock: a SQLite database is copied
/// first (no copy, no write), then the compare-and-swap, recorded in the
/// trail with `why` in its transaction, and logged with `why` when it goes
/// through.
pub async fn release(
    tool: &dyn Tool,
    db: &mut Db,
    seen: &LockState,
    config: &Settings,
    why: &str,
    stop: &mut Stop,
) -> anyhow::Result<bool> {
    backup::sqlite(db, &config.backup, "before freeing the lock", stop).await?;
    // Before the swap: whoever takes the lock next takes it after.
    let freeing = Instant::now();
    let swapped = tool.release(db, seen, &config.lock_zone, why).await?;
    if swapped {
        let how = match seen {
            LockState::Missing => "; put the row back, unlocked",
            LockState::Held(Lock {
                stuck: Stuck::Dirty { .. },
                ..
            }) => "",
            _ => "; freed it (compare-and-swap on what was observed)",
        };
        log::info!("{why}{how}");
        on_free(tool, db, config, freeing, false).await?;
    }
    Ok(swapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::Lock;

    const TTL: Duration = Duration::from_secs(900);

    fn held(taken_secs_ago: Option<i64>) -> LockState {
        let now = Timestamp::now().as_second();
        LockState::Held(Lock::row(
            "km01",
            taken_secs_ago.map(|s| s.to_string()),
            taken_secs_ago.map(|s| Timestamp::from_second(now - s).unwrap()),
        ))
    }

    /// The verdict's word: `free`, `live` or `stale`.
    fn word(state: &LockState, watched: Option<Duration>, ttl: Duration) -> &'static str {
        judge(state, Timestamp::now(), watched, ttl).word()
    }

    #[test]
    fn age_from_the_holders_timestamp() {
        let now = Timestamp::now();
        assert_eq!(judge(&LockState::Free, now, None, TTL), Verdict::Free);
        assert!(
            matches!(judge(&held(Some(60)), now, None, TTL), Verdict::Live(Some(a)) if a.as_secs() >= 59)
        );
        assert_eq!(word(&held(Some(901)), None, TTL), "stale");
        // What unlatch watched does not matter when the timestamp is good.
        assert_eq!(word(&held(Some(60)), Some(TTL * 2), TTL), "live");
    }

    #[test]
    fn unknown_or_future_age_counts_from_first_sighting() {
        let now = Timestamp::now();
        let zero = Some(Duration::ZERO);
        assert_eq!(judge(&held(None), now, zero, TTL), Verdict::Live(zero));
        assert_eq!(word(&held(None), Some(TTL), TTL), "stale");
        // Taken an hour in the future: the clock of the writer is wrong.
        let future = held(Some(-3600));
        assert_eq!(word(&future, Some(Duration::from_secs(5)), TTL), "live");
        assert_eq!(word(&future, Some(TTL), TTL), "stale");
        assert_eq!(judge(&held(None), now, None, TTL), Verdict::Live(None));
    }

    #[test]
    fn a_missing_row_is_stale_at_once() {
        assert_eq!(
            judge(&LockState::Missing, Timestamp::now(), None, TTL),
            Verdict::Stale(None)
        );
    }

    #[test]
    fn zero_ttl_makes_every_held_lock_stale() {
        assert_eq!(word(&held(Some(0)), None, Duration::ZERO), "stale");
    }
}
