//! The trail, on SQLite, MariaDB and PostgreSQL, through the binary: each
//! change unlatch makes to a tool's table leaves one record in
//! `unlatch_history` (and one JSON log line) whose before-image is the row
//! as it was, and whose `undo` puts the table back exactly; and a history
//! table unlatch cannot write never fails a start. (That a lost
//! compare-and-swap records nothing is checked in knex_migrator_lock.rs.)

#[macro_use]
mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

on_every_engine!(
    a_stale_lock_healed_leaves_one_record_that_puts_it_back,
    a_golang_migrate_force_is_recorded_and_undone,
    a_flyway_repair_is_recorded_and_undone,
    a_sqlx_removal_is_recorded_and_undone,
    a_prisma_roll_back_is_recorded_and_undone,
    no_table_means_no_changes_recorded,
    a_history_table_of_another_shape_never_fails_a_start,
);

fn base(db: &TestDb) -> Command {
    let mut cmd = unlatch();
    cmd.env("UNLATCH_DATABASE_URL", &db.url).env("TZ", "UTC");
    cmd
}

/// Every row of `table`, each rendered whole and exactly (SQLite's and
/// MySQL's `QUOTE`, PostgreSQL's row-to-text), sorted: two dumps are equal
/// only if the tables hold the same rows, types included.
fn dump(db: &TestDb, table: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    block_on(async {
        let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
        let columns = match db.engine {
            Engine::Sqlite => format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
            Engine::MySql => format!(
                "SELECT CAST(column_name AS CHAR(255)) FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = '{table}' ORDER BY ordinal_position"
            ),
            Engine::Postgres => String::new(),
        };
        let sql = match db.engine {
            Engine::Postgres => format!("SELECT CAST(t AS TEXT) FROM {table} AS t"),
            _ => {
                let names: Vec<String> = sqlx::query(&columns)
                    .fetch_all(&mut conn)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<String, _>(0))
                    .collect();
                assert!(!names.is_empty(), "no table {table}");
                let quoted: Vec<String> = names
                    .iter()
                    .map(|n| match db.engine {
                        Engine::MySql => format!("QUOTE(`{n}`)"),
                        _ => format!("quote(\"{n}\")"),
                    })
                    .collect();
                let joined = match db.engine {
                    Engine::MySql => format!("CONCAT_WS('|', {})", quoted.join(", ")),
                    _ => quoted.join(" || '|' || "),
                };
                format!("SELECT {joined} FROM {table}")
            }
        };
        let mut rows: Vec<String> = sqlx::query(&sql)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| {
                r.try_get::<String, _>(0)
                    .or_else(|_| {
                        r.try_get::<Vec<u8>, _>(0)
                            .map(|b| String::from_utf8_lossy(&b).into())
                    })
                    .unwrap()
            })
            .collect();
        conn.close().await.unwrap();
        rows.sort();
        rows
    })
}

/// Runs `statements` (several, `;`-separated, as a person pastes them) in
/// one go.
fn paste(db: &TestDb, statements: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    block_on(async {
        let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql(statements)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{statements}: {e}"));
        conn.close().await.unwrap();
    });
}

/// `unlatch history --json`, parsed: the records, oldest first.
fn history(db: &TestDb) -> Vec<Value> {
    let out = run(base(db).args(["history", "--json"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let parsed: Value = serde_json::from_str(&stdout(&out)).expect("one JSON array");
    parsed.as_array().expect("an array").clone()
}

/// The one record there must be, for `tool`, checked against the log line
/// `out` showed and the text form.
fn the_record(db: &TestDb, tool: &str, out: &std::process::Output) -> Value {
    let records = history(db);
    assert_eq!(records.len(), 1, "{records:?}");
    let record = records[0].clone();
    assert_eq!(record["tool"], tool);
    for field in ["recorded_at", "place", "reason", "statement", "undo"] {
        assert!(
            record[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field}: {record}"
        );
    }
    // The same record, as the start logged it: one JSON object.
    let logged = stderr(out)
        .lines()
        .find_map(|l| l.strip_prefix("unlatch: trail "))
        .map(|l| serde_json::from_str::<Value>(l).expect("the trail line is JSON"))
        .expect("a trail line");
    assert_eq!(logged, record);
    let text = run(base(db).arg("history"));
    let text = stdout(&text);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(record["recorded_at"].as_str().unwrap())
            && lines[0].contains(" | before: "),
        "{}",
        lines[0]
    );
    record
}

/// A before-image row's values, in column order, as text (NULL: `None`,
/// binary: its hex).
fn values(row: &Value) -> Vec<(String, Option<String>)> {
    row.as_object()
        .unwrap()
        .iter()
        .map(|(column, value)| {
            let text = match value {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(
                    other["hex"]
                        .as_str()
                        .expect("text, null or {hex}")
                        .to_owned(),
                ),
            };
            (column.to_ascii_lowercase(), text)
        })
        .collect()
}

fn value<'a>(row: &'a [(String, Option<String>)], column: &str) -> Option<&'a str> {
    row.iter()
        .find(|(c, _)| c == column)
        .unwrap_or_else(|| panic!("no column {column} in {row:?}"))
        .1
        .as_deref()
}

