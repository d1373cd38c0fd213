//! unlatch behind a real PgBouncer (Debian's package), started by each test
//! on a free port in front of the shared PostgreSQL: a transaction-mode
//! pooler reached without `pgbouncer=true` is refused (64) with the same
//! words as that flag, before any write; session mode works as directly.
//!
//! PgBouncer 1.21 and later can keep prepared statements apart in
//! transaction mode (`max_prepared_statements`, on by default from 1.24):
//! there neither 42P05 nor 26000 comes, so that refusal cannot happen, and
//! unlatch's guard, a session lock, is still not held across statements.
//! Debian bookworm's PgBouncer is 1.18, which refuses to start with that
//! setting at all, so what unlatch does behind a newer one is not tested
//! here; on a newer one these tests turn the setting off, to keep testing
//! what they say.

mod common;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use unlatch::dialect::POOLER_REFUSAL;

/// A PgBouncer of the test's own, in front of the shared PostgreSQL, with
/// one server connection per pool (so that every client meets the same
/// backend, as a busy pooler's clients in turn do).
struct PgBouncer {
    child: Child,
    port: u16,
    scratch: Scratch,
}

/// PgBouncer's program: Debian puts it in /usr/sbin, not always on PATH.
fn program() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("pgbouncer"))
        .find(|path| path.is_file())
}

