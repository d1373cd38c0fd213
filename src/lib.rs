//! unlatch: a tiny container entrypoint that heals a stale migration lock,
//! runs the migrations, then starts the app.
//!
//! # Layout
//!
//! The pipeline runs in this order; each module opens with its job and what
//! it may touch.
//!
//! - [`config`]: every setting, from the environment ([`mod@env`]), checked up
//!   front ([`apps`]: the app profiles, each app's own database settings
//!   mapped to the database, the tool and its table).
//! - [`db`]: where the database is, waiting for it, the SQL that differs
//!   ([`dialect`] reads the tools' URL forms, [`tls`] the encryption).
//! - [`guard`]: unlatch's own session lock, so replicas take turns
//!   ([`look`]: on PostgreSQL, what the steps below read, in its round trip).
//! - [`tools`]: one adapter per migration tool: find and free its lock.
//! - [`sessions`]: PostgreSQL sessions holding a tool's advisory lock.
//! - [`heal`]: live or stale; wait, clear, roll back or refuse
//!   ([`proof`]: whether a live lock's holder is provably gone;
//!   [`backup`] copies a SQLite database before it changes).
//! - [`hooks`]: the `entrypoint.d` folder, after the heal.
//! - [`migrate`]: the migrate command, under a timeout; [`runner`], the
//!   built-in runner for plain SQL migrations.
//! - [`launch`]: COMMAND takes over (exec) or is supervised, or the
//!   preflight was all.
//! - [`supervise`]: unlatch as PID 1: signals forwarded, zombies reaped.
//! - [`process`]: signals, child processes and the exec itself.
//! - [`state`]: unlatch's own small table, shared by replicas.
//! - [`trail`]: every change to a tool's table, made with its record in
//!   `unlatch_history`; `unlatch history`.
//! - [`status`]: `unlatch status`.
//!
//! [`exit`] holds the exit codes, [`clock`] the timestamps, [`logging`] the
//! line format, [`user`] the run-as identities, [`wait`] the one way to
//! wait (for the database, the guard, a live lock).

pub mod apps;
pub mod backup;
pub mod clock;
pub mod config;
pub mod db;
pub mod dialect;
pub mod env;
pub mod exit;
pub mod guard;
pub mod heal;
pub mod hooks;
pub mod launch;
pub mod logging;
pub mod look;
pub mod migrate;
pub mod process;
pub mod proof;
pub mod runner;
pub mod sessions;
pub mod state;
pub mod status;
pub mod supervise;
pub mod tls;
pub mod tools;
pub mod trail;
pub mod user;
pub mod wait;

use config::Config;
use db::Db;
use process::Stop;

/// What the preflight hands to COMMAND: the variables hooks wrote.
#[derive(Debug, Default)]
pub struct Prepared {
    pub env: hooks::HandedEnv,
}

/// Everything before COMMAND starts: wait, guard, heal, hooks, migrate.
pub async fn preflight(config: &Config) -> anyhow::Result<Prepared> {
    let mut stop = Stop::install()?;
    let Some(target) = &config.database else {
        log::info!(
            "no database configured (UNLATCH_DATABASE_URL, DATABASE_URL, Ghost's database__* variables or \
             config.$NODE_ENV.json): skipping the database steps"
        );
        let env = hooks::run_all(&config.hooks, &mut stop).await?;
        if let Some(argv) = &config.migrate_cmd {
            migrate::run(argv, &env, None, &config.heal, &mut stop).await?;
        }
        return unless_stopped(Prepared { env }, &mut stop).await;
    };
    log::debug!("database {} from {}", target.redacted, target.source);
    let (db, early) = tokio::join!(
        db::wait_for(target, db::Role::Work, config.wait_timeout, &mut stop),
        guard::connect_early(target)
    );
    let mut db = db?;
    // On PostgreSQL the guard's first try also reads what the steps below
    // need (see [`look`]).
    let candidates = tools::candidates(config.tool, &config.tool_settings);
    let read = look::statement(target, &candidates);
    let tried = guard::try_acquire(
        target,
        early,
        db.as_mut(),
        config.heal.lock_wait,
        config.wait_timeout,
        &mut stop,
        read.as_deref(),
    );
    let mut guard = match tried.await? {
        guard::Try::Taken(guard) => guard,
        // The work connection goes back while this replica waits, unless the
        // guard is on it ([`guard::Waiter::on_work`]), and opens again after.
        guard::Try::Busy(waiter) => {
            let given_back = !waiter.on_work() && db.take().is_some();
            let guard = waiter.wait(db.as_mut(), &mut stop).await?;
            if given_back {
                db = db::wait_for(target, db::Role::Work, config.wait_timeout, &mut stop).await?;
            }
            guard
        }
    };
    let look = guard
        .first_read
        .take()
        .map(|row| look::Look::read(&row))
        .transpose()?;
    if let Some(look) = &look {
        log::debug!(
            "first look, under the guard: tables present {:?}",
            look.tables
        );
    }
    if let (true, Some(file)) = (guard.on_file(), &target.sqlite_file) {
        // No other unlatch is copying this database now.
        backup::remove_leftovers(file);
    }
    let result = under_guard(config, target, &mut db, guard.holds(), look, &mut stop)
        .await
        .map_err(|e| db::sqlite_refusal(e, target));
    // A guard on the work connection is released on it, before it closes.
    guard.release(db.as_mut()).await;
    if let Some(db) = db {
        db.close().await;
    }
    unless_stopped(result?, &mut stop).await
}