/// After a heal changed `table`: the record's `undo` pasted puts it back as
/// it was (`dumped` before the heal).
fn undo_restores(db: &TestDb, record: &Value, table: &str, dumped: &[String]) {
    assert_ne!(dump(db, table), dumped, "the heal changed nothing");
    paste(db, record["undo"].as_str().unwrap());
    assert_eq!(dump(db, table), dumped, "undo: {}", record["undo"]);
}

fn a_stale_lock_healed_leaves_one_record_that_puts_it_back(db: &TestDb) {
    db.create_knex_migrator_lock();
    db.set_knex_migrator_lock(true, "'2020-01-01 00:00:00'");
    let [locked, acquired_at, released_at] =
        <[String; 3]>::try_from(db.knex_migrator_lock().unwrap()).unwrap();
    let dumped = dump(db, "migrations_lock");
    let out = run(base(db).env("UNLATCH_LOCK_TTL", "0s").args(["--", "true"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let record = the_record(db, "knex-migrator", &out);
    assert!(
        record["reason"].as_str().unwrap().contains("held for"),
        "the age: {record}"
    );
    assert!(record["statement"]
        .as_str()
        .unwrap()
        .starts_with("UPDATE migrations_lock SET locked = FALSE"));
    let before = record["before"].as_array().unwrap();
    assert_eq!(before.len(), 1);
    let row = values(&before[0]);
    // Every column, in the table's order, which the JSON keeps (read here
    // with unlatch's own type: serde_json's map would sort the keys).
    let json = stdout(&run(base(db).args(["history", "--json"])));
    let records: Vec<unlatch::trail::Record> = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> = records[0].before[0]
        .0
        .iter()
        .map(|(c, _)| c.as_str())
        .collect();
    assert_eq!(
        names,
        ["lock_key", "locked", "acquired_at", "released_at"],
        "{json}"
    );
    assert_eq!(value(&row, "lock_key"), Some("km01"));
    assert!(
        matches!(value(&row, "locked"), Some("1" | "true")),
        "{row:?}"
    );
    // The before-image is the row as it was read before unlatch ran
    // (`locked` read there as 1/0, NULL as "NULL").
    let as_read = |v: Option<&str>| match v {
        None => "NULL".to_owned(),
        Some("true") => "1".to_owned(),
        Some("false") => "0".to_owned(),
        Some(v) => v.to_owned(),
    };
    assert_eq!(as_read(value(&row, "locked")), locked);
    assert_eq!(value(&row, "acquired_at"), Some(acquired_at.as_str()));
    assert_eq!(as_read(value(&row, "released_at")), released_at);
    assert_eq!(value(&row, "released_at"), None);
    undo_restores(db, &record, "migrations_lock", &dumped);
    // A missing row put back is recorded too: no row before, and `undo`
    // takes it out again.
    db.exec(&["delete from migrations_lock"]);
    let out = run(base(db).args(["--", "true"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let records = history(db);
    assert_eq!(records.len(), 2, "oldest first: {records:?}");
    assert_eq!(records[1]["before"], serde_json::json!([]));
    let at = |r: &Value| {
        r["recorded_at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    assert!(at(&records[0]) < at(&records[1]));
    paste(db, records[1]["undo"].as_str().unwrap());
    assert_eq!(db.knex_migrator_lock(), None);
}

fn migrations_folder(db: &TestDb) -> std::path::PathBuf {
    let source = db.scratch.path().join("migrations");
    std::fs::create_dir_all(&source).unwrap();
    for file in [
        "20240101_init.up.sql",
        "20240102_users.up.sql",
        "20240103_posts.up.sql",
    ] {
        std::fs::write(source.join(file), "SELECT 1;").unwrap();
    }
    source
}

/// Heals `table`'s dirty marker with `UNLATCH_ON_DIRTY=retry`, and returns
/// the one record it leaves, after checking that its `undo` puts the table
/// back exactly; `cmd` adds the tool's own settings.
fn retried(db: &TestDb, tool: &str, table: &str, cmd: impl FnOnce(&mut Command)) -> Value {
    let dumped = dump(db, table);
    let mut start = base(db);
    start
        .env("UNLATCH_LOCK_TTL", "0s")
        .env("UNLATCH_ON_DIRTY", "retry");
    cmd(&mut start);
    let out = run(start.args(["--", "true"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let record = the_record(db, tool, &out);
    undo_restores(db, &record, table, &dumped);
    record
}

fn a_golang_migrate_force_is_recorded_and_undone(db: &TestDb) {
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
    let source = migrations_folder(db);
    let record = retried(db, "golang-migrate", "schema_migrations", |cmd| {
        cmd.env("UNLATCH_GOLANG_MIGRATE_PATH", &source);
    });
    let before = record["before"].as_array().unwrap();
    let row = values(&before[0]);
    assert_eq!(value(&row, "version"), Some("20240103"));
    assert!(
        matches!(value(&row, "dirty"), Some("1" | "true")),
        "{row:?}"
    );
    let statement = record["statement"].as_str().unwrap();
    assert!(
        statement.contains("DELETE FROM schema_migrations") && statement.contains("'20240102'"),
        "{statement}"
    );
}

fn a_flyway_repair_is_recorded_and_undone(db: &TestDb) {
    // Flyway 10.x, the flyway_schema_history DDL per database.
    let ddl = match db.engine {
        Engine::Sqlite => "CREATE TABLE \"flyway_schema_history\" (\"installed_rank\" INT NOT NULL PRIMARY KEY, \"version\" VARCHAR(50), \"description\" VARCHAR(200) NOT NULL, \"type\" VARCHAR(20) NOT NULL, \"script\" VARCHAR(1000) NOT NULL, \"checksum\" INT, \"installed_by\" VARCHAR(100) NOT NULL, \"installed_on\" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')), \"execution_time\" INT NOT NULL, \"success\" BOOLEAN NOT NULL)",
        Engine::MySql => "CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL, version VARCHAR(50), description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, checksum INT, installed_by VARCHAR(100) NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, execution_time INT NOT NULL, success BOOL NOT NULL, CONSTRAINT flyway_schema_history_pk PRIMARY KEY (installed_rank))",
        Engine::Postgres => "CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL, version VARCHAR(50), description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, checksum INTEGER, installed_by VARCHAR(100) NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT now(), execution_time INTEGER NOT NULL, success BOOLEAN NOT NULL, CONSTRAINT flyway_schema_history_pk PRIMARY KEY (installed_rank))",
    };
    // Text that quoting must carry: a quote, a backslash (MySQL's literals
    // escape it), a semicolon.
    let backslash = if db.engine == Engine::MySql {
        "\\\\"
    } else {
        "\\"
    };
    let row = |rank: u32, version: &str, success: bool| {
        format!(
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) \
             VALUES ({rank}, '{version}', 'it''s C:{backslash}posts; done', 'SQL', 'V{version}__create_posts.sql', -7, 'app', 10, {})",
            db.boolean(success)
        )
    };
    db.exec(&[ddl, &row(1, "1", true), &row(2, "2", false)]);
    let record = retried(db, "flyway", "flyway_schema_history", |_| {});
    let row = values(&record["before"][0]);
    assert_eq!(value(&row, "installed_rank"), Some("2"));
    assert_eq!(value(&row, "description"), Some("it's C:\\posts; done"));
    assert_eq!(value(&row, "checksum"), Some("-7"));
}

fn a_sqlx_removal_is_recorded_and_undone(db: &TestDb) {
    // sqlx 0.8.6, sqlx-{postgres,mysql,sqlite}/src/migrate.rs ensure_migrations_table.
    let ddl = match db.engine {
        Engine::Postgres => "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)",
        _ => "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
    };
    let checksum = if db.engine == Engine::Postgres {
        "'\\x00ff27'"
    } else {
        "X'00FF27'"
    };
    db.exec(&[
        ddl,
        &format!("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (1, 'init', {}, {checksum}, 5)", db.boolean(true)),
        &format!("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (2, 'add posts', {}, {checksum}, -1)", db.boolean(false)),
    ]);
    let record = retried(db, "sqlx", "_sqlx_migrations", |_| {});
    assert_eq!(
        record["before"][0]["checksum"]["hex"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("00ff27")
    );
    assert_eq!(record["before"][0]["version"], "2");
}

fn a_prisma_roll_back_is_recorded_and_undone(db: &TestDb) {
    // prisma-engines 6.x, sql-schema-connector flavours: the _prisma_migrations DDL.
    let ddl = match db.engine {
        Engine::Sqlite => "CREATE TABLE \"_prisma_migrations\" (\"id\" TEXT PRIMARY KEY NOT NULL, \"checksum\" TEXT NOT NULL, \"finished_at\" DATETIME, \"migration_name\" TEXT NOT NULL, \"logs\" TEXT, \"rolled_back_at\" DATETIME, \"started_at\" DATETIME NOT NULL DEFAULT current_timestamp, \"applied_steps_count\" INTEGER UNSIGNED NOT NULL DEFAULT 0)",
        Engine::MySql => "CREATE TABLE _prisma_migrations (id VARCHAR(36) PRIMARY KEY NOT NULL, checksum VARCHAR(64) NOT NULL, finished_at DATETIME(3), migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at DATETIME(3), started_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), applied_steps_count INTEGER UNSIGNED NOT NULL DEFAULT 0)",
        Engine::Postgres => "CREATE TABLE _prisma_migrations (id VARCHAR(36) PRIMARY KEY NOT NULL, checksum VARCHAR(64) NOT NULL, finished_at TIMESTAMPTZ, migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMPTZ, started_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL DEFAULT 0)",
    };
    // Prisma on SQLite writes its times as milliseconds since the epoch.
    let started = match db.engine {
        Engine::Sqlite => "1704067200123",
        _ => "'2024-01-01 00:00:00.123'",
    };
    db.exec(&[
        ddl,
        "INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, started_at, applied_steps_count) VALUES ('a1', 'c', '2024-01-01 00:00:00', '20240101000000_init', '2024-01-01 00:00:00', 1)",
        &format!("INSERT INTO _prisma_migrations (id, checksum, migration_name, logs, started_at) VALUES ('b2', 'c', '20240201000000_add_posts', 'line one\nline two', {started})"),
    ]);
    let record = retried(db, "prisma", "_prisma_migrations", |_| {});
    let row = values(&record["before"][0]);
    assert_eq!(value(&row, "id"), Some("b2"));
    assert_eq!(value(&row, "rolled_back_at"), None);
    assert_eq!(value(&row, "logs"), Some("line one\nline two"));
}

fn no_table_means_no_changes_recorded(db: &TestDb) {
    let out = run(base(db).arg("history"));
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), "no changes recorded\n");
    assert!(history(db).is_empty());
    let out = run(base(db).args(["history", "--yaml"]));
    assert_eq!(code(&out), 64, "history takes no option but --json");
}

/// A table of that name left by another version, or that refuses the
/// insert: the lock is freed all the same, the record is in the log line
/// (a warning, shown at `UNLATCH_LOG=warn`), and a warning says why it is
/// not in the table.
fn a_history_table_of_another_shape_never_fails_a_start(db: &TestDb) {
    db.create_knex_migrator_lock();
    for (shape, warning) in [
        // An older (or foreign) table: a column unlatch writes is missing.
        ("(id INTEGER PRIMARY KEY, note VARCHAR(20))", "lacks column recorded_at"),
        // A newer one: a column unlatch does not know, which must be given.
        (
            "(id INTEGER PRIMARY KEY, recorded_at VARCHAR(40), tool VARCHAR(64), place VARCHAR(255), \
             reason TEXT, statement_sql TEXT, before_image TEXT, undo_sql TEXT, required VARCHAR(9) NOT NULL)",
            "writing it failed",
        ),
    ] {
        db.exec(&["DROP TABLE IF EXISTS unlatch_history", &format!("CREATE TABLE unlatch_history {shape}")]);
        db.set_knex_migrator_lock(true, "'2020-01-01 00:00:00'");
        // At warn, the record still shows: it is in the log line only.
        let out = run(base(db)
            .env("UNLATCH_LOCK_TTL", "0s")
            .env("UNLATCH_LOG", "warn")
            .args(["--", "true"]));
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("unlatch: warning: trail {"), "{err}");
        assert!(
            err.contains("warning: unlatch_history: this change is recorded in the log line above only")
                && err.contains(warning),
            "{err}"
        );
        assert_eq!(db.knex_migrator_lock().unwrap()[0], "0", "freed all the same");
        assert_eq!(dump(db, "unlatch_history"), Vec::<String>::new());
        let out = run(base(db).arg("history"));
        assert_eq!(
            (code(&out), stdout(&out).as_str()),
            (0, "no changes recorded\n")
        );
    }
}

/// On the servers, a user that may free the lock but not make tables: the
/// lock is freed, the record goes to the log line, and a warning says so.
#[test]
fn a_user_who_cannot_make_the_table_still_heals() {
    for engine in [Engine::MySql, Engine::Postgres] {
        let Some(db) = TestDb::new(engine, "history_ro") else {
            continue;
        };
        db.create_knex_migrator_lock();
        db.set_knex_migrator_lock(true, "'2020-01-01 00:00:00'");
        let user: String = format!("u{}", unique("ro").replace('_', ""))
            .chars()
            .take(24)
            .collect();
        let mut url = url::Url::parse(&db.url).unwrap();
        url.set_username(&user).unwrap();
        match engine {
            Engine::MySql => {
                for host in ["%", "localhost"] {
                    db.exec(&[
                        &format!("CREATE USER '{user}'@'{host}' IDENTIFIED BY '{PASSWORD}'"),
                        &format!(
                            "GRANT SELECT, UPDATE ON `{}`.migrations_lock TO '{user}'@'{host}'",
                            db.name
                        ),
                    ]);
                }
            }
            _ => db.exec(&[
                &format!("CREATE ROLE {user} LOGIN PASSWORD '{PASSWORD}'"),
                "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
                &format!("GRANT SELECT, UPDATE ON migrations_lock TO {user}"),
            ]),
        }
        let _gone = Dropped(engine, db.url.clone(), user.clone());
        let mut cmd = unlatch();
        cmd.env("UNLATCH_DATABASE_URL", String::from(url.clone()))
            .env("TZ", "UTC")
            .env("UNLATCH_LOCK_TTL", "0s");
        let out = run(cmd.args(["--", "true"]));
        assert_eq!(code(&out), 0, "{engine:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("unlatch: warning: trail {") && err.contains("making the table failed"),
            "{err}"
        );
        assert_eq!(db.knex_migrator_lock().unwrap()[0], "0");
        let mut cmd = unlatch();
        cmd.env("UNLATCH_DATABASE_URL", String::from(url));
        let out = run(cmd.arg("history"));
        assert_eq!(
            (code(&out), stdout(&out).as_str()),
            (0, "no changes recorded\n")
        );
    }
}

/// Drops the test's user when the test ends, however it ends.
struct Dropped(Engine, String, String);

impl Drop for Dropped {
    fn drop(&mut self) {
        let Dropped(engine, url, user) = self;
        let statements = match engine {
            Engine::MySql => vec![
                format!("DROP USER IF EXISTS '{user}'@'%'"),
                format!("DROP USER IF EXISTS '{user}'@'localhost'"),
            ],
            _ => vec![
                format!("DROP OWNED BY {user}"),
                format!("DROP ROLE IF EXISTS {user}"),
            ],
        };
        let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
        sql(url, &statements);
    }
}

#[test]
fn help_and_readme_list_the_history_command() {
    let help = stdout(&run(unlatch().arg("--help")));
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for text in [&help, &readme] {
        assert!(text.contains("unlatch history [--json]"), "{text}");
    }
    assert!(readme.contains("\n## History\n"));
}