/// `(major, minor)` from `PgBouncer 1.18.0`.
fn version(program: &PathBuf) -> (u32, u32) {
    let out = Command::new(program).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let number = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("pgbouncer --version: {text}"));
    let mut parts = number.split('.').map(|p| p.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

impl PgBouncer {
    /// `None` when this machine has no PgBouncer (skipped, or failed under
    /// UNLATCH_TEST_REQUIRE_SERVERS=1). `settings` go in `[pgbouncer]`.
    fn start(
        test: &str,
        upstream: &TestDb,
        pool_mode: &str,
        settings: &[&str],
    ) -> Option<PgBouncer> {
        let program = program();
        let missing = program
            .is_none()
            .then_some("pgbouncer (Debian package pgbouncer)");
        if !available(test, missing) {
            return None;
        }
        let program = program.unwrap();
        let server = url::Url::parse(&upstream.url).unwrap();
        let scratch = Scratch::new(test);
        let dir = scratch.path();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // PgBouncer 1.21 added it, 1.24 turned it on by default, and older
        // ones refuse to start with it (see the module's doc).
        let prepared = if version(&program) >= (1, 21) {
            "max_prepared_statements = 0"
        } else {
            ""
        };
        let ini = format!(
            "[databases]\n* = host={host} port={server_port}\n\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = trust\nauth_file = {dir}/users.txt\n\
             logfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\n\
             pool_mode = {pool_mode}\ndefault_pool_size = 1\n{prepared}\n\
             ; sqlx sends it at start-up, like JDBC: managed poolers accept it\n\
             ignore_startup_parameters = extra_float_digits\n{}\n",
            settings.join("\n"),
            host = server.host_str().unwrap(),
            server_port = server.port().unwrap_or(5432),
            dir = dir.display(),
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
        // trust still wants the user listed.
        std::fs::write(
            dir.join("users.txt"),
            format!("\"{}\" \"\"\n", server.username()),
        )
        .unwrap();
        let mut cmd = Command::new(&program);
        cmd.arg(dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // "PgBouncer should not run as root": as nobody, then.
        if nix::unistd::geteuid().is_root() {
            let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                nix::unistd::chown(&entry.path(), Some(nobody.uid), None).unwrap();
            }
            nix::unistd::chown(dir, Some(nobody.uid), Some(nobody.gid)).unwrap();
            cmd.uid(nobody.uid.as_raw()).gid(nobody.gid.as_raw());
        }
        let child = cmd.spawn().expect("pgbouncer starts");
        let mut bouncer = PgBouncer {
            child,
            port,
            scratch,
        };
        bouncer.wait_until_listening();
        Some(bouncer)
    }

    fn wait_until_listening(&mut self) {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self.child.try_wait().unwrap();
            if exited.is_some() || started.elapsed() > Duration::from_secs(10) {
                panic!(
                    "pgbouncer did not listen on {} ({exited:?}):\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.path().join("pgbouncer.log")).unwrap_or_default()
    }

    /// `db`'s URL, through this pooler.
    fn url(&self, db: &TestDb) -> String {
        let mut url = url::Url::parse(&db.url).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.into()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shared server's database with a knex-migrator lock taken two hours
/// ago, and the row as it reads.
fn stale_lock(test: &str) -> Option<(TestDb, Vec<String>)> {
    let db = TestDb::new(Engine::Postgres, test)?;
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(true, "now() - interval '2 hours'");
    let row = db.knex_migrator_lock().unwrap();
    Some((db, row))
}

/// Advisory locks held in `db` by any session (a guard left behind on a
/// pooled backend would show here).
fn advisory_locks(db: &TestDb) -> String {
    db.row(
        "SELECT CAST(count(*) AS TEXT) FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .unwrap()[0]
        .clone()
}

fn start(url: &str) -> std::process::Output {
    run(unlatch()
        .env("DATABASE_URL", url)
        .env("UNLATCH_WAIT_TIMEOUT", "10s")
        .args(["--", "true"]))
}

/// The refusal: 64, naming the variable and the URL (no password), the
/// server's answer, and `pgbouncer=true`'s own words.
fn assert_refused(out: &std::process::Output, bouncer: &PgBouncer, answer: &str) {
    let err = stderr(out);
    assert_eq!(code(out), 64, "{err}");
    assert!(
        err.contains(&format!(
            "DATABASE_URL=postgres://postgres:***@127.0.0.1:{}/",
            bouncer.port
        )),
        "{err}"
    );
    assert!(err.contains(answer), "{answer}: {err}");
    assert!(err.contains(POOLER_REFUSAL), "{err}");
}

#[test]
fn a_transaction_pooler_is_refused_before_the_heal_writes() {
    let Some((db, before)) = stale_lock("pooler_transaction") else {
        return;
    };
    let Some(bouncer) = PgBouncer::start("pooler_transaction", &db, "transaction", &[]) else {
        return;
    };
    let pooled = bouncer.url(&db);
    // Another client (the app) has had the pool's backend first, and left
    // its sqlx_s_1 there. A fresh pooler's very first client goes through
    // unrefused: its statements all land on the one backend it opened.
    assert_eq!(row(&pooled, "SELECT CAST(1 AS TEXT)").unwrap(), ["1"]);

    let out = start(&pooled);
    assert_refused(
        &out,
        &bouncer,
        "prepared statement \"sqlx_s_1\" already exists\" (42P05)",
    );
    assert_eq!(
        db.knex_migrator_lock().unwrap(),
        before,
        "the compare-and-swap never ran"
    );
    assert_eq!(advisory_locks(&db), "0", "the guard was let go");

    // The advice holds: the direct URL heals it.
    let out = start(&db.url);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(db.knex_migrator_lock().unwrap()[0], "0", "freed");
}

#[test]
fn a_pooler_that_resets_its_backends_between_transactions_is_refused() {
    let Some((db, before)) = stale_lock("pooler_reset") else {
        return;
    };
    // DISCARD ALL after every transaction: sqlx's statement, parsed in one,
    // is gone when it is bound in the next. It drops session locks too.
    let Some(bouncer) = PgBouncer::start(
        "pooler_reset",
        &db,
        "transaction",
        &[
            "server_reset_query = DISCARD ALL",
            "server_reset_query_always = 1",
        ],
    ) else {
        return;
    };
    let out = start(&bouncer.url(&db));
    assert_refused(
        &out,
        &bouncer,
        "prepared statement \"sqlx_s_1\" does not exist\" (26000)",
    );
    assert_eq!(
        db.knex_migrator_lock().unwrap(),
        before,
        "the compare-and-swap never ran"
    );
    assert_eq!(advisory_locks(&db), "0");
}

#[test]
fn a_session_pooler_heals_as_the_server_itself() {
    let Some((db, _)) = stale_lock("pooler_session") else {
        return;
    };
    let Some(bouncer) = PgBouncer::start("pooler_session", &db, "session", &[]) else {
        return;
    };
    let pooled = bouncer.url(&db);
    // The same start as the refused one: another client first, then two
    // starts in turn on the pool's one backend, each reset in between.
    assert_eq!(row(&pooled, "SELECT CAST(1 AS TEXT)").unwrap(), ["1"]);
    for round in 0..2 {
        db.set_knex_migrator_lock(true, "now() - interval '2 hours'");
        let out = start(&pooled);
        assert_eq!(code(&out), 0, "round {round}: {}", stderr(&out));
        assert!(stderr(&out).contains("stale; freed it"), "{}", stderr(&out));
        let lock = db.knex_migrator_lock().unwrap();
        assert_eq!(lock[0], "0", "round {round}: freed");
        assert_ne!(lock[2], "NULL", "round {round}: released_at set");
        assert_eq!(advisory_locks(&db), "0", "round {round}: guard released");
    }
}

/// A PgBouncer as installed, whose `ignore_startup_parameters` does not
/// list sqlx's `extra_float_digits`, refuses every connection unlatch
/// opens: said at once, with the way out, not waited on for
/// UNLATCH_WAIT_TIMEOUT.
#[test]
fn a_pooler_refusing_sqlx_startup_parameter_is_said_at_once() {
    let Some((db, before)) = stale_lock("pooler_startup_parameter") else {
        return;
    };
    let Some(bouncer) = PgBouncer::start(
        "pooler_startup_parameter",
        &db,
        "session",
        &["ignore_startup_parameters ="],
    ) else {
        return;
    };
    let started = Instant::now();
    let out = start(&bouncer.url(&db));
    let err = stderr(&out);
    assert_eq!(code(&out), 64, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");
    assert!(
        err.contains("unsupported startup parameter: extra_float_digits"),
        "{err}"
    );
    assert!(err.contains("ignore_startup_parameters"), "{err}");
    assert_eq!(db.knex_migrator_lock().unwrap(), before);
}
