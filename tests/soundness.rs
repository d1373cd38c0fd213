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
