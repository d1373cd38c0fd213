//! What a user sees from the binary, apart from the lock itself: the command
//! line, exec and its exit codes, the child's signal state, database errors,
//! Ghost's configuration, log formats.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const STALE_LOCK: &[&str] = &[
    "create table migrations_lock (lock_key varchar(191) not null primary key, locked boolean default '0', acquired_at datetime null, released_at datetime null)",
    "insert into migrations_lock values ('km01', 1, '2020-01-01 00:00:00', NULL)",
];

#[test]
fn help_lists_every_variable() {
    let out = run(unlatch().arg("--help"));
    assert_eq!(code(&out), 0);
    let help = stdout(&out);
    for (name, default, _) in unlatch::config::variables() {
        assert!(
            help.contains(name) && help.contains(default),
            "{name} missing from --help"
        );
    }
}

/// `unlatch::exit::TABLE`, each meaning through `text`.
fn exit_codes(text: fn(&str) -> String) -> Vec<(String, String)> {
    let rows = unlatch::exit::TABLE.iter();
    rows.map(|(code, meaning)| (code.to_string(), text(meaning)))
        .collect()
}

#[test]
fn help_lists_the_exit_codes_of_the_table_and_no_others() {
    let help = stdout(&run(unlatch().arg("--help")));
    let (_, section) = help
        .split_once("\nExit codes:\n")
        .expect("an Exit codes section");
    let listed: Vec<(String, String)> = section
        .lines()
        .map(|line| {
            let (code, meaning) = line.trim().split_once(' ').expect("code, then meaning");
            (code.to_owned(), meaning.trim().to_owned())
        })
        .collect();
    assert_eq!(listed, exit_codes(|m| m.replace('`', "")));
}

#[test]
fn readme_lists_the_exit_codes_of_the_table_and_no_others() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let (_, section) = readme
        .split_once("\n## Exit codes\n")
        .expect("an Exit codes section");
    let rows: Vec<(String, String)> = section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .map(|row| {
            let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
            let [code, meaning] = cells[..] else {
                panic!("expected | code | meaning |, found {row}")
            };
            (code.trim().to_owned(), meaning.trim().to_owned())
        })
        .collect();
    assert_eq!(rows, exit_codes(str::to_owned));
}

#[test]
fn readme_documents_every_variable() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (name, _, _) in unlatch::config::variables() {
        for part in name.split(", ") {
            assert!(
                readme.contains(&format!("`{part}`")),
                "{part} is not in the README"
            );
        }
    }
}

#[test]
fn version_prints_the_name() {
    assert!(stdout(&run(unlatch().arg("--version"))).starts_with("unlatch "));
}

#[test]
fn an_unknown_option_is_a_usage_error_that_says_what_to_do() {
    let out = run(unlatch().arg("-x"));
    assert_eq!(code(&out), 64);
    assert!(
        stderr(&out).contains("put -- before it"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn status_takes_no_option_but_json() {
    let out = run(unlatch().args(["status", "--yaml"]));
    assert_eq!(code(&out), 64);
}

#[test]
fn without_a_database_it_is_a_plain_entrypoint() {
    let scratch = Scratch::new("nodb");
    let marker = scratch.path().join("migrated");
    let out = run(unlatch()
        .env("UNLATCH_MIGRATE_CMD", format!("touch {}", marker.display()))
        .args(["--", "sh", "-c", "echo APP STARTED"]));
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), "APP STARTED\n");
    assert!(
        stderr(&out).contains("no database configured"),
        "{}",
        stderr(&out)
    );
    assert!(marker.exists(), "the migrate command still runs");
    // No COMMAND: the preflight alone, then exit 0 (initContainer mode).
    let out = run(&mut unlatch());
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("no COMMAND given"));
}

