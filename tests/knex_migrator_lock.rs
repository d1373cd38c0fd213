//! The knex-migrator lock on SQLite, MariaDB and PostgreSQL, driven through
//! the unlatch binary: stale locks healed, live ones left alone, every
//! policy, the guard, the migrate command's timeout and signals.

#[macro_use]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use jiff::{tz::TimeZone, Timestamp, ToSpan};

on_every_engine!(
    stale_lock_is_cleared_and_app_starts,
    live_lock_is_waited_for_then_given_up,
    live_lock_released_while_waiting,
    fail_policy_changes_nothing,
    missing_row_is_put_back,
    unknown_age_heals_after_watching_a_whole_ttl,
    migrate_timeout_frees_the_lock_it_took,
    migrate_failure_stops_before_the_app,
    sigterm_during_migrate_is_passed_on_and_cleaned_up,
    rollback_policy_runs_command_then_clears,
    guard_makes_replicas_take_turns,
    status_reports_and_changes_nothing,
    bad_configuration_touches_nothing,
    compare_and_swap_refuses_a_changed_lock,
);

/// A timestamp `ago` before now, as a SQL literal in UTC wall-clock time.
fn utc_ago(ago: Duration) -> String {
    let t = Timestamp::now() - ago;
    format!(
        "'{}'",
        t.to_zoned(TimeZone::UTC).strftime("%Y-%m-%d %H:%M:%S")
    )
}

/// A shell command that runs `statement` on `db` with the engine's own CLI.
fn cli(db: &TestDb, statement: &str) -> String {
    let url = url::Url::parse(&db.url).unwrap();
    match db.engine {
        Engine::Sqlite => format!("sqlite3 '{}' \"{statement}\"", url.path()),
        Engine::MySql => format!(
            "mariadb -h {} -P {} -u {} -p{} {} -e \"{statement}\"",
            url.host_str().unwrap(),
            url.port().unwrap_or(3306),
            url.username(),
            url.password().unwrap_or_default(),
            db.name
        ),
        Engine::Postgres => format!("psql -q '{}' -c \"{statement}\"", db.url),
    }
}

/// The statement a migrator runs to take the lock now (UTC wall clock).
fn take_lock_sql(db: &TestDb) -> &'static str {
    match db.engine {
        Engine::Sqlite => {
            "update migrations_lock set locked=1, acquired_at=datetime('now') where lock_key='km01'"
        }
        Engine::MySql => {
            "update migrations_lock set locked=1, acquired_at=utc_timestamp() where lock_key='km01'"
        }
        Engine::Postgres => {
            "update migrations_lock set locked=true, acquired_at=now() where lock_key='km01'"
        }
    }
}

fn stale_lock_is_cleared_and_app_starts(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(true, &utc_ago(Duration::from_secs(7200)));
    let before = db.knex_migrator_lock().unwrap();
    let out = run(unlatch_on_rows(db).args(["--", "sh", "-c", "echo APP STARTED"]));
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), "APP STARTED\n");
    let err = stderr(&out);
    assert!(
        err.contains("held for 2h")
            && err.contains("UNLATCH_LOCK_TTL=15m")
            && err.contains("freed it"),
        "{err}"
    );
    let after = db.knex_migrator_lock().unwrap();
    assert_eq!(after[0], "0", "lock freed");
    assert_eq!(after[1], before[1], "the holder's acquired_at is kept");
    assert_ne!(
        after[2], "NULL",
        "released_at written, as knex-migrator's unlock() does"
    );
}

fn live_lock_is_waited_for_then_given_up(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(true, &utc_ago(Duration::from_secs(60)));
    let before = db.knex_migrator_lock().unwrap();
    let out = run(unlatch_on_rows(db).env("UNLATCH_LOCK_WAIT", "2s").args([
        "--",
        "sh",
        "-c",
        "echo APP STARTED",
    ]));
    assert_eq!(code(&out), 75);
    assert_eq!(stdout(&out), "", "the app must not start");
    let err = stderr(&out);
    assert!(
        err.contains("live, leaving it alone") && err.contains("UNLATCH_LOCK_WAIT=2s"),
        "{err}"
    );
    assert_eq!(
        db.knex_migrator_lock().unwrap(),
        before,
        "a live lock is never touched"
    );
}

