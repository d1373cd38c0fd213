//! entrypoint.d hooks and SQLite backups, through the binary.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn hooks_dir(scratch: &Scratch) -> std::path::PathBuf {
    let dir = scratch.path().join("entrypoint.d");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn hooks_run_in_natural_order_and_hand_variables_on() {
    let scratch = Scratch::new("hooks_order");
    let dir = hooks_dir(&scratch);
    hook(
        &dir,
        "10-second",
        "echo ten; echo \"SEEN_BY_TEN=$GREETING\" >> \"$UNLATCH_ENV_FILE\"",
        0o755,
    );
    hook(
        &dir,
        "9-first",
        "echo nine; echo oops >&2; echo 'GREETING=hello world' >> \"$UNLATCH_ENV_FILE\"",
        0o755,
    );
    hook(&dir, "README", "echo never", 0o644);
    std::fs::create_dir(dir.join("5-folder")).unwrap();
    hook(&dir.join("5-folder"), "1-inner", "echo never", 0o755);
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", &dir)
        .env("UNLATCH_MIGRATE_CMD", "sh -c 'echo migrate sees $GREETING'")
        .args(["--", "sh", "-c", "echo app sees $GREETING / $SEEN_BY_TEN"]));
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out),
        "9-first: nine\n10-second: ten\nmigrate sees hello world\napp sees hello world / hello world\n"
    );
    let err = stderr(&out);
    assert!(
        err.contains("9-first: oops"),
        "stderr is prefixed too: {err}"
    );
    assert!(
        err.contains("skipping hook README: not executable"),
        "{err}"
    );
    assert!(!stdout(&out).contains("never"));
}

#[test]
fn untrusted_hooks_are_refused() {
    let scratch = Scratch::new("hooks_refused");
    let dir = hooks_dir(&scratch);
    let marker = scratch.path().join("ran");
    hook(
        &dir,
        "1-open",
        &format!("touch {}", marker.display()),
        0o777,
    );
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", &dir)
        .args(["--", "echo", "app"]));
    assert_eq!(code(&out), 73);
    assert!(
        stderr(&out).contains("refusing hook 1-open") && stderr(&out).contains("world-writable"),
        "{}",
        stderr(&out)
    );
    assert!(!marker.exists() && stdout(&out).is_empty());

    if !available(
        "untrusted_hooks_are_refused (owner check)",
        lacks_root().as_deref(),
    ) {
        return;
    }
    std::fs::set_permissions(dir.join("1-open"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(dir.join("1-open"), Some(65534), None).unwrap();
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", &dir)
        .args(["--", "echo", "app"]));
    assert_eq!(code(&out), 73);
    assert!(
        stderr(&out).contains("owned by uid 65534, neither root nor the user it runs as"),
        "{}",
        stderr(&out)
    );
    assert!(!marker.exists());
    // Owned by the user it runs as: fine.
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", &dir)
        .env("UNLATCH_MIGRATE_RUN_AS", "65534")
        .args(["--", "echo", "app"]));
    assert!(
        stderr(&out).contains("running hook 1-open"),
        "{}",
        stderr(&out)
    );
}

/// A folder whose one hook, `1-fails`, runs `script`.
fn one_hook(scratch: &Scratch, script: &str) -> std::path::PathBuf {
    let dir = hooks_dir(scratch);
    hook(&dir, "1-fails", script, 0o755);
    dir
}

