//! entrypoint.d hooks and SQLite backups, through the binary.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

fn hooks_dir(scratch: &Scratch) -> std::path::PathBuf {
    let dir = scratch.path().join("entrypoint.d");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn hooks_run_in_natural_order_and_hand_variables_on() {
    let scratch = Scratch::new("hooks_order");
    let dir = hooks_dir(&scratch);
    hook(
        &dir,
        "10-second",
        "echo ten; echo \"SEEN_BY_TEN=$GREETING\" >> \"$UNLATCH_ENV_FILE\"",
        0o755,
    );
    hook(
        &dir,
        "9-first",
        "echo nine; echo oops >&2; echo 'GREETING=hello world' >> \"$UNLATCH_ENV_FILE\"",
        0o755,
    );
    hook(&dir, "README", "echo never", 0o644);
    std::fs::create_dir(dir.join("5-folder")).unwrap();
    hook(&dir.join("5-folder"), "1-inner", "echo never", 0o755);
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", &dir)
        .env("UNLATCH_MIGRATE_CMD", "sh -c 'echo migrate sees $GREETING'")
        .args(["--", "sh", "-c", "echo app sees $GREETING / $SEEN_BY_TEN"]));
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out),
        "9-first: nine\n10-second: ten\nmigrate sees hello world\napp sees hello world / hello world\n"
    );
    let err = stderr(&out);
    assert!(
        err.contains("9-first: oops"),
        "stderr is prefixed too: {err}"
    );
    assert!(
        err.contains("skipping hook README: not executable"),
        "{err}"
    );
    assert!(!stdout(&out).contains("never"));
}

#[test]
fn untrusted_hooks_are_refused() {
    let scratch = Scratch::new("hooks_refused");
    let dir = hooks_dir(&scratch);
    let marker = scratch.path().join("ran");
    hook(
        &dir,
        "1-open",
        &format!("touch {}", marker.display()),
        0o777,
    );
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", &dir)
        .args(["--", "echo", "app"]));
    assert_eq!(code(&out), 73);
    assert!(
        stderr(&out).contains("refusing hook 1-open") && stderr(&out).contains("world-writable"),
        "{}",
        stderr(&out)
    );
    assert!(!marker.exists() && stdout(&out).is_empty());

    if !available(
        "untrusted_hooks_are_refused (owner check)",
        lacks_root().as_deref(),
    ) {
        return;
    }
    std::fs::set_permissions(dir.join("1-open"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(dir.join("1-open"), Some(65534), None).unwrap();
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", &dir)
        .args(["--", "echo", "app"]));
    assert_eq!(code(&out), 73);
    assert!(
        stderr(&out).contains("owned by uid 65534, neither root nor the user it runs as"),
        "{}",
        stderr(&out)
    );
    assert!(!marker.exists());
    // Owned by the user it runs as: fine.
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", &dir)
        .env("UNLATCH_MIGRATE_RUN_AS", "65534")
        .args(["--", "echo", "app"]));
    assert!(
        stderr(&out).contains("running hook 1-open"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn failure_policy_and_timeout() {
    let scratch = Scratch::new("hooks_fail");
    let dir = hooks_dir(&scratch);
    hook(&dir, "1-fails", "exit 3", 0o755);
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", &dir)
        .args(["--", "echo", "app"]));
    assert_eq!(code(&out), 73);
    assert!(
        stderr(&out).contains("hook 1-fails exited with 3; not starting the app"),
        "{}",
        stderr(&out)
    );
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", &dir)
        .env("UNLATCH_HOOK_FAILURE", "warn")
        .args(["--", "echo", "app"]));
    assert_eq!((code(&out), stdout(&out).as_str()), (0, "app\n"));

    hook(&dir, "1-fails", "exec sleep 30", 0o755);
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", &dir)
        .env("UNLATCH_HOOK_TIMEOUT", "1s")
        .env("UNLATCH_KILL_GRACE", "1s")
        .args(["--", "echo", "app"]));
    assert_eq!(code(&out), 73);
    assert!(
        stderr(&out).contains("ran past its time limit"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn hooks_run_after_the_heal_and_before_the_migrations() {
    let scratch = Scratch::new("hooks_when");
    let db = scratch.path().join("app.db");
    let url = format!("sqlite://{}", db.display());
    std::fs::File::create(&db).unwrap();
    sql(&url, &[
        "create table migrations_lock (lock_key varchar(191) primary key, locked boolean, acquired_at datetime, released_at datetime)",
        "insert into migrations_lock values ('km01', 1, '2020-01-01 00:00:00', NULL)",
    ]);
    let dir = hooks_dir(&scratch);
    hook(
        &dir,
        "1-look",
        &format!(
            "sqlite3 {} 'select locked from migrations_lock'",
            db.display()
        ),
        0o755,
    );
    let out = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &url)
        .env("UNLATCH_HOOKS_DIR", &dir)
        .env("UNLATCH_MIGRATE_CMD", "echo migrating")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out),
        "1-look: 0\nmigrating\n",
        "the hook saw the lock freed; the migration came after"
    );
}