fn live_lock_released_while_waiting(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(true, &utc_ago(Duration::ZERO));
    let child = unlatch_on_rows(db)
        .args(["--", "sh", "-c", "echo APP STARTED"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // The live migrator finishes and unlocks, writing its own released_at.
    let released = utc_ago(Duration::from_secs(1));
    db.exec(&[&format!(
        "update migrations_lock set locked = {}, released_at = {released}",
        if db.engine == Engine::Postgres {
            "false"
        } else {
            "0"
        }
    )]);
    let marker = db.knex_migrator_lock().unwrap();
    let out = child.wait_with_output().unwrap();
    eprintln!("{}", stderr(&out));
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), "APP STARTED\n");
    assert!(stderr(&out).contains("live, leaving it alone"));
    assert_eq!(
        db.knex_migrator_lock().unwrap(),
        marker,
        "unlatch wrote nothing"
    );
}

fn fail_policy_changes_nothing(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(true, &utc_ago(Duration::from_secs(3600)));
    let before = db.knex_migrator_lock().unwrap();
    let out = run(unlatch_on_rows(db).env("UNLATCH_ON_STALE", "fail").args([
        "--",
        "sh",
        "-c",
        "echo APP STARTED",
    ]));
    assert_eq!(code(&out), 76);
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    for part in [
        "migrations_lock",
        "taken at",
        "held for 1h",
        "UNLATCH_LOCK_TTL=15m",
        "UPDATE migrations_lock SET locked=",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
    assert_eq!(db.knex_migrator_lock().unwrap(), before);
}

fn missing_row_is_put_back(db: &TestDb) {
    db.create_knex_migrator_lock();
    let out = run(unlatch_on_rows(db).env("UNLATCH_ON_STALE", "fail"));
    assert_eq!(code(&out), 76, "fail refuses even this");
    assert!(
        stderr(&out).contains("INSERT INTO migrations_lock"),
        "{}",
        stderr(&out)
    );
    assert_eq!(db.knex_migrator_lock(), None);
    let out = run(&mut unlatch_on_rows(db));
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("put the row back, unlocked"));
    assert_eq!(db.knex_migrator_lock().unwrap(), ["0", "NULL", "NULL"]);
}

fn unknown_age_heals_after_watching_a_whole_ttl(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(true, "NULL");
    let started = Instant::now();
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_TTL", "2s")
        .env("UNLATCH_LOCK_WAIT", "30s"));
    assert_eq!(code(&out), 0);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "watched for a whole TTL first"
    );
    let err = stderr(&out);
    assert!(
        err.contains("taken at NULL")
            && err.contains("live, leaving it alone")
            && err.contains("freed it"),
        "{err}"
    );
    assert_eq!(db.knex_migrator_lock().unwrap()[0], "0");
}

fn migrate_timeout_frees_the_lock_it_took(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(false, "NULL");
    let script = format!("{} && exec sleep 30", cli(db, take_lock_sql(db)));
    let out = run(unlatch_on_rows(db)
        .env(
            "UNLATCH_MIGRATE_CMD",
            format!("sh -c '{}'", script.replace('\'', r"'\''")),
        )
        .env("UNLATCH_MIGRATE_TIMEOUT", "3s")
        .env("UNLATCH_KILL_GRACE", "1s")
        .args(["--", "sh", "-c", "echo APP STARTED"]));
    assert_eq!(code(&out), 72);
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.contains("UNLATCH_MIGRATE_TIMEOUT=3s")
            && err.contains("after it started")
            && err.contains("freed it"),
        "{err}"
    );
    let lock = db.knex_migrator_lock().unwrap();
    assert_eq!(lock[0], "0");
    assert_ne!(lock[1], "NULL");
}

fn migrate_failure_stops_before_the_app(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(false, "NULL");
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_MIGRATE_CMD", "sh -c 'exit 3'")
        .args(["--", "sh", "-c", "echo APP STARTED"]));
    assert_eq!(code(&out), 71);
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("UNLATCH_MIGRATE_CMD exited with 3"));
}

