//! Never a wrong heal, never a wrong skip: the cases where unlatch once
//! acted on a belief it could not prove (a lock its own without its guard,
//! a success that left the lock set, a skip on another image's say-so, a
//! status judged otherwise than a start judges), driven through the unlatch
//! binary against the real databases.

#[macro_use]
mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

on_every_engine!(a_replica_runs_its_migrate_command_after_an_older_image_ran_the_same_one,);

fn base(db: &TestDb) -> Command {
    let mut cmd = unlatch();
    cmd.env("UNLATCH_DATABASE_URL", &db.url).env("TZ", "UTC");
    cmd
}

/// Without its guard (here a guard file an earlier start made as root,
/// mode 0600, which unlatch as uid 4242 cannot open), a lock taken while
/// the migrate command ran may be another replica's: when the command
/// fails, unlatch leaves it, and says why, rather than free it.
#[test]
fn without_its_guard_unlatch_frees_no_lock_after_a_failed_migrate_command() {
    if !available(
        "without_its_guard_unlatch_frees_no_lock_after_a_failed_migrate_command",
        lacks_root().as_deref(),
    ) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new("no_guard_no_free");
    let dir = scratch.path().join("volume");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(4242), Some(4242)).unwrap();
    let file = dir.join("app.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    sql(
        &url,
        &[
            "CREATE TABLE migrations_lock (lock_key varchar(191) NOT NULL PRIMARY KEY, \
             locked boolean DEFAULT '0', acquired_at datetime NULL, released_at datetime NULL)",
            "INSERT INTO migrations_lock VALUES ('km01', 0, NULL, NULL)",
        ],
    );
    std::os::unix::fs::chown(&file, Some(4242), Some(4242)).unwrap();
    let guard = dir.join("app.db.unlatch-lock");
    std::fs::write(&guard, "").unwrap();
    std::fs::set_permissions(&guard, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The command says it started, waits for the other replica to take the
    // lock, then fails.
    let (started, go) = (dir.join("started"), dir.join("go"));
    let command = format!(
        "sh -c 'touch {}; while [ ! -e {} ]; do sleep 0.05; done; exit 1'",
        started.display(),
        go.display()
    );
    let mut cmd = unlatch();
    cmd.env(
        "UNLATCH_DATABASE_URL",
        format!("sqlite://{}", file.display()),
    )
    .env("TZ", "UTC")
    .env("UNLATCH_MIGRATE_CMD", &command)
    .args(["--", "true"]);
    let as_4242 = ["--reuid", "4242", "--regid", "4242", "--clear-groups", "--"];
    let mut running = Running::spawn(&mut wrapped("setpriv", &as_4242, &cmd));
    while !started.exists() {
        assert!(running.child.try_wait().unwrap().is_none(), "unlatch ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Another replica, just as unguarded, takes the lock for its migrator.
    sql(
        &url,
        &["UPDATE migrations_lock SET locked = 1, acquired_at = datetime('now')"],
    );
    std::fs::write(&go, "").unwrap();
    let (code, err) = running.finish_within(Duration::from_secs(60));
    assert_eq!(code, 71, "the migrate command failed: {err}");
    assert!(err.contains("going on without a guard"), "{err}");
    assert!(
        err.contains("unlatch ran without its guard, so another replica may hold it; leaving it"),
        "{err}"
    );
    let lock = row(
        &url,
        "SELECT CASE WHEN locked THEN 1 ELSE 0 END FROM migrations_lock",
    )
    .unwrap();
    assert_eq!(lock[0], "1", "the other replica's lock is left: {err}");
}

/// A rolling deploy: the replica of the old image holds the guard while it
/// migrates; the replica of the new image waits, then runs its own migrate
/// command, although the command line is the same (`sh migrate.sh`, each
/// image's own file): the same words, other migrations.
fn a_replica_runs_its_migrate_command_after_an_older_image_ran_the_same_one(db: &TestDb) {
    let images = ["old", "new"].map(|name| {
        let dir = db.scratch.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        dir
    });
    let (go, new_ran) = (
        db.scratch.path().join("go"),
        db.scratch.path().join("new-migrations-ran"),
    );
    std::fs::write(
        images[0].join("migrate.sh"),
        format!(
            "touch migrating\nwhile [ ! -e {} ]; do sleep 0.05; done\n",
            go.display()
        ),
    )
    .unwrap();
    std::fs::write(
        images[1].join("migrate.sh"),
        format!("touch {}\n", new_ran.display()),
    )
    .unwrap();
    let replica = |image: &std::path::Path| {
        let mut cmd = base(db);
        cmd.current_dir(image)
            .env("UNLATCH_MIGRATE_CMD", "sh migrate.sh")
            .env("UNLATCH_LOCK_WAIT", "60s")
            .args(["--", "true"]);
        Running::spawn(&mut cmd)
    };
    let old = replica(&images[0]);
    while !images[0].join("migrating").exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut new = replica(&images[1]);
    new.wait_for("in its preflight");
    std::fs::write(&go, "").unwrap();
    let (old_code, old_err) = old.finish_within(Duration::from_secs(60));
    assert_eq!(old_code, 0, "{old_err}");
    let (new_code, new_err) = new.finish_within(Duration::from_secs(60));
    assert_eq!(new_code, 0, "{new_err}");
    assert!(
        new_ran.exists(),
        "the new image's migrations ran; it said:\n{new_err}"
    );
}