#[test]
fn hooks_run_as_the_migrate_user() {
    if !available("hooks_run_as_the_migrate_user", lacks_root().as_deref()) {
        return;
    }
    let scratch = Scratch::new("hooks_user");
    let dir = hooks_dir(&scratch);
    hook(&dir, "1-who", "id -u", 0o755);
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", &dir)
        .env("UNLATCH_MIGRATE_RUN_AS", "65534")
        .args(["--", "id", "-u"]));
    assert_eq!(stdout(&out), "1-who: 65534\n0\n");
}

fn stale_sqlite(scratch: &Scratch) -> (std::path::PathBuf, String) {
    let db = scratch.path().join("ghost.db");
    let url = format!("sqlite://{}", db.display());
    std::fs::File::create(&db).unwrap();
    sql(&url, &[
        "create table migrations_lock (lock_key varchar(191) primary key, locked boolean, acquired_at datetime, released_at datetime)",
        "insert into migrations_lock values ('km01', 1, '2020-01-01 00:00:00', NULL)",
        "create table posts (id integer primary key, title text)",
        "insert into posts (title) values ('a'), ('b')",
    ]);
    (db, url)
}

#[test]
fn a_heal_copies_the_sqlite_database_first() {
    let scratch = Scratch::new("backup_heal");
    let (db, url) = stale_sqlite(&scratch);
    let out = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &url)
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    let copies = unlatch::backup::copies(&db);
    assert_eq!(copies.len(), 1, "{copies:?}");
    let copy = format!("sqlite://{}", copies[0].display());
    assert_eq!(
        row(&copy, "select cast(locked as integer) from migrations_lock").unwrap(),
        ["1"],
        "the copy is from before the heal"
    );
    assert_eq!(row(&copy, "select count(*) from posts").unwrap(), ["2"]);
    assert_eq!(
        row(&url, "select cast(locked as integer) from migrations_lock").unwrap(),
        ["0"]
    );
    assert!(
        stderr(&out).contains("before freeing the lock"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn migrations_are_preceded_by_a_copy_when_asked_and_old_copies_pruned() {
    let scratch = Scratch::new("backup_migrate");
    let (db, url) = stale_sqlite(&scratch);
    let migrate = format!(
        "sqlite3 {} 'create table added_by_migration (id integer)'",
        db.display()
    );
    let out = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &url)
        .env("UNLATCH_SQLITE_BACKUP", "1")
        .env("UNLATCH_MIGRATE_CMD", format!("sh -c \"{migrate}\""))
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    let copies = unlatch::backup::copies(&db);
    assert_eq!(
        copies.len(),
        2,
        "one before the heal, one before the migrations: {copies:?}"
    );
    let before_migrations = format!("sqlite://{}", copies[1].display());
    assert_eq!(
        row(
            &before_migrations,
            "select cast(locked as integer) from migrations_lock"
        )
        .unwrap(),
        ["0"]
    );
    assert_eq!(
        row(
            &before_migrations,
            "select count(*) from sqlite_master where name = 'added_by_migration'"
        )
        .unwrap(),
        ["0"]
    );
    for _ in 0..4 {
        let out = run(unlatch()
            .env("UNLATCH_DATABASE_URL", &url)
            .env("UNLATCH_SQLITE_BACKUP", "1")
            .env("UNLATCH_SQLITE_BACKUP_KEEP", "2")
            .env("UNLATCH_MIGRATE_CMD", "true")
            .args(["--", "true"]));
        assert_eq!(code(&out), 0);
    }
    let left = unlatch::backup::copies(&db);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&copies[0]), "the oldest went first");
}

