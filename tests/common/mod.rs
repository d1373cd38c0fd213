//! Test helpers: a database of its own per test on each engine, and a way to
//! run the unlatch binary that shows everything when an assertion fails.
#![allow(dead_code, unused_macros)]

pub mod apps;
pub mod postgres;
pub mod tls;

/// One test function per engine for each test named, each with a database
/// of its own: `mod name { fn sqlite; fn mysql; fn postgres }`.
macro_rules! on_every_engine {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[test] fn sqlite() { if let Some(db) = TestDb::new(Engine::Sqlite, stringify!($name)) { super::$name(&db) } }
            #[test] fn mysql() { if let Some(db) = TestDb::new(Engine::MySql, stringify!($name)) { super::$name(&db) } }
            #[test] fn postgres() { if let Some(db) = TestDb::new(Engine::Postgres, stringify!($name)) { super::$name(&db) } }
        }
    )*};
}

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use sqlx::{AnyConnection, Connection};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    MySql,
    Postgres,
}

pub const ENGINES: [Engine; 3] = [Engine::Sqlite, Engine::MySql, Engine::Postgres];

impl Engine {
    fn variable(self) -> Option<&'static str> {
        match self {
            Engine::Sqlite => None,
            Engine::MySql => Some("UNLATCH_TEST_MYSQL_URL"),
            Engine::Postgres => Some("UNLATCH_TEST_POSTGRES_URL"),
        }
    }
}

/// A scratch directory removed on drop, after checking that no file in it
/// (SQLite copies, guard files, what hooks and apps wrote) shows
/// [`PASSWORD`].
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new folder, never one an earlier run left (as a name keyed by
    /// the process id could be); readable by the users tests run apps as.
    pub fn new(tag: &str) -> Scratch {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix(&format!("unlatch_{tag}_"))
            .permissions(std::fs::Permissions::from_mode(0o755))
            .tempdir()
            .unwrap();
        Scratch(dir.keep())
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let leak = (!std::thread::panicking())
            .then(|| file_showing_secret(&self.0))
            .flatten();
        let _ = std::fs::remove_dir_all(&self.0);
        assert!(leak.is_none(), "the test password shows in {leak:?}");
    }
}

