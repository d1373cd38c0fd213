//! SQLite backups: a consistent copy of the database, beside it, before
//! unlatch changes it (a heal) and, with `UNLATCH_SQLITE_BACKUP=1`, before
//! the migrations.
//!
//! `VACUUM INTO` writes a transactionally consistent copy through the open
//! connection, so it is safe while the database is in use, unlike a file
//! copy of a database with a journal or WAL. Copies are named
//! `<database>.unlatch-backup-<UTC time>`, owned like the database (so an
//! app that runs as another user can still manage its folder), and only the
//! newest `UNLATCH_SQLITE_BACKUP_KEEP` are kept.
//!
//! May touch: the database (read), and the backup files beside it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::db::{Db, Kind};

const INFIX: &str = ".unlatch-backup-";

/// Copies the SQLite database `db` (nothing to do for other databases);
/// `why` goes in the log line.
pub async fn sqlite(db: &mut Db, config: &Config, why: &str) -> anyhow::Result<()> {
    let Some(file) = config
        .database
        .as_ref()
        .and_then(|t| t.sqlite_file.as_ref())
    else {
        return Ok(());
    };
    if db.kind != Kind::Sqlite {
        return Ok(());
    }
    let target = free_name(file);
    let quoted = target.display().to_string().replace('\'', "''");
    db.exec(&format!("VACUUM INTO '{quoted}'"), &[]).await?;
    if let Ok(meta) = file.metadata() {
        std::os::unix::fs::chown(&target, Some(meta.uid()), Some(meta.gid()))?;
    }
    log::info!("copied {} to {} {why}", file.display(), target.display());
    prune(file, config.sqlite_backup_keep);
    Ok(())
}

/// `<file>.unlatch-backup-20261122T030405Z`, with `-2`, `-3`... if taken.
fn free_name(file: &Path) -> PathBuf {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let base = format!("{}{INFIX}{stamp}", file.display());
    (1..)
        .map(|n| {
            PathBuf::from(if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            })
        })
        .find(|p| !p.exists())
        .expect("some name is free")
}

/// The copies of `file`, oldest first.
pub fn copies(file: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}{INFIX}", name.to_string_lossy());
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
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

fn prune(file: &Path, keep: usize) {
    let all = copies(file);
    for old in &all[..all.len().saturating_sub(keep)] {
        match std::fs::remove_file(old) {
            Ok(()) => log::debug!("removed the old copy {}", old.display()),
            Err(e) => log::warn!("cannot remove the old copy {}: {e}", old.display()),
        }
    }
}