#[test]
fn a_failed_hook_stops_the_start_with_73() {
    let scratch = Scratch::new("hooks_fail");
    let dir = one_hook(&scratch, "exit 3");
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", &dir)
        .args(["--", "echo", "app"]));
    assert_eq!(code(&out), 73);
    assert!(
        stderr(&out).contains("hook 1-fails exited with 3; not starting the app"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn with_hook_failure_warn_a_failed_hook_lets_the_app_start() {
    let scratch = Scratch::new("hooks_warn");
    let dir = one_hook(&scratch, "exit 3");
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", &dir)
        .env("UNLATCH_HOOK_FAILURE", "warn")
        .args(["--", "echo", "app"]));
    assert_eq!((code(&out), stdout(&out).as_str()), (0, "app\n"));
}

#[test]
fn a_hook_past_its_timeout_is_stopped_and_stops_the_start() {
    let scratch = Scratch::new("hooks_timeout");
    let dir = one_hook(&scratch, "exec sleep 30");
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", &dir)
        .env("UNLATCH_HOOK_TIMEOUT", "1s")
        .env("UNLATCH_KILL_GRACE", "1s")
        .args(["--", "echo", "app"]));
    assert_eq!(code(&out), 73);
    assert!(
        stderr(&out).contains("ran past its time limit"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn hooks_run_after_the_heal_and_before_the_migrations() {
    let scratch = Scratch::new("hooks_when");
    let db = scratch.path().join("app.db");
    let url = format!("sqlite://{}", db.display());
    std::fs::File::create(&db).unwrap();
    sql(&url, &[
        "create table migrations_lock (lock_key varchar(191) primary key, locked boolean, acquired_at datetime, released_at datetime)",
        "insert into migrations_lock values ('km01', 1, '2020-01-01 00:00:00', NULL)",
    ]);
    let dir = hooks_dir(&scratch);
    hook(
        &dir,
        "1-look",
        &format!(
            "sqlite3 {} 'select locked from migrations_lock'",
            db.display()
        ),
        0o755,
    );
    let out = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &url)
        .env("UNLATCH_HOOKS_DIR", &dir)
        .env("UNLATCH_MIGRATE_CMD", "echo migrating")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out),
        "1-look: 0\nmigrating\n",
        "the hook saw the lock freed; the migration came after"
    );
}

#[test]
fn hooks_run_as_the_migrate_user() {
    if !available("hooks_run_as_the_migrate_user", lacks_root().as_deref()) {
        return;
    }
    let scratch = Scratch::new("hooks_user");
    let dir = hooks_dir(&scratch);
    hook(&dir, "1-who", "id -u", 0o755);
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", &dir)
        .env("UNLATCH_MIGRATE_RUN_AS", "65534")
        .args(["--", "id", "-u"]));
    assert_eq!(stdout(&out), "1-who: 65534\n0\n");
}

/// Root and `unshare`, for the tests that need a namespace of their own.
fn namespaces(test: &str) -> bool {
    let missing = lacks_root().or_else(|| lacks("unshare", "unshare"));
    available(test, missing.as_deref())
}

/// Waits for `path` to appear, at most 30 s.
fn wait_for_path(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_restart_in_place_after_sigkill_comes_up() {
    // unlatch is PID 1 of a container; SIGKILLed in a hook, then `docker
    // start`ed again: same filesystem, same PID. Nothing the first start
    // left may stop the second.
    if !namespaces("a_restart_in_place_after_sigkill_comes_up") {
        return;
    }
    let scratch = Scratch::new("hooks_restart");
    let dir = hooks_dir(&scratch);
    let tmp = scratch.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let first_ran = scratch.path().join("first-ran");
    hook(
        &dir,
        "1-slow-once",
        &format!(
            "echo K=handed >> \"$UNLATCH_ENV_FILE\"\n[ -e {0} ] || {{ touch {0}; exec sleep 60; }}",
            first_ran.display()
        ),
        0o755,
    );
    let as_pid_1 = || {
        let mut cmd = unlatch();
        cmd.env("TMPDIR", &tmp)
            .env("UNLATCH_HOOKS_DIR", &dir)
            .args(["--", "sh", "-c", "echo app sees $K"]);
        wrapped(
            "unshare",
            &["--pid", "--fork", "--mount-proc", "--kill-child"],
            &cmd,
        )
    };
    let mut first = as_pid_1()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_path(&first_ran);
    // SIGKILL to unshare; --kill-child passes it on to unlatch, PID 1.
    first.kill().unwrap();
    first.wait().unwrap();
    let out = run(&mut as_pid_1());
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), "app sees handed\n");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
    assert!(left.is_empty(), "unlatch left files in TMPDIR: {left:?}");
}

