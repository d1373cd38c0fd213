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
//! It is taken in two steps: [`try_acquire`] tries once, and when another
//! replica holds it, the caller gives back what it should not keep while
//! waiting (its work connection, where that is not the guard's) before
//! [`Waiter::wait`]. The wait is done in rounds of about a second (a
//! server-side timeout on the lock call), so a TERM is answered promptly
//! and an abandoned request never outlives its round on the server.
//!
//! May touch: its own advisory lock, or the `<database>.unlatch-lock` file.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::clock::human;
use crate::db::{self, Db, Kind, Role, Target};
use crate::exit::{Code, Failure};
use crate::process::Stop;
use crate::wait::{self, Wait};

/// `pg_advisory_lock` key: the bytes of "unlatch". Advisory keys are per
/// database, so one constant serves every database on a server.
pub const PG_KEY: i64 = 0x0075_6e6c_6174_6368;

/// A held guard; dropping it (or the work connection it shares) releases
/// it too.
pub struct Guard {
    held: Held,
    /// The row of the read that came with the first try, if that try took
    /// the guard (PostgreSQL): read under it.
    pub first_read: Option<AnyRow>,
}

/// What the guard is held on, or asked for on.
enum Held {
    /// A connection of its own (MySQL/MariaDB).
    Session(Db, Statements),
    /// The work connection (PostgreSQL), handed to each call.
    Shared(Statements),
    File(File, PathBuf),
    /// Nothing to guard (no folder yet, an in-memory database, or no
    /// PostgreSQL database yet).
    None,
}

/// What the first try found.
pub enum Try {
    Taken(Guard),
    /// Another replica holds the guard: [`Waiter::wait`] for it.
    Busy(Waiter),
}

/// The guard, asked for and held by another replica.
pub struct Waiter {
    held: Held,
    wait: Wait,
}

/// Opens the guard's connection, if it has one of its own (MySQL/MariaDB);
/// meant to run alongside the first wait for the database, which it then
/// saves a round of connection set-up. `None` on any failure:
/// [`try_acquire`] then connects itself.
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

