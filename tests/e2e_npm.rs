//! Nginx Proxy Manager end to end, with the real knex 3.2.10 (NPM v2.15.1's
//! pin) on SQLite, MariaDB and PostgreSQL: the stand-in of NPM's backend
//! boot in tests/fixtures/npmapp migrates in-process at start (tableName
//! `migrations`), an upgrade's migration is killed half-way (SIGKILL), the
//! next plain start loops on knex's "Migration table is already locked" as
//! NPM's users see it, and unlatch in front, configured only from NPM's own
//! variables, brings it up. A live migration is left alone. And what a kill
//! of NPM's own (transactional) migrations leaves on each database.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use common::*;

on_every_engine!(
    killed_upgrade_is_healed_from_npms_variables,
    npms_own_migration_killed_after_its_ddl,
    first_install_killed_waits_the_ttl,
    live_migration_is_left_alone
);

/// The first migration, NPM's install; the second comes with an upgrade.
const INSTALL: &str = "20180618015850_initial.js";
const UPGRADE: &str = "20180929054513_websockets.js";
/// An upgrade's migration run inside knex's transaction, as NPM's own are.
const TRANSACTIONAL: &str = "20181019052346_forward_host.js";

/// A copy of the fixture in the test's folder, laid out as the image's
/// `/app` (its `package.json` included), run from there as NPM runs from
/// `/app`, its packages from the shared npm cache.
struct Npm<'a> {
    db: &'a TestDb,
    app: PathBuf,
    modules: PathBuf,
}

