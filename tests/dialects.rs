//! The tools' URL dialects and variables against the real servers, through
//! the binary: each tool's stuck state found where that tool keeps it
//! (Prisma's `?schema=`, a JDBC URL's `currentSchema`, Liquibase's and
//! Flyway's variables, golang-migrate's `x-migrations-table`), and the
//! settings that used to send unlatch elsewhere (a secret file's newline,
//! Ghost's relative SQLite name, libpq's socket form).

#[macro_use]
mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn parts(db: &TestDb) -> (String, u16, String, String) {
    let url = url::Url::parse(&db.url).unwrap();
    (
        url.host_str().unwrap().to_owned(),
        url.port().unwrap(),
        url.username().to_owned(),
        url.password().unwrap_or_default().to_owned(),
    )
}

fn postgres(test: &str) -> Option<TestDb> {
    TestDb::new(Engine::Postgres, test)
}

fn mysql(test: &str) -> Option<TestDb> {
    TestDb::new(Engine::MySql, test)
}

fn with_query(url: &str, query: &str) -> String {
    format!("{url}?{query}")
}

/// `unlatch` with a UTC clock and nothing else.
fn base() -> Command {
    let mut cmd = unlatch();
    cmd.env("TZ", "UTC");
    cmd
}

/// prisma-engines 6.x's `_prisma_migrations`, in `schema`, with one applied
/// migration and one whose process died three minutes ago.
fn prisma_failed_migration(db: &TestDb, schema: &str) {
    let started = (jiff::Timestamp::now() - Duration::from_secs(180))
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string();
    db.exec(&[
        &format!("CREATE SCHEMA \"{schema}\""),
        &format!("CREATE TABLE \"{schema}\"._prisma_migrations (id VARCHAR(36) PRIMARY KEY NOT NULL, checksum VARCHAR(64) NOT NULL, finished_at TIMESTAMPTZ, migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMPTZ, started_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL DEFAULT 0)"),
        &format!("INSERT INTO \"{schema}\"._prisma_migrations (id, checksum, finished_at, migration_name, started_at, applied_steps_count) VALUES ('a1', 'c', '2024-01-01 00:00:00', '20240101000000_init', '2024-01-01 00:00:00', 1)"),
        &format!("INSERT INTO \"{schema}\"._prisma_migrations (id, checksum, migration_name, started_at) VALUES ('b2', 'c', '20240201000000_add_posts', '{started}')"),
    ]);
}