fn sigterm_during_migrate_is_passed_on_and_cleaned_up(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(false, "NULL");
    let scratch = Scratch::new("sigterm");
    let marker = scratch.path().join("got-term");
    // The migrator takes the lock, then records the TERM it is passed.
    let script = format!(
        "trap \"echo term > {}; exit 143\" TERM; {}; sleep 30 & wait",
        marker.display(),
        cli(db, take_lock_sql(db))
    );
    let child = unlatch_on_rows(db)
        .env(
            "UNLATCH_MIGRATE_CMD",
            format!("sh -c '{}'", script.replace('\'', r"'\''")),
        )
        .args(["--", "sh", "-c", "echo APP STARTED"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.knex_migrator_lock().unwrap()[0] != "1" {
        assert!(
            Instant::now() < deadline,
            "the migrate command never took the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    eprintln!("{}", stderr(&out));
    assert_eq!(code(&out), 143);
    assert_eq!(stdout(&out), "");
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "term\n",
        "TERM reached the migrator"
    );
    assert_eq!(
        db.knex_migrator_lock().unwrap()[0],
        "0",
        "the lock its migrator took is freed"
    );
}

fn rollback_policy_runs_command_then_clears(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(true, &utc_ago(Duration::from_secs(7200)));
    let scratch = Scratch::new("rollback");
    let marker = scratch.path().join("rolled-back");
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_ON_STALE", "rollback")
        .env(
            "UNLATCH_ROLLBACK_CMD",
            format!(
                "sh -c 'echo No migrations available to rollback; touch {}; exit 1'",
                marker.display()
            ),
        )
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert!(marker.exists(), "the rollback command ran");
    let err = stderr(&out);
    assert!(
        err.contains(
            "UNLATCH_ROLLBACK_CMD exited with 1 and left the same holder's lock set; freed it"
        ),
        "{err}"
    );
    assert_eq!(db.knex_migrator_lock().unwrap()[0], "0");
}

fn guard_makes_replicas_take_turns(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(false, "NULL");
    // Another "replica" holds unlatch's guard.
    let holder: Box<dyn FnOnce()> = match db.engine {
        Engine::Sqlite => {
            let path = format!("{}.unlatch-lock", url::Url::parse(&db.url).unwrap().path());
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .unwrap();
            file.lock().unwrap();
            Box::new(move || drop(file))
        }
        _ => {
            let statement = match db.engine {
                Engine::MySql => format!("SELECT GET_LOCK('unlatch:{}', 10)", db.name),
                _ => format!("SELECT pg_advisory_lock({})", unlatch::guard::PG_KEY),
            };
            let sleeper = match db.engine {
                Engine::MySql => format!("{statement}; SELECT SLEEP(4)"),
                _ => format!("{statement}; SELECT pg_sleep(4)"),
            };
            let mut shell = Command::new("sh")
                .args(["-c", &cli(db, &sleeper)])
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(700));
            Box::new(move || {
                let _ = shell.kill();
                let _ = shell.wait();
            })
        }
    };
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_WAIT", "1s")
        .args(["--", "true"]));
    assert_eq!(code(&out), 75);
    assert!(
        stderr(&out).contains("another replica still holds unlatch's guard"),
        "{}",
        stderr(&out)
    );
    holder();
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_WAIT", "10s")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
}

fn status_reports_and_changes_nothing(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(true, &utc_ago(Duration::from_secs(1800)));
    let before = db.knex_migrator_lock().unwrap();
    let out = run(unlatch_on_rows(db).args(["status", "--json"]));
    assert_eq!(code(&out), 2, "stale");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tool = &report["tools"][0];
    assert_eq!(tool["tool"], "knex-migrator");
    assert_eq!(tool["lock"], "held");
    assert_eq!(tool["verdict"], "stale");
    assert!(tool["age_seconds"].as_u64().unwrap() >= 1800);
    let out = run(unlatch_on_rows(db)
        .arg("status")
        .env("UNLATCH_LOCK_TTL", "1h"));
    assert_eq!(code(&out), 1, "live under a longer TTL");
    assert!(
        stdout(&out).contains("verdict     live"),
        "{}",
        stdout(&out)
    );
    assert_eq!(db.knex_migrator_lock().unwrap(), before);
    db.set_knex_migrator_lock(false, "NULL");
    assert_eq!(code(&run(unlatch_on_rows(db).arg("status"))), 0);
}

fn bad_configuration_touches_nothing(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(true, &utc_ago(Duration::from_secs(7200)));
    let before = db.knex_migrator_lock().unwrap();
    for (variable, value) in [
        ("UNLATCH_LOCK_TTL", "forever"),
        ("UNLATCH_ON_STALE", "rollback"),
        ("UNLATCH_TOOL", "flyway-ish"),
        ("UNLATCH_MIGRATE_CMD", "'unbalanced"),
        ("UNLATCH_LOCK_TIMEZONE", "Atlantis/Capital"),
    ] {
        let out = run(unlatch_on_rows(db)
            .env(variable, value)
            .args(["--", "true"]));
        assert_eq!(code(&out), 64, "{variable}");
        assert!(
            stderr(&out).contains(variable),
            "{variable}: {}",
            stderr(&out)
        );
        assert_eq!(
            db.knex_migrator_lock().unwrap(),
            before,
            "{variable} must not lead to a write"
        );
    }
}

fn compare_and_swap_refuses_a_changed_lock(db: &TestDb) {
    use unlatch::tools::{KnexMigrator, LockState, Tool};
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(true, &utc_ago(Duration::from_secs(7200)));
    let target = unlatch::db::Target::parse(&db.url, "test").unwrap();
    // One runtime, entered step by step: the test's own SQL runs in between.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let utc = unlatch::clock::LockZone::fixed(TimeZone::UTC);
    let mut conn = unlatch::db::Db::new(
        rt.block_on(target.connect_once(unlatch::db::Role::Work))
            .unwrap(),
        target.kind,
    );
    let seen = rt.block_on(KnexMigrator.observe(&mut conn, &utc)).unwrap();
    assert!(matches!(seen, LockState::Held(_)));
    // Between look and swap, a new migrator takes the lock again.
    db.set_knex_migrator_lock(true, &utc_ago(Duration::from_secs(1)));
    let retaken = db.knex_migrator_lock().unwrap();
    assert!(!rt
        .block_on(KnexMigrator.release(&mut conn, &seen, &utc, "test"))
        .unwrap());
    assert_eq!(
        db.knex_migrator_lock().unwrap(),
        retaken,
        "the new holder keeps its lock"
    );
    assert_eq!(
        rt.block_on(unlatch::trail::read(&mut conn)).unwrap(),
        [],
        "a lost compare-and-swap records nothing"
    );
    // Observed afresh, the swap goes through, once, recorded once.
    let now = rt.block_on(KnexMigrator.observe(&mut conn, &utc)).unwrap();
    assert!(rt
        .block_on(KnexMigrator.release(&mut conn, &now, &utc, "test"))
        .unwrap());
    assert!(
        !rt.block_on(KnexMigrator.release(&mut conn, &now, &utc, "test"))
            .unwrap(),
        "only once"
    );
    let records = rt.block_on(unlatch::trail::read(&mut conn)).unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].reason, "test");
    rt.block_on(conn.close());
}

