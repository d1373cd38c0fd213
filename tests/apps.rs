//! App profiles on the real servers: unlatch, given only the variables an
//! app's users set (no database URL, tool or table of unlatch's own), finds
//! the app's database and its tool's stuck state there, says so in its one
//! profile line, and heals it. The stuck states are made with each tool's
//! own DDL, as tests/tools.rs makes them (versions named there).
//!
//! What unlatch is told beyond the app's variables is policy only (how old
//! a lock may be, whether to retry a failed migration), never where to look.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// A database URL's parts, as an app's variables give them.
struct Parts {
    host: String,
    port: String,
    user: String,
    password: String,
    name: String,
}

fn parts(db: &TestDb) -> Parts {
    let url = url::Url::parse(&db.url).unwrap();
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .unwrap()
            .into_owned()
    };
    Parts {
        host: url.host_str().unwrap().to_owned(),
        port: url.port().unwrap().to_string(),
        user: decode(url.username()),
        password: decode(url.password().unwrap_or_default()),
        name: db.name.clone(),
    }
}

/// unlatch with the app's variables `pairs` alone, started in `cwd`.
fn app(cwd: &Path, pairs: &[(&str, String)]) -> Command {
    let mut cmd = unlatch();
    cmd.current_dir(cwd).env("TZ", "UTC");
    for (name, value) in pairs {
        cmd.env(name, value);
    }
    cmd
}

/// stderr, after checking the start ended with `expected`.
fn ends(cmd: &mut Command, expected: i32) -> String {
    let out = run(cmd.args(["--", "true"]));
    let err = stderr(&out);
    assert_eq!(code(&out), expected, "{err}");
    err
}

/// knex 3.1.0's lock table under Nginx Proxy Manager's `tableName:
/// "migrations"` (lib/migrations/migrate/table-creator.js), held.
fn npm_held_lock(db: &TestDb) {
    let ddl = match db.engine {
        Engine::Sqlite => "create table `migrations_lock` (`index` integer not null primary key autoincrement, `is_locked` integer)",
        Engine::MySql => "create table `migrations_lock` (`index` int unsigned not null auto_increment primary key, `is_locked` int)",
        Engine::Postgres => "create table \"migrations_lock\" (\"index\" serial primary key, \"is_locked\" integer)",
    };
    db.exec(&[ddl, "insert into migrations_lock (is_locked) values (1)"]);
}

/// Nginx Proxy Manager's variables for `db`; MySQL's password from a
/// `DB_MYSQL_PASSWORD__FILE` secret with its trailing newline, in `secrets`
/// (not the scratch folder, which must never hold the password).
fn npm_variables(db: &TestDb, secrets: &Path) -> Vec<(&'static str, String)> {
    if db.engine == Engine::Sqlite {
        return vec![("DB_SQLITE_FILE", db.url["sqlite://".len()..].to_owned())];
    }
    let p = parts(db);
    match db.engine {
        Engine::MySql => {
            let secret = secrets.join("db-password");
            std::fs::write(&secret, format!("{}\n", p.password)).unwrap();
            vec![
                ("DB_MYSQL_HOST", p.host),
                ("DB_MYSQL_PORT", p.port),
                ("DB_MYSQL_USER", p.user),
                ("DB_MYSQL_PASSWORD__FILE", secret.display().to_string()),
                ("DB_MYSQL_NAME", p.name),
            ]
        }
        _ => vec![
            ("DB_POSTGRES_HOST", p.host),
            ("DB_POSTGRES_PORT", p.port),
            ("DB_POSTGRES_USER", p.user),
            ("DB_POSTGRES_PASSWORD", p.password),
            ("DB_POSTGRES_NAME", p.name),
        ],
    }
}

#[macro_use]
mod engines {
    /// One test per engine given, each with a database of its own.
    macro_rules! on_engines {
        ($name:ident: $($engine:ident => $variant:ident),*) => {
            mod $name {
                use super::*;
                $(#[test] fn $engine() {
                    if let Some(db) = TestDb::new(Engine::$variant, stringify!($name)) { super::$name(&db) }
                })*
            }
        };
    }
}

on_engines!(npm_lock_is_found_and_healed_from_its_variables: sqlite => Sqlite, mysql => MySql, postgres => Postgres);

