//! Tools recognised by their tables' columns, not by their names, on every
//! engine: a knex lock table under knex-migrator's name (Nginx Proxy
//! Manager's `migrations_lock`) or under any tableName, two knex lock tables
//! of which one is held, a table named like a tool's that is no tool's, and
//! the locks no process can leave stale (goose's lease, Keycloak's rows),
//! which are reported and never healed.

#[macro_use]
mod common;

use std::process::Command;

use common::*;

on_every_engine!(
    npm_knex_table_under_knex_migrators_name_is_knex,
    knex_lock_table_under_any_table_name_is_found,
    of_two_knex_lock_tables_the_held_one_is_judged,
    unrecognised_table_named_like_a_tools_is_named_and_left_alone,
    goose_lease_is_reported_not_healed,
    keycloak_rows_are_reported_not_healed,
);

/// knex 3.1.0's lock table, lib/migrations/migrate/table-creator.js
/// (`increments('index')`, `integer('is_locked')`), named `table`.
fn knex_lock_table(db: &TestDb, table: &str, locked: bool) {
    let ddl = match db.engine {
        Engine::Sqlite => format!("create table `{table}` (`index` integer not null primary key autoincrement, `is_locked` integer)"),
        Engine::MySql => format!("create table `{table}` (`index` int unsigned not null auto_increment primary key, `is_locked` int)"),
        Engine::Postgres => format!("create table \"{table}\" (\"index\" serial primary key, \"is_locked\" integer)"),
    };
    let row = format!("insert into {table} (is_locked) values ({})", locked as u8);
    db.exec(&[&ddl, &row]);
}

fn is_locked(db: &TestDb, table: &str) -> String {
    db.row(&format!("select is_locked from {table}")).unwrap()[0].clone()
}

/// A start that sees the knex lock, waits past its TTL (knex dates
/// nothing: the age is unlatch's own sighting) and frees it.
fn heals_after_ttl(db: &TestDb, cmd: &mut Command) -> String {
    let out = run(cmd
        .env("UNLATCH_LOCK_TTL", "1s")
        .env("UNLATCH_LOCK_WAIT", "10s")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("stale; freed it"), "{}", stderr(&out));
    let _ = db;
    stderr(&out)
}

fn npm_knex_table_under_knex_migrators_name_is_knex(db: &TestDb) {
    // Nginx Proxy Manager's knexfile: `tableName: 'migrations'`, so knex's
    // lock table is `migrations_lock`, knex-migrator's name.
    knex_lock_table(db, "migrations_lock", true);
    // Before: with the table named, exit 64 ("found the lock tables of
    // knex-migrator and knex"); with nothing set, exit 70 ("no such column:
    // locked"), the next start below.
    let named = run(unlatch_on_rows(db)
        .env("UNLATCH_KNEX_TABLE", "migrations")
        .env("UNLATCH_LOCK_WAIT", "0s")
        .args(["--", "true"]));
    assert_eq!(code(&named), 75, "{}", stderr(&named));
    assert!(
        stderr(&named).contains("knex lock migrations_lock (is_locked)"),
        "{}",
        stderr(&named)
    );
    // By its columns alone, nothing named.
    let said = heals_after_ttl(db, &mut unlatch_on_rows(db));
    assert!(said.contains("knex lock migrations_lock"), "{said}");
    assert_eq!(is_locked(db, "migrations_lock"), "0");
    // Named as knex-migrator's, it is refused as bad input, nothing written.
    db.exec(&["update migrations_lock set is_locked = 1"]);
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_TOOL", "knex-migrator")
        .args(["--", "true"]));
    assert_eq!(code(&out), 64, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("migrations_lock") && err.contains("lock_key, locked, acquired_at"),
        "{err}"
    );
    assert!(err.contains("UNLATCH_TOOL"), "{err}");
    assert_eq!(is_locked(db, "migrations_lock"), "1");
}

