//! The Ghost image's ENTRYPOINT and CMD, exactly as the Dockerfile writes
//! them, run on this host: the quick form of tests/containers.rs, with the
//! knex-migrator fixture app as `current/` instead of Ghost, under a scratch
//! folder laid out like the official image, and the stand-in image's own
//! `docker-entrypoint.sh` (root fixes the content folder's owner and steps
//! down to `node` with gosu; node seeds a fresh volume). On SQLite and
//! MariaDB, on a fresh volume and on an existing one. Needs root and gosu.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The `ghost` stage of the Dockerfile: its ENV, ENTRYPOINT and CMD.
struct Stage {
    env: Vec<(String, String)>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
}

fn ghost_stage() -> Stage {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let stage = dockerfile
        .split("FROM ghost:5-alpine AS ghost")
        .nth(1)
        .expect("a ghost stage");
    // Join continuation lines, drop comments.
    let joined = stage.replace("\\\n", " ");
    let mut result = Stage {
        env: Vec::new(),
        entrypoint: Vec::new(),
        cmd: Vec::new(),
    };
    for line in joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
    {
        if let Some(rest) = line.strip_prefix("ENV ") {
            for word in shell_words::split(rest).unwrap() {
                let (k, v) = word.split_once('=').expect("ENV key=value");
                result.env.push((k.to_owned(), v.to_owned()));
            }
        } else if let Some(rest) = line.strip_prefix("ENTRYPOINT ") {
            result.entrypoint = serde_json::from_str(rest).unwrap();
        } else if let Some(rest) = line.strip_prefix("CMD ") {
            result.cmd = serde_json::from_str(rest).unwrap();
        }
    }
    result
}

fn can_run(test: &str) -> bool {
    available(
        test,
        lacks_root()
            .or_else(|| lacks("gosu", "gosu (Debian package gosu)"))
            .as_deref(),
    )
}

/// The image's `node` user (uid 1000 in node:alpine; any uid here), made
/// once: the tests run in parallel, and two `useradd`s racing on a machine
/// without one fail on `/etc/passwd`'s lock.
fn node_user() -> u32 {
    static NODE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *NODE.get_or_init(|| {
        let exists = || {
            Command::new("id")
                .arg("node")
                .output()
                .unwrap()
                .status
                .success()
        };
        if !exists() {
            let made = Command::new("useradd")
                .args(["--no-create-home", "--shell", "/bin/sh", "node"])
                .status()
                .unwrap();
            assert!(made.success() || exists(), "useradd node failed");
        }
        let out = Command::new("id").args(["-u", "node"]).output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    })
}

/// The official image's layout: /var/lib/ghost with `current`, the seed
/// content in `content.orig`, and an empty volume at `content`, owned by
/// root as a freshly made volume is (on Fly, for one).
struct Image {
    root: Scratch,
    bin: PathBuf,
}

impl Image {
    fn new(test: &str) -> Image {
        let root = Scratch::new(test);
        let install = root.path().join("var/lib/ghost");
        std::fs::create_dir_all(install.join("content.orig/themes/casper")).unwrap();
        std::fs::create_dir_all(install.join("content.orig/images")).unwrap();
        std::fs::write(
            install.join("content.orig/themes/casper/index.hbs"),
            "{{body}}\n",
        )
        .unwrap();
        std::fs::create_dir_all(install.join("content")).unwrap();
        std::os::unix::fs::symlink(knexapp(), install.join("current")).unwrap();
        let bin = root.path().join("usr/local/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        for (name, target) in [
            ("unlatch", PathBuf::from(env!("CARGO_BIN_EXE_unlatch"))),
            ("unlatch-ghost", manifest.join("docker/ghost/unlatch-ghost")),
            (
                "docker-entrypoint.sh",
                manifest.join("tests/containers/images/ghost/docker-entrypoint.sh"),
            ),
        ] {
            std::os::unix::fs::symlink(target, bin.join(name)).unwrap();
        }
        Image { root, bin }
    }

    fn install(&self) -> PathBuf {
        self.root.path().join("var/lib/ghost")
    }

    fn content(&self) -> PathBuf {
        self.install().join("content")
    }

    /// A command as the container would run it: the image's ENV, the
    /// database as a Ghost user sets it, from the WORKDIR.
    fn container(&self, db: &TestDb, args: &[String], version: &str) -> Command {
        let mut cmd = Command::new(&args[0]);
        cmd.args(&args[1..]).current_dir(self.install()).env_clear();
        cmd.env(
            "PATH",
            format!(
                "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                self.bin.display()
            ),
        )
        .env("NODE_ENV", "production")
        .env("GHOST_INSTALL", self.install())
        .env("GHOST_CONTENT", self.content())
        .env("FIXTURE_VERSION", version)
        .env("TZ", "UTC");
        cmd.envs(ghost_stage().env);
        match db.engine {
            Engine::Sqlite => {
                cmd.env("database__client", "sqlite3").env(
                    "database__connection__filename",
                    self.content().join("data/ghost.db"),
                );
            }
            _ => {
                let url = url::Url::parse(&db.url).unwrap();
                cmd.env("database__client", "mysql")
                    .env("database__connection__host", url.host_str().unwrap())
                    .env(
                        "database__connection__port",
                        url.port().unwrap_or(3306).to_string(),
                    )
                    .env("database__connection__user", url.username())
                    .env(
                        "database__connection__password",
                        url.password().unwrap_or_default(),
                    )
                    .env("database__connection__database", &db.name);
            }
        }
        cmd
    }

