//! Never a wrong heal, never a wrong skip: the cases where unlatch once
//! acted on a belief it could not prove (a lock its own without its guard,
//! a success that left the lock set, a skip on another image's say-so, a
//! status judged otherwise than a start judges), driven through the unlatch
//! binary against the real databases.

#[macro_use]
mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

on_every_engine!(
    a_migrate_command_that_succeeds_but_leaves_the_lock_set_is_said,
    a_replica_runs_its_migrate_command_after_an_older_image_ran_the_same_one,
    status_judges_a_lock_of_unknown_age_as_a_start_does,
);

fn base(db: &TestDb) -> Command {
    let mut cmd = unlatch();
    cmd.env("UNLATCH_DATABASE_URL", &db.url).env("TZ", "UTC");
    cmd
}

/// A shell command that runs `statement` on `db` with the engine's own
/// CLI, and the environment it needs: the password goes there, never into
/// the command line, which unlatch logs.
fn cli(db: &TestDb, statement: &str) -> (String, Vec<(&'static str, String)>) {
    let url = url::Url::parse(&db.url).unwrap();
    let password = url.password().unwrap_or_default().to_owned();
    match db.engine {
        Engine::Sqlite => (format!("sqlite3 '{}' \"{statement}\"", url.path()), vec![]),
        Engine::MySql => (
            format!(
                "mariadb -h {} -P {} -u {} {} -e \"{statement}\"",
                url.host_str().unwrap(),
                url.port().unwrap_or(3306),
                url.username(),
                db.name
            ),
            vec![("MYSQL_PWD", password)],
        ),
        Engine::Postgres => {
            let mut bare = url.clone();
            bare.set_password(None).unwrap();
            (
                format!("psql -q '{bare}' -c \"{statement}\""),
                vec![("PGPASSWORD", password)],
            )
        }
    }
}

/// The statement a migrator takes knex-migrator's lock with, now.
fn take_lock_now(db: &TestDb) -> String {
    let now = match db.engine {
        Engine::Sqlite => "datetime('now')",
        Engine::MySql => "UTC_TIMESTAMP()",
        Engine::Postgres => "now()",
    };
    let locked = if db.engine == Engine::Postgres {
        "true"
    } else {
        "1"
    };
    format!(
        "update migrations_lock set locked = {locked}, acquired_at = {now} where lock_key = 'km01'"
    )
}

/// Without its guard (here a guard file an earlier start made as root,
/// mode 0600, which unlatch as uid 4242 cannot open), a lock taken while
/// the migrate command ran may be another replica's: when the command
/// fails, unlatch leaves it, and says why, rather than free it.
#[test]
fn without_its_guard_unlatch_frees_no_lock_after_a_failed_migrate_command() {
    if !available(
        "without_its_guard_unlatch_frees_no_lock_after_a_failed_migrate_command",
        lacks_root().as_deref(),
    ) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new("no_guard_no_free");
    let dir = scratch.path().join("volume");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(4242), Some(4242)).unwrap();
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
    std::os::unix::fs::chown(&file, Some(4242), Some(4242)).unwrap();
    let guard = dir.join("app.db.unlatch-lock");
    std::fs::write(&guard, "").unwrap();
    std::fs::set_permissions(&guard, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The command says it started, waits for the other replica to take the
    // lock, then fails.
    let (started, go) = (dir.join("started"), dir.join("go"));
    let command = format!(
        "sh -c 'touch {}; while [ ! -e {} ]; do sleep 0.05; done; exit 1'",
        started.display(),
        go.display()
    );
    let mut cmd = unlatch();
    cmd.env(
        "UNLATCH_DATABASE_URL",
        format!("sqlite://{}", file.display()),
    )
    .env("TZ", "UTC")
    .env("UNLATCH_MIGRATE_CMD", &command)
    .args(["--", "true"]);
    let as_4242 = ["--reuid", "4242", "--regid", "4242", "--clear-groups", "--"];
    let mut running = Running::spawn(&mut wrapped("setpriv", &as_4242, &cmd));
    while !started.exists() {
        assert!(running.child.try_wait().unwrap().is_none(), "unlatch ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Another replica, just as unguarded, takes the lock for its migrator.
    sql(
        &url,
        &["UPDATE migrations_lock SET locked = 1, acquired_at = datetime('now')"],
    );
    std::fs::write(&go, "").unwrap();
    let (code, err) = running.finish_within(Duration::from_secs(60));
    assert_eq!(code, 71, "the migrate command failed: {err}");
    assert!(err.contains("going on without a guard"), "{err}");
    assert!(
        err.contains("unlatch ran without its guard, so another replica may hold it; leaving it"),
        "{err}"
    );
    let lock = row(
        &url,
        "SELECT CASE WHEN locked THEN 1 ELSE 0 END FROM migrations_lock",
    )
    .unwrap();
    assert_eq!(lock[0], "1", "the other replica's lock is left: {err}");
}

/// A migrate command that exits 0 yet leaves the lock set (a wrapper whose
/// migrator child took it and is then ended as a leftover): the app
/// starts, but not in silence; one warning says what was seen.
fn a_migrate_command_that_succeeds_but_leaves_the_lock_set_is_said(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(false, "NULL");
    let (statement, env) = cli(db, &take_lock_now(db));
    // The migrator runs in the background; the wrapper exits 0 without
    // waiting for it, and unlatch ends it as a leftover.
    let wrapper = db.scratch.path().join("migrate.sh");
    std::fs::write(
        &wrapper,
        format!("({statement}; sleep 60) &\nsleep 1\nexit 0\n"),
    )
    .unwrap();
    let command = format!("sh {}", wrapper.display());
    let out = run(base(db)
        .envs(env)
        .env("UNLATCH_MIGRATE_CMD", &command)
        .env("UNLATCH_KILL_GRACE", "1s")
        .args(["--", "true"]));
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "the app starts all the same: {err}");
    let warnings: Vec<_> = err
        .lines()
        .filter(|l| l.contains("exited with 0 but left"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning: {err}");
    assert!(
        warnings[0].contains("knex-migrator lock migrations_lock (lock_key 'km01') taken at"),
        "what was seen: {err}"
    );
    assert_eq!(
        db.knex_migrator_lock().unwrap()[0],
        "1",
        "left as it is, with no proof its holder is gone: {err}"
    );
}

/// A rolling deploy: the replica of the old image holds the guard while it
/// migrates; the replica of the new image waits, then runs its own migrate
/// command, although the command line is the same (`sh migrate.sh`, each
/// image's own file): the same words, other migrations.
fn a_replica_runs_its_migrate_command_after_an_older_image_ran_the_same_one(db: &TestDb) {
    let images = ["old", "new"].map(|name| {
        let dir = db.scratch.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        dir
    });
    let (go, new_ran) = (
        db.scratch.path().join("go"),
        db.scratch.path().join("new-migrations-ran"),
    );
    std::fs::write(
        images[0].join("migrate.sh"),
        format!(
            "touch migrating\nwhile [ ! -e {} ]; do sleep 0.05; done\n",
            go.display()
        ),
    )
    .unwrap();
    std::fs::write(
        images[1].join("migrate.sh"),
        format!("touch {}\n", new_ran.display()),
    )
    .unwrap();
    let replica = |image: &std::path::Path| {
        let mut cmd = base(db);
        cmd.current_dir(image)
            .env("UNLATCH_MIGRATE_CMD", "sh migrate.sh")
            .env("UNLATCH_LOCK_WAIT", "60s")
            .args(["--", "true"]);
        Running::spawn(&mut cmd)
    };
    let old = replica(&images[0]);
    while !images[0].join("migrating").exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut new = replica(&images[1]);
    new.wait_for("in its preflight");
    std::fs::write(&go, "").unwrap();
    let (old_code, old_err) = old.finish_within(Duration::from_secs(60));
    assert_eq!(old_code, 0, "{old_err}");
    let (new_code, new_err) = new.finish_within(Duration::from_secs(60));
    assert_eq!(new_code, 0, "{new_err}");
    assert!(
        new_ran.exists(),
        "the new image's migrations ran; it said:\n{new_err}"
    );
}

/// Whether unlatch's own table exists in `db`.
fn has_state_table(db: &TestDb) -> bool {
    let query = match db.engine {
        Engine::Sqlite => {
            "SELECT count(*) FROM sqlite_master WHERE name = 'unlatch_state'".to_owned()
        }
        _ => format!(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'unlatch_state' \
             AND table_schema = {}",
            if db.engine == Engine::MySql {
                "DATABASE()"
            } else {
                "current_schema()"
            }
        ),
    };
    db.row(&query).unwrap()[0] != "0"
}

/// A lock whose holder wrote no timestamp is aged from unlatch's first
/// sighting of it. `unlatch status` counts that sighting as a start does:
/// stale where the next start heals, and it records none of its own.
fn status_judges_a_lock_of_unknown_age_as_a_start_does(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(true, "NULL");
    let status = |db: &TestDb| {
        let out = run(base(db).args(["status", "--json"]));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (code(&out), report["tools"][0].clone())
    };
    // Never seen before: live, its age counted from now, nothing written.
    let (exit, tool) = status(db);
    assert_eq!((exit, tool["verdict"].as_str()), (1, Some("live")));
    assert_eq!(tool["age_seconds"], 0);
    assert!(!has_state_table(db), "status wrote unlatch_state");
    // A start sees it, records the sighting and waits; then 20 minutes pass.
    let out = run(base(db).env("UNLATCH_LOCK_WAIT", "1s").args(["--", "true"]));
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    let before = db.row("SELECT value FROM unlatch_state WHERE name = 'seen:knex-migrator'");
    let earlier = jiff::Timestamp::now() - Duration::from_secs(20 * 60);
    db.exec(&[&format!(
        "UPDATE unlatch_state SET recorded_at = '{earlier}' WHERE name = 'seen:knex-migrator'"
    )]);
    let (exit, tool) = status(db);
    assert_eq!(
        (exit, tool["verdict"].as_str()),
        (2, Some("stale")),
        "{tool}"
    );
    assert!(tool["age_seconds"].as_u64().unwrap() >= 20 * 60, "{tool}");
    assert_eq!(
        db.row("SELECT value FROM unlatch_state WHERE name = 'seen:knex-migrator'"),
        before,
        "status changed the sighting"
    );
    // And the next start agrees: it heals at once.
    let out = run(base(db).env("UNLATCH_LOCK_WAIT", "1s").args(["--", "true"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(db.knex_migrator_lock().unwrap()[0], "0");
}
