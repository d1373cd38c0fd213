//! TLS against real TLS-only servers (common::tls): every sslmode and
//! ssl-mode, libpq's PGSSL* variables, client certificates, Ghost's `ssl`
//! settings in variables and in its config file; a wrong CA and a wrong
//! host name refused at once, naming the host and the reason; neither the
//! password nor a private key ever shown.

#[macro_use]
mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::tls::{enc, Pki, TlsServers, USER};
use common::*;

/// Long enough that a retried refusal would show.
const WAIT: &str = "20s";

fn preflight(vars: &[(&str, &str)]) -> (Output, Duration) {
    let mut cmd = unlatch();
    cmd.env("UNLATCH_WAIT_TIMEOUT", WAIT);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = run(&mut cmd);
    (out, started.elapsed())
}

fn with_url(url: &str) -> (Output, Duration) {
    preflight(&[("DATABASE_URL", url)])
}

fn assert_ok(out: &Output, what: &str) {
    assert_eq!(code(out), 0, "{what}: {}", stderr(out));
}

/// Refused in its handshake: exit 69 well before the wait is out, the host
/// and the reason named.
fn assert_refused(out: &Output, took: Duration, host: &str, reason: &str) {
    let err = stderr(out);
    assert_eq!(code(out), 69, "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}: {err}");
    assert!(err.contains(&format!("TLS with {host}:")), "{err}");
    assert!(err.contains(reason), "{reason}: {err}");
    assert!(!err.contains("within UNLATCH_WAIT_TIMEOUT"), "{err}");
}

fn key_body(pki: &Pki) -> String {
    let key = Pki::read(&pki.client_key());
    key.lines().nth(2).unwrap().to_owned()
}

#[test]
fn postgres_sslmodes() {
    let Some(s) = TlsServers::get("postgres_sslmodes") else {
        return;
    };
    let ca = enc(&s.pki.ca().display().to_string());
    for query in [
        String::new(),
        "sslmode=allow".into(),
        "sslmode=prefer".into(),
        "sslmode=require".into(),
        format!("sslmode=verify-ca&sslrootcert={ca}"),
        format!("sslmode=require&sslrootcert={ca}"),
    ] {
        let (out, _) = with_url(&s.postgres_url("127.0.0.1", "test", &query));
        assert_ok(&out, &query);
    }
    let (out, _) = with_url(&s.postgres_url(
        "localhost",
        "test",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ));
    assert_ok(&out, "verify-full as localhost");
    // The server asks for TLS: plaintext is turned down by pg_hba.
    let (out, _) = with_url(&s.postgres_url("127.0.0.1", "test", "sslmode=disable"));
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("no encryption"), "{}", stderr(&out));
}

#[test]
fn postgres_wrong_ca_and_wrong_host_are_refused_at_once() {
    let Some(s) = TlsServers::get("postgres_refusals") else {
        return;
    };
    let ca = enc(&s.pki.ca().display().to_string());
    let other = enc(&s.pki.other_ca().display().to_string());
    for query in [
        format!("sslmode=verify-ca&sslrootcert={other}"),
        // libpq: a root certificate makes require verify the chain.
        format!("sslmode=require&sslrootcert={other}"),
        format!("sslmode=prefer&sslrootcert={other}"),
        // The system's roots know nothing of the tests' CA.
        "sslrootcert=system".into(),
    ] {
        let (out, took) = with_url(&s.postgres_url("localhost", "test", &query));
        assert_refused(&out, took, "localhost", "not signed by a trusted CA");
    }
    let (out, took) = with_url(&s.postgres_url(
        "127.0.0.1",
        "test",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ));
    assert_refused(&out, took, "127.0.0.1", "not valid for this host name");
    // channel_binding=require: verified instead, so an unknown CA fails.
    let (out, took) = with_url(&s.postgres_url(
        "localhost",
        "test",
        "sslmode=require&channel_binding=require",
    ));
    assert_refused(&out, took, "localhost", "not signed by a trusted CA");
    let (out, _) = with_url(&s.postgres_url(
        "localhost",
        "test",
        &format!("sslmode=require&channel_binding=require&sslrootcert={ca}"),
    ));
    assert_ok(&out, "channel_binding with the CA");
}

