//! SQLite backups: a consistent copy of the database, beside it, before
//! unlatch changes it (a heal) and, with `UNLATCH_SQLITE_BACKUP=1`, before
//! the migrations.
//!
//! `VACUUM INTO` writes a transactionally consistent copy through a
//! connection of its own, so it is safe while the database is in use,
//! unlike a file copy of a database with a journal or WAL. Copies are named
//! `<database>.unlatch-backup-<UTC time>`, and only the newest
//! `UNLATCH_SQLITE_BACKUP_KEEP` are kept.
//!
//! A copy that exists is whole: it is written as
//! `<copy>.partial-<random>`, synced, and renamed into place only then. A
//! copy that fails (a full disk) or is stopped (TERM or INT interrupt it) is
//! removed, and unlatch stops there, changing nothing: no heal without a
//! copy. One that a killed unlatch left behind is removed by the next start,
//! under the guard ([`remove_leftovers`]). So copies never pile up.
//!
//! A copy gets what unlatch may give it: the database's owner and group (as
//! root), else the database's group (a member of it may: a Kubernetes
//! fsGroup volume), else it stays as made; said at debug level.
//!
//! May touch: the database (read), and the backup files beside it.

use std::hash::{BuildHasher, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

use crate::db::{Db, Kind};
use crate::exit::{Code, Failure};
use crate::process::Stop;

/// What copying reads from the configuration.
#[derive(Debug)]
pub struct Settings {
    /// The database's file, when it is SQLite.
    pub sqlite_file: Option<PathBuf>,
    pub sqlite_backup_keep: usize,
}

const INFIX: &str = ".unlatch-backup-";
const PARTIAL: &str = ".partial-";

/// SQLite's result code for a full disk (`SQLITE_FULL`): what its Unix
/// layer answers when a write finds no space.
const SQLITE_FULL: i32 = 13;

/// Copies the SQLite database `db` (nothing to do for other databases);
/// `why` goes in the log line. A TERM or INT during the copy ends it with
/// exit 128+n.
pub async fn sqlite(db: &Db, config: &Settings, why: &str, stop: &mut Stop) -> anyhow::Result<()> {
    let (Some(file), Kind::Sqlite) = (&config.sqlite_file, db.kind) else {
        return Ok(());
    };
    let target = free_name(file);
    let partial = partial_name(&target);
    let copied = vacuum_into(file, &partial, stop).await;
    if let Err(failed) = copied.and_then(|()| finish(&partial, &target)) {
        remove_partial(&partial);
        return Err(match failed {
            Failed::Stopped(n) => Failure::signal(n),
            Failed::Because(cause) => could_not_copy(file, &partial, why, &cause, config),
        }
        .into());
    }
    give_ownership(file, &target);
    log::info!("copied {} to {} {why}", file.display(), target.display());
    prune(file, config.sqlite_backup_keep);
    Ok(())
}

/// Why a copy is not there.
enum Failed {
    Stopped(i32),
    Because(String),
}

/// `VACUUM INTO` on a connection of its own, whose statement a TERM or INT
/// interrupts (sqlx's worker thread would otherwise finish a long copy
/// first).
async fn vacuum_into(file: &Path, into: &Path, stop: &mut Stop) -> Result<(), Failed> {
    let mut conn = SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(false)
        .connect()
        .await
        .map_err(|e| Failed::Because(format!("opening the database: {e}")))?;
    let handle = match conn.lock_handle().await {
        Ok(mut locked) => locked.as_raw_handle(),
        Err(e) => return Err(Failed::Because(format!("opening the database: {e}"))),
    };
    let sql = format!(
        "VACUUM INTO '{}'",
        into.display().to_string().replace('\'', "''")
    );
    // Ok(result of the copy), or Err(the signal that stopped it).
    let ended = {
        let copying = sqlx::raw_sql(&sql).execute(&mut conn);
        tokio::pin!(copying);
        tokio::select! {
            result = &mut copying => Ok(result),
            n = stop.signalled() => {
                log::warn!("got signal {n} while copying {}: stopping the copy", file.display());
                // SAFETY: the connection stays open until `copying` has
                // ended, awaited right after; sqlite3_interrupt may be
                // called from any thread while it is.
                unsafe { libsqlite3_sys::sqlite3_interrupt(handle.as_ptr()) };
                let _ = copying.await;
                Err(n)
            }
        }
    };
    let outcome = match ended {
        Ok(Ok(_)) => match stop.pending().await {
            // The copy ended as a stop came: the stop wins.
            Some(n) => Err(Failed::Stopped(n)),
            None => Ok(()),
        },
        Ok(Err(e)) => Err(Failed::Because(cause(&mut conn, &e).await)),
        Err(n) => Err(Failed::Stopped(n)),
    };
    let _ = conn.close().await;
    outcome
}

/// The cause of a failed copy, as the system said it when SQLite knows.
async fn cause(conn: &mut SqliteConnection, e: &sqlx::Error) -> String {
    let answer = e.as_database_error();
    let sqlite = answer.map_or_else(|| e.to_string(), |d| d.message().to_owned());
    let code = answer.and_then(|d| d.code()?.parse::<i32>().ok());
    let errno = match code {
        // SQLite records no errno for a full disk; its Unix layer answers
        // SQLITE_FULL only when a write found no space.
        Some(c) if c & 0xff == SQLITE_FULL => nix::libc::ENOSPC,
        _ => match conn.lock_handle().await {
            // SAFETY: the handle is open and locked out from sqlx's worker.
            Ok(mut locked) => unsafe {
                libsqlite3_sys::sqlite3_system_errno(locked.as_raw_handle().as_ptr())
            },
            Err(_) => 0,
        },
    };
    if errno == 0 {
        sqlite
    } else {
        format!(
            "{} (SQLite: {sqlite})",
            std::io::Error::from_raw_os_error(errno)
        )
    }
}

/// Makes the finished copy durable, then gives it its name.
fn finish(partial: &Path, target: &Path) -> Result<(), Failed> {
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| Failed::Because(format!("syncing it to disk: {e}")))?;
    std::fs::rename(partial, target)
        .map_err(|e| Failed::Because(format!("renaming it to {}: {e}", target.display())))?;
    // The rename itself is durable once the folder is synced.
    let _ = std::fs::File::open(folder(target)).and_then(|d| d.sync_all());
    Ok(())
}