#[test]
fn hooks_work_on_a_read_only_root_filesystem() {
    // Kubernetes' readOnlyRootFilesystem: no writable /tmp, nor anywhere
    // else. The hooks still hand variables on, as root and as another user.
    if !namespaces("hooks_work_on_a_read_only_root_filesystem") {
        return;
    }
    let scratch = Scratch::new("hooks_read_only");
    let dir = hooks_dir(&scratch);
    hook(
        &dir,
        "1-hand",
        "echo \"GREETING=hello from $(id -u)\" >> \"$UNLATCH_ENV_FILE\"",
        0o755,
    );
    hook(
        &dir,
        "2-add",
        "echo \"SECOND=$GREETING, again\" >> \"$UNLATCH_ENV_FILE\"",
        0o755,
    );
    // The scratch folder may be on a file system of its own: made
    // read-only too, as a bind mount on itself.
    let read_only = "mount -o remount,bind,ro / && mount --bind \"$1\" \"$1\" && \
                     mount -o remount,bind,ro \"$1\" && shift && exec \"$@\"";
    let folder = scratch.path().display().to_string();
    for run_as in [None, Some("65534")] {
        let mut cmd = unlatch();
        cmd.env("UNLATCH_HOOKS_DIR", &dir)
            .env("TMPDIR", scratch.path())
            .args(["--", "sh", "-c", "echo app sees $GREETING / $SECOND"]);
        if let Some(user) = run_as {
            cmd.env("UNLATCH_MIGRATE_RUN_AS", user);
        }
        let out = run(&mut wrapped(
            "unshare",
            &["--mount", "sh", "-c", read_only, "sh", &folder],
            &cmd,
        ));
        let uid = run_as.unwrap_or("0");
        assert_eq!(code(&out), 0, "as uid {uid}");
        assert_eq!(
            stdout(&out),
            format!("app sees hello from {uid} / hello from {uid}, again\n")
        );
    }
}

#[test]
fn a_detached_helper_keeping_the_hooks_output_does_not_hold_the_start() {
    // The hook's end is its process exiting; a helper in a session of its
    // own keeps the hook's stdout and stderr open for as long as it runs.
    let scratch = Scratch::new("hooks_detached");
    let dir = hooks_dir(&scratch);
    let pid_file = scratch.path().join("helper.pid");
    hook(
        &dir,
        "1-daemon",
        &format!(
            "setsid -f sh -c 'echo $$ > {0}; echo helper says hi; exec sleep 300'\n\
             while [ ! -s {0} ]; do sleep 0.05; done\necho started a helper",
            pid_file.display()
        ),
        0o755,
    );
    let started = Instant::now();
    let running = Running::spawn(
        unlatch()
            .env("UNLATCH_HOOKS_DIR", &dir)
            .env("UNLATCH_HOOK_TIMEOUT", "3s")
            .args(["--", "echo", "app"])
            .stdout(Stdio::piped()),
    );
    let helper = || std::fs::read_to_string(&pid_file).ok();
    let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        running.finish_within(Duration::from_secs(20))
    }));
    if let Some(pid) = helper() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid.trim().parse().unwrap()),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let (code, err) = finished.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert_eq!(code, 0, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "held for {:?}",
        started.elapsed()
    );
    assert!(err.contains("hook 1-daemon exited with 0"), "{err}");
}

