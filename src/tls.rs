//! TLS: how a connection to MySQL/MariaDB or PostgreSQL is encrypted and
//! verified, with libpq's and MySQL's own meanings, through rustls (sqlx's
//! `tls-rustls-ring-native-roots`).
//!
//! [`settle`] rewrites a URL's TLS parameters into what sqlx reads. sqlx
//! verifies in three levels only: none, the chain (`verify-ca`,
//! `VERIFY_CA`), the chain and the host name (`verify-full`,
//! `VERIFY_IDENTITY`); everything else (libpq's `allow` and `prefer`
//! retries, `require` with a CA, `sslrootcert=system`, `PGSSL*`) is mapped
//! onto those here.
//!
//! Roots. sqlx adds a CA the settings name to the system's store
//! (rustls-native-certs: `SSL_CERT_FILE`, `SSL_CERT_DIR`, else
//! `/etc/ssl/certs`...), where libpq, MySQL's client and Node.js trust
//! that CA alone: `verify-ca` would pass any server holding any public
//! certificate. So when a CA is named, [`confine_roots`] points this
//! process's `SSL_CERT_FILE` at an empty file before any thread starts, and
//! every child gets the variables back as they were ([`restore_for_child`],
//! [`release_roots`]). With no CA, the system's roots are used; where
//! there are none (`FROM scratch`), the Mozilla roots built into unlatch
//! (webpki-root-certs) are handed to sqlx as an inline PEM.
//!
//! sqlx reads certificate settings from a URL as file paths only, so an
//! inline PEM (Ghost's `ssl__ca`, `-----BEGIN…` in a URL) is handed over as
//! a memory-only file of this process ([`for_sqlx`]).
//!
//! May touch: the certificate files the settings name (read only); memfds
//! of its own; this process's `SSL_CERT_FILE`/`SSL_CERT_DIR` (see
//! [`confine_roots`]).

use std::ffi::OsString;
use std::path::Path;
use std::sync::OnceLock;

use url::Url;

use crate::db::Kind;
use crate::env::Env;

/// What [`settle`] found besides the URL it rewrote.
#[derive(Debug, Default)]
pub struct Settled {
    /// Never to be shown (an inline client key, as given and as the URL
    /// encodes it).
    pub secrets: Vec<String>,
    pub warnings: Vec<String>,
    /// A CA was named: it alone is trusted (see [`confine_roots`]).
    pub only_given_roots: bool,
    /// libpq's `allow` and `prefer`: the `sslmode` of a second attempt when
    /// the server turns the first one down.
    pub fallback_sslmode: Option<&'static str>,
}

/// Rewrites `url`'s TLS parameters into the form sqlx reads, with the
/// meanings the database's own clients give them, and `env`'s `PGSSL*`
/// defaults where the URL says nothing. `Err` is the reason.
pub fn settle(kind: Kind, url: &mut Url, env: &Env) -> Result<Settled, String> {
    match kind {
        Kind::Postgres => postgres(url, env),
        Kind::MySql => mysql(url),
        Kind::Sqlite => Ok(Settled::default()),
    }
}

/// Takes the last of `keys` out of `url`'s query (all of them are
/// removed); the value as given, an empty one taken as unset.
fn take(pairs: &mut Vec<(String, String)>, keys: &[&str]) -> Option<String> {
    take_given(pairs, keys).filter(|v| !v.is_empty())
}

/// [`take`], an empty value kept: an empty mode is no mode to libpq or
/// MySQL's client, which refuse it rather than fall back to a default.
fn take_given(pairs: &mut Vec<(String, String)>, keys: &[&str]) -> Option<String> {
    let mut found = None;
    pairs.retain(|(k, v)| {
        if keys.contains(&k.as_str()) {
            // The last one wins, as in sqlx's and libpq's parsers.
            found = Some(v.clone());
            false
        } else {
            true
        }
    });
    found
}

/// A URL's query as owned pairs, in order.
pub(crate) fn query_pairs(url: &Url) -> Vec<(String, String)> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn set_query(url: &mut Url, pairs: &[(String, String)]) {
    url.set_query(None);
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
}

/// Whether a certificate setting is the PEM itself rather than a path
/// (sqlx's own test: `CertificateInput::from`).
fn is_inline(value: &str) -> bool {
    let value = value.trim();
    value.starts_with("-----BEGIN") && value.ends_with("-----")
}

