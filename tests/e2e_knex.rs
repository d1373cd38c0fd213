//! End to end with the real knex 3.1.0 (from npm) on SQLite, MariaDB and
//! PostgreSQL: a migration that runs outside a transaction, killed half-way,
//! leaves `knex_migrations_lock` locked for good; unlatch heals it after the
//! TTL across two consecutive starts (the restart loop), and never touches
//! it while the migration is alive.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;

on_every_engine!(
    killed_migration_heals_across_two_starts,
    live_migration_is_never_touched
);

/// The fixture's database settings for knex.
fn knex_env(db: &TestDb, cmd: &mut Command) {
    let (client, connection) = match db.engine {
        Engine::Sqlite => (
            "better-sqlite3",
            url::Url::parse(&db.url).unwrap().path().to_owned(),
        ),
        Engine::MySql => ("mysql2", db.url.clone()),
        Engine::Postgres => ("pg", db.url.clone()),
    };
    cmd.env("KNEX_CLIENT", client)
        .env("KNEX_CONNECTION", connection);
}

fn migrate_argv(dir: &Path) -> String {
    format!(
        "{} migrate:latest --knexfile {}",
        dir.join("node_modules/.bin/knex").display(),
        dir.join("knexfile.js").display()
    )
}

fn knex_migrate(db: &TestDb, dir: &Path) -> Command {
    let argv = shell_words::split(&migrate_argv(dir)).unwrap();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).current_dir(dir);
    knex_env(db, &mut cmd);
    cmd
}

fn unlatch_in_front(db: &TestDb, dir: &Path) -> Command {
    let mut cmd = unlatch();
    cmd.current_dir(dir)
        .env("UNLATCH_DATABASE_URL", &db.url)
        .env("UNLATCH_MIGRATE_CMD", migrate_argv(dir))
        .args(["--", "node", "knex-app.js"]);
    knex_env(db, &mut cmd);
    cmd
}

fn is_locked(db: &TestDb) -> String {
    db.row("select is_locked from knex_migrations_lock")
        .unwrap()[0]
        .clone()
}

fn assert_app_started(out: &Output) {
    assert_eq!(code(out), 0);
    assert!(
        stdout(out).ends_with("KNEX APP STARTED items=3 priced=3 migrations=2\n"),
        "{}",
        stdout(out)
    );
}

fn start_paused_migration(db: &TestDb, dir: &Path, seconds: &str) -> (Child, PathBuf) {
    let pause = db.scratch.path().join("paused");
    let mut child = knex_migrate(db, dir)
        .env("KNEX_PAUSE_FILE", &pause)
        .env("KNEX_PAUSE_SECONDS", seconds)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_file(&pause, &mut child);
    (child, pause)
}

fn killed_migration_heals_across_two_starts(db: &TestDb) {
    let dir = knexapp();
    let (mut migration, _) = start_paused_migration(db, &dir, "30");
    migration.kill().unwrap();
    migration.wait().unwrap();
    assert_eq!(
        is_locked(db),
        "1",
        "knex committed its lock on its own, and died holding it"
    );
    let again = run(&mut knex_migrate(db, &dir));
    assert_ne!(code(&again), 0);
    assert!(
        format!("{}{}", stdout(&again), stderr(&again))
            .contains("Migration table is already locked"),
        "knex itself is stuck: the restart loop"
    );

    let settings = |cmd: &mut Command| {
        // The TTL rule alone: a proof would heal the dead holder's lock
        // at once (tests/proof.rs, tests/holders.rs).
        cmd.env("UNLATCH_LOCK_TTL", "3s")
            .env("UNLATCH_LOCK_WAIT", "1s")
            .env("UNLATCH_PROOFS", "0");
    };
    // Start 1: knex records no time; unlatch notes when it first saw the lock.
    let mut first = unlatch_in_front(db, &dir);
    settings(&mut first);
    let out = run(&mut first);
    assert_eq!(code(&out), 75);
    assert_eq!(is_locked(db), "1");
    std::thread::sleep(Duration::from_millis(3200));
    // Start 2, as a restart loop would: the age added up past the TTL.
    let mut second = unlatch_in_front(db, &dir);
    settings(&mut second);
    let out = run(&mut second);
    assert_app_started(&out);
    assert!(stderr(&out).contains("stale; freed it"), "{}", stderr(&out));
    assert_eq!(is_locked(db), "0");
}

fn live_migration_is_never_touched(db: &TestDb) {
    let dir = knexapp();
    let (mut migration, _) = start_paused_migration(db, &dir, "4");
    let out = run(unlatch_in_front(db, &dir)
        .env("UNLATCH_LOCK_TTL", "60s")
        .env("UNLATCH_LOCK_WAIT", "60s"));
    assert!(
        migration.wait().unwrap().success(),
        "the live migration finished undisturbed"
    );
    assert_app_started(&out);
    let log = stderr(&out);
    assert!(
        log.contains("live, leaving it alone") && !log.contains("freed"),
        "{log}"
    );
}