#[test]
fn sigterm_is_honoured_while_a_hooks_leftovers_are_ended() {
    let scratch = Scratch::new("hooks_leftovers_term");
    let dir = hooks_dir(&scratch);
    let app_ran = scratch.path().join("app-ran");
    // A leftover in the hook's group that ignores TERM: unlatch would wait
    // all of UNLATCH_KILL_GRACE for it.
    hook(
        &dir,
        "1-stubborn",
        "(trap '' TERM; exec sleep 300) &\necho left a helper",
        0o755,
    );
    let mut running = Running::spawn(
        unlatch()
            .env("UNLATCH_HOOKS_DIR", &dir)
            .env("UNLATCH_KILL_GRACE", "60s")
            .args(["--", "touch"])
            .arg(&app_ran)
            .stdout(Stdio::null()),
    );
    running.wait_for("left processes in its group");
    running.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, err) = running.finish_within(Duration::from_secs(20));
    assert_eq!(code, 143, "{err}");
    assert!(err.contains("stopped by SIGTERM"), "{err}");
    assert!(!app_ran.exists(), "the app was started");
}

#[test]
fn a_hook_printing_bytes_that_are_not_utf8_is_not_killed() {
    let scratch = Scratch::new("hooks_bytes");
    let dir = hooks_dir(&scratch);
    hook(
        &dir,
        "1-bytes",
        "printf 'caf\\351\\n'; printf 'bad \\377\\n' >&2; printf 'more\\n'; echo 'and on stderr' >&2",
        0o755,
    );
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", &dir)
        .args(["--", "echo", "app"]));
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out),
        "1-bytes: caf\u{fffd}\n1-bytes: more\napp\n",
        "printed lossily"
    );
    let err = stderr(&out);
    assert!(
        err.contains("1-bytes: bad \u{fffd}\n") && err.contains("1-bytes: and on stderr\n"),
        "{err}"
    );
}

fn stale_sqlite(scratch: &Scratch) -> (std::path::PathBuf, String) {
    stale_sqlite_in(scratch.path())
}

/// `ghost.db` in `dir`, with a stale knex-migrator lock and two posts.
fn stale_sqlite_in(dir: &Path) -> (std::path::PathBuf, String) {
    let db = dir.join("ghost.db");
    let url = format!("sqlite://{}", db.display());
    std::fs::File::create(&db).unwrap();
    sql(&url, &[
        "create table migrations_lock (lock_key varchar(191) primary key, locked boolean, acquired_at datetime, released_at datetime)",
        "insert into migrations_lock values ('km01', 1, '2020-01-01 00:00:00', NULL)",
        "create table posts (id integer primary key, title text)",
        "insert into posts (title) values ('a'), ('b')",
    ]);
    (db, url)
}

/// Adds about `megabytes` MB of random blobs to the database at `url`.
fn grow(url: &str, megabytes: u32) {
    sql(
        url,
        &[
            "create table blobs (data blob)",
            &format!(
                "with recursive n(i) as (select 1 union all select i + 1 from n where i < {}) \
             insert into blobs select randomblob(256 * 1024) from n",
                megabytes * 4
            ),
        ],
    );
}

/// Sets the knex-migrator lock stale again.
fn make_stale(url: &str) {
    sql(url, &["update migrations_lock set locked = 1, acquired_at = '2020-01-01 00:00:00', released_at = NULL"]);
}

fn locked(url: &str) -> String {
    row(url, "select cast(locked as integer) from migrations_lock").unwrap()[0].clone()
}

/// The names in `dir` that are copies, finished or not, of `ghost.db`.
fn backup_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ghost.db.unlatch-backup-"))
        .collect();
    names.sort();
    names
}