/// Removes a partial copy, and the journal SQLite may have left beside it.
fn remove_partial(partial: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut path = partial.as_os_str().to_owned();
        path.push(suffix);
        let path = PathBuf::from(path);
        match std::fs::remove_file(&path) {
            Ok(()) => log::debug!("removed the partial copy {}", path.display()),
            // Not there (a read-only filesystem says so with EROFS).
            Err(_) if !path.exists() => {}
            Err(e) => log::warn!(
                "cannot remove the partial copy {}: {e}; the next start removes it",
                path.display()
            ),
        }
    }
}

/// The message for a copy that could not be made, with what to do.
fn could_not_copy(
    file: &Path,
    partial: &Path,
    why: &str,
    cause: &str,
    config: &Settings,
) -> Failure {
    let dir = folder(file);
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let read_only_mount = crate::db::on_read_only_mount(file);
    let advice = if read_only_mount {
        format!("{} {}", dir.display(), crate::db::READ_ONLY_MOUNT)
    } else if cause.contains(&std::io::Error::from_raw_os_error(nix::libc::ENOSPC).to_string()) {
        format!(
            "free some space in {} (a copy needs about {} MiB there), or keep fewer copies with \
             UNLATCH_SQLITE_BACKUP_KEEP (now {})",
            dir.display(),
            size.div_ceil(1024 * 1024),
            config.sqlite_backup_keep
        )
    } else {
        format!(
            "make {} writable for uid {}, with room for a copy of the database",
            dir.display(),
            nix::unistd::geteuid()
        )
    };
    // As for a file read-only to unlatch: no wait or retry would change it.
    let code = if read_only_mount {
        Code::Credentials
    } else {
        Code::Internal
    };
    Failure::new(
        code,
        format!(
            "cannot copy {} {why}: writing {}: {cause}. The partial copy was removed, and unlatch \
             stops without changing the database (it changes nothing it could not copy first); {advice}",
            file.display(),
            partial.display()
        ),
    )
}

