//! Every tool adapter on SQLite, MariaDB and PostgreSQL, on tables made with
//! each tool's own DDL (the versions are named beside each), through the
//! binary: stuck state found, refused or healed as configured. Every tool in
//! the registry, a new one too, is looked for on each engine, by name and
//! by `auto` in the registry's order.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;

on_every_engine!(
    every_registered_tool_is_looked_for_by_name_and_by_auto,
    knex_lock_ages_across_restarts_then_heals,
    liquibase_stale_lock_is_released_and_live_one_kept,
    golang_migrate_dirty_is_refused_then_forced_to_the_previous_version,
    prisma_failed_migration_is_refused_then_rolled_back,
    flyway_failed_migration_is_refused_then_repaired,
    sqlx_failed_migration_is_refused_then_removed,
    two_tools_found_ask_for_unlatch_tool,
);

fn first(db: &TestDb, query: &str) -> Option<String> {
    db.row(query).map(|r| r[0].clone())
}

fn every_registered_tool_is_looked_for_by_name_and_by_auto(db: &TestDb) {
    use unlatch::tools::{ToolSettings, REGISTRY};
    let looked_for: Vec<String> = REGISTRY
        .iter()
        .map(|entry| {
            let tool = (entry.build)(&ToolSettings::default());
            format!("{} {}", entry.name, tool.place())
        })
        .collect();
    let out = run(unlatch_on_rows(db).args(["--", "true"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let all = format!("(looked for {}): nothing to heal", looked_for.join(", "));
    assert!(stderr(&out).contains(&all), "{}", stderr(&out));
    for (entry, one) in REGISTRY.iter().zip(&looked_for) {
        let out = run(unlatch_on_rows(db)
            .env("UNLATCH_TOOL", entry.name)
            .args(["--", "true"]));
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let only = format!("(looked for {one}): nothing to heal");
        assert!(stderr(&out).contains(&only), "{}", stderr(&out));
    }
}

fn knex_lock_ages_across_restarts_then_heals(db: &TestDb) {
    // knex 3.1.0, lib/migrations/migrate/table-creator.js (`increments('index')`, `integer('is_locked')`).
    let ddl = match db.engine {
        Engine::Sqlite => "create table `knex_migrations_lock` (`index` integer not null primary key autoincrement, `is_locked` integer)",
        Engine::MySql => "create table `knex_migrations_lock` (`index` int unsigned not null auto_increment primary key, `is_locked` int)",
        Engine::Postgres => "create table \"knex_migrations_lock\" (\"index\" serial primary key, \"is_locked\" integer)",
    };
    db.exec(&[
        ddl,
        "insert into knex_migrations_lock (is_locked) values (1)",
    ]);
    // knex records no time: the first start only sees it, and gives up.
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_TTL", "2s")
        .env("UNLATCH_LOCK_WAIT", "0s")
        .args(["--", "true"]));
    assert_eq!(code(&out), 75);
    assert!(
        stderr(&out).contains("knex lock knex_migrations_lock (is_locked)"),
        "{}",
        stderr(&out)
    );
    std::thread::sleep(Duration::from_millis(2200));
    // The next start, a restart loop later: the sighting was kept, so the
    // lock is now older than the TTL, and freed.
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_TTL", "2s")
        .env("UNLATCH_LOCK_WAIT", "0s")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("stale; freed it"), "{}", stderr(&out));
    assert_eq!(
        first(db, "select is_locked from knex_migrations_lock").unwrap(),
        "0"
    );
    assert_eq!(
        db.row("select count(*) from unlatch_state where name = 'seen:knex'")
            .unwrap(),
        ["0"],
        "forgotten once freed"
    );
}

fn liquibase_stale_lock_is_released_and_live_one_kept(db: &TestDb) {
    // Liquibase 4.29, CreateDatabaseChangeLogLockTableGenerator (BOOLEAN is BIT(1) on MySQL).
    let ddl = match db.engine {
        Engine::Sqlite => "CREATE TABLE DATABASECHANGELOGLOCK (ID INTEGER NOT NULL, LOCKED BOOLEAN NOT NULL, LOCKGRANTED TEXT, LOCKEDBY VARCHAR(255), CONSTRAINT PK_DATABASECHANGELOGLOCK PRIMARY KEY (ID))",
        Engine::MySql => "CREATE TABLE DATABASECHANGELOGLOCK (ID INT NOT NULL, `LOCKED` BIT(1) NOT NULL, LOCKGRANTED datetime NULL, LOCKEDBY VARCHAR(255) NULL, CONSTRAINT PK_DATABASECHANGELOGLOCK PRIMARY KEY (ID))",
        Engine::Postgres => "CREATE TABLE databasechangeloglock (id INTEGER NOT NULL, locked BOOLEAN NOT NULL, lockgranted TIMESTAMP WITHOUT TIME ZONE, lockedby VARCHAR(255), CONSTRAINT databasechangeloglock_pkey PRIMARY KEY (id))",
    };
    // What Liquibase writes when it takes the lock: the database's now().
    let now_minus = |minutes: u32| match db.engine {
        Engine::Sqlite => format!("datetime('now', '-{minutes} minutes')"),
        Engine::MySql => format!("NOW() - INTERVAL {minutes} MINUTE"),
        Engine::Postgres => format!("LOCALTIMESTAMP - INTERVAL '{minutes} minutes'"),
    };
    let take = |minutes| {
        format!(
            "UPDATE DATABASECHANGELOGLOCK SET LOCKED = {}, LOCKGRANTED = {}, LOCKEDBY = 'pod-7f9c (10.0.0.12)' WHERE ID = 1",
            db.boolean(true),
            now_minus(minutes)
        )
    };
    db.exec(&[
        ddl,
        &format!(
            "INSERT INTO DATABASECHANGELOGLOCK (ID, LOCKED) VALUES (1, {})",
            db.boolean(false)
        ),
    ]);
    db.exec(&[&take(2)]);
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_WAIT", "1s")
        .args(["--", "true"]));
    assert_eq!(code(&out), 75, "two minutes old: live");
    assert!(
        stderr(&out).contains("by pod-7f9c (10.0.0.12), held for 2m"),
        "{}",
        stderr(&out)
    );
    db.exec(&[&take(60)]);
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_ON_STALE", "fail")
        .args(["--", "true"]));
    assert_eq!(code(&out), 76);
    assert!(
        stderr(&out).contains("liquibase releaseLocks"),
        "{}",
        stderr(&out)
    );
    let out = run(unlatch_on_rows(db).args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("held for 1h"), "{}", stderr(&out));
    let lock = db.row("SELECT CASE WHEN LOCKED THEN 1 ELSE 0 END, LOCKEDBY FROM DATABASECHANGELOGLOCK WHERE ID = 1").unwrap();
    assert_eq!(lock, ["0", "NULL"]);
}