/// `prepared`, unless a TERM or INT came during a step that could not be
/// interrupted: a stop is answered, never swallowed by a start.
async fn unless_stopped(prepared: Prepared, stop: &mut Stop) -> anyhow::Result<Prepared> {
    match stop.pending().await {
        Some(n) => Err(exit::Failure::signal(n).into()),
        None => Ok(prepared),
    }
}

/// The preflight's steps, under the guard. `guarded`: unlatch holds its
/// guard ([`guard::Guard::holds`]). `look`: what the guard's first try read
/// (see [`look`] for how long each part holds).
async fn under_guard(
    config: &Config,
    target: &db::Target,
    db: &mut Option<Db>,
    guarded: bool,
    look: Option<look::Look>,
    stop: &mut Stop,
) -> anyhow::Result<Prepared> {
    let present = look.as_ref().map(|l| l.tables.as_slice());
    let tool = match db {
        Some(db) => tools::select(config.tool, &config.tool_settings, db, present).await?,
        None => None,
    };
    let state_absent = look.as_ref().is_some_and(|l| !l.has(state::TABLE));
    let mut free_at_once = true;
    if let (Some(tool), Some(db)) = (&tool, &mut *db) {
        free_at_once =
            heal::settle(tool.as_ref(), db, target, &config.heal, stop, state_absent).await?;
    }
    // With no tool found yet (a first deploy), every candidate's lock may
    // be the one the migrate command takes.
    let unfound = match &tool {
        Some(_) => Vec::new(),
        None => tools::candidates(config.tool, &config.tool_settings),
    };
    if let (None, Some(db), Some(_)) = (&tool, db.as_mut(), &config.migrate_cmd) {
        // The lock the command is about to take is free.
        heal::no_lock_yet(db, &unfound, &config.heal).await?;
    }
    if let Some(db) = db.as_mut() {
        // The advisory locks that can block this app's tool: the one found,
        // or every candidate's.
        let blocking = match &tool {
            Some(tool) => std::slice::from_ref(tool),
            None => unfound.as_slice(),
        };
        // The names as the look saw them, unless the heal waited or wrote since.
        let names = look.filter(|_| free_at_once).map(|l| l.names);
        sessions::check(db, blocking, names, &config.heal).await?;
    }
    let env = hooks::run_all(&config.hooks, stop).await?;
    let migrating = config.migrate_cmd.is_some() || config.migrations_dir.is_some();
    if let (true, true, Some(db)) = (migrating, config.sqlite_backup, db.as_mut()) {
        backup::sqlite(
            db,
            &config.heal.backup,
            "before the migrations (UNLATCH_SQLITE_BACKUP=1)",
            stop,
        )
        .await?;
    }
    if let Some(argv) = &config.migrate_cmd {
        let watched = match (tool.as_deref(), db.as_mut()) {
            (Some(tool), Some(db)) => Some(migrate::Watched {
                tool,
                db,
                target,
                guarded,
            }),
            _ => None,
        };
        migrate::run(argv, &env, watched, &config.heal, stop).await?;
    }
    if let Some(dir) = &config.migrations_dir {
        if db.is_none() {
            *db = Some(create_sqlite_file(target, config, stop).await?);
        }
        let db = db.as_mut().expect("just made");
        let (wait, limit) = (config.wait_timeout, config.heal.migrate_timeout);
        runner::run(target, dir, db, wait, limit, stop).await?;
    }
    Ok(Prepared { env })
}

/// A fresh SQLite database for the built-in runner to migrate (a migrate
/// command makes its own; the runner, like sqlx, needs one to exist). It
/// belongs to the user the app runs as (`UNLATCH_RUN_AS`), given before
/// any connection opens it: SQLite, run as root, gives the journal files it
/// makes the database file's owner, so those follow.
async fn create_sqlite_file(
    target: &db::Target,
    config: &Config,
    stop: &mut Stop,
) -> anyhow::Result<Db> {
    let Some(file) = &target.sqlite_file else {
        return Err(exit::Failure::new(
            exit::Code::MigrationFailed,
            format!(
                "the database {} does not exist; the built-in runner does not create databases",
                target.redacted
            ),
        )
        .into());
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
    {
        Ok(created) => {
            give_to_app_user(&created, file, config)?;
            log::info!(
                "created the empty database file {} for UNLATCH_MIGRATIONS_DIR",
                file.display()
            );
        }
        // Made since unlatch looked (by whom, it cannot tell): left as it is.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(anyhow::anyhow!(
                "cannot create the database file {} for UNLATCH_MIGRATIONS_DIR: {e}",
                file.display()
            ))
        }
    }
    db::wait_for(target, db::Role::Work, config.wait_timeout, stop)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{} vanished", file.display()))
}

/// Gives the file unlatch just created to `UNLATCH_RUN_AS`; on failure the
/// empty file goes, so that a later start does not migrate a file the app
/// cannot write.
fn give_to_app_user(
    created: &std::fs::File,
    file: &std::path::Path,
    config: &Config,
) -> anyhow::Result<()> {
    let Some(identity) = &config.launch.run_as else {
        return Ok(());
    };
    let (uid, gid) = (identity.uid.as_raw(), identity.gid.as_raw());
    let who = format!("UNLATCH_RUN_AS={} (uid {uid}, gid {gid})", identity.spec);
    if let Err(e) = std::os::unix::fs::fchown(created, Some(uid), Some(gid)) {
        let _ = std::fs::remove_file(file);
        return Err(anyhow::anyhow!(
            "cannot give the new database file {} to {who}: {e}; unlatch must run as root to \
             create it for another user, or create the file beforehand",
            file.display()
        ));
    }
    log::debug!("gave {} to {who}", file.display());
    Ok(())
}
