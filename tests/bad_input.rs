//! Bad input: every case exits with the documented code (64, configuration
//! error), says in one line which variable or argument is wrong and what was
//! expected, never shows the password, and leaves the database untouched:
//! the SQLite file is byte for byte the same, with no copy or guard file
//! beside it.

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use common::*;

const PASSWORD: &str = "Unl4tch-S3cret-Pw";

/// A SQLite database with a stale lock: any write would show.
fn stale_database(scratch: &Scratch) -> (std::path::PathBuf, String) {
    let file = scratch.path().join("app.db");
    std::fs::File::create(&file).unwrap();
    let url = format!("sqlite://{}", file.display());
    sql(&url, &[
        "create table migrations_lock (lock_key varchar(191) primary key, locked boolean, acquired_at datetime, released_at datetime)",
        "insert into migrations_lock values ('km01', 1, '2020-01-01 00:00:00', NULL)",
    ]);
    (file, url)
}

fn folder_listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Variables, arguments, and what stderr must name.
type Case<'a> = (Vec<(&'a str, String)>, Vec<&'a str>, &'a str);

#[test]
fn every_bad_input_is_named_refused_and_harmless() {
    let scratch = Scratch::new("bad_input");
    let (db_file, url) = stale_database(&scratch);
    let before = std::fs::read(&db_file).unwrap();
    let listing = folder_listing(scratch.path());
    let ghost_dir = scratch.path().join("ghost");
    std::fs::create_dir_all(ghost_dir.join("broken")).unwrap();
    std::fs::write(
        ghost_dir.join("broken/config.development.json"),
        "{ \"database\": ",
    )
    .unwrap();
    std::fs::create_dir_all(ghost_dir.join("unreadable/config.development.json")).unwrap();
    let secret_url = |url: &str| url.replace("PW", PASSWORD);
    // A secret Nginx Proxy Manager's hook would split into two words.
    let two_words = scratch.path().join("ghost/two-words");
    std::fs::write(&two_words, "two words\n").unwrap();

    // (variables, arguments, what stderr must name)
    let mut cases: Vec<Case> = vec![
        (
            vec![("UNLATCH_WAIT_TIMEOUT", "soon".into())],
            vec![],
            "UNLATCH_WAIT_TIMEOUT=soon",
        ),
        (
            vec![("UNLATCH_WAIT_TIMEOUT", "-5s".into())],
            vec![],
            "UNLATCH_WAIT_TIMEOUT=-5s",
        ),
        (
            vec![("UNLATCH_LOCK_TTL", "15".into())],
            vec![],
            "UNLATCH_LOCK_TTL=15",
        ),
        (
            vec![("UNLATCH_LOCK_TTL", "1h30x".into())],
            vec![],
            "UNLATCH_LOCK_TTL=1h30x",
        ),
        // humantime panics on this one (fuzz/duration found it).
        (
            vec![(
                "UNLATCH_LOCK_TTL",
                "2s18446744073709551610.1s1.1s01.1s".into(),
            )],
            vec![],
            "UNLATCH_LOCK_TTL=2s18446744073709551610.1s1.1s01.1s: expected a duration",
        ),
        (
            vec![("UNLATCH_LOCK_WAIT", "forever".into())],
            vec![],
            "UNLATCH_LOCK_WAIT=forever",
        ),
        (
            vec![("UNLATCH_MIGRATE_TIMEOUT", "0s".into())],
            vec![],
            "UNLATCH_MIGRATE_TIMEOUT=0s",
        ),
        (
            vec![("UNLATCH_HOOK_TIMEOUT", "0".into())],
            vec![],
            "UNLATCH_HOOK_TIMEOUT=0: expected a duration above zero",
        ),
        (
            // humantime's months: a TTL of 15 months would wait forever.
            vec![("UNLATCH_LOCK_TTL", "15M".into())],
            vec![],
            "UNLATCH_LOCK_TTL=15M: expected a duration",
        ),
        (
            vec![("UNLATCH_KILL_GRACE", "abc".into())],
            vec![],
            "UNLATCH_KILL_GRACE=abc",
        ),
        (
            vec![("UNLATCH_HOOK_TIMEOUT", "1 fortnight".into())],
            vec![],
            "UNLATCH_HOOK_TIMEOUT=1 fortnight",
        ),
        (
            vec![("UNLATCH_TOOL", "alembic".into())],
            vec![],
            "UNLATCH_TOOL=alembic",
        ),
        (
            vec![("UNLATCH_ON_STALE", "nuke".into())],
            vec![],
            "UNLATCH_ON_STALE=nuke",
        ),
        (
            vec![("UNLATCH_ON_STALE", "rollback".into())],
            vec![],
            "UNLATCH_ROLLBACK_CMD",
        ),
        (
            vec![("UNLATCH_ON_DIRTY", "force".into())],
            vec![],
            "UNLATCH_ON_DIRTY=force",
        ),
        (
            vec![("UNLATCH_MODE", "daemon".into())],
            vec![],
            "UNLATCH_MODE=daemon",
        ),
        (
            vec![("UNLATCH_SIGNAL_TARGET", "all".into())],
            vec![],
            "UNLATCH_SIGNAL_TARGET=all",
        ),
        (
            vec![("UNLATCH_LOG", "verbose".into())],
            vec![],
            "UNLATCH_LOG=verbose",
        ),
        (
            vec![("UNLATCH_LOG_FORMAT", "xml".into())],
            vec![],
            "UNLATCH_LOG_FORMAT=xml",
        ),
        (
            vec![("UNLATCH_LOCK_TIMEZONE", "Mars/Base".into())],
            vec![],
            "UNLATCH_LOCK_TIMEZONE=Mars/Base",
        ),
        (
            vec![("TZ", "Nowhere/Land".into())],
            vec![],
            "TZ=Nowhere/Land",
        ),
        (
            vec![("UNLATCH_DATABASE_URL", secret_url("redis://app:PW@cache/0"))],
            vec![],
            "UNLATCH_DATABASE_URL=",
        ),
        (
            vec![("UNLATCH_DATABASE_URL", "not a url".into())],
            vec![],
            "UNLATCH_DATABASE_URL=not a url",
        ),
        (
            vec![("DATABASE_URL", secret_url("mysql://app:PW@db"))],
            vec![],
            "DATABASE_URL=",
        ),
        (
            vec![(
                "DATABASE_URL",
                secret_url("postgres://app:PW@db/app?sslmode=bogus"),
            )],
            vec![],
            "DATABASE_URL=",
        ),
        // The tools' URL dialects and variables.
        (
            vec![(
                "DATABASE_URL",
                secret_url("postgres://app:PW@pooler:6543/app?pgbouncer=true"),
            )],
            vec![],
            "pgbouncer=true: this URL goes through a transaction-mode pooler",
        ),
        (
            vec![("DATABASE_URL", secret_url("postgres://app:PW@db/app?x-migrations-table=Versions"))],
            vec![],
            "x-migrations-table=Versions: expected a lowercase name",
        ),
        (
            vec![("DATABASE_URL", secret_url("postgres://app:PW@db/app?schema=a&sslidentity=id.p12"))],
            vec![],
            "sslidentity: a PKCS#12 client identity is not supported",
        ),
        // sqlx panics (exit 101) on a PostgreSQL user name SASLprep refuses.
        (
            vec![("DATABASE_URL", secret_url("postgres://app%0A:PW@db/app"))],
            vec![],
            "DATABASE_URL=postgres://app%0A:***@db/app: the user name has a control character",
        ),
        (
            vec![("DATABASE_URL", secret_url("postgres://%D7%90%D7%91:PW@db/app"))],
            vec![],
            "has characters SASLprep (RFC 4013) prohibits",
        ),
        (
            vec![("DATABASE_URL", secret_url("postgres://app%EE%80%80:PW@db/app"))],
            vec![],
            "has characters SASLprep (RFC 4013) prohibits",
        ),
        (
            vec![
                ("FLYWAY_URL", "jdbc:postgresql://db/app".into()),
                ("FLYWAY_USER", "svc\r\n".into()),
                ("FLYWAY_PASSWORD", PASSWORD.into()),
            ],
            vec![],
            "FLYWAY_USER: the user name has a control character",
        ),
        (
            vec![("DATABASE_URL", secret_url("postgres://app:PW@db/app?schema="))],
            vec![],
            "schema=: expected the name of a schema",
        ),
        (
            vec![("DATABASE_URL", "file:./dev.db".into())],
            vec![],
            "no Prisma schema was found",
        ),
        (
            vec![("DATABASE_URL", secret_url("jdbc:postgresql://a:5432,b:5432/app?password=PW"))],
            vec![],
            "several hosts (a:5432,b:5432)",
        ),
        (
            vec![("UNLATCH_DATABASE_URL", secret_url("jdbc:mariadb://db/app?password=PW&sslMode=strict"))],
            vec![],
            "sslMode=strict: expected disable, trust, verify-ca or verify-full",
        ),
        (
            vec![
                ("LIQUIBASE_COMMAND_URL", "jdbc:postgresql://db/app".into()),
                ("FLYWAY_URL", "jdbc:postgresql://db/app".into()),
            ],
            vec![],
            "LIQUIBASE_COMMAND_URL and FLYWAY_URL are both set",
        ),
        (
            vec![
                ("FLYWAY_URL", "postgres://db/app".into()),
                ("FLYWAY_PASSWORD", PASSWORD.into()),
            ],
            vec![],
            "FLYWAY_URL=postgres://db/app: expected a JDBC URL",
        ),
        (
            vec![
                ("FLYWAY_URL", "jdbc:postgresql://db/app".into()),
                ("FLYWAY_TABLE", "history; drop".into()),
            ],
            vec![],
            "FLYWAY_TABLE=history; drop: expected a table name",
        ),
        (
            vec![
                ("LIQUIBASE_COMMAND_URL", "jdbc:mysql://db/app".into()),
                ("LIQUIBASE_DATABASE_CHANGELOG_LOCK_TABLE_NAME", "lock-table".into()),
            ],
            vec![],
            "LIQUIBASE_DATABASE_CHANGELOG_LOCK_TABLE_NAME=lock-table: expected a table name",
        ),
        (
            vec![
                ("database__client", "mysql".into()),
                ("database__connection__database", "ghost".into()),
                ("database__connection__password_FILE", "/nonexistent/db-password".into()),
            ],
            vec![],
            "database__connection__password_FILE=/nonexistent/db-password: cannot read it",
        ),
        // TLS: libpq's and MySQL's values, files that must exist, pairs
        // that go together, Ghost's ssl forms mysql2 refuses.
        (
            vec![
                ("DATABASE_URL", secret_url("postgres://app:PW@db/app")),
                ("PGSSLMODE", "REQUIRE".into()),
            ],
            vec![],
            "sslmode=REQUIRE: expected disable, allow, prefer, require, verify-ca or verify-full",
        ),
        (
            vec![
                ("DATABASE_URL", secret_url("postgres://app:PW@db/app")),
                ("PGSSLROOTCERT", "/nonexistent/ca.pem".into()),
            ],
            vec![],
            "sslrootcert=/nonexistent/ca.pem: cannot read the file",
        ),
        (
            vec![
                ("DATABASE_URL", secret_url("postgres://app:PW@db/app?sslmode=require")),
                ("PGSSLROOTCERT", "system".into()),
            ],
            vec![],
            "expected sslmode=verify-full",
        ),
        (
            vec![
                ("DATABASE_URL", secret_url("postgres://app:PW@db/app")),
                ("PGSSLCERT", "/etc/hostname".into()),
            ],
            vec![],
            "sslcert is given without sslkey",
        ),
        (
            vec![(
                "DATABASE_URL",
                secret_url("postgres://app:PW@db/app?sslmode=disable&channel_binding=require"),
            )],
            vec![],
            "channel binding needs TLS",
        ),
        (
            vec![("DATABASE_URL", secret_url("mysql://app:PW@db/app?ssl-mode=verify-full"))],
            vec![],
            "ssl-mode=VERIFY-FULL: expected DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY",
        ),
        (
            vec![(
                "DATABASE_URL",
                secret_url("mysql://app:PW@db/app?ssl-mode=VERIFY_CA&ssl-ca=/nonexistent/ca.pem"),
            )],
            vec![],
            "ssl-ca=/nonexistent/ca.pem: cannot read the file",
        ),
        (
            vec![
                ("database__client", "mysql".into()),
                ("database__connection__database", "ghost".into()),
                ("database__connection__password", PASSWORD.into()),
                ("database__connection__ssl", "true".into()),
            ],
            vec![],
            "database__connection__ssl=true",
        ),
        (
            vec![
                ("database__client", "mysql".into()),
                ("database__connection__database", "ghost".into()),
                ("database__connection__ssl", "Amazon RDS".into()),
            ],
            vec![],
            "database__connection__ssl=Amazon RDS",
        ),
        (
            vec![
                ("database__client", "mysql".into()),
                ("database__connection__database", "ghost".into()),
                ("database__connection__ssl__key", "-----BEGIN PRIVATE KEY-----\nK3y\n-----END PRIVATE KEY-----".into()),
            ],
            vec![],
            "database__connection__ssl__cert and ssl__key",
        ),
        (
            vec![("database__client", "pg".into())],
            vec![],
            "database__client=pg",
        ),
        // Outside Ghost's own environments no default filename fills in
        // (under development Ghost's is content/data/ghost-dev.db).
        (
            vec![
                ("database__client", "sqlite3".into()),
                ("NODE_ENV", "staging".into()),
            ],
            vec![],
            "database__connection__filename",
        ),
        (
            vec![
                ("database__client", "mysql".into()),
                ("database__connection__database", "ghost".into()),
                ("database__connection__password", PASSWORD.into()),
                ("database__connection__port", "x".into()),
            ],
            vec![],
            "database__connection__port=x",
        ),
        (
            vec![("UNLATCH_MIGRATE_CMD", "'unbalanced".into())],
            vec![],
            "UNLATCH_MIGRATE_CMD",
        ),
        (
            vec![
                ("UNLATCH_MIGRATE_CMD", "true".into()),
                ("UNLATCH_MIGRATIONS_DIR", "/".into()),
            ],
            vec![],
            "UNLATCH_MIGRATIONS_DIR and UNLATCH_MIGRATE_CMD",
        ),
        (
            vec![("UNLATCH_MIGRATIONS_DIR", "/etc/passwd".into())],
            vec![],
            "UNLATCH_MIGRATIONS_DIR=/etc/passwd",
        ),
        (
            vec![("UNLATCH_HOOKS_DIR", "/etc/passwd".into())],
            vec![],
            "UNLATCH_HOOKS_DIR=/etc/passwd",
        ),
        (
            vec![("UNLATCH_HOOKS_DIR", "/no/such/folder".into())],
            vec![],
            "UNLATCH_HOOKS_DIR=/no/such/folder",
        ),
        (
            vec![("UNLATCH_RUN_AS", "no-such-user-here".into())],
            vec![],
            "UNLATCH_RUN_AS=no-such-user-here",
        ),
        (
            vec![("UNLATCH_MIGRATE_RUN_AS", "root:no-such-group".into())],
            vec![],
            "UNLATCH_MIGRATE_RUN_AS=",
        ),
        (
            vec![("UNLATCH_SQLITE_BACKUP", "yes".into())],
            vec![],
            "UNLATCH_SQLITE_BACKUP=yes",
        ),
        (
            vec![("UNLATCH_SQLITE_BACKUP_KEEP", "0".into())],
            vec![],
            "UNLATCH_SQLITE_BACKUP_KEEP=0",
        ),
        (
            vec![("UNLATCH_PROOFS", "yes".into())],
            vec![],
            "UNLATCH_PROOFS=yes: expected 1 or 0",
        ),
        (
            vec![("UNLATCH_PROOF_SETTLE", "soon".into())],
            vec![],
            "UNLATCH_PROOF_SETTLE=soon: expected a duration",
        ),
        (
            vec![("UNLATCH_POOL_IDLE_TIMEOUT", "0".into())],
            vec![],
            "UNLATCH_POOL_IDLE_TIMEOUT=0: expected a duration above zero",
        ),
        (
            vec![("UNLATCH_TERMINATE_STALE_SESSIONS", "maybe".into())],
            vec![],
            "UNLATCH_TERMINATE_STALE_SESSIONS=maybe",
        ),
        (
            vec![("UNLATCH_KNEX_TABLE", "x;drop".into())],
            vec![],
            "UNLATCH_KNEX_TABLE=x;drop",
        ),
        (
            vec![("UNLATCH_GOLANG_MIGRATE_PATH", "/nope".into())],
            vec![],
            "UNLATCH_GOLANG_MIGRATE_PATH=/nope",
        ),
        (
            vec![("UNLATCH_MODE", "supervise".into())],
            vec!["--"],
            "UNLATCH_MODE=supervise needs a COMMAND",
        ),
        (
            vec![
                ("LIQUIBASE_COMMAND_URL", "jdbc:postgresql://db/app".into()),
                ("LIQUIBASE_COMMAND_USERNAME", "app\n".into()),
                ("LIQUIBASE_COMMAND_PASSWORD", PASSWORD.into()),
            ],
            vec![],
            "LIQUIBASE_COMMAND_USERNAME: the user name has a control character",
        ),
        (
            vec![
                ("LIQUIBASE_COMMAND_URL", "jdbc:postgresql://db/app".into()),
                ("LIQUIBASE_COMMAND_LIQUIBASE_SCHEMA_NAME", "audit\n".into()),
            ],
            vec![],
            "LIQUIBASE_COMMAND_LIQUIBASE_SCHEMA_NAME: the schema name has a control character",
        ),
        (
            vec![
                ("LIQUIBASE_COMMAND_URL", "jdbc:postgresql://db/app".into()),
                ("LIQUIBASE_COMMAND_DEFAULT_SCHEMA_NAME", "app\r\n".into()),
            ],
            vec![],
            "LIQUIBASE_COMMAND_DEFAULT_SCHEMA_NAME: the schema name has a control character",
        ),
        (
            vec![
                ("FLYWAY_URL", "jdbc:postgresql://db/app".into()),
                ("FLYWAY_USER", "app".into()),
                ("FLYWAY_PASSWORD", PASSWORD.into()),
                ("FLYWAY_DEFAULT_SCHEMA", "billing\n".into()),
            ],
            vec![],
            "FLYWAY_DEFAULT_SCHEMA: the schema name has a control character",
        ),
        (
            vec![
                ("FLYWAY_URL", "jdbc:postgresql://db/app".into()),
                ("FLYWAY_SCHEMAS", "billing,\taudit".into()),
            ],
            vec![],
            "FLYWAY_SCHEMAS: the schema name has a control character",
        ),
        (
            vec![
                ("DATABASE_URL", secret_url("postgres://app:PW@db/app")),
                ("PGSSLKEY", "/etc/ssl/private/app.key".into()),
            ],
            vec![],
            "taken from PGSSLKEY",
        ),
        (
            vec![
                ("DATABASE_URL", secret_url("postgres://app:PW@db/app")),
                ("PGCHANNELBINDING", "always".into()),
            ],
            vec![],
            "channel_binding=always: expected disable, prefer or require (taken from PGCHANNELBINDING)",
        ),
        (
            vec![("UNLATCH_LIQUIBASE_TABLE", "lock-table".into())],
            vec![],
            "UNLATCH_LIQUIBASE_TABLE=lock-table: expected a table name",
        ),
        (
            vec![("UNLATCH_GOLANG_MIGRATE_TABLE", "versions;".into())],
            vec![],
            "UNLATCH_GOLANG_MIGRATE_TABLE=versions;: expected a table name",
        ),
        (
            vec![("UNLATCH_FLYWAY_TABLE", "my history".into())],
            vec![],
            "UNLATCH_FLYWAY_TABLE=my history: expected a table name",
        ),
        (
            vec![("UNLATCH_HOOK_FAILURE", "ignore".into())],
            vec![],
            "UNLATCH_HOOK_FAILURE=ignore: expected stop or warn",
        ),
        // App profiles: a name unlatch does not know, two apps at once,
        // and each app's own bad values, named by the app's variable.
        (
            vec![("UNLATCH_APP", "foo".into())],
            vec![],
            "UNLATCH_APP=foo: expected auto, none or one of: ghost, nginx-proxy-manager",
        ),
        (
            vec![("UNLATCH_APP", "prisma".into())],
            vec![],
            "UNLATCH_APP=prisma, but neither DIRECT_URL nor DATABASE_URL is set",
        ),
        (
            vec![
                ("DB_MYSQL_HOST", "db".into()),
                ("POSTGRESQL_HOST", "db".into()),
            ],
            vec![],
            "UNLATCH_APP=auto found the settings of more than one app: nginx-proxy-manager (DB_MYSQL_HOST is set) and harbor (POSTGRESQL_HOST is set)",
        ),
        (
            vec![
                ("DB_MYSQL_HOST", "db".into()),
                ("DB_MYSQL_USER", "npm".into()),
                ("DB_MYSQL_PASSWORD", PASSWORD.into()),
                ("DB_MYSQL_NAME", "npm".into()),
                ("DB_MYSQL_PORT", "abc".into()),
            ],
            vec![],
            "DB_MYSQL_PORT=abc: expected a port number",
        ),
        (
            vec![
                ("DB_POSTGRES_HOST", "db".into()),
                ("DB_POSTGRES_USER", "npm".into()),
                ("DB_POSTGRES_NAME", "npm".into()),
                ("DB_POSTGRES_PASSWORD", PASSWORD.into()),
                ("DB_POSTGRES_PORT", "0".into()),
            ],
            vec![],
            "DB_POSTGRES_PORT=0: expected a port number",
        ),
        (
            vec![
                ("DB_MYSQL_HOST", "db".into()),
                ("DB_MYSQL_USER", "npm".into()),
                ("DB_MYSQL_NAME", "npm".into()),
                ("DB_MYSQL_PASSWORD__FILE", two_words.display().to_string()),
            ],
            vec![],
            "DB_MYSQL_PASSWORD__FILE=",
        ),
        (
            // mysql2 would look up the whole name; the URL parser cut it to `db`.
            vec![
                ("DB_MYSQL_HOST", "db:3306".into()),
                ("DB_MYSQL_USER", "npm".into()),
                ("DB_MYSQL_NAME", "npm".into()),
                ("DB_MYSQL_PASSWORD", PASSWORD.into()),
            ],
            vec![],
            "DB_MYSQL_HOST=db:3306: expected a host name or address alone",
        ),
        (
            vec![("POSTGRESQL_HOST", "pg@db".into()), ("POSTGRESQL_PASSWORD", PASSWORD.into())],
            vec![],
            "POSTGRESQL_HOST=pg@db: expected a host name or address alone",
        ),
        (
            vec![
                ("RUNDECK_DATABASE_URL", "jdbc:mysql://db1:3306,db2:3306/rundeck?useSSL=false".into()),
                ("RUNDECK_DATABASE_USERNAME", "rundeck".into()),
                ("RUNDECK_DATABASE_PASSWORD", PASSWORD.into()),
            ],
            vec![],
            "several hosts (db1:3306,db2:3306)",
        ),
        (
            // Rundeck's properties file would join the next line to it.
            vec![
                ("RUNDECK_DATABASE_URL", "jdbc:mariadb://db:3306/rundeck".into()),
                ("RUNDECK_DATABASE_PASSWORD", format!("{PASSWORD}\\")),
            ],
            vec![],
            "RUNDECK_DATABASE_PASSWORD: the value ends with a lone \\",
        ),
        (
            vec![("POSTGRESQL_PORT", "5432x".into())],
            vec![],
            "POSTGRESQL_PORT=5432x: expected a port number",
        ),
        (
            vec![
                ("POSTGRESQL_PASSWORD", PASSWORD.into()),
                ("POSTGRESQL_SSLMODE", "on".into()),
            ],
            vec![],
            "POSTGRESQL_SSLMODE=on: expected one of disable",
        ),
        (
            vec![
                ("POSTGRESQL_HOST", "db".into()),
                ("POSTGRES_MIGRATION_SCRIPTS_PATH", "/no/such/migrations".into()),
            ],
            vec![],
            "POSTGRES_MIGRATION_SCRIPTS_PATH=/no/such/migrations: expected the folder",
        ),
        (
            vec![
                ("RUNDECK_DATABASE_URL", "jdbc:h2:file:/home/rundeck/server/data/grailsdb;DB_CLOSE_ON_EXIT=FALSE".into()),
                ("RUNDECK_DATABASE_PASSWORD", PASSWORD.into()),
            ],
            vec![],
            "RUNDECK_DATABASE_URL=jdbc:h2:file:/home/rundeck/server/data/grailsdb: expected a URL starting jdbc:mysql:",
        ),
        (
            vec![("DIRECT_URL", secret_url("mongodb://app:PW@db/app"))],
            vec![],
            "DIRECT_URL=mongodb://app:***@db/app",
        ),
        (vec![], vec!["-x"], "put -- before it"),
        (vec![], vec!["status", "--yaml"], "unlatch status"),
        (vec![], vec!["--bogus"], "--bogus"),
    ];
    let tool_cases = tool_variable_cases();
    assert!(
        !tool_cases.is_empty(),
        "the registry declares the tools' variables"
    );
    cases.extend(tool_cases);
    assert!(cases.len() >= 30);
    for (vars, args, names) in &cases {
        let mut cmd = unlatch();
        if !vars.iter().any(|(k, _)| {
            k.contains("DATABASE_URL")
                || k.starts_with("database__")
                || k.starts_with("DB_")
                || k.starts_with("POSTGRESQL_")
                || *k == "DIRECT_URL"
                || *k == "UNLATCH_APP"
                || k.starts_with("LIQUIBASE_")
                || k.starts_with("FLYWAY_")
        }) {
            cmd.env("UNLATCH_DATABASE_URL", &url);
        }
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let args: Vec<&str> = if args.is_empty() {
            vec!["--", "echo", "app"]
        } else {
            args.clone()
        };
        let out = run(cmd.args(&args));
        let err = stderr(&out);
        let what = format!("{vars:?} {args:?}");
        assert_eq!(code(&out), 64, "{what}: {err}");
        assert!(
            err.contains(names),
            "{what}: stderr should name {names:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
        assert!(
            err.contains("expected")
                || err.contains("needs")
                || err.contains("unexpected")
                || err.contains("--help"),
            "{what}: says what was expected: {err}"
        );
        assert!(
            !err.contains(PASSWORD) && !stdout(&out).contains(PASSWORD),
            "{what}: password shown"
        );
        assert_eq!(stdout(&out), "", "{what}: nothing ran");
    }

    // Ghost's config file: malformed, and not a readable file.
    for folder in ["broken", "unreadable"] {
        let out = run(unlatch()
            .current_dir(ghost_dir.join(folder))
            .args(["--", "echo", "app"]));
        assert_eq!(code(&out), 64, "{folder}");
        assert!(
            stderr(&out).contains("config.development.json"),
            "{folder}: {}",
            stderr(&out)
        );
    }
    // Values that are not UTF-8, in a variable and in COMMAND.
    let out = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &url)
        .env("UNLATCH_LOCK_TTL", OsString::from_vec(vec![b'1', 0xff]))
        .args(["--", "true"]));
    assert_eq!(code(&out), 64);
    assert!(stderr(&out).contains("UNLATCH_LOCK_TTL is not valid UTF-8"));
    let out = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &url)
        .arg("--")
        .arg(OsString::from_vec(vec![b'a', 0xfe])));
    assert_eq!(code(&out), 64);
    assert!(stderr(&out).contains("not valid UTF-8"), "{}", stderr(&out));

    assert_eq!(
        std::fs::read(&db_file).unwrap(),
        before,
        "the database is byte for byte the same"
    );
    let mut expected = listing.clone();
    expected.push("ghost".into());
    expected.sort();
    assert_eq!(
        folder_listing(scratch.path()),
        expected,
        "no copy, no guard file, nothing beside it"
    );
}

