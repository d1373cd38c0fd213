//! Faults: SIGTERM in every phase of the preflight, and database outages.
//!
//! TERM in a phase ends that phase cleanly: exit 143, and nothing left
//! behind that unlatch or its migrator took (its guard is free, no session
//! of its lingers on the server, a lock row it did not take is as it was).
//!
//! A SQLite file unlatch may not write, or another process keeps locked,
//! is said as such, with what to do.
//!
//! The outages run against a PostgreSQL server of the test's own (initdb in
//! a scratch folder, password authentication, a free port), which the test
//! starts, stops and restarts; the shared servers are never disturbed.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use common::postgres::{PrivatePostgres, SERVER_PASSWORD};
use common::*;

on_every_engine!(
    sigterm_while_waiting_for_another_replica,
    sigterm_while_waiting_for_a_live_lock,
    sigterm_during_a_hook,
    sigterm_during_the_built_in_runner
);

fn with_db(db: &TestDb) -> Command {
    let mut cmd = unlatch();
    cmd.env("UNLATCH_DATABASE_URL", &db.url);
    cmd
}

/// Whether unlatch's guard is free: taken and given back from here.
fn guard_is_free(db: &TestDb) -> bool {
    match db.engine {
        Engine::Sqlite => {
            let file = PathBuf::from(format!(
                "{}.unlatch-lock",
                db.url.trim_start_matches("sqlite://")
            ));
            let Ok(f) = std::fs::File::open(&file) else {
                return true;
            };
            let free = f.try_lock().is_ok();
            let _ = f.unlock();
            free
        }
        Engine::MySql => {
            let name: String = format!("unlatch:{}", db.name).chars().take(64).collect();
            db.row(&format!("select is_free_lock('{name}')")).unwrap()[0] == "1"
        }
        Engine::Postgres => {
            let key = 0x0075_6e6c_6174_6368_i64;
            db.row(&format!(
                "select case when pg_try_advisory_lock({key}) then cast(pg_advisory_unlock({key}) as int) else 0 end"
            ))
            .unwrap()[0]
                == "1"
        }
    }
}

/// How many sessions other than the asking one are connected to the test's
/// database; `None` on SQLite.
fn other_sessions(db: &TestDb) -> Option<usize> {
    let query = match db.engine {
        Engine::Sqlite => return None,
        Engine::MySql => {
            "select count(*) from information_schema.processlist where db = database() and id <> connection_id()"
        }
        Engine::Postgres => {
            "select count(*) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()"
        }
    };
    Some(db.row(query).unwrap()[0].parse().unwrap())
}