/// Naive timestamps are read in the writer's zone (`TZ`, or
/// `UNLATCH_LOCK_TIMEZONE`). PostgreSQL's `timestamptz` carries its offset,
/// so this is for the engines that store wall-clock time.
#[test]
fn writers_zone_decides_the_age() {
    for engine in [Engine::Sqlite, Engine::MySql] {
        let Some(db) = TestDb::new(engine, "writers_zone") else {
            continue;
        };
        db.create_knex_migrator_lock();
        // Written by a migrator in Kolkata (UTC+5:30) 20 minutes ago.
        let kolkata = TimeZone::get("Asia/Kolkata").unwrap();
        let written = (Timestamp::now() - 20.minutes())
            .to_zoned(kolkata)
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string();
        db.set_knex_migrator_lock(true, &format!("'{written}'"));
        // Read as UTC it lies hours in the future: age unknown, so live.
        let out = run(unlatch_on_rows(&db).env("UNLATCH_LOCK_WAIT", "1s"));
        assert_eq!(code(&out), 75, "{engine:?}");
        let out = run(unlatch_on_rows(&db).env("TZ", "Asia/Kolkata"));
        assert_eq!(code(&out), 0, "{engine:?}");
        assert!(
            stderr(&out).contains("(Asia/Kolkata), held for 20m"),
            "{}",
            stderr(&out)
        );
        db.set_knex_migrator_lock(true, &format!("'{written}'"));
        let out = run(unlatch_on_rows(&db)
            .env("UNLATCH_LOCK_TIMEZONE", "Asia/Kolkata")
            .env("UNLATCH_LOG", "warn"));
        assert_eq!(code(&out), 0, "{engine:?}");
        assert_eq!(
            stderr(&out),
            "",
            "UNLATCH_LOG=warn keeps the success path quiet"
        );
    }
}