fn golang_migrate_dirty_is_refused_then_forced_to_the_previous_version(db: &TestDb) {
    // golang-migrate v4.18: database/{postgres,mysql,sqlite3} ensureVersionTable.
    let ddl: &[&str] = match db.engine {
        Engine::Sqlite => &[
            "CREATE TABLE IF NOT EXISTS schema_migrations (version uint64, dirty bool)",
            "CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version)",
        ],
        _ => &["CREATE TABLE IF NOT EXISTS schema_migrations (version bigint not null primary key, dirty boolean not null)"],
    };
    db.exec(ddl);
    db.exec(&[&format!(
        "INSERT INTO schema_migrations (version, dirty) VALUES (20240103, {})",
        db.boolean(true)
    )]);
    let source = db.scratch.path().join("migrations");
    std::fs::create_dir_all(&source).unwrap();
    for file in [
        "20240101_init.up.sql",
        "20240101_init.down.sql",
        "20240102_users.up.sql",
        "20240103_posts.up.sql",
    ] {
        std::fs::write(source.join(file), "SELECT 1;").unwrap();
    }
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_TTL", "0s")
        .args(["--", "true"]));
    assert_eq!(code(&out), 78, "refused by default");
    let err = stderr(&out);
    assert!(
        err.contains("migration version 20240103 failed or did not finish"),
        "{err}"
    );
    assert!(err.contains("force <the version before 20240103>"), "{err}");
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_TTL", "0s")
        .env("UNLATCH_ON_DIRTY", "retry")
        .args(["--", "true"]));
    assert_eq!(code(&out), 64, "retry needs the migrations folder");
    assert!(
        stderr(&out).contains("UNLATCH_GOLANG_MIGRATE_PATH"),
        "{}",
        stderr(&out)
    );
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_TTL", "0s")
        .env("UNLATCH_ON_DIRTY", "retry")
        .env("UNLATCH_GOLANG_MIGRATE_PATH", &source)
        .env("UNLATCH_MIGRATE_CMD", "echo migrating")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("force 20240102"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "migrating\n");
    let text = if db.engine == Engine::MySql {
        "CHAR"
    } else {
        "TEXT"
    };
    let rows = db.row(&format!("SELECT CAST(version AS {text}), CASE WHEN dirty THEN 1 ELSE 0 END FROM schema_migrations")).unwrap();
    assert_eq!(
        rows,
        ["20240102", "0"],
        "as `migrate force 20240102` leaves it"
    );
}

