//! End to end with the real Prisma CLI 6.19.3 (from npm, its WASM schema
//! engine through the pg driver adapter: tests/fixtures/prismaapp) on
//! PostgreSQL, the stuck state of Umami, Langfuse and the like: a `prisma
//! migrate deploy` killed half-way leaves its migration's row unfinished,
//! and every later deploy fails with P3009. unlatch, given the app's
//! DATABASE_URL (with its `schema`) and its own migrate command, heals it.
//!
//! Killed, Prisma leaves an orphan session: the server goes on with the
//! statement it was running, holding Prisma's advisory lock, until the
//! statement ends. unlatch has no proof while it runs, and one once it
//! ends, however long after the row was written (Prisma's holder stays
//! connected: `Tool::holder_stays_connected`).

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use common::*;

const SLOW: &str = "20260102000000_add_slug";
const APP_STARTED: &str = "APP STARTED posts=3 slugs=3\n";

/// The fixture app in the test's scratch folder, its packages linked from
/// the npm cache ([`npm_fixture`]).
fn prismaapp(db: &TestDb) -> PathBuf {
    let packages = npm_fixture("prismaapp");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/prismaapp");
    let dir = db.scratch.path().join("app");
    copy_dir(&fixture, &dir);
    std::os::unix::fs::symlink(packages.join("node_modules"), dir.join("node_modules")).unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let (path, target) = (entry.path(), to.join(entry.file_name()));
        if entry.file_name() == "node_modules" {
            continue;
        }
        match entry.file_type().unwrap().is_dir() {
            true => copy_dir(&path, &target),
            false => drop(std::fs::copy(&path, &target).unwrap()),
        }
    }
}

/// The app's DATABASE_URL, as Umami's users write it: a `schema` parameter
/// on PostgreSQL; Prisma's `file:` on SQLite.
fn database_url(db: &TestDb) -> String {
    match db.engine {
        Engine::Sqlite => format!("file:{}", url::Url::parse(&db.url).unwrap().path()),
        _ => format!("{}?schema=umami", db.url),
    }
}

/// Prisma's table, in the schema DATABASE_URL names.
fn table(db: &TestDb) -> &'static str {
    match db.engine {
        Engine::Sqlite => "_prisma_migrations",
        _ => "umami._prisma_migrations",
    }
}

/// The app's environment: its DATABASE_URL (and DIRECT_URL, if the test
/// set one: [`through_a_pooler`]), and Prisma's update check off (no
/// network here; it only slows the CLI down).
fn app_env(db: &TestDb, cmd: &mut Command) {
    cmd.env("DATABASE_URL", database_url(db))
        .env("CHECKPOINT_DISABLE", "1");
    if let Ok(port) = std::fs::read_to_string(db.scratch.path().join(POOLER)) {
        let mut pooled = url::Url::parse(&database_url(db)).unwrap();
        pooled.set_port(Some(port.parse().unwrap())).unwrap();
        cmd.env("DATABASE_URL", pooled.as_str())
            .env("DIRECT_URL", database_url(db));
    }
}

/// From now on, the app's DATABASE_URL goes through another address (a
/// pooler's, as Langfuse's users set it), and DIRECT_URL is the direct one.
fn through_a_pooler(db: &TestDb) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let direct = url::Url::parse(&database_url(db)).unwrap();
    let server = format!(
        "{}:{}",
        direct.host_str().unwrap(),
        direct.port().unwrap_or(5432)
    );
    let port = listener.local_addr().unwrap().port();
    forward(listener, server);
    std::fs::write(db.scratch.path().join(POOLER), port.to_string()).unwrap();
}

/// The file that holds the port of the test's pooler, once there is one.
const POOLER: &str = "pooler_port";

/// The profile's line: unlatch found the app from its own variables.
fn the_profile_found(db: &TestDb, err: &str) {
    let from = match db.scratch.path().join(POOLER).exists() {
        true => "DIRECT_URL is set): database from DIRECT_URL",
        false => "DATABASE_URL is set and a Prisma schema is in ",
    };
    assert!(
        err.contains(&format!("unlatch: app profile prisma ({from}")),
        "{err}"
    );
    assert!(
        err.contains("tool prisma, table _prisma_migrations"),
        "{err}"
    );
}