fn npm_lock_is_found_and_healed_from_its_variables(db: &TestDb) {
    npm_held_lock(db);
    let secrets = tempfile::tempdir().unwrap();
    let vars = npm_variables(db, secrets.path());
    let first = vars[0].0;
    // knex records no time: the first start only sees the lock.
    let start = || {
        let mut cmd = app(db.scratch.path(), &vars);
        cmd.env("UNLATCH_LOCK_TTL", "2s")
            .env("UNLATCH_LOCK_WAIT", "0s");
        cmd
    };
    let err = ends(&mut start(), 75);
    let line = format!("app profile nginx-proxy-manager ({first} is set): database from {first}");
    assert!(err.contains(&line), "{err}");
    assert!(err.contains("tool knex, table migrations"), "{err}");
    assert!(err.contains("migrations_lock"), "{err}");
    std::thread::sleep(Duration::from_millis(2200));
    let err = ends(&mut start(), 0);
    assert!(err.contains("stale; freed it"), "{err}");
    assert_eq!(
        db.row("select is_locked from migrations_lock").unwrap(),
        ["0"]
    );
}

#[test]
fn npm_is_found_by_its_package_json_with_no_variable_at_all() {
    let scratch = Scratch::new("npm_package_json");
    std::fs::write(
        scratch.path().join("package.json"),
        r#"{"name": "nginx-proxy-manager", "version": "2.0.0"}"#,
    )
    .unwrap();
    if Path::new("/data/database.sqlite").exists() {
        panic!("/data/database.sqlite exists on this machine: the test needs NPM's default file absent");
    }
    let err = ends(&mut app(scratch.path(), &[]), 0);
    assert!(
        err.contains("app profile nginx-proxy-manager (./package.json is named nginx-proxy-manager): database from DB_SQLITE_FILE's default /data/database.sqlite, tool knex, table migrations"),
        "{err}"
    );
    assert!(err.contains("does not exist yet: nothing to heal"), "{err}");
    // The same folder without that name is no app at all.
    std::fs::write(scratch.path().join("package.json"), r#"{"name": "other"}"#).unwrap();
    let err = ends(&mut app(scratch.path(), &[]), 0);
    assert!(!err.contains("app profile"), "{err}");
}

on_engines!(harbor_dirty_version_is_found_and_forced_from_its_variables: postgres => Postgres);

fn harbor_dirty_version_is_found_and_forced_from_its_variables(db: &TestDb) {
    // golang-migrate v4.18, database/postgres ensureVersionTable.
    db.exec(&[
        "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint not null primary key, dirty boolean not null)",
        "INSERT INTO schema_migrations (version, dirty) VALUES (130, true)",
    ]);
    // Harbor's image: /harbor/migrations/postgresql, the working directory /harbor.
    let folder = db.scratch.path().join("migrations/postgresql");
    std::fs::create_dir_all(&folder).unwrap();
    for file in [
        "0100_2.7.0_schema.up.sql",
        "0110_2.8.0_schema.up.sql",
        "0130_2.10.0_schema.up.sql",
    ] {
        std::fs::write(folder.join(file), "SELECT 1;").unwrap();
    }
    let p = parts(db);
    let vars = [
        ("POSTGRESQL_HOST", p.host),
        ("POSTGRESQL_PORT", p.port),
        ("POSTGRESQL_USERNAME", p.user),
        ("POSTGRESQL_PASSWORD", p.password),
        ("POSTGRESQL_DATABASE", p.name),
    ];
    let start = || {
        let mut cmd = app(db.scratch.path(), &vars);
        cmd.env("UNLATCH_LOCK_TTL", "0s");
        cmd
    };
    let err = ends(&mut start(), 78);
    assert!(
        err.contains("app profile harbor (POSTGRESQL_HOST is set): database from POSTGRESQL_HOST, POSTGRESQL_PORT, POSTGRESQL_USERNAME, POSTGRESQL_PASSWORD, POSTGRESQL_DATABASE (Harbor's defaults: POSTGRESQL_SSLMODE disable), tool golang-migrate, table schema_migrations"),
        "{err}"
    );
    assert!(
        err.contains("migration version 130 failed or did not finish"),
        "{err}"
    );
    let err = ends(start().env("UNLATCH_ON_DIRTY", "retry"), 0);
    assert!(err.contains("force 110"), "{err}");
    assert_eq!(
        db.row("SELECT CAST(version AS TEXT), CASE WHEN dirty THEN 1 ELSE 0 END FROM schema_migrations")
            .unwrap(),
        ["110", "0"],
        "as `migrate force 110` leaves it, the folder found in the working directory"
    );
}

on_engines!(rundeck_changelog_lock_is_found_and_released_from_its_variables: mysql => MySql, postgres => Postgres);

fn rundeck_changelog_lock_is_found_and_released_from_its_variables(db: &TestDb) {
    // Liquibase 4.29, CreateDatabaseChangeLogLockTableGenerator.
    let (ddl, granted, driver, params) = match db.engine {
        Engine::MySql => (
            "CREATE TABLE DATABASECHANGELOGLOCK (ID INT NOT NULL, `LOCKED` BIT(1) NOT NULL, LOCKGRANTED datetime NULL, LOCKEDBY VARCHAR(255) NULL, CONSTRAINT PK_DATABASECHANGELOGLOCK PRIMARY KEY (ID))",
            "NOW() - INTERVAL 60 MINUTE",
            // Rundeck's README lists org.mariadb.jdbc.Driver for MariaDB.
            "mariadb",
            "?autoReconnect=true&useSSL=false",
        ),
        _ => (
            "CREATE TABLE databasechangeloglock (id INTEGER NOT NULL, locked BOOLEAN NOT NULL, lockgranted TIMESTAMP WITHOUT TIME ZONE, lockedby VARCHAR(255), CONSTRAINT databasechangeloglock_pkey PRIMARY KEY (id))",
            "LOCALTIMESTAMP - INTERVAL '60 minutes'",
            "postgresql",
            "",
        ),
    };
    db.exec(&[
        ddl,
        &format!(
            "INSERT INTO DATABASECHANGELOGLOCK (ID, LOCKED, LOCKGRANTED, LOCKEDBY) VALUES (1, {}, {granted}, 'rundeck-0 (10.0.0.9)')",
            db.boolean(true)
        ),
    ]);
    let p = parts(db);
    let vars = [
        (
            "RUNDECK_DATABASE_URL",
            format!("jdbc:{driver}://{}:{}/{}{params}", p.host, p.port, p.name),
        ),
        ("RUNDECK_DATABASE_USERNAME", p.user),
        ("RUNDECK_DATABASE_PASSWORD", p.password),
    ];
    let err = ends(&mut app(db.scratch.path(), &vars), 0);
    assert!(
        err.contains("app profile rundeck (RUNDECK_DATABASE_URL is set): database from RUNDECK_DATABASE_URL, RUNDECK_DATABASE_USERNAME, RUNDECK_DATABASE_PASSWORD, tool liquibase, table DATABASECHANGELOGLOCK"),
        "{err}"
    );
    assert!(
        err.contains("by rundeck-0 (10.0.0.9), held for 1h"),
        "{err}"
    );
    let lock = db
        .row("SELECT CASE WHEN LOCKED THEN 1 ELSE 0 END, LOCKEDBY FROM DATABASECHANGELOGLOCK WHERE ID = 1")
        .unwrap();
    assert_eq!(lock, ["0", "NULL"]);
}

on_engines!(prisma_failed_migration_is_found_in_its_schema_and_through_direct_url: postgres => Postgres);

/// prisma-engines 6.x's `_prisma_migrations` in `schema`, with one
/// migration applied and one started an hour ago that never finished.
fn prisma_failed_migration(db: &TestDb, schema: &str) {
    db.exec(&[
        &format!("CREATE SCHEMA {schema}"),
        &format!("CREATE TABLE {schema}._prisma_migrations (id VARCHAR(36) PRIMARY KEY NOT NULL, checksum VARCHAR(64) NOT NULL, finished_at TIMESTAMPTZ, migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMPTZ, started_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL DEFAULT 0)"),
        &format!("INSERT INTO {schema}._prisma_migrations (id, checksum, finished_at, migration_name, started_at, applied_steps_count) VALUES ('a1', 'c', now() - interval '2 days', '20240101000000_init', now() - interval '2 days', 1)"),
        &format!("INSERT INTO {schema}._prisma_migrations (id, checksum, migration_name, started_at) VALUES ('b2', 'c', '20240201000000_add_posts', now() - interval '1 hour')"),
    ]);
}

fn rolled_back(db: &TestDb, schema: &str) -> Vec<String> {
    db.row(&format!(
        "SELECT id FROM {schema}._prisma_migrations WHERE rolled_back_at IS NOT NULL"
    ))
    .unwrap()
}

fn prisma_failed_migration_is_found_in_its_schema_and_through_direct_url(db: &TestDb) {
    prisma_failed_migration(db, "umami");
    // Umami's image: /app/prisma/schema.prisma, DATABASE_URL with ?schema=.
    let cwd = db.scratch.path();
    std::fs::create_dir_all(cwd.join("prisma")).unwrap();
    std::fs::write(
        cwd.join("prisma/schema.prisma"),
        "datasource db {\n  provider = \"postgresql\"\n}\n",
    )
    .unwrap();
    let in_schema = |schema: &str| {
        let mut url = url::Url::parse(&db.url).unwrap();
        url.query_pairs_mut().append_pair("schema", schema);
        url.to_string()
    };
    let vars = [("DATABASE_URL", in_schema("umami"))];
    let err = ends(&mut app(cwd, &vars), 78);
    let line = format!(
        "app profile prisma (DATABASE_URL is set and a Prisma schema is in {}): database from DATABASE_URL, tool prisma, table _prisma_migrations",
        cwd.join("prisma").display()
    );
    assert!(err.contains(&line), "{err}");
    assert!(
        err.contains("migration 20240201000000_add_posts failed"),
        "{err}"
    );
    ends(app(cwd, &vars).env("UNLATCH_ON_DIRTY", "retry"), 0);
    assert_eq!(rolled_back(db, "umami"), ["b2"]);

    // DIRECT_URL wins over a DATABASE_URL that points elsewhere (a pooler's
    // port where nothing listens), with no schema file needed.
    prisma_failed_migration(db, "langfuse");
    let elsewhere = Scratch::new("prisma_direct_url");
    let vars = [
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/nowhere?pgbouncer=true".to_owned(),
        ),
        ("DIRECT_URL", in_schema("langfuse")),
    ];
    let err = ends(
        app(elsewhere.path(), &vars).env("UNLATCH_ON_DIRTY", "retry"),
        0,
    );
    assert!(
        err.contains("app profile prisma (DIRECT_URL is set): database from DIRECT_URL, tool prisma, table _prisma_migrations"),
        "{err}"
    );
    assert_eq!(rolled_back(db, "langfuse"), ["b2"]);
}

