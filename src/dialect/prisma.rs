//! Prisma's URLs: `schema`, its TLS parameters (`sslmode`, `sslaccept`,
//! `sslcert` as the server's CA), and its SQLite `file:` URLs, relative to
//! the Prisma schema's folder.
//!
//! May touch: nothing but reading, for relative paths, where the Prisma
//! schema is (and `package.json`).

use std::path::{Path, PathBuf};

use super::{working_dir, Located, Params};
use crate::db::Kind;

/// Parameters only Prisma reads: one of them makes a URL Prisma's.
pub const PRISMA_ONLY: &[&str] = &[
    "schema",
    "sslaccept",
    "sslidentity",
    "connection_limit",
    "pgbouncer",
    "pool_timeout",
    "socket_timeout",
    "statement_cache_size",
    "max_connection_lifetime",
    "max_idle_connection_lifetime",
];

/// Prisma's TLS parameters, read as Prisma's engines read them: `sslmode`
/// is disable, prefer (the default) or require; the certificate is checked
/// only with `sslaccept=strict`; `sslcert` is the server's CA, relative to
/// the Prisma schema's folder.
#[derive(Default)]
pub(super) struct PrismaTls {
    mode: Option<String>,
    strict: bool,
    ca: Option<String>,
    /// Any TLS parameter given (MySQL: Prisma encrypts only then).
    any: bool,
}

impl PrismaTls {
    pub(super) fn take(&mut self, key: &str, value: &str) -> Result<(), String> {
        self.any = true;
        match key {
            "sslmode" => self.mode = Some(value.to_ascii_lowercase()),
            // Prisma reads any value but accept_invalid_certs as strict.
            "sslaccept" => self.strict = value != "accept_invalid_certs",
            "sslcert" => self.ca = Some(value.to_owned()),
            "sslpassword" => {}
            _ => {
                return Err(format!(
                    "{key}: a PKCS#12 client identity is not supported by unlatch; \
                     give unlatch a libpq-style URL with sslcert and sslkey (PEM) in UNLATCH_DATABASE_URL"
                ))
            }
        }
        Ok(())
    }

    /// The CA's path, resolved as Prisma resolves it.
    pub(super) fn ca_path(&self) -> Result<Option<String>, String> {
        let Some(ca) = &self.ca else { return Ok(None) };
        if Path::new(ca).is_absolute() {
            return Ok(Some(ca.clone()));
        }
        let dir = prisma_schema_dir(&working_dir()?).map_err(|why| {
            format!("sslcert={ca} is relative to the Prisma schema's folder, but {why}")
        })?;
        Ok(Some(dir.join(ca).display().to_string()))
    }

    pub(super) fn apply_postgres(
        &self,
        params: &mut Params,
        warnings: &mut Vec<String>,
    ) -> Result<(), String> {
        let mode = match self.mode.as_deref().unwrap_or("prefer") {
            "disable" => "disable",
            "prefer" if self.strict => "verify-full",
            "require" if self.strict => "verify-full",
            "prefer" => "prefer",
            "require" => "require",
            // Prisma reads anything else as prefer; libpq's stricter
            // meaning is kept, and said.
            other @ ("verify-ca" | "verify-full") => {
                warnings.push(format!(
                    "sslmode={other} in a Prisma URL: Prisma's engine reads it as prefer; unlatch keeps libpq's meaning and verifies"
                ));
                other
            }
            other => {
                return Err(format!(
                    "sslmode={other}: expected disable, prefer or require (Prisma's values)"
                ))
            }
        };
        params.keep("sslmode", mode);
        match self.ca_path()? {
            Some(ca) if mode.starts_with("verify") => params.keep("sslrootcert", &ca),
            Some(_) => warnings.push(
                "sslcert in a Prisma URL without sslaccept=strict: Prisma does not check the server's certificate, so neither does unlatch"
                    .into(),
            ),
            None => {}
        }
        Ok(())
    }

    pub(super) fn apply_mysql(&self, params: &mut Params) -> Result<(), String> {
        if !self.any {
            return Ok(());
        }
        params.keep(
            "ssl-mode",
            if self.strict {
                "VERIFY_IDENTITY"
            } else {
                "REQUIRED"
            },
        );
        if let (true, Some(ca)) = (self.strict, self.ca_path()?) {
            params.keep("ssl-ca", &ca);
        }
        Ok(())
    }
}

/// Prisma's SQLite URL, `file:<path>`: a relative path is relative to the
/// folder of the Prisma schema, which unlatch finds as Prisma's CLI does
/// from the working directory; found nowhere, the URL is refused rather
/// than read against the wrong folder.
pub(super) fn prisma_sqlite(rest: &str, cwd: &Path) -> Result<Located, String> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| "the file path is not UTF-8".to_owned())?;
    let path = path.strip_prefix("//").unwrap_or(&path);
    if path.is_empty() {
        return Err("file: without a path; expected file:./dev.db or file:/data/app.db".into());
    }
    let mut located = Located::new(Kind::Sqlite, String::new());
    let path = Path::new(path);
    let file = if path.is_absolute() {
        path.to_owned()
    } else {
        let dir = prisma_schema_dir(cwd).map_err(|why| {
            format!(
                "file:{} is relative to the Prisma schema's folder, but {why}; \
                 give an absolute path (file:/data/app.db) or start unlatch where Prisma's CLI runs",
                path.display()
            )
        })?;
        located.warnings.push(format!(
            "file:{} is read relative to the Prisma schema's folder {}, as Prisma reads it",
            path.display(),
            dir.display()
        ));
        crate::apps::ghost::normalize(&dir.join(path))
    };
    located.url = crate::apps::ghost::sqlite_url(&file);
    located.warnings.extend(Params::none_used(query));
    Ok(located)
}

/// The folder of the Prisma schema, looked for as Prisma's CLI does:
/// `package.json`'s `prisma.schema`, then `prisma/schema.prisma`,
/// `schema.prisma`, and the multi-file `prisma/schema/` folder. `Err` says
/// where it looked.
pub fn prisma_schema_dir(cwd: &Path) -> Result<PathBuf, String> {
    let from_package = std::fs::read_to_string(cwd.join("package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|json| json["prisma"]["schema"].as_str().map(|s| cwd.join(s)));
    let candidates = from_package.into_iter().chain([
        cwd.join("prisma/schema.prisma"),
        cwd.join("schema.prisma"),
        cwd.join("prisma/schema"),
    ]);
    for candidate in candidates {
        if candidate.is_file() {
            return Ok(candidate.parent().unwrap_or(cwd).to_owned());
        }
        if candidate.is_dir() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "no Prisma schema was found in {} (looked for package.json's prisma.schema, prisma/schema.prisma, \
         schema.prisma and prisma/schema/)",
        cwd.display()
    ))
}
