//! End to end with the real knex-migrator 6.2.1 (from npm) and a Ghost-like
//! fixture app, on SQLite and MariaDB: the restart loop a killed migration
//! leaves behind, and unlatch getting the app out of it. unlatch is set up
//! as a Ghost user would, through Ghost's own `database__*` variables.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};

use common::apps::*;
use common::*;

type App<'a> = KnexMigratorApp<'a>;

impl App<'_> {
    /// Installed at 1.0, then an upgrade to 1.1 killed half-way: the column
    /// added, no `migrations` row for it, the lock left set.
    fn install_then_kill_upgrade(&self, scratch: &Path) {
        self.install_1_0();
        assert_eq!(stdout(&self.boot("1.0")), "APP STARTED posts=3 slugs=0\n");
        let pause = scratch.join("paused");
        let mut upgrade = self
            .migrator("knex-migrator-migrate", "1.1")
            .env("FIXTURE_PAUSE_FILE", &pause)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_file(&pause, &mut upgrade);
        upgrade.kill().unwrap();
        upgrade.wait().unwrap();
        assert_eq!(
            self.db.knex_migrator_lock().unwrap()[0],
            "1",
            "the killed upgrade left the lock set"
        );
    }
}

/// unlatch exited 0 and the app started on the upgraded database.
fn assert_app_upgraded(out: &Output) {
    assert_eq!(code(out), 0);
    let stdout = stdout(out);
    assert!(
        stdout.ends_with("APP STARTED posts=3 slugs=3\n"),
        "{stdout}"
    );
}

fn fixture(engine: Engine, test: &str) -> Option<(TestDb, PathBuf)> {
    let db = TestDb::new(engine, test)?;
    Some((db, knexapp()))
}

fn killed_upgrade_restart_loop_is_healed(engine: Engine) {
    let Some((db, dir)) = fixture(engine, "killed_upgrade") else {
        return;
    };
    let app = App { dir, db: &db };
    app.install_then_kill_upgrade(db.scratch.path());

    // Every boot now fails, as Ghost's does: the restart loop.
    let boot = app.boot("1.1");
    assert_eq!(code(&boot), 2);
    assert!(
        stderr(&boot).contains("MigrationsAreLockedError"),
        "{}",
        stderr(&boot)
    );
    // knex-migrator's own rollback does not get out of it.
    let rollback = run(&mut app.migrator("knex-migrator-rollback", "1.1"));
    assert_eq!(code(&rollback), 1);
    assert!(
        stdout(&rollback).contains("No migrations available to rollback"),
        "{}",
        stdout(&rollback)
    );
    assert_eq!(
        db.knex_migrator_lock().unwrap()[0],
        "1",
        "and the lock stays set"
    );

    // unlatch: waits out the (short) TTL, heals, migrates, starts the app.
    // The TTL is 3s more than the lock's age now, however slow the steps
    // above were, so unlatch first sees the lock live.
    let taken: jiff::civil::DateTime = db.knex_migrator_lock().unwrap()[1].parse().unwrap();
    let age = jiff::Timestamp::now()
        .duration_since(taken.to_zoned(jiff::tz::TimeZone::UTC).unwrap().timestamp());
    let ttl = format!("{}s", age.as_secs() + 3);
    // The TTL rule alone: a proof would heal the dead holder's lock at
    // once (tests/proof.rs, tests/holders.rs).
    let out = run(app
        .unlatch()
        .env("UNLATCH_LOCK_TTL", &ttl)
        .env("UNLATCH_PROOFS", "0"));
    assert_app_upgraded(&out);
    let log = stderr(&out);
    assert!(
        log.contains("live, leaving it alone") && log.contains("stale; freed it"),
        "{log}"
    );
    assert_eq!(db.knex_migrator_lock().unwrap()[0], "0");
    assert_eq!(
        db.row("select count(*) from posts").unwrap(),
        ["3"],
        "no row lost"
    );
    assert_eq!(
        db.row("select count(*) from migrations where version = '1.1'")
            .unwrap(),
        ["2"]
    );
    // And the next plain boot is fine too.
    assert_eq!(stdout(&app.boot("1.1")), "APP STARTED posts=3 slugs=3\n");
}

fn live_migration_is_waited_for(engine: Engine) {
    let Some((db, dir)) = fixture(engine, "live_migration") else {
        return;
    };
    let app = App { dir, db: &db };
    app.install_1_0();
    let pause = db.scratch.path().join("paused");
    let mut upgrade = app
        .migrator("knex-migrator-migrate", "1.1")
        .env("FIXTURE_PAUSE_FILE", &pause)
        .env("FIXTURE_PAUSE_SECONDS", "4")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_file(&pause, &mut upgrade);
    let out = run(&mut app.unlatch());
    assert!(
        upgrade.wait().unwrap().success(),
        "the live migration finished undisturbed"
    );
    assert_app_upgraded(&out);
    let log = stderr(&out);
    assert!(
        log.contains("live, leaving it alone") && !log.contains("freed"),
        "{log}"
    );
}

fn fail_policy_leaves_lock_as_it_was(engine: Engine) {
    let Some((db, dir)) = fixture(engine, "fail_policy") else {
        return;
    };
    let app = App { dir, db: &db };
    app.install_then_kill_upgrade(db.scratch.path());
    let before = db.knex_migrator_lock().unwrap();
    let out = run(app
        .unlatch()
        .env("UNLATCH_ON_STALE", "fail")
        .env("UNLATCH_LOCK_TTL", "0s"));
    assert_eq!(code(&out), 76);
    assert_eq!(stdout(&out), "", "neither migrate nor app ran");
    assert_eq!(db.knex_migrator_lock().unwrap(), before);
}

fn four_replicas_start_and_migrate_once(engine: Engine) {
    let Some((db, dir)) = fixture(engine, "replicas") else {
        return;
    };
    let app = App { dir, db: &db };
    app.install_1_0();
    let runs = db.scratch.path().join("runs");
    let replicas: Vec<Child> = (0..4)
        .map(|_| {
            app.unlatch()
                .env("FIXTURE_RUN_LOG", &runs)
                .env("FIXTURE_PAUSE_FILE", db.scratch.path().join("paused"))
                .env("FIXTURE_PAUSE_SECONDS", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for replica in replicas {
        let out = replica.wait_with_output().unwrap();
        let err = stderr(&out);
        eprintln!("{err}");
        // As the README says: a replica whose app booted while another
        // replica's knex-migrator-migrate held its lock for a moment fails
        // its boot check, and its restart takes its turn again.
        if code(&out) != 0 {
            assert!(err.contains("APP FAILED MigrationsAreLockedError"), "{err}");
            let again = run(app.unlatch().env("FIXTURE_RUN_LOG", &runs));
            eprintln!("restarted: {}", stderr(&again));
            assert_app_upgraded(&again);
            continue;
        }
        assert_app_upgraded(&out);
    }
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "1-add-slug\n2-fill-slug\n",
        "each migration ran once"
    );
}

macro_rules! sqlite_and_mysql {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test] fn sqlite() { super::$name(super::Engine::Sqlite) }
            #[test] fn mysql() { super::$name(super::Engine::MySql) }
        }
    )*};
}

sqlite_and_mysql!(
    killed_upgrade_restart_loop_is_healed,
    live_migration_is_waited_for,
    fail_policy_leaves_lock_as_it_was,
    four_replicas_start_and_migrate_once,
);
