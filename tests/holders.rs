//! Who holds a migration lock, end to end with the real knex-migrator 6.2.1
//! (SQLite, MariaDB) and knex 3.1.0 (SQLite, MariaDB, PostgreSQL) from the
//! fixture app.
//!
//! - A migration killed half-way together with its whole process tree, as
//!   a container kill does, leaves a lock nobody holds. The next start,
//!   with default settings, proves the holder gone and heals at once, far
//!   inside `UNLATCH_LOCK_TTL` (15m), naming the proof in its log.
//! - A holder alive in any form is left alone: a migration paused half-way
//!   under another unlatch; a migrator started by hand and paused; one
//!   stopped with SIGSTOP; one in another PID namespace on the same SQLite
//!   file; one on "another host" (network and PID namespaces of its own,
//!   reaching the server through its unix socket); an app migrating
//!   in-process under another unlatch. An unrelated client of the database
//!   keeps even a dead holder's lock from being proven free; so does a
//!   live migrator whose connection pool closed its idle connection, since
//!   it took the lock longer ago than `UNLATCH_POOL_IDLE_TIMEOUT`. Each ends as
//!   it did before proofs existed: exit 75 after a short
//!   `UNLATCH_LOCK_WAIT`, the lock row as it was, the holder still running.
//!
//! Paused migrations sleep far longer than any test; every holder is
//! SIGKILLed when its test ends (with its PID namespace, where it has one).

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use common::apps::*;
use common::*;

/// How long a paused migration sleeps, in seconds: longer than any test.
const PAUSE_SECONDS: &str = "600";
/// `UNLATCH_LOCK_WAIT` beside a live holder: short, as the suite runs many.
const SHORT_WAIT: &str = "2s";
/// A start that heals by proof is done well within this, migrations and
/// app included; one that waits for the TTL (15m by default) is stopped
/// here and fails.
const AT_ONCE: Duration = Duration::from_secs(30);
/// Ample for a start that waits `SHORT_WAIT`, on a loaded machine.
const SHORT_RUN: Duration = Duration::from_secs(60);
/// What unlatch logs when it leaves a live lock for want of a proof.
const NO_PROOF: &str = "no proof";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    KnexMigrator,
    Knex,
}

/// One tool on one database of the test's own, with the fixture app.
struct Case {
    tool: Tool,
    db: TestDb,
    dir: PathBuf,
}

impl Case {
    /// The case, the fixture installed at 1.0 for knex-migrator; `None`
    /// (a skip, or a failure under UNLATCH_TEST_REQUIRE_SERVERS=1) when
    /// this machine lacks what `missing` names, or the engine's server.
    fn new(tool: Tool, engine: Engine, test: &str, missing: Option<String>) -> Option<Case> {
        let test = format!("{test} ({tool:?} on {engine:?})");
        if !available(&test, missing.as_deref()) {
            return None;
        }
        let db = TestDb::new(engine, "holders")?;
        let case = Case {
            tool,
            db,
            dir: knexapp(),
        };
        if tool == Tool::KnexMigrator {
            case.km().install_1_0();
        }
        Some(case)
    }

