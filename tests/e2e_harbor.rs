//! End to end for Harbor on PostgreSQL, with golang-migrate's exact DDL and
//! steps (v4.19.1; golang-migrate itself cannot run here): harbor-core's
//! schema step (the fixture's `migrate.sh`, a psql stand-in) killed half-way
//! leaves `schema_migrations` dirty; the next start refuses ("Dirty database
//! version 2. Fix and force version."); unlatch in front, given Harbor's
//! variables and `UNLATCH_ON_DIRTY=retry`, marks it not applied, as `migrate
//! force 1` would, and the start completes. A migration that is running,
//! its advisory lock held, is left alone.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use common::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/harborapp")
}

/// golang-migrate's postgres `Lock`: `GenerateAdvisoryLockId(database,
/// schema, table)`, the CRC-32 of `schema\0table\0database` times 1486364155.
fn advisory_lock_id(db: &TestDb) -> u32 {
    let name = format!("public\0schema_migrations\0{}", db.name);
    crc32fast::hash(name.as_bytes()).wrapping_mul(1_486_364_155)
}

/// Harbor's variables for `db` (harbor-core's POSTGRESQL_*), and the
/// stand-in's own knobs.
fn harbor_env(db: &TestDb, cmd: &mut Command, slow: u32) {
    let url = url::Url::parse(&db.url).unwrap();
    cmd.env("POSTGRESQL_HOST", url.host_str().unwrap())
        .env("POSTGRESQL_PORT", url.port().unwrap().to_string())
        .env("POSTGRESQL_USERNAME", url.username())
        .env("POSTGRESQL_PASSWORD", url.password().unwrap())
        .env("POSTGRESQL_DATABASE", &db.name)
        .env("POSTGRESQL_SSLMODE", "disable")
        .env(
            "POSTGRES_MIGRATION_SCRIPTS_PATH",
            fixture().join("migrations"),
        )
        .env("HARBORAPP_LOCK_ID", advisory_lock_id(db).to_string())
        .env("HARBORAPP_SLOW", slow.to_string());
}

fn harbor_core(db: &TestDb, slow: u32) -> Command {
    let mut cmd = Command::new(fixture().join("migrate.sh"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    harbor_env(db, &mut cmd, slow);
    cmd
}

/// harbor-core in a process group of its own (the shell and its psql die
/// together, as a container's processes do), paused in migration 2.
fn start_slow_migration(db: &TestDb, slow: u32) -> Child {
    let mut child = harbor_core(db, slow)
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while version(db).as_deref() != Some(&["2".to_owned(), "1".to_owned()][..]) {
        let gone = child.try_wait().unwrap();
        assert!(
            gone.is_none() && Instant::now() < deadline,
            "never reached migration 2 (exit {gone:?})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn version(db: &TestDb) -> Option<Vec<String>> {
    let exists = db.row(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'",
    )?;
    if exists[0] == "0" {
        return None;
    }
    db.row("SELECT version, dirty FROM schema_migrations")
}

/// unlatch in harbor-core's container: Harbor's variables, and the user's
/// choice to retry a dirty migration.
fn unlatch_for_harbor(db: &TestDb) -> Command {
    let mut cmd = unlatch();
    harbor_env(db, &mut cmd, 0);
    cmd.env("UNLATCH_ON_DIRTY", "retry")
        .env("UNLATCH_MIGRATE_CMD", fixture().join("migrate.sh"));
    cmd
}

#[test]
fn killed_migration_heals_with_harbors_variables() {
    let Some(db) = TestDb::new(Engine::Postgres, "harbor_killed") else {
        return;
    };
    let mut first = start_slow_migration(&db, 6);
    killpg(Pid::from_raw(first.id() as i32), Signal::SIGKILL).unwrap();
    first.wait().unwrap();
    assert_eq!(version(&db).unwrap(), ["2", "1"], "left dirty");

    // The restart loop: the next start refuses.
    let again = run(&mut harbor_core(&db, 0));
    assert_ne!(code(&again), 0);
    assert!(
        stdout(&again).contains(
            "Failed to upgrade schema, error: \"Dirty database version 2. Fix and force version.\""
        ),
        "{}",
        stdout(&again)
    );
    // Its server-side query outlived the client and committed: PostgreSQL
    // ran the file as one implicit transaction to its end. Only the marker
    // says it did not finish; a retry must be idempotent, as Harbor's are.
    assert_eq!(
        db.row("SELECT CAST(to_regclass('artifact') AS TEXT)")
            .unwrap(),
        ["artifact"]
    );

    let out = run(unlatch_for_harbor(&db)
        .env("UNLATCH_LOCK_TTL", "5s")
        .env("UNLATCH_LOCK_WAIT", "60s")
        .args(["--", "true"]));
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(err.contains("app profile harbor"), "{err}");
    assert!(
        err.contains("force 1"),
        "named as golang-migrate's repair: {err}"
    );
    assert!(
        stdout(&out).contains("harbor-core: schema up to date"),
        "{}",
        stdout(&out)
    );
    assert_eq!(version(&db).unwrap(), ["3", "0"]);
    assert_eq!(
        db.row("SELECT COUNT(*) FROM tag").unwrap(),
        ["0"],
        "migration 3 ran"
    );
}

#[test]
fn running_migration_is_left_alone() {
    let Some(db) = TestDb::new(Engine::Postgres, "harbor_live") else {
        return;
    };
    let mut live = start_slow_migration(&db, 15);
    let out = run(unlatch_for_harbor(&db)
        .env("UNLATCH_LOCK_TTL", "1s")
        .env("UNLATCH_LOCK_WAIT", "4s")
        .args(["--", "true"]));
    assert_eq!(code(&out), 75, "a running migration is waited for");
    assert_eq!(version(&db).unwrap(), ["2", "1"], "untouched");
    assert!(live.wait().unwrap().success(), "it completed on its own");
    assert_eq!(version(&db).unwrap(), ["3", "0"]);
}
