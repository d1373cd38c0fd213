//! SIGKILL at random moments, many times over: the migrator, or unlatch
//! itself as PID 1 of a PID namespace, so that everything in that
//! "container" dies with it, as when a machine is stopped. After every kill
//! the next start heals, migrates and starts the app, and the database
//! equals, dump for dump, that of a clean run: no row lost, nothing applied
//! twice, no lock left.
//!
//! - knex-migrator 6.2.1 (the fixture app upgraded from 1.0 to 1.1; in half
//!   the trials its first migration pauses 0.2 s after adding its column and
//!   the kill lands within 0.3 s of that, while the lock is held and the
//!   schema half-changed) on SQLite and MariaDB;
//! - the built-in runner on PostgreSQL.
//!
//! `UNLATCH_FAULT_TRIALS` trials per database (default 50; the long mode in
//! the README runs 500). The other kill moments are drawn uniformly over a
//! clean run's preflight, from a seed printed at the start; `UNLATCH_FAULT_SEED`
//! replays a run. The next start uses `UNLATCH_LOCK_TTL=0s`: the test knows
//! the killed run is gone, where a real restart waits out the TTL.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use common::*;

fn trial_count() -> usize {
    std::env::var("UNLATCH_FAULT_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50)
}

/// xorshift64*: enough to spread kill moments, and replayable from a seed.
struct Rng(u64);

impl Rng {
    fn from_env(test: &str) -> Rng {
        let seed = std::env::var("UNLATCH_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("{test}: UNLATCH_FAULT_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The PIDs whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // The field after the command name (which may hold spaces) in
        // parentheses is the state, then the parent.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        if after.split(' ').nth(1) == Some(&pid.to_string()) {
            found.push(child);
        }
    }
    found
}

fn descendants(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in children(p) {
            all.push(c);
            todo.push(c);
        }
    }
    all
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The same command, run as PID 1 of a new PID namespace.
fn in_pid_namespace(cmd: &Command) -> Command {
    wrapped("unshare", &["--pid", "--fork", "--kill-child", "--"], cmd)
}

/// What the kills hit, and what they left.
#[derive(Debug, Default)]
struct Tally {
    unlatch: usize,
    migrator: usize,
    finished_first: usize,
    left: std::collections::BTreeMap<String, usize>,
}

/// One way of migrating: how to get back to the state before the upgrade,
/// how to run the preflight and the app, and a dump to compare.
trait Scenario {
    fn reset(&self);
    /// unlatch with the migration set up and no COMMAND.
    fn preflight(&self, pause: bool) -> Command;
    /// Whether `pid`, under unlatch, is the migrator (a separate process).
    fn is_migrator(&self, pid: u32) -> bool;
    /// unlatch in front of the app; panics unless the app started.
    fn start(&self);
    fn dump(&self) -> String;
    /// The file the migration writes when it pauses, if it can.
    fn pause_file(&self) -> Option<PathBuf>;
    /// What a kill left, in a few words: for the tally.
    fn left(&self) -> String;
}

/// When to kill: a time after the start, or after the migration's pause
/// file appears (then the lock is held and the schema half-changed).
enum Moment<'a> {
    AfterStart(Duration),
    AfterPause(&'a Path, Duration),
}

/// Runs the preflight, SIGKILLs it at `moment` (the migrator when
/// `migrator` is asked for and running then, else unlatch), and waits
/// until everything in its namespace is gone.
fn killed_run(scenario: &dyn Scenario, moment: &Moment, migrator: bool, tally: &mut Tally) {
    let pause = matches!(moment, Moment::AfterPause(..));
    let mut wrapper = in_pid_namespace(&scenario.preflight(pause))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let init = loop {
        if let Some(&pid) = children(wrapper.id()).first() {
            break pid;
        }
        if wrapper.try_wait().unwrap().is_some() {
            panic!("unshare ended before starting unlatch");
        }
        std::thread::yield_now();
    };
    match *moment {
        Moment::AfterStart(after) => std::thread::sleep(after),
        Moment::AfterPause(file, after) => {
            while !file.exists() {
                assert!(
                    wrapper.try_wait().unwrap().is_none(),
                    "the migration never paused"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(after);
        }
    }
    let target = migrator
        .then(|| {
            descendants(init)
                .into_iter()
                .find(|&p| scenario.is_migrator(p))
        })
        .flatten();
    let finished = wrapper.try_wait().unwrap().is_some();
    match (finished, target) {
        (true, _) => tally.finished_first += 1,
        (false, Some(pid)) => {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            tally.migrator += 1;
        }
        (false, None) => {
            let _ = kill(Pid::from_raw(init as i32), Signal::SIGKILL);
            tally.unlatch += 1;
        }
    }
    // The namespace's init is reaped only once every process in it is.
    wrapper.wait().unwrap();
}

fn median_preflight(scenario: &dyn Scenario) -> Duration {
    let mut times: Vec<Duration> = (0..3)
        .map(|_| {
            scenario.reset();
            let started = Instant::now();
            let out = run(&mut in_pid_namespace(&scenario.preflight(false)));
            assert_eq!(code(&out), 0, "a clean preflight failed");
            started.elapsed()
        })
        .collect();
    times.sort();
    times[1]
}

fn trials(test: &str, scenario: &dyn Scenario) {
    let mut rng = Rng::from_env(test);
    scenario.reset();
    scenario.start();
    let clean = scenario.dump();
    let window = median_preflight(scenario);
    let mut tally = Tally::default();
    let count = trial_count();
    for trial in 0..count {
        // Half the kills anywhere in a preflight, half (where the migration
        // can pause) within 0.3 s of the pause, while the lock is held.
        let pause_file = scenario.pause_file().filter(|_| rng.next() % 2 == 1);
        let moment = match &pause_file {
            Some(file) => Moment::AfterPause(file, Duration::from_secs_f64(rng.unit() * 0.3)),
            None => Moment::AfterStart(window.mul_f64(rng.unit() * 1.1)),
        };
        let migrator = rng.next() % 2 == 1;
        scenario.reset();
        killed_run(scenario, &moment, migrator, &mut tally);
        *tally.left.entry(scenario.left()).or_default() += 1;
        let what = match moment {
            Moment::AfterStart(t) => format!("trial {trial}: kill {t:?} after the start"),
            Moment::AfterPause(_, t) => format!("trial {trial}: kill {t:?} after the pause began"),
        } + &format!(", aimed at the migrator: {migrator}");
        eprintln!("{what}");
        scenario.start();
        let dump = scenario.dump();
        assert!(
            dump == clean,
            "{what}: the database differs from a clean run's\n--- clean:\n{clean}\n--- after the kill:\n{dump}"
        );
    }
    eprintln!("{test}: {count} trials, preflight {window:?}, kills: {tally:?}");
    assert!(
        tally.unlatch + tally.migrator > 0,
        "no trial killed anything"
    );
}

/// Lines of a dump, minus those that differ between two good runs for a
/// reason that is not data: the times in knex-migrator's lock row and in
/// unlatch's own table, MySQL's AUTO_INCREMENT counter, pg_dump's random
/// `\restrict` key; and unlatch's trail (SQLite's lines of it: the servers'
/// dumps leave it out), made only by a start that healed.
fn normalised(dump: &str) -> String {
    let mut lines: Vec<String> = dump
        .lines()
        .filter(|l| {
            !l.contains("INTO migrations_lock")
                && !l.contains("INTO `migrations_lock`")
                && !l.contains("INTO unlatch_state")
                && !l.contains("INTO `unlatch_state`")
                && !l.contains("unlatch_history")
                && !l.starts_with("\\restrict")
                && !l.starts_with("\\unrestrict")
        })
        .map(|l| match l.find(" AUTO_INCREMENT=") {
            Some(at) => {
                let rest = &l[at + 16..];
                let digits = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                format!("{}{}", &l[..at], &rest[digits..])
            }
            None => l.to_owned(),
        })
        .collect();
    lines.push(String::new());
    lines.join("\n")
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// knex-migrator, the fixture app from 1.0 to 1.1.
struct KnexMigrator {
    db: TestDb,
    app: PathBuf,
    /// SQLite: a copy of the 1.0 file; MariaDB: a dump of the 1.0 database.
    template: PathBuf,
}

impl KnexMigrator {
    fn new(engine: Engine, test: &str) -> Option<KnexMigrator> {
        let missing = lacks_root()
            .or_else(|| lacks("sqlite3", "the sqlite3 CLI"))
            .or_else(|| lacks("mariadb-dump", "the MariaDB client"));
        if !available(test, missing.as_deref()) {
            return None;
        }
        let db = TestDb::new(engine, test)?;
        let app = knexapp();
        let template = db.scratch.path().join("template");
        let km = KnexMigrator { db, app, template };
        let init = run(&mut km.node(
            "1.0",
            &[
                &km.bin("knex-migrator-init"),
                "--mgpath",
                &km.app.display().to_string(),
            ],
        ));
        assert!(init.status.success());
        match engine {
            Engine::Sqlite => std::fs::copy(km.sqlite_file(), &km.template)
                .map(|_| ())
                .unwrap(),
            _ => std::fs::write(
                &km.template,
                output(
                    km.mysql("mariadb-dump")
                        .args(["--skip-comments", "--skip-dump-date"])
                        .arg(&km.db.name),
                ),
            )
            .unwrap(),
        }
        Some(km)
    }

    fn sqlite_file(&self) -> PathBuf {
        PathBuf::from(url::Url::parse(&self.db.url).unwrap().path())
    }

    fn bin(&self, name: &str) -> String {
        self.app
            .join("node_modules/.bin")
            .join(name)
            .display()
            .to_string()
    }

    fn node(&self, version: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(args[0]);
        cmd.args(&args[1..])
            .current_dir(&self.app)
            .env("FIXTURE_VERSION", version);
        knexapp_env(&self.db, &mut cmd);
        cmd
    }

    /// A MariaDB client program, the password passed in the environment.
    fn mysql(&self, program: &str) -> Command {
        let url = url::Url::parse(&self.db.url).unwrap();
        let mut cmd = Command::new(program);
        cmd.args([
            "-h",
            url.host_str().unwrap(),
            "-P",
            &url.port().unwrap_or(3306).to_string(),
            "-u",
            url.username(),
        ])
        .env("MYSQL_PWD", url.password().unwrap_or_default());
        cmd
    }

    fn unlatch(&self) -> Command {
        let mut cmd = unlatch();
        cmd.current_dir(&self.app)
            .env("TZ", "UTC")
            .env("FIXTURE_VERSION", "1.1")
            .env("UNLATCH_LOCK_TTL", "0s")
            .env(
                "UNLATCH_MIGRATE_CMD",
                format!(
                    "{} --mgpath {}",
                    self.bin("knex-migrator-migrate"),
                    self.app.display()
                ),
            );
        knexapp_env(&self.db, &mut cmd);
        cmd
    }
}

impl Scenario for KnexMigrator {
    fn left(&self) -> String {
        let lock = self
            .db
            .knex_migrator_lock()
            .map_or("no lock row".into(), |l| format!("locked={}", l[0]));
        let rows = self.db.row("select count(*) from migrations").unwrap()[0].clone();
        format!("{lock}, {rows} migrations rows")
    }

    fn reset(&self) {
        let _ = std::fs::remove_file(self.pause_file().unwrap());
        match self.db.engine {
            Engine::Sqlite => {
                std::fs::copy(&self.template, self.sqlite_file()).unwrap();
            }
            _ => {
                let name = &self.db.name;
                output(
                    self.mysql("mariadb")
                        .arg("-e")
                        .arg(format!("DROP DATABASE `{name}`; CREATE DATABASE `{name}`")),
                );
                output(
                    self.mysql("mariadb")
                        .arg(name)
                        .arg("-e")
                        .arg(format!("source {}", self.template.display())),
                );
            }
        }
    }

    fn preflight(&self, pause: bool) -> Command {
        let mut cmd = self.unlatch();
        if let Some(file) = self.pause_file().filter(|_| pause) {
            cmd.env("FIXTURE_PAUSE_FILE", file)
                .env("FIXTURE_PAUSE_SECONDS", "0.2");
        }
        cmd
    }

    fn pause_file(&self) -> Option<PathBuf> {
        Some(self.db.scratch.path().join("paused"))
    }

    fn is_migrator(&self, pid: u32) -> bool {
        cmdline(pid).contains("knex-migrator-migrate")
    }

    fn start(&self) {
        let out = run(self.unlatch().args(["--", "node", "app.js"]));
        assert_eq!(code(&out), 0, "the next start failed");
        assert_eq!(
            stdout(&out).lines().last(),
            Some("APP STARTED posts=3 slugs=3")
        );
    }

    fn dump(&self) -> String {
        normalised(&match self.db.engine {
            Engine::Sqlite => output(Command::new("sqlite3").arg(self.sqlite_file()).arg(".dump")),
            _ => output(
                self.mysql("mariadb-dump")
                    .args([
                        "--skip-comments",
                        "--skip-dump-date",
                        "--skip-extended-insert",
                    ])
                    .arg(format!("--ignore-table={}.unlatch_history", self.db.name))
                    .arg(&self.db.name),
            ),
        })
    }
}

/// The built-in runner on PostgreSQL: posts exist (migration 1), then three
/// more migrations, one of them slow.
struct Runner {
    db: TestDb,
    first: PathBuf,
    all: PathBuf,
}

impl Runner {
    fn new(test: &str) -> Option<Runner> {
        let missing = lacks_root().or_else(|| lacks("pg_dump", "pg_dump (the PostgreSQL client)"));
        if !available(test, missing.as_deref()) {
            return None;
        }
        let db = TestDb::new(Engine::Postgres, test)?;
        let first = db.scratch.path().join("first");
        let all = db.scratch.path().join("all");
        let files = [
            ("1_posts.sql", "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT NOT NULL);\nINSERT INTO posts VALUES (1, 'a'), (2, 'b'), (3, 'c');\n"),
            ("2_slug.sql", "ALTER TABLE posts ADD COLUMN slug TEXT;\nSELECT pg_sleep(0.1);\nUPDATE posts SET slug = title;\n"),
            ("3_tags.sql", "CREATE TABLE tags (id INTEGER PRIMARY KEY, post_id INTEGER REFERENCES posts (id), name TEXT);\nINSERT INTO tags SELECT id, id, 'tag-' || title FROM posts;\n"),
            ("4_index.sql", "CREATE UNIQUE INDEX posts_slug ON posts (slug);\n"),
        ];
        for dir in [&first, &all] {
            std::fs::create_dir_all(dir).unwrap();
        }
        for (i, (name, sql)) in files.iter().enumerate() {
            std::fs::write(all.join(name), sql).unwrap();
            if i == 0 {
                std::fs::write(first.join(name), sql).unwrap();
            }
        }
        Some(Runner { db, first, all })
    }

    fn unlatch(&self, dir: &Path) -> Command {
        let mut cmd = unlatch();
        cmd.env("UNLATCH_DATABASE_URL", &self.db.url)
            .env("UNLATCH_MIGRATIONS_DIR", dir);
        cmd
    }
}

impl Scenario for Runner {
    fn left(&self) -> String {
        let applied = self
            .db
            .row("select count(*) from _sqlx_migrations where success")
            .unwrap();
        format!("{} of 4 applied", applied[0])
    }

    fn reset(&self) {
        self.db
            .exec(&["DROP SCHEMA public CASCADE", "CREATE SCHEMA public"]);
        let out = run(&mut self.unlatch(&self.first));
        assert_eq!(code(&out), 0);
    }

    fn preflight(&self, _pause: bool) -> Command {
        self.unlatch(&self.all)
    }

    fn pause_file(&self) -> Option<PathBuf> {
        None
    }

    fn is_migrator(&self, _pid: u32) -> bool {
        // The runner is unlatch itself.
        false
    }

    fn start(&self) {
        let out = run(self.unlatch(&self.all).args(["--", "echo", "app started"]));
        assert_eq!(code(&out), 0, "the next start failed");
        assert_eq!(stdout(&out), "app started\n");
    }

    fn dump(&self) -> String {
        let schema = output(
            Command::new("pg_dump")
                .args([
                    "--no-owner",
                    "--no-privileges",
                    "--exclude-table-data=_sqlx_migrations",
                    "--exclude-table=unlatch_history*",
                    "-d",
                ])
                .arg(&self.db.url),
        );
        let applied = output(
            Command::new("psql")
                .args(["-At", "-d", &self.db.url, "-c"])
                .arg("SELECT version, description, success, encode(checksum, 'hex') FROM _sqlx_migrations ORDER BY version"),
        );
        normalised(&format!("{schema}\n{applied}"))
    }
}

#[test]
fn knex_migrator_on_sqlite_survives_random_kills() {
    if let Some(km) = KnexMigrator::new(Engine::Sqlite, "kills_km_sqlite") {
        trials("knex-migrator on SQLite", &km);
    }
}

#[test]
fn knex_migrator_on_mariadb_survives_random_kills() {
    if let Some(km) = KnexMigrator::new(Engine::MySql, "kills_km_mysql") {
        trials("knex-migrator on MariaDB", &km);
    }
}

#[test]
fn built_in_runner_on_postgres_survives_random_kills() {
    if let Some(runner) = Runner::new("kills_runner_pg") {
        trials("the built-in runner on PostgreSQL", &runner);
    }
}