/// Waits until a copy of `ghost.db` in `dir` is being written; fails if
/// `running` ends first.
fn wait_for_a_copy(dir: &Path, running: &mut Running) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while backup_names(dir).is_empty() {
        assert!(
            running.child.try_wait().unwrap().is_none(),
            "unlatch ended before it copied"
        );
        assert!(Instant::now() < deadline, "no copy was started");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_heal_copies_the_sqlite_database_first() {
    let scratch = Scratch::new("backup_heal");
    let (db, url) = stale_sqlite(&scratch);
    let out = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &url)
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    let copies = unlatch::backup::copies(&db);
    assert_eq!(copies.len(), 1, "{copies:?}");
    let copy = format!("sqlite://{}", copies[0].display());
    assert_eq!(
        row(&copy, "select cast(locked as integer) from migrations_lock").unwrap(),
        ["1"],
        "the copy is from before the heal"
    );
    assert_eq!(row(&copy, "select count(*) from posts").unwrap(), ["2"]);
    assert_eq!(
        row(&url, "select cast(locked as integer) from migrations_lock").unwrap(),
        ["0"]
    );
    assert!(
        stderr(&out).contains("before freeing the lock"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn migrations_are_preceded_by_a_copy_when_asked_and_old_copies_pruned() {
    let scratch = Scratch::new("backup_migrate");
    let (db, url) = stale_sqlite(&scratch);
    let migrate = format!(
        "sqlite3 {} 'create table added_by_migration (id integer)'",
        db.display()
    );
    let out = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &url)
        .env("UNLATCH_SQLITE_BACKUP", "1")
        .env("UNLATCH_MIGRATE_CMD", format!("sh -c \"{migrate}\""))
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    let copies = unlatch::backup::copies(&db);
    assert_eq!(
        copies.len(),
        2,
        "one before the heal, one before the migrations: {copies:?}"
    );
    let before_migrations = format!("sqlite://{}", copies[1].display());
    assert_eq!(
        row(
            &before_migrations,
            "select cast(locked as integer) from migrations_lock"
        )
        .unwrap(),
        ["0"]
    );
    assert_eq!(
        row(
            &before_migrations,
            "select count(*) from sqlite_master where name = 'added_by_migration'"
        )
        .unwrap(),
        ["0"]
    );
    for _ in 0..4 {
        let out = run(unlatch()
            .env("UNLATCH_DATABASE_URL", &url)
            .env("UNLATCH_SQLITE_BACKUP", "1")
            .env("UNLATCH_SQLITE_BACKUP_KEEP", "2")
            .env("UNLATCH_MIGRATE_CMD", "true")
            .args(["--", "true"]));
        assert_eq!(code(&out), 0);
    }
    let left = unlatch::backup::copies(&db);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&copies[0]), "the oldest went first");
}

#[test]
fn copies_are_owned_like_the_database() {
    if !available(
        "copies_are_owned_like_the_database",
        lacks_root().as_deref(),
    ) {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let scratch = Scratch::new("backup_owner");
    let (db, url) = stale_sqlite(&scratch);
    std::os::unix::fs::chown(&db, Some(65534), Some(65534)).unwrap();
    let out = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &url)
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    let copy = &unlatch::backup::copies(&db)[0];
    let meta = copy.metadata().unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
}

