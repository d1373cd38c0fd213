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
    status_judges_a_provably_gone_holder_as_a_start_does,
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
    let locked = db.boolean(true);
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
    wait_for_file(&started, &mut running.child);
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
/// starts, and the lock, its holder provably gone, is healed at once, the
/// proof in the log. Without a proof (proofs off here) one warning says
/// what was seen, and the lock is left.
fn a_migrate_command_that_succeeds_but_leaves_the_lock_set_is_said(db: &TestDb) {
    db.create_knex_migrator_lock();
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
    let start = |extra: &[(&str, &str)]| {
        db.set_knex_migrator_lock(false, "NULL");
        let out = run(base(db)
            .envs(env.clone())
            .envs(extra.iter().copied())
            .env("UNLATCH_MIGRATE_CMD", &command)
            .env("UNLATCH_KILL_GRACE", "1s")
            .args(["--", "true"]));
        let err = stderr(&out);
        assert_eq!(code(&out), 0, "the app starts all the same: {err}");
        let warnings: Vec<String> = err
            .lines()
            .filter(|l| l.contains("exited with 0 but left"))
            .map(str::to_owned)
            .collect();
        (err, warnings)
    };
    let (err, warnings) = until_proven(db, || start(&[]), |(_, w)| w.is_empty());
    assert!(warnings.is_empty(), "healed, not warned about: {err}");
    let proof = match db.engine {
        Engine::Sqlite => "its holder is provably gone (sqlite-lease: ",
        Engine::MySql => "its holder is provably gone (mysql-sessions: ",
        Engine::Postgres => "its holder is provably gone (pg-sessions: ",
    };
    let healed = err
        .lines()
        .find(|l| l.contains(proof) && !l.starts_with("unlatch: trail "))
        .unwrap_or_else(|| panic!("no heal by proof: {err}"));
    assert!(
        healed.contains("taken ") && healed.contains("s ago, under UNLATCH_POOL_IDLE_TIMEOUT=10s"),
        "{healed}"
    );
    assert!(
        healed.ends_with("freed it (compare-and-swap on what was observed)"),
        "{healed}"
    );
    assert_eq!(db.knex_migrator_lock().unwrap()[0], "0", "{err}");

    let (err, warnings) = start(&[("UNLATCH_PROOFS", "0")]);
    assert_eq!(warnings.len(), 1, "one warning: {err}");
    assert!(
        warnings[0].contains("knex-migrator lock migrations_lock (lock_key 'km01') taken at"),
        "what was seen: {err}"
    );
    assert!(
        warnings[0].contains("no proof its holder is gone (UNLATCH_PROOFS=0 turns proofs off)"),
        "why it is left: {err}"
    );
    assert!(!err.contains("provably gone"), "{err}");
    assert_eq!(
        db.knex_migrator_lock().unwrap()[0],
        "1",
        "left as it is, with no proof its holder is gone: {err}"
    );
}

/// Runs `attempt` until `proven` holds of what it gives, for at most 20 s
/// on MySQL, where other tests' sessions with no database hold a proof up
/// now and then (they may `USE` any database); once elsewhere.
fn until_proven<T>(db: &TestDb, mut attempt: impl FnMut() -> T, proven: impl Fn(&T) -> bool) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = attempt();
        if proven(&got) || db.engine != Engine::MySql || std::time::Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `unlatch status` judges a live lock as a start would: a young lock whose
