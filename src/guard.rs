//! Guard: unlatch's own lock, so that replicas starting together run the
//! preflight one at a time.
//!
//! It is session-scoped on purpose: `pg_advisory_lock` on PostgreSQL,
//! `GET_LOCK` on MySQL/MariaDB, an OS file lock beside the database file on
//! SQLite. A replica that dies frees it with its session or file handle, so
//! the guard itself can never go stale; that is the property the migration
//! tools' row locks lack. It is released on every path: explicitly by
//! [`Guard::release`], and by the connection or file closing if unlatch
//! exits any other way.
//!
//! On PostgreSQL it is held on the work connection itself: a second
//! connection would cost a backend fork (a few ms) on every start, and an
//! advisory lock is per session, so the work connection's end frees it just
//! the same. Its statements never wait on the fast path; only while another
//! replica holds it is `lock_timeout` set, and reset before any work runs.
//! Its first try carries a read of the caller's ([`crate::look`]) in the
//! same round trip, run only after the try, in a transaction of its own (so
//! its snapshot is taken with the guard held, whatever the server's default
//! isolation), and handed back only when that try took the guard.
//! On MySQL/MariaDB it keeps a connection of its own, outside any database,
//! so that it works before the migrate command creates the database.
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
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::clock::human;
use crate::db::{self, Db, Kind, Role, Target};
use crate::exit::{Code, Failure};
use crate::process::Stop;

/// What the guard reads from the configuration.
#[derive(Debug)]
pub struct Settings {
    /// How long to wait for another replica's preflight.
    pub lock_wait: Duration,
    /// How long MySQL's guard connection, its own, may take to open.
    pub wait_timeout: Duration,
}

/// `pg_advisory_lock` key: the bytes of "unlatch". Advisory keys are per
/// database, so one constant serves every database on a server.
pub const PG_KEY: i64 = 0x0075_6e6c_6174_6368;