#[test]
fn non_root_on_a_group_writable_volume_copies_and_heals() {
    // A Kubernetes fsGroup volume: the database belongs to another uid;
    // unlatch runs as a uid of its own, a member of the volume's group.
    let missing = lacks_root().or_else(|| lacks("setpriv", "setpriv"));
    if !available(
        "non_root_on_a_group_writable_volume_copies_and_heals",
        missing.as_deref(),
    ) {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let scratch = Scratch::new("backup_fsgroup");
    let volume = scratch.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    let (db, url) = stale_sqlite_in(&volume);
    for path in [&volume, &db] {
        std::os::unix::fs::chown(path, Some(5151), Some(4242)).unwrap();
    }
    std::fs::set_permissions(&volume, std::fs::Permissions::from_mode(0o775)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o664)).unwrap();
    let mut cmd = unlatch();
    cmd.env("UNLATCH_DATABASE_URL", &url)
        .env("UNLATCH_SQLITE_BACKUP_KEEP", "2")
        .env("UNLATCH_LOG", "debug")
        .args(["--", "true"]);
    let as_member = [
        "--reuid", "4343", "--regid", "4343", "--groups", "4242", "--",
    ];
    for round in 0..4 {
        if round > 0 {
            make_stale(&url);
            // Copies are named to the second.
            std::thread::sleep(Duration::from_millis(1100));
        }
        let out = run(&mut wrapped("setpriv", &as_member, &cmd));
        assert_eq!(code(&out), 0, "round {round}");
        assert_eq!(locked(&url), "0", "round {round}: healed");
        let names = backup_names(&volume);
        assert_eq!(names.len(), (round + 1).min(2), "round {round}: {names:?}");
        for copy in unlatch::backup::copies(&db) {
            let meta = copy.metadata().unwrap();
            assert_eq!(
                (meta.uid(), meta.gid()),
                (4343, 4242),
                "the group it could give, not the owner it could not"
            );
        }
        assert!(
            stderr(&out).contains("group 4242"),
            "what was given is logged: {}",
            stderr(&out)
        );
    }
}

/// A small tmpfs on `dir` for as long as it lives; unmounted when dropped,
/// whether the test passed or not.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs on {}", dir.display());
        SmallDisk(dir.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_leaves_no_copy_and_heals_nothing() {
    if !available(
        "a_full_disk_leaves_no_copy_and_heals_nothing",
        lacks_root().as_deref(),
    ) {
        return;
    }
    let scratch = Scratch::new("backup_full_disk");
    let volume = scratch.path().join("volume");
    let _disk = SmallDisk::mount(&volume, "6m");
    let (_db, url) = stale_sqlite_in(&volume);
    grow(&url, 4);
    let out = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &url)
        .args(["--", "echo", "app"]));
    assert_eq!(code(&out), 70);
    assert_eq!(stdout(&out), "", "the app does not start");
    let err = stderr(&out);
    assert!(
        err.contains("No space left on device")
            && err.contains(&format!(
                "{}.unlatch-backup-",
                volume.join("ghost.db").display()
            ))
            && err.contains(".partial-"),
        "names the copy and the cause: {err}"
    );
    assert!(err.contains("free"), "says what to do: {err}");
    assert_eq!(locked(&url), "1", "nothing healed without a copy");
    assert_eq!(backup_names(&volume), Vec::<String>::new(), "no copy left");
}

#[test]
fn a_copy_left_by_a_killed_start_is_removed_by_the_next() {
    let scratch = Scratch::new("backup_leftover");
    let (db, url) = stale_sqlite(&scratch);
    let leftover = scratch
        .path()
        .join("ghost.db.unlatch-backup-20200101T000000Z.partial-0123456789abcdef");
    std::fs::write(&leftover, "half a copy").unwrap();
    let out = run(unlatch()
        .env("UNLATCH_DATABASE_URL", &url)
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert!(!leftover.exists(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&leftover.display().to_string()),
        "{}",
        stderr(&out)
    );
    let copies = unlatch::backup::copies(&db);
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert!(!copies[0].to_string_lossy().contains("partial"));
}

#[test]
fn a_stop_during_the_copy_heals_nothing_and_starts_nothing() {
    let scratch = Scratch::new("backup_stopped");
    let (db, url) = stale_sqlite(&scratch);
    grow(&url, 256);
    let app_ran = scratch.path().join("app-ran");
    let start = || {
        let mut cmd = unlatch();
        cmd.env("UNLATCH_DATABASE_URL", &url)
            .args(["--", "touch"])
            .arg(&app_ran);
        Running::spawn(&mut cmd)
    };

    let mut running = start();
    wait_for_a_copy(scratch.path(), &mut running);
    running.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, err) = running.finish_within(Duration::from_secs(60));
    assert_eq!(code, 143, "{err}");
    assert!(err.contains("stopped by SIGTERM"), "{err}");
    assert_eq!(
        backup_names(scratch.path()),
        Vec::<String>::new(),
        "the partial copy is gone"
    );
    assert_eq!(locked(&url), "1", "nothing healed");
    assert!(!app_ran.exists(), "nothing started");

    // SIGKILL cannot be answered: the partial copy stays, and the next
    // start, under the guard, removes it.
    let mut running = start();
    wait_for_a_copy(scratch.path(), &mut running);
    running.signal(nix::sys::signal::Signal::SIGKILL);
    running.finish_within(Duration::from_secs(60));
    assert!(!app_ran.exists(), "nothing started");
    let left = backup_names(scratch.path());
    assert!(
        !left.is_empty() && left.iter().all(|n| n.contains(".partial-")),
        "{left:?}"
    );
    let (code, err) = start().finish_within(Duration::from_secs(120));
    assert_eq!(code, 0, "{err}");
    assert!(app_ran.exists());
    assert_eq!(locked(&url), "0");
    let copies = unlatch::backup::copies(&db);
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(
        backup_names(scratch.path()).len(),
        1,
        "the partial copy is gone"
    );
}