#[test]
fn postgres_pgssl_variables_fill_what_the_url_leaves_out() {
    let Some(s) = TlsServers::get("postgres_pgssl") else {
        return;
    };
    let ca = s.pki.ca().display().to_string();
    let other = s.pki.other_ca().display().to_string();
    let url = s.postgres_url("localhost", "test", "");
    let (out, _) = preflight(&[
        ("DATABASE_URL", &url),
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", &ca),
    ]);
    assert_ok(&out, "PGSSLMODE=verify-full");
    let (out, took) = preflight(&[
        ("DATABASE_URL", &url),
        ("PGSSLMODE", "verify-ca"),
        ("PGSSLROOTCERT", &other),
    ]);
    assert_refused(&out, took, "localhost", "not signed by a trusted CA");
    // The URL wins.
    let url = s.postgres_url("127.0.0.1", "test", "sslmode=require");
    let (out, _) = preflight(&[
        ("DATABASE_URL", &url),
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", &ca),
    ]);
    assert_ok(&out, "the URL's sslmode wins");
    let (out, _) = preflight(&[("DATABASE_URL", &url), ("PGSSLMODE", "Require")]);
    assert_ok(&out, "the URL's sslmode wins over a bad PGSSLMODE");
    let url = s.postgres_url("127.0.0.1", "test", "");
    let (out, _) = preflight(&[("DATABASE_URL", &url), ("PGSSLMODE", "Require")]);
    assert_eq!(code(&out), 64);
    assert!(
        stderr(&out).contains("sslmode=Require: expected disable, allow"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn postgres_client_certificate_as_file_and_inline() {
    let Some(s) = TlsServers::get("postgres_client_cert") else {
        return;
    };
    let (cert, key) = (s.pki.client_cert(), s.pki.client_key());
    let (out, _) = with_url(&s.postgres_url("127.0.0.1", "certs", "sslmode=require"));
    assert_ne!(code(&out), 0, "a client certificate is required");
    let query = format!(
        "sslmode=require&sslcert={}&sslkey={}",
        enc(&cert.display().to_string()),
        enc(&key.display().to_string())
    );
    let (out, _) = with_url(&s.postgres_url("127.0.0.1", "certs", &query));
    assert_ok(&out, "client certificate files");
    let query = format!(
        "sslmode=require&sslcert={}&sslkey={}",
        enc(&Pki::read(&cert)),
        enc(&Pki::read(&key))
    );
    let mut cmd = unlatch();
    cmd.env("DATABASE_URL", s.postgres_url("127.0.0.1", "certs", &query))
        .env("UNLATCH_LOG", "debug");
    let out = run(&mut cmd);
    assert_ok(&out, "inline client certificate");
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains(&key_body(&s.pki)), "the key showed: {all}");
    assert!(all.contains("sslkey=<inline PEM: PRIVATE KEY>"), "{all}");
    // An inline key the server turns down still never shows.
    let query = format!(
        "sslmode=require&sslcert={}&sslkey={}",
        enc(&Pki::read(&cert)),
        enc(&Pki::read(&key))
    );
    let url = s
        .postgres_url("127.0.0.1", "certs", &query)
        .replace(&format!("{USER}:"), "nobody:");
    let (out, _) = with_url(&url);
    assert_ne!(code(&out), 0);
    assert!(
        !stderr(&out).contains(&key_body(&s.pki)),
        "{}",
        stderr(&out)
    );
}

#[test]
fn mysql_ssl_modes() {
    let Some(s) = TlsServers::get("mysql_ssl_modes") else {
        return;
    };
    let ca = enc(&s.pki.ca().display().to_string());
    for query in [
        String::new(),
        "ssl-mode=PREFERRED".into(),
        "ssl-mode=required".into(),
        "ssl-mode=REQUIRED".into(),
        format!("ssl-mode=VERIFY_CA&ssl-ca={ca}"),
        format!("ssl-ca={ca}"),
    ] {
        let (out, _) = with_url(&s.mysql_url("127.0.0.1", USER, &query));
        assert_ok(&out, &query);
    }
    let (out, _) = with_url(&s.mysql_url(
        "localhost",
        USER,
        &format!("ssl-mode=verify_identity&ssl-ca={ca}"),
    ));
    assert_ok(&out, "VERIFY_IDENTITY as localhost");
}

/// A server that takes TLS only, asked for plaintext: said at once (a
/// retry would meet the same refusal), the setting to change named.
#[test]
fn plaintext_to_a_tls_only_server_is_refused_at_once() {
    let Some(s) = TlsServers::get("plaintext_refused") else {
        return;
    };
    for url in [
        s.mysql_url("127.0.0.1", USER, "ssl-mode=DISABLED"),
        s.postgres_url("127.0.0.1", "test", "sslmode=disable"),
    ] {
        let (out, took) = with_url(&url);
        let err = stderr(&out);
        assert!(matches!(code(&out), 69 | 77), "{url}: {err}");
        assert!(took < Duration::from_secs(5), "{url}: took {took:?}: {err}");
        assert!(err.contains("TLS"), "{url}: {err}");
        assert!(!err.contains(PASSWORD), "{err}");
    }
}

#[test]
fn mysql_wrong_ca_and_wrong_host_are_refused_at_once() {
    let Some(s) = TlsServers::get("mysql_refusals") else {
        return;
    };
    let ca = enc(&s.pki.ca().display().to_string());
    let other = enc(&s.pki.other_ca().display().to_string());
    let (out, took) = with_url(&s.mysql_url(
        "localhost",
        USER,
        &format!("ssl-mode=VERIFY_CA&ssl-ca={other}"),
    ));
    assert_refused(&out, took, "localhost", "not signed by a trusted CA");
    let (out, took) = with_url(&s.mysql_url(
        "127.0.0.1",
        USER,
        &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
    ));
    assert_refused(&out, took, "127.0.0.1", "not valid for this host name");
}

#[test]
fn mysql_client_certificate() {
    let Some(s) = TlsServers::get("mysql_client_cert") else {
        return;
    };
    let mut cmd = unlatch();
    cmd.env(
        "DATABASE_URL",
        s.mysql_url("127.0.0.1", "certified", "ssl-mode=REQUIRED"),
    );
    assert_eq!(
        code(&run(&mut cmd)),
        77,
        "REQUIRE X509 without a certificate"
    );
    let query = format!(
        "ssl-mode=REQUIRED&ssl-cert={}&ssl-key={}",
        enc(&s.pki.client_cert().display().to_string()),
        enc(&s.pki.client_key().display().to_string())
    );
    let (out, _) = with_url(&s.mysql_url("127.0.0.1", "certified", &query));
    assert_ok(&out, "client certificate");
}

fn ghost_env(s: &TlsServers, user: &str) -> Vec<(String, String)> {
    [
        ("database__client", "mysql"),
        ("database__connection__host", "localhost"),
        ("database__connection__user", user),
        ("database__connection__password", PASSWORD),
        ("database__connection__database", "test"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([(
        "database__connection__port".to_string(),
        s.mariadb_port.to_string(),
    )])
    .collect()
}

fn ghost(s: &TlsServers, user: &str, extra: &[(&str, String)]) -> (Output, Duration) {
    let mut vars = ghost_env(s, user);
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    preflight(&refs)
}

#[test]
fn ghost_ssl_variables() {
    let Some(s) = TlsServers::get("ghost_ssl_variables") else {
        return;
    };
    let ca = Pki::read(&s.pki.ca());
    let (out, _) = ghost(s, USER, &[("database__connection__ssl__ca", ca.clone())]);
    assert_ok(&out, "ssl__ca");
    assert!(
        stderr(&out).contains("ssl-ca=<inline PEM: CERTIFICATE>")
            || !stderr(&out).contains("BEGIN")
    );
    let (out, _) = ghost(
        s,
        USER,
        &[(
            "database__connection__ssl__rejectUnauthorized",
            "false".into(),
        )],
    );
    assert_ok(&out, "rejectUnauthorized=false");
    let (out, took) = ghost(
        s,
        USER,
        &[(
            "database__connection__ssl__ca",
            Pki::read(&s.pki.other_ca()),
        )],
    );
    assert_refused(&out, took, "localhost", "not signed by a trusted CA");
    // mysql2 checks no host name unless verifyIdentity: 127.0.0.1 passes.
    let mut vars = vec![("database__connection__ssl__ca", ca.clone())];
    vars.push(("database__connection__host", "127.0.0.1".into()));
    let (out, _) = ghost(s, USER, &vars);
    assert_ok(&out, "ssl__ca at 127.0.0.1");
    vars.push(("database__connection__ssl__verifyIdentity", "true".into()));
    let (out, took) = ghost(s, USER, &vars);
    assert_refused(&out, took, "127.0.0.1", "not valid for this host name");
    let (out, _) = ghost(s, USER, &[("database__connection__ssl", "true".into())]);
    assert_eq!(code(&out), 64, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("SSL profile must be an object"),
        "{}",
        stderr(&out)
    );
    // Without ssl, mysql2 sends no TLS request: the server turns it down.
    let mut cmd = unlatch();
    cmd.env("UNLATCH_WAIT_TIMEOUT", "1s");
    for (k, v) in ghost_env(s, USER) {
        cmd.env(k, v);
    }
    assert_ne!(code(&run(&mut cmd)), 0);
}

#[test]
fn ghost_ssl_in_the_config_file_with_a_client_certificate() {
    let Some(s) = TlsServers::get("ghost_ssl_file") else {
        return;
    };
    let dir = Scratch::new("ghost-ssl-file");
    let config = serde_json::json!({
        "database": {
            "client": "mysql",
            "connection": {
                "host": "localhost",
                "port": s.mariadb_port,
                "user": "certified",
                "password": PASSWORD,
                "database": "test",
                "ssl": {
                    "ca": Pki::read(&s.pki.ca()),
                    "cert": Pki::read(&s.pki.client_cert()),
                    "key": Pki::read(&s.pki.client_key()),
                }
            }
        }
    });
    let file = dir.path().join("config.production.json");
    std::fs::write(&file, config.to_string()).unwrap();
    let mut cmd = unlatch();
    cmd.current_dir(dir.path())
        .env("NODE_ENV", "production")
        .env("UNLATCH_LOG", "debug")
        .env("UNLATCH_WAIT_TIMEOUT", WAIT);
    let out = run(&mut cmd);
    assert_ok(&out, "the file's ssl object");
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains(&key_body(&s.pki)), "the key showed: {all}");
    std::fs::remove_file(&file).unwrap();
}

/// A password that SASLprep changes (a no-break space is a space to it):
/// PostgreSQL kept its SCRAM verifier of the prepared form, psql and libpq
/// send that form, and so must unlatch (sqlx alone sends it as it is).
#[test]
fn postgres_password_in_saslprep_form() {
    let Some(s) = TlsServers::get("postgres_saslprep") else {
        return;
    };
    let password = "Unl4tch\u{a0}S3cret\u{fb01}";
    s.postgres_sql(
        "postgres",
        &[
            "DROP ROLE IF EXISTS prepped",
            &format!("CREATE ROLE prepped LOGIN PASSWORD '{password}'"),
        ],
    );
    let url = format!(
        "postgres://prepped:{}@localhost:{}/test?sslmode=require",
        enc(password),
        s.postgres_port
    );
    let (out, _) = with_url(&url);
    assert_ok(&out, "a password SASLprep changes");
    let (out, _) = with_url(&url.replace("S3cret", "Wr0ng"));
    assert_eq!(code(&out), 77, "{}", stderr(&out));
    assert!(!stderr(&out).contains("S3cret"), "{}", stderr(&out));
}