/// A held guard; dropping it (or the work connection it shares) releases
/// it too.
pub enum Guard {
    /// On a connection of its own (MySQL/MariaDB).
    Session {
        db: Db,
        name: String,
        release_sql: String,
        waited: bool,
    },
    /// On the work connection (PostgreSQL), handed back to [`Guard::release`].
    Shared {
        name: String,
        release_sql: String,
        waited: bool,
        /// The row of the read that came with the try that took it.
        first_read: Option<AnyRow>,
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

/// Opens the guard's connection, if it has one of its own (MySQL/MariaDB);
/// meant to run alongside the first wait for the database, which it then
/// saves a round of connection set-up. `None` on any failure: [`acquire`]
/// then connects itself.
pub async fn connect_early(target: &Target) -> Option<AnyConnection> {
    if target.kind != Kind::MySql {
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
/// has none). `work` is the work connection (`None`: no database yet). On
/// PostgreSQL the guard is taken on it; elsewhere, when the first try finds
/// the guard taken, `work` is given back (set to `None`) before waiting,
/// since a server's connection limit is shared by every waiting replica.
/// `read`: on PostgreSQL, a one-row statement to run right after the first
/// try, in the same round trip; its row is kept ([`Guard::first_read`]) if
/// that try took the guard.
pub async fn acquire(
    target: &Target,
    early: Option<AnyConnection>,
    work: &mut Option<Db>,
    config: &Settings,
    stop: &mut Stop,
    read: Option<&str>,
) -> anyhow::Result<Guard> {
    let wait = config.lock_wait;
    let give_back = || *work = None;
    match target.kind {
        Kind::Sqlite => match &target.sqlite_file {
            Some(file) => file_guard(file, wait, stop, give_back).await,
            None => Ok(Guard::None),
        },
        Kind::MySql => {
            mysql_guard(target, early, (wait, config.wait_timeout), stop, give_back).await
        }
        // Advisory locks live in a database; with none yet, nothing to guard.
        Kind::Postgres => match work {
            Some(db) => postgres_guard(db, wait, stop, read).await,
            None => Ok(Guard::None),
        },
    }
}

/// The statements of a session guard. Each of `try_sql` and `wait_sql`
/// answers 1 when it took the guard: the first without waiting, the other
/// after a round of about a second.
struct Statements {
    name: String,
    try_sql: String,
    wait_sql: String,
    release_sql: String,
}

/// `waits`: for the guard, and for its connection.
async fn mysql_guard(
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
    let key = mysql_lock_name(&target.name);
    let sql = Statements {
        name: format!("GET_LOCK('{key}')"),
        try_sql: format!("SELECT COALESCE(GET_LOCK('{key}', 0), 0)"),
        wait_sql: format!("SELECT COALESCE(GET_LOCK('{key}', 1), 0)"),
        release_sql: format!("SELECT RELEASE_LOCK('{key}')"),
    };
    let (waited, _) = in_rounds(&mut db, &sql, wait, stop, before_waiting).await?;
    Ok(Guard::Session {
        db,
        name: sql.name,
        release_sql: sql.release_sql,
        waited,
    })
}

/// PostgreSQL's guard, on the work connection. Its statements go as simple
/// queries (one round trip each, not two). A waiting round sets
/// `lock_timeout` in the same implicit transaction as the lock call, so a
/// round that times out rolls it back with itself; once taken after a
/// wait, it is reset to the session's own, so the work statements never
/// run under it. `read` follows the first try: its own transaction begins
/// once the try's has committed, so its snapshot, and the catalogs it
/// reads, postdate the guard (under any isolation level: in one implicit
/// transaction, a repeatable read one would keep the try's snapshot).
async fn postgres_guard(
    db: &mut Db,
    wait: Duration,
    stop: &mut Stop,
    read: Option<&str>,
) -> anyhow::Result<Guard> {
    let try_sql = format!(
        "SELECT CAST(CASE WHEN pg_try_advisory_lock({PG_KEY}) THEN 1 ELSE 0 END AS BIGINT)"
    );
    let sql = Statements {
        name: format!("pg_advisory_lock({PG_KEY})"),
        try_sql: match read {
            Some(read) => format!("BEGIN; {try_sql}; COMMIT; {read}"),
            None => try_sql,
        },
        wait_sql: format!(
            "SET lock_timeout = '1s'; \
             SELECT CAST(1 AS BIGINT) FROM (SELECT pg_advisory_lock({PG_KEY})) AS taken"
        ),
        release_sql: format!("SELECT pg_advisory_unlock({PG_KEY})"),
    };
    let (waited, first_read) = in_rounds(db, &sql, wait, stop, || {}).await?;
    if waited {
        simple(db, "RESET lock_timeout")
            .await
            .context("resetting lock_timeout after taking the guard")?;
    }
    Ok(Guard::Shared {
        name: sql.name,
        release_sql: sql.release_sql,
        waited,
        first_read,
    })
}

/// Statements with no parameters as one simple query (PostgreSQL: one
/// round trip, where a prepared statement takes two); the rows of the last
/// one that returns any.
async fn simple(db: &mut Db, sql: &str) -> anyhow::Result<Vec<sqlx::any::AnyRow>> {
    db.simple_rows(sql).await
}

/// Tries the guard, then waits for it in rounds, until `wait` has passed.
/// Whether it had to wait, and, when the first try took it, the second row
/// that try's statements returned (PostgreSQL's read); `before_waiting`
/// runs once, when it first waits.
async fn in_rounds(
    db: &mut Db,
    sql: &Statements,
    wait: Duration,
    stop: &mut Stop,
    before_waiting: impl FnOnce(),
) -> anyhow::Result<(bool, Option<AnyRow>)> {
    let name = &sql.name;
    let started = Instant::now();
    let mut waited = false;
    let mut before_waiting = Some(before_waiting);
    loop {
        let statement = if waited { &sql.wait_sql } else { &sql.try_sql };
        let attempt = async {
            let answer = match db.kind {
                Kind::Postgres => simple(db, statement).await.map(|rows| {
                    let mut rows = rows.into_iter();
                    (rows.next(), rows.next())
                }),
                _ => db.row(statement, &[]).await.map(|row| (row, None)),
            };
            match answer {
                Ok((Some(row), read)) => Ok((row.try_get::<i64, _>(0)? == 1, read)),
                Ok((None, _)) => Ok((false, None)),
                // PostgreSQL's lock_timeout (55P03) ends a round unanswered.
                Err(e) if is_lock_timeout(&e) => Ok((false, None)),
                Err(e) => Err(e),
            }
        };
        let got = tokio::select! {
            got = attempt => got.with_context(|| format!("taking the guard {name}"))?,
            n = stop.signalled() => return Err(Failure::signal(n).into()),
        };
        if let (true, read) = got {
            log::debug!("took the guard {name} after {}", human(started.elapsed()));
            // Only the first try carries the read.
            return Ok((waited, read.filter(|_| !waited)));
        }
        if started.elapsed() >= wait {
            return Err(still_held(name, wait));
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
            Guard::Session { waited, .. }
            | Guard::Shared { waited, .. }
            | Guard::File { waited, .. } => *waited,
            Guard::None => false,
        }
    }

    /// The row of the read that came with the first try, if that try took
    /// the guard (PostgreSQL): read under it. Taken once.
    pub fn first_read(&mut self) -> Option<AnyRow> {
        match self {
            Guard::Shared { first_read, .. } => first_read.take(),
            _ => None,
        }
    }

    /// Releases the guard and says so; `work` is the work connection, which
    /// a shared guard is released on (`None`: it is gone, and the guard
    /// with it).
    pub async fn release(self, work: Option<&mut Db>) {
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
            Guard::Shared {
                name, release_sql, ..
            } => {
                // Released before the connection closes, so that a waiting
                // replica gets it at once, not when this backend exits.
                if let Some(db) = work {
                    if let Err(e) = simple(db, &release_sql).await {
                        log::debug!(
                            "releasing {name}: {e:#} (closing its connection releases it anyway)"
                        );
                    }
                }
                log::debug!("released the guard {name}");
            }
            Guard::File { path, .. } => log::debug!("released the guard {}", path.display()),
            Guard::None => {}
        }
    }
}