/// What sqlx gets for a certificate setting: a path as it is; an inline
/// PEM as a memory-only file of this process (memfd, close-on-exec) named
/// by `/proc/self/fd/N`, since sqlx reads only paths from a URL. Nothing
/// is written to a disk, and no other user or child can open it.
fn for_sqlx(param: &str, value: &str) -> Result<String, String> {
    if !is_inline(value) {
        return Ok(value.to_owned());
    }
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let fd = nix::sys::memfd::memfd_create(c"unlatch-pem", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(|e| format!("{param}: cannot hold the PEM in memory: {e}"))?;
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let mut file = std::fs::File::from(fd);
    file.write_all(value.as_bytes())
        .map_err(|e| format!("{param}: cannot hold the PEM in memory: {e}"))?;
    if !Path::new(&path).exists() {
        return Err(format!(
            "{param}: an inline PEM needs /proc, which is not mounted; give a file path"
        ));
    }
    // Open for the life of the process: sqlx reads it at each connection.
    std::mem::forget(file);
    Ok(path)
}

/// A path named for a certificate or key must be readable now: sqlx would
/// only find out at each connection, as an I/O error it retries.
fn check_file(param: &str, value: &str) -> Result<(), String> {
    if is_inline(value) {
        return Ok(());
    }
    std::fs::File::open(value)
        .map(drop)
        .map_err(|e| format!("{param}={value}: cannot read the file: {e}"))
}

/// The client certificate and key: both or neither, as sqlx and the
/// databases' clients need them; an inline key is a secret.
fn client_identity(
    pairs: &mut Vec<(String, String)>,
    cert: (&str, Option<String>),
    key: (&str, Option<String>),
    settled: &mut Settled,
) -> Result<(), String> {
    match (&cert.1, &key.1) {
        (Some(c), Some(k)) => {
            check_file(cert.0, c)?;
            check_file(key.0, k)?;
            if is_inline(k) {
                settled.secrets.push(k.clone());
                settled.secrets.push(k.trim().to_owned());
                let encoded: String = url::form_urlencoded::byte_serialize(k.as_bytes()).collect();
                settled.secrets.push(encoded);
            }
            pairs.push((cert.0.to_owned(), for_sqlx(cert.0, c)?));
            pairs.push((key.0.to_owned(), for_sqlx(key.0, k)?));
            Ok(())
        }
        (None, None) => Ok(()),
        (Some(_), None) => Err(format!(
            "{} is given without {}: a client certificate needs its key",
            cert.0, key.0
        )),
        (None, Some(_)) => Err(format!(
            "{} is given without {}: a client key needs its certificate",
            key.0, cert.0
        )),
    }
}

/// How a verifying connection gets its roots when no CA is named.
fn system_or_bundled_roots(
    pairs: &mut Vec<(String, String)>,
    ca_param: &str,
) -> Result<(), String> {
    if has_system_roots() {
        log::debug!("TLS: no CA named; the system's roots verify the server");
    } else {
        log::info!(
            "TLS: no CA named and no system roots (SSL_CERT_FILE, SSL_CERT_DIR, /etc/ssl/certs...): \
             the Mozilla roots built into unlatch verify the server"
        );
        pairs.push((
            ca_param.to_owned(),
            for_sqlx(ca_param, bundled_roots_pem())?,
        ));
    }
    Ok(())
}

/// libpq's variables for what a URL leaves out, and the URL parameters
/// each stands for.
const PG_VARIABLES: &[(&str, &[&str])] = &[
    ("PGSSLMODE", &["sslmode", "ssl-mode"]),
    ("PGSSLROOTCERT", &["sslrootcert", "ssl-root-cert", "ssl-ca"]),
    ("PGSSLCERT", &["sslcert", "ssl-cert"]),
    ("PGSSLKEY", &["sslkey", "ssl-key"]),
    ("PGCHANNELBINDING", &["channel_binding"]),
];

/// [`postgres_settings`]; a refusal names the `PG*` variables that filled
/// in, since the user set those, not the URL's parameters it quotes.
fn postgres(url: &mut Url, env: &Env) -> Result<Settled, String> {
    let given = query_pairs(url);
    let filled: Vec<&str> = PG_VARIABLES
        .iter()
        .filter(|(var, keys)| {
            env.get(var).is_some() && !given.iter().any(|(k, _)| keys.contains(&k.as_str()))
        })
        .map(|(var, _)| *var)
        .collect();
    postgres_settings(url, env).map_err(|why| match filled.as_slice() {
        [] => why,
        vars => format!("{why} (taken from {})", vars.join(", ")),
    })
}

/// PostgreSQL's `sslmode` values, compared exactly as libpq compares them
/// (`REQUIRE` is not a mode); what any app's own sslmode setting must be.
pub const PG_SSLMODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// libpq's `sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
/// `channel_binding`, and their `PG*` variables.
fn postgres_settings(url: &mut Url, env: &Env) -> Result<Settled, String> {
    let mut pairs = query_pairs(url);
    let from_env = |name: &str| env.get(name).map(str::to_owned);
    let mode_given =
        take_given(&mut pairs, &["sslmode", "ssl-mode"]).or_else(|| from_env("PGSSLMODE"));
    let root = take(&mut pairs, &["sslrootcert", "ssl-root-cert", "ssl-ca"])
        .or_else(|| from_env("PGSSLROOTCERT"));
    let cert = take(&mut pairs, &["sslcert", "ssl-cert"]).or_else(|| from_env("PGSSLCERT"));
    let key = take(&mut pairs, &["sslkey", "ssl-key"]).or_else(|| from_env("PGSSLKEY"));
    let binding = take(&mut pairs, &["channel_binding"]).or_else(|| from_env("PGCHANNELBINDING"));
    let system = root.as_deref() == Some("system");

    let mode = match mode_given.as_deref() {
        Some(m) if PG_SSLMODES.contains(&m) => m,
        Some(m) => {
            return Err(format!(
                "sslmode={m}: expected disable, allow, prefer, require, verify-ca or verify-full"
            ))
        }
        // libpq 16: sslrootcert=system makes verify-full the default.
        None if system => "verify-full",
        None => "prefer",
    };
    if system && mode != "verify-full" {
        return Err(format!(
            "sslmode={mode} with sslrootcert=system: libpq refuses a weak sslmode with the system's roots; \
             expected sslmode=verify-full"
        ));
    }
    let mut settled = Settled::default();
    let ca = root.filter(|_| !system);
    if let Some(ca) = &ca {
        check_file("sslrootcert", ca)?;
    }
    // libpq verifies the chain in every mode once a root certificate is
    // given (SSL_VERIFY_PEER): require behaves as verify-ca, and prefer
    // falls back to plaintext when verification fails.
    let mut sqlx_mode = match (mode, &ca) {
        ("require" | "prefer" | "allow", Some(_)) => "verify-ca",
        (m, _) => m,
    };
    match binding.as_deref() {
        None | Some("prefer" | "disable") => {}
        Some("require") => {
            if matches!(mode, "disable" | "allow") {
                return Err(format!(
                    "channel_binding=require with sslmode={mode}: channel binding needs TLS; \
                     expected sslmode=require or stronger"
                ));
            }
            // sqlx 0.8.6 offers SCRAM-SHA-256 only, never -PLUS: the
            // binding cannot be done. What it guards against, a man in the
            // middle of an unverified TLS connection, is refused instead by
            // verifying the server's certificate and host name.
            if sqlx_mode != "verify-full" {
                log::info!(
                    "channel_binding=require: sqlx cannot bind SCRAM to the TLS channel (SCRAM-SHA-256-PLUS); \
                     unlatch verifies the server's certificate and host name instead (sslmode=verify-full)"
                );
                sqlx_mode = "verify-full";
            }
        }
        Some(other) => {
            return Err(format!(
                "channel_binding={other}: expected disable, prefer or require"
            ))
        }
    }
    settled.fallback_sslmode = match mode {
        // Plaintext first, TLS if the server turns it down.
        "allow" => Some("require").map(|m| if ca.is_some() { "verify-ca" } else { m }),
        // TLS first, plaintext if that fails.
        "prefer" if sqlx_mode != "verify-full" => Some("disable"),
        _ => None,
    };
    let sqlx_first = if mode == "allow" {
        "disable"
    } else {
        sqlx_mode
    };
    if mode == "require" && ca.is_some() {
        log::info!("sslmode=require with sslrootcert: verified as verify-ca, as libpq does");
    }
    pairs.push(("sslmode".into(), sqlx_first.into()));
    let verifying = matches!(sqlx_mode, "verify-ca" | "verify-full");
    match &ca {
        Some(ca) => {
            pairs.push(("sslrootcert".into(), for_sqlx("sslrootcert", ca)?));
            settled.only_given_roots = true;
        }
        None if verifying => system_or_bundled_roots(&mut pairs, "sslrootcert")?,
        None => {}
    }
    client_identity(&mut pairs, ("sslcert", cert), ("sslkey", key), &mut settled)?;
    set_query(url, &pairs);
    Ok(settled)
}

/// MySQL's `ssl-mode` (any case, as MySQL's client takes it), `ssl-ca`,
/// `ssl-cert`, `ssl-key`.
fn mysql(url: &mut Url) -> Result<Settled, String> {
    let mut pairs = query_pairs(url);
    let mode_given = take_given(&mut pairs, &["ssl-mode", "sslmode"]);
    let ca = take(&mut pairs, &["ssl-ca", "sslca"]);
    let cert = take(&mut pairs, &["ssl-cert", "sslcert"]);
    let key = take(&mut pairs, &["ssl-key", "sslkey"]);
    const MODES: &[&str] = &[
        "DISABLED",
        "PREFERRED",
        "REQUIRED",
        "VERIFY_CA",
        "VERIFY_IDENTITY",
    ];
    let mode = match mode_given.map(|m| m.to_ascii_uppercase()) {
        Some(m) if MODES.contains(&m.as_str()) => m,
        Some(m) => {
            return Err(format!(
                "ssl-mode={m}: expected DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY"
            ))
        }
        // A CA named with no mode asks for verification: the safe reading.
        None if ca.is_some() => "VERIFY_CA".to_owned(),
        None => "PREFERRED".to_owned(),
    };
    let mut settled = Settled::default();
    let verifying = matches!(mode.as_str(), "VERIFY_CA" | "VERIFY_IDENTITY");
    if let Some(ca) = &ca {
        check_file("ssl-ca", ca)?;
        if !verifying {
            settled.warnings.push(format!(
                "ssl-ca is given with ssl-mode={mode}, which does not verify the server's certificate \
                 (as MySQL's client); for verification use ssl-mode=VERIFY_CA or VERIFY_IDENTITY"
            ));
        }
    }
    pairs.push(("ssl-mode".into(), mode.clone()));
    match &ca {
        Some(ca) if verifying => {
            pairs.push(("ssl-ca".into(), for_sqlx("ssl-ca", ca)?));
            settled.only_given_roots = true;
        }
        None if verifying => system_or_bundled_roots(&mut pairs, "ssl-ca")?,
        _ => {}
    }
    client_identity(
        &mut pairs,
        ("ssl-cert", cert),
        ("ssl-key", key),
        &mut settled,
    )?;
    set_query(url, &pairs);
    Ok(settled)
}

/// Whether this machine has a CA bundle where rustls-native-certs looks
/// (openssl-probe's places, or `SSL_CERT_FILE`/`SSL_CERT_DIR`).
fn has_system_roots() -> bool {
    let found = openssl_probe::probe();
    found.cert_file.is_some()
        || found
            .cert_dir
            .iter()
            .any(|dir| std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()))
}

