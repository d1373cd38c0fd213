//! Guard: unlatch's own lock, so that replicas starting together run the
//! preflight one at a time.
//!
//! It is session-scoped on purpose: `pg_advisory_lock` on PostgreSQL,
//! `GET_LOCK` on MySQL/MariaDB, an OS file lock beside the database file on
//! SQLite. A replica that dies frees it with its session or file handle, so
//! the guard itself can never go stale; that is the property the migration
//! tools' row locks lack. It is held on a connection of its own and released
//! on every path: explicitly by [`Guard::release`], and by the connection or
//! file closing if unlatch exits any other way.
//!
//! The wait is done in rounds of about a second (a server-side timeout on
//! the lock call), so a TERM is answered promptly and an abandoned request
//! never outlives its round on the server.
//!
//! May touch: its own advisory lock, or the `<database>.unlatch-lock` file.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::{AnyConnection, Row};

use crate::clock::human;
use crate::config::Config;
use crate::db::{self, Db, Kind, Role, Target};
use crate::exit::{Code, Failure};
use crate::process::Stop;

/// `pg_advisory_lock` key: the bytes of "unlatch". Advisory keys are per
/// database, so one constant serves every database on a server.
pub const PG_KEY: i64 = 0x0075_6e6c_6174_6368;

/// A held guard; dropping it releases it too.
pub enum Guard {
    Session {
        db: Db,
        name: String,
        release_sql: String,
        waited: bool,
    },
    File {
        _file: File,
        path: PathBuf,
        waited: bool,
    },
    /// Nothing to guard (no file yet, or an in-memory database).
    None,
}

/// The MySQL lock name: per database, within `GET_LOCK`'s 64 characters.
fn mysql_lock_name(database: &str) -> String {
    format!("unlatch:{database}").chars().take(64).collect()
}

/// Opens the guard's connection, if the database has sessions; meant to
/// run alongside the first wait for the database, which it then saves a
/// round of connection set-up (a few ms on PostgreSQL). `None` on any
/// failure: [`acquire`] then connects itself.
pub async fn connect_early(target: &Target) -> Option<AnyConnection> {
    if target.kind == Kind::Sqlite {
        return None;
    }
    let connect = target.connect_once(Role::Guard);
    tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .ok()?
        .ok()
}

/// Takes the guard, waiting at most `UNLATCH_LOCK_WAIT` for another replica
/// to finish (and `UNLATCH_WAIT_TIMEOUT` for its connection, when `early`
/// has none). The first try does not wait; when it finds the guard taken,
/// `before_waiting` runs once, so the caller can give back what it should
/// not hold while it waits.
pub async fn acquire(
    target: &Target,
    early: Option<AnyConnection>,
    config: &Config,
    stop: &mut Stop,
    before_waiting: impl FnOnce(),
) -> anyhow::Result<Guard> {
    let wait = config.lock_wait;
    match target.kind {
        Kind::Sqlite => match &target.sqlite_file {
            Some(file) => file_guard(file, wait, stop, before_waiting).await,
            None => Ok(Guard::None),
        },
        Kind::MySql | Kind::Postgres => {
            session_guard(
                target,
                early,
                (wait, config.wait_timeout),
                stop,
                before_waiting,
            )
            .await
        }
    }
}

