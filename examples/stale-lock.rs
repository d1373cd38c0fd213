//! Makes what a killed Ghost upgrade leaves behind: a SQLite database whose
//! knex-migrator lock (`migrations_lock`, row `km01`) was taken two hours
//! ago and never released. Used by `scripts/demo`.
//!
//! Usage: cargo run --example stale-lock -- PATH

use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: stale-lock PATH"))?;
    let mut conn = SqliteConnectOptions::from_str(&path)?
        .create_if_missing(true)
        .connect()
        .await?;
    // knex-migrator's own DDL (knex 2/3, sqlite3) and the row a killed
    // `knex-migrator migrate` leaves: locked, acquired_at in local time.
    let acquired_at = (jiff::Zoned::now() - jiff::SignedDuration::from_hours(2))
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string();
    for statement in [
        "create table if not exists `migrations_lock` (`lock_key` varchar(191) not null, `locked` boolean default '0', \
         `acquired_at` datetime null, `released_at` datetime null, primary key (`lock_key`))",
        "delete from migrations_lock",
    ] {
        sqlx::query(statement).execute(&mut conn).await?;
    }
    sqlx::query(
        "insert into migrations_lock (lock_key, locked, acquired_at) values ('km01', 1, ?)",
    )
    .bind(&acquired_at)
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    println!(
        "{path}: migrations_lock km01 locked since {acquired_at}, as a killed migration leaves it"
    );
    Ok(())
}