/// Waits, a few seconds at most, until [`other_sessions`] is `count`: a
/// server notices a closed socket at once, a busy statement only when it
/// ends.
fn sessions_become(db: &TestDb, count: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match other_sessions(db) {
            None => return true,
            Some(n) if n == count => return true,
            Some(_) if Instant::now() > deadline => return false,
            Some(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn assert_stopped_cleanly(db: &TestDb, code: i32, err: &str) {
    assert_eq!(code, 143, "{err}");
    assert!(err.contains("stopped by SIGTERM"), "{err}");
    assert!(guard_is_free(db), "the guard is still held");
    assert!(
        sessions_become(db, 0),
        "a session of unlatch's is still on the server"
    );
}

/// A migrate command that says it started, then sleeps until stopped.
fn sleeping_migrate_cmd(marker: &Path) -> String {
    format!("sh -c 'touch {}; exec sleep 30'", marker.display())
}

fn sigterm_while_waiting_for_another_replica(db: &TestDb) {
    let marker = db.scratch.path().join("migrating");
    let first = Running::spawn(
        with_db(db)
            .env("UNLATCH_MIGRATE_CMD", sleeping_migrate_cmd(&marker))
            .env("UNLATCH_KILL_GRACE", "5s"),
    );
    while !marker.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let alone = other_sessions(db);
    let mut second = Running::spawn(with_db(db).args(["--", "true"]));
    second.wait_for("is in its preflight");
    // A waiting replica holds one connection, its guard's (on PostgreSQL
    // the work connection, which holds the guard; on MySQL outside
    // any database): with many replicas, the server's connection limit is
    // what runs out first.
    if let Some(alone) = alone {
        let expected = alone + usize::from(db.engine == Engine::Postgres);
        assert!(
            sessions_become(db, expected),
            "{:?} sessions, {alone} before",
            other_sessions(db)
        );
    }
    second.signal(Signal::SIGTERM);
    let (code, err) = second.finish();
    assert_eq!(code, 143, "{err}");
    assert!(!guard_is_free(db), "the first replica lost its guard");
    // Then the first one, in its migrate command.
    first.signal(Signal::SIGTERM);
    let (code, err) = first.finish();
    assert!(err.contains("SIGTERM"), "{err}");
    assert_stopped_cleanly(db, code, &err);
}

fn sigterm_while_waiting_for_a_live_lock(db: &TestDb) {
    db.create_knex_migrator_lock();
    let now = match db.engine {
        Engine::Sqlite => "datetime('now')",
        Engine::MySql => "utc_timestamp()",
        Engine::Postgres => "now()",
    };
    db.set_knex_migrator_lock(true, now);
    let before = db.knex_migrator_lock();
    let mut running = Running::spawn(
        with_db(db)
            .env("UNLATCH_LOCK_TTL", "1h")
            // A row with no process behind it: live only without proofs.
            .env("UNLATCH_PROOFS", "0")
            .env("TZ", "UTC")
            .args(["--", "true"]),
    );
    running.wait_for("live, leaving it alone");
    running.signal(Signal::SIGTERM);
    let (code, err) = running.finish();
    assert_stopped_cleanly(db, code, &err);
    assert_eq!(db.knex_migrator_lock(), before, "the live lock changed");
}

fn sigterm_during_a_hook(db: &TestDb) {
    let hooks = db.scratch.path().join("entrypoint.d");
    std::fs::create_dir(&hooks).unwrap();
    let marker = db.scratch.path().join("hook-started");
    let got_term = db.scratch.path().join("hook-got-term");
    let body = format!(
        "trap 'touch {}; exit 143' TERM\ntouch {}\nsleep 30 &\nwait",
        got_term.display(),
        marker.display()
    );
    hook(&hooks, "10-slow", &body, 0o755);
    let running = Running::spawn(
        with_db(db)
            .env("UNLATCH_HOOKS_DIR", &hooks)
            .env("UNLATCH_MIGRATE_CMD", "sh -c 'echo migrated; exit 9'")
            .args(["--", "true"]),
    );
    while !marker.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    running.signal(Signal::SIGTERM);
    let (code, err) = running.finish();
    assert_stopped_cleanly(db, code, &err);
    assert!(got_term.exists(), "the hook was not passed the TERM");
}

fn sigterm_during_the_built_in_runner(db: &TestDb) {
    let dir = db.scratch.path().join("migrations");
    std::fs::create_dir(&dir).unwrap();
    let slow = match db.engine {
        Engine::Postgres => "SELECT pg_sleep(30);",
        Engine::MySql => "DO SLEEP(30);",
        // SQLite has no sleep: a count that takes far longer than the test.
        Engine::Sqlite => {
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) SELECT count(*) FROM c;"
        }
    };
    std::fs::write(
        dir.join("1_slow.sql"),
        format!("CREATE TABLE before_the_pause (id INTEGER);\n{slow}\nCREATE TABLE after_the_pause (id INTEGER);\n"),
    )
    .unwrap();
    let started = Instant::now();
    let mut running = Running::spawn(
        with_db(db)
            .env("UNLATCH_MIGRATIONS_DIR", &dir)
            .args(["--", "true"]),
    );
    running.wait_for("applying 1 slow");
    std::thread::sleep(Duration::from_millis(300));
    running.signal(Signal::SIGTERM);
    let (code, err) = running.finish();
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the TERM waited for the statement"
    );
    assert_stopped_cleanly(db, code, &err);
    let table = |name: &str| {
        match db.engine {
        Engine::Sqlite => format!("select count(*) from sqlite_master where name = '{name}'"),
        _ => format!(
            "select count(*) from information_schema.tables where table_name = '{name}' and table_schema = {}",
            if db.engine == Engine::MySql { "database()" } else { "current_schema()" }
        ),
    }
    };
    assert_eq!(db.row(&table("after_the_pause")).unwrap()[0], "0");
    if db.row(&table("_sqlx_migrations")).unwrap()[0] == "1" {
        let applied = db.row("select count(*) from _sqlx_migrations where success");
        assert_eq!(applied.unwrap()[0], "0");
    }
    if db.engine != Engine::MySql {
        // Transactional DDL: the half-run migration left nothing.
        assert_eq!(db.row(&table("before_the_pause")).unwrap()[0], "0");
    }
}

/// unlatch made nothing in it: not a table, not unlatch's own.
fn assert_untouched(server: &PrivatePostgres) {
    assert_eq!(public_tables(&server.url()), Vec::<String>::new());
}

/// Migrations that create one table and fill it.
fn table_migrations(scratch: &Path) -> PathBuf {
    let dir = scratch.join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("1_posts.sql"),
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT);\nINSERT INTO posts VALUES (1, 'kept');\n",
    )
    .unwrap();
    dir
}