/// Kubernetes' fsGroup volume: the guard file an earlier start made as
/// another user (as root, or another `runAsUser`) is theirs, mode 0644, in
/// a folder of group 2000. A start as uid 4242 in that group cannot open it
/// for writing; it must still take turns on it (a lock needs no write),
/// not go on without a guard while another replica holds it.
#[test]
fn the_guard_file_of_another_user_still_guards() {
    if !available(
        "the_guard_file_of_another_user_still_guards",
        lacks_root().as_deref(),
    ) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new("guard_other_user");
    let dir = scratch.path().join("volume");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(0), Some(2000)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2775)).unwrap();
    let file = dir.join("app.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    sql(
        &url,
        &[
            "CREATE TABLE migrations_lock (lock_key varchar(191) NOT NULL PRIMARY KEY, \
           locked boolean DEFAULT '0', acquired_at datetime NULL, released_at datetime NULL)",
            "INSERT INTO migrations_lock VALUES ('km01', 0, NULL, NULL)",
        ],
    );
    std::os::unix::fs::chown(&file, Some(1000), Some(2000)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o664)).unwrap();
    let guard = dir.join("app.db.unlatch-lock");
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&guard)
        .unwrap();
    std::fs::set_permissions(&guard, std::fs::Permissions::from_mode(0o644)).unwrap();
    held.lock().unwrap();
    let mut cmd = unlatch();
    cmd.env(
        "UNLATCH_DATABASE_URL",
        format!("sqlite://{}", file.display()),
    )
    .env("UNLATCH_LOCK_WAIT", "1s")
    .args(["--", "true"]);
    let as_4242 = [
        "--reuid", "4242", "--regid", "4242", "--groups", "2000", "--",
    ];
    let out = run(&mut wrapped("setpriv", &as_4242, &cmd));
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("another replica still holds unlatch's guard"),
        "{}",
        stderr(&out)
    );
    drop(held);
    let out = run(&mut wrapped("setpriv", &as_4242, &cmd));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("without a guard"),
        "{}",
        stderr(&out)
    );
}

/// A replica that found the guard busy acts on what it reads once it has
/// the guard, not on what its first try's read saw: here the replica it
/// waited for made the lock table, and left a stale lock in it, just
/// before letting go.
#[test]
fn a_replica_that_waited_reads_again_under_the_guard() {
    let Some(db) = TestDb::new(Engine::Postgres, "km_waited_reads_again") else {
        return;
    };
    let mut other = Command::new("psql")
        .args([
            "-q",
            &db.url,
            "-c",
            &format!("SELECT pg_advisory_lock({})", unlatch::guard::PG_KEY),
            "-c",
            "SELECT pg_sleep(1.5)",
            "-c",
            "CREATE TABLE migrations_lock (lock_key varchar(191) PRIMARY KEY, locked boolean DEFAULT false, \
             acquired_at timestamptz, released_at timestamptz)",
            "-c",
            "INSERT INTO migrations_lock VALUES ('km01', true, now() - interval '2 hours', NULL)",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let out = run(unlatch_on_rows(&db)
        .env("UNLATCH_LOCK_WAIT", "10s")
        .env("UNLATCH_LOCK_TTL", "10m")
        .env("UNLATCH_ON_STALE", "clear")
        .args(["--", "true"]));
    assert!(other.wait().unwrap().success());
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(err.contains("another replica is in its preflight"), "{err}");
    assert!(err.contains("stale"), "{err}");
    assert_eq!(db.knex_migrator_lock().unwrap()[0], "0", "{err}");
}
