//! unlatch's own table, `unlatch_state`: the few facts that must outlive a
//! single start and be shared between replicas.
//!
//! Rows `seen:<tool>`: when unlatch first saw a lock (or dirty marker) whose
//! age the tool does not record, with a signature of what it saw. A restart
//! loop then adds up to the TTL instead of starting over each time. The row
//! goes when unlatch sees the lock free, or frees it.
//!
//! There is no row that lets a replica skip its migrate command because
//! another replica ran "the same command": the same command line in an
//! older image runs older migrations, so only the tool itself can say that
//! nothing is pending, and every replica asks it by running the command
//! (earlier versions wrote a row `migrated`; it is no longer read). The
//! table is created on first write: a first sighting.
//!
//! May touch: table `unlatch_state` only.

use jiff::Timestamp;
use sqlx::Row;

use crate::db::Db;

pub const TABLE: &str = "unlatch_state";

/// FNV-1a: a stable fingerprint, the same in every build of unlatch.
fn fingerprint(argv: &[String]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in argv.join("\0").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Sets row `name` to `value`, recorded now; the table is made on first use.
async fn put(db: &mut Db, name: &str, value: &str) -> anyhow::Result<()> {
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (name VARCHAR(191) NOT NULL PRIMARY KEY, \
         value VARCHAR(255), recorded_at VARCHAR(40))"
    );
    db.exec(&create, &[]).await?;
    let now = Timestamp::now().to_string();
    let delete = format!("DELETE FROM {TABLE} WHERE name = ?");
    let insert = format!("INSERT INTO {TABLE} (name, value, recorded_at) VALUES (?, ?, ?)");
    db.exec_in_transaction(&[
        (&delete, vec![Some(name)]),
        (&insert, vec![Some(name), Some(value), Some(&now)]),
    ])
    .await?;
    Ok(())
}

/// Row `name`: its value and when it was recorded.
async fn get(db: &mut Db, name: &str) -> anyhow::Result<Option<(String, Timestamp)>> {
    if !db.table_exists(TABLE).await? {
        return Ok(None);
    }
    let sql = format!("SELECT value, recorded_at FROM {TABLE} WHERE name = ?");
    let Some(row) = db.row(&sql, &[Some(name)]).await? else {
        return Ok(None);
    };
    let (value, at): (Option<String>, Option<String>) = (row.try_get(0)?, row.try_get(1)?);
    Ok(value.zip(at.and_then(|t| t.parse().ok())))
}

/// When unlatch first saw `tool`'s lock as `signature`; recorded now if it
/// had not seen it so before.
pub async fn first_seen(db: &mut Db, tool: &str, signature: &str) -> anyhow::Result<Timestamp> {
    if let Some(at) = seen_since(db, tool, signature).await? {
        return Ok(at);
    }
    put(db, &seen_row(tool), &fingerprint(&[signature.to_owned()])).await?;
    Ok(Timestamp::now())
}

/// When unlatch first saw `tool`'s lock as `signature`, if it has; reads
/// only (what `unlatch status` may do).
pub async fn seen_since(
    db: &mut Db,
    tool: &str,
    signature: &str,
) -> anyhow::Result<Option<Timestamp>> {
    let signature = fingerprint(&[signature.to_owned()]);
    Ok(get(db, &seen_row(tool))
        .await?
        .filter(|(value, _)| *value == signature)
        .map(|(_, at)| at))
}

/// The row of `tool`'s first sighting.
fn seen_row(tool: &str) -> String {
    format!("seen:{tool}")
}

/// Forgets a first sighting: `tool`'s lock was seen free, or was freed.
pub async fn forget_seen(db: &mut Db, tool: &str) -> anyhow::Result<()> {
    if db.table_exists(TABLE).await? {
        db.exec(
            &format!("DELETE FROM {TABLE} WHERE name = ?"),
            &[Some(&seen_row(tool))],
        )
        .await?;
    }
    Ok(())
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
