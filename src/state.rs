//! unlatch's own table, `unlatch_state`: the few facts that must outlive a
//! single start and be shared between replicas.
//!
//! Today it holds one row, `migrated`: when a migrate command last
//! succeeded, and a fingerprint of that command (not the command itself,
//! which may carry a password). A replica that had to wait for the guard
//! reads it: if the same command succeeded after this replica started, the
//! replica it waited for has just done the work, and running the command
//! again would only take the migration tool's lock once more while the
//! other replicas' apps boot (knex-migrator takes it even when nothing is
//! pending, and Ghost's boot check then fails). The table is created on
//! first write, never read on the ordinary single-replica path.
//!
//! May touch: table `unlatch_state` only.

use jiff::Timestamp;
use sqlx::Row;

use crate::db::Db;

const TABLE: &str = "unlatch_state";

/// FNV-1a: a stable fingerprint, the same in every build of unlatch.
fn fingerprint(argv: &[String]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in argv.join("\0").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Records that `argv` just succeeded.
pub async fn record_migrated(db: &mut Db, argv: &[String]) -> anyhow::Result<()> {
    db.exec(
        &format!(
            "CREATE TABLE IF NOT EXISTS {TABLE} (name VARCHAR(191) NOT NULL PRIMARY KEY, \
             value VARCHAR(255), recorded_at VARCHAR(40))"
        ),
        &[],
    )
    .await?;
    db.exec(&format!("DELETE FROM {TABLE} WHERE name = 'migrated'"), &[])
        .await?;
    let now = Timestamp::now().to_string();
    db.exec(
        &format!("INSERT INTO {TABLE} (name, value, recorded_at) VALUES ('migrated', ?, ?)"),
        &[Some(&fingerprint(argv)), Some(&now)],
    )
    .await?;
    Ok(())
}

/// When `argv` last succeeded, if that was at or after `since`.
pub async fn migrated_since(
    db: &mut Db,
    argv: &[String],
    since: Timestamp,
) -> anyhow::Result<Option<Timestamp>> {
    if !db.table_exists(TABLE).await? {
        return Ok(None);
    }
    let sql = format!("SELECT recorded_at FROM {TABLE} WHERE name = 'migrated' AND value = ?");
    let Some(row) = db.row(&sql, &[Some(&fingerprint(argv))]).await? else {
        return Ok(None);
    };
    let at: Option<String> = row.try_get(0)?;
    Ok(at
        .and_then(|t| t.parse::<Timestamp>().ok())
        .filter(|t| *t >= since))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_and_tells_commands_apart() {
        let a = fingerprint(&["knex-migrator-migrate".into(), "--init".into()]);
        assert_eq!(
            a,
            fingerprint(&["knex-migrator-migrate".into(), "--init".into()])
        );
        assert_ne!(a, fingerprint(&["knex-migrator-migrate --init".into()]));
        assert_eq!(fingerprint(&[]), "cbf29ce484222325");
    }
}