/// holder is provably gone is one the next start heals at once, so `stale`
/// (exit 2) with the proof; with a session open or a file held, `live`
/// (exit 1) and why there is no proof. It writes nothing either way.
fn status_judges_a_provably_gone_holder_as_a_start_does(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(true, &db.seconds_ago(2));
    let status = || {
        let out = run(base(db).args(["status", "--json"]));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (code(&out), report["tools"][0].clone())
    };
    let (exit, tool) = until_proven(db, status, |(exit, _)| *exit == 2);
    assert_eq!(
        (exit, tool["verdict"].as_str()),
        (2, Some("stale")),
        "{tool}"
    );
    let proof = tool["proof"].as_str().unwrap_or_default();
    let name = match db.engine {
        Engine::Sqlite => "sqlite-lease: ",
        Engine::MySql => "mysql-sessions: ",
        Engine::Postgres => "pg-sessions: ",
    };
    assert!(proof.starts_with(name), "{tool}");
    assert!(
        proof.contains("taken ") && proof.contains("UNLATCH_POOL_IDLE_TIMEOUT=10s"),
        "{tool}"
    );
    // The text form says it too.
    let out = until_proven(db, || run(base(db).arg("status")), |out| code(out) == 2);
    assert_eq!(code(&out), 2, "stale, as the JSON said: {}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!("proof       {name}")),
        "{}",
        stdout(&out)
    );
    // Someone there: live, and why.
    let mut holder = match db.engine {
        Engine::Sqlite => {
            let file = url::Url::parse(&db.url).unwrap().path().to_owned();
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "exec 3<\"$0\"; exec sleep 60"]).arg(file);
            cmd
        }
        engine => {
            let sleep = match engine {
                Engine::Postgres => "select pg_sleep(60)",
                _ => "select sleep(60)",
            };
            let (statement, env) = cli(db, sleep);
            let mut cmd = Command::new("sh");
            cmd.args(["-c", &statement]).envs(env);
            cmd
        }
    }
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while db.connected(holder.id()) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the holder never connected"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (exit, tool) = status();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(
        (exit, tool["verdict"].as_str()),
        (1, Some("live")),
        "{tool}"
    );
    let none = tool["proof"].as_str().unwrap_or_default();
    let why = match db.engine {
        Engine::Sqlite => "none: in use: another process has ",
        _ => "none: in use: ",
    };
    assert!(none.starts_with(why), "{tool}");
    assert!(!has_state_table(db), "status wrote unlatch_state");
    assert_eq!(db.knex_migrator_lock().unwrap()[0], "1");
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
    let mut old = replica(&images[0]);
    wait_for_file(&images[0].join("migrating"), &mut old.child);
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
    let sighting = "SELECT value, recorded_at FROM unlatch_state WHERE name = 'seen:knex-migrator'";
    let earlier = jiff::Timestamp::now() - Duration::from_secs(20 * 60);
    db.exec(&[&format!(
        "UPDATE unlatch_state SET recorded_at = '{earlier}' WHERE name = 'seen:knex-migrator'"
    )]);
    let before = db.row(sighting).expect("the start recorded its sighting");
    let (exit, tool) = status(db);
    assert_eq!(
        (exit, tool["verdict"].as_str()),
        (2, Some("stale")),
        "{tool}"
    );
    assert!(tool["age_seconds"].as_u64().unwrap() >= 20 * 60, "{tool}");
    assert_eq!(
        db.row(sighting).expect("the start recorded its sighting"),
        before,
        "status changed the sighting"
    );
    // And the next start agrees: it heals at once.
    let out = run(base(db).env("UNLATCH_LOCK_WAIT", "1s").args(["--", "true"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(db.knex_migrator_lock().unwrap()[0], "0");
}

/// A knex start whose user may not create `unlatch_state`: recording when
/// the lock was seen free (the recency a later proof needs) fails, and the
/// start goes on all the same, saying what follows.
#[test]
fn a_user_who_cannot_make_unlatch_state_still_starts_a_knex_app() {
    for engine in [Engine::MySql, Engine::Postgres] {
        let Some(db) = TestDb::new(engine, "free_ro") else {
            continue;
        };
        db.exec(&[
            "create table knex_migrations_lock (\"index\" integer primary key, is_locked integer)",
            "insert into knex_migrations_lock values (1, 0)",
        ]
        .map(|ddl| match engine {
            Engine::MySql => ddl.replace('"', "`"),
            _ => ddl.to_owned(),
        })
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
        let user: String = format!("u{}", unique("fr").replace('_', ""))
            .chars()
            .take(24)
            .collect();
        let mut url = url::Url::parse(&db.url).unwrap();
        url.set_username(&user).unwrap();
        url.set_password(Some(PASSWORD)).unwrap();
        let (create, drop): (Vec<String>, Vec<String>) = match engine {
            Engine::MySql => (
                ["%", "localhost"]
                    .iter()
                    .flat_map(|host| {
                        [
                            format!("CREATE USER '{user}'@'{host}' IDENTIFIED BY '{PASSWORD}'"),
                            format!(
                                "GRANT SELECT, UPDATE ON `{}`.knex_migrations_lock TO '{user}'@'{host}'",
                                db.name
                            ),
                        ]
                    })
                    .collect(),
                vec![
                    format!("DROP USER IF EXISTS '{user}'@'%'"),
                    format!("DROP USER IF EXISTS '{user}'@'localhost'"),
                ],
            ),
            _ => (
                vec![
                    format!("CREATE ROLE {user} LOGIN PASSWORD '{PASSWORD}'"),
                    "REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_owned(),
                    format!("GRANT SELECT, UPDATE ON knex_migrations_lock TO {user}"),
                ],
                vec![
                    format!("DROP OWNED BY {user}"),
                    format!("DROP ROLE IF EXISTS {user}"),
                ],
            ),
        };
        db.exec(&create.iter().map(String::as_str).collect::<Vec<_>>());
        let out = run(unlatch()
            .env("UNLATCH_DATABASE_URL", url.as_str())
            .env("UNLATCH_MIGRATE_CMD", "true")
            .args(["--", "true"]));
        sql(
            &db.url,
            &drop.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let err = stderr(&out);
        assert_eq!(code(&out), 0, "{engine:?}: {err}");
        assert!(
            err.contains(
                "unlatch: warning: could not record in unlatch_state when the lock of knex was seen free ("
            ) && err.contains("a migration killed soon after cannot be proven gone, and waits for UNLATCH_LOCK_TTL"),
            "{engine:?}: {err}"
        );
        assert!(!has_state_table(&db), "{engine:?}");
    }
}