#[test]
fn prisma_failed_migration_in_a_schema_other_than_public_is_found_and_healed() {
    let Some(db) = postgres("prisma_schema") else {
        return;
    };
    prisma_failed_migration(&db, "tenant_a");
    let url = with_query(&db.url, "schema=tenant_a&connection_limit=5&pool_timeout=0");
    let out = run(base()
        .env("DATABASE_URL", &url)
        .env("UNLATCH_LOCK_TTL", "1m")
        .arg("status"));
    assert_eq!(code(&out), 2, "stale, in schema tenant_a");
    assert!(
        stdout(&out).contains("tool        prisma") && stdout(&out).contains("verdict     stale"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("connection_limit, pool_timeout"),
        "named in a warning: {}",
        stderr(&out)
    );
    let out = run(base()
        .env("DATABASE_URL", &url)
        .env("UNLATCH_LOCK_TTL", "1m")
        .args(["--", "true"]));
    assert_eq!(code(&out), 78, "a failed migration is refused by default");
    let out = run(base()
        .env("DATABASE_URL", &url)
        .env("UNLATCH_LOCK_TTL", "1m")
        .env("UNLATCH_ON_DIRTY", "retry")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert_eq!(
        db.row("SELECT count(*) FROM tenant_a._prisma_migrations WHERE id = 'b2' AND rolled_back_at IS NOT NULL")
            .unwrap(),
        ["1"],
        "marked rolled back in tenant_a"
    );
}

/// Liquibase 4.29's lock table on PostgreSQL, in `schema`, held since
/// `minutes` ago.
fn liquibase_lock(db: &TestDb, schema: &str, minutes: u32) {
    db.exec(&[
        &format!("CREATE SCHEMA IF NOT EXISTS {schema}"),
        &format!("CREATE TABLE IF NOT EXISTS {schema}.databasechangeloglock (id INTEGER NOT NULL, locked BOOLEAN NOT NULL, lockgranted TIMESTAMP WITHOUT TIME ZONE, lockedby VARCHAR(255), CONSTRAINT databasechangeloglock_pkey PRIMARY KEY (id))"),
        &format!("DELETE FROM {schema}.databasechangeloglock"),
        &format!("INSERT INTO {schema}.databasechangeloglock VALUES (1, TRUE, LOCALTIMESTAMP - INTERVAL '{minutes} minutes', 'pod-1 (10.0.0.7)')"),
    ]);
}

fn liquibase_locked(db: &TestDb, schema: &str) -> String {
    db.row(&format!(
        "SELECT CASE WHEN locked THEN 1 ELSE 0 END FROM {schema}.databasechangeloglock"
    ))
    .unwrap()[0]
        .clone()
}

#[test]
fn liquibase_lock_through_a_jdbc_url_and_liquibases_variables() {
    let Some(db) = postgres("liquibase_jdbc") else {
        return;
    };
    let (host, port, user, password) = parts(&db);
    liquibase_lock(&db, "lb", 30);
    let jdbc = format!(
        "jdbc:postgresql://{host}:{port}/{}?currentSchema=lb&user={user}&password={password}&loginTimeout=10",
        db.name
    );
    let out = run(base()
        .env("UNLATCH_DATABASE_URL", &jdbc)
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("stale; freed it"), "{}", stderr(&out));
    assert_eq!(liquibase_locked(&db, "lb"), "0");

    liquibase_lock(&db, "lb", 30);
    let out = run(base()
        .env(
            "LIQUIBASE_COMMAND_URL",
            format!("jdbc:postgresql://{host}:{port}/{}\n", db.name),
        )
        .env("LIQUIBASE_COMMAND_USERNAME", &user)
        .env("LIQUIBASE_COMMAND_PASSWORD", &password)
        .env("LIQUIBASE_COMMAND_DEFAULT_SCHEMA_NAME", "lb")
        .env("UNLATCH_LOG", "debug")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert!(
        stderr(&out).contains("database from LIQUIBASE_COMMAND_URL, tables in schema lb"),
        "{}",
        stderr(&out)
    );
    assert_eq!(liquibase_locked(&db, "lb"), "0");
}

#[test]
fn liquibase_lock_through_liquibases_variables_on_mariadb() {
    let Some(db) = mysql("liquibase_mariadb") else {
        return;
    };
    let (host, port, user, password) = parts(&db);
    db.exec(&[
        "CREATE TABLE app_lock (ID INT NOT NULL, `LOCKED` BIT(1) NOT NULL, LOCKGRANTED datetime NULL, LOCKEDBY VARCHAR(255) NULL, CONSTRAINT PK_APP_LOCK PRIMARY KEY (ID))",
        "INSERT INTO app_lock VALUES (1, 1, NOW() - INTERVAL 30 MINUTE, 'pod-1')",
    ]);
    let out = run(base()
        .env(
            "LIQUIBASE_COMMAND_URL",
            format!("jdbc:mariadb://{host}:{port}/{}?sslMode=disable", db.name),
        )
        .env("LIQUIBASE_COMMAND_USERNAME", &user)
        .env("LIQUIBASE_COMMAND_PASSWORD", &password)
        .env("LIQUIBASE_DATABASE_CHANGELOG_LOCK_TABLE_NAME", "app_lock")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("stale; freed it"), "{}", stderr(&out));
    assert_eq!(
        db.row("SELECT CAST(`LOCKED` AS UNSIGNED) FROM app_lock")
            .unwrap(),
        ["0"]
    );
}

#[test]
fn golang_migrate_dirty_version_in_its_x_migrations_table() {
    for engine in [Engine::Postgres, Engine::MySql] {
        let Some(db) = TestDb::new(engine, "golang_migrate_table") else {
            continue;
        };
        db.exec(&[
            "CREATE TABLE app_versions (version bigint not null primary key, dirty boolean not null)",
            &format!(
                "INSERT INTO app_versions VALUES (3, {})",
                if engine == Engine::Postgres { "true" } else { "1" }
            ),
        ]);
        let url = match engine {
            Engine::Postgres => with_query(
                &db.url,
                "sslmode=disable&x-migrations-table=app_versions&x-multi-statement=true",
            ),
            _ => {
                let (host, port, user, password) = parts(&db);
                format!(
                    "mysql://{user}:{password}@tcp({host}:{port})/{}?x-migrations-table=app_versions&multiStatements=true",
                    db.name
                )
            }
        };
        let out = run(base()
            .env("DATABASE_URL", &url)
            .env("UNLATCH_LOCK_TTL", "0s")
            .args(["--", "true"]));
        assert_eq!(code(&out), 78, "{engine:?}");
        assert!(
            stderr(&out).contains("version 3") && stderr(&out).contains("app_versions"),
            "{engine:?}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("x-multi-statement") || stderr(&out).contains("multiStatements")
        );
    }
}

#[test]
fn flyways_variables_find_its_table_in_a_non_default_schema() {
    let Some(db) = postgres("flyway_variables") else {
        return;
    };
    let (host, port, user, password) = parts(&db);
    db.exec(&[
        "CREATE SCHEMA billing",
        "CREATE TABLE billing.history (installed_rank INT NOT NULL, version VARCHAR(50), description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, checksum INTEGER, installed_by VARCHAR(100) NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT now(), execution_time INTEGER NOT NULL, success BOOLEAN NOT NULL, CONSTRAINT history_pk PRIMARY KEY (installed_rank))",
        "INSERT INTO billing.history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) VALUES (1, '1', 'init', 'SQL', 'V1__init.sql', 1, 'app', 10, true)",
        "INSERT INTO billing.history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) VALUES (2, '2', 'add invoices', 'SQL', 'V2__add_invoices.sql', 1, 'app', 10, false)",
    ]);
    let flyway = |cmd: &mut Command| {
        cmd.env(
            "FLYWAY_URL",
            format!("jdbc:postgresql://{host}:{port}/{}", db.name),
        )
        .env("FLYWAY_USER", &user)
        .env("FLYWAY_PASSWORD", &password)
        .env("FLYWAY_SCHEMAS", "billing,public")
        .env("FLYWAY_TABLE", "history")
        .env("UNLATCH_LOCK_TTL", "0s");
    };
    let mut cmd = base();
    flyway(&mut cmd);
    let out = run(cmd.args(["--", "true"]));
    assert_eq!(code(&out), 78);
    assert!(
        stderr(&out).contains("version 2 (add invoices) failed"),
        "{}",
        stderr(&out)
    );
    let mut cmd = base();
    flyway(&mut cmd);
    let out = run(cmd.env("UNLATCH_ON_DIRTY", "retry").args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert_eq!(
        db.row("SELECT count(*) FROM billing.history").unwrap(),
        ["1"],
        "the failed row removed, as flyway repair does"
    );
}

/// A stale knex-migrator lock (Ghost's), taken an hour ago.
fn stale_knex_migrator_lock(db: &TestDb) {
    db.create_knex_migrator_lock();
    let an_hour_ago = match db.engine {
        Engine::Sqlite => "datetime('now', '-1 hour')",
        Engine::MySql => "NOW() - INTERVAL 1 HOUR",
        Engine::Postgres => "now() - interval '1 hour'",
    };
    db.set_knex_migrator_lock(true, an_hour_ago);
}

#[test]
fn a_trailing_newline_is_trimmed_for_every_scheme() {
    for engine in ENGINES {
        let Some(db) = TestDb::new(engine, "trailing_newline") else {
            continue;
        };
        stale_knex_migrator_lock(&db);
        let out = run(base()
            .env("UNLATCH_DATABASE_URL", format!("{}\n", db.url))
            .args(["--", "true"]));
        assert_eq!(code(&out), 0, "{engine:?}");
        assert_eq!(
            db.knex_migrator_lock().unwrap()[0],
            "0",
            "{engine:?}: healed"
        );
    }
}

#[test]
fn postgres_socket_form_connects_through_the_servers_socket() {
    let dir = "/var/run/postgresql";
    let socket = std::path::Path::new(dir).join(".s.PGSQL.5432");
    let missing = (!socket.exists()).then(|| format!("PostgreSQL's socket {}", socket.display()));
    let Some(db) = postgres("socket_form") else {
        return;
    };
    if !available("postgres_socket_form", missing.as_deref()) {
        return;
    }
    stale_knex_migrator_lock(&db);
    let (_, _, user, _) = parts(&db);
    let url = format!("postgres:///{}?host={dir}&user={user}", db.name);
    let out = run(base().env("DATABASE_URL", &url).args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert_eq!(
        db.knex_migrator_lock().unwrap()[0],
        "0",
        "healed through the socket"
    );
}

#[test]
fn ghosts_password_file_is_read_as_the_hook_hands_it_to_ghost() {
    let Some(db) = mysql("ghost_password_file") else {
        return;
    };
    stale_knex_migrator_lock(&db);
    let (host, port, user, password) = parts(&db);
    let file = db.scratch.path().join("db-password");
    std::fs::write(&file, format!("{password}\n")).unwrap();
    let out = run(base()
        .env("NODE_ENV", "production")
        .env("database__connection__host", &host)
        .env("database__connection__port", port.to_string())
        .env("database__connection__user", &user)
        .env("database__connection__password_FILE", &file)
        .env("database__connection__database", &db.name)
        .current_dir(db.scratch.path())
        .args(["--", "true"]));
    assert_eq!(
        code(&out),
        0,
        "client mysql from Ghost's production defaults, the password from the file"
    );
    assert_eq!(db.knex_migrator_lock().unwrap()[0], "0");
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn ghosts_sqlite_filename_without_a_slash_is_in_the_working_directory() {
    let Some(db) = TestDb::new(Engine::Sqlite, "ghost_bare_filename") else {
        return;
    };
    stale_knex_migrator_lock(&db);
    // Ghost's root, which a name without a slash must not be read against.
    std::fs::create_dir_all(db.scratch.path().join("current")).unwrap();
    let out = run(base()
        .env("database__client", "sqlite3")
        .env("database__connection__filename", "app.db")
        .current_dir(db.scratch.path())
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert!(!db.scratch.path().join("current/app.db").exists());
    assert_eq!(
        db.knex_migrator_lock().unwrap()[0],
        "0",
        "healed in the working directory"
    );
}

#[test]
fn prismas_sqlite_file_url_is_relative_to_the_schemas_folder() {
    let scratch = Scratch::new("prisma_file_url");
    let prisma = scratch.path().join("prisma");
    std::fs::create_dir_all(&prisma).unwrap();
    std::fs::write(
        prisma.join("schema.prisma"),
        "datasource db {\n  provider = \"sqlite\"\n  url = env(\"DATABASE_URL\")\n}\n",
    )
    .unwrap();
    let file = prisma.join("dev.db");
    std::fs::File::create(&file).unwrap();
    let url = format!("sqlite://{}", file.display());
    sql(&url, &[
        "CREATE TABLE \"_prisma_migrations\" (\"id\" TEXT PRIMARY KEY NOT NULL, \"checksum\" TEXT NOT NULL, \"finished_at\" DATETIME, \"migration_name\" TEXT NOT NULL, \"logs\" TEXT, \"rolled_back_at\" DATETIME, \"started_at\" DATETIME NOT NULL DEFAULT current_timestamp, \"applied_steps_count\" INTEGER UNSIGNED NOT NULL DEFAULT 0)",
        "INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at) VALUES ('b2', 'c', '20240201000000_add_posts', 1700000000000)",
    ]);
    let out = run(base()
        .env("DATABASE_URL", "file:./dev.db\n")
        .current_dir(scratch.path())
        .args(["--", "true"]));
    assert_eq!(code(&out), 78, "found in prisma/dev.db");
    assert!(
        stderr(&out).contains("20240201000000_add_posts"),
        "{}",
        stderr(&out)
    );
    // Without the schema, the folder is unknown: refused, not guessed.
    std::fs::remove_file(prisma.join("schema.prisma")).unwrap();
    let out = run(base()
        .env("DATABASE_URL", "file:./dev.db")
        .current_dir(scratch.path())
        .args(["--", "true"]));
    assert_eq!(code(&out), 64);
    assert!(
        stderr(&out).contains("no Prisma schema was found"),
        "{}",
        stderr(&out)
    );
}

/// A first deploy: the schema the URL names does not exist yet (Prisma,
/// Flyway and golang-migrate create it), so PostgreSQL's current_schema()
/// is NULL. Nothing to heal, and the app must start; before, every start
/// ended in exit 70, "expected TEXT, got Null".
#[test]
fn a_schema_that_does_not_exist_yet_is_nothing_to_heal() {
    let Some(db) = postgres("fresh_schema") else {
        return;
    };
    for query in [
        "schema=not_yet",
        "schema=Not-Yet",
        "search_path=not_yet&x-migrations-table=versions",
    ] {
        let url = with_query(&db.url, query);
        let out = run(base().env("DATABASE_URL", &url).args(["--", "true"]));
        assert_eq!(code(&out), 0, "{query}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("nothing to heal"),
            "{query}: {}",
            stderr(&out)
        );
        let out = run(base().env("DATABASE_URL", &url).arg("status"));
        assert_eq!(code(&out), 0, "{query}: {}", stderr(&out));
    }
}