/// The repository's own example hooks, as shipped.
fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("entrypoint.d")
}

#[test]
fn example_mysqldump_hook_dumps_before_the_migrations() {
    let Some(db) = TestDb::new(Engine::MySql, "example_dump") else {
        return;
    };
    db.exec(&[
        "create table posts (id int primary key, title varchar(10))",
        "insert into posts values (1, 'kept')",
    ]);
    let url = url::Url::parse(&db.url).unwrap();
    let dumps = db.scratch.path().join("dumps");
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", examples())
        .env("database__client", "mysql")
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
        .env("database__connection__database", &db.name)
        .env("MYSQLDUMP_DIR", &dumps)
        .env("UNLATCH_MIGRATE_CMD", "sh -c 'echo migrating'")
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    let dumped = text
        .find("10-mysqldump-before-migrating: dumped")
        .expect("the hook dumped");
    assert!(
        dumped < text.find("migrating\n").unwrap(),
        "before the migrations: {text}"
    );
    let files: Vec<_> = std::fs::read_dir(&dumps)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1);
    let sql = Command::new("gzip")
        .arg("-dc")
        .arg(&files[0])
        .output()
        .unwrap();
    let sql = String::from_utf8_lossy(&sql.stdout);
    assert!(
        sql.contains("CREATE TABLE `posts`") && sql.contains("'kept'"),
        "a real dump"
    );
}

#[test]
fn example_mysqldump_hook_stands_aside_for_sqlite() {
    let scratch = Scratch::new("example_dump_sqlite");
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", examples())
        .env("database__client", "sqlite3")
        .env(
            "database__connection__filename",
            scratch.path().join("ghost.db"),
        )
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert!(
        stdout(&out).contains("10-mysqldump-before-migrating: not a MySQL database"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn example_secrets_hook_hands_file_contents_to_the_app() {
    let scratch = Scratch::new("example_secrets");
    let secret = scratch.path().join("token");
    std::fs::write(&secret, "s3cr3t-value\n").unwrap();
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", examples())
        .env("API_TOKEN_FILE", &secret)
        .args(["--", "sh", "-c", "echo app has $API_TOKEN"]));
    assert_eq!(code(&out), 0);
    assert!(
        stdout(&out).ends_with("app has s3cr3t-value\n"),
        "{}",
        stdout(&out)
    );
    std::fs::write(&secret, "two\nlines\n").unwrap();
    let out = run(unlatch()
        .env("UNLATCH_HOOKS_DIR", examples())
        .env("API_TOKEN_FILE", &secret)
        .args(["--", "true"]));
    assert_eq!(code(&out), 73, "a failed hook stops the start");
    assert!(
        stderr(&out).contains("more than one line"),
        "{}",
        stderr(&out)
    );
}