/// Values that look odd but mean one thing, as glibc, Node or a secret file
/// give them, start the app rather than exit 64.
#[test]
fn values_as_glibc_or_a_secret_file_give_them_are_accepted() {
    for (name, value) in [
        ("TZ", ":/etc/localtime"),
        ("TZ", ":Europe/Berlin"),
        ("TZ", ":/no/such/zone/file"),
        ("TZ", ":"),
        ("UNLATCH_ON_STALE", "clear\n"),
        ("UNLATCH_LOG", "DEBUG"),
        ("UNLATCH_LOG", "Warning"),
        ("UNLATCH_LOG_FORMAT", " Text "),
    ] {
        let out = run(unlatch().env(name, value).args(["--", "echo", "app"]));
        assert_eq!(code(&out), 0, "{name}={value:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "app\n", "{name}={value:?}");
    }
    let out = run(unlatch()
        .env("TZ", ":/no/such/zone/file")
        .args(["--", "true"]));
    assert!(
        stderr(&out).contains("TZ=:/no/such/zone/file: cannot read that zone file")
            && stderr(&out).contains("using UTC"),
        "{}",
        stderr(&out)
    );
}

/// A bad value for each variable a tool's registry entry declares, so that
/// a new tool's variables are covered without a case written here.
fn tool_variable_cases() -> Vec<Case<'static>> {
    use unlatch::tools::{Value, REGISTRY};
    let variables = REGISTRY.iter().flat_map(|entry| entry.variables);
    variables
        .map(|variable| {
            let bad = match variable.value {
                Value::Table => "no such;table",
                Value::Folder => "/no/such/folder",
            };
            (vec![(variable.name, bad.into())], vec![], variable.name)
        })
        .collect()
}

/// Every variable unlatch reads has a case above, or a reason here why no
/// value of it is bad input: a new variable without one fails this test.
#[test]
fn every_variable_has_a_bad_input_case() {
    const NO_BAD_VALUE: &[(&str, &str)] = &[
        ("LIQUIBASE_COMMAND_PASSWORD", "any password is a password"),
        ("FLYWAY_PASSWORD", "any password is a password"),
        (
            "UNLATCH_TERMINATION_LOG",
            "any path: written only if it exists",
        ),
    ];
    let source = include_str!("bad_input.rs");
    let cases = &source[..source
        .find("fn every_variable_has_a_bad_input_case")
        .unwrap()];
    let mut missing = Vec::new();
    for (names, _, _) in unlatch::config::variables() {
        for name in names.split(", ") {
            let name = name.trim_end_matches('*');
            let exempt = NO_BAD_VALUE.iter().any(|(n, _)| *n == name)
                || tool_variable_cases().iter().any(|(_, _, n)| *n == name);
            if !exempt && !cases.contains(&format!("\"{name}")) {
                missing.push(name);
            }
        }
    }
    assert!(missing.is_empty(), "no bad-input case for {missing:?}");
}