fn file_showing_secret(dir: &Path) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let kind = entry.file_type().ok()?;
        let found = if kind.is_dir() && entry.file_name() != "node_modules" {
            file_showing_secret(&path)
        } else if kind.is_file() {
            let bytes = std::fs::read(&path).unwrap_or_default();
            bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes())
                .then_some(path)
        } else {
            None
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

pub fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "unlatch_t{}_{}_{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A database of this test's own, dropped afterwards.
pub struct TestDb {
    pub engine: Engine,
    pub url: String,
    pub name: String,
    admin_url: Option<String>,
    pub scratch: Scratch,
}

/// Whether a test can run, given what this machine lacks (`missing`): a
/// lack is a skip, said plainly, or a failure under
/// `UNLATCH_TEST_REQUIRE_SERVERS=1` (CI installs everything).
pub fn available(test: &str, missing: Option<&str>) -> bool {
    let Some(what) = missing else { return true };
    if std::env::var("UNLATCH_TEST_REQUIRE_SERVERS").as_deref() == Ok("1") {
        panic!("{test}: needs {what}, and UNLATCH_TEST_REQUIRE_SERVERS=1 forbids skipping");
    }
    eprintln!("SKIPPED {test}: needs {what}");
    false
}

/// `Some(what)` when `command` does not run here.
pub fn lacks(command: &str, what: &str) -> Option<String> {
    Command::new(command)
        .arg("--version")
        .output()
        .is_err()
        .then(|| what.to_owned())
}

/// `Some("root")` unless this runs as root.
pub fn lacks_root() -> Option<String> {
    (!nix::unistd::geteuid().is_root()).then(|| "root".to_owned())
}

/// The password every server test connects with. It is recognisable, so
/// that [`run`], [`Scratch`] and the tests can check it never shows up in
/// what unlatch prints or the files it writes. PostgreSQL's trust
/// authentication ignores it; on MySQL it is the password of a user made
/// for the tests, `unlatch_test`.
pub const PASSWORD: &str = "Unl4tch-T3st-S3cret";

/// Fails when `text` shows [`PASSWORD`].
pub fn assert_no_secret(text: &str) {
    assert!(
        !text.contains(PASSWORD),
        "the test password shows in:\n{text}"
    );
}

/// The server URL for `engine`, with [`PASSWORD`], or `None` (the test then
/// says it skipped). Under `UNLATCH_TEST_REQUIRE_SERVERS=1` a missing URL
/// fails the test.
pub fn server_url(engine: Engine, test: &str) -> Option<String> {
    let variable = engine.variable()?;
    let given = match std::env::var(variable) {
        Ok(url) if !url.is_empty() => url,
        _ => {
            available(
                &format!("{test} on {engine:?}"),
                Some(&format!("{variable} set")),
            );
            return None;
        }
    };
    let mut url = url::Url::parse(&given).unwrap();
    if engine == Engine::MySql {
        static USER: std::sync::Once = std::sync::Once::new();
        USER.call_once(|| {
            for host in ["%", "localhost"] {
                sql(&given, &[
                    &format!("CREATE USER IF NOT EXISTS 'unlatch_test'@'{host}' IDENTIFIED BY '{PASSWORD}'"),
                    &format!("GRANT ALL PRIVILEGES ON *.* TO 'unlatch_test'@'{host}' WITH GRANT OPTION"),
                ]);
            }
        });
        url.set_username("unlatch_test").unwrap();
    }
    url.set_password(Some(PASSWORD)).unwrap();
    Some(url.into())
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Runs statements on `url`, one at a time.
pub fn sql(url: &str, statements: &[&str]) {
    sqlx::any::install_default_drivers();
    block_on(async {
        let mut conn = AnyConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        for s in statements {
            sqlx::query(s)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        conn.close().await.unwrap();
    })
}

/// The first row of a query, every column rendered as text (NULL as "NULL").
pub fn row(url: &str, query: &str) -> Option<Vec<String>> {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    block_on(async {
        let mut conn = AnyConnection::connect(url).await.unwrap();
        let row = sqlx::query(query)
            .fetch_optional(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        conn.close().await.unwrap();
        row.map(|r| {
            (0..r.len())
                .map(|i| {
                    r.try_get::<Option<String>, _>(i)
                        .map(|v| v.unwrap_or_else(|| "NULL".into()))
                        .or_else(|_| {
                            r.try_get::<Option<i64>, _>(i)
                                .map(|v| v.map_or("NULL".into(), |n| n.to_string()))
                        })
                        .or_else(|_| {
                            r.try_get::<Option<bool>, _>(i)
                                .map(|v| v.map_or("NULL".into(), |b| (b as i32).to_string()))
                        })
                        .unwrap_or_else(|e| panic!("column {i} of {query}: {e}"))
                })
                .collect()
        })
    })
}

fn with_database(server: &str, name: &str) -> String {
    let mut url = url::Url::parse(server).unwrap();
    url.set_path(&format!("/{name}"));
    url.into()
}

impl TestDb {
    /// A fresh, empty database; `None` when the engine's server is not given.
    pub fn new(engine: Engine, test: &str) -> Option<TestDb> {
        let name = unique(test).chars().take(60).collect::<String>();
        let scratch = Scratch::new(test);
        if engine == Engine::Sqlite {
            let file = scratch.path().join("app.db");
            std::fs::File::create(&file).unwrap();
            let url = format!("sqlite://{}", file.display());
            return Some(TestDb {
                engine,
                url,
                name,
                admin_url: None,
                scratch,
            });
        }
        let server = server_url(engine, test)?;
        let quoted = if engine == Engine::MySql {
            format!("`{name}`")
        } else {
            format!("\"{name}\"")
        };
        sql(&server, &[&format!("CREATE DATABASE {quoted}")]);
        Some(TestDb {
            engine,
            url: with_database(&server, &name),
            name,
            admin_url: Some(server),
            scratch,
        })
    }

    pub fn exec(&self, statements: &[&str]) {
        sql(&self.url, statements)
    }

    pub fn row(&self, query: &str) -> Option<Vec<String>> {
        row(&self.url, query)
    }

    /// knex-migrator's lock table, as knex 2/3 creates it on this engine.
    pub fn create_knex_migrator_lock(&self) {
        let ddl = match self.engine {
            Engine::Postgres => {
                "create table \"migrations_lock\" (\"lock_key\" varchar(191) not null, \"locked\" boolean default '0', \
                 \"acquired_at\" timestamptz null, \"released_at\" timestamptz null, constraint \"migrations_lock_pkey\" primary key (\"lock_key\"))"
            }
            Engine::MySql => {
                "create table `migrations_lock` (`lock_key` varchar(191) not null, `locked` tinyint(1) default '0', \
                 `acquired_at` datetime null, `released_at` datetime null, primary key (`lock_key`))"
            }
            Engine::Sqlite => {
                "create table `migrations_lock` (`lock_key` varchar(191) not null, `locked` boolean default '0', \
                 `acquired_at` datetime null, `released_at` datetime null, primary key (`lock_key`))"
            }
        };
        self.exec(&[ddl]);
    }

    /// `true`/`false` as this engine writes a boolean literal.
    pub fn boolean(&self, value: bool) -> &'static str {
        match (self.engine, value) {
            (Engine::Postgres, true) => "true",
            (Engine::Postgres, false) => "false",
            (_, true) => "1",
            (_, false) => "0",
        }
    }

    /// A SQL expression for the time `seconds` ago, as this engine's
    /// migrators write it (UTC wall clock on SQLite and MySQL).
    pub fn seconds_ago(&self, seconds: u32) -> String {
        match self.engine {
            Engine::Sqlite => format!("datetime('now', '-{seconds} seconds')"),
            Engine::MySql => format!("UTC_TIMESTAMP() - INTERVAL {seconds} SECOND"),
            Engine::Postgres => format!("now() - interval '{seconds} seconds'"),
        }
    }

    /// How many clients other than the test's own have the database open:
    /// on SQLite, 1 if process `pid` has the file open, else 0; on a
    /// server, the sessions on the database.
    pub fn connected(&self, pid: u32) -> usize {
        let count = match self.engine {
            Engine::Sqlite => {
                let file = url::Url::parse(&self.url).unwrap().path().to_owned();
                return has_open(pid, Path::new(&file)) as usize;
            }
            Engine::Postgres => {
                "select count(*) from pg_stat_activity \
                 where datname = current_database() and pid <> pg_backend_pid()"
            }
            Engine::MySql => {
                "select count(*) from information_schema.processlist \
                 where db = database() and id <> connection_id()"
            }
        };
        self.row(count).unwrap()[0].parse().unwrap()
    }

    /// Sets the km01 row: `locked` and `acquired_at` (SQL expression).
    pub fn set_knex_migrator_lock(&self, locked: bool, acquired_at: &str) {
        let locked = self.boolean(locked);
        self.exec(&[
            "delete from migrations_lock",
            &format!("insert into migrations_lock (lock_key, locked, acquired_at) values ('km01', {locked}, {acquired_at})"),
        ]);
    }

    /// `[locked, acquired_at, released_at]` of km01 as text, `None` if no row.
    pub fn knex_migrator_lock(&self) -> Option<Vec<String>> {
        let text = if self.engine == Engine::MySql {
            "CHAR"
        } else {
            "TEXT"
        };
        self.row(&format!(
            "select case when locked then 1 else 0 end, cast(acquired_at as {text}), cast(released_at as {text}) \
             from migrations_lock where lock_key = 'km01'"
        ))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(admin) = &self.admin_url {
            let quoted = if self.engine == Engine::MySql {
                format!("`{}`", self.name)
            } else {
                format!("\"{}\"", self.name)
            };
            let drop = if self.engine == Engine::Postgres {
                format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
            } else {
                format!("DROP DATABASE IF EXISTS {quoted}")
            };
            sql(admin, &[&drop]);
        }
    }
}

/// An `entrypoint.d` hook: a shell script with `body`, mode `mode`.
pub fn hook(dir: &Path, name: &str, body: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `cmd` (its program, arguments and environment) run under `program
/// args...`: `unshare`, `setpriv` and the like.
pub fn wrapped(program: &str, args: &[&str], cmd: &Command) -> Command {
    let mut wrapper = Command::new(program);
    wrapper
        .args(args)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))));
    if let Some(dir) = cmd.get_current_dir() {
        wrapper.current_dir(dir);
    }
    wrapper
}