on_engines!(npm_passwords_of_any_character_and_a_crlf_secret_reach_mariadb: mysql => MySql);

/// A MariaDB user whose password holds what URLs and shells treat apart
/// (and the recognisable test password, so that any output showing it
/// fails), logged in with as Nginx Proxy Manager would: from
/// `DB_MYSQL_PASSWORD`, and from a CRLF `DB_MYSQL_PASSWORD__FILE`, whose
/// `\r` the image's secret hook keeps (and so did the MariaDB image's
/// `file_env`, which made the user from the same file).
fn npm_passwords_of_any_character_and_a_crlf_secret_reach_mariadb(db: &TestDb) {
    let user = format!("atk{}", std::process::id());
    let login = |password: &str, secret: Option<&Path>| {
        let quoted = password.replace('\\', "\\\\").replace('\'', "\\'");
        db.exec(&[
            &format!("DROP USER IF EXISTS '{user}'@'%'"),
            &format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{quoted}'"),
            &format!("GRANT ALL ON `{}`.* TO '{user}'@'%'", db.name),
        ]);
        let p = parts(db);
        let mut vars = vec![
            ("DB_MYSQL_HOST", p.host),
            ("DB_MYSQL_PORT", p.port),
            ("DB_MYSQL_USER", user.clone()),
            ("DB_MYSQL_NAME", p.name),
        ];
        match secret {
            Some(file) => vars.push(("DB_MYSQL_PASSWORD__FILE", file.display().to_string())),
            None => vars.push(("DB_MYSQL_PASSWORD", password.to_owned())),
        }
        let err = ends(&mut app(db.scratch.path(), &vars), 0);
        assert!(err.contains("nothing to heal"), "{err}");
        err
    };
    login(&format!("{PASSWORD}@:/%#? \"'\\ü€"), None);
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("db-password");
    std::fs::write(&file, format!("{PASSWORD}@:/#?\"'ü€\r\n")).unwrap();
    let err = login(&format!("{PASSWORD}@:/#?\"'ü€\r"), Some(&file));
    assert!(err.contains("database from DB_MYSQL_HOST, DB_MYSQL_PORT, DB_MYSQL_USER, DB_MYSQL_PASSWORD__FILE, DB_MYSQL_NAME"), "{err}");
    assert!(err.contains("holds a carriage return"), "{err}");
    db.exec(&[&format!("DROP USER '{user}'@'%'")]);
}