    /// ENTRYPOINT + CMD, exactly as in the Dockerfile.
    fn start(&self, db: &TestDb, version: &str) -> std::process::Output {
        let stage = ghost_stage();
        let argv: Vec<String> = stage.entrypoint.iter().chain(&stage.cmd).cloned().collect();
        run(&mut self.container(db, &argv, version))
    }

    /// Everything in the content folder not owned by `uid`, with the
    /// owner it has.
    fn not_owned_by(&self, uid: u32) -> Vec<String> {
        fn walk(dir: &Path, uid: u32, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let meta = entry.path().symlink_metadata().unwrap();
                if meta.uid() != uid {
                    found.push(format!("{} (uid {})", entry.path().display(), meta.uid()));
                }
                if meta.is_dir() {
                    walk(&entry.path(), uid, found);
                }
            }
        }
        let mut found = Vec::new();
        walk(&self.content(), uid, &mut found);
        found
    }

    /// Ghost's own check, as node: `knex-migrator health`.
    fn health(&self, db: &TestDb) -> i32 {
        let argv: Vec<String> = [
            "gosu",
            "node",
            "current/node_modules/.bin/knex-migrator-health",
            "--mgpath",
            "current",
        ]
        .map(String::from)
        .to_vec();
        code(&run(&mut self.container(db, &argv, "1.1")))
    }
}

fn fresh_volume_then_upgrade_with_a_stale_lock(engine: Engine) {
    if !can_run("ghost_image") {
        return;
    }
    let Some(db) = TestDb::new(engine, "ghost_image") else {
        return;
    };
    let node = node_user();
    let image = Image::new("ghost_image");

    // A fresh volume, version 1.0: initialised as node, then Ghost starts.
    let out = image.start(&db, "1.0");
    assert_eq!(code(&out), 0);
    assert!(
        stdout(&out).ends_with("APP STARTED posts=3 slugs=0\n"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("running UNLATCH_MIGRATE_CMD"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        image.not_owned_by(node),
        Vec::<String>::new(),
        "everything in content belongs to node ({node})"
    );
    assert!(
        image.content().join("themes/casper/index.hbs").exists(),
        "the stand-in seeded the volume"
    );

    // The next image, 1.1, on the same volume, after a killed upgrade left
    // the lock set: healed, migrated as node, started.
    let lock = match engine {
        Engine::Sqlite => {
            let url = format!(
                "sqlite://{}",
                image.content().join("data/ghost.db").display()
            );
            sql(
                &url,
                &["update migrations_lock set locked = 1, acquired_at = '2020-01-01 00:00:00'"],
            );
            url
        }
        _ => {
            db.exec(&[
                "update migrations_lock set locked = 1, acquired_at = '2020-01-01 00:00:00'",
            ]);
            db.url.clone()
        }
    };
    let out = image.start(&db, "1.1");
    assert_eq!(code(&out), 0);
    assert!(
        stdout(&out).ends_with("APP STARTED posts=3 slugs=3\n"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("stale; freed it"), "{}", stderr(&out));
    assert_eq!(
        row(&lock, "select cast(locked as integer) from migrations_lock").unwrap(),
        ["0"]
    );
    assert_eq!(
        image.not_owned_by(node),
        Vec::<String>::new(),
        "backups and database still node's ({node})"
    );
    assert_eq!(
        image.health(&db),
        0,
        "knex-migrator health: the database is fine"
    );
}

#[test]
fn ghost_image_on_sqlite() {
    fresh_volume_then_upgrade_with_a_stale_lock(Engine::Sqlite)
}

#[test]
fn ghost_image_on_mysql() {
    fresh_volume_then_upgrade_with_a_stale_lock(Engine::MySql)
}

#[test]
fn without_arguments_the_entrypoint_runs_the_preflight_only() {
    if !can_run("ghost_initcontainer") {
        return;
    }
    let Some(db) = TestDb::new(Engine::Sqlite, "ghost_init") else {
        return;
    };
    node_user();
    let image = Image::new("ghost_init");
    let out = run(&mut image.container(&db, &ghost_stage().entrypoint, "1.1"));
    assert_eq!(code(&out), 0);
    assert!(
        stderr(&out).contains("no COMMAND given"),
        "{}",
        stderr(&out)
    );
    assert!(
        image.content().join("data/ghost.db").exists(),
        "migrated (initialised) all the same"
    );
    assert_eq!(image.health(&db), 0);
}

#[test]
fn release_command_with_sqlite_explains_and_leaves() {
    let Some(db) = TestDb::new(Engine::Sqlite, "ghost_release") else {
        return;
    };
    let image = Image::new("ghost_release");
    let out = run(image
        .container(&db, &["unlatch-ghost".to_owned(), "true".to_owned()], "1.1")
        .env("RELEASE_COMMAND", "1"));
    assert_eq!(code(&out), 0);
    assert!(
        stderr(&out).contains("Fly release machines have no volume"),
        "{}",
        stderr(&out)
    );
    assert!(
        !image.content().join("data").exists(),
        "nothing made on a machine without the volume"
    );
}