/// Gives `copy` the database's owner and group if unlatch may, else the
/// database's group, else leaves it as made; says which at debug level.
fn give_ownership(database: &Path, copy: &Path) {
    let Ok(meta) = database.metadata() else {
        return;
    };
    let (uid, gid) = (meta.uid(), meta.gid());
    let given = match std::os::unix::fs::chown(copy, Some(uid), Some(gid)) {
        Ok(()) => format!("the database's owner uid {uid} and group {gid}"),
        Err(owner) => match std::os::unix::fs::chown(copy, None, Some(gid)) {
            Ok(()) => format!("the database's group {gid}, not its owner uid {uid} ({owner})"),
            Err(group) => {
                format!("neither the database's owner uid {uid} ({owner}) nor its group {gid} ({group}); it stays as made")
            }
        },
    };
    log::debug!("gave the copy {} {given}", copy.display());
}

/// `<file>.unlatch-backup-20261122T030405Z`, with `-2`, `-3`... if taken.
fn free_name(file: &Path) -> PathBuf {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
    let base = format!("{}{INFIX}{stamp}", file.display());
    let numbered = (2..).map(|n| format!("{base}-{n}"));
    std::iter::once(base.clone())
        .chain(numbered)
        .map(PathBuf::from)
        .find(|p| !p.exists())
        .expect("some name is free")
}

/// `<target>.partial-<16 hex digits>`: unique to this copy, whatever the
/// PID (as PID 1 in a container, every start has the same).
fn partial_name(target: &Path) -> PathBuf {
    // RandomState is seeded from the system's randomness.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_i128(jiff::Timestamp::now().as_nanosecond());
    PathBuf::from(format!(
        "{}{PARTIAL}{:016x}",
        target.display(),
        hasher.finish()
    ))
}

/// The folder `file` is in (`.` for a bare name).
fn folder(file: &Path) -> &Path {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Every file beside `file` whose name starts `<name>.unlatch-backup-`,
/// finished copies and partial ones, in name order.
fn backup_files(file: &Path) -> Vec<PathBuf> {
    let Some(name) = file.file_name() else {
        return Vec::new();
    };
    let prefix = format!("{}{INFIX}", name.to_string_lossy());
    let mut found: Vec<PathBuf> = std::fs::read_dir(folder(file))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    // UTC stamps sort as text; a -N suffix sorts after its base.
    found.sort_by(|a, b| alphanumeric_sort::compare_path(a, b));
    found
}

fn is_partial(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().contains(PARTIAL))
}

/// The finished copies of `file`, oldest first.
pub fn copies(file: &Path) -> Vec<PathBuf> {
    backup_files(file)
        .into_iter()
        .filter(|p| !is_partial(p))
        .collect()
}

/// Removes the partial copies of `file` that a killed unlatch left. Only
/// under the guard: no other unlatch is copying then.
pub fn remove_leftovers(file: &Path) {
    for partial in backup_files(file).into_iter().filter(|p| is_partial(p)) {
        match std::fs::remove_file(&partial) {
            Ok(()) => log::info!(
                "removed {}, a partial copy an unlatch that was killed left behind",
                partial.display()
            ),
            Err(e) => log::warn!(
                "cannot remove {}, a partial copy an unlatch that was killed left behind: {e}",
                partial.display()
            ),
        }
    }
}

fn prune(file: &Path, keep: usize) {
    let all = copies(file);
    for old in &all[..all.len().saturating_sub(keep)] {
        match std::fs::remove_file(old) {
            Ok(()) => log::debug!("removed the old copy {}", old.display()),
            Err(e) => log::warn!("cannot remove the old copy {}: {e}", old.display()),
        }
    }
}
