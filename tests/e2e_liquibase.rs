//! End to end with the real Liquibase 4.28.0 (npm `liquibase` 4.28.1, its
//! bundled JDBC drivers, the machine's Java 17) on MariaDB and PostgreSQL,
//! as Rundeck runs it at boot: an `update` killed half-way leaves
//! `DATABASECHANGELOGLOCK` locked; the next `update` waits "Waiting for
//! changelog lock...." (the restart loop); unlatch in front, given only
//! Rundeck's variables, heals it and the update completes. A live update is
//! left alone. On PostgreSQL the JVM runs west of the server's zone: its
//! driver makes `LOCKGRANTED` the JVM's wall-clock time, which unlatch must
//! read in that zone, not the server's, or a live lock looks hours old.

#[macro_use]
mod common;

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use common::*;

/// West of the servers (UTC): a zone-blind reading makes a fresh lock 8h old.
const JVM_ZONE: &str = "America/Los_Angeles";

macro_rules! on_mariadb_and_postgres {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[test] fn mysql() { if let Some(db) = TestDb::new(Engine::MySql, stringify!($name)) { super::$name(&db) } }
            #[test] fn postgres() { if let Some(db) = TestDb::new(Engine::Postgres, stringify!($name)) { super::$name(&db) } }
        }
    )*};
}

on_mariadb_and_postgres!(
    killed_update_heals_with_rundecks_variables,
    live_update_is_left_alone
);

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/liquibaseapp")
}

fn liquibase_home() -> PathBuf {
    npm_fixture("liquibaseapp").join("node_modules/liquibase/dist/liquibase")
}

/// Rundeck's variables for `db`: a JDBC URL, its user and password.
fn rundeck_env(db: &TestDb, cmd: &mut Command) {
    let url = url::Url::parse(&db.url).unwrap();
    let scheme = match db.engine {
        Engine::MySql => "mariadb",
        _ => "postgresql",
    };
    let jdbc = format!(
        "jdbc:{scheme}://{}:{}/{}",
        url.host_str().unwrap(),
        url.port().unwrap(),
        db.name
    );
    cmd.env("RUNDECK_DATABASE_URL", jdbc)
        .env("RUNDECK_DATABASE_USERNAME", url.username())
        .env("RUNDECK_DATABASE_PASSWORD", url.password().unwrap());
}

/// Rundeck's boot migration (the fixture's `update.sh`), the JVM in
/// [`JVM_ZONE`], in a process group of its own (the script's shell and
/// its JVM die together, as a container's processes do).
fn update(db: &TestDb, slow: u32, log: &Path) -> Child {
    let mut cmd = Command::new(fixture().join("update.sh"));
    rundeck_env(db, &mut cmd);
    cmd.env("LIQUIBASE_HOME", liquibase_home())
        .env("TZ", JVM_ZONE)
        .env("SLOW", slow.to_string())
        .stdin(Stdio::null())
        .stdout(File::create(log).unwrap())
        .stderr(File::create(log).unwrap())
        .process_group(0);
    cmd.spawn().unwrap()
}

/// Waits until the log says `needle`; the process must still be running.
fn wait_for_log(child: &mut Child, log: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        let gone = child.try_wait().unwrap();
        assert!(
            gone.is_none() && Instant::now() < deadline,
            "never said {needle:?} (exit: {gone:?}); log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill_group(child: &mut Child) {
    killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
}

fn lock(db: &TestDb) -> Vec<String> {
    db.row("SELECT CASE WHEN LOCKED THEN 1 ELSE 0 END, LOCKEDBY FROM DATABASECHANGELOGLOCK WHERE ID = 1")
        .unwrap()
}

fn applied(db: &TestDb) -> String {
    db.row("SELECT COUNT(*) FROM DATABASECHANGELOG").unwrap()[0].clone()
}

/// unlatch in Rundeck's container: Rundeck's variables, the JVM's zone,
/// and the user's migrate command (the same `update`, now fast).
fn unlatch_for_rundeck(db: &TestDb) -> Command {
    let mut cmd = unlatch();
    rundeck_env(db, &mut cmd);
    cmd.env("TZ", JVM_ZONE)
        .env("LIQUIBASE_HOME", liquibase_home())
        .env("SLOW", "0")
        .env("UNLATCH_MIGRATE_CMD", fixture().join("update.sh"));
    cmd
}

fn killed_update_heals_with_rundecks_variables(db: &TestDb) {
    let log = db.scratch.path().join("update.log");
    let mut first = update(db, 10, &log);
    wait_for_log(&mut first, &log, "Running Changeset: changelog.sql::2");
    kill_group(&mut first);
    assert_eq!(lock(db)[0], "1", "Liquibase died holding its lock");

    // The restart loop: the next real update waits on the dead one's lock.
    let waiting_log = db.scratch.path().join("waiting.log");
    let mut waiting = update(db, 0, &waiting_log);
    wait_for_log(&mut waiting, &waiting_log, "Waiting for changelog lock....");
    // Killed while it waits, as a restart policy does (left to time out,
    // Liquibase 4.28's CLI would release the lock it never took).
    kill_group(&mut waiting);
    assert_eq!(lock(db)[0], "1");

    let out = run(unlatch_for_rundeck(db)
        .env("UNLATCH_LOCK_TTL", "20s")
        .args(["--", "true"]));
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(
        err.contains("app profile rundeck (RUNDECK_DATABASE_URL is set)"),
        "{err}"
    );
    assert!(err.contains("freed"), "{err}");
    assert!(
        !err.contains("held for 7h") && !err.contains("held for 8h"),
        "the lock's age read in the JVM's zone:\n{err}"
    );
    assert_eq!(lock(db), ["0", "NULL"]);
    assert_eq!(
        applied(db),
        "3",
        "the update completed: every changeset ran"
    );
}

fn live_update_is_left_alone(db: &TestDb) {
    let log = db.scratch.path().join("update.log");
    let mut live = update(db, 20, &log);
    wait_for_log(&mut live, &log, "Running Changeset: changelog.sql::2");
    let holder = lock(db);
    assert_eq!(holder[0], "1");
    let out = run(unlatch_for_rundeck(db)
        .env("UNLATCH_LOCK_TTL", "10m")
        .env("UNLATCH_LOCK_WAIT", "2s")
        .args(["--", "true"]));
    let err = stderr(&out);
    assert_eq!(code(&out), 75, "a live lock is waited for, never cleared");
    assert!(
        !err.contains("held for 7h") && !err.contains("held for 8h"),
        "the lock's age read in the JVM's zone:\n{err}"
    );
    assert_eq!(lock(db), holder, "untouched");
    let status = live.wait().unwrap();
    assert!(status.success(), "the live update completed on its own");
    assert_eq!(lock(db), ["0", "NULL"]);
    assert_eq!(applied(db), "3");
}