    fn km(&self) -> KnexMigratorApp<'_> {
        KnexMigratorApp {
            dir: self.dir.clone(),
            db: &self.db,
        }
    }

    /// The migrator alone, as a person would run it.
    fn migrator(&self) -> Command {
        match self.tool {
            Tool::KnexMigrator => self.km().migrator("knex-migrator-migrate", "1.1"),
            Tool::Knex => knex_migrate(&self.db, &self.dir),
        }
    }

    /// unlatch in front of the app, migrating first; default settings.
    fn unlatch(&self) -> Command {
        match self.tool {
            Tool::KnexMigrator => self.km().unlatch(),
            Tool::Knex => knex_unlatch(&self.db, &self.dir),
        }
    }

    /// unlatch as [`Case::unlatch`], giving up on a live lock soon.
    fn impatient_unlatch(&self) -> Command {
        let mut cmd = self.unlatch();
        cmd.env("UNLATCH_LOCK_WAIT", SHORT_WAIT);
        cmd
    }

    /// Makes the migration `cmd` runs pause half-way, lock held, schema
    /// half-changed; returns the file it writes when it gets there.
    fn pausing(&self, cmd: &mut Command) -> PathBuf {
        let file = self.db.scratch.path().join("paused");
        let _ = std::fs::remove_file(&file);
        let (file_var, seconds_var) = match self.tool {
            Tool::KnexMigrator => ("FIXTURE_PAUSE_FILE", "FIXTURE_PAUSE_SECONDS"),
            Tool::Knex => ("KNEX_PAUSE_FILE", "KNEX_PAUSE_SECONDS"),
        };
        cmd.env(file_var, &file).env(seconds_var, PAUSE_SECONDS);
        file
    }

    /// The tool's lock row, every column as text.
    fn lock(&self) -> Vec<String> {
        match self.tool {
            Tool::KnexMigrator => self.db.knex_migrator_lock(),
            Tool::Knex => self.db.row("select * from knex_migrations_lock"),
        }
        .expect("a lock row")
    }

    fn is_locked(&self) -> bool {
        let row = self.lock();
        let locked = match self.tool {
            Tool::KnexMigrator => &row[0],
            Tool::Knex => &row[1],
        };
        locked == "1"
    }

    /// The app's last line once it starts on a fully migrated database.
    fn app_started(&self) -> &'static str {
        match self.tool {
            Tool::KnexMigrator => "APP STARTED posts=3 slugs=3\n",
            Tool::Knex => KNEX_APP_STARTED,
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.db.scratch.path().join(name)
    }

    /// The SQLite database file.
    fn sqlite_file(&self) -> PathBuf {
        PathBuf::from(url::Url::parse(&self.db.url).unwrap().path())
    }
}

/// A process keeping a lock (or a database) busy. It is SIGKILLed and
/// reaped when the test ends, however it ends; run under `unshare
/// --kill-child`, its whole PID namespace goes with it.
struct Holder {
    child: Child,
    log: PathBuf,
}

impl Holder {
    /// Starts `cmd`, its stderr kept in `log` for when the test fails.
    fn spawn(cmd: &mut Command, log: PathBuf) -> Holder {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Holder { child, log }
    }

