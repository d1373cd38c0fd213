//! The built-in runner: plain SQL migrations in sqlx's format, from
//! `UNLATCH_MIGRATIONS_DIR` (`<version>_<description>.sql`, or `.up.sql` /
//! `.down.sql`), applied by sqlx's own `Migrator`, so that the rows in
//! `_sqlx_migrations` are exactly those sqlx-cli writes and reads.
//!
//! It runs under the same guard, heal rules and `UNLATCH_MIGRATE_TIMEOUT` as
//! a migrate command. sqlx's migrator returns early on an error without
//! releasing its advisory lock, which wedges a pooled connection; so it gets
//! a connection of its own, closed (or, after a timeout or a signal,
//! dropped) on every path, which releases that lock with the session.
//!
//! May touch: the database's schema and `_sqlx_migrations`.

use std::collections::HashSet;
use std::path::Path;

use sqlx::migrate::{MigrationType, Migrator};
use sqlx::Row;

use crate::clock::human;
use crate::config::Config;
use crate::db::{Db, Role, Target};
use crate::exit::{Code, Failure};
use crate::process::Stop;

const TABLE: &str = "_sqlx_migrations";

/// The migrations in `dir`, read as sqlx reads them.
pub async fn load(dir: &Path) -> anyhow::Result<Migrator> {
    Migrator::new(dir).await.map_err(|e| {
        Failure::new(
            Code::Config,
            format!("UNLATCH_MIGRATIONS_DIR={}: {e}", dir.display()),
        )
        .into()
    })
}

/// `(version, description)` of the migrations not applied yet.
pub async fn pending(db: &mut Db, migrator: &Migrator) -> anyhow::Result<Vec<(i64, String)>> {
    let mut applied = HashSet::new();
    if db.table_exists(TABLE).await? {
        let sql = format!("SELECT version FROM {TABLE} WHERE success");
        for row in sqlx::query(&sql).fetch_all(db.conn()).await? {
            applied.insert(row.try_get::<i64, _>(0)?);
        }
    }
    Ok(migrator
        .iter()
        .filter(|m| !matches!(m.migration_type, MigrationType::ReversibleDown))
        .filter(|m| !applied.contains(&m.version))
        .map(|m| (m.version, m.description.to_string()))
        .collect())
}

/// Applies the pending migrations in `dir` on a connection of their own.
pub async fn run(
    target: &Target,
    dir: &Path,
    db: &mut Db,
    config: &Config,
    stop: &mut Stop,
) -> anyhow::Result<()> {
    let migrator = load(dir).await?;
    let todo = pending(db, &migrator).await?;
    if todo.is_empty() {
        log::info!("UNLATCH_MIGRATIONS_DIR={}: nothing pending", dir.display());
        return Ok(());
    }
    let names: Vec<String> = todo.iter().map(|(v, d)| format!("{v} {d}")).collect();
    log::info!(
        "UNLATCH_MIGRATIONS_DIR={}: applying {}",
        dir.display(),
        names.join(", ")
    );
    let mut conn = target.connect_once(Role::Work).await?;
    let started = std::time::Instant::now();
    let outcome = tokio::select! {
        r = tokio::time::timeout(config.migrate_timeout, migrator.run_direct(&mut conn)) => r,
        n = stop.signalled() => return Err(Failure::signal(n).into()),
    };
    match outcome {
        Ok(Ok(())) => {
            let _ = sqlx::Connection::close(conn).await;
            log::info!("applied {} migration(s) in {}", todo.len(), human(started.elapsed()));
            Ok(())
        }
        Ok(Err(e)) => Err(Failure::new(
            Code::MigrationFailed,
            format!("UNLATCH_MIGRATIONS_DIR={}: {e}; not starting the app", dir.display()),
        )
        .into()),
        Err(_) => Err(Failure::new(
            Code::MigrationTimedOut,
            format!(
                "UNLATCH_MIGRATIONS_DIR={}: ran past UNLATCH_MIGRATE_TIMEOUT={}; its connection was closed and the \
                 migration rolled back where the database can; not starting the app",
                dir.display(),
                human(config.migrate_timeout)
            ),
        )
        .into()),
    }
}