impl<'a> Npm<'a> {
    fn new(db: &'a TestDb) -> Npm<'a> {
        let modules = npm_fixture("npmapp").join("node_modules");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npmapp");
        let app = db.scratch.path().join("app");
        std::fs::create_dir_all(app.join("lib")).unwrap();
        std::fs::create_dir_all(app.join("migrations")).unwrap();
        for file in [
            "package.json",
            "index.js",
            "db.js",
            "migrate.js",
            "lib/config.js",
        ] {
            std::fs::copy(fixture.join(file), app.join(file)).unwrap();
        }
        let npm = Npm { db, app, modules };
        npm.add_migration(INSTALL);
        npm
    }

    fn add_migration(&self, name: &str) {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npmapp");
        std::fs::copy(
            fixture.join("migrations").join(name),
            self.app.join("migrations").join(name),
        )
        .unwrap();
    }

    /// NPM's own variables for the test's database, and nothing else.
    fn npm_env(&self, cmd: &mut Command) {
        let url = url::Url::parse(&self.db.url).unwrap();
        match self.db.engine {
            Engine::Sqlite => {
                cmd.env("DB_SQLITE_FILE", url.path());
            }
            engine => {
                let prefix = if engine == Engine::MySql {
                    "DB_MYSQL_"
                } else {
                    "DB_POSTGRES_"
                };
                let port = url.port().unwrap().to_string();
                for (name, value) in [
                    ("HOST", url.host_str().unwrap()),
                    ("PORT", &port),
                    ("USER", url.username()),
                    ("PASSWORD", url.password().unwrap()),
                    ("NAME", &self.db.name),
                ] {
                    cmd.env(format!("{prefix}{name}"), value);
                }
            }
        }
    }

    /// NPM's backend boot (`node index.js` in `/app`), trying `starts`
    /// times before it gives up (NPM itself tries forever).
    fn boot(&self, starts: u32) -> Command {
        let mut cmd = Command::new("node");
        self.prepare(&mut cmd, starts);
        cmd.arg("index.js");
        cmd
    }

    /// unlatch in front of NPM's boot, as the recipe has it: NPM's
    /// variables only.
    fn unlatch(&self, starts: u32) -> Command {
        let mut cmd = unlatch();
        self.prepare(&mut cmd, starts);
        cmd.args(["--", "node", "index.js"]);
        cmd
    }

    fn prepare(&self, cmd: &mut Command, starts: u32) {
        cmd.current_dir(&self.app)
            .env("NODE_PATH", &self.modules)
            .env("FIXTURE_MAX_STARTS", starts.to_string());
        self.npm_env(cmd);
    }

    /// `cmd` started with its upgrade migration paused for `seconds`,
    /// once it has altered the table.
    fn paused(&self, mut cmd: Command, seconds: &str) -> Child {
        let pause = self.db.scratch.path().join("paused");
        let _ = std::fs::remove_file(&pause);
        let mut child = cmd
            .env("FIXTURE_PAUSE_FILE", &pause)
            .env("FIXTURE_PAUSE_SECONDS", seconds)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_file(&pause, &mut child);
        child
    }

    fn lock(&self) -> String {
        self.db
            .row("select is_locked from migrations_lock")
            .unwrap()[0]
            .clone()
    }
}

fn assert_started(out: &Output, websockets: u32, migrations: u32) {
    assert_eq!(code(out), 0);
    assert!(
        stdout(out).ends_with(&format!(
            "NPM BACKEND STARTED hosts=2 websockets={websockets} migrations={migrations}\n"
        )),
        "{}",
        stdout(out)
    );
}

/// The profile line: NPM recognised from its variables alone.
fn assert_npm_profile(out: &Output) {
    let log = stderr(out);
    assert!(
        log.contains("unlatch: app profile nginx-proxy-manager (")
            && log.contains("tool knex, table migrations"),
        "{log}"
    );
}

fn killed_upgrade_is_healed_from_npms_variables(db: &TestDb) {
    let npm = Npm::new(db);
    // The install, under unlatch from the first start (the recipe).
    let out = run(&mut npm.unlatch(1));
    assert_started(&out, 0, 1);
    assert_npm_profile(&out);

    // The upgrade: its migration killed half-way, unlatch having become
    // the app (exec), as a `docker kill` or a power cut would.
    npm.add_migration(UPGRADE);
    let mut killed = npm.paused(npm.unlatch(1), "30");
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert_eq!(
        npm.lock(),
        "1",
        "knex committed its lock, and died holding it"
    );

    // The restart loop NPM's users see.
    let plain = run(&mut npm.boot(2));
    assert_eq!(code(&plain), 1);
    let said = format!("{}{}", stdout(&plain), stderr(&plain));
    assert_eq!(
        said.matches("Startup Error: Migration table is already locked")
            .count(),
        2,
        "{said}"
    );
    assert!(
        said.contains("Can't take lock to run migrations: Migration table is already locked"),
        "{said}"
    );
    assert_eq!(npm.lock(), "1");

    // unlatch in front: the holder is provably gone, healed at once.
    let started = Instant::now();
    let out = run(&mut npm.unlatch(1));
    let took = started.elapsed();
    assert_started(&out, 2, 2);
    assert_npm_profile(&out);
    assert!(stderr(&out).contains("freed it"), "{}", stderr(&out));
    assert_eq!(npm.lock(), "0");
    if db.engine == Engine::Sqlite {
        // NPM's SQLite database has knex's default lock table too (from
        // currentVersion), never held: the held one was the one healed.
        assert_eq!(
            db.row("select is_locked from knex_migrations_lock")
                .unwrap()[0],
            "0"
        );
    }
    let plain = Instant::now();
    assert_started(&run(&mut npm.boot(1)), 2, 2);
    eprintln!(
        "FIGURE {:?}: restart -> NPM up under unlatch (heal + in-process migration + boot): {:.0} ms; a plain boot with nothing to do: {:.0} ms",
        db.engine,
        took.as_secs_f64() * 1000.0,
        plain.elapsed().as_secs_f64() * 1000.0
    );
}

/// NPM's own migrations run inside knex's transaction. Killed after its
/// DDL: SQLite and PostgreSQL roll it all back, lock included, and the next
/// plain start goes through. MySQL/MariaDB committed knex's lock with the
/// DDL (an implicit commit), so the restart loop is on the lock: unlatch
/// frees it, and then the migration, half-applied and not idempotent, fails
/// on its own column. That is NPM's to fix (knex records no dirty state),
/// and knex frees its lock after it, so no lock is left held.
fn npms_own_migration_killed_after_its_ddl(db: &TestDb) {
    let npm = Npm::new(db);
    assert_started(&run(&mut npm.unlatch(1)), 0, 1);
    npm.add_migration(TRANSACTIONAL);
    let mut killed = npm.paused(npm.unlatch(1), "30");
    killed.kill().unwrap();
    killed.wait().unwrap();
    if db.engine != Engine::MySql {
        assert_eq!(npm.lock(), "0", "the kill rolled the lock back");
        assert_started(&run(&mut npm.boot(1)), 0, 2);
        return;
    }
    assert_eq!(npm.lock(), "1", "the DDL committed knex's lock");
    let plain = run(&mut npm.boot(1));
    assert_eq!(code(&plain), 1);
    assert!(
        stderr(&plain).contains("Startup Error: Migration table is already locked"),
        "{}",
        stderr(&plain)
    );
    let out = run(&mut npm.unlatch(1));
    assert_npm_profile(&out);
    let log = stderr(&out);
    assert!(log.contains("freed it"), "{log}");
    assert_eq!(code(&out), 1);
    assert!(
        log.contains("Startup Error: alter table `proxy_host` add `forward_scheme`")
            && log.contains("Duplicate column name 'forward_scheme'"),
        "{log}"
    );
    assert_eq!(npm.lock(), "0", "knex freed its lock after the failure");
}

/// A first install killed half-way: no start of unlatch ever saw the lock
/// free, and knex records no time, so no proof can say its holder is gone;
/// the lock is judged by its age from unlatch's first sighting, across the
/// restarts (TTL shortened to 3s here).
fn first_install_killed_waits_the_ttl(db: &TestDb) {
    let npm = Npm::new(db);
    npm.add_migration(UPGRADE);
    let mut killed = npm.paused(npm.unlatch(1), "30");
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert_eq!(npm.lock(), "1");
    let ttl = |cmd: &mut Command| {
        cmd.env("UNLATCH_LOCK_TTL", "3s")
            .env("UNLATCH_LOCK_WAIT", "1s");
    };
    let mut first = npm.unlatch(1);
    ttl(&mut first);
    let out = run(&mut first);
    assert_eq!(code(&out), 75);
    assert!(
        stderr(&out).contains("no proof the holder is gone"),
        "{}",
        stderr(&out)
    );
    assert_eq!(npm.lock(), "1");
    std::thread::sleep(std::time::Duration::from_millis(3200));
    let mut second = npm.unlatch(1);
    ttl(&mut second);
    let out = run(&mut second);
    assert_started(&out, 2, 2);
    assert!(stderr(&out).contains("stale; freed it"), "{}", stderr(&out));
}

fn live_migration_is_left_alone(db: &TestDb) {
    let npm = Npm::new(db);
    assert_started(&run(&mut npm.unlatch(1)), 0, 1);
    npm.add_migration(UPGRADE);
    let mut live = npm.paused(npm.boot(1), "4");
    assert_eq!(npm.lock(), "1");
    let out = run(npm.unlatch(1).env("UNLATCH_LOCK_WAIT", "60s"));
    assert!(
        live.wait().unwrap().success(),
        "the live migration finished undisturbed"
    );
    assert_started(&out, 2, 2);
    let log = stderr(&out);
    assert!(
        log.contains("live, leaving it alone") && !log.contains("freed"),
        "{log}"
    );
}