/// `prisma migrate deploy`, by hand, in a process group of its own (a
/// container's), its slow migration taking `sleep` seconds.
fn deploy(db: &TestDb, dir: &Path, sleep: u32) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(dir.join("node_modules/.bin/prisma"));
    cmd.args(["migrate", "deploy"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("FIXTURE_SLEEP", sleep.to_string())
        .process_group(0);
    app_env(db, &mut cmd);
    cmd
}

/// unlatch in front of the app, configured from the app's variables and
/// its own migrate command only (plus `extra`); its stdout in a file.
fn unlatch_app(db: &TestDb, dir: &Path, extra: &[(&str, &str)]) -> (Running, PathBuf) {
    let out = db.scratch.path().join("app.out");
    let mut cmd = unlatch();
    cmd.current_dir(dir)
        .env(
            "UNLATCH_MIGRATE_CMD",
            "node_modules/.bin/prisma migrate deploy",
        )
        .envs(extra.iter().copied())
        .args(["--", "node", "app.js"])
        .stdout(std::fs::File::create(&out).unwrap());
    app_env(db, &mut cmd);
    (Running::spawn(&mut cmd), out)
}

/// Once the slow migration runs: on PostgreSQL, the session running its
/// `pg_sleep` (its id); on SQLite, once its row is written (its slow
/// statement comes first, and runs for seconds).
fn wait_for_slow_statement(db: &TestDb, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(180);
    let running =
        "select cast(pid as text) from pg_stat_activity where datname = current_database() \
                   and query like '%pg_sleep(%' and pid <> pg_backend_pid()";
    loop {
        match db.engine {
            Engine::Sqlite if has_table(db) && migrations(db) == unfinished() => {
                return String::new()
            }
            Engine::Sqlite => {}
            _ => {
                if let Some(row) = db.row(running) {
                    return row[0].clone();
                }
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "deploy ended early");
        assert!(Instant::now() < deadline, "the slow migration never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn has_table(db: &TestDb) -> bool {
    db.row("select 1 from sqlite_master where name = '_prisma_migrations'")
        .is_some()
}

fn session_alive(db: &TestDb, pid: &str) -> bool {
    db.row(&format!("select 1 from pg_stat_activity where pid = {pid}"))
        .is_some()
}

/// SIGKILL to the deploy's process group, as a container's end gives it.
fn kill_group(child: &mut Child) {
    killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
}

/// `(name, finished, rolled back)` of every row, in order of start.
fn migrations(db: &TestDb) -> Vec<(String, bool, bool)> {
    let mut rows = Vec::new();
    for i in 0.. {
        let Some(row) = db.row(&format!(
            "select migration_name, case when finished_at is null then 0 else 1 end, \
             case when rolled_back_at is null then 0 else 1 end from {} \
             order by started_at, migration_name limit 1 offset {i}",
            table(db)
        )) else {
            break;
        };
        rows.push((row[0].clone(), row[1] == "1", row[2] == "1"));
    }
    rows
}

/// The rows as the kill left them: the slow migration started, not finished.
fn unfinished() -> Vec<(String, bool, bool)> {
    vec![
        ("20260101000000_init".into(), true, false),
        (SLOW.into(), false, false),
    ]
}

fn output_of(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

/// Waits until process `pid`'s session has ended; how long it took.
fn wait_session_ends(db: &TestDb, pid: &str) -> Duration {
    let started = Instant::now();
    while session_alive(db, pid) {
        assert!(started.elapsed() < Duration::from_secs(120), "never ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

fn the_app_started(out: &Path) {
    let said = std::fs::read_to_string(out).unwrap();
    assert!(said.ends_with(APP_STARTED), "app said: {said:?}");
}

mod killed_deploy_is_p3009_until_unlatch_heals_it {
    use super::*;
    #[test]
    fn postgres() {
        if let Some(db) = TestDb::new(Engine::Postgres, "prisma_p3009") {
            super::killed_deploy_is_p3009_until_unlatch_heals_it(&db, "pg-sessions")
        }
    }
    #[test]
    fn sqlite() {
        if let Some(db) = TestDb::new(Engine::Sqlite, "prisma_p3009") {
            super::killed_deploy_is_p3009_until_unlatch_heals_it(&db, "sqlite-lease")
        }
    }
}

/// The restart loop as users hit it, then unlatch: refusing by default,
/// naming Prisma's own repair, and healing under UNLATCH_ON_DIRTY=retry,
/// the holder proven gone by `proof`.
fn killed_deploy_is_p3009_until_unlatch_heals_it(db: &TestDb, proof: &str) {
    let dir = prismaapp(db);
    // 12s: longer than UNLATCH_POOL_IDLE_TIMEOUT (10s), so that a proof
    // needs Prisma's holder_stays_connected (PostgreSQL).
    let mut first = deploy(db, &dir, 12)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let orphan = wait_for_slow_statement(db, &mut first);
    kill_group(&mut first);
    assert_eq!(migrations(db), unfinished());
    if db.engine == Engine::Postgres {
        assert!(
            session_alive(db, &orphan),
            "the killed deploy's statement runs on"
        );
        wait_session_ends(db, &orphan);
    }

    let again = run(&mut deploy(db, &dir, 0));
    assert_ne!(code(&again), 0);
    let said = output_of(&again);
    assert!(said.contains("Error: P3009"), "{said}");
    assert!(
        said.contains("migrate found failed migrations in the target database, new migrations will not be applied"),
        "{said}"
    );
    assert!(
        said.contains(&format!("The `{SLOW}` migration started at")),
        "{said}"
    );

    // Default settings: the holder is proven gone, but a failed migration
    // is a person's to judge (UNLATCH_ON_DIRTY=fail); nothing written.
    let (refused, _) = unlatch_app(db, &dir, &[]);
    let (exit, err) = refused.finish_within(Duration::from_secs(120));
    the_profile_found(db, &err);
    assert_eq!(exit, 78, "{err}");
    assert!(err.contains(&format!("provably gone ({proof}: ")), "{err}");
    assert!(
        err.contains("keeps its connection for as long as its lock stands"),
        "{err}"
    );
    assert!(
        err.contains(&format!("npx prisma migrate resolve --rolled-back {SLOW}")),
        "{err}"
    );
    assert_eq!(migrations(db), unfinished());

    let (healed, out) = unlatch_app(db, &dir, &[("UNLATCH_ON_DIRTY", "retry")]);
    let (exit, err) = healed.finish_within(Duration::from_secs(240));
    the_profile_found(db, &err);
    assert_eq!(exit, 0, "{err}");
    assert!(
        err.contains(&format!(
            "UNLATCH_ON_DIRTY=retry; marked {SLOW} as not applied"
        )),
        "{err}"
    );
    the_app_started(&out);
    assert_eq!(
        migrations(db),
        vec![
            ("20260101000000_init".into(), true, false),
            (SLOW.into(), false, true),
            (SLOW.into(), true, false),
            ("20260103000000_fill_slug".into(), true, false),
        ]
    );
}

/// unlatch started right after the kill, as a restart policy does: no
/// proof while the orphan session runs, the heal once it ends. Prints the
/// time from SIGKILL to the app up.
#[test]
fn orphan_session_holds_off_the_heal_until_it_ends() {
    let Some(db) = TestDb::new(Engine::Postgres, "prisma_orphan") else {
        return;
    };
    let dir = prismaapp(&db);
    // Langfuse's way: DATABASE_URL a pooler's, DIRECT_URL for migrations.
    through_a_pooler(&db);
    let mut first = deploy(&db, &dir, 15)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let orphan = wait_for_slow_statement(&db, &mut first);
    let killed = Instant::now();
    kill_group(&mut first);

    let (mut healing, out) = unlatch_app(&db, &dir, &[("UNLATCH_ON_DIRTY", "retry")]);
    healing.wait_for("no proof the holder is gone: in use: 1 other client session");
    // The row read first: if the orphan is still there after, the row was
    // read while it ran.
    let mut looks = 0;
    loop {
        let rows = migrations(&db);
        if !session_alive(&db, &orphan) {
            break;
        }
        assert_eq!(rows, unfinished(), "healed while the orphan session ran");
        looks += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let orphan_ended = killed.elapsed();
    assert!(looks > 0, "the orphan session ended before unlatch looked");
    healing.wait_for("its holder is provably gone (pg-sessions: ");
    let healed = killed.elapsed();
    let (exit, err) = healing.finish_within(Duration::from_secs(240));
    the_profile_found(&db, &err);
    let app_up = killed.elapsed();
    assert_eq!(exit, 0, "{err}");
    assert!(err.contains("provably gone (pg-sessions: "), "{err}");
    the_app_started(&out);
    eprintln!(
        "MEASURED: SIGKILL to orphan session ended {:.2}s, to heal {:.2}s, to app up {:.2}s",
        orphan_ended.as_secs_f64(),
        healed.as_secs_f64(),
        app_up.as_secs_f64()
    );
}

/// A deploy still running (its advisory lock held, its row unfinished) is
/// never touched: unlatch waits, gives up after UNLATCH_LOCK_WAIT, and the
/// deploy ends well.
#[test]
fn live_deploy_is_left_alone() {
    let Some(db) = TestDb::new(Engine::Postgres, "prisma_live") else {
        return;
    };
    let dir = prismaapp(&db);
    let mut live = deploy(&db, &dir, 40)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_slow_statement(&db, &mut live);
    let settings = [("UNLATCH_ON_DIRTY", "retry"), ("UNLATCH_LOCK_WAIT", "3s")];
    let (waiting, _) = unlatch_app(&db, &dir, &settings);
    let (exit, err) = waiting.finish_within(Duration::from_secs(120));
    the_profile_found(&db, &err);
    assert_eq!(exit, 75, "{err}");
    assert!(
        err.contains("no proof the holder is gone: in use: "),
        "{err}"
    );
    assert!(
        live.try_wait().unwrap().is_none(),
        "the deploy ran on meanwhile"
    );
    assert_eq!(migrations(&db), unfinished());
    assert!(live.wait().unwrap().success());
    assert_eq!(
        migrations(&db),
        vec![
            ("20260101000000_init".into(), true, false),
            (SLOW.into(), true, false),
            ("20260103000000_fill_slug".into(), true, false),
        ]
    );
}