/// `waits`: for the guard, and for its connection.
async fn session_guard(
    target: &Target,
    early: Option<AnyConnection>,
    (wait, connect_timeout): (Duration, Duration),
    stop: &mut Stop,
    before_waiting: impl FnOnce(),
) -> anyhow::Result<Guard> {
    // GET_LOCK is server-wide, so MySQL's guard needs no database: it works
    // even before the migrate command creates it.
    let mut db = match early {
        Some(conn) => Db::new(conn, target.kind),
        None => db::connect_within(target, Role::Guard, connect_timeout, stop)
            .await?
            .ok_or_else(|| {
                Failure::new(
                    Code::Unreachable,
                    format!(
                        "guard connection to {}: the database is gone",
                        target.redacted
                    ),
                )
            })?,
    };
    // Each statement answers 1 when it took the guard: the first without
    // waiting, the others after a round of about a second.
    let (name, try_sql, wait_sql, release_sql) = match target.kind {
        Kind::MySql => {
            let key = mysql_lock_name(&target.name);
            (
                format!("GET_LOCK('{key}')"),
                format!("SELECT COALESCE(GET_LOCK('{key}', 0), 0)"),
                format!("SELECT COALESCE(GET_LOCK('{key}', 1), 0)"),
                format!("SELECT RELEASE_LOCK('{key}')"),
            )
        }
        _ => (
            format!("pg_advisory_lock({PG_KEY})"),
            format!(
                "SELECT CAST(CASE WHEN pg_try_advisory_lock({PG_KEY}) THEN 1 ELSE 0 END AS BIGINT)"
            ),
            format!("SELECT CAST(1 AS BIGINT) FROM (SELECT pg_advisory_lock({PG_KEY})) AS taken"),
            format!("SELECT pg_advisory_unlock({PG_KEY})"),
        ),
    };
    let started = Instant::now();
    let mut waited = false;
    let mut before_waiting = Some(before_waiting);
    loop {
        let sql = if waited { &wait_sql } else { &try_sql };
        let attempt = async {
            match db.row(sql, &[]).await {
                Ok(Some(row)) => Ok(row.try_get::<i64, _>(0)? == 1),
                Ok(None) => Ok(false),
                // PostgreSQL's lock_timeout (55P03) ends a round unanswered.
                Err(e) if is_lock_timeout(&e) => Ok(false),
                Err(e) => Err(e),
            }
        };
        let got = tokio::select! {
            got = attempt => got.with_context(|| format!("taking the guard {name}"))?,
            n = stop.signalled() => return Err(Failure::signal(n).into()),
        };
        if got {
            log::debug!("took the guard {name} after {}", human(started.elapsed()));
            return Ok(Guard::Session {
                db,
                name,
                release_sql,
                waited,
            });
        }
        if started.elapsed() >= wait {
            return Err(still_held(&name, wait));
        }
        if !waited {
            log::info!("another replica is in its preflight (it holds {name}); waiting up to UNLATCH_LOCK_WAIT={}", human(wait));
            waited = true;
            if let Some(give_back) = before_waiting.take() {
                give_back();
            }
        }
    }
}

fn is_lock_timeout(err: &anyhow::Error) -> bool {
    err.downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .and_then(|e| e.code())
        .is_some_and(|code| code == "55P03")
}

fn still_held(name: &str, wait: Duration) -> anyhow::Error {
    Failure::new(
        Code::LockStillHeld,
        format!(
            "another replica still holds unlatch's guard {name} after UNLATCH_LOCK_WAIT={}",
            human(wait)
        ),
    )
    .into()
}

async fn file_guard(
    database: &Path,
    wait: Duration,
    stop: &mut Stop,
    before_waiting: impl FnOnce(),
) -> anyhow::Result<Guard> {
    let mut path = database.as_os_str().to_owned();
    path.push(".unlatch-lock");
    let path = PathBuf::from(path);
    if !database
        .parent()
        .is_some_and(|d| d.as_os_str().is_empty() || d.is_dir())
    {
        log::debug!("no folder for {} yet: no guard needed", path.display());
        return Ok(Guard::None);
    }
    // A guard file an earlier start made as another user (root, or another
    // runAsUser on an fsGroup volume) may not be writable here; a lock
    // needs no write, so it is opened for reading then.
    let opened = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path);
    let opened = match opened {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            OpenOptions::new().read(true).open(&path).map_err(|_| e)
        }
        other => other,
    };
    let file = match opened {
        Ok(file) => file,
        Err(e) => {
            log::warn!(
                "cannot open the guard file {}: {e}; going on without a guard",
                path.display()
            );
            return Ok(Guard::None);
        }
    };
    let started = Instant::now();
    let mut waited = false;
    let mut before_waiting = Some(before_waiting);
    loop {
        match file.try_lock() {
            Ok(()) => {
                return Ok(Guard::File {
                    _file: file,
                    path,
                    waited,
                })
            }
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(anyhow::Error::new(e).context(format!("locking {}", path.display())))
            }
        }
        let name = path.display().to_string();
        if started.elapsed() >= wait {
            return Err(still_held(&name, wait));
        }
        if !waited {
            log::info!("another process is in its preflight (it holds {name}); waiting up to UNLATCH_LOCK_WAIT={}", human(wait));
            waited = true;
            if let Some(give_back) = before_waiting.take() {
                give_back();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            n = stop.signalled() => return Err(Failure::signal(n).into()),
        }
    }
}

impl Guard {
    /// Whether another replica held the guard when this one asked for it.
    pub fn waited(&self) -> bool {
        match self {
            Guard::Session { waited, .. } | Guard::File { waited, .. } => *waited,
            Guard::None => false,
        }
    }

    /// Releases the guard and says so.
    pub async fn release(self) {
        match self {
            Guard::Session {
                mut db,
                name,
                release_sql,
                ..
            } => {
                if let Err(e) = db.exec(&release_sql, &[]).await {
                    log::debug!(
                        "releasing {name}: {e:#} (closing its connection releases it anyway)"
                    );
                }
                db.close().await;
                log::debug!("released the guard {name}");
            }
            Guard::File { path, .. } => log::debug!("released the guard {}", path.display()),
            Guard::None => {}
        }
    }
}