fn public_tables(url: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut offset = 0;
    while let Some(row) = row(
        url,
        &format!(
            "select table_name::text from information_schema.tables where table_schema = 'public' \
             order by table_name offset {offset} limit 1"
        ),
    ) {
        names.push(row[0].clone());
        offset += 1;
    }
    names
}

/// unlatch applying `dir` on `url`, then an app that leaves `app_ran`.
fn migrate_then_app(url: &str, dir: &Path, app_ran: &Path) -> Command {
    let mut cmd = unlatch();
    cmd.env("UNLATCH_DATABASE_URL", url)
        .env("UNLATCH_MIGRATIONS_DIR", dir)
        .args(["--", "touch"])
        .arg(app_ran);
    cmd
}

#[test]
fn postgres_down_at_start_and_back_within_the_wait() {
    let Some(server) = PrivatePostgres::init("down_then_back") else {
        return;
    };
    let scratch = Scratch::new("down_then_back_app");
    let app_ran = scratch.path().join("app-ran");
    let dir = table_migrations(scratch.path());
    let mut running = Running::spawn(
        migrate_then_app(&server.url(), &dir, &app_ran).env("UNLATCH_WAIT_TIMEOUT", "60s"),
    );
    running.wait_for("waiting for the database");
    server.start();
    let (code, err) = running.finish();
    assert_eq!(code, 0, "{err}");
    assert!(app_ran.exists());
    assert_eq!(
        row(&server.url(), "select title from posts").unwrap(),
        ["kept"]
    );
}

#[test]
fn postgres_not_back_within_the_wait_changes_nothing() {
    let Some(server) = PrivatePostgres::init("down_for_good") else {
        return;
    };
    let scratch = Scratch::new("down_for_good_app");
    let app_ran = scratch.path().join("app-ran");
    let dir = table_migrations(scratch.path());
    let out =
        run(migrate_then_app(&server.url(), &dir, &app_ran).env("UNLATCH_WAIT_TIMEOUT", "2s"));
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("within UNLATCH_WAIT_TIMEOUT=2s"),
        "{}",
        stderr(&out)
    );
    assert!(!app_ran.exists());
    server.start();
    assert_untouched(&server);
}