/// The Mozilla roots built into unlatch, as one PEM (made once).
fn bundled_roots_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| {
        use base64::Engine;
        let mut pem = String::new();
        for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
            let body = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
            pem.push_str("-----BEGIN CERTIFICATE-----\n");
            for line in body.as_bytes().chunks(64) {
                pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
                pem.push('\n');
            }
            pem.push_str("-----END CERTIFICATE-----\n");
        }
        pem
    })
}

const ROOT_VARIABLES: [&str; 2] = ["SSL_CERT_FILE", "SSL_CERT_DIR"];

/// The values `SSL_CERT_FILE`/`SSL_CERT_DIR` had before [`confine_roots`].
static ORIGINAL_ROOTS: OnceLock<Vec<(&'static str, Option<OsString>)>> = OnceLock::new();

/// When `only_given_roots`, empties the system's store for this process,
/// so that sqlx's rustls trusts the named CA alone. Call before any
/// thread starts (the environment is not safe to change beside readers).
pub fn confine_roots(only_given_roots: bool) {
    if !only_given_roots {
        return;
    }
    let original = ROOT_VARIABLES
        .iter()
        .map(|&name| (name, std::env::var_os(name)))
        .collect();
    if ORIGINAL_ROOTS.set(original).is_err() {
        return;
    }
    // An empty file: rustls-native-certs then loads no roots, and no error.
    std::env::set_var("SSL_CERT_FILE", "/dev/null");
    std::env::remove_var("SSL_CERT_DIR");
    log::debug!("TLS: a CA is named; it alone is trusted (the system's roots are left out)");
}

/// Gives a child the `SSL_CERT_*` variables this process started with.
pub fn restore_for_child(command: &mut std::process::Command) {
    for (name, value) in ORIGINAL_ROOTS.get().into_iter().flatten() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
}

/// Puts this process's `SSL_CERT_*` variables back, once its connections
/// are done and before it becomes or starts the app. Single-threaded
/// callers only, as [`confine_roots`].
pub fn release_roots() {
    for (name, value) in ORIGINAL_ROOTS.get().into_iter().flatten() {
        match value {
            Some(value) => std::env::set_var(name, value),
            None => std::env::remove_var(name),
        }
    }
}

/// `url` (already password-masked) with each inline PEM shown as its kind
/// only: a CA is long, a key is a secret.
pub fn shorten_inline_pems(url: &str) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|part| {
            let Some((key, value)) = part.split_once('=') else {
                return part.to_owned();
            };
            let decoded: String = url::form_urlencoded::parse(format!("v={value}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            match pem_label(&decoded) {
                Some(label) => format!("{key}=<inline {label}>"),
                None => part.to_owned(),
            }
        })
        .collect();
    let mut out = format!("{head}?{}", parts.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// `CERTIFICATE`, `PRIVATE KEY`... for a PEM; `None` for anything else.
fn pem_label(value: &str) -> Option<String> {
    let rest = value.trim().strip_prefix("-----BEGIN ")?;
    let label = &rest[..rest.find("-----")?];
    let count = value.matches("-----BEGIN ").count();
    Some(if count > 1 {
        format!("PEM: {count} × {label}")
    } else {
        format!("PEM: {label}")
    })
}

/// Why a connection failed in its TLS handshake, when it did: a rustls
/// error (a certificate that fails verification, an alert from the
/// server), which waiting will not change.
pub fn handshake_failure(err: &sqlx::Error) -> Option<String> {
    let io = match err {
        sqlx::Error::Io(io) => io,
        sqlx::Error::Tls(tls) => {
            return Some(match tls.downcast_ref::<rustls::Error>() {
                Some(e) => explain(e),
                None => tls.to_string(),
            })
        }
        _ => return None,
    };
    io.get_ref()?.downcast_ref::<rustls::Error>().map(explain)
}

fn explain(err: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let why = match err {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "its certificate is not signed by a trusted CA (unknown issuer)".to_owned()
        }
        rustls::Error::InvalidCertificate(C::NotValidForName) => {
            "its certificate is not valid for this host name".to_owned()
        }
        rustls::Error::InvalidCertificate(C::Expired) => "its certificate has expired".to_owned(),
        rustls::Error::InvalidCertificate(_) => {
            format!("its certificate failed verification ({err})")
        }
        other => format!("the handshake failed ({other})"),
    };
    why
}

#[cfg(test)]
fn param(url: &Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Variables and their values.
    type Vars = &'static [(&'static str, &'static str)];

    fn pg(url: &str, env: &[(&str, &str)]) -> Result<(Url, Settled), String> {
        let mut url = Url::parse(url).unwrap();
        let settled = settle(Kind::Postgres, &mut url, &Env::from_pairs(env))?;
        Ok((url, settled))
    }

    fn my(url: &str) -> Result<(Url, Settled), String> {
        let mut url = Url::parse(url).unwrap();
        let settled = settle(Kind::MySql, &mut url, &Env::default())?;
        Ok((url, settled))
    }

    /// A root certificate file of this test's own, removed when the first
    /// half is dropped, and its path.
    fn ca_file() -> (tempfile::TempPath, String) {
        let file = tempfile::Builder::new().suffix(".pem").tempfile().unwrap();
        std::fs::write(
            file.path(),
            "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let path = file.into_temp_path();
        let name = path.display().to_string();
        (path, name)
    }

    /// A PostgreSQL URL and PG* variables, and the `sslmode` sqlx is given,
    /// each row named after the behaviour it shows.
    #[rustfmt::skip]
    const PG_MODES: &[(&str, &str, Vars, &str)] = &[
        ("the URL wins over PGSSLMODE", "postgres://u@h/d?sslmode=disable", &[("PGSSLMODE", "require")], "disable"),
        ("PGSSLMODE fills a URL without one", "postgres://u@h/d", &[("PGSSLMODE", "require")], "require"),
        ("sslrootcert=system means verify-full", "postgres://u@h/d?sslrootcert=system", &[], "verify-full"),
        ("channel_binding=require verifies the server instead", "postgres://u@h/d?sslmode=require&channel_binding=require", &[], "verify-full"),
        ("channel_binding=prefer changes nothing", "postgres://u@h/d?sslmode=require&channel_binding=prefer", &[], "require"),
    ];

    #[test]
    fn each_url_and_pg_variables_give_their_sslmode() {
        for (behaviour, given, env, mode) in PG_MODES {
            let (url, settled) = pg(given, env).unwrap();
            assert_eq!(
                param(&url, "sslmode").as_deref(),
                Some(*mode),
                "{behaviour}"
            );
            assert!(!settled.only_given_roots, "{behaviour}");
        }
        let require = "postgres://u@h/d?sslmode=require&channel_binding=require";
        let (url, settled) = pg(require, &[]).unwrap();
        assert_eq!(param(&url, "channel_binding"), None);
        assert_eq!(settled.fallback_sslmode, None);
    }

    /// A URL refused, with PG* variables, and the start (`^`) or a part of
    /// the reason.
    #[rustfmt::skip]
    const REFUSED: &[(&str, Kind, &str, Vars, &str)] = &[
        // libpq: invalid sslmode value: "" (not PGSSLMODE, not prefer);
        // MySQL's client: --ssl-mode= is no mode either.
        ("an empty sslmode, whatever PGSSLMODE says", Kind::Postgres, "postgres://u@h/d?sslmode=", &[("PGSSLMODE", "disable")], "^sslmode=: expected disable"),
        ("an empty sslmode after another", Kind::Postgres, "postgres://u@h/d?sslmode=require&sslmode=", &[], "^sslmode=: expected"),
        ("an empty ssl-mode", Kind::MySql, "mysql://u@h/d?ssl-mode=", &[], "^ssl-mode=: expected DISABLED"),
        ("libpq's modes are lowercase", Kind::Postgres, "postgres://u@h/d?sslmode=REQUIRE", &[], "sslmode=REQUIRE: expected disable, allow"),
        ("a root certificate that cannot be read", Kind::Postgres, "postgres://u@h/d?sslrootcert=/nonexistent/ca.pem", &[], "sslrootcert=/nonexistent/ca.pem: cannot read the file"),
        ("sslrootcert=system with a weaker mode", Kind::Postgres, "postgres://u@h/d?sslrootcert=system&sslmode=require", &[], "expected sslmode=verify-full"),
        ("channel_binding=require without TLS", Kind::Postgres, "postgres://u@h/d?sslmode=disable&channel_binding=require", &[], "channel binding needs TLS"),
        ("an unknown channel_binding", Kind::Postgres, "postgres://u@h/d?channel_binding=maybe", &[], "^channel_binding=maybe: expected disable, prefer or require"),
        ("libpq's verify-full is no MySQL mode", Kind::MySql, "mysql://u@h/d?ssl-mode=verify-full", &[], "expected DISABLED"),
    ];

    #[test]
    fn each_refusal_says_why() {
        for (behaviour, kind, given, env, why) in REFUSED {
            let mut url = Url::parse(given).unwrap();
            let err = settle(*kind, &mut url, &Env::from_pairs(env)).unwrap_err();
            let ok = match why.strip_prefix('^') {
                Some(start) => err.starts_with(start),
                None => err.contains(why),
            };
            assert!(ok, "{behaviour}: {err}");
        }
    }

    #[test]
    fn libpq_modes_map_onto_sqlx() {
        for (given, first, fallback) in [
            ("", "prefer", Some("disable")),
            ("?sslmode=disable", "disable", None),
            ("?sslmode=allow", "disable", Some("require")),
            ("?sslmode=prefer", "prefer", Some("disable")),
            ("?sslmode=require", "require", None),
            ("?sslmode=verify-ca", "verify-ca", None),
            ("?sslmode=verify-full", "verify-full", None),
        ] {
            let (url, settled) = pg(&format!("postgres://u@h/d{given}"), &[]).unwrap();
            assert_eq!(param(&url, "sslmode").as_deref(), Some(first), "{given}");
            assert_eq!(settled.fallback_sslmode, fallback, "{given}");
            assert!(!settled.only_given_roots);
        }
    }

    #[test]
    fn a_root_certificate_makes_libpq_verify() {
        let (_file, ca) = ca_file();
        let (url, settled) = pg(
            &format!("postgres://u@h/d?sslmode=require&sslrootcert={ca}"),
            &[],
        )
        .unwrap();
        assert_eq!(param(&url, "sslmode").as_deref(), Some("verify-ca"));
        assert_eq!(param(&url, "sslrootcert").as_deref(), Some(ca.as_str()));
        assert!(settled.only_given_roots);
        let (url, settled) = pg(
            "postgres://u@h/d",
            &[("PGSSLMODE", "prefer"), ("PGSSLROOTCERT", &ca)],
        )
        .unwrap();
        assert_eq!(param(&url, "sslmode").as_deref(), Some("verify-ca"));
        assert_eq!(settled.fallback_sslmode, Some("disable"));
    }

    #[test]
    fn a_client_key_is_a_secret_and_needs_its_certificate() {
        let key = "-----BEGIN PRIVATE KEY-----\nS3cretKey\n-----END PRIVATE KEY-----";
        let cert = "-----BEGIN CERTIFICATE-----\nc\n-----END CERTIFICATE-----";
        let mut url = Url::parse("postgres://u@h/d?sslmode=require").unwrap();
        url.query_pairs_mut()
            .append_pair("sslcert", cert)
            .append_pair("sslkey", key);
        let (url, settled) = pg(url.as_str(), &[]).unwrap();
        assert!(settled.secrets.iter().any(|s| s == key));
        // sqlx gets a memory-only file, never the key in the URL.
        assert!(!url.as_str().contains("S3cretKey"), "{url}");
        let file = param(&url, "sslkey").unwrap();
        assert!(file.starts_with("/proc/self/fd/"), "{file}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), key);
        let mut url = Url::parse("postgres://u@h/d").unwrap();
        url.query_pairs_mut().append_pair("sslkey", key);
        let err = pg(url.as_str(), &[]).unwrap_err();
        assert!(err.contains("sslkey is given without sslcert"), "{err}");
        assert!(!err.contains("S3cret"));
    }

    #[test]
    fn mysql_modes_in_any_case() {
        for (given, mode) in [
            ("", "PREFERRED"),
            ("?ssl-mode=disabled", "DISABLED"),
            ("?ssl-mode=Required", "REQUIRED"),
            ("?ssl-mode=verify_ca", "VERIFY_CA"),
            ("?sslmode=VERIFY_IDENTITY", "VERIFY_IDENTITY"),
        ] {
            let (url, _) = my(&format!("mysql://u@h/d{given}")).unwrap();
            assert_eq!(param(&url, "ssl-mode").as_deref(), Some(mode), "{given}");
        }
        let (_file, ca) = ca_file();
        let (url, settled) = my(&format!("mysql://u@h/d?ssl-ca={ca}")).unwrap();
        assert_eq!(param(&url, "ssl-mode").as_deref(), Some("VERIFY_CA"));
        assert!(settled.only_given_roots);
        let (url, settled) = my(&format!("mysql://u@h/d?ssl-mode=REQUIRED&ssl-ca={ca}")).unwrap();
        assert_eq!(param(&url, "ssl-ca"), None);
        assert!(
            settled.warnings[0].contains("does not verify"),
            "{:?}",
            settled.warnings
        );
    }

    #[test]
    fn inline_pems_are_shown_short() {
        let mut url = Url::parse("mysql://u:***@h/d?ssl-mode=VERIFY_CA").unwrap();
        url.query_pairs_mut()
            .append_pair(
                "ssl-ca",
                "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n",
            )
            .append_pair(
                "ssl-key",
                "-----BEGIN PRIVATE KEY-----\nS3cret\n-----END PRIVATE KEY-----",
            );
        let shown = shorten_inline_pems(url.as_str());
        assert_eq!(
            shown,
            "mysql://u:***@h/d?ssl-mode=VERIFY_CA&ssl-ca=<inline PEM: CERTIFICATE>&ssl-key=<inline PEM: PRIVATE KEY>"
        );
        assert_eq!(shorten_inline_pems("postgres://u@h/d"), "postgres://u@h/d");
    }

    #[test]
    fn the_bundled_roots_parse() {
        let pem = bundled_roots_pem();
        let count = pem.matches("-----BEGIN CERTIFICATE-----").count();
        assert!(count > 100, "{count}");
        assert!(is_inline(pem));
    }
}
