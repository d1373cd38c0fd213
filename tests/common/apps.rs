//! The fixture app in tests/fixtures/knexapp, driven as the end-to-end
//! tests drive it: the Ghost-like app on knex-migrator 6.2.1 (SQLite,
//! MariaDB), and the plain knex 3.1.0 app (all three databases). Each
//! command runs the real tool from the fixture's `node_modules`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{knexapp_env, run, unlatch, Engine, TestDb};

/// The Ghost-like app (knex-migrator), in `dir` (from [`super::knexapp`]),
/// on `db`.
pub struct KnexMigratorApp<'a> {
    pub dir: PathBuf,
    pub db: &'a TestDb,
}

impl KnexMigratorApp<'_> {
    /// `args` run in the app's folder, as installed version `version`.
    fn node(&self, args: &[&str], version: &str) -> Command {
        let mut cmd = Command::new(args[0]);
        cmd.args(&args[1..])
            .current_dir(&self.dir)
            .env("FIXTURE_VERSION", version);
        knexapp_env(self.db, &mut cmd);
        cmd
    }

    fn bin(&self, name: &str) -> String {
        self.dir
            .join("node_modules/.bin")
            .join(name)
            .display()
            .to_string()
    }

    /// A knex-migrator command (`knex-migrator-migrate`, ...) on the app.
    pub fn migrator(&self, command: &str, version: &str) -> Command {
        let bin = self.bin(command);
        let mgpath = self.dir.display().to_string();
        self.node(&[&bin, "--mgpath", &mgpath], version)
    }

    /// The Ghost-like app: its boot check, then one line.
    pub fn boot(&self, version: &str) -> Output {
        run(&mut self.node(&["node", "app.js"], version))
    }

    /// unlatch in front of the app, set up as in the Ghost recipe.
    pub fn unlatch(&self) -> Command {
        let mut cmd = unlatch();
        cmd.current_dir(&self.dir)
            .env("TZ", "UTC")
            .env("FIXTURE_VERSION", "1.1");
        cmd.env(
            "UNLATCH_MIGRATE_CMD",
            format!(
                "{} --mgpath {}",
                self.bin("knex-migrator-migrate"),
                self.dir.display()
            ),
        );
        cmd.args(["--", "node", "app.js"]);
        knexapp_env(self.db, &mut cmd);
        cmd
    }

    /// A fresh install of version 1.0.
    pub fn install_1_0(&self) {
        let init = run(&mut self.migrator("knex-migrator-init", "1.0"));
        assert!(init.status.success());
    }
}

/// The plain knex app's database settings, for knex.
pub fn knex_env(db: &TestDb, cmd: &mut Command) {
    let (client, connection) = match db.engine {
        Engine::Sqlite => (
            "better-sqlite3",
            url::Url::parse(&db.url).unwrap().path().to_owned(),
        ),
        Engine::MySql => ("mysql2", db.url.clone()),
        Engine::Postgres => ("pg", db.url.clone()),
    };
    cmd.env("KNEX_CLIENT", client)
        .env("KNEX_CONNECTION", connection);
}

/// `knex migrate:latest` on the plain knex app in `dir`, as one string
/// (`UNLATCH_MIGRATE_CMD`).
fn knex_migrate_argv(dir: &Path) -> String {
    format!(
        "{} migrate:latest --knexfile {}",
        dir.join("node_modules/.bin/knex").display(),
        dir.join("knexfile.js").display()
    )
}

/// `knex migrate:latest` on `db`, run by hand.
pub fn knex_migrate(db: &TestDb, dir: &Path) -> Command {
    let argv = shell_words::split(&knex_migrate_argv(dir)).unwrap();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).current_dir(dir);
    knex_env(db, &mut cmd);
    cmd
}

/// unlatch in front of the plain knex app, migrating with knex.
pub fn knex_unlatch(db: &TestDb, dir: &Path) -> Command {
    let mut cmd = unlatch();
    cmd.current_dir(dir)
        .env("UNLATCH_DATABASE_URL", &db.url)
        .env("UNLATCH_MIGRATE_CMD", knex_migrate_argv(dir))
        .args(["--", "node", "knex-app.js"]);
    knex_env(db, &mut cmd);
    cmd
}

/// What the plain knex app prints once every migration is applied.
pub const KNEX_APP_STARTED: &str = "KNEX APP STARTED items=3 priced=3 migrations=2\n";