on_engines!(rundeck_password_is_read_as_its_properties_file_reads_it: mysql => MySql);

/// Rundeck's image writes `RUNDECK_DATABASE_PASSWORD` unescaped into a Java
/// properties file, which reads `\\` as `\` and `\u00fc` as `ü`: the
/// MariaDB user has the password Rundeck reads, and unlatch logs in with
/// that one, not with the variable's text.
fn rundeck_password_is_read_as_its_properties_file_reads_it(db: &TestDb) {
    let user = format!("rdk{}", std::process::id());
    let read = format!("{PASSWORD}@:/%#? \"'\\xü");
    let quoted = read.replace('\\', "\\\\").replace('\'', "\\'");
    db.exec(&[
        &format!("DROP USER IF EXISTS '{user}'@'%'"),
        &format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{quoted}'"),
        &format!("GRANT ALL ON `{}`.* TO '{user}'@'%'", db.name),
    ]);
    let p = parts(db);
    let vars = [
        (
            "RUNDECK_DATABASE_URL",
            format!("jdbc:mariadb://{}:{}/{}", p.host, p.port, p.name),
        ),
        ("RUNDECK_DATABASE_USERNAME", user.clone()),
        (
            "RUNDECK_DATABASE_PASSWORD",
            format!("{PASSWORD}@:/%#? \"'\\\\x\\u00fc"),
        ),
    ];
    let err = ends(&mut app(db.scratch.path(), &vars), 0);
    assert!(err.contains("app profile rundeck (RUNDECK_DATABASE_URL is set): database from RUNDECK_DATABASE_URL, RUNDECK_DATABASE_USERNAME, RUNDECK_DATABASE_PASSWORD"), "{err}");
    assert!(err.contains("nothing to heal"), "{err}");
    db.exec(&[&format!("DROP USER '{user}'@'%'")]);
}

