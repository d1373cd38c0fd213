//! golang-migrate's URLs: `x-migrations-table` (plain or quoted), its
//! MySQL form (go-sql-driver's DSN, `tcp(host:port)`), and go-sql-driver's
//! `tls` with golang-migrate's `x-tls-*`.
//!
//! May touch: nothing; it reads text.

use super::{flag, Params};

/// golang-migrate's `x-migrations-table`: a plain name, or with
/// `x-migrations-table-quoted` a quoted `"schema"."table"`. golang-migrate
/// quotes the name in its SQL, and unlatch's adapters write it unquoted: a
/// name that quoting would change is refused rather than missed.
pub(super) fn migrations_table(
    value: &str,
    quoted: bool,
) -> Result<(Option<String>, String), String> {
    let (schema, name) = if quoted {
        let unquote = |part: &str| {
            part.strip_prefix('"')
                .and_then(|p| p.strip_suffix('"'))
                .map(str::to_owned)
        };
        let bad = || {
            format!("x-migrations-table={value}: expected \"table\" or \"schema\".\"table\" with x-migrations-table-quoted")
        };
        match value.split('.').collect::<Vec<_>>().as_slice() {
            [table] => (None, unquote(table).ok_or_else(bad)?),
            [schema, table] => (
                Some(unquote(schema).ok_or_else(bad)?),
                unquote(table).ok_or_else(bad)?,
            ),
            _ => return Err(bad()),
        }
    } else {
        (None, value.to_owned())
    };
    let plain = |name: &str| {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    if !plain(&name) || schema.as_deref().is_some_and(|s| !plain(s)) {
        return Err(format!(
            "x-migrations-table={value}: expected a lowercase name of letters, digits and _ \
             (golang-migrate quotes it, so any other name is one unlatch would not find)"
        ));
    }
    Ok((schema, name))
}

/// golang-migrate's MySQL URL is go-sql-driver's DSN behind `mysql://`:
/// `user:pass@tcp(host:port)/db` or `user:pass@unix(/path)/db`. Rewritten
/// to the URL form; any other URL is returned as it is.
pub(super) fn go_dsn_to_url(url: &str) -> Result<String, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(url.to_owned());
    };
    let (userinfo, address) = match rest.rfind("@tcp(").or_else(|| rest.rfind("@unix(")) {
        Some(at) => (&rest[..=at], &rest[at + 1..]),
        None if rest.starts_with("tcp(") || rest.starts_with("unix(") => ("", rest),
        None => return Ok(url.to_owned()),
    };
    let (net, inner) = address.split_once('(').expect("matched above");
    let (addr, tail) = inner
        .split_once(')')
        .ok_or_else(|| format!("{net}(: expected a closing parenthesis"))?;
    Ok(match net {
        "tcp" => format!("{scheme}://{userinfo}{addr}{tail}"),
        _ => {
            let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
            let socket: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("socket", addr)
                .finish();
            let query = if query.is_empty() {
                socket
            } else {
                format!("{query}&{socket}")
            };
            format!("{scheme}://{userinfo}localhost{path}?{query}")
        }
    })
}

/// A MySQL table name unlatch writes unquoted exactly as the tool quotes it.
pub(super) fn mysql_table(key: &str, value: &str) -> Result<String, String> {
    if crate::env::is_name(value) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{key}={value}: expected a table name of letters, digits and _"
        ))
    }
}

/// go-sql-driver's `tls` and golang-migrate's `x-tls-*`.
#[derive(Default)]
pub(super) struct GoTls {
    tls: Option<String>,
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    skip_verify: bool,
}

impl GoTls {
    pub(super) fn take(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "tls" => self.tls = Some(value.to_owned()),
            "x-tls-ca" => self.ca = Some(value.to_owned()),
            "x-tls-cert" => self.cert = Some(value.to_owned()),
            "x-tls-key" => self.key = Some(value.to_owned()),
            _ => self.skip_verify = flag(key, value)?,
        }
        Ok(())
    }

    pub(super) fn apply(&self, params: &mut Params) -> Result<(), String> {
        let Some(tls) = &self.tls else {
            if self.ca.is_some() || self.cert.is_some() {
                params.drop_unused("x-tls-ca");
            }
            return Ok(());
        };
        let mode = match tls.as_str() {
            "true" | "1" | "TRUE" | "True" => "VERIFY_IDENTITY",
            "false" | "0" | "FALSE" | "False" => "DISABLED",
            "skip-verify" => "REQUIRED",
            "preferred" => "PREFERRED",
            // A named configuration: golang-migrate builds it from x-tls-*.
            _ if self.skip_verify => "REQUIRED",
            _ => {
                if self.ca.is_none() {
                    return Err(format!("tls={tls}: a named TLS configuration needs x-tls-ca, as golang-migrate does"));
                }
                "VERIFY_IDENTITY"
            }
        };
        params.keep("ssl-mode", mode);
        let custom = !matches!(
            tls.as_str(),
            "true"
                | "1"
                | "TRUE"
                | "True"
                | "false"
                | "0"
                | "FALSE"
                | "False"
                | "skip-verify"
                | "preferred"
        );
        if custom {
            if let Some(ca) = &self.ca {
                params.keep("ssl-ca", ca);
            }
            match (&self.cert, &self.key) {
                (Some(cert), Some(key)) => {
                    params.keep("ssl-cert", cert);
                    params.keep("ssl-key", key);
                }
                (None, None) => {}
                _ => {
                    return Err(
                        "x-tls-cert and x-tls-key: expected both, as golang-migrate does".into(),
                    )
                }
            }
        }
        Ok(())
    }
}