fn prisma_failed_migration_is_refused_then_rolled_back(db: &TestDb) {
    // prisma-engines 6.x, sql-schema-connector flavours: the _prisma_migrations DDL.
    let ddl = match db.engine {
        Engine::Sqlite => "CREATE TABLE \"_prisma_migrations\" (\"id\" TEXT PRIMARY KEY NOT NULL, \"checksum\" TEXT NOT NULL, \"finished_at\" DATETIME, \"migration_name\" TEXT NOT NULL, \"logs\" TEXT, \"rolled_back_at\" DATETIME, \"started_at\" DATETIME NOT NULL DEFAULT current_timestamp, \"applied_steps_count\" INTEGER UNSIGNED NOT NULL DEFAULT 0)",
        Engine::MySql => "CREATE TABLE _prisma_migrations (id VARCHAR(36) PRIMARY KEY NOT NULL, checksum VARCHAR(64) NOT NULL, finished_at DATETIME(3), migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at DATETIME(3), started_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), applied_steps_count INTEGER UNSIGNED NOT NULL DEFAULT 0)",
        Engine::Postgres => "CREATE TABLE _prisma_migrations (id VARCHAR(36) PRIMARY KEY NOT NULL, checksum VARCHAR(64) NOT NULL, finished_at TIMESTAMPTZ, migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMPTZ, started_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL DEFAULT 0)",
    };
    // One applied migration, and one whose process died after the INSERT (started 3 minutes ago, in UTC).
    let started = (jiff::Timestamp::now() - Duration::from_secs(180))
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string();
    db.exec(&[
        ddl,
        "INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, started_at, applied_steps_count) VALUES ('a1', 'c', '2024-01-01 00:00:00', '20240101000000_init', '2024-01-01 00:00:00', 1)",
        &format!("INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at) VALUES ('b2', 'c', '20240201000000_add_posts', '{started}')"),
    ]);
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_WAIT", "1s")
        .args(["--", "true"]));
    assert_eq!(
        code(&out),
        75,
        "started 3 minutes ago, TTL 15m: it may still be running"
    );
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_TTL", "1m")
        .args(["--", "true"]));
    assert_eq!(code(&out), 78);
    let err = stderr(&out);
    assert!(
        err.contains("migration 20240201000000_add_posts failed") && err.contains("3m"),
        "{err}"
    );
    assert!(
        err.contains("npx prisma migrate resolve --rolled-back 20240201000000_add_posts"),
        "{err}"
    );
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_TTL", "1m")
        .env("UNLATCH_ON_DIRTY", "retry")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert_eq!(
        db.row("SELECT count(*) FROM _prisma_migrations WHERE rolled_back_at IS NOT NULL")
            .unwrap(),
        ["1"],
        "marked rolled back, as `migrate resolve --rolled-back` does"
    );
    assert_eq!(
        db.row(
            "SELECT count(*) FROM _prisma_migrations WHERE id = 'a1' AND rolled_back_at IS NULL"
        )
        .unwrap(),
        ["1"]
    );
}