fn knex_lock_table_under_any_table_name_is_found(db: &TestDb) {
    knex_lock_table(db, "app_schema_lock", true);
    let said = heals_after_ttl(db, &mut unlatch_on_rows(db));
    assert!(
        said.contains("knex lock app_schema_lock (is_locked)"),
        "{said}"
    );
    assert_eq!(is_locked(db, "app_schema_lock"), "0");
}

fn of_two_knex_lock_tables_the_held_one_is_judged(db: &TestDb) {
    // A real NPM SQLite database: knex's default table, never held, and
    // NPM's own.
    knex_lock_table(db, "knex_migrations_lock", false);
    knex_lock_table(db, "migrations_lock", true);
    let said = heals_after_ttl(db, &mut unlatch_on_rows(db));
    assert!(said.contains("knex lock migrations_lock"), "{said}");
    assert_eq!(is_locked(db, "migrations_lock"), "0");
    assert_eq!(is_locked(db, "knex_migrations_lock"), "0");
    // Both free: nothing to do, and no complaint about two tools.
    let out = run(unlatch_on_rows(db).args(["--", "true"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("is free"), "{}", stderr(&out));
}

fn unrecognised_table_named_like_a_tools_is_named_and_left_alone(db: &TestDb) {
    // An app's own table that happens to bear knex-migrator's name.
    db.exec(&[
        "create table migrations_lock (id integer primary key, locked_by varchar(50))",
        "insert into migrations_lock (id, locked_by) values (1, 'me')",
    ]);
    let out = run(unlatch_on_rows(db).args(["--", "true"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("migrations_lock")
            && err.contains("not knex-migrator's")
            && err.contains("lock_key, locked, acquired_at, released_at"),
        "{err}"
    );
    assert!(err.contains("starting true"), "{err}");
    assert_eq!(
        db.row("select id, locked_by from migrations_lock").unwrap(),
        ["1", "me"]
    );
    let status = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &db.url)
        .args(["status", "--json"]));
    assert_eq!(code(&status), 0, "{}", stderr(&status));
    let json: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    let found = &json["tools"][0];
    assert_eq!(found["verdict"], "unknown", "{json}");
    assert_eq!(found["tool"], "knex-migrator", "{json}");
    // No start writes anything here: not even a sighting.
    let tables = match db.engine {
        Engine::Sqlite => "select count(*) from sqlite_master where name = 'unlatch_state'",
        Engine::MySql => "select count(*) from information_schema.tables where table_name = 'unlatch_state' and table_schema = database()",
        Engine::Postgres => "select count(*) from information_schema.tables where table_name = 'unlatch_state' and table_schema = current_schema()",
    };
    assert_eq!(db.row(tables).unwrap(), ["0"]);
}

/// goose v3.26.0's lease table, lock/internal/store/postgres.go
/// (CreateLockTable); PostgreSQL only in goose, the same columns elsewhere.
fn goose_lock_table(db: &TestDb) {
    let ddl = match db.engine {
        Engine::Postgres => "CREATE TABLE goose_lock (lock_id bigint NOT NULL PRIMARY KEY, locked boolean NOT NULL DEFAULT false, locked_at timestamptz NULL, locked_by text NULL, lease_expires_at timestamptz NULL, updated_at timestamptz NULL)",
        Engine::MySql => "CREATE TABLE goose_lock (lock_id bigint NOT NULL PRIMARY KEY, locked boolean NOT NULL DEFAULT false, locked_at datetime NULL, locked_by text NULL, lease_expires_at datetime NULL, updated_at datetime NULL)",
        Engine::Sqlite => "CREATE TABLE goose_lock (lock_id bigint NOT NULL PRIMARY KEY, locked boolean NOT NULL DEFAULT false, locked_at timestamp NULL, locked_by text NULL, lease_expires_at timestamp NULL, updated_at timestamp NULL)",
    };
    let taken = match db.engine {
        Engine::Sqlite => "datetime('now', '-2 hours')",
        Engine::MySql => "NOW() - INTERVAL 2 HOUR",
        Engine::Postgres => "now() - interval '2 hours'",
    };
    let insert = format!(
        "INSERT INTO goose_lock (lock_id, locked, locked_at, locked_by, lease_expires_at, updated_at) \
         VALUES (4097083626, {}, {taken}, 'host-1', {taken}, {taken})",
        db.boolean(true)
    );
    db.exec(&[ddl, &insert]);
}

fn goose_lease_is_reported_not_healed(db: &TestDb) {
    goose_lock_table(db);
    let before = db
        .row("select CASE WHEN locked THEN 1 ELSE 0 END, lock_id from goose_lock")
        .unwrap();
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_TTL", "1s")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("goose") && err.contains("report-only"),
        "{err}"
    );
    assert!(!err.contains("freed"), "{err}");
    assert_eq!(
        db.row("select CASE WHEN locked THEN 1 ELSE 0 END, lock_id from goose_lock")
            .unwrap(),
        before
    );
    status_says_report_only(db, "goose");
}

fn keycloak_rows_are_reported_not_healed(db: &TestDb) {
    // Liquibase's lock table as Keycloak keeps it: its own namespaces'
    // rows (DBLockProvider.Namespace: 1000 KEYCLOAK_BOOT, 1001) beside ID 1.
    let ddl = match db.engine {
        Engine::Sqlite => "CREATE TABLE DATABASECHANGELOGLOCK (ID INTEGER NOT NULL, LOCKED BOOLEAN NOT NULL, LOCKGRANTED TEXT, LOCKEDBY VARCHAR(255), CONSTRAINT PK_DATABASECHANGELOGLOCK PRIMARY KEY (ID))",
        Engine::MySql => "CREATE TABLE DATABASECHANGELOGLOCK (ID INT NOT NULL, `LOCKED` BIT(1) NOT NULL, LOCKGRANTED datetime NULL, LOCKEDBY VARCHAR(255) NULL, CONSTRAINT PK_DATABASECHANGELOGLOCK PRIMARY KEY (ID))",
        Engine::Postgres => "CREATE TABLE databasechangeloglock (id INTEGER NOT NULL, locked BOOLEAN NOT NULL, lockgranted TIMESTAMP WITHOUT TIME ZONE, lockedby VARCHAR(255), CONSTRAINT databasechangeloglock_pkey PRIMARY KEY (id))",
    };
    let granted = match db.engine {
        Engine::Sqlite => "datetime('now', '-2 hours')",
        Engine::MySql => "NOW() - INTERVAL 2 HOUR",
        Engine::Postgres => "LOCALTIMESTAMP - INTERVAL '2 hours'",
    };
    let (t, f) = (db.boolean(true), db.boolean(false));
    db.exec(&[
        ddl,
        &format!("INSERT INTO DATABASECHANGELOGLOCK (ID, LOCKED, LOCKGRANTED, LOCKEDBY) VALUES (1, {t}, {granted}, 'kc-0 (10.0.0.9)')"),
        &format!("INSERT INTO DATABASECHANGELOGLOCK (ID, LOCKED) VALUES (1000, {f})"),
        &format!("INSERT INTO DATABASECHANGELOGLOCK (ID, LOCKED) VALUES (1001, {f})"),
    ]);
    let out = run(unlatch_on_rows(db)
        .env("UNLATCH_LOCK_TTL", "1s")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("Keycloak") && err.contains("report-only"),
        "{err}"
    );
    assert!(!err.contains("freed"), "{err}");
    assert_eq!(
        db.row("select LOCKEDBY from DATABASECHANGELOGLOCK where ID = 1")
            .unwrap(),
        ["kc-0 (10.0.0.9)"]
    );
    status_says_report_only(db, "liquibase");
}

/// `unlatch status` reports `tool`'s lock as report-only, exit 0.
fn status_says_report_only(db: &TestDb, tool: &str) {
    let status = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &db.url)
        .env("UNLATCH_LOCK_TTL", "1s")
        .args(["status", "--json"]));
    assert_eq!(code(&status), 0, "{}", stderr(&status));
    let json: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(json["tools"][0]["tool"], tool, "{json}");
    assert_eq!(json["tools"][0]["verdict"], "report-only", "{json}");
}