#[test]
fn postgres_restarted_in_the_middle_of_a_migration() {
    let Some(server) = PrivatePostgres::init("restarted") else {
        return;
    };
    server.start();
    let url = server.url();
    let scratch = Scratch::new("restarted_app");
    let dir = table_migrations(scratch.path());
    std::fs::write(
        dir.join("2_slow.sql"),
        "ALTER TABLE posts ADD COLUMN slug TEXT;\nSELECT pg_sleep(30);\nUPDATE posts SET slug = title;\n",
    )
    .unwrap();
    let app_ran = scratch.path().join("app-ran");
    let start = || migrate_then_app(&url, &dir, &app_ran);
    let mut running = Running::spawn(&mut start());
    running.wait_for("applying 1 posts, 2 slow");
    // Wait until the slow migration is the one running, then restart.
    while row(&url, "select count(*) from pg_stat_activity where query like '%pg_sleep(30)%' and pid <> pg_backend_pid()").unwrap()[0] != "1" {
        std::thread::sleep(Duration::from_millis(50));
    }
    server.pg_ctl("restart", &["-m", "fast"]);
    let (exit, err) = running.finish();
    assert_eq!(exit, 71, "{err}");
    assert!(err.contains("UNLATCH_MIGRATIONS_DIR="), "{err}");
    assert!(
        !app_ran.exists(),
        "the app started on a half-migrated database"
    );
    // The first migration stands, the second rolled back; the next start
    // finishes the job.
    assert_eq!(
        row(&url, "select string_agg(version::text, ',' order by version) from _sqlx_migrations where success").unwrap(),
        ["1"]
    );
    let out = run(&mut start());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(app_ran.exists());
    assert_eq!(
        row(&url, "select title, slug from posts").unwrap(),
        ["kept", "kept"]
    );
}

#[test]
fn postgres_wrong_password_is_refused_at_once() {
    let Some(server) = PrivatePostgres::init("wrong_password") else {
        return;
    };
    server.start();
    let wrong = "Unl4tch-Wr0ng-Pg-Pw";
    let started = Instant::now();
    let out = run(unlatch()
        .env("DATABASE_URL", server.url_with(wrong))
        .env("UNLATCH_WAIT_TIMEOUT", "60s")
        .args(["--", "true"]));
    assert_eq!(code(&out), 77, "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "retried a rejected password"
    );
    let err = stderr(&out);
    assert!(err.contains("rejected the credentials"), "{err}");
    assert!(
        !err.contains(wrong) && !err.contains(SERVER_PASSWORD),
        "{err}"
    );
    assert_untouched(&server);
}