fn flyway_failed_migration_is_refused_then_repaired(db: &TestDb) {
    // Flyway 10.x, the flyway_schema_history DDL per database.
    let ddl = match db.engine {
        Engine::Sqlite => "CREATE TABLE \"flyway_schema_history\" (\"installed_rank\" INT NOT NULL PRIMARY KEY, \"version\" VARCHAR(50), \"description\" VARCHAR(200) NOT NULL, \"type\" VARCHAR(20) NOT NULL, \"script\" VARCHAR(1000) NOT NULL, \"checksum\" INT, \"installed_by\" VARCHAR(100) NOT NULL, \"installed_on\" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')), \"execution_time\" INT NOT NULL, \"success\" BOOLEAN NOT NULL)",
        Engine::MySql => "CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL, version VARCHAR(50), description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, checksum INT, installed_by VARCHAR(100) NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, execution_time INT NOT NULL, success BOOL NOT NULL, CONSTRAINT flyway_schema_history_pk PRIMARY KEY (installed_rank))",
        Engine::Postgres => "CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL, version VARCHAR(50), description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, checksum INTEGER, installed_by VARCHAR(100) NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT now(), execution_time INTEGER NOT NULL, success BOOLEAN NOT NULL, CONSTRAINT flyway_schema_history_pk PRIMARY KEY (installed_rank))",
    };
    let row = |rank: u32, version: &str, success: bool| {
        format!(
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) \
             VALUES ({rank}, '{version}', 'create posts', 'SQL', 'V{version}__create_posts.sql', 1, 'app', 10, {})",
            db.boolean(success)
        )
    };
    db.exec(&[ddl, &row(1, "1", true), &row(2, "2", false)]);
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_TTL", "0s")
        .args(["--", "true"]));
    assert_eq!(code(&out), 78);
    let err = stderr(&out);
    assert!(
        err.contains("migration version 2 (create posts) failed") && err.contains("flyway repair"),
        "{err}"
    );
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_TTL", "0s")
        .env("UNLATCH_ON_DIRTY", "retry")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert_eq!(
        db.row("SELECT count(*) FROM flyway_schema_history")
            .unwrap(),
        ["1"],
        "the failed row removed, as repair does"
    );
}

fn sqlx_failed_migration_is_refused_then_removed(db: &TestDb) {
    // sqlx 0.8.6, sqlx-{postgres,mysql,sqlite}/src/migrate.rs ensure_migrations_table.
    let ddl = match db.engine {
        Engine::Postgres => "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)",
        Engine::MySql => "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
        Engine::Sqlite => "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
    };
    let checksum = if db.engine == Engine::Postgres {
        "'\\x00'"
    } else {
        "X'00'"
    };
    db.exec(&[
        ddl,
        &format!("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (1, 'init', {}, {checksum}, 5)", db.boolean(true)),
        &format!("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (2, 'add posts', {}, {checksum}, -1)", db.boolean(false)),
    ]);
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_TTL", "0s")
        .args(["--", "true"]));
    assert_eq!(code(&out), 78);
    assert!(
        stderr(&out).contains("DELETE FROM _sqlx_migrations WHERE version = 2"),
        "{}",
        stderr(&out)
    );
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_TTL", "0s")
        .env("UNLATCH_ON_DIRTY", "retry")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert_eq!(
        db.row("SELECT count(*) FROM _sqlx_migrations").unwrap(),
        ["1"]
    );
}

fn two_tools_found_ask_for_unlatch_tool(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(false, "NULL");
    let index = if db.engine == Engine::MySql {
        "`index` int primary key"
    } else {
        "\"index\" integer primary key"
    };
    db.exec(&[&format!(
        "create table knex_migrations_lock ({index}, is_locked integer)"
    )]);
    let out = run(unlatch_on_rows(db).args(["--", "true"]));
    assert_eq!(code(&out), 64);
    assert!(
        stderr(&out).contains("found the lock tables of knex-migrator and knex; set UNLATCH_TOOL"),
        "{}",
        stderr(&out)
    );
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_TOOL", "knex-migrator")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    let out = run(unlatch_on_rows(db).args(["status", "--json"]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tools: Vec<&str> = report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tool"].as_str().unwrap())
        .collect();
    assert_eq!(
        tools,
        ["knex-migrator", "knex"],
        "status shows every tool it finds"
    );
}
