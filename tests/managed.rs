//! The README's managed-database recipes (examples/managed/), each run as
//! written against a local server set up the way that provider's is: TLS
//! required (common::tls: `hostssl` only, `--require-secure-transport`),
//! and the CA handed over as the provider hands it. Only the parts the
//! recipe asks the user to replace (`<...>`: endpoint, password, where the
//! CA file is) are filled in; every parameter is the recipe's own.
//!
//! Each heals a stale knex-migrator lock through TLS, and each is also
//! shown to verify: the same recipe with an unrelated CA is refused.

#[macro_use]
mod common;

use std::path::Path;
use std::process::Output;

use common::tls::{enc, Pki, TlsServers, USER};
use common::*;

fn recipe(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `NAME=value` lines of a Docker `--env-file` (comments skipped).
fn env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').expect("NAME=value");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// A stale knex-migrator lock (taken a day ago, never released).
const STALE_LOCK: [&str; 3] = [
    "DROP TABLE IF EXISTS migrations_lock",
    "CREATE TABLE migrations_lock (lock_key varchar(191) NOT NULL PRIMARY KEY, locked boolean, \
     acquired_at timestamp NULL, released_at timestamp NULL)",
    "INSERT INTO migrations_lock VALUES ('km01', true, CURRENT_TIMESTAMP - INTERVAL '1' DAY, NULL)",
];
const LOCKED: &str =
    "SELECT CASE WHEN locked THEN 1 ELSE 0 END FROM migrations_lock WHERE lock_key = 'km01'";

fn run_with(vars: &[(String, String)], cwd: Option<&Path>) -> Output {
    let mut cmd = unlatch();
    cmd.env("UNLATCH_WAIT_TIMEOUT", "20s");
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

fn assert_healed(out: &Output, locked_after: &str, what: &str) {
    assert_eq!(code(out), 0, "{what}: {}", stderr(out));
    assert!(stderr(out).contains("stale"), "{what}: {}", stderr(out));
    assert_eq!(locked_after, "0", "{what}: the lock is still held");
    let all = format!("{}{}", stdout(out), stderr(out));
    assert!(
        !all.contains(PASSWORD),
        "{what}: the password showed: {all}"
    );
}

fn assert_refused(out: &Output, what: &str) {
    assert_eq!(code(out), 69, "{what}: {}", stderr(out));
    assert!(
        stderr(out).contains("not signed by a trusted CA") || stderr(out).contains("UnknownIssuer"),
        "{what}: {}",
        stderr(out)
    );
}

/// The recipe's `DATABASE_URL` with its `<...>` endpoint and password
/// filled in for the local server; scheme, path and query are the recipe's.
fn fill_url(url: &str, endpoint: &str, port: u16, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path_and_query) = rest.split_once('/').unwrap();
    assert!(
        authority.contains(":<password>@") && authority.contains(endpoint),
        "{url}: expected the provider's endpoint and a password to fill in"
    );
    format!(
        "{scheme}://{user}:{}@localhost:{port}/{path_and_query}",
        enc(PASSWORD)
    )
}

#[test]
fn rds_postgres_verifies_against_the_regions_bundle() {
    let Some(s) = TlsServers::get("managed_rds") else {
        return;
    };
    s.postgres_sql(
        "postgres",
        &["DROP DATABASE IF EXISTS app", "CREATE DATABASE app"],
    );
    let vars = env_file(&recipe("examples/managed/rds-postgres.env"));
    let [(name, url)] = vars.as_slice() else {
        panic!("one variable expected: {vars:?}")
    };
    assert_eq!(name, "DATABASE_URL");
    // RDS hands out a bundle of many CAs, the server's among them.
    let dir = Scratch::new("managed-rds");
    let bundle = dir.path().join("rds-global-bundle.pem");
    let other = Pki::read(&s.pki.other_ca());
    std::fs::write(&bundle, other.clone() + &Pki::read(&s.pki.ca())).unwrap();
    let url = fill_url(url, ".rds.amazonaws.com", s.postgres_port, USER).replace(
        "/etc/ssl/certs/rds-global-bundle.pem",
        &bundle.display().to_string(),
    );
    assert!(url.contains("sslmode=verify-full"), "{url}");

    s.postgres_sql("app", &STALE_LOCK);
    let out = run_with(&[(name.clone(), url.clone())], None);
    assert_healed(&out, &s.postgres_sql("app", &[LOCKED]), "RDS recipe");

    std::fs::write(&bundle, other).unwrap();
    s.postgres_sql("app", &STALE_LOCK);
    assert_refused(
        &run_with(&[(name.clone(), url)], None),
        "RDS recipe, another bundle",
    );
    assert_eq!(
        s.postgres_sql("app", &[LOCKED]),
        "1",
        "no write when refused"
    );
}

#[test]
fn neon_verifies_against_the_system_roots() {
    let Some(s) = TlsServers::get("managed_neon") else {
        return;
    };
    s.postgres_sql(
        "postgres",
        &["DROP DATABASE IF EXISTS neondb", "CREATE DATABASE neondb"],
    );
    let vars = env_file(&recipe("examples/managed/neon.env"));
    let [(name, url)] = vars.as_slice() else {
        panic!("one variable expected: {vars:?}")
    };
    let url = fill_url(url, ".neon.tech", s.postgres_port, USER);
    // Neon's certificate is from a public authority, which the system's
    // bundle holds: here the bundle holds the local server's CA.
    let dir = Scratch::new("managed-neon");
    let system = dir.path().join("ca-certificates.crt");
    std::fs::write(&system, Pki::read(&s.pki.ca())).unwrap();
    let mut vars = vec![
        (name.clone(), url),
        ("SSL_CERT_FILE".into(), system.display().to_string()),
    ];

    s.postgres_sql("neondb", &STALE_LOCK);
    let out = run_with(&vars, None);
    assert_healed(&out, &s.postgres_sql("neondb", &[LOCKED]), "Neon recipe");

    // The URL Neon's console shows verifies the same way.
    let console = vars[0].1.replace(
        "sslmode=verify-full",
        "sslmode=require&channel_binding=require",
    );
    assert_ne!(console, vars[0].1);
    let mut console_vars = vars.clone();
    console_vars[0].1 = console;
    s.postgres_sql("neondb", &STALE_LOCK);
    let out = run_with(&console_vars, None);
    assert_healed(
        &out,
        &s.postgres_sql("neondb", &[LOCKED]),
        "Neon console URL",
    );

    for vars in [&mut vars, &mut console_vars] {
        vars[1].1 = s.pki.other_ca().display().to_string();
        s.postgres_sql("neondb", &STALE_LOCK);
        assert_refused(&run_with(vars, None), "Neon recipe, other roots");
        assert_eq!(
            s.postgres_sql("neondb", &[LOCKED]),
            "1",
            "no write when refused"
        );
    }
}

#[test]
fn digitalocean_mysql_with_ghost_takes_the_ca_certificate_inline() {
    let Some(s) = TlsServers::get("managed_digitalocean") else {
        return;
    };
    let text = recipe("examples/managed/digitalocean-ghost/config.production.json");
    let write_config = |dir: &Path, ca: &str| {
        let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
        let connection = &mut config["database"]["connection"];
        assert!(connection["host"]
            .as_str()
            .unwrap()
            .ends_with(".db.ondigitalocean.com"));
        assert_eq!(connection["port"], 25060, "DigitalOcean's MySQL port");
        connection["host"] = "localhost".into();
        connection["port"] = s.mariadb_port.into();
        connection["user"] = USER.into();
        connection["ssl"]["ca"] = ca.into();
        std::fs::write(dir.join("config.production.json"), config.to_string()).unwrap();
    };
    let dir = Scratch::new("managed-digitalocean");
    // DigitalOcean gives a CA certificate to download, ca-certificate.crt.
    write_config(dir.path(), &Pki::read(&s.pki.ca()));
    let vars = [
        ("NODE_ENV".to_string(), "production".to_string()),
        ("database__connection__password".into(), PASSWORD.into()),
    ];
    s.mariadb_sql(&["CREATE DATABASE IF NOT EXISTS ghost"]);
    let in_ghost = |sql: &[&str]| {
        let mut all = vec!["USE ghost"];
        all.extend(sql);
        s.mariadb_sql(&all)
    };
    in_ghost(&STALE_LOCK);
    let out = run_with(&vars, Some(dir.path()));
    assert_healed(&out, &in_ghost(&[LOCKED]), "DigitalOcean recipe");

    write_config(dir.path(), &Pki::read(&s.pki.other_ca()));
    in_ghost(&STALE_LOCK);
    assert_refused(
        &run_with(&vars, Some(dir.path())),
        "DigitalOcean recipe, another CA",
    );
    assert_eq!(in_ghost(&[LOCKED]), "1", "no write when refused");
    std::fs::remove_file(dir.path().join("config.production.json")).unwrap();
}
