//! Prisma apps (Umami, Langfuse and the like): `DATABASE_URL`, whose
//! `schema` parameter is the PostgreSQL schema, and `DIRECT_URL`, which
//! wins when set: `prisma migrate` takes its advisory lock through the
//! schema's `directUrl`, a direct connection, where `url` may be a pooler's
//! (Langfuse's `schema.prisma`: `directUrl = env("DIRECT_URL")`).
//!
//! Found when `DIRECT_URL` is set, or when `DATABASE_URL` is set and a
//! Prisma schema is in the working directory: where Prisma's CLI looks
//! (Umami's image: `/app/prisma/schema.prisma`), or a workspace package's
//! `packages/*/prisma/schema.prisma` (Langfuse's image:
//! `/app/packages/shared/prisma`). `DATABASE_URL` alone, with no schema
//! here, is a URL given to unlatch, as before there were profiles.
//!
//! May touch: the working directory, to look for the Prisma schema (read only).

use std::path::{Path, PathBuf};

use super::{App, Database};
use crate::env::Env;
use crate::exit::{Code, Failure};

pub const APP: App = App {
    name: "prisma",
    tool: "prisma",
    table: "_prisma_migrations",
    detect,
    database,
    migrations: super::no_folder,
};

fn detect(env: &Env, cwd: &Path) -> Result<Option<String>, Failure> {
    if env.get("DIRECT_URL").is_some() {
        return Ok(Some("DIRECT_URL is set".into()));
    }
    if env.get("DATABASE_URL").is_none() {
        return Ok(None);
    }
    Ok(schema_here(cwd).map(|at| {
        format!(
            "DATABASE_URL is set and a Prisma schema is in {}",
            at.display()
        )
    }))
}

/// Where the Prisma schema is, under `cwd`.
fn schema_here(cwd: &Path) -> Option<PathBuf> {
    if let Ok(dir) = crate::dialect::prisma_schema_dir(cwd) {
        return Some(dir);
    }
    let packages = std::fs::read_dir(cwd.join("packages")).ok()?;
    let mut found: Vec<PathBuf> = packages
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("prisma"))
        .filter(|dir| dir.join("schema.prisma").is_file())
        .collect();
    found.sort();
    found.into_iter().next()
}

fn database(env: &Env, _: &Path) -> Result<Database, Failure> {
    for name in ["DIRECT_URL", "DATABASE_URL"] {
        if let Some(url) = env.get(name) {
            return Ok(Database::new(url.to_owned(), name, name));
        }
    }
    Err(Failure::new(
        Code::Config,
        "UNLATCH_APP=prisma, but neither DIRECT_URL nor DATABASE_URL is set; expected Prisma's DATABASE_URL \
         (and DIRECT_URL when DATABASE_URL is a pooler's)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_url_wins() {
        let env = Env::from_pairs(&[
            ("DATABASE_URL", "postgres://u@pooler:6432/d?pgbouncer=true"),
            ("DIRECT_URL", "postgres://u@db:5432/d?schema=umami"),
        ]);
        let d = database(&env, Path::new("/x")).unwrap();
        assert_eq!(d.url, "postgres://u@db:5432/d?schema=umami");
        assert_eq!(d.source, "DIRECT_URL");
    }

    #[test]
    fn database_url_is_prismas_only_beside_a_schema() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::from_pairs(&[("DATABASE_URL", "postgres://u@db/d")]);
        assert_eq!(detect(&env, dir.path()).unwrap(), None);
        let shared = dir.path().join("packages/shared/prisma");
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::write(shared.join("schema.prisma"), "").unwrap();
        let why = detect(&env, dir.path()).unwrap().unwrap();
        assert!(why.ends_with("packages/shared/prisma"), "{why}");
        std::fs::create_dir_all(dir.path().join("prisma")).unwrap();
        std::fs::write(dir.path().join("prisma/schema.prisma"), "").unwrap();
        let why = detect(&env, dir.path()).unwrap().unwrap();
        assert!(why.ends_with("/prisma"), "{why}");
        assert_eq!(detect(&Env::from_pairs(&[]), dir.path()).unwrap(), None);
    }
}