/// `cmd` as PID 1 of a new PID namespace; SIGKILL to `unshare` (which
/// passes it on to that init) ends every process in the namespace.
pub fn in_pid_namespace(cmd: &Command) -> Command {
    wrapped("unshare", &["--pid", "--fork", "--kill-child", "--"], cmd)
}

/// The host PID of the init that `unshare` (running as `child`) forked.
pub fn init_pid(child: &Child) -> Pid {
    let path = format!("/proc/{0}/task/{0}/children", child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        {
            return Pid::from_raw(pid.parse().unwrap());
        }
        assert!(Instant::now() < deadline, "unshare never forked its init");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The unlatch binary, with a clean environment: only PATH and what the
/// test sets.
pub fn unlatch() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_unlatch"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

/// Runs `cmd` and returns its output, after printing everything about it
/// (shown by the test harness only when the test fails).
/// Fails if either output shows [`PASSWORD`].
/// unlatch on `db` for locks that are rows the test writes, with no process
/// behind them: what is tested is the TTL rule, which proofs
/// (tests/proof.rs) would cut short, so they are off.
pub fn unlatch_on_rows(db: &TestDb) -> Command {
    let mut cmd = unlatch();
    cmd.env("UNLATCH_DATABASE_URL", &db.url)
        .env("TZ", "UTC")
        .env("UNLATCH_PROOFS", "0");
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("unlatch runs");
    eprintln!(
        "--- {:?}\n--- exit: {:?}\n--- stdout:\n{}--- stderr:\n{}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_secret(&stdout(&out));
    assert_no_secret(&stderr(&out));
    out
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// The knex-migrator fixture app, its npm packages installed in its own
/// folder (once, however many test processes ask at the same time).
pub fn knexapp() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/knexapp");
    let manifest = std::fs::read(dir.join("package.json")).unwrap();
    npm_install_once(&dir, &manifest);
    dir
}

/// The packages of the npm fixture `tests/fixtures/<name>`, installed once
/// per machine outside the clone (CI keeps them between runs), keyed by its
/// `package.json`: the folder whose `node_modules` holds them. The cache is
/// `$UNLATCH_TEST_NPM_CACHE`, else `/var/cache/unlatch/npm`.
pub fn npm_fixture(name: &str) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let manifest = std::fs::read(fixture.join("package.json")).unwrap();
    let cache = std::env::var_os("UNLATCH_TEST_NPM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/unlatch/npm"));
    let dir = cache.join(format!("{name}-{:08x}", crc32fast::hash(&manifest)));
    std::fs::create_dir_all(&dir).unwrap();
    npm_install_once(&dir, &manifest);
    dir
}

/// `npm install` of `manifest` in `dir` (its `package.json`) unless its
/// packages were installed from this very manifest; under a file lock, so
/// that test processes asking at the same time install once.
fn npm_install_once(dir: &Path, manifest: &[u8]) {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".install.lock"))
        .unwrap();
    lock.lock().unwrap();
    let stamp = dir.join("node_modules/.unlatch-installed");
    if std::fs::read(&stamp).ok().as_deref() == Some(manifest) {
        return;
    }
    let package = dir.join("package.json");
    if std::fs::read(&package).ok().as_deref() != Some(manifest) {
        std::fs::write(&package, manifest).unwrap();
    }
    eprintln!(
        "installing the npm packages of {} (a minute or two the first time)",
        dir.display()
    );
    let status = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status()
        .expect("npm runs (Node.js and npm are needed for the end-to-end tests)");
    assert!(status.success(), "npm install in {} failed", dir.display());
    std::fs::write(&stamp, manifest).unwrap();
}