    /// Waits until the migration writes `file`: it holds the lock, paused.
    fn paused_at(mut self, file: &Path) -> Holder {
        wait_until("the holder pauses half-way", || {
            self.assert_alive();
            file.exists()
        });
        self
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    fn assert_alive(&mut self) {
        let ended = self.child.try_wait().unwrap();
        assert!(
            ended.is_none(),
            "the holder ended ({ended:?}); its stderr:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `done` until it holds, failing after 60 s.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: timed out");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Root and `unshare`, for the cases that make namespaces.
fn lacks_namespaces() -> Option<String> {
    lacks_root().or_else(|| lacks("unshare", "unshare"))
}

/// unlatch migrating (the migration paused half-way, lock held) as PID 1 of
/// a PID namespace, SIGKILLed there: every process in the namespace dies at
/// once, as when a container is killed. Returns once they are all gone.
fn kill_mid_migration(case: &Case) {
    let mut cmd = case.unlatch();
    let pause = case.pausing(&mut cmd);
    let container = Holder::spawn(&mut in_pid_namespace(&cmd), case.file("killed.log"));
    let init = init_pid(&container.child);
    let mut container = container.paused_at(&pause);
    kill(init, Signal::SIGKILL).unwrap();
    // The init is reaped, and unshare exits, only once every process in
    // its namespace is gone: their files and sessions are closed.
    container.child.wait().unwrap();
    assert!(case.is_locked(), "the kill left the lock held");
}

/// A fresh start after the kill heals at once: no waiting for the TTL.
fn a_killed_migration_heals_at_once(tool: Tool, engine: Engine) {
    let Some(case) = Case::new(tool, engine, "killed", lacks_namespaces()) else {
        return;
    };
    kill_mid_migration(&case);
    let app_out = case.file("app.out");
    let mut start = case.unlatch();
    start.stdout(std::fs::File::create(&app_out).unwrap());
    let began = Instant::now();
    let (code, log) = Running::spawn(&mut start).finish_within(AT_ONCE);
    eprintln!("healed and started in {:?}", began.elapsed());
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("provably gone"),
        "the log names the proof:\n{log}"
    );
    let out = std::fs::read_to_string(&app_out).unwrap();
    assert!(out.ends_with(case.app_started()), "{out}");
    assert!(!case.is_locked());
}

/// Runs `checker` (unlatch with `UNLATCH_LOCK_WAIT` short) beside the live
/// `holder`: it must end in exit 75, the log saying `why`, the lock row as
/// it was, the holder still running.
fn assert_left_alone(case: &Case, holder: &mut Holder, checker: &mut Command, why: &str) {
    assert!(case.is_locked(), "the holder holds the lock");
    let before = case.lock();
    let (code, log) = Running::spawn(checker.stdout(Stdio::null())).finish_within(SHORT_RUN);
    assert_eq!(code, 75, "{log}");
    assert_eq!(case.lock(), before, "the live lock was changed:\n{log}");
    assert!(log.contains(why), "the log says {why:?}:\n{log}");
    assert!(
        !log.contains("provably gone") && !log.contains("freed"),
        "{log}"
    );
    holder.assert_alive();
}

/// Another replica's preflight, paused in its migration: this start waits
/// for that replica's guard and never reaches the lock.
fn a_migration_paused_half_way_under_another_unlatch(tool: Tool, engine: Engine) {
    let Some(case) = Case::new(tool, engine, "replica", lacks_namespaces()) else {
        return;
    };
    let mut replica = case.unlatch();
    let pause = case.pausing(&mut replica);
    // In a PID namespace, so that its migrator ends with it.
    let mut holder =
        Holder::spawn(&mut in_pid_namespace(&replica), case.file("replica.log")).paused_at(&pause);
    assert_left_alone(
        &case,
        &mut holder,
        &mut case.impatient_unlatch(),
        "another replica still holds unlatch's guard",
    );
}

/// The migrator started by hand, not under unlatch, idle half-way.
fn a_migrator_started_by_hand(tool: Tool, engine: Engine) {
    let Some(case) = Case::new(tool, engine, "by_hand", None) else {
        return;
    };
    let mut migrator = case.migrator();
    let pause = case.pausing(&mut migrator);
    let mut holder = Holder::spawn(&mut migrator, case.file("migrator.log")).paused_at(&pause);
    assert_left_alone(&case, &mut holder, &mut case.impatient_unlatch(), NO_PROOF);
}

/// The migrator stopped with SIGSTOP half-way: its file or session open.
fn a_migrator_stopped_with_sigstop(tool: Tool, engine: Engine) {
    let Some(case) = Case::new(tool, engine, "sigstop", None) else {
        return;
    };
    let mut migrator = case.migrator();
    let pause = case.pausing(&mut migrator);
    let mut holder = Holder::spawn(&mut migrator, case.file("migrator.log")).paused_at(&pause);
    kill(holder.pid(), Signal::SIGSTOP).unwrap();
    assert_left_alone(&case, &mut holder, &mut case.impatient_unlatch(), NO_PROOF);
}

/// The migrator in a PID namespace, unlatch in another one with its own
/// /proc, on the same SQLite file: neither sees the other's processes.
fn a_migrator_in_another_pid_namespace(tool: Tool, engine: Engine) {
    let Some(case) = Case::new(tool, engine, "pid_namespace", lacks_namespaces()) else {
        return;
    };
    let mut migrator = case.migrator();
    let pause = case.pausing(&mut migrator);
    let mut holder = Holder::spawn(&mut in_pid_namespace(&migrator), case.file("migrator.log"))
        .paused_at(&pause);
    let mut checker = wrapped(
        "unshare",
        &["--pid", "--fork", "--mount-proc", "--kill-child", "--"],
        &case.impatient_unlatch(),
    );
    assert_left_alone(&case, &mut holder, &mut checker, NO_PROOF);
}

/// A URL reaching the test database through the server's unix socket,
/// where the server says it is; `None` when that socket is not on this
/// machine (a server elsewhere).
fn unix_socket_url(db: &TestDb) -> Option<String> {
    let url = url::Url::parse(&db.url).unwrap();
    match db.engine {
        Engine::Postgres => {
            let dirs = db.row("show unix_socket_directories").unwrap()[0].clone();
            let dir = dirs.split(',').next()?.trim().to_owned();
            let port = url.port().unwrap_or(5432);
            Path::new(&dir)
                .join(format!(".s.PGSQL.{port}"))
                .exists()
                .then(|| {
                    // pg reads a host that is a path, percent-encoded, as the
                    // socket's folder.
                    format!(
                        "postgresql://{}:{}@{}:{port}/{}",
                        url.username(),
                        url.password().unwrap_or_default(),
                        dir.replace('/', "%2F"),
                        db.name
                    )
                })
        }
        Engine::MySql => {
            let socket = db.row("select @@socket").unwrap()[0].clone();
            Path::new(&socket).exists().then(|| {
                let mut over = url.clone();
                over.set_host(Some("localhost")).unwrap();
                over.set_port(None).unwrap();
                over.query_pairs_mut().append_pair("socketPath", &socket);
                over.into()
            })
        }
        Engine::Sqlite => None,
    }
}

/// The migrator on "another host": network and PID namespaces of its own,
/// the server reached through its unix socket (no network there at all).
fn a_migrator_on_another_host(tool: Tool, engine: Engine) {
    assert_eq!(
        tool,
        Tool::Knex,
        "the fixture's knex-migrator speaks TCP only"
    );
    let Some(case) = Case::new(tool, engine, "other_host", lacks_namespaces()) else {
        return;
    };
    let socket_url = unix_socket_url(&case.db);
    if !available(
        "a_migrator_on_another_host",
        socket_url
            .is_none()
            .then_some("the server's unix socket on this machine"),
    ) {
        return;
    }
    let mut migrator = case.migrator();
    migrator.env("KNEX_CONNECTION", socket_url.unwrap());
    let pause = case.pausing(&mut migrator);
    let mut holder = Holder::spawn(
        &mut wrapped(
            "unshare",
            &["--net", "--pid", "--fork", "--kill-child", "--"],
            &migrator,
        ),
        case.file("migrator.log"),
    )
    .paused_at(&pause);
    assert_left_alone(&case, &mut holder, &mut case.impatient_unlatch(), NO_PROOF);
}

/// knex's migrations run by the app itself, at boot.
const MIGRATE_IN_PROCESS: &str = "const knex = require('knex')(require('./knexfile')); \
     knex.migrate.latest().then(() => knex.destroy())";

/// An app that migrates in-process, started under another unlatch (with
/// no migrate command of its own): it holds the lock as the app.
fn an_app_migrating_in_process_under_another_unlatch(tool: Tool, engine: Engine) {
    assert_eq!(tool, Tool::Knex, "the in-process migration is knex's API");
    let Some(case) = Case::new(tool, engine, "in_process", None) else {
        return;
    };
    let mut other = unlatch();
    other
        .current_dir(&case.dir)
        .env("UNLATCH_DATABASE_URL", &case.db.url)
        .args(["--", "node", "-e", MIGRATE_IN_PROCESS]);
    knex_env(&case.db, &mut other);
    let pause = case.pausing(&mut other);
    // unlatch execs the app (it is not PID 1): the holder is that process.
    let mut holder = Holder::spawn(&mut other, case.file("app.log")).paused_at(&pause);
    assert_left_alone(&case, &mut holder, &mut case.impatient_unlatch(), NO_PROOF);
}

/// knex's migrations through its API, with a pool that closes an idle
/// connection (`min: 0`, as knex's documentation advises) after
/// `POOL_IDLE_MS` (30 s by default): between two statements of a migration
/// that runs outside a transaction, the holder has no connection at all.
const MIGRATE_WITH_A_POOL_THAT_EMPTIES: &str =
    "const knex = require('knex')({...require('./knexfile'), \
     pool: {min: 0, max: 1, idleTimeoutMillis: Number(process.env.POOL_IDLE_MS), reapIntervalMillis: 100}}); \
     knex.migrate.latest().then(() => knex.destroy())";

/// The migrator alive half-way, its pool (idle timeout `pool_idle_ms`)
/// having closed its idle connection: no session on the server, the SQLite
/// file open nowhere. Just before it took the lock, a start of unlatch saw
/// the lock free (its record, `free:knex`, as young as it can be), yet by
/// the time the connection is gone that record is at least the pool's idle
/// timeout old: with `UNLATCH_POOL_IDLE_TIMEOUT` (`setting`, else its
/// default) at or below that, no proof, and the lock is left alone.
fn a_pool_closed_its_idle_connection(
    case: &Case,
    pool_idle_ms: u64,
    setting: Option<&str>,
    why: &str,
) {
    // A start sees the lock free (no knex table yet: a first deploy) and
    // records when, by the database's clock.
    let out = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &case.db.url)
        .env("UNLATCH_MIGRATE_CMD", "true")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let seen_free = case
        .db
        .row("select value from unlatch_state where name = 'free:knex'");
    assert!(seen_free.is_some(), "no record of the lock seen free");
    let mut migrator = Command::new("node");
    migrator
        .current_dir(&case.dir)
        .env("POOL_IDLE_MS", pool_idle_ms.to_string())
        .args(["-e", MIGRATE_WITH_A_POOL_THAT_EMPTIES]);
    knex_env(&case.db, &mut migrator);
    let pause = case.pausing(&mut migrator);
    let mut holder = Holder::spawn(&mut migrator, case.file("migrator.log")).paused_at(&pause);
    let pid = holder.pid();
    wait_until("the holder's pool closes its connection", || {
        holder.assert_alive();
        case.db.connected(pid.as_raw() as u32) == 0
    });
    let mut checker = case.impatient_unlatch();
    if let Some(idle) = setting {
        checker.env("UNLATCH_POOL_IDLE_TIMEOUT", idle);
    }
    assert_left_alone(case, &mut holder, &mut checker, why);
}

/// A pool whose idle timeout is the setting's default, 10 s (node-postgres'
/// own default): unlatch with default settings leaves its lock alone.
fn a_migrator_whose_pool_closed_its_idle_connection(tool: Tool, engine: Engine) {
    assert_eq!(tool, Tool::Knex, "the pool is set through knex's API");
    let Some(case) = Case::new(tool, engine, "pool_emptied", None) else {
        return;
    };
    let why = "no proof the holder is gone: it was seen free by unlatch more than \
               UNLATCH_POOL_IDLE_TIMEOUT=10s ago: a live holder's pool may have closed its connections";
    a_pool_closed_its_idle_connection(&case, 10_000, None, why);
}

/// A pool closing idle connections after 0.5 s, with
/// `UNLATCH_POOL_IDLE_TIMEOUT` set below that, as the README says to.
fn a_migrator_whose_quick_pool_closed_its_idle_connection(tool: Tool, engine: Engine) {
    assert_eq!(tool, Tool::Knex, "the pool is set through knex's API");
    let Some(case) = Case::new(tool, engine, "quick_pool_emptied", None) else {
        return;
    };
    let why = "it was seen free by unlatch more than UNLATCH_POOL_IDLE_TIMEOUT=400ms ago";
    a_pool_closed_its_idle_connection(&case, 500, Some("400ms"), why);
}

/// An unrelated client connected to the database, idle: the sqlite3,
/// psql or mariadb shell. Returns once the database sees it.
fn unrelated_client(case: &Case) -> Holder {
    let url = url::Url::parse(&case.db.url).unwrap();
    let mut cmd = match case.db.engine {
        Engine::Sqlite => {
            let mut cmd = Command::new("sqlite3");
            cmd.arg(case.sqlite_file());
            cmd
        }
        Engine::Postgres => {
            let mut cmd = Command::new("psql");
            let mut without_password = url.clone();
            without_password.set_password(None).unwrap();
            cmd.args(["-X", "-q", "-d", without_password.as_str()])
                .env("PGPASSWORD", url.password().unwrap_or_default());
            cmd
        }
        Engine::MySql => {
            let mut cmd = Command::new("mariadb");
            cmd.args(["-h", url.host_str().unwrap(), "-P"])
                .arg(url.port().unwrap_or(3306).to_string())
                .args(["-u", url.username(), "-D", &case.db.name])
                .env("MYSQL_PWD", url.password().unwrap_or_default());
            cmd
        }
    };
    let mut client = Holder::spawn(cmd.stdin(Stdio::piped()), case.file("client.log"));
    if case.db.engine == Engine::Sqlite {
        // The shell opens the file at its first statement.
        use std::io::Write;
        let stdin = client.child.stdin.as_mut().unwrap();
        stdin
            .write_all(b"select count(*) from sqlite_master;\n")
            .unwrap();
    }
    let pid = client.pid();
    wait_until("the unrelated client connects", || {
        client.assert_alive();
        case.db.connected(pid.as_raw() as u32) == 1
    });
    client
}

/// A dead holder's lock, with an unrelated client connected: no proof.
fn an_unrelated_client_means_no_proof(tool: Tool, engine: Engine) {
    let shell = match engine {
        Engine::Sqlite => ("sqlite3", "the sqlite3 shell"),
        Engine::Postgres => ("psql", "psql (the PostgreSQL client)"),
        Engine::MySql => ("mariadb", "the MariaDB client"),
    };
    let missing = lacks_namespaces().or_else(|| lacks(shell.0, shell.1));
    let Some(case) = Case::new(tool, engine, "unrelated_client", missing) else {
        return;
    };
    kill_mid_migration(&case);
    let mut client = unrelated_client(&case);
    assert_left_alone(&case, &mut client, &mut case.impatient_unlatch(), NO_PROOF);
}

/// One test per (tool, engine) of a scenario, in a module named after it.
macro_rules! scenario {
    ($name:ident: $($test:ident($tool:ident, $engine:ident)),+ $(,)?) => {
        mod $name {
            use super::*;
            $(#[test] fn $test() { super::$name(Tool::$tool, Engine::$engine) })+
        }
    };
}

scenario!(a_killed_migration_heals_at_once:
    knex_migrator_on_sqlite(KnexMigrator, Sqlite),
    knex_migrator_on_mariadb(KnexMigrator, MySql),
    knex_on_sqlite(Knex, Sqlite),
    knex_on_mariadb(Knex, MySql),
    knex_on_postgres(Knex, Postgres),
);
scenario!(a_migration_paused_half_way_under_another_unlatch:
    knex_migrator_on_sqlite(KnexMigrator, Sqlite),
    knex_on_postgres(Knex, Postgres),
);
scenario!(a_migrator_started_by_hand:
    knex_migrator_on_sqlite(KnexMigrator, Sqlite),
    knex_migrator_on_mariadb(KnexMigrator, MySql),
    knex_on_postgres(Knex, Postgres),
);
scenario!(a_migrator_stopped_with_sigstop:
    knex_on_sqlite(Knex, Sqlite),
    knex_on_mariadb(Knex, MySql),
    knex_on_postgres(Knex, Postgres),
);
scenario!(a_migrator_in_another_pid_namespace:
    knex_migrator_on_sqlite(KnexMigrator, Sqlite),
    knex_on_sqlite(Knex, Sqlite),
);
scenario!(a_migrator_on_another_host:
    knex_on_mariadb(Knex, MySql),
    knex_on_postgres(Knex, Postgres),
);
scenario!(an_app_migrating_in_process_under_another_unlatch:
    knex_on_sqlite(Knex, Sqlite),
    knex_on_postgres(Knex, Postgres),
);
scenario!(an_unrelated_client_means_no_proof:
    knex_migrator_on_sqlite(KnexMigrator, Sqlite),
    knex_migrator_on_mariadb(KnexMigrator, MySql),
    knex_on_postgres(Knex, Postgres),
);
scenario!(a_migrator_whose_pool_closed_its_idle_connection:
    knex_on_sqlite(Knex, Sqlite),
    knex_on_mariadb(Knex, MySql),
    knex_on_postgres(Knex, Postgres),
);
scenario!(a_migrator_whose_quick_pool_closed_its_idle_connection:
    knex_on_sqlite(Knex, Sqlite),
    knex_on_mariadb(Knex, MySql),
    knex_on_postgres(Knex, Postgres),
);
