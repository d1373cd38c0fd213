//! unlatch's own table, `unlatch_state`: the few facts that must outlive a
//! single start and be shared between replicas.
//!
//! Rows `seen:<tool>`: when unlatch first saw a lock (or dirty marker) whose
//! age the tool does not record, with a signature of what it saw. A restart
//! loop then adds up to the TTL instead of starting over each time. The row
//! goes when unlatch sees the lock free, or frees it.
//!
//! Rows `free:<tool>`, for the tools whose lock records no time (knex,
//! golang-migrate): the database's clock ([`Db::clock`]) at which a start
//! saw that lock free, or freed it, and went on to migrate. Whoever holds
//! the lock later took it after that time, so used the database after it:
//! the recency a proof needs ([`crate::proof::recent`]: a live holder whose
//! pool closes idle connections has no session to see once idle). The
//! time is the database's, so replicas whose clocks disagree read it alike;
//! it is taken before the look that saw the lock free, never after.
//! Written only when proofs are on, and only for those tools: a Ghost
//! (knex-migrator) start writes nothing new, its lock carrying
//! `acquired_at`. A knex start, which before wrote at most the removal of a
//! sighting, now also writes this row on every start (a `CREATE TABLE IF
//! NOT EXISTS` and one transaction: delete, insert; milliseconds), and a
//! first deploy with a migrate command, which cannot know yet which tool
//! the command uses, writes it for knex and golang-migrate both. Worth it:
//! without it, a knex migration killed half-way could be proven gone by
//! no session and no open file alone, which is unsound (a live holder whose
//! pool is idle looks the same), so it would wait for the whole TTL.
//!
//! There is no row that lets a replica skip its migrate command because
//! another replica ran "the same command": the same command line in an
//! older image runs older migrations, so only the tool itself can say that
//! nothing is pending, and every replica asks it by running the command
//! (earlier versions wrote a row `migrated`; it is no longer read). The
//! table is created on first write: a first sighting.
//!
//! May touch: table `unlatch_state` only.

use std::time::Instant;

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

/// Sets the rows `set` (name, value), recorded now, and removes the rows
/// `forget`, in one transaction; the table is made on first use.
async fn put(db: &mut Db, set: &[(String, String)], forget: &[String]) -> anyhow::Result<()> {
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (name VARCHAR(191) NOT NULL PRIMARY KEY, \
         value VARCHAR(255), recorded_at VARCHAR(40))"
    );
    db.exec(&create, &[]).await?;
    let now = Timestamp::now().to_string();
    let delete = format!("DELETE FROM {TABLE} WHERE name = ?");
    let insert = format!("INSERT INTO {TABLE} (name, value, recorded_at) VALUES (?, ?, ?)");
    let names = forget.iter().chain(set.iter().map(|(name, _)| name));
    let mut steps: Vec<(&str, Vec<Option<&str>>)> = names
        .map(|name| (delete.as_str(), vec![Some(name.as_str())]))
        .collect();
    for (name, value) in set {
        steps.push((&insert, vec![Some(name), Some(value), Some(&now)]));
    }
    db.exec_in_transaction(&steps).await?;
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
    let signature = fingerprint(&[signature.to_owned()]);
    if let Some(at) = seen_as(db, tool, &signature).await? {
        return Ok(at);
    }
    put(db, &[(seen_row(tool), signature)], &[]).await?;
    Ok(Timestamp::now())
}

/// When unlatch first saw `tool`'s lock as `signature`, if it has; reads
/// only (what `unlatch status` may do).
pub async fn seen_since(
    db: &mut Db,
    tool: &str,
    signature: &str,
) -> anyhow::Result<Option<Timestamp>> {
    seen_as(db, tool, &fingerprint(&[signature.to_owned()])).await
}

/// [`seen_since`], given the signature's fingerprint.
async fn seen_as(db: &mut Db, tool: &str, fingerprint: &str) -> anyhow::Result<Option<Timestamp>> {
    Ok(get(db, &seen_row(tool))
        .await?
        .filter(|(value, _)| value == fingerprint)
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

/// Records that the locks of `tools` (whose locks record no time) were
/// free at `looked`, a moment just passed on this host's monotonic clock
/// (taken before the look that saw them free): the database's clock now,
/// less the time since (the clock's own round trip included), so never
/// later than the look. Their first sightings go in the same transaction.
pub async fn saw_free(db: &mut Db, tools: &[&str], looked: Instant) -> anyhow::Result<()> {
    let now = db.clock().await?;
    let since = jiff::SignedDuration::try_from(looked.elapsed())?;
    let at = now.checked_sub(since)?.to_string();
    let set: Vec<(String, String)> = tools.iter().map(|t| (free_row(t), at.clone())).collect();
    let forget: Vec<String> = tools.iter().map(|t| seen_row(t)).collect();
    put(db, &set, &forget).await
}

/// When a start last saw `tool`'s lock free, or freed it, by the database's
/// clock ([`saw_free`]); reads only.
pub async fn seen_free(db: &mut Db, tool: &str) -> anyhow::Result<Option<Timestamp>> {
    Ok(get(db, &free_row(tool))
        .await?
        .and_then(|(value, _)| value.parse().ok()))
}

/// The row of the time `tool`'s lock was last seen free.
fn free_row(tool: &str) -> String {
    format!("free:{tool}")
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
