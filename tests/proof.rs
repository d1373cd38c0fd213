//! The proofs that a lock's holder is gone (src/proof.rs), against real
//! files and servers: each is refused while someone could hold the lock
//! (another process with the SQLite file open, also from another PID
//! namespace; another client session), and found once they are gone.
//! How a start uses them is checked here once per engine; the scenarios
//! with real migrators are tests/holders.rs'.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use unlatch::db::{Db, Role, Target};
use unlatch::process::Stop;
use unlatch::proof::{self, Finding, Settings};

const ON: Settings = Settings {
    proofs: true,
    settle: Duration::from_millis(250),
    pool_idle: Duration::from_secs(10),
};

/// What a look finds on `url`, from a work connection of its own; the
/// connection is then used once more, to show it still works.
fn look(url: &str, settings: &Settings) -> Finding {
    block_on(async {
        let target = Target::parse(url, "TEST_URL").unwrap();
        let conn = target.connect_once(Role::Work).await.unwrap();
        let mut db = Db::new(conn, target.kind);
        let mut stop = Stop::install().unwrap();
        let found = proof::look(&mut db, &target, settings, &mut stop)
            .await
            .unwrap();
        db.row("SELECT 1", &[])
            .await
            .expect("the connection works after the look");
        db.close().await;
        eprintln!("{url}: {found:?}");
        found
    })
}

/// [`look`] until it finds a proof, for at most 20 s: on MySQL, sessions
/// with no database count (they may USE ours later), and on a server
/// shared with other tests, theirs come and go.
fn look_until_gone(url: &str) -> Finding {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = look(url, &ON);
        if matches!(found, Finding::Gone { .. }) || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn gone(found: &Finding, proof: &str) -> bool {
    matches!(found, Finding::Gone { proof: p, .. } if *p == proof)
}

fn no_proof(found: &Finding, part: &str) -> bool {
    matches!(found, Finding::NoProof(why) if why.contains(part))
}

/// A process that opens `file` itself, says so, and sleeps, under
/// `wrapper` (nothing, or `unshare` into another PID namespace).
fn holding(file: &Path, wrapper: &[&str]) -> Child {
    let mut child = Command::new(wrapper.first().copied().unwrap_or("sh"))
        .args(wrapper.iter().skip(1))
        .args(if wrapper.is_empty() {
            vec![]
        } else {
            vec!["sh"]
        })
        .args(["-c", "exec 3<\"$0\"; echo open; exec sleep 60"])
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "open\n", "the holder opened the file");
    child
}

fn end(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

fn sqlite_db(test: &str) -> TestDb {
    let db = TestDb::new(Engine::Sqlite, test).unwrap();
    db.exec(&["CREATE TABLE t (x INTEGER)"]);
    db
}

fn file_of(db: &TestDb) -> std::path::PathBuf {
    db.scratch.path().join("app.db")
}

#[test]
fn sqlite_lease_refused_while_another_process_has_the_file_open() {
    let db = sqlite_db("lease_refused");
    // unlatch's own connection is closed for the look: nobody else, a proof.
    let found = look(&db.url, &ON);
    assert!(gone(&found, "sqlite-lease"), "{found:?}");
    let holder = holding(&file_of(&db), &[]);
    let found = look(&db.url, &ON);
    assert!(no_proof(&found, "another process has"), "{found:?}");
    assert!(found.may_pass());
    end(holder);
    assert!(gone(&look(&db.url, &ON), "sqlite-lease"));
}

#[test]
fn sqlite_lease_refused_while_a_process_in_another_pid_namespace_has_it_open() {
    if !available("another PID namespace", lacks_root().as_deref()) {
        return;
    }
    let db = sqlite_db("lease_pid_ns");
    let unshare = ["unshare", "--pid", "--fork", "--kill-child"];
    let holder = holding(&file_of(&db), &unshare);
    let found = look(&db.url, &ON);
    assert!(no_proof(&found, "another process has"), "{found:?}");
    end(holder);
    // --kill-child ends the namespace's process with unshare; its file
    // closes as it exits, a moment later.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut found = look(&db.url, &ON);
    while !gone(&found, "sqlite-lease") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        found = look(&db.url, &ON);
    }
    assert!(gone(&found, "sqlite-lease"), "{found:?}");
}

