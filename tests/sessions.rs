//! PostgreSQL sessions holding a tool's advisory lock: reported, and ended
//! only when allowed, idle, and older than the TTL.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use sqlx::{AnyConnection, Connection};

const PRISMA_KEY: &str = "72707369";

/// A session that takes Prisma's advisory lock and then sits idle, on a
/// runtime of its own that lives as long as it does.
struct Holder {
    rt: tokio::runtime::Runtime,
    conn: AnyConnection,
}

impl Holder {
    fn new(db: &TestDb) -> Holder {
        sqlx::any::install_default_drivers();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let conn = rt.block_on(async {
            let mut conn = AnyConnection::connect(&db.url).await.unwrap();
            sqlx::query(&format!("SELECT pg_advisory_lock({PRISMA_KEY})"))
                .execute(&mut conn)
                .await
                .unwrap();
            conn
        });
        Holder { rt, conn }
    }

    fn alive(&mut self) -> bool {
        self.rt
            .block_on(sqlx::query("SELECT 1").execute(&mut self.conn))
            .is_ok()
    }
}

#[test]
fn an_idle_holder_is_reported_and_ended_only_when_allowed() {
    let Some(db) = TestDb::new(Engine::Postgres, "sessions_idle") else {
        return;
    };
    let mut holder = Holder::new(&db);
    let base = || {
        let mut cmd = unlatch();
        cmd.env("UNLATCH_DATABASE_URL", &db.url)
            .args(["--", "true"]);
        cmd
    };
    let out = run(&mut base());
    assert_eq!(code(&out), 0);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "prisma's advisory lock {PRISMA_KEY} is held by PostgreSQL session"
        )),
        "{err}"
    );
    assert!(
        err.contains("(idle, for") && err.contains("in use, leaving it"),
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(2200));
    let out = run(base().env("UNLATCH_LOCK_TTL", "1s"));
    assert!(
        stderr(&out).contains("UNLATCH_TERMINATE_STALE_SESSIONS=1 would end it"),
        "{}",
        stderr(&out)
    );
    assert!(holder.alive(), "never ended without the setting");
    // That check was a query: the session is idle again from now.
    std::thread::sleep(Duration::from_millis(2200));
    let out = run(base()
        .env("UNLATCH_LOCK_TTL", "1s")
        .env("UNLATCH_TERMINATE_STALE_SESSIONS", "1"));
    assert!(stderr(&out).contains("ended it"), "{}", stderr(&out));
    assert!(
        !holder.alive(),
        "the idle holder older than the TTL was ended"
    );
}

#[test]
fn an_active_holder_is_never_ended() {
    let Some(db) = TestDb::new(Engine::Postgres, "sessions_active") else {
        return;
    };
    let mut busy = Command::new("psql")
        .args([
            &db.url,
            "-c",
            &format!("SELECT pg_advisory_lock({PRISMA_KEY}), pg_sleep(5)"),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let out = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &db.url)
        .env("UNLATCH_LOCK_TTL", "0s")
        .env("UNLATCH_TERMINATE_STALE_SESSIONS", "1")
        .args(["--", "true"]));
    let err = stderr(&out);
    assert!(
        err.contains("(active, for") && err.contains("in use, leaving it"),
        "{err}"
    );
    assert!(
        busy.wait().unwrap().success(),
        "the active session finished its work"
    );
}

/// Only the advisory lock of the tool the app uses is looked at: with
/// knex-migrator's table here, Prisma's key held by another session (another
/// app's, sharing the database) is not this app's to report or end.
#[test]
fn only_the_tool_found_is_checked() {
    let Some(db) = TestDb::new(Engine::Postgres, "sessions_tool_found") else {
        return;
    };
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(false, "NULL");
    let mut holder = Holder::new(&db);
    std::thread::sleep(Duration::from_millis(1200));
    let out = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &db.url)
        .env("UNLATCH_LOCK_TTL", "1s")
        .env("UNLATCH_TERMINATE_STALE_SESSIONS", "1")
        .args(["--", "true"]));
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(!err.contains("advisory lock"), "{err}");
    assert!(holder.alive(), "another tool's session is left alone");
}