#[test]
fn copies_are_owned_like_the_database() {
    if !available(
        "copies_are_owned_like_the_database",
        lacks_root().as_deref(),
    ) {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let scratch = Scratch::new("backup_owner");
    let (db, url) = stale_sqlite(&scratch);
    std::os::unix::fs::chown(&db, Some(65534), Some(65534)).unwrap();
    let out = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &url)
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    let copy = &unlatch::backup::copies(&db)[0];
    let meta = copy.metadata().unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
}

/// The repository's own example hooks, as shipped.
fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("entrypoint.d")
}

#[test]
fn example_mysqldump_hook_dumps_before_the_migrations() {
    let Some(db) = TestDb::new(Engine::MySql, "example_dump") else {
        return;
    };
    db.exec(&[
        "create table posts (id int primary key, title varchar(10))",
        "insert into posts values (1, 'kept')",
    ]);
    let url = url::Url::parse(&db.url).unwrap();
    let dumps = db.scratch.path().join("dumps");
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", examples())
        .env("database__client", "mysql")
        .env("database__connection__host", url.host_str().unwrap())
        .env(
            "database__connection__port",
            url.port().unwrap_or(3306).to_string(),
        )
        .env("database__connection__user", url.username())
        .env(
            "database__connection__password",
            url.password().unwrap_or_default(),
        )
        .env("database__connection__database", &db.name)
        .env("MYSQLDUMP_DIR", &dumps)
        .env("UNLATCH_MIGRATE_CMD", "sh -c 'echo migrating'")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    let dumped = text
        .find("10-mysqldump-before-migrating: dumped")
        .expect("the hook dumped");
    assert!(
        dumped < text.find("migrating\n").unwrap(),
        "before the migrations: {text}"
    );
    let files: Vec<_> = std::fs::read_dir(&dumps)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1);
    let sql = Command::new("gzip")
        .arg("-dc")
        .arg(&files[0])
        .output()
        .unwrap();
    let sql = String::from_utf8_lossy(&sql.stdout);
    assert!(
        sql.contains("CREATE TABLE `posts`") && sql.contains("'kept'"),
        "a real dump"
    );
}

#[test]
fn example_mysqldump_hook_stands_aside_for_sqlite() {
    let scratch = Scratch::new("example_dump_sqlite");
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", examples())
        .env("database__client", "sqlite3")
        .env(
            "database__connection__filename",
            scratch.path().join("ghost.db"),
        )
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert!(
        stdout(&out).contains("10-mysqldump-before-migrating: not a MySQL database"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn example_secrets_hook_hands_file_contents_to_the_app() {
    let scratch = Scratch::new("example_secrets");
    let secret = scratch.path().join("token");
    std::fs::write(&secret, "s3cr3t-value\n").unwrap();
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", examples())
        .env("API_TOKEN_FILE", &secret)
        .args(["--", "sh", "-c", "echo app has $API_TOKEN"]));
    assert_eq!(code(&out), 0);
    assert!(
        stdout(&out).ends_with("app has s3cr3t-value\n"),
        "{}",
        stdout(&out)
    );
    std::fs::write(&secret, "two\nlines\n").unwrap();
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", examples())
        .env("API_TOKEN_FILE", &secret)
        .args(["--", "true"]));
    assert_eq!(code(&out), 73, "a failed hook stops the start");
    assert!(
        stderr(&out).contains("more than one line"),
        "{}",
        stderr(&out)
    );
}
