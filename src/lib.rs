//! unlatch: a tiny container entrypoint that heals a stale migration lock,
//! runs the migrations, then starts the app.
//!
//! # Layout
//!
//! The pipeline runs in this order; each module opens with its job and what
//! it may touch.
//!
//! - [`config`]: every setting, from the environment, checked up front
//!   ([`ghost`] maps Ghost's own database settings).
//! - [`db`]: where the database is, waiting for it, the SQL that differs.
//! - [`guard`]: unlatch's own session lock, so replicas take turns.
//! - [`tools`]: one adapter per migration tool: find and free its lock.
//! - [`heal`]: live or stale; wait, clear, roll back or refuse.
//! - [`migrate`]: the migrate command, under a timeout.
//! - [`process`]: signals, child processes and the final exec.
//! - [`status`]: `unlatch status`.
//!
//! [`exit`] holds the exit codes, [`clock`] the timestamps, [`logging`] the
//! line format.

pub mod clock;
pub mod config;
pub mod db;
pub mod exit;
pub mod ghost;
pub mod guard;
pub mod heal;
pub mod logging;
pub mod migrate;
pub mod process;
pub mod status;
pub mod tools;

use config::Config;
use db::Db;
use process::Stop;

/// Everything before COMMAND starts: wait, guard, heal, migrate.
pub async fn preflight(config: &Config) -> anyhow::Result<()> {
    let mut stop = Stop::install()?;
    let Some(target) = &config.database else {
        log::info!(
            "no database configured (UNLATCH_DATABASE_URL, DATABASE_URL, Ghost's database__* variables or \
             config.$NODE_ENV.json): skipping the database steps"
        );
        if let Some(argv) = &config.migrate_cmd {
            migrate::run(argv, None, config, &mut stop).await?;
        }
        return Ok(());
    };
    log::debug!("database {} from {}", target.redacted, target.source);
    let db = db::wait_for(target, config.wait_timeout, &mut stop).await?;
    let guard = if db.is_none() && target.kind == db::Kind::Postgres {
        // PostgreSQL's advisory locks live in a database; there is none yet.
        guard::Guard::None
    } else {
        guard::acquire(target, config.lock_wait, &mut stop).await?
    };
    let result = under_guard(config, db, &mut stop).await;
    guard.release().await;
    result
}

async fn under_guard(config: &Config, mut db: Option<Db>, stop: &mut Stop) -> anyhow::Result<()> {
    let tool = match &mut db {
        Some(db) => tools::select(config.tool, db).await?,
        None => None,
    };
    if let (Some(tool), Some(db)) = (&tool, &mut db) {
        heal::settle(tool.as_ref(), db, config, stop).await?;
    }
    if let Some(argv) = &config.migrate_cmd {
        let watched = match (&tool, &mut db) {
            (Some(tool), Some(db)) => Some(migrate::Watched {
                tool: tool.as_ref(),
                db,
            }),
            _ => None,
        };
        migrate::run(argv, watched, config, stop).await?;
    }
    if let Some(db) = db {
        db.close().await;
    }
    Ok(())
}