#[test]
fn exec_keeps_the_pid_and_the_exit_code() {
    let child = unlatch()
        .args(["--", "sh", "-c", "echo $$; exit 7"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        stdout(&out).trim(),
        pid.to_string(),
        "COMMAND runs with unlatch's own PID"
    );
    assert_eq!(code(&out), 7);
}

#[test]
fn command_not_found_127_not_executable_126() {
    let out = run(unlatch().args(["--", "/nonexistent/app"]));
    assert_eq!(code(&out), 127);
    assert!(
        stderr(&out).contains("cannot run COMMAND /nonexistent/app: not found"),
        "{}",
        stderr(&out)
    );
    let out = run(unlatch().args(["--", "no-such-command-anywhere"]));
    assert_eq!(code(&out), 127);
    let scratch = Scratch::new("noexec");
    let file = scratch.path().join("app.sh");
    std::fs::write(&file, "#!/bin/sh\necho hi\n").unwrap();
    let out = run(unlatch().arg("--").arg(&file));
    assert_eq!(code(&out), 126);
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
    assert_eq!(code(&run(unlatch().arg("--").arg(scratch.path()))), 126);
}

#[test]
fn command_starts_with_default_signals_and_empty_mask() {
    // unlatch itself starts with SIGUSR1 ignored and SIGUSR2 blocked.
    let mut cmd = unlatch();
    cmd.env(
        "UNLATCH_MIGRATE_CMD",
        "grep -E '^Sig(Blk|Ign):' /proc/self/status",
    )
    .args(["--", "grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"]);
    // SAFETY: signal() with SIG_IGN and sigprocmask() are async-signal-safe,
    // and nothing here allocates.
    unsafe {
        cmd.pre_exec(|| {
            use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
            signal(Signal::SIGUSR1, SigHandler::SigIgn)?;
            let mut set = SigSet::empty();
            set.add(Signal::SIGUSR2);
            sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
            Ok(())
        });
    }
    let out = run(&mut cmd);
    assert_eq!(code(&out), 0);
    // Signals 32 and 33 belong to glibc, which refuses to change them; the
    // test harness may hand them down ignored.
    let glibc_reserved = (1u64 << 31) | (1u64 << 32);
    let masks: Vec<u64> = stdout(&out)
        .lines()
        .map(|l| {
            u64::from_str_radix(l.split_whitespace().last().unwrap(), 16).unwrap() & !glibc_reserved
        })
        .collect();
    assert_eq!(
        masks, [0; 4],
        "migrate command and COMMAND: nothing blocked or ignored"
    );
}

#[test]
fn unreachable_database_gives_up_after_the_wait() {
    let started = Instant::now();
    let out = run(unlatch()
        .env(
            "UNLATCH_DATABASE_URL",
            "mysql://root:Unl4tchTestPw@127.0.0.1:1/app",
        )
        .env("UNLATCH_WAIT_TIMEOUT", "2s")
        .args(["--", "true"]));
    assert_eq!(code(&out), 69);
    assert!(started.elapsed() >= Duration::from_secs(2), "it waited");
    let err = stderr(&out);
    assert!(
        err.contains("within UNLATCH_WAIT_TIMEOUT=2s")
            && err.contains("mysql://root:***@127.0.0.1:1/app"),
        "{err}"
    );
    assert!(!err.contains("Unl4tchTestPw"));
}

#[test]
fn sigterm_while_waiting_for_the_database() {
    let child = unlatch()
        .env("UNLATCH_DATABASE_URL", "postgres://u@127.0.0.1:1/app")
        .env("UNLATCH_WAIT_TIMEOUT", "60s")
        .args(["--", "true"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 143);
    assert!(
        stderr(&out).contains("stopped by SIGTERM"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn wrong_password_fails_at_once_without_showing_it() {
    let Some(server) = server_url(Engine::MySql, "wrong_password") else {
        return;
    };
    let mut url = url::Url::parse(&server).unwrap();
    url.set_password(Some("Unl4tch-Wr0ng#Pw")).unwrap();
    let out = run(unlatch()
        .env("DATABASE_URL", url.as_str())
        .env("UNLATCH_WAIT_TIMEOUT", "60s")
        .args(["--", "true"]));
    assert_eq!(code(&out), 77);
    let err = stderr(&out);
    assert!(
        err.contains("rejected the credentials") && err.contains("(from DATABASE_URL)"),
        "{err}"
    );
    assert!(
        !err.contains("Unl4tch-Wr0ng#Pw") && !err.contains("Unl4tch-Wr0ng%23Pw"),
        "{err}"
    );
}

#[test]
fn a_database_that_does_not_exist_yet_has_nothing_to_heal() {
    for engine in [Engine::MySql, Engine::Postgres] {
        let Some(server) = server_url(engine, "missing_database") else {
            continue;
        };
        let mut url = url::Url::parse(&server).unwrap();
        url.set_path("/unlatch_never_created");
        let out = run(unlatch()
            .env("UNLATCH_DATABASE_URL", url.as_str())
            .args(["--", "echo", "started"]));
        assert_eq!(code(&out), 0, "{engine:?}");
        assert!(
            stderr(&out).contains("does not exist yet: nothing to heal"),
            "{}",
            stderr(&out)
        );
    }
    let scratch = Scratch::new("nofile");
    let out = run(unlatch()
        .env("database__client", "sqlite3")
        .env(
            "database__connection__filename",
            scratch.path().join("content/data/ghost.db"),
        )
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("does not exist yet"));
}

#[test]
fn ghost_config_file_in_the_working_directory() {
    let scratch = Scratch::new("ghostcfg");
    let db = scratch.path().join("ghost.db");
    sqlx_exec(&format!("sqlite://{}", db.display()), STALE_LOCK);
    std::fs::write(
        scratch.path().join("config.production.json"),
        format!(r#"{{"url":"http://localhost:2368","database":{{"client":"sqlite3","connection":{{"filename":"{}"}}}}}}"#, db.display()),
    )
    .unwrap();
    let out = run(unlatch()
        .current_dir(scratch.path())
        .env("NODE_ENV", "production")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("freed it"), "{}", stderr(&out));
    // A broken file is a configuration error naming it.
    std::fs::write(scratch.path().join("config.production.json"), "{").unwrap();
    let out = run(unlatch()
        .current_dir(scratch.path())
        .env("NODE_ENV", "production")
        .args(["--", "true"]));
    assert_eq!(code(&out), 64);
    assert!(
        stderr(&out).contains("config.production.json"),
        "{}",
        stderr(&out)
    );
}

fn sqlx_exec(url: &str, statements: &[&str]) {
    std::fs::File::create(url.trim_start_matches("sqlite://")).unwrap();
    sql(url, statements);
}

#[test]
fn json_log_is_one_object_a_line() {
    let scratch = Scratch::new("json");
    let url = format!("sqlite://{}", scratch.path().join("app.db").display());
    sqlx_exec(&url, STALE_LOCK);
    let out = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &url)
        .env("UNLATCH_LOG_FORMAT", "json")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    let lines: Vec<serde_json::Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "info" && l["msg"].as_str().unwrap().contains("freed it")),
        "{lines:?}"
    );
}

#[test]
fn non_utf8_variable_is_named() {
    use std::os::unix::ffi::OsStrExt;
    let out = run(unlatch()
        .env(
            "UNLATCH_MIGRATE_CMD",
            std::ffi::OsStr::from_bytes(b"migrate \xff"),
        )
        .args(["--", "true"]));
    assert_eq!(code(&out), 64);
    assert!(
        stderr(&out).contains("UNLATCH_MIGRATE_CMD is not valid UTF-8"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn forced_tool_without_its_table_has_nothing_to_heal() {
    let scratch = Scratch::new("notable");
    let url = format!("sqlite://{}", scratch.path().join("app.db").display());
    sqlx_exec(&url, &["create table posts (id integer)"]);
    let out = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &url)
        .env("UNLATCH_TOOL", "knex-migrator")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert!(
        stderr(&out).contains("no migration lock table found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_failed_start_writes_its_reason_for_kubernetes() {
    // Kubernetes' terminationMessagePath: `kubectl describe pod` shows it.
    let scratch = Scratch::new("termination_log");
    let message = scratch.path().join("termination-log");
    std::fs::write(&message, "").unwrap();
    let unreachable = format!("postgres://app:{PASSWORD}@127.0.0.1:1/app");
    let out = run(unlatch()
        .env("UNLATCH_TERMINATION_LOG", &message)
        .env("UNLATCH_DATABASE_URL", &unreachable)
        .env("UNLATCH_WAIT_TIMEOUT", "1s")
        .args(["--", "true"]));
    assert_eq!(code(&out), 69);
    let logged = stderr(&out)
        .lines()
        .find(|l| l.starts_with("unlatch: error: "))
        .expect("an error line")
        .to_owned();
    let written = std::fs::read_to_string(&message).unwrap();
    assert_eq!(written, format!("{logged}\n"), "the line unlatch logged");
    assert!(
        written.contains("app:***@127.0.0.1"),
        "the password is masked: {written}"
    );
    assert_no_secret(&written);

    // A configuration error is a failed start too; it replaces the last.
    // The path may come from a secret file, with the file's newline.
    let mut with_newline = message.clone().into_os_string();
    with_newline.push("\n");
    for path in [message.clone().into_os_string(), with_newline] {
        std::fs::write(&message, "an earlier start's reason\n").unwrap();
        let out = run(unlatch()
            .env("UNLATCH_TERMINATION_LOG", &path)
            .env("UNLATCH_LOCK_TTL", "soon")
            .args(["--", "true"]));
        assert_eq!(code(&out), 64);
        let written = std::fs::read_to_string(&message).unwrap();
        assert!(
            written.starts_with("unlatch: error: UNLATCH_LOCK_TTL=soon")
                && written.lines().count() == 1,
            "{path:?}: {written}"
        );
    }

    // Success writes nothing; `status` is no start.
    std::fs::write(&message, "").unwrap();
    let out = run(unlatch()
        .env("UNLATCH_TERMINATION_LOG", &message)
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    let out = run(unlatch()
        .env("UNLATCH_TERMINATION_LOG", &message)
        .env("UNLATCH_DATABASE_URL", &unreachable)
        .env("UNLATCH_WAIT_TIMEOUT", "1s")
        .arg("status"));
    assert_ne!(code(&out), 0);
    assert_eq!(std::fs::read_to_string(&message).unwrap(), "");

    // Only into a file that exists: it is never created.
    let missing = scratch.path().join("no-such-log");
    let out = run(unlatch()
        .env("UNLATCH_TERMINATION_LOG", &missing)
        .env("UNLATCH_LOCK_TTL", "soon")
        .args(["--", "true"]));
    assert_eq!(code(&out), 64);
    assert!(!missing.exists());
}

/// A password pasted into a URL without percent-encoding, as users do
/// (from a secret, with `@`, `/`, `#` or `?` in it): the URL parser ends
/// the password early and reads the rest as host and path. Whatever the
/// parser made of it, nothing between `user:` and the URL's last `@` is
/// shown, in the log or the termination log.
#[test]
fn an_unencoded_password_is_masked_up_to_the_last_at() {
    let scratch = Scratch::new("unencoded_password");
    let message = scratch.path().join("termination-log");
    for password in [
        format!("pa@ss/{PASSWORD}"),
        format!("pa@ss:/{PASSWORD}"),
        format!("pa@ss?{PASSWORD}"),
        format!("pa@ss#{PASSWORD}"),
    ] {
        std::fs::write(&message, "").unwrap();
        let url = format!("postgres://app:{password}@127.0.0.1:1/app");
        let out = run(unlatch()
            .env("UNLATCH_TERMINATION_LOG", &message)
            .env("DATABASE_URL", &url)
            .env("UNLATCH_WAIT_TIMEOUT", "1s")
            .args(["--", "true"]));
        assert!(
            matches!(code(&out), 64 | 69),
            "{password}: {}",
            stderr(&out)
        );
        let written = std::fs::read_to_string(&message).unwrap();
        assert_no_secret(&written);
        assert!(written.contains("app:***@"), "{written}");
    }
}

/// Ghost's own variables take a password as it is, any character
/// (knex hands it to mysql2 unchanged): `%41` in it is three characters,
/// not an escaped `A`. And `database__connection__host=::1`, an IPv6
/// address as knex takes it, without brackets (reached here through a
/// forwarder on `[::1]`, since the test server listens on 127.0.0.1 only).
#[test]
fn ghost_variables_take_any_password_and_an_ipv6_host() {
    let Some(server) = server_url(Engine::MySql, "ghost_any_password") else {
        return;
    };
    let server = url::Url::parse(&server).unwrap();
    let to = format!(
        "{}:{}",
        server.host_str().unwrap(),
        server.port().unwrap_or(3306)
    );
    let user = unique("gp");
    let password = format!("{PASSWORD} 50%41 p@ss:/#?&'\"\\ end");
    sql(
        server.as_str(),
        &[&format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY '{}'",
            password.replace('\\', "\\\\").replace('\'', "\\'")
        )],
    );
    let listener = std::net::TcpListener::bind("[::1]:0").expect("::1 on this machine");
    let port = listener.local_addr().unwrap().port();
    forward(listener, to);
    for (host, port) in [
        (
            server.host_str().unwrap().to_owned(),
            server.port().unwrap_or(3306),
        ),
        ("::1".to_owned(), port),
    ] {
        let out = run(unlatch()
            .env("database__client", "mysql")
            .env("database__connection__host", &host)
            .env("database__connection__port", port.to_string())
            .env("database__connection__user", &user)
            .env("database__connection__password", &password)
            .env("database__connection__database", "information_schema")
            .env("UNLATCH_WAIT_TIMEOUT", "5s")
            .args(["--", "echo", "started"]));
        assert_eq!(code(&out), 0, "host {host}: {}", stderr(&out));
        assert_eq!(stdout(&out), "started\n");
        assert!(!stderr(&out).contains("50%41"), "{}", stderr(&out));
    }
    sql(server.as_str(), &[&format!("DROP USER '{user}'@'%'")]);
}
