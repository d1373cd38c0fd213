//! The built-in runner (`UNLATCH_MIGRATIONS_DIR`) on all three databases,
//! cross-checked with sqlx-cli 0.8.6: what unlatch applies, `sqlx migrate
//! info` reports applied, and what `sqlx migrate run` applied, unlatch does
//! not apply again.

#[macro_use]
mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

on_every_engine!(
    unlatch_applies_and_sqlx_cli_agrees,
    sqlx_cli_applies_and_unlatch_agrees,
    a_failing_migration_stops_the_start
);

fn migrations(db: &TestDb) -> PathBuf {
    let dir = db.scratch.path().join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("20240101000000_create_posts.sql"),
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, title VARCHAR(50));\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("20240102000000_seed.up.sql"),
        "INSERT INTO posts (id, title) VALUES (1, 'kept');\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("20240102000000_seed.down.sql"),
        "DELETE FROM posts WHERE id = 1;\n",
    )
    .unwrap();
    dir
}

fn info(db: &TestDb, dir: &PathBuf) -> String {
    let out = run(Command::new(sqlx_cli())
        .args(["migrate", "info", "--source"])
        .arg(dir)
        .args(["--database-url", &db.url]));
    assert!(out.status.success());
    stdout(&out)
}

fn with_runner(db: &TestDb, dir: &PathBuf) -> Command {
    let mut cmd = unlatch();
    cmd.env("UNLATCH_DATABASE_URL", &db.url)
        .env("UNLATCH_MIGRATIONS_DIR", dir);
    cmd
}

fn unlatch_applies_and_sqlx_cli_agrees(db: &TestDb) {
    let dir = migrations(db);
    let status = run(with_runner(db, &dir).args(["status", "--json"]));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        report["pending"].as_array().unwrap().len(),
        2,
        "status lists the pending ones"
    );

    let out = run(with_runner(db, &dir).args(["--", "sh", "-c", "echo app"]));
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), "app\n");
    assert!(
        stderr(&out).contains("applied 2 migration(s)"),
        "{}",
        stderr(&out)
    );
    let info = info(db, &dir);
    assert!(
        info.contains("20240101000000/installed create posts")
            && info.contains("20240102000000/installed seed"),
        "{info}"
    );
    assert_eq!(db.row("SELECT count(*) FROM posts").unwrap(), ["1"]);

    let again = run(with_runner(db, &dir).args(["--", "true"]));
    assert!(
        stderr(&again).contains("nothing pending"),
        "{}",
        stderr(&again)
    );
}

fn sqlx_cli_applies_and_unlatch_agrees(db: &TestDb) {
    let dir = migrations(db);
    let out = run(Command::new(sqlx_cli())
        .args(["migrate", "run", "--source"])
        .arg(&dir)
        .args(["--database-url", &db.url]));
    assert!(out.status.success());
    let status = run(with_runner(db, &dir).args(["status", "--json"]));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        report["pending"],
        serde_json::json!([]),
        "nothing pending after sqlx migrate run"
    );
    let out = run(with_runner(db, &dir).args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("nothing pending"), "{}", stderr(&out));
    assert_eq!(
        db.row("SELECT count(*) FROM posts").unwrap(),
        ["1"],
        "not applied twice"
    );
}

fn a_failing_migration_stops_the_start(db: &TestDb) {
    let dir = migrations(db);
    std::fs::write(
        dir.join("20240103000000_broken.sql"),
        "CREATE TABLE posts (id INTEGER);\n",
    )
    .unwrap();
    let out = run(with_runner(db, &dir).args(["--", "sh", "-c", "echo app"]));
    assert_eq!(code(&out), 71);
    assert_eq!(stdout(&out), "", "the app does not start");
    assert!(
        stderr(&out).contains("UNLATCH_MIGRATIONS_DIR="),
        "{}",
        stderr(&out)
    );
    assert!(
        info(db, &dir).contains("20240101000000/installed"),
        "what went before stays applied"
    );
}

#[test]
fn a_sqlite_file_the_runner_creates_belongs_to_the_app_user() {
    // unlatch runs as root and the app as UNLATCH_RUN_AS: the database file
    // the runner makes, and the journal files it leaves, are the app's to
    // write.
    if !available(
        "a_sqlite_file_the_runner_creates_belongs_to_the_app_user",
        lacks_root().as_deref(),
    ) {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let scratch = Scratch::new("runner_run_as");
    let data = scratch.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
    let dir = scratch.path().join("migrations");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("1_posts.sql"),
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT);\n",
    )
    .unwrap();
    let file = data.join("app.db");
    let app = format!(
        "id -u; sqlite3 {} \"insert into posts (title) values ('by the app')\" && echo the app wrote",
        file.display()
    );
    let out = run(unlatch()
        .env(
            "UNLATCH_DATABASE_URL",
            format!("sqlite://{}", file.display()),
        )
        .env("UNLATCH_MIGRATIONS_DIR", &dir)
        .env("UNLATCH_RUN_AS", "65534:65534")
        .args(["--", "sh", "-c", &app]));
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), "65534\nthe app wrote\n");
    for name in ["app.db", "app.db-wal", "app.db-shm", "app.db-journal"] {
        if let Ok(meta) = data.join(name).metadata() {
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "{name}");
        }
    }
}