/// The knexapp fixture's database, for the fixture (FIXTURE_*) and for
/// unlatch (Ghost's variables).
pub fn knexapp_env(db: &TestDb, cmd: &mut Command) {
    match db.engine {
        Engine::Sqlite => {
            let file = url::Url::parse(&db.url).unwrap().path().to_owned();
            cmd.env("FIXTURE_DB_CLIENT", "sqlite3")
                .env("FIXTURE_DB_FILE", &file);
            cmd.env("database__client", "sqlite3")
                .env("database__connection__filename", &file);
        }
        _ => {
            let url = url::Url::parse(&db.url).unwrap();
            let (host, port, user) = (
                url.host_str().unwrap(),
                url.port().unwrap_or(3306).to_string(),
                url.username().to_owned(),
            );
            cmd.env("FIXTURE_DB_CLIENT", "mysql")
                .env("FIXTURE_DB_HOST", host)
                .env("FIXTURE_DB_PORT", &port)
                .env("FIXTURE_DB_USER", &user)
                .env("FIXTURE_DB_PASSWORD", url.password().unwrap_or_default())
                .env("FIXTURE_DB_NAME", &db.name);
            cmd.env("database__client", "mysql")
                .env("database__connection__host", host)
                .env("database__connection__port", &port)
                .env("database__connection__user", &user)
                .env(
                    "database__connection__password",
                    url.password().unwrap_or_default(),
                )
                .env("database__connection__database", &db.name);
        }
    }
}