/// NPM's SQLite file behind a folder unlatch may not search (another
/// uid's `/data`, mode 0700): not a first boot with nothing to heal, which
/// `Path::exists` took it for, but exit 77 naming the file and the uid,
/// and the held lock left as it was.
#[test]
fn npm_sqlite_file_behind_a_folder_unlatch_may_not_search_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let db =
        TestDb::new(Engine::Sqlite, "npm_sqlite_unreachable").expect("SQLite tests always run");
    npm_held_lock(&db);
    let data = db.scratch.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let file = data.join("database.sqlite");
    std::fs::rename(&db.url["sqlite://".len()..], &file).unwrap();
    let mode = |path: &Path, bits| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(bits)).unwrap()
    };
    mode(db.scratch.path(), 0o755);
    mode(&data, 0o000);
    let mut cmd = app(
        db.scratch.path(),
        &[("DB_SQLITE_FILE", file.display().to_string())],
    );
    cmd.env("UNLATCH_LOCK_TTL", "0s").args(["--", "true"]);
    // Root searches any folder: as root, the start runs as another user.
    let as_4242 = ["--reuid", "4242", "--regid", "4242", "--clear-groups", "--"];
    let out = match lacks_root() {
        None => run(&mut wrapped("setpriv", &as_4242, &cmd)),
        Some(_) => run(&mut cmd),
    };
    mode(&data, 0o755);
    let err = stderr(&out);
    assert_eq!(code(&out), 77, "{err}");
    assert!(
        err.contains(&format!("cannot reach the SQLite database {} (from Nginx Proxy Manager's DB_SQLITE_FILE) as uid ", file.display())),
        "{err}"
    );
    assert!(!err.contains("does not exist yet"), "{err}");
    let url = format!("sqlite://{}", file.display());
    assert_eq!(
        row(&url, "select is_locked from migrations_lock").unwrap(),
        ["1"]
    );
}

on_engines!(prisma_schema_with_a_space_and_capitals_is_the_one_looked_in: postgres => Postgres);

/// Prisma quotes `?schema=`, so `My Tenant` is a schema of its own; sqlx
/// puts the search_path in the startup `options`, which the server splits
/// at spaces unless escaped: the failed migration is found there (78), not
/// refused as a bad setting (64), and Prisma's other parameters are no
/// refusal either.
fn prisma_schema_with_a_space_and_capitals_is_the_one_looked_in(db: &TestDb) {
    prisma_failed_migration(db, "\"My Tenant\"");
    let mut url = url::Url::parse(&db.url).unwrap();
    url.query_pairs_mut()
        .append_pair("schema", "My Tenant")
        .append_pair("sslmode", "prefer")
        .append_pair("connection_limit", "5")
        .append_pair("pool_timeout", "10")
        .append_pair("socket_timeout", "10")
        .append_pair("statement_cache_size", "0");
    let vars = [("DIRECT_URL", url.to_string())];
    let err = ends(&mut app(db.scratch.path(), &vars), 78);
    assert!(
        err.contains("migration 20240201000000_add_posts failed"),
        "{err}"
    );
    ends(
        app(db.scratch.path(), &vars).env("UNLATCH_ON_DIRTY", "retry"),
        0,
    );
    assert_eq!(rolled_back(db, "\"My Tenant\""), ["b2"]);
}