/// Out of connection slots (replicas taking turns, other clients): a
/// connection unlatch makes later, here the built-in runner's third one,
/// waits for a slot within UNLATCH_WAIT_TIMEOUT instead of failing.
#[test]
fn postgres_out_of_connection_slots_is_waited_out() {
    let Some(server) = PrivatePostgres::init("no_slots") else {
        return;
    };
    server.pg_ctl_with(
        "-c max_connections=2 -c superuser_reserved_connections=0",
        "start",
        &[],
    );
    let url = server.url();
    // Another client takes one of the two slots, idle (so the server
    // notices at once when it goes): unlatch's work connection, which holds
    // its guard too, fits; the runner's does not.
    let mut other = Command::new("psql")
        .args(["-q", "-d", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let clients = "select count(*) from pg_stat_activity where backend_type = 'client backend'";
    while row(&url, clients).is_none_or(|r| r[0] != "2") {
        std::thread::sleep(Duration::from_millis(50));
    }
    let scratch = Scratch::new("no_slots_app");
    let mut running = Running::spawn(
        unlatch()
            .env("UNLATCH_DATABASE_URL", &url)
            .env("UNLATCH_WAIT_TIMEOUT", "60s")
            .env("UNLATCH_MIGRATIONS_DIR", table_migrations(scratch.path()))
            .args(["--", "true"]),
    );
    running.wait_for("too many clients");
    let _ = other.kill();
    let _ = other.wait();
    let (code, err) = running.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("waiting for the database"), "{err}");
    assert_eq!(row(&url, "select title from posts").unwrap(), ["kept"]);
}

/// A SQLite database with a stale knex-migrator lock: a start must write.
fn sqlite_with_a_stale_lock(test: &str) -> (TestDb, String) {
    let db = TestDb::new(Engine::Sqlite, test).expect("SQLite tests always run");
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(true, "'2020-01-01 00:00:00'");
    let file = db.url.trim_start_matches("sqlite://").to_owned();
    (db, file)
}

/// A SQLite file unlatch may not write: exit 77, as for a refused login
/// (waiting will not change it), naming the file and what to do, rather
/// than exit 70 with SQLite's own words.
#[test]
fn sqlite_read_only_is_said_with_what_to_do() {
    use std::os::unix::fs::PermissionsExt;
    let (db, file) = sqlite_with_a_stale_lock("sqlite_read_only");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
    // The copy made before a heal goes beside it, as any user may.
    std::fs::set_permissions(db.scratch.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut cmd = with_db(&db);
    cmd.args(["--", "true"]);
    // Root may write any file: as root, the start runs as another user.
    let as_4242 = ["--reuid", "4242", "--regid", "4242", "--clear-groups", "--"];
    let out = match lacks_root() {
        None => run(&mut wrapped("setpriv", &as_4242, &cmd)),
        Some(_) => run(&mut cmd),
    };
    let err = stderr(&out);
    assert_eq!(code(&out), 77, "{err}");
    assert!(
        err.contains(&format!(
            "the SQLite database {file} is read-only to unlatch"
        )) && err.contains("writable for that user"),
        "{err}"
    );
    assert_eq!(db.knex_migrator_lock().unwrap()[0], "1", "{err}");
}

/// A SQLite file on a filesystem mounted read-only (a read-only bind, the
/// image's own layer under `--read-only`): no owner or mode would help, so
/// the advice is the mount, not the file.
#[test]
fn sqlite_on_a_read_only_mount_says_to_mount_it_read_write() {
    if let Some(what) = lacks_root() {
        eprintln!("skipped: a mount needs {what}");
        return;
    }
    let (db, file) = sqlite_with_a_stale_lock("sqlite_read_only_mount");
    let mut cmd = with_db(&db);
    cmd.args(["--", "true"]);
    // In a mount namespace of its own: the mount goes with the process.
    let folder = db.scratch.path().display().to_string();
    let remount = format!(
        "mount --bind '{folder}' '{folder}' && mount -o remount,ro,bind '{folder}' && exec \"$0\" \"$@\""
    );
    let out = run(&mut wrapped(
        "unshare",
        &["--mount", "--", "sh", "-c", &remount],
        &cmd,
    ));
    let err = stderr(&out);
    assert_eq!(code(&out), 77, "{err}");
    // The copy before the heal is what meets the mount first.
    assert!(
        err.contains(&format!("cannot copy {file} before freeing the lock"))
            && err.contains("is on a read-only filesystem: mount its volume read-write"),
        "{err}"
    );
    assert!(
        !err.contains("warning: cannot remove"),
        "nothing to remove: {err}"
    );
    assert_eq!(db.knex_migrator_lock().unwrap()[0], "1", "{err}");
}

/// A SQLite file another process keeps locked past SQLite's busy timeout:
/// exit 75, as for any lock still held, naming the file and how to find
/// the process, rather than exit 70 with SQLite's own words.
#[test]
fn sqlite_locked_by_another_process_is_said_with_what_to_do() {
    let (db, file) = sqlite_with_a_stale_lock("sqlite_busy");
    sqlx::any::install_default_drivers();
    // sqlx's SQLite connection lives on a thread of its own: it outlasts
    // the runtime that opened it.
    let holder = block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql("BEGIN EXCLUSIVE")
            .execute(&mut conn)
            .await
            .unwrap();
        conn
    });
    let out = run(with_db(&db).args(["--", "true"]));
    drop(holder);
    let err = stderr(&out);
    assert_eq!(code(&out), 75, "{err}");
    assert!(
        err.contains(&format!(
            "the SQLite database {file} is locked by another process"
        )) && err.contains(&format!("`fuser {file}`")),
        "{err}"
    );
    assert_eq!(db.knex_migrator_lock().unwrap()[0], "1", "{err}");
}