/// sqlx-cli 0.8.6, installed from the crate registry when missing (once,
/// however many tests ask at the same time; it takes minutes to build).
pub fn sqlx_cli() -> PathBuf {
    let installed = || {
        Command::new("sqlx")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !installed() {
        let lock_path = std::env::temp_dir().join("unlatch-sqlx-cli-install.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path)
            .unwrap();
        lock.lock().unwrap();
        if !installed() {
            eprintln!("installing sqlx-cli 0.8.6 with cargo (takes a few minutes the first time)");
            let status = Command::new("cargo")
                .args([
                    "install",
                    "sqlx-cli",
                    "--version",
                    "0.8.6",
                    "--locked",
                    "--no-default-features",
                ])
                .args(["--features", "rustls,postgres,mysql,sqlite"])
                .status()
                .expect("cargo runs");
            assert!(status.success(), "installing sqlx-cli failed");
        }
    }
    PathBuf::from("sqlx")
}

/// Whether process `pid` has `file` open.
pub fn has_open(pid: u32, file: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == file))
        })
        .unwrap_or(false)
}

/// Waits for `child` (a paused migration) to write `path`.
pub fn wait_for_file(path: &Path, child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !path.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the migration ended before pausing"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the migration never paused"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// unlatch running in the background, its stderr collected as it comes.
pub struct Running {
    pub child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let mut pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Running {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    /// Waits until stderr says `needle`.
    pub fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.stderr.lock().unwrap().contains(needle) {
            let gone = self.child.try_wait().unwrap();
            assert!(
                gone.is_none() && Instant::now() < deadline,
                "never said {needle:?} (exit: {gone:?}); stderr:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Exit code and all of stderr, once it has exited.
    pub fn finish(mut self) -> (i32, String) {
        let status = self.child.wait().unwrap();
        self.reader.take().unwrap().join().unwrap();
        let err = self.stderr.lock().unwrap().clone();
        eprintln!("--- exit: {status:?}\n--- stderr:\n{err}");
        assert_no_secret(&err);
        (status.code().unwrap_or(-1), err)
    }

    /// As [`Running::finish`], but a run still going after `limit` is
    /// killed and fails the test (a hang is a failure, not a slow pass).
    pub fn finish_within(mut self, limit: Duration) -> (i32, String) {
        let deadline = Instant::now() + limit;
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let (_, err) = self.finish();
                panic!("still running after {limit:?}; stderr:\n{err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.finish()
    }
}

/// Forwards every connection `listener` accepts to `to`, in both
/// directions, on threads of its own: a server seen at another address.
pub fn forward(listener: std::net::TcpListener, to: String) {
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(&to) else {
                continue;
            };
            for (mut from, mut into) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut into);
                    let _ = into.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
}