#[test]
fn sqlite_companions_count_and_a_hot_journal_is_no_holder() {
    let db = sqlite_db("lease_companions");
    let file = file_of(&db);
    let mut wal = file.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::write(&wal, b"").unwrap();
    let holder = holding(Path::new(&wal), &[]);
    let found = look(&db.url, &ON);
    assert!(no_proof(&found, "-wal open"), "{found:?}");
    end(holder);
    std::fs::remove_file(&wal).unwrap();
    // A -journal nobody has open (a crashed writer's): looked at, no holder.
    let mut journal = file.as_os_str().to_owned();
    journal.push("-journal");
    std::fs::write(&journal, b"").unwrap();
    match proof::lease_look(&file) {
        Finding::Gone { evidence, .. } => {
            assert!(evidence.contains("app.db-journal"), "{evidence}");
            assert!(evidence.contains("crashed writer"), "{evidence}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sqlite_lease_needs_the_files_owner_or_cap_lease() {
    use std::os::unix::fs::PermissionsExt;
    let missing = lacks_root().or_else(|| lacks("setpriv", "setpriv"));
    if !available("a lease refused to another user", missing.as_deref()) {
        return;
    }
    let db = sqlite_db("lease_owner");
    young_lock(&db);
    let file = file_of(&db);
    // Root's file (and guard file), which uid 4242 may read and write, but
    // not take a lease on: it neither owns it nor has CAP_LEASE.
    let mut guard = file.as_os_str().to_owned();
    guard.push(".unlatch-lock");
    for path in [file.as_os_str(), guard.as_os_str()] {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let mut cmd = unlatch();
    cmd.env("UNLATCH_DATABASE_URL", &db.url)
        .env("TZ", "UTC")
        .env("UNLATCH_LOCK_WAIT", "1s")
        .args(["--", "true"]);
    let as_4242 = ["--reuid", "4242", "--regid", "4242", "--clear-groups", "--"];
    let out = run(&mut wrapped("setpriv", &as_4242, &cmd));
    let err = stderr(&out);
    assert_eq!(code(&out), 75, "{err}");
    let why = format!(
        "no proof the holder is gone: unlatch (uid 4242) may not take a lease on {} (EACCES",
        file.display()
    );
    assert!(err.contains(&why), "{err}");
    assert!(
        err.contains("a lease takes the file's owner (uid 0) or CAP_LEASE"),
        "{err}"
    );
    assert_eq!(db.knex_migrator_lock().unwrap()[0], "1");
}

#[test]
fn proofs_off_is_no_proof() {
    let db = sqlite_db("proofs_off");
    let off = Settings {
        proofs: false,
        ..ON
    };
    let found = look(&db.url, &off);
    assert_eq!(
        found,
        Finding::NoProof("UNLATCH_PROOFS=0 turns proofs off".into())
    );
    assert!(!found.may_pass());
}

/// A session of its own on `url` while the closure runs.
fn with_session<T>(url: &str, during: impl FnOnce() -> T) -> T {
    use sqlx::Connection;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = rt.block_on(sqlx::AnyConnection::connect(url)).unwrap();
    let result = during();
    rt.block_on(conn.close()).unwrap();
    result
}

fn another_client_session_is_no_proof(db: &TestDb) {
    let proof = if db.engine == Engine::MySql {
        "mysql-sessions"
    } else {
        "pg-sessions"
    };
    let found = look_until_gone(&db.url);
    assert!(gone(&found, proof), "{found:?}");
    if let Finding::Gone { evidence, .. } = &found {
        assert!(
            evidence.contains("UNLATCH_PROOF_SETTLE=250ms"),
            "{evidence}"
        );
    }
    let found = with_session(&db.url, || look(&db.url, &ON));
    assert!(
        no_proof(&found, "1 other client session on database"),
        "{found:?}"
    );
    assert!(found.may_pass());
    // The same with no database (MariaDB: it may USE ours later).
    if db.engine == Engine::MySql {
        let mut server = url::Url::parse(&db.url).unwrap();
        server.set_path("");
        let found = with_session(server.as_str(), || look(&db.url, &ON));
        assert!(no_proof(&found, "no database"), "{found:?}");
    }
    // Gone, and the look settles again.
    assert!(gone(&look_until_gone(&db.url), proof));
}

/// Another replica, waiting for the guard this one holds, is no holder.
fn a_replica_waiting_for_the_guard_is_no_holder(db: &TestDb) {
    let mysql = db.engine == Engine::MySql;
    let key = unlatch::guard::mysql_key(&Target::parse(&db.url, "TEST_URL").unwrap());
    let (take, wait) = if mysql {
        (
            format!("SELECT GET_LOCK('{key}', 0)"),
            format!("SELECT GET_LOCK('{key}', 20)"),
        )
    } else {
        let k = unlatch::guard::PG_KEY;
        (
            format!("SELECT pg_advisory_lock({k})"),
            format!("SELECT pg_advisory_lock({k})"),
        )
    };
    // MySQL's guard is on a connection of its own, with no database; on
    // PostgreSQL the look's own connection holds it.
    let mut guard_url = url::Url::parse(&db.url).unwrap();
    guard_url.set_path("");
    block_on(async {
        use sqlx::Connection;
        let target = Target::parse(&db.url, "TEST_URL").unwrap();
        let mut guard = match mysql {
            true => Some(
                sqlx::AnyConnection::connect(guard_url.as_str())
                    .await
                    .unwrap(),
            ),
            false => None,
        };
        let mut work = Db::new(target.connect_once(Role::Work).await.unwrap(), target.kind);
        let holder = guard.as_mut().unwrap_or_else(|| work.conn());
        sqlx::query(&take).execute(holder).await.unwrap();
        let waiter = {
            let (url, wait) = (db.url.clone(), wait.clone());
            std::thread::spawn(move || sql(&url, &[&wait]))
        };
        // Until the waiter's request shows, no proof (it is another session).
        let mut stop = Stop::install().unwrap();
        let waiting = if mysql {
            "SELECT COUNT(*) FROM information_schema.processlist WHERE STATE = 'User lock'"
        } else {
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let row = work.row(waiting, &[]).await.unwrap().unwrap();
            if sqlx::Row::try_get::<i64, _>(&row, 0).unwrap() > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the waiter never waited");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Other tests' sessions with no database come and go on MySQL.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut found = proof::look(&mut work, &target, &ON, &mut stop)
            .await
            .unwrap();
        while mysql && !matches!(found, Finding::Gone { .. }) && Instant::now() < deadline {
            assert!(!no_proof(&found, "User lock"), "{found:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            found = proof::look(&mut work, &target, &ON, &mut stop)
                .await
                .unwrap();
        }
        assert!(matches!(found, Finding::Gone { .. }), "{found:?}");
        work.close().await;
        if let Some(guard) = guard {
            guard.close().await.unwrap();
        }
        waiter.join().unwrap();
    });
}

fn mariadb_user_without_process_has_no_proof_and_is_told_the_grant() {
    let Some(db) = TestDb::new(Engine::MySql, "no_process") else {
        return;
    };
    let user = format!("np_{}", std::process::id());
    db.exec(&[
        &format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{PASSWORD}'"),
        &format!("GRANT ALL PRIVILEGES ON `{}`.* TO '{user}'@'%'", db.name),
    ]);
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&user).unwrap();
    let found = look(url.as_str(), &ON);
    db.exec(&[&format!("DROP USER '{user}'@'%'")]);
    let grant = format!("GRANT PROCESS ON *.* TO '{user}'@'%' would make the proof possible");
    assert!(no_proof(&found, &grant), "{found:?}");
    assert!(no_proof(&found, "lacks the PROCESS privilege"), "{found:?}");
    assert!(!found.may_pass());
}

#[test]
fn mariadb_without_process() {
    mariadb_user_without_process_has_no_proof_and_is_told_the_grant();
}

mod server {
    use super::*;
    macro_rules! on_servers {
        ($($name:ident),*) => {$(
            mod $name {
                use super::*;
                #[test] fn mysql() { if let Some(db) = TestDb::new(Engine::MySql, stringify!($name)) { super::super::$name(&db) } }
                #[test] fn postgres() { if let Some(db) = TestDb::new(Engine::Postgres, stringify!($name)) { super::super::$name(&db) } }
            }
        )*};
    }
    on_servers!(
        another_client_session_is_no_proof,
        a_replica_waiting_for_the_guard_is_no_holder
    );
}

// How a start uses a proof: a young lock (held 5 s, the TTL 15 m) whose
// holder is gone is freed at once; with a session still connected, or
// proofs off, it is live until UNLATCH_LOCK_WAIT.

fn young_lock(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(true, &db.seconds_ago(5));
}

fn start(db: &TestDb, extra: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = unlatch();
    cmd.env("UNLATCH_DATABASE_URL", &db.url)
        .env("TZ", "UTC")
        .env("UNLATCH_LOCK_WAIT", "2s")
        .envs(extra.iter().copied())
        .args(["--", "true"]);
    run(&mut cmd)
}

fn a_young_lock_of_a_gone_holder_is_freed_at_once(db: &TestDb) {
    young_lock(db);
    let began = Instant::now();
    // On MySQL, other tests' sessions with no database may hold the proof
    // up (they could USE this one): a longer wait there, and a pool idle
    // timeout as long (mysql2's own pool's is 60 s), so that the 5 s old
    // lock stays recent enough for a proof meanwhile.
    let (wait, idle) = if db.engine == Engine::MySql {
        ("30s", "1m")
    } else {
        ("2s", "10s")
    };
    let out = start(
        db,
        &[
            ("UNLATCH_LOCK_WAIT", wait),
            ("UNLATCH_POOL_IDLE_TIMEOUT", idle),
        ],
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    if db.engine != Engine::MySql {
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "{:?}",
            began.elapsed()
        );
    }
    let proof = match db.engine {
        Engine::Sqlite => "(sqlite-lease: no process on this host has",
        Engine::MySql => "(mysql-sessions: no client session but unlatch's own",
        Engine::Postgres => "(pg-sessions: no client session but unlatch's own",
    };
    let line = err
        .lines()
        .find(|l| l.contains("its holder is provably gone") && !l.starts_with("unlatch: trail "))
        .unwrap_or_else(|| panic!("no heal by proof: {err}"));
    // Taken 5 s before the start, or more: the look may come later (MySQL
    // allows a long wait).
    let taken: f64 = line
        .split_once("; taken ")
        .and_then(|(_, rest)| rest.split_once("s ago, under UNLATCH_POOL_IDLE_TIMEOUT="))
        .and_then(|(seconds, _)| seconds.parse().ok())
        .unwrap_or_else(|| panic!("no \"taken <N.N>s ago, under ...\" in: {line}"));
    assert!(taken >= 5.0, "the recency: {line}");
    if db.engine != Engine::MySql {
        assert!(taken < 8.0, "the recency, looked at within 2 s: {line}");
    }
    assert!(line.contains(proof), "{line}");
    assert!(
        line.contains("held for") && line.contains("UNLATCH_LOCK_TTL=15m"),
        "{line}"
    );
    assert!(
        line.ends_with("freed it (compare-and-swap on what was observed)"),
        "{line}"
    );
    assert_eq!(db.knex_migrator_lock().unwrap()[0], "0");
}

fn without_a_proof_a_young_lock_is_live_until_the_wait_ends(db: &TestDb) {
    young_lock(db);
    // Proofs off.
    let out = start(db, &[("UNLATCH_PROOFS", "0")]);
    let err = stderr(&out);
    assert_eq!(code(&out), 75, "{err}");
    assert!(
        err.contains("no proof the holder is gone: UNLATCH_PROOFS=0 turns proofs off"),
        "{err}"
    );
    assert_eq!(db.knex_migrator_lock().unwrap()[0], "1");
    // Someone still there: said once, though looked for at every poll.
    let check = |out: &std::process::Output, part: &str| {
        let err = stderr(out);
        assert_eq!(code(out), 75, "{err}");
        let reasons: Vec<&str> = err
            .lines()
            .filter_map(|l| {
                l.split_once("no proof the holder is gone: ")
                    .map(|(_, why)| why)
            })
            .collect();
        // A reason may change while it waits (the lock ages past the pool's
        // idle gap on a slow machine; sessions of other tests come and go on
        // a shared MySQL server), but an unchanged one is never said twice.
        assert!(!reasons.is_empty(), "{err}");
        assert!(
            reasons.windows(2).all(|w| w[0] != w[1]),
            "said again unchanged: {err}"
        );
        assert!(err.contains(part), "{err}");
        assert_eq!(db.knex_migrator_lock().unwrap()[0], "1");
    };
    if db.engine == Engine::Sqlite {
        let holder = holding(&file_of(db), &[]);
        let out = start(db, &[]);
        end(holder);
        check(&out, "another process has");
    } else {
        let out = with_session(&db.url, || start(db, &[]));
        check(&out, "1 other client session");
    }
}

on_every_engine!(
    a_young_lock_of_a_gone_holder_is_freed_at_once,
    without_a_proof_a_young_lock_is_live_until_the_wait_ends
);