/// Tries once to take the guard; [`Try::Busy`] when another replica holds
/// it. `work` is the work connection (`None`: no database yet), which
/// PostgreSQL's guard is taken on; MySQL's has a connection of its own
/// (`early`'s, or one opened within `UNLATCH_WAIT_TIMEOUT`), SQLite's a
/// file. `read`: on PostgreSQL, a one-row statement to run right after the
/// try, in the same round trip; its row is kept ([`Guard::first_read`]) if
/// that try took the guard. [`Waiter::wait`] waits up to `lock_wait`
/// from this try.
pub async fn try_acquire(
    target: &Target,
    early: Option<AnyConnection>,
    work: Option<&mut Db>,
    lock_wait: Duration,
    wait_timeout: Duration,
    stop: &mut Stop,
    read: Option<&str>,
) -> anyhow::Result<Try> {
    let mut held = match (target.kind, &target.sqlite_file, &work) {
        (Kind::Sqlite, Some(file), _) => file_guard(file),
        (Kind::MySql, ..) => mysql_guard(target, early, wait_timeout, stop).await?,
        // Advisory locks live in a database; with none yet, nothing to guard.
        (Kind::Postgres, _, Some(_)) => Held::Shared(postgres_statements(read)),
        _ => Held::None,
    };
    // Said once: a replica waiting its turn adds one line, not one every
    // few seconds.
    let wait = Wait::new(lock_wait, Duration::MAX);
    match held.take(work, true, stop).await? {
        (true, first_read) => Ok(Try::Taken(Guard::took(held, &wait, first_read))),
        (false, _) => Ok(Try::Busy(Waiter { held, wait })),
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

/// MySQL's guard, on a connection of its own, opened within
/// `connect_timeout` when `early` has none.
async fn mysql_guard(
    target: &Target,
    early: Option<AnyConnection>,
    connect_timeout: Duration,
    stop: &mut Stop,
) -> anyhow::Result<Held> {
    // GET_LOCK is server-wide, so MySQL's guard needs no database: it works
    // even before the migrate command creates it.
    let db = match early {
        Some(conn) => Db::new(conn, target.kind),
        None => db::wait_for(target, Role::Guard, connect_timeout, stop)
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
    let key = mysql_key(target);
    let sql = Statements {
        name: format!("GET_LOCK('{key}')"),
        try_sql: format!("SELECT COALESCE(GET_LOCK('{key}', 0), 0)"),
        wait_sql: format!("SELECT COALESCE(GET_LOCK('{key}', 1), 0)"),
        release_sql: format!("SELECT RELEASE_LOCK('{key}')"),
    };
    Ok(Held::Session(db, sql))
}

/// The name of MySQL's guard (`GET_LOCK`): per database, within
/// GET_LOCK's 64 characters. [`crate::proof`] knows other replicas'
/// sessions waiting for it by this name.
pub fn mysql_key(target: &Target) -> String {
    format!("{MYSQL_KEY_PREFIX}{}", target.name)
        .chars()
        .take(64)
        .collect()
}

/// What every MySQL guard's name begins with, whatever its database.
pub const MYSQL_KEY_PREFIX: &str = "unlatch:";

/// PostgreSQL's guard, on the work connection. Its statements go as simple
/// queries (one round trip each, not two). A waiting round sets
/// `lock_timeout` in the same implicit transaction as the lock call, so a
/// round that times out rolls it back with itself; once taken after a
/// wait, it is reset to the session's own ([`Waiter::wait`]), so the work
/// statements never run under it. `read` follows the first try: its own
/// transaction begins once the try's has committed, so its snapshot, and
/// the catalogs it reads, postdate the guard (under any isolation level: in
/// one implicit transaction, a repeatable read one would keep the try's
/// snapshot).
fn postgres_statements(read: Option<&str>) -> Statements {
    let try_sql = format!(
        "SELECT CAST(CASE WHEN pg_try_advisory_lock({PG_KEY}) THEN 1 ELSE 0 END AS BIGINT)"
    );
    Statements {
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
    }
}

impl Statements {
    /// One try (`first`: without waiting) or one waiting round: whether it
    /// took the guard, and the second row its statements returned
    /// (PostgreSQL's read).
    async fn round(
        &self,
        db: &mut Db,
        first: bool,
        stop: &mut Stop,
    ) -> anyhow::Result<(bool, Option<AnyRow>)> {
        let statement = if first { &self.try_sql } else { &self.wait_sql };
        // Nothing to bind: on PostgreSQL, one round trip for them all.
        let answer = wait::or_stop(db.rows(statement, &[]), stop).await?;
        let taken = match answer.map(Vec::into_iter) {
            Ok(mut rows) => match rows.next() {
                Some(row) => Ok((row.try_get::<i64, _>(0)? == 1, rows.next())),
                None => Ok((false, None)),
            },
            // PostgreSQL's lock_timeout (55P03) ends a round unanswered.
            Err(e) if is_lock_timeout(&e) => Ok((false, None)),
            Err(e) => Err(e),
        };
        taken.with_context(|| format!("taking the guard {}", self.name))
    }
}

impl Held {
    fn name(&self) -> String {
        match self {
            Held::Session(_, sql) | Held::Shared(sql) => sql.name.clone(),
            Held::File(_, path) => path.display().to_string(),
            Held::None => "none".to_owned(),
        }
    }

    /// One try (`first`) or waiting round: whether it took the guard, and
    /// the row of the read that came with it. `work`: the work connection.
    async fn take(
        &mut self,
        work: Option<&mut Db>,
        first: bool,
        stop: &mut Stop,
    ) -> anyhow::Result<(bool, Option<AnyRow>)> {
        match self {
            Held::Session(db, sql) => sql.round(db, first, stop).await,
            Held::Shared(sql) => {
                let db = work.with_context(|| format!("{}: no work connection", sql.name))?;
                sql.round(db, first, stop).await
            }
            Held::File(file, path) => match file.try_lock() {
                Ok(()) => Ok((true, None)),
                Err(TryLockError::WouldBlock) => Ok((false, None)),
                Err(TryLockError::Error(e)) => {
                    Err(anyhow::Error::new(e).context(format!("locking {}", path.display())))
                }
            },
            Held::None => Ok((true, None)),
        }
    }
}

impl Waiter {
    /// Whether the guard is waited for on the work connection (PostgreSQL);
    /// elsewhere the caller gives that connection back while waiting, since
    /// a server's connection limit is shared by every waiting replica.
    pub fn on_work(&self) -> bool {
        matches!(self.held, Held::Shared(_))
    }

    /// Waits for the guard until `UNLATCH_LOCK_WAIT` has passed since the
    /// first try. `work`: the work connection, which PostgreSQL's guard is
    /// waited for on.
    pub async fn wait(
        mut self,
        mut work: Option<&mut Db>,
        stop: &mut Stop,
    ) -> anyhow::Result<Guard> {
        let name = self.held.name();
        // A session's round waits about a second on the server; a file is
        // tried every 20 ms.
        let (who, pause) = match self.held {
            Held::File(..) => ("process", Duration::from_millis(20)),
            _ => ("replica", Duration::ZERO),
        };
        let limit = human(self.wait.limit());
        loop {
            let progress = |_| {
                format!("another {who} is in its preflight (it holds {name}); waiting up to UNLATCH_LOCK_WAIT={limit}")
            };
            let timed_out = || {
                let why = format!("another replica still holds unlatch's guard {name} after UNLATCH_LOCK_WAIT={limit}");
                Failure::new(Code::LockStillHeld, why).into()
            };
            self.wait.again(pause, stop, progress, timed_out).await?;
            if let (true, _) = self.held.take(work.as_deref_mut(), false, stop).await? {
                if let (Held::Shared(_), Some(db)) = (&self.held, work) {
                    db.simple_rows("RESET lock_timeout")
                        .await
                        .context("resetting lock_timeout after taking the guard")?;
                }
                return Ok(Guard::took(self.held, &self.wait, None));
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

/// The guard file beside `database`, opened; `Held::None` when it cannot
/// be (no folder yet, or not allowed: said as a warning).
fn file_guard(database: &Path) -> Held {
    let mut path = database.as_os_str().to_owned();
    path.push(".unlatch-lock");
    let path = PathBuf::from(path);
    if !database
        .parent()
        .is_some_and(|d| d.as_os_str().is_empty() || d.is_dir())
    {
        log::debug!("no folder for {} yet: no guard needed", path.display());
        return Held::None;
    }
    // A guard file an earlier start made as another user (root, or another
    // runAsUser on an fsGroup volume) may not be writable here; a lock
    // needs no write, so it is opened for reading then.
    let opened = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => File::open(&path).map_err(|_| e),
            _ => Err(e),
        });
    match opened {
        Ok(file) => Held::File(file, path),
        Err(e) => {
            let uid = nix::unistd::geteuid();
            log::warn!(
                "cannot open the guard file {}: {e}; going on without a guard: replicas starting together are \
                 not kept apart, and a lock a failed migrate command leaves is not freed. To have the guard \
                 again, make the file readable by uid {uid} (or remove it, while no unlatch runs)",
                path.display()
            );
            Held::None
        }
    }
}

impl Guard {
    fn took(held: Held, wait: &Wait, first_read: Option<AnyRow>) -> Guard {
        if !matches!(held, Held::None) {
            log::debug!(
                "took the guard {} after {}",
                held.name(),
                human(wait.elapsed())
            );
        }
        Guard { held, first_read }
    }

    /// Whether unlatch holds a guard at all: not when there was nothing to
    /// guard, nor when its guard file could not be opened. Without one, no
    /// lock is provably this start's own.
    pub fn holds(&self) -> bool {
        !matches!(self.held, Held::None)
    }

    /// Whether it is SQLite's guard file.
    pub fn on_file(&self) -> bool {
        matches!(self.held, Held::File(..))
    }

    /// Releases the guard and says so; `work` is the work connection, which
    /// a shared guard is released on (`None`: it is gone, and the guard
    /// with it).
    pub async fn release(self, work: Option<&mut Db>) {
        let name = self.held.name();
        let released = match self.held {
            Held::Session(mut db, sql) => {
                let released = db.exec(&sql.release_sql, &[]).await.map(drop);
                db.close().await;
                released
            }
            // Released before the connection closes, so that a waiting
            // replica gets it at once, not when this backend exits.
            Held::Shared(sql) => match work {
                Some(db) => db.simple_rows(&sql.release_sql).await.map(drop),
                None => Ok(()),
            },
            Held::File(..) => Ok(()),
            Held::None => return,
        };
        if let Err(e) = released {
            log::debug!("releasing {name}: {e:#} (closing its connection releases it anyway)");
        }
        log::debug!("released the guard {name}");
    }
}
