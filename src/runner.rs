//! The built-in runner: plain SQL migrations in sqlx's format, from
//! `UNLATCH_MIGRATIONS_DIR` (`<version>_<description>.sql`, or `.up.sql` /
//! `.down.sql`), applied by sqlx's own `Migrator`, so that the rows in
//! `_sqlx_migrations` are exactly those sqlx-cli writes and reads.
//!
//! It runs under the same guard, heal rules and `UNLATCH_MIGRATE_TIMEOUT` as
//! a migrate command. sqlx's migrator returns early on an error without
//! releasing its advisory lock, which wedges a pooled connection; so it gets
//! a connection of its own, closed on every path. After a timeout or a
//! signal, dropping it is not enough: a PostgreSQL or MySQL server goes on
//! with a running statement (and keeps the transaction and sqlx's lock) until
//! it next talks to the client, so the runner ends that session from the
//! work connection first.
//!
//! May touch: the database's schema and `_sqlx_migrations`.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use sqlx::migrate::{MigrationType, Migrator};
use sqlx::{AnyConnection, Row};

use crate::clock::human;
use crate::db::{self, Db, Kind, Target};
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

/// A migration not applied yet; `unlatch status --json` shows it as it is.
#[derive(serde::Serialize)]
pub struct Pending {
    pub description: String,
    pub version: i64,
}

/// The migrations not applied yet.
pub async fn pending(db: &mut Db, migrator: &Migrator) -> anyhow::Result<Vec<Pending>> {
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
        .map(|m| Pending {
            description: m.description.to_string(),
            version: m.version,
        })
        .collect())
}

/// Applies the pending migrations in `dir` on a connection of their own,
/// opened within `wait_timeout`, for at most `migrate_timeout`.
pub async fn run(
    target: &Target,
    dir: &Path,
    db: &mut Db,
    wait_timeout: Duration,
    migrate_timeout: Duration,
    stop: &mut Stop,
) -> anyhow::Result<()> {
    let migrator = load(dir).await?;
    let todo = pending(db, &migrator).await?;
    if todo.is_empty() {
        log::info!("UNLATCH_MIGRATIONS_DIR={}: nothing pending", dir.display());
        return Ok(());
    }
    let names: Vec<String> = todo
        .iter()
        .map(|p| format!("{} {}", p.version, p.description))
        .collect();
    log::info!(
        "UNLATCH_MIGRATIONS_DIR={}: applying {}",
        dir.display(),
        names.join(", ")
    );
    let mut conn = db::wait_for(target, db::Role::Work, wait_timeout, stop)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the database {} is gone", target.redacted))?;
    let session = session_id(db.kind, conn.conn()).await?;
    let started = std::time::Instant::now();
    // Err(Some(n)): signal n; Err(None): the timeout.
    let finished = tokio::select! {
        r = tokio::time::timeout(migrate_timeout, migrator.run_direct(conn.conn())) => r.map_err(|_| None),
        n = stop.signalled() => Err(Some(n)),
    };
    let result = match finished {
        Ok(result) => result,
        Err(signal) => {
            drop(conn);
            end_session(db, session).await;
            return Err(match signal {
                Some(n) => Failure::signal(n),
                None => Failure::new(
                    Code::MigrationTimedOut,
                    format!(
                        "UNLATCH_MIGRATIONS_DIR={}: ran past UNLATCH_MIGRATE_TIMEOUT={}; its session was ended and \
                         the migration rolled back where the database can; not starting the app",
                        dir.display(),
                        human(migrate_timeout)
                    ),
                ),
            }
            .into());
        }
    };
    match result {
        Ok(()) => {
            conn.close().await;
            log::info!(
                "applied {} migration(s) in {}",
                todo.len(),
                human(started.elapsed())
            );
            Ok(())
        }
        Err(e) => Err(Failure::new(
            Code::MigrationFailed,
            format!(
                "UNLATCH_MIGRATIONS_DIR={}: {e}; not starting the app",
                dir.display()
            ),
        )
        .into()),
    }
}

/// The server's id for the runner's session: what [`end_session`] needs.
async fn session_id(kind: Kind, conn: &mut AnyConnection) -> anyhow::Result<Option<i64>> {
    let sql = match kind {
        Kind::Postgres => "SELECT CAST(pg_backend_pid() AS BIGINT)",
        Kind::MySql => "SELECT CAST(CONNECTION_ID() AS SIGNED)",
        // In-process: dropping the connection rolls the transaction back.
        Kind::Sqlite => return Ok(None),
    };
    Ok(Some(sqlx::query(sql).fetch_one(conn).await?.try_get(0)?))
}

/// Ends an abandoned runner session on the server, so its statement stops,
/// its transaction rolls back and sqlx's lock goes with it now rather than
/// whenever the statement would have finished.
async fn end_session(db: &mut Db, session: Option<i64>) {
    let Some(id) = session else { return };
    let sql = match db.kind {
        Kind::Postgres => format!("SELECT pg_terminate_backend({id})"),
        _ => format!("KILL {id}"),
    };
    // Not prepared: MySQL does not prepare KILL.
    match sqlx::raw_sql(&sql).execute(db.conn()).await {
        Ok(_) => log::info!("ended the migration's database session {id}"),
        Err(e) => log::warn!(
            "could not end the migration's database session {id} ({e:#}); the server ends it when its statement finishes"
        ),
    }
}
